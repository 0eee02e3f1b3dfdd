//! Bitmap commands over string values: SETBIT, GETBIT, BITCOUNT, BITPOS, BITOP, BITFIELD,
//! BITFIELD_RO. Bit 0 is the most significant bit of the first byte, as in Redis.

use super::spec::flags::*;
use super::{CommandSpec, Ctx};
use crate::notify::class;
use moonkv_keyspace::{StrView, Value};
use moonkv_protocol::number::parse_i64;
use moonkv_protocol::ReplySink;

const fn bitmap_cmd(
    name: &'static str,
    arity: i32,
    flags: u32,
    keys: (i32, i32, i32),
    handler: super::Handler,
) -> CommandSpec {
    CommandSpec::new(name, arity, flags, keys, "bitmap", handler).group("bitmap")
}

pub static COMMANDS: &[CommandSpec] = &[
    bitmap_cmd("setbit", 4, WRITE | DENYOOM, (1, 1, 1), setbit)
        .summary("Set or clear one bit", "2.2.0"),
    bitmap_cmd("getbit", 3, READONLY | FAST, (1, 1, 1), getbit).summary("Read one bit", "2.2.0"),
    bitmap_cmd("bitcount", -2, READONLY, (1, 1, 1), bitcount).summary("Count set bits", "2.6.0"),
    bitmap_cmd("bitpos", -3, READONLY, (1, 1, 1), bitpos)
        .summary("Find the first set or clear bit", "2.8.7"),
    bitmap_cmd("bitop", -4, WRITE | DENYOOM, (2, -1, 1), bitop)
        .summary("Bitwise operations between strings", "2.6.0"),
    bitmap_cmd("bitfield", -2, WRITE | DENYOOM, (1, 1, 1), bitfield)
        .summary("Integer fields inside a string", "3.2.0"),
    bitmap_cmd("bitfield_ro", -2, READONLY | FAST, (1, 1, 1), bitfield_ro)
        .summary("Read integer fields inside a string", "6.0.0"),
];

const BIT_OFFSET_ERR: &str = "ERR bit offset is not an integer or out of range";

/// Reads a string as bytes; Ok(None) when missing, Err(()) after replying WRONGTYPE.
fn read_bytes(ctx: &mut Ctx, key: &[u8]) -> Result<Option<Vec<u8>>, ()> {
    let now = ctx.now_ms;
    match ctx
        .db()
        .get(key, now)
        .map(|v| v.as_str().map(StrView::to_vec))
    {
        None => Ok(None),
        Some(Some(b)) => Ok(Some(b)),
        Some(None) => {
            ctx.wrong_type();
            Err(())
        }
    }
}

/// Parses a bit offset bounded by the maximum string size; `#N` multiplies by `width` when
/// allowed (BITFIELD).
fn parse_bit_offset(ctx: &Ctx, arg: &[u8], width: Option<u64>) -> Option<u64> {
    let (multiplied, digits) = match (arg.first(), width) {
        (Some(b'#'), Some(_)) => (true, &arg[1..]),
        _ => (false, arg),
    };
    let n = parse_i64(digits)?;
    if n < 0 {
        return None;
    }
    let offset = if multiplied {
        (n as u64).checked_mul(width.unwrap_or(1))?
    } else {
        n as u64
    };
    let max_bits = (ctx.max_string_len() as u64).saturating_mul(8);
    (offset < max_bits).then_some(offset)
}

/// Makes sure `key` holds a raw string of at least `len` bytes and runs `edit` on it.
/// Returns None after replying WRONGTYPE.
fn edit_bytes<R>(
    ctx: &mut Ctx,
    key: &[u8],
    len: usize,
    edit: impl FnOnce(&mut Vec<u8>) -> R,
) -> Option<R> {
    let now = ctx.now_ms;
    match ctx.db().peek(key, now).map(Value::is_string) {
        Some(false) => {
            ctx.wrong_type();
            return None;
        }
        None => ctx.db().set(key, Value::Raw(Vec::new()), false),
        Some(true) => {}
    }
    let buf = ctx.db().get_mut(key, now).and_then(Value::as_raw_mut)?;
    if buf.len() < len {
        buf.resize(len, 0);
    }
    Some(edit(buf))
}

