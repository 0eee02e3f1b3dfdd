//! Clients blocked by BLPOP, BZPOPMIN and the other blocking commands.
//!
//! A blocking command that finds nothing to take, outside a transaction, leaves a
//! [`BlockRequest`] on its client instead of replying. The connection then parks the client
//! here, under the same lock hold: its whole state, the command, and a place in the queue of
//! every key it waits on (the queues live in the key's database). A write to such a key flags
//! it ready; after each command the server walks the ready keys and runs each waiting client's
//! command again, oldest first, while the key holds a value of the type it waits for. The
//! re-run takes the path of a fresh command, so the reply, statistics, keyspace events and
//! replication are what the command would have produced had the data been there at first.
//! The served client's state and reply go back to its connection through its channel.

use crate::client::{ClientState, Outbound};
use crate::commands::{self, BatchClock};
use crate::state::ServerState;
use bytes::Bytes;
use moonkv_keyspace::Value;
use moonkv_protocol::{ReplySink, RespWriter};
use std::collections::HashMap;
use std::time::Duration;

/// The type of value a blocked client waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Awaits {
    List,
    SortedSet,
    /// WAIT: `count` replicas acknowledging the stream up to `offset` (no keys).
    Replicas {
        offset: u64,
        count: usize,
    },
}

impl Awaits {
    fn satisfied_by(self, value: &Value) -> bool {
        match self {
            Awaits::List => value.as_list().is_some(),
            Awaits::SortedSet => value.as_zset().is_some(),
            Awaits::Replicas { .. } => false,
        }
    }
}

/// What a blocking command asks for when it has to wait.
#[derive(Debug)]
pub struct BlockRequest {
    pub keys: Vec<Bytes>,
    /// None waits forever.
    pub timeout: Option<Duration>,
    pub awaits: Awaits,
}

/// A client waiting in the registry.
struct Parked {
    client: Box<ClientState>,
    args: Vec<Bytes>,
    db: usize,
    keys: Vec<Bytes>,
    awaits: Awaits,
}

/// Every blocked client, by id.
#[derive(Default)]
pub struct Blocked {
    parked: HashMap<u64, Parked>,
    /// Set while ready keys are being served, so the commands re-run for blocked clients do
    /// not start a nested round (the outer round picks up the keys they make ready).
    serving: bool,
    /// Clients served in the current round, sent back to their connections once the
    /// round's effects are in the append-only file (a reply never precedes its effect there).
    served: Vec<(Box<ClientState>, Vec<u8>)>,
}

impl Blocked {
    /// INFO `blocked_clients`.
    pub fn len(&self) -> usize {
        self.parked.len()
    }

    pub fn is_empty(&self) -> bool {
        self.parked.is_empty()
    }

    pub fn contains(&self, client_id: u64) -> bool {
        self.parked.contains_key(&client_id)
    }
}

/// Parks `client`, whose command `args` left `request`, until data arrives for it.
pub fn park(
    state: &mut ServerState,
    client: Box<ClientState>,
    args: Vec<Bytes>,
    request: BlockRequest,
) {
    let id = client.id;
    let db = client.db;
    for key in &request.keys {
        state.dbs[db].add_waiter(key, id);
    }
    if let Some(entry) = state.clients.get_mut(&id) {
        entry.sync_from(&client);
        entry.blocked = true;
    }
    state.blocked.parked.insert(
        id,
        Parked {
            client,
            args,
            db,
            keys: request.keys,
            awaits: request.awaits,
        },
    );
}

/// Takes a client out of the registry and out of every key queue it waits in.
fn unpark(state: &mut ServerState, client_id: u64) -> Option<Parked> {
    let parked = state.blocked.parked.remove(&client_id)?;
    for key in &parked.keys {
        state.dbs[parked.db].remove_waiter(key, client_id);
    }
    if let Some(entry) = state.clients.get_mut(&client_id) {
        entry.blocked = false;
    }
    Some(parked)
}

/// Gives a parked client's state back to its connection, which is closing.
pub fn take_back(state: &mut ServerState, client_id: u64) -> Option<Box<ClientState>> {
    unpark(state, client_id).map(|p| p.client)
}

/// How a client leaves the registry without being served.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Release {
    /// The timeout passed (or CLIENT UNBLOCK ... TIMEOUT): a null reply.
    Timeout,
    /// CLIENT UNBLOCK ... ERROR.
    Error,
}

