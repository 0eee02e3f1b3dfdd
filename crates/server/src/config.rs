//! Configuration: every directive moonkv understands, described once as data. The same table
//! parses redis.conf files and `--directive value` arguments at start-up and serves CONFIG
//! GET/SET at run time, so both accept exactly the same names, aliases and values.

use moonkv_keyspace::glob_match;
use moonkv_protocol::number::parse_i64;
use moonkv_protocol::split_args;
use std::collections::HashMap;

/// What values a directive accepts.
#[derive(Clone, Copy, Debug)]
pub enum Kind {
    /// `yes` / `no`.
    Bool,
    /// An integer within bounds.
    Int { min: i64, max: i64 },
    /// A byte size (`100mb`, `1gb`, `512`) within bounds, printed back in bytes.
    Memory { min: i64, max: i64 },
    /// One word from a fixed set.
    Enum(&'static [&'static str]),
    /// Free text (possibly empty).
    Text,
    /// A list of words (e.g. `bind`, `save`), stored space separated.
    Words,
    /// Validated and normalized by a function (e.g. `notify-keyspace-events`).
    Custom(fn(&str) -> Result<String, String>),
}

/// One configuration directive.
pub struct Directive {
    pub name: &'static str,
    pub alias: Option<&'static str>,
    pub kind: Kind,
    pub default: &'static str,
    /// False for settings that only take effect at start-up.
    pub mutable: bool,
    /// Hidden from `CONFIG GET *` like Redis's sensitive configs are not: only for aliases.
    pub sensitive: bool,
}

const fn d(name: &'static str, kind: Kind, default: &'static str) -> Directive {
    Directive {
        name,
        alias: None,
        kind,
        default,
        mutable: true,
        sensitive: false,
    }
}

const fn fixed(name: &'static str, kind: Kind, default: &'static str) -> Directive {
    Directive {
        name,
        alias: None,
        kind,
        default,
        mutable: false,
        sensitive: false,
    }
}

const fn aliased(
    name: &'static str,
    alias: &'static str,
    kind: Kind,
    default: &'static str,
) -> Directive {
    Directive {
        name,
        alias: Some(alias),
        kind,
        default,
        mutable: true,
        sensitive: false,
    }
}

const BOOL: Kind = Kind::Bool;
const fn int(min: i64, max: i64) -> Kind {
    Kind::Int { min, max }
}
const MEM: Kind = Kind::Memory {
    min: 0,
    max: i64::MAX,
};
/// Request size limits may not go below 1 MB, as in Redis.
const MEM_AT_LEAST_1MB: Kind = Kind::Memory {
    min: 1024 * 1024,
    max: i64::MAX,
};
const TEXT: Kind = Kind::Text;
const WORDS: Kind = Kind::Words;
const INT_MAX: i64 = i32::MAX as i64;
const LONG_MAX: i64 = i64::MAX;

const EVICTION_POLICIES: &[&str] = &[
    "volatile-lru",
    "volatile-lfu",
    "volatile-random",
    "volatile-ttl",
    "allkeys-lru",
    "allkeys-lfu",
    "allkeys-random",
    "noeviction",
];
const LOG_LEVELS: &[&str] = &["debug", "verbose", "notice", "warning", "nothing"];
const PROTECTED_CONFIGS: &[&str] = &["no", "yes", "local"];
const FSYNC_POLICIES: &[&str] = &["always", "everysec", "no"];
const SUPERVISED: &[&str] = &["upstart", "systemd", "auto", "no"];

/// `replicaof`: empty, or a host and a port.
fn parse_replicaof(value: &str) -> Result<String, String> {
    let words: Vec<&str> = value.split_whitespace().collect();
    match words.as_slice() {
        [] => Ok(String::new()),
        [host, port] if port.parse::<u16>().is_ok() => Ok(format!("{} {}", host, port)),
        _ => Err("Invalid master port".into()),
    }
}

