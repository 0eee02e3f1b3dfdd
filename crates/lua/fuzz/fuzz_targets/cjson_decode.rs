//! cjson.decode on the input, then encode and a second round trip (as in tests/fuzz.rs).
#![no_main]
#[path = "common.rs"]
mod common;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    // The first byte picks decode_invalid_numbers, the rest is the JSON text.
    let (flag, text): (&[u8], &[u8]) = match data.split_first() {
        Some((f, rest)) => (if f & 1 == 1 { b"1" } else { b"0" }, rest),
        None => (b"1", data),
    };
    common::check(
        r#"
cjson.decode_invalid_numbers(ARGV[2] == '1')
local v = cjson.decode(ARGV[1])
cjson.encode_invalid_numbers(true)
cjson.decode_invalid_numbers(true)
local ok, e1 = pcall(cjson.encode, v)
if not ok then return {err = 'INVARIANT encode of a decoded value failed: ' .. tostring(e1)} end
local ok2, v2 = pcall(cjson.decode, e1)
if not ok2 then return {err = 'INVARIANT decode of an encoded value failed: ' .. tostring(v2)} end
if #e1 ~= #cjson.encode(v2) then return {err = 'INVARIANT round trip changed the text'} end
return #e1
"#,
        &[text, flag],
        &["Expected ", "Found too many nested data structures"],
    );
});
