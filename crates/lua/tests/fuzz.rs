//! Bounded fuzzing of the decoders a script can feed arbitrary bytes to: `cjson.decode`,
//! `cmsgpack.unpack` (and `unpack_limit`) and `struct.unpack`, plus cheap round trips through
//! `cjson.encode` and `cmsgpack.pack` of what was decoded.
//!
//! The bytes reach the decoder exactly: they are passed as ARGV to a script that calls it.
//! Every input must either decode or fail with a Lua error that the decoder raised on
//! purpose (a [`ScriptError`] with one of its messages): never a panic (which the library
//! wrapper would turn into "internal error ..."), an abort or a hang. After every input the
//! VM must still run `return 1`.
//!
//! Inputs come from a deterministic generator (no dependency): valid documents built from
//! random value trees, then mutated (bit flips, truncation, spliced tokens such as headers
//! claiming 4e9 elements), and plain random bytes; and crafted edge cases (deep nesting, huge
//! declared lengths, every truncation of a document, NaN/Inf, long number tokens, the
//! script memory limit). The whole file runs in a few seconds in a debug build.
//!
//! Knobs (for longer local runs or slow tools such as valgrind):
//! - `MOONKV_FUZZ_CASES`: random inputs per decoder (default 1500);
//! - `MOONKV_FUZZ_SEED`: seed of the generator (default fixed; a failure prints the seed
//!   and the input in hex, and the seed reproduces it);
//! - `MOONKV_FUZZ_TIME_SCALE`: multiplies the time bounds (one input may take 5 s before it
//!   counts as a hang, a long token 3 s before it counts as non-linear), e.g. 50 under
//!   valgrind (default 1).

use bytes::Bytes;
use moonkv_lua::{Host, LuaVm, ScriptError, VmKind};
use moonkv_protocol::{ErrorReply, Protocol, ReplySink, RespWriter};
use std::time::{Duration, Instant};

// ---- harness -------------------------------------------------------------------------------

/// The scripts here call no commands; any that does gets `OK`.
struct QuietHost;

impl Host for QuietHost {
    fn call(&mut self, _args: &[Bytes], reply: &mut dyn ReplySink) -> Result<(), ErrorReply> {
        reply.simple("OK");
        Ok(())
    }
    fn set_repl(&mut self, _flags: i64) {}
    fn log(&mut self, _level: i64, _message: &[u8]) {}
    fn acl_check(&mut self, _args: &[Bytes]) -> Option<bool> {
        Some(true)
    }
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn cases() -> usize {
    env_or("MOONKV_FUZZ_CASES", 1500)
}

fn seed() -> u64 {
    env_or("MOONKV_FUZZ_SEED", 0x6d6f_6f6e_6b76_0001)
}

/// `base` stretched by MOONKV_FUZZ_TIME_SCALE, for slow tools.
fn time_bound(base: Duration) -> Duration {
    base * env_or("MOONKV_FUZZ_TIME_SCALE", 1u32)
}

fn max_case_time() -> Duration {
    time_bound(Duration::from_secs(5))
}

fn hex(b: &[u8]) -> String {
    const MAX: usize = 400;
    let mut s: String = b.iter().take(MAX).map(|x| format!("{x:02x}")).collect();
    if b.len() > MAX {
        s.push_str(&format!("... ({} bytes)", b.len()));
    }
    s
}

/// A VM with compiled scripts, run against byte-exact ARGV.
struct Fuzzer {
    vm: LuaVm,
    one: moonkv_lua::CompiledId,
}

impl Fuzzer {
    fn new() -> Fuzzer {
        let mut vm = LuaVm::new(VmKind::Eval);
        let one = vm.compile(b"return 1").expect("compiles");
        Fuzzer { vm, one }
    }

    fn compile(&mut self, body: &str) -> moonkv_lua::CompiledId {
        self.vm
            .compile(body.as_bytes())
            .expect("fuzz script compiles")
    }

    fn run(&mut self, f: moonkv_lua::CompiledId, args: &[&[u8]]) -> Result<String, ScriptError> {
        let args: Vec<Bytes> = args.iter().map(|a| Bytes::copy_from_slice(a)).collect();
        let mut out = Vec::new();
        let mut w = RespWriter::new(&mut out, Protocol::Resp2);
        let r = self.vm.run(f, "fuzz", &[], &args, &mut QuietHost, &mut w);
        r.map(|_| String::from_utf8_lossy(&out).into_owned())
    }

