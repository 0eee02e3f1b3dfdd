//! The replication stream: the effects of write commands, in RESP, sent to connected replicas
//! (and to test tools that attach with SYNC). Commands are propagated as they ran, or as a
//! deterministic rewrite of themselves (relative TTLs become absolute, GETDEL becomes DEL...);
//! several effects of one command (EXEC, later scripts) are wrapped in MULTI/EXEC.

use crate::state::ServerState;
use bytes::Bytes;

/// Replication state of this (primary) server.
#[derive(Default)]
pub struct Replication {
    /// Clients attached as replicas.
    pub replicas: Vec<u64>,
    /// The database the stream last selected.
    pub selected_db: Option<usize>,
    /// Effects of the command being executed, emitted when it completes.
    pub pending: Vec<(usize, Vec<Bytes>)>,
    /// Bytes sent on the stream so far.
    pub offset: u64,
    /// The primary this server replicates from (REPLICAOF), if it is a replica.
    pub primary: Option<(String, u16)>,
}

impl Replication {
    pub fn active(&self) -> bool {
        !self.replicas.is_empty()
    }
}

fn encode(out: &mut Vec<u8>, args: &[&[u8]]) {
    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}

fn encode_in_db(state: &mut ServerState, out: &mut Vec<u8>, db: usize, args: &[&[u8]]) {
    if state.replication.selected_db != Some(db) {
        encode(out, &[b"SELECT", db.to_string().as_bytes()]);
        state.replication.selected_db = Some(db);
    }
    encode(out, args);
}

fn send(state: &mut ServerState, bytes: Vec<u8>) {
    if bytes.is_empty() {
        return;
    }
    state.replication.offset += bytes.len() as u64;
    let replicas = state.replication.replicas.clone();
    let mut gone = Vec::new();
    for id in replicas {
        if !state.send_to(id, bytes.clone()) {
            gone.push(id);
        }
    }
    state.replication.replicas.retain(|id| !gone.contains(id));
}

/// Sends one effect right away (e.g. the DEL of a key that expired during a lookup).
pub fn feed_now(state: &mut ServerState, db: usize, args: &[&[u8]]) {
    let mut out = Vec::new();
    encode_in_db(state, &mut out, db, args);
    send(state, out);
}

/// Emits the effects collected while a command ran: alone, or wrapped in MULTI/EXEC when
/// there are several, so replicas apply them atomically.
pub fn flush(state: &mut ServerState) {
    if state.replication.pending.is_empty() {
        return;
    }
    if state.replication.primary.is_some() {
        // A replica does not originate effects of its own.
        state.replication.pending.clear();
        return;
    }
    let pending = std::mem::take(&mut state.replication.pending);
    let mut out = Vec::new();
    let wrap = pending.len() > 1;
    if wrap {
        let first_db = pending[0].0;
        if state.replication.selected_db != Some(first_db) {
            encode(&mut out, &[b"SELECT", first_db.to_string().as_bytes()]);
            state.replication.selected_db = Some(first_db);
        }
        encode(&mut out, &[b"MULTI"]);
    }
    for (db, args) in &pending {
        let parts: Vec<&[u8]> = args.iter().map(|a| &a[..]).collect();
        encode_in_db(state, &mut out, *db, &parts);
    }
    if wrap {
        encode(&mut out, &[b"EXEC"]);
    }
    send(state, out);
}
