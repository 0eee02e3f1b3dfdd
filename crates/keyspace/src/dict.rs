//! A chained hash table with the properties Redis's `dict` gives its users and no general-purpose
//! map gives together: a SCAN cursor that never misses an element present for the whole scan
//! even when the table grows or shrinks between calls (reverse-binary bucket order), O(1)
//! random sampling (RANDOMKEY, active expiry), and a compact layout: one 8-byte bucket slot per
//! element plus one node allocation holding key, value and chain link.
//!
//! Resizing rehashes the whole table at once, moving node pointers only (no node is copied).

use compact_bytes::CompactBytes;
use rand::Rng;
use std::hash::BuildHasher;

/// Keys are byte strings; up to 23 bytes are stored inline in the node.
pub type Key = CompactBytes;

struct Node<V> {
    key: Key,
    value: V,
    next: Link<V>,
}

type Link<V> = Option<Box<Node<V>>>;

const MIN_BUCKETS: usize = 4;

pub struct Dict<V> {
    buckets: Vec<Link<V>>,
    len: usize,
    hasher: foldhash::fast::RandomState,
}

impl<V> Default for Dict<V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<V> Dict<V> {
    pub fn new() -> Self {
        Self {
            buckets: Vec::new(),
            len: 0,
            hasher: foldhash::fast::RandomState::default(),
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of bucket slots (for memory figures and tests).
    pub fn bucket_count(&self) -> usize {
        self.buckets.len()
    }

    fn bucket_of(&self, key: &[u8]) -> usize {
        debug_assert!(self.buckets.len().is_power_of_two());
        (self.hasher.hash_one(key) as usize) & (self.buckets.len() - 1)
    }

    pub fn get(&self, key: &[u8]) -> Option<&V> {
        self.get_key_value(key).map(|(_, v)| v)
    }

    pub fn get_key_value(&self, key: &[u8]) -> Option<(&Key, &V)> {
        if self.len == 0 {
            return None;
        }
        let mut link = &self.buckets[self.bucket_of(key)];
        while let Some(node) = link {
            if node.key.as_slice() == key {
                return Some((&node.key, &node.value));
            }
            link = &node.next;
        }
        None
    }

    pub fn contains_key(&self, key: &[u8]) -> bool {
        self.get_key_value(key).is_some()
    }

    pub fn get_mut(&mut self, key: &[u8]) -> Option<&mut V> {
        if self.len == 0 {
            return None;
        }
        let idx = self.bucket_of(key);
        let mut link = &mut self.buckets[idx];
        while let Some(node) = link {
            if node.key.as_slice() == key {
                return Some(&mut node.value);
            }
            link = &mut node.next;
        }
        None
    }

    /// Inserts or replaces; returns the previous value.
    pub fn insert(&mut self, key: &[u8], value: V) -> Option<V> {
        if let Some(slot) = self.get_mut(key) {
            return Some(std::mem::replace(slot, value));
        }
        self.insert_new(Key::new(key), value);
        None
    }

    /// Returns the value for `key`, inserting `make()` first if absent.
    pub fn get_or_insert_with(&mut self, key: &[u8], make: impl FnOnce() -> V) -> &mut V {
        if !self.contains_key(key) {
            self.insert_new(Key::new(key), make());
        }
        self.get_mut(key).expect("present: just inserted or found")
    }

    /// Inserts a key known to be absent.
    fn insert_new(&mut self, key: Key, value: V) {
        if self.len >= self.buckets.len() {
            self.resize((self.len + 1).next_power_of_two().max(MIN_BUCKETS));
        }
        let idx = self.bucket_of(&key);
        let next = self.buckets[idx].take();
        self.buckets[idx] = Some(Box::new(Node { key, value, next }));
        self.len += 1;
    }

    pub fn remove(&mut self, key: &[u8]) -> Option<(Key, V)> {
        if self.len == 0 {
            return None;
        }
        let idx = self.bucket_of(key);
        let mut link = &mut self.buckets[idx];
        while link.as_ref().is_some_and(|n| n.key.as_slice() != key) {
            link = &mut link.as_mut().expect("checked by loop condition").next;
        }
        let node = link.take()?;
        let Node { key, value, next } = *node;
        *link = next;
        self.len -= 1;
        self.shrink_if_sparse();
        Some((key, value))
    }

    /// Removes every element; returns them so a caller can free a large table elsewhere.
    pub fn take_all(&mut self) -> Dict<V> {
        std::mem::take(self)
    }

    fn shrink_if_sparse(&mut self) {
        // Like Redis: shrink when under 10% full, keeping the table a power of two.
        if self.buckets.len() > MIN_BUCKETS && self.len * 10 < self.buckets.len() {
            self.resize(self.len.next_power_of_two().max(MIN_BUCKETS));
        }
    }

    fn resize(&mut self, new_size: usize) {
        let old = std::mem::take(&mut self.buckets);
        self.buckets = Vec::with_capacity(new_size);
        self.buckets.resize_with(new_size, || None);
        for mut link in old {
            while let Some(mut node) = link {
                link = node.next.take();
                let idx = self.bucket_of(&node.key);
                node.next = self.buckets[idx].take();
                self.buckets[idx] = Some(node);
            }
        }
    }

    pub fn iter(&self) -> Iter<'_, V> {
        Iter {
            buckets: self.buckets.iter(),
            chain: None,
        }
    }

    /// Visits the elements of one step of a SCAN and returns the next cursor (0 when done).
    /// Elements present from the first to the last call are visited at least once.
    pub fn scan_step(&self, cursor: u64, mut visit: impl FnMut(&Key, &V)) -> u64 {
        if self.buckets.is_empty() {
            return 0;
        }
        let mask = (self.buckets.len() - 1) as u64;
        let mut link = &self.buckets[(cursor & mask) as usize];
        while let Some(node) = link {
            visit(&node.key, &node.value);
            link = &node.next;
        }
        // Increment the cursor's reversed bits, so that buckets that split or merge on a resize
        // are visited exactly in the order that keeps the guarantee.
        let mut v = cursor | !mask;
        v = v.reverse_bits();
        v = v.wrapping_add(1);
        v.reverse_bits()
    }

    /// Where `key` falls in the order [`Dict::walk_from`] visits elements: its hash with the
    /// bits reversed. The order does not change when the table grows or shrinks.
    pub fn walk_position(&self, key: &[u8]) -> u64 {
        self.hasher.hash_one(key).reverse_bits()
    }

    /// Visits, bucket by bucket, the elements whose walk position is at least `from`, until
    /// about `budget` elements were visited; returns the position to go on from, or None once
    /// the table is done. Elements below `from` are never visited again, even if the table was
    /// resized between calls (SCAN's reverse-binary order, with the position kept exactly
    /// instead of as a bucket): so a walk in slices visits each element present throughout
    /// exactly once, and an element is behind the walk exactly when its position is below the
    /// returned one.
    pub fn walk_from(
        &self,
        from: u64,
        budget: usize,
        mut visit: impl FnMut(&Key, &V),
    ) -> Option<u64> {
        if self.buckets.is_empty() {
            return None;
        }
        // Each bucket covers a span of positions: those whose top bits reverse to its index.
        let bits = self.buckets.len().trailing_zeros();
        let span = 1u64 << (64 - bits);
        let mut at = from;
        let mut visited = 0;
        let mut buckets = 0;
        loop {
            let start = at & !(span - 1);
            let mut link = &self.buckets[start.reverse_bits() as usize];
            while let Some(node) = link {
                if self.walk_position(&node.key) >= at {
                    visit(&node.key, &node.value);
                    visited += 1;
                }
                link = &node.next;
            }
            at = start.checked_add(span)?;
            buckets += 1;
            // Empty buckets count too, so a sparse table cannot make one slice long.
            if visited >= budget || buckets >= budget.max(1).saturating_mul(4) {
                return Some(at);
            }
        }
    }

    /// A uniformly random element. Picking a random bucket and then a random chain element
    /// would favour elements in short chains, so each try picks a bucket and a slot below a
    /// bound on chain length and retries when the slot is empty: every element is equally
    /// likely (the bound grows if a longer chain turns up).
    pub fn random_entry(&self, rng: &mut impl Rng) -> Option<(&Key, &V)> {
        if self.len == 0 {
            return None;
        }
        let mut bound = 8;
        loop {
            let head = &self.buckets[rng.gen_range(0..self.buckets.len())];
            let mut chain_len = 0;
            let mut link = head;
            while let Some(node) = link {
                chain_len += 1;
                link = &node.next;
            }
            if chain_len > bound {
                bound = chain_len;
                continue;
            }
            let slot = rng.gen_range(0..bound);
            if slot >= chain_len {
                continue;
            }
            let mut link = head;
            let mut i = 0;
            while let Some(node) = link {
                if i == slot {
                    return Some((&node.key, &node.value));
                }
                i += 1;
                link = &node.next;
            }
        }
    }
}

/// A copy with the same hash seed and bucket chains, so it iterates (and SCANs, and dumps)
/// in the same order as the original: an undone change must give back the same value.
impl<V: Clone> Clone for Dict<V> {
    fn clone(&self) -> Self {
        Dict {
            buckets: self.buckets.iter().map(clone_chain).collect(),
            len: self.len,
            hasher: self.hasher.clone(),
        }
    }
}

fn clone_chain<V: Clone>(link: &Link<V>) -> Link<V> {
    let mut nodes = Vec::new();
    let mut at = link;
    while let Some(node) = at {
        nodes.push((node.key.clone(), node.value.clone()));
        at = &node.next;
    }
    let mut head = None;
    for (key, value) in nodes.into_iter().rev() {
        head = Some(Box::new(Node {
            key,
            value,
            next: head,
        }));
    }
    head
}

impl<V> std::fmt::Debug for Dict<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Dict({} entries)", self.len())
    }
}

