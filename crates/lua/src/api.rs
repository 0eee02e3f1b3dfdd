//! The `redis` object and the other functions moonkv puts into a script's globals. Each is a
//! Lua C function whose body runs through [`c_function`]: it says how to end with an
//! [`Exit`], and the wrapper raises errors once the body's Rust values are dropped.

use crate::cfunc::{c_function, Exit};
use crate::rand48;
use crate::raw::{self, L};
use crate::reply::{command_args, error_text, push_error_table, LuaReplyBuilder};
use crate::vm::{current_run_ctx, RegisteredFunction, RunCtx};
use crate::{log_level, repl};
use std::ffi::c_int;

/// The context of the script running on this state, if any.
pub(crate) fn run_ctx<'a>() -> Option<&'a mut RunCtx<'static>> {
    let p = current_run_ctx() as *mut RunCtx<'static>;
    // SAFETY: the pointer is set by vm::with_run_ctx, which keeps the RunCtx alive and
    // exclusively borrowed for as long as it is set, and resets it before returning; Lua
    // calls our functions only from inside that window, on that thread (raw rule 1).
    unsafe { p.as_mut() }
}

/// Raises a Redis error table.
fn raise_error_table(text: &str) -> Exit {
    Exit::RaiseTable(text.to_string())
}

/// Sets a flag for as long as it lives, and clears it when dropped, also when unwinding.
struct FlagGuard<'a>(&'a mut bool);

impl<'a> FlagGuard<'a> {
    fn set(flag: &'a mut bool) -> Self {
        *flag = true;
        FlagGuard(flag)
    }
}

impl Drop for FlagGuard<'_> {
    fn drop(&mut self) {
        *self.0 = false;
    }
}

pub unsafe extern "C-unwind" fn redis_call(l: *mut raw::State) -> c_int {
    c_function(L(l), |l| generic_call(l, true))
}

pub unsafe extern "C-unwind" fn redis_pcall(l: *mut raw::State) -> c_int {
    c_function(L(l), |l| generic_call(l, false))
}

fn generic_call(l: L, raise: bool) -> Exit {
    // A failure is an error table: raised by redis.call, returned by redis.pcall. The text
    // is `CODE message`.
    let fail = |text: &str, counted: bool| {
        l.set_top(0);
        push_error_table(l, &format!("-{text}"), counted);
        if raise {
            Exit::Raise
        } else {
            Exit::Return(1)
        }
    };
    let outside_script = "redis.call/pcall can only be called inside a script invocation";
    let Some(ctx) = run_ctx() else {
        return raise_error_table(outside_script);
    };
    let args = match command_args(l) {
        Ok(args) => args,
        Err(msg) => return fail(&error_text(msg), false),
    };
    l.set_top(0);
    let RunCtx {
        host,
        in_call,
        resp3,
        reply_keys,
        ..
    } = ctx;
    let Some(host) = host.as_deref_mut() else {
        return raise_error_table(outside_script);
    };
    if *in_call {
        return fail("ERR luaRedisGenericCommand() recursive call detected. Are you doing funny stuff with Lua debug hooks?", false);
    }
    let (outcome, produced, builder_error) = {
        let _calling = FlagGuard::set(in_call);
        let mut builder = LuaReplyBuilder::new(l, *resp3);
        let outcome = host.call(&args, &mut builder);
        (outcome, builder.produced, builder.failure.take())
    };
    drop(args);
    if let Err(refusal) = outcome {
        return fail(&refusal.message, refusal.counted);
    }
    if let Some(text) = builder_error {
        // The reply could not be built (memory limit, stack limit): the command ran, but its
        // reply cannot reach the script.
        return raise_error_table(text);
    }
    if produced != 1 {
        return fail("ERR the command gave no reply to the script", true);
    }
    // The reply is on top; redis.call raises it if it is an error table.
    if raise && l.kind(-1) == raw::TTABLE && reply_keys.is_error_table(l, -1) {
        return Exit::Raise;
    }
    Exit::Return(1)
}

