//! A thin layer over the Lua C API: [`L`] wraps a `lua_State` pointer with the handful of
//! stack operations the rest of the crate uses.
//!
//! Soundness rests on three rules that every caller in this crate keeps:
//! 1. An `L` is only made from a state that a [`crate::vm::LuaVm`] created and still owns, or
//!    from the state Lua passes to one of our C functions while it runs; the VM is used by one
//!    thread at a time (the one holding the server lock), so no two threads touch a state.
//! 2. Stack indexes are ones the caller just pushed or received, and deep pushes are preceded
//!    by [`L::check_stack`].
//! 3. Lua raises errors with `longjmp`. Only API calls that cannot raise (other than on
//!    allocation failure, where the process aborts anyway under jemalloc's policy) are made
//!    while Rust values with destructors are alive; functions that raise on purpose
//!    ([`L::raise`]) are called as the last thing a C function does, after its Rust locals
//!    are gone.

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
    /// Makes room for `n` more values; false if the stack cannot grow.
    pub fn check_stack(self, n: c_int) -> bool {
        // SAFETY: rule 1; lua-src's lua_checkstack grows the stack in protected mode.
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
    /// at `handler` (0: none). Returns true on success.
    pub fn pcall(self, nargs: c_int, nresults: c_int, handler: c_int) -> bool {
        // SAFETY: rule 1-2; errors are caught by pcall, never propagated past Rust frames.
        unsafe { ffi::lua_pcall(self.0, nargs, nresults, handler) == 0 }
    }
    /// Raises `msg` as luaL_error does (see [`L::raise_top_with_position`]). The string is
    /// copied into Lua and dropped before raising: must be the tail of a C function (rule 3).
    pub fn raise_message(self, msg: String) -> c_int {
        self.check_stack(1);
        self.push_str(&msg);
        drop(msg);
        self.raise_top_with_position()
    }
    /// Raises the string on top as luaL_error does: prefixed with the position of the script
    /// line that called the running C function (`user_script:1: `). Must be the tail of a C
    /// function (rule 3).
    pub fn raise_top_with_position(self) -> c_int {
        self.check_stack(2);
        // SAFETY: rule 1-2; luaL_where pushes a string, which goes below the message.
        unsafe { ffi::luaL_where(self.0, 1) };
        self.insert(-2);
        // SAFETY: rule 1-2; the two values on top are strings.
        unsafe { ffi::lua_concat(self.0, 2) };
        self.raise()
    }
    /// Raises the value on top as a Lua error. Must be the tail of a C function (rule 3).
    pub fn raise(self) -> c_int {
        // SAFETY: rule 3: called with no live Rust destructors between here and Lua.
        unsafe { ffi::lua_error(self.0) }
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

/// Alignment of every block given to Lua (enough for any C type Lua stores).
const LUA_BLOCK_ALIGN: usize = 16;

/// Lua's allocation function, on Rust's global allocator (jemalloc in the server), so Lua
/// memory is as fast to get as the rest and counted with it.
unsafe extern "C" fn allocate(
    _ud: *mut std::ffi::c_void,
    ptr: *mut std::ffi::c_void,
    old_size: usize,
    new_size: usize,
) -> *mut std::ffi::c_void {
    use std::alloc::{alloc, dealloc, realloc, Layout};
    // SAFETY: Lua 5.1 passes the block's current size as old_size whenever ptr is not null
    // (lua_Alloc contract), so each layout below is the one the block was allocated with;
    // sizes are non-zero where a layout is built for allocation, and the alignment is a
    // power of two.
    unsafe {
        if new_size == 0 {
            if !ptr.is_null() {
                dealloc(
                    ptr as *mut u8,
                    Layout::from_size_align_unchecked(old_size, LUA_BLOCK_ALIGN),
                );
            }
            return std::ptr::null_mut();
        }
        if ptr.is_null() {
            return alloc(Layout::from_size_align_unchecked(new_size, LUA_BLOCK_ALIGN))
                as *mut std::ffi::c_void;
        }
        realloc(
            ptr as *mut u8,
            Layout::from_size_align_unchecked(old_size, LUA_BLOCK_ALIGN),
            new_size,
        ) as *mut std::ffi::c_void
    }
}

/// Lua's panic function: an error outside any protected call cannot be recovered from.
unsafe extern "C-unwind" fn panic(l: *mut State) -> c_int {
    let msg = L(l)
        .to_bytes(-1)
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .unwrap_or_default();
    eprintln!("unprotected error in the Lua engine: {msg}");
    std::process::abort()
}

/// Creates a fresh state on the Rust allocator; None if out of memory.
pub fn new_state() -> Option<L> {
    // SAFETY: `allocate` follows the lua_Alloc contract; the user data is unused.
    let p = unsafe { ffi::lua_newstate(allocate, std::ptr::null_mut()) };
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
    l.pcall(1, 0, 0)
}

pub use ffi::{luaopen_base, luaopen_debug, luaopen_math, luaopen_string, luaopen_table};