    /// Runs `f` on `args` and checks the outcome: a reply, or an error whose message contains
    /// one of `expected` (the decoder's own errors); then that the VM still works.
    fn check(
        &mut self,
        what: &str,
        f: moonkv_lua::CompiledId,
        args: &[&[u8]],
        expected: &[&str],
    ) -> Result<String, ScriptError> {
        let started = Instant::now();
        let r = self.run(f, args);
        let took = started.elapsed();
        let show = || {
            args.iter()
                .enumerate()
                .map(|(i, a)| format!("ARGV[{}] = {}", i + 1, hex(a)))
                .collect::<Vec<_>>()
                .join(", ")
        };
        assert!(
            took <= max_case_time(),
            "{what}: took {took:?} (a hang?), seed {:#x}, {}",
            seed(),
            show()
        );
        if let Err(e) = &r {
            let fine = !e.message.contains("internal error")
                && !e.message.contains("INVARIANT")
                && expected.iter().any(|m| e.message.contains(m));
            assert!(
                fine,
                "{what}: unexpected error {:?}, seed {:#x}, {}",
                e.message,
                seed(),
                show()
            );
        }
        let after = self.run(self.one, &[]);
        assert_eq!(
            after.as_ref().map(String::as_str),
            Ok(":1\r\n"),
            "{what}: the VM is not usable after {}",
            show()
        );
        r
    }
}

/// Errors cjson.decode raises on purpose.
const CJSON_ERRORS: &[&str] = &[
    "Expected ",
    "Found too many nested data structures",
    "script-memory-limit",
];
/// Errors cmsgpack.unpack raises on purpose.
const MSGPACK_ERRORS: &[&str] = &[
    "Missing bytes in input.",
    "Bad data format in input.",
    "table index is NaN",
    "too many return values",
    "Start offset",
    "Invalid request to unpack",
    "script-memory-limit",
];
/// Errors struct.unpack raises on purpose.
const STRUCT_ERRORS: &[&str] = &[
    "data string too short",
    "invalid format option",
    "integral size",
    "alignment",
    "format 'c0' needs a previous size",
    "unfinished string in data",
    "too many results",
    "offset must be 1 or greater",
    "script-memory-limit",
];

/// Decodes ARGV[1] (invalid numbers allowed when ARGV[2] is '1'), then checks that the value
/// encodes, and that decoding and encoding that text again gives text of the same length
/// (key order may differ between the two tables, nothing else may).
const CJSON_SCRIPT: &str = r#"
cjson.decode_invalid_numbers(ARGV[2] == '1')
local v = cjson.decode(ARGV[1])
cjson.encode_invalid_numbers(true)
cjson.decode_invalid_numbers(true)
local ok, e1 = pcall(cjson.encode, v)
if not ok then return {err = 'INVARIANT encode of a decoded value failed: ' .. tostring(e1)} end
local ok2, v2 = pcall(cjson.decode, e1)
if not ok2 then return {err = 'INVARIANT decode of an encoded value failed: ' .. tostring(v2) .. ' in ' .. e1} end
local e2 = cjson.encode(v2)
if #e1 ~= #e2 then return {err = 'INVARIANT round trip changed the text: ' .. e1 .. ' then ' .. e2} end
return #e1
"#;

/// Unpacks every object of ARGV[1], packs them again and checks the round trip: the first
/// repacking may lose what lua-cmsgpack drops (tables nested past 16 levels become nil, nil
/// array elements vanish); from then on the encoding keeps its length.
const MSGPACK_SCRIPT: &str = r#"
local function pack_all(...)
  if select('#', ...) == 0 then return '' end
  return cmsgpack.pack(...)
end
local p1 = pack_all(cmsgpack.unpack(ARGV[1]))
local ok, p2 = pcall(function() return pack_all(cmsgpack.unpack(p1)) end)
if not ok then
  -- A table nested too deep was packed as nil; as a map key it makes the map undecodable.
  if string.find(tostring(p2), 'Bad data format', 1, true) then return -1 end
  return {err = 'INVARIANT unpacking a packed value failed: ' .. tostring(p2)}
end
local p3 = pack_all(cmsgpack.unpack(p2))
if #p2 ~= #p3 then return {err = 'INVARIANT round trip changed the length: ' .. #p2 .. ' then ' .. #p3} end
return #p1
"#;

/// Pages through ARGV[1] with unpack_limit(limit ARGV[2], offset ARGV[3]).
const MSGPACK_LIMIT_SCRIPT: &str = r#"
local r = {cmsgpack.unpack_limit(ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]))}
return r[1]
"#;

/// struct.unpack(format ARGV[1], data ARGV[2], offset ARGV[3] if any); the count of results.
const STRUCT_SCRIPT: &str = r#"
local r = {struct.unpack(ARGV[1], ARGV[2], tonumber(ARGV[3]))}
return #r
"#;

// ---- generator -----------------------------------------------------------------------------

/// splitmix64: small, deterministic, good enough for input generation.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

#[derive(Clone, Debug)]
enum Value {
    Nil,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Vec<u8>),
    Array(Vec<Value>),
    Map(Vec<(Value, Value)>),
}

const SPECIAL_FLOATS: &[f64] = &[
    0.0,
    -0.0,
    0.1,
    -1.5,
    1e300,
    -1e-300,
    5e-324,
    f64::MAX,
    f64::MIN_POSITIVE,
    f64::INFINITY,
    f64::NEG_INFINITY,
    f64::NAN,
    9007199254740993.0,
    1.7976931348623157e308,
];

const SPECIAL_INTS: &[i64] = &[
    0,
    1,
    -1,
    127,
    128,
    255,
    256,
    -32,
    -33,
    -128,
    -129,
    65535,
    65536,
    -32768,
    -32769,
    4294967295,
    4294967296,
    -2147483648,
    -2147483649,
    i64::MAX,
    i64::MIN,
    1 << 53,
];

fn gen_string(rng: &mut Rng) -> Vec<u8> {
    let len = match rng.below(10) {
        0..=5 => rng.below(8),
        6..=8 => rng.below(40),
        _ => rng.below(300),
    };
    match rng.below(3) {
        0 => (0..len).map(|_| b'a' + rng.below(26) as u8).collect(),
        1 => rng.bytes(len),
        _ => "é\u{1F600}\"\\/\n\t\u{0}x"
            .bytes()
            .cycle()
            .skip(rng.below(8))
            .take(len)
            .collect(),
    }
}

fn gen_value(rng: &mut Rng, depth: usize) -> Value {
    let container = depth < 6 && rng.chance(35);
    if container {
        let n = if rng.chance(90) {
            rng.below(5)
        } else {
            rng.below(40)
        };
        if rng.chance(50) {
            return Value::Array((0..n).map(|_| gen_value(rng, depth + 1)).collect());
        }
        return Value::Map(
            (0..n)
                .map(|_| {
                    let key = if rng.chance(70) {
                        Value::Str(gen_string(rng))
                    } else {
                        gen_value(rng, depth + 1)
                    };
                    (key, gen_value(rng, depth + 1))
                })
                .collect(),
        );
    }
    match rng.below(7) {
        0 => Value::Nil,
        1 => Value::Bool(rng.chance(50)),
        2 => Value::Int(*rng.pick(SPECIAL_INTS)),
        3 => Value::Int(rng.next() as i64 >> rng.below(64)),
        4 => Value::Float(*rng.pick(SPECIAL_FLOATS)),
        5 => Value::Float(f64::from_bits(rng.next())),
        _ => Value::Str(gen_string(rng)),
    }
}

