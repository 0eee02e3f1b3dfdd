//! The append-only file, as Redis 7.0 keeps it: a directory (`appenddirname`) holding a
//! manifest, one base file (an RDB snapshot, or commands when `aof-use-rdb-preamble` is off)
//! and incremental files of the commands written since. The format lives in
//! `moonkv_persistence::aof`; this module feeds it, makes it durable by `appendfsync`,
//! rewrites it (BGREWRITEAOF, automatic growth) and loads it at start-up.
//!
//! Effects reach the file through the same emission as the replication stream (see
//! `crate::replication::emit`): scripts and transactions appear as their effects wrapped in
//! MULTI/EXEC, never as script text. The buffer of effects is written before the replies of
//! the commands that made them leave the server (at the end of each batch of requests, under
//! the lock), and with `appendfsync always` it is also fsynced then: a client never sees a
//! reply to a write the file does not hold.

use super::dataset::{Captured, Dataset, Image, KeySink};
use crate::state::ServerState;
use bytes::Bytes;
use moonkv_keyspace::{StrView, Value};
use moonkv_persistence::aof::{self as format, AofFile, CommandReader, Manifest, ReadError};
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

/// Commands of a rewritten base file add at most this many elements each (as Redis's
/// AOF_REWRITE_ITEMS_PER_CMD), so loading never meets one enormous command.
const ITEMS_PER_COMMAND: usize = 64;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum FsyncPolicy {
    Always,
    EverySec,
    No,
}

fn fsync_policy(state: &ServerState) -> FsyncPolicy {
    match state.config.get("appendfsync") {
        "always" => FsyncPolicy::Always,
        "no" => FsyncPolicy::No,
        _ => FsyncPolicy::EverySec,
    }
}

/// The AOF while it is on: the file being appended to and what is waiting to go there.
struct OpenAof {
    dir: PathBuf,
    prefix: String,
    manifest: Manifest,
    /// Whether the manifest on disk lists the incremental file being written (not yet when
    /// the AOF was just turned on at run time: its first rewrite completes it).
    manifest_complete: bool,
    file: File,
    buffer: Vec<u8>,
    selected_db: Option<usize>,
    /// `aof-timestamp-enabled`: the second last annotated.
    last_timestamp: i64,
    current_size: u64,
    base_size: u64,
    /// Bytes written since the last fsync.
    unsynced: bool,
    last_fsync: Instant,
    /// The last write error, while writes keep failing (MISCONF).
    write_error: Option<String>,
    fsyncer: Fsyncer,
}

/// The thread that fsyncs the file off the serving threads: once a second under `everysec`
/// (asked by the cron), and for the batches of clients waiting under `always`. It takes
/// every request waiting and fsyncs once, with the newest handle (when a rewrite switched
/// files, the older file was fsynced at the switch, under the lock): a group commit, as
/// Redis's single fsync per event-loop turn for every client served in it.
struct Fsyncer {
    jobs: mpsc::Sender<FsyncJob>,
    /// `everysec` fsyncs queued or under way (a slow disk delays the next one).
    pending: Arc<AtomicUsize>,
}

struct FsyncJob {
    file: File,
    /// Under `always`: the batch whose replies wait for this fsync. A failed fsync then ends
    /// the server, as in Redis; under `everysec` it is logged.
    done: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Fsyncer {
    fn start() -> io::Result<Fsyncer> {
        let (jobs, incoming) = mpsc::channel::<FsyncJob>();
        let pending = Arc::new(AtomicUsize::new(0));
        let counter = pending.clone();
        std::thread::Builder::new()
            .name("moonkv-aof-fsync".into())
            .spawn(move || {
                while let Ok(first) = incoming.recv() {
                    let mut batch = vec![first];
                    batch.extend(incoming.try_iter());
                    let Some(newest) = batch.last() else { continue };
                    if let Err(e) = newest.file.sync_data() {
                        if batch.iter().any(|job| job.done.is_some()) {
                            exit_on_fsync_error(&e);
                        }
                        crate::log::warning(&format!(
                            "Error syncing the AOF file: {}",
                            super::strerror(&e)
                        ));
                    }
                    for job in batch {
                        match job.done {
                            Some(done) => {
                                let _ = done.send(());
                            }
                            None => {
                                counter.fetch_sub(1, Ordering::Relaxed);
                            }
                        }
                    }
                }
            })?;
        Ok(Fsyncer { jobs, pending })
    }
}

/// A rewrite under way: a thread writes the new base file from the dataset as it was when the
/// rewrite started (see `super::dataset`).
pub struct Rewrite {
    job: super::job::BackgroundJob,
    temp: PathBuf,
    rdb_preamble: bool,
    /// Incremental files before this sequence number are folded into the new base.
    first_kept_incr: Option<i64>,
}

impl Rewrite {
    /// Stops the rewrite (see [`super::snapshot::BackgroundSave::abandon`]).
    fn abandon(self, state: &mut ServerState) {
        self.job.abandon();
        Captured::stop(state);
        let _ = std::fs::remove_file(&self.temp);
    }
}

pub struct Aof {
    open: Option<OpenAof>,
    pub rewrite: Option<Rewrite>,
    /// BGREWRITEAOF came while a BGSAVE ran: it starts when that ends.
    pub rewrite_scheduled: bool,
    pub last_rewrite_secs: i64,
    pub rewrites: u64,
    pub last_rewrite_ok: bool,
    pub consecutive_rewrite_failures: u64,
    pub delayed_fsyncs: u64,
    /// DEBUG AOF-FLUSH-SLEEP: microseconds to sleep before each write to the file (a test
    /// hook that widens the window between a write and its reply).
    pub flush_sleep_us: u64,
}

impl Default for Aof {
    fn default() -> Self {
        Aof {
            open: None,
            rewrite: None,
            rewrite_scheduled: false,
            last_rewrite_secs: -1,
            rewrites: 0,
            last_rewrite_ok: true,
            consecutive_rewrite_failures: 0,
            delayed_fsyncs: 0,
            flush_sleep_us: 0,
        }
    }
}

impl Aof {
    pub fn is_on(&self) -> bool {
        self.open.is_some()
    }

