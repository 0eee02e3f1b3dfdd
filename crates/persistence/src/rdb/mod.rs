//! RDB, Redis's snapshot format, version 10 as Redis 7.0 writes it.
//!
//! Writing ([`RdbWriter`], [`write_snapshot`], [`dump_value`]) uses the encodings Redis 7.0
//! picks for the same data (see `write.rs`), with LZF compression and the CRC-64 trailer as
//! options. Reading ([`RdbReader`], [`read_snapshot`], [`restore_value`]) takes what Redis
//! 7.0.15 loads, from files of versions 1 to 10: every length and string encoding (LZF
//! included), the opcodes AUX, SELECTDB, RESIZEDB, EXPIRETIME (s and ms), IDLE, FREQ,
//! FUNCTION and FUNCTION2, and the value types string, list, set, zset (text and binary
//! scores), hash, zipmap hash, ziplist list/hash/zset, intset, quicklist (ziplist nodes, and
//! listpack or plain nodes) and listpack hash/zset. Streams and module values have no
//! counterpart in moonkv and give [`LoadError::UnsupportedType`]; module aux data gives
//! [`LoadError::ModuleAux`]. Embedded blobs are validated in full (as Redis does with
//! `sanitize-dump-payload yes`), so malformed input is an error, never a panic.
//! Loaded collections get the encodings the current limits call for ([`LoadLimits`]).

mod blobs;
mod lzf;
mod read;
mod write;

#[cfg(test)]
mod tests;

pub use read::{Checksum, Entry, LoadError, RdbReader};
pub use write::{RdbWriter, WriteOptions};

use moonkv_keyspace::{Db, Value};
use std::io::Read;

/// Highest RDB format version read, and the one written.
const RDB_VERSION: u32 = 10;
const RDB_MAGIC: &[u8] = b"REDIS0010";

const OP_FUNCTION2: u8 = 0xF5;
/// Function libraries as Redis 7.0's release candidates wrote them.
const OP_FUNCTION: u8 = 0xF6;
const OP_MODULE_AUX: u8 = 0xF7;
const OP_IDLE: u8 = 0xF8;
const OP_FREQ: u8 = 0xF9;
const OP_AUX: u8 = 0xFA;
const OP_RESIZEDB: u8 = 0xFB;
const OP_EXPIRETIME_MS: u8 = 0xFC;
const OP_EXPIRETIME: u8 = 0xFD;
const OP_SELECTDB: u8 = 0xFE;
const OP_EOF: u8 = 0xFF;

const TYPE_STRING: u8 = 0;
const TYPE_LIST: u8 = 1;
const TYPE_SET: u8 = 2;
const TYPE_ZSET: u8 = 3;
const TYPE_HASH: u8 = 4;
const TYPE_ZSET_2: u8 = 5;
const TYPE_MODULE: u8 = 6;
const TYPE_MODULE_2: u8 = 7;
const TYPE_HASH_ZIPMAP: u8 = 9;
const TYPE_LIST_ZIPLIST: u8 = 10;
const TYPE_SET_INTSET: u8 = 11;
const TYPE_ZSET_ZIPLIST: u8 = 12;
const TYPE_HASH_ZIPLIST: u8 = 13;
const TYPE_LIST_QUICKLIST: u8 = 14;
const TYPE_STREAM_LISTPACKS: u8 = 15;
const TYPE_HASH_LISTPACK: u8 = 16;
const TYPE_ZSET_LISTPACK: u8 = 17;
const TYPE_LIST_QUICKLIST_2: u8 = 18;
const TYPE_STREAM_LISTPACKS_2: u8 = 19;

/// Quicklist node containers (RDB_TYPE_LIST_QUICKLIST_2).
const CONTAINER_PLAIN: u64 = 1;
const CONTAINER_PACKED: u64 = 2;

/// Length prefixes of the 32- and 64-bit forms.
const LEN_32BIT: u8 = 0x80;
const LEN_64BIT: u8 = 0x81;
/// A length byte with these two top bits announces a special string encoding.
const ENC_MARK: u8 = 0xC0;
const ENC_INT8: u8 = 0;
const ENC_INT16: u8 = 1;
const ENC_INT32: u8 = 2;
const ENC_LZF: u8 = 3;

