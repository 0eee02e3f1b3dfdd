//! The set type: unique byte-string members in a [`Dict`], so SSCAN has the same cursor
//! guarantee as SCAN and SRANDMEMBER/SPOP sample in O(1).
//!
//! Redis starts small all-integer sets as `intset` and converts them to `hashtable` for good
//! once a non-integer member arrives or they outgrow `set-max-intset-entries`; OBJECT ENCODING
//! reports the same, tracked here by one flag.

use crate::dict::{Dict, Key};
use moonkv_protocol::number::parse_i64;
use rand::Rng;

#[derive(Default, Clone, Debug)]
pub struct Set {
    members: Dict<()>,
    int_encoded: bool,
}

impl Set {
    pub fn new() -> Self {
        Set { members: Dict::new(), int_encoded: true }
    }

    pub fn len(&self) -> usize {
        self.members.len()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    pub fn contains(&self, member: &[u8]) -> bool {
        self.members.contains_key(member)
    }

    /// Adds a member; returns true if it was new. `intset_limit` is set-max-intset-entries.
    pub fn insert(&mut self, member: &[u8], intset_limit: usize) -> bool {
        if self.members.contains_key(member) {
            return false;
        }
        if self.int_encoded && (parse_i64(member).is_none() || self.members.len() + 1 > intset_limit) {
            self.int_encoded = false;
        }
        self.members.insert(member, ());
        true
    }

    pub fn remove(&mut self, member: &[u8]) -> bool {
        self.members.remove(member).is_some()
    }

    pub fn iter(&self) -> impl Iterator<Item = &[u8]> {
        self.members.iter().map(|(k, _)| k.as_slice())
    }

    pub fn random_member(&self, rng: &mut impl Rng) -> Option<&Key> {
        self.members.random_entry(rng).map(|(k, _)| k)
    }

    pub fn scan_step(&self, cursor: u64, mut visit: impl FnMut(&[u8])) -> u64 {
        self.members.scan_step(cursor, |k, _| visit(k))
    }

    pub fn encoding(&self) -> &'static str {
        if self.int_encoded {
            "intset"
        } else {
            "hashtable"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_converts_once() {
        let mut s = Set::new();
        assert!(s.insert(b"1", 512));
        assert!(!s.insert(b"1", 512));
        assert_eq!(s.encoding(), "intset");
        s.insert(b"a", 512);
        assert_eq!(s.encoding(), "hashtable");
        s.remove(b"a");
        assert_eq!(s.encoding(), "hashtable");
        let mut small = Set::new();
        for i in 0..3 {
            small.insert(i.to_string().as_bytes(), 2);
        }
        assert_eq!(small.encoding(), "hashtable");
    }
}
