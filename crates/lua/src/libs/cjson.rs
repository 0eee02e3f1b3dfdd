//! `cjson`: JSON encode/decode with the behaviour of the lua-cjson 2.1 that Redis embeds:
//! numbers with 14 significant digits, `/` escaped, sparse-array rules, nesting limits,
//! `cjson.null`, the configuration functions, and the same error texts.

use crate::raw::{self, L};
use moonkv_protocol::number::format_g;
use std::ffi::c_int;

const CONFIG_KEY: &str = "__moonkv_cjson_config";

/// Settings of one Lua state's cjson (lua-cjson's defaults).
#[derive(Clone, Copy)]
struct Config {
    sparse_convert: bool,
    sparse_ratio: i32,
    sparse_safe: i32,
    encode_max_depth: i32,
    decode_max_depth: i32,
    precision: i32,
    keep_buffer: bool,
    /// 0: refuse NaN/Inf, 1: write them as numbers, 2: write them as null.
    encode_invalid: u8,
    decode_invalid: bool,
}

const DEFAULTS: Config = Config {
    sparse_convert: false,
    sparse_ratio: 2,
    sparse_safe: 10,
    encode_max_depth: 1000,
    decode_max_depth: 1000,
    precision: 14,
    keep_buffer: true,
    encode_invalid: 0,
    decode_invalid: true,
};

pub fn open(l: L) {
    // The configuration lives in a Lua-owned userdata in the registry.
    let p = l.new_userdata(std::mem::size_of::<Config>()) as *mut Config;
    // SAFETY: Lua returned at least size_of::<Config>() bytes, suitably aligned for any type
    // (LUAI_USER_ALIGNMENT_T is a union of double and pointers); Config is plain data.
    unsafe { p.write(DEFAULTS) };
    l.raw_set_field(raw::REGISTRY, CONFIG_KEY);
    super::register(
        l,
        "cjson",
        &[
            ("encode", encode),
            ("decode", decode),
            ("encode_sparse_array", encode_sparse_array),
            ("encode_max_depth", encode_max_depth),
            ("decode_max_depth", decode_max_depth),
            ("encode_number_precision", encode_number_precision),
            ("encode_keep_buffer", encode_keep_buffer),
            ("encode_invalid_numbers", encode_invalid_numbers),
            ("decode_invalid_numbers", decode_invalid_numbers),
        ],
    );
    l.raw_get_field(raw::GLOBALS, "cjson");
    l.push_light(std::ptr::null_mut());
    l.raw_set_field(-2, "null");
    l.push_str("cjson");
    l.raw_set_field(-2, "_NAME");
    l.push_str("2.1.0");
    l.raw_set_field(-2, "_VERSION");
    l.pop(1);
}

fn config(l: L) -> &'static mut Config {
    l.raw_get_field(raw::REGISTRY, CONFIG_KEY);
    let p = l.to_userdata(-1) as *mut Config;
    l.pop(1);
    // SAFETY: set by `open` on this state and never removed (the registry keeps it alive as
    // long as the state); used only within one C function call at a time.
    unsafe { &mut *p }
}

// ---- encoding -------------------------------------------------------------------------------

unsafe extern "C-unwind" fn encode(l: *mut raw::State) -> c_int {
    super::lib_function(l, |l| {
        if l.top() != 1 {
            return Err("bad argument #1 to 'encode' (expected 1 argument)".into());
        }
        let cfg = *config(l);
        let mut out = Vec::new();
        match encode_value(l, &cfg, &mut out, 0) {
            Ok(()) => {
                l.push_bytes(&out);
                Ok(1)
            }
            Err(msg) => Err(msg),
        }
    })
}

fn escape_into(out: &mut Vec<u8>, s: &[u8]) {
    out.push(b'"');
    for &b in s {
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'/' => out.extend_from_slice(b"\\/"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            8 => out.extend_from_slice(b"\\b"),
            12 => out.extend_from_slice(b"\\f"),
            0..=31 | 127 => out.extend_from_slice(format!("\\u{:04x}", b).as_bytes()),
            _ => out.push(b),
        }
    }
    out.push(b'"');
}

