//! An undo journal for one database: while it is on, every key's state before its first
//! change is kept, so all changes made since the journal started can be taken back (a
//! script killed after it wrote, or one that asked to roll back on error).
//!
//! A value replaced or deleted is moved into the journal as it is; a value changed in place
//! is copied first. Copies have a budget: past it a best-effort journal gives up (and says so)
//! rather than copy large values, so a journal never makes a script much slower than it
//! would be without. A journal asked to be complete copies whatever it must.

use crate::dict::Dict;
use crate::value::Value;
use compact_bytes::CompactBytes;
use std::collections::HashSet;

type KeySet = HashSet<CompactBytes, foldhash::fast::RandomState>;

/// Up to this many records, whether a key was recorded is found by scanning them; past it an
/// index is built (most scripts touch a handful of keys).
const SCAN_LIMIT: usize = 32;

/// How much copying a best-effort journal may do over one run, in units of one element (of a
/// collection) or 64 bytes (of a string): about a millisecond of copying.
pub const BEST_EFFORT_COPY_BUDGET: usize = 64 * 1024;

/// What a journal does when keeping a key's old state would mean copying a lot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Completeness {
    /// Give up past [`BEST_EFFORT_COPY_BUDGET`]: the changes can no longer be undone.
    BestEffort,
    /// Copy whatever it takes.
    Complete,
}

/// One way back, applied newest first.
enum Undo {
    /// The key's value and expiry before its first change (None: it did not exist).
    Key {
        key: CompactBytes,
        before: Option<(Value, Option<i64>)>,
    },
    /// The key's expiry before its first expiry-only change (the value was untouched then).
    Expiry {
        key: CompactBytes,
        before: Option<i64>,
    },
    /// The whole contents before a flush.
    Contents {
        entries: Dict<Value>,
        expires: Dict<i64>,
    },
}

pub struct Journal {
    records: Vec<Undo>,
    /// Records before this index predate the last flush (their keys count as unrecorded).
    epoch: usize,
    /// Keys whose whole state is recorded (since the last flush), once there are many.
    keys_index: Option<KeySet>,
    /// Keys whose expiry alone is recorded, once there are many.
    expiry_index: Option<KeySet>,
    copy_budget: usize,
    /// A best-effort journal gave up: its changes cannot be undone.
    gave_up: bool,
}

/// The cost of copying a value, in the units of [`BEST_EFFORT_COPY_BUDGET`].
fn copy_cost(value: &Value) -> usize {
    match value.as_str() {
        Some(s) => 1 + s.len() / 64,
        None => value.free_effort().max(1),
    }
}

impl Journal {
    pub fn new(completeness: Completeness) -> Self {
        let mut journal = Journal {
            records: Vec::new(),
            epoch: 0,
            keys_index: None,
            expiry_index: None,
            copy_budget: 0,
            gave_up: false,
        };
        journal.reset(completeness);
        journal
    }

    /// Empties the journal for another run, keeping its allocations.
    pub fn reset(&mut self, completeness: Completeness) {
        self.records.clear();
        if self.records.capacity() > 1024 {
            // A run that touched many keys does not keep its memory for every later one.
            self.records.shrink_to(64);
        }
        self.epoch = 0;
        self.keys_index = None;
        self.expiry_index = None;
        self.copy_budget = match completeness {
            Completeness::BestEffort => BEST_EFFORT_COPY_BUDGET,
            Completeness::Complete => usize::MAX,
        };
        self.gave_up = false;
    }

    /// Whether the key's whole (or, with `expiry_only`, expiry) state is recorded.
    fn recorded(&self, key: &[u8], expiry_only: bool) -> bool {
        let index = if expiry_only {
            &self.expiry_index
        } else {
            &self.keys_index
        };
        if let Some(index) = index {
            return index.contains(&CompactBytes::new(key));
        }
        self.records[self.epoch..].iter().any(|r| match r {
            Undo::Key { key: k, .. } => !expiry_only && k.as_slice() == key,
            Undo::Expiry { key: k, .. } => expiry_only && k.as_slice() == key,
            Undo::Contents { .. } => false,
        })
    }

