//! One Lua state set up the way Redis sets up its scripting states, and the calls the runner
//! makes on it: compile a script, load a function library, run.

use crate::api;
use crate::cfunc::{self, Exit};
use crate::heap::Heap;
use crate::raw::{self, L};
use crate::reply::{emit, ReplyKeys};
use crate::{Host, ScriptError};
use bytes::Bytes;
use moonkv_protocol::ReplySink;
use std::ffi::c_int;

/// Registry fields of a function VM: the real globals, and the API a library sees on load.
const GLOBALS_KEY: &str = "__moonkv_globals";
const LIBRARY_API_KEY: &str = "__moonkv_library_api";
/// Name of EVAL's error handler global (Redis lets scripts see it).
const EVAL_HANDLER_GLOBAL: &str = "__redis__err__handler";

/// Globals a script may see; everything else the libraries define is removed.
const ALLOWED_GLOBALS: &[&str] = &[
    "string",
    "cjson",
    "bit",
    "cmsgpack",
    "math",
    "table",
    "struct",
    "redis",
    "xpcall",
    "tostring",
    "setmetatable",
    "next",
    "assert",
    "tonumber",
    "rawequal",
    "collectgarbage",
    "getmetatable",
    "rawset",
    "pcall",
    "coroutine",
    "type",
    "_G",
    "select",
    "unpack",
    "gcinfo",
    "pairs",
    "rawget",
    "loadstring",
    "ipairs",
    "_VERSION",
    "load",
    "error",
    "os",
];

/// What a script's error handler does: find the script line that raised (skipping a C
/// function such as redis.call), turn a plain error into an `{err=...}` table and record
/// where it happened. It keeps `debug` in an upvalue; the global is removed.
const ERROR_HANDLER_SOURCE: &str = "\
local getinfo = debug.getinfo
debug = nil
return function(e)
  local where = getinfo(2, 'nSl')
  if where and where.what == 'C' then where = getinfo(3, 'nSl') end
  if type(e) ~= 'table' then e = {err = 'ERR ' .. tostring(e)} end
  if where then
    e['source'] = where.source
    e['line'] = where.currentline
  end
  return e
end
";

/// Which kind of scripts a VM runs: EVAL scripts or FUNCTION libraries.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum VmKind {
    Eval,
    Functions,
}

/// A compiled script or function: a reference into the VM's registry.
pub type CompiledId = c_int;

/// A function a library registered while loading.
pub struct RegisteredFunction {
    pub name: String,
    pub description: Option<String>,
    /// Lowercase flag names as given (no-writes, allow-oom, ...).
    pub flags: Vec<String>,
    pub callback: CompiledId,
}

/// State shared with the C functions while a script runs (or a library loads).
pub(crate) struct RunCtx<'a> {
    pub host: Option<&'a mut dyn Host>,
    /// `redis.setresp(3)` was called.
    pub resp3: bool,
    /// A redis.call is in progress (a debug hook must not nest another).
    pub in_call: bool,
    /// The host stopped the script (SCRIPT KILL): the error raised again on every line, so
    /// the script cannot catch it and go on.
    pub stopping: Option<String>,
    /// Functions registered so far, while FUNCTION LOAD runs a library.
    pub registered: Option<&'a mut Vec<RegisteredFunction>>,
    /// When loading a library must stop (FUNCTION LOAD's time limit).
    pub deadline: Option<std::time::Instant>,
    pub reply_keys: ReplyKeys,
    /// The state the run started on (a hook may fire on a coroutine's).
    pub main: Option<L>,
}

/// Runs between two checks for a periodic collection step (and the step's size, in Lua's
/// `LUA_GCSTEP` units), as Redis does.
const GC_STEP_EVERY_RUNS: c_int = 50;
/// Heap growth (KiB) since the last periodic step that makes the next one worth taking.
const GC_STEP_GROWTH_KB: c_int = 64;

/// How long a library's code may run while FUNCTION LOAD registers its functions.
const LOAD_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(500);
/// Instructions between two checks of the clock by the hook.
const HOOK_INSTRUCTIONS: c_int = 100_000;