fn json_blank(rng: &mut Rng, out: &mut Vec<u8>) {
    if rng.chance(15) {
        out.extend_from_slice(rng.pick::<&[u8]>(&[b" ", b"\n", b"\t", b"\r\n  "]));
    }
}

fn json_string(rng: &mut Rng, s: &[u8], out: &mut Vec<u8>) {
    out.push(b'"');
    for &b in s {
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            0..=0x1f => out.extend_from_slice(format!("\\u{b:04x}").as_bytes()),
            b'/' if rng.chance(50) => out.extend_from_slice(b"\\/"),
            _ if rng.chance(3) => out.extend_from_slice(format!("\\u{b:04X}").as_bytes()),
            _ => out.push(b),
        }
    }
    if rng.chance(10) {
        // A surrogate pair, or a lone (invalid) surrogate.
        out.extend_from_slice(rng.pick::<&[u8]>(&[
            b"\\ud83d\\ude00",
            b"\\ud800",
            b"\\udc00x",
            b"\\u00e9",
        ]));
    }
    out.push(b'"');
}

fn json_number(rng: &mut Rng, v: &Value, out: &mut Vec<u8>) {
    let text = match v {
        Value::Int(i) => i.to_string(),
        Value::Float(f) if f.is_nan() => rng.pick(&["nan", "NaN", "-nan"]).to_string(),
        Value::Float(f) if f.is_infinite() => {
            let word = rng.pick(&["inf", "Infinity", "1e999"]);
            format!("{}{word}", if *f < 0.0 { "-" } else { "" })
        }
        Value::Float(f) => match rng.below(3) {
            0 => format!("{f:e}"),
            1 => format!("{f:E}"),
            _ => format!("{f}"),
        },
        _ => unreachable!(),
    };
    out.extend_from_slice(text.as_bytes());
}

fn to_json(rng: &mut Rng, v: &Value, out: &mut Vec<u8>) {
    json_blank(rng, out);
    match v {
        Value::Nil => out.extend_from_slice(b"null"),
        Value::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::Int(_) | Value::Float(_) => json_number(rng, v, out),
        Value::Str(s) => json_string(rng, s, out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                to_json(rng, item, out);
            }
            json_blank(rng, out);
            out.push(b']');
        }
        Value::Map(pairs) => {
            out.push(b'{');
            for (i, (k, item)) in pairs.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                json_blank(rng, out);
                match k {
                    Value::Str(s) => json_string(rng, s, out),
                    _ => json_string(rng, b"k", out),
                }
                json_blank(rng, out);
                out.push(b':');
                to_json(rng, item, out);
            }
            json_blank(rng, out);
            out.push(b'}');
        }
    }
    json_blank(rng, out);
}

/// A MessagePack header for `n` items: the fix form when it fits, else any wide enough form.
fn mp_header(
    rng: &mut Rng,
    out: &mut Vec<u8>,
    n: usize,
    fix: (u8, usize),
    b8: Option<u8>,
    b16: u8,
    b32: u8,
) {
    let choice = rng.below(4);
    if n < fix.1 && choice == 0 {
        out.push(fix.0 | n as u8);
    } else if n <= 0xff && b8.is_some() && choice <= 1 {
        out.extend_from_slice(&[b8.unwrap(), n as u8]);
    } else if n <= 0xffff && choice <= 2 {
        out.push(b16);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        out.push(b32);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    }
}

fn to_msgpack(rng: &mut Rng, v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Nil => out.push(0xc0),
        Value::Bool(b) => out.push(if *b { 0xc3 } else { 0xc2 }),
        Value::Int(i) => {
            let i = *i;
            match rng.below(3) {
                0 if (0..128).contains(&i) => out.push(i as u8),
                0 if (-32..0).contains(&i) => out.push(i as i8 as u8),
                1 if i >= 0 && i <= u32::MAX as i64 => {
                    out.push(0xce);
                    out.extend_from_slice(&(i as u32).to_be_bytes());
                }
                1 if i >= i32::MIN as i64 && i <= i32::MAX as i64 => {
                    out.push(0xd2);
                    out.extend_from_slice(&(i as i32).to_be_bytes());
                }
                2 if i >= 0 => {
                    out.push(0xcf);
                    out.extend_from_slice(&(i as u64).to_be_bytes());
                }
                _ => {
                    out.push(0xd3);
                    out.extend_from_slice(&i.to_be_bytes());
                }
            }
        }
        Value::Float(f) => {
            if rng.chance(30) {
                out.push(0xca);
                out.extend_from_slice(&(*f as f32).to_be_bytes());
            } else {
                out.push(0xcb);
                out.extend_from_slice(&f.to_be_bytes());
            }
        }
        Value::Str(s) => {
            mp_header(rng, out, s.len(), (0xa0, 32), Some(0xd9), 0xda, 0xdb);
            out.extend_from_slice(s);
        }
        Value::Array(items) => {
            mp_header(rng, out, items.len(), (0x90, 16), None, 0xdc, 0xdd);
            for item in items {
                to_msgpack(rng, item, out);
            }
        }
        Value::Map(pairs) => {
            mp_header(rng, out, pairs.len(), (0x80, 16), None, 0xde, 0xdf);
            for (k, item) in pairs {
                // A nil key cannot be a Lua table key; keep most maps decodable.
                match k {
                    Value::Nil => out.push(0x01),
                    _ => to_msgpack(rng, k, out),
                }
                to_msgpack(rng, item, out);
            }
        }
    }
}

