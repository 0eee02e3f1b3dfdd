//! A thin layer over the Lua C API: [`L`] wraps a `lua_State` pointer with the handful of
//! stack operations the rest of the crate uses. This is where the crate's soundness rules are
//! stated; every `unsafe` block in the crate names the rule it relies on.
//!
//! 1. **One owner, one thread.** An `L` is only made from a state that a
//!    [`crate::vm::LuaVm`] created and still owns, or from the state Lua passes to one of our
//!    C functions or hooks while it runs. A VM is used by one thread at a time (the one
//!    holding the server lock), so no two threads touch a state.
//! 2. **Valid indexes, room on the stack.** Stack indexes are ones the caller just pushed or
//!    received. Pushes stay within the slots Lua guarantees (LUA_MINSTACK, 20, to a C
//!    function or hook) or are preceded by a successful [`L::check_stack`]; a failed check is
//!    handled as an error, never ignored.
//! 3. **No `longjmp` over live Rust values.** Lua raises errors with `longjmp`, which skips
//!    frames without running destructors. So:
//!    - allocation failures cannot raise from Rust code: the allocator refuses only in Lua
//!      mode, while Lua code runs inside a protected call made from Rust with no Rust frame
//!      in between, and in Rust mode a real out-of-memory aborts the process
//!      ([`crate::heap`]); growing the stack (`lua_checkstack`) allocates, so this covers it;
//!    - the other API calls made from Rust cannot raise, by construction: they never touch
//!      read-only tables or metamethods;
//!    - errors are raised on purpose only by the C function wrappers of [`crate::cfunc`],
//!      after the function body has returned and its Rust values are dropped.
//! 4. **No unwinding through C.** Every C function and hook body runs with panics caught
//!    ([`crate::cfunc`]), so no panic crosses Lua's C frames.

use crate::heap::{allocate, Heap};
use mlua_sys as ffi;
use std::ffi::{c_char, c_int};

pub use ffi::lua_CFunction as CFunction;
pub use ffi::lua_State as State;

extern "C-unwind" {
    /// Added to lapi.c by build.rs: sets or clears a table's read-only flag.
    fn moonkv_lua_setreadonly(l: *mut State, idx: c_int, on: c_int);
    /// Added to lapi.c by build.rs.
    fn moonkv_lua_isreadonly(l: *mut State, idx: c_int) -> c_int;
    /// Added to lapi.c by build.rs: 1 when a table's hash part holds no entry.
    fn moonkv_lua_nohashkeys(l: *mut State, idx: c_int) -> c_int;
}

pub const TNIL: c_int = ffi::LUA_TNIL;
pub const TBOOLEAN: c_int = ffi::LUA_TBOOLEAN;
pub const TNUMBER: c_int = ffi::LUA_TNUMBER;
pub const TSTRING: c_int = ffi::LUA_TSTRING;
pub const TTABLE: c_int = ffi::LUA_TTABLE;
pub const TFUNCTION: c_int = ffi::LUA_TFUNCTION;
pub const REGISTRY: c_int = ffi::LUA_REGISTRYINDEX;
pub const GLOBALS: c_int = ffi::LUA_GLOBALSINDEX;

/// A borrowed Lua state (see the module notes for when one may be made).
#[derive(Clone, Copy)]
pub struct L(pub *mut State);