    /// Appends effects to the buffer (see `crate::replication::emit`).
    pub fn feed(&mut self, effects: &[crate::replication::Effect], timestamps: bool) {
        let Some(open) = self.open.as_mut() else {
            return;
        };
        if !effects
            .iter()
            .any(|e| e.to & crate::replication::TO_AOF != 0)
        {
            return;
        }
        // `aof-timestamp-enabled`: an annotation at each new second.
        if timestamps {
            let now = crate::time::unix_ms() / 1000;
            if now > open.last_timestamp {
                format::timestamp_annotation(&mut open.buffer, now);
                open.last_timestamp = now;
            }
        }
        crate::replication::encode_effects(
            &mut open.buffer,
            &mut open.selected_db,
            effects,
            crate::replication::TO_AOF,
        );
    }

    /// The write error that makes the server refuse writes (MISCONF), if any.
    pub fn write_error(&self) -> Option<&str> {
        self.open.as_ref().and_then(|o| o.write_error.as_deref())
    }

    /// INFO `aof_current_rewrite_time_sec`: -1 when no rewrite runs.
    pub fn rewrite_elapsed_secs(&self) -> i64 {
        self.rewrite
            .as_ref()
            .map_or(-1, |r| r.job.elapsed().as_secs() as i64)
    }

    pub fn current_size(&self) -> u64 {
        self.open.as_ref().map_or(0, |o| o.current_size)
    }

    pub fn base_size(&self) -> u64 {
        self.open.as_ref().map_or(0, |o| o.base_size)
    }

    pub fn buffer_len(&self) -> usize {
        self.open.as_ref().map_or(0, |o| o.buffer.len())
    }

