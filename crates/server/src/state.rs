//! The state all clients share: databases, configuration, clients, pub/sub, statistics.
//! It lives behind one lock ([`crate::server::Shared`]); holding the lock is what makes a
//! command (or a whole transaction or script) atomic and gives every command one total order.

use crate::client::{ClientEntry, Outbound};
use crate::config::Config;
use bytes::Bytes;
use moonkv_keyspace::Db;
use moonkv_protocol::Protocol;
use rand::rngs::SmallRng;
use rand::SeedableRng;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Instant;

/// Settings read on hot paths, refreshed from [`Config`] whenever it changes.
#[derive(Clone, Debug)]
pub struct Settings {
    pub requirepass: Option<Vec<u8>>,
    pub proto_max_bulk_len: i64,
    pub client_query_buffer_limit: usize,
    pub maxclients: usize,
    pub hz: u32,
    pub debug_command_enabled: bool,
    pub lazyfree_user_flush: bool,
    pub lazyfree_user_del: bool,
    pub lazyfree_server_del: bool,
    pub lazyfree_expire: bool,
    /// Parsed `notify-keyspace-events` classes.
    pub notify_flags: u32,
    /// `maxmemory` in bytes; 0 means no limit.
    pub maxmemory: u64,
    /// Encoding thresholds of small collections (hash/zset-max-listpack-*, set-max-intset-entries).
    pub hash_limits: moonkv_keyspace::HashLimits,
    pub zset_limits: moonkv_keyspace::ZSetLimits,
    pub set_max_intset_entries: usize,
    /// `busy-reply-threshold` (`lua-time-limit`): how long a script runs before it is busy.
    pub busy_reply_threshold: std::time::Duration,
    /// `script-memory-limit`: how much one script run may add to the Lua heap (None: no
    /// limit).
    pub script_memory_limit: Option<usize>,
    /// `script-eval-cache-size`: how many scripts that only came through EVAL are kept
    /// (0: no bound).
    pub script_eval_cache_size: usize,
    /// `script-kill-undo`: scripts keep an undo journal, so one that wrote can still be
    /// killed.
    pub script_kill_undo: bool,
    /// `min-replicas-to-write`.
    pub min_replicas_to_write: usize,
    /// `aof-timestamp-enabled`.
    pub aof_timestamps: bool,
}

impl Settings {
    /// The encoding thresholds a loaded or restored value is built with.
    pub fn load_limits(&self) -> moonkv_persistence::rdb::LoadLimits {
        moonkv_persistence::rdb::LoadLimits {
            set_max_intset_entries: self.set_max_intset_entries,
            hash: self.hash_limits,
            zset: self.zset_limits,
        }
    }

    pub fn from_config(c: &Config) -> Self {
        let pass = c.get("requirepass");
        Settings {
            requirepass: (!pass.is_empty()).then(|| pass.as_bytes().to_vec()),
            proto_max_bulk_len: c.get_i64("proto-max-bulk-len"),
            client_query_buffer_limit: c.get_i64("client-query-buffer-limit").max(1024 * 1024)
                as usize,
            maxclients: c.get_i64("maxclients") as usize,
            hz: c.get_i64("hz").clamp(1, 500) as u32,
            // `local` would allow loopback connections only; every connection here is treated
            // as local for now, since the server binds to loopback by default.
            debug_command_enabled: matches!(c.get("enable-debug-command"), "yes" | "local"),
            lazyfree_user_flush: c.get_bool("lazyfree-lazy-user-flush"),
            lazyfree_user_del: c.get_bool("lazyfree-lazy-user-del"),
            lazyfree_server_del: c.get_bool("lazyfree-lazy-server-del"),
            lazyfree_expire: c.get_bool("lazyfree-lazy-expire"),
            notify_flags: crate::notify::parse_classes(c.get("notify-keyspace-events"))
                .unwrap_or(0),
            maxmemory: c.get_i64("maxmemory").max(0) as u64,
            hash_limits: moonkv_keyspace::HashLimits {
                max_entries: c.get_i64("hash-max-listpack-entries").max(0) as usize,
                max_value: c.get_i64("hash-max-listpack-value").max(0) as usize,
            },
            zset_limits: moonkv_keyspace::ZSetLimits {
                max_entries: c.get_i64("zset-max-listpack-entries").max(0) as usize,
                max_value: c.get_i64("zset-max-listpack-value").max(0) as usize,
            },
            set_max_intset_entries: c.get_i64("set-max-intset-entries").max(0) as usize,
            busy_reply_threshold: std::time::Duration::from_millis(
                c.get_i64("busy-reply-threshold").max(0) as u64,
            ),
            script_memory_limit: match c.get_i64("script-memory-limit") {
                n if n <= 0 => None,
                n => Some(n as usize),
            },
            script_eval_cache_size: c.get_i64("script-eval-cache-size").max(0) as usize,
            script_kill_undo: c.get_bool("script-kill-undo"),
            min_replicas_to_write: c.get_i64("min-replicas-to-write").max(0) as usize,
            aof_timestamps: c.get_bool("aof-timestamp-enabled"),
        }
    }
}