impl L {
    pub fn top(self) -> c_int {
        // SAFETY: rule 1; lua_gettop only reads the state.
        unsafe { ffi::lua_gettop(self.0) }
    }
    pub fn set_top(self, idx: c_int) {
        // SAFETY: rule 1-2; shrinking or growing within the checked stack.
        unsafe { ffi::lua_settop(self.0, idx) }
    }
    pub fn pop(self, n: c_int) {
        self.set_top(-n - 1)
    }
    /// Makes room for `n` more values; false if the stack would pass Lua's limit (then
    /// nothing may be pushed beyond the guaranteed slots).
    #[must_use]
    pub fn check_stack(self, n: c_int) -> bool {
        // SAFETY: rule 1; growing the stack allocates, which cannot raise here (rule 3: this
        // is only called from Rust mode, where the allocator never refuses).
        unsafe { ffi::lua_checkstack(self.0, n) != 0 }
    }
    pub fn kind(self, idx: c_int) -> c_int {
        // SAFETY: rule 1-2.
        unsafe { ffi::lua_type(self.0, idx) }
    }
    pub fn is_string_or_number(self, idx: c_int) -> bool {
        // SAFETY: rule 1-2.
        unsafe { ffi::lua_isstring(self.0, idx) != 0 }
    }
    pub fn is_number(self, idx: c_int) -> bool {
        // SAFETY: rule 1-2.
        unsafe { ffi::lua_isnumber(self.0, idx) != 0 }
    }
    pub fn push_nil(self) {
        // SAFETY: rule 1-2.
        unsafe { ffi::lua_pushnil(self.0) }
    }
    pub fn push_bool(self, b: bool) {
        // SAFETY: rule 1-2.
        unsafe { ffi::lua_pushboolean(self.0, b as c_int) }
    }
    pub fn push_number(self, n: f64) {
        // SAFETY: rule 1-2.
        unsafe { ffi::lua_pushnumber(self.0, n) }
    }
    pub fn push_bytes(self, b: &[u8]) {
        // SAFETY: rule 1-2; Lua copies the bytes.
        unsafe { ffi::lua_pushlstring_(self.0, b.as_ptr() as *const c_char, b.len()) }
    }
    pub fn push_str(self, s: &str) {
        self.push_bytes(s.as_bytes())
    }
    pub fn push_function(self, f: CFunction) {
        // SAFETY: rule 1-2.
        unsafe { ffi::lua_pushcclosure(self.0, f, 0) }
    }
    pub fn push_value(self, idx: c_int) {
        // SAFETY: rule 1-2.
        unsafe { ffi::lua_pushvalue(self.0, idx) }
    }
    pub fn new_table(self, array: usize, hash: usize) {
        // SAFETY: rule 1-2.
        unsafe {
            ffi::lua_createtable(
                self.0,
                array.min(i32::MAX as usize) as c_int,
                hash.min(i32::MAX as usize) as c_int,
            )
        }
    }
    pub fn to_bool(self, idx: c_int) -> bool {
        // SAFETY: rule 1-2.
        unsafe { ffi::lua_toboolean(self.0, idx) != 0 }
    }
    pub fn to_number(self, idx: c_int) -> f64 {
        // SAFETY: rule 1-2.
        unsafe { ffi::lua_tonumber(self.0, idx) }
    }
    /// The bytes of a string (or a number, which Lua converts in place). The slice is valid
    /// while the value stays on the stack.
    pub fn to_bytes<'a>(self, idx: c_int) -> Option<&'a [u8]> {
        let mut len = 0usize;
        // SAFETY: rule 1-2; Lua strings are immutable and live as long as the stack slot
        // holds them, which callers respect by using the slice before popping.
        unsafe {
            let p = ffi::lua_tolstring(self.0, idx, &mut len);
            if p.is_null() {
                None
            } else {
                Some(std::slice::from_raw_parts(p as *const u8, len))
            }
        }
    }
    /// `t[k]` without metamethods, for the table at `idx` and the key on top (replaced).
    pub fn raw_get(self, idx: c_int) {
        // SAFETY: rule 1-2.
        unsafe {
            ffi::lua_rawget(self.0, idx);
        }
    }
    pub fn raw_get_field(self, idx: c_int, key: &str) -> c_int {
        let idx = self.absolute(idx);
        self.push_str(key);
        self.raw_get(idx);
        self.kind(-1)
    }
    pub fn raw_get_index(self, idx: c_int, n: i64) -> c_int {
        // SAFETY: rule 1-2.
        unsafe { ffi::lua_rawgeti(self.0, idx, n) }
    }
    /// `t[k] = v` without metamethods: key and value on top, popped. Raises on a read-only
    /// table (callers only use it on tables they made).
    pub fn raw_set(self, idx: c_int) {
        // SAFETY: rule 1-2.
        unsafe { ffi::lua_rawset(self.0, idx) }
    }
    pub fn raw_set_index(self, idx: c_int, n: i64) {
        // SAFETY: rule 1-2.
        unsafe { ffi::lua_rawseti(self.0, idx, n) }
    }
    /// Sets field `key` of the table at `idx` to the value on top (popped), raw.
    pub fn raw_set_field(self, idx: c_int, key: &str) {
        let idx = self.absolute(idx);
        self.push_str(key);
        self.insert(-2);
        self.raw_set(idx);
    }
    pub fn insert(self, idx: c_int) {
        // SAFETY: rule 1-2.
        unsafe { ffi::lua_insert(self.0, idx) }
    }
    pub fn remove(self, idx: c_int) {
        // SAFETY: rule 1-2.
        unsafe { ffi::lua_remove(self.0, idx) }
    }
    pub fn replace(self, idx: c_int) {
        // SAFETY: rule 1-2.
        unsafe { ffi::lua_replace(self.0, idx) }
    }
    /// Iterates the table at `idx`: pops a key, pushes the next key and value.
    pub fn next(self, idx: c_int) -> bool {
        // SAFETY: rule 1-2; callers never modify the table while iterating.
        unsafe { ffi::lua_next(self.0, idx) != 0 }
    }
    /// Pushes the metatable of the value at `idx`; false (nothing pushed) if it has none.
    pub fn get_metatable(self, idx: c_int) -> bool {
        // SAFETY: rule 1-2.
        unsafe { ffi::lua_getmetatable(self.0, idx) != 0 }
    }
    /// Sets the table on top as the metatable of the value at `idx` (pops it).
    pub fn set_metatable(self, idx: c_int) {
        // SAFETY: rule 1-2.
        unsafe {
            ffi::lua_setmetatable(self.0, idx);
        }
    }
    pub fn set_readonly(self, idx: c_int, on: bool) {
        // SAFETY: rule 1-2; the value at idx is a table (callers check).
        unsafe { moonkv_lua_setreadonly(self.0, idx, on as c_int) }
    }
    pub fn is_readonly(self, idx: c_int) -> bool {
        // SAFETY: rule 1-2; the value at idx is a table (callers check).
        unsafe { moonkv_lua_isreadonly(self.0, idx) != 0 }
    }
    /// Installs (or with None removes) the debug hook.
    pub fn set_hook(self, hook: Option<ffi::lua_Hook>, mask: c_int, count: c_int) {
        // SAFETY: rule 1; hooks are extern fns that follow rule 3.
        unsafe {
            ffi::lua_sethook(self.0, hook, mask, count);
        }
    }
    /// True when the table at `idx` has nothing in its hash part (so no string keys at all).
    pub fn has_no_hash_keys(self, idx: c_int) -> bool {
        // SAFETY: rule 1-2; the value at idx is a table (callers check).
        unsafe { moonkv_lua_nohashkeys(self.0, idx) != 0 }
    }
    pub fn absolute(self, idx: c_int) -> c_int {
        if idx < 0 && idx > REGISTRY {
            self.top() + idx + 1
        } else {
            idx
        }
    }
    /// Compiles `code` as chunk `name`; pushes the function, or the error message on failure.
    pub fn load(self, code: &[u8], name: &str) -> bool {
        let name = std::ffi::CString::new(name).unwrap_or_default();
        // SAFETY: rule 1-2; Lua reads the buffer during the call only.
        unsafe {
            ffi::luaL_loadbuffer(
                self.0,
                code.as_ptr() as *const c_char,
                code.len(),
                name.as_ptr(),
            ) == 0
        }
    }
    /// Calls the function below `nargs` arguments in protected mode with the message handler
    /// at `handler` (0: none), in Lua mode: allocations inside may fail, since the protected
    /// call catches the error before it reaches a Rust frame. Returns Lua's status code
    /// ([`OK`], [`ERRMEM`], ...).
    pub fn pcall(self, nargs: c_int, nresults: c_int, handler: c_int) -> c_int {
        let heap = self.heap();
        let outer_mode = heap.set_lua_mode(true);
        // SAFETY: rule 1-2; errors inside are caught by this protected call (rule 3).
        let status = unsafe { ffi::lua_pcall(self.0, nargs, nresults, handler) };
        heap.set_lua_mode(outer_mode);
        status
    }
    /// Replaces the string on top with itself prefixed by the position of the script line
    /// that called the running C function (`user_script:1: `), as luaL_error does. Needs two
    /// free slots.
    pub fn prefix_position(self) {
        // SAFETY: rule 1-2; luaL_where pushes a string, which goes below the message.
        unsafe { ffi::luaL_where(self.0, 1) };
        self.insert(-2);
        // SAFETY: rule 1-2; the two values on top are strings; concatenating allocates,
        // which cannot raise in Rust mode (rule 3).
        unsafe { ffi::lua_concat(self.0, 2) };
    }
    /// Raises the value on top as a Lua error. Only the wrappers of [`crate::cfunc`] call
    /// it, as their last step (rule 3).
    pub(crate) fn raise(self) -> c_int {
        // SAFETY: rule 3: the wrapper's body has returned; no live Rust value is skipped.
        unsafe { ffi::lua_error(self.0) }
    }
    /// The heap this state allocates from.
    pub(crate) fn heap<'a>(self) -> &'a Heap {
        let mut ud = std::ptr::null_mut();
        // SAFETY: rule 1; every state is made by [`new_state`] with a heap's user data, and
        // the owning LuaVm keeps the heap alive longer than the state.
        unsafe {
            ffi::lua_getallocf(self.0, &mut ud);
            Heap::from_user_data(ud)
        }
    }
    /// The error text for a script that went past its memory budget.
    pub(crate) fn memory_error(self) -> String {
        self.heap().limit_error()
    }
    pub fn registry_ref(self) -> c_int {
        // SAFETY: rule 1-2; pops the value on top into the registry.
        unsafe { ffi::luaL_ref(self.0, REGISTRY) }
    }
    pub fn registry_unref(self, r: c_int) {
        // SAFETY: rule 1; r came from registry_ref.
        unsafe { ffi::luaL_unref(self.0, REGISTRY, r) }
    }
    pub fn gc(self, what: c_int, data: c_int) -> c_int {
        // SAFETY: rule 1.
        unsafe { ffi::lua_gc(self.0, what, data) }
    }
    pub fn push_light(self, p: *mut std::ffi::c_void) {
        // SAFETY: rule 1-2; a light userdata is an opaque pointer value.
        unsafe { ffi::lua_pushlightuserdata(self.0, p) }
    }
    /// Pushes a new full userdata of `size` bytes (owned by Lua) and returns its memory.
    pub fn new_userdata(self, size: usize) -> *mut std::ffi::c_void {
        // SAFETY: rule 1-2.
        unsafe { ffi::lua_newuserdata(self.0, size) }
    }
    pub fn to_userdata(self, idx: c_int) -> *mut std::ffi::c_void {
        // SAFETY: rule 1-2.
        unsafe { ffi::lua_touserdata(self.0, idx) }
    }
}

