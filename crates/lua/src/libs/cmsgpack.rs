//! `cmsgpack`: MessagePack as Redis's lua-cmsgpack writes and reads it: numbers that are
//! whole 64-bit values become the smallest integer form, others float32 when exact else
//! float64; tables without holes in 1..n become arrays, others maps; nesting past 16 levels
//! becomes nil. `unpack` returns every object, `unpack_one`/`unpack_limit` page through them.

use crate::raw::{self, L};
use std::ffi::c_int;

/// Tables nested deeper than this are encoded as nil.
const MAX_NESTING: usize = 16;

pub fn open(l: L) {
    super::register(
        l,
        "cmsgpack",
        &[
            ("pack", pack),
            ("unpack", unpack),
            ("unpack_one", unpack_one),
            ("unpack_limit", unpack_limit),
        ],
    );
    l.raw_get_field(raw::GLOBALS, "cmsgpack");
    l.push_str("cmsgpack");
    l.raw_set_field(-2, "_NAME");
    l.push_str("lua-cmsgpack 0.4.0");
    l.raw_set_field(-2, "_VERSION");
    l.pop(1);
}

unsafe extern "C-unwind" fn pack(l: *mut raw::State) -> c_int {
    super::lib_function(l, |l| {
        let n = l.top();
        if n == 0 {
            return Err("bad argument #0 to 'pack' (MessagePack pack needs input.)".into());
        }
        let mut out = Vec::new();
        for i in 1..=n {
            if !l.check_stack(4) {
                return Err("stack overflow".into());
            }
            l.push_value(i);
            encode(l, &mut out, 0)?;
        }
        l.push_bytes(&out);
        Ok(1)
    })
}