/// A struct format of random items, and data long enough for most of it.
fn gen_struct(rng: &mut Rng) -> (Vec<u8>, Vec<u8>) {
    let mut fmt = Vec::new();
    for _ in 0..rng.below(12) {
        let item: String = match rng.below(14) {
            0 => rng.pick(&["<", ">", "=", " "]).to_string(),
            1 => format!("!{}", rng.pick(&["", "1", "2", "4", "8", "16", "3"])),
            2 => rng.pick(&["b", "B", "h", "H", "l", "L", "T"]).to_string(),
            3 | 4 => format!("{}{}", rng.pick(&["i", "I"]), rng.below(34)),
            5 => rng.pick(&["i", "I", "f", "d", "x"]).to_string(),
            6 => format!("c{}", rng.below(20)),
            7 => "c".into(),
            8 => "Bc0".into(),
            9 => "s".into(),
            10 => rng
                .pick(&["c99999999999", "i99", "!5", "z", "\0"])
                .to_string(),
            _ => rng.pick(&["i4", "d", "f", "h"]).to_string(),
        };
        fmt.extend_from_slice(item.as_bytes());
    }
    let n = rng.below(96);
    let mut data = rng.bytes(n);
    for b in data.iter_mut() {
        if rng.chance(10) {
            *b = 0;
        }
    }
    (fmt, data)
}

/// Byte strings worth splicing into a JSON text.
const JSON_TOKENS: &[&[u8]] = &[
    b"[",
    b"]",
    b"{",
    b"}",
    b",",
    b":",
    b"\"",
    b"\\",
    b"\\u",
    b"\\ud800",
    b"\\udfff",
    b"\\u00",
    b"1e999",
    b"-",
    b"0x",
    b"0x1p4",
    b"nan",
    b"-inf",
    b"Infinity",
    b"1.",
    b".5",
    b"1e",
    b"1e+",
    b"true",
    b"fals",
    b"null",
    b"nul",
    b"\0",
    b"\xff",
    b"[[[[[[[[",
    b"{\"a\":",
    b"0000000000",
];

/// Byte strings worth splicing into MessagePack: headers claiming huge lengths, reserved and
/// extension tags, NaN/Inf floats.
const MSGPACK_TOKENS: &[&[u8]] = &[
    b"\xdd\xff\xff\xff\xff",
    b"\xdf\xff\xff\xff\xff",
    b"\xdb\xff\xff\xff\xff",
    b"\xdc\xff\xff",
    b"\xde\xff\xff",
    b"\xda\xff\xff",
    b"\xd9\xff",
    b"\xc1",
    b"\xc4\x01\x00",
    b"\xc7\x01\x01\x00",
    b"\xd4\x01\x00",
    b"\xd8\x01",
    b"\xcb\x7f\xf8\x00\x00\x00\x00\x00\x00",
    b"\xcb\xff\xf0\x00\x00\x00\x00\x00\x00",
    b"\xca\x7f\xc0\x00\x00",
    b"\x81\xcb\x7f\xf8\x00\x00\x00\x00\x00\x00\x01",
    b"\x81\xc0\x01",
    b"\x91\x91\x91\x91\x91\x91\x91\x91",
    b"\x81\x81\x81\x81",
];