/// Table-driven 16 bytes at a time: the checksum runs over every byte of a snapshot.
static CRC64: crc::Crc<u64, crc::Table<16>> =
    crc::Crc::<u64, crc::Table<16>>::new(&crc::CRC_64_REDIS);

/// Serializes every database into one RDB payload (replication's full sync, DEBUG RELOAD),
/// compressed and checksummed as Redis does by default. Keys already expired at `now_ms` are
/// left out.
pub fn write_snapshot<'a>(
    dbs: &[Db],
    functions: impl IntoIterator<Item = &'a [u8]>,
    redis_version: &str,
    now_ms: i64,
) -> Vec<u8> {
    let mut w = RdbWriter::new(Vec::with_capacity(128), WriteOptions::default())
        .expect("writing to a Vec cannot fail");
    let write = || -> std::io::Result<()> {
        w.aux("redis-ver", redis_version.as_bytes())?;
        w.aux("redis-bits", b"64")?;
        w.aux("ctime", (now_ms / 1000).to_string().as_bytes())?;
        // Function libraries come before the data, as Redis 7 writes them.
        for code in functions {
            w.function(code)?;
        }
        for (index, db) in dbs.iter().enumerate() {
            if db.is_empty() {
                continue;
            }
            w.select_db(index, db.len() as u64, db.expires_len() as u64)?;
            for (key, value) in db.iter() {
                let expire = db.expire_time(key);
                if expire.is_some_and(|at| at <= now_ms) {
                    continue;
                }
                w.key(key, value, expire)?;
            }
        }
        Ok(())
    };
    write().expect("writing to a Vec cannot fail");
    w.finish().expect("writing to a Vec cannot fail")
}

/// The DUMP format: the value's RDB encoding, the RDB version (2 bytes, little endian) and a
/// CRC-64 of both (8 bytes, little endian). Strings are compressed as in a snapshot.
pub fn dump_value(value: &Value) -> Vec<u8> {
    let mut sink = write::Sink::new(Vec::new(), true, false);
    sink.value_type(value);
    sink.value_body(value)
        .expect("writing to a Vec cannot fail");
    let out = sink.into_inner().expect("writing to a Vec cannot fail");
    with_dump_footer(out)
}

