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

/// Serializes every database into one RDB payload.
pub fn write_snapshot(dbs: &[Db], redis_version: &str, now_ms: i64) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    out.extend_from_slice(RDB_VERSION);
    write_aux(&mut out, "redis-ver", redis_version);
    write_aux(&mut out, "redis-bits", "64");
    write_aux(&mut out, "ctime", &(now_ms / 1000).to_string());
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
            match value {
                Value::List(list) => {
                    out.push(TYPE_LIST);
                    write_string(&mut out, key);
                    write_len(&mut out, list.len() as u64);
                    for item in list.iter() {
                        write_string(&mut out, item);
                    }
                }
                Value::Set(set) => {
                    out.push(TYPE_SET);
                    write_string(&mut out, key);
                    write_len(&mut out, set.len() as u64);
                    for member in set.iter() {
                        write_string(&mut out, member);
                    }
                }
                Value::Hash(hash) => {
                    out.push(TYPE_HASH);
                    write_string(&mut out, key);
                    write_len(&mut out, hash.len() as u64);
                    for (field, value) in hash.iter() {
                        write_string(&mut out, field);
                        write_string(&mut out, value);
                    }
                }
                other => {
                    out.push(TYPE_STRING);
                    write_string(&mut out, key);
                    match other.as_str() {
                        Some(StrView::Bytes(b)) => write_string(&mut out, b),
                        Some(StrView::Int(i)) => write_string(&mut out, i.to_string().as_bytes()),
                        None => write_string(&mut out, b""),
                    }
                }
            }
        }
    }
    out.push(OP_EOF);
    out.extend_from_slice(&[0u8; 8]);
    out
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
    fn snapshot_layout() {
        let mut db = Db::new();
        db.set(b"k", Value::string(b"v"), false);
        let rdb = write_snapshot(&[db], "7.0.15", 0);
        assert!(rdb.starts_with(b"REDIS0010"));
        assert!(rdb.windows(4).any(|w| w == [TYPE_STRING, 1, b'k', 1]));
        assert_eq!(&rdb[rdb.len() - 9..], &[OP_EOF, 0, 0, 0, 0, 0, 0, 0, 0]);
    }
}