/// Every directive, in the order `CONFIG GET *` lists them.
pub static DIRECTIVES: &[Directive] = &[
    fixed("port", int(0, 65535), "6379"),
    fixed("bind", WORDS, "127.0.0.1 -::1"),
    d("protected-mode", BOOL, "yes"),
    fixed("daemonize", BOOL, "no"),
    d("requirepass", TEXT, ""),
    d("masterauth", TEXT, ""),
    d("masteruser", TEXT, ""),
    d("replica-announce-ip", TEXT, ""),
    aliased(
        "replica-announce-port",
        "slave-announce-port",
        int(0, 65535),
        "0",
    ),
    fixed("databases", int(1, INT_MAX), "16"),
    d("hz", int(0, INT_MAX), "10"),
    d("maxclients", int(1, INT_MAX), "10000"),
    d("timeout", int(0, INT_MAX), "0"),
    d("tcp-keepalive", int(0, INT_MAX), "300"),
    fixed("tcp-backlog", int(0, INT_MAX), "511"),
    // Accepted so that configuration files naming a socket load; moonkv listens on TCP only
    // and says so at start-up.
    fixed("unixsocket", TEXT, ""),
    d("loglevel", Kind::Enum(LOG_LEVELS), "notice"),
    fixed("logfile", TEXT, ""),
    fixed("pidfile", TEXT, ""),
    fixed("supervised", Kind::Enum(SUPERVISED), "no"),
    fixed("always-show-logo", BOOL, "no"),
    d("dir", TEXT, "."),
    d("dbfilename", Kind::Custom(base_name_only), "dump.rdb"),
    // Redis's built-in save points: an hour after 1 change, 5 minutes after 100, a minute
    // after 10000.
    d(
        "save",
        Kind::Custom(crate::persist::normalize_save_points),
        "3600 1 300 100 60 10000",
    ),
    d("appendonly", BOOL, "no"),
    fixed("appendfilename", TEXT, "appendonly.aof"),
    fixed("appenddirname", TEXT, "appendonlydir"),
    d("appendfsync", Kind::Enum(FSYNC_POLICIES), "everysec"),
    d("maxmemory", MEM, "0"),
    d(
        "maxmemory-policy",
        Kind::Enum(EVICTION_POLICIES),
        "noeviction",
    ),
    d("maxmemory-samples", int(1, INT_MAX), "5"),
    d("proto-max-bulk-len", MEM_AT_LEAST_1MB, "536870912"),
    d("client-query-buffer-limit", MEM_AT_LEAST_1MB, "1073741824"),
    fixed("enable-debug-command", Kind::Enum(PROTECTED_CONFIGS), "no"),
    fixed(
        "enable-protected-configs",
        Kind::Enum(PROTECTED_CONFIGS),
        "no",
    ),
    fixed("enable-module-command", Kind::Enum(PROTECTED_CONFIGS), "no"),
    d("lazyfree-lazy-eviction", BOOL, "no"),
    d("lazyfree-lazy-expire", BOOL, "no"),
    d("lazyfree-lazy-server-del", BOOL, "no"),
    d("lazyfree-lazy-user-del", BOOL, "no"),
    d("lazyfree-lazy-user-flush", BOOL, "no"),
    aliased(
        "busy-reply-threshold",
        "lua-time-limit",
        int(0, LONG_MAX),
        "5000",
    ),
    // moonkv's own: how much one script run may add to the Lua heap (0: no limit). See the
    // README for why 1gb.
    d("script-memory-limit", MEM, "1073741824"),
    // moonkv's own: how many scripts that only came through EVAL stay cached, least recently
    // used first out (0: no bound, Redis 7.0's behaviour); SCRIPT LOAD'ed ones always stay.
    d("script-eval-cache-size", int(0, INT_MAX), "500"),
    // moonkv's own: scripts keep an undo journal, so SCRIPT KILL can stop one that already
    // wrote by undoing its writes. See the README for its cost.
    d("script-kill-undo", BOOL, "yes"),
    d(
        "notify-keyspace-events",
        Kind::Custom(crate::notify::normalize_config),
        "",
    ),
    d("slowlog-log-slower-than", int(-1, LONG_MAX), "10000"),
    d("slowlog-max-len", int(0, LONG_MAX), "128"),
    d("latency-monitor-threshold", int(0, LONG_MAX), "0"),
    d("active-expire-effort", int(1, 10), "1"),
    d("activerehashing", BOOL, "yes"),
    aliased(
        "list-max-listpack-size",
        "list-max-ziplist-size",
        int(i32::MIN as i64, INT_MAX),
        "-2",
    ),
    d("list-compress-depth", int(0, INT_MAX), "0"),
    aliased(
        "hash-max-listpack-entries",
        "hash-max-ziplist-entries",
        int(0, LONG_MAX),
        "512",
    ),
    aliased(
        "hash-max-listpack-value",
        "hash-max-ziplist-value",
        int(0, LONG_MAX),
        "64",
    ),
    d("set-max-intset-entries", int(0, LONG_MAX), "512"),
    aliased(
        "zset-max-listpack-entries",
        "zset-max-ziplist-entries",
        int(0, LONG_MAX),
        "128",
    ),
    aliased(
        "zset-max-listpack-value",
        "zset-max-ziplist-value",
        int(0, LONG_MAX),
        "64",
    ),
    d("stream-node-max-bytes", MEM, "4096"),
    d("stream-node-max-entries", int(0, LONG_MAX), "100"),
    d("hll-sparse-max-bytes", MEM, "3000"),
    fixed("io-threads", int(1, 128), "1"),
    d("io-threads-do-reads", BOOL, "no"),
    aliased("replica-read-only", "slave-read-only", BOOL, "yes"),
    aliased(
        "replica-serve-stale-data",
        "slave-serve-stale-data",
        BOOL,
        "yes",
    ),
    d("repl-diskless-sync", BOOL, "yes"),
    d("repl-backlog-size", MEM, "1048576"),
    d("repl-backlog-ttl", int(0, INT_MAX), "3600"),
    aliased(
        "repl-ping-replica-period",
        "repl-ping-slave-period",
        int(1, INT_MAX),
        "10",
    ),
    d("repl-timeout", int(1, INT_MAX), "60"),
    d("repl-diskless-sync-delay", int(0, INT_MAX), "5"),
    d("repl-diskless-sync-max-replicas", int(0, INT_MAX), "0"),
    d(
        "repl-diskless-load",
        Kind::Enum(&["disabled", "on-empty-db", "swapdb"]),
        "disabled",
    ),
    d("repl-disable-tcp-nodelay", BOOL, "no"),
    aliased("replica-priority", "slave-priority", int(0, INT_MAX), "100"),
    aliased("replica-lazy-flush", "slave-lazy-flush", BOOL, "no"),
    aliased(
        "replica-ignore-maxmemory",
        "slave-ignore-maxmemory",
        BOOL,
        "yes",
    ),
    // `replicaof <host> <port>`: start as a replica (REPLICAOF changes it at run time).
    Directive {
        name: "replicaof",
        alias: Some("slaveof"),
        kind: Kind::Custom(parse_replicaof),
        default: "",
        mutable: false,
        sensitive: false,
    },
    d("rdb-key-save-delay", int(i32::MIN as i64, INT_MAX), "0"),
    // Debugging and testing knobs Redis's own test suite sets in its config files.
    d(
        "sanitize-dump-payload",
        Kind::Enum(&["no", "yes", "clients"]),
        "no",
    ),
    d("aof-disable-auto-gc", BOOL, "no"),
    d("use-exit-on-panic", BOOL, "no"),
    d("crash-memcheck-enabled", BOOL, "yes"),
    d(
        "loading-process-events-interval-bytes",
        int(1024, INT_MAX),
        "2097152",
    ),
    // Accepted so configuration files written for Redis load; moonkv has no use for them.
    d(
        "proc-title-template",
        TEXT,
        "{title} {listen-addr} {server-mode}",
    ),
    d("dynamic-hz", BOOL, "yes"),
    d("ignore-warnings", TEXT, ""),
    d("replica-ignore-disk-write-errors", BOOL, "no"),
    d("oom-score-adj-values", WORDS, "0 200 800"),
    fixed("unixsocketperm", int(0, 0o777), "0"),
    d("bind-source-addr", TEXT, ""),
    d("socket-mark-id", int(0, u32::MAX as i64), "0"),
    fixed("syslog-enabled", BOOL, "no"),
    fixed("syslog-ident", TEXT, "redis"),
    fixed(
        "syslog-facility",
        Kind::Enum(&[
            "user", "local0", "local1", "local2", "local3", "local4", "local5", "local6", "local7",
        ]),
        "local0",
    ),
    d("active-defrag-ignore-bytes", MEM, "104857600"),
    d("active-defrag-threshold-lower", int(0, 1000), "10"),
    d("active-defrag-threshold-upper", int(0, 1000), "100"),
    d("active-defrag-cycle-min", int(1, 99), "1"),
    d("active-defrag-cycle-max", int(1, 99), "25"),
    d("active-defrag-max-scan-fields", int(1, LONG_MAX), "1000"),
    fixed("server_cpulist", TEXT, ""),
    fixed("bio_cpulist", TEXT, ""),
    fixed("aof_rewrite_cpulist", TEXT, ""),
    fixed("bgsave_cpulist", TEXT, ""),
    d("key-load-delay", int(i32::MIN as i64, INT_MAX), "0"),
    d("rdb-del-sync-files", BOOL, "no"),
    d("aof-rewrite-incremental-fsync", BOOL, "yes"),
    d("rdb-save-incremental-fsync", BOOL, "yes"),
    d("auto-aof-rewrite-percentage", int(0, INT_MAX), "100"),
    d("auto-aof-rewrite-min-size", MEM, "67108864"),
    d("aof-load-truncated", BOOL, "yes"),
    d("aof-timestamp-enabled", BOOL, "no"),
    d("no-appendfsync-on-rewrite", BOOL, "no"),
    d("maxmemory-clients", MEM, "0"),
    d(
        "propagation-error-behavior",
        Kind::Enum(&["ignore", "panic", "panic-on-replicas"]),
        "ignore",
    ),
    d("replica-announced", BOOL, "yes"),
    d("cluster-allow-reads-when-down", BOOL, "no"),
    d("cluster-node-timeout", int(0, LONG_MAX), "15000"),
    d("cluster-require-full-coverage", BOOL, "yes"),
    aliased(
        "min-replicas-to-write",
        "min-slaves-to-write",
        int(0, INT_MAX),
        "0",
    ),
    aliased(
        "min-replicas-max-lag",
        "min-slaves-max-lag",
        int(0, INT_MAX),
        "10",
    ),
    d("lua-replicate-commands", BOOL, "yes"),
    // Redis 7.0.15 offers scripts setfenv, getfenv and newproxy only when this is yes; moonkv
    // never does yet, and warns at start-up when asked to.
    fixed("lua-enable-deprecated-api", BOOL, "no"),
    d(
        "client-output-buffer-limit",
        WORDS,
        "normal 0 0 0 slave 268435456 67108864 60 pubsub 33554432 8388608 60",
    ),
    d("latency-tracking", BOOL, "yes"),
    d("latency-tracking-info-percentiles", WORDS, "50 99 99.9"),
    d("crash-log-enabled", BOOL, "yes"),
    d("crash-memcheck-enabled", BOOL, "yes"),
    d("set-proc-title", BOOL, "yes"),
    d("close-on-replica-write", BOOL, "no"),
    d("lfu-log-factor", int(0, INT_MAX), "10"),
    d("lfu-decay-time", int(0, INT_MAX), "1"),
    d("maxmemory-eviction-tenacity", int(0, 100), "10"),
    d("activedefrag", BOOL, "no"),
    d("jemalloc-bg-thread", BOOL, "yes"),
    d("rdbcompression", BOOL, "yes"),
    d("rdbchecksum", BOOL, "yes"),
    d("stop-writes-on-bgsave-error", BOOL, "yes"),
    d("aof-use-rdb-preamble", BOOL, "yes"),
    d("cluster-enabled", BOOL, "no"),
    d("tracking-table-max-keys", int(0, LONG_MAX), "1000000"),
    d("acllog-max-len", int(0, LONG_MAX), "128"),
    d(
        "oom-score-adj",
        Kind::Enum(&["no", "yes", "relative", "absolute"]),
        "no",
    ),
    d("disable-thp", BOOL, "yes"),
    d("shutdown-timeout", int(0, INT_MAX), "10"),
    d("shutdown-on-sigint", WORDS, "default"),
    d("shutdown-on-sigterm", WORDS, "default"),
];