/// The global `pcall`, which also accepts Redis error tables: an error raised as
/// `{err = "..."}` is returned as its message string.
pub unsafe extern "C-unwind" fn script_pcall(l: *mut raw::State) -> c_int {
    c_function(L(l), |l| {
        let argc = l.top();
        if argc == 0 {
            return Exit::RaiseMessage("bad argument #1 to 'pcall' (value expected)".into());
        }
        if !l.check_stack(2) {
            return Exit::RaiseMessage("stack overflow".into());
        }
        l.push_bool(true);
        l.insert(1);
        if l.pcall(argc - 1, -1, 0) != raw::OK {
            l.remove(1);
            if l.kind(-1) == raw::TTABLE {
                l.raw_get_field(-1, "err");
                if l.is_string_or_number(-1) {
                    l.replace(-2);
                } else {
                    l.pop(1);
                }
            }
            // After an error only the error value is left: room for the flag.
            l.push_bool(false);
            l.insert(1);
        }
        Exit::Return(l.top())
    })
}

pub unsafe extern "C-unwind" fn sha1hex(l: *mut raw::State) -> c_int {
    c_function(L(l), |l| {
        if l.top() != 1 {
            return raise_error_table("wrong number of arguments");
        }
        let data = l.to_bytes(1).unwrap_or_default();
        let digest = sha1_smol::Sha1::from(data).digest().to_string();
        l.push_str(&digest);
        Exit::Return(1)
    })
}

pub unsafe extern "C-unwind" fn error_reply(l: *mut raw::State) -> c_int {
    c_function(L(l), |l| {
        if l.top() != 1 || l.kind(-1) != raw::TSTRING {
            push_error_table(l, "wrong number or type of arguments", false);
            return Exit::Return(1);
        }
        let text = String::from_utf8_lossy(l.to_bytes(-1).unwrap_or_default()).into_owned();
        let text = if text.starts_with('-') {
            text
        } else {
            format!("-{text}")
        };
        push_error_table(l, &text, false);
        Exit::Return(1)
    })
}

pub unsafe extern "C-unwind" fn status_reply(l: *mut raw::State) -> c_int {
    c_function(L(l), |l| {
        if l.top() != 1 || l.kind(-1) != raw::TSTRING {
            push_error_table(l, "wrong number or type of arguments", false);
            return Exit::Return(1);
        }
        l.new_table(0, 1);
        l.push_value(-2);
        l.raw_set_field(-2, "ok");
        Exit::Return(1)
    })
}

pub unsafe extern "C-unwind" fn set_repl(l: *mut raw::State) -> c_int {
    c_function(L(l), |l| {
        let Some(ctx) = run_ctx() else {
            return raise_error_table(
                "redis.set_repl can only be called inside a script invocation",
            );
        };
        if l.top() != 1 {
            return raise_error_table("redis.set_repl() requires two arguments.");
        }
        let flags = l.to_number(-1) as i64;
        if flags & !repl::ALL != 0 {
            return raise_error_table(
                "Invalid replication flags. Use REPL_AOF, REPL_REPLICA, REPL_ALL or REPL_NONE.",
            );
        }
        if let Some(host) = ctx.host.as_deref_mut() {
            host.set_repl(flags);
        }
        Exit::Return(0)
    })
}

pub unsafe extern "C-unwind" fn acl_check_cmd(l: *mut raw::State) -> c_int {
    c_function(L(l), |l| {
        let Some(ctx) = run_ctx() else {
            return raise_error_table(
                "redis.acl_check_cmd can only be called inside a script invocation",
            );
        };
        let args = match command_args(l) {
            Ok(args) => args,
            Err(msg) => return raise_error_table(msg),
        };
        let allowed = ctx.host.as_deref_mut().and_then(|h| h.acl_check(&args));
        drop(args);
        match allowed {
            Some(b) => {
                l.push_bool(b);
                Exit::Return(1)
            }
            None => raise_error_table("Invalid command passed to redis.acl_check_cmd()"),
        }
    })
}