/// Releases a parked client without data, writing its reply into `out`. Returns its state, or
/// None if it is not parked (it was served or released a moment ago).
pub fn release(
    state: &mut ServerState,
    client_id: u64,
    how: Release,
    out: &mut Vec<u8>,
) -> Option<Box<ClientState>> {
    let parked = unpark(state, client_id)?;
    let client = parked.client;
    let mut reply = RespWriter::new(out, client.protocol);
    match how {
        // WAIT answers how many replicas got there in time.
        Release::Timeout => match parked.awaits {
            Awaits::Replicas { offset, .. } => {
                reply.integer(state.replication.acked(offset) as i64)
            }
            _ => reply.null_array(),
        },
        Release::Error => {
            let msg = "UNBLOCKED client unblocked via CLIENT UNBLOCK";
            state.stats.record_error(msg);
            reply.error(msg);
        }
    }
    // The command is accounted for once, when it stops waiting (as in Redis).
    commands::record_released_call(state, &parked.args, how == Release::Error);
    Some(client)
}

/// CLIENT UNBLOCK: releases a parked client and sends it back to its connection. False if the
/// client is not blocked.
pub fn unblock(state: &mut ServerState, client_id: u64, how: Release) -> bool {
    let mut out = Vec::new();
    let Some(client) = release(state, client_id, how, &mut out) else {
        return false;
    };
    resume(state, client, out);
    true
}

fn resume(state: &mut ServerState, client: Box<ClientState>, reply: Vec<u8>) {
    if state.blocked.serving {
        state.blocked.served.push((client, reply));
        return;
    }
    if let Some(entry) = state.clients.get(&client.id) {
        // If the connection is gone its task already took the client back; nothing to do.
        let _ = entry.tx.send(Outbound::Resumed(client, reply));
    }
}

/// Serves the clients waiting on keys written since the last call. Runs after every command;
/// cheap when nobody is blocked.
pub fn serve_ready_keys(state: &mut ServerState) {
    if state.blocked.is_empty() || state.blocked.serving {
        return;
    }
    state.blocked.serving = true;
    loop {
        let mut served_any_key = false;
        for db in 0..state.dbs.len() {
            for key in state.dbs[db].take_ready() {
                served_any_key = true;
                serve_key(state, db, &key);
            }
        }
        if !served_any_key {
            break;
        }
    }
    state.blocked.serving = false;
    // Keys found expired while looking for data are deleted now; replicas must hear of it.
    crate::notify::drain_db_events(state);
    if state.propagating() {
        crate::replication::flush(state);
    }
    crate::replication::write_batch_effects(state);
    for (client, reply) in std::mem::take(&mut state.blocked.served) {
        resume(state, client, reply);
    }
}

/// Serves the clients waiting on one key, oldest first, while it holds what they wait for.
fn serve_key(state: &mut ServerState, db: usize, key: &[u8]) {
    for client_id in state.dbs[db].waiters(key) {
        let Some(awaits) = state.blocked.parked.get(&client_id).map(|p| p.awaits) else {
            continue;
        };
        // The real clock, not the writer's frozen one: a key that expired meanwhile (say,
        // during a slow transaction) serves nobody.
        let now = crate::time::unix_ms();
        match state.dbs[db].peek(key, now) {
            None => break,
            // Another type: clients waiting for that type may still be served.
            Some(value) if !awaits.satisfied_by(value) => continue,
            Some(_) => {}
        }
        let Some(parked) = unpark(state, client_id) else {
            continue;
        };
        let Parked {
            mut client, args, ..
        } = parked;
        let mut out = Vec::new();
        let mut clock = BatchClock::now();
        commands::process_request(state, &mut client, &args, &mut out, &mut clock);
        match client.block_request.take() {
            // The command found nothing after all: it keeps its turn on this key.
            Some(request) => {
                park(state, client, args, request);
                state.dbs[db].readd_waiter_first(key, client_id);
            }
            None => resume(state, client, out),
        }
    }
}

/// Answers the clients in WAIT whose replicas have now acknowledged enough (after a REPLCONF
/// ACK).
pub fn serve_replica_waits(state: &mut ServerState) {
    let ready: Vec<(u64, usize)> = state
        .blocked
        .parked
        .iter()
        .filter_map(|(&id, parked)| match parked.awaits {
            Awaits::Replicas { offset, count } => {
                let acked = state.replication.acked(offset);
                (acked >= count).then_some((id, acked))
            }
            _ => None,
        })
        .collect();
    for (id, acked) in ready {
        let Some(parked) = unpark(state, id) else {
            continue;
        };
        let mut out = Vec::new();
        RespWriter::new(&mut out, parked.client.protocol).integer(acked as i64);
        commands::record_released_call(state, &parked.args, false);
        resume(state, parked.client, out);
    }
}

/// Re-flags every key someone waits on in `db` (SWAPDB brought in new contents).
pub fn flag_waited_keys(state: &mut ServerState, db: usize) {
    if !state.blocked.is_empty() {
        state.dbs[db].flag_all_waited_keys();
    }
}
