//! `redis.call` from a script: the script rules (Redis's scriptCall), then the same command
//! table, handlers and statistics as a client's command.

use crate::client::ClientState;
use crate::commands::{self, flags, Ctx};
use crate::state::ServerState;
use bytes::Bytes;
use moonkv_protocol::ReplySink;
use quanta::Instant;

/// What the runner decided about one script run before it started.
pub struct RunRules {
    /// EVAL_RO/FCALL_RO, or a script declaring no-writes: write commands are refused.
    pub read_only: bool,
    /// The script declared allow-oom: commands run even above maxmemory.
    pub allow_oom: bool,
    /// Memory was over maxmemory when the script started.
    pub oom_at_start: bool,
}

/// The server as one script run sees it.
pub struct ScriptHost<'a> {
    pub state: &'a mut ServerState,
    /// The script client: its own selected database, replies into the script.
    pub client: &'a mut ClientState,
    pub rules: RunRules,
    /// Unix ms when the script started: time stands still for expiry while it runs.
    pub now_ms: i64,
    /// A write command ran: later commands may not be refused for server state.
    pub wrote: bool,
}

impl ScriptHost<'_> {
    /// Counts a refused command like Redis: an error reply in the error statistics and a
    /// rejected call of the command.
    fn refuse(&mut self, index: Option<usize>, text: &str) -> Result<(), String> {
        let counted = match text.strip_prefix('-') {
            Some(rest) => rest.to_string(),
            None => format!("ERR {text}"),
        };
        self.state.stats.record_error(&counted);
        if let Some(i) = index {
            commands::record_rejection(self.state, i);
        }
        Err(text.to_string())
    }
}

impl moonkv_lua::Host for ScriptHost<'_> {
    fn call(&mut self, args: &[Bytes], reply: &mut dyn ReplySink) -> Result<(), String> {
        let Some((index, spec)) = commands::resolve(self.client, args) else {
            return self.refuse(None, "Unknown Redis command called from script");
        };
        if !spec.arity_ok(args.len()) {
            return self.refuse(
                Some(index),
                "Wrong number of args calling Redis command from script",
            );
        }
        if spec.has(flags::NOSCRIPT) && !self.state.scripting.allow_noscript_commands {
            return self.refuse(Some(index), "This Redis command is not allowed from script");
        }
        if self.rules.read_only && spec.has(flags::WRITE | flags::MAY_REPLICATE) {
            return self.refuse(
                Some(index),
                "Write commands are not allowed from read-only scripts.",
            );
        }
        if spec.has(flags::WRITE)
            && !self.wrote
            && self.state.replication.primary.is_some()
            && self.state.config.get_bool("replica-read-only")
        {
            return self.refuse(
                Some(index),
                "-READONLY You can't write against a read only replica.",
            );
        }
        if !self.rules.allow_oom
            && self.rules.oom_at_start
            && !self.wrote
            && spec.has(flags::DENYOOM)
        {
            return self.refuse(
                Some(index),
                "-OOM command not allowed when used memory > 'maxmemory'.",
            );
        }
        if spec.has(flags::WRITE) {
            self.wrote = true;
        }
        self.client.last_command = spec.name;
        let mut ctx = Ctx::new(self.state, self.client, spec, args, reply, self.now_ms);
        ctx.set_nested();
        commands::call(&mut ctx, index, Instant::now());
        // A blocking command never parks a script: it answered as if its timeout passed.
        self.client.block_request = None;
        Ok(())
    }

    fn set_repl(&mut self, _flags: i64) {
        // Effects are replicated command by command; selective replication arrives with the
        // replication issue.
    }

    fn log(&mut self, level: i64, message: &[u8]) {
        crate::log::script_log(level, message);
    }

    fn acl_check(&mut self, args: &[Bytes]) -> Option<bool> {
        // Every client is the default user with all permissions until ACL users exist.
        commands::resolve(self.client, args).map(|_| true)
    }
}