    pub fn pending_fsyncs(&self) -> usize {
        self.open
            .as_ref()
            .map_or(0, |o| o.fsyncer.pending.load(Ordering::Relaxed))
    }
}

fn aof_dir(state: &ServerState) -> PathBuf {
    PathBuf::from(state.config.get("appenddirname"))
}

fn manifest_name(prefix: &str) -> String {
    format!("{}.manifest", prefix)
}

/// Writes what is buffered to the file, and fsyncs it under `appendfsync always`. Called
/// before replies leave the server. A write that fails is kept and retried; under `always`
/// the server cannot keep its promise and exits, as Redis does.
pub fn write_pending(state: &mut ServerState) {
    let policy = fsync_policy(state);
    write_buffer(state, policy);
    let Some(open) = state.aof.open.as_mut() else {
        return;
    };
    if policy == FsyncPolicy::Always && open.unsynced {
        if let Err(e) = open.file.sync_data() {
            exit_on_fsync_error(&e);
        }
        open.unsynced = false;
        open.last_fsync = Instant::now();
    }
}

/// [`write_pending`] for a connection's batch: under `appendfsync always` the fsync is left
/// to the fsync thread (see [`Fsyncer`]), and the connection waits for the returned
/// [`Durable`] after releasing the lock, before its replies leave.
pub fn write_pending_for_replies(state: &mut ServerState) -> Option<Durable> {
    let policy = fsync_policy(state);
    write_buffer(state, policy);
    let open = state.aof.open.as_mut()?;
    if policy != FsyncPolicy::Always || !open.unsynced {
        return None;
    }
    let (done, durable) = tokio::sync::oneshot::channel();
    let sent = open.file.try_clone().ok().and_then(|file| {
        let job = FsyncJob {
            file,
            done: Some(done),
        };
        open.fsyncer.jobs.send(job).ok()
    });
    if sent.is_none() {
        // No fsync thread to hand it to: fsync here, as the other paths do.
        write_pending(state);
        return None;
    }
    open.unsynced = false;
    open.last_fsync = Instant::now();
    Some(Durable(durable))
}

/// The fsync of a batch's writes, handed to the fsync thread.
pub struct Durable(tokio::sync::oneshot::Receiver<()>);

impl Durable {
    /// Waits until the writes are on disk.
    pub async fn wait(self) {
        // The thread exits the process rather than report a failed fsync; a dropped sender
        // means the AOF was turned off, after an fsync of everything written.
        let _ = self.0.await;
    }
}

fn exit_on_fsync_error(e: &io::Error) -> ! {
    crate::log::warning(&format!(
        "Can't persist AOF for fsync error when the AOF fsync policy is 'always': {}. Exiting...",
        super::strerror(e)
    ));
    std::process::exit(1);
}

/// Writes the buffer to the file (no fsync).
fn write_buffer(state: &mut ServerState, policy: FsyncPolicy) {
    let flush_sleep = state.aof.flush_sleep_us;
    let Some(open) = state.aof.open.as_mut() else {
        return;
    };
    if open.buffer.is_empty() {
        return;
    }
    if flush_sleep > 0 {
        std::thread::sleep(Duration::from_micros(flush_sleep));
    }
    let size_before = open.current_size;
    match open.file.write_all(&open.buffer) {
        Ok(()) => {
            open.current_size += open.buffer.len() as u64;
            open.buffer.clear();
            open.unsynced = true;
            if open.write_error.take().is_some() {
                crate::log::warning("AOF write error looks solved, Redis can write again.");
            }
        }
        Err(e) => {
            let reason = super::strerror(&e);
            if policy == FsyncPolicy::Always {
                crate::log::warning(&format!(
                    "Can't recover from AOF write error when the AOF fsync policy is 'always'. Exiting... ({})",
                    reason
                ));
                std::process::exit(1);
            }
            if open.write_error.is_none() {
                crate::log::warning(&format!("Error writing to the AOF file: {}", reason));
            }
            // A partial write is cut off again, so the retry does not duplicate it.
            let _ = open.file.set_len(size_before);
            open.write_error = Some(reason);
        }
    }
}

/// The cron's part: write, fsync once a second under `everysec`, collect a finished rewrite,
/// start a scheduled or automatic one.
pub fn cron(state: &mut ServerState) {
    write_pending(state);
    if fsync_policy(state) == FsyncPolicy::EverySec {
        if let Some(open) = state.aof.open.as_mut() {
            if open.unsynced && open.last_fsync.elapsed() >= Duration::from_secs(1) {
                if open.fsyncer.pending.load(Ordering::Relaxed) > 0 {
                    // The disk is slow: wait for the fsync under way rather than queue more.
                    state.aof.delayed_fsyncs += 1;
                } else if let Ok(file) = open.file.try_clone() {
                    open.fsyncer.pending.fetch_add(1, Ordering::Relaxed);
                    if open
                        .fsyncer
                        .jobs
                        .send(FsyncJob { file, done: None })
                        .is_ok()
                    {
                        open.unsynced = false;
                        open.last_fsync = Instant::now();
                    } else {
                        open.fsyncer.pending.fetch_sub(1, Ordering::Relaxed);
                    }
                }
            }
        }
    }
    collect_rewrite(state);
    if crate::replication::primary::capture_busy(state) {
        return;
    }
    if state.aof.rewrite_scheduled {
        state.aof.rewrite_scheduled = false;
        let _ = start_rewrite(state);
        return;
    }
    let percentage = state.config.get_i64("auto-aof-rewrite-percentage");
    let min_size = state.config.get_i64("auto-aof-rewrite-min-size").max(0) as u64;
    if let Some(open) = state.aof.open.as_ref() {
        let base = open.base_size.max(1);
        let growth = (open.current_size * 100 / base) as i64 - 100;
        if percentage > 0 && open.current_size > min_size && growth >= percentage {
            crate::log::notice(&format!(
                "Starting automatic rewriting of AOF on {}% growth",
                growth
            ));
            let _ = start_rewrite(state);
        }
    }
}

/// Writes and fsyncs everything, for a shutdown or before turning the AOF off.
pub fn flush_and_sync(state: &mut ServerState) {
    write_pending(state);
    if let Some(open) = state.aof.open.as_mut() {
        crate::log::notice("Calling fsync() on the AOF file.");
        let _ = open.file.sync_data();
        open.unsynced = false;
    }
}

/// Stops a rewrite under way, removing its temporary file (SHUTDOWN, turning the AOF off).
pub fn stop_rewrite(state: &mut ServerState) {
    if let Some(rewrite) = state.aof.rewrite.take() {
        crate::log::warning("There is a child rewriting the AOF. Killing it!");
        rewrite.abandon(state);
    }
}

// ---- writing base files ----------------------------------------------------------------------

/// Writes a dataset as commands: what a base file holds when `aof-use-rdb-preamble` is off.
fn write_commands<W: Write>(
    out: &mut W,
    image: &Image,
    now_ms: i64,
    timestamps: bool,
    cancel: Option<&AtomicBool>,
) -> io::Result<()> {
    let mut sink = CommandSink {
        out,
        buf: Vec::with_capacity(1 << 16),
        now_ms,
    };
    if timestamps {
        format::timestamp_annotation(&mut sink.buf, now_ms / 1000);
    }
    for code in &image.functions {
        format::encode_command(&mut sink.buf, &[b"FUNCTION", b"LOAD", code]);
    }
    image.each(&mut sink, cancel)?;
    sink.out.write_all(&sink.buf)
}

/// Writes keys as the commands that rebuild them, leaving out keys already expired.
struct CommandSink<'a, W: Write> {
    out: &'a mut W,
    buf: Vec<u8>,
    now_ms: i64,
}

