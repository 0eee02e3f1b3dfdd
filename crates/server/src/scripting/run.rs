//! Running a script or function for a caller: Redis's checks before the run (script flags
//! against the server state and the command used), the run itself on the right Lua state with
//! the script client, and the reply.

use super::host::{RunRules, ScriptHost};
use super::ScriptFlags;
use crate::commands::Ctx;
use crate::state::ServerState;
use bytes::Bytes;
use moonkv_lua::{CompiledId, VmKind};
use moonkv_protocol::ReplySink;

/// One run to make: which compiled code, under which name and flags, with which arguments.
pub struct Invocation<'a> {
    pub vm: VmKind,
    pub compiled: CompiledId,
    /// The SHA1 (EVAL) or function name (FCALL), used in error messages.
    pub name: &'a str,
    pub flags: ScriptFlags,
    /// Called as EVAL_RO, EVALSHA_RO or FCALL_RO.
    pub read_only_command: bool,
    pub keys: &'a [Bytes],
    pub args: &'a [Bytes],
}

/// Redis's scriptPrepareForRun checks; the rules for the run or the error to reply.
fn prepare(
    state: &ServerState,
    flags: ScriptFlags,
    read_only_command: bool,
) -> Result<RunRules, &'static str> {
    let compat = flags.has(ScriptFlags::EVAL_COMPAT);
    let oom_at_start = crate::commands::over_maxmemory(state);
    if !compat {
        if !flags.has(ScriptFlags::NO_WRITES) {
            if state.replication.primary.is_some() && state.config.get_bool("replica-read-only") {
                return Err("READONLY Can not run script with write flag on readonly replica");
            }
            if read_only_command {
                return Err("ERR Can not execute a script with write flag using *_ro command.");
            }
        }
        if oom_at_start && !flags.has(ScriptFlags::ALLOW_OOM) && !flags.has(ScriptFlags::NO_WRITES)
        {
            return Err("OOM allow-oom flag is not set on the script, can not run it when used memory > 'maxmemory'");
        }
    }
    Ok(RunRules {
        read_only: read_only_command || (!compat && flags.has(ScriptFlags::NO_WRITES)),
        allow_oom: !compat && flags.has(ScriptFlags::ALLOW_OOM),
        oom_at_start,
    })
}

/// Collects the errors a script's reply contains, to count them once the caller's context is
/// usable again.
struct ScriptReply<'a> {
    sink: &'a mut dyn ReplySink,
    errors: Vec<(String, bool)>,
}

impl ReplySink for ScriptReply<'_> {
    moonkv_protocol::forward_reply_sink!(sink);
    fn error(&mut self, msg: &str) {
        self.errors.push((msg.to_string(), false));
        self.sink.error(msg)
    }
    fn error_counted_elsewhere(&mut self, msg: &str) {
        self.errors.push((msg.to_string(), true));
        self.sink.error(msg)
    }
}

/// Runs `inv` for the client of `ctx` and replies.
pub fn run(ctx: &mut Ctx, inv: Invocation) {
    let rules = match prepare(ctx.state, inv.flags, inv.read_only_command) {
        Ok(rules) => rules,
        Err(msg) => return ctx.error(msg),
    };
    let scripting = &mut ctx.state.scripting;
    let vm_slot = match inv.vm {
        VmKind::Eval => &mut scripting.eval_vm,
        VmKind::Functions => &mut scripting.functions_vm,
    };
    // Both are only ever out of their slots during a run, and runs do not nest.
    let Some(mut vm) = vm_slot.take() else {
        return ctx.error("ERR a script is already running");
    };
    let Some(mut script_client) = scripting.script_client.take() else {
        *vm_slot = Some(vm);
        return ctx.error("ERR a script is already running");
    };
    script_client.db = ctx.client.db;
    let now_ms = ctx.now_ms;
    let (state, _caller, sink) = ctx.parts();
    let mut reply = ScriptReply {
        sink,
        errors: Vec::new(),
    };
    let mut host = ScriptHost {
        state,
        client: &mut script_client,
        rules,
        now_ms,
        wrote: false,
    };
    // A panic in the run (a bug) must not leave scripting without its Lua state: put the state
    // and the script client back first, then let the connection's guard handle the panic.
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        vm.run(
            inv.compiled,
            inv.name,
            inv.keys,
            inv.args,
            &mut host,
            &mut reply,
        )
    }));
    let errors = std::mem::take(&mut reply.errors);
    let scripting = &mut ctx.state.scripting;
    match inv.vm {
        VmKind::Eval => scripting.eval_vm = Some(vm),
        VmKind::Functions => scripting.functions_vm = Some(vm),
    }
    scripting.script_client = Some(script_client);
    let outcome = match outcome {
        Ok(outcome) => outcome,
        Err(panic) => std::panic::resume_unwind(panic),
    };
    for (msg, counted_elsewhere) in errors {
        ctx.note_error(&msg, counted_elsewhere);
    }
    if let Err(e) = outcome {
        if e.counted {
            ctx.error_counted_elsewhere(&e.message);
        } else {
            ctx.error(&e.message);
        }
    }
}
