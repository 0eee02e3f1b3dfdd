//! RDB snapshots on disk: the synchronous save (SAVE, shutdown, FLUSHALL), the background
//! save (BGSAVE, save points) and loading a snapshot into the server (start-up, DEBUG RELOAD).
//!
//! A background save writes the dataset as it was when the save started, on a thread of its
//! own: the thread copies the keys a slice at a time under the lock, and the databases keep
//! the state at the start of any key that changes before the copying reaches it (see
//! `dataset`). Clients wait for one slice at a time, never for the whole dataset, and only the
//! keys that change are held twice. The README's persistence section has the measurements
//! this choice rests on (stall and peak memory against redis-server's fork).

use super::dataset::{self, Captured, Dataset, Image, KeySink};
use crate::state::ServerState;
use bytes::Bytes;
use moonkv_keyspace::Value;
use moonkv_persistence::rdb::{
    Entry, LoadError, LoadedKey, RdbReader, RdbWriter, Snapshot, WriteOptions,
};
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Only one snapshot may be renamed onto `dbfilename` at a time, and an abandoned background
/// save must never rename after a later synchronous save did: both rename under this lock,
/// and the background one checks its cancel flag under it.
static RENAME: parking_lot::Mutex<()> = parking_lot::Mutex::new(());

/// Background saves started, to give each its own temporary file: an abandoned one may still
/// be finishing when the next starts.
static BACKGROUND_SAVES: AtomicUsize = AtomicUsize::new(0);

/// Where a snapshot stands in the replication history (aux fields `repl-id`, `repl-offset`,
/// `repl-stream-db`): a server restarted from it can resume replication from there.
#[derive(Clone, Debug)]
pub struct ReplPosition {
    pub replid: String,
    pub offset: u64,
    pub stream_db: usize,
}

impl ReplPosition {
    /// The server's position, when it has a replication history worth resuming (it is a
    /// replica, or a primary with a backlog).
    pub fn of(state: &ServerState) -> Option<ReplPosition> {
        let replication = &state.replication;
        let stream_db = match &replication.primary {
            Some(link) => link.stream_db,
            None if replication.backlog.is_some() => replication.selected_db.unwrap_or(0),
            None => return None,
        };
        Some(ReplPosition {
            replid: replication.replid.clone(),
            offset: replication.offset,
            stream_db,
        })
    }
}

pub(super) fn write_options(state: &ServerState) -> WriteOptions {
    WriteOptions {
        compress: state.config.get_bool("rdbcompression"),
        checksum: state.config.get_bool("rdbchecksum"),
    }
}

/// The code of every function library, which snapshots and AOF bases carry.
pub(super) fn library_codes(state: &ServerState) -> Vec<Bytes> {
    state
        .scripting
        .libraries
        .libraries
        .values()
        .map(|library| library.code.clone())
        .collect()
}

/// Writes keys in RDB form, counting them.
struct RdbSink<'a, W: Write> {
    rdb: RdbWriter<W>,
    progress: &'a AtomicUsize,
}

