//! One logical database (SELECT n): keys, their expiry times, lazy and active expiry, and the
//! WATCH bookkeeping that must see every modification.
//!
//! Every call takes `now` (Unix milliseconds) from the caller instead of reading the clock, so a
//! script or a transaction can run against one frozen instant, as in Redis.

use crate::capture::{Capture, CapturedKey};
use crate::dict::{Dict, Key};
use crate::journal::{Completeness, Journal, ValueBefore};
use crate::value::Value;
use rand::Rng;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// A client's "my watched keys changed" flag, shared between the client and every database it
/// watches keys in.
pub type WatchFlag = Arc<AtomicBool>;

struct Watcher {
    client_id: u64,
    dirty: WatchFlag,
    /// The key was already logically expired when WATCH ran: its deletion is not a change.
    expired_at_watch: bool,
}

#[derive(Default)]
pub struct DbStats {
    pub expired_keys: u64,
    pub keyspace_hits: u64,
    pub keyspace_misses: u64,
    /// Modifications since start (Redis's `server.dirty`).
    pub dirty: u64,
}

/// Keyspace events that happen inside the database itself rather than in a command (a key
/// expiring, a key being created), collected for the server to publish when
/// notify-keyspace-events asks for them.
#[derive(Default)]
pub struct DbEvents {
    /// Record `expired` events.
    pub track_expired: bool,
    /// Record `new` (key created) events.
    pub track_new: bool,
    pub pending: Vec<(&'static str, Vec<u8>)>,
}

#[derive(Default)]
pub struct Db {
    pub events: DbEvents,
    entries: Dict<Value>,
    /// Absolute expiry time in Unix ms for keys that have one.
    expires: Dict<i64>,
    watched: HashMap<Vec<u8>, Vec<Watcher>>,
    /// Clients blocked on each key (BLPOP and friends), in arrival order.
    waiters: HashMap<Vec<u8>, VecDeque<u64>>,
    /// Keys with waiters that were written since the server last looked: candidates for
    /// serving a blocked client. May hold duplicates and keys that are gone again.
    ready: Vec<Vec<u8>>,
    /// `lazyfree-lazy-expire`: big values of expired keys go to `garbage` instead of being
    /// freed on the spot.
    pub lazy_expire: bool,
    /// `lazyfree-lazy-server-del`: the same for big values replaced by a write (SET, RENAME).
    pub lazy_overwrite: bool,
    /// Big values waiting for the server to hand them to its freeing thread.
    pub garbage: Vec<Value>,
    pub stats: DbStats,
    /// While on (Some), the state of each key before its first change is kept so the changes
    /// can be undone (see [`Journal`]).
    journaling: Option<Completeness>,
    /// The journal, made on the first change while journaling (most script runs touch one
    /// database of the sixteen).
    journal: Option<Box<Journal>>,
    /// While the dataset loads, nothing expires: a command read from the append-only file
    /// must see the key as the server that wrote it did (Redis's keyIsExpired while loading).
    expiry_paused: bool,
    /// On a replica: a key past its time reads as missing but stays until its primary's DEL
    /// (or a client's write, on a writable replica) removes it, as in Redis.
    replica_reads: bool,
    /// While a background save walks this database, the state its keys had when it started
    /// (see [`Capture`]).
    capture: Option<Box<Capture>>,
}

impl Db {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn expires_len(&self) -> usize {
        self.expires.len()
    }

    fn is_expired_at(&self, key: &[u8], now: i64) -> bool {
        !self.expires.is_empty()
            && !self.expiry_paused
            && self.expires.get(key).is_some_and(|&at| at <= now)
    }

    /// Pauses (or resumes) expiring keys, lazily and actively, while the dataset loads.
    pub fn pause_expiry(&mut self, paused: bool) {
        self.expiry_paused = paused;
    }

    /// Whether this database belongs to a replica (see `replica_reads`).
    pub fn set_replica_reads(&mut self, on: bool) {
        self.replica_reads = on;
    }

