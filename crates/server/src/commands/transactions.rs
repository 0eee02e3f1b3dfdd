//! Transactions: MULTI, EXEC, DISCARD, WATCH, UNWATCH.
//!
//! Queued commands run back to back under the server lock, so nothing interleaves with them.
//! WATCH registers the client in each database's watch list; any modification of a watched key
//! raises the client's flag and EXEC then answers a null reply instead of running.

use super::spec::flags::*;
use super::{CommandSpec, Ctx};
use crate::client::{ClientState, MultiState};
use crate::state::ServerState;
use moonkv_protocol::ReplySink;
use std::sync::atomic::Ordering;

pub static COMMANDS: &[CommandSpec] = &[
    CommandSpec::new(
        "multi",
        1,
        NOSCRIPT | LOADING | STALE | FAST | ALLOW_BUSY,
        (0, 0, 0),
        "transaction",
        multi,
    )
    .group("transactions")
    .summary("Starts a transaction", "1.2.0"),
    CommandSpec::new(
        "exec",
        1,
        NOSCRIPT | LOADING | STALE | SKIP_SLOWLOG | PROPAGATES_INNER,
        (0, 0, 0),
        "transaction",
        exec,
    )
    .group("transactions")
    .summary("Executes all commands issued after MULTI", "1.2.0"),
    CommandSpec::new(
        "discard",
        1,
        NOSCRIPT | LOADING | STALE | FAST | ALLOW_BUSY,
        (0, 0, 0),
        "transaction",
        discard,
    )
    .group("transactions")
    .summary("Discards all commands issued after MULTI", "2.0.0"),
    CommandSpec::new(
        "watch",
        -2,
        NOSCRIPT | LOADING | STALE | FAST | ALLOW_BUSY,
        (1, -1, 1),
        "transaction",
        watch,
    )
    .group("transactions")
    .summary(
        "Monitors changes to keys to determine execution of a MULTI/EXEC block",
        "2.2.0",
    ),
    CommandSpec::new(
        "unwatch",
        1,
        NOSCRIPT | LOADING | STALE | FAST | ALLOW_BUSY,
        (0, 0, 0),
        "transaction",
        unwatch,
    )
    .group("transactions")
    .summary("Forgets about all watched keys", "2.2.0"),
];

fn multi(ctx: &mut Ctx) {
    if ctx.client.multi.is_some() {
        return ctx.error("ERR MULTI calls can not be nested");
    }
    ctx.client.multi = Some(MultiState::default());
    ctx.ok();
}

/// Leaves MULTI state and forgets WATCHes (DISCARD, RESET, after EXEC).
pub fn discard_transaction(state: &mut ServerState, client: &mut ClientState) {
    client.multi = None;
    unwatch_all(state, client);
}

/// Removes all of a client's WATCHes and clears its dirty flag.
pub fn unwatch_all(state: &mut ServerState, client: &mut ClientState) {
    for (db, key) in client.watched.drain(..) {
        if let Some(db) = state.dbs.get_mut(db) {
            db.unwatch(&key, client.id);
        }
    }
    client.watch_dirty.store(false, Ordering::Relaxed);
}

fn discard(ctx: &mut Ctx) {
    if ctx.client.multi.is_none() {
        return ctx.error("ERR DISCARD without MULTI");
    }
    discard_transaction(ctx.state, ctx.client);
    ctx.ok();
}

/// True if a watched key changed or expired since WATCH.
fn watch_broken(ctx: &Ctx) -> bool {
    if ctx.client.watch_dirty.load(Ordering::Relaxed) {
        return true;
    }
    ctx.client.watched.iter().any(|(db, key)| {
        ctx.state.dbs[*db].watched_key_expired_since_watch(key, ctx.client.id, ctx.now_ms)
    })
}

fn exec(ctx: &mut Ctx) {
    let Some(transaction) = ctx.client.multi.take() else {
        return ctx.error("ERR EXEC without MULTI");
    };
    if transaction.aborted {
        unwatch_all(ctx.state, ctx.client);
        return ctx.error("EXECABORT Transaction discarded because of previous errors.");
    }
    if watch_broken(ctx) {
        unwatch_all(ctx.state, ctx.client);
        return ctx.null_array();
    }
    // Unwatch first: the transaction's own writes must not mark the client dirty.
    unwatch_all(ctx.state, ctx.client);
    ctx.array(transaction.queued.len());
    for queued in &transaction.queued {
        ctx.call(queued.index, queued.spec, &queued.args);
    }
}

fn watch(ctx: &mut Ctx) {
    if ctx.client.multi.is_some() {
        return ctx.error("ERR WATCH inside MULTI is not allowed");
    }
    let db_index = ctx.client.db;
    for key in &ctx.args[1..] {
        if ctx
            .client
            .watched
            .iter()
            .any(|(d, k)| *d == db_index && k.as_slice() == &key[..])
        {
            continue;
        }
        let flag = ctx.client.watch_dirty.clone();
        ctx.state.dbs[db_index].watch(key, ctx.client.id, &flag, ctx.now_ms);
        ctx.client.watched.push((db_index, key.to_vec()));
    }
    ctx.ok();
}

fn unwatch(ctx: &mut Ctx) {
    unwatch_all(ctx.state, ctx.client);
    ctx.ok();
}
