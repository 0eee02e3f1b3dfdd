//! The script runner, kept apart from the Lua engine (crate `moonkv-lua`): the EVAL script
//! cache, function libraries, script flags, and the rules a script's commands follow on their
//! way to the one command path every client uses.
//!
//! - [`ScriptFlags`] and shebang parsing (`#!lua flags=no-writes,...`);
//! - [`cache`]: EVAL scripts by SHA1;
//! - [`library`]: FUNCTION libraries and their functions;
//! - [`run`]: preparing and running a script or function for a caller;
//! - [`host`]: `redis.call` from a script, through the command table.

pub mod cache;
pub mod host;
pub mod library;
pub mod run;
pub mod slow;

use crate::client::ClientState;
use crate::commands::CommandSpec;
use crate::state::ServerState;
use bytes::Bytes;
use moonkv_lua::{LuaVm, VmKind};

/// Flags a script declares in its shebang or a function at registration.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ScriptFlags(u8);

impl ScriptFlags {
    pub const NO_WRITES: u8 = 1;
    pub const ALLOW_OOM: u8 = 2;
    pub const ALLOW_STALE: u8 = 4;
    pub const NO_CLUSTER: u8 = 8;
    pub const ALLOW_CROSS_SLOT: u8 = 16;
    /// An EVAL script without a shebang: Redis's pre-7 behaviour (no flag checks up front).
    pub const EVAL_COMPAT: u8 = 32;
    /// moonkv's own: a script that fails with an error has its writes undone.
    pub const ROLLBACK_ON_ERROR: u8 = 64;

    /// The flag names in the order Redis lists them.
    pub const NAMES: &'static [(u8, &'static str)] = &[
        (Self::NO_WRITES, "no-writes"),
        (Self::ALLOW_OOM, "allow-oom"),
        (Self::ALLOW_STALE, "allow-stale"),
        (Self::NO_CLUSTER, "no-cluster"),
        (Self::ALLOW_CROSS_SLOT, "allow-cross-slot-keys"),
        (Self::ROLLBACK_ON_ERROR, "rollback-on-error"),
    ];

    pub fn has(self, flag: u8) -> bool {
        self.0 & flag != 0
    }

    pub fn with(self, flag: u8) -> Self {
        ScriptFlags(self.0 | flag)
    }

    /// Parses one flag name (case-insensitive).
    pub fn parse_name(name: &str) -> Option<u8> {
        Self::NAMES
            .iter()
            .find(|(_, n)| n.eq_ignore_ascii_case(name))
            .map(|(f, _)| *f)
    }

    pub fn names(self) -> impl Iterator<Item = &'static str> {
        Self::NAMES
            .iter()
            .filter(move |(f, _)| self.has(*f))
            .map(|(_, n)| *n)
    }
}

/// Reads an EVAL script's shebang: its flags, and where the code starts (the shebang line is
/// dropped but its newline kept, so line numbers stay the user's).
pub fn parse_eval_shebang(body: &[u8]) -> Result<(ScriptFlags, usize), String> {
    if !body.starts_with(b"#!") {
        return Ok((ScriptFlags::default().with(ScriptFlags::EVAL_COMPAT), 0));
    }
    let Some(end) = body.iter().position(|&b| b == b'\n') else {
        return Err("ERR Invalid script shebang".into());
    };
    let line = String::from_utf8_lossy(&body[..end]).into_owned();
    let parts =
        split_args(&line).ok_or_else(|| "ERR Invalid engine in script shebang".to_string())?;
    let Some(engine) = parts.first() else {
        return Err("ERR Invalid engine in script shebang".into());
    };
    if engine != "#!lua" {
        return Err(format!("ERR Unexpected engine in script shebang: {engine}"));
    }
    let mut flags = ScriptFlags::default();
    for part in &parts[1..] {
        let Some(list) = part.strip_prefix("flags=") else {
            return Err(format!("ERR Unknown lua shebang option: {part}"));
        };
        for name in list.split(',').filter(|n| !n.is_empty()) {
            match ScriptFlags::parse_name(name) {
                Some(f) => flags = flags.with(f),
                None => return Err(format!("ERR Unexpected flag in script shebang: {name}")),
            }
        }
    }
    Ok((flags, end))
}

/// Splits a line into words as Redis splits redis.conf lines and shebangs: blanks separate
/// words; a "double" or 'single' quoted part (anywhere in a word) keeps blanks, with escapes
/// in double quotes; a closing quote must end the word. None on an unbalanced or misplaced
/// quote.
pub fn split_args(line: &str) -> Option<Vec<String>> {
    let mut words = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            return Some(words);
        }
        let mut word = String::new();
        while let Some(&c) = chars.peek() {
            if c.is_whitespace() {
                break;
            }
            chars.next();
            if c == '"' || c == '\'' {
                loop {
                    match chars.next()? {
                        q if q == c => break,
                        '\\' if c == '"' => word.push(chars.next()?),
                        other => word.push(other),
                    }
                }
                if chars.peek().is_some_and(|n| !n.is_whitespace()) {
                    return None;
                }
            } else {
                word.push(c);
            }
        }
        words.push(word);
    }
}

/// Everything scripting keeps in the server state.
pub struct Scripting {
    /// The Lua state EVAL scripts run in. Taken out while a script runs (scripts cannot reach
    /// it: EVAL and SCRIPT are refused inside scripts).
    pub eval_vm: Option<LuaVm>,
    pub scripts: cache::ScriptCache,
    pub functions_vm: Option<LuaVm>,
    pub libraries: library::Libraries,
    /// The client scripts' commands run as (its own selected database, no connection).
    pub script_client: Option<Box<ClientState>>,
    /// DEBUG SET-DISABLE-DENY-SCRIPTS: scripts may call noscript commands.
    pub allow_noscript_commands: bool,
    /// The script or function running now (a busy one can be looked at and killed).
    pub running: Option<slow::RunningScript>,
}

