//! Server administration: CONFIG, INFO, CLIENT, DBSIZE, FLUSHDB, FLUSHALL, SHUTDOWN, MONITOR,
//! TIME.

use super::spec::flags::*;
use super::{CommandSpec, Ctx};
use crate::client::ClientState;
use crate::state::ServerState;
use bytes::Bytes;
use moonkv_protocol::ReplySink;

pub static COMMANDS: &[CommandSpec] = &[
    CommandSpec::new("config", -2, 0, (0, 0, 0), "", container_help)
        .group("server")
        .subcommands(CONFIG_SUBCOMMANDS),
    CommandSpec::new("dbsize", 1, READONLY | FAST, (0, 0, 0), "keyspace", dbsize).group("server"),
    CommandSpec::new(
        "flushdb",
        -1,
        WRITE,
        (0, 0, 0),
        "keyspace dangerous",
        flushdb,
    )
    .group("server"),
    CommandSpec::new(
        "flushall",
        -1,
        WRITE,
        (0, 0, 0),
        "keyspace dangerous",
        flushall,
    )
    .group("server"),
    CommandSpec::new(
        "shutdown",
        -1,
        ADMIN | NOSCRIPT | LOADING | STALE | NO_MULTI | ALLOW_BUSY,
        (0, 0, 0),
        "",
        shutdown,
    )
    .group("server"),
    CommandSpec::new(
        "monitor",
        1,
        ADMIN | NOSCRIPT | LOADING | STALE,
        (0, 0, 0),
        "",
        monitor,
    )
    .group("server"),
    CommandSpec::new(
        "time",
        1,
        LOADING | STALE | FAST | RANDOM,
        (0, 0, 0),
        "",
        time,
    )
    .group("server"),
];

static CONFIG_SUBCOMMANDS: &[CommandSpec] = &[
    CommandSpec::new(
        "config|get",
        -3,
        ADMIN | NOSCRIPT | LOADING | STALE,
        (0, 0, 0),
        "",
        config_get,
    )
    .group("server"),
    CommandSpec::new(
        "config|set",
        -4,
        ADMIN | NOSCRIPT | LOADING | STALE,
        (0, 0, 0),
        "",
        config_set,
    )
    .group("server"),
    CommandSpec::new(
        "config|resetstat",
        2,
        ADMIN | NOSCRIPT | LOADING | STALE,
        (0, 0, 0),
        "",
        config_resetstat,
    )
    .group("server"),
    CommandSpec::new(
        "config|rewrite",
        2,
        ADMIN | NOSCRIPT | LOADING | STALE,
        (0, 0, 0),
        "",
        config_rewrite,
    )
    .group("server"),
    CommandSpec::new(
        "config|help",
        2,
        LOADING | STALE,
        (0, 0, 0),
        "",
        config_help,
    )
    .group("server"),
];

/// Handler of container commands (CONFIG, CLIENT, ...): only reached if a subcommand was not
/// resolved, which the dispatcher already reports, so this is a safety net.
pub fn container_help(ctx: &mut Ctx) {
    let msg = format!(
        "ERR unknown subcommand or wrong number of arguments for '{}'",
        ctx.spec.name
    );
    ctx.error(&msg);
}

/// Redis's reply to a subcommand given the wrong arguments, naming it as the client sent it.
pub fn subcommand_syntax_error(ctx: &mut Ctx) {
    let parent = ctx
        .spec
        .name
        .split('|')
        .next()
        .unwrap_or(ctx.spec.name)
        .to_ascii_uppercase();
    let sub = String::from_utf8_lossy(&ctx.args[1][..ctx.args[1].len().min(128)]).into_owned();
    let msg = format!(
        "ERR unknown subcommand or wrong number of arguments for '{sub}'. Try {parent} HELP."
    );
    ctx.error(&msg);
}

/// Replies to `<CMD> HELP` in Redis's shape: a title line, the given lines, and HELP itself.
pub fn reply_help(ctx: &mut Ctx, command: &str, lines: &[&str]) {
    ctx.array(lines.len() + 3);
    ctx.simple(&format!(
        "{} <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        command
    ));
    for line in lines {
        ctx.simple(line);
    }
    ctx.simple("HELP");
    ctx.simple("    Print this help.");
}

/// Client names may not contain spaces, newlines or other special characters.
pub fn validate_client_name(name: &Bytes) -> Result<(), &'static str> {
    if name.iter().any(|&c| c < b'!' || c > b'~') {
        return Err("ERR Client names cannot contain spaces, newlines or special characters.");
    }
    Ok(())
}

