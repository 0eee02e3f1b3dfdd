//! Writing RDB: the streaming [`RdbWriter`] and the value encoder it shares with DUMP.
//!
//! Encodings, chosen to match what Redis 7.0 writes for the same data:
//! - strings: integers that fit 32 bits as int8/16/32, other integers as their text;
//!   byte strings of up to 11 characters that read as such an integer likewise, and longer
//!   than 20 bytes LZF-compressed when compression is on and it saves at least 5 bytes.
//! - lists: RDB_TYPE_LIST_QUICKLIST_2, listpack nodes of at most 8 KiB (Redis's default
//!   `list-max-listpack-size -2`); an element that does not fit gets a node of its own, and one
//!   of 1 GiB or more a PLAIN node, as Redis's quicklist stores them. Redis 7.0 loads this
//!   without re-encoding anything, and older loaders are not a target (a 7.0 file is version
//!   10 anyway).
//! - sets: RDB_TYPE_SET_INTSET for an intset, RDB_TYPE_SET otherwise.
//! - hashes: RDB_TYPE_HASH_LISTPACK for a listpack, RDB_TYPE_HASH otherwise.
//! - sorted sets: RDB_TYPE_ZSET_LISTPACK for a listpack (pairs in score order, whole scores as
//!   integers), RDB_TYPE_ZSET_2 otherwise (highest score first, as Redis walks its skip list).

use super::blobs::{canonical_i64, intset_encode, ListpackBuilder};
use super::*;
use moonkv_keyspace::Value;
use std::io::{self, Write};

/// How a snapshot is written: Redis's `rdbcompression` and `rdbchecksum`.
#[derive(Clone, Copy, Debug)]
pub struct WriteOptions {
    /// LZF-compress strings longer than 20 bytes when that saves space.
    pub compress: bool,
    /// End the file with a CRC-64 of everything before it; otherwise with 8 zero bytes, which
    /// loaders read as "not checksummed".
    pub checksum: bool,
}

impl Default for WriteOptions {
    /// Redis's defaults: both on.
    fn default() -> Self {
        WriteOptions {
            compress: true,
            checksum: true,
        }
    }
}

/// Buffers encoded bytes and passes them on in blocks, feeding the checksum on the way.
pub(crate) struct Sink<W: Write> {
    out: W,
    digest: Option<crc::Digest<'static, u64, crc::Table<16>>>,
    buf: Vec<u8>,
    compress: bool,
}

/// Block size handed to the output; also bounds what one value holds in memory beyond its
/// largest element.
const FLUSH_AT: usize = 64 * 1024;

impl<W: Write> Sink<W> {
    pub(crate) fn new(out: W, compress: bool, checksum: bool) -> Self {
        Sink {
            out,
            digest: checksum.then(|| CRC64.digest()),
            buf: Vec::with_capacity(FLUSH_AT),
            compress,
        }
    }

    fn flush_buf(&mut self) -> io::Result<()> {
        if let Some(d) = &mut self.digest {
            d.update(&self.buf);
        }
        self.out.write_all(&self.buf)?;
        self.buf.clear();
        Ok(())
    }

    fn maybe_flush(&mut self) -> io::Result<()> {
        if self.buf.len() >= FLUSH_AT {
            self.flush_buf()?;
        }
        Ok(())
    }

    pub(crate) fn byte(&mut self, b: u8) {
        self.buf.push(b);
    }

    fn bytes(&mut self, b: &[u8]) {
        self.buf.extend_from_slice(b);
    }

    /// An RDB length: 6-bit, 14-bit, 32-bit or 64-bit big-endian forms.
    pub(crate) fn len(&mut self, len: u64) {
        if len < 1 << 6 {
            self.byte(len as u8);
        } else if len < 1 << 14 {
            self.byte(0x40 | (len >> 8) as u8);
            self.byte(len as u8);
        } else if len <= u64::from(u32::MAX) {
            self.byte(LEN_32BIT);
            self.bytes(&(len as u32).to_be_bytes());
        } else {
            self.byte(LEN_64BIT);
            self.bytes(&len.to_be_bytes());
        }
    }

    /// An integer in the int8/16/32 string encodings, if it fits one.
    fn try_int(&mut self, v: i64) -> bool {
        if let Ok(v) = i8::try_from(v) {
            self.byte(ENC_MARK | ENC_INT8);
            self.bytes(&v.to_le_bytes());
        } else if let Ok(v) = i16::try_from(v) {
            self.byte(ENC_MARK | ENC_INT16);
            self.bytes(&v.to_le_bytes());
        } else if let Ok(v) = i32::try_from(v) {
            self.byte(ENC_MARK | ENC_INT32);
            self.bytes(&v.to_le_bytes());
        } else {
            return false;
        }
        true
    }

