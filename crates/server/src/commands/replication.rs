//! Replication handshake commands: SYNC, PSYNC, REPLCONF. A client that sends SYNC or PSYNC
//! gets a snapshot of the dataset and then the stream of write effects
//! (see `crate::replication`).

use super::spec::flags::*;
use super::{CommandSpec, Ctx};
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
];

/// Redis's NO_ASYNC_LOADING flag has no effect here: there is no asynchronous loading.
const NO_ASYNC_LOADING: u32 = 0;

/// Sends the snapshot and registers the client as a replica; `preamble` precedes it (PSYNC's
/// +FULLRESYNC line).
fn attach(ctx: &mut Ctx, preamble: Option<String>) {
    if ctx.state.replication.replicas.contains(&ctx.client.id) {
        return;
    }
    let libraries = ctx.state.scripting.libraries.libraries.values();
    let snapshot = moonkv_persistence::rdb::write_snapshot(
        &ctx.state.dbs,
        libraries.map(|l| &l.code[..]),
        crate::REDIS_VERSION,
        ctx.now_ms,
    );
    let mut bytes = preamble.map(String::into_bytes).unwrap_or_default();
    bytes.extend_from_slice(format!("${}\r\n", snapshot.len()).as_bytes());
    bytes.extend_from_slice(&snapshot);
    let id = ctx.client.id;
    // The snapshot goes through the client's outbound channel so everything streamed after it
    // arrives in order.
    ctx.state.send_to(id, bytes);
    ctx.state.replication.replicas.push(id);
    ctx.state.replication.selected_db = None;
    crate::notify::apply_to_dbs(ctx.state);
    crate::log::notice(&format!(
        "Replica {} asks for synchronization",
        ctx.client.addr
    ));
}

fn sync(ctx: &mut Ctx) {
    attach(ctx, None);
}

fn psync(ctx: &mut Ctx) {
    let line = format!(
        "+FULLRESYNC {} {}\r\n",
        super::info::replication_id(),
        ctx.state.replication.offset
    );
    attach(ctx, Some(line));
}

fn replconf(ctx: &mut Ctx) {
    // Acknowledgements from replicas are not answered, as in Redis.
    if ctx.arg_is(1, "ack") || ctx.arg_is(1, "getack") {
        return;
    }
    if ctx.args.len() % 2 == 0 {
        return ctx.syntax_error();
    }
    ctx.ok();
}

/// REPLICAOF host port | NO ONE. Switching to replica mode makes the server refuse writes
/// (`replica-read-only`) and stop propagating; fetching the primary's data is not implemented
/// yet, so the link stays down (INFO reports `master_link_status:down`).
fn replicaof(ctx: &mut Ctx) {
    if ctx.arg_is(1, "no") && ctx.arg_is(2, "one") {
        if ctx.state.replication.primary.take().is_some() {
            crate::log::notice("MASTER MODE enabled (user request)");
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
        .is_some_and(|(h, p)| h.eq_ignore_ascii_case(&host) && *p == port)
    {
        return ctx.simple("OK Already connected to specified master");
    }
    crate::log::notice(&format!(
        "REPLICAOF {}:{} enabled (user request from '{}')",
        host, port, ctx.client.addr
    ));
    ctx.state.replication.primary = Some((host, port));
    // Effects of the command that made us a replica (and of the rest of its transaction) are
    // not ours to propagate any more.
    ctx.state.replication.pending.clear();
    ctx.ok();
}

/// Forgets a client that was a replica.
pub fn detach(state: &mut crate::state::ServerState, client_id: u64) {
    let before = state.replication.replicas.len();
    state.replication.replicas.retain(|&id| id != client_id);
    if state.replication.replicas.len() != before {
        crate::notify::apply_to_dbs(state);
    }
}
