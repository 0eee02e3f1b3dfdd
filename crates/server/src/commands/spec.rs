//! Commands as data: name, arity, flags, key positions and ACL categories. COMMAND INFO/DOCS,
//! GETKEYS, arity checks, MULTI/script rules and ACL all read this table.

use super::Ctx;
use bytes::Bytes;

/// Command flags, named as COMMAND INFO prints them.
pub mod flags {
    pub const WRITE: u32 = 1 << 0;
    pub const READONLY: u32 = 1 << 1;
    pub const DENYOOM: u32 = 1 << 2;
    pub const ADMIN: u32 = 1 << 3;
    pub const PUBSUB: u32 = 1 << 4;
    pub const NOSCRIPT: u32 = 1 << 5;
    pub const BLOCKING: u32 = 1 << 6;
    pub const LOADING: u32 = 1 << 7;
    pub const STALE: u32 = 1 << 8;
    pub const SKIP_MONITOR: u32 = 1 << 9;
    pub const SKIP_SLOWLOG: u32 = 1 << 10;
    pub const FAST: u32 = 1 << 11;
    pub const NO_AUTH: u32 = 1 << 12;
    pub const MAY_REPLICATE: u32 = 1 << 13;
    pub const NO_MANDATORY_KEYS: u32 = 1 << 14;
    pub const NO_MULTI: u32 = 1 << 15;
    pub const ALLOW_BUSY: u32 = 1 << 16;
    /// Not a COMMAND INFO flag: the command's reply depends on randomness or time, so a script
    /// that calls it is non-deterministic (Redis's `nondeterministic_output` tip).
    pub const RANDOM: u32 = 1 << 17;
    /// Not a COMMAND INFO flag: keys are found by a function, not by first/last/step.
    pub const MOVABLE_KEYS: u32 = 1 << 18;
    /// Not a COMMAND INFO flag: the command is not replicated itself; the commands it runs
    /// are (EXEC, scripts).
    pub const PROPAGATES_INNER: u32 = 1 << 19;
    /// Not a COMMAND INFO flag: runs a script or function whose declared flags replace the
    /// command's WRITE, DENYOOM and STALE for admission (EVAL*, FCALL*).
    pub const RUNS_SCRIPT: u32 = 1 << 20;

    /// (flag, name) in the order Redis lists them.
    pub const NAMES: &[(u32, &str)] = &[
        (WRITE, "write"),
        (READONLY, "readonly"),
        (DENYOOM, "denyoom"),
        (ADMIN, "admin"),
        (PUBSUB, "pubsub"),
        (NOSCRIPT, "noscript"),
        (BLOCKING, "blocking"),
        (LOADING, "loading"),
        (STALE, "stale"),
        (SKIP_MONITOR, "skip_monitor"),
        (SKIP_SLOWLOG, "skip_slowlog"),
        (FAST, "fast"),
        (NO_AUTH, "no_auth"),
        (MAY_REPLICATE, "may_replicate"),
        (NO_MANDATORY_KEYS, "no_mandatory_keys"),
        (NO_MULTI, "no_multi"),
        (MOVABLE_KEYS, "movablekeys"),
        (ALLOW_BUSY, "allow_busy"),
    ];
}

pub type Handler = fn(&mut Ctx);

/// Finds key argument positions for commands whose keys are not at fixed positions
/// (e.g. `MSET k v k v`, `EVAL script numkeys k...`). Returns indexes into the argument list,
/// or an error text for malformed arguments.
pub type KeyFinder = fn(&[Bytes]) -> Result<Vec<usize>, String>;

