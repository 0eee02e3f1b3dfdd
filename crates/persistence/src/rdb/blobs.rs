//! The packed blobs RDB embeds as strings: listpack, ziplist, intset and zipmap. Each decoder
//! validates the whole blob first, the way Redis does with `sanitize-dump-payload yes`
//! (header sizes, every entry inside the blob, back/previous lengths, counts, terminators),
//! and hands back the entries; nothing is trusted for an allocation beyond the blob's size.
//! Encoders exist for the two blobs the writer emits (listpack and intset).

use std::borrow::Cow;

/// One entry of a listpack or ziplist: a string, or an integer stored as one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Elem<'a> {
    Bytes(&'a [u8]),
    Int(i64),
}

impl<'a> Elem<'a> {
    /// The entry as the string Redis would hand out.
    pub fn to_bytes(self) -> Cow<'a, [u8]> {
        match self {
            Elem::Bytes(b) => Cow::Borrowed(b),
            Elem::Int(i) => Cow::Owned(i.to_string().into_bytes()),
        }
    }
}

pub type BlobResult<T> = Result<T, &'static str>;

fn le_u32(b: &[u8], at: usize) -> BlobResult<u32> {
    b.get(at..at + 4)
        .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
        .ok_or("blob header out of range")
}

fn le_u16(b: &[u8], at: usize) -> BlobResult<u16> {
    b.get(at..at + 2)
        .map(|s| u16::from_le_bytes([s[0], s[1]]))
        .ok_or("blob header out of range")
}

/// Sign-extends the low `bits` bits of `v`.
fn sign_extend(v: u64, bits: u32) -> i64 {
    let shift = 64 - bits;
    ((v << shift) as i64) >> shift
}

fn le_int(bytes: &[u8]) -> i64 {
    let mut v = 0u64;
    for (i, b) in bytes.iter().enumerate() {
        v |= u64::from(*b) << (8 * i);
    }
    sign_extend(v, 8 * bytes.len() as u32)
}

/// A canonical integer as Redis's string-to-integer conversions accept it: no sign on zero,
/// no leading zeros or '+', at most 20 characters.
pub fn canonical_i64(s: &[u8]) -> Option<i64> {
    if s.is_empty() || s.len() > 20 {
        return None;
    }
    let v: i64 = std::str::from_utf8(s).ok()?.parse().ok()?;
    (v.to_string().as_bytes() == s).then_some(v)
}

// ---------------------------------------------------------------------------------------
// listpack: <total bytes u32><count u16><entry>...<0xFF>; entry = <encoding+data><backlen>

const LP_HEADER: usize = 6;
const LP_EOF: u8 = 0xFF;
const LP_COUNT_UNKNOWN: u16 = u16::MAX;

/// Bytes the back length of an entry of `len` bytes takes.
fn backlen_size(len: usize) -> usize {
    match len {
        0..=127 => 1,
        128..=16382 => 2,
        16383..=2097150 => 3,
        2097151..=268435454 => 4,
        _ => 5,
    }
}

fn push_backlen(out: &mut Vec<u8>, len: usize) {
    let n = backlen_size(len);
    for i in (0..n).rev() {
        let digit = ((len >> (7 * i)) & 127) as u8;
        // The first byte (read last, going backwards) has no continuation flag.
        out.push(if i == n - 1 { digit } else { digit | 128 });
    }
}

/// Reads the back length ending at `end` (exclusive), going backwards no further than `floor`.
fn read_backlen(blob: &[u8], end: usize, floor: usize) -> Option<usize> {
    let mut value = 0usize;
    let mut shift = 0;
    let mut p = end;
    loop {
        if p <= floor {
            return None;
        }
        p -= 1;
        let b = blob[p];
        value |= usize::from(b & 127) << shift;
        if b & 128 == 0 {
            return Some(value);
        }
        shift += 7;
        if shift > 28 {
            return None;
        }
    }
}

