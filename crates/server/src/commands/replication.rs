//! Replication handshake commands: SYNC, PSYNC, REPLCONF. A client that sends SYNC or PSYNC
//! gets a snapshot of the dataset and then the stream of write effects
//! (see `crate::replication`).

use super::spec::flags::*;
use super::{CommandSpec, Ctx};
use crate::replication::primary;
use moonkv_protocol::ReplySink;

pub static COMMANDS: &[CommandSpec] = &[
    CommandSpec::new(
        "sync",
        1,
        ADMIN | NOSCRIPT | NO_MULTI | NO_ASYNC_LOADING,
        (0, 0, 0),
        "",
        sync,
    )
    .group("server")
    .summary("Full resynchronisation for replicas", "1.0.0"),
    CommandSpec::new(
        "psync",
        -3,
        ADMIN | NOSCRIPT | NO_MULTI | NO_ASYNC_LOADING,
        (0, 0, 0),
        "",
        psync,
    )
    .group("server")
    .summary("Resynchronisation for replicas", "2.8.0"),
    CommandSpec::new(
        "replicaof",
        3,
        ADMIN | NOSCRIPT | STALE | NO_ASYNC_LOADING,
        (0, 0, 0),
        "",
        replicaof,
    )
    .group("server")
    .summary(
        "Make this server a replica of another, or a primary again",
        "5.0.0",
    ),
    CommandSpec::new(
        "slaveof",
        3,
        ADMIN | NOSCRIPT | STALE | NO_ASYNC_LOADING,
        (0, 0, 0),
        "",
        replicaof,
    )
    .group("server")
    .summary("Old name of REPLICAOF", "1.0.0"),
    CommandSpec::new(
        "replconf",
        -1,
        ADMIN | NOSCRIPT | LOADING | STALE | ALLOW_BUSY,
        (0, 0, 0),
        "",
        replconf,
    )
    .group("server")
    .summary("Replication handshake settings", "3.0.0"),
    CommandSpec::new(
        "role",
        1,
        NOSCRIPT | LOADING | STALE | FAST,
        (0, 0, 0),
        "",
        role,
    )
    .group("server")
    .summary("Return the role of the instance in the context of replication", "2.8.12"),
    CommandSpec::new("wait", 3, NOSCRIPT, (0, 0, 0), "", wait)
        .group("generic")
        .summary(
            "Wait for the synchronous replication of all the write commands sent in the context of the current connection",
            "3.0.0",
        ),
];

/// Redis's NO_ASYNC_LOADING flag has no effect here: there is no asynchronous loading.
const NO_ASYNC_LOADING: u32 = 0;

/// A replica whose own link is down has nothing current to give.
fn refuse_while_unlinked(ctx: &mut Ctx) -> bool {
    let unlinked = ctx
        .state
        .replication
        .primary
        .as_ref()
        .is_some_and(|l| l.state != crate::replication::link::LinkState::Connected);
    if unlinked {
        ctx.error("NOMASTERLINK Can't SYNC while not connected with my master");
    }
    unlinked
}

/// A primary that never had replicas starts a history of its own for them, with a backlog.
fn ensure_backlog(ctx: &mut Ctx) {
    let replication = &mut ctx.state.replication;
    if replication.backlog.is_none() {
        if replication.replicas.is_empty() && replication.primary.is_none() {
            replication.replid = crate::replication::new_replid();
            replication.replid2 = crate::replication::NO_REPLID.to_string();
            replication.second_replid_offset = -1;
        }
        crate::replication::ensure_backlog(ctx.state);
        crate::log::notice(&format!(
            "Replication backlog created, my new replication IDs are '{}' and '{}'",
            ctx.state.replication.replid, ctx.state.replication.replid2
        ));
    }
}

fn sync(ctx: &mut Ctx) {
    if ctx.state.replication.is_replica(ctx.client.id) || refuse_while_unlinked(ctx) {
        return;
    }
    ensure_backlog(ctx);
    primary::request_full_sync(ctx.state, ctx.client.id, &ctx.client.addr, false);
}