impl Default for Scripting {
    fn default() -> Self {
        Self::new()
    }
}

impl Scripting {
    pub fn new() -> Self {
        moonkv_lua::set_load_logger(crate::log::script_log);
        let mut client = ClientState::new(0, String::new(), String::new(), 0, true);
        client.in_script = true;
        Scripting {
            eval_vm: Some(LuaVm::new(VmKind::Eval)),
            scripts: cache::ScriptCache::default(),
            functions_vm: Some(LuaVm::new(VmKind::Functions)),
            libraries: library::Libraries::default(),
            script_client: Some(Box::new(client)),
            allow_noscript_commands: false,
            running: None,
        }
    }

    /// The kind of script keeping the server busy (run past `busy-reply-threshold`), if any.
    pub fn busy(&self) -> Option<VmKind> {
        self.running
            .as_ref()
            .filter(|r| r.timed_out)
            .map(|r| r.kind)
    }

    fn slot(&mut self, kind: VmKind) -> &mut Option<LuaVm> {
        match kind {
            VmKind::Eval => &mut self.eval_vm,
            VmKind::Functions => &mut self.functions_vm,
        }
    }

    /// Puts a VM back after a run. If its slot was filled meanwhile (SCRIPT FLUSH, FUNCTION
    /// FLUSH or DEBUG RELOAD from inside the script), the scripts and functions now point into
    /// the new VM: the one that ran is stale and is dropped.
    pub fn return_vm(&mut self, kind: VmKind, vm: LuaVm) {
        let slot = self.slot(kind);
        if slot.is_none() {
            *slot = Some(vm);
        }
    }

    /// Replaces a VM that a panic went through (its Lua state may be inconsistent) with a
    /// fresh one, into which the cached scripts or the libraries are compiled again.
    pub fn replace_damaged_vm(&mut self, kind: VmKind) {
        let mut vm = LuaVm::new(kind);
        match kind {
            VmKind::Eval => self.scripts.recompile_into(&mut vm),
            VmKind::Functions => self.libraries = self.libraries.reload_into(&mut vm),
        }
        *self.slot(kind) = Some(vm);
    }

    /// SCRIPT FLUSH: forgets every script and starts a fresh Lua state.
    pub fn flush_scripts(&mut self) {
        self.scripts = cache::ScriptCache::default();
        self.eval_vm = Some(LuaVm::new(VmKind::Eval));
    }

    /// FUNCTION FLUSH: drops every library and starts a fresh functions state.
    pub fn flush_functions(&mut self) {
        self.libraries = library::Libraries::default();
        self.functions_vm = Some(LuaVm::new(VmKind::Functions));
    }

    pub fn eval_vm_memory(&self) -> usize {
        self.eval_vm.as_ref().map_or(0, LuaVm::used_memory)
    }

    pub fn functions_vm_memory(&self) -> usize {
        self.functions_vm.as_ref().map_or(0, LuaVm::used_memory)
    }
}

/// The flags a script or function that `args` would run declares, for admission (Redis's
/// getCommandFlags): from an EVAL body's shebang, a cached script or a function. None when
/// it is not known yet (the command then fails on its own).
pub fn declared_flags(
    state: &ServerState,
    spec: &CommandSpec,
    args: &[Bytes],
) -> Option<ScriptFlags> {
    let target = args.get(1)?;
    match spec.name {
        "eval" | "eval_ro" => parse_eval_shebang(target).ok().map(|(flags, _)| flags),
        "evalsha" | "evalsha_ro" => cache::parse_sha(target)
            .and_then(|sha| state.scripting.scripts.peek(&sha))
            .map(|s| s.flags),
        "fcall" | "fcall_ro" => state
            .scripting
            .libraries
            .function(&String::from_utf8_lossy(target))
            .map(|f| f.flags),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shebangs_parse_like_redis() {
        assert_eq!(
            parse_eval_shebang(b"return 1").unwrap().0,
            ScriptFlags::default().with(ScriptFlags::EVAL_COMPAT)
        );
        let (flags, at) = parse_eval_shebang(b"#!lua flags=no-writes,allow-oom\nreturn 1").unwrap();
        assert!(
            flags.has(ScriptFlags::NO_WRITES)
                && flags.has(ScriptFlags::ALLOW_OOM)
                && !flags.has(ScriptFlags::EVAL_COMPAT)
        );
        assert_eq!(at, 31);
        assert_eq!(
            parse_eval_shebang(b"#!lua\nreturn 1").unwrap().0,
            ScriptFlags::default()
        );
        assert_eq!(
            parse_eval_shebang(b"#!lua flags=bad\n").unwrap_err(),
            "ERR Unexpected flag in script shebang: bad"
        );
        assert_eq!(
            parse_eval_shebang(b"#!python\n").unwrap_err(),
            "ERR Unexpected engine in script shebang: #!python"
        );
        assert_eq!(
            parse_eval_shebang(b"#!lua foo=bar\n").unwrap_err(),
            "ERR Unknown lua shebang option: foo=bar"
        );
        assert_eq!(
            parse_eval_shebang(b"#!lua").unwrap_err(),
            "ERR Invalid script shebang"
        );
        assert_eq!(
            split_args(r#"#!lua name="foo bar" flags='x'"#).unwrap(),
            ["#!lua", "name=foo bar", "flags=x"]
        );
        assert_eq!(split_args(r#"a "b"c"#), None);
    }
}