fn encode_number(cfg: &Config, out: &mut Vec<u8>, n: f64) -> Result<(), String> {
    if !n.is_finite() {
        match cfg.encode_invalid {
            0 => return Err("Cannot serialise number: must not be NaN or Inf".into()),
            2 => {
                out.extend_from_slice(b"null");
                return Ok(());
            }
            _ => {}
        }
    }
    out.extend_from_slice(format_g(n, cfg.precision as usize).as_bytes());
    Ok(())
}

/// lua-cjson's array test for the table on top: Some(max index) for an array (0 for an
/// empty table, encoded as an object), None for an object; Err for a refused sparse array.
fn array_length(l: L, cfg: &Config) -> Result<Option<usize>, String> {
    let mut max = 0f64;
    let mut items = 0f64;
    l.push_nil();
    while l.next(-2) {
        if l.kind(-2) == raw::TNUMBER {
            let k = l.to_number(-2);
            if k >= 1.0 && k.floor() == k {
                max = f64::max(max, k);
                items += 1.0;
                l.pop(1);
                continue;
            }
        }
        l.pop(2);
        return Ok(None);
    }
    if cfg.sparse_ratio > 0 && max > items * cfg.sparse_ratio as f64 && max > cfg.sparse_safe as f64
    {
        if !cfg.sparse_convert {
            return Err("Cannot serialise table: excessively sparse array".into());
        }
        return Ok(None);
    }
    Ok(Some(max as usize))
}

fn encode_value(l: L, cfg: &Config, out: &mut Vec<u8>, depth: i32) -> Result<(), String> {
    super::within_budget(l, out.len())?;
    match l.kind(-1) {
        raw::TSTRING => escape_into(out, l.to_bytes(-1).unwrap_or_default()),
        raw::TNUMBER => encode_number(cfg, out, l.to_number(-1))?,
        raw::TBOOLEAN => out.extend_from_slice(if l.to_bool(-1) { b"true" } else { b"false" }),
        raw::TNIL => out.extend_from_slice(b"null"),
        2 if l.to_userdata(-1).is_null() => out.extend_from_slice(b"null"),
        raw::TTABLE => {
            let depth = depth + 1;
            if depth > cfg.encode_max_depth {
                return Err(format!("Cannot serialise, excessive nesting ({depth})"));
            }
            if !l.check_stack(3) {
                return Err(format!("Cannot serialise, excessive nesting ({depth})"));
            }
            match array_length(l, cfg)? {
                Some(len) if len > 0 => {
                    out.push(b'[');
                    for i in 1..=len {
                        if i > 1 {
                            out.push(b',');
                        }
                        l.raw_get_index(-1, i as i64);
                        let r = encode_value(l, cfg, out, depth);
                        l.pop(1);
                        r?;
                    }
                    out.push(b']');
                }
                _ => {
                    out.push(b'{');
                    let mut first = true;
                    l.push_nil();
                    while l.next(-2) {
                        if !first {
                            out.push(b',');
                        }
                        first = false;
                        match l.kind(-2) {
                            raw::TSTRING => escape_into(out, l.to_bytes(-2).unwrap_or_default()),
                            raw::TNUMBER => {
                                out.push(b'"');
                                let r = encode_number(cfg, out, l.to_number(-2));
                                if let Err(e) = r {
                                    l.pop(2);
                                    return Err(e);
                                }
                                out.push(b'"');
                            }
                            _ => {
                                l.pop(2);
                                return Err(
                                    "Cannot serialise table: table key must be a number or string"
                                        .into(),
                                );
                            }
                        }
                        out.push(b':');
                        if let Err(e) = encode_value(l, cfg, out, depth) {
                            l.pop(2);
                            return Err(e);
                        }
                        l.pop(1);
                    }
                    out.push(b'}');
                }
            }
        }
        _ => {
            let kind = crate::api::type_name(l, -1);
            return Err(format!("Cannot serialise {kind}: type not supported"));
        }
    }
    Ok(())
}

// ---- decoding -------------------------------------------------------------------------------