pub struct CommandSpec {
    /// Lowercase name; subcommands are `parent|sub`.
    pub name: &'static str,
    /// Redis arity: positive means exact, negative means at least |arity| (name included).
    pub arity: i32,
    pub flags: u32,
    /// First key index, last key index (negative counts from the end), step. (0,0,0): none.
    pub keys: (i32, i32, i32),
    /// ACL categories beyond the ones implied by flags, space separated, without `@`.
    pub categories: &'static str,
    pub group: &'static str,
    pub summary: &'static str,
    pub since: &'static str,
    pub handler: Handler,
    pub key_finder: Option<KeyFinder>,
    pub subcommands: &'static [CommandSpec],
}

impl CommandSpec {
    /// A command with the common defaults; fill the rest with struct update syntax.
    pub const fn new(
        name: &'static str,
        arity: i32,
        flags: u32,
        keys: (i32, i32, i32),
        categories: &'static str,
        handler: Handler,
    ) -> Self {
        CommandSpec {
            name,
            arity,
            flags,
            keys,
            categories,
            group: "generic",
            summary: "",
            since: "1.0.0",
            handler,
            key_finder: None,
            subcommands: &[],
        }
    }

    pub const fn group(mut self, group: &'static str) -> Self {
        self.group = group;
        self
    }

    pub const fn summary(mut self, summary: &'static str, since: &'static str) -> Self {
        self.summary = summary;
        self.since = since;
        self
    }

    pub const fn subcommands(mut self, subs: &'static [CommandSpec]) -> Self {
        self.subcommands = subs;
        self
    }

    pub const fn key_finder(mut self, finder: KeyFinder) -> Self {
        self.key_finder = Some(finder);
        self.flags |= flags::MOVABLE_KEYS;
        self
    }

    pub fn has(&self, flag: u32) -> bool {
        self.flags & flag != 0
    }

    pub fn arity_ok(&self, argc: usize) -> bool {
        let argc = argc as i64;
        let arity = self.arity as i64;
        if arity >= 0 {
            argc == arity
        } else {
            argc >= -arity
        }
    }

    /// ACL categories: the explicit ones plus those Redis derives from flags, in the fixed
    /// order Redis lists categories in.
    pub fn acl_categories(&self) -> Vec<String> {
        const ORDER: &[&str] = &[
            "keyspace",
            "read",
            "write",
            "set",
            "sortedset",
            "list",
            "hash",
            "string",
            "bitmap",
            "hyperloglog",
            "geo",
            "stream",
            "pubsub",
            "admin",
            "fast",
            "slow",
            "blocking",
            "dangerous",
            "connection",
            "transaction",
            "scripting",
        ];
        let mut cats: Vec<&str> = self.categories.split_whitespace().collect();
        let derived = [
            (self.has(flags::WRITE), "write"),
            (
                self.has(flags::READONLY) && !self.categories.contains("scripting"),
                "read",
            ),
            (self.has(flags::ADMIN), "admin"),
            (self.has(flags::ADMIN), "dangerous"),
            (self.has(flags::PUBSUB), "pubsub"),
            (self.has(flags::FAST), "fast"),
            (!self.has(flags::FAST), "slow"),
            (self.has(flags::BLOCKING), "blocking"),
        ];
        cats.extend(derived.iter().filter(|(on, _)| *on).map(|(_, c)| *c));
        cats.sort_by_key(|c| ORDER.iter().position(|o| o == c).unwrap_or(ORDER.len()));
        cats.dedup();
        cats.into_iter().map(String::from).collect()
    }

    /// Key argument indexes for these arguments (COMMAND GETKEYS, scripts, cluster later).
    pub fn key_positions(&self, args: &[Bytes]) -> Result<Vec<usize>, String> {
        if let Some(finder) = self.key_finder {
            return finder(args);
        }
        let (first, last, step) = self.keys;
        if first <= 0 {
            return Ok(Vec::new());
        }
        let argc = args.len() as i32;
        let last = if last < 0 { argc + last } else { last };
        let mut out = Vec::new();
        let mut i = first;
        while i <= last && i < argc {
            out.push(i as usize);
            i += step.max(1);
        }
        Ok(out)
    }
}
