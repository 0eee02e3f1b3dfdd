//! The list type: a double-ended sequence of byte strings.
//!
//! Elements are kept in a `VecDeque` of inline-or-heap byte strings for now; the interface
//! (push/pop at both ends, indexing, ranges) is what commands use, so the representation can
//! become a packed chunk list without touching them.

use compact_bytes::CompactBytes;
use std::collections::VecDeque;

#[derive(Clone, Debug, Default)]
pub struct List {
    items: VecDeque<CompactBytes>,
}

/// Which end of a list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    Head,
    Tail,
}

impl List {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn push(&mut self, end: End, item: &[u8]) {
        let item = CompactBytes::new(item);
        match end {
            End::Head => self.items.push_front(item),
            End::Tail => self.items.push_back(item),
        }
    }

    pub fn pop(&mut self, end: End) -> Option<Vec<u8>> {
        let item = match end {
            End::Head => self.items.pop_front(),
            End::Tail => self.items.pop_back(),
        };
        item.map(|i| i.as_slice().to_vec())
    }

    /// Maps a Redis index (negative counts from the tail) to a position.
    pub fn position(&self, index: i64) -> Option<usize> {
        let len = self.items.len() as i64;
        let i = if index < 0 { len + index } else { index };
        (0..len).contains(&i).then_some(i as usize)
    }

    pub fn get(&self, pos: usize) -> Option<&[u8]> {
        self.items.get(pos).map(|i| i.as_slice())
    }

    pub fn set(&mut self, pos: usize, item: &[u8]) -> bool {
        match self.items.get_mut(pos) {
            Some(slot) => {
                *slot = CompactBytes::new(item);
                true
            }
            None => false,
        }
    }

    pub fn insert(&mut self, pos: usize, item: &[u8]) {
        self.items.insert(pos, CompactBytes::new(item));
    }

    pub fn remove(&mut self, pos: usize) -> Option<Vec<u8>> {
        self.items.remove(pos).map(|i| i.as_slice().to_vec())
    }

    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &[u8]> + ExactSizeIterator {
        self.items.iter().map(|i| i.as_slice())
    }

    /// Resolves an inclusive Redis range [start, stop] (negative indexes allowed) into
    /// positions, or None when empty.
    pub fn range(&self, start: i64, stop: i64) -> Option<(usize, usize)> {
        let len = self.items.len() as i64;
        let mut s = if start < 0 { len + start } else { start };
        let mut e = if stop < 0 { len + stop } else { stop };
        if s < 0 {
            s = 0;
        }
        if e >= len {
            e = len - 1;
        }
        (s <= e && s < len && e >= 0).then_some((s as usize, e as usize))
    }

    /// Keeps only positions [start, end].
    pub fn trim(&mut self, keep: Option<(usize, usize)>) {
        match keep {
            None => self.items.clear(),
            Some((s, e)) => {
                self.items.truncate(e + 1);
                self.items.drain(..s);
            }
        }
    }

    /// Removes up to `count` elements equal to `item` (0: all; negative: from the tail).
    pub fn remove_matching(&mut self, item: &[u8], count: i64) -> usize {
        let limit = if count == 0 { usize::MAX } else { count.unsigned_abs() as usize };
        let mut removed = 0;
        if count >= 0 {
            let mut i = 0;
            while i < self.items.len() && removed < limit {
                if self.items[i].as_slice() == item {
                    self.items.remove(i);
                    removed += 1;
                } else {
                    i += 1;
                }
            }
        } else {
            let mut i = self.items.len();
            while i > 0 && removed < limit {
                i -= 1;
                if self.items[i].as_slice() == item {
                    self.items.remove(i);
                    removed += 1;
                }
            }
        }
        removed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_and_trim() {
        let mut l = List::new();
        for x in ["a", "b", "c", "d"] {
            l.push(End::Tail, x.as_bytes());
        }
        assert_eq!(l.range(0, -1), Some((0, 3)));
        assert_eq!(l.range(-2, 100), Some((2, 3)));
        assert_eq!(l.range(3, 1), None);
        assert_eq!(l.range(5, 10), None);
        l.trim(l.range(1, 2));
        assert_eq!(l.iter().collect::<Vec<_>>(), vec![&b"b"[..], b"c"]);
    }

    #[test]
    fn remove_matching_from_both_ends() {
        let mut l = List::new();
        for x in ["x", "a", "x", "b", "x"] {
            l.push(End::Tail, x.as_bytes());
        }
        assert_eq!(l.remove_matching(b"x", -1), 1);
        assert_eq!(l.iter().collect::<Vec<_>>(), vec![&b"x"[..], b"a", b"x", b"b"]);
        assert_eq!(l.remove_matching(b"x", 0), 2);
        assert_eq!(l.len(), 2);
    }
}