    /// A read on a replica of a key past its time: missing, and kept.
    fn hidden_on_replica(&self, key: &[u8], now: i64) -> bool {
        self.replica_reads && self.is_expired_at(key, now)
    }

    /// Whether the key exists but its time is up (without deleting it).
    pub fn is_logically_expired(&self, key: &[u8], now: i64) -> bool {
        self.is_expired_at(key, now)
    }

    /// Deletes the key if its time is up. Returns true if it was deleted.
    pub fn expire_if_needed(&mut self, key: &[u8], now: i64) -> bool {
        if !self.is_expired_at(key, now) {
            return false;
        }
        self.remove_expired(key);
        self.stats.expired_keys += 1;
        if self.events.track_expired {
            self.events.pending.push(("expired", key.to_vec()));
        }
        true
    }

    /// Looks a key up for reading, expiring it first if needed; counts hits and misses.
    pub fn get(&mut self, key: &[u8], now: i64) -> Option<&Value> {
        if self.hidden_on_replica(key, now) {
            self.stats.keyspace_misses += 1;
            return None;
        }
        self.expire_if_needed(key, now);
        let found = self.entries.get(key);
        if found.is_some() {
            self.stats.keyspace_hits += 1;
        } else {
            self.stats.keyspace_misses += 1;
        }
        found
    }

    /// Looks a key up as stored, even if its time is up, without expiring it (DEBUG OBJECT).
    pub fn peek_stored(&self, key: &[u8]) -> Option<&Value> {
        self.entries.get(key)
    }

    /// Looks a key up without touching hit/miss statistics (still expiring it lazily).
    pub fn peek(&mut self, key: &[u8], now: i64) -> Option<&Value> {
        if self.hidden_on_replica(key, now) {
            return None;
        }
        self.expire_if_needed(key, now);
        self.entries.get(key)
    }

    /// Looks a key up for modification in place. The caller must call [`Db::mark_modified`]
    /// once it actually changed the value.
    pub fn get_mut(&mut self, key: &[u8], now: i64) -> Option<&mut Value> {
        self.expire_if_needed(key, now);
        self.capture_key(key);
        let Some(completeness) = self.journaling else {
            return self.entries.get_mut(key);
        };
        // Journaling: one look-up serves both the record and the caller.
        let wanted = self.journal_wants(key);
        let Db {
            entries,
            expires,
            journal,
            ..
        } = self;
        let slot = entries.get_mut(key);
        if wanted {
            let expiry = match slot {
                Some(_) if !expires.is_empty() => expires.get(key).copied(),
                _ => None,
            };
            journal
                .get_or_insert_with(|| Box::new(Journal::new(completeness)))
                .record_key(key, slot.as_deref().map(ValueBefore::Borrowed), expiry);
        }
        slot
    }

    pub fn exists(&mut self, key: &[u8], now: i64) -> bool {
        self.peek(key, now).is_some()
    }

    /// Stores a value, replacing any old one. The old TTL is dropped unless `keep_ttl`.
    pub fn set(&mut self, key: &[u8], value: Value, keep_ttl: bool) {
        self.capture_key(key);
        let wanted = self.journal_wants(key);
        let expiry = if wanted && !self.expires.is_empty() {
            self.expires.get(key).copied()
        } else {
            None
        };
        let replaced = self.entries.insert(key, value);
        if replaced.is_none() && self.events.track_new {
            self.events.pending.push(("new", key.to_vec()));
        }
        if wanted {
            // The replaced value goes to the journal instead of being freed.
            if let Some(j) = self.journal() {
                j.record_key(key, replaced.map(ValueBefore::Owned), expiry);
            }
        } else if let Some(old) = replaced {
            if self.lazy_overwrite {
                self.defer_free(old);
            }
        }
        if !keep_ttl && !self.expires.is_empty() {
            self.expires.remove(key);
        }
        self.mark_modified(key);
    }