/// Applies one to four random mutations to `data`.
fn mutate(rng: &mut Rng, data: &mut Vec<u8>, tokens: &[&[u8]]) {
    for _ in 0..1 + rng.below(4) {
        let len = data.len();
        match rng.below(8) {
            0 if len > 0 => {
                let i = rng.below(len);
                data[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                data[i] = *rng.pick(&[0x00, 0xff, 0x7f, 0x80, b'"', b'\\', 0xc0, 0xdd, 0xdf]);
            }
            2 => data.truncate(rng.below(len + 1)),
            3 if len > 0 => {
                let a = rng.below(len);
                let b = (a + 1 + rng.below(16)).min(len);
                data.drain(a..b);
            }
            4 if len > 0 => {
                let a = rng.below(len);
                let b = (a + 1 + rng.below(32)).min(len);
                let chunk = data[a..b].to_vec();
                let at = rng.below(len + 1);
                data.splice(at..at, chunk);
            }
            _ => {
                let token = rng.pick(tokens);
                let at = rng.below(len + 1);
                data.splice(at..at, token.iter().copied());
            }
        }
    }
}

/// Generates one input: a valid document, often mutated, sometimes plain random bytes.
fn gen_input(
    rng: &mut Rng,
    encode: fn(&mut Rng, &Value, &mut Vec<u8>),
    tokens: &[&[u8]],
) -> Vec<u8> {
    if rng.chance(10) {
        let n = rng.below(64);
        return rng.bytes(n);
    }
    let mut out = Vec::new();
    for _ in 0..if rng.chance(80) { 1 } else { 1 + rng.below(4) } {
        let v = gen_value(rng, 0);
        encode(rng, &v, &mut out);
    }
    if rng.chance(70) {
        mutate(rng, &mut out, tokens);
    }
    out
}

// ---- random inputs -------------------------------------------------------------------------

#[test]
fn cjson_decode_survives_random_and_mutated_input() {
    let mut fz = Fuzzer::new();
    let script = fz.compile(CJSON_SCRIPT);
    let mut rng = Rng(seed());
    let (mut decoded, mut refused) = (0, 0);
    for i in 0..cases() {
        let input = gen_input(&mut rng, to_json, JSON_TOKENS);
        let invalid: &[u8] = if i % 4 == 0 { b"0" } else { b"1" };
        match fz.check("cjson.decode", script, &[&input, invalid], CJSON_ERRORS) {
            Ok(_) => decoded += 1,
            Err(_) => refused += 1,
        }
    }
    // The generator is worth something only if it reaches both outcomes often.
    assert!(
        decoded * 10 >= cases() && refused * 10 >= cases(),
        "{decoded} decoded, {refused} refused"
    );
}

#[test]
fn cmsgpack_unpack_survives_random_and_mutated_input() {
    let mut fz = Fuzzer::new();
    let script = fz.compile(MSGPACK_SCRIPT);
    let paged = fz.compile(MSGPACK_LIMIT_SCRIPT);
    let mut rng = Rng(seed() ^ 1);
    let (mut decoded, mut refused) = (0, 0);
    for _ in 0..cases() {
        let input = gen_input(&mut rng, to_msgpack, MSGPACK_TOKENS);
        match fz.check("cmsgpack.unpack", script, &[&input], MSGPACK_ERRORS) {
            Ok(_) => decoded += 1,
            Err(_) => refused += 1,
        }
        if rng.chance(25) {
            let limit = rng.below(4).to_string();
            let offset = (rng.below(input.len() + 2) as i64 - 1).to_string();
            fz.check(
                "cmsgpack.unpack_limit",
                paged,
                &[&input, limit.as_bytes(), offset.as_bytes()],
                MSGPACK_ERRORS,
            )
            .ok();
        }
    }
    assert!(
        decoded * 10 >= cases() && refused * 10 >= cases(),
        "{decoded} decoded, {refused} refused"
    );
}

#[test]
fn struct_unpack_survives_random_formats_and_data() {
    let mut fz = Fuzzer::new();
    let script = fz.compile(STRUCT_SCRIPT);
    let mut rng = Rng(seed() ^ 2);
    let (mut decoded, mut refused) = (0, 0);
    for _ in 0..cases() {
        let (mut fmt, mut data) = gen_struct(&mut rng);
        if rng.chance(15) {
            let n = rng.below(12);
            fmt = rng.bytes(n);
        }
        if rng.chance(20) {
            mutate(&mut rng, &mut data, &[b"\0", b"\xff\xff\xff\xff"]);
        }
        let offset = match rng.below(6) {
            0 => Some((rng.below(100) as i64 - 2).to_string()),
            1 => Some(
                rng.pick(&["1e300", "-1e300", "nan", "4294967297"])
                    .to_string(),
            ),
            _ => None,
        };
        let mut args: Vec<&[u8]> = vec![&fmt, &data];
        if let Some(o) = &offset {
            args.push(o.as_bytes());
        }
        match fz.check("struct.unpack", script, &args, STRUCT_ERRORS) {
            Ok(_) => decoded += 1,
            Err(_) => refused += 1,
        }
    }
    assert!(
        decoded * 10 >= cases() && refused * 10 >= cases(),
        "{decoded} decoded, {refused} refused"
    );
}

// ---- crafted inputs ------------------------------------------------------------------------

fn reply_int(r: &Result<String, ScriptError>) -> i64 {
    let s = r.as_ref().expect("decodes");
    s.trim_start_matches(':')
        .trim_end()
        .parse()
        .expect("an integer reply")
}

#[test]
fn deep_nesting_is_refused_or_decoded_without_exhausting_the_stack() {
    // Run on a 2 MiB stack, the size of the server's runtime threads, whatever the harness
    // was given: decoding must not recurse on the thread's stack per nesting level.
    std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(deep_nesting_cases)
        .unwrap()
        .join()
        .unwrap();
}

fn deep_nesting_cases() {
    let mut fz = Fuzzer::new();
    let json = fz.compile("return type(cjson.decode(ARGV[1]))");
    let json_deep = fz.compile("cjson.decode_max_depth(1000000) local v = cjson.decode(ARGV[1]) cjson.decode_max_depth(1000) return type(v)");
    let mp = fz.compile("return select('#', cmsgpack.unpack(ARGV[1]))");
    // Past the default depth limit (1000): refused at once.
    for open in [&b"["[..], b"{\"a\":"] {
        let text = open.repeat(100_000);
        let e = fz
            .check("json deep", json, &[&text], CJSON_ERRORS)
            .unwrap_err();
        assert!(
            e.message
                .contains("Found too many nested data structures (1001)"),
            "{}",
            e.message
        );
    }
    // With the limit raised, as deep as the Lua stack allows (LUAI_MAXCSTACK, 8000 slots:
    // one per open array, two per open object with its key), and no deeper.
    for (depth, ok) in [(7_900, true), (8_100, false), (1_000_000, false)] {
        let text = [b"[".repeat(depth), b"]".repeat(depth)].concat();
        let r = fz.check("json deep, limit raised", json_deep, &[&text], CJSON_ERRORS);
        assert_eq!(r.is_ok(), ok, "depth {depth}: {r:?}");
        let depth = depth / 2;
        let text = [b"{\"k\":".repeat(depth), b"1".to_vec(), b"}".repeat(depth)].concat();
        let r = fz.check(
            "json deep objects, limit raised",
            json_deep,
            &[&text],
            CJSON_ERRORS,
        );
        assert_eq!(r.is_ok(), ok, "objects, depth {depth}: {r:?}");
    }
    // MessagePack has no depth limit of its own: nested one-element arrays and maps.
    for (depth, ok) in [(7_900, true), (8_100, false), (1_000_000, false)] {
        let mut data = vec![0x91; depth];
        data.push(0x00);
        let r = fz.check("msgpack deep arrays", mp, &[&data], MSGPACK_ERRORS);
        assert_eq!(r.is_ok(), ok, "depth {depth}: {r:?}");
        // Nested as map keys: {{{1: 2}: 1}: 1}...
        let data = [
            b"\x81".repeat(depth),
            b"\x01\x02".to_vec(),
            b"\x01".repeat(depth - 1),
        ]
        .concat();
        let r = fz.check("msgpack deep keys", mp, &[&data], MSGPACK_ERRORS);
        assert_eq!(r.is_ok(), ok, "keys, depth {depth}: {r:?}");
        // Nested as map values (a key stays on the stack per level).
        let depth = depth / 2;
        let data = [b"\x81\x01".repeat(depth), b"\x02".to_vec()].concat();
        let r = fz.check("msgpack deep maps", mp, &[&data], MSGPACK_ERRORS);
        assert_eq!(r.is_ok(), ok, "maps, depth {depth}: {r:?}");
    }
}

#[test]
fn huge_declared_lengths_fail_fast_without_reserving_memory() {
    let mut fz = Fuzzer::new();
    // A budget far below what trusting the headers would reserve (one array32 header
    // claiming 4e9 elements preallocating even 64Ki slots is 1 MiB; 8000 nested, 8 GiB).
    fz.vm.set_memory_limit(Some(32 << 20));
    let mp = fz.compile("return select('#', cmsgpack.unpack(ARGV[1]))");
    for header in [
        &b"\xdd\xff\xff\xff\xff"[..],
        b"\xdf\xff\xff\xff\xff",
        b"\xdc\xff\xff",
        b"\xde\xff\xff",
    ] {
        for depth in [1, 2, 100, 7_000, 50_000] {
            let data = header.repeat(depth);
            let e = fz
                .check("msgpack huge containers", mp, &[&data], MSGPACK_ERRORS)
                .unwrap_err();
            assert!(
                e.message.contains("Missing bytes in input.")
                    || e.message.contains("Bad data format"),
                "{} x{depth}: {}",
                hex(header),
                e.message
            );
        }
    }
    for data in [
        &b"\xdb\xff\xff\xff\xff"[..],
        b"\xdb\xff\xff\xff\xffabc",
        b"\xda\xff\xff",
        b"\xd9\xff",
        b"\xbf",
        b"\x91\xdb\x7f\xff\xff\xff",
    ] {
        let e = fz
            .check("msgpack huge strings", mp, &[data], MSGPACK_ERRORS)
            .unwrap_err();
        assert!(
            e.message.contains("Missing bytes in input."),
            "{}: {}",
            hex(data),
            e.message
        );
    }
    // struct: sizes that overflow or go past the data.
    let st = fz.compile(STRUCT_SCRIPT);
    for (fmt, data) in [
        ("c2147483647", &b"abc"[..]),
        ("c99999999999", b"abc"),
        ("i4c0", b"\xff\xff\xff\x7fabc"),
        ("I4c0", b"\xff\xff\xff\xffabc"),
        ("Bc0", b"\x05ab"),
        ("!2147483648i", b"abcd"),
        ("i33", b"abcd"),
        ("s", b"no terminator"),
    ] {
        fz.check("struct sizes", st, &[fmt.as_bytes(), data], STRUCT_ERRORS)
            .expect_err(fmt);
    }
    // Offsets far past the data.
    for offset in ["4294967297", "1e18", "9.3e18", "1e300"] {
        fz.check(
            "struct offset",
            st,
            &[b"b", b"abc", offset.as_bytes()],
            STRUCT_ERRORS,
        )
        .expect_err(offset);
    }
    let paged = fz.compile(MSGPACK_LIMIT_SCRIPT);
    for (limit, offset) in [
        ("1", "4294967297"),
        ("1", "-1"),
        ("-1", "0"),
        ("1e300", "0"),
        ("1", "1e300"),
    ] {
        fz.check(
            "msgpack paging",
            paged,
            &[b"\x01\x02", limit.as_bytes(), offset.as_bytes()],
            MSGPACK_ERRORS,
        )
        .ok();
    }
}

#[test]
fn every_truncation_of_a_document_is_handled() {
    let mut fz = Fuzzer::new();
    let json = fz.compile(CJSON_SCRIPT);
    let mp = fz.compile(MSGPACK_SCRIPT);
    let st = fz.compile(STRUCT_SCRIPT);
    let mut rng = Rng(seed() ^ 3);
    let doc = Value::Map(vec![
        (
            Value::Str(b"a".to_vec()),
            Value::Array(vec![
                Value::Int(1),
                Value::Float(-2.5e-3),
                Value::Nil,
                Value::Bool(true),
            ]),
        ),
        (
            Value::Str(b"s\xc3\xa9\n".to_vec()),
            Value::Str(vec![b'x'; 300]),
        ),
        (
            Value::Str(b"m".to_vec()),
            Value::Map(vec![
                (Value::Str(b"k".to_vec()), Value::Int(i64::MIN)),
                (Value::Int(7), Value::Float(0.1)),
            ]),
        ),
        (
            Value::Str(b"u".to_vec()),
            Value::Str("\u{1F600}\u{e9}".into()),
        ),
    ]);
    let text = r#" {"a": [1, -2.5e-3, null, true, false, 0.5E+2], "s\u00e9\n": "x\"\\\/\b\f\r\t",
        "m": {"k": -9223372036854775808, "7": 0.1, "e": {}, "l": []},
        "u": "\ud83d\ude00\u00e9\u0041 raw é"} "#
        .as_bytes();
    let mut packed = Vec::new();
    to_msgpack(&mut rng, &doc, &mut packed);
    for n in 0..=text.len() {
        let r = fz.check("json prefix", json, &[&text[..n], b"1"], CJSON_ERRORS);
        assert_eq!(
            r.is_ok(),
            n == text.len() || text[n..].iter().all(u8::is_ascii_whitespace),
            "{n}: {r:?} {:?}",
            String::from_utf8_lossy(text)
        );
    }
    for n in 0..=packed.len() {
        let r = fz.check("msgpack prefix", mp, &[&packed[..n]], MSGPACK_ERRORS);
        assert!(r.is_ok() || n < packed.len(), "{n}");
        if n < packed.len() && n > 0 {
            let e = r.unwrap_err();
            assert!(
                e.message.contains("Missing bytes in input."),
                "{n}: {}",
                e.message
            );
        }
    }
    // b at 0, i2 at 2, I at 4, h at 8, f at 12, d at 16, c3 at 24, s from 27 to its zero.
    let mut data: Vec<u8> = (1..=40).collect();
    data[30] = 0;
    for n in 0..=data.len() {
        let r = fz.check(
            "struct prefix",
            st,
            &[b">!4bi2Ihfdc3s", &data[..n]],
            STRUCT_ERRORS,
        );
        assert_eq!(
            r.as_ref().ok().map(String::as_str),
            (n >= 31).then_some(":9\r\n"),
            "{n}: {r:?}"
        );
    }
}

