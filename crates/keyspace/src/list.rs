//! The list type: a double-ended sequence of byte strings, stored packed.
//!
//! Like Redis's quicklist, a list is a deque of chunks of up to [`CHUNK_BYTES`] each, and a
//! chunk holds its elements back to back in one buffer: a 14-byte element costs 16 bytes
//! instead of a pointer, a length and an allocation of its own. Each entry is
//! `[length as LEB128][bytes][entry size, readable backwards]`, so a chunk can be walked from
//! either end. Pushing and popping at the ends touch one chunk; indexing walks chunk counts
//! from the nearer end, then entries inside one chunk. An element larger than a chunk gets a
//! chunk of its own.

use std::collections::VecDeque;

/// Target chunk size, Redis's default `list-max-listpack-size -2` (8 KiB).
pub const CHUNK_BYTES: usize = 8 * 1024;

/// Which end of a list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    Head,
    Tail,
}

#[derive(Clone, Debug, Default)]
struct Chunk {
    data: Vec<u8>,
    count: usize,
}

/// Appends the entry encoding of `item` to `out`.
fn encode_entry(out: &mut Vec<u8>, item: &[u8]) {
    let start = out.len();
    let mut n = item.len();
    loop {
        let digit = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(digit);
            break;
        }
        out.push(digit | 0x80);
    }
    out.extend_from_slice(item);
    // The size of header + bytes, most significant 7-bit digit first, every digit after it
    // flagged "more": read backwards from the entry's end, the flag says another digit
    // precedes.
    let size = out.len() - start;
    let digits = trailer_len(size);
    for i in (0..digits).rev() {
        let digit = ((size >> (7 * i)) & 0x7f) as u8;
        out.push(if i == digits - 1 { digit } else { digit | 0x80 });
    }
}

#[cfg(test)]
fn entry_len(item: &[u8]) -> usize {
    let mut v = Vec::new();
    encode_entry(&mut v, item);
    v.len()
}

/// Decodes the entry at `offset`: (element bytes range, offset of the next entry).
fn decode_at(data: &[u8], offset: usize) -> (std::ops::Range<usize>, usize) {
    let mut len = 0usize;
    let mut shift = 0;
    let mut p = offset;
    loop {
        let b = data[p];
        p += 1;
        len |= ((b & 0x7f) as usize) << shift;
        if b & 0x80 == 0 {
            break;
        }
        shift += 7;
    }
    let body = p..p + len;
    let next = p + len + trailer_len(p + len - offset);
    (body, next)
}

/// Number of trailer bytes needed for an entry of `size` header+body bytes.
fn trailer_len(mut size: usize) -> usize {
    let mut n = 1;
    while size >= 0x80 {
        size >>= 7;
        n += 1;
    }
    n
}

/// Start offset of the entry that ends at `end`.
fn entry_start_before(data: &[u8], end: usize) -> usize {
    let mut size = 0usize;
    let mut shift = 0;
    let mut q = end;
    loop {
        q -= 1;
        let b = data[q];
        size |= ((b & 0x7f) as usize) << shift;
        shift += 7;
        if b & 0x80 == 0 {
            break;
        }
    }
    q - size
}

/// Grows a chunk's buffer in powers of two, so a full chunk's buffer is exactly
/// [`CHUNK_BYTES`] (plain doubling from an odd start would overshoot by up to a quarter).
fn reserve_pow2(data: &mut Vec<u8>, extra: usize) {
    let needed = data.len() + extra;
    if needed > data.capacity() {
        let target = needed
            .next_power_of_two()
            .clamp(32, CHUNK_BYTES.max(needed));
        data.reserve_exact(target - data.len());
    }
}

impl Chunk {
    fn entries(&self) -> ChunkIter<'_> {
        ChunkIter {
            data: &self.data,
            front: 0,
            back: self.data.len(),
        }
    }

    /// Byte offset of entry `index` (or the end, for index == count).
    fn offset_of(&self, index: usize) -> usize {
        if index == self.count {
            return self.data.len();
        }
        if index <= self.count / 2 {
            let mut off = 0;
            for _ in 0..index {
                off = decode_at(&self.data, off).1;
            }
            off
        } else {
            let mut end = self.data.len();
            for _ in index..self.count {
                end = entry_start_before(&self.data, end);
            }
            end
        }
    }
}

struct ChunkIter<'a> {
    data: &'a [u8],
    front: usize,
    back: usize,
}

