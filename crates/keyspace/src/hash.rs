//! The hash type: field -> value maps.
//!
//! Like Redis, a small hash (at most `hash-max-listpack-entries` fields, none longer than
//! `hash-max-listpack-value`) is a flat array of pairs in insertion order: compact, and HGETALL
//! and HSCAN answer in the order Redis's listpack does (HSCAN in one call, cursor 0). Past either
//! limit it becomes a [`Dict`] for good, so HSCAN keeps SCAN's guarantee and HRANDFIELD samples
//! in O(1). OBJECT ENCODING reports `listpack` or `hashtable` accordingly.

use crate::dict::Dict;
use compact_bytes::CompactBytes;
use rand::Rng;

/// The two conversion thresholds (hash-max-listpack-entries, hash-max-listpack-value).
#[derive(Clone, Copy, Debug)]
pub struct HashLimits {
    pub max_entries: usize,
    pub max_value: usize,
}

#[derive(Clone, Debug)]
enum Repr {
    Packed(Vec<(CompactBytes, CompactBytes)>),
    Table(Dict<CompactBytes>),
}

#[derive(Clone, Debug)]
pub struct Hash {
    repr: Repr,
}

impl Default for Hash {
    fn default() -> Self {
        Self::new()
    }
}

impl Hash {
    pub fn new() -> Self {
        Hash {
            repr: Repr::Packed(Vec::new()),
        }
    }

    pub fn len(&self) -> usize {
        match &self.repr {
            Repr::Packed(pairs) => pairs.len(),
            Repr::Table(t) => t.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn packed_index(pairs: &[(CompactBytes, CompactBytes)], field: &[u8]) -> Option<usize> {
        pairs.iter().position(|(f, _)| f.as_slice() == field)
    }

    pub fn get(&self, field: &[u8]) -> Option<&[u8]> {
        match &self.repr {
            Repr::Packed(pairs) => Self::packed_index(pairs, field).map(|i| pairs[i].1.as_slice()),
            Repr::Table(t) => t.get(field).map(|v| v.as_slice()),
        }
    }

    pub fn contains(&self, field: &[u8]) -> bool {
        self.get(field).is_some()
    }

    /// Sets a field; returns true if it is new.
    pub fn set(&mut self, field: &[u8], value: &[u8], limits: HashLimits) -> bool {
        if let Repr::Packed(pairs) = &mut self.repr {
            let fits = field.len() <= limits.max_value && value.len() <= limits.max_value;
            match Self::packed_index(pairs, field) {
                Some(i) if fits => {
                    pairs[i].1 = CompactBytes::new(value);
                    return false;
                }
                None if fits && pairs.len() < limits.max_entries => {
                    pairs.push((CompactBytes::new(field), CompactBytes::new(value)));
                    return true;
                }
                _ => self.convert_to_table(),
            }
        }
        match &mut self.repr {
            Repr::Table(t) => t.insert(field, CompactBytes::new(value)).is_none(),
            Repr::Packed(_) => false,
        }
    }

    fn convert_to_table(&mut self) {
        if let Repr::Packed(pairs) = &mut self.repr {
            let mut table = Dict::new();
            for (f, v) in pairs.drain(..) {
                table.insert(f.as_slice(), v);
            }
            self.repr = Repr::Table(table);
        }
    }

    pub fn remove(&mut self, field: &[u8]) -> bool {
        match &mut self.repr {
            Repr::Packed(pairs) => match Self::packed_index(pairs, field) {
                Some(i) => {
                    pairs.remove(i);
                    true
                }
                None => false,
            },
            Repr::Table(t) => t.remove(field).is_some(),
        }
    }

    pub fn iter(&self) -> Box<dyn Iterator<Item = (&[u8], &[u8])> + '_> {
        match &self.repr {
            Repr::Packed(pairs) => {
                Box::new(pairs.iter().map(|(f, v)| (f.as_slice(), v.as_slice())))
            }
            Repr::Table(t) => Box::new(t.iter().map(|(k, v)| (k.as_slice(), v.as_slice()))),
        }
    }

    /// A uniformly chosen field and its value.
    pub fn random_field(&self, rng: &mut impl Rng) -> Option<(&[u8], &[u8])> {
        match &self.repr {
            Repr::Packed(pairs) if pairs.is_empty() => None,
            Repr::Packed(pairs) => {
                let (f, v) = &pairs[rng.gen_range(0..pairs.len())];
                Some((f.as_slice(), v.as_slice()))
            }
            Repr::Table(t) => t
                .random_entry(rng)
                .map(|(k, v)| (k.as_slice(), v.as_slice())),
        }
    }

    /// Up to `n` distinct fields chosen at random, with their values (HRANDFIELD with a
    /// positive count): O(n) picks when `n` is small next to the hash, one shuffle otherwise.
    pub fn random_distinct(&self, n: usize, rng: &mut impl Rng) -> Vec<(Vec<u8>, Vec<u8>)> {
        use rand::seq::SliceRandom;
        let len = self.len();
        if n.saturating_mul(3) > len || matches!(self.repr, Repr::Packed(_)) {
            let mut all: Vec<(&[u8], &[u8])> = self.iter().collect();
            let take = n.min(len);
            let (chosen, _) = all.partial_shuffle(rng, take);
            return chosen
                .iter()
                .map(|(f, v)| (f.to_vec(), v.to_vec()))
                .collect();
        }
        let mut chosen: std::collections::HashMap<&[u8], &[u8]> =
            std::collections::HashMap::with_capacity(n);
        while chosen.len() < n {
            if let Some((f, v)) = self.random_field(rng) {
                chosen.insert(f, v);
            }
        }
        chosen
            .into_iter()
            .map(|(f, v)| (f.to_vec(), v.to_vec()))
            .collect()
    }

    /// One HSCAN step. A packed hash is returned whole, with cursor 0, as Redis does.
    pub fn scan_step(&self, cursor: u64, mut visit: impl FnMut(&[u8], &[u8])) -> u64 {
        match &self.repr {
            Repr::Packed(pairs) => {
                for (f, v) in pairs {
                    visit(f, v);
                }
                0
            }
            Repr::Table(t) => t.scan_step(cursor, |k, v| visit(k, v)),
        }
    }

    pub fn encoding(&self) -> &'static str {
        match self.repr {
            Repr::Packed(_) => "listpack",
            Repr::Table(_) => "hashtable",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: HashLimits = HashLimits {
        max_entries: 2,
        max_value: 4,
    };

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
        assert_eq!(many.len(), 3);
        assert_eq!(many.get(b"y"), Some(&b"v"[..]));
    }

    #[test]
    fn small_hashes_keep_insertion_order() {
        let limits = HashLimits {
            max_entries: 128,
            max_value: 64,
        };
        let mut h = Hash::new();
        for f in ["z", "a", "m", "b"] {
            h.set(f.as_bytes(), b"v", limits);
        }
        h.remove(b"m");
        h.set(b"a", b"changed", limits);
        let order: Vec<&[u8]> = h.iter().map(|(f, _)| f).collect();
        assert_eq!(order, vec![&b"z"[..], b"a", b"b"]);
        let mut seen = Vec::new();
        assert_eq!(h.scan_step(0, |f, _| seen.push(f.to_vec())), 0);
        assert_eq!(seen.len(), 3);
        let mut rng = rand::thread_rng();
        let picked = h.random_distinct(2, &mut rng);
        assert_eq!(picked.len(), 2);
        assert_ne!(picked[0].0, picked[1].0);
    }
}
