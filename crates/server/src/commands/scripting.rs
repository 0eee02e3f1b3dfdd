//! EVAL, EVALSHA, EVAL_RO, EVALSHA_RO and SCRIPT: scripts sent by clients and cached by SHA1.
//! The runner lives in `crate::scripting`.

use super::spec::flags::*;
use super::{CommandSpec, Ctx};
use crate::scripting::cache::{parse_sha, sha1_of, CachedScript, Sha};
use crate::scripting::parse_eval_shebang;
use crate::scripting::run::{run, Invocation};
use bytes::Bytes;
use moonkv_lua::VmKind;
use moonkv_protocol::number::parse_i64;
use moonkv_protocol::ReplySink;

pub(super) const EVAL_FLAGS: u32 = NOSCRIPT
    | SKIP_MONITOR
    | MAY_REPLICATE
    | NO_MANDATORY_KEYS
    | STALE
    | PROPAGATES_INNER
    | RUNS_SCRIPT;
pub(super) const EVAL_RO_FLAGS: u32 =
    NOSCRIPT | SKIP_MONITOR | NO_MANDATORY_KEYS | STALE | READONLY | RUNS_SCRIPT;

fn script_keys(args: &[Bytes]) -> Result<Vec<usize>, String> {
    super::keys_after_numkeys(args, 2)
}

pub static COMMANDS: &[CommandSpec] = &[
    CommandSpec::new("eval", -3, EVAL_FLAGS, (0, 0, 0), "scripting", eval)
        .key_finder(script_keys)
        .group("scripting")
        .summary("Execute a Lua script server side", "2.6.0"),
    CommandSpec::new("evalsha", -3, EVAL_FLAGS, (0, 0, 0), "scripting", evalsha)
        .key_finder(script_keys)
        .group("scripting")
        .summary("Execute a Lua script server side", "2.6.0"),
    CommandSpec::new(
        "eval_ro",
        -3,
        EVAL_RO_FLAGS,
        (0, 0, 0),
        "scripting",
        eval_ro,
    )
    .key_finder(script_keys)
    .group("scripting")
    .summary("Execute a read-only Lua script server side", "7.0.0"),
    CommandSpec::new(
        "evalsha_ro",
        -3,
        EVAL_RO_FLAGS,
        (0, 0, 0),
        "scripting",
        evalsha_ro,
    )
    .key_finder(script_keys)
    .group("scripting")
    .summary("Execute a read-only Lua script server side", "7.0.0"),
    CommandSpec::new(
        "script",
        -2,
        0,
        (0, 0, 0),
        "",
        super::server_admin::container_help,
    )
    .group("scripting")
    .subcommands(SCRIPT_SUBCOMMANDS),
];

static SCRIPT_SUBCOMMANDS: &[CommandSpec] = &[
    CommandSpec::new(
        "script|load",
        3,
        NOSCRIPT | STALE,
        (0, 0, 0),
        "scripting",
        script_load,
    )
    .group("scripting")
    .summary(
        "Load the specified Lua script into the script cache.",
        "2.6.0",
    ),
    CommandSpec::new(
        "script|exists",
        -3,
        NOSCRIPT | STALE,
        (0, 0, 0),
        "scripting",
        script_exists,
    )
    .group("scripting")
    .summary("Check existence of scripts in the script cache.", "2.6.0"),
    CommandSpec::new(
        "script|flush",
        -2,
        NOSCRIPT | STALE,
        (0, 0, 0),
        "scripting",
        script_flush,
    )
    .group("scripting")
    .summary("Remove all the scripts from the script cache.", "2.6.0"),
    CommandSpec::new(
        "script|kill",
        2,
        NOSCRIPT | ALLOW_BUSY,
        (0, 0, 0),
        "scripting",
        script_kill,
    )
    .group("scripting")
    .summary("Kill the script currently in execution.", "2.6.0"),
    CommandSpec::new(
        "script|debug",
        3,
        NOSCRIPT,
        (0, 0, 0),
        "scripting",
        script_debug,
    )
    .group("scripting")
    .summary("Set the debug mode for executed scripts.", "3.2.0"),
    CommandSpec::new(
        "script|help",
        2,
        LOADING | STALE,
        (0, 0, 0),
        "scripting",
        script_help,
    )
    .group("scripting")
    .summary("Show helpful text about the different subcommands", "5.0.0"),
];

/// Reads EVAL-style `numkeys`: Some(n) with n keys available, or replies Redis's error.
fn parse_numkeys(ctx: &mut Ctx, bad_number: &str) -> Option<usize> {
    let Some(n) = parse_i64(&ctx.args[2]) else {
        ctx.error(bad_number);
        return None;
    };
    if n > ctx.args.len() as i64 - 3 {
        ctx.error("ERR Number of keys can't be greater than number of args");
        return None;
    }
    if n < 0 {
        ctx.error("ERR Number of keys can't be negative");
        return None;
    }
    Some(n as usize)
}

/// How a script reached the cache: SCRIPT LOAD keeps it for good, EVAL in a bounded list.
#[derive(Clone, Copy, PartialEq, Eq)]
enum CachedBy {
    Eval,
    ScriptLoad,
}