/// PSYNC replid offset: resumes from `offset` when it is in this server's history and still in
/// the backlog (+CONTINUE), else a full resync (+FULLRESYNC and a snapshot).
fn psync(ctx: &mut Ctx) {
    if ctx.state.replication.is_replica(ctx.client.id) || refuse_while_unlinked(ctx) {
        return;
    }
    let asked_id = String::from_utf8_lossy(ctx.arg(1)).into_owned();
    let asked_offset = moonkv_protocol::number::parse_i64(ctx.arg(2));
    if let Some(offset) = asked_offset.filter(|&o| o > 0) {
        if try_partial(ctx, &asked_id, offset as u64) {
            ctx.state.replication.sync_partial_ok += 1;
            return;
        }
    }
    if asked_id != "?" {
        ctx.state.replication.sync_partial_err += 1;
    }
    ensure_backlog(ctx);
    crate::log::notice(&format!(
        "Full resync requested by replica {}",
        ctx.client.addr
    ));
    primary::request_full_sync(ctx.state, ctx.client.id, &ctx.client.addr, true);
}

fn try_partial(ctx: &mut Ctx, asked_id: &str, offset: u64) -> bool {
    // The backlog already holds the stream not yet handed out: the others get it now, this
    // replica from the backlog.
    crate::replication::flush_outbox(ctx.state);
    let replication = &ctx.state.replication;
    let same_history = asked_id == replication.replid
        || (asked_id == replication.replid2 && offset as i64 <= replication.second_replid_offset);
    if !same_history {
        if asked_id != "?" {
            crate::log::notice(&format!(
                "Partial resynchronization not accepted: Replication ID mismatch (Replica asked for '{}', my replication IDs are '{}' and '{}')",
                asked_id, replication.replid, replication.replid2
            ));
        }
        return false;
    }
    let Some(missing) = replication.backlog.as_ref().and_then(|b| b.since(offset)) else {
        crate::log::notice(&format!(
            "Unable to partial resync with replica {} for lack of backlog (Replica request was: {}).",
            ctx.client.addr, offset
        ));
        return false;
    };
    let mut bytes = format!("+CONTINUE {}\r\n", replication.replid).into_bytes();
    let sent = missing.len();
    bytes.extend_from_slice(&missing);
    ctx.state.send_to(ctx.client.id, bytes);
    let now = ctx.now_ms;
    primary::register_replica(ctx.state, ctx.client.id, &ctx.client.addr, offset - 1, now);
    crate::log::notice(&format!(
        "Partial resynchronization request from {} accepted. Sending {} bytes of backlog starting from offset {}.",
        ctx.client.addr, sent, offset
    ));
    true
}

fn replconf(ctx: &mut Ctx) {
    if ctx.arg_is(1, "ack") {
        // Acknowledgements are not answered, as in Redis.
        if let Some(offset) = moonkv_protocol::number::parse_i64(ctx.arg(2)) {
            let id = ctx.client.id;
            let now = ctx.now_ms;
            if let Some(replica) = ctx
                .state
                .replication
                .replicas
                .iter_mut()
                .find(|r| r.client_id == id)
            {
                replica.ack_offset = replica.ack_offset.max(offset.max(0) as u64);
                replica.ack_ms = now;
                replica.acks = true;
            }
            crate::blocking::serve_replica_waits(ctx.state);
        }
        return;
    }
    if ctx.arg_is(1, "getack") {
        // Answered by a replica's link to its primary (see `replication::link`).
        return;
    }
    if ctx.args.len().is_multiple_of(2) {
        return ctx.syntax_error();
    }
    let mut i = 1;
    while i < ctx.args.len() {
        if ctx.arg_is(i, "listening-port") {
            match moonkv_protocol::number::parse_i64(ctx.arg(i + 1)) {
                Some(port) if (0..=65535).contains(&port) => {
                    let id = ctx.client.id;
                    ctx.state
                        .replication
                        .announced_ports
                        .insert(id, port as u16);
                }
                _ => return ctx.error("ERR value is not an integer or out of range"),
            }
        }
        i += 2;
    }
    ctx.ok();
}