pub use ffi::{
    lua_Debug as Debug, LUA_GCCOLLECT, LUA_GCCOUNT, LUA_GCCOUNTB, LUA_GCSTEP, LUA_MASKCOUNT,
    LUA_MASKLINE,
};

/// Lua's panic function: an error outside any protected call cannot be recovered from.
unsafe extern "C-unwind" fn panic(l: *mut State) -> c_int {
    let msg = L(l)
        .to_bytes(-1)
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .unwrap_or_default();
    eprintln!("unprotected error in the Lua engine: {msg}");
    std::process::abort()
}

/// Creates a fresh state allocating from `heap`, which must outlive it; None if out of
/// memory.
pub fn new_state(heap: &Heap) -> Option<L> {
    // SAFETY: `allocate` follows the lua_Alloc contract with a heap's user data.
    let p = unsafe { ffi::lua_newstate(allocate, heap.as_user_data()) };
    if p.is_null() {
        return None;
    }
    // SAFETY: p is a fresh state.
    unsafe { ffi::lua_atpanic(p, panic) };
    Some(L(p))
}

/// Closes a state created by [`new_state`]; nothing may use it afterwards.
pub fn close_state(l: L) {
    // SAFETY: called once, by the owner, when dropping it (rule 1).
    unsafe { ffi::lua_close(l.0) }
}

/// Opens one standard library the way lua.c does (through a protected call).
pub fn open_lib(l: L, name: &str, open: CFunction) -> bool {
    l.push_function(open);
    l.push_str(name);
    l.pcall(1, 0, 0) == OK
}

/// Lua's status codes for a protected call.
pub const OK: c_int = 0;
pub const ERRMEM: c_int = ffi::LUA_ERRMEM;

pub use ffi::{luaopen_base, luaopen_debug, luaopen_math, luaopen_string, luaopen_table};