    /// An integer string value, as Redis saves an int-encoded string.
    fn int_string(&mut self, v: i64) {
        if !self.try_int(v) {
            let text = v.to_string();
            self.len(text.len() as u64);
            self.bytes(text.as_bytes());
        }
    }

    /// A byte string: integer-encoded, LZF-compressed or as it is, whichever Redis would pick.
    pub(crate) fn string(&mut self, s: &[u8]) -> io::Result<()> {
        if s.len() <= 11 {
            if let Some(v) = canonical_i64(s) {
                if self.try_int(v) {
                    return Ok(());
                }
            }
        }
        if self.compress && s.len() > 20 {
            if let Some(packed) = lzf::compress(s, s.len() - 4) {
                self.byte(ENC_MARK | ENC_LZF);
                self.len(packed.len() as u64);
                self.len(s.len() as u64);
                self.bytes(&packed);
                return self.maybe_flush();
            }
        }
        self.len(s.len() as u64);
        if s.len() >= FLUSH_AT {
            // A large string goes straight out rather than through the buffer.
            self.flush_buf()?;
            if let Some(d) = &mut self.digest {
                d.update(s);
            }
            return self.out.write_all(s);
        }
        self.bytes(s);
        self.maybe_flush()
    }

    /// The value's RDB type byte.
    pub(crate) fn value_type(&mut self, value: &Value) {
        let t = match value {
            Value::Int(_) | Value::Str(_) | Value::Raw(_) => TYPE_STRING,
            Value::List(_) => TYPE_LIST_QUICKLIST_2,
            Value::Set(s) if s.encoding() == "intset" => TYPE_SET_INTSET,
            Value::Set(_) => TYPE_SET,
            Value::Hash(h) if h.encoding() == "listpack" => TYPE_HASH_LISTPACK,
            Value::Hash(_) => TYPE_HASH,
            Value::ZSet(z) if z.encoding() == "listpack" => TYPE_ZSET_LISTPACK,
            Value::ZSet(_) => TYPE_ZSET_2,
        };
        self.byte(t);
    }

    /// The value's encoding, after its type byte (and, in a snapshot, its key).
    pub(crate) fn value_body(&mut self, value: &Value) -> io::Result<()> {
        match value {
            Value::Int(i) => self.int_string(*i),
            Value::Str(s) => self.string(s.as_slice())?,
            Value::Raw(v) => self.string(v)?,
            Value::List(list) => self.list(list)?,
            Value::Set(set) if set.encoding() == "intset" => {
                let members: Vec<i64> = set.iter().filter_map(|m| canonical_i64(&m)).collect();
                self.string(&intset_encode(&members))?;
            }
            Value::Set(set) => {
                self.len(set.len() as u64);
                for member in set.iter() {
                    self.string(&member)?;
                }
            }
            Value::Hash(hash) if hash.encoding() == "listpack" => {
                let mut lp = ListpackBuilder::new();
                for (field, v) in hash.iter() {
                    lp.push(field);
                    lp.push(v);
                }
                self.string(&lp.finish())?;
            }
            Value::Hash(hash) => {
                self.len(hash.len() as u64);
                for (field, v) in hash.iter() {
                    self.string(field)?;
                    self.string(v)?;
                }
            }
            Value::ZSet(zset) if zset.encoding() == "listpack" => {
                let mut lp = ListpackBuilder::new();
                for (member, score) in zset.iter() {
                    lp.push(member);
                    match whole_score(score) {
                        Some(i) => lp.push_int(i),
                        None => lp.push(score_text(score).as_bytes()),
                    }
                }
                self.string(&lp.finish())?;
            }
            Value::ZSet(zset) => {
                self.len(zset.len() as u64);
                // Highest score first, so a loader inserts at the head of its list cheaply.
                let members: Vec<(&[u8], f64)> = zset.iter().collect();
                for (member, score) in members.into_iter().rev() {
                    self.string(member)?;
                    self.bytes(&score.to_le_bytes());
                }
            }
        }
        self.maybe_flush()
    }

    fn list(&mut self, list: &moonkv_keyspace::List) -> io::Result<()> {
        // Count the nodes first (the count precedes them), by the rule the loop below splits by.
        let mut nodes = 0u64;
        let mut open: Option<usize> = None;
        for item in list.iter() {
            if item.len() >= PLAIN_NODE_MIN {
                nodes += u64::from(open.take().is_some()) + 1;
                continue;
            }
            let size = ListpackBuilder::entry_size(item);
            open = match open {
                Some(bytes) if bytes + size <= NODE_BYTES => Some(bytes + size),
                Some(_) => {
                    nodes += 1;
                    Some(EMPTY_LISTPACK + size)
                }
                None => Some(EMPTY_LISTPACK + size),
            };
        }
        nodes += u64::from(open.is_some());
        self.len(nodes);
        let mut lp = ListpackBuilder::new();
        for item in list.iter() {
            if item.len() >= PLAIN_NODE_MIN {
                if !lp.is_empty() {
                    self.packed_node(std::mem::take(&mut lp))?;
                }
                self.len(CONTAINER_PLAIN);
                self.string(item)?;
                continue;
            }
            let size = ListpackBuilder::entry_size(item);
            if !lp.is_empty() && lp.len() + size > NODE_BYTES {
                self.packed_node(std::mem::take(&mut lp))?;
            }
            lp.push(item);
        }
        if !lp.is_empty() {
            self.packed_node(lp)?;
        }
        Ok(())
    }

