//! Slow scripts, as in Redis 7.0: a script that runs past `busy-reply-threshold` becomes
//! *busy*. It keeps the server lock and goes on running, but from then on its hook serves the
//! other clients between two steps ([`crate::busy`]): admission answers them `-BUSY`, except
//! for the few commands flagged allow-busy, among them SCRIPT KILL and FUNCTION KILL, which
//! ask the script to stop at its next step.

use crate::state::ServerState;
use bytes::Bytes;
use moonkv_lua::VmKind;
use quanta::Instant;
use std::time::Duration;

/// The script or function running now.
pub struct RunningScript {
    pub kind: VmKind,
    /// The SHA1 of an EVAL script, or the function name; filled in when it becomes busy
    /// (only then can anyone look).
    pub name: String,
    /// The command that runs it, as the caller sent it (FUNCTION STATS shows it); filled in
    /// when it becomes busy.
    pub command: Vec<Bytes>,
    pub started: Instant,
    /// It ran past `busy-reply-threshold`: other clients are served from its hook.
    pub timed_out: bool,
    /// SCRIPT KILL or FUNCTION KILL asked it to stop.
    pub kill_requested: bool,
    /// It ran a write command (Redis then refuses to kill it).
    pub wrote: bool,
}

impl RunningScript {
    pub fn new(kind: VmKind) -> Self {
        RunningScript {
            kind,
            name: String::new(),
            command: Vec::new(),
            started: Instant::now(),
            timed_out: false,
            kill_requested: false,
            wrote: false,
        }
    }

    pub fn duration(&self) -> Duration {
        self.started.elapsed()
    }
}

/// The error a killed script ends with (also for functions, as in Redis).
pub const KILLED: &str = "Script killed by user with SCRIPT KILL...";
/// The error a script killed after it wrote ends with (its writes are undone).
pub const KILLED_AND_UNDONE: &str =
    "Script killed by user with SCRIPT KILL... its writes were undone";

/// The script's periodic look at the server, from its hook: becomes busy once past the
/// threshold, then serves the clients waiting at the desk. Returns the error to stop the
/// script with when it was killed. `name` and `command` say what is running.
pub fn tick(state: &mut ServerState, name: &str, command: &[Bytes]) -> Option<String> {
    let threshold = state.settings.busy_reply_threshold;
    let run = state.scripting.running.as_mut()?;
    if !run.timed_out {
        let elapsed = run.duration();
        if threshold.is_zero() || elapsed < threshold {
            return None;
        }
        run.timed_out = true;
        state.stats.busy_scripts += 1;
        let run = state.scripting.running.as_mut()?;
        run.name = name.to_string();
        run.command = command.to_vec();
        crate::log::warning(&format!(
            "Slow script detected: still in execution after {} milliseconds. You can try killing the script using the {} command. Script name is: {}.",
            elapsed.as_millis(),
            match run.kind {
                VmKind::Eval => "SCRIPT KILL",
                VmKind::Functions => "FUNCTION KILL",
            },
            run.name
        ));
        state.desk.open();
        // This thread stays with the script; the runtime goes on elsewhere, so connections
        // reach the desk.
        crate::busy::hand_off_runtime();
    }
    let desk = state.desk.clone();
    desk.serve(state);
    let run = state.scripting.running.as_mut()?;
    if !run.kill_requested {
        return None;
    }
    crate::log::warning("Lua script killed by user with SCRIPT KILL.");
    Some(if run.wrote { KILLED_AND_UNDONE } else { KILLED }.to_string())
}

/// SCRIPT KILL (`eval`) or FUNCTION KILL: asks the running script to stop, or says why not.
pub fn kill(state: &mut ServerState, eval: bool) -> Result<(), &'static str> {
    let can_undo = state.journal_can_undo();
    let Some(run) = state.scripting.running.as_mut() else {
        return Err("NOTBUSY No scripts in execution right now.");
    };
    // A script that wrote can only be killed if its writes can be undone (script-kill-undo).
    if run.wrote && !can_undo {
        return Err("UNKILLABLE Sorry the script already executed write commands against the dataset. You can either wait the script termination or kill the server in a hard way using the SHUTDOWN NOSAVE command.");
    }
    match (eval, run.kind) {
        // Each command kills only its own kind; the error names the one to use.
        (true, VmKind::Functions) => {
            return Err(crate::commands::admission::busy_error(VmKind::Functions))
        }
        (false, VmKind::Eval) => return Err(crate::commands::admission::busy_error(VmKind::Eval)),
        _ => {}
    }
    run.kill_requested = true;
    Ok(())
}