/// Count hook while a library loads: past the deadline, fail the load. The hook then fires on
/// every line, so a pcall in the library cannot swallow the error and go on looping.
unsafe extern "C-unwind" fn load_hook(l: *mut raw::State, _ar: *mut raw::Debug) {
    cfunc::hook(L(l), |l| {
        let expired = api::run_ctx()
            .and_then(|c| c.deadline)
            .is_some_and(|d| std::time::Instant::now() > d);
        if !expired {
            return Exit::Return(0);
        }
        l.set_hook(Some(load_hook), raw::LUA_MASKLINE, 0);
        Exit::RaiseTable("FUNCTION LOAD timeout".into())
    })
}

/// Count hook while a script runs: gives the host its periodic look (slow-script handling,
/// SCRIPT KILL). Once the host stops the script, the hook fires on every line and raises the
/// host's error each time, so `pcall` cannot catch it for good.
unsafe extern "C-unwind" fn run_hook(l: *mut raw::State, _ar: *mut raw::Debug) {
    cfunc::hook(L(l), |l| {
        let Some(ctx) = api::run_ctx() else {
            return Exit::Return(0);
        };
        if ctx.stopping.is_none() {
            let Some(host) = ctx.host.as_deref_mut() else {
                return Exit::Return(0);
            };
            match host.interrupt() {
                None => return Exit::Return(0),
                Some(error) => ctx.stopping = Some(error),
            }
        }
        // From now on every line raises, in the coroutine that noticed and in the main
        // state, so neither pcall nor coroutines can keep the script going.
        l.set_hook(Some(run_hook), raw::LUA_MASKLINE, 0);
        if let Some(main) = ctx.main {
            main.set_hook(Some(run_hook), raw::LUA_MASKLINE, 0);
        }
        Exit::RaiseTable(ctx.stopping.clone().unwrap_or_default())
    })
}

pub struct LuaVm {
    l: L,
    /// The allocator's bookkeeping; outlives the state (dropped after it, see Drop).
    heap: Box<Heap>,
    /// How much one run may add to the heap (None: no limit).
    memory_limit: Option<usize>,
    kind: VmKind,
    /// Registry references read on every run (integer keys: no string hashing per call):
    /// the error handler, and the strings "KEYS" and "ARGV".
    handler_ref: c_int,
    keys_name_ref: c_int,
    argv_name_ref: c_int,
    reply_keys: ReplyKeys,
    /// EVAL's KEYS and ARGV tables, refilled for each run instead of made anew (a script
    /// cannot keep a reference to them past its run: every place it could store one is
    /// read-only), with the number of elements each held last. Replaced when a script left
    /// anything but that array in one.
    arg_tables: [c_int; 2],
    arg_lens: [usize; 2],
    /// Runs since the last periodic collection check, and the heap size (KiB) after the last
    /// periodic step.
    runs_since_step: c_int,
    heap_kb_after_step: c_int,
}

// SAFETY: a LuaVm owns its Lua state exclusively and holds no thread-bound data; the server
// only uses it while holding its global lock, so it is used by one thread at a time even when
// that thread changes.
unsafe impl Send for LuaVm {}

impl Drop for LuaVm {
    fn drop(&mut self) {
        // The heap field is dropped after this, so the state never outlives its allocator's
        // bookkeeping.
        raw::close_state(self.l);
    }
}

impl LuaVm {
    pub fn new(kind: VmKind) -> LuaVm {
        let heap = Heap::new();
        let l = raw::new_state(&heap).expect("cannot allocate a Lua state");
        let mut vm = LuaVm {
            l,
            heap,
            memory_limit: None,
            kind,
            handler_ref: 0,
            keys_name_ref: 0,
            argv_name_ref: 0,
            reply_keys: ReplyKeys::new(l),
            arg_tables: [0; 2],
            arg_lens: [0; 2],
            runs_since_step: 0,
            heap_kb_after_step: 0,
        };
        vm.set_up();
        vm
    }

