//! INFO: server state as `field:value` lines grouped in sections, with Redis 7.0's section and
//! field names (monitoring tools parse them).

use super::spec::flags::*;
use super::{table, CommandSpec, Ctx};
use crate::state::ServerState;
use moonkv_protocol::ReplySink;
use std::fmt::Write;
use std::sync::OnceLock;

pub static COMMANDS: &[CommandSpec] = &[CommandSpec::new(
    "info",
    -1,
    LOADING | STALE | RANDOM,
    (0, 0, 0),
    "dangerous",
    info,
)
.group("server")
.summary("Information and statistics about the server", "1.0.0")];

/// Sections in the order INFO prints them, and whether `INFO`/`INFO default` includes them.
const SECTIONS: &[(&str, bool)] = &[
    ("server", true),
    ("clients", true),
    ("memory", true),
    ("persistence", true),
    ("stats", true),
    ("replication", true),
    ("cpu", true),
    ("modules", true),
    ("commandstats", false),
    ("errorstats", true),
    ("cluster", true),
    ("keyspace", true),
];

fn info(ctx: &mut Ctx) {
    let mut wanted: Vec<&str> = Vec::new();
    let args: Vec<String> = ctx.args[1..]
        .iter()
        .map(|a| String::from_utf8_lossy(a).to_ascii_lowercase())
        .collect();
    if args.is_empty() {
        wanted.extend(SECTIONS.iter().filter(|s| s.1).map(|s| s.0));
    }
    for arg in &args {
        match arg.as_str() {
            "all" | "everything" => wanted.extend(SECTIONS.iter().map(|s| s.0)),
            "default" => wanted.extend(SECTIONS.iter().filter(|s| s.1).map(|s| s.0)),
            name => {
                if let Some((section, _)) = SECTIONS.iter().find(|s| s.0 == name) {
                    wanted.push(section);
                }
            }
        }
    }
    let mut text = String::new();
    for (section, _) in SECTIONS {
        if !wanted.contains(section) {
            continue;
        }
        if !text.is_empty() {
            text.push_str("\r\n");
        }
        render_section(ctx.state, section, &mut text);
    }
    ctx.verbatim("txt", text.as_bytes());
}

/// A random 40-hex-digit id, fixed for the life of the process (run_id).
fn run_id() -> &'static str {
    static ID: OnceLock<String> = OnceLock::new();
    ID.get_or_init(crate::replication::new_replid)
}

/// Bytes as Redis prints them in `*_human` fields: `1.50M`, `912.00K`, `12B`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [(&str, f64); 4] = [
        ("P", 1125899906842624.0),
        ("T", 1099511627776.0),
        ("G", 1073741824.0),
        ("M", 1048576.0),
    ];
    let f = n as f64;
    for (unit, size) in UNITS {
        if f >= size {
            return format!("{:.2}{}", f / size, unit);
        }
    }
    if n >= 1024 {
        format!("{:.2}K", f / 1024.0)
    } else {
        format!("{}B", n)
    }
}

/// Memory figures: (allocated by the allocator, resident set size).
pub(crate) fn memory_usage() -> (u64, u64) {
    let allocated = match tikv_jemalloc_ctl::epoch::advance() {
        Ok(_) => tikv_jemalloc_ctl::stats::allocated::read().unwrap_or(0) as u64,
        Err(_) => 0,
    };
    let rss = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .nth(1)
                .and_then(|p| p.parse::<u64>().ok())
        })
        .map_or(0, |pages| pages * 4096);
    (allocated, rss)
}

/// CPU seconds (user, system) of this process, from /proc/self/stat.
fn cpu_seconds() -> (f64, f64) {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return (0.0, 0.0);
    };
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
            / 100.0
    };
    (ticks(11), ticks(12))
}

fn instantaneous_ops(state: &ServerState) -> u64 {
    let samples = &state.stats.ops_samples;
    match (samples.first(), samples.last()) {
        (Some(a), Some(b)) if b.0 > a.0 => {
            let secs = b.0.duration_since(a.0).as_secs_f64();
            ((b.1 - a.1) as f64 / secs) as u64
        }
        _ => 0,
    }
}

