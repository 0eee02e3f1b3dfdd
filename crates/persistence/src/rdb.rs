//! RDB snapshot writer (format version 10, as Redis 7.0 writes it).
//!
//! Strings use the plain string type, lists the generic list type (which Redis 7 still loads
//! and converts). The trailing checksum is written as zero, which RDB readers treat as
//! "checksum disabled".

use moonkv_keyspace::{Db, StrView, Value};

const RDB_VERSION: &[u8] = b"REDIS0010";
const OP_AUX: u8 = 0xFA;
const OP_RESIZEDB: u8 = 0xFB;
const OP_EXPIRETIME_MS: u8 = 0xFC;
const OP_SELECTDB: u8 = 0xFE;
const OP_EOF: u8 = 0xFF;
const TYPE_STRING: u8 = 0;
const TYPE_LIST: u8 = 1;
const TYPE_SET: u8 = 2;
const TYPE_HASH: u8 = 4;
const TYPE_ZSET_2: u8 = 5;

/// Appends an RDB length: 6-bit, 14-bit, 32-bit or 64-bit big-endian forms.
fn write_len(out: &mut Vec<u8>, len: u64) {
    if len < 1 << 6 {
        out.push(len as u8);
    } else if len < 1 << 14 {
        out.push(0x40 | (len >> 8) as u8);
        out.push(len as u8);
    } else if len <= u32::MAX as u64 {
        out.push(0x80);
        out.extend_from_slice(&(len as u32).to_be_bytes());
    } else {
        out.push(0x81);
        out.extend_from_slice(&len.to_be_bytes());
    }
}

fn write_string(out: &mut Vec<u8>, s: &[u8]) {
    write_len(out, s.len() as u64);
    out.extend_from_slice(s);
}

fn write_aux(out: &mut Vec<u8>, key: &str, value: &str) {
    out.push(OP_AUX);
    write_string(out, key.as_bytes());
    write_string(out, value.as_bytes());
}

/// Appends a value's RDB type byte and encoding.
pub fn write_value(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::List(list) => {
            out.push(TYPE_LIST);
            write_len(out, list.len() as u64);
            for item in list.iter() {
                write_string(out, item);
            }
        }
        Value::Set(set) => {
            out.push(TYPE_SET);
            write_len(out, set.len() as u64);
            for member in set.iter() {
                write_string(out, &member);
            }
        }
        Value::Hash(hash) => {
            out.push(TYPE_HASH);
            write_len(out, hash.len() as u64);
            for (field, v) in hash.iter() {
                write_string(out, field);
                write_string(out, v);
            }
        }
        Value::ZSet(zset) => {
            out.push(TYPE_ZSET_2);
            write_len(out, zset.len() as u64);
            // Highest score first, so a loader inserts at the head of its list cheaply.
            let members: Vec<(&[u8], f64)> = zset.iter().collect();
            for (member, score) in members.into_iter().rev() {
                write_string(out, member);
                out.extend_from_slice(&score.to_le_bytes());
            }
        }
        other => {
            out.push(TYPE_STRING);
            match other.as_str() {
                Some(StrView::Bytes(b)) => write_string(out, b),
                Some(StrView::Int(i)) => write_string(out, i.to_string().as_bytes()),
                None => write_string(out, b""),
            }
        }
    }
}

/// Serializes every database into one RDB payload.
pub fn write_snapshot<'a>(
    dbs: &[Db],
    functions: impl IntoIterator<Item = &'a [u8]>,
    redis_version: &str,
    now_ms: i64,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    out.extend_from_slice(RDB_VERSION);
    write_aux(&mut out, "redis-ver", redis_version);
    write_aux(&mut out, "redis-bits", "64");
    write_aux(&mut out, "ctime", &(now_ms / 1000).to_string());
    // Function libraries come before the data, each as its code, as Redis 7 writes them.
    for code in functions {
        out.push(OP_FUNCTION2);
        write_string(&mut out, code);
    }
    for (index, db) in dbs.iter().enumerate() {
        if db.is_empty() {
            continue;
        }
        out.push(OP_SELECTDB);
        write_len(&mut out, index as u64);
        out.push(OP_RESIZEDB);
        write_len(&mut out, db.len() as u64);
        write_len(&mut out, db.expires_len() as u64);
        for (key, value) in db.iter() {
            let expire = db.expire_time(key);
            if expire.is_some_and(|at| at <= now_ms) {
                continue;
            }
            if let Some(at) = expire {
                out.push(OP_EXPIRETIME_MS);
                out.extend_from_slice(&(at as u64).to_le_bytes());
            }
            // The key sits between the type byte and the value's encoding.
            let mut encoded = Vec::new();
            write_value(&mut encoded, value);
            out.push(encoded[0]);
            write_string(&mut out, key);
            out.extend_from_slice(&encoded[1..]);
        }
    }
    out.push(OP_EOF);
    out.extend_from_slice(&[0u8; 8]);
    out
}