    fn set_up(&mut self) {
        let l = self.l;
        raw::open_lib(l, "", raw::luaopen_base);
        raw::open_lib(l, "table", raw::luaopen_table);
        raw::open_lib(l, "string", raw::luaopen_string);
        raw::open_lib(l, "math", raw::luaopen_math);
        raw::open_lib(l, "debug", raw::luaopen_debug);
        crate::libs::open_all(l);

        l.push_function(api::script_pcall);
        l.raw_set_field(raw::GLOBALS, "pcall");

        l.new_table(0, 32);
        register_redis_api(l, self.kind == VmKind::Eval);
        l.raw_set_field(raw::GLOBALS, "redis");

        // `os` offers only `clock` (as later Redis versions do): no files, time or processes.
        l.new_table(0, 1);
        l.push_function(api::os_clock);
        l.raw_set_field(-2, "clock");
        l.raw_set_field(raw::GLOBALS, "os");

        l.raw_get_field(raw::GLOBALS, "math");
        l.push_function(api::math_random);
        l.raw_set_field(-2, "random");
        l.push_function(api::math_randomseed);
        l.raw_set_field(-2, "randomseed");
        l.pop(1);

        remove_unlisted_globals(l);

        // The error handler; loading it also removes the `debug` global.
        assert!(
            l.load(ERROR_HANDLER_SOURCE.as_bytes(), "@err_handler_def"),
            "error handler compiles"
        );
        assert!(l.pcall(0, 1, 0) == raw::OK, "error handler loads");
        if self.kind == VmKind::Eval {
            l.push_value(-1);
            l.raw_set_field(raw::GLOBALS, EVAL_HANDLER_GLOBAL);
        }
        self.handler_ref = l.registry_ref();
        l.push_str("KEYS");
        self.keys_name_ref = l.registry_ref();
        l.push_str("ARGV");
        self.argv_name_ref = l.registry_ref();
        for r in &mut self.arg_tables {
            l.new_table(0, 0);
            *r = l.registry_ref();
        }

        if self.kind == VmKind::Functions {
            // What a library's code sees while it loads: only `redis` with register_function,
            // log and the version fields.
            l.new_table(0, 1);
            l.new_table(0, 8);
            l.push_function(api::register_function);
            l.raw_set_field(-2, "register_function");
            register_log_and_version(l);
            set_missing_global_metatable(l);
            l.raw_set_field(-2, "redis");
            set_missing_global_metatable(l);
            protect_recursively(l);
            l.raw_set_field(raw::REGISTRY, LIBRARY_API_KEY);
        }

        l.push_value(raw::GLOBALS);
        set_missing_global_metatable(l);
        protect_recursively(l);
        l.pop(1);
        protect_basic_type_metatables(l);

        if self.kind == VmKind::Functions {
            // Libraries run with an empty, read-only globals table that reads through to the
            // real globals; during FUNCTION LOAD it reads through to the library API instead.
            l.push_value(raw::GLOBALS);
            l.raw_set_field(raw::REGISTRY, GLOBALS_KEY);
            l.new_table(0, 0);
            l.new_table(0, 1);
            l.push_value(raw::GLOBALS);
            l.raw_set_field(-2, "__index");
            l.set_readonly(-1, true);
            l.set_metatable(-2);
            l.set_readonly(-1, true);
            l.replace(raw::GLOBALS);
        }
        l.gc(raw::LUA_GCCOLLECT, 0);
    }

    /// Compiles an EVAL script body (chunk `@user_script`); the error text is Lua's message.
    pub fn compile(&mut self, body: &[u8]) -> Result<CompiledId, String> {
        let l = self.l;
        if !l.load(body, "@user_script") {
            let msg = api::error_message(l);
            l.pop(1);
            return Err(msg);
        }
        Ok(l.registry_ref())
    }

    /// Forgets a compiled script or function.
    pub fn release(&mut self, id: CompiledId) {
        self.l.registry_unref(id);
    }