/// Decodes and validates a listpack.
pub fn listpack_entries(blob: &[u8]) -> BlobResult<Vec<Elem<'_>>> {
    const BAD: &str = "Listpack integrity check failed.";
    if blob.len() < LP_HEADER + 1 {
        return Err(BAD);
    }
    if le_u32(blob, 0)? as usize != blob.len() || blob[blob.len() - 1] != LP_EOF {
        return Err(BAD);
    }
    let header_count = le_u16(blob, 4)?;
    let end = blob.len() - 1;
    let mut entries = Vec::new();
    let mut p = LP_HEADER;
    while p < end {
        let b = blob[p];
        let need = |n: usize| -> BlobResult<&[u8]> {
            // The encoding and its data must end before the terminator.
            blob.get(p..p + n).filter(|_| p + n <= end).ok_or(BAD)
        };
        let (elem, size) = if b & 0x80 == 0 {
            (Elem::Int(i64::from(b)), 1)
        } else if b & 0xC0 == 0x80 {
            let len = usize::from(b & 0x3F);
            (Elem::Bytes(&need(1 + len)?[1..]), 1 + len)
        } else if b & 0xE0 == 0xC0 {
            let s = need(2)?;
            let v = (u64::from(b & 0x1F) << 8) | u64::from(s[1]);
            (Elem::Int(sign_extend(v, 13)), 2)
        } else if b & 0xF0 == 0xE0 {
            let len = (usize::from(b & 0x0F) << 8) | usize::from(need(2)?[1]);
            (Elem::Bytes(&need(2 + len)?[2..]), 2 + len)
        } else {
            match b {
                0xF0 => {
                    let len = le_u32(need(5)?, 1)? as usize;
                    let total = len.checked_add(5).ok_or(BAD)?;
                    (Elem::Bytes(&need(total)?[5..]), total)
                }
                0xF1 => (Elem::Int(le_int(&need(3)?[1..])), 3),
                0xF2 => (Elem::Int(le_int(&need(4)?[1..])), 4),
                0xF3 => (Elem::Int(le_int(&need(5)?[1..])), 5),
                0xF4 => (Elem::Int(le_int(&need(9)?[1..])), 9),
                _ => return Err(BAD),
            }
        };
        let back = backlen_size(size);
        let next = p + size + back;
        if next > end {
            return Err(BAD);
        }
        if read_backlen(blob, next, p + size) != Some(size) {
            return Err(BAD);
        }
        entries.push(elem);
        p = next;
    }
    if header_count != LP_COUNT_UNKNOWN && usize::from(header_count) != entries.len() {
        return Err(BAD);
    }
    Ok(entries)
}

/// Builds a listpack entry by entry, choosing encodings as Redis's `lpAppend` does (a
/// string that reads as a canonical integer is stored as an integer).
pub struct ListpackBuilder {
    buf: Vec<u8>,
    count: usize,
}

impl Default for ListpackBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl ListpackBuilder {
    pub fn new() -> Self {
        let mut buf = Vec::with_capacity(64);
        buf.extend_from_slice(&[0; LP_HEADER]);
        ListpackBuilder { buf, count: 0 }
    }

