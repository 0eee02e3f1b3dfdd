//! The set type: unique byte-string members in a [`Dict`], so SSCAN has the same cursor
//! guarantee as SCAN and SRANDMEMBER/SPOP sample in O(1).
//!
//! Redis starts small all-integer sets as `intset` and converts them to `hashtable` for good
//! once a non-integer member arrives or they outgrow `set-max-intset-entries`; OBJECT ENCODING
//! reports the same, tracked here by one flag.

use crate::dict::{Dict, Key};
use moonkv_protocol::number::parse_i64;
use rand::seq::SliceRandom;
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

    /// Up to `n` distinct members chosen at random, in no particular order. Costs O(n) when
    /// `n` is small next to the set, O(len) otherwise.
    pub fn random_distinct(&self, n: usize, rng: &mut impl Rng) -> Vec<Vec<u8>> {
        let len = self.len();
        if n >= len {
            return self.iter().map(<[u8]>::to_vec).collect();
        }
        if n.saturating_mul(3) > len {
            // Most of the set: shuffling a list of it beats rejecting repeated picks.
            let mut all: Vec<&[u8]> = self.iter().collect();
            let (chosen, _) = all.partial_shuffle(rng, n);
            return chosen.iter().map(|m| m.to_vec()).collect();
        }
        let mut chosen: std::collections::HashSet<&[u8]> = std::collections::HashSet::with_capacity(n);
        while chosen.len() < n {
            if let Some(key) = self.random_member(rng) {
                chosen.insert(key.as_slice());
            }
        }
        chosen.into_iter().map(<[u8]>::to_vec).collect()
    }

    /// Removes up to `n` members chosen at random and returns them.
    pub fn pop_random(&mut self, n: usize, rng: &mut impl Rng) -> Vec<Vec<u8>> {
        if n >= self.len() {
            let all = self.iter().map(<[u8]>::to_vec).collect();
            self.members = Dict::new();
            return all;
        }
        let chosen = if n.saturating_mul(3) > self.len() {
            self.random_distinct(n, rng)
        } else {
            let mut chosen = Vec::with_capacity(n);
            while chosen.len() < n {
                let Some(key) = self.random_member(rng).map(|k| k.as_slice().to_vec()) else { break };
                self.members.remove(&key);
                chosen.push(key);
            }
            return chosen;
        };
        for m in &chosen {
            self.members.remove(m);
        }
        chosen
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
    fn random_picks_are_distinct_members() {
        let mut rng = rand::thread_rng();
        let mut s = Set::new();
        for i in 0..1000 {
            s.insert(format!("m{i}").as_bytes(), 512);
        }
        for n in [0, 1, 10, 400, 999, 1000, 5000] {
            let picked = s.random_distinct(n, &mut rng);
            let unique: std::collections::HashSet<_> = picked.iter().collect();
            assert_eq!(picked.len(), n.min(1000));
            assert_eq!(unique.len(), picked.len());
            assert!(picked.iter().all(|m| s.contains(m)));
        }
        let popped = s.pop_random(10, &mut rng);
        assert_eq!(s.len(), 990);
        assert!(popped.iter().all(|m| !s.contains(m)));
        let popped = s.pop_random(500, &mut rng);
        assert_eq!((popped.len(), s.len()), (500, 490));
        let rest = s.pop_random(1000, &mut rng);
        assert_eq!((rest.len(), s.len()), (490, 0));
    }

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
