//! The hash type: field -> value maps in a [`Dict`] (so HSCAN keeps SCAN's guarantee and
//! HRANDFIELD samples in O(1)).
//!
//! Redis keeps small hashes as `listpack` and converts them to `hashtable` for good once they
//! exceed `hash-max-listpack-entries` or a field or value exceeds `hash-max-listpack-value`;
//! OBJECT ENCODING reports the same, tracked here by one flag.

use crate::dict::{Dict, Key};
use compact_bytes::CompactBytes;
use rand::Rng;

/// The two conversion thresholds (hash-max-listpack-entries, hash-max-listpack-value).
#[derive(Clone, Copy, Debug)]
pub struct HashLimits {
    pub max_entries: usize,
    pub max_value: usize,
}

#[derive(Default, Clone, Debug)]
pub struct Hash {
    fields: Dict<CompactBytes>,
    packed: bool,
}

impl Hash {
    pub fn new() -> Self {
        Hash { fields: Dict::new(), packed: true }
    }

    pub fn len(&self) -> usize {
        self.fields.len()
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    pub fn get(&self, field: &[u8]) -> Option<&[u8]> {
        self.fields.get(field).map(|v| v.as_slice())
    }

    pub fn contains(&self, field: &[u8]) -> bool {
        self.fields.contains_key(field)
    }

    /// Sets a field; returns true if it is new.
    pub fn set(&mut self, field: &[u8], value: &[u8], limits: HashLimits) -> bool {
        if self.packed && (field.len() > limits.max_value || value.len() > limits.max_value) {
            self.packed = false;
        }
        let new = self.fields.insert(field, CompactBytes::new(value)).is_none();
        if self.packed && self.fields.len() > limits.max_entries {
            self.packed = false;
        }
        new
    }

    pub fn remove(&mut self, field: &[u8]) -> bool {
        self.fields.remove(field).is_some()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.fields.iter().map(|(k, v)| (k.as_slice(), v.as_slice()))
    }

    pub fn random_field(&self, rng: &mut impl Rng) -> Option<(&Key, &CompactBytes)> {
        self.fields.random_entry(rng)
    }

    pub fn scan_step(&self, cursor: u64, mut visit: impl FnMut(&[u8], &[u8])) -> u64 {
        self.fields.scan_step(cursor, |k, v| visit(k, v))
    }

    pub fn encoding(&self) -> &'static str {
        if self.packed {
            "listpack"
        } else {
            "hashtable"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: HashLimits = HashLimits { max_entries: 2, max_value: 4 };

    #[test]
    fn converts_once_past_limits() {
        let mut h = Hash::new();
        assert!(h.set(b"a", b"1", LIMITS));
        assert!(!h.set(b"a", b"2", LIMITS));
        assert_eq!(h.get(b"a"), Some(&b"2"[..]));
        assert_eq!(h.encoding(), "listpack");
        h.set(b"b", b"12345", LIMITS);
        assert_eq!(h.encoding(), "hashtable");
        let mut many = Hash::new();
        for f in [b"x", b"y", b"z"] {
            many.set(f, b"v", LIMITS);
        }
        assert_eq!(many.encoding(), "hashtable");
    }
}
