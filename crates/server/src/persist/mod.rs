//! Persistence on disk: RDB snapshots (SAVE, BGSAVE, save points, the save at shutdown) and
//! loading the dataset at start-up. The file format itself lives in `moonkv-persistence`;
//! this module decides when to save, where, and what the server reports about it.
//!
//! Like Redis, the server works inside `dir` (it changes its working directory there), so
//! `dbfilename` and temporary files are relative paths.

pub mod aof;
mod dataset;
mod job;
pub mod loading;
pub mod snapshot;

use crate::state::ServerState;
use std::time::Duration;

/// A failed background save is retried by the save points only after this long, so a full
/// disk does not turn into a save attempt at every cron tick (Redis's
/// CONFIG_BGSAVE_RETRY_DELAY).
const BGSAVE_RETRY_DELAY_SECS: i64 = 5;

/// What the server knows about its saves (INFO persistence, LASTSAVE, save points).
pub struct Persistence {
    /// Unix seconds of the last successful save (LASTSAVE).
    pub last_save_unix: i64,
    /// `dirty()` when the data on disk was last in step with memory: changes since the last
    /// save are `dirty() - dirty_at_last_save`.
    pub dirty_at_last_save: u64,
    pub last_bgsave_ok: bool,
    /// Unix seconds of the last background save attempt, successful or not.
    pub last_bgsave_try_unix: i64,
    /// Duration of the last background save in seconds, -1 before the first.
    pub last_bgsave_secs: i64,
    /// The background save under way.
    pub bgsave: Option<snapshot::BackgroundSave>,
    /// BGSAVE SCHEDULE (or BGSAVE inside a transaction) asked for a save to start as soon as
    /// possible.
    pub bgsave_scheduled: bool,
    /// Saves started (SAVE and BGSAVE), INFO `rdb_saves`.
    pub saves: u64,
    pub last_load_keys_loaded: u64,
    pub last_load_keys_expired: u64,
    /// The load from disk under way at start-up.
    pub loading: Option<loading::Loading>,
}

impl Persistence {
    pub fn new(now_unix: i64) -> Self {
        Persistence {
            last_save_unix: now_unix,
            dirty_at_last_save: 0,
            last_bgsave_ok: true,
            last_bgsave_try_unix: 0,
            last_bgsave_secs: -1,
            bgsave: None,
            bgsave_scheduled: false,
            saves: 0,
            last_load_keys_loaded: 0,
            last_load_keys_expired: 0,
            loading: None,
        }
    }
}

/// Validates and normalizes `save` points: pairs of `<seconds> <changes>`, seconds at least
/// 1 and changes at least 0; the empty value turns saving off.
pub fn normalize_save_points(value: &str) -> Result<String, String> {
    let words: Vec<&str> = value.split_whitespace().collect();
    if words.len() % 2 == 1 {
        return Err("Invalid save parameters".into());
    }
    let mut out = Vec::with_capacity(words.len());
    for (i, word) in words.iter().enumerate() {
        let min = if i % 2 == 0 { 1 } else { 0 };
        match word.parse::<i64>() {
            Ok(n) if n >= min && n <= i32::MAX as i64 => out.push(n.to_string()),
            _ => return Err("Invalid save parameters".into()),
        }
    }
    Ok(out.join(" "))
}

/// The configured save points as (seconds, changes).
pub fn save_points(state: &ServerState) -> Vec<(i64, u64)> {
    let words: Vec<i64> = state
        .config
        .get("save")
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    words
        .chunks_exact(2)
        .map(|pair| (pair[0], pair[1].max(0) as u64))
        .collect()
}

/// Changes since the data on disk was last in step (INFO `rdb_changes_since_last_save`).
pub fn changes_since_last_save(state: &ServerState) -> u64 {
    state
        .dirty()
        .saturating_sub(state.persistence.dirty_at_last_save)
}