unsafe extern "C-unwind" fn decode(l: *mut raw::State) -> c_int {
    super::lib_function(l, |l| {
        if l.top() != 1 {
            return Err("bad argument #1 to 'decode' (expected 1 argument)".into());
        }
        let Some(text) = l.to_bytes(1).filter(|_| l.is_string_or_number(1)) else {
            let got = crate::api::type_name(l, 1);
            return Err(format!(
                "bad argument #1 to 'decode' (string expected, got {got})"
            ));
        };
        let cfg = *config(l);
        let mut parser = Parser {
            l,
            text,
            pos: 0,
            depth: 0,
            cfg,
        };
        let result = parser.document();
        match result {
            Ok(()) => Ok(1),
            Err(msg) => Err(msg),
        }
    })
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Token {
    ObjBegin,
    ObjEnd,
    ArrBegin,
    ArrEnd,
    Str,
    Number,
    Boolean,
    Null,
    Colon,
    Comma,
    End,
    /// A malformed token, with lua-cjson's description of it.
    Error(&'static str),
}

impl Token {
    fn name(self) -> &'static str {
        match self {
            Token::ObjBegin => "T_OBJ_BEGIN",
            Token::ObjEnd => "T_OBJ_END",
            Token::ArrBegin => "T_ARR_BEGIN",
            Token::ArrEnd => "T_ARR_END",
            Token::Str => "T_STRING",
            Token::Number => "T_NUMBER",
            Token::Boolean => "T_BOOLEAN",
            Token::Null => "T_NULL",
            Token::Colon => "T_COLON",
            Token::Comma => "T_COMMA",
            Token::End => "T_END",
            Token::Error(what) => what,
        }
    }
}

struct Parser<'a> {
    l: L,
    text: &'a [u8],
    pos: usize,
    depth: i32,
    cfg: Config,
}

/// A token read, with its start offset; scalar values are pushed on the Lua stack.
struct Read {
    token: Token,
    at: usize,
}

/// An array or object being filled: its table is on the Lua stack (with an object's
/// member key above it).
enum Open {
    /// The index the next element goes to.
    Array(i64),
    Object,
}