    /// Bytes the finished listpack would take.
    pub fn len(&self) -> usize {
        self.buf.len() + 1
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Bytes `item` would add.
    pub fn entry_size(item: &[u8]) -> usize {
        let body = match canonical_i64(item) {
            Some(v) => int_entry_len(v),
            None => string_header_len(item.len()) + item.len(),
        };
        body + backlen_size(body)
    }

    pub fn push(&mut self, item: &[u8]) {
        match canonical_i64(item) {
            Some(v) => self.push_int(v),
            None => {
                let start = self.buf.len();
                let len = item.len();
                if len < 64 {
                    self.buf.push(0x80 | len as u8);
                } else if len < 4096 {
                    self.buf.push(0xE0 | (len >> 8) as u8);
                    self.buf.push(len as u8);
                } else {
                    self.buf.push(0xF0);
                    self.buf.extend_from_slice(&(len as u32).to_le_bytes());
                }
                self.buf.extend_from_slice(item);
                let size = self.buf.len() - start;
                push_backlen(&mut self.buf, size);
                self.count += 1;
            }
        }
    }

    pub fn push_int(&mut self, v: i64) {
        let start = self.buf.len();
        match v {
            0..=127 => self.buf.push(v as u8),
            -4096..=4095 => {
                let u = (v as u64) & 0x1FFF;
                self.buf.push(0xC0 | (u >> 8) as u8);
                self.buf.push(u as u8);
            }
            -32768..=32767 => {
                self.buf.push(0xF1);
                self.buf.extend_from_slice(&(v as i16).to_le_bytes());
            }
            -8_388_608..=8_388_607 => {
                self.buf.push(0xF2);
                self.buf.extend_from_slice(&(v as i32).to_le_bytes()[..3]);
            }
            -2_147_483_648..=2_147_483_647 => {
                self.buf.push(0xF3);
                self.buf.extend_from_slice(&(v as i32).to_le_bytes());
            }
            _ => {
                self.buf.push(0xF4);
                self.buf.extend_from_slice(&v.to_le_bytes());
            }
        }
        let size = self.buf.len() - start;
        push_backlen(&mut self.buf, size);
        self.count += 1;
    }

    pub fn finish(mut self) -> Vec<u8> {
        self.buf.push(LP_EOF);
        let total = self.buf.len() as u32;
        self.buf[0..4].copy_from_slice(&total.to_le_bytes());
        let count = if self.count < usize::from(LP_COUNT_UNKNOWN) {
            self.count as u16
        } else {
            LP_COUNT_UNKNOWN
        };
        self.buf[4..6].copy_from_slice(&count.to_le_bytes());
        self.buf
    }
}

fn int_entry_len(v: i64) -> usize {
    match v {
        0..=127 => 1,
        -4096..=4095 => 2,
        -32768..=32767 => 3,
        -8_388_608..=8_388_607 => 4,
        -2_147_483_648..=2_147_483_647 => 5,
        _ => 9,
    }
}

fn string_header_len(len: usize) -> usize {
    if len < 64 {
        1
    } else if len < 4096 {
        2
    } else {
        5
    }
}

// ---------------------------------------------------------------------------------------
// ziplist: <total bytes u32><tail offset u32><count u16><entry>...<0xFF>;
// entry = <previous entry size: 1 byte, or 0xFE + u32><encoding><data>

const ZL_HEADER: usize = 10;
const ZL_END: u8 = 0xFF;

/// Decodes and validates a ziplist (the pre-7.0 packed encoding).
pub fn ziplist_entries(blob: &[u8]) -> BlobResult<Vec<Elem<'_>>> {
    const BAD: &str = "Ziplist integrity check failed.";
    if blob.len() < ZL_HEADER + 1 {
        return Err(BAD);
    }
    let end = blob.len() - 1;
    if le_u32(blob, 0)? as usize != blob.len() || blob[end] != ZL_END {
        return Err(BAD);
    }
    let tail = le_u32(blob, 4)? as usize;
    if tail > end {
        return Err(BAD);
    }
    let header_count = le_u16(blob, 8)?;
    let mut entries = Vec::new();
    let mut p = ZL_HEADER;
    let mut prev_size = 0usize;
    let mut last_start = None;
    while p < end {
        let start = p;
        let get = |from: usize, n: usize| -> BlobResult<&[u8]> {
            blob.get(from..from + n)
                .filter(|_| from + n <= end)
                .ok_or(BAD)
        };
        let prevlen = if blob[p] < 254 {
            p += 1;
            usize::from(blob[start])
        } else if blob[p] == 254 {
            let v = le_u32(get(p, 5)?, 1)? as usize;
            p += 5;
            v
        } else {
            return Err(BAD);
        };
        if prevlen != prev_size {
            return Err(BAD);
        }
        let enc = *get(p, 1)?.first().ok_or(BAD)?;
        let (elem, used) = match enc >> 6 {
            0 => {
                let len = usize::from(enc & 0x3F);
                (Elem::Bytes(&get(p, 1 + len)?[1..]), 1 + len)
            }
            1 => {
                let s = get(p, 2)?;
                let len = (usize::from(enc & 0x3F) << 8) | usize::from(s[1]);
                (Elem::Bytes(&get(p, 2 + len)?[2..]), 2 + len)
            }
            2 => {
                // Redis reads the low bits of this form as padding, not length.
                let s = get(p, 5)?;
                let len = u32::from_be_bytes([s[1], s[2], s[3], s[4]]) as usize;
                let total = len.checked_add(5).ok_or(BAD)?;
                (Elem::Bytes(&get(p, total)?[5..]), total)
            }
            _ => match enc {
                0xC0 => (Elem::Int(le_int(&get(p, 3)?[1..])), 3),
                0xD0 => (Elem::Int(le_int(&get(p, 5)?[1..])), 5),
                0xE0 => (Elem::Int(le_int(&get(p, 9)?[1..])), 9),
                0xF0 => (Elem::Int(le_int(&get(p, 4)?[1..])), 4),
                0xFE => (Elem::Int(le_int(&get(p, 2)?[1..])), 2),
                0xF1..=0xFD => (Elem::Int(i64::from(enc & 0x0F) - 1), 1),
                _ => return Err(BAD),
            },
        };
        p += used;
        prev_size = p - start;
        last_start = Some(start);
        entries.push(elem);
    }
    if p != end || last_start.is_some_and(|s| s != tail) {
        return Err(BAD);
    }
    if header_count != u16::MAX && usize::from(header_count) != entries.len() {
        return Err(BAD);
    }
    Ok(entries)
}