fn with_dump_footer(mut out: Vec<u8>) -> Vec<u8> {
    out.extend_from_slice(&(RDB_VERSION as u16).to_le_bytes());
    let crc = CRC64.checksum(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// Checks a DUMP payload's footer and returns its body.
fn dump_body(payload: &[u8], verify_checksum: bool) -> Option<&[u8]> {
    if payload.len() < 10 {
        return None;
    }
    let (rest, crc) = payload.split_at(payload.len() - 8);
    let (body, version) = rest.split_at(rest.len() - 2);
    let version = u16::from_le_bytes([version[0], version[1]]);
    let crc = u64::from_le_bytes(crc.try_into().ok()?);
    (u32::from(version) <= RDB_VERSION && (!verify_checksum || CRC64.checksum(rest) == crc))
        .then_some(body)
}

/// Why a DUMP payload could not be restored.
#[derive(Debug, PartialEq, Eq)]
pub enum RestoreError {
    /// Wrong version or checksum (`ERR DUMP payload version or checksum are wrong`).
    VersionOrChecksum,
    /// The payload is malformed, empty, or of a type moonkv lacks (`ERR Bad data format`),
    /// with the reason when Redis logs one (its integrity check failures).
    BadFormat(Option<String>),
}

/// Decodes a DUMP payload, from [`dump_value`] or from Redis (any type moonkv has).
/// `verify_checksum` false is Redis's DEBUG SET-SKIP-CHECKSUM-VALIDATION 1.
pub fn restore_value(
    payload: &[u8],
    limits: &LoadLimits,
    verify_checksum: bool,
) -> Result<Value, RestoreError> {
    let body = dump_body(payload, verify_checksum).ok_or(RestoreError::VersionOrChecksum)?;
    let mut input = read::Input::new(body);
    let type_byte = input.byte().map_err(|_| RestoreError::BadFormat(None))?;
    match input.value(type_byte, limits) {
        Ok(Some(value)) => Ok(value),
        Ok(None) => Err(RestoreError::BadFormat(None)),
        Err(LoadError::Corrupt(why)) => Err(RestoreError::BadFormat(Some(why))),
        Err(_) => Err(RestoreError::BadFormat(None)),
    }
}

/// FUNCTION DUMP's payload: each library's code after the function opcode, then the DUMP
/// footer (RDB version and CRC-64), as Redis writes it.
pub fn dump_functions<'a>(libraries: impl IntoIterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut sink = write::Sink::new(Vec::new(), true, false);
    let w = || -> std::io::Result<()> {
        for code in libraries {
            sink.byte(OP_FUNCTION2);
            sink.string(code)?;
        }
        Ok(())
    };
    w().expect("writing to a Vec cannot fail");
    with_dump_footer(sink.into_inner().expect("writing to a Vec cannot fail"))
}

/// Why a FUNCTION RESTORE payload was refused, with Redis's texts.
#[derive(Debug, PartialEq, Eq)]
pub enum FunctionsRestoreError {
    VersionOrChecksum,
    NotAFunction,
    Unreadable,
}

/// Reads the library codes out of a [`dump_functions`] payload (or Redis's).
pub fn restore_functions(payload: &[u8]) -> Result<Vec<Vec<u8>>, FunctionsRestoreError> {
    let body = dump_body(payload, true).ok_or(FunctionsRestoreError::VersionOrChecksum)?;
    let mut input = read::Input::new(body);
    let mut codes = Vec::new();
    // Each step consumes at least the opcode byte.
    while input.remaining() > 0 {
        match input.byte() {
            Ok(op @ (OP_FUNCTION | OP_FUNCTION2)) => codes.push(
                input
                    .function(op)
                    .map_err(|_| FunctionsRestoreError::Unreadable)?,
            ),
            Ok(_) => return Err(FunctionsRestoreError::NotAFunction),
            Err(_) => return Err(FunctionsRestoreError::Unreadable),
        }
    }
    Ok(codes)
}

/// One key read back from a snapshot.
#[derive(Debug)]
pub struct LoadedKey {
    pub db: usize,
    pub key: Vec<u8>,
    pub value: Value,
    /// Absolute expiry time in Unix ms (one given in seconds is converted). Keys already
    /// expired are returned too: whether to drop them is the caller's call (Redis drops them
    /// when loading as a master).
    pub expire_at: Option<i64>,
    /// LRU idle time in seconds (opcode IDLE, written under an LRU maxmemory-policy).
    pub lru_idle: Option<u64>,
    /// LFU frequency counter (opcode FREQ, written under an LFU maxmemory-policy).
    pub lfu_freq: Option<u8>,
}

/// What a snapshot holds: aux fields, function libraries' code and keys, in file order.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub version: u32,
    pub aux: Vec<(Vec<u8>, Vec<u8>)>,
    pub functions: Vec<Vec<u8>>,
    pub keys: Vec<LoadedKey>,
    pub checksum: Checksum,
}

/// Reads a whole RDB snapshot held in memory.
pub fn read_snapshot(data: &[u8], limits: &LoadLimits) -> Result<Snapshot, LoadError> {
    read_snapshot_from(data, limits)
}

/// Reads a whole RDB snapshot from a stream (wrap a file in a `BufReader`).
pub fn read_snapshot_from(input: impl Read, limits: &LoadLimits) -> Result<Snapshot, LoadError> {
    let mut reader = RdbReader::new(input, *limits)?;
    let mut snapshot = Snapshot {
        version: reader.version(),
        ..Snapshot::default()
    };
    while let Some(entry) = reader.next_entry()? {
        match entry {
            Entry::Aux { key, value } => snapshot.aux.push((key, value)),
            Entry::Function(code) => snapshot.functions.push(code),
            Entry::Key(key) => snapshot.keys.push(key),
            Entry::SelectDb(_) | Entry::ResizeDb { .. } | Entry::EmptyKey { .. } => {}
        }
    }
    snapshot.checksum = reader.checksum().unwrap_or_default();
    Ok(snapshot)
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
    /// Redis 7.0's defaults (hash-max-listpack-entries is 512, zset's 128).
    fn default() -> Self {
        LoadLimits {
            set_max_intset_entries: 512,
            hash: moonkv_keyspace::HashLimits {
                max_entries: 512,
                max_value: 64,
            },
            zset: moonkv_keyspace::ZSetLimits {
                max_entries: 128,
                max_value: 64,
            },
        }
    }
}
