//! struct.unpack(format, data): the input is the format, a NUL byte, then the data.
#![no_main]
#[path = "common.rs"]
mod common;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let (fmt, bytes) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    common::check(
        "return #{struct.unpack(ARGV[1], ARGV[2])}",
        &[fmt, bytes],
        &[
            "data string too short",
            "invalid format option",
            "integral size",
            "alignment",
            "format 'c0' needs a previous size",
            "unfinished string in data",
            "too many results",
        ],
    );
});