// ---------------------------------------------------------------------------------------
// intset: <element width u32: 2, 4 or 8><count u32><elements, ascending, little endian>

/// Decodes and validates an intset: a known width, a size that matches the count, at least
/// one element, strictly ascending.
pub fn intset_members(blob: &[u8]) -> BlobResult<Vec<i64>> {
    const BAD: &str = "Intset integrity check failed.";
    let width = le_u32(blob, 0).map_err(|_| BAD)? as usize;
    let count = le_u32(blob, 4).map_err(|_| BAD)? as usize;
    if !matches!(width, 2 | 4 | 8) || count == 0 {
        return Err(BAD);
    }
    if count.checked_mul(width).and_then(|n| n.checked_add(8)) != Some(blob.len()) {
        return Err(BAD);
    }
    let members: Vec<i64> = blob[8..].chunks_exact(width).map(le_int).collect();
    if members.windows(2).any(|w| w[0] >= w[1]) {
        return Err(BAD);
    }
    Ok(members)
}

/// Encodes ascending members in the narrowest width that holds them all, as Redis's intset
/// grows its width.
pub fn intset_encode(members: &[i64]) -> Vec<u8> {
    let width: usize = if members.iter().all(|v| i16::try_from(*v).is_ok()) {
        2
    } else if members.iter().all(|v| i32::try_from(*v).is_ok()) {
        4
    } else {
        8
    };
    let mut out = Vec::with_capacity(8 + members.len() * width);
    out.extend_from_slice(&(width as u32).to_le_bytes());
    out.extend_from_slice(&(members.len() as u32).to_le_bytes());
    for v in members {
        out.extend_from_slice(&v.to_le_bytes()[..width]);
    }
    out
}

// ---------------------------------------------------------------------------------------
// zipmap (Redis 2.4 hashes): <count u8, 254+ = unknown>(<len><field><len><free><value>
// <free bytes>)...<0xFF>; len = one byte below 254, else 254 and a u32