    /// Inserts a value for a key the caller knows is absent, or returns the existing value.
    pub fn get_or_insert_with(
        &mut self,
        key: &[u8],
        now: i64,
        make: impl FnOnce() -> Value,
    ) -> &mut Value {
        self.expire_if_needed(key, now);
        self.capture_key(key);
        self.journal_key(key);
        if self.events.track_new && !self.entries.contains_key(key) {
            self.events.pending.push(("new", key.to_vec()));
        }
        self.entries.get_or_insert_with(key, make)
    }

    /// Deletes a key. Returns the value if it existed (and had not expired).
    pub fn remove(&mut self, key: &[u8], now: i64) -> Option<Value> {
        self.expire_if_needed(key, now);
        self.capture_key(key);
        // The caller keeps the removed value (GETDEL, RENAME), so the journal copies it.
        self.journal_key(key);
        let removed = self.remove_entry(key);
        if removed.is_some() {
            self.mark_modified(key);
        }
        removed
    }

    /// Keeps a big value for the server's freeing thread; drops a small one now.
    fn defer_free(&mut self, value: Value) {
        if value.free_effort() > crate::value::LAZYFREE_THRESHOLD {
            self.garbage.push(value);
        }
    }

    /// Removes an expired key, deferring the value's freeing if so configured.
    fn remove_expired(&mut self, key: &[u8]) {
        self.capture_key(key);
        let expiry = self.journal_expiry(key);
        if let Some(value) = self.remove_entry(key) {
            if self.journal_wants(key) {
                if let Some(j) = self.journal() {
                    j.record_key(key, Some(ValueBefore::Owned(value)), expiry);
                }
            } else if self.lazy_expire {
                self.defer_free(value);
            }
        }
    }

    /// The journal to record a change in; None when not journaling. The journal is made on
    /// first use and kept (emptied) between runs.
    fn journal(&mut self) -> Option<&mut Journal> {
        let completeness = self.journaling?;
        Some(
            self.journal
                .get_or_insert_with(|| Box::new(Journal::new(completeness))),
        )
    }

    /// Whether a change to `key` must be recorded first.
    fn journal_wants(&self, key: &[u8]) -> bool {
        self.journaling.is_some() && self.journal.as_ref().is_none_or(|j| j.wants_key(key))
    }

    /// The key's expiry, when the journal will want to record the key (None otherwise).
    fn journal_expiry(&self, key: &[u8]) -> Option<i64> {
        if !self.expires.is_empty() && self.journal_wants(key) {
            self.expires.get(key).copied()
        } else {
            None
        }
    }

    /// Records the key's present state in the journal, if one is on, before a change in place.
    fn journal_key(&mut self, key: &[u8]) {
        if !self.journal_wants(key) {
            return;
        }
        let Db {
            journal,
            journaling,
            entries,
            expires,
            ..
        } = self;
        let Some(completeness) = *journaling else {
            return;
        };
        let value = entries.get(key);
        // A missing key has no expiry to look up.
        let expiry = match value {
            Some(_) if !expires.is_empty() => expires.get(key).copied(),
            _ => None,
        };
        journal
            .get_or_insert_with(|| Box::new(Journal::new(completeness)))
            .record_key(key, value.map(ValueBefore::Borrowed), expiry);
    }

    /// Starts journaling changes (see [`Journal`]).
    pub fn start_journal(&mut self, completeness: Completeness) {
        self.journaling = Some(completeness);
        if let Some(j) = self.journal.as_mut() {
            j.reset(completeness);
        }
    }

    /// Whether the journal (if one is on) can undo everything so far.
    pub fn journal_complete(&self) -> bool {
        self.journaling.is_none() || self.journal.as_ref().is_none_or(|j| j.is_complete())
    }

    /// Stops journaling and keeps the changes.
    pub fn commit_journal(&mut self) {
        if self.journaling.take().is_some() {
            if let Some(j) = self.journal.as_mut() {
                j.reset(Completeness::BestEffort);
            }
        }
    }