impl Parser<'_> {
    /// Parses the whole text into one value on the Lua stack. Open arrays and objects are
    /// tracked in a Rust vector rather than by recursion, so a deep document (as deep as
    /// `decode_max_depth` and the Lua stack allow) cannot exhaust the thread's stack.
    fn document(&mut self) -> Result<(), String> {
        let l = self.l;
        let mut open: Vec<Open> = Vec::new();
        let mut read = self.next_token()?;
        loop {
            // `read` starts a value.
            match read.token {
                Token::Str | Token::Number | Token::Boolean | Token::Null => {}
                Token::ObjBegin => {
                    self.descend(read.at)?;
                    l.new_table(0, 0);
                    let first = self.next_token()?;
                    if first.token == Token::ObjEnd {
                        self.depth -= 1;
                    } else {
                        read = self.member(first)?;
                        open.push(Open::Object);
                        continue;
                    }
                }
                Token::ArrBegin => {
                    self.descend(read.at)?;
                    l.new_table(0, 0);
                    let first = self.next_token()?;
                    if first.token == Token::ArrEnd {
                        self.depth -= 1;
                    } else {
                        read = first;
                        open.push(Open::Array(1));
                        continue;
                    }
                }
                _ => return Err(self.expected("value", &read)),
            }
            // A complete value is on top: store it in the containers it completes.
            loop {
                match open.last_mut() {
                    None => {
                        let last = self.next_token()?;
                        if last.token != Token::End {
                            return Err(self.expected("the end", &last));
                        }
                        return Ok(());
                    }
                    Some(Open::Array(i)) => {
                        l.raw_set_index(-2, *i);
                        *i += 1;
                        let next = self.next_token()?;
                        match next.token {
                            Token::ArrEnd => {}
                            Token::Comma => {
                                read = self.next_token()?;
                                break;
                            }
                            _ => return Err(self.expected("comma or array end", &next)),
                        }
                    }
                    Some(Open::Object) => {
                        l.raw_set(-3);
                        let next = self.next_token()?;
                        match next.token {
                            Token::ObjEnd => {}
                            Token::Comma => {
                                let key = self.next_token()?;
                                read = self.member(key)?;
                                break;
                            }
                            _ => return Err(self.expected("comma or object end", &next)),
                        }
                    }
                }
                // The container just ended: it is the complete value now.
                self.depth -= 1;
                open.pop();
            }
        }
    }

    /// Reads `key : ` of an object member, `key` being the token already read (the key
    /// string stays pushed); returns the token that starts the member's value.
    fn member(&mut self, key: Read) -> Result<Read, String> {
        if key.token != Token::Str {
            return Err(self.expected("object key string", &key));
        }
        let colon = self.next_token()?;
        if colon.token != Token::Colon {
            return Err(self.expected("colon", &colon));
        }
        self.next_token()
    }

    fn expected(&self, what: &str, read: &Read) -> String {
        if read.token != Token::End
            && matches!(
                read.token,
                Token::Str | Token::Number | Token::Boolean | Token::Null
            )
        {
            // The scalar was pushed; drop it.
            self.l.pop(1);
        }
        format!(
            "Expected {} but found {} at character {}",
            what,
            read.token.name(),
            read.at + 1
        )
    }

    fn skip_blanks(&mut self) {
        while self.pos < self.text.len()
            && matches!(self.text[self.pos], b' ' | b'\t' | b'\n' | b'\r')
        {
            self.pos += 1;
        }
    }

    /// Reads one token; strings, numbers, booleans and null are pushed as Lua values.
    fn next_token(&mut self) -> Result<Read, String> {
        self.skip_blanks();
        let at = self.pos;
        let Some(&c) = self.text.get(self.pos) else {
            return Ok(Read {
                token: Token::End,
                at,
            });
        };
        let simple = match c {
            b'{' => Some(Token::ObjBegin),
            b'}' => Some(Token::ObjEnd),
            b'[' => Some(Token::ArrBegin),
            b']' => Some(Token::ArrEnd),
            b':' => Some(Token::Colon),
            b',' => Some(Token::Comma),
            _ => None,
        };
        if let Some(token) = simple {
            self.pos += 1;
            return Ok(Read { token, at });
        }
        let l = self.l;
        super::within_budget(l, 0)?;
        if !l.check_stack(2) {
            return Err("Cannot decode: out of stack".into());
        }
        let token = if c == b'"' {
            match self.string() {
                Ok(s) => {
                    l.push_bytes(&s);
                    Token::Str
                }
                Err(what) => Token::Error(what),
            }
        } else if c == b'-' || c.is_ascii_digit() {
            self.number()
        } else if self.text[self.pos..].starts_with(b"true") {
            self.pos += 4;
            l.push_bool(true);
            Token::Boolean
        } else if self.text[self.pos..].starts_with(b"false") {
            self.pos += 5;
            l.push_bool(false);
            Token::Boolean
        } else if self.text[self.pos..].starts_with(b"null") {
            self.pos += 4;
            l.push_light(std::ptr::null_mut());
            Token::Null
        } else if self.cfg.decode_invalid && (c == b'i' || c == b'I' || c == b'n' || c == b'N') {
            self.number()
        } else {
            Token::Error("invalid token")
        };
        Ok(Read { token, at })
    }

    fn number(&mut self) -> Token {
        let start = self.pos;
        let mut end = start;
        while end < self.text.len()
            && matches!(self.text[end], b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E' | b'x' | b'X' | b'a'..=b'd' | b'f' | b'A'..=b'D' | b'F' | b'i' | b'I' | b'n' | b'N' | b't' | b'T' | b'y' | b'Y')
        {
            end += 1;
        }
        let text = std::str::from_utf8(&self.text[start..end]).unwrap_or("");
        let value = parse_c_number(text, self.cfg.decode_invalid);
        match value {
            Some((n, used)) => {
                self.pos = start + used;
                self.l.push_number(n);
                Token::Number
            }
            None => Token::Error("invalid number"),
        }
    }

    /// Reads a string token starting at the opening quote; the bytes, or the error found.
    fn string(&mut self) -> Result<Vec<u8>, &'static str> {
        self.pos += 1;
        let mut out = Vec::new();
        loop {
            let Some(&c) = self.text.get(self.pos) else {
                return Err("unexpected end of string");
            };
            self.pos += 1;
            match c {
                b'"' => return Ok(out),
                b'\\' => {
                    let Some(&e) = self.text.get(self.pos) else {
                        return Err("unexpected end of string");
                    };
                    self.pos += 1;
                    match e {
                        b'"' | b'\\' | b'/' => out.push(e),
                        b'b' => out.push(8),
                        b'f' => out.push(12),
                        b'n' => out.push(b'\n'),
                        b'r' => out.push(b'\r'),
                        b't' => out.push(b'\t'),
                        b'u' => {
                            let cp = self.unicode_escape().ok_or("invalid unicode escape code")?;
                            let ch = char::from_u32(cp).ok_or("invalid unicode escape code")?;
                            let mut buf = [0u8; 4];
                            out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                        }
                        _ => return Err("invalid escape code"),
                    }
                }
                _ => out.push(c),
            }
        }
    }

    fn hex4(&mut self) -> Option<u32> {
        let digits = self.text.get(self.pos..self.pos + 4)?;
        // Exactly four hex digits (from_str_radix alone would also take a sign).
        if !digits.iter().all(u8::is_ascii_hexdigit) {
            return None;
        }
        let s = std::str::from_utf8(digits).ok()?;
        let v = u32::from_str_radix(s, 16).ok()?;
        self.pos += 4;
        Some(v)
    }

    /// A `\uXXXX` escape (after the `u`), joining a UTF-16 surrogate pair.
    fn unicode_escape(&mut self) -> Option<u32> {
        let first = self.hex4()?;
        if (0xDC00..0xE000).contains(&first) {
            return None;
        }
        if (0xD800..0xDC00).contains(&first) {
            if self.text.get(self.pos..self.pos + 2)? != b"\\u" {
                return None;
            }
            self.pos += 2;
            let low = self.hex4()?;
            if !(0xDC00..0xE000).contains(&low) {
                return None;
            }
            return Some(0x10000 + ((first - 0xD800) << 10) + (low - 0xDC00));
        }
        Some(first)
    }

    fn descend(&mut self, at: usize) -> Result<(), String> {
        self.depth += 1;
        if self.depth > self.cfg.decode_max_depth || !self.l.check_stack(4) {
            return Err(format!(
                "Found too many nested data structures ({}) at character {}",
                self.depth,
                at + 1
            ));
        }
        Ok(())
    }
}