impl<W: Write> KeySink for CommandSink<'_, W> {
    fn select_db(&mut self, index: usize, _keys: u64, _expires: u64) -> io::Result<()> {
        format::encode_command(&mut self.buf, &[b"SELECT", index.to_string().as_bytes()]);
        Ok(())
    }

    fn key(&mut self, key: &[u8], value: &Value, expire_at: Option<i64>) -> io::Result<()> {
        if expire_at.is_some_and(|at| at <= self.now_ms) {
            return Ok(());
        }
        encode_value(&mut self.buf, key, value);
        if let Some(at) = expire_at {
            format::encode_command(
                &mut self.buf,
                &[b"PEXPIREAT", key, at.to_string().as_bytes()],
            );
        }
        if self.buf.len() >= 1 << 16 {
            self.out.write_all(&self.buf)?;
            self.buf.clear();
        }
        Ok(())
    }
}

/// The commands that rebuild one key.
fn encode_value(buf: &mut Vec<u8>, key: &[u8], value: &Value) {
    fn batched(
        buf: &mut Vec<u8>,
        command: &[u8],
        key: &[u8],
        items: impl Iterator<Item = Vec<Vec<u8>>>,
    ) {
        let mut args: Vec<Vec<u8>> = Vec::new();
        let mut count = 0;
        let emit = |args: &mut Vec<Vec<u8>>, buf: &mut Vec<u8>| {
            let mut parts: Vec<&[u8]> = vec![command, key];
            parts.extend(args.iter().map(Vec::as_slice));
            format::encode_command(buf, &parts);
            args.clear();
        };
        for item in items {
            args.extend(item);
            count += 1;
            if count == ITEMS_PER_COMMAND {
                emit(&mut args, buf);
                count = 0;
            }
        }
        if count > 0 {
            emit(&mut args, buf);
        }
    }
    match value {
        Value::List(list) => batched(buf, b"RPUSH", key, list.iter().map(|i| vec![i.to_vec()])),
        Value::Set(set) => batched(buf, b"SADD", key, set.iter().map(|m| vec![m.to_vec()])),
        Value::Hash(hash) => batched(
            buf,
            b"HMSET",
            key,
            hash.iter().map(|(f, v)| vec![f.to_vec(), v.to_vec()]),
        ),
        Value::ZSet(zset) => batched(
            buf,
            b"ZADD",
            key,
            zset.iter()
                .map(|(m, score)| vec![score.to_string().into_bytes(), m.to_vec()]),
        ),
        other => {
            let bytes = match other.as_str() {
                Some(StrView::Bytes(b)) => b.to_vec(),
                Some(StrView::Int(i)) => i.to_string().into_bytes(),
                None => Vec::new(),
            };
            format::encode_command(buf, &[b"SET", key, &bytes]);
        }
    }
}

/// Writes a new base file of `dbs` at `path`, durably.
fn write_base(
    file: File,
    image: &Image,
    rdb_preamble: bool,
    timestamps: bool,
    cancel: Option<&AtomicBool>,
) -> io::Result<()> {
    let now_ms = crate::time::unix_ms();
    let mut out = BufWriter::with_capacity(1 << 16, file);
    if rdb_preamble {
        out = super::snapshot::write_dataset(out, image, true, cancel, &AtomicUsize::new(0))?;
    } else {
        write_commands(&mut out, image, now_ms, timestamps, cancel)?;
    }
    let file = out.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()
}

fn open_for_append(path: &Path) -> io::Result<File> {
    OpenOptions::new().append(true).create(true).open(path)
}

// ---- rewriting -------------------------------------------------------------------------------

/// How BGREWRITEAOF went.
pub enum RewriteStart {
    Started,
    Scheduled,
}