    /// Stops journaling and undoes every change made since it started. False if the journal
    /// had given up (nothing is undone then).
    pub fn undo_journal(&mut self) -> bool {
        if self.journaling.take().is_none() {
            return true;
        }
        let Some(journal) = self.journal.as_mut() else {
            return true;
        };
        if !journal.is_complete() {
            journal.reset(Completeness::BestEffort);
            return false;
        }
        if !journal.is_empty() {
            journal.undo(&mut self.entries, &mut self.expires);
            self.stats.dirty += 1;
        }
        true
    }

    fn remove_entry(&mut self, key: &[u8]) -> Option<Value> {
        let (_, value) = self.entries.remove(key)?;
        if !self.expires.is_empty() {
            self.expires.remove(key);
        }
        // Expiry deletions also count as modifications for WATCH (Redis 7).
        self.touch_watchers(key);
        Some(value)
    }

    /// Absolute expiry time (Unix ms) of a live key, if it has one.
    pub fn expire_time(&self, key: &[u8]) -> Option<i64> {
        self.expires.get(key).copied()
    }

    /// Sets an absolute expiry time on an existing key. A time in the past deletes the key
    /// (and returns true, as the key was affected), unless expiry is paused: then the time
    /// is kept like any other.
    pub fn set_expire(&mut self, key: &[u8], at_ms: i64, now: i64) -> bool {
        if !self.entries.contains_key(key) {
            return false;
        }
        self.capture_key(key);
        if at_ms <= now && !self.expiry_paused {
            let wanted = self.journal_wants(key);
            let expiry = self.journal_expiry(key);
            let removed = self.remove_entry(key);
            if wanted {
                if let Some(j) = self.journal() {
                    j.record_key(key, removed.map(ValueBefore::Owned), expiry);
                }
            }
            self.mark_modified(key);
            return true;
        }
        if self.journaling.is_some() && self.journal.as_ref().is_none_or(|j| j.wants_expiry(key)) {
            let before = self.expires.get(key).copied();
            if let Some(j) = self.journal() {
                j.record_expiry(key, before);
            }
        }
        self.expires.insert(key, at_ms);
        self.mark_modified(key);
        true
    }

    /// Removes the TTL. Returns true if there was one.
    pub fn persist(&mut self, key: &[u8]) -> bool {
        self.capture_key(key);
        if self.journaling.is_some() {
            if let Some(&at) = self.expires.get(key) {
                if let Some(j) = self.journal() {
                    j.record_expiry(key, Some(at));
                }
            }
        }
        let had = self.expires.remove(key).is_some();
        if had {
            self.mark_modified(key);
        }
        had
    }

    /// Records that `key` changed: bumps the dirty counter, invalidates WATCHes on it, and
    /// flags it for the clients blocked on it.
    pub fn mark_modified(&mut self, key: &[u8]) {
        self.stats.dirty += 1;
        self.touch_watchers(key);
        if !self.waiters.is_empty() && self.waiters.contains_key(key) {
            self.ready.push(key.to_vec());
        }
    }

    /// Queues client `client_id` behind the clients already blocked on `key`.
    pub fn add_waiter(&mut self, key: &[u8], client_id: u64) {
        let queue = self.waiters.entry(key.to_vec()).or_default();
        if !queue.contains(&client_id) {
            queue.push_back(client_id);
        }
    }

    /// Puts client `client_id` back at the head of the queue on `key` (it was picked to be
    /// served but found nothing to take, so it keeps its turn).
    pub fn readd_waiter_first(&mut self, key: &[u8], client_id: u64) {
        let queue = self.waiters.entry(key.to_vec()).or_default();
        queue.retain(|&id| id != client_id);
        queue.push_front(client_id);
    }

    /// Removes client `client_id` from the queue on `key`.
    pub fn remove_waiter(&mut self, key: &[u8], client_id: u64) {
        if let Some(queue) = self.waiters.get_mut(key) {
            queue.retain(|&id| id != client_id);
            if queue.is_empty() {
                self.waiters.remove(key);
            }
        }
    }

