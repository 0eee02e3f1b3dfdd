//! FUNCTION and FCALL/FCALL_RO (Redis 7 Functions): libraries of named functions loaded
//! with FUNCTION LOAD and called by name. The registry lives in `crate::scripting::library`.

use super::spec::flags::*;
use super::{CommandSpec, Ctx};
use crate::scripting::run::{run, Invocation};
use moonkv_keyspace::pattern::glob_match;
use moonkv_lua::VmKind;
use moonkv_persistence::rdb::{dump_functions, restore_functions, FunctionsRestoreError};
use moonkv_protocol::number::parse_i64;
use moonkv_protocol::ReplySink;

/// FCALL and FCALL_RO are flagged as EVAL and EVAL_RO are.
const FCALL_FLAGS: u32 = super::scripting::EVAL_FLAGS;
const FCALL_RO_FLAGS: u32 = super::scripting::EVAL_RO_FLAGS;

fn fcall_keys(args: &[bytes::Bytes]) -> Result<Vec<usize>, String> {
    super::keys_after_numkeys(args, 2)
}

pub static COMMANDS: &[CommandSpec] = &[
    CommandSpec::new(
        "function",
        -2,
        0,
        (0, 0, 0),
        "",
        super::server_admin::container_help,
    )
    .group("scripting")
    .subcommands(SUBCOMMANDS),
    CommandSpec::new("fcall", -3, FCALL_FLAGS, (0, 0, 0), "scripting", fcall)
        .key_finder(fcall_keys)
        .group("scripting")
        .summary("Invoke a function", "7.0.0"),
    CommandSpec::new(
        "fcall_ro",
        -3,
        FCALL_RO_FLAGS,
        (0, 0, 0),
        "scripting",
        fcall_ro,
    )
    .key_finder(fcall_keys)
    .group("scripting")
    .summary("Invoke a read-only function", "7.0.0"),
];

static SUBCOMMANDS: &[CommandSpec] = &[
    CommandSpec::new(
        "function|load",
        -3,
        WRITE | DENYOOM | NOSCRIPT,
        (0, 0, 0),
        "scripting",
        function_load,
    )
    .group("scripting")
    .summary(
        "Create a function with the given arguments (name, code, description)",
        "7.0.0",
    ),
    CommandSpec::new(
        "function|delete",
        3,
        WRITE | NOSCRIPT,
        (0, 0, 0),
        "scripting",
        function_delete,
    )
    .group("scripting")
    .summary("Delete a function by name", "7.0.0"),
    CommandSpec::new(
        "function|flush",
        -2,
        WRITE | NOSCRIPT,
        (0, 0, 0),
        "scripting",
        function_flush,
    )
    .group("scripting")
    .summary("Deletes all functions", "7.0.0"),
    CommandSpec::new(
        "function|list",
        -2,
        NOSCRIPT,
        (0, 0, 0),
        "scripting",
        function_list,
    )
    .group("scripting")
    .summary("List information about all the functions", "7.0.0"),
    CommandSpec::new(
        "function|dump",
        2,
        NOSCRIPT,
        (0, 0, 0),
        "scripting",
        function_dump,
    )
    .group("scripting")
    .summary(
        "Dump all functions into a serialized binary payload",
        "7.0.0",
    ),
    CommandSpec::new(
        "function|restore",
        -3,
        WRITE | DENYOOM | NOSCRIPT,
        (0, 0, 0),
        "scripting",
        function_restore,
    )
    .group("scripting")
    .summary("Restore all the functions on the given payload", "7.0.0"),
    CommandSpec::new(
        "function|stats",
        2,
        NOSCRIPT | ALLOW_BUSY,
        (0, 0, 0),
        "scripting",
        function_stats,
    )
    .group("scripting")
    .summary(
        "Return information about the function currently running (name, description, duration)",
        "7.0.0",
    ),
    CommandSpec::new(
        "function|kill",
        2,
        NOSCRIPT | ALLOW_BUSY,
        (0, 0, 0),
        "scripting",
        function_kill,
    )
    .group("scripting")
    .summary("Kill the function currently in execution.", "7.0.0"),
    CommandSpec::new(
        "function|help",
        2,
        LOADING | STALE,
        (0, 0, 0),
        "scripting",
        function_help,
    )
    .group("scripting")
    .summary("Show helpful text about the different subcommands", "7.0.0"),
];

fn fcall_generic(ctx: &mut Ctx, read_only: bool) {
    if !ctx.state.monitors.is_empty() {
        super::server_admin::feed_monitors(ctx.state, ctx.client, ctx.args);
    }
    let name = String::from_utf8_lossy(&ctx.args[1]).into_owned();
    let Some(f) = ctx.state.scripting.libraries.function(&name) else {
        return ctx.error("ERR Function not found");
    };
    let (compiled, flags) = (f.callback, f.flags);
    let numkeys = match parse_i64(&ctx.args[2]) {
        None => return ctx.error("ERR Bad number of keys provided"),
        Some(n) if n > ctx.args.len() as i64 - 3 => {
            return ctx.error("ERR Number of keys can't be greater than number of args")
        }
        Some(n) if n < 0 => return ctx.error("ERR Number of keys can't be negative"),
        Some(n) => n as usize,
    };
    let args = ctx.args;
    run(
        ctx,
        Invocation {
            vm: VmKind::Functions,
            compiled,
            name: &name,
            flags,
            read_only_command: read_only,
            keys: &args[3..3 + numkeys],
            args: &args[3 + numkeys..],
        },
    );
}