impl<W: Write> KeySink for RdbSink<'_, W> {
    fn select_db(&mut self, index: usize, keys: u64, expires: u64) -> io::Result<()> {
        self.rdb.select_db(index, keys, expires)
    }

    fn key(&mut self, key: &[u8], value: &Value, expire_at: Option<i64>) -> io::Result<()> {
        // A key past its expiry is written too, as Redis does: a primary that loads the file
        // drops it (and counts it), a replica keeps it until its primary expires it.
        self.rdb.key(key, value, expire_at)?;
        self.progress.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

/// Serializes an image in RDB form, with the aux fields Redis writes (`aof_base` marks the
/// base file of an append-only file). It stops early once `cancel` is set (an abandoned
/// background save), and `progress` counts the keys written.
pub(super) fn write_dataset<W: Write>(
    out: W,
    image: &Image,
    aof_base: bool,
    cancel: Option<&AtomicBool>,
    progress: &AtomicUsize,
) -> io::Result<W> {
    let now_ms = crate::time::unix_ms();
    let mut rdb = RdbWriter::new(out, image.options)?;
    rdb.aux("redis-ver", crate::REDIS_VERSION.as_bytes())?;
    rdb.aux("redis-bits", b"64")?;
    rdb.aux("ctime", (now_ms / 1000).to_string().as_bytes())?;
    let used_memory = crate::commands::info::memory_usage().0;
    rdb.aux("used-mem", used_memory.to_string().as_bytes())?;
    if let Some(repl) = &image.repl {
        rdb.aux("repl-stream-db", repl.stream_db.to_string().as_bytes())?;
        rdb.aux("repl-id", repl.replid.as_bytes())?;
        rdb.aux("repl-offset", repl.offset.to_string().as_bytes())?;
    }
    rdb.aux("aof-base", if aof_base { b"1" } else { b"0" })?;
    for code in &image.functions {
        rdb.function(code)?;
    }
    let mut sink = RdbSink { rdb, progress };
    image.each(&mut sink, cancel)?;
    sink.rdb.finish()
}

fn current_dir_text() -> String {
    std::env::current_dir()
        .map(|d| d.display().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

/// Creates the temporary file a snapshot is written to.
fn create_temp(temp: &str) -> io::Result<File> {
    File::create(temp).inspect_err(|e| {
        crate::log::warning(&format!(
            "Failed opening the temp RDB file {} (in server root dir {}) for saving: {}",
            temp,
            current_dir_text(),
            super::strerror(e)
        ));
    })
}

/// Writes a snapshot to `file` (created at `temp`), makes it durable, and renames it onto
/// `target` (so the target is always a complete file), then makes the rename durable.
fn write_file(
    target: &str,
    temp: &str,
    file: File,
    image: &Image,
    cancel: Option<&AtomicBool>,
    progress: &AtomicUsize,
) -> io::Result<()> {
    let cancelled = || cancel.is_some_and(|c| c.load(Ordering::Relaxed));
    let written = write_dataset(
        BufWriter::with_capacity(1 << 16, file),
        image,
        false,
        cancel,
        progress,
    )
    .and_then(|w| w.into_inner().map_err(|e| e.into_error()))
    .and_then(|file| file.sync_all());
    if let Err(e) = written {
        let _ = std::fs::remove_file(temp);
        if e.kind() != io::ErrorKind::Interrupted {
            crate::log::warning(&format!(
                "Write error saving DB on disk: {}",
                super::strerror(&e)
            ));
        }
        return Err(e);
    }
    let _guard = RENAME.lock();
    if cancelled() {
        let _ = std::fs::remove_file(temp);
        return Err(dataset::abandoned());
    }
    if let Err(e) = std::fs::rename(temp, target) {
        crate::log::warning(&format!(
            "Error moving temp DB file {} on the final destination {} (in server root dir {}): {}",
            temp,
            target,
            current_dir_text(),
            super::strerror(&e)
        ));
        let _ = std::fs::remove_file(temp);
        return Err(e);
    }
    // The rename is durable once the directory entry is.
    let parent = Path::new(target)
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    File::open(parent).and_then(|d| d.sync_all())
}

/// Saves the dataset now, on this thread (SAVE, the save at shutdown, FLUSHALL with save
/// points).
pub fn save(state: &mut ServerState) -> io::Result<()> {
    // A synchronous save supersedes a background one under way: that one must not rename its
    // older image over this one.
    if let Some(bgsave) = state.persistence.bgsave.take() {
        bgsave.abandon(state);
    }
    let image = Image {
        repl: ReplPosition::of(state),
        ..Image::of(state, Dataset::Present(&state.dbs))
    };
    let target = state.config.get("dbfilename").to_string();
    let temp = format!("temp-{}.rdb", std::process::id());
    state.persistence.saves += 1;
    let file = create_temp(&temp)?;
    write_file(&target, &temp, file, &image, None, &AtomicUsize::new(0))?;
    crate::log::notice("DB saved on disk");
    let now = crate::time::unix_ms() / 1000;
    let dirty = state.dirty();
    let p = &mut state.persistence;
    p.dirty_at_last_save = dirty;
    p.last_save_unix = now;
    p.last_bgsave_ok = true;
    Ok(())
}

/// A background save under way.
pub struct BackgroundSave {
    job: super::job::BackgroundJob,
    temp: String,
    dirty_at_start: u64,
    pub keys_total: usize,
    keys_written: Arc<AtomicUsize>,
}

impl BackgroundSave {
    pub fn elapsed(&self) -> Duration {
        self.job.elapsed()
    }

    pub fn keys_written(&self) -> usize {
        self.keys_written.load(Ordering::Relaxed)
    }

    /// Stops the save (the caller holds the lock, which the save's thread may be waiting
    /// for): the capture ends now, the temporary file goes, and the thread ends at its next
    /// key without ever replacing the snapshot file.
    pub fn abandon(self, state: &mut ServerState) {
        self.job.abandon();
        Captured::stop(state);
        let _ = std::fs::remove_file(&self.temp);
    }
}

/// Starts BGSAVE. Err carries the reason for the client.
pub fn start_background_save(state: &mut ServerState) -> Result<(), String> {
    // A full resync for replicas is a background save too (as Redis's fork child is).
    if state.persistence.bgsave.is_some() || state.replication.transfer.is_some() {
        return Err("Background save already in progress".into());
    }
    let failed = |e: io::Error| {
        crate::log::warning(&format!("Can't save in background: {}", e));
        "Can't save in background".to_string()
    };
    let target = state.config.get("dbfilename").to_string();
    let sequence = BACKGROUND_SAVES.fetch_add(1, Ordering::Relaxed);
    let temp = format!("temp-{}-bgsave-{}.rdb", std::process::id(), sequence);
    // A file that cannot be created fails the save as it would fail Redis's child: after the
    // reply, in the save's outcome.
    let file = create_temp(&temp);
    let captured = Captured::start(state);
    let keys_total = captured.key_count();
    let image = Image {
        repl: ReplPosition::of(state),
        ..Image::of(state, Dataset::Captured(captured))
    };
    let keys_written = Arc::new(AtomicUsize::new(0));
    let progress = keys_written.clone();
    let temp_path = temp.clone();
    let job = super::job::BackgroundJob::spawn("moonkv-bgsave", move |cancel| {
        write_file(&target, &temp_path, file?, &image, Some(cancel), &progress)
    })
    .map_err(|e| {
        Captured::stop(state);
        let _ = std::fs::remove_file(&temp);
        failed(e)
    })?;
    let dirty_at_start = state.dirty();
    let p = &mut state.persistence;
    p.saves += 1;
    p.last_bgsave_try_unix = crate::time::unix_ms() / 1000;
    p.bgsave = Some(BackgroundSave {
        job,
        temp,
        dirty_at_start,
        keys_total,
        keys_written,
    });
    crate::log::notice(&format!(
        "Background saving started by pid {}",
        std::process::id()
    ));
    Ok(())
}

/// Takes in the outcome of a finished background save, if one finished.
pub fn collect_background_save(state: &mut ServerState) {
    let Some(outcome) = state
        .persistence
        .bgsave
        .as_mut()
        .and_then(|b| b.job.finished())
    else {
        return;
    };
    let Some(bgsave) = state.persistence.bgsave.take() else {
        return;
    };
    // A save that failed part-way leaves captures behind.
    Captured::stop(state);
    let p = &mut state.persistence;
    p.last_bgsave_secs = bgsave.elapsed().as_secs() as i64;
    match outcome {
        Ok(()) => {
            crate::log::notice("Background saving terminated with success");
            p.dirty_at_last_save = bgsave.dirty_at_start;
            p.last_save_unix = crate::time::unix_ms() / 1000;
            p.last_bgsave_ok = true;
        }
        Err(_) => {
            crate::log::warning("Background saving error");
            p.last_bgsave_ok = false;
        }
    }
}

/// A snapshot written into memory for replicas (a full resync), as of the moment it starts,
/// on a thread of its own as a background save is: the server goes on serving meanwhile.
pub struct MemorySnapshot {
    job: super::job::BackgroundJob,
    bytes: Arc<parking_lot::Mutex<Vec<u8>>>,
}

impl MemorySnapshot {
    pub fn start(state: &mut ServerState) -> io::Result<MemorySnapshot> {
        let captured = Captured::start(state);
        let image = Image::of(state, Dataset::Captured(captured));
        let bytes = Arc::new(parking_lot::Mutex::new(Vec::new()));
        let out = bytes.clone();
        let job = super::job::BackgroundJob::spawn("moonkv-repl-rdb", move |cancel| {
            let written = write_dataset(
                Vec::new(),
                &image,
                false,
                Some(cancel),
                &AtomicUsize::new(0),
            )?;
            *out.lock() = written;
            Ok(())
        })
        .inspect_err(|_| Captured::stop(state))?;
        Ok(MemorySnapshot { job, bytes })
    }

    /// The snapshot once written (None while it is being written).
    pub fn finished(&mut self, state: &mut ServerState) -> Option<io::Result<Vec<u8>>> {
        let outcome = self.job.finished()?;
        // A snapshot that failed part-way leaves captures behind.
        Captured::stop(state);
        Some(outcome.map(|()| std::mem::take(&mut *self.bytes.lock())))
    }

    /// Stops it (see [`BackgroundSave::abandon`]).
    pub fn abandon(self, state: &mut ServerState) {
        self.job.abandon();
        Captured::stop(state);
    }
}

/// How loaded data joins what the server holds.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Install {
    /// Everything there is dropped first (start-up, DEBUG RELOAD).
    Replace,
    /// Loaded keys and libraries replace existing ones (DEBUG RELOAD MERGE).
    Merge,
    /// Loading fails, before changing anything, if a key or library already exists (DEBUG
    /// RELOAD NOFLUSH).
    AddOnly,
}

/// Counts from loading a snapshot.
#[derive(Default, Debug)]
pub struct Loaded {
    pub keys: u64,
    pub expired: u64,
    /// Keys of empty collections, not loaded.
    pub empty_skipped: u64,
    /// Length of the snapshot in the data read (commands may follow it in an AOF).
    pub bytes: u64,
    /// The replication position the snapshot was written at, if it says.
    pub repl: Option<ReplPosition>,
}

/// Puts a snapshot's libraries and keys into the server. Keys already expired are dropped
/// (counted), as a primary does when it loads.
pub fn install(
    state: &mut ServerState,
    snapshot: Snapshot,
    how: Install,
    now_ms: i64,
) -> Result<Loaded, String> {
    if let Some(k) = snapshot.keys.iter().find(|k| k.db >= state.dbs.len()) {
        return Err(too_many_databases(k.db));
    }
    match how {
        Install::Replace => {
            empty_dataset(state, now_ms);
        }
        Install::Merge => {}
        Install::AddOnly => {
            let clash = snapshot.keys.iter().any(|k| {
                state
                    .dbs
                    .get(k.db)
                    .is_some_and(|db| db.peek_stored(&k.key).is_some())
            });
            if clash
                || !state.scripting.libraries.libraries.is_empty() && !snapshot.functions.is_empty()
            {
                return Err("the snapshot holds keys or libraries that already exist".into());
            }
        }
    }
    for code in snapshot.functions {
        install_library(state, code, how == Install::Merge)?;
    }
    let mut loaded = Loaded::default();
    for key in snapshot.keys {
        install_key(state, key, now_ms, &mut loaded);
    }
    Ok(loaded)
}

/// Drops every key and function library, before a load replaces them.
pub fn empty_dataset(state: &mut ServerState, now_ms: i64) {
    for db in state.dbs.iter_mut() {
        drop(db.flush(now_ms));
    }
    state.scripting.flush_functions();
}

fn install_library(state: &mut ServerState, code: Vec<u8>, replace: bool) -> Result<(), String> {
    let scripting = &mut state.scripting;
    if let Some(vm) = scripting.functions_vm.as_mut() {
        scripting
            .libraries
            .load(vm, Bytes::from(code), replace)
            .map_err(|e| format!("Failed loading library, {}", e))?;
    }
    Ok(())
}

/// Puts one loaded key into its database (the caller checked the database exists), or
/// drops it when it has already expired.
fn install_key(state: &mut ServerState, key: LoadedKey, now_ms: i64, loaded: &mut Loaded) {
    // A primary drops keys already past their time; a replica keeps them until its primary's
    // DEL, which may never come if the primary gave the key a new TTL meanwhile.
    if key.expire_at.is_some_and(|at| at <= now_ms) && state.replication.primary.is_none() {
        loaded.expired += 1;
        return;
    }
    let db = &mut state.dbs[key.db];
    db.set(&key.key, key.value, false);
    if let Some(at) = key.expire_at {
        db.set_expire(&key.key, at, now_ms);
    }
    loaded.keys += 1;
}

fn too_many_databases(db: usize) -> String {
    format!(
        "FATAL: Data file was created with a Redis server configured to handle more than {} databases. Exiting\n",
        db
    )
}

/// Replaces everything the server holds with an RDB file's contents, reading it key by key
/// (a start-up load serves the clients waiting as it goes, see [`super::loading`]). On
/// failure the reason was logged as Redis logs it, and the server holds what was loaded so
/// far: the caller stops the server.
pub fn load_rdb(state: &mut ServerState, data: &[u8]) -> Result<Loaded, ()> {
    let now_ms = crate::time::unix_ms();
    empty_dataset(state, now_ms);
    let mut reader = match RdbReader::new(data, state.settings.load_limits()) {
        Ok(reader) => reader,
        Err(e) => {
            log_read_failure(&e, 0);
            return Err(());
        }
    };
    if !state.config.get_bool("rdbchecksum") || state.skip_checksum_validation {
        reader.skip_checksum();
    }
    let key_delay = state.config.get_i64("key-load-delay");
    let mut loaded = Loaded::default();
    loop {
        let entry = match reader.next_entry() {
            Ok(Some(entry)) => entry,
            Ok(None) => break,
            Err(e) => {
                log_read_failure(&e, reader.bytes_read());
                return Err(());
            }
        };
        match entry {
            Entry::Aux { key, value } => {
                log_aux_field(&key, &value);
                note_repl_field(&mut loaded, &key, &value);
            }
            Entry::Function(code) => {
                if let Err(e) = install_library(state, code, false) {
                    crate::log::warning(&e);
                    return Err(());
                }
            }
            Entry::Key(key) => {
                if key.db >= state.dbs.len() {
                    crate::log::warning(&too_many_databases(key.db));
                    return Err(());
                }
                install_key(state, key, now_ms, &mut loaded);
                if key_delay != 0 {
                    super::loading::debug_delay(key_delay);
                }
            }
            Entry::EmptyKey { key, .. } => {
                if loaded.empty_skipped < 10 {
                    crate::log::warning(&format!(
                        "rdbLoadObject skipping empty key: {}",
                        String::from_utf8_lossy(&key)
                    ));
                }
                loaded.empty_skipped += 1;
            }
            Entry::SelectDb(_) | Entry::ResizeDb { .. } => {}
        }
        super::loading::progress(state, reader.bytes_read());
    }
    loaded.bytes = reader.bytes_read();
    Ok(loaded)
}

/// Redis's log lines for an RDB file it cannot load, `offset` bytes in.
fn log_read_failure(error: &LoadError, offset: u64) {
    crate::log::warning(&load_error_text(error));
    let reason = match error {
        LoadError::BadChecksum { .. } => "RDB CRC error",
        LoadError::Truncated => "Unexpected EOF reading RDB file",
        LoadError::Corrupt(why) => why.as_str(),
        _ => return,
    };
    crate::log::warning(&format!(
        "Internal error in RDB reading offset {} -> {}",
        offset, reason
    ));
    crate::log::warning("Terminating server after rdb file reading failure.");
}

/// Loads `dbfilename` at start-up, as Redis does, logging what it loaded. Ok when the file
/// does not exist; Err (with the log line already written) when the server must not start.
pub fn load_at_startup(state: &mut ServerState) -> Result<(), ()> {
    let started = Instant::now();
    let file_name = state.config.get("dbfilename").to_string();
    let data = match std::fs::read(&file_name) {
        Ok(data) => data,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            crate::log::warning(&format!(
                "Fatal error loading the DB: {}. Exiting.",
                super::strerror(&e)
            ));
            return Err(());
        }
    };
    super::loading::file_started(state, data.len() as u64);
    let loaded = load_rdb(state, &data)?;
    crate::log::notice(&if loaded.empty_skipped > 0 {
        format!(
            "Done loading RDB, keys loaded: {}, keys expired: {}, empty keys skipped: {}.",
            loaded.keys, loaded.expired, loaded.empty_skipped
        )
    } else {
        format!(
            "Done loading RDB, keys loaded: {}, keys expired: {}.",
            loaded.keys, loaded.expired
        )
    });
    crate::log::notice(&format!(
        "DB loaded from disk: {:.3} seconds",
        started.elapsed().as_secs_f64()
    ));
    state.persistence.last_load_keys_loaded = loaded.keys;
    state.persistence.last_load_keys_expired = loaded.expired;
    state.persistence.dirty_at_last_save = state.dirty();
    if let Some(repl) = loaded.repl.filter(|r| r.replid.len() == 40) {
        crate::replication::resume_from(state, repl);
    }
    Ok(())
}

/// Collects the replication position from the aux fields that carry it.
fn note_repl_field(loaded: &mut Loaded, key: &[u8], value: &[u8]) {
    if !matches!(key, b"repl-id" | b"repl-offset" | b"repl-stream-db") {
        return;
    }
    let text = String::from_utf8_lossy(value);
    let position = loaded.repl.get_or_insert(ReplPosition {
        replid: String::new(),
        offset: 0,
        stream_db: 0,
    });
    match key {
        b"repl-id" => position.replid = text.into_owned(),
        b"repl-offset" => position.offset = text.parse().unwrap_or(0),
        _ => position.stream_db = text.parse().unwrap_or(0),
    }
}

/// The line Redis logs about an aux field of a snapshot it loads (the file's origin).
fn log_aux_field(key: &[u8], value: &[u8]) {
    let value = String::from_utf8_lossy(value);
    match key {
        b"redis-ver" => crate::log::notice(&format!("Loading RDB produced by version {}", value)),
        b"ctime" => {
            if let Ok(ctime) = value.parse::<i64>() {
                let age = (crate::time::unix_ms() / 1000 - ctime).max(0);
                crate::log::notice(&format!("RDB age {} seconds", age));
            }
        }
        b"used-mem" => {
            if let Ok(bytes) = value.parse::<u64>() {
                crate::log::notice(&format!(
                    "RDB memory usage when created {:.2} Mb",
                    bytes as f64 / (1024.0 * 1024.0)
                ));
            }
        }
        _ => {}
    }
}

/// Redis's log line for a snapshot that cannot be loaded.
pub fn load_error_text(error: &moonkv_persistence::rdb::LoadError) -> String {
    error.to_string()
}