/// Per-command statistics (INFO commandstats).
#[derive(Default, Clone, Copy)]
pub struct CommandStats {
    pub calls: u64,
    pub usec: u64,
    pub rejected_calls: u64,
    pub failed_calls: u64,
}

#[derive(Default)]
pub struct Stats {
    pub total_connections_received: u64,
    pub total_commands_processed: u64,
    pub rejected_connections: u64,
    pub total_net_input_bytes: u64,
    pub total_net_output_bytes: u64,
    pub total_error_replies: u64,
    /// Error counts by error code (the first word of the error reply).
    pub errors: BTreeMap<String, u64>,
    /// Indexed like [`crate::commands::CommandTable::specs`].
    pub commands: Vec<CommandStats>,
    /// (time, processed) samples for instantaneous_ops_per_sec.
    pub ops_samples: Vec<(Instant, u64)>,
    pub peak_memory: u64,
    /// EVAL scripts dropped from the bounded cache (INFO evicted_scripts, as Redis 7.4).
    pub evicted_scripts: u64,
    /// moonkv's own: scripts that ran past busy-reply-threshold, were killed, and whose
    /// writes were undone (killed, or rolled back on error).
    pub busy_scripts: u64,
    pub killed_scripts: u64,
    pub undone_scripts: u64,
}

impl Stats {
    pub fn record_error(&mut self, message: &str) {
        let code = message.split(' ').next().unwrap_or("ERR");
        self.total_error_replies += 1;
        // Like Redis, stop tracking new error codes past 128 distinct ones.
        if let Some(count) = self.errors.get_mut(code) {
            *count += 1;
        } else if self.errors.len() < 128 {
            self.errors.insert(code.to_string(), 1);
        }
    }

    pub fn reset(&mut self) {
        let n = self.commands.len();
        *self = Stats {
            commands: vec![CommandStats::default(); n],
            ..Default::default()
        };
    }
}

/// Channel and pattern subscriptions, server side.
#[derive(Default)]
pub struct PubSub {
    pub channels: HashMap<Bytes, HashSet<u64>>,
    pub patterns: HashMap<Bytes, HashSet<u64>>,
}

pub struct ServerState {
    pub dbs: Vec<Db>,
    pub config: Config,
    pub settings: Settings,
    pub clients: HashMap<u64, ClientEntry, foldhash::fast::RandomState>,
    pub pubsub: PubSub,
    pub stats: Stats,
    /// Clients in MONITOR mode.
    pub monitors: HashSet<u64>,
    pub started: Instant,
    pub active_expire_enabled: bool,
    /// DEBUG SET-SKIP-CHECKSUM-VALIDATION: RESTORE and loading ignore CRC-64 checksums.
    pub skip_checksum_validation: bool,
    pub rng: SmallRng,
    pub next_client_id: u64,
    /// Saves to disk: when, how they went, the background save under way.
    pub persistence: crate::persist::Persistence,
    /// The append-only file.
    pub aof: crate::persist::aof::Aof,
    /// Set by SHUTDOWN; the server stops accepting and exits.
    pub shutdown_requested: bool,
    /// The work before exiting (the final save) is done: SHUTDOWN did it.
    pub shutdown_prepared: bool,
    pub config_file: Option<String>,
    pub executable: String,
    pub tcp_port: u16,
    pub replication: crate::replication::Replication,
    /// Clients parked by blocking commands.
    pub blocked: crate::blocking::Blocked,
    pub lazyfree: crate::lazyfree::LazyFree,
    /// EVAL scripts, function libraries and their Lua states.
    pub scripting: crate::scripting::Scripting,
    /// Changes outside the keyspace that count as dataset changes (FUNCTION LOAD/DELETE).
    pub server_dirty: u64,
    /// Where connections leave work while a busy script holds the lock.
    pub desk: std::sync::Arc<crate::busy::Desk>,
    /// The server this state lives in, for background work that takes the lock itself (a
    /// background save copies the dataset a slice at a time).
    pub server: std::sync::Weak<crate::server::Shared>,
    /// The undo journal of the script running now, when it keeps one.
    pub journal: Option<crate::journal::RunJournal>,
}