/// Starts a rewrite: new writes go to a fresh incremental file from now on, and a thread
/// writes a base file from a copy of the dataset as of this moment. When it completes, the
/// manifest names the new base and the incremental files from now on, and the older files
/// are deleted.
pub fn start_rewrite(state: &mut ServerState) -> Result<RewriteStart, String> {
    if state.aof.rewrite.is_some() {
        return Err("Background append only file rewriting already in progress".into());
    }
    // One capture of the dataset at a time: after the BGSAVE or replica transfer under way.
    if state.persistence.bgsave.is_some() || state.replication.transfer.is_some() {
        state.aof.rewrite_scheduled = true;
        return Ok(RewriteStart::Scheduled);
    }
    let dir = aof_dir(state);
    std::fs::create_dir_all(&dir).map_err(|e| {
        let reason = format!(
            "Can't open or create append-only dir {}: {}",
            dir.display(),
            super::strerror(&e)
        );
        crate::log::warning(&reason);
        reason
    })?;
    // The writes so far belong to the incremental files the new base replaces.
    write_pending(state);
    let mut first_kept_incr = None;
    if let Some(open) = state.aof.open.as_mut() {
        let _ = open.file.sync_data();
        let incr = open.manifest.new_incr(&open.prefix);
        let file = open_for_append(&open.dir.join(&incr.name)).map_err(|e| {
            let reason = format!(
                "Can't open the append-only file {}: {}",
                incr.name,
                super::strerror(&e)
            );
            crate::log::warning(&reason);
            reason
        })?;
        if open.manifest_complete {
            if let Err(e) =
                format::write_manifest(&open.dir, &manifest_name(&open.prefix), &open.manifest)
            {
                crate::log::warning(&format!(
                    "Can't persist the AOF manifest: {}",
                    super::strerror(&e)
                ));
            }
        }
        crate::log::notice(&format!(
            "Creating AOF incr file {} on background rewrite",
            incr.name
        ));
        open.file = file;
        open.selected_db = None;
        open.unsynced = false;
        first_kept_incr = Some(incr.seq);
    }
    let temp = dir.join(format!("temp-rewriteaof-bg-{}.aof", std::process::id()));
    // Created here, not on the thread: an abandoned rewrite's thread may end after the next
    // rewrite started, and must not create (or remove) the next one's file.
    let file = File::create(&temp)
        .map_err(|e| format!("Can't rewrite append only file in background: {}", e))?;
    let captured = Captured::start(state);
    let image = Image::of(state, Dataset::Captured(captured));
    let rdb_preamble = state.config.get_bool("aof-use-rdb-preamble");
    let timestamps = state.settings.aof_timestamps;
    let job = super::job::BackgroundJob::spawn("moonkv-aof-rewrite", move |cancel| {
        write_base(file, &image, rdb_preamble, timestamps, Some(cancel))
    })
    .map_err(|e| {
        Captured::stop(state);
        let _ = std::fs::remove_file(&temp);
        format!("Can't rewrite append only file in background: {}", e)
    })?;
    state.aof.rewrite = Some(Rewrite {
        job,
        temp,
        rdb_preamble,
        first_kept_incr,
    });
    crate::log::notice(&format!(
        "Background append only file rewriting started by pid {}",
        std::process::id()
    ));
    Ok(RewriteStart::Started)
}

/// Takes in a finished rewrite: the new base goes in place and the manifest is updated.
fn collect_rewrite(state: &mut ServerState) {
    let Some(outcome) = state.aof.rewrite.as_mut().and_then(|r| r.job.finished()) else {
        return;
    };
    let Some(rewrite) = state.aof.rewrite.take() else {
        return;
    };
    // A rewrite that failed part-way leaves captures behind.
    Captured::stop(state);
    state.aof.last_rewrite_secs = rewrite.job.elapsed().as_secs() as i64;
    let result = outcome.and_then(|()| install_rewritten_base(state, &rewrite));
    match result {
        Ok(()) => {
            state.aof.rewrites += 1;
            state.aof.last_rewrite_ok = true;
            state.aof.consecutive_rewrite_failures = 0;
            crate::log::notice("Background AOF rewrite terminated with success");
            crate::log::notice("Background AOF rewrite finished successfully");
        }
        Err(e) => {
            let _ = std::fs::remove_file(&rewrite.temp);
            state.aof.last_rewrite_ok = false;
            state.aof.consecutive_rewrite_failures += 1;
            crate::log::warning(&format!(
                "Background AOF rewrite failed: {}",
                super::strerror(&e)
            ));
        }
    }
}

fn install_rewritten_base(state: &mut ServerState, rewrite: &Rewrite) -> io::Result<()> {
    let dir = aof_dir(state);
    let prefix = state.config.get("appendfilename").to_string();
    // With the AOF off (BGREWRITEAOF alone), the manifest on disk is the one to extend.
    let mut offline = None;
    let manifest = match state.aof.open.as_mut() {
        Some(open) => &mut open.manifest,
        None => offline.insert(read_manifest(&dir, &prefix)?.unwrap_or_default()),
    };
    let base = manifest.new_base(&prefix, rewrite.rdb_preamble);
    let base_path = dir.join(&base.name);
    std::fs::rename(&rewrite.temp, &base_path)?;
    crate::log::notice(&format!(
        "Successfully renamed the temporary AOF base file {} into {}",
        rewrite.temp.display(),
        base.name
    ));
    match rewrite.first_kept_incr {
        Some(seq) => manifest.mark_incrs_history(seq),
        None => manifest.mark_incrs_history(i64::MAX),
    }
    // write_manifest makes the directory durable, the base's rename with it.
    format::write_manifest(&dir, &manifest_name(&prefix), manifest)?;
    // Files the manifest no longer needs.
    for old in manifest.take_history() {
        crate::log::notice(&format!(
            "Removing the history file {} in the background",
            old.name
        ));
        let _ = std::fs::remove_file(dir.join(&old.name));
    }
    format::write_manifest(&dir, &manifest_name(&prefix), manifest)?;
    let base_size = std::fs::metadata(&base_path).map_or(0, |m| m.len());
    if let Some(open) = state.aof.open.as_mut() {
        open.manifest_complete = true;
        open.base_size = base_size;
        open.current_size = base_size + open.file.metadata().map_or(0, |m| m.len());
    }
    Ok(())
}