/// Compiles `body` into the script cache under its SHA1 unless it is there already.
fn cache_script(ctx: &mut Ctx, body: &Bytes, by: CachedBy) -> Option<Sha> {
    let sha = sha1_of(body);
    let scripting = &mut ctx.state.scripting;
    if scripting.scripts.contains(&sha) {
        if by == CachedBy::ScriptLoad {
            scripting.scripts.pin(&sha);
        }
        return Some(sha);
    }
    let (flags, code_at) = match parse_eval_shebang(body) {
        Ok(parsed) => parsed,
        Err(msg) => {
            ctx.error(&msg);
            return None;
        }
    };
    let Some(vm) = scripting.eval_vm.as_mut() else {
        ctx.error("ERR a script is already running");
        return None;
    };
    match vm.compile(&body[code_at..]) {
        Ok(compiled) => {
            let script = CachedScript {
                body: body.clone(),
                flags,
                compiled,
            };
            match by {
                CachedBy::ScriptLoad => scripting.scripts.insert_loaded(sha, script),
                CachedBy::Eval => {
                    let capacity = ctx.state.settings.script_eval_cache_size;
                    let evicted = scripting.scripts.insert_from_eval(sha, script, capacity);
                    for old in &evicted {
                        vm.release(*old);
                    }
                    ctx.state.stats.evicted_scripts += evicted.len() as u64;
                }
            }
            Some(sha)
        }
        Err(msg) => {
            ctx.error(&format!("ERR Error compiling script (new function): {msg}"));
            None
        }
    }
}

fn feed_monitors(ctx: &mut Ctx) {
    // EVAL shows in MONITOR before the commands it runs.
    if !ctx.state.monitors.is_empty() {
        super::server_admin::feed_monitors(ctx.state, ctx.client, ctx.args);
    }
}

fn eval_generic(ctx: &mut Ctx, by_sha: bool, read_only: bool) {
    feed_monitors(ctx);
    let Some(numkeys) = parse_numkeys(ctx, super::errors::NOT_INTEGER) else {
        return;
    };
    let sha = if by_sha {
        match parse_sha(&ctx.args[1]) {
            Some(sha) => sha,
            None => return ctx.error("NOSCRIPT No matching script. Please use EVAL."),
        }
    } else {
        let body = ctx.args[1].clone();
        match cache_script(ctx, &body, CachedBy::Eval) {
            Some(sha) => sha,
            None => return,
        }
    };
    let Some(script) = ctx.state.scripting.scripts.get_for_call(&sha) else {
        return ctx.error("NOSCRIPT No matching script. Please use EVAL.");
    };
    let (compiled, flags) = (script.compiled, script.flags);
    let args = ctx.args;
    let name = std::str::from_utf8(&sha).unwrap_or_default();
    run(
        ctx,
        Invocation {
            vm: VmKind::Eval,
            compiled,
            name,
            flags,
            read_only_command: read_only,
            keys: &args[3..3 + numkeys],
            args: &args[3 + numkeys..],
        },
    );
}

fn eval(ctx: &mut Ctx) {
    eval_generic(ctx, false, false)
}

fn evalsha(ctx: &mut Ctx) {
    eval_generic(ctx, true, false)
}

fn eval_ro(ctx: &mut Ctx) {
    eval_generic(ctx, false, true)
}

fn evalsha_ro(ctx: &mut Ctx) {
    eval_generic(ctx, true, true)
}

fn script_load(ctx: &mut Ctx) {
    let body = ctx.args[2].clone();
    if let Some(sha) = cache_script(ctx, &body, CachedBy::ScriptLoad) {
        ctx.bulk(&sha);
    }
}

fn script_exists(ctx: &mut Ctx) {
    let n = ctx.args.len() - 2;
    ctx.array(n);
    for i in 2..ctx.args.len() {
        let known =
            parse_sha(&ctx.args[i]).is_some_and(|sha| ctx.state.scripting.scripts.contains(&sha));
        ctx.integer(known as i64);
    }
}

fn script_flush(ctx: &mut Ctx) {
    match ctx.args.len() {
        2 => {}
        3 if ctx.arg_is(2, "sync") || ctx.arg_is(2, "async") => {}
        _ => return ctx.error("ERR SCRIPT FLUSH only support SYNC|ASYNC option"),
    }
    ctx.state.scripting.flush_scripts();
    ctx.ok();
}

fn script_kill(ctx: &mut Ctx) {
    match crate::scripting::slow::kill(ctx.state, true) {
        Ok(()) => ctx.ok(),
        Err(e) => ctx.error(e),
    }
}

fn script_debug(ctx: &mut Ctx) {
    if ctx.arg_is(2, "no") {
        return ctx.ok();
    }
    if ctx.arg_is(2, "yes") || ctx.arg_is(2, "sync") {
        return ctx.error("ERR The Lua debugger is not available in this server");
    }
    ctx.error("ERR Use SCRIPT DEBUG YES/SYNC/NO");
}

fn script_help(ctx: &mut Ctx) {
    super::server_admin::reply_help(
        ctx,
        "SCRIPT",
        &[
            "DEBUG (YES|SYNC|NO)",
            "    Choose the debugging mode of the scripts that follow (only NO is available).",
            "EXISTS <sha1> [<sha1> ...]",
            "    For each SHA1, 1 if that script is in the cache, else 0.",
            "FLUSH [ASYNC|SYNC]",
            "    Empty the script cache.",
            "KILL",
            "    Stop the script that is running.",
            "LOAD <script>",
            "    Add a script to the cache without running it; replies its SHA1.",
        ],
    );
}
