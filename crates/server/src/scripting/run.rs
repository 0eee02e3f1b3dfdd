//! Running a script or function for a caller: Redis's checks before the run (script flags
//! against the server state and the command used), the run itself on the right Lua state with
//! the script client, and the reply.

use super::host::ScriptHost;
use super::slow::RunningScript;
use super::ScriptFlags;
use crate::commands::{admission, Ctx};
use bytes::Bytes;
use moonkv_keyspace::Completeness;
use moonkv_lua::{CompiledId, VmKind};
use moonkv_protocol::{ErrorReply, ReplySink};

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

/// Collects the errors a script's reply contains, to count them once the caller's context is
/// usable again.
struct ScriptReply<'a> {
    sink: &'a mut dyn ReplySink,
    errors: Vec<ErrorReply>,
}

impl ReplySink for ScriptReply<'_> {
    moonkv_protocol::forward_reply_sink!(sink);
    fn error(&mut self, msg: &str) {
        self.errors.push(ErrorReply::new(msg));
        self.sink.error(msg)
    }
    fn error_counted_elsewhere(&mut self, msg: &str) {
        self.errors.push(ErrorReply {
            message: msg.to_string(),
            counted: true,
        });
        self.sink.error(msg)
    }
}

/// Runs `inv` for the client of `ctx` and replies.
pub fn run(ctx: &mut Ctx, inv: Invocation) {
    let obeyed = ctx.client.from_primary || ctx.state.persistence.loading.is_some();
    let rules =
        match admission::admit_script_run(ctx.state, inv.flags, inv.read_only_command, obeyed) {
            Ok(rules) => rules,
            Err(e) => return ctx.error(&e.message),
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
    scripting.running = Some(RunningScript::new(inv.vm));
    // An undo journal: complete for a script that asked to roll back on error, best-effort
    // for SCRIPT KILL after writes (script-kill-undo); none for read-only runs.
    let rollback_on_error = inv.flags.has(ScriptFlags::ROLLBACK_ON_ERROR);
    let journal = if rules.read_only {
        None
    } else if rollback_on_error {
        Some(Completeness::Complete)
    } else if ctx.state.settings.script_kill_undo {
        Some(Completeness::BestEffort)
    } else {
        None
    };
    if let Some(completeness) = journal {
        ctx.state.start_journal(completeness);
    }
    vm.set_memory_limit(ctx.state.settings.script_memory_limit);
    let now_ms = ctx.now_ms;
    let command = ctx.args;
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
        name: inv.name,
        command,
    };
    // A panic that gets past the Lua layer's own guards (a bug) leaves the Lua state
    // suspect: it is replaced by a fresh one before the connection's guard handles the panic.
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
    let state = &mut *ctx.state;
    let run = state.scripting.running.take();
    // `redis.set_repl` lasts until the end of the script that called it.
    state.replication.targets = crate::replication::TO_ALL;
    if journal.is_some() {
        // Undo a killed script, one that failed and asked for it, and one a panic cut short.
        let killed = run.as_ref().is_some_and(|r| r.kill_requested);
        let failed = match &outcome {
            Ok(Err(e)) => e.raised,
            Ok(Ok(())) => false,
            Err(_) => true,
        };
        if killed || (failed && (rollback_on_error || outcome.is_err())) {
            let wrote = run.as_ref().is_some_and(|r| r.wrote);
            if state.undo_journal() && wrote {
                state.stats.undone_scripts += 1;
            }
        } else {
            state.commit_journal();
        }
    }
    if run.as_ref().is_some_and(|r| r.kill_requested) {
        state.stats.killed_scripts += 1;
    }
    if run.is_some_and(|r| r.timed_out) {
        // Work still waiting goes back to its connections, which take the lock next.
        state.desk.close();
    }
    let scripting = &mut state.scripting;
    if scripting.script_client.is_none() {
        scripting.script_client = Some(script_client);
    }
    let outcome = match outcome {
        Ok(outcome) => {
            scripting.return_vm(inv.vm, vm);
            outcome
        }
        Err(panic) => {
            drop(vm);
            scripting.replace_damaged_vm(inv.vm);
            std::panic::resume_unwind(panic)
        }
    };
    for error in &errors {
        ctx.note_error(error);
    }
    if let Err(e) = outcome {
        ctx.error_reply(&e.reply());
    }
}