fn render_section(state: &mut ServerState, section: &str, out: &mut String) {
    let uptime = state.started.elapsed().as_secs();
    macro_rules! line {
        ($($arg:tt)*) => {{
            let _ = write!(out, $($arg)*);
            out.push_str("\r\n");
        }};
    }
    match section {
        "server" => {
            line!("# Server");
            line!("redis_version:{}", crate::REDIS_VERSION);
            line!("redis_git_sha1:00000000");
            line!("redis_git_dirty:0");
            line!("redis_build_id:0");
            line!("redis_mode:standalone");
            line!("moonkv_version:{}", crate::MOONKV_VERSION);
            line!("os:{} {}", std::env::consts::OS, std::env::consts::ARCH);
            line!("arch_bits:64");
            line!("monotonic_clock:POSIX clock_gettime");
            line!("multiplexing_api:epoll");
            line!("atomicvar_api:c11-builtin");
            line!("gcc_version:0.0.0");
            line!("process_id:{}", std::process::id());
            line!("process_supervised:no");
            line!("run_id:{}", run_id());
            line!("tcp_port:{}", state.tcp_port);
            line!("server_time_usec:{}", crate::time::unix_us());
            line!("uptime_in_seconds:{}", uptime);
            line!("uptime_in_days:{}", uptime / 86400);
            line!("hz:{}", state.settings.hz);
            line!("configured_hz:{}", state.settings.hz);
            line!(
                "lru_clock:{}",
                (crate::time::unix_ms() / 1000) & ((1 << 24) - 1)
            );
            line!("executable:{}", state.executable);
            line!("config_file:{}", state.config_file.as_deref().unwrap_or(""));
            line!("io_threads_active:0");
        }
        "clients" => {
            let pubsub = state
                .clients
                .values()
                .filter(|c| c.sub + c.psub > 0)
                .count();
            line!("# Clients");
            line!("connected_clients:{}", state.clients.len());
            line!("cluster_connections:0");
            line!("maxclients:{}", state.settings.maxclients);
            line!("client_recent_max_input_buffer:0");
            line!("client_recent_max_output_buffer:0");
            line!("blocked_clients:{}", state.blocked.len());
            line!("tracking_clients:0");
            line!("clients_in_timeout_table:0");
            line!("pubsub_clients:{}", pubsub);
        }
        "memory" => {
            let (used, rss) = memory_usage();
            let maxmemory = state.config.get_i64("maxmemory").max(0) as u64;
            state.stats.peak_memory = state.stats.peak_memory.max(used);
            let peak = state.stats.peak_memory;
            line!("# Memory");
            line!("used_memory:{}", used);
            line!("used_memory_human:{}", human_bytes(used));
            line!("used_memory_rss:{}", rss);
            line!("used_memory_rss_human:{}", human_bytes(rss));
            line!("used_memory_peak:{}", peak);
            line!("used_memory_peak_human:{}", human_bytes(peak));
            line!(
                "used_memory_peak_perc:{:.2}%",
                if peak > 0 {
                    used as f64 * 100.0 / peak as f64
                } else {
                    100.0
                }
            );
            let scripting = &state.scripting;
            let vm_eval = scripting.eval_vm_memory();
            let vm_functions = scripting.functions_vm_memory();
            let scripts_eval = scripting.scripts.memory();
            let functions_mem = scripting.libraries.memory();
            line!("used_memory_lua:{}", vm_eval);
            line!("used_memory_vm_eval:{}", vm_eval);
            line!("used_memory_lua_human:{}", human_bytes(vm_eval as u64));
            line!("used_memory_scripts_eval:{}", scripts_eval);
            line!("number_of_cached_scripts:{}", scripting.scripts.len());
            line!(
                "number_of_functions:{}",
                scripting.libraries.function_count()
            );
            line!(
                "number_of_libraries:{}",
                scripting.libraries.libraries.len()
            );
            line!("used_memory_vm_functions:{}", vm_functions);
            line!("used_memory_vm_total:{}", vm_eval + vm_functions);
            line!(
                "used_memory_vm_total_human:{}",
                human_bytes((vm_eval + vm_functions) as u64)
            );
            line!("used_memory_functions:{}", functions_mem);
            line!("used_memory_scripts:{}", scripts_eval + functions_mem);
            line!(
                "used_memory_scripts_human:{}",
                human_bytes((scripts_eval + functions_mem) as u64)
            );
            line!("maxmemory:{}", maxmemory);
            line!("maxmemory_human:{}", human_bytes(maxmemory));
            line!("maxmemory_policy:{}", state.config.get("maxmemory-policy"));
            line!(
                "mem_fragmentation_ratio:{:.2}",
                if used > 0 {
                    rss as f64 / used as f64
                } else {
                    0.0
                }
            );
            line!("mem_allocator:jemalloc-5.3.0");
            line!("lazyfree_pending_objects:{}", state.lazyfree.pending());
            line!("lazyfreed_objects:{}", state.lazyfree.freed());
        }
        "persistence" => {
            let p = &state.persistence;
            let bgsave = p.bgsave.as_ref();
            line!("# Persistence");
            match p.loading.as_ref() {
                Some(loading) => {
                    let (perc, eta) = loading.progress();
                    line!("loading:1");
                    line!("async_loading:0");
                    line!("loading_start_time:{}", loading.started_unix);
                    line!("loading_total_bytes:{}", loading.total_bytes);
                    line!("loading_rdb_used_mem:0");
                    line!("loading_loaded_bytes:{}", loading.loaded_bytes);
                    line!("loading_loaded_perc:{:.2}", perc);
                    line!("loading_eta_seconds:{}", eta);
                }
                None => {
                    line!("loading:0");
                    line!("async_loading:0");
                }
            }
            line!("current_cow_peak:0");
            line!("current_cow_size:0");
            line!("current_cow_size_age:0");
            line!("current_fork_perc:0.00");
            line!(
                "current_save_keys_processed:{}",
                bgsave.map_or(0, |b| b.keys_written())
            );
            line!(
                "current_save_keys_total:{}",
                bgsave.map_or(0, |b| b.keys_total)
            );
            line!(
                "rdb_changes_since_last_save:{}",
                crate::persist::changes_since_last_save(state)
            );
            line!(
                "rdb_bgsave_in_progress:{}",
                (bgsave.is_some() || state.replication.transfer.is_some()) as u8
            );
            line!("rdb_last_save_time:{}", p.last_save_unix);
            line!(
                "rdb_last_bgsave_status:{}",
                if p.last_bgsave_ok { "ok" } else { "err" }
            );
            line!("rdb_last_bgsave_time_sec:{}", p.last_bgsave_secs);
            line!(
                "rdb_current_bgsave_time_sec:{}",
                bgsave.map_or(-1, |b| b.elapsed().as_secs() as i64)
            );
            line!("rdb_saves:{}", p.saves);
            line!("rdb_last_cow_size:0");
            line!("rdb_last_load_keys_expired:{}", p.last_load_keys_expired);
            line!("rdb_last_load_keys_loaded:{}", p.last_load_keys_loaded);
            let aof = &state.aof;
            line!("aof_enabled:{}", aof.is_on() as u8);
            line!("aof_rewrite_in_progress:{}", aof.rewrite.is_some() as u8);
            line!("aof_rewrite_scheduled:{}", aof.rewrite_scheduled as u8);
            line!("aof_last_rewrite_time_sec:{}", aof.last_rewrite_secs);
            line!(
                "aof_current_rewrite_time_sec:{}",
                aof.rewrite_elapsed_secs()
            );
            line!(
                "aof_last_bgrewrite_status:{}",
                if aof.last_rewrite_ok { "ok" } else { "err" }
            );
            line!("aof_rewrites:{}", aof.rewrites);
            line!(
                "aof_rewrites_consecutive_failures:{}",
                aof.consecutive_rewrite_failures
            );
            line!(
                "aof_last_write_status:{}",
                if aof.write_error().is_some() {
                    "err"
                } else {
                    "ok"
                }
            );
            line!("aof_last_cow_size:0");
            line!("module_fork_in_progress:0");
            line!("module_fork_last_cow_size:0");
            if aof.is_on() {
                line!("aof_current_size:{}", aof.current_size());
                line!("aof_base_size:{}", aof.base_size());
                line!("aof_pending_rewrite:{}", aof.rewrite_scheduled as u8);
                line!("aof_buffer_length:{}", aof.buffer_len());
                line!("aof_pending_bio_fsync:{}", aof.pending_fsyncs());
                line!("aof_delayed_fsync:{}", aof.delayed_fsyncs);
            }
        }
        "stats" => {
            let expired: u64 = state.dbs.iter().map(|d| d.stats.expired_keys).sum();
            let hits: u64 = state.dbs.iter().map(|d| d.stats.keyspace_hits).sum();
            let misses: u64 = state.dbs.iter().map(|d| d.stats.keyspace_misses).sum();
            let s = &state.stats;
            line!("# Stats");
            line!(
                "total_connections_received:{}",
                s.total_connections_received
            );
            line!("total_commands_processed:{}", s.total_commands_processed);
            line!("instantaneous_ops_per_sec:{}", instantaneous_ops(state));
            line!("total_net_input_bytes:{}", s.total_net_input_bytes);
            line!("total_net_output_bytes:{}", s.total_net_output_bytes);
            line!("rejected_connections:{}", s.rejected_connections);
            line!("sync_full:{}", state.replication.sync_full);
            line!("sync_partial_ok:{}", state.replication.sync_partial_ok);
            line!("sync_partial_err:{}", state.replication.sync_partial_err);
            line!("expired_keys:{}", expired);
            line!("expired_stale_perc:0.00");
            line!("expired_time_cap_reached_count:0");
            line!("evicted_keys:0");
            line!("evicted_scripts:{}", s.evicted_scripts);
            line!("busy_scripts:{}", s.busy_scripts);
            line!("killed_scripts:{}", s.killed_scripts);
            line!("undone_scripts:{}", s.undone_scripts);
            line!("evicted_clients:0");
            line!("total_eviction_exceeded_time:0");
            line!("current_eviction_exceeded_time:0");
            line!("keyspace_hits:{}", hits);
            line!("keyspace_misses:{}", misses);
            line!("pubsub_channels:{}", state.pubsub.channels.len());
            line!("pubsub_patterns:{}", state.pubsub.patterns.len());
            line!("latest_fork_usec:0");
            line!("total_forks:0");
            line!("migrate_cached_sockets:0");
            line!("slave_expires_tracked_keys:0");
            line!("active_defrag_hits:0");
            line!("active_defrag_misses:0");
            line!("active_defrag_key_hits:0");
            line!("active_defrag_key_misses:0");
            line!("total_active_defrag_time:0");
            line!("current_active_defrag_time:0");
            line!("tracking_total_keys:0");
            line!("tracking_total_items:0");
            line!("tracking_total_prefixes:0");
            line!("unexpected_error_replies:0");
            line!("total_error_replies:{}", state.stats.total_error_replies);
            line!("dump_payload_sanitizations:0");
            line!(
                "total_reads_processed:{}",
                state.stats.total_commands_processed
            );
            line!(
                "total_writes_processed:{}",
                state.stats.total_commands_processed
            );
            line!("io_threaded_reads_processed:0");
            line!("io_threaded_writes_processed:0");
        }
        "replication" => {
            use crate::replication::link::LinkState;
            let replication = &state.replication;
            let now_ms = crate::time::unix_ms();
            line!("# Replication");
            match &replication.primary {
                Some(link) => {
                    let up = link.state == LinkState::Connected;
                    line!("role:slave");
                    line!("master_host:{}", link.host);
                    line!("master_port:{}", link.port);
                    line!("master_link_status:{}", if up { "up" } else { "down" });
                    line!(
                        "master_last_io_seconds_ago:{}",
                        if up {
                            (now_ms - link.last_io_ms) / 1000
                        } else {
                            -1
                        }
                    );
                    line!(
                        "master_sync_in_progress:{}",
                        (link.state == LinkState::Sync) as u8
                    );
                    line!("slave_read_repl_offset:{}", replication.offset);
                    line!("slave_repl_offset:{}", replication.offset);
                    if link.state == LinkState::Sync {
                        line!("master_sync_total_bytes:{}", link.sync_total_bytes);
                        line!("master_sync_read_bytes:{}", link.sync_read_bytes);
                        line!(
                            "master_sync_left_bytes:{}",
                            link.sync_total_bytes - link.sync_read_bytes as i64
                        );
                        line!("master_sync_perc:0.00");
                        line!(
                            "master_sync_last_io_seconds_ago:{}",
                            (now_ms - link.last_io_ms) / 1000
                        );
                    }
                    if !up {
                        line!(
                            "master_link_down_since_seconds:{}",
                            (now_ms - link.down_since_ms) / 1000
                        );
                    }
                    line!(
                        "slave_priority:{}",
                        state.config.get_i64("replica-priority")
                    );
                    line!(
                        "slave_read_only:{}",
                        state.config.get_bool("replica-read-only") as u8
                    );
                    line!(
                        "replica_announced:{}",
                        state.config.get_bool("replica-announced") as u8
                    );
                }
                None => line!("role:master"),
            }
            let transferring = replication
                .transfer
                .as_ref()
                .map_or(&[][..], |t| &t.targets[..]);
            line!(
                "connected_slaves:{}",
                replication.replicas.len() + replication.awaiting_sync.len() + transferring.len()
            );
            for (i, r) in replication.replicas.iter().enumerate() {
                line!(
                    "slave{}:ip={},port={},state=online,offset={},lag={}",
                    i,
                    r.ip,
                    r.port,
                    r.ack_offset,
                    (now_ms - r.ack_ms) / 1000
                );
            }
            // Replicas whose full resync has not reached them yet.
            let waiting = replication
                .awaiting_sync
                .iter()
                .map(|w| (w.client_id, &w.addr))
                .chain(transferring.iter().map(|t| (t.client_id, &t.addr)));
            for (i, (id, addr)) in waiting.enumerate() {
                let ip = crate::replication::primary::ip_of(addr);
                let port = replication.announced_ports.get(&id).copied().unwrap_or(0);
                line!(
                    "slave{}:ip={},port={},state=wait_bgsave,offset=0,lag=0",
                    replication.replicas.len() + i,
                    ip,
                    port
                );
            }
            line!("master_failover_state:no-failover");
            line!("master_replid:{}", replication.replid);
            line!("master_replid2:{}", replication.replid2);
            line!("master_repl_offset:{}", replication.offset);
            line!("second_repl_offset:{}", replication.second_replid_offset);
            match &replication.backlog {
                Some(backlog) => {
                    line!("repl_backlog_active:1");
                    line!("repl_backlog_size:{}", backlog.capacity());
                    line!(
                        "repl_backlog_first_byte_offset:{}",
                        backlog.first_byte_offset()
                    );
                    line!("repl_backlog_histlen:{}", backlog.histlen());
                }
                None => {
                    line!("repl_backlog_active:0");
                    line!(
                        "repl_backlog_size:{}",
                        state.config.get_i64("repl-backlog-size")
                    );
                    line!("repl_backlog_first_byte_offset:0");
                    line!("repl_backlog_histlen:0");
                }
            }
        }
        "cpu" => {
            let (user, sys) = cpu_seconds();
            line!("# CPU");
            line!("used_cpu_sys:{:.6}", sys);
            line!("used_cpu_user:{:.6}", user);
            line!("used_cpu_sys_children:0.000000");
            line!("used_cpu_user_children:0.000000");
            line!("used_cpu_sys_main_thread:{:.6}", sys);
            line!("used_cpu_user_main_thread:{:.6}", user);
        }
        "modules" => line!("# Modules"),
        "commandstats" => {
            line!("# Commandstats");
            for (i, spec) in table().specs.iter().enumerate() {
                let Some(s) = state.stats.commands.get(i) else {
                    continue;
                };
                if s.calls == 0 && s.rejected_calls == 0 && s.failed_calls == 0 {
                    continue;
                }
                let per_call = if s.calls > 0 {
                    s.usec as f64 / s.calls as f64
                } else {
                    0.0
                };
                line!(
                    "cmdstat_{}:calls={},usec={},usec_per_call={:.2},rejected_calls={},failed_calls={}",
                    spec.name,
                    s.calls,
                    s.usec,
                    per_call,
                    s.rejected_calls,
                    s.failed_calls
                );
            }
        }
        "errorstats" => {
            line!("# Errorstats");
            for (code, count) in &state.stats.errors {
                line!("errorstat_{}:count={}", code, count);
            }
        }
        "cluster" => {
            line!("# Cluster");
            line!("cluster_enabled:0");
        }
        "keyspace" => {
            line!("# Keyspace");
            for (i, db) in state.dbs.iter().enumerate() {
                if !db.is_empty() {
                    line!(
                        "db{}:keys={},expires={},avg_ttl=0",
                        i,
                        db.len(),
                        db.expires_len()
                    );
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::human_bytes;

    #[test]
    fn human_sizes() {
        assert_eq!(human_bytes(12), "12B");
        assert_eq!(human_bytes(1536), "1.50K");
        assert_eq!(human_bytes(3 * 1048576), "3.00M");
    }
}