/// Called at every cron tick: collects a finished background save, then starts one when a
/// save point is reached or one was scheduled.
pub fn cron(state: &mut ServerState) {
    snapshot::collect_background_save(state);
    aof::cron(state);
    if crate::replication::primary::capture_busy(state) {
        return;
    }
    let now = crate::time::unix_ms() / 1000;
    if state.persistence.bgsave_scheduled {
        state.persistence.bgsave_scheduled = false;
        let _ = snapshot::start_background_save(state);
        return;
    }
    let changes = changes_since_last_save(state);
    let p = &state.persistence;
    let may_retry = p.last_bgsave_ok || now - p.last_bgsave_try_unix > BGSAVE_RETRY_DELAY_SECS;
    let since_save = now - p.last_save_unix;
    let due = save_points(state)
        .into_iter()
        .find(|&(seconds, needed)| changes >= needed && since_save > seconds);
    if let (Some((seconds, needed)), true) = (due, may_retry) {
        crate::log::notice(&format!(
            "{} changes in {} seconds. Saving...",
            needed, seconds
        ));
        let _ = snapshot::start_background_save(state);
    }
}

/// Why write commands are refused for want of a working disk, as Redis's MISCONF: the last
/// background save failed while save points exist (`stop-writes-on-bgsave-error`), or
/// writing the append-only file fails. None when writes may go ahead.
pub fn disk_error(state: &ServerState) -> Option<DiskError<'_>> {
    if !state.persistence.last_bgsave_ok
        && state.config.get_bool("stop-writes-on-bgsave-error")
        && !state.config.get("save").is_empty()
    {
        return Some(DiskError::Rdb);
    }
    state.aof.write_error().map(DiskError::Aof)
}

pub enum DiskError<'a> {
    Rdb,
    Aof(&'a str),
}

impl DiskError<'_> {
    /// The error a refused command gets.
    pub fn command_error(&self) -> String {
        match self {
            DiskError::Rdb => RDB_MISCONF.to_string(),
            DiskError::Aof(reason) => format!("MISCONF Errors writing to the AOF file: {}", reason),
        }
    }

    /// The error a script that may write gets when it would start.
    pub fn script_error(&self) -> String {
        match self {
            DiskError::Rdb => "MISCONF Redis is configured to save RDB snapshots, but it's currently unable to persist to disk. Writable scripts are blocked. Use 'no-writes' flag for read only scripts.".to_string(),
            DiskError::Aof(reason) => format!("MISCONF Redis is configured to persist data to AOF, but it's currently unable to persist to disk. Writable scripts are blocked. Use 'no-writes' flag for read only scripts. AOF error: {}", reason),
        }
    }
}

const RDB_MISCONF: &str = "MISCONF Redis is configured to save RDB snapshots, but it's currently unable to persist to disk. Commands that may modify the data set are disabled, because this instance is configured to report errors during writes if RDB snapshotting fails (stop-writes-on-bgsave-error option). Please check the Redis logs for details about the RDB error.";

/// Work done before the process exits (SHUTDOWN, SIGTERM, SIGINT): stop a background save
/// and, when asked to or when save points exist, save synchronously. An Err means the save
/// failed and the server must not exit (unless forced, which the caller decides).
pub fn prepare_shutdown(state: &mut ServerState, save: bool, nosave: bool) -> Result<(), ()> {
    if let Some(bgsave) = state.persistence.bgsave.take() {
        crate::log::warning("There is a child saving an .rdb. Killing it!");
        bgsave.abandon(state);
    }
    aof::stop_rewrite(state);
    if let Some(transfer) = state.replication.transfer.take() {
        transfer.abandon(state);
    }
    aof::flush_and_sync(state);
    let wants_save = save || (!nosave && !state.config.get("save").is_empty());
    if wants_save {
        crate::log::notice("Saving the final RDB snapshot before exiting.");
        if snapshot::save(state).is_err() {
            crate::log::warning("Error trying to save the DB, can't exit.");
            return Err(());
        }
    }
    Ok(())
}

/// An I/O error as C's strerror words it (Rust adds " (os error N)").
pub fn strerror(e: &std::io::Error) -> String {
    let text = e.to_string();
    match text.find(" (os error") {
        Some(at) => text[..at].to_string(),
        None => text,
    }
}

/// Makes `dir` the working directory, as Redis does, and returns its absolute path (what
/// CONFIG GET dir answers).
pub fn enter_dir(dir: &str) -> Result<String, String> {
    std::env::set_current_dir(dir).map_err(|e| strerror(&e))?;
    Ok(std::env::current_dir()
        .map(|d| d.display().to_string())
        .unwrap_or_else(|_| dir.to_string()))
}

/// How long a background save has been running, for INFO.
pub fn bgsave_elapsed(state: &ServerState) -> Option<Duration> {
    state.persistence.bgsave.as_ref().map(|b| b.elapsed())
}
