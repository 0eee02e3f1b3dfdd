//! `struct`: packing numbers and strings into binary strings and back (pack, unpack, size),
//! with the format language of Roberto Ierusalimschy's struct library that Redis ships:
//! `<`/`>` byte order, `!n` alignment, `b B h H l L T i[n] I[n]` integers, `f d` floats,
//! `c[n]` fixed strings, `s` zero-terminated strings, `x` padding.

use crate::raw::{self, L};
use std::ffi::c_int;

/// Largest integer size (`i32` and the like) the format accepts.
const MAX_INT_SIZE: usize = 32;
/// Alignment that `!` without a number selects (that of a double on this platform).
const MAX_ALIGN: usize = 8;

pub fn open(l: L) {
    super::register(
        l,
        "struct",
        &[("pack", pack), ("unpack", unpack), ("size", size)],
    );
}

#[derive(Clone, Copy)]
struct Header {
    little: bool,
    align: usize,
}

const DEFAULT_HEADER: Header = Header {
    little: cfg!(target_endian = "little"),
    align: 1,
};

struct Format<'a> {
    fmt: &'a [u8],
    pos: usize,
}

impl Format<'_> {
    fn number(&mut self, default: usize) -> Result<usize, String> {
        if !self.fmt.get(self.pos).is_some_and(u8::is_ascii_digit) {
            return Ok(default);
        }
        let mut n: usize = 0;
        while let Some(d) = self.fmt.get(self.pos).filter(|c| c.is_ascii_digit()) {
            n = n
                .checked_mul(10)
                .and_then(|n| n.checked_add((d - b'0') as usize))
                .filter(|&n| n <= i32::MAX as usize)
                .ok_or("integral size overflow")?;
            self.pos += 1;
        }
        Ok(n)
    }

    /// The size of option `opt` (reading its number), 0 for options without one.
    fn option_size(&mut self, opt: u8) -> Result<usize, String> {
        Ok(match opt {
            b'b' | b'B' => 1,
            b'h' | b'H' => 2,
            b'l' | b'L' | b'T' | b'd' => 8,
            b'f' => 4,
            b'x' => 1,
            b'c' => self.number(1)?,
            b'i' | b'I' => {
                let n = self.number(4)?;
                if n > MAX_INT_SIZE {
                    return Err(format!(
                        "integral size {n} is larger than limit of {MAX_INT_SIZE}"
                    ));
                }
                n
            }
            _ => 0,
        })
    }

    /// Applies a control option (byte order, alignment, blank), or rejects an unknown one.
    fn control(&mut self, opt: u8, h: &mut Header, fname: &str) -> Result<(), String> {
        match opt {
            b' ' => {}
            b'>' => h.little = false,
            b'<' => h.little = true,
            b'!' => {
                let a = self.number(MAX_ALIGN)?;
                if a == 0 || a & (a - 1) != 0 {
                    return Err(format!("alignment {a} is not a power of 2"));
                }
                h.align = a;
            }
            _ => {
                return Err(format!(
                    "bad argument #1 to '{fname}' (invalid format option '{}')",
                    opt as char
                ))
            }
        }
        Ok(())
    }
}

/// Padding needed before an item of `size` at offset `len`.
fn padding(len: usize, h: &Header, opt: u8, size: usize) -> usize {
    if size == 0 || opt == b'c' {
        return 0;
    }
    let size = size.min(h.align);
    if size <= 1 {
        return 0;
    }
    (size - (len & (size - 1))) & (size - 1)
}

fn format_arg<'a>(l: L, fname: &str) -> Result<&'a [u8], String> {
    if !l.is_string_or_number(1) {
        return Err(format!(
            "bad argument #1 to '{fname}' (string expected, got {})",
            crate::api::type_name(l, 1)
        ));
    }
    Ok(l.to_bytes(1).unwrap_or_default())
}

