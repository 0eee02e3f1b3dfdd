//! The set type.
//!
//! Like Redis, a set whose members are all integers, at most `set-max-intset-entries` of them,
//! is an `intset`: a sorted array of i64, eight bytes a member, so SMEMBERS and SSCAN answer in
//! ascending order as Redis does (SSCAN in one call, cursor 0). The first other member, or one
//! member too many, turns it into a [`Dict`] for good, so SSCAN keeps SCAN's guarantee and
//! SRANDMEMBER/SPOP sample in O(1). OBJECT ENCODING reports `intset` or `hashtable`.

use crate::dict::Dict;
use moonkv_protocol::number::parse_i64;
use rand::seq::SliceRandom;
use rand::Rng;
use std::borrow::Cow;

#[derive(Clone, Debug)]
enum Repr {
    Ints(Vec<i64>),
    Table(Dict<()>),
}

#[derive(Clone, Debug)]
pub struct Set {
    repr: Repr,
}

impl Default for Set {
    fn default() -> Self {
        Self::new()
    }
}

fn int_text(i: i64) -> Cow<'static, [u8]> {
    Cow::Owned(i.to_string().into_bytes())
}

impl Set {
    pub fn new() -> Self {
        Set {
            repr: Repr::Ints(Vec::new()),
        }
    }

    pub fn len(&self) -> usize {
        match &self.repr {
            Repr::Ints(v) => v.len(),
            Repr::Table(t) => t.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn contains(&self, member: &[u8]) -> bool {
        match &self.repr {
            Repr::Ints(v) => parse_i64(member).is_some_and(|i| v.binary_search(&i).is_ok()),
            Repr::Table(t) => t.contains_key(member),
        }
    }

    fn convert_to_table(&mut self) {
        if let Repr::Ints(v) = &self.repr {
            let mut table = Dict::new();
            for i in v {
                table.insert(i.to_string().as_bytes(), ());
            }
            self.repr = Repr::Table(table);
        }
    }

    /// Adds a member; returns true if it was new. `intset_limit` is set-max-intset-entries.
    pub fn insert(&mut self, member: &[u8], intset_limit: usize) -> bool {
        if let Repr::Ints(v) = &mut self.repr {
            match parse_i64(member) {
                Some(i) => match v.binary_search(&i) {
                    Ok(_) => return false,
                    Err(at) if v.len() < intset_limit => {
                        v.insert(at, i);
                        return true;
                    }
                    Err(_) => self.convert_to_table(),
                },
                None => self.convert_to_table(),
            }
        }
        match &mut self.repr {
            Repr::Table(t) => {
                if t.contains_key(member) {
                    return false;
                }
                t.insert(member, ());
                true
            }
            Repr::Ints(_) => false,
        }
    }

    pub fn remove(&mut self, member: &[u8]) -> bool {
        match &mut self.repr {
            Repr::Ints(v) => match parse_i64(member).map(|i| v.binary_search(&i)) {
                Some(Ok(at)) => {
                    v.remove(at);
                    true
                }
                _ => false,
            },
            Repr::Table(t) => t.remove(member).is_some(),
        }
    }

    /// The members: ascending for an intset, table order otherwise.
    pub fn iter(&self) -> Box<dyn Iterator<Item = Cow<'_, [u8]>> + '_> {
        match &self.repr {
            Repr::Ints(v) => Box::new(v.iter().map(|&i| int_text(i))),
            Repr::Table(t) => Box::new(t.iter().map(|(k, _)| Cow::Borrowed(k.as_slice()))),
        }
    }

    /// A uniformly chosen member.
    pub fn random_member(&self, rng: &mut impl Rng) -> Option<Cow<'_, [u8]>> {
        match &self.repr {
            Repr::Ints(v) if v.is_empty() => None,
            Repr::Ints(v) => Some(int_text(v[rng.gen_range(0..v.len())])),
            Repr::Table(t) => t
                .random_entry(rng)
                .map(|(k, _)| Cow::Borrowed(k.as_slice())),
        }
    }

    /// Up to `n` distinct members chosen at random, in no particular order. Costs O(n) when
    /// `n` is small next to the set, O(len) otherwise.
    pub fn random_distinct(&self, n: usize, rng: &mut impl Rng) -> Vec<Vec<u8>> {
        let len = self.len();
        if n >= len {
            return self.iter().map(Cow::into_owned).collect();
        }
        if n.saturating_mul(3) > len || matches!(self.repr, Repr::Ints(_)) {
            // Most of the set (or a small intset): shuffling a list of it beats rejecting
            // repeated picks.
            let mut all: Vec<Cow<[u8]>> = self.iter().collect();
            let (chosen, _) = all.partial_shuffle(rng, n);
            return chosen.iter().map(|m| m.to_vec()).collect();
        }
        let mut chosen: std::collections::HashSet<Cow<[u8]>> =
            std::collections::HashSet::with_capacity(n);
        while chosen.len() < n {
            if let Some(member) = self.random_member(rng) {
                chosen.insert(member);
            }
        }
        chosen.into_iter().map(Cow::into_owned).collect()
    }

    /// Removes up to `n` members chosen at random and returns them.
    pub fn pop_random(&mut self, n: usize, rng: &mut impl Rng) -> Vec<Vec<u8>> {
        if n >= self.len() {
            let all = self.iter().map(Cow::into_owned).collect();
            *self = Set::new();
            return all;
        }
        let chosen = if n.saturating_mul(3) > self.len() || matches!(self.repr, Repr::Ints(_)) {
            self.random_distinct(n, rng)
        } else {
            let mut chosen = Vec::with_capacity(n);
            while chosen.len() < n {
                let Some(member) = self.random_member(rng).map(Cow::into_owned) else {
                    break;
                };
                self.remove(&member);
                chosen.push(member);
            }
            return chosen;
        };
        for m in &chosen {
            self.remove(m);
        }
        chosen
    }

    /// One SSCAN step. An intset is returned whole, with cursor 0, as Redis does.
    pub fn scan_step(&self, cursor: u64, mut visit: impl FnMut(&[u8])) -> u64 {
        match &self.repr {
            Repr::Ints(v) => {
                for &i in v {
                    visit(&int_text(i));
                }
                0
            }
            Repr::Table(t) => t.scan_step(cursor, |k, _| visit(k)),
        }
    }

    pub fn encoding(&self) -> &'static str {
        match self.repr {
            Repr::Ints(_) => "intset",
            Repr::Table(_) => "hashtable",
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
    fn intsets_are_sorted_and_convert_for_good() {
        let mut s = Set::new();
        for m in ["30", "-5", "7", "7"] {
            s.insert(m.as_bytes(), 512);
        }
        assert_eq!(s.encoding(), "intset");
        let members: Vec<Vec<u8>> = s.iter().map(Cow::into_owned).collect();
        assert_eq!(members, vec![b"-5".to_vec(), b"7".to_vec(), b"30".to_vec()]);
        assert!(s.contains(b"7") && !s.contains(b"07") && !s.contains(b"x"));
        // "07" is not the canonical text of an integer: it must stay distinct from 7.
        assert!(s.insert(b"07", 512));
        assert_eq!(s.encoding(), "hashtable");
        assert!(s.contains(b"7") && s.contains(b"07"));
        assert!(s.remove(b"7"));
        assert_eq!(s.len(), 3);
        let mut small = Set::new();
        small.insert(b"1", 1);
        small.insert(b"2", 1);
        assert_eq!(small.encoding(), "hashtable");
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