impl<'a> Iterator for ChunkIter<'a> {
    type Item = &'a [u8];
    fn next(&mut self) -> Option<&'a [u8]> {
        if self.front >= self.back {
            return None;
        }
        let (body, next) = decode_at(self.data, self.front);
        self.front = next;
        Some(&self.data[body])
    }
}

impl<'a> DoubleEndedIterator for ChunkIter<'a> {
    fn next_back(&mut self) -> Option<&'a [u8]> {
        if self.front >= self.back {
            return None;
        }
        let start = entry_start_before(self.data, self.back);
        let (body, _) = decode_at(self.data, start);
        self.back = start;
        Some(&self.data[body])
    }
}

#[derive(Clone, Debug, Default)]
pub struct List {
    chunks: VecDeque<Chunk>,
    len: usize,
}

impl List {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of chunks (what freeing the list costs, for lazy freeing).
    pub fn chunk_count(&self) -> usize {
        self.chunks.len()
    }

    /// Bytes held by the list's buffers (MEMORY USAGE).
    pub fn allocated_bytes(&self) -> usize {
        self.chunks.iter().map(|c| c.data.capacity()).sum::<usize>()
            + self.chunks.capacity() * std::mem::size_of::<Chunk>()
    }

    fn fits(chunk: &Chunk, extra: usize) -> bool {
        chunk.data.len() + extra <= CHUNK_BYTES
    }

    pub fn push(&mut self, end: End, item: &[u8]) {
        let mut entry = Vec::with_capacity(item.len() + 6);
        encode_entry(&mut entry, item);
        let target = match end {
            End::Head => self.chunks.front_mut(),
            End::Tail => self.chunks.back_mut(),
        };
        match target {
            Some(chunk) if Self::fits(chunk, entry.len()) => {
                reserve_pow2(&mut chunk.data, entry.len());
                match end {
                    End::Head => {
                        chunk.data.splice(0..0, entry);
                    }
                    End::Tail => chunk.data.extend_from_slice(&entry),
                }
                chunk.count += 1;
            }
            _ => {
                let chunk = Chunk {
                    data: entry,
                    count: 1,
                };
                match end {
                    End::Head => self.chunks.push_front(chunk),
                    End::Tail => self.chunks.push_back(chunk),
                }
            }
        }
        self.len += 1;
    }

    pub fn pop(&mut self, end: End) -> Option<Vec<u8>> {
        let chunk = match end {
            End::Head => self.chunks.front_mut()?,
            End::Tail => self.chunks.back_mut()?,
        };
        let item = match end {
            End::Head => {
                let (body, next) = decode_at(&chunk.data, 0);
                let item = chunk.data[body].to_vec();
                chunk.data.drain(..next);
                item
            }
            End::Tail => {
                let start = entry_start_before(&chunk.data, chunk.data.len());
                let (body, _) = decode_at(&chunk.data, start);
                let item = chunk.data[body].to_vec();
                chunk.data.truncate(start);
                item
            }
        };
        chunk.count -= 1;
        if chunk.count == 0 {
            match end {
                End::Head => self.chunks.pop_front(),
                End::Tail => self.chunks.pop_back(),
            };
        }
        self.len -= 1;
        Some(item)
    }

    /// Maps a Redis index (negative counts from the tail) to a position.
    pub fn position(&self, index: i64) -> Option<usize> {
        let len = self.len as i64;
        let i = if index < 0 { len + index } else { index };
        (0..len).contains(&i).then_some(i as usize)
    }

    /// The chunk holding position `pos`, and the position within it.
    fn locate(&self, pos: usize) -> Option<(usize, usize)> {
        if pos >= self.len {
            return None;
        }
        if pos <= self.len / 2 {
            let mut before = 0;
            for (i, c) in self.chunks.iter().enumerate() {
                if pos < before + c.count {
                    return Some((i, pos - before));
                }
                before += c.count;
            }
        } else {
            let mut after = self.len;
            for (i, c) in self.chunks.iter().enumerate().rev() {
                after -= c.count;
                if pos >= after {
                    return Some((i, pos - after));
                }
            }
        }
        None
    }

    pub fn get(&self, pos: usize) -> Option<&[u8]> {
        let (ci, inner) = self.locate(pos)?;
        let chunk = &self.chunks[ci];
        let (body, _) = decode_at(&chunk.data, chunk.offset_of(inner));
        Some(&chunk.data[body])
    }

