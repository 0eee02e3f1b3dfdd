//! The Lua side of moonkv's scripting.
//!
//! - build.rs compiles Lua 5.1.5 with Redis's changes (read-only tables, no bytecode, full
//!   string hashing);
//! - [`LuaVm`] is one Lua state set up as Redis sets up its scripting state: sandboxed globals,
//!   read-only library tables, the `redis` object, Redis's PRNG, and the cjson, cmsgpack,
//!   struct and bit libraries;
//! - conversions go straight between Lua values and the server's [`ReplySink`] calls: a
//!   command called from a script writes its reply into a sink that builds Lua values.
//!
//! The engine knows nothing about the keyspace: it reaches the server through [`Host`].

mod api;
mod cfunc;
mod heap;
mod libs;
mod rand48;
mod raw;
mod reply;
mod vm;

pub use vm::{set_load_logger, CompiledId, LuaVm, RegisteredFunction, VmKind, REDIS_VERSION};

use bytes::Bytes;
use moonkv_protocol::{ErrorReply, ReplySink};

/// Replication targets for `redis.set_repl` (Redis's PROPAGATE_* values).
pub mod repl {
    pub const NONE: i64 = 0;
    pub const AOF: i64 = 1;
    pub const REPLICA: i64 = 2;
    pub const ALL: i64 = 3;
}

/// Log levels of `redis.log` (Redis's LL_* values).
pub mod log_level {
    pub const DEBUG: i64 = 0;
    pub const VERBOSE: i64 = 1;
    pub const NOTICE: i64 = 2;
    pub const WARNING: i64 = 3;
}

/// What a running script can ask of the server.
pub trait Host {
    /// Runs a command for `redis.call`/`redis.pcall`, writing its reply into `reply` (whose
    /// protocol is the script's, see `redis.setresp`). `Err` when the script rules refuse the
    /// command before it runs (unknown command, noscript, write in a read-only script...),
    /// with the error as the script sees it; `counted` says whether the host already recorded
    /// it in the error statistics.
    fn call(&mut self, args: &[Bytes], reply: &mut dyn ReplySink) -> Result<(), ErrorReply>;
    /// `redis.set_repl(flags)` with a valid flag set.
    fn set_repl(&mut self, flags: i64);
    /// `redis.log(level, ...)`.
    fn log(&mut self, level: i64, message: &[u8]);
    /// `redis.acl_check_cmd(...)`: Some(allowed), or None for an unknown command.
    fn acl_check(&mut self, args: &[Bytes]) -> Option<bool>;
    /// Called every so many Lua instructions while a script runs (slow-script handling,
    /// SCRIPT KILL). `Some(error)` stops the script with that error (`CODE message`): it is
    /// raised at once and again on every following line, so the script cannot catch it for
    /// good.
    fn interrupt(&mut self) -> Option<String> {
        None
    }
}

/// A script run that ended with an error reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptError {
    /// The full text with its code, e.g. `ERR user_script:1: ... script: <sha>, on ...`.
    pub message: String,
    /// Already counted in the error statistics (it came from a command the script called).
    pub counted: bool,
    /// The script failed with it (raised it, or was stopped); false when it returned an
    /// error reply as its result.
    pub raised: bool,
}

impl ScriptError {
    /// The error as the caller is answered.
    pub fn reply(&self) -> ErrorReply {
        ErrorReply {
            message: self.message.clone(),
            counted: self.counted,
        }
    }
}