/// Parses the longest prefix of `text` that C's strtod would: decimal numbers, and with
/// `invalid` also hexadecimal, infinity and nan. Returns the value and the bytes used.
fn parse_c_number(text: &str, invalid: bool) -> Option<(f64, usize)> {
    let lower = text.to_ascii_lowercase();
    let (sign, body) = match lower.as_bytes().first() {
        Some(b'-') => (-1.0, &lower[1..]),
        Some(b'+') => (1.0, &lower[1..]),
        _ => (1.0, &lower[..]),
    };
    let sign_len = lower.len() - body.len();
    if invalid {
        for (word, value) in [
            ("infinity", f64::INFINITY),
            ("inf", f64::INFINITY),
            ("nan", f64::NAN),
        ] {
            if body.starts_with(word) {
                return Some((sign * value, sign_len + word.len()));
            }
        }
        if let Some(hex) = body.strip_prefix("0x") {
            let digits = hex.bytes().take_while(u8::is_ascii_hexdigit).count();
            if digits > 0 {
                let v = u64::from_str_radix(&hex[..digits], 16).ok()? as f64;
                return Some((sign * v, sign_len + 2 + digits));
            }
        }
    }
    // The longest prefix that is a decimal float (strtod's and Rust's grammar alike:
    // digits, an optional fraction, at least one digit in all, then an optional exponent),
    // found in one pass: trying ever shorter prefixes would take quadratic time on a long
    // run of number-like characters.
    let b = body.as_bytes();
    let digits_from = |i: usize| {
        b[i.min(b.len())..]
            .iter()
            .take_while(|c| c.is_ascii_digit())
            .count()
    };
    let int_digits = digits_from(0);
    let mut end = int_digits;
    if b.get(end) == Some(&b'.') {
        let frac_digits = digits_from(end + 1);
        if int_digits + frac_digits > 0 {
            end += 1 + frac_digits;
        }
    }
    if end == 0 {
        return None;
    }
    if b.get(end) == Some(&b'e') {
        let mut j = end + 1;
        if matches!(b.get(j), Some(b'+' | b'-')) {
            j += 1;
        }
        let exp_digits = digits_from(j);
        if exp_digits > 0 {
            end = j + exp_digits;
        }
    }
    let v = body[..end].parse::<f64>().ok()?;
    Some((sign * v, sign_len + end))
}

// ---- configuration ----------------------------------------------------------------------------

