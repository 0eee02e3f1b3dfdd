//! Replication. As a primary: the stream of write effects, in RESP, sent to connected replicas
//! and kept in the backlog for partial resyncs. Commands are propagated as they ran, or as a
//! deterministic rewrite of themselves (relative TTLs become absolute, GETDEL becomes DEL...);
//! several effects of one command (EXEC, scripts) are wrapped in MULTI/EXEC. As a replica (see
//! `link`): the stream from the primary, applied and passed on to this server's own replicas.

pub mod backlog;
pub mod link;
pub mod primary;

use crate::state::ServerState;
use backlog::Backlog;
use bytes::Bytes;
use std::collections::HashMap;

/// A replica attached to this server.
pub struct Replica {
    pub client_id: u64,
    pub ip: String,
    /// The port it listens on (REPLCONF listening-port), for INFO and ROLE.
    pub port: u16,
    /// The stream offset it last acknowledged (REPLCONF ACK).
    pub ack_offset: u64,
    /// When it last acknowledged, Unix ms.
    pub ack_ms: i64,
    /// It sends REPLCONF ACK (a PSYNC replica does, a tool attached with SYNC may not): only
    /// such a replica can be found silent.
    pub acks: bool,
    /// Since when its unwritten stream has been over the soft output limit, Unix ms.
    pub over_soft_limit_since: Option<i64>,
}

/// Replication state of this server.
pub struct Replication {
    pub replicas: Vec<Replica>,
    /// The database the stream last selected.
    pub selected_db: Option<usize>,
    /// Effects of the command being executed, emitted when it completes.
    pub pending: Vec<Effect>,
    /// Where effects recorded from now go: a script's `redis.set_repl` narrows it for the
    /// rest of its run.
    pub targets: u8,
    /// The stream's offset: bytes sent (as a primary) or applied (as a replica) so far, in
    /// the history named by `replid` (Redis's master_repl_offset).
    pub offset: u64,
    /// The id of the history `offset` counts in.
    pub replid: String,
    /// The history this one continues (after a promotion), valid up to
    /// `second_replid_offset`, so replicas of the old primary can resume partially.
    pub replid2: String,
    pub second_replid_offset: i64,
    pub backlog: Option<Backlog>,
    /// The primary this server replicates from (REPLICAOF), if it is a replica.
    pub primary: Option<link::PrimaryLink>,
    /// Ports announced with REPLCONF listening-port by clients not yet attached.
    pub announced_ports: HashMap<u64, u16>,
    /// Bumped whenever the primary changes: a link task whose number is stale stops.
    pub link_generation: u64,
    /// INFO stats: full resyncs served, partial resyncs accepted and refused.
    pub sync_full: u64,
    pub sync_partial_ok: u64,
    pub sync_partial_err: u64,
    /// When the last replica went away (or the server started), Unix ms: the backlog is
    /// freed `repl-backlog-ttl` seconds later.
    pub no_replicas_since_ms: i64,
    /// When the stream last carried a PING to keep replicas' links alive, Unix ms.
    pub last_ping_ms: i64,
    /// On a writable replica: keys its own clients gave a TTL. The replica expires these
    /// itself (its primary knows nothing of them), and only these.
    pub local_expires: std::collections::HashSet<(usize, Bytes)>,
    /// Replicas waiting for their full resync to start (`repl-diskless-sync-delay`).
    pub awaiting_sync: Vec<primary::AwaitingSync>,
    /// The full resync under way.
    pub transfer: Option<primary::Transfer>,
    /// Stream bytes not yet handed to the replicas' connections: a batch of commands goes out
    /// in one piece when the batch ends (see [`flush_outbox`]).
    pub outbox: Vec<u8>,
}

impl Default for Replication {
    fn default() -> Self {
        Replication {
            replicas: Vec::new(),
            selected_db: None,
            pending: Vec::new(),
            targets: TO_ALL,
            offset: 0,
            replid: new_replid(),
            replid2: NO_REPLID.to_string(),
            second_replid_offset: -1,
            backlog: None,
            primary: None,
            announced_ports: HashMap::new(),
            link_generation: 0,
            sync_full: 0,
            sync_partial_ok: 0,
            sync_partial_err: 0,
            no_replicas_since_ms: crate::time::unix_ms(),
            last_ping_ms: 0,
            local_expires: Default::default(),
            awaiting_sync: Vec::new(),
            transfer: None,
            outbox: Vec::new(),
        }
    }
}

/// One command's effect on the dataset, as it goes to replicas and the append-only file.
pub struct Effect {
    pub db: usize,
    pub args: Vec<Bytes>,
    /// TO_AOF, TO_REPLICAS or both (`redis.set_repl`).
    pub to: u8,
}

