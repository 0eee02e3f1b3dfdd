//! The replication backlog: the last `repl-backlog-size` bytes of the stream, so a replica that
//! lost its link for a moment (or restarted) resumes from its offset instead of a full sync.

use std::collections::VecDeque;

pub struct Backlog {
    bytes: VecDeque<u8>,
    capacity: usize,
    /// Stream offset of the byte after the last one held (the primary's offset).
    end_offset: u64,
}

impl Backlog {
    /// An empty backlog whose next byte is the stream's byte `end_offset + 1`.
    pub fn new(capacity: usize, end_offset: u64) -> Self {
        Backlog {
            bytes: VecDeque::new(),
            capacity: capacity.max(1),
            end_offset,
        }
    }

    pub fn push(&mut self, data: &[u8]) {
        self.end_offset += data.len() as u64;
        let data = if data.len() > self.capacity {
            &data[data.len() - self.capacity..]
        } else {
            data
        };
        let overflow = (self.bytes.len() + data.len()).saturating_sub(self.capacity);
        self.bytes.drain(..overflow);
        self.bytes.extend(data);
    }

    /// CONFIG SET repl-backlog-size: keeps the newest bytes that still fit.
    pub fn resize(&mut self, capacity: usize) {
        self.capacity = capacity.max(1);
        let overflow = self.bytes.len().saturating_sub(self.capacity);
        self.bytes.drain(..overflow);
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn histlen(&self) -> u64 {
        self.bytes.len() as u64
    }

    /// Offset of the first byte held (Redis's `repl_backlog_first_byte_offset`: offsets count
    /// from 1).
    pub fn first_byte_offset(&self) -> u64 {
        self.end_offset - self.histlen() + 1
    }

    /// The bytes from stream offset `from` (the first byte a replica lacks) to the end, or
    /// None if the backlog no longer (or not yet) holds them.
    pub fn since(&self, from: u64) -> Option<Vec<u8>> {
        if from < self.first_byte_offset() || from > self.end_offset + 1 {
            return None;
        }
        let skip = (from - self.first_byte_offset()) as usize;
        Some(self.bytes.iter().skip(skip).copied().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest_bytes_and_answers_by_offset() {
        let mut b = Backlog::new(10, 100);
        assert_eq!(b.since(101), Some(vec![]));
        assert_eq!(b.since(100), None);
        b.push(b"abcdef");
        assert_eq!(b.first_byte_offset(), 101);
        assert_eq!(b.since(103).as_deref(), Some(&b"cdef"[..]));
        b.push(b"ghijkl");
        // 12 bytes pushed into 10: "ab" fell out.
        assert_eq!(b.histlen(), 10);
        assert_eq!(b.first_byte_offset(), 103);
        assert_eq!(b.since(102), None);
        assert_eq!(b.since(103).as_deref(), Some(&b"cdefghijkl"[..]));
        assert_eq!(b.since(113), Some(vec![]));
        assert_eq!(b.since(114), None);
        b.push(b"0123456789abc");
        assert_eq!(b.since(116).as_deref(), Some(&b"3456789abc"[..]));
        b.resize(4);
        assert_eq!(b.since(122).as_deref(), Some(&b"9abc"[..]));
        assert_eq!(b.since(121), None);
    }
}
