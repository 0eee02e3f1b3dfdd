//! Keeping a database's contents as of one moment while it goes on changing: what a
//! background save (or AOF rewrite) writes.
//!
//! The saver walks the table a slice at a time (see [`Dict::walk_from`]), copying the keys of
//! each slice. Before a key the walk has not reached changes for the first time, the database
//! keeps a copy of its state at the start here, and the walk skips that key; the saver writes
//! the kept copies once the walk is done. So the file holds the dataset exactly as it was when
//! the save started, while only the keys that change meanwhile are copied, and the server stops
//! only for one slice at a time.

use crate::dict::{Dict, Key};
use crate::value::Value;

/// A key as a snapshot holds it: name, value and absolute expiry time (Unix ms).
pub type CapturedKey = (Key, Value, Option<i64>);

pub struct Capture {
    /// The database's index when the snapshot started; SWAPDB moves the capture along with the
    /// contents it describes.
    pub origin: usize,
    /// The walk position (see [`Dict::walk_position`]): keys below it were copied already.
    /// None once the walk is done.
    position: Option<u64>,
    /// Keys that changed ahead of the walk, whether they existed at the start or not.
    kept_keys: Dict<()>,
    /// The state at the start of those that existed then.
    kept: Vec<CapturedKey>,
}

impl Capture {
    pub(crate) fn new(origin: usize) -> Self {
        Capture {
            origin,
            position: Some(0),
            kept_keys: Dict::new(),
            kept: Vec::new(),
        }
    }

    /// Whether a change to `key` must be preceded by [`Capture::keep`].
    pub(crate) fn wants(&self, entries: &Dict<Value>, key: &[u8]) -> bool {
        match self.position {
            None => false,
            Some(position) => {
                entries.walk_position(key) >= position
                    && (self.kept_keys.is_empty() || !self.kept_keys.contains_key(key))
            }
        }
    }

    /// Keeps the key's present state (which is its state at the start: it did not change
    /// since, or it would be kept already).
    pub(crate) fn keep(&mut self, key: &[u8], state: Option<(&Value, Option<i64>)>) {
        if let Some((value, expire_at)) = state {
            self.kept.push((Key::new(key), value.clone(), expire_at));
        }
        self.kept_keys.insert(key, ());
    }

    /// Before the whole contents go (FLUSHDB): keeps every key the walk has not reached, and
    /// ends the walk.
    pub(crate) fn keep_all(&mut self, entries: &Dict<Value>, expires: &Dict<i64>) {
        if let Some(from) = self.position {
            let mut rest = Vec::new();
            let mut at = Some(from);
            while let Some(position) = at {
                at = entries.walk_from(position, usize::MAX, |key, value| {
                    if !self.kept_keys.contains_key(key) {
                        rest.push((key.clone(), value.clone(), expires.get(key).copied()));
                    }
                });
            }
            self.kept.extend(rest);
            self.position = None;
        }
    }

    /// Copies the next slice of about `budget` keys into `out`; once the walk is done, the
    /// kept keys follow. Returns true when everything was handed out.
    pub(crate) fn step(
        &mut self,
        entries: &Dict<Value>,
        expires: &Dict<i64>,
        budget: usize,
        out: &mut Vec<CapturedKey>,
    ) -> bool {
        if let Some(from) = self.position {
            let kept_keys = &self.kept_keys;
            self.position = entries.walk_from(from, budget, |key, value| {
                if kept_keys.is_empty() || !kept_keys.contains_key(key) {
                    let expire_at = if expires.is_empty() {
                        None
                    } else {
                        expires.get(key).copied()
                    };
                    out.push((key.clone(), value.clone(), expire_at));
                }
            });
            if self.position.is_some() {
                return false;
            }
        }
        out.append(&mut self.kept);
        self.kept_keys = Dict::new();
        true
    }
}
