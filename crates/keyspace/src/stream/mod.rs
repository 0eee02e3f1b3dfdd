//! Streams: entries with monotonically increasing IDs, consumer groups and their pending lists.

pub mod image;

pub use image::{ConsumerImage, GroupImage, PendingImage, StreamImage};

/// A stream entry ID, `<ms>-<seq>`. Ordered by milliseconds, then sequence.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StreamId {
    pub ms: u64,
    pub seq: u64,
}

impl StreamId {
    pub const MIN: StreamId = StreamId { ms: 0, seq: 0 };
    pub const MAX: StreamId = StreamId {
        ms: u64::MAX,
        seq: u64::MAX,
    };

    pub const fn new(ms: u64, seq: u64) -> Self {
        StreamId { ms, seq }
    }

    /// The 16-byte big-endian form Redis uses as a radix-tree key and in RDB pending lists.
    pub fn to_be_bytes(self) -> [u8; 16] {
        let mut out = [0u8; 16];
        out[..8].copy_from_slice(&self.ms.to_be_bytes());
        out[8..].copy_from_slice(&self.seq.to_be_bytes());
        out
    }

    /// Reads the 16-byte big-endian form; None unless `bytes` is exactly 16 bytes.
    pub fn from_be_bytes(bytes: &[u8]) -> Option<Self> {
        let ms = u64::from_be_bytes(bytes.get(..8)?.try_into().ok()?);
        let seq = u64::from_be_bytes(bytes.get(8..16)?.try_into().ok()?);
        (bytes.len() == 16).then_some(StreamId { ms, seq })
    }
}

impl std::fmt::Display for StreamId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}