fn number_arg(l: L, i: c_int) -> Result<f64, String> {
    if !l.is_number(i) {
        return Err(format!(
            "bad argument #{i} to 'pack' (number expected, got {})",
            crate::api::type_name(l, i)
        ));
    }
    Ok(l.to_number(i))
}

fn put_integer(out: &mut Vec<u8>, n: f64, little: bool, size: usize) {
    let mut value: u64 = if n < 0.0 { n as i64 as u64 } else { n as u64 };
    let mut bytes = vec![0u8; size];
    for i in 0..size {
        let at = if little { i } else { size - 1 - i };
        bytes[at] = (value & 0xff) as u8;
        value = value.checked_shr(8).unwrap_or(0);
    }
    out.extend_from_slice(&bytes);
}

fn get_integer(data: &[u8], little: bool, signed: bool, size: usize) -> f64 {
    let mut v: u64 = 0;
    for i in 0..size {
        let b = if little { data[size - 1 - i] } else { data[i] };
        v = (v << 8) | b as u64;
    }
    if !signed {
        return v as f64;
    }
    // `i0` reads no bytes: zero, without a sign bit to extend.
    if (1..8).contains(&size) {
        let mask = u64::MAX << (size * 8 - 1);
        if v & mask != 0 {
            v |= mask;
        }
    }
    v as i64 as f64
}

fn pack_impl(l: L) -> Result<Vec<u8>, String> {
    let fmt = format_arg(l, "pack")?;
    let mut f = Format { fmt, pos: 0 };
    let mut h = DEFAULT_HEADER;
    let mut out = Vec::new();
    let mut arg: c_int = 2;
    while f.pos < fmt.len() {
        super::within_budget(l, out.len())?;
        let opt = fmt[f.pos];
        f.pos += 1;
        let mut size = f.option_size(opt)?;
        let pad = padding(out.len(), &h, opt, size);
        out.resize(out.len() + pad, 0);
        match opt {
            b'b' | b'B' | b'h' | b'H' | b'l' | b'L' | b'T' | b'i' | b'I' => {
                put_integer(&mut out, number_arg(l, arg)?, h.little, size);
                arg += 1;
            }
            b'x' => out.push(0),
            b'f' => {
                let v = number_arg(l, arg)? as f32;
                arg += 1;
                out.extend_from_slice(&if h.little {
                    v.to_le_bytes()
                } else {
                    v.to_be_bytes()
                });
            }
            b'd' => {
                let v = number_arg(l, arg)?;
                arg += 1;
                out.extend_from_slice(&if h.little {
                    v.to_le_bytes()
                } else {
                    v.to_be_bytes()
                });
            }
            b'c' | b's' => {
                if !l.is_string_or_number(arg) {
                    return Err(format!(
                        "bad argument #{arg} to 'pack' (string expected, got {})",
                        crate::api::type_name(l, arg)
                    ));
                }
                let s = l.to_bytes(arg).unwrap_or_default();
                arg += 1;
                if size == 0 {
                    size = s.len();
                }
                if s.len() < size {
                    return Err(format!("bad argument #{arg} to 'pack' (string too short)"));
                }
                out.extend_from_slice(&s[..size]);
                if opt == b's' {
                    out.push(0);
                }
            }
            _ => f.control(opt, &mut h, "pack")?,
        }
    }
    Ok(out)
}

unsafe extern "C-unwind" fn pack(l: *mut raw::State) -> c_int {
    super::lib_function(l, |l| match pack_impl(l) {
        Ok(bytes) => {
            l.push_bytes(&bytes);
            Ok(1)
        }
        Err(msg) => Err(msg),
    })
}

