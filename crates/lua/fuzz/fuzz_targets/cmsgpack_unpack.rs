//! cmsgpack.unpack on the input, then pack/unpack round trips (as in tests/fuzz.rs).
#![no_main]
#[path = "common.rs"]
mod common;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    common::check(
        r#"
local function pack_all(...)
  if select('#', ...) == 0 then return '' end
  return cmsgpack.pack(...)
end
local p1 = pack_all(cmsgpack.unpack(ARGV[1]))
local ok, p2 = pcall(function() return pack_all(cmsgpack.unpack(p1)) end)
if not ok then
  if string.find(tostring(p2), 'Bad data format', 1, true) then return -1 end
  return {err = 'INVARIANT unpacking a packed value failed: ' .. tostring(p2)}
end
if #p2 ~= #pack_all(cmsgpack.unpack(p2)) then return {err = 'INVARIANT round trip changed the length'} end
return #p1
"#,
        &[data],
        &[
            "Missing bytes in input.",
            "Bad data format in input.",
            "table index is NaN",
            "too many return values",
        ],
    );
});