/// Effect targets, with the values of `redis.REPL_AOF` and `redis.REPL_REPLICA`.
pub const TO_AOF: u8 = moonkv_lua::repl::AOF as u8;
pub const TO_REPLICAS: u8 = moonkv_lua::repl::REPLICA as u8;
pub const TO_ALL: u8 = TO_AOF | TO_REPLICAS;

/// Redis's null replication id.
pub const NO_REPLID: &str = "0000000000000000000000000000000000000000";

/// A new random 40-hex-digit replication id.
pub fn new_replid() -> String {
    (0..40)
        .map(|_| format!("{:x}", rand::random::<u8>() & 0xf))
        .collect()
}

impl Replication {
    /// Whether effects go on the stream: replicas are attached, waiting for their full resync,
    /// or may resume from the backlog.
    pub fn active(&self) -> bool {
        !self.replicas.is_empty() || self.backlog.is_some() || self.syncing()
    }

    /// Replicas are waiting for their full resync or receiving it.
    pub fn syncing(&self) -> bool {
        !self.awaiting_sync.is_empty() || self.transfer.is_some()
    }

    pub fn is_replica(&self, client_id: u64) -> bool {
        self.replicas.iter().any(|r| r.client_id == client_id)
    }

    /// Starts a new history (this server became a primary): the old one stays resumable up
    /// to the present offset.
    pub fn shift_replid(&mut self) {
        self.replid2 = std::mem::replace(&mut self.replid, new_replid());
        self.second_replid_offset = self.offset as i64 + 1;
    }

    /// Replicas whose last acknowledgement is at most `max_lag_secs` old.
    pub fn good_replicas(&self, now_ms: i64, max_lag_secs: i64) -> usize {
        self.replicas
            .iter()
            .filter(|r| now_ms - r.ack_ms <= max_lag_secs * 1000)
            .count()
    }

    /// Replicas that acknowledged at least `offset`.
    pub fn acked(&self, offset: u64) -> usize {
        self.replicas
            .iter()
            .filter(|r| r.ack_offset >= offset)
            .count()
    }
}

