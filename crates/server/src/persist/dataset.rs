//! The keys a snapshot file (an RDB file, an AOF base) is written from: the databases as they
//! are, for a save under the lock, or as they were when a background save started, copied a
//! slice at a time under the lock while the server goes on serving between slices (see
//! `moonkv_keyspace::capture` for how changes made meanwhile are kept out).

use super::snapshot::ReplPosition;
use crate::server::Shared;
use crate::state::ServerState;
use bytes::Bytes;
use moonkv_keyspace::{CapturedKey, Db, Value};
use moonkv_persistence::rdb::WriteOptions;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Weak;

/// Keys copied per slice: a slice holds the lock for about a tenth of a millisecond with
/// small values, so a client waits at most that much longer behind it.
const SLICE_KEYS: usize = 512;

/// Where a writer puts the keys.
pub(super) trait KeySink {
    /// A database's keys follow; `keys` and `expires` are its sizes (hints for a loader).
    fn select_db(&mut self, index: usize, keys: u64, expires: u64) -> io::Result<()>;
    fn key(&mut self, key: &[u8], value: &Value, expire_at: Option<i64>) -> io::Result<()>;
}

/// Everything a snapshot file (or AOF base) holds, and how to write it.
pub(super) struct Image<'a> {
    pub dataset: Dataset<'a>,
    /// The replication position to record (RDB files only).
    pub repl: Option<ReplPosition>,
    pub functions: Vec<Bytes>,
    pub options: WriteOptions,
    /// `rdb-key-save-delay`, the debugging pause per key.
    pub key_delay: i64,
}

impl<'a> Image<'a> {
    /// The dataset with the server's libraries and settings.
    pub fn of(state: &ServerState, dataset: Dataset<'a>) -> Image<'a> {
        Image {
            dataset,
            repl: None,
            functions: super::snapshot::library_codes(state),
            options: super::snapshot::write_options(state),
            key_delay: state.config.get_i64("rdb-key-save-delay"),
        }
    }

    /// Hands every key to `sink` (see [`Dataset::each`]), pausing `key_delay` before each and
    /// stopping once `cancel` is set.
    pub fn each(&self, sink: &mut dyn KeySink, cancel: Option<&AtomicBool>) -> io::Result<()> {
        let keep_going = || {
            if self.key_delay != 0 {
                super::loading::debug_delay(self.key_delay);
            }
            !cancel.is_some_and(|c| c.load(Ordering::Relaxed))
        };
        self.dataset.each(sink, &keep_going)
    }
}

pub(super) enum Dataset<'a> {
    /// The databases as they are: the caller holds the lock for the whole write.
    Present(&'a [Db]),
    /// The databases as of the start of a background save.
    Captured(Captured),
}

pub(super) struct Captured {
    server: Weak<Shared>,
    /// Index, key count and expiry count at the start of each database not empty then.
    dbs: Vec<(usize, u64, u64)>,
}

impl Captured {
    /// Starts capturing every database that holds keys (the caller holds the lock).
    pub fn start(state: &mut ServerState) -> Captured {
        let mut dbs = Vec::new();
        for (index, db) in state.dbs.iter_mut().enumerate() {
            if !db.is_empty() {
                dbs.push((index, db.len() as u64, db.expires_len() as u64));
                db.start_capture(index);
            }
        }
        Captured {
            server: state.server.clone(),
            dbs,
        }
    }

    pub fn key_count(&self) -> usize {
        self.dbs.iter().map(|&(_, keys, _)| keys as usize).sum()
    }

    /// Ends the capture early (the save was abandoned); the caller holds the lock.
    pub fn stop(state: &mut ServerState) {
        for db in state.dbs.iter_mut() {
            db.stop_capture();
        }
    }

    fn each(&self, sink: &mut dyn KeySink, keep_going: &dyn Fn() -> bool) -> io::Result<()> {
        let server = self
            .server
            .upgrade()
            .ok_or_else(|| io::Error::other("the server is gone"))?;
        let mut slice: Vec<CapturedKey> = Vec::with_capacity(SLICE_KEYS);
        for &(origin, keys, expires) in &self.dbs {
            sink.select_db(origin, keys, expires)?;
            loop {
                let done = {
                    let mut state = server.lock_from_thread();
                    if !keep_going() {
                        return Err(abandoned());
                    }
                    // SWAPDB may have moved the contents to another index.
                    let Some(db) = state
                        .dbs
                        .iter_mut()
                        .find(|db| db.capture_origin() == Some(origin))
                    else {
                        return Err(io::Error::other("the capture ended before the save"));
                    };
                    db.capture_step(SLICE_KEYS, &mut slice)
                };
                // Written, then freed, off the lock.
                for (key, value, expire_at) in slice.drain(..) {
                    if !keep_going() {
                        return Err(abandoned());
                    }
                    sink.key(&key, &value, expire_at)?;
                }
                if done {
                    break;
                }
            }
        }
        Ok(())
    }
}

pub(super) fn abandoned() -> io::Error {
    io::Error::new(io::ErrorKind::Interrupted, "the save was abandoned")
}

impl Dataset<'_> {
    /// Hands every key to `sink`, database by database; `keep_going` is asked before each
    /// key (an abandoned save stops early).
    pub fn each(&self, sink: &mut dyn KeySink, keep_going: &dyn Fn() -> bool) -> io::Result<()> {
        match self {
            Dataset::Present(dbs) => {
                for (index, db) in dbs.iter().enumerate() {
                    if db.is_empty() {
                        continue;
                    }
                    sink.select_db(index, db.len() as u64, db.expires_len() as u64)?;
                    for (key, value) in db.iter() {
                        if !keep_going() {
                            return Err(abandoned());
                        }
                        sink.key(key, value, db.expire_time(key))?;
                    }
                }
                Ok(())
            }
            Dataset::Captured(captured) => captured.each(sink, keep_going),
        }
    }
}
