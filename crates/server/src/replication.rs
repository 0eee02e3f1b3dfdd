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
    let effect = (db, args.iter().map(|a| Bytes::copy_from_slice(a)).collect());
    emit(state, &[effect]);
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
    emit(state, &pending);
}

/// Sends effects to every place they go: the replicas and the append-only file. Each keeps
/// track of the database it last selected.
fn emit(state: &mut ServerState, effects: &[(usize, Vec<Bytes>)]) {
    if state.replication.active() {
        let mut out = Vec::new();
        let mut selected = state.replication.selected_db;
        encode_effects(&mut out, &mut selected, effects);
        state.replication.selected_db = selected;
        send(state, out);
    }
    if state.aof.is_on() {
        let timestamps = state.settings.aof_timestamps;
        state.aof.feed(effects, timestamps);
    }
}

/// Encodes effects as RESP commands, with a SELECT wherever the database changes from
/// `selected`, wrapping several effects in MULTI/EXEC.
pub fn encode_effects(
    out: &mut Vec<u8>,
    selected: &mut Option<usize>,
    effects: &[(usize, Vec<Bytes>)],
) {
    let wrap = effects.len() > 1;
    let mut select = |out: &mut Vec<u8>, db: usize| {
        if *selected != Some(db) {
            encode(out, &[b"SELECT", db.to_string().as_bytes()]);
            *selected = Some(db);
        }
    };
    if wrap {
        select(out, effects[0].0);
        encode(out, &[b"MULTI"]);
    }
    for (db, args) in effects {
        select(out, *db);
        let parts: Vec<&[u8]> = args.iter().map(|a| &a[..]).collect();
        encode(out, &parts);
    }
    if wrap {
        encode(out, &[b"EXEC"]);
    }
}
