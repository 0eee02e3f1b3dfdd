//! Reading RDB: the streaming [`RdbReader`], the value decoder it shares with RESTORE, and
//! [`LoadError`].
//!
//! Every count and length in the file is checked against what is actually there before it
//! sizes anything: strings grow as their bytes arrive, collections as their elements are
//! read, and each loop step consumes input, so a damaged file ends in an error, never in a
//! panic, a huge allocation or a hang.

use super::blobs::{self, Elem};
use super::*;
use moonkv_keyspace::{End, Hash, List, Set, SortedSet, Value};
use std::fmt;
use std::io::{self, Read};

/// Why a snapshot could not be loaded. `Display` gives the line Redis logs for the same case.
#[derive(Debug, PartialEq, Eq)]
pub enum LoadError {
    /// The data ended early (Redis: "Short read or OOM loading DB. Unrecoverable error,
    /// aborting now.").
    Truncated,
    /// Reading failed for another reason than the end of the data.
    Io(String),
    /// The file does not start with "REDIS".
    BadSignature,
    /// An RDB version other than 1..=10.
    UnsupportedVersion(u32),
    /// The stored CRC-64 differs from the one computed over the file.
    BadChecksum { expected: u64, got: u64 },
    /// A value type moonkv has no counterpart for (streams 15 and 19, module values 6 and 7).
    UnsupportedType(u8),
    /// Module auxiliary data (opcode 0xF7), which needs a module moonkv cannot have.
    ModuleAux { module: String },
    /// Anything else malformed, with Redis's wording where it has one.
    Corrupt(String),
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::Truncated => {
                f.write_str("Short read or OOM loading DB. Unrecoverable error, aborting now.")
            }
            LoadError::Io(e) => write!(f, "Error reading the RDB file: {e}"),
            LoadError::BadSignature => f.write_str("Wrong signature trying to load DB from file"),
            LoadError::UnsupportedVersion(v) => write!(f, "Can't handle RDB format version {v}"),
            LoadError::BadChecksum { expected, got } => write!(
                f,
                "Wrong RDB checksum expected: ({expected:016x}) got ({got:016x}). Aborting now."
            ),
            LoadError::UnsupportedType(t) => {
                let what = match *t {
                    TYPE_STREAM_LISTPACKS | TYPE_STREAM_LISTPACKS_2 => "a stream",
                    _ => "a module value",
                };
                write!(
                    f,
                    "The RDB file contains {what} (type {t}), which moonkv cannot load"
                )
            }
            LoadError::ModuleAux { module } => write!(
                f,
                "The RDB file contains AUX module data I can't load: no matching module '{module}'"
            ),
            LoadError::Corrupt(why) => write!(f, "Internal error in RDB reading: {why}"),
        }
    }
}

impl std::error::Error for LoadError {}

pub(crate) type LoadResult<T> = Result<T, LoadError>;

fn corrupt<T>(why: impl Into<String>) -> LoadResult<T> {
    Err(LoadError::Corrupt(why.into()))
}

/// What a file's checksum said.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Checksum {
    /// Versions before 5 have none.
    #[default]
    Absent,
    /// Stored as zero: written with `rdbchecksum no`; Redis logs "RDB file was saved with
    /// checksum disabled: no check performed."
    Disabled,
    /// Present and not checked ([`RdbReader::skip_checksum`]).
    Skipped,
    /// Present and right.
    Verified,
}

/// Reads bytes, keeping a running CRC-64 of them.
pub(crate) struct Input<R: Read> {
    inner: R,
    digest: crc::Digest<'static, u64, crc::Table<16>>,
    /// Bytes read so far (for a loader's progress).
    consumed: u64,
}

impl Input<&[u8]> {
    /// Bytes not read yet.
    pub(crate) fn remaining(&self) -> usize {
        self.inner.len()
    }
}

/// Largest piece a string's buffer grows by before its bytes have arrived.
const GROW_STEP: usize = 1 << 20;

/// A length, or the id of a special string encoding.
enum Len {
    Plain(u64),
    Encoded(u8),
}

impl<R: Read> Input<R> {
    pub(crate) fn new(inner: R) -> Self {
        Input {
            inner,
            digest: CRC64.digest(),
            consumed: 0,
        }
    }