    fn packed_node(&mut self, lp: ListpackBuilder) -> io::Result<()> {
        self.len(CONTAINER_PACKED);
        self.string(&lp.finish())
    }

    /// Ends the stream: EOF, then the checksum (or zeros). Returns the output.
    pub(crate) fn finish_rdb(mut self) -> io::Result<W> {
        self.byte(OP_EOF);
        self.flush_buf()?;
        let crc = self.digest.take().map_or(0, |d| d.finalize());
        self.out.write_all(&crc.to_le_bytes())?;
        self.out.flush()?;
        Ok(self.out)
    }

    pub(crate) fn into_inner(mut self) -> io::Result<W> {
        self.flush_buf()?;
        Ok(self.out)
    }
}

/// Target size of a list node (Redis's `list-max-listpack-size -2`).
const NODE_BYTES: usize = 8 * 1024;
/// Size of a listpack with no entries (header and terminator).
const EMPTY_LISTPACK: usize = 7;
/// Elements this large get a PLAIN node (Redis's quicklist packed threshold, 1 GiB).
const PLAIN_NODE_MIN: usize = 1 << 30;

/// A score Redis stores as an integer in a listpack (its `double2ll`).
fn whole_score(score: f64) -> Option<i64> {
    let bound = (i64::MAX / 2) as f64;
    if !(-bound..=bound).contains(&score) {
        return None;
    }
    let i = score as i64;
    (i as f64 == score).then_some(i)
}

/// A score's text that reads back to the same double.
fn score_text(score: f64) -> String {
    if score.is_infinite() {
        return if score > 0.0 { "inf" } else { "-inf" }.to_string();
    }
    let plain = score.to_string();
    if plain.len() <= 24 {
        plain
    } else {
        format!("{score:e}")
    }
}

/// Writes an RDB file as a stream: header on creation, then aux fields, function libraries,
/// databases and keys in the caller's order, and the trailer on [`RdbWriter::finish`]. Only
/// one value's encoding is buffered at a time (in 64 KiB blocks), so the file is never held
/// in memory; wrap a file in a `BufWriter` or not, blocks are large either way.
pub struct RdbWriter<W: Write> {
    sink: Sink<W>,
}

impl<W: Write> RdbWriter<W> {
    /// Starts a file: writes the "REDIS0010" header.
    pub fn new(out: W, options: WriteOptions) -> io::Result<Self> {
        let mut sink = Sink::new(out, options.compress, options.checksum);
        sink.bytes(RDB_MAGIC);
        Ok(RdbWriter { sink })
    }

    /// An aux field (redis-ver, redis-bits, ctime, used-mem, aof-base, ...).
    pub fn aux(&mut self, key: &str, value: &[u8]) -> io::Result<()> {
        self.sink.byte(OP_AUX);
        self.sink.string(key.as_bytes())?;
        self.sink.string(value)
    }

    /// A function library's code (opcode FUNCTION2).
    pub fn function(&mut self, code: &[u8]) -> io::Result<()> {
        self.sink.byte(OP_FUNCTION2);
        self.sink.string(code)
    }

    /// Starts database `index`, with the sizing hint (keys, keys with an expiry).
    pub fn select_db(&mut self, index: usize, keys: u64, expires: u64) -> io::Result<()> {
        self.sink.byte(OP_SELECTDB);
        self.sink.len(index as u64);
        self.sink.byte(OP_RESIZEDB);
        self.sink.len(keys);
        self.sink.len(expires);
        self.sink.maybe_flush()
    }

    /// One key of the current database, with its absolute expiry in Unix ms.
    pub fn key(&mut self, key: &[u8], value: &Value, expire_at_ms: Option<i64>) -> io::Result<()> {
        if let Some(at) = expire_at_ms {
            self.sink.byte(OP_EXPIRETIME_MS);
            self.sink.bytes(&at.to_le_bytes());
        }
        self.sink.value_type(value);
        self.sink.string(key)?;
        self.sink.value_body(value)
    }

    /// Writes EOF and the checksum, flushes, and returns the output.
    pub fn finish(self) -> io::Result<W> {
        self.sink.finish_rdb()
    }
}
