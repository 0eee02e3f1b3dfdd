//! `redis.call` from a script: the script rules (Redis's scriptCall, in
//! [`admission::admit_script_call`]), then the same command table, handlers and statistics as a
//! client's command. Also the script's periodic interruption: slow-script handling and KILL.

use crate::client::ClientState;
use crate::commands::{self, admission, flags, Ctx};
use crate::state::ServerState;
use bytes::Bytes;
use moonkv_protocol::{ErrorReply, ReplySink};
use quanta::Instant;

/// What the runner decided about one script run before it started.
pub struct RunRules {
    /// EVAL_RO/FCALL_RO, or a script declaring no-writes: write commands are refused.
    pub read_only: bool,
    /// The script declared allow-oom: commands run even above maxmemory.
    pub allow_oom: bool,
    /// Memory was over maxmemory when the script started.
    pub oom_at_start: bool,
    /// Run for the primary's stream or while loading the append-only file: what it does must
    /// happen, so the rules that protect the dataset from clients do not apply (Redis's
    /// mustObeyClient).
    pub obeyed: bool,
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
    /// The SHA1 or function name, and the command that runs it (shown once it is busy).
    pub name: &'a str,
    pub command: &'a [Bytes],
}

impl moonkv_lua::Host for ScriptHost<'_> {
    fn call(&mut self, args: &[Bytes], reply: &mut dyn ReplySink) -> Result<(), ErrorReply> {
        let (index, spec) =
            admission::admit_script_call(self.state, self.client, args, &self.rules, self.wrote)
                .map_err(|refusal| admission::count(self.state, refusal))?;
        if spec.has(flags::WRITE) && !self.wrote {
            self.wrote = true;
            if let Some(run) = self.state.scripting.running.as_mut() {
                run.wrote = true;
            }
        }
        self.client.last_command = spec.name;
        let mut ctx = Ctx::new(self.state, self.client, spec, args, reply, self.now_ms);
        ctx.set_nested();
        commands::call(&mut ctx, index, Instant::now());
        // A blocking command never parks a script: it answered as if its timeout passed.
        self.client.block_request = None;
        Ok(())
    }

    fn set_repl(&mut self, flags: i64) {
        // The script's following commands go only where it says (the run resets it).
        self.state.replication.targets = flags as u8 & crate::replication::TO_ALL;
    }

    fn log(&mut self, level: i64, message: &[u8]) {
        crate::log::script_log(level, message);
    }

    fn acl_check(&mut self, args: &[Bytes]) -> Option<bool> {
        // Every client is the default user with all permissions until ACL users exist.
        commands::resolve(self.client, args).ok().map(|_| true)
    }

    fn interrupt(&mut self) -> Option<String> {
        super::slow::tick(self.state, self.name, self.command)
    }
}