impl<V> Drop for Dict<V> {
    fn drop(&mut self) {
        // Unlink chains iteratively: dropping a long chain recursively could overflow the stack.
        for bucket in self.buckets.iter_mut() {
            let mut link = bucket.take();
            while let Some(mut node) = link {
                link = node.next.take();
            }
        }
    }
}

pub struct Iter<'a, V> {
    buckets: std::slice::Iter<'a, Link<V>>,
    chain: Option<&'a Node<V>>,
}

impl<'a, V> Iterator for Iter<'a, V> {
    type Item = (&'a Key, &'a V);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(node) = self.chain {
                self.chain = node.next.as_deref();
                return Some((&node.key, &node.value));
            }
            self.chain = self.buckets.next()?.as_deref();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn insert_get_remove() {
        let mut d = Dict::new();
        for i in 0..1000u32 {
            assert!(d.insert(format!("k{i}").as_bytes(), i).is_none());
        }
        assert_eq!(d.len(), 1000);
        assert_eq!(d.insert(b"k7", 70), Some(7));
        assert_eq!(d.get(b"k7"), Some(&70));
        for i in 0..990u32 {
            assert!(d.remove(format!("k{i}").as_bytes()).is_some());
        }
        assert_eq!(d.len(), 10);
        assert!(d.bucket_count() <= 16, "table shrinks when sparse");
        assert_eq!(d.iter().count(), 10);
        assert!(d.remove(b"k0").is_none());
    }