    /// The clients blocked on `key`, oldest first.
    pub fn waiters(&self, key: &[u8]) -> Vec<u64> {
        self.waiters
            .get(key)
            .map(|q| q.iter().copied().collect())
            .unwrap_or_default()
    }

    /// Takes the keys flagged ready since the last call, without duplicates, in the order
    /// they were first flagged.
    pub fn take_ready(&mut self) -> Vec<Vec<u8>> {
        if self.ready.is_empty() {
            return Vec::new();
        }
        let mut keys = std::mem::take(&mut self.ready);
        let mut seen = std::collections::HashSet::new();
        keys.retain(|k| seen.insert(k.clone()));
        keys
    }

    /// Flags every key that has waiters and exists (after SWAPDB brought in new contents).
    pub fn flag_all_waited_keys(&mut self) {
        let present: Vec<Vec<u8>> = self
            .waiters
            .keys()
            .filter(|k| self.entries.contains_key(k))
            .cloned()
            .collect();
        self.ready.extend(present);
    }

    fn touch_watchers(&mut self, key: &[u8]) {
        if self.watched.is_empty() {
            return;
        }
        let exists = self.entries.contains_key(key);
        if let Some(watchers) = self.watched.get_mut(key) {
            for w in watchers {
                if w.expired_at_watch && !exists {
                    // The stale key was only cleaned up: logically nothing changed.
                    w.expired_at_watch = false;
                    continue;
                }
                w.dirty.store(true, Ordering::Relaxed);
            }
        }
    }

    /// Registers a WATCH on `key` by client `client_id`.
    pub fn watch(&mut self, key: &[u8], client_id: u64, dirty: &WatchFlag, now: i64) {
        let expired_at_watch = self.is_expired_at(key, now);
        let watchers = self.watched.entry(key.to_vec()).or_default();
        if watchers.iter().any(|w| w.client_id == client_id) {
            return;
        }
        watchers.push(Watcher {
            client_id,
            dirty: dirty.clone(),
            expired_at_watch,
        });
    }

    /// Removes client `client_id`'s WATCH on `key`.
    pub fn unwatch(&mut self, key: &[u8], client_id: u64) {
        if let Some(watchers) = self.watched.get_mut(key) {
            watchers.retain(|w| w.client_id != client_id);
            if watchers.is_empty() {
                self.watched.remove(key);
            }
        }
    }

    /// True if the client's watched key `key` expired after it was watched (EXEC then fails).
    pub fn watched_key_expired_since_watch(&self, key: &[u8], client_id: u64, now: i64) -> bool {
        let Some(watchers) = self.watched.get(key) else {
            return false;
        };
        watchers.iter().any(|w| {
            w.client_id == client_id && !w.expired_at_watch && self.is_expired_at(key, now)
        })
    }

    /// True if the key exists and has not expired at `now`.
    fn is_live(&self, key: &[u8], now: i64) -> bool {
        self.entries.contains_key(key) && !self.is_expired_at(key, now)
    }

    /// Marks as dirty every WATCH on a key that is live here or in `replacement` (the database
    /// about to take this one's place); used by FLUSHDB/FLUSHALL/SWAPDB. Keys that were only
    /// stale (expired, not yet deleted) do not count as changed.
    pub fn touch_all_watched(&mut self, replacement: Option<&Db>, now: i64) {
        let entries = &self.entries;
        let expires = &self.expires;
        let live_here = |key: &[u8]| {
            entries.contains_key(key) && !expires.get(key).is_some_and(|&at| at <= now)
        };
        for (key, watchers) in self.watched.iter_mut() {
            let present = live_here(key) || replacement.is_some_and(|d| d.is_live(key, now));
            if present {
                for w in watchers.iter() {
                    w.dirty.store(true, Ordering::Relaxed);
                }
            } else if replacement.is_some_and(|d| d.entries.contains_key(key)) {
                // A stale key moves in: like one that was already expired at WATCH time, its
                // later deletion is not a change.
                for w in watchers.iter_mut() {
                    w.expired_at_watch = true;
                }
            }
        }
    }