    pub fn set(&mut self, pos: usize, item: &[u8]) -> bool {
        let Some((ci, inner)) = self.locate(pos) else {
            return false;
        };
        let chunk = &mut self.chunks[ci];
        let start = chunk.offset_of(inner);
        let (_, next) = decode_at(&chunk.data, start);
        let mut entry = Vec::with_capacity(item.len() + 6);
        encode_entry(&mut entry, item);
        chunk.data.splice(start..next, entry);
        self.split_if_oversized(ci);
        true
    }

    /// Inserts `item` so that it ends up at position `pos` (pos == len appends).
    pub fn insert(&mut self, pos: usize, item: &[u8]) {
        if pos >= self.len {
            return self.push(End::Tail, item);
        }
        if pos == 0 {
            return self.push(End::Head, item);
        }
        let Some((ci, inner)) = self.locate(pos) else {
            return;
        };
        let chunk = &mut self.chunks[ci];
        let at = chunk.offset_of(inner);
        let mut entry = Vec::with_capacity(item.len() + 6);
        encode_entry(&mut entry, item);
        chunk.data.splice(at..at, entry);
        chunk.count += 1;
        self.len += 1;
        self.split_if_oversized(ci);
    }

    pub fn remove(&mut self, pos: usize) -> Option<Vec<u8>> {
        let (ci, inner) = self.locate(pos)?;
        let chunk = &mut self.chunks[ci];
        let start = chunk.offset_of(inner);
        let (body, next) = decode_at(&chunk.data, start);
        let item = chunk.data[body].to_vec();
        chunk.data.drain(start..next);
        chunk.count -= 1;
        self.len -= 1;
        if chunk.count == 0 {
            self.chunks.remove(ci);
        }
        Some(item)
    }

    /// Splits a chunk that grew past twice the target size (inserts, replacements) in two.
    fn split_if_oversized(&mut self, ci: usize) {
        let chunk = &mut self.chunks[ci];
        if chunk.data.len() <= 2 * CHUNK_BYTES || chunk.count < 2 {
            return;
        }
        let keep = chunk.count / 2;
        let at = chunk.offset_of(keep);
        let tail = Chunk {
            data: chunk.data.split_off(at),
            count: chunk.count - keep,
        };
        chunk.count = keep;
        chunk.data.shrink_to_fit();
        self.chunks.insert(ci + 1, tail);
    }

    pub fn iter(&self) -> Iter<'_> {
        self.iter_from(0)
    }

    /// Iterates from position `pos` to the end, without walking the elements before it.
    pub fn iter_from(&self, pos: usize) -> Iter<'_> {
        let mut it = Iter {
            list: self,
            front_chunk: 0,
            front: None,
            back_chunk: self.chunks.len(),
            back: None,
            remaining: 0,
        };
        let Some((ci, inner)) = self.locate(pos) else {
            return it;
        };
        let chunk = &self.chunks[ci];
        it.front_chunk = ci;
        it.front = Some(ChunkIter {
            data: &chunk.data,
            front: chunk.offset_of(inner),
            back: chunk.data.len(),
        });
        it.remaining = self.len - pos;
        it
    }

    /// Resolves an inclusive Redis range [start, stop] (negative indexes allowed) into
    /// positions, or None when empty.
    pub fn range(&self, start: i64, stop: i64) -> Option<(usize, usize)> {
        let len = self.len as i64;
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

    /// Keeps only positions [start, end]: whole chunks go at once, then the partial ones.
    pub fn trim(&mut self, keep: Option<(usize, usize)>) {
        let Some((s, e)) = keep else {
            self.chunks.clear();
            self.len = 0;
            return;
        };
        let mut drop_back = self.len - 1 - e;
        while let Some(last) = self.chunks.back_mut() {
            if drop_back == 0 {
                break;
            }
            if last.count <= drop_back {
                drop_back -= last.count;
                self.len -= last.count;
                self.chunks.pop_back();
            } else {
                let cut = last.offset_of(last.count - drop_back);
                last.data.truncate(cut);
                last.count -= drop_back;
                self.len -= drop_back;
                drop_back = 0;
            }
        }
        let mut drop_front = s;
        while let Some(first) = self.chunks.front_mut() {
            if drop_front == 0 {
                break;
            }
            if first.count <= drop_front {
                drop_front -= first.count;
                self.len -= first.count;
                self.chunks.pop_front();
            } else {
                let cut = first.offset_of(drop_front);
                first.data.drain(..cut);
                first.count -= drop_front;
                self.len -= drop_front;
                drop_front = 0;
            }
        }
    }

    /// Removes up to `count` elements equal to `item` (0: all; negative: from the tail).
    pub fn remove_matching(&mut self, item: &[u8], count: i64) -> usize {
        let mut budget = if count == 0 {
            usize::MAX
        } else {
            count.unsigned_abs() as usize
        };
        let mut removed = 0;
        let order: Vec<usize> = if count >= 0 {
            (0..self.chunks.len()).collect()
        } else {
            (0..self.chunks.len()).rev().collect()
        };
        for ci in order {
            if budget == 0 {
                break;
            }
            let chunk = &self.chunks[ci];
            let matches: Vec<bool> = chunk.entries().map(|e| e == item).collect();
            if !matches.contains(&true) {
                continue;
            }
            // Which entries of this chunk go: the first (or, from the tail, last) matches.
            let mut drop = vec![false; matches.len()];
            let indexes: Vec<usize> = if count >= 0 {
                (0..matches.len()).collect()
            } else {
                (0..matches.len()).rev().collect()
            };
            for i in indexes {
                if budget == 0 {
                    break;
                }
                if matches[i] {
                    drop[i] = true;
                    budget -= 1;
                }
            }
            let mut data = Vec::with_capacity(chunk.data.len());
            let mut kept = 0;
            for (i, e) in chunk.entries().enumerate() {
                if !drop[i] {
                    encode_entry(&mut data, e);
                    kept += 1;
                }
            }
            let gone = chunk.count - kept;
            removed += gone;
            self.len -= gone;
            self.chunks[ci] = Chunk { data, count: kept };
        }
        self.chunks.retain(|c| c.count > 0);
        removed
    }
}