pub fn find_directive(name: &str) -> Option<&'static Directive> {
    let lower = name.to_ascii_lowercase();
    DIRECTIVES
        .iter()
        .find(|d| d.name == lower || d.alias == Some(lower.as_str()))
}

/// Parses `1gb`, `100mb`, `4k`, `512` like Redis's memtoull.
pub fn parse_memory(s: &str) -> Option<i64> {
    let lower = s.to_ascii_lowercase();
    let split = lower
        .find(|c: char| !c.is_ascii_digit() && c != '-')
        .unwrap_or(lower.len());
    let (digits, unit) = lower.split_at(split);
    let mult: i64 = match unit {
        "" | "b" => 1,
        "k" => 1000,
        "kb" => 1024,
        "m" => 1000 * 1000,
        "mb" => 1024 * 1024,
        "g" => 1000 * 1000 * 1000,
        "gb" => 1024 * 1024 * 1024,
        _ => return None,
    };
    parse_i64(digits.as_bytes())?.checked_mul(mult)
}

/// Checks `value` against the directive and returns its canonical stored form, or Redis's
/// explanation of what is wrong.
pub fn normalize(dir: &Directive, value: &str) -> Result<String, String> {
    match dir.kind {
        Kind::Bool => match value.to_ascii_lowercase().as_str() {
            "yes" => Ok("yes".into()),
            "no" => Ok("no".into()),
            _ => Err("argument must be 'yes' or 'no'".into()),
        },
        Kind::Int { min, max } => {
            let v =
                parse_i64(value.as_bytes()).ok_or("argument couldn't be parsed into an integer")?;
            if v < min || v > max {
                return Err(format!(
                    "argument must be between {} and {} inclusive",
                    min, max
                ));
            }
            Ok(v.to_string())
        }
        Kind::Memory { min, max } => {
            let v = parse_memory(value)
                .filter(|&v| v >= 0)
                .ok_or("argument must be a memory value")?;
            if v < min || v > max {
                return Err(format!(
                    "argument must be between {} and {} inclusive",
                    min, max
                ));
            }
            Ok(v.to_string())
        }
        Kind::Enum(choices) => {
            let lower = value.to_ascii_lowercase();
            if choices.contains(&lower.as_str()) {
                Ok(lower)
            } else {
                Err(format!(
                    "argument(s) must be one of the following: {}",
                    choices.join(", ")
                ))
            }
        }
        Kind::Text | Kind::Words => Ok(value.to_string()),
        Kind::Custom(check) => check(value),
    }
}