    /// Empties the database and returns the old contents, so a caller may drop them on another
    /// thread (FLUSHDB ASYNC).
    pub fn flush(&mut self, now: i64) -> (Dict<Value>, Dict<i64>) {
        self.touch_all_watched(None, now);
        // Flushing always counts as a change (it is replicated even on an empty database).
        self.stats.dirty += self.entries.len() as u64 + 1;
        if let Some(capture) = self.capture.as_deref_mut() {
            capture.keep_all(&self.entries, &self.expires);
        }
        let (entries, expires) = (self.entries.take_all(), self.expires.take_all());
        match self.journal() {
            // The journal keeps the old contents; nothing is left to free.
            Some(j) if j.is_complete() => {
                j.record_flush(entries, expires);
                (Dict::new(), Dict::new())
            }
            _ => (entries, expires),
        }
    }

    /// Starts keeping this database's contents as of now for a background save (see
    /// [`Capture`]); `origin` is its index.
    pub fn start_capture(&mut self, origin: usize) {
        self.capture = Some(Box::new(Capture::new(origin)));
    }

    /// The index this database had when the capture under way started.
    pub fn capture_origin(&self) -> Option<usize> {
        self.capture.as_ref().map(|c| c.origin)
    }

    /// Copies about `budget` more keys of the capture into `out`. Returns true (and ends the
    /// capture) when every key was handed out.
    pub fn capture_step(&mut self, budget: usize, out: &mut Vec<CapturedKey>) -> bool {
        let Some(capture) = self.capture.as_deref_mut() else {
            return true;
        };
        let done = capture.step(&self.entries, &self.expires, budget, out);
        if done {
            self.capture = None;
        }
        done
    }

    /// Ends a capture early (the save was abandoned).
    pub fn stop_capture(&mut self) {
        self.capture = None;
    }

    /// Before a change to `key`: keeps its state for the capture under way if it needs it.
    fn capture_key(&mut self, key: &[u8]) {
        let Db {
            capture,
            entries,
            expires,
            ..
        } = self;
        let Some(capture) = capture.as_deref_mut() else {
            return;
        };
        if capture.wants(entries, key) {
            let state = entries.get(key).map(|v| (v, expires.get(key).copied()));
            capture.keep(key, state);
        }
    }

    /// Exchanges contents with another database, keeping each one's WATCH registrations.
    pub fn swap_contents(&mut self, other: &mut Db) {
        std::mem::swap(&mut self.entries, &mut other.entries);
        std::mem::swap(&mut self.expires, &mut other.expires);
        // A journal describes its contents: it moves with them (the caller records the swap
        // to undo it after the journals).
        std::mem::swap(&mut self.journal, &mut other.journal);
        std::mem::swap(&mut self.journaling, &mut other.journaling);
        std::mem::swap(&mut self.capture, &mut other.capture);
    }

    /// Iterates over all entries, including keys that have expired but were not yet deleted;
    /// callers filter with [`Db::is_logically_expired`] where it matters.
    pub fn iter(&self) -> impl Iterator<Item = (&Key, &Value)> {
        self.entries.iter()
    }

    /// One SCAN step over the keys; see [`Dict::scan_step`].
    pub fn scan_step(&self, cursor: u64, visit: impl FnMut(&Key, &Value)) -> u64 {
        self.entries.scan_step(cursor, visit)
    }

    /// A random live key, or None when the database is empty.
    pub fn random_key(&mut self, now: i64, rng: &mut impl Rng) -> Option<Vec<u8>> {
        // Bounded retries: a database where every key is expired must not loop forever.
        for _ in 0..100 {
            let key = self.entries.random_entry(rng)?.0.as_slice().to_vec();
            if !self.expire_if_needed(&key, now) {
                return Some(key);
            }
        }
        self.entries
            .random_entry(rng)
            .map(|(k, _)| k.as_slice().to_vec())
    }