/// Iterator over a list's elements, from both ends.
pub struct Iter<'a> {
    list: &'a List,
    front_chunk: usize,
    front: Option<ChunkIter<'a>>,
    /// One past the last chunk not yet handed to `back`.
    back_chunk: usize,
    back: Option<ChunkIter<'a>>,
    remaining: usize,
}

impl<'a> Iterator for Iter<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        if self.remaining == 0 {
            return None;
        }
        loop {
            if let Some(item) = self.front.as_mut().and_then(Iterator::next) {
                self.remaining -= 1;
                return Some(item);
            }
            // The front chunk is done: the next one, or what the back iterator has left.
            let next = if self.front.is_some() {
                self.front_chunk + 1
            } else {
                self.front_chunk
            };
            if next >= self.back_chunk {
                let item = self.back.as_mut().and_then(Iterator::next)?;
                self.remaining -= 1;
                return Some(item);
            }
            self.front_chunk = next;
            self.front = Some(self.list.chunks[next].entries());
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl<'a> DoubleEndedIterator for Iter<'a> {
    fn next_back(&mut self) -> Option<&'a [u8]> {
        if self.remaining == 0 {
            return None;
        }
        loop {
            if let Some(item) = self.back.as_mut().and_then(DoubleEndedIterator::next_back) {
                self.remaining -= 1;
                return Some(item);
            }
            if self.back_chunk == 0 {
                return None;
            }
            let prev = self.back_chunk - 1;
            let front_started = self.front.is_some();
            if front_started && prev <= self.front_chunk {
                let item = self
                    .front
                    .as_mut()
                    .and_then(DoubleEndedIterator::next_back)?;
                self.remaining -= 1;
                return Some(item);
            }
            self.back_chunk = prev;
            self.back = Some(self.list.chunks[prev].entries());
        }
    }
}