/// `dbfilename` names a file inside `dir`, never a path (as Redis insists since 7.0).
fn base_name_only(value: &str) -> Result<String, String> {
    if value.contains('/') {
        return Err("dbfilename can't be a path, just a filename".into());
    }
    Ok(value.to_string())
}

/// Live configuration values, keyed by canonical directive name.
#[derive(Clone)]
pub struct Config {
    values: HashMap<&'static str, String>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            values: DIRECTIVES
                .iter()
                .map(|d| (d.name, d.default.to_string()))
                .collect(),
        }
    }
}

/// A start-up configuration error, reported like redis-server does before exiting with 1.
#[derive(Debug)]
pub struct ConfigFileError {
    pub line_number: usize,
    pub line: String,
    pub reason: String,
}

impl Config {
    pub fn get(&self, name: &str) -> &str {
        self.values.get(name).map(String::as_str).unwrap_or("")
    }

    pub fn get_i64(&self, name: &str) -> i64 {
        parse_i64(self.get(name).as_bytes()).unwrap_or(0)
    }

    pub fn get_bool(&self, name: &str) -> bool {
        self.get(name) == "yes"
    }

    /// Sets a directive after validation. `at_startup` allows immutable ones.
    pub fn set(&mut self, name: &str, value: &str, at_startup: bool) -> Result<(), String> {
        let dir = find_directive(name)
            .ok_or_else(|| "Bad directive or wrong number of arguments".to_string())?;
        if !dir.mutable && !at_startup {
            return Err("can't set immutable config".into());
        }
        let canonical = normalize(dir, value)?;
        self.values.insert(dir.name, canonical);
        Ok(())
    }

