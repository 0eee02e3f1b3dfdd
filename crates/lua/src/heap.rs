//! The Lua heap: the allocator a Lua state gets, what it counts, and when it may refuse.
//!
//! Lua reports a failed allocation by raising an error, which unwinds with `longjmp` to the
//! nearest protected call. Skipping Rust frames that way would leave their values undropped,
//! so the allocator only ever refuses in *Lua mode*: while Lua code runs inside a protected
//! call made from Rust ([`crate::raw::L::pcall`]), with no Rust frame between the allocation
//! and that call. Every C function of ours switches to *Rust mode* for its own body
//! ([`crate::cfunc`]), where the allocator never refuses: it lets the heap pass the ceiling
//! and notes it, and the C function raises the memory error once its Rust values are gone.
//! A real out-of-memory in Rust mode aborts the process, as Redis does.

use std::alloc::{alloc, dealloc, handle_alloc_error, realloc, Layout};
use std::cell::Cell;
use std::ffi::c_void;

/// Alignment of every block given to Lua (enough for any C type Lua stores).
const LUA_BLOCK_ALIGN: usize = 16;

/// The bookkeeping of one Lua state's memory, reached by the allocator through its user data.
pub(crate) struct Heap {
    /// Bytes of the blocks Lua holds now.
    used: Cell<usize>,
    /// The heap may not grow past this many bytes (usize::MAX: no limit).
    ceiling: Cell<usize>,
    /// The budget the ceiling was set from, for the error message.
    budget: Cell<usize>,
    /// Lua mode: an allocation may fail, since only C frames of Lua lie between it and the
    /// protected call that will catch the error.
    lua_mode: Cell<bool>,
    /// The heap passed the ceiling in Rust mode: the next C function to return raises the
    /// memory error instead.
    exceeded: Cell<bool>,
    /// The ceiling was hit during the current run (an allocation refused for it, or passed
    /// in Rust mode), so a "not enough memory" error means the limit and the run's garbage
    /// is worth collecting at once.
    hit: Cell<bool>,
    /// Test hook: the next C function body panics instead of running.
    panic_next: Cell<bool>,
}

impl Heap {
    pub fn new() -> Box<Heap> {
        Box::new(Heap {
            used: Cell::new(0),
            ceiling: Cell::new(usize::MAX),
            budget: Cell::new(0),
            lua_mode: Cell::new(false),
            exceeded: Cell::new(false),
            hit: Cell::new(false),
            panic_next: Cell::new(false),
        })
    }

    pub fn used(&self) -> usize {
        self.used.get()
    }

    /// Caps the heap at `used + budget` bytes from now on (None: no cap), and forgets earlier
    /// limit events.
    pub fn set_budget(&self, budget: Option<usize>) {
        let ceiling = budget.map_or(usize::MAX, |b| self.used().saturating_add(b));
        self.ceiling.set(ceiling);
        self.budget.set(budget.unwrap_or(0));
        self.exceeded.set(false);
        self.hit.set(false);
    }

    /// The error a script gets when it goes past its budget.
    pub fn limit_error(&self) -> String {
        format!(
            "ERR Lua memory limit reached: 'script-memory-limit' is {} bytes",
            self.budget.get()
        )
    }

    /// Whether the heap is past its ceiling (so the code running must stop with the memory
    /// error).
    pub fn over_ceiling(&self) -> bool {
        self.exceeded.get() || self.used() > self.ceiling.get()
    }

    /// Accounts for `pending` bytes held outside the heap on the script's behalf (a library
    /// function's output buffer): false, and the memory error noted, if they would take the
    /// heap past its ceiling.
    pub fn charge(&self, pending: usize) -> bool {
        if self.used().saturating_add(pending) > self.ceiling.get() {
            self.exceeded.set(true);
            self.hit.set(true);
            return false;
        }
        true
    }

    /// Whether the ceiling was hit during this run.
    pub fn limit_hit(&self) -> bool {
        self.hit.get()
    }

    /// Takes the "passed the ceiling in Rust mode" note, clearing it.
    pub fn take_exceeded(&self) -> bool {
        self.exceeded.replace(false)
    }

    /// Test hook: makes the next C function body panic.
    pub fn request_panic(&self) {
        self.panic_next.set(true);
    }

    /// Takes the test hook's request.
    pub fn take_panic_request(&self) -> bool {
        self.panic_next.replace(false)
    }

    /// Enters Lua or Rust mode, returning the mode to restore afterwards.
    pub fn set_lua_mode(&self, on: bool) -> bool {
        self.lua_mode.replace(on)
    }

    /// `lua_Alloc` user data for this heap.
    pub fn as_user_data(&self) -> *mut c_void {
        self as *const Heap as *mut c_void
    }

    /// The heap of a state, from the user data its allocator was given.
    ///
    /// # Safety
    /// `ud` must come from [`Heap::as_user_data`] of a heap that is still alive.
    pub unsafe fn from_user_data<'a>(ud: *mut c_void) -> &'a Heap {
        // SAFETY: per the contract, ud points to a live Heap; Heap is only touched through
        // Cells by the one thread using the state.
        unsafe { &*(ud as *const Heap) }
    }
}

/// Lua's allocation function, on Rust's global allocator (jemalloc in the server), so Lua
/// memory is as fast to get as the rest and counted with it.
///
/// # Safety
/// Called by Lua only, with `ud` from [`Heap::as_user_data`] and the lua_Alloc contract.
pub(crate) unsafe extern "C" fn allocate(
    ud: *mut c_void,
    ptr: *mut c_void,
    old_size: usize,
    new_size: usize,
) -> *mut c_void {
    // SAFETY: the state was created with this heap's user data, and the heap outlives it.
    let heap = unsafe { Heap::from_user_data(ud) };
    let old_size = if ptr.is_null() { 0 } else { old_size };
    if new_size == 0 {
        if !ptr.is_null() {
            // SAFETY: Lua passes the block's current size as old_size (lua_Alloc contract), so
            // this is the layout the block was allocated with.
            unsafe {
                dealloc(
                    ptr as *mut u8,
                    Layout::from_size_align_unchecked(old_size, LUA_BLOCK_ALIGN),
                )
            };
            heap.used.set(heap.used.get() - old_size);
        }
        return std::ptr::null_mut();
    }
    let growth = new_size.saturating_sub(old_size);
    let after = heap.used.get() - old_size + new_size;
    if growth > 0 && after > heap.ceiling.get() {
        heap.hit.set(true);
        if heap.lua_mode.get() {
            return std::ptr::null_mut();
        }
        heap.exceeded.set(true);
    }
    // SAFETY: new_size is non-zero and the alignment a power of two; for a reallocation the
    // old layout is the block's own (lua_Alloc contract).
    let block = unsafe {
        if ptr.is_null() {
            alloc(Layout::from_size_align_unchecked(new_size, LUA_BLOCK_ALIGN))
        } else {
            realloc(
                ptr as *mut u8,
                Layout::from_size_align_unchecked(old_size, LUA_BLOCK_ALIGN),
                new_size,
            )
        }
    };
    if block.is_null() {
        if heap.lua_mode.get() {
            // Lua raises its memory error, caught by the protected call that runs the code.
            return std::ptr::null_mut();
        }
        // In Rust mode an error must not be raised: out of memory is fatal, as in Redis.
        // SAFETY: the layout is well-formed (checked above).
        handle_alloc_error(unsafe { Layout::from_size_align_unchecked(new_size, LUA_BLOCK_ALIGN) });
    }
    heap.used.set(after);
    block as *mut c_void
}