fn setbit(ctx: &mut Ctx) {
    let args = ctx.args;
    let Some(offset) = parse_bit_offset(ctx, &args[2], None) else {
        return ctx.error(BIT_OFFSET_ERR);
    };
    let on = match &args[3][..] {
        b"1" => true,
        b"0" => false,
        _ => return ctx.error("ERR bit is not an integer or out of range"),
    };
    let byte = (offset / 8) as usize;
    let mask = 0x80u8 >> (offset % 8);
    let Some(old) = edit_bytes(ctx, &args[1], byte + 1, |buf| {
        let old = buf[byte] & mask != 0;
        if on {
            buf[byte] |= mask;
        } else {
            buf[byte] &= !mask;
        }
        old
    }) else {
        return;
    };
    ctx.db().mark_modified(&args[1]);
    ctx.notify(class::STRING, "setbit", &args[1]);
    ctx.integer(old as i64);
}

fn getbit(ctx: &mut Ctx) {
    let args = ctx.args;
    let Some(offset) = parse_bit_offset(ctx, &args[2], None) else {
        return ctx.error(BIT_OFFSET_ERR);
    };
    let Ok(value) = read_bytes(ctx, &args[1]) else {
        return;
    };
    let byte = (offset / 8) as usize;
    let bit = value
        .as_deref()
        .and_then(|v| v.get(byte))
        .map_or(0, |b| (b >> (7 - offset % 8)) & 1);
    ctx.integer(bit as i64);
}

/// Parses `start end [BYTE|BIT]` at `args[at..]`; returns (start, end, in_bits).
fn parse_range(ctx: &mut Ctx, at: usize) -> Option<(i64, i64, bool)> {
    let args = ctx.args;
    let start = ctx.arg_i64(at)?;
    let end = ctx.arg_i64(at + 1)?;
    let in_bits = match args.len() - at {
        2 => false,
        3 if ctx.arg_is(at + 2, "bit") => true,
        3 if ctx.arg_is(at + 2, "byte") => false,
        _ => {
            ctx.syntax_error();
            return None;
        }
    };
    Some((start, end, in_bits))
}

/// Normalizes a possibly negative inclusive range over `total` units; None when empty.
fn resolve(start: i64, end: i64, total: i64) -> Option<(i64, i64)> {
    let mut s = if start < 0 { total + start } else { start };
    let mut e = if end < 0 { total + end } else { end };
    if s < 0 {
        s = 0;
    }
    if e < 0 {
        e = 0;
    }
    if e >= total {
        e = total - 1;
    }
    (s <= e && total > 0).then_some((s, e))
}

fn bit_at(bytes: &[u8], bit: i64) -> bool {
    (bytes[(bit / 8) as usize] >> (7 - bit % 8)) & 1 == 1
}

fn bitcount(ctx: &mut Ctx) {
    let args = ctx.args;
    let range = match args.len() {
        2 => None,
        3 => return ctx.syntax_error(),
        _ => match parse_range(ctx, 2) {
            Some(r) => Some(r),
            None => return,
        },
    };
    let Ok(value) = read_bytes(ctx, &args[1]) else {
        return;
    };
    let value = value.unwrap_or_default();
    let count = match range {
        None => value.iter().map(|b| b.count_ones() as i64).sum(),
        Some((start, end, false)) => match resolve(start, end, value.len() as i64) {
            Some((s, e)) => value[s as usize..=e as usize]
                .iter()
                .map(|b| b.count_ones() as i64)
                .sum(),
            None => 0,
        },
        Some((start, end, true)) => match resolve(start, end, value.len() as i64 * 8) {
            Some((s, e)) => (s..=e).filter(|&i| bit_at(&value, i)).count() as i64,
            None => 0,
        },
    };
    ctx.integer(count);
}

