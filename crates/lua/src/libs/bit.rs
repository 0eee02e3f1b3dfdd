//! `bit`: the LuaBitOp API (tobit, tohex, bnot, band, bor, bxor, shifts, rotations, bswap)
//! on 32-bit integers, with LuaBitOp's number normalisation.

use crate::raw::{self, L};
use std::ffi::c_int;

pub fn open(l: L) {
    super::register(
        l,
        "bit",
        &[
            ("tobit", tobit),
            ("bnot", bnot),
            ("band", band),
            ("bor", bor),
            ("bxor", bxor),
            ("lshift", lshift),
            ("rshift", rshift),
            ("arshift", arshift),
            ("rol", rol),
            ("ror", ror),
            ("bswap", bswap),
            ("tohex", tohex),
        ],
    );
}

/// A number's 32-bit pattern as LuaBitOp computes it: adding 2^52 + 2^51 puts the integer,
/// rounded to nearest even and taken modulo 2^32, into the low bits of the double.
fn to_bits(n: f64) -> u32 {
    (n + 6755399441055744.0).to_bits() as u32
}

/// Reads argument `i` as bits, or the argument error Lua's luaL_checknumber raises.
fn arg(l: L, i: c_int, fname: &str) -> Result<u32, String> {
    if !l.is_number(i) {
        return Err(format!(
            "bad argument #{i} to '{fname}' (number expected, got {})",
            crate::api::type_name(l, i)
        ));
    }
    Ok(to_bits(l.to_number(i)))
}

/// Pushes the result as a signed 32-bit number.
fn finish(l: L, result: Result<u32, String>) -> Result<c_int, String> {
    let bits = result?;
    l.push_number(bits as i32 as f64);
    Ok(1)
}

unsafe extern "C-unwind" fn tobit(l: *mut raw::State) -> c_int {
    super::lib_function(l, |l| finish(l, arg(l, 1, "tobit")))
}

unsafe extern "C-unwind" fn bnot(l: *mut raw::State) -> c_int {
    super::lib_function(l, |l| finish(l, arg(l, 1, "bnot").map(|b| !b)))
}

fn fold(l: L, fname: &str, op: fn(u32, u32) -> u32) -> Result<u32, String> {
    let mut acc = arg(l, 1, fname)?;
    for i in 2..=l.top() {
        acc = op(acc, arg(l, i, fname)?);
    }
    Ok(acc)
}

unsafe extern "C-unwind" fn band(l: *mut raw::State) -> c_int {
    super::lib_function(l, |l| finish(l, fold(l, "band", |a, b| a & b)))
}

unsafe extern "C-unwind" fn bor(l: *mut raw::State) -> c_int {
    super::lib_function(l, |l| finish(l, fold(l, "bor", |a, b| a | b)))
}

unsafe extern "C-unwind" fn bxor(l: *mut raw::State) -> c_int {
    super::lib_function(l, |l| finish(l, fold(l, "bxor", |a, b| a ^ b)))
}

fn shift(l: L, fname: &str, op: fn(u32, u32) -> u32) -> Result<u32, String> {
    let b = arg(l, 1, fname)?;
    let n = arg(l, 2, fname)? & 31;
    Ok(op(b, n))
}

unsafe extern "C-unwind" fn lshift(l: *mut raw::State) -> c_int {
    super::lib_function(l, |l| finish(l, shift(l, "lshift", |b, n| b << n)))
}

unsafe extern "C-unwind" fn rshift(l: *mut raw::State) -> c_int {
    super::lib_function(l, |l| finish(l, shift(l, "rshift", |b, n| b >> n)))
}

unsafe extern "C-unwind" fn arshift(l: *mut raw::State) -> c_int {
    super::lib_function(l, |l| {
        finish(l, shift(l, "arshift", |b, n| ((b as i32) >> n) as u32))
    })
}

unsafe extern "C-unwind" fn rol(l: *mut raw::State) -> c_int {
    super::lib_function(l, |l| finish(l, shift(l, "rol", |b, n| b.rotate_left(n))))
}

unsafe extern "C-unwind" fn ror(l: *mut raw::State) -> c_int {
    super::lib_function(l, |l| finish(l, shift(l, "ror", |b, n| b.rotate_right(n))))
}

unsafe extern "C-unwind" fn bswap(l: *mut raw::State) -> c_int {
    super::lib_function(l, |l| finish(l, arg(l, 1, "bswap").map(u32::swap_bytes)))
}

/// `bit.tohex(x [, n])`: the low |n| hex digits (8 by default), uppercase when n < 0.
unsafe extern "C-unwind" fn tohex(l: *mut raw::State) -> c_int {
    super::lib_function(l, |l| {
        let parsed = arg(l, 1, "tohex").and_then(|b| {
            let n = if l.kind(2) == -1 {
                8
            } else {
                arg(l, 2, "tohex")? as i32
            };
            Ok((b, n))
        });
        let (b, n) = match parsed {
            Ok(v) => v,
            Err(msg) => return Err(msg),
        };
        // As patched in Redis: i32::MIN cannot be negated, so it is taken as -(2^31 - 1).
        let n = if n == i32::MIN { i32::MIN + 1 } else { n };
        let (digits, n) = if n < 0 {
            (b"0123456789ABCDEF", -n)
        } else {
            (b"0123456789abcdef", n)
        };
        let n = n.min(8) as usize;
        let mut buf = [0u8; 8];
        let mut v = b;
        for i in (0..n).rev() {
            buf[i] = digits[(v & 15) as usize];
            v >>= 4;
        }
        l.push_bytes(&buf[..n]);
        Ok(1)
    })
}