/// Encodes one command in RESP, as the stream carries it.
pub fn encode(out: &mut Vec<u8>, args: &[&[u8]]) {
    out.push(b'*');
    out.extend_from_slice(moonkv_protocol::itoa_buf(args.len() as i64).as_bytes());
    out.extend_from_slice(b"\r\n");
    for a in args {
        out.push(b'$');
        out.extend_from_slice(moonkv_protocol::itoa_buf(a.len() as i64).as_bytes());
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}

/// The replication part of the server's cron: the backlog follows `repl-backlog-size`, a
/// primary PINGs its replicas every `repl-ping-replica-period` so their links do not time
/// out, and a backlog nobody used for `repl-backlog-ttl` seconds is freed.
pub fn cron(state: &mut ServerState) {
    let now = crate::time::unix_ms();
    let size = state.config.get_i64("repl-backlog-size").max(1) as usize;
    if let Some(backlog) = state.replication.backlog.as_mut() {
        if backlog.capacity() != size {
            backlog.resize(size);
        }
    }
    // A replica serves full resyncs to replicas of its own too.
    primary::collect_transfer(state);
    primary::serve_awaiting(state);
    if state.replication.primary.is_some() {
        expire_local_keys(state, now);
        flush_outbox(state);
        return;
    }
    if !state.replication.replicas.is_empty() {
        drop_silent_replicas(state, now);
        enforce_output_limits(state);
        let period = state.config.get_i64("repl-ping-replica-period").max(1) * 1000;
        if now - state.replication.last_ping_ms >= period {
            state.replication.last_ping_ms = now;
            let mut ping = Vec::new();
            encode(&mut ping, &[b"PING"]);
            send(state, ping);
        }
        flush_outbox(state);
        return;
    }
    let ttl = state.config.get_i64("repl-backlog-ttl");
    let replication = &mut state.replication;
    if replication.syncing() {
        // A replica on its way in counts as connected.
        replication.no_replicas_since_ms = now;
        return;
    }
    if replication.backlog.is_some()
        && ttl > 0
        && now - replication.no_replicas_since_ms >= ttl * 1000
    {
        // No replica can resume any more: a new history starts with the next one.
        replication.backlog = None;
        replication.replid = new_replid();
        replication.replid2 = NO_REPLID.to_string();
        replication.second_replid_offset = -1;
        crate::log::notice(&format!(
            "Replication backlog freed after {} seconds without connected replicas.",
            ttl
        ));
    }
}

/// Keeps a backlog of `repl-backlog-size` from the present offset on, unless one is kept.
pub fn ensure_backlog(state: &mut ServerState) {
    if state.replication.backlog.is_none() {
        let size = state.config.get_i64("repl-backlog-size").max(1) as usize;
        state.replication.backlog = Some(backlog::Backlog::new(size, state.replication.offset));
    }
}

/// The effects of a batch leave: the append-only file's buffer is written and the stream is
/// handed to the replicas.
pub fn write_batch_effects(state: &mut ServerState) {
    crate::persist::aof::write_pending(state);
    flush_outbox(state);
}

/// At start-up, from a snapshot that says where it stood in the replication history: a
/// replica asks its primary to resume from there, and a primary lets its replicas resume
/// (its backlog starts empty at that offset).
pub fn resume_from(state: &mut ServerState, repl: crate::persist::snapshot::ReplPosition) {
    let replication = &mut state.replication;
    replication.replid = repl.replid;
    replication.offset = repl.offset;
    match replication.primary.as_mut() {
        Some(link) => {
            link.fresh = false;
            link.stream_db = repl.stream_db;
        }
        None => {
            replication.no_replicas_since_ms = crate::time::unix_ms();
            ensure_backlog(state);
        }
    }
    crate::log::notice(&format!(
        "Replication position restored from the snapshot: {}:{}",
        state.replication.replid, state.replication.offset
    ));
}

/// Closes the links of replicas that acknowledged nothing for `repl-timeout` seconds.
fn drop_silent_replicas(state: &mut ServerState, now: i64) {
    let timeout_ms = state.config.get_i64("repl-timeout").max(1) * 1000;
    for replica in &state.replication.replicas {
        if replica.acks && now - replica.ack_ms > timeout_ms {
            crate::log::warning(&format!(
                "Disconnecting timedout replica (streaming sync): {}:{}",
                replica.ip, replica.port
            ));
            if let Some(entry) = state.clients.get(&replica.client_id) {
                entry.close_now();
            }
        }
    }
}

/// After a client's write on a (writable) replica: notes the keys it left with a TTL.
pub fn remember_local_expires(
    state: &mut ServerState,
    db: usize,
    spec: &crate::commands::CommandSpec,
    args: &[Bytes],
) {
    let Ok(positions) = spec.key_positions(args) else {
        return;
    };
    for at in positions {
        let key = &args[at];
        if state.dbs[db].expire_time(key).is_some() {
            state.replication.local_expires.insert((db, key.clone()));
        }
    }
}

/// Deletes the keys a writable replica's own clients set to expire, once their time is up.
fn expire_local_keys(state: &mut ServerState, now: i64) {
    if state.replication.local_expires.is_empty() {
        return;
    }
    let ServerState {
        dbs, replication, ..
    } = state;
    replication
        .local_expires
        .retain(|(db, key)| match dbs[*db].expire_time(key) {
            Some(at) if at <= now => {
                dbs[*db].expire_if_needed(key, now);
                false
            }
            Some(_) => true,
            None => false,
        });
}

/// Puts bytes on the stream: into the backlog, and into the outbox for every replica.
pub fn send(state: &mut ServerState, bytes: Vec<u8>) {
    if bytes.is_empty() {
        return;
    }
    let replication = &mut state.replication;
    replication.offset += bytes.len() as u64;
    if let Some(backlog) = replication.backlog.as_mut() {
        backlog.push(&bytes);
    }
    if let Some(transfer) = replication.transfer.as_mut() {
        transfer.hold(&bytes);
    }
    if !replication.replicas.is_empty() {
        if replication.outbox.is_empty() {
            replication.outbox = bytes;
        } else {
            replication.outbox.extend_from_slice(&bytes);
        }
    }
}

/// Hands the stream bytes collected since the last call to every replica's connection: once
/// per batch of commands rather than once per command.
pub fn flush_outbox(state: &mut ServerState) {
    if state.replication.outbox.is_empty() {
        return;
    }
    let bytes = std::mem::take(&mut state.replication.outbox);
    let mut gone = Vec::new();
    let last = state.replication.replicas.len().saturating_sub(1);
    let mut bytes = Some(bytes);
    for (i, replica) in state.replication.replicas.iter().enumerate() {
        // The last replica takes the buffer itself.
        let chunk = if i == last {
            bytes.take().unwrap_or_default()
        } else {
            bytes.clone().unwrap_or_default()
        };
        if !state.send_to(replica.client_id, chunk) {
            gone.push(replica.client_id);
        }
    }
    if !gone.is_empty() {
        state
            .replication
            .replicas
            .retain(|r| !gone.contains(&r.client_id));
        if state.replication.replicas.is_empty() {
            state.replication.no_replicas_since_ms = crate::time::unix_ms();
        }
    }
    enforce_output_limits(state);
}

/// `client-output-buffer-limit replica <hard> <soft> <seconds>`: a replica whose connection
/// has not written more than `hard` bytes of the stream, or more than `soft` for `seconds`,
/// is disconnected (it resyncs), rather than let its queue grow without bound.
fn enforce_output_limits(state: &mut ServerState) {
    let (hard, soft, seconds) =
        replica_output_limits(state.config.get("client-output-buffer-limit"));
    if hard == 0 && soft == 0 {
        return;
    }
    let now = crate::time::unix_ms();
    let ServerState {
        replication,
        clients,
        ..
    } = state;
    for replica in replication.replicas.iter_mut() {
        let Some(entry) = clients.get(&replica.client_id) else {
            continue;
        };
        let queued = entry
            .output
            .queued
            .load(std::sync::atomic::Ordering::Relaxed) as u64;
        let soft_expired = if soft > 0 && queued > soft {
            let since = *replica.over_soft_limit_since.get_or_insert(now);
            now - since >= seconds * 1000
        } else {
            replica.over_soft_limit_since = None;
            false
        };
        if (hard > 0 && queued > hard) || soft_expired {
            crate::log::warning(&format!(
                "Client id={} addr={} laddr={} flags=S scheduled to be closed ASAP for overcoming of output buffer limits.",
                entry.id, entry.addr, entry.laddr
            ));
            entry.close_now();
        }
    }
}

/// The replica class of `client-output-buffer-limit`: (hard bytes, soft bytes, soft seconds).
fn replica_output_limits(setting: &str) -> (u64, u64, i64) {
    let words: Vec<&str> = setting.split_whitespace().collect();
    for class in words.chunks(4) {
        if let [name, hard, soft, seconds] = class {
            if matches!(*name, "replica" | "slave") {
                let bytes = |w: &str| crate::config::parse_memory(w).unwrap_or(0).max(0) as u64;
                return (bytes(hard), bytes(soft), seconds.parse().unwrap_or(0));
            }
        }
    }
    (256 << 20, 64 << 20, 60)
}

/// Sends one effect right away (e.g. the DEL of a key that expired during a lookup).
pub fn feed_now(state: &mut ServerState, db: usize, args: &[&[u8]]) {
    let effect = Effect {
        db,
        args: args.iter().map(|a| Bytes::copy_from_slice(a)).collect(),
        to: TO_ALL,
    };
    emit(state, &[effect]);
}

/// Emits the effects collected while a command ran: alone, or wrapped in MULTI/EXEC when
/// there are several, so replicas apply them atomically.
pub fn flush(state: &mut ServerState) {
    if state.replication.pending.is_empty() {
        return;
    }
    let pending = std::mem::take(&mut state.replication.pending);
    if state.replication.primary.is_some() {
        // A replica passes its primary's stream on as it came (see `link`) and originates
        // nothing for its replicas; its append-only file records what it executed.
        if state.aof.is_on() {
            let timestamps = state.settings.aof_timestamps;
            state.aof.feed(&pending, timestamps);
        }
        return;
    }
    emit(state, &pending);
}

/// Sends effects to every place they go: the replicas and the append-only file. Each keeps
/// track of the database it last selected.
fn emit(state: &mut ServerState, effects: &[Effect]) {
    if state.replication.active() {
        let mut out = Vec::new();
        let mut selected = state.replication.selected_db;
        encode_effects(&mut out, &mut selected, effects, TO_REPLICAS);
        state.replication.selected_db = selected;
        send(state, out);
    }
    if state.aof.is_on() {
        let timestamps = state.settings.aof_timestamps;
        state.aof.feed(effects, timestamps);
    }
}

/// Encodes the effects bound for `destination` as RESP commands, with a SELECT wherever the
/// database changes from `selected`, wrapping several in MULTI/EXEC.
pub fn encode_effects(
    out: &mut Vec<u8>,
    selected: &mut Option<usize>,
    effects: &[Effect],
    destination: u8,
) {
    let bound = || effects.iter().filter(|e| e.to & destination != 0);
    let count = bound().count();
    if count == 0 {
        return;
    }
    let wrap = count > 1;
    let mut select = |out: &mut Vec<u8>, db: usize| {
        if *selected != Some(db) {
            encode(out, &[b"SELECT", db.to_string().as_bytes()]);
            *selected = Some(db);
        }
    };
    if wrap {
        if let Some(first) = bound().next() {
            select(out, first.db);
        }
        encode(out, &[b"MULTI"]);
    }
    for effect in bound() {
        select(out, effect.db);
        let parts: Vec<&[u8]> = effect.args.iter().map(|a| &a[..]).collect();
        encode(out, &parts);
    }
    if wrap {
        encode(out, &[b"EXEC"]);
    }
}
