//! Admission: whether a command may run now. Every command passes here before it runs, in
//! one of three lists of rules, each in Redis's order:
//! - [`admit`] for a client's request (Redis's processCommand checks);
//! - [`admit_script_call`] for a script's `redis.call` (Redis's scriptCall checks);
//! - [`admit_script_run`] for the start of a script or function (scriptPrepareForRun).
//!
//! The rules themselves (a read-only replica refuses writes, memory over `maxmemory` refuses
//! commands that may grow it, a busy script refuses all but a few commands, ...) are written
//! once, below the lists. A refusal is a [`Refusal`]: the error, not counted yet, and the
//! command to count as rejected; [`count`] accounts for it.

use super::spec::flags;
use super::{resolve, CommandSpec, Unresolved};
use crate::client::ClientState;
use crate::scripting::host::RunRules;
use crate::scripting::ScriptFlags;
use crate::state::ServerState;
use bytes::Bytes;
use moonkv_lua::VmKind;
use moonkv_protocol::ErrorReply;

/// Why a command may not run.
pub struct Refusal {
    /// The error reply, not yet counted in the error statistics.
    pub error: ErrorReply,
    /// The table index of the command to count as rejected (None: the command is unknown).
    pub command: Option<usize>,
}

impl Refusal {
    fn of(index: usize, message: impl Into<String>) -> Self {
        Refusal {
            error: ErrorReply::new(message),
            command: Some(index),
        }
    }
}

/// Counts a refusal like Redis: an error reply in the error statistics and a rejected call of
/// the command. Returns the error, now counted.
pub fn count(state: &mut ServerState, refusal: Refusal) -> ErrorReply {
    let Refusal { mut error, command } = refusal;
    state.stats.record_error(&error.message);
    if let Some(i) = command {
        super::record_rejection(state, i);
    }
    error.counted = true;
    error
}

// ---- texts ----------------------------------------------------------------------------------

const READONLY_REPLICA: &str = "READONLY You can't write against a read only replica.";
const NOREPLICAS: &str = "NOREPLICAS Not enough good replicas to write.";
const MASTERDOWN: &str =
    "MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.";
const OOM: &str = "OOM command not allowed when used memory > 'maxmemory'.";
const LOADING: &str = "LOADING Redis is loading the dataset in memory";
const BUSY_EVAL: &str =
    "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.";
const BUSY_FUNCTION: &str =
    "BUSY Redis is busy running a script. You can only call FUNCTION KILL or SHUTDOWN NOSAVE.";

/// The BUSY error for the kind of script that is running.
pub fn busy_error(kind: VmKind) -> &'static str {
    match kind {
        VmKind::Eval => BUSY_EVAL,
        VmKind::Functions => BUSY_FUNCTION,
    }
}

// ---- look-up --------------------------------------------------------------------------------

/// Finds the command (or `container|sub` subcommand) `args` call, for a client.
pub fn look_up(
    client: &mut ClientState,
    args: &[Bytes],
) -> Result<(usize, &'static CommandSpec), Refusal> {
    resolve(client, args).map_err(|unresolved| {
        let message = match unresolved {
            Unresolved::Command => super::unknown_command_error(args),
            Unresolved::Subcommand(container) => format!(
                "ERR unknown subcommand '{}'. Try {} HELP.",
                String::from_utf8_lossy(&args[1][..args[1].len().min(128)]),
                container.name.to_ascii_uppercase()
            ),
        };
        Refusal {
            error: ErrorReply::new(message),
            command: None,
        }
    })
}

// ---- the three lists ------------------------------------------------------------------------