pub unsafe extern "C-unwind" fn log(l: *mut raw::State) -> c_int {
    c_function(L(l), |l| {
        let argc = l.top();
        if argc < 2 {
            return raise_error_table("redis.log() requires two arguments or more.");
        }
        if !l.is_number(1) {
            return raise_error_table("First argument must be a number (log level).");
        }
        let level = l.to_number(1) as i64;
        if !(log_level::DEBUG..=log_level::WARNING).contains(&level) {
            return raise_error_table("Invalid debug level.");
        }
        let mut message = Vec::new();
        for i in 2..=argc {
            if let Some(s) = l.to_bytes(i) {
                if i != 2 {
                    message.push(b' ');
                }
                message.extend_from_slice(s);
            }
        }
        if let Some(host) = run_ctx().and_then(|c| c.host.as_deref_mut()) {
            host.log(level, &message);
        } else {
            crate::vm::log_outside_run(level, &message);
        }
        Exit::Return(0)
    })
}

pub unsafe extern "C-unwind" fn setresp(l: *mut raw::State) -> c_int {
    c_function(L(l), |l| {
        let Some(ctx) = run_ctx() else {
            return raise_error_table(
                "redis.setresp can only be called inside a script invocation",
            );
        };
        if l.top() != 1 {
            return raise_error_table("redis.setresp() requires one argument.");
        }
        match l.to_number(-1) as i64 {
            2 => ctx.resp3 = false,
            3 => ctx.resp3 = true,
            _ => return raise_error_table("RESP version must be 2 or 3."),
        }
        Exit::Return(0)
    })
}

/// `os.clock()`: processor time used by the server, in seconds (what C's clock() measures).
pub unsafe extern "C-unwind" fn os_clock(l: *mut raw::State) -> c_int {
    c_function(L(l), |l| {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: ts is a valid timespec to write to; the clock id is a constant Linux
        // supports.
        unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
        l.push_number(ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9);
        Exit::Return(1)
    })
}

/// `redis.breakpoint()`: false, since no debugging session is active.
pub unsafe extern "C-unwind" fn breakpoint(l: *mut raw::State) -> c_int {
    c_function(L(l), |l| {
        l.push_bool(false);
        Exit::Return(1)
    })
}

/// `redis.debug(...)`: does nothing outside a debugging session.
pub unsafe extern "C-unwind" fn debug(l: *mut raw::State) -> c_int {
    c_function(L(l), |_| Exit::Return(0))
}

/// `redis.replicate_commands()`: always true (effects replication is the only mode).
pub unsafe extern "C-unwind" fn replicate_commands(l: *mut raw::State) -> c_int {
    c_function(L(l), |l| {
        l.push_bool(true);
        Exit::Return(1)
    })
}

/// Reads an integer argument as luaL_checkint does.
fn check_int(l: L, arg: c_int, fname: &str) -> Result<i32, String> {
    if !l.is_number(arg) {
        let got = type_name(l, arg);
        return Err(format!(
            "bad argument #{arg} to '{fname}' (number expected, got {got})"
        ));
    }
    Ok(l.to_number(arg) as i64 as i32)
}

pub fn type_name(l: L, idx: c_int) -> &'static str {
    match l.kind(idx) {
        -1 => "no value",
        raw::TNIL => "nil",
        raw::TBOOLEAN => "boolean",
        raw::TNUMBER => "number",
        raw::TSTRING => "string",
        raw::TTABLE => "table",
        raw::TFUNCTION => "function",
        8 => "thread",
        2 | 7 => "userdata",
        _ => "?",
    }
}