/// Reads an optional integer argument within [min, max], as lua-cjson's config functions do.
fn int_arg(l: L, i: c_int, min: i32, max: i32) -> Result<Option<i32>, String> {
    match l.kind(i) {
        -1 | raw::TNIL => Ok(None),
        _ if l.is_number(i) => {
            let v = l.to_number(i) as i64;
            if v < min as i64 || v > max as i64 {
                Err(format!(
                    "bad argument #{i} to '?' (expected integer between {min} and {max})"
                ))
            } else {
                Ok(Some(v as i32))
            }
        }
        _ => Err(format!(
            "bad argument #{i} to '?' (number expected, got {})",
            crate::api::type_name(l, i)
        )),
    }
}

/// Reads an optional boolean argument (`true`/`false`, or `"on"`/`"off"` as lua-cjson allows).
fn bool_arg(l: L, i: c_int) -> Result<Option<bool>, String> {
    match l.kind(i) {
        -1 | raw::TNIL => Ok(None),
        raw::TBOOLEAN => Ok(Some(l.to_bool(i))),
        raw::TSTRING => match l.to_bytes(i).unwrap_or_default() {
            b"on" => Ok(Some(true)),
            b"off" => Ok(Some(false)),
            _ => Err(format!("bad argument #{i} to '?' (invalid option)")),
        },
        _ => Err(format!("bad argument #{i} to '?' (boolean expected)")),
    }
}

unsafe extern "C-unwind" fn encode_sparse_array(l: *mut raw::State) -> c_int {
    super::lib_function(l, |l| {
        let cfg = config(l);
        if let Some(b) = bool_arg(l, 1)? {
            cfg.sparse_convert = b;
        }
        if let Some(n) = int_arg(l, 2, 0, i32::MAX)? {
            cfg.sparse_ratio = n;
        }
        if let Some(n) = int_arg(l, 3, 0, i32::MAX)? {
            cfg.sparse_safe = n;
        }
        l.push_bool(cfg.sparse_convert);
        l.push_number(cfg.sparse_ratio as f64);
        l.push_number(cfg.sparse_safe as f64);
        Ok(3)
    })
}

fn depth_setting(l: L, pick: fn(&mut Config) -> &mut i32) -> Result<c_int, String> {
    let cfg = config(l);
    if let Some(n) = int_arg(l, 1, 1, i32::MAX)? {
        *pick(cfg) = n;
    }
    l.push_number(*pick(cfg) as f64);
    Ok(1)
}

unsafe extern "C-unwind" fn encode_max_depth(l: *mut raw::State) -> c_int {
    super::lib_function(l, |l| depth_setting(l, |c| &mut c.encode_max_depth))
}

unsafe extern "C-unwind" fn decode_max_depth(l: *mut raw::State) -> c_int {
    super::lib_function(l, |l| depth_setting(l, |c| &mut c.decode_max_depth))
}

unsafe extern "C-unwind" fn encode_number_precision(l: *mut raw::State) -> c_int {
    super::lib_function(l, |l| {
        let cfg = config(l);
        if let Some(n) = int_arg(l, 1, 1, 14)? {
            cfg.precision = n;
        }
        l.push_number(cfg.precision as f64);
        Ok(1)
    })
}

unsafe extern "C-unwind" fn encode_keep_buffer(l: *mut raw::State) -> c_int {
    super::lib_function(l, |l| {
        let cfg = config(l);
        if let Some(b) = bool_arg(l, 1)? {
            cfg.keep_buffer = b;
        }
        l.push_bool(cfg.keep_buffer);
        Ok(1)
    })
}

unsafe extern "C-unwind" fn encode_invalid_numbers(l: *mut raw::State) -> c_int {
    super::lib_function(l, |l| {
        let r = (|| {
            let cfg = config(l);
            if l.kind(1) == raw::TSTRING && l.to_bytes(1) == Some(b"null") {
                cfg.encode_invalid = 2;
            } else if let Some(b) = bool_arg(l, 1)? {
                cfg.encode_invalid = b as u8;
            }
            match cfg.encode_invalid {
                2 => l.push_str("null"),
                v => l.push_bool(v == 1),
            }
            Ok(1)
        })();
        r
    })
}

unsafe extern "C-unwind" fn decode_invalid_numbers(l: *mut raw::State) -> c_int {
    super::lib_function(l, |l| {
        let cfg = config(l);
        if let Some(b) = bool_arg(l, 1)? {
            cfg.decode_invalid = b;
        }
        l.push_bool(cfg.decode_invalid);
        Ok(1)
    })
}
