//! The primary's side of a full resync: the snapshot a replica starts from, sent at once or,
//! with `repl-diskless-sync` and `repl-diskless-sync-delay`, after a wait during which more
//! replicas may ask (Redis lets them share one transfer; the waiting replica is kept alive
//! with newlines meanwhile).

use super::Replica;
use crate::state::ServerState;

/// A replica that asked for a full resync and waits for its transfer to start.
pub struct AwaitingSync {
    pub client_id: u64,
    pub addr: String,
    /// Whether it asked with PSYNC (it gets +FULLRESYNC first) rather than SYNC.
    pub psync: bool,
    pub since_ms: i64,
    pub last_newline_ms: i64,
}

/// Registers the client as a replica that has the stream up to `acked`.
pub fn register_replica(state: &mut ServerState, client_id: u64, addr: &str, acked: u64, now: i64) {
    let port = state
        .replication
        .announced_ports
        .remove(&client_id)
        .unwrap_or(0);
    let ip = match addr.rfind(':') {
        Some(colon) => addr[..colon].to_string(),
        None => addr.to_string(),
    };
    state.replication.replicas.push(Replica {
        client_id,
        ip,
        port,
        ack_offset: acked,
        ack_ms: now,
    });
    if let Some(entry) = state.clients.get_mut(&client_id) {
        entry.replica = true;
    }
    crate::notify::apply_to_dbs(state);
}

/// A replica asked for a full resync: it starts now, or after the diskless delay.
pub fn request_full_sync(state: &mut ServerState, client_id: u64, addr: &str, psync: bool) {
    let delay = state.config.get_i64("repl-diskless-sync-delay");
    if state.config.get_bool("repl-diskless-sync") && delay > 0 {
        let now = crate::time::unix_ms();
        state.replication.awaiting_sync.push(AwaitingSync {
            client_id,
            addr: addr.to_string(),
            psync,
            since_ms: now,
            last_newline_ms: now,
        });
        return;
    }
    full_sync(state, client_id, addr, psync);
}

/// Sends the snapshot (after +FULLRESYNC for PSYNC) and registers the client as a replica.
fn full_sync(state: &mut ServerState, client_id: u64, addr: &str, psync: bool) {
    // What the stream holds so far is in the snapshot: it goes to the other replicas only.
    super::flush_outbox(state);
    crate::log::notice(&format!("Replica {} asks for synchronization", addr));
    let now = crate::time::unix_ms();
    let libraries = state.scripting.libraries.libraries.values();
    let snapshot = moonkv_persistence::rdb::write_snapshot(
        &state.dbs,
        libraries.map(|l| &l.code[..]),
        crate::REDIS_VERSION,
        now,
    );
    let mut bytes = Vec::with_capacity(snapshot.len() + 80);
    if psync {
        bytes.extend_from_slice(
            format!(
                "+FULLRESYNC {} {}\r\n",
                state.replication.replid, state.replication.offset
            )
            .as_bytes(),
        );
    }
    bytes.extend_from_slice(format!("${}\r\n", snapshot.len()).as_bytes());
    bytes.extend_from_slice(&snapshot);
    // The snapshot goes through the client's outbound channel so everything streamed after it
    // arrives in order.
    state.send_to(client_id, bytes);
    let offset = state.replication.offset;
    register_replica(state, client_id, addr, offset, now);
    state.replication.sync_full += 1;
    // The stream to the new replica must start by selecting its database.
    state.replication.selected_db = None;
    crate::log::notice(&format!("Synchronization with replica {} succeeded", addr));
}

/// The cron's part: starts the transfers whose delay is over (or once as many replicas wait
/// as `repl-diskless-sync-max-replicas` asks for), and keeps the others' links alive.
pub fn serve_awaiting(state: &mut ServerState) {
    if state.replication.awaiting_sync.is_empty() {
        return;
    }
    let now = crate::time::unix_ms();
    let delay_ms = state.config.get_i64("repl-diskless-sync-delay").max(0) * 1000;
    let max = state.config.get_i64("repl-diskless-sync-max-replicas");
    let enough = max > 0 && state.replication.awaiting_sync.len() as i64 >= max;
    let oldest = state
        .replication
        .awaiting_sync
        .iter()
        .map(|w| w.since_ms)
        .min()
        .unwrap_or(now);
    if enough || now - oldest >= delay_ms {
        for waiting in std::mem::take(&mut state.replication.awaiting_sync) {
            full_sync(state, waiting.client_id, &waiting.addr, waiting.psync);
        }
        return;
    }
    let mut newlines = Vec::new();
    for waiting in state.replication.awaiting_sync.iter_mut() {
        if now - waiting.last_newline_ms >= 1000 {
            waiting.last_newline_ms = now;
            newlines.push(waiting.client_id);
        }
    }
    for id in newlines {
        state.send_to(id, b"\n".to_vec());
    }
}