fn fcall(ctx: &mut Ctx) {
    fcall_generic(ctx, false)
}

fn fcall_ro(ctx: &mut Ctx) {
    fcall_generic(ctx, true)
}

fn function_load(ctx: &mut Ctx) {
    let mut replace = false;
    let mut at = 2;
    while at < ctx.args.len() - 1 {
        if ctx.arg_is(at, "replace") {
            replace = true;
            at += 1;
        } else {
            let msg = format!(
                "ERR Unknown option given: {}",
                String::from_utf8_lossy(&ctx.args[at])
            );
            return ctx.error(&msg);
        }
    }
    if at >= ctx.args.len() {
        return ctx.error("ERR Function code is missing");
    }
    let code = ctx.args[at].clone();
    let scripting = &mut ctx.state.scripting;
    let Some(vm) = scripting.functions_vm.as_mut() else {
        return ctx.error("ERR a script is already running");
    };
    match scripting.libraries.load(vm, code, replace) {
        Ok(name) => {
            ctx.state.server_dirty += 1;
            ctx.bulk(name.as_bytes());
        }
        Err(msg) => ctx.error(&msg),
    }
}

fn function_delete(ctx: &mut Ctx) {
    let name = String::from_utf8_lossy(&ctx.args[2]).into_owned();
    let scripting = &mut ctx.state.scripting;
    let Some(vm) = scripting.functions_vm.as_mut() else {
        return ctx.error("ERR a script is already running");
    };
    if scripting.libraries.delete(vm, &name) {
        ctx.state.server_dirty += 1;
        ctx.ok();
    } else {
        ctx.error("ERR Library not found");
    }
}

fn function_flush(ctx: &mut Ctx) {
    match ctx.args.len() {
        2 => {}
        3 if ctx.arg_is(2, "async") || ctx.arg_is(2, "sync") => {}
        3 => return ctx.error("ERR FUNCTION FLUSH only supports SYNC|ASYNC option"),
        _ => return super::server_admin::subcommand_syntax_error(ctx),
    }
    ctx.state.scripting.flush_functions();
    ctx.state.server_dirty += 1;
    ctx.ok();
}

fn function_list(ctx: &mut Ctx) {
    let mut with_code = false;
    let mut pattern: Option<Vec<u8>> = None;
    let mut i = 2;
    while i < ctx.args.len() {
        if !with_code && ctx.arg_is(i, "withcode") {
            with_code = true;
        } else if pattern.is_none() && ctx.arg_is(i, "libraryname") {
            if i + 1 >= ctx.args.len() {
                return ctx.error("ERR library name argument was not given");
            }
            pattern = Some(ctx.args[i + 1].to_vec());
            i += 1;
        } else {
            let msg = format!(
                "ERR Unknown argument {}",
                String::from_utf8_lossy(&ctx.args[i])
            );
            return ctx.error(&msg);
        }
        i += 1;
    }
    let (state, _, out) = ctx.parts();
    let libraries: Vec<_> = state
        .scripting
        .libraries
        .libraries
        .values()
        .filter(|l| {
            pattern
                .as_ref()
                .is_none_or(|p| glob_match(p, l.name.as_bytes(), false))
        })
        .collect();
    out.array(libraries.len());
    for library in libraries {
        out.map(if with_code { 4 } else { 3 });
        out.bulk(b"library_name");
        out.bulk(library.name.as_bytes());
        out.bulk(b"engine");
        out.bulk(library.engine.as_bytes());
        out.bulk(b"functions");
        out.array(library.functions.len());
        for f in library.functions.values() {
            out.map(3);
            out.bulk(b"name");
            out.bulk(f.name.as_bytes());
            out.bulk(b"description");
            out.bulk_opt(f.description.as_deref().map(str::as_bytes));
            out.bulk(b"flags");
            let names: Vec<&str> = f.flags.names().collect();
            out.set(names.len());
            for n in names {
                out.simple(n);
            }
        }
        if with_code {
            out.bulk(b"library_code");
            out.bulk(&library.code);
        }
    }
}

fn function_dump(ctx: &mut Ctx) {
    let payload = dump_functions(
        ctx.state
            .scripting
            .libraries
            .libraries
            .values()
            .map(|l| &l.code[..]),
    );
    ctx.bulk(&payload);
}