pub unsafe extern "C-unwind" fn math_random(l: *mut raw::State) -> c_int {
    c_function(L(l), |l| {
        if run_ctx().is_none() {
            return Exit::RaiseMessage(
                "math.random can only be called inside a script invocation".into(),
            );
        }
        let r = (rand48::next() % rand48::MAX) as f64 / rand48::MAX as f64;
        match l.top() {
            0 => l.push_number(r),
            1 => {
                let u = match check_int(l, 1, "random") {
                    Ok(u) => u,
                    Err(e) => return Exit::RaiseMessage(e),
                };
                if u < 1 {
                    return Exit::RaiseMessage(
                        "bad argument #1 to 'random' (interval is empty)".into(),
                    );
                }
                l.push_number((r * u as f64).floor() + 1.0);
            }
            2 => {
                let lo = match check_int(l, 1, "random") {
                    Ok(v) => v,
                    Err(e) => return Exit::RaiseMessage(e),
                };
                let hi = match check_int(l, 2, "random") {
                    Ok(v) => v,
                    Err(e) => return Exit::RaiseMessage(e),
                };
                if lo > hi {
                    return Exit::RaiseMessage(
                        "bad argument #2 to 'random' (interval is empty)".into(),
                    );
                }
                l.push_number((r * (hi as f64 - lo as f64 + 1.0)).floor() + lo as f64);
            }
            _ => return Exit::RaiseMessage("wrong number of arguments".into()),
        }
        Exit::Return(1)
    })
}

pub unsafe extern "C-unwind" fn math_randomseed(l: *mut raw::State) -> c_int {
    c_function(L(l), |l| {
        if run_ctx().is_none() {
            return Exit::RaiseMessage(
                "math.randomseed can only be called inside a script invocation".into(),
            );
        }
        match check_int(l, 1, "randomseed") {
            Ok(seed) => {
                rand48::seed(seed);
                Exit::Return(0)
            }
            Err(e) => Exit::RaiseMessage(e),
        }
    })
}

/// `__index` of the protected globals: reading a missing global is an error.
pub unsafe extern "C-unwind" fn missing_global(l: *mut raw::State) -> c_int {
    c_function(L(l), |l| {
        if l.top() != 2 {
            return Exit::RaiseMessage(
                "Wrong number of arguments to luaProtectedTableError".into(),
            );
        }
        if !l.is_string_or_number(-1) {
            return Exit::RaiseMessage(
                "Second argument to luaProtectedTableError must be a string or number".into(),
            );
        }
        let name = String::from_utf8_lossy(l.to_bytes(-1).unwrap_or_default()).into_owned();
        Exit::RaiseMessage(format!(
            "Script attempted to access nonexistent global variable '{name}'"
        ))
    })
}

/// `redis.register_function`, available while FUNCTION LOAD runs a library's code.
pub unsafe extern "C-unwind" fn register_function(l: *mut raw::State) -> c_int {
    c_function(L(l), |l| {
        let registering = run_ctx().and_then(|c| c.registered.as_deref_mut());
        let Some(registered) = registering else {
            return raise_error_table(
                "redis.register_function can only be called on FUNCTION LOAD command",
            );
        };
        match read_registration(l) {
            Ok(f) => {
                if let Some(err) = validate_registration(&f, registered) {
                    l.registry_unref(f.callback);
                    return raise_error_table(&err);
                }
                registered.push(f);
                Exit::Return(0)
            }
            Err(msg) => raise_error_table(msg),
        }
    })
}

/// Redis's checks on a new function: its name, and no duplicate within the library.
fn validate_registration(
    f: &RegisteredFunction,
    registered: &[RegisteredFunction],
) -> Option<String> {
    if f.name.is_empty()
        || !f
            .name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        // Redis reports a bad function name with its library-name text.
        return Some("Library names can only contain letters, numbers, or underscores(_) and must be at least one character long".into());
    }
    if registered.iter().any(|r| r.name == f.name) {
        return Some("Function already exists in the library".into());
    }
    None
}

const KNOWN_FLAGS: &[&str] = &[
    "no-writes",
    "allow-oom",
    "allow-stale",
    "no-cluster",
    "allow-cross-slot-keys",
    "rollback-on-error",
];