/// REPLICAOF host port | NO ONE.
fn replicaof(ctx: &mut Ctx) {
    if ctx.arg_is(1, "no") && ctx.arg_is(2, "one") {
        if ctx.state.replication.primary.is_some() {
            crate::replication::link::stop(ctx.state);
            crate::log::notice(&format!(
                "MASTER MODE enabled (user request from '{}')",
                ctx.client.addr
            ));
        }
        return ctx.ok();
    }
    let port = match moonkv_protocol::number::parse_i64(ctx.arg(2)) {
        Some(p) if (0..=65535).contains(&p) => p as u16,
        _ => return ctx.error("ERR Invalid master port"),
    };
    let host = String::from_utf8_lossy(ctx.arg(1)).into_owned();
    if ctx
        .state
        .replication
        .primary
        .as_ref()
        .is_some_and(|l| l.host.eq_ignore_ascii_case(&host) && l.port == port)
    {
        return ctx.simple("OK Already connected to specified master");
    }
    crate::log::notice(&format!(
        "REPLICAOF {}:{} enabled (user request from '{}')",
        host, port, ctx.client.addr
    ));
    // Effects of the command that made us a replica (and of the rest of its transaction) are
    // not ours to propagate any more.
    ctx.state.replication.pending.clear();
    crate::replication::link::start(ctx.state, host, port, false);
    ctx.ok();
}

/// ROLE: master with its replicas, or replica with its primary and link state.
fn role(ctx: &mut Ctx) {
    let replication = &ctx.state.replication;
    match &replication.primary {
        None => {
            let offset = replication.offset as i64;
            let replicas: Vec<(String, String, String)> = replication
                .replicas
                .iter()
                .map(|r| (r.ip.clone(), r.port.to_string(), r.ack_offset.to_string()))
                .collect();
            ctx.array(3);
            ctx.bulk(b"master");
            ctx.integer(offset);
            ctx.array(replicas.len());
            for (ip, port, offset) in replicas {
                ctx.array(3);
                ctx.bulk(ip.as_bytes());
                ctx.bulk(port.as_bytes());
                ctx.bulk(offset.as_bytes());
            }
        }
        Some(link) => {
            let host = link.host.clone();
            let port = link.port as i64;
            let state = link.state;
            let offset = if link.fresh && state != crate::replication::link::LinkState::Connected {
                -1
            } else {
                replication.offset as i64
            };
            ctx.array(5);
            ctx.bulk(b"slave");
            ctx.bulk(host.as_bytes());
            ctx.integer(port);
            ctx.bulk(state.role_word().as_bytes());
            ctx.integer(offset);
        }
    }
}

/// WAIT numreplicas timeout: blocks until that many replicas acknowledged this client's
/// writes, or the timeout (milliseconds, 0 for none) passes; replies how many did.
fn wait(ctx: &mut Ctx) {
    if ctx.state.replication.primary.is_some() {
        return ctx.error("ERR WAIT cannot be used with replica instances. Please also note that since Redis 4.0 if a replica is configured to be writable (which is not the default) writes to replicas are just local and are not propagated.");
    }
    let Some(wanted) = ctx.arg_i64(1) else {
        return;
    };
    let timeout = match moonkv_protocol::number::parse_i64(ctx.arg(2)) {
        None => return ctx.error("ERR timeout is not an integer or out of range"),
        Some(t) if t < 0 => return ctx.error("ERR timeout is negative"),
        Some(t) => t,
    };
    let offset = ctx.client.write_offset;
    let acked = ctx.state.replication.acked(offset);
    if acked as i64 >= wanted || !ctx.may_block() {
        return ctx.integer(acked as i64);
    }
    // Ask the replicas where they are now rather than wait for their next second.
    let mut getack = Vec::new();
    crate::replication::encode(&mut getack, &[b"REPLCONF", b"GETACK", b"*"]);
    crate::replication::send(ctx.state, getack);
    let timeout = (timeout > 0).then(|| std::time::Duration::from_millis(timeout as u64));
    ctx.block(
        &[],
        timeout,
        crate::blocking::Awaits::Replicas {
            offset,
            count: wanted.max(0) as usize,
        },
    );
}

/// Forgets a client that was a replica.
pub fn detach(state: &mut crate::state::ServerState, client_id: u64) {
    state.replication.announced_ports.remove(&client_id);
    primary::forget(state, client_id);
    let before = state.replication.replicas.len();
    state
        .replication
        .replicas
        .retain(|r| r.client_id != client_id);
    if state.replication.replicas.len() != before {
        if state.replication.replicas.is_empty() {
            state.replication.no_replicas_since_ms = crate::time::unix_ms();
        }
        crate::notify::apply_to_dbs(state);
    }
}