    #[test]
    fn scan_survives_resizes() {
        let mut d = Dict::new();
        for i in 0..500u32 {
            d.insert(format!("k{i}").as_bytes(), ());
        }
        let mut seen = HashSet::new();
        let mut cursor = 0;
        let mut step = 0;
        loop {
            cursor = d.scan_step(cursor, |k, _| {
                seen.insert(k.as_slice().to_vec());
            });
            step += 1;
            // Grow and shrink the table in the middle of the scan.
            if step == 50 {
                for i in 500..5000u32 {
                    d.insert(format!("k{i}").as_bytes(), ());
                }
            }
            if step == 200 {
                for i in 500..5000u32 {
                    d.remove(format!("k{i}").as_bytes());
                }
            }
            if cursor == 0 {
                break;
            }
        }
        for i in 0..500u32 {
            assert!(seen.contains(format!("k{i}").as_bytes()), "missed k{i}");
        }
    }

    #[test]
    fn walk_in_slices_visits_each_element_once_across_resizes() {
        let mut d = Dict::new();
        for i in 0..2000u32 {
            d.insert(format!("k{i}").as_bytes(), i);
        }
        let mut seen = std::collections::HashMap::new();
        let mut at = Some(0);
        let mut slice = 0;
        while let Some(from) = at {
            at = d.walk_from(from, 37, |k, _| {
                *seen.entry(k.as_slice().to_vec()).or_insert(0) += 1;
            });
            slice += 1;
            // Grow, then shrink below the original size, in the middle of the walk.
            if slice == 5 {
                for i in 2000..20000u32 {
                    d.insert(format!("k{i}").as_bytes(), i);
                }
            }
            if slice == 40 {
                for i in 1000..20000u32 {
                    d.remove(format!("k{i}").as_bytes());
                }
            }
            if let Some(next) = at {
                // The walk position says exactly which keys are behind it.
                for i in 0..1000u32 {
                    let key = format!("k{i}");
                    let behind = d.walk_position(key.as_bytes()) < next;
                    assert_eq!(behind, seen.contains_key(key.as_bytes()), "{key}");
                }
            }
        }
        for i in 0..1000u32 {
            assert_eq!(seen.get(format!("k{i}").as_bytes()), Some(&1), "k{i}");
        }
    }

    #[test]
    fn random_entry_is_fair() {
        let mut d = Dict::new();
        for i in 0..20u32 {
            d.insert(format!("m{i}").as_bytes(), i);
        }
        let mut counts = [0u32; 20];
        let mut rng = rand::thread_rng();
        for _ in 0..40_000 {
            counts[*d.random_entry(&mut rng).unwrap().1 as usize] += 1;
        }
        // Each element expected 2000 times; allow generous noise but no systematic bias.
        assert!(
            counts.iter().all(|&c| (1700..2300).contains(&c)),
            "{:?}",
            counts
        );
    }

    #[test]
    fn random_entry_finds_elements() {
        let mut d = Dict::new();
        let mut rng = rand::thread_rng();
        assert!(d.random_entry(&mut rng).is_none());
        d.insert(b"only", 1);
        assert_eq!(
            d.random_entry(&mut rng).map(|(k, _)| k.as_slice().to_vec()),
            Some(b"only".to_vec())
        );
    }
}