    /// Applies a redis.conf text. Directives take one value, except list-valued ones (bind,
    /// save, client-output-buffer-limit) whose words are joined.
    pub fn apply_text(&mut self, text: &str) -> Result<(), ConfigFileError> {
        let mut save_lines_seen = false;
        for (i, raw_line) in text.lines().enumerate() {
            let line = raw_line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let fail = |reason: &str| ConfigFileError {
                line_number: i + 1,
                line: line.to_string(),
                reason: reason.to_string(),
            };
            let words = split_args(line.as_bytes())
                .ok_or_else(|| fail("Unbalanced quotes in configuration line"))?;
            let words: Vec<String> = words
                .into_iter()
                .map(|w| String::from_utf8_lossy(&w).into_owned())
                .collect();
            let Some((name, values)) = words.split_first() else {
                continue;
            };
            let Some(dir) = find_directive(name) else {
                return Err(fail("Bad directive or wrong number of arguments"));
            };
            let value = match (dir.kind, values.len()) {
                (Kind::Words, _) => values.join(" "),
                // Each `save` line adds save points to those of earlier lines; the first
                // replaces the defaults, and `save ""` clears them.
                (_, _) if dir.name == "save" => {
                    let earlier = if save_lines_seen {
                        self.get("save")
                    } else {
                        ""
                    };
                    save_lines_seen = true;
                    let cleared = values.iter().all(String::is_empty);
                    let earlier = if cleared { "" } else { earlier };
                    format!("{} {}", earlier, values.join(" "))
                        .trim()
                        .to_string()
                }
                (Kind::Text | Kind::Custom(_), 0) => String::new(),
                (_, 1) => values[0].clone(),
                // `replicaof <host> <port>` takes two.
                (_, 2) if dir.name == "replicaof" => values.join(" "),
                _ => return Err(fail("wrong number of arguments")),
            };
            if let Err(reason) = self.set(dir.name, &value, true) {
                return Err(fail(&reason));
            }
        }
        Ok(())
    }