    /// Adds a record, indexing keys once there are many.
    fn push(&mut self, record: Undo) {
        if self.records.len() - self.epoch == SCAN_LIMIT {
            let mut keys = KeySet::default();
            let mut expiry = KeySet::default();
            for r in &self.records[self.epoch..] {
                match r {
                    Undo::Key { key, .. } => keys.insert(key.clone()),
                    Undo::Expiry { key, .. } => expiry.insert(key.clone()),
                    Undo::Contents { .. } => false,
                };
            }
            self.keys_index = Some(keys);
            self.expiry_index = Some(expiry);
        }
        match (&record, &mut self.keys_index, &mut self.expiry_index) {
            (Undo::Key { key, .. }, Some(index), _) => {
                index.insert(key.clone());
            }
            (Undo::Expiry { key, .. }, _, Some(index)) => {
                index.insert(key.clone());
            }
            _ => {}
        }
        self.records.push(record);
    }

    /// Whether the changes recorded so far can all be undone.
    pub fn is_complete(&self) -> bool {
        !self.gave_up
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Whether the key's whole state must still be recorded before it changes.
    pub(crate) fn wants_key(&self, key: &[u8]) -> bool {
        !self.gave_up && !self.recorded(key, false)
    }

    /// Records a key's state before its first change. `value` is the current value: moved in
    /// when the caller is about to drop it anyway (`owned`), copied otherwise.
    pub(crate) fn record_key(
        &mut self,
        key: &[u8],
        value: Option<ValueBefore<'_>>,
        expiry: Option<i64>,
    ) {
        if !self.wants_key(key) {
            return;
        }
        let before = match value {
            None => None,
            Some(ValueBefore::Owned(v)) => Some((v, expiry)),
            Some(ValueBefore::Borrowed(v)) => {
                let cost = copy_cost(v);
                if cost > self.copy_budget {
                    self.give_up();
                    return;
                }
                self.copy_budget -= cost;
                Some((v.clone(), expiry))
            }
        };
        self.push(Undo::Key {
            key: CompactBytes::new(key),
            before,
        });
    }

    /// Whether the key's expiry must still be recorded before an expiry-only change.
    pub(crate) fn wants_expiry(&self, key: &[u8]) -> bool {
        !self.gave_up && !self.recorded(key, false) && !self.recorded(key, true)
    }

    /// Records a key's expiry before an expiry-only change.
    pub(crate) fn record_expiry(&mut self, key: &[u8], before: Option<i64>) {
        if !self.wants_expiry(key) {
            return;
        }
        self.push(Undo::Expiry {
            key: CompactBytes::new(key),
            before,
        });
    }

    /// Records the whole contents a flush takes away; every key is new after it.
    pub(crate) fn record_flush(&mut self, entries: Dict<Value>, expires: Dict<i64>) {
        if self.gave_up {
            return;
        }
        self.records.push(Undo::Contents { entries, expires });
        self.epoch = self.records.len();
        self.keys_index = None;
        self.expiry_index = None;
    }

    fn give_up(&mut self) {
        self.gave_up = true;
        self.records.clear();
        self.epoch = 0;
        self.keys_index = None;
        self.expiry_index = None;
    }

    /// Puts `entries` and `expires` back as they were when the journal started.
    pub(crate) fn undo(&mut self, entries: &mut Dict<Value>, expires: &mut Dict<i64>) {
        self.epoch = 0;
        self.keys_index = None;
        self.expiry_index = None;
        for record in self.records.drain(..).rev() {
            match record {
                Undo::Key { key, before } => match before {
                    Some((value, expiry)) => {
                        entries.insert(&key, value);
                        match expiry {
                            Some(at) => {
                                expires.insert(&key, at);
                            }
                            None => {
                                expires.remove(&key);
                            }
                        }
                    }
                    None => {
                        entries.remove(&key);
                        expires.remove(&key);
                    }
                },
                Undo::Expiry { key, before } => match before {
                    Some(at) => {
                        expires.insert(&key, at);
                    }
                    None => {
                        expires.remove(&key);
                    }
                },
                Undo::Contents {
                    entries: old_entries,
                    expires: old_expires,
                } => {
                    *entries = old_entries;
                    *expires = old_expires;
                }
            }
        }
    }
}

/// A key's current value, as given to [`Journal::record_key`].
pub(crate) enum ValueBefore<'a> {
    /// The caller is dropping it: the journal takes it.
    Owned(Value),
    /// The caller changes it in place: the journal copies it.
    Borrowed(&'a Value),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::Db;

    fn snapshot(db: &mut Db, keys: &[&str]) -> Vec<Option<(String, Option<i64>)>> {
        keys.iter()
            .map(|k| {
                db.peek_stored(k.as_bytes())
                    .map(|v| (format!("{v:?}"), db.expire_time(k.as_bytes())))
            })
            .collect()
    }

    #[test]
    fn undo_puts_every_key_back_as_it_was() {
        let mut db = Db::new();
        let now = 1_000;
        db.set(b"a", Value::string(b"1"), false);
        db.set(b"b", Value::string(b"two"), false);
        db.set_expire(b"b", 50_000, now);
        db.set(b"c", Value::string(b"three"), false);
        db.set(b"gone", Value::string(b"x"), false);
        db.set_expire(b"gone", 500, 0);
        let keys = ["a", "b", "c", "d", "gone"];
        let before = snapshot(&mut db, &keys);

        db.start_journal(Completeness::Complete);
        db.set(b"a", Value::string(b"changed"), false);
        db.set(b"a", Value::string(b"changed again"), false);
        db.persist(b"b");
        if let Some(v) = db.get_mut(b"c", now) {
            *v = Value::string(b"in place");
        }
        db.set(b"d", Value::string(b"new"), false);
        db.set_expire(b"d", 90_000, now);
        db.remove(b"b", now);
        // Lazily expired while journaling: comes back as it was stored.
        assert!(db.get(b"gone", now).is_none());
        drop(db.flush(now));
        db.set(b"a", Value::string(b"after flush"), false);
        assert!(db.undo_journal());
        assert_eq!(snapshot(&mut db, &keys), before);

        // Committed changes stay, and a later journal starts afresh.
        db.start_journal(Completeness::BestEffort);
        db.set(b"a", Value::string(b"kept"), false);
        db.commit_journal();
        db.start_journal(Completeness::BestEffort);
        db.remove(b"a", now);
        assert!(db.undo_journal());
        assert_eq!(
            db.peek_stored(b"a")
                .and_then(|v| v.as_str().map(|s| s.to_vec())),
            Some(b"kept".to_vec())
        );
    }

    #[test]
    fn a_best_effort_journal_gives_up_rather_than_copy_a_big_value() {
        let mut db = Db::new();
        let big = vec![b'x'; BEST_EFFORT_COPY_BUDGET * 64 + 64];
        db.set(b"big", Value::string(&big), false);
        db.start_journal(Completeness::BestEffort);
        db.set(b"small", Value::string(b"1"), false);
        assert!(db.journal_complete());
        // Changing the big value in place would mean copying it: the journal gives up.
        let _ = db.get_mut(b"big", 0);
        assert!(!db.journal_complete());
        assert!(!db.undo_journal());
        assert!(db.peek_stored(b"small").is_some());
        // A complete journal copies it.
        db.start_journal(Completeness::Complete);
        if let Some(v) = db.get_mut(b"big", 0) {
            *v = Value::string(b"shrunk");
        }
        assert!(db.journal_complete());
        assert!(db.undo_journal());
        assert_eq!(
            db.peek_stored(b"big")
                .and_then(|v| v.as_str().map(|s| s.len())),
            Some(big.len())
        );
    }

    #[test]
    fn many_keys_are_indexed_and_still_recorded_once() {
        let mut db = Db::new();
        db.start_journal(Completeness::Complete);
        for round in 0..3 {
            for i in 0..100 {
                let key = format!("k{i}");
                db.set(
                    key.as_bytes(),
                    Value::string(format!("{round}").as_bytes()),
                    false,
                );
            }
        }
        assert!(db.undo_journal());
        assert!(db.is_empty());
    }
}