/// Decodes and validates a zipmap into (field, value) pairs.
pub fn zipmap_pairs(blob: &[u8]) -> BlobResult<Vec<(&[u8], &[u8])>> {
    const BAD: &str = "Zipmap integrity check failed.";
    if blob.len() < 2 || blob[blob.len() - 1] != 0xFF {
        return Err(BAD);
    }
    let end = blob.len() - 1;
    let read_len = |p: usize| -> BlobResult<(usize, usize)> {
        match *blob.get(p).ok_or(BAD)? {
            b if b < 254 => Ok((usize::from(b), 1)),
            _ => {
                let v = le_u32(blob, p + 1).map_err(|_| BAD)? as usize;
                if v < 254 || p + 5 > end {
                    return Err(BAD);
                }
                Ok((v, 5))
            }
        }
    };
    let take = |from: usize, n: usize| -> BlobResult<&[u8]> {
        let to = from.checked_add(n).ok_or(BAD)?;
        if to > end {
            return Err(BAD);
        }
        Ok(&blob[from..to])
    };
    let mut pairs = Vec::new();
    let mut p = 1;
    // Like Redis, the first end marker where a field would start ends the map.
    while p < end && blob[p] != 0xFF {
        let (flen, s) = read_len(p)?;
        let field = take(p + s, flen)?;
        p += s + flen;
        let (vlen, s) = read_len(p)?;
        let free = usize::from(*take(p + s, 1)?.first().ok_or(BAD)?);
        let value = take(p + s + 1, vlen)?;
        take(p + s + 1 + vlen, free)?;
        p += s + 1 + vlen + free;
        pairs.push((field, value));
    }
    if pairs.is_empty() {
        return Err(BAD);
    }
    if blob[0] < 254 && usize::from(blob[0]) != pairs.len() {
        return Err(BAD);
    }
    Ok(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listpack_round_trip_every_encoding() {
        let items: Vec<Vec<u8>> = [
            "0",
            "127",
            "128",
            "-1",
            "4095",
            "-4096",
            "4096",
            "32767",
            "-32768",
            "40000",
            "8388607",
            "-8388608",
            "9000000",
            "2147483647",
            "-2147483648",
            "3000000000",
            "9223372036854775807",
            "-9223372036854775808",
            "007",
            "-0",
            "",
            "x",
        ]
        .iter()
        .map(|s| s.as_bytes().to_vec())
        .chain([
            vec![b'a'; 63],
            vec![b'b'; 64],
            vec![b'c'; 4095],
            vec![b'd'; 4096],
        ])
        .chain([vec![b'e'; 20_000]])
        .collect();
        let mut lp = ListpackBuilder::new();
        let mut expected_len = 7;
        for item in &items {
            expected_len += ListpackBuilder::entry_size(item);
            lp.push(item);
        }
        assert_eq!(lp.len(), expected_len);
        let blob = lp.finish();
        assert_eq!(blob.len(), expected_len);
        let back: Vec<Vec<u8>> = listpack_entries(&blob)
            .unwrap()
            .into_iter()
            .map(|e| e.to_bytes().into_owned())
            .collect();
        assert_eq!(back, items);
    }

    #[test]
    fn listpack_damage_is_an_error() {
        let mut lp = ListpackBuilder::new();
        for item in [&b"hello"[..], b"12", b"-5000", &[b'z'; 300]] {
            lp.push(item);
        }
        let blob = lp.finish();
        for i in 0..blob.len() {
            for flip in [1u8, 0x80, 0xFF] {
                let mut bad = blob.clone();
                bad[i] ^= flip;
                // Either an error, or (a flipped string byte) the same number of entries.
                if let Ok(entries) = listpack_entries(&bad) {
                    assert_eq!(entries.len(), 4, "byte {i}");
                }
            }
        }
        for cut in 0..blob.len() {
            assert!(listpack_entries(&blob[..cut]).is_err());
        }
    }

    #[test]
    fn intsets() {
        for members in [vec![-3i64, 7, 30000], vec![-70000, 5], vec![1, i64::MAX]] {
            let blob = intset_encode(&members);
            assert_eq!(intset_members(&blob).unwrap(), members);
        }
        assert_eq!(intset_encode(&[1, 2])[0], 2);
        assert_eq!(intset_encode(&[1, 1 << 20])[0], 4);
        let unordered = [2u8, 0, 0, 0, 2, 0, 0, 0, 5, 0, 3, 0];
        assert!(intset_members(&unordered).is_err());
        let empty = [2u8, 0, 0, 0, 0, 0, 0, 0];
        assert!(intset_members(&empty).is_err());
        let short = [2u8, 0, 0, 0, 3, 0, 0, 0, 5, 0, 6, 0];
        assert!(intset_members(&short).is_err());
        let huge_count = [8u8, 0, 0, 0, 255, 255, 255, 255];
        assert!(intset_members(&huge_count).is_err());
    }

    #[test]
    fn canonical_integers() {
        assert_eq!(canonical_i64(b"-12"), Some(-12));
        assert_eq!(canonical_i64(b"0"), Some(0));
        for s in ["-0", "+1", "01", " 1", "", "1.0", "99999999999999999999"] {
            assert_eq!(canonical_i64(s.as_bytes()), None, "{s}");
        }
    }
}