impl ExactSizeIterator for Iter<'_> {}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(l: &List) -> Vec<String> {
        l.iter()
            .map(|i| String::from_utf8_lossy(i).into_owned())
            .collect()
    }

    #[test]
    fn entries_decode_both_ways_for_every_length_class() {
        for len in [
            0usize, 1, 126, 127, 128, 129, 16_000, 16_383, 16_384, 70_000,
        ] {
            let item = vec![b'x'; len];
            let mut data = Vec::new();
            encode_entry(&mut data, b"a");
            encode_entry(&mut data, &item);
            encode_entry(&mut data, b"z");
            let chunk = Chunk {
                data: data.clone(),
                count: 3,
            };
            let forward: Vec<&[u8]> = chunk.entries().collect();
            assert_eq!(forward, vec![&b"a"[..], &item[..], b"z"], "len {len}");
            let backward: Vec<&[u8]> = chunk.entries().rev().collect();
            assert_eq!(backward, vec![&b"z"[..], &item[..], b"a"], "len {len}");
            assert_eq!(
                entry_len(&item),
                data.len() - entry_len(b"a") - entry_len(b"z")
            );
        }
    }

    #[test]
    fn behaves_like_a_deque_across_many_chunks() {
        let mut l = List::new();
        let mut model: VecDeque<Vec<u8>> = VecDeque::new();
        let mut seed = 12345u64;
        let mut rnd = |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        for step in 0..20_000 {
            let item = format!("item-{step}-{}", "y".repeat(rnd(40))).into_bytes();
            match rnd(10) {
                0..=2 => {
                    l.push(End::Head, &item);
                    model.push_front(item);
                }
                3..=5 => {
                    l.push(End::Tail, &item);
                    model.push_back(item);
                }
                6 => assert_eq!(l.pop(End::Head), model.pop_front()),
                7 => assert_eq!(l.pop(End::Tail), model.pop_back()),
                8 if !model.is_empty() => {
                    let p = rnd(model.len());
                    assert_eq!(l.get(p), Some(&model[p][..]));
                    if step % 2 == 0 {
                        l.set(p, &item);
                        model[p] = item;
                    } else {
                        l.insert(p, &item);
                        model.insert(p, item);
                    }
                }
                _ if !model.is_empty() => {
                    let p = rnd(model.len());
                    assert_eq!(l.remove(p), model.remove(p));
                }
                _ => {}
            }
            assert_eq!(l.len(), model.len());
        }
        assert!(l.chunks.len() > 10, "the test must span many chunks");
        let all: Vec<&[u8]> = l.iter().collect();
        let expected: Vec<&[u8]> = model.iter().map(Vec::as_slice).collect();
        assert_eq!(all, expected);
        let back: Vec<&[u8]> = l.iter().rev().collect();
        assert_eq!(back, expected.iter().rev().copied().collect::<Vec<_>>());
        for start in [0, 1, model.len() / 3, model.len() - 1] {
            let from: Vec<&[u8]> = l.iter_from(start).collect();
            assert_eq!(from, expected[start..].to_vec());
        }
        // Mixed ends meet in the middle without losing or repeating elements.
        let mut it = l.iter();
        let mut front = Vec::new();
        let mut back = Vec::new();
        loop {
            match (it.next(), it.next_back()) {
                (Some(a), Some(b)) => {
                    front.push(a);
                    back.push(b);
                }
                (Some(a), None) => front.push(a),
                (None, _) => break,
            }
        }
        back.reverse();
        front.extend(back);
        assert_eq!(front, expected);
    }

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
        assert_eq!(items(&l), vec!["b", "c"]);
        let mut big = List::new();
        for i in 0..5000 {
            big.push(End::Tail, format!("element-{i:08}").as_bytes());
        }
        big.trim(big.range(1234, 3999));
        assert_eq!(big.len(), 2766);
        assert_eq!(big.get(0), Some(&b"element-00001234"[..]));
        assert_eq!(big.iter().next_back(), Some(&b"element-00003999"[..]));
        assert_eq!(big.iter().count(), 2766);
    }

    #[test]
    fn remove_matching_from_both_ends() {
        let mut l = List::new();
        for x in ["x", "a", "x", "b", "x"] {
            l.push(End::Tail, x.as_bytes());
        }
        assert_eq!(l.remove_matching(b"x", -1), 1);
        assert_eq!(items(&l), vec!["x", "a", "x", "b"]);
        assert_eq!(l.remove_matching(b"x", 0), 2);
        assert_eq!(l.len(), 2);
        let mut big = List::new();
        for i in 0..3000 {
            big.push(
                End::Tail,
                if i % 3 == 0 {
                    b"hit".as_slice()
                } else {
                    b"miss-miss-miss"
                },
            );
        }
        assert_eq!(big.remove_matching(b"hit", -5), 5);
        assert_eq!(big.get(big.len() - 1), Some(&b"miss-miss-miss"[..]));
        assert_eq!(big.iter().filter(|e| *e == b"hit").count(), 995);
        assert_eq!(big.remove_matching(b"hit", 0), 995);
        assert_eq!(big.len(), 2000);
    }

    #[test]
    fn small_elements_are_packed() {
        let mut l = List::new();
        for i in 0..100_000 {
            l.push(End::Tail, format!("e:{i:012}").as_bytes());
        }
        let per_item = l.allocated_bytes() as f64 / 100_000.0;
        assert!(per_item < 18.0, "{per_item} bytes per 14-byte element");
    }
}