    /// Runs a function library's code (FUNCTION LOAD), returning the functions it registered,
    /// or Redis's error text.
    pub fn load_library(&mut self, code: &[u8]) -> Result<Vec<RegisteredFunction>, String> {
        let l = self.l;
        let mut registered = Vec::new();
        self.set_globals_fallback(LIBRARY_API_KEY);
        let outcome = if !l.load(code, "@user_function") {
            let msg = api::error_message(l);
            l.pop(1);
            Err(format!("Error compiling function: {msg}"))
        } else {
            let deadline = Some(std::time::Instant::now() + LOAD_TIMEOUT);
            let mut ctx = RunCtx {
                host: None,
                resp3: false,
                in_call: false,
                stopping: None,
                registered: Some(&mut registered),
                deadline,
                reply_keys: self.reply_keys,
                main: Some(l),
            };
            l.set_hook(Some(load_hook), raw::LUA_MASKCOUNT, HOOK_INSTRUCTIONS);
            self.heap.set_budget(self.memory_limit);
            let status = with_run_ctx(&mut ctx, || l.pcall(0, 0, 0));
            l.set_hook(None, 0, 0);
            let outcome = if status == raw::OK {
                Ok(())
            } else {
                let msg = if status == raw::ERRMEM && self.heap.limit_hit() {
                    self.heap.limit_error()
                } else if l.kind(-1) == raw::TTABLE {
                    api::error_message(l)
                } else {
                    format!("ERR {}", api::error_message(l))
                };
                l.pop(1);
                Err(format!("Error registering functions: {msg}"))
            };
            self.end_budget();
            outcome
        };
        self.set_globals_fallback(GLOBALS_KEY);
        match outcome {
            Ok(()) => Ok(registered),
            Err(e) => {
                for f in registered {
                    l.registry_unref(f.callback);
                }
                Err(e)
            }
        }
    }

    /// Points the function VM's globals fallback (`__index`) at a registry table.
    fn set_globals_fallback(&self, registry_key: &str) {
        let l = self.l;
        if !l.get_metatable(raw::GLOBALS) {
            return;
        }
        l.set_readonly(-1, false);
        l.raw_get_field(raw::REGISTRY, registry_key);
        l.raw_set_field(-2, "__index");
        l.set_readonly(-1, true);
        l.pop(1);
    }

    /// Sets how much one run (a script, a function call or a library load) may add to the
    /// Lua heap; None for no limit. A run that needs more fails with the memory error.
    pub fn set_memory_limit(&mut self, limit: Option<usize>) {
        self.memory_limit = limit;
    }

    /// Lifts the run's memory budget; after a run that hit it, collects the garbage it left so
    /// the memory goes back at once.
    fn end_budget(&mut self) {
        if self.heap.limit_hit() {
            self.l.gc(raw::LUA_GCCOLLECT, 0);
        }
        self.heap.set_budget(None);
    }

    /// Runs a compiled script (EVAL: KEYS and ARGV become globals) or function (FCALL: they
    /// are its two arguments) and writes its reply to `out`. `name` is what error messages call
    /// it (the script's SHA1 or the function's name). The host is interrupted every so many
    /// instructions ([`Host::interrupt`]).
    pub fn run(
        &mut self,
        f: CompiledId,
        name: &str,
        keys: &[Bytes],
        args: &[Bytes],
        host: &mut dyn Host,
        out: &mut dyn ReplySink,
    ) -> Result<(), ScriptError> {
        let l = self.l;
        let base = l.top();
        if !l.check_stack(8) {
            return Err(ScriptError {
                message: "ERR reached lua stack limit".into(),
                counted: false,
                raised: true,
            });
        }
        l.raw_get_index(raw::REGISTRY, self.handler_ref as i64);
        let handler = l.top();
        l.raw_get_index(raw::REGISTRY, f as i64);
        self.push_array(0, keys);
        self.push_array(1, args);
        let nargs = match self.kind {
            VmKind::Eval => {
                l.set_readonly(raw::GLOBALS, false);
                l.raw_get_index(raw::REGISTRY, self.argv_name_ref as i64);
                l.insert(-2);
                l.raw_set(raw::GLOBALS);
                l.raw_get_index(raw::REGISTRY, self.keys_name_ref as i64);
                l.insert(-2);
                l.raw_set(raw::GLOBALS);
                l.set_readonly(raw::GLOBALS, true);
                0
            }
            VmKind::Functions => 2,
        };
        let mut ctx = RunCtx {
            host: Some(host),
            resp3: false,
            in_call: false,
            stopping: None,
            registered: None,
            deadline: None,
            reply_keys: self.reply_keys,
            main: Some(l),
        };
        l.set_hook(Some(run_hook), raw::LUA_MASKCOUNT, HOOK_INSTRUCTIONS);
        self.heap.set_budget(self.memory_limit);
        let status = with_run_ctx(&mut ctx, || l.pcall(nargs, 1, handler));
        l.set_hook(None, 0, 0);
        let resp3 = ctx.resp3;
        let result = if status == raw::OK {
            let mut top_error = None;
            emit(l, &self.reply_keys, out, resp3, &mut top_error);
            match top_error {
                Some(e) => Err(ScriptError {
                    message: e.message,
                    counted: e.counted,
                    raised: false,
                }),
                None => Ok(()),
            }
        } else if status == raw::ERRMEM && self.heap.limit_hit() {
            l.pop(1);
            Err(ScriptError {
                message: format!("{} script: {name}", self.heap.limit_error()),
                counted: false,
                raised: true,
            })
        } else {
            let err = script_error(l, name);
            l.pop(1);
            Err(err)
        };
        l.set_top(base);
        self.end_budget();
        if self.kind == VmKind::Eval {
            self.renew_if_altered(0);
            self.renew_if_altered(1);
        }
        self.collect_garbage_sometimes();
        result
    }