impl ServerState {
    pub fn new(config: Config, command_count: usize) -> Self {
        let databases = config.get_i64("databases").max(1) as usize;
        let settings = Settings::from_config(&config);
        let tcp_port = config.get_i64("port") as u16;
        let notify_config = settings.notify_flags != 0;
        let stats = Stats {
            commands: vec![CommandStats::default(); command_count],
            ..Default::default()
        };
        let mut state = ServerState {
            dbs: (0..databases).map(|_| Db::new()).collect(),
            config,
            settings,
            clients: HashMap::default(),
            pubsub: PubSub::default(),
            stats,
            monitors: HashSet::new(),
            started: Instant::now(),
            active_expire_enabled: true,
            skip_checksum_validation: false,
            rng: SmallRng::from_entropy(),
            blocked: Default::default(),
            lazyfree: crate::lazyfree::LazyFree::start(),
            scripting: crate::scripting::Scripting::new(),
            server_dirty: 0,
            desk: Default::default(),
            server: std::sync::Weak::new(),
            journal: None,
            next_client_id: 1,
            persistence: crate::persist::Persistence::new(crate::time::unix_ms() / 1000),
            aof: crate::persist::aof::Aof::default(),
            shutdown_requested: false,
            shutdown_prepared: false,
            config_file: None,
            executable: String::new(),
            tcp_port,
            replication: Default::default(),
        };
        if notify_config {
            crate::notify::apply_to_dbs(&mut state);
        }
        state.apply_lazyfree_to_dbs();
        let primary: Vec<&str> = state.config.get("replicaof").split_whitespace().collect();
        if let [host, port] = primary.as_slice() {
            if let Ok(port) = port.parse::<u16>() {
                state.replication.primary = Some(crate::replication::link::PrimaryLink::new(
                    host.to_string(),
                    port,
                    true,
                ));
                for db in state.dbs.iter_mut() {
                    db.set_replica_reads(true);
                }
                crate::log::set_replica_role(true);
            }
        }
        state
    }

    /// Re-reads the hot-path settings after CONFIG SET.
    pub fn refresh_settings(&mut self) {
        self.settings = Settings::from_config(&self.config);
        crate::notify::apply_to_dbs(self);
        self.apply_lazyfree_to_dbs();
    }

    /// Tells the databases whether to set big expired or overwritten values aside.
    fn apply_lazyfree_to_dbs(&mut self) {
        for db in self.dbs.iter_mut() {
            db.lazy_expire = self.settings.lazyfree_expire;
            db.lazy_overwrite = self.settings.lazyfree_server_del;
        }
    }

    /// Whether databases may be holding values for the freeing thread.
    pub fn lazy_collection_enabled(&self) -> bool {
        self.settings.lazyfree_expire || self.settings.lazyfree_server_del
    }

    /// Whether the effects of write commands go anywhere: to replicas or the append-only file.
    pub fn propagating(&self) -> bool {
        self.replication.active() || self.aof.is_on()
    }

    /// Modifications so far, over all databases (Redis's `server.dirty`).
    pub fn dirty(&self) -> u64 {
        self.dbs.iter().map(|d| d.stats.dirty).sum::<u64>() + self.server_dirty
    }

    /// Sends already-encoded bytes to a client; returns false if it is gone.
    pub fn send_to(&self, client_id: u64, bytes: Vec<u8>) -> bool {
        self.clients.get(&client_id).is_some_and(|c| {
            let len = bytes.len();
            let sent = c.tx.send(Outbound::Push(bytes)).is_ok();
            if sent {
                c.output
                    .queued
                    .fetch_add(len, std::sync::atomic::Ordering::Relaxed);
            }
            sent
        })
    }

    pub fn client_protocol(&self, client_id: u64) -> Protocol {
        self.clients
            .get(&client_id)
            .map_or(Protocol::Resp2, |c| c.protocol)
    }
}