fn function_restore(ctx: &mut Ctx) {
    #[derive(PartialEq)]
    enum Policy {
        Flush,
        Append,
        Replace,
    }
    let policy =
        match ctx.args.len() {
            3 => Policy::Append,
            4 if ctx.arg_is(3, "flush") => Policy::Flush,
            4 if ctx.arg_is(3, "append") => Policy::Append,
            4 if ctx.arg_is(3, "replace") => Policy::Replace,
            4 => return ctx.error(
                "ERR Wrong restore policy given, value should be either FLUSH, APPEND or REPLACE.",
            ),
            _ => return super::server_admin::subcommand_syntax_error(ctx),
        };
    let codes = match restore_functions(&ctx.args[2]) {
        Ok(codes) => codes,
        Err(FunctionsRestoreError::VersionOrChecksum) => {
            return ctx.error("ERR DUMP payload version or checksum are wrong")
        }
        Err(FunctionsRestoreError::NotAFunction) => {
            return ctx.error("ERR given type is not a function")
        }
        Err(FunctionsRestoreError::Unreadable) => return ctx.error("ERR can not read data type"),
    };
    // Load into a fresh registry first, so a failure leaves the current libraries untouched.
    let mut staged = crate::scripting::library::Libraries::default();
    let mut vm = moonkv_lua::LuaVm::new(VmKind::Functions);
    for code in &codes {
        if let Err(msg) = staged.load(&mut vm, bytes::Bytes::copy_from_slice(code), false) {
            return ctx.error(&msg);
        }
    }
    let scripting = &mut ctx.state.scripting;
    if policy == Policy::Flush {
        scripting.flush_functions();
    }
    let Some(live_vm) = scripting.functions_vm.as_mut() else {
        return ctx.error("ERR a script is already running");
    };
    // Check conflicts before changing anything, so a refused payload changes nothing.
    if policy != Policy::Flush {
        for library in staged.libraries.values() {
            if policy == Policy::Append && scripting.libraries.libraries.contains_key(&library.name)
            {
                let msg = format!("ERR Library {} already exists", library.name);
                return ctx.error(&msg);
            }
            for f in library.functions.keys() {
                // With REPLACE, a function may only clash with the library it replaces.
                let owner = scripting.libraries.library_of(f);
                if owner.is_some_and(|o| policy == Policy::Append || o != library.name) {
                    let msg = format!("ERR Function {f} already exists");
                    return ctx.error(&msg);
                }
            }
        }
    }
    for library in staged.libraries.values() {
        if let Err(msg) =
            scripting
                .libraries
                .load(live_vm, library.code.clone(), policy == Policy::Replace)
        {
            return ctx.error(&msg);
        }
    }
    ctx.state.server_dirty += 1;
    ctx.ok();
}

fn function_stats(ctx: &mut Ctx) {
    // Redis answers BUSY while an EVAL script (not a function) is busy.
    if ctx.state.scripting.busy() == Some(VmKind::Eval) {
        return ctx.error(super::admission::busy_error(VmKind::Eval));
    }
    let libraries = ctx.state.scripting.libraries.libraries.len() as i64;
    let functions = ctx.state.scripting.libraries.function_count() as i64;
    ctx.map(2);
    ctx.bulk(b"running_script");
    // Only a busy function is seen running: otherwise this command waits for its end.
    match &ctx.state.scripting.running {
        Some(run) if run.kind == VmKind::Functions => {
            let name = run.name.clone();
            let command = run.command.clone();
            let duration = run.duration().as_millis() as i64;
            ctx.map(3);
            ctx.bulk(b"name");
            ctx.bulk(name.as_bytes());
            ctx.bulk(b"command");
            ctx.array(command.len());
            for arg in &command {
                ctx.bulk(arg);
            }
            ctx.bulk(b"duration_ms");
            ctx.integer(duration);
        }
        _ => ctx.null(),
    }
    ctx.bulk(b"engines");
    ctx.map(1);
    ctx.bulk(b"LUA");
    ctx.map(2);
    ctx.bulk(b"libraries_count");
    ctx.integer(libraries);
    ctx.bulk(b"functions_count");
    ctx.integer(functions);
}

fn function_kill(ctx: &mut Ctx) {
    match crate::scripting::slow::kill(ctx.state, false) {
        Ok(()) => ctx.ok(),
        Err(e) => ctx.error(e),
    }
}

fn function_help(ctx: &mut Ctx) {
    super::server_admin::reply_help(
        ctx,
        "FUNCTION",
        &[
            "LOAD [REPLACE] <LIBRARY CODE>",
            "    Load a library of functions; REPLACE overwrites a library of the same name.",
            "DELETE <LIBRARY NAME>",
            "    Remove a library and its functions.",
            "KILL",
            "    Stop the function that is running.",
            "FLUSH [ASYNC|SYNC]",
            "    Remove every library.",
            "LIST [LIBRARYNAME PATTERN] [WITHCODE]",
            "    Describe the libraries (those matching PATTERN), with their code if asked.",
            "STATS",
            "    The running function, and library and function counts per engine.",
            "DUMP",
            "    A binary payload holding every library, for FUNCTION RESTORE.",
            "RESTORE <PAYLOAD> [FLUSH|APPEND|REPLACE]",
            "    Load the libraries of a DUMP payload (APPEND by default).",
        ],
    );
}