    /// Pushes `items` as a Lua array: for EVAL, the reusable table `slot` refilled.
    fn push_array(&mut self, slot: usize, items: &[Bytes]) {
        let l = self.l;
        if self.kind != VmKind::Eval {
            push_string_array(l, items);
            return;
        }
        l.raw_get_index(raw::REGISTRY, self.arg_tables[slot] as i64);
        fill_string_array(l, items);
        for i in items.len() + 1..=self.arg_lens[slot] {
            l.push_nil();
            l.raw_set_index(-2, i as i64);
        }
        self.arg_lens[slot] = items.len();
    }

    /// After a run: if the script changed the reusable table `slot` beyond its elements'
    /// values (other keys, a metatable), the next run gets a fresh one.
    fn renew_if_altered(&mut self, slot: usize) {
        let l = self.l;
        let len = self.arg_lens[slot];
        l.raw_get_index(raw::REGISTRY, self.arg_tables[slot] as i64);
        let mut altered = l.get_metatable(-1);
        if altered {
            l.pop(1);
        }
        l.push_nil();
        while !altered && l.next(-2) {
            let k = if l.kind(-2) == raw::TNUMBER {
                l.to_number(-2)
            } else {
                0.0
            };
            altered =
                !(k >= 1.0 && k <= len as f64 && k.fract() == 0.0) || l.kind(-1) != raw::TSTRING;
            l.pop(if altered { 2 } else { 1 });
        }
        l.pop(1);
        if altered {
            l.registry_unref(self.arg_tables[slot]);
            l.new_table(0, 0);
            self.arg_tables[slot] = l.registry_ref();
            self.arg_lens[slot] = 0;
        }
    }

    /// Every 50 runs, a collection step if the scripts since the last one left garbage (the
    /// heap grew by 64 KiB or more): like Redis, collection work is spread out between
    /// scripts instead of landing inside one, but runs that allocate nothing do not pay for a
    /// collection cycle.
    fn collect_garbage_sometimes(&mut self) {
        self.runs_since_step += 1;
        if self.runs_since_step < GC_STEP_EVERY_RUNS {
            return;
        }
        self.runs_since_step = 0;
        let heap_kb = self.l.gc(raw::LUA_GCCOUNT, 0);
        if heap_kb >= self.heap_kb_after_step + GC_STEP_GROWTH_KB {
            self.l.gc(raw::LUA_GCSTEP, GC_STEP_EVERY_RUNS);
            self.heap_kb_after_step = self.l.gc(raw::LUA_GCCOUNT, 0);
        } else if heap_kb < self.heap_kb_after_step {
            self.heap_kb_after_step = heap_kb;
        }
    }