/// The DUMP format: the value's RDB encoding, the RDB version (2 bytes, little endian) and a
/// CRC-64 of both (8 bytes, little endian).
pub fn dump_value(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    write_value(&mut out, value);
    out.extend_from_slice(&DUMP_RDB_VERSION.to_le_bytes());
    let crc = CRC64.checksum(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// RDB format version written in DUMP payloads (Redis 7.0 writes 10).
const DUMP_RDB_VERSION: u16 = 10;
const CRC64: crc::Crc<u64> = crc::Crc::<u64>::new(&crc::CRC_64_REDIS);

/// Why a DUMP payload could not be restored.
#[derive(Debug, PartialEq, Eq)]
pub enum RestoreError {
    /// Wrong version or checksum (`ERR DUMP payload version or checksum are wrong`).
    VersionOrChecksum,
    /// The payload is well-formed but not understood (`ERR Bad data format`).
    BadFormat,
}

/// Decodes a DUMP payload produced by [`dump_value`] (or by Redis, for the types moonkv has).
pub fn restore_value(payload: &[u8], limits: &LoadLimits) -> Result<Value, RestoreError> {
    if payload.len() < 10 {
        return Err(RestoreError::VersionOrChecksum);
    }
    let (body, footer) = payload.split_at(payload.len() - 10);
    let version = u16::from_le_bytes([footer[0], footer[1]]);
    let crc = u64::from_le_bytes(
        footer[2..10]
            .try_into()
            .map_err(|_| RestoreError::VersionOrChecksum)?,
    );
    if version > DUMP_RDB_VERSION || CRC64.checksum(&payload[..payload.len() - 8]) != crc {
        return Err(RestoreError::VersionOrChecksum);
    }
    let mut reader = Reader {
        data: body,
        pos: 0,
        limits,
    };
    let value = reader.value().ok_or(RestoreError::BadFormat)?;
    if reader.pos != body.len() {
        return Err(RestoreError::BadFormat);
    }
    Ok(value)
}

/// RDB opcode that precedes a function library's code.
const OP_FUNCTION2: u8 = 0xF5;

/// FUNCTION DUMP's payload: each library's code after the function opcode, then the DUMP
/// footer (RDB version and CRC-64), as Redis writes it.
pub fn dump_functions<'a>(libraries: impl IntoIterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut out = Vec::new();
    for code in libraries {
        out.push(OP_FUNCTION2);
        write_string(&mut out, code);
    }
    out.extend_from_slice(&DUMP_RDB_VERSION.to_le_bytes());
    let crc = CRC64.checksum(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// Why a FUNCTION RESTORE payload was refused, with Redis's texts.
#[derive(Debug, PartialEq, Eq)]
pub enum FunctionsRestoreError {
    VersionOrChecksum,
    NotAFunction,
    Unreadable,
}

/// Reads the library codes out of a [`dump_functions`] payload.
pub fn restore_functions(payload: &[u8]) -> Result<Vec<Vec<u8>>, FunctionsRestoreError> {
    if payload.len() < 10 {
        return Err(FunctionsRestoreError::VersionOrChecksum);
    }
    let (body, footer) = payload.split_at(payload.len() - 10);
    let version = u16::from_le_bytes([footer[0], footer[1]]);
    let crc = u64::from_le_bytes(
        footer[2..10]
            .try_into()
            .map_err(|_| FunctionsRestoreError::VersionOrChecksum)?,
    );
    if version > DUMP_RDB_VERSION || CRC64.checksum(&payload[..payload.len() - 8]) != crc {
        return Err(FunctionsRestoreError::VersionOrChecksum);
    }
    let limits = LoadLimits::default();
    let mut reader = Reader {
        data: body,
        pos: 0,
        limits: &limits,
    };
    let mut codes = Vec::new();
    while reader.pos < body.len() {
        match reader.byte() {
            Some(OP_FUNCTION2) => {
                codes.push(reader.string().ok_or(FunctionsRestoreError::Unreadable)?)
            }
            Some(_) => return Err(FunctionsRestoreError::NotAFunction),
            None => return Err(FunctionsRestoreError::Unreadable),
        }
    }
    Ok(codes)
}

/// One key read back from a snapshot.
pub struct LoadedKey {
    pub db: usize,
    pub key: Vec<u8>,
    pub value: Value,
    /// Absolute expiry time in Unix ms.
    pub expire_at: Option<i64>,
}

/// What a snapshot holds: keys, and the code of each function library.
#[derive(Default)]
pub struct Snapshot {
    pub keys: Vec<LoadedKey>,
    pub functions: Vec<Vec<u8>>,
}

/// Reads an RDB snapshot written by [`write_snapshot`] (the value types moonkv has).
pub fn read_snapshot(data: &[u8], limits: &LoadLimits) -> Result<Snapshot, RestoreError> {
    if !data.starts_with(b"REDIS") || data.len() < 9 {
        return Err(RestoreError::BadFormat);
    }
    let mut r = Reader {
        data,
        pos: 9,
        limits,
    };
    let mut snapshot = Snapshot::default();
    let mut db = 0usize;
    let mut expire_at = None;
    loop {
        let op = r.byte().ok_or(RestoreError::BadFormat)?;
        match op {
            OP_EOF => return Ok(snapshot),
            OP_FUNCTION2 => snapshot
                .functions
                .push(r.string().ok_or(RestoreError::BadFormat)?),
            OP_AUX => {
                r.string().ok_or(RestoreError::BadFormat)?;
                r.string().ok_or(RestoreError::BadFormat)?;
            }
            OP_SELECTDB => {
                db = r
                    .len()
                    .and_then(Result::ok)
                    .ok_or(RestoreError::BadFormat)? as usize
            }
            OP_RESIZEDB => {
                r.len()
                    .and_then(Result::ok)
                    .ok_or(RestoreError::BadFormat)?;
                r.len()
                    .and_then(Result::ok)
                    .ok_or(RestoreError::BadFormat)?;
            }
            OP_EXPIRETIME_MS => {
                let bytes = r.take(8).ok_or(RestoreError::BadFormat)?;
                expire_at = Some(u64::from_le_bytes(
                    bytes.try_into().map_err(|_| RestoreError::BadFormat)?,
                ) as i64);
            }
            type_byte => {
                // Key first, then the value: hand the value reader its type byte back.
                let key = r.string().ok_or(RestoreError::BadFormat)?;
                let value = r.value_of_type(type_byte).ok_or(RestoreError::BadFormat)?;
                snapshot.keys.push(LoadedKey {
                    db,
                    key,
                    value,
                    expire_at: expire_at.take(),
                });
            }
        }
    }
}

/// The server's compact-encoding thresholds, applied to loaded collections as to new ones
/// (a snapshot taken under other settings loads in the encodings the current ones call for).
#[derive(Clone, Copy, Debug)]
pub struct LoadLimits {
    pub set_max_intset_entries: usize,
    pub hash: moonkv_keyspace::HashLimits,
    pub zset: moonkv_keyspace::ZSetLimits,
}

impl Default for LoadLimits {
    /// Redis's defaults.
    fn default() -> Self {
        LoadLimits {
            set_max_intset_entries: 512,
            hash: moonkv_keyspace::HashLimits {
                max_entries: 128,
                max_value: 64,
            },
            zset: moonkv_keyspace::ZSetLimits {
                max_entries: 128,
                max_value: 64,
            },
        }
    }
}

struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
    limits: &'a LoadLimits,
}

impl Reader<'_> {
    fn byte(&mut self) -> Option<u8> {
        let b = *self.data.get(self.pos)?;
        self.pos += 1;
        Some(b)
    }

    fn take(&mut self, n: usize) -> Option<&[u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.data.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }

    /// A length, or for the special string encodings, Err(encoding id).
    fn len(&mut self) -> Option<Result<u64, u8>> {
        let first = self.byte()?;
        Some(match first >> 6 {
            0 => Ok((first & 0x3f) as u64),
            1 => Ok((((first & 0x3f) as u64) << 8) | self.byte()? as u64),
            2 => match first {
                0x80 => Ok(u32::from_be_bytes(self.take(4)?.try_into().ok()?) as u64),
                0x81 => Ok(u64::from_be_bytes(self.take(8)?.try_into().ok()?)),
                _ => return None,
            },
            _ => Err(first & 0x3f),
        })
    }

    fn count(&mut self) -> Option<usize> {
        let n = self.len()?.ok()?;
        // A count can never exceed the bytes left: rejects absurd lengths before allocating.
        (n as usize <= self.data.len() - self.pos).then_some(n as usize)
    }

    fn string(&mut self) -> Option<Vec<u8>> {
        match self.len()? {
            Ok(n) => self.take(usize::try_from(n).ok()?).map(<[u8]>::to_vec),
            Err(0) => Some((self.byte()? as i8).to_string().into_bytes()),
            Err(1) => Some(
                i16::from_le_bytes(self.take(2)?.try_into().ok()?)
                    .to_string()
                    .into_bytes(),
            ),
            Err(2) => Some(
                i32::from_le_bytes(self.take(4)?.try_into().ok()?)
                    .to_string()
                    .into_bytes(),
            ),
            Err(_) => None,
        }
    }

    fn value(&mut self) -> Option<Value> {
        let type_byte = self.byte()?;
        self.value_of_type(type_byte)
    }

    fn value_of_type(&mut self, type_byte: u8) -> Option<Value> {
        match type_byte {
            TYPE_STRING => Some(Value::string(&self.string()?)),
            TYPE_LIST => {
                let n = self.count()?;
                let mut list = moonkv_keyspace::List::new();
                for _ in 0..n {
                    list.push(moonkv_keyspace::End::Tail, &self.string()?);
                }
                Some(Value::List(Box::new(list)))
            }
            TYPE_SET => {
                let n = self.count()?;
                let mut set = moonkv_keyspace::Set::new();
                for _ in 0..n {
                    set.insert(&self.string()?, self.limits.set_max_intset_entries);
                }
                Some(Value::Set(Box::new(set)))
            }
            TYPE_HASH => {
                let n = self.count()?;
                let mut hash = moonkv_keyspace::Hash::new();
                let limits = self.limits.hash;
                for _ in 0..n {
                    let field = self.string()?;
                    let value = self.string()?;
                    hash.set(&field, &value, limits);
                }
                Some(Value::Hash(Box::new(hash)))
            }
            TYPE_ZSET_2 => {
                let n = self.count()?;
                let mut zset = moonkv_keyspace::SortedSet::new();
                let limits = self.limits.zset;
                for _ in 0..n {
                    let member = self.string()?;
                    let score = f64::from_le_bytes(self.take(8)?.try_into().ok()?);
                    if score.is_nan() {
                        return None;
                    }
                    zset.insert(&member, score, limits);
                }
                Some(Value::ZSet(Box::new(zset)))
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths() {
        let mut v = Vec::new();
        write_len(&mut v, 10);
        write_len(&mut v, 300);
        write_len(&mut v, 70_000);
        assert_eq!(v, vec![10, 0x41, 0x2c, 0x80, 0, 1, 0x11, 0x70]);
    }

    #[test]
    fn dump_restore_round_trip() {
        let mut list = moonkv_keyspace::List::new();
        list.push(moonkv_keyspace::End::Tail, b"a");
        list.push(moonkv_keyspace::End::Tail, &[0u8; 300]);
        for value in [
            Value::string(b"hello"),
            Value::string(b"12345"),
            Value::List(Box::new(list)),
        ] {
            let payload = dump_value(&value);
            let back = restore_value(&payload, &LoadLimits::default()).unwrap();
            assert_eq!(dump_value(&back), payload);
        }
        let mut bad = dump_value(&Value::string(b"x"));
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert_eq!(
            restore_value(&bad, &LoadLimits::default()).unwrap_err(),
            RestoreError::VersionOrChecksum
        );
        assert_eq!(
            restore_value(b"", &LoadLimits::default()).unwrap_err(),
            RestoreError::VersionOrChecksum
        );
    }

    #[test]
    fn snapshot_round_trip() {
        let mut db0 = Db::new();
        db0.set(b"k", Value::string(b"v"), false);
        db0.set_expire(b"k", 5_000, 0);
        let mut db1 = Db::new();
        db1.set(b"n", Value::string(b"42"), false);
        let libraries: [&[u8]; 1] =
            [b"#!lua name=lib\nredis.register_function('f', function() end)"];
        let rdb = write_snapshot(&[db0, db1], libraries, "7.0.15", 1_000);
        let snapshot = read_snapshot(&rdb, &LoadLimits::default()).unwrap();
        assert_eq!(snapshot.functions, [libraries[0].to_vec()]);
        let keys = snapshot.keys;
        assert_eq!(keys.len(), 2);
        assert_eq!(
            (keys[0].db, keys[0].key.as_slice(), keys[0].expire_at),
            (0, &b"k"[..], Some(5_000))
        );
        assert_eq!((keys[1].db, keys[1].value.encoding()), (1, "int"));
    }

    #[test]
    fn snapshot_layout() {
        let mut db = Db::new();
        db.set(b"k", Value::string(b"v"), false);
        let rdb = write_snapshot(&[db], [], "7.0.15", 0);
        assert!(rdb.starts_with(b"REDIS0010"));
        assert!(rdb.windows(4).any(|w| w == [TYPE_STRING, 1, b'k', 1]));
        assert_eq!(&rdb[rdb.len() - 9..], &[OP_EOF, 0, 0, 0, 0, 0, 0, 0, 0]);
    }
}