fn bitpos(ctx: &mut Ctx) {
    let args = ctx.args;
    let Some(target) = ctx.arg_i64(2) else { return };
    if target != 0 && target != 1 {
        return ctx.error("ERR The bit argument must be 1 or 0.");
    }
    let want = target == 1;
    let mut start = 0;
    let mut end = -1;
    let mut end_given = false;
    let mut in_bits = false;
    if args.len() >= 4 {
        let Some(s) = ctx.arg_i64(3) else { return };
        start = s;
    }
    if args.len() >= 5 {
        let Some((s, e, b)) = parse_range(ctx, 3) else {
            return;
        };
        start = s;
        end = e;
        in_bits = b;
        end_given = true;
    }
    let Ok(value) = read_bytes(ctx, &args[1]) else {
        return;
    };
    let Some(value) = value else {
        return ctx.integer(if want { -1 } else { 0 });
    };
    let total_bits = value.len() as i64 * 8;
    let (first_bit, last_bit) = if in_bits {
        match resolve(start, end, total_bits) {
            Some(r) => r,
            None => return ctx.integer(-1),
        }
    } else {
        match resolve(start, end, value.len() as i64) {
            Some((s, e)) => (s * 8, e * 8 + 7),
            None => return ctx.integer(-1),
        }
    };
    let found = (first_bit..=last_bit).find(|&i| bit_at(&value, i) == want);
    let answer = match found {
        Some(i) => i,
        // Looking for a clear bit without an explicit end: the string is conceptually padded
        // with zeros, so the first clear bit is just past its end.
        None if !want && !end_given => last_bit + 1,
        None => -1,
    };
    ctx.integer(answer);
}

fn bitop(ctx: &mut Ctx) {
    let args = ctx.args;
    let op = ctx.arg_lower(1);
    if !matches!(op.as_str(), "and" | "or" | "xor" | "not") {
        return ctx.syntax_error();
    }
    if op == "not" && args.len() != 4 {
        return ctx.error("ERR BITOP NOT must be called with a single source key.");
    }
    let mut sources = Vec::with_capacity(args.len() - 3);
    for key in &args[3..] {
        let Ok(v) = read_bytes(ctx, key) else { return };
        sources.push(v.unwrap_or_default());
    }
    let len = sources.iter().map(Vec::len).max().unwrap_or(0);
    let mut result = vec![0u8; len];
    for (i, out) in result.iter_mut().enumerate() {
        let byte = |s: &Vec<u8>| s.get(i).copied().unwrap_or(0);
        *out = match op.as_str() {
            "not" => !byte(&sources[0]),
            "and" => sources.iter().map(byte).fold(0xff, |a, b| a & b),
            "or" => sources.iter().map(byte).fold(0, |a, b| a | b),
            _ => sources.iter().map(byte).fold(0, |a, b| a ^ b),
        };
    }
    let dest = &args[2];
    let now = ctx.now_ms;
    if result.is_empty() {
        if ctx.db().remove(dest, now).is_some() {
            ctx.notify(class::GENERIC, "del", dest);
        }
    } else {
        ctx.db().set(dest, Value::Raw(result), false);
        ctx.notify(class::STRING, "set", dest);
    }
    ctx.integer(len as i64);
}

/// A BITFIELD integer type: `i1`..`i64` or `u1`..`u63`.
#[derive(Clone, Copy, Debug, PartialEq)]
struct FieldType {
    signed: bool,
    bits: u32,
}