/// A client's request: processCommand's checks, before MULTI queueing and execution.
pub fn admit(
    state: &ServerState,
    client: &ClientState,
    index: usize,
    spec: &'static CommandSpec,
    args: &[Bytes],
) -> Result<(), Refusal> {
    if !spec.arity_ok(args.len()) {
        return Err(Refusal::of(
            index,
            format!("ERR wrong number of arguments for '{}' command", spec.name),
        ));
    }
    if !client.authenticated && state.settings.requirepass.is_some() && !spec.has(flags::NO_AUTH) {
        return Err(Refusal::of(index, super::errors::NOAUTH));
    }
    let in_multi = client.multi.is_some();
    if in_multi && spec.has(flags::NO_MULTI) {
        return Err(Refusal::of(
            index,
            "ERR Command not allowed inside a transaction",
        ));
    }
    // The flags the rules see: a script's declared flags replace the command's own, and EXEC
    // carries those of the commands it queued (Redis's getCommandFlags and mstate flags).
    // Only worked out when a rule needs them.
    let effective = || effective_flags(state, client, spec, args);
    if client.from_primary {
        return Ok(());
    }
    if state.settings.maxmemory > 0 && over_maxmemory(state) {
        // Queueing inside MULTI may take memory without bound too.
        let queues = in_multi && !matches!(spec.name, "exec" | "discard" | "quit" | "reset");
        if queues || effective() & flags::DENYOOM != 0 {
            return Err(Refusal::of(index, OOM));
        }
    }
    let writes = || effective() & flags::WRITE != 0;
    // Redis refuses PING too, so a health check notices the disk problem.
    if let Some(disk) = crate::persist::disk_error(state) {
        if writes() || is(spec, "ping") {
            return Err(Refusal::of(index, disk.command_error()));
        }
    }
    if too_few_good_replicas(state) && writes() {
        return Err(Refusal::of(index, NOREPLICAS));
    }
    if replica_refuses_writes(state) && writes() {
        return Err(Refusal::of(index, READONLY_REPLICA));
    }
    if client.in_pubsub_context() && !allowed_in_pubsub_context(spec) {
        return Err(Refusal::of(
            index,
            format!(
                "ERR Can't execute '{}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context",
                spec.name
            ),
        ));
    }
    if replica_is_stale(state) {
        // EXEC is refused if any command it queued may not run on a stale replica.
        let queued_deny_stale = is(spec, "exec")
            && client
                .multi
                .as_ref()
                .is_some_and(|m| m.missing_flags & flags::STALE != 0);
        if effective() & flags::STALE == 0 || queued_deny_stale {
            return Err(Refusal::of(index, MASTERDOWN));
        }
    }
    if state.persistence.loading.is_some() && !spec.has(flags::LOADING) {
        return Err(Refusal::of(index, LOADING));
    }
    if let Some(kind) = state.scripting.busy() {
        if !spec.has(flags::ALLOW_BUSY) {
            return Err(Refusal::of(index, busy_error(kind)));
        }
    }
    Ok(())
}

/// A script's `redis.call`: scriptCall's checks, under the rules decided when the script
/// started. `wrote` says whether the script already ran a write command.
pub fn admit_script_call(
    state: &ServerState,
    client: &mut ClientState,
    args: &[Bytes],
    rules: &RunRules,
    wrote: bool,
) -> Result<(usize, &'static CommandSpec), Refusal> {
    let unknown = || Refusal {
        error: ErrorReply::new("ERR Unknown Redis command called from script"),
        command: None,
    };
    let (index, spec) = resolve(client, args).map_err(|_| unknown())?;
    if !spec.arity_ok(args.len()) {
        return Err(Refusal::of(
            index,
            "ERR Wrong number of args calling Redis command from script",
        ));
    }
    if spec.has(flags::NOSCRIPT) && !state.scripting.allow_noscript_commands {
        return Err(Refusal::of(
            index,
            "ERR This Redis command is not allowed from script",
        ));
    }
    if replica_is_stale(state) && !spec.has(flags::STALE) && !rules.obeyed {
        return Err(Refusal::of(
            index,
            "ERR Can not execute the command on a stale replica",
        ));
    }
    if rules.read_only && spec.has(flags::WRITE | flags::MAY_REPLICATE) {
        return Err(Refusal::of(
            index,
            "ERR Write commands are not allowed from read-only scripts.",
        ));
    }
    // Once a script wrote, state changes may not fail it halfway.
    if spec.has(flags::WRITE) && !wrote && !rules.obeyed {
        if replica_refuses_writes(state) {
            return Err(Refusal::of(index, READONLY_REPLICA));
        }
        if let Some(disk) = crate::persist::disk_error(state) {
            return Err(Refusal::of(index, disk.command_error()));
        }
        if too_few_good_replicas(state) {
            return Err(Refusal::of(index, NOREPLICAS));
        }
    }
    if !rules.allow_oom && rules.oom_at_start && !wrote && spec.has(flags::DENYOOM) {
        return Err(Refusal::of(index, OOM));
    }
    Ok((index, spec))
}

