//! The primary's side of a full resync: the snapshot a replica starts from, sent at once or,
//! with `repl-diskless-sync` and `repl-diskless-sync-delay`, after a wait during which more
//! replicas may ask (Redis lets them share one transfer; the waiting replica is kept alive
//! with newlines meanwhile).

use super::Replica;
use crate::persist::snapshot::MemorySnapshot;
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
    if state.replication.replicas.is_empty() {
        // PINGs go out every `repl-ping-replica-period` from the first replica on.
        state.replication.last_ping_ms = now;
    }
    let ip = ip_of(addr).to_string();
    state.replication.replicas.push(Replica {
        client_id,
        ip,
        port,
        ack_offset: acked,
        ack_ms: now,
        acks: false,
        over_soft_limit_since: None,
    });
    if let Some(entry) = state.clients.get_mut(&client_id) {
        entry.replica = true;
    }
    crate::notify::apply_to_dbs(state);
}

/// A full resync under way: the snapshot being written, the replicas it is for, and the
/// stream since its moment, held for each until the snapshot has gone out.
pub struct Transfer {
    snapshot: MemorySnapshot,
    pub targets: Vec<Target>,
    /// The stream offset the snapshot stands at.
    offset: u64,
}

pub struct Target {
    pub client_id: u64,
    pub addr: String,
    held: Vec<u8>,
}

impl Transfer {
    /// Stream bytes sent while the snapshot is written: each replica gets them after it.
    pub fn hold(&mut self, bytes: &[u8]) {
        for target in self.targets.iter_mut() {
            target.held.extend_from_slice(bytes);
        }
    }

    /// Stops writing the snapshot (SHUTDOWN); the replicas are left to reconnect.
    pub fn abandon(self, state: &mut ServerState) {
        self.snapshot.abandon(state);
    }
}

/// The host part of a client's `ip:port` address.
pub fn ip_of(addr: &str) -> &str {
    addr.rsplit_once(':').map_or(addr, |(ip, _)| ip)
}

/// A replica asked for a full resync: it starts now, or after the diskless delay, or once the
/// background work that holds the dataset's capture (a BGSAVE, an AOF rewrite, another
/// transfer) is done.
pub fn request_full_sync(state: &mut ServerState, client_id: u64, addr: &str, psync: bool) {
    let now = crate::time::unix_ms();
    state.replication.awaiting_sync.push(AwaitingSync {
        client_id,
        addr: addr.to_string(),
        psync,
        since_ms: now,
        last_newline_ms: now,
    });
    serve_awaiting(state);
}

/// Whether background work holds the capture of the dataset (only one may run at a time).
pub fn capture_busy(state: &ServerState) -> bool {
    state.persistence.bgsave.is_some()
        || state.aof.rewrite.is_some()
        || state.replication.transfer.is_some()
}

/// Starts the transfer for the replicas waiting, once their delay is over (or as many wait as
/// `repl-diskless-sync-max-replicas` asks for) and nothing else holds the capture; keeps the
/// others' links alive with a newline a second meanwhile.
pub fn serve_awaiting(state: &mut ServerState) {
    if state.replication.awaiting_sync.is_empty() {
        return;
    }
    let now = crate::time::unix_ms();
    let delay_ms = if state.config.get_bool("repl-diskless-sync") {
        state.config.get_i64("repl-diskless-sync-delay").max(0) * 1000
    } else {
        0
    };
    let max = state.config.get_i64("repl-diskless-sync-max-replicas");
    let enough = max > 0 && state.replication.awaiting_sync.len() as i64 >= max;
    let oldest = state
        .replication
        .awaiting_sync
        .iter()
        .map(|w| w.since_ms)
        .min()
        .unwrap_or(now);
    if (enough || now - oldest >= delay_ms) && !capture_busy(state) {
        let waiting = std::mem::take(&mut state.replication.awaiting_sync);
        start_transfer(state, waiting);
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

/// Starts writing the snapshot for `waiting`: each gets +FULLRESYNC (for PSYNC) now, the
/// snapshot and the stream since then when it is written.
fn start_transfer(state: &mut ServerState, waiting: Vec<AwaitingSync>) {
    // What the stream holds so far is in the snapshot: it goes to the other replicas only.
    super::flush_outbox(state);
    let snapshot = match MemorySnapshot::start(state) {
        Ok(snapshot) => snapshot,
        Err(e) => {
            crate::log::warning(&format!("Can't save in background: {}", e));
            for w in waiting {
                close(state, w.client_id);
            }
            return;
        }
    };
    let offset = state.replication.offset;
    let mut targets = Vec::new();
    for w in waiting {
        crate::log::notice(&format!("Replica {} asks for synchronization", w.addr));
        if w.psync {
            let line = format!("+FULLRESYNC {} {}\r\n", state.replication.replid, offset);
            state.send_to(w.client_id, line.into_bytes());
        }
        targets.push(Target {
            client_id: w.client_id,
            addr: w.addr,
            held: Vec::new(),
        });
    }
    crate::log::notice(&format!(
        "Starting BGSAVE for SYNC with target: replicas sockets ({} replica{})",
        targets.len(),
        if targets.len() == 1 { "" } else { "s" }
    ));
    // The stream after the snapshot must start by selecting its database.
    state.replication.selected_db = None;
    state.replication.transfer = Some(Transfer {
        snapshot,
        targets,
        offset,
    });
}

fn close(state: &ServerState, client_id: u64) {
    if let Some(entry) = state.clients.get(&client_id) {
        entry.close_now();
    }
}

/// The cron's part: a written snapshot goes to its replicas, followed by the stream held for
/// them, and they join the replicas the stream goes to.
pub fn collect_transfer(state: &mut ServerState) {
    let Some(mut transfer) = state.replication.transfer.take() else {
        return;
    };
    let Some(outcome) = transfer.snapshot.finished(state) else {
        state.replication.transfer = Some(transfer);
        return;
    };
    let snapshot = match outcome {
        Ok(snapshot) => snapshot,
        Err(e) => {
            crate::log::warning(&format!("Background transfer error: {}", e));
            for target in transfer.targets {
                close(state, target.client_id);
            }
            return;
        }
    };
    crate::log::notice("Background RDB transfer terminated with success");
    // The replicas already attached get the stream so far first: the held copies have it.
    super::flush_outbox(state);
    let now = crate::time::unix_ms();
    for target in transfer.targets {
        let Some(entry) = state.clients.get(&target.client_id) else {
            continue;
        };
        let mut bytes = Vec::with_capacity(snapshot.len() + 32);
        bytes.extend_from_slice(format!("${}\r\n", snapshot.len()).as_bytes());
        bytes.extend_from_slice(&snapshot);
        if entry
            .tx
            .send(crate::client::Outbound::Unmetered(bytes))
            .is_err()
        {
            continue;
        }
        state.send_to(target.client_id, target.held);
        register_replica(state, target.client_id, &target.addr, transfer.offset, now);
        state.replication.sync_full += 1;
        crate::log::notice(&format!(
            "Synchronization with replica {} succeeded",
            target.addr
        ));
    }
}

/// Forgets a replica that went away before its transfer ended.
pub fn forget(state: &mut ServerState, client_id: u64) {
    state
        .replication
        .awaiting_sync
        .retain(|w| w.client_id != client_id);
    if let Some(transfer) = state.replication.transfer.as_mut() {
        transfer.targets.retain(|t| t.client_id != client_id);
    }
}