// ---- turning the AOF on and off at run time -----------------------------------------------

/// CONFIG SET appendonly yes: new writes are appended from now on, and a rewrite writes the
/// base of everything before; the manifest names the new files once that completes.
pub fn turn_on(state: &mut ServerState) -> Result<(), String> {
    if state.aof.is_on() {
        return Ok(());
    }
    let dir = aof_dir(state);
    let prefix = state.config.get("appendfilename").to_string();
    std::fs::create_dir_all(&dir).map_err(|e| super::strerror(&e))?;
    let mut manifest = read_manifest(&dir, &prefix)
        .map_err(|e| super::strerror(&e))?
        .unwrap_or_default();
    let incr = manifest.new_incr(&prefix);
    let file = open_for_append(&dir.join(&incr.name)).map_err(|e| super::strerror(&e))?;
    let fsyncer = Fsyncer::start().map_err(|e| super::strerror(&e))?;
    state.aof.open = Some(OpenAof {
        dir,
        prefix,
        manifest,
        manifest_complete: false,
        file,
        buffer: Vec::new(),
        selected_db: None,
        last_timestamp: 0,
        current_size: 0,
        base_size: 0,
        unsynced: false,
        last_fsync: Instant::now(),
        write_error: None,
        fsyncer,
    });
    crate::notify::apply_to_dbs(state);
    stop_rewrite(state);
    // The increment just opened is the first kept one: everything before goes to the base.
    match start_rewrite_keeping(state, incr) {
        Ok(()) => Ok(()),
        Err(e) => {
            state.aof.open = None;
            crate::notify::apply_to_dbs(state);
            Err(e)
        }
    }
}

/// Starts the first rewrite after turning on: the incremental file `incr` is already the one
/// being written, so the rewrite must not open another.
fn start_rewrite_keeping(state: &mut ServerState, incr: AofFile) -> Result<(), String> {
    // The AOF needs its base now: a BGSAVE under way gives way rather than delay it.
    if let Some(bgsave) = state.persistence.bgsave.take() {
        bgsave.abandon(state);
    }
    let open = state.aof.open.take();
    let result = start_rewrite(state);
    state.aof.open = open;
    if let Some(rewrite) = state.aof.rewrite.as_mut() {
        rewrite.first_kept_incr = Some(incr.seq);
    }
    result.map(|_| ())
}

/// CONFIG SET appendonly no: everything written is made durable and the file is closed.
pub fn turn_off(state: &mut ServerState) {
    if !state.aof.is_on() {
        return;
    }
    flush_and_sync(state);
    stop_rewrite(state);
    state.aof.open = None;
    crate::notify::apply_to_dbs(state);
}

// ---- start-up ----------------------------------------------------------------------------------