    /// One round of active expiry: samples up to `samples` keys that have a TTL and deletes the
    /// expired ones. Returns (sampled, expired) so the caller can decide to run another round.
    pub fn active_expire_round(
        &mut self,
        now: i64,
        samples: usize,
        rng: &mut impl Rng,
    ) -> (usize, usize) {
        let mut expired = 0;
        let mut sampled = 0;
        for _ in 0..samples {
            let Some((key, &at)) = self.expires.random_entry(rng) else {
                break;
            };
            sampled += 1;
            if at <= now {
                let key = key.as_slice().to_vec();
                self.remove_expired(&key);
                self.stats.expired_keys += 1;
                if self.events.track_expired {
                    self.events.pending.push(("expired", key));
                }
                expired += 1;
            }
        }
        (sampled, expired)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lazy_expiry_and_ttl() {
        let mut db = Db::new();
        db.set(b"k", Value::string(b"v"), false);
        assert!(db.set_expire(b"k", 1_000, 500));
        assert!(db.get(b"k", 999).is_some());
        assert!(db.get(b"k", 1_000).is_none());
        assert_eq!(db.len(), 0);
        assert_eq!(db.stats.expired_keys, 1);
        assert_eq!(db.expires_len(), 0);
    }

    #[test]
    fn paused_expiry_keeps_keys_past_their_time() {
        let mut db = Db::new();
        db.set(b"k", Value::string(b"v"), false);
        db.pause_expiry(true);
        // A time already past is kept, and the key stays readable, until expiry resumes.
        assert!(db.set_expire(b"k", 1_000, 5_000));
        assert!(db.get(b"k", 5_000).is_some());
        assert_eq!(db.expire_time(b"k"), Some(1_000));
        db.pause_expiry(false);
        assert!(db.get(b"k", 5_000).is_none());
        assert_eq!(db.stats.expired_keys, 1);
    }

    #[test]
    fn set_clears_ttl_unless_kept() {
        let mut db = Db::new();
        db.set(b"k", Value::string(b"v"), false);
        db.set_expire(b"k", 10_000, 0);
        db.set(b"k", Value::string(b"w"), true);
        assert_eq!(db.expire_time(b"k"), Some(10_000));
        db.set(b"k", Value::string(b"x"), false);
        assert_eq!(db.expire_time(b"k"), None);
    }

    #[test]
    fn active_expiry_frees_untouched_keys() {
        let mut db = Db::new();
        let mut rng = rand::thread_rng();
        for i in 0..100 {
            let k = format!("k{i}");
            db.set(k.as_bytes(), Value::string(b"v"), false);
            db.set_expire(k.as_bytes(), 10, 0);
        }
        for _ in 0..100 {
            db.active_expire_round(20, 20, &mut rng);
        }
        assert_eq!(db.len(), 0);
    }

    #[test]
    fn writes_flag_keys_with_waiters_once() {
        let mut db = Db::new();
        db.set(b"k", Value::string(b"v"), false);
        assert!(db.take_ready().is_empty(), "no waiters, nothing flagged");
        db.add_waiter(b"k", 7);
        db.add_waiter(b"k", 8);
        db.set(b"k", Value::string(b"w"), false);
        db.set(b"k", Value::string(b"x"), false);
        db.set(b"other", Value::string(b"x"), false);
        assert_eq!(db.take_ready(), vec![b"k".to_vec()]);
        assert_eq!(db.waiters(b"k"), vec![7, 8]);
        db.remove_waiter(b"k", 7);
        db.readd_waiter_first(b"k", 9);
        assert_eq!(db.waiters(b"k"), vec![9, 8]);
    }

    /// Runs a capture in slices while `change` modifies the database between slices, and
    /// returns what the capture handed out, by key.
    fn capture_with_changes(
        db: &mut Db,
        mut change: impl FnMut(&mut Db, usize),
    ) -> std::collections::BTreeMap<Vec<u8>, (Vec<u8>, Option<i64>)> {
        db.start_capture(0);
        let mut out = Vec::new();
        let mut slice = 0;
        while !db.capture_step(7, &mut out) {
            change(db, slice);
            slice += 1;
        }
        let mut by_key = std::collections::BTreeMap::new();
        for (key, value, expire_at) in out {
            let text = value.as_str().map(|s| s.to_vec()).unwrap_or_default();
            let fresh = by_key.insert(key.as_slice().to_vec(), (text, expire_at));
            assert!(fresh.is_none(), "{:?} handed out twice", key.as_slice());
        }
        by_key
    }

    fn filled(n: u32) -> Db {
        let mut db = Db::new();
        for i in 0..n {
            db.set(format!("k{i}").as_bytes(), Value::string(format!("v{i}").as_bytes()), false);
            if i % 3 == 0 {
                db.set_expire(format!("k{i}").as_bytes(), 1_000_000 + i as i64, 0);
            }
        }
        db
    }

    fn as_started(n: u32) -> std::collections::BTreeMap<Vec<u8>, (Vec<u8>, Option<i64>)> {
        (0..n)
            .map(|i| {
                let expiry = (i % 3 == 0).then_some(1_000_000 + i as i64);
                (format!("k{i}").into_bytes(), (format!("v{i}").into_bytes(), expiry))
            })
            .collect()
    }

    #[test]
    fn capture_hands_out_the_contents_as_of_its_start_while_they_change() {
        let mut db = filled(300);
        let mut rng = rand::thread_rng();
        let captured = capture_with_changes(&mut db, |db, slice| {
            for _ in 0..5 {
                let key = format!("k{}", rng.gen_range(0..400));
                match rng.gen_range(0..6) {
                    0 => db.set(key.as_bytes(), Value::string(b"changed"), false),
                    1 => drop(db.remove(key.as_bytes(), 0)),
                    2 => drop(db.set_expire(key.as_bytes(), 5, 0)),
                    3 => drop(db.persist(key.as_bytes())),
                    4 => drop(db.set_expire(key.as_bytes(), 77, 0)),
                    _ => {
                        if let Some(value) = db.get_mut(key.as_bytes(), 0) {
                            *value = Value::Raw(b"in place".to_vec());
                        }
                    }
                }
            }
            // Growing and shrinking the table moves keys between buckets mid-walk.
            if slice == 3 {
                for i in 0..3000 {
                    db.set(format!("new{i}").as_bytes(), Value::string(b"x"), false);
                }
            }
            if slice == 20 {
                for i in 0..3000 {
                    db.remove(format!("new{i}").as_bytes(), 0);
                }
            }
        });
        assert_eq!(captured, as_started(300));
    }

    #[test]
    fn capture_survives_flush_and_swap() {
        let mut db = filled(200);
        let captured = capture_with_changes(&mut db, |db, slice| {
            if slice == 4 {
                db.set(b"k5", Value::string(b"changed"), false);
                drop(db.flush(0));
                db.set(b"k7", Value::string(b"after the flush"), false);
            }
        });
        assert_eq!(captured, as_started(200));

        // The capture moves with the contents on SWAPDB.
        let mut first = filled(50);
        let mut second = Db::new();
        first.start_capture(0);
        let mut out = Vec::new();
        assert!(!first.capture_step(3, &mut out));
        first.swap_contents(&mut second);
        assert_eq!(first.capture_origin(), None);
        assert_eq!(second.capture_origin(), Some(0));
        second.set(b"k1", Value::string(b"changed"), false);
        while !second.capture_step(3, &mut out) {}
        assert_eq!(out.len(), 50);
    }

    #[test]
    fn watch_flags() {
        let mut db = Db::new();
        let flag: WatchFlag = Default::default();
        db.watch(b"k", 1, &flag, 0);
        db.set(b"other", Value::string(b"v"), false);
        assert!(!flag.load(Ordering::Relaxed));
        db.set(b"k", Value::string(b"v"), false);
        assert!(flag.load(Ordering::Relaxed));
    }
}