/// The start of a script or function with these declared flags, called with a `*_RO`
/// command or not: scriptPrepareForRun's checks, and the rules for the run.
pub fn admit_script_run(
    state: &ServerState,
    declared: ScriptFlags,
    read_only_command: bool,
    obeyed: bool,
) -> Result<RunRules, ErrorReply> {
    let compat = declared.has(ScriptFlags::EVAL_COMPAT);
    let oom_at_start = over_maxmemory(state) && !obeyed;
    if !compat && !obeyed {
        let no_writes = declared.has(ScriptFlags::NO_WRITES);
        if !no_writes {
            if replica_refuses_writes(state) {
                return Err(ErrorReply::new(
                    "READONLY Can not run script with write flag on readonly replica",
                ));
            }
            if let Some(disk) = crate::persist::disk_error(state) {
                return Err(ErrorReply::new(disk.script_error()));
            }
            if read_only_command {
                return Err(ErrorReply::new(
                    "ERR Can not execute a script with write flag using *_ro command.",
                ));
            }
            if too_few_good_replicas(state) {
                return Err(ErrorReply::new(NOREPLICAS));
            }
        }
        // no-writes implies allow-oom.
        if oom_at_start && !declared.has(ScriptFlags::ALLOW_OOM) && !no_writes {
            return Err(ErrorReply::new(
                "OOM allow-oom flag is not set on the script, can not run it when used memory > 'maxmemory'",
            ));
        }
    }
    Ok(RunRules {
        read_only: read_only_command || (!compat && declared.has(ScriptFlags::NO_WRITES)),
        allow_oom: !compat && declared.has(ScriptFlags::ALLOW_OOM),
        oom_at_start,
        obeyed,
    })
}

// ---- the rules ------------------------------------------------------------------------------

/// This server is a replica that refuses writes from clients (`replica-read-only`).
fn replica_refuses_writes(state: &ServerState) -> bool {
    state.replication.primary.is_some() && state.config.get_bool("replica-read-only")
}

/// This server is a replica whose link to its primary is not up and that does not serve stale
/// data (`replica-serve-stale-data no`).
fn replica_is_stale(state: &ServerState) -> bool {
    state
        .replication
        .primary
        .as_ref()
        .is_some_and(|link| link.state != crate::replication::link::LinkState::Connected)
        && !state.config.get_bool("replica-serve-stale-data")
}

/// `min-replicas-to-write` is set and fewer replicas acknowledged within
/// `min-replicas-max-lag` seconds.
fn too_few_good_replicas(state: &ServerState) -> bool {
    let needed = state.settings.min_replicas_to_write;
    needed > 0
        && state.replication.primary.is_none()
        && state.replication.good_replicas(
            crate::time::unix_ms(),
            state.config.get_i64("min-replicas-max-lag"),
        ) < needed
}

/// True when `maxmemory` is set and the allocator reports more memory in use. There is no
/// eviction yet, so every policy behaves like `noeviction`: commands that may add memory are
/// refused.
pub fn over_maxmemory(state: &ServerState) -> bool {
    let limit = state.settings.maxmemory;
    if limit == 0 {
        return false;
    }
    let used = match tikv_jemalloc_ctl::epoch::advance() {
        Ok(_) => tikv_jemalloc_ctl::stats::allocated::read().unwrap_or(0) as u64,
        Err(_) => 0,
    };
    used > limit
}

fn is(spec: &CommandSpec, name: &str) -> bool {
    spec.name == name
}

/// Commands that run at once inside MULTI instead of being queued.
pub fn runs_inside_multi(spec: &CommandSpec) -> bool {
    matches!(
        spec.name,
        "exec" | "discard" | "multi" | "watch" | "quit" | "reset"
    )
}

/// Commands a RESP2 client with subscriptions may still run.
fn allowed_in_pubsub_context(spec: &CommandSpec) -> bool {
    let base = spec.name.split('|').next().unwrap_or(spec.name);
    matches!(
        base,
        "subscribe"
            | "unsubscribe"
            | "psubscribe"
            | "punsubscribe"
            | "ssubscribe"
            | "sunsubscribe"
            | "ping"
            | "quit"
            | "reset"
    )
}

/// The flags the admission rules apply to a command: for EVAL and FCALL the script's declared
/// flags replace WRITE, DENYOOM and STALE (unless it declared none, Redis's compatibility
/// mode); EXEC adds the flags of the commands it queued.
pub fn effective_flags(
    state: &ServerState,
    client: &ClientState,
    spec: &CommandSpec,
    args: &[Bytes],
) -> u32 {
    let mut f = spec.flags;
    if spec.has(flags::RUNS_SCRIPT) {
        if let Some(declared) = crate::scripting::declared_flags(state, spec, args) {
            if !declared.has(ScriptFlags::EVAL_COMPAT) {
                f &= !(flags::STALE | flags::DENYOOM | flags::WRITE);
                if !declared.has(ScriptFlags::ALLOW_OOM) && !declared.has(ScriptFlags::NO_WRITES) {
                    f |= flags::DENYOOM;
                }
                if !declared.has(ScriptFlags::NO_WRITES) {
                    f |= flags::WRITE;
                }
                if declared.has(ScriptFlags::ALLOW_STALE) {
                    f |= flags::STALE;
                }
            }
        }
    }
    if is(spec, "exec") {
        if let Some(m) = &client.multi {
            f |= m.flags;
        }
    }
    f
}