fn read_manifest(dir: &Path, prefix: &str) -> io::Result<Option<Manifest>> {
    match std::fs::read(dir.join(manifest_name(prefix))) {
        Ok(text) => Manifest::parse(&text)
            .map(Some)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Why loading stopped the server; the log line was written.
pub struct LoadFailed;

/// Loads the AOF named by the manifest (base, then incremental files), as Redis does at
/// start-up with `appendonly yes`. Ok(false) when there is no AOF yet.
pub fn load(state: &mut ServerState) -> Result<bool, LoadFailed> {
    // What loading runs must not be appended again (DEBUG LOADAOF with the AOF open).
    let open = state.aof.open.take();
    let result = load_files(state);
    state.aof.open = open;
    if result.is_ok() {
        // The data in memory is what the files hold.
        state.persistence.dirty_at_last_save = state.dirty();
    }
    result
}

/// Whether an append-only file from before Redis 7.0 (`appendfilename` in `dir`) is to be
/// moved into the AOF directory, as Redis decides: no directory, or no manifest (or an
/// empty one), or one that names only that file as base while the directory lacks it (an
/// upgrade cut short between writing the manifest and moving the file).
fn needs_upgrade(dir: &Path, prefix: &str, manifest: Option<&Manifest>) -> bool {
    if !Path::new(prefix).is_file() {
        return false;
    }
    match manifest {
        None => true,
        Some(m) if m.is_empty() => true,
        Some(m) => {
            m.incrs.is_empty()
                && m.base.as_ref().is_some_and(|b| b.name == prefix)
                && !dir.join(prefix).exists()
        }
    }
}

/// Moves an old-style append-only file into the AOF directory as its base, with a manifest
/// naming it.
fn upgrade_old_aof(dir: &Path, prefix: &str) -> Result<Manifest, LoadFailed> {
    if let Err(e) = std::fs::create_dir_all(dir) {
        crate::log::warning(&format!(
            "Can't open or create append-only dir {}: {}",
            dir.display(),
            super::strerror(&e)
        ));
        return Err(LoadFailed);
    }
    let manifest = Manifest::upgraded_from(prefix);
    if let Err(e) = format::write_manifest(dir, &manifest_name(prefix), &manifest) {
        crate::log::warning(&format!(
            "Can't persist the AOF manifest: {}",
            super::strerror(&e)
        ));
        return Err(LoadFailed);
    }
    if let Err(e) = std::fs::rename(prefix, dir.join(prefix)) {
        crate::log::warning(&format!(
            "Error trying to move the old AOF file {} into dir {}: {}",
            prefix,
            dir.display(),
            super::strerror(&e)
        ));
        return Err(LoadFailed);
    }
    crate::log::notice(&format!(
        "Successfully migrated an old-style AOF file ({}) into the AOF directory ({}).",
        prefix,
        dir.display()
    ));
    Ok(manifest)
}

fn load_files(state: &mut ServerState) -> Result<bool, LoadFailed> {
    let started = Instant::now();
    let dir = aof_dir(state);
    let prefix = state.config.get("appendfilename").to_string();
    let manifest = match read_manifest(&dir, &prefix) {
        Ok(m) => m,
        Err(e) => {
            crate::log::warning(&format!(
                "Failed to load the AOF manifest {}: {}",
                manifest_name(&prefix),
                super::strerror(&e)
            ));
            return Err(LoadFailed);
        }
    };
    let manifest = match manifest {
        Some(m) if !needs_upgrade(&dir, &prefix, Some(&m)) => m,
        m if needs_upgrade(&dir, &prefix, m.as_ref()) => upgrade_old_aof(&dir, &prefix)?,
        _ => return Ok(false),
    };
    let files: Vec<AofFile> = manifest
        .files_in_load_order()
        .into_iter()
        .cloned()
        .collect();
    if files.is_empty() {
        return Ok(false);
    }
    let truncated_ok = state.config.get_bool("aof-load-truncated");
    for (i, file) in files.iter().enumerate() {
        let last = i + 1 == files.len();
        let file_started = Instant::now();
        let path = dir.join(&file.name);
        let data = match std::fs::read(&path) {
            Ok(data) => data,
            Err(e) => {
                crate::log::warning(&format!(
                    "The append log file {} doesn't exist: {}",
                    file.name,
                    super::strerror(&e)
                ));
                return Err(LoadFailed);
            }
        };
        let is_base = matches!(file.kind, format::FileKind::Base);
        super::loading::file_started(state, data.len() as u64);
        // A file may open with an RDB snapshot (a base, or an AOF from before 7.0 with its
        // preamble) and go on with commands.
        let commands_at = if data.starts_with(b"REDIS") {
            load_rdb_base(state, &file.name, &data)?
        } else {
            0
        };
        if commands_at < data.len() {
            load_commands(
                state,
                &file.name,
                &path,
                &data,
                commands_at,
                last,
                truncated_ok,
            )?;
        }
        super::loading::file_done(state, data.len() as u64);
        crate::log::notice(&format!(
            "DB loaded from {} file {}: {:.3} seconds",
            if is_base { "base" } else { "incr" },
            file.name,
            file_started.elapsed().as_secs_f64()
        ));
    }
    crate::log::notice(&format!(
        "DB loaded from append only file: {:.3} seconds",
        started.elapsed().as_secs_f64()
    ));
    Ok(true)
}

/// Loads the RDB snapshot a file opens with; Ok gives where it ends.
fn load_rdb_base(state: &mut ServerState, name: &str, data: &[u8]) -> Result<usize, LoadFailed> {
    crate::log::notice("Reading RDB base file on AOF loading...");
    let loaded = super::snapshot::load_rdb(state, data).map_err(|()| {
        crate::log::warning(&format!(
            "Error reading the RDB base file {}, AOF loading aborted",
            name
        ));
        LoadFailed
    })?;
    if (loaded.bytes as usize) < data.len() {
        crate::log::notice("Reading the remaining AOF tail...");
    }
    Ok(loaded.bytes as usize)
}

/// Runs the commands of one file (from byte `start` on) through the command path, as a
/// client of its own that gets no replies.
fn load_commands(
    state: &mut ServerState,
    name: &str,
    path: &Path,
    data: &[u8],
    start: usize,
    last_file: bool,
    truncated_ok: bool,
) -> Result<(), LoadFailed> {
    let mut client = crate::client::ClientState::new(
        u64::MAX,
        String::new(),
        String::new(),
        crate::time::unix_ms(),
        true,
    );
    let mut replies = Vec::new();
    let mut reader = CommandReader::new(&data[start..]);
    let cut_at = loop {
        let args = match reader.next() {
            None => break None,
            Some(Ok(args)) => args,
            // The reader gives the offset to cut at: after the last whole command, or before
            // a transaction that never reached its EXEC.
            Some(Err(ReadError::Truncated { valid_len })) => break Some(start + valid_len),
            Some(Err(ReadError::IncompleteMulti { valid_len })) => {
                crate::log::warning(&format!(
                    "Revert incomplete MULTI/EXEC transaction in AOF file {}",
                    name
                ));
                break Some(start + valid_len);
            }
            Some(Err(ReadError::BadFormat { .. })) => {
                crate::log::warning(&format!(
                    "Bad file format reading the append only file {}: make a backup of your AOF file, then use ./redis-check-aof --fix <filename.manifest>",
                    name
                ));
                return Err(LoadFailed);
            }
        };
        let args: Vec<Bytes> = args.into_iter().map(Bytes::from).collect();
        let mut sink = moonkv_protocol::RespWriter::new(&mut replies, client.protocol);
        let now = crate::time::unix_ms();
        if let Err(command) =
            crate::commands::run_trusted(state, &mut client, &args, &mut sink, now)
        {
            crate::log::warning(&format!(
                "Unknown command '{}' reading the append only file {}",
                command, name
            ));
            return Err(LoadFailed);
        }
        replies.clear();
        client.block_request = None;
        super::loading::progress(state, (start + reader.offset()) as u64);
    };
    let Some(valid) = cut_at else {
        return Ok(());
    };
    // The file ends inside a command (or a transaction): a crash cut the last write short.
    if truncated_ok && last_file {
        crate::log::warning(&format!(
            "!!! Warning: short read while loading the AOF file {}!!!",
            name
        ));
        crate::log::warning(&format!(
            "!!! Truncating the AOF {} at offset {} !!!",
            name, valid
        ));
        let truncated = OpenOptions::new()
            .write(true)
            .open(path)
            .and_then(|f| f.set_len(valid as u64));
        if let Err(e) = truncated {
            crate::log::warning(&format!(
                "Error truncating the AOF file {}: {}",
                name,
                super::strerror(&e)
            ));
            return Err(LoadFailed);
        }
        crate::log::warning(&format!(
            "AOF {} loaded anyway because aof-load-truncated is enabled",
            name
        ));
        return Ok(());
    }
    if truncated_ok && !last_file {
        crate::log::warning("Fatal error: the truncated file is not the last file");
        return Err(LoadFailed);
    }
    crate::log::warning(&format!(
        "Unexpected end of file reading the append only file {}. You can: 1) Make a backup of your AOF file, then use ./redis-check-aof --fix <filename.manifest>. 2) Alternatively you can set the 'aof-load-truncated' configuration option to yes and restart the server.",
        name
    ));
    Err(LoadFailed)
}

/// Opens the AOF for appending at start-up (after loading): creates the directory, a base
/// file of the (empty) dataset if there is none, and an incremental file, as Redis does.
pub fn open_at_startup(state: &mut ServerState) -> Result<(), LoadFailed> {
    let dir = aof_dir(state);
    let prefix = state.config.get("appendfilename").to_string();
    let fail = |what: String| {
        crate::log::warning(&what);
        LoadFailed
    };
    std::fs::create_dir_all(&dir).map_err(|e| {
        fail(format!(
            "Can't open or create append-only dir {}: {}",
            dir.display(),
            super::strerror(&e)
        ))
    })?;
    let mut manifest = read_manifest(&dir, &prefix)
        .map_err(|e| {
            fail(format!(
                "Can't read the AOF manifest: {}",
                super::strerror(&e)
            ))
        })?
        .unwrap_or_default();
    let mut base_size = 0;
    if manifest.base.is_none() && manifest.incrs.is_empty() {
        let rdb_preamble = state.config.get_bool("aof-use-rdb-preamble");
        let base = manifest.new_base(&prefix, rdb_preamble);
        let image = Image::of(state, Dataset::Present(&state.dbs));
        let timestamps = state.settings.aof_timestamps;
        File::create(dir.join(&base.name))
            .and_then(|file| write_base(file, &image, rdb_preamble, timestamps, None))
            .map_err(|e| {
                fail(format!(
                    "Can't create the AOF base file: {}",
                    super::strerror(&e)
                ))
            })?;
        crate::log::notice(&format!(
            "Creating AOF base file {} on server start",
            base.name
        ));
    }
    if let Some(base) = &manifest.base {
        base_size = std::fs::metadata(dir.join(&base.name)).map_or(0, |m| m.len());
    }
    let incr_name = match manifest.incrs.last() {
        Some(incr) => incr.name.clone(),
        None => {
            let incr = manifest.new_incr(&prefix);
            crate::log::notice(&format!(
                "Creating AOF incr file {} on server start",
                incr.name
            ));
            incr.name
        }
    };
    let file = open_for_append(&dir.join(&incr_name)).map_err(|e| {
        fail(format!(
            "Can't open the append-only file {}: {}",
            incr_name,
            super::strerror(&e)
        ))
    })?;
    format::write_manifest(&dir, &manifest_name(&prefix), &manifest).map_err(|e| {
        fail(format!(
            "Can't persist the AOF manifest: {}",
            super::strerror(&e)
        ))
    })?;
    let incr_sizes: u64 = manifest
        .incrs
        .iter()
        .map(|f| std::fs::metadata(dir.join(&f.name)).map_or(0, |m| m.len()))
        .sum();
    let fsyncer =
        Fsyncer::start().map_err(|e| fail(format!("Can't start the AOF fsync thread: {}", e)))?;
    state.aof.open = Some(OpenAof {
        dir,
        prefix,
        manifest,
        manifest_complete: true,
        file,
        buffer: Vec::new(),
        selected_db: None,
        last_timestamp: 0,
        current_size: base_size + incr_sizes,
        base_size,
        unsynced: false,
        last_fsync: Instant::now(),
        write_error: None,
        fsyncer,
    });
    crate::notify::apply_to_dbs(state);
    Ok(())
}