/// Sends the command line to every MONITOR client, in Redis's format:
/// `+1339518083.107412 [0 127.0.0.1:60866] "keys" "*"`.
pub fn feed_monitors(state: &mut ServerState, client: &ClientState, args: &[Bytes]) {
    let us = crate::time::unix_us();
    // Commands a script runs show as coming from "lua", as in Redis.
    let origin = if client.in_script {
        "lua"
    } else {
        client.addr.as_str()
    };
    let mut line = format!(
        "+{}.{:06} [{} {}]",
        us / 1_000_000,
        us % 1_000_000,
        client.db,
        origin
    );
    for a in args {
        line.push_str(" \"");
        for &b in a.iter() {
            match b {
                b'\\' => line.push_str("\\\\"),
                b'"' => line.push_str("\\\""),
                b'\n' => line.push_str("\\n"),
                b'\r' => line.push_str("\\r"),
                b'\t' => line.push_str("\\t"),
                7 => line.push_str("\\a"),
                8 => line.push_str("\\b"),
                32..=126 => line.push(b as char),
                _ => line.push_str(&format!("\\x{:02x}", b)),
            }
        }
        line.push('"');
    }
    line.push_str("\r\n");
    let targets: Vec<u64> = state.monitors.iter().copied().collect();
    for id in targets {
        state.send_to(id, line.clone().into_bytes());
    }
}

fn config_get(ctx: &mut Ctx) {
    let patterns: Vec<&[u8]> = ctx.args[2..].iter().map(|a| &a[..]).collect();
    let pairs = ctx.state.config.matching(&patterns);
    ctx.map(pairs.len());
    for (name, value) in pairs {
        ctx.bulk(name.as_bytes());
        ctx.bulk(value.as_bytes());
    }
}

fn config_set(ctx: &mut Ctx) {
    if ctx.args.len() % 2 != 0 {
        return ctx.syntax_error();
    }
    // All or nothing, like Redis 7: every name is checked, then every value, before any is
    // applied. Errors name the parameter itself even when an alias was given.
    let mut directives: Vec<(&'static crate::config::Directive, String)> = Vec::new();
    for pair in ctx.args[2..].chunks(2) {
        let name = String::from_utf8_lossy(&pair[0]).into_owned();
        let Some(dir) = crate::config::find_directive(&name) else {
            return ctx.error(&format!(
                "ERR Unknown option or number of arguments for CONFIG SET - '{}'",
                name
            ));
        };
        if directives.iter().any(|(d, _)| d.name == dir.name) {
            return ctx.error(&format!(
                "ERR CONFIG SET failed (possibly related to argument '{}') - duplicate parameter",
                dir.name
            ));
        }
        directives.push((dir, String::from_utf8_lossy(&pair[1]).into_owned()));
    }
    let mut updated = ctx.state.config.clone();
    for (dir, value) in &directives {
        if let Err(reason) = updated.set(dir.name, value, false) {
            return ctx.error(&format!(
                "ERR CONFIG SET failed (possibly related to argument '{}') - {}",
                dir.name, reason
            ));
        }
    }
    // `dir` takes effect by changing the working directory, which can fail.
    if directives.iter().any(|(d, _)| d.name == "dir") {
        match crate::persist::enter_dir(updated.get("dir")) {
            Ok(absolute) => {
                let _ = updated.set("dir", &absolute, false);
            }
            Err(reason) => {
                return ctx.error(&format!(
                    "ERR CONFIG SET failed (possibly related to argument 'dir') - {}",
                    reason
                ));
            }
        }
    }
    let aof_was_on = ctx.state.config.get_bool("appendonly");
    let aof_on = updated.get_bool("appendonly");
    ctx.state.config = updated;
    ctx.state.refresh_settings();
    // `appendonly` takes effect by opening (with a first rewrite) or closing the file.
    if aof_on && !aof_was_on {
        if let Err(reason) = crate::persist::aof::turn_on(ctx.state) {
            let _ = ctx.state.config.set("appendonly", "no", false);
            return ctx.error(&format!(
                "ERR CONFIG SET failed (possibly related to argument 'appendonly') - {}",
                reason
            ));
        }
    } else if aof_was_on && !aof_on {
        crate::persist::aof::turn_off(ctx.state);
    }
    ctx.ok();
}

fn config_resetstat(ctx: &mut Ctx) {
    ctx.state.stats.reset();
    for db in ctx.state.dbs.iter_mut() {
        let dirty = db.stats.dirty;
        db.stats = Default::default();
        db.stats.dirty = dirty;
    }
    ctx.ok();
}

fn config_rewrite(ctx: &mut Ctx) {
    if ctx.state.config_file.is_none() {
        return ctx.error("ERR The server is running without a config file");
    }
    ctx.error("ERR Rewriting config file: not supported yet");
}

fn config_help(ctx: &mut Ctx) {
    reply_help(
        ctx,
        "CONFIG",
        &[
            "GET <pattern>",
            "    Return the values of the configuration parameters matching <pattern>.",
            "SET <directive> <value>",
            "    Set a configuration parameter to <value>.",
            "RESETSTAT",
            "    Reset the statistics shown by INFO.",
            "REWRITE",
            "    Write the running configuration back to the config file.",
        ],
    );
}

fn dbsize(ctx: &mut Ctx) {
    let n = ctx.db().len();
    ctx.integer(n as i64);
}

/// Parses the optional ASYNC|SYNC argument of FLUSHDB/FLUSHALL; None after replying an error.
fn flush_mode(ctx: &mut Ctx) -> Option<bool> {
    match ctx.args.len() {
        1 => Some(ctx.state.settings.lazyfree_user_flush),
        2 if ctx.arg_is(1, "async") => Some(true),
        2 if ctx.arg_is(1, "sync") => Some(false),
        _ => {
            ctx.syntax_error();
            None
        }
    }
}

/// Frees flushed contents, on the lazyfree thread when asked to (ASYNC).
fn dispose<T: Send + 'static>(ctx: &mut Ctx, contents: T, lazily: bool) {
    if lazily {
        ctx.state.lazyfree.free(contents);
    }
}