#[test]
fn nan_and_infinity_decode_or_fail_cleanly() {
    let mut fz = Fuzzer::new();
    let json = fz.compile(
        "cjson.decode_invalid_numbers(ARGV[2] == '1') local v = cjson.decode(ARGV[1]) return tostring(v)",
    );
    // (text, what tostring shows with invalid numbers allowed, and with them refused).
    for (text, allowed, refused) in [
        ("nan", Some("nan"), None),
        ("-nan", Some("nan"), None),
        ("NaN", Some("nan"), None),
        ("inf", Some("inf"), None),
        ("-Infinity", Some("-inf"), None),
        ("1e999", Some("inf"), Some("inf")),
        ("-1e999", Some("-inf"), Some("-inf")),
        ("1e-999", Some("0"), Some("0")),
        ("0x10", Some("16"), None),
        ("-0", Some("-0"), Some("-0")),
        ("0x", None, None),
        ("infinit", None, None),
        ("nanx", None, None),
        ("0xffffffffffffffffff", None, None),
    ] {
        for (flag, want) in [(&b"1"[..], allowed), (b"0", refused)] {
            let r = fz.check(
                "json special numbers",
                json,
                &[text.as_bytes(), flag],
                CJSON_ERRORS,
            );
            match (want, r) {
                (Some(want), Ok(got)) => assert!(got.contains(want), "{text}: {got}"),
                (None, Err(_)) => {}
                (want, got) => panic!("{text} (flag {flag:?}): want {want:?}, got {got:?}"),
            }
        }
    }
    // Encoding them is refused by default, and written as numbers or null when asked.
    let enc = fz.compile("cjson.decode_invalid_numbers(true) cjson.encode_invalid_numbers(ARGV[2]) local ok, e = pcall(cjson.encode, {cjson.decode(ARGV[1])}) cjson.encode_invalid_numbers(false) return tostring(e)");
    for v in ["nan", "-inf", "1e999"] {
        let r = fz
            .check(
                "json encode special",
                enc,
                &[v.as_bytes(), b"off"],
                CJSON_ERRORS,
            )
            .unwrap();
        assert!(r.contains("must not be NaN or Inf"), "{v}: {r}");
        let r = fz
            .check(
                "json encode special",
                enc,
                &[v.as_bytes(), b"null"],
                CJSON_ERRORS,
            )
            .unwrap();
        assert!(r.contains("[null]"), "{v}: {r}");
        fz.check(
            "json encode special",
            enc,
            &[v.as_bytes(), b"on"],
            CJSON_ERRORS,
        )
        .unwrap();
    }
    // MessagePack: NaN and infinities as values and keys; NaN cannot be a table key.
    let mp = fz.compile(MSGPACK_SCRIPT);
    let nan64 = [0xcb, 0x7f, 0xf8, 0, 0, 0, 0, 0, 0];
    let inf64 = [0xcb, 0x7f, 0xf0, 0, 0, 0, 0, 0, 0];
    let nan32 = [0xca, 0xff, 0xc0, 0, 0];
    for value in [
        &nan64[..],
        &inf64,
        &nan32,
        &[0xca, 0xff, 0x80, 0, 0],
        &[0xcb, 0x80, 0, 0, 0, 0, 0, 0, 0],
    ] {
        fz.check("msgpack special", mp, &[value], MSGPACK_ERRORS)
            .unwrap();
        let in_array = [&[0x92][..], value, value].concat();
        fz.check("msgpack special", mp, &[&in_array], MSGPACK_ERRORS)
            .unwrap();
    }
    for key in [&nan64[..], &nan32] {
        let map = [&[0x81][..], key, &[0x01]].concat();
        let e = fz
            .check("msgpack NaN key", mp, &[&map], MSGPACK_ERRORS)
            .unwrap_err();
        assert!(e.message.contains("table index is NaN"), "{}", e.message);
        // Caught inside the script, the error leaves the script (and its memory limit) intact.
        let caught = fz.compile("local ok, e = pcall(cmsgpack.unpack, ARGV[1]) return tostring(e)");
        let r = fz
            .check("msgpack NaN key caught", caught, &[&map], MSGPACK_ERRORS)
            .unwrap();
        assert!(r.contains("table index is NaN"), "{r}");
    }
    // The decoder refuses the NaN key itself: a raw set would make Lua raise from inside the
    // Rust code (a longjmp over Rust frames, against raw.rs rule 3). After catching the
    // error the script goes on, and its memory limit still refuses a too-big allocation.
    let map = [&[0x81][..], &nan64, &[0x01]].concat();
    fz.vm.set_memory_limit(Some(1 << 20));
    let after = fz.compile(
        "local ok1 = pcall(cmsgpack.unpack, ARGV[1]) local ok2 = pcall(string.rep, 'x', 8 * 1024 * 1024) return {tostring(ok1), tostring(ok2)}",
    );
    let r = fz.check(
        "msgpack NaN key, then the limit",
        after,
        &[&map],
        MSGPACK_ERRORS,
    );
    assert_eq!(
        r.as_ref().ok().map(String::as_str),
        Some("*2\r\n$5\r\nfalse\r\n$5\r\nfalse\r\n"),
        "{r:?}"
    );
    fz.vm.set_memory_limit(None);
    let map = [&[0x81][..], &inf64, &[0x01]].concat();
    fz.check("msgpack Inf key", mp, &[&map], MSGPACK_ERRORS)
        .unwrap();
    // struct: NaN and infinite floats and doubles.
    let st = fz.compile(STRUCT_SCRIPT);
    for data in [
        &[0x7f, 0xf8, 0, 0, 0, 0, 0, 0][..],
        &[0xff, 0xf0, 0, 0, 0, 0, 0, 0],
    ] {
        fz.check("struct special", st, &[b">d", data], STRUCT_ERRORS)
            .unwrap();
        fz.check("struct special", st, &[b">f", &data[..4]], STRUCT_ERRORS)
            .unwrap();
        fz.check("struct special", st, &[b">I8", data], STRUCT_ERRORS)
            .unwrap();
        fz.check("struct special", st, &[b"<i8", data], STRUCT_ERRORS)
            .unwrap();
    }
}