    fn fill(&mut self, buf: &mut [u8]) -> LoadResult<()> {
        match self.inner.read_exact(buf) {
            Ok(()) => {
                self.digest.update(buf);
                self.consumed += buf.len() as u64;
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Err(LoadError::Truncated),
            Err(e) => Err(LoadError::Io(e.to_string())),
        }
    }

    pub(crate) fn byte(&mut self) -> LoadResult<u8> {
        let mut b = [0u8; 1];
        self.fill(&mut b)?;
        Ok(b[0])
    }

    fn array<const N: usize>(&mut self) -> LoadResult<[u8; N]> {
        let mut b = [0u8; N];
        self.fill(&mut b)?;
        Ok(b)
    }

    /// `n` bytes, the buffer growing as they arrive.
    fn exact(&mut self, n: u64) -> LoadResult<Vec<u8>> {
        let n = usize::try_from(n).map_err(|_| LoadError::Truncated)?;
        let mut v = Vec::with_capacity(n.min(GROW_STEP));
        while v.len() < n {
            let from = v.len();
            let step = (n - from).min(GROW_STEP.max(from));
            v.resize(from + step, 0);
            self.fill(&mut v[from..])?;
        }
        Ok(v)
    }

    fn len_or_encoding(&mut self) -> LoadResult<Len> {
        let first = self.byte()?;
        Ok(match first >> 6 {
            0 => Len::Plain(u64::from(first & 0x3F)),
            1 => Len::Plain(u64::from(first & 0x3F) << 8 | u64::from(self.byte()?)),
            3 => Len::Encoded(first & 0x3F),
            _ => match first {
                LEN_32BIT => Len::Plain(u64::from(u32::from_be_bytes(self.array()?))),
                LEN_64BIT => Len::Plain(u64::from_be_bytes(self.array()?)),
                _ => return corrupt(format!("Unknown length encoding {first} in rdbLoadLen()")),
            },
        })
    }

    /// A length. An encoded-string marker here reads as its 6-bit id, as Redis reads it.
    pub(crate) fn len(&mut self) -> LoadResult<u64> {
        Ok(match self.len_or_encoding()? {
            Len::Plain(n) => n,
            Len::Encoded(id) => u64::from(id),
        })
    }

    /// A string in any of its encodings: plain, int8/16/32, or LZF.
    pub(crate) fn string(&mut self) -> LoadResult<Vec<u8>> {
        match self.len_or_encoding()? {
            Len::Plain(n) => self.exact(n),
            Len::Encoded(ENC_INT8) => Ok((self.byte()? as i8).to_string().into_bytes()),
            Len::Encoded(ENC_INT16) => {
                Ok(i16::from_le_bytes(self.array()?).to_string().into_bytes())
            }
            Len::Encoded(ENC_INT32) => {
                Ok(i32::from_le_bytes(self.array()?).to_string().into_bytes())
            }
            Len::Encoded(ENC_LZF) => {
                let packed_len = self.len()?;
                let len = self.len()?;
                let packed = self.exact(packed_len)?;
                let len = usize::try_from(len).map_err(|_| LoadError::Truncated)?;
                lzf::decompress(&packed, len).or_else(|_| corrupt("Invalid LZF compressed string"))
            }
            Len::Encoded(other) => corrupt(format!("Unknown RDB string encoding type {other}")),
        }
    }

    /// A sorted set score in the old text form (RDB_TYPE_ZSET).
    fn text_score(&mut self) -> LoadResult<f64> {
        match self.byte()? {
            255 => Ok(f64::NEG_INFINITY),
            254 => Ok(f64::INFINITY),
            253 => Ok(f64::NAN),
            n => {
                let text = self.exact(u64::from(n))?;
                parse_score(&text).map_or_else(|| corrupt("Bad sorted set score"), Ok)
            }
        }
    }

    /// The value of type `type_byte`; None for an empty collection, which Redis skips (with
    /// a warning) rather than failing.
    pub(crate) fn value(
        &mut self,
        type_byte: u8,
        limits: &LoadLimits,
    ) -> LoadResult<Option<Value>> {
        let value = match type_byte {
            TYPE_STRING => Value::string(&self.string()?),
            TYPE_LIST => {
                let mut list = List::new();
                for _ in 0..self.len()? {
                    list.push(End::Tail, &self.string()?);
                }
                Value::List(Box::new(list))
            }
            TYPE_SET => {
                let mut set = Set::new();
                for _ in 0..self.len()? {
                    if !set.insert(&self.string()?, limits.set_max_intset_entries) {
                        return corrupt("Duplicate set members detected");
                    }
                }
                Value::Set(Box::new(set))
            }
            TYPE_ZSET | TYPE_ZSET_2 => {
                let mut zset = SortedSet::new();
                for _ in 0..self.len()? {
                    let member = self.string()?;
                    let score = if type_byte == TYPE_ZSET_2 {
                        f64::from_le_bytes(self.array()?)
                    } else {
                        self.text_score()?
                    };
                    if score.is_nan() {
                        return corrupt("Zset with NAN score detected");
                    }
                    if zset.insert(&member, score, limits.zset).is_some() {
                        return corrupt("Duplicate zset fields detected");
                    }
                }
                Value::ZSet(Box::new(zset))
            }
            TYPE_HASH => {
                let mut hash = Hash::new();
                for _ in 0..self.len()? {
                    let field = self.string()?;
                    let value = self.string()?;
                    if !hash.set(&field, &value, limits.hash) {
                        return corrupt("Duplicate hash fields detected");
                    }
                }
                Value::Hash(Box::new(hash))
            }
            TYPE_LIST_QUICKLIST | TYPE_LIST_QUICKLIST_2 => {
                let mut list = List::new();
                for _ in 0..self.len()? {
                    let container = if type_byte == TYPE_LIST_QUICKLIST_2 {
                        self.len()?
                    } else {
                        CONTAINER_PACKED
                    };
                    if container != CONTAINER_PACKED && container != CONTAINER_PLAIN {
                        return corrupt("Quicklist integrity check failed.");
                    }
                    let data = self.string()?;
                    if data.is_empty() {
                        return corrupt("Empty quicklist node");
                    }
                    if container == CONTAINER_PLAIN {
                        list.push(End::Tail, &data);
                        continue;
                    }
                    let entries = if type_byte == TYPE_LIST_QUICKLIST_2 {
                        blobs::listpack_entries(&data)
                    } else {
                        blobs::ziplist_entries(&data)
                    }
                    .or_else(corrupt)?;
                    for e in entries {
                        list.push(End::Tail, &e.to_bytes());
                    }
                }
                Value::List(Box::new(list))
            }
            TYPE_LIST_ZIPLIST => {
                let data = self.string()?;
                let entries = blobs::ziplist_entries(&data)
                    .or_else(|_| corrupt("List ziplist integrity check failed."))?;
                let mut list = List::new();
                for e in entries {
                    list.push(End::Tail, &e.to_bytes());
                }
                Value::List(Box::new(list))
            }
            TYPE_SET_INTSET => {
                let data = self.string()?;
                let members = blobs::intset_members(&data).or_else(corrupt)?;
                let mut set = Set::new();
                for m in members {
                    set.insert(m.to_string().as_bytes(), limits.set_max_intset_entries);
                }
                Value::Set(Box::new(set))
            }
            TYPE_HASH_ZIPMAP => {
                let data = self.string()?;
                let pairs = blobs::zipmap_pairs(&data).or_else(corrupt)?;
                let mut hash = Hash::new();
                for (field, value) in pairs {
                    if !hash.set(field, value, limits.hash) {
                        return corrupt(format!(
                            "Hash zipmap with dup elements, or big length ({})",
                            field.len()
                        ));
                    }
                }
                Value::Hash(Box::new(hash))
            }
            TYPE_HASH_ZIPLIST | TYPE_HASH_LISTPACK => {
                let data = self.string()?;
                let (entries, bad) = if type_byte == TYPE_HASH_LISTPACK {
                    (
                        blobs::listpack_entries(&data),
                        "Hash listpack integrity check failed.",
                    )
                } else {
                    (
                        blobs::ziplist_entries(&data),
                        "Hash ziplist integrity check failed.",
                    )
                };
                let entries = entries.or_else(|_| corrupt(bad))?;
                if entries.len() % 2 != 0 {
                    return corrupt(bad);
                }
                let mut hash = Hash::new();
                for pair in entries.chunks_exact(2) {
                    if !hash.set(&pair[0].to_bytes(), &pair[1].to_bytes(), limits.hash) {
                        return corrupt(bad);
                    }
                }
                Value::Hash(Box::new(hash))
            }
            TYPE_ZSET_ZIPLIST | TYPE_ZSET_LISTPACK => {
                let data = self.string()?;
                let (entries, bad) = if type_byte == TYPE_ZSET_LISTPACK {
                    (
                        blobs::listpack_entries(&data),
                        "Zset listpack integrity check failed.",
                    )
                } else {
                    (
                        blobs::ziplist_entries(&data),
                        "Zset ziplist integrity check failed.",
                    )
                };
                let entries = entries.or_else(|_| corrupt(bad))?;
                if entries.len() % 2 != 0 {
                    return corrupt(bad);
                }
                let mut zset = SortedSet::new();
                for pair in entries.chunks_exact(2) {
                    let score = match pair[1] {
                        Elem::Int(i) => i as f64,
                        Elem::Bytes(text) => parse_score(text)
                            .filter(|s| !s.is_nan())
                            .map_or_else(|| corrupt(bad), Ok)?,
                    };
                    if zset
                        .insert(&pair[0].to_bytes(), score, limits.zset)
                        .is_some()
                    {
                        return corrupt(bad);
                    }
                }
                Value::ZSet(Box::new(zset))
            }
            TYPE_MODULE | TYPE_MODULE_2 | TYPE_STREAM_LISTPACKS | TYPE_STREAM_LISTPACKS_2 => {
                return Err(LoadError::UnsupportedType(type_byte))
            }
            other => return corrupt(format!("Unknown RDB encoding type {other}")),
        };
        let empty = match &value {
            Value::List(l) => l.is_empty(),
            Value::Set(s) => s.is_empty(),
            Value::Hash(h) => h.is_empty(),
            Value::ZSet(z) => z.is_empty(),
            _ => false,
        };
        Ok((!empty).then_some(value))
    }

    /// A function library after its opcode: FUNCTION2 is the code itself; the FUNCTION form
    /// of Redis 7.0's release candidates (name, engine, optional description, body) is turned
    /// into the same shebang form Redis 7.0 turns it into.
    pub(crate) fn function(&mut self, opcode: u8) -> LoadResult<Vec<u8>> {
        if opcode == OP_FUNCTION2 {
            return self.string();
        }
        let name = self.string()?;
        let engine = self.string()?;
        if self.len()? != 0 {
            self.string()?;
        }
        let body = self.string()?;
        let mut code = Vec::with_capacity(body.len() + name.len() + engine.len() + 9);
        code.extend_from_slice(b"#!");
        code.extend_from_slice(&engine);
        code.extend_from_slice(b" name=");
        code.extend_from_slice(&name);
        code.push(b'\n');
        code.extend_from_slice(&body);
        Ok(code)
    }

    fn checksum_so_far(&self) -> u64 {
        self.digest.clone().finalize()
    }
}

/// A sorted set score written as text, as `strtod` would read Redis's own output.
fn parse_score(text: &[u8]) -> Option<f64> {
    let s = std::str::from_utf8(text).ok()?.trim();
    s.parse::<f64>().ok()
}

/// The 9-character name Redis derives from a module type id.
fn module_name(id: u64) -> String {
    const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut id = id >> 10;
    let mut name = [0u8; 9];
    for slot in name.iter_mut().rev() {
        *slot = CHARS[(id & 63) as usize];
        id >>= 6;
    }
    String::from_utf8_lossy(&name).into_owned()
}

/// One item of a snapshot, in file order.
#[derive(Debug)]
pub enum Entry {
    /// An aux field (redis-ver, ctime, ...).
    Aux {
        key: Vec<u8>,
        value: Vec<u8>,
    },
    /// A function library's code.
    Function(Vec<u8>),
    /// The following keys belong to this database.
    SelectDb(usize),
    /// Sizing hint for the current database.
    ResizeDb {
        keys: u64,
        expires: u64,
    },
    Key(LoadedKey),
    /// A key whose collection was empty (a damaged file): Redis skips it, and says so.
    EmptyKey {
        db: usize,
        key: Vec<u8>,
    },
}

/// Reads an RDB file item by item from any `Read` (wrap a file in a `BufReader`), so the
/// caller can insert keys as they come.
pub struct RdbReader<R: Read> {
    input: Input<R>,
    limits: LoadLimits,
    version: u32,
    db: usize,
    verify_checksum: bool,
    checksum: Option<Checksum>,
}

impl<R: Read> RdbReader<R> {
    /// Reads and checks the header ("REDIS" and a version from 1 to 10).
    pub fn new(input: R, limits: LoadLimits) -> Result<Self, LoadError> {
        let mut input = Input::new(input);
        let header: [u8; 9] = input.array()?;
        if &header[..5] != b"REDIS" {
            return Err(LoadError::BadSignature);
        }
        // Like atoi: the leading digits, 0 if there are none.
        let version = header[5..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .fold(0u32, |v, b| v * 10 + u32::from(b - b'0'));
        if !(1..=RDB_VERSION).contains(&version) {
            return Err(LoadError::UnsupportedVersion(version));
        }
        Ok(RdbReader {
            input,
            limits,
            version,
            db: 0,
            verify_checksum: true,
            checksum: None,
        })
    }

    /// The file's RDB format version.
    pub fn version(&self) -> u32 {
        self.version
    }

    /// Turns checksum verification off (Redis's `rdbchecksum no`).
    pub fn skip_checksum(&mut self) {
        self.verify_checksum = false;
    }

    /// How many bytes of the input were read so far.
    pub fn bytes_read(&self) -> u64 {
        self.input.consumed
    }

    /// What the checksum said; None until the end was read.
    pub fn checksum(&self) -> Option<Checksum> {
        self.checksum
    }

    /// The next item, or None once the end marker and checksum have been read.
    pub fn next_entry(&mut self) -> Result<Option<Entry>, LoadError> {
        if self.checksum.is_some() {
            return Ok(None);
        }
        let mut expire_at = None;
        let mut lru_idle = None;
        let mut lfu_freq = None;
        loop {
            let op = self.input.byte()?;
            match op {
                OP_EXPIRETIME => {
                    let secs = i32::from_le_bytes(self.input.array()?);
                    expire_at = Some(i64::from(secs) * 1000);
                }
                OP_EXPIRETIME_MS => expire_at = Some(i64::from_le_bytes(self.input.array()?)),
                OP_FREQ => lfu_freq = Some(self.input.byte()?),
                OP_IDLE => lru_idle = Some(self.input.len()?),
                OP_EOF => {
                    self.finish_checksum()?;
                    return Ok(None);
                }
                OP_SELECTDB => {
                    let db = self.input.len()?;
                    self.db = usize::try_from(db).or_else(|_| corrupt("Bad database index"))?;
                    return Ok(Some(Entry::SelectDb(self.db)));
                }
                OP_RESIZEDB => {
                    let keys = self.input.len()?;
                    let expires = self.input.len()?;
                    return Ok(Some(Entry::ResizeDb { keys, expires }));
                }
                OP_AUX => {
                    let key = self.input.string()?;
                    let value = self.input.string()?;
                    return Ok(Some(Entry::Aux { key, value }));
                }
                OP_MODULE_AUX => {
                    let id = self.input.len()?;
                    return Err(LoadError::ModuleAux {
                        module: module_name(id),
                    });
                }
                OP_FUNCTION | OP_FUNCTION2 => {
                    return Ok(Some(Entry::Function(self.input.function(op)?)));
                }
                type_byte => {
                    let key = self.input.string()?;
                    match self.input.value(type_byte, &self.limits)? {
                        Some(value) => {
                            return Ok(Some(Entry::Key(LoadedKey {
                                db: self.db,
                                key,
                                value,
                                expire_at,
                                lru_idle,
                                lfu_freq,
                            })))
                        }
                        // An empty collection is not loaded: the caller learns its name.
                        None => return Ok(Some(Entry::EmptyKey { db: self.db, key })),
                    }
                }
            }
        }
    }

    fn finish_checksum(&mut self) -> Result<(), LoadError> {
        if self.version < 5 {
            self.checksum = Some(Checksum::Absent);
            return Ok(());
        }
        let expected = self.input.checksum_so_far();
        let got = u64::from_le_bytes(self.input.array()?);
        self.checksum = Some(if got == 0 {
            Checksum::Disabled
        } else if !self.verify_checksum {
            Checksum::Skipped
        } else if got != expected {
            return Err(LoadError::BadChecksum { expected, got });
        } else {
            Checksum::Verified
        });
        Ok(())
    }
}
