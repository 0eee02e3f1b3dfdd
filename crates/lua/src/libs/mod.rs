//! The libraries Redis adds to its Lua: cjson, struct, cmsgpack and bit. No crate does these
//! the Redis way, so each is written here against the Lua C API to match Redis's output.

mod bit;
mod cjson;
mod cmsgpack;
mod structlib;

use crate::cfunc::{c_function, Exit};
use crate::raw::{self, L};
use std::ffi::c_int;

/// Runs a library function's body as a C function (see [`crate::cfunc`]): `Ok(n)` returns n
/// values, `Err(msg)` raises the message as luaL_error does.
fn lib_function(l: *mut raw::State, body: impl FnOnce(L) -> Result<c_int, String>) -> c_int {
    c_function(L(l), |l| match body(l) {
        Ok(n) => Exit::Return(n),
        Err(msg) => Exit::RaiseMessage(msg),
    })
}

/// Fails once the values pushed so far, plus output the function keeps in Rust memory
/// (`pending` bytes), take the script past its memory budget; the wrapper then raises the
/// memory error.
fn within_budget(l: L, pending: usize) -> Result<(), String> {
    if l.heap().charge(pending) {
        Ok(())
    } else {
        Err(String::new())
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