#[test]
fn long_tokens_decode_in_linear_time() {
    let mut fz = Fuzzer::new();
    let json = fz.compile("local ok, e = pcall(cjson.decode, ARGV[1]) return type(e)");
    let n = 200_000;
    for input in [
        format!("1{}", "a".repeat(n)),
        format!("1{}", "e".repeat(n)),
        format!("-{}", "0".repeat(n)),
        format!("0.{}e", "9".repeat(n)),
        format!("0x{}", "f".repeat(n)),
        format!("\"{}\"", "\\u00e9".repeat(n / 6)),
        format!("[{}1]", "1,".repeat(n / 2)),
        " ".repeat(n),
    ] {
        let started = Instant::now();
        fz.check("json long token", json, &[input.as_bytes()], CJSON_ERRORS)
            .unwrap();
        assert!(
            started.elapsed() < time_bound(Duration::from_secs(3)),
            "{}...: {:?}",
            &input[..20],
            started.elapsed()
        );
    }
    let mp = fz.compile("local ok, e = pcall(cmsgpack.unpack, ARGV[1]) return type(e)");
    let many = [b"\xdd\x00\x03\x0d\x40".to_vec(), vec![0xc0; 200_000]].concat();
    fz.check("msgpack long array", mp, &[&many], MSGPACK_ERRORS)
        .unwrap();
}

