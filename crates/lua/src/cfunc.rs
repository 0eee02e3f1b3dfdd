//! The one way Lua enters our Rust code. Every C function we give Lua runs its body through
//! [`c_function`], and every debug hook through [`hook`]. Both:
//! - switch the heap to Rust mode for the body, so no allocation made there can raise
//!   (see [`crate::heap`]);
//! - catch a panic of the body and turn it into a Lua error, so no panic unwinds through
//!   Lua's C frames;
//! - raise errors only after the body returned, i.e. once its Rust values are dropped: the
//!   body says what to do with an [`Exit`] instead of raising itself;
//! - raise the memory error when the body took the heap past the script memory limit.

use crate::raw::L;
use crate::reply::push_error_table;
use std::ffi::c_int;

/// What a C function or hook asks its wrapper to do once Rust has cleaned up.
pub(crate) enum Exit {
    /// Return this many values (on top of the stack) to Lua.
    Return(c_int),
    /// Raise the value on top of the stack.
    Raise,
    /// Raise this message prefixed with the calling script position, as luaL_error does.
    RaiseMessage(String),
    /// Raise a Redis error table `{err = text}` (text `-CODE msg` or a bare message).
    RaiseTable(String),
}

/// Runs a body with panics caught: a panic becomes an internal-error table.
fn run_body(l: L, body: impl FnOnce(L) -> Exit) -> Exit {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        if l.heap().take_panic_request() {
            panic!("panic injected into a Lua library call (test hook)");
        }
        body(l)
    }))
    .unwrap_or_else(|_| Exit::RaiseTable("ERR internal error in a moonkv script function".into()))
}

/// Where a body runs: a C function owns its stack frame; a hook runs on the frame of the Lua
/// function it interrupts, which must not be emptied.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Frame {
    Own,
    Borrowed,
}

/// Runs `body` in Rust mode and ends as it asks: returns the number of results, or raises.
fn enter(l: L, frame: Frame, body: impl FnOnce(L) -> Exit) -> c_int {
    let heap = l.heap();
    let outer_mode = heap.set_lua_mode(false);
    let mut exit = run_body(l, body);
    if heap.take_exceeded() {
        exit = Exit::RaiseTable(format!("-{}", l.memory_error()));
    }
    // A C function's frame holds at least LUA_MINSTACK (20) slots, so emptying it leaves room
    // for the error value whatever the body pushed; a hook is given LUA_MINSTACK free slots.
    if frame == Frame::Own && matches!(exit, Exit::RaiseMessage(_) | Exit::RaiseTable(_)) {
        l.set_top(0);
    }
    match exit {
        Exit::Return(n) => {
            heap.set_lua_mode(outer_mode);
            return n;
        }
        Exit::Raise => {}
        Exit::RaiseMessage(msg) => {
            l.push_str(&msg);
            drop(msg);
            l.prefix_position();
        }
        Exit::RaiseTable(text) => push_error_table(l, &text, false),
    }
    heap.set_lua_mode(outer_mode);
    l.raise()
}

/// The body of a C function called by Lua. Returns what the C function returns to Lua, or
/// does not return (raises).
pub(crate) fn c_function(l: L, body: impl FnOnce(L) -> Exit) -> c_int {
    enter(l, Frame::Own, body)
}

/// The body of a debug hook.
pub(crate) fn hook(l: L, body: impl FnOnce(L) -> Exit) {
    enter(l, Frame::Borrowed, body);
}