    /// Name/value pairs matching any of the glob patterns, each directive once (CONFIG GET).
    /// A pattern naming an alias exactly answers under the alias, as Redis does.
    pub fn matching(&self, patterns: &[&[u8]]) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = Vec::new();
        for dir in DIRECTIVES {
            for pattern in patterns {
                let hit_name = glob_match(pattern, dir.name.as_bytes(), true);
                let hit_alias = dir
                    .alias
                    .is_some_and(|a| glob_match(pattern, a.as_bytes(), true));
                if hit_name && !out.iter().any(|(n, _)| n == dir.name) {
                    out.push((dir.name.to_string(), self.get(dir.name).to_string()));
                }
                if hit_alias {
                    let alias = dir.alias.unwrap_or_default();
                    if !out.iter().any(|(n, _)| n == alias) {
                        out.push((alias.to_string(), self.get(dir.name).to_string()));
                    }
                }
            }
        }
        out
    }
}

/// Turns `redis-server`-style arguments (`[file] --port 7000 --save "" ...`) into config text,
/// appended after the file's contents so the command line wins.
pub fn args_to_config_text(args: &[String]) -> Result<(Option<String>, String), String> {
    let mut file = None;
    let mut text = String::new();
    let mut i = 0;
    if let Some(first) = args.first() {
        if !first.starts_with("--") {
            file = Some(first.clone());
            i = 1;
        }
    }
    let mut current: Option<String> = None;
    while i < args.len() {
        let arg = &args[i];
        if let Some(name) = arg.strip_prefix("--") {
            if let Some(line) = current.take() {
                text.push_str(&line);
                text.push('\n');
            }
            if name.is_empty() {
                return Err("empty option name".into());
            }
            current = Some(name.to_string());
        } else {
            let Some(line) = current.as_mut() else {
                return Err(format!("unexpected argument '{}'", arg));
            };
            line.push(' ');
            line.push_str(&quote_config_word(arg));
        }
        i += 1;
    }
    if let Some(line) = current {
        text.push_str(&line);
        text.push('\n');
    }
    Ok((file, text))
}