fn encode_int(out: &mut Vec<u8>, n: i64) {
    if n >= 0 {
        match n {
            0..=127 => out.push(n as u8),
            128..=0xff => out.extend_from_slice(&[0xcc, n as u8]),
            0x100..=0xffff => {
                out.push(0xcd);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            0x1_0000..=0xffff_ffff => {
                out.push(0xce);
                out.extend_from_slice(&(n as u32).to_be_bytes());
            }
            _ => {
                out.push(0xcf);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
    } else if n >= -32 {
        out.push(n as i8 as u8);
    } else if n >= -128 {
        out.extend_from_slice(&[0xd0, n as i8 as u8]);
    } else if n >= -32768 {
        out.push(0xd1);
        out.extend_from_slice(&(n as i16).to_be_bytes());
    } else if n >= -2147483648 {
        out.push(0xd2);
        out.extend_from_slice(&(n as i32).to_be_bytes());
    } else {
        out.push(0xd3);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

fn encode_number(out: &mut Vec<u8>, n: f64) {
    // A whole value that survives the round trip through i64 is written as an integer.
    if n.is_finite() && (n as i64) as f64 == n {
        return encode_int(out, n as i64);
    }
    let f = n as f32;
    if f as f64 == n || (n.is_nan() && f.is_nan()) {
        out.push(0xca);
        out.extend_from_slice(&f.to_be_bytes());
    } else {
        out.push(0xcb);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

fn encode_bytes(out: &mut Vec<u8>, s: &[u8]) {
    let len = s.len();
    if len < 32 {
        out.push(0xa0 | len as u8);
    } else if len <= 0xff {
        out.extend_from_slice(&[0xd9, len as u8]);
    } else if len <= 0xffff {
        out.push(0xda);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(0xdb);
        out.extend_from_slice(&(len as u32).to_be_bytes());
    }
    out.extend_from_slice(s);
}

fn encode_header(out: &mut Vec<u8>, n: usize, fix: u8, b16: u8, b32: u8) {
    if n <= 15 {
        out.push(fix | n as u8);
    } else if n <= 0xffff {
        out.push(b16);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        out.push(b32);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    }
}

/// lua-cmsgpack's array test: every key a positive whole number and no holes.
fn is_array(l: L) -> bool {
    let (mut count, mut max) = (0f64, 0f64);
    l.push_nil();
    while l.next(-2) {
        l.pop(1);
        let ok = l.kind(-1) == raw::TNUMBER && {
            let n = l.to_number(-1);
            n > 0.0 && n.floor() == n
        };
        if !ok {
            l.pop(1);
            return false;
        }
        max = f64::max(max, l.to_number(-1));
        count += 1.0;
    }
    max == count
}

/// Encodes the value on top of the stack and pops it; fails only when the output would take
/// the script past its memory budget.
fn encode(l: L, out: &mut Vec<u8>, level: usize) -> Result<(), String> {
    super::within_budget(l, out.len())?;
    let mut kind = l.kind(-1);
    if kind == raw::TTABLE && level == MAX_NESTING {
        kind = raw::TNIL;
    }
    match kind {
        raw::TSTRING => encode_bytes(out, l.to_bytes(-1).unwrap_or_default()),
        raw::TBOOLEAN => out.push(if l.to_bool(-1) { 0xc3 } else { 0xc2 }),
        raw::TNUMBER => encode_number(out, l.to_number(-1)),
        raw::TTABLE if l.check_stack(4) => {
            if is_array(l) {
                // The length operator's view of the array (its border), as lua-cmsgpack uses.
                let mut len = 0i64;
                while l.raw_get_index(-1, len + 1) != raw::TNIL {
                    l.pop(1);
                    len += 1;
                }
                l.pop(1);
                encode_header(out, len as usize, 0x90, 0xdc, 0xdd);
                for i in 1..=len {
                    l.raw_get_index(-1, i);
                    encode(l, out, level + 1)?;
                }
            } else {
                let mut pairs = 0;
                l.push_nil();
                while l.next(-2) {
                    l.pop(1);
                    pairs += 1;
                }
                encode_header(out, pairs, 0x80, 0xde, 0xdf);
                l.push_nil();
                while l.next(-2) {
                    l.push_value(-2);
                    encode(l, out, level + 1)?;
                    encode(l, out, level + 1)?;
                }
            }
        }
        _ => out.push(0xc0),
    }
    l.pop(1);
    Ok(())
}

#[derive(Debug)]
enum DecodeError {
    MissingBytes,
    BadFormat,
    /// A map key that is a NaN number, which Lua cannot index a table with (lua-cmsgpack's
    /// `lua_settable` raises the same message).
    NanKey,
    /// The values made so far took the script past its memory budget.
    OverBudget,
}

struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
    /// How many table slots may still be allocated ahead of their elements: claimed counts
    /// are only trusted up to the input bytes left, so a header claiming 4e9 elements (or
    /// thousands of nested ones) cannot reserve more memory than the input could fill.
    presize_credit: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self.pos.checked_add(n).ok_or(DecodeError::MissingBytes)?;
        let s = self
            .data
            .get(self.pos..end)
            .ok_or(DecodeError::MissingBytes)?;
        self.pos = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }
    fn be<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut b = [0u8; N];
        b.copy_from_slice(self.take(N)?);
        Ok(b)
    }
    /// Slots to reserve for a container claiming `n` entries of at least `bytes_each` bytes.
    fn presize(&mut self, n: usize, bytes_each: usize) -> usize {
        let k = n.min(self.presize_credit / bytes_each).min(1 << 16);
        self.presize_credit -= k * bytes_each;
        k
    }
}

/// A container being filled: its table is on the Lua stack (with a map's pending key above).
enum Open {
    Array {
        len: usize,
        filled: usize,
    },
    Map {
        len: usize,
        filled: usize,
        has_key: bool,
    },
}

/// What one tag read: a value pushed, or a container whose elements follow.
enum Item {
    Value,
    Array(usize),
    Map(usize),
}

/// Decodes one object onto the Lua stack. Nested containers are tracked in a Rust vector,
/// not by recursion, so the depth (bounded by the Lua stack) never exhausts the thread's
/// stack.
fn decode(l: L, c: &mut Cursor) -> Result<(), DecodeError> {
    let mut open: Vec<Open> = Vec::new();
    loop {
        match read_item(l, c)? {
            Item::Value => {}
            Item::Array(len) => {
                l.new_table(c.presize(len, 1), 0);
                if len > 0 {
                    open.push(Open::Array { len, filled: 0 });
                    continue;
                }
            }
            Item::Map(len) => {
                l.new_table(0, c.presize(len, 2));
                if len > 0 {
                    open.push(Open::Map {
                        len,
                        filled: 0,
                        has_key: false,
                    });
                    continue;
                }
            }
        }
        // A complete value is on top: store it in the containers it completes.
        loop {
            match open.last_mut() {
                None => return Ok(()),
                Some(Open::Array { len, filled }) => {
                    *filled += 1;
                    l.raw_set_index(-2, *filled as i64);
                    if filled < len {
                        break;
                    }
                }
                Some(Open::Map {
                    len,
                    filled,
                    has_key,
                }) => {
                    if !*has_key {
                        *has_key = true;
                        break;
                    }
                    // Lua cannot index a table with nil or NaN; lua-cmsgpack's settable would
                    // raise too. (Checked here: a raw set would raise over Rust frames.)
                    match l.kind(-2) {
                        raw::TNIL => return Err(DecodeError::BadFormat),
                        raw::TNUMBER if l.to_number(-2).is_nan() => {
                            return Err(DecodeError::NanKey)
                        }
                        _ => {}
                    }
                    l.raw_set(-3);
                    *has_key = false;
                    *filled += 1;
                    if filled < len {
                        break;
                    }
                }
            }
            open.pop();
        }
    }
}

/// Reads one tag: a scalar is pushed on the Lua stack, a container's length returned.
fn read_item(l: L, c: &mut Cursor) -> Result<Item, DecodeError> {
    if !l.check_stack(3) {
        return Err(DecodeError::BadFormat);
    }
    if !l.heap().charge(0) {
        return Err(DecodeError::OverBudget);
    }
    let tag = c.u8()?;
    match tag {
        0x00..=0x7f => l.push_number(tag as f64),
        0xe0..=0xff => l.push_number(tag as i8 as f64),
        0xa0..=0xbf => {
            let s = c.take((tag & 0x1f) as usize)?;
            l.push_bytes(s);
        }
        0x90..=0x9f => return Ok(Item::Array((tag & 0x0f) as usize)),
        0x80..=0x8f => return Ok(Item::Map((tag & 0x0f) as usize)),
        0xc0 => l.push_nil(),
        0xc2 => l.push_bool(false),
        0xc3 => l.push_bool(true),
        0xcc => l.push_number(c.u8()? as f64),
        0xcd => l.push_number(u16::from_be_bytes(c.be()?) as f64),
        0xce => l.push_number(u32::from_be_bytes(c.be()?) as f64),
        0xcf => l.push_number(u64::from_be_bytes(c.be()?) as f64),
        0xd0 => l.push_number(c.u8()? as i8 as f64),
        0xd1 => l.push_number(i16::from_be_bytes(c.be()?) as f64),
        0xd2 => l.push_number(i32::from_be_bytes(c.be()?) as f64),
        0xd3 => l.push_number(i64::from_be_bytes(c.be()?) as f64),
        0xca => l.push_number(f32::from_be_bytes(c.be()?) as f64),
        0xcb => l.push_number(f64::from_be_bytes(c.be()?)),
        0xd9 => {
            let n = c.u8()? as usize;
            let s = c.take(n)?;
            l.push_bytes(s);
        }
        0xda => {
            let n = u16::from_be_bytes(c.be()?) as usize;
            let s = c.take(n)?;
            l.push_bytes(s);
        }
        0xdb => {
            let n = u32::from_be_bytes(c.be()?) as usize;
            let s = c.take(n)?;
            l.push_bytes(s);
        }
        0xdc => return Ok(Item::Array(u16::from_be_bytes(c.be()?) as usize)),
        0xdd => return Ok(Item::Array(u32::from_be_bytes(c.be()?) as usize)),
        0xde => return Ok(Item::Map(u16::from_be_bytes(c.be()?) as usize)),
        0xdf => return Ok(Item::Map(u32::from_be_bytes(c.be()?) as usize)),
        _ => return Err(DecodeError::BadFormat),
    }
    Ok(Item::Value)
}

/// Decodes up to `limit` objects (all when both limit and offset are 0) from argument 1
/// starting at `offset`; with a limit or offset, the next offset (-1 at the end) comes first.
fn unpack_full(l: L, limit: i64, offset: i64) -> Result<c_int, String> {
    if l.kind(1) != raw::TSTRING && l.kind(1) != raw::TNUMBER {
        return Err(format!(
            "bad argument #1 to 'unpack' (string expected, got {})",
            crate::api::type_name(l, 1)
        ));
    }
    let data = l.to_bytes(1).unwrap_or_default();
    let len = data.len() as i64;
    if offset < 0 || limit < 0 {
        return Err(format!(
            "Invalid request to unpack with offset of {offset} and limit of {len}."
        ));
    }
    if offset > len {
        return Err(format!(
            "Start offset {offset} greater than input length {len}."
        ));
    }
    let all = limit == 0 && offset == 0;
    let limit = if all { i64::MAX } else { limit };
    let mut cursor = Cursor {
        data,
        pos: offset as usize,
        presize_credit: data.len() - offset as usize,
    };
    let mut count: c_int = 0;
    while cursor.pos < data.len() && (count as i64) < limit {
        if !l.check_stack(2) {
            return Err(
                "too many return values at once; use unpack_one or unpack_limit instead.".into(),
            );
        }
        match decode(l, &mut cursor) {
            Ok(()) => count += 1,
            Err(DecodeError::MissingBytes) => return Err("Missing bytes in input.".into()),
            Err(DecodeError::BadFormat) => return Err("Bad data format in input.".into()),
            Err(DecodeError::NanKey) => return Err("table index is NaN".into()),
            // The wrapper raises the memory error instead.
            Err(DecodeError::OverBudget) => return Err(String::new()),
        }
    }
    if !all {
        let next = if cursor.pos >= data.len() {
            -1
        } else {
            cursor.pos as i64
        };
        l.push_number(next as f64);
        l.insert(2);
        count += 1;
    }
    Ok(count)
}

fn opt_int(l: L, i: c_int) -> i64 {
    if l.is_number(i) {
        l.to_number(i) as i64
    } else {
        0
    }
}

unsafe extern "C-unwind" fn unpack(l: *mut raw::State) -> c_int {
    super::lib_function(l, |l| {
        l.set_top(1);
        unpack_full(l, 0, 0)
    })
}

unsafe extern "C-unwind" fn unpack_one(l: *mut raw::State) -> c_int {
    super::lib_function(l, |l| {
        let offset = opt_int(l, 2);
        l.set_top(1);
        unpack_full(l, 1, offset)
    })
}

unsafe extern "C-unwind" fn unpack_limit(l: *mut raw::State) -> c_int {
    super::lib_function(l, |l| {
        let limit = opt_int(l, 2);
        let offset = opt_int(l, 3);
        l.set_top(1);
        unpack_full(l, limit, offset)
    })
}