fn read_registration(l: L) -> Result<RegisteredFunction, &'static str> {
    let argc = l.top();
    if !(1..=2).contains(&argc) {
        return Err("wrong number of arguments to redis.register_function");
    }
    if argc == 2 {
        if l.kind(1) != raw::TSTRING && l.kind(1) != raw::TNUMBER {
            return Err("first argument to redis.register_function must be a string");
        }
        let name = String::from_utf8_lossy(l.to_bytes(1).unwrap_or_default()).into_owned();
        if l.kind(2) != raw::TFUNCTION {
            return Err("second argument to redis.register_function must be a function");
        }
        l.push_value(2);
        let callback = l.registry_ref();
        return Ok(RegisteredFunction {
            name,
            description: None,
            flags: Vec::new(),
            callback,
        });
    }
    if l.kind(1) != raw::TTABLE {
        return Err("calling redis.register_function with a single argument is only applicable to Lua table (representing named arguments).");
    }
    let mut name = None;
    let mut description = None;
    let mut flags = Vec::new();
    let mut callback_at = None;
    if !l.check_stack(4) {
        return Err("stack overflow");
    }
    l.push_nil();
    while l.next(1) {
        if l.kind(-2) != raw::TSTRING {
            l.pop(2);
            return Err("named argument key given to redis.register_function is not a string");
        }
        let key = String::from_utf8_lossy(l.to_bytes(-2).unwrap_or_default()).to_ascii_lowercase();
        match key.as_str() {
            "function_name" => {
                if !l.is_string_or_number(-1) {
                    l.pop(2);
                    return Err(
                        "function_name argument given to redis.register_function must be a string",
                    );
                }
                name =
                    Some(String::from_utf8_lossy(l.to_bytes(-1).unwrap_or_default()).into_owned());
            }
            "description" => {
                if !l.is_string_or_number(-1) {
                    l.pop(2);
                    return Err(
                        "description argument given to redis.register_function must be a string",
                    );
                }
                description =
                    Some(String::from_utf8_lossy(l.to_bytes(-1).unwrap_or_default()).into_owned());
            }
            "callback" => {
                if l.kind(-1) != raw::TFUNCTION {
                    l.pop(2);
                    return Err(
                        "callback argument given to redis.register_function must be a function",
                    );
                }
                callback_at = Some(());
                l.push_value(-1);
                l.raw_set_field(raw::REGISTRY, "__moonkv_pending_callback");
            }
            "flags" => {
                if l.kind(-1) != raw::TTABLE {
                    l.pop(2);
                    return Err("flags argument to redis.register_function must be a table representing function flags");
                }
                let mut j = 1;
                loop {
                    let t = l.raw_get_index(-1, j);
                    if t == raw::TNIL {
                        l.pop(1);
                        break;
                    }
                    if !l.is_string_or_number(-1) {
                        l.pop(3);
                        return Err("unknown flag given");
                    }
                    let flag = String::from_utf8_lossy(l.to_bytes(-1).unwrap_or_default())
                        .to_ascii_lowercase();
                    l.pop(1);
                    if !KNOWN_FLAGS.contains(&flag.as_str()) {
                        l.pop(2);
                        return Err("unknown flag given");
                    }
                    flags.push(flag);
                    j += 1;
                }
            }
            _ => {
                l.pop(2);
                return Err("unknown argument given to redis.register_function");
            }
        }
        l.pop(1);
    }
    let Some(name) = name else {
        return Err("redis.register_function must get a function name argument");
    };
    if callback_at.is_none() {
        return Err("redis.register_function must get a callback argument");
    }
    l.raw_get_field(raw::REGISTRY, "__moonkv_pending_callback");
    let callback = l.registry_ref();
    l.push_nil();
    l.raw_set_field(raw::REGISTRY, "__moonkv_pending_callback");
    Ok(RegisteredFunction {
        name,
        description,
        flags,
        callback,
    })
}

/// Formats a Lua error value for messages: its `err` field, or its string form.
pub fn error_message(l: L) -> String {
    if l.kind(-1) == raw::TTABLE {
        let t = l.raw_get_field(-1, "err");
        let s = if t == raw::TSTRING {
            String::from_utf8_lossy(l.to_bytes(-1).unwrap_or_default()).into_owned()
        } else {
            String::new()
        };
        l.pop(1);
        return s;
    }
    l.to_bytes(-1)
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .unwrap_or_else(|| "execution failure".into())
}