    /// Test hook: the next library function a script calls on this state (cjson, redis.*,
    /// ...) panics inside its body, to check that a panic is contained.
    pub fn panic_in_next_library_call(&self) {
        self.heap.request_panic();
    }

    /// Bytes the Lua state holds (Lua's own count).
    pub fn used_memory(&self) -> usize {
        let kb = self.l.gc(raw::LUA_GCCOUNT, 0).max(0) as usize;
        let b = self.l.gc(raw::LUA_GCCOUNTB, 0).max(0) as usize;
        kb * 1024 + b
    }
}

thread_local! {
    /// The [`RunCtx`] of the script running on this thread (null when none). Scripts run on
    /// the thread that called [`LuaVm::run`], and the C functions they call run there too.
    static RUN_CTX: std::cell::Cell<*mut std::ffi::c_void> = const { std::cell::Cell::new(std::ptr::null_mut()) };
}

/// The running script's context as stored by [`with_run_ctx`] (null outside a run).
pub(crate) fn current_run_ctx() -> *mut std::ffi::c_void {
    RUN_CTX.with(|c| c.get())
}

/// Runs `f` with `ctx` reachable from the C functions, and unreachable again afterwards
/// (restoring any outer context, though runs do not nest), also if `f` panics.
fn with_run_ctx<R>(ctx: &mut RunCtx<'_>, f: impl FnOnce() -> R) -> R {
    struct Restore(*mut std::ffi::c_void);
    impl Drop for Restore {
        fn drop(&mut self) {
            RUN_CTX.with(|c| c.set(self.0));
        }
    }
    let _restore =
        Restore(RUN_CTX.with(|c| c.replace(ctx as *mut RunCtx<'_> as *mut std::ffi::c_void)));
    f()
}

/// Builds the error reply of a failed run from the handler's `{err, source, line}` table.
fn script_error(l: L, name: &str) -> ScriptError {
    if l.kind(-1) != raw::TTABLE {
        let msg = l
            .to_bytes(-1)
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .unwrap_or_else(|| "execution failure".into());
        let msg: String = msg.chars().take(100).collect();
        return ScriptError {
            message: format!("ERR Error running script {name}, {msg}"),
            counted: false,
            raised: true,
        };
    }
    let field = |key: &str| {
        let t = l.raw_get_field(-1, key);
        let v = (t == raw::TSTRING || t == raw::TNUMBER)
            .then(|| String::from_utf8_lossy(l.to_bytes(-1).unwrap_or_default()).into_owned());
        l.pop(1);
        v
    };
    let msg = field("err").unwrap_or_else(|| "ERR unknown error".into());
    let source = field("source");
    let line = field("line");
    let counted = crate::reply::counted_elsewhere(l);
    let message = match (source, line) {
        (Some(source), Some(line)) => format!("{msg} script: {name}, on {source}:{line}."),
        _ => msg,
    };
    ScriptError {
        message,
        counted,
        raised: true,
    }
}

fn push_string_array(l: L, items: &[Bytes]) {
    l.new_table(items.len(), 0);
    fill_string_array(l, items);
}

/// Sets `items` as elements 1..=n of the table on top.
fn fill_string_array(l: L, items: &[Bytes]) {
    for (i, item) in items.iter().enumerate() {
        l.push_bytes(item);
        l.raw_set_index(-2, i as i64 + 1);
    }
}

/// Fills the `redis` table on top of the stack.
fn register_redis_api(l: L, eval: bool) {
    let functions: &[(&str, raw::CFunction)] = &[
        ("call", api::redis_call),
        ("pcall", api::redis_pcall),
        ("setresp", api::setresp),
        ("sha1hex", api::sha1hex),
        ("error_reply", api::error_reply),
        ("status_reply", api::status_reply),
        ("set_repl", api::set_repl),
        ("acl_check_cmd", api::acl_check_cmd),
    ];
    for (name, f) in functions {
        l.push_function(*f);
        l.raw_set_field(-2, name);
    }
    register_log_and_version(l);
    for (name, value) in [
        ("REPL_NONE", crate::repl::NONE),
        ("REPL_AOF", crate::repl::AOF),
        ("REPL_SLAVE", crate::repl::REPLICA),
        ("REPL_REPLICA", crate::repl::REPLICA),
        ("REPL_ALL", crate::repl::ALL),
    ] {
        l.push_number(value as f64);
        l.raw_set_field(-2, name);
    }
    if eval {
        for (name, f) in [
            ("breakpoint", api::breakpoint as raw::CFunction),
            ("debug", api::debug),
            ("replicate_commands", api::replicate_commands),
        ] {
            l.push_function(f);
            l.raw_set_field(-2, name);
        }
    }
}

/// Redis's reported version (the one this server is compatible with).
pub const REDIS_VERSION: &str = "7.0.15";
const REDIS_VERSION_NUM: i64 = 0x07_00_0f;

fn register_log_and_version(l: L) {
    l.push_function(api::log);
    l.raw_set_field(-2, "log");
    for (name, level) in [
        ("LOG_DEBUG", crate::log_level::DEBUG),
        ("LOG_VERBOSE", crate::log_level::VERBOSE),
        ("LOG_NOTICE", crate::log_level::NOTICE),
        ("LOG_WARNING", crate::log_level::WARNING),
    ] {
        l.push_number(level as f64);
        l.raw_set_field(-2, name);
    }
    l.push_number(REDIS_VERSION_NUM as f64);
    l.raw_set_field(-2, "REDIS_VERSION_NUM");
    l.push_str(REDIS_VERSION);
    l.raw_set_field(-2, "REDIS_VERSION");
}

/// Drops every global that is not on [`ALLOWED_GLOBALS`] (print, loadfile, dofile, the
/// deprecated getfenv/setfenv/newproxy...). `debug` stays until the error handler takes it.
fn remove_unlisted_globals(l: L) {
    let mut doomed = Vec::new();
    l.push_nil();
    while l.next(raw::GLOBALS) {
        l.pop(1);
        if let Some(name) = l.to_bytes(-1).filter(|_| l.kind(-1) == raw::TSTRING) {
            let name = String::from_utf8_lossy(name).into_owned();
            if !ALLOWED_GLOBALS.contains(&name.as_str()) && name != "debug" {
                doomed.push(name);
            }
        }
    }
    for name in doomed {
        l.push_nil();
        l.raw_set_field(raw::GLOBALS, &name);
    }
}

/// Gives the table on top a metatable whose `__index` raises Redis's missing-global error.
fn set_missing_global_metatable(l: L) {
    l.new_table(0, 1);
    l.push_function(api::missing_global);
    l.raw_set_field(-2, "__index");
    l.set_metatable(-2);
}

/// Makes the table on top, every table reachable from it and their metatables read-only.
fn protect_recursively(l: L) {
    if l.is_readonly(-1) {
        return;
    }
    l.set_readonly(-1, true);
    assert!(l.check_stack(3), "library tables nest shallowly");
    l.push_nil();
    while l.next(-2) {
        if l.kind(-1) == raw::TTABLE {
            protect_recursively(l);
        }
        l.pop(1);
    }
    if l.get_metatable(-1) {
        protect_recursively(l);
        l.pop(1);
    }
}

/// Makes the metatables of the basic types (the string metatable, chiefly) read-only.
fn protect_basic_type_metatables(l: L) {
    let pushers: [fn(L); 4] = [
        |l| l.push_nil(),
        |l| l.push_str(""),
        |l| l.push_number(0.0),
        |l| l.push_bool(false),
    ];
    for push in pushers {
        push(l);
        if l.get_metatable(-1) {
            protect_recursively(l);
            l.pop(1);
        }
        l.pop(1);
    }
}

/// `redis.log` outside a run (while a library loads) goes to the logger the server set.
pub(crate) fn log_outside_run(level: i64, message: &[u8]) {
    if let Some(f) = LOAD_LOGGER.get() {
        f(level, message)
    }
}

static LOAD_LOGGER: std::sync::OnceLock<fn(i64, &[u8])> = std::sync::OnceLock::new();

/// Sets where `redis.log` writes when no script host is present (library loading).
pub fn set_load_logger(f: fn(i64, &[u8])) {
    let _ = LOAD_LOGGER.set(f);
}
