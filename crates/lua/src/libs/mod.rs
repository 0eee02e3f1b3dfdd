//! The libraries Redis adds to its Lua: cjson, struct, cmsgpack and bit. No crate does these
//! the Redis way, so each is written here against the Lua C API to match Redis's output.

mod bit;
mod cjson;
mod cmsgpack;
mod structlib;

use crate::raw::{self, L};
use std::ffi::c_int;

/// Returns `n` results, or raises the error.
fn finish(l: L, r: Result<c_int, String>) -> c_int {
    match r {
        Ok(n) => n,
        Err(msg) => l.raise_message(msg),
    }
}

/// Creates each library's table as a global.
pub fn open_all(l: L) {
    cjson::open(l);
    structlib::open(l);
    cmsgpack::open(l);
    bit::open(l);
}

/// Sets `functions` into a new table stored as global `name`.
fn register(l: L, name: &str, functions: &[(&str, raw::CFunction)]) {
    l.new_table(0, functions.len());
    for (fname, f) in functions {
        l.push_function(*f);
        l.raw_set_field(-2, fname);
    }
    l.raw_set_field(raw::GLOBALS, name);
}