fn quote_config_word(w: &str) -> String {
    if !w.is_empty()
        && !w.contains(|c: char| c.is_whitespace() || c == '"' || c == '\'' || c == '\\')
    {
        return w.to_string();
    }
    let mut s = String::from("\"");
    for c in w.chars() {
        match c {
            '"' => s.push_str("\\\""),
            '\\' => s.push_str("\\\\"),
            '\n' => s.push_str("\\n"),
            _ => s.push(c),
        }
    }
    s.push('"');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_validation() {
        let mut c = Config::default();
        assert_eq!(c.get("port"), "6379");
        assert!(c.set("maxmemory", "1gb", false).is_ok());
        assert_eq!(c.get("maxmemory"), "1073741824");
        assert_eq!(
            c.set("maxmemory", "lots", false).unwrap_err(),
            "argument must be a memory value"
        );
        assert_eq!(
            c.set("appendonly", "maybe", false).unwrap_err(),
            "argument must be 'yes' or 'no'"
        );
        assert_eq!(
            c.set("port", "7000", false).unwrap_err(),
            "can't set immutable config"
        );
        assert!(c.set("lua-time-limit", "100", false).is_ok());
        assert_eq!(c.get("busy-reply-threshold"), "100");
        assert_eq!(
            c.set("maxmemory-samples", "0", false).unwrap_err(),
            "argument must be between 1 and 2147483647 inclusive"
        );
        assert_eq!(
            c.set("maxmemory", "-1", false).unwrap_err(),
            "argument must be a memory value"
        );
        assert_eq!(
            c.set("proto-max-bulk-len", "1000", false).unwrap_err(),
            "argument must be between 1048576 and 9223372036854775807 inclusive"
        );
    }

    #[test]
    fn file_and_command_line() {
        let (file, text) =
            args_to_config_text(&["--port".into(), "7000".into(), "--save".into(), "".into()])
                .unwrap();
        assert!(file.is_none());
        let mut c = Config::default();
        c.apply_text(&text).unwrap();
        assert_eq!(c.get("port"), "7000");
        assert_eq!(c.get("save"), "");
        let err = c.apply_text("port 1\nnot-a-thing 3\n").unwrap_err();
        assert_eq!(err.line_number, 2);
        assert_eq!(err.reason, "Bad directive or wrong number of arguments");
    }

    #[test]
    fn config_get_patterns() {
        let c = Config::default();
        let got = c.matching(&[b"maxmemory*"]);
        assert!(got.iter().any(|(n, _)| n == "maxmemory-policy"));
        let got = c.matching(&[b"lua-time-limit"]);
        assert_eq!(
            got,
            vec![("lua-time-limit".to_string(), "5000".to_string())]
        );
    }
}