fn parse_field_type(arg: &[u8]) -> Option<FieldType> {
    let signed = match arg.first()? {
        b'i' | b'I' => true,
        b'u' | b'U' => false,
        _ => return None,
    };
    let bits = parse_i64(&arg[1..])?;
    let valid = if signed {
        (1..=64).contains(&bits)
    } else {
        (1..=63).contains(&bits)
    };
    valid.then_some(FieldType {
        signed,
        bits: bits as u32,
    })
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Overflow {
    Wrap,
    Sat,
    Fail,
}

enum FieldOp {
    Get,
    Set(i64),
    IncrBy(i64),
}

struct FieldCommand {
    ty: FieldType,
    offset: u64,
    op: FieldOp,
    overflow: Overflow,
}

/// Reads `bits` bits at bit `offset` as an unsigned number (bits past the end read as 0).
fn read_field(bytes: &[u8], offset: u64, bits: u32) -> u64 {
    let mut v = 0u64;
    for i in 0..bits as u64 {
        let pos = offset + i;
        let bit = bytes
            .get((pos / 8) as usize)
            .map_or(0, |b| (b >> (7 - pos % 8)) & 1);
        v = (v << 1) | bit as u64;
    }
    v
}

fn write_field(bytes: &mut [u8], offset: u64, bits: u32, value: u64) {
    for i in 0..bits as u64 {
        let pos = offset + i;
        let bit = (value >> (bits as u64 - 1 - i)) & 1;
        let mask = 0x80u8 >> (pos % 8);
        let byte = &mut bytes[(pos / 8) as usize];
        if bit == 1 {
            *byte |= mask;
        } else {
            *byte &= !mask;
        }
    }
}

/// Interprets the low `bits` bits as the field's type.
fn to_value(raw: u64, ty: FieldType) -> i64 {
    if ty.signed && ty.bits < 64 && raw & (1 << (ty.bits - 1)) != 0 {
        (raw | (u64::MAX << ty.bits)) as i64
    } else {
        raw as i64
    }
}

fn field_bounds(ty: FieldType) -> (i128, i128) {
    if ty.signed {
        (-(1i128 << (ty.bits - 1)), (1i128 << (ty.bits - 1)) - 1)
    } else {
        (0, (1i128 << ty.bits) - 1)
    }
}

/// Applies the overflow policy to a wide result; None means FAIL.
fn fit(value: i128, ty: FieldType, overflow: Overflow) -> Option<i64> {
    let (min, max) = field_bounds(ty);
    if value >= min && value <= max {
        return Some(value as i64);
    }
    match overflow {
        Overflow::Fail => None,
        Overflow::Sat => Some(if value > max { max as i64 } else { min as i64 }),
        Overflow::Wrap => {
            let mask: u128 = if ty.bits == 64 {
                u64::MAX as u128
            } else {
                (1u128 << ty.bits) - 1
            };
            Some(to_value((value as u128 & mask) as u64, ty))
        }
    }
}

fn parse_bitfield(ctx: &mut Ctx, read_only: bool) -> Option<Vec<FieldCommand>> {
    let args = ctx.args;
    let mut commands = Vec::new();
    let mut overflow = Overflow::Wrap;
    let mut i = 2;
    while i < args.len() {
        let word = ctx.arg_lower(i);
        let remaining = args.len() - i - 1;
        if word == "overflow" && remaining >= 1 && !read_only {
            overflow = match ctx.arg_lower(i + 1).as_str() {
                "wrap" => Overflow::Wrap,
                "sat" => Overflow::Sat,
                "fail" => Overflow::Fail,
                _ => {
                    ctx.error("ERR Invalid OVERFLOW type specified");
                    return None;
                }
            };
            i += 2;
            continue;
        }
        let needs = match word.as_str() {
            "get" => 2,
            "set" | "incrby" if !read_only => 3,
            "set" | "incrby" | "overflow" => {
                ctx.error("ERR BITFIELD_RO only supports the GET subcommand");
                return None;
            }
            _ => {
                ctx.syntax_error();
                return None;
            }
        };
        if remaining < needs {
            ctx.syntax_error();
            return None;
        }
        let Some(ty) = parse_field_type(&args[i + 1]) else {
            ctx.error("ERR Invalid bitfield type. Use something like i16 u8. Note that u64 is not supported but i64 is.");
            return None;
        };
        let Some(offset) = parse_bit_offset(ctx, &args[i + 2], Some(ty.bits as u64)) else {
            ctx.error(BIT_OFFSET_ERR);
            return None;
        };
        let op = match word.as_str() {
            "get" => FieldOp::Get,
            _ => {
                let n = ctx.arg_i64(i + 3)?;
                if word == "set" {
                    FieldOp::Set(n)
                } else {
                    FieldOp::IncrBy(n)
                }
            }
        };
        commands.push(FieldCommand {
            ty,
            offset,
            op,
            overflow,
        });
        i += needs + 1;
    }
    Some(commands)
}

fn run_bitfield(ctx: &mut Ctx, read_only: bool) {
    let args = ctx.args;
    let Some(commands) = parse_bitfield(ctx, read_only) else {
        return;
    };
    let key = &args[1];
    let writes = commands.iter().any(|c| !matches!(c.op, FieldOp::Get));
    let Ok(current) = read_bytes(ctx, key) else {
        return;
    };
    let mut bytes = current.clone().unwrap_or_default();
    let needed = commands
        .iter()
        .filter(|c| !matches!(c.op, FieldOp::Get))
        .map(|c| ((c.offset + c.ty.bits as u64 + 7) / 8) as usize)
        .max()
        .unwrap_or(0);
    if bytes.len() < needed {
        bytes.resize(needed, 0);
    }
    let mut results: Vec<Option<i64>> = Vec::with_capacity(commands.len());
    let mut changed = false;
    for c in &commands {
        let old = to_value(read_field(&bytes, c.offset, c.ty.bits), c.ty);
        match c.op {
            FieldOp::Get => results.push(Some(old)),
            FieldOp::Set(v) => {
                // SET stores the value truncated to the field, or refuses under FAIL.
                match fit(v as i128, c.ty, c.overflow) {
                    Some(stored) => {
                        write_field(&mut bytes, c.offset, c.ty.bits, stored as u64);
                        changed = true;
                        results.push(Some(old));
                    }
                    None => results.push(None),
                }
            }
            FieldOp::IncrBy(delta) => match fit(old as i128 + delta as i128, c.ty, c.overflow) {
                Some(new) => {
                    write_field(&mut bytes, c.offset, c.ty.bits, new as u64);
                    changed = true;
                    results.push(Some(new));
                }
                None => results.push(None),
            },
        }
    }
    if writes && (changed || current.as_ref().map_or(0, Vec::len) < needed) {
        let now = ctx.now_ms;
        match ctx.db().get_mut(key, now) {
            Some(slot) => {
                *slot = Value::Raw(bytes);
                ctx.db().mark_modified(key);
            }
            None => ctx.db().set(key, Value::Raw(bytes), false),
        }
        ctx.notify(class::STRING, "setbit", key);
    }
    ctx.array(results.len());
    for r in results {
        match r {
            Some(v) => ctx.integer(v),
            None => ctx.null(),
        }
    }
}

fn bitfield(ctx: &mut Ctx) {
    run_bitfield(ctx, false);
}

fn bitfield_ro(ctx: &mut Ctx) {
    run_bitfield(ctx, true);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_types() {
        assert_eq!(
            parse_field_type(b"i64"),
            Some(FieldType {
                signed: true,
                bits: 64
            })
        );
        assert_eq!(parse_field_type(b"u64"), None);
        assert_eq!(parse_field_type(b"u0"), None);
        assert_eq!(parse_field_type(b"x8"), None);
    }

    #[test]
    fn overflow_policies() {
        let u8t = FieldType {
            signed: false,
            bits: 8,
        };
        let i8t = FieldType {
            signed: true,
            bits: 8,
        };
        assert_eq!(fit(256, u8t, Overflow::Wrap), Some(0));
        assert_eq!(fit(300, u8t, Overflow::Sat), Some(255));
        assert_eq!(fit(-1, u8t, Overflow::Sat), Some(0));
        assert_eq!(fit(128, i8t, Overflow::Wrap), Some(-128));
        assert_eq!(fit(128, i8t, Overflow::Fail), None);
        let i64t = FieldType {
            signed: true,
            bits: 64,
        };
        assert_eq!(
            fit(i64::MAX as i128 + 1, i64t, Overflow::Wrap),
            Some(i64::MIN)
        );
    }

    #[test]
    fn field_read_write() {
        let mut bytes = vec![0u8; 2];
        write_field(&mut bytes, 4, 8, 0xAB);
        assert_eq!(bytes, vec![0x0A, 0xB0]);
        assert_eq!(read_field(&bytes, 4, 8), 0xAB);
        assert_eq!(
            to_value(
                0xFF,
                FieldType {
                    signed: true,
                    bits: 8
                }
            ),
            -1
        );
    }

    #[test]
    fn ranges() {
        assert_eq!(resolve(0, -1, 10), Some((0, 9)));
        assert_eq!(resolve(5, 2, 10), None);
        assert_eq!(resolve(-100, -50, 10), Some((0, 0)));
    }
}