fn flushdb(ctx: &mut Ctx) {
    let Some(lazily) = flush_mode(ctx) else {
        return;
    };
    let now = ctx.now_ms;
    let contents = ctx.db().flush(now);
    dispose(ctx, contents, lazily);
    ctx.ok();
}

fn flushall(ctx: &mut Ctx) {
    let Some(lazily) = flush_mode(ctx) else {
        return;
    };
    // As in Redis: a background save of the old data is stopped (first, so its capture does
    // not keep the old data), and with save points the (now empty) dataset is saved at once,
    // so a restart does not bring the data back.
    if let Some(bgsave) = ctx.state.persistence.bgsave.take() {
        bgsave.abandon(ctx.state);
    }
    let now = ctx.now_ms;
    let contents: Vec<_> = ctx.state.dbs.iter_mut().map(|db| db.flush(now)).collect();
    dispose(ctx, contents, lazily);
    if !ctx.state.config.get("save").is_empty() {
        let saved = crate::persist::snapshot::save(ctx.state).is_ok();
        // The flush itself still counts as a change to replicate and persist, but the file
        // on disk already holds its outcome.
        ctx.state.server_dirty += 1;
        if saved {
            ctx.state.persistence.dirty_at_last_save += 1;
        }
    }
    ctx.ok();
}

fn shutdown(ctx: &mut Ctx) {
    let (mut nosave, mut save, mut force) = (false, false, false);
    for i in 1..ctx.args.len() {
        let opt = ctx.arg_lower(i);
        if !matches!(opt.as_str(), "nosave" | "save" | "now" | "force" | "abort") {
            return ctx.syntax_error();
        }
        if opt == "abort" {
            return ctx.error("ERR No shutdown in progress.");
        }
        nosave |= opt == "nosave";
        save |= opt == "save";
        force |= opt == "force";
    }
    if save && nosave {
        return ctx.syntax_error();
    }
    // While a script is busy, a shutdown that would save (and so persist the script's
    // half-done work) is refused, as in Redis; one that saves nothing may go ahead.
    let would_save = save || (!nosave && !ctx.state.config.get("save").trim().is_empty());
    if let Some(kind) = ctx.state.scripting.busy() {
        if would_save {
            return ctx.error(super::admission::busy_error(kind));
        }
    }
    crate::log::warning("User requested shutdown...");
    ctx.state.shutdown_prepared = true;
    if crate::persist::prepare_shutdown(ctx.state, save, nosave).is_err() && !force {
        ctx.state.shutdown_prepared = false;
        return ctx.error("ERR Errors trying to SHUTDOWN. Check logs.");
    }
    ctx.state.shutdown_requested = true;
}

fn monitor(ctx: &mut Ctx) {
    if ctx.client.multi.is_some() {
        return ctx.error("ERR MONITOR isn't allowed inside MULTI");
    }
    ctx.client.monitor = true;
    ctx.state.monitors.insert(ctx.client.id);
    ctx.ok();
}

fn time(ctx: &mut Ctx) {
    let us = crate::time::unix_us();
    ctx.array(2);
    ctx.bulk(&(us / 1_000_000).to_string().into_bytes());
    ctx.bulk(&(us % 1_000_000).to_string().into_bytes());
}