fn unpack_impl(l: L) -> Result<c_int, String> {
    let fmt = format_arg(l, "unpack")?;
    if !l.is_string_or_number(2) {
        return Err(format!(
            "bad argument #2 to 'unpack' (string expected, got {})",
            crate::api::type_name(l, 2)
        ));
    }
    let data = l.to_bytes(2).unwrap_or_default();
    let start = if l.is_number(3) {
        l.to_number(3) as i64
    } else {
        1
    };
    if start <= 0 {
        return Err("bad argument #3 to 'unpack' (offset must be 1 or greater)".into());
    }
    let mut pos = (start - 1) as usize;
    let mut f = Format { fmt, pos: 0 };
    let mut h = DEFAULT_HEADER;
    let mut n: c_int = 0;
    let too_short = || "bad argument #2 to 'unpack' (data string too short)".to_string();
    while f.pos < fmt.len() {
        let opt = fmt[f.pos];
        f.pos += 1;
        let mut size = f.option_size(opt)?;
        pos += padding(pos, &h, opt, size);
        if size > data.len() || pos > data.len() - size {
            return Err(too_short());
        }
        if !l.check_stack(2) {
            return Err("too many results".into());
        }
        super::within_budget(l, 0)?;
        match opt {
            b'b' | b'B' | b'h' | b'H' | b'l' | b'L' | b'T' | b'i' | b'I' => {
                l.push_number(get_integer(
                    &data[pos..pos + size],
                    h.little,
                    opt.is_ascii_lowercase(),
                    size,
                ));
                n += 1;
            }
            b'x' => {}
            b'f' => {
                let b: [u8; 4] = data[pos..pos + 4].try_into().map_err(|_| too_short())?;
                l.push_number(if h.little {
                    f32::from_le_bytes(b)
                } else {
                    f32::from_be_bytes(b)
                } as f64);
                n += 1;
            }
            b'd' => {
                let b: [u8; 8] = data[pos..pos + 8].try_into().map_err(|_| too_short())?;
                l.push_number(if h.little {
                    f64::from_le_bytes(b)
                } else {
                    f64::from_be_bytes(b)
                });
                n += 1;
            }
            b'c' => {
                if size == 0 {
                    if n == 0 || !l.is_number(-1) {
                        return Err("format 'c0' needs a previous size".into());
                    }
                    size = l.to_number(-1).max(0.0) as usize;
                    l.pop(1);
                    n -= 1;
                    if size > data.len() || pos > data.len() - size {
                        return Err(too_short());
                    }
                }
                l.push_bytes(&data[pos..pos + size]);
                n += 1;
            }
            b's' => {
                let Some(end) = data[pos..].iter().position(|&b| b == 0) else {
                    return Err("unfinished string in data".into());
                };
                size = end + 1;
                l.push_bytes(&data[pos..pos + end]);
                n += 1;
            }
            _ => f.control(opt, &mut h, "unpack")?,
        }
        pos += size;
    }
    l.push_number((pos + 1) as f64);
    Ok(n + 1)
}

unsafe extern "C-unwind" fn unpack(l: *mut raw::State) -> c_int {
    super::lib_function(l, unpack_impl)
}

fn size_impl(l: L) -> Result<usize, String> {
    let fmt = format_arg(l, "size")?;
    let mut f = Format { fmt, pos: 0 };
    let mut h = DEFAULT_HEADER;
    let mut pos = 0usize;
    while f.pos < fmt.len() {
        let opt = fmt[f.pos];
        f.pos += 1;
        let size = f.option_size(opt)?;
        pos += padding(pos, &h, opt, size);
        if opt == b's' {
            return Err("bad argument #1 to 'size' (option 's' has no fixed size)".into());
        }
        if opt == b'c' && size == 0 {
            return Err("bad argument #1 to 'size' (option 'c0' has no fixed size)".into());
        }
        if !opt.is_ascii_alphanumeric() {
            f.control(opt, &mut h, "size")?;
        }
        pos += size;
    }
    Ok(pos)
}

unsafe extern "C-unwind" fn size(l: *mut raw::State) -> c_int {
    super::lib_function(l, |l| match size_impl(l) {
        Ok(n) => {
            l.push_number(n as f64);
            Ok(1)
        }
        Err(msg) => Err(msg),
    })
}
