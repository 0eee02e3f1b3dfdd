//! Values stored under keys, with the encodings Redis reports through OBJECT ENCODING.

use crate::hash::Hash;
use crate::list::List;
use crate::set::Set;
use crate::zset::SortedSet;
use compact_bytes::CompactBytes;
use moonkv_protocol::number::parse_i64;

/// Longest string Redis stores as `embstr`.
const EMBSTR_MAX: usize = 44;

#[derive(Clone, Debug)]
pub enum Value {
    /// A string that reads as a 64-bit integer (`int` encoding).
    Int(i64),
    /// A string as written by SET and friends (`embstr` up to 44 bytes, else `raw`).
    Str(CompactBytes),
    /// A string modified in place by APPEND/SETRANGE/SETBIT (`raw`), sized for growth.
    Raw(Vec<u8>),
    List(Box<List>),
    Set(Box<Set>),
    Hash(Box<Hash>),
    ZSet(Box<SortedSet>),
}

/// A borrowed view of a string value.
#[derive(Clone, Copy, Debug)]
pub enum StrView<'a> {
    Int(i64),
    Bytes(&'a [u8]),
}

impl StrView<'_> {
    /// The bytes of the string; integers are formatted.
    pub fn to_vec(self) -> Vec<u8> {
        match self {
            StrView::Int(i) => i.to_string().into_bytes(),
            StrView::Bytes(b) => b.to_vec(),
        }
    }

    pub fn len(self) -> usize {
        match self {
            StrView::Int(i) => moonkv_protocol::itoa_buf(i).as_bytes().len(),
            StrView::Bytes(b) => b.len(),
        }
    }

    pub fn is_empty(self) -> bool {
        self.len() == 0
    }
}

/// Values whose freeing touches more allocations than this are freed on a background thread
/// when lazy freeing applies (Redis's LAZYFREE_THRESHOLD); smaller ones are cheaper to free on
/// the spot than to hand over.
pub const LAZYFREE_THRESHOLD: usize = 64;

impl Value {
    /// How many allocations freeing this value touches, as Redis estimates it: chunks of a
    /// list, elements of a set, hash or sorted set, 1 for a string.
    pub fn free_effort(&self) -> usize {
        match self {
            Value::List(l) => l.chunk_count(),
            Value::Set(s) => s.len(),
            Value::Hash(h) => h.len(),
            Value::ZSet(z) => z.len(),
            _ => 1,
        }
    }

    /// A string value, integer-encoded when it reads as a canonical integer (as Redis's
    /// tryObjectEncoding does).
    pub fn string(bytes: &[u8]) -> Value {
        if bytes.len() <= 20 {
            if let Some(i) = parse_i64(bytes) {
                return Value::Int(i);
            }
        }
        Value::Str(CompactBytes::new(bytes))
    }

    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Int(_) | Value::Str(_) | Value::Raw(_) => "string",
            Value::List(_) => "list",
            Value::Set(_) => "set",
            Value::Hash(_) => "hash",
            Value::ZSet(_) => "zset",
        }
    }

    pub fn encoding(&self) -> &'static str {
        match self {
            Value::Int(_) => "int",
            Value::Str(s) if s.len() <= EMBSTR_MAX => "embstr",
            Value::Str(_) | Value::Raw(_) => "raw",
            // Redis 7.0 always reports lists as quicklists.
            Value::List(_) => "quicklist",
            Value::Set(s) => s.encoding(),
            Value::Hash(h) => h.encoding(),
            Value::ZSet(z) => z.encoding(),
        }
    }

    /// The string view, or None if this is not a string (the caller answers WRONGTYPE).
    pub fn as_str(&self) -> Option<StrView<'_>> {
        match self {
            Value::Int(i) => Some(StrView::Int(*i)),
            Value::Str(s) => Some(StrView::Bytes(s.as_slice())),
            Value::Raw(v) => Some(StrView::Bytes(v)),
            _ => None,
        }
    }

    pub fn as_list(&self) -> Option<&List> {
        match self {
            Value::List(l) => Some(l),
            _ => None,
        }
    }

    pub fn as_list_mut(&mut self) -> Option<&mut List> {
        match self {
            Value::List(l) => Some(l),
            _ => None,
        }
    }

    pub fn as_set(&self) -> Option<&Set> {
        match self {
            Value::Set(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_set_mut(&mut self) -> Option<&mut Set> {
        match self {
            Value::Set(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_hash(&self) -> Option<&Hash> {
        match self {
            Value::Hash(h) => Some(h),
            _ => None,
        }
    }

    pub fn as_hash_mut(&mut self) -> Option<&mut Hash> {
        match self {
            Value::Hash(h) => Some(h),
            _ => None,
        }
    }

    pub fn as_zset(&self) -> Option<&SortedSet> {
        match self {
            Value::ZSet(z) => Some(z),
            _ => None,
        }
    }

    pub fn as_zset_mut(&mut self) -> Option<&mut SortedSet> {
        match self {
            Value::ZSet(z) => Some(z),
            _ => None,
        }
    }

    /// A hash field's value (SORT's `key->field` patterns); None for non-hashes.
    pub fn hash_field(&self, field: &[u8]) -> Option<&[u8]> {
        self.as_hash()?.get(field)
    }

    pub fn is_string(&self) -> bool {
        self.as_str().is_some()
    }

    /// Turns a string value into its mutable raw form and returns the buffer (APPEND, SETRANGE,
    /// SETBIT). Returns None for non-strings.
    pub fn as_raw_mut(&mut self) -> Option<&mut Vec<u8>> {
        match self {
            Value::Raw(v) => Some(v),
            Value::Int(i) => {
                *self = Value::Raw(i.to_string().into_bytes());
                self.as_raw_mut()
            }
            Value::Str(s) => {
                *self = Value::Raw(s.as_slice().to_vec());
                self.as_raw_mut()
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodings_follow_redis() {
        assert_eq!(Value::string(b"123").encoding(), "int");
        assert_eq!(Value::string(b"0123").encoding(), "embstr");
        assert_eq!(Value::string(&[b'x'; 44]).encoding(), "embstr");
        assert_eq!(Value::string(&[b'x'; 45]).encoding(), "raw");
        let mut v = Value::string(b"12");
        v.as_raw_mut().unwrap().extend_from_slice(b"3");
        assert_eq!(v.encoding(), "raw");
        assert_eq!(v.as_str().unwrap().to_vec(), b"123");
    }
}