#[test]
fn decoding_past_the_memory_limit_fails_with_the_memory_error() {
    let mut fz = Fuzzer::new();
    let gc = fz.compile("collectgarbage('collect') return 1");
    fz.run(gc, &[]).unwrap();
    let baseline = fz.vm.used_memory();
    fz.vm.set_memory_limit(Some(1 << 20));
    // Valid documents that decode to far more than 1 MiB of Lua values.
    let mut json = b"[".to_vec();
    for i in 0..100_000 {
        json.extend_from_slice(
            format!(
                "{}\"item {i:06}\",{{\"k\":{i}}}",
                if i > 0 { "," } else { "" }
            )
            .as_bytes(),
        );
    }
    json.push(b']');
    let mut packed = vec![0xdd];
    packed.extend_from_slice(&200_000u32.to_be_bytes());
    for i in 0..100_000u32 {
        packed.extend_from_slice(&[0xa8]);
        packed.extend_from_slice(format!("item{i:04}").as_bytes()[..8].as_ref());
        packed.extend_from_slice(&[0x81, 0xa1, b'k', 0xce]);
        packed.extend_from_slice(&i.to_be_bytes());
    }
    // Distinct bytes: equal strings would be interned once.
    let big: Vec<u8> = (0..3u32 << 20).map(|i| (i % 251) as u8).collect();
    let cases: Vec<(&str, Vec<&[u8]>)> = vec![
        ("return #cjson.decode(ARGV[1])", vec![&json]),
        ("return #cmsgpack.unpack(ARGV[1])", vec![&packed]),
        ("return #cmsgpack.unpack_one(ARGV[1], 0)", vec![&packed]),
        // Many large strings: each one fits, together they do not.
        (
            "return #{struct.unpack(ARGV[1], ARGV[2])}",
            vec![b"c500000c500000c500000c500000c500000", &big],
        ),
        (
            "return #cjson.decode(ARGV[1])",
            vec![b"[\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\",1,2,3]"],
        ),
    ];
    for (i, (body, args)) in cases.iter().enumerate() {
        let f = fz.compile(body);
        let r = fz.check("memory limit", f, args, &["script-memory-limit"]);
        if i == cases.len() - 1 {
            // Small inputs still decode under the limit.
            assert_eq!(r.unwrap(), ":4\r\n");
            continue;
        }
        let e = r.unwrap_err();
        assert!(
            e.message.contains("script-memory-limit"),
            "{body}: {}",
            e.message
        );
        fz.run(gc, &[]).unwrap();
        assert!(
            fz.vm.used_memory() < baseline + (1 << 20),
            "{body}: {} bytes left after the failure (baseline {baseline})",
            fz.vm.used_memory()
        );
    }
    // Without the limit, the same inputs decode.
    fz.vm.set_memory_limit(None);
    let f = fz.compile("return #cjson.decode(ARGV[1])");
    assert_eq!(
        reply_int(&fz.check("no limit", f, &[&json], CJSON_ERRORS)),
        200_000
    );
    let f = fz.compile("return #cmsgpack.unpack(ARGV[1])");
    assert_eq!(
        reply_int(&fz.check("no limit", f, &[&packed], MSGPACK_ERRORS)),
        200_000
    );
}
