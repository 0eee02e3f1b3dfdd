//! Persistence commands: SAVE, BGSAVE, BGREWRITEAOF, LASTSAVE.

use super::spec::flags::*;
use super::{CommandSpec, Ctx};
use crate::persist::snapshot;
use moonkv_protocol::ReplySink;

pub static COMMANDS: &[CommandSpec] = &[
    CommandSpec::new("save", 1, ADMIN | NOSCRIPT | NO_MULTI, (0, 0, 0), "", save).group("server"),
    CommandSpec::new("bgsave", -1, ADMIN | NOSCRIPT, (0, 0, 0), "", bgsave).group("server"),
    CommandSpec::new(
        "bgrewriteaof",
        1,
        ADMIN | NOSCRIPT,
        (0, 0, 0),
        "",
        bgrewriteaof,
    )
    .group("server"),
    CommandSpec::new(
        "lastsave",
        1,
        LOADING | STALE | FAST | RANDOM,
        (0, 0, 0),
        "admin dangerous",
        lastsave,
    )
    .group("server"),
];

fn save(ctx: &mut Ctx) {
    if ctx.state.persistence.bgsave.is_some() {
        return ctx.error("ERR Background save already in progress");
    }
    match snapshot::save(ctx.state) {
        Ok(()) => ctx.ok(),
        Err(_) => ctx.error("ERR"),
    }
}

/// BGSAVE [SCHEDULE]. Inside a transaction the save is scheduled for after it, as in Redis
/// (a save started in the middle would still capture the transaction's complete effects
/// here, but Redis's reply is what clients expect).
fn bgsave(ctx: &mut Ctx) {
    match ctx.args.len() {
        1 => {}
        2 if ctx.arg_is(1, "schedule") => {}
        _ => return ctx.syntax_error(),
    }
    if ctx.state.persistence.bgsave.is_some() {
        return ctx.error("ERR Background save already in progress");
    }
    let schedule = ctx.args.len() == 2;
    if ctx.state.replication.transfer.is_some() {
        if schedule {
            ctx.state.persistence.bgsave_scheduled = true;
            return ctx.simple("Background saving scheduled");
        }
        return ctx.error("ERR Background save already in progress");
    }
    if ctx.state.aof.rewrite.is_some() && !schedule && !ctx.nested {
        return ctx.error("ERR Another child process is active (AOF?): can't BGSAVE right now. Use BGSAVE SCHEDULE in order to schedule a BGSAVE whenever possible.");
    }
    if ctx.nested || ctx.state.aof.rewrite.is_some() {
        ctx.state.persistence.bgsave_scheduled = true;
        return ctx.simple("Background saving scheduled");
    }
    match snapshot::start_background_save(ctx.state) {
        Ok(()) => ctx.simple("Background saving started"),
        Err(reason) => ctx.error(&format!("ERR {}", reason)),
    }
}

/// BGREWRITEAOF: writes a new base of the append-only file in the background (also with the
/// AOF off, as in Redis); scheduled after a BGSAVE under way.
fn bgrewriteaof(ctx: &mut Ctx) {
    match crate::persist::aof::start_rewrite(ctx.state) {
        Ok(crate::persist::aof::RewriteStart::Started) => {
            ctx.simple("Background append only file rewriting started")
        }
        Ok(crate::persist::aof::RewriteStart::Scheduled) => {
            ctx.simple("Background append only file rewriting scheduled")
        }
        Err(reason) => ctx.error(&format!("ERR {}", reason)),
    }
}

fn lastsave(ctx: &mut Ctx) {
    let t = ctx.state.persistence.last_save_unix;
    ctx.integer(t);
}
