//! Conversions between command replies and Lua values, per Redis's tables, without RESP in
//! between: [`LuaReplyBuilder`] is the reply sink a command called from a script writes into,
//! and [`emit`] turns a script's return value into reply calls on the caller's sink.

use crate::raw::{self, L};
use moonkv_protocol::number::format_double;
use moonkv_protocol::{ErrorReply, Protocol, ReplySink};
use std::ffi::c_int;

/// Nesting deeper than this is answered with Redis's stack-limit error instead of recursing.
const MAX_DEPTH: usize = 1000;

enum FrameKind {
    Array {
        next: i64,
    },
    Map {
        key_pending: bool,
    },
    Set,
    /// RESP3 attributes are not shown to scripts: their values are dropped.
    Discard,
}

struct Frame {
    kind: FrameKind,
    /// Values still to come (a map counts keys and values).
    remaining: usize,
}

/// Builds the Lua value of one command reply on top of the Lua stack. It runs in Rust mode
/// (see [`crate::heap`]): its pushes cannot fail, so it stops building by itself once the
/// script's memory budget or Lua's stack limit is reached, and records why in `failure`.
pub struct LuaReplyBuilder<'h> {
    l: L,
    heap: &'h crate::heap::Heap,
    protocol: Protocol,
    frames: Vec<Frame>,
    /// Values completed at the top level (1 for a well-formed reply).
    pub produced: usize,
    /// Why the reply could not be built (the stack holds a partial value then).
    pub failure: Option<&'static str>,
}

impl LuaReplyBuilder<'_> {
    pub fn new(l: L, resp3: bool) -> Self {
        LuaReplyBuilder {
            l,
            heap: l.heap(),
            failure: None,
            protocol: if resp3 {
                Protocol::Resp3
            } else {
                Protocol::Resp2
            },
            frames: Vec::new(),
            produced: 0,
        }
    }

    /// Places the value just pushed into the open container, closing containers that fill up.
    fn attach(&mut self) {
        let l = self.l;
        loop {
            let Some(frame) = self.frames.last_mut() else {
                self.produced += 1;
                return;
            };
            match &mut frame.kind {
                FrameKind::Array { next } => {
                    l.raw_set_index(-2, *next);
                    *next += 1;
                }
                FrameKind::Map { key_pending } => {
                    if *key_pending {
                        // Stack: table, key, value. A nil key cannot be stored; drop the pair.
                        if l.kind(-2) == raw::TNIL {
                            l.pop(2);
                        } else {
                            l.raw_set(-3);
                        }
                    }
                    *key_pending = !*key_pending;
                }
                FrameKind::Set => {
                    if l.kind(-1) == raw::TNIL {
                        l.pop(1);
                    } else {
                        l.push_bool(true);
                        l.raw_set(-3);
                    }
                }
                FrameKind::Discard => l.pop(1),
            }
            frame.remaining -= 1;
            if frame.remaining > 0 {
                return;
            }
            // The container is complete: it becomes a value of its parent.
            let done = self.frames.pop().expect("frame");
            match done.kind {
                FrameKind::Map { .. } => wrap(l, "map"),
                FrameKind::Set => wrap(l, "set"),
                FrameKind::Discard => return,
                FrameKind::Array { .. } => {}
            }
        }
    }

    /// Whether `slots` more values may be pushed: false once building has failed, the memory
    /// budget is spent, or the stack cannot grow.
    fn room(&mut self, slots: c_int) -> bool {
        if self.failure.is_some() {
            return false;
        }
        if self.heap.over_ceiling() {
            self.failure = Some("ERR Lua memory limit reached");
            return false;
        }
        if !self.l.check_stack(slots) {
            self.failure = Some("ERR reached lua stack limit");
            return false;
        }
        true
    }

    fn open(&mut self, kind: FrameKind, len: usize, wrapper: Option<&str>) {
        let l = self.l;
        if !self.room(4) {
            return;
        }
        l.new_table(
            if matches!(kind, FrameKind::Array { .. }) {
                len
            } else {
                0
            },
            if matches!(kind, FrameKind::Array { .. }) {
                0
            } else {
                len
            },
        );
        if len == 0 {
            if let Some(name) = wrapper {
                wrap(l, name);
            }
            self.attach();
        } else {
            self.frames.push(Frame {
                kind,
                remaining: len,
            });
        }
    }

    fn leaf(&mut self) {
        self.attach();
    }
}

/// Replaces the table on top with `{name = table}`.
fn wrap(l: L, name: &str) {
    l.new_table(0, 1);
    l.insert(-2);
    l.raw_set_field(-2, name);
}

/// Pushes the one-field table `{field = <value pushed by push>}` that Redis uses for status,
/// double and big-number replies in Lua.
fn push_wrapped(l: L, field: &str, push: impl FnOnce(L)) {
    l.new_table(0, 1);
    push(l);
    l.raw_set_field(-2, field);
}

/// Pushes the `{err = "CODE message"}` table Redis uses for errors in Lua, from either
/// `-CODE message` or a bare message (code ERR), without trailing newlines. Needs three free
/// stack slots.
pub fn push_error_table(l: L, text: &str, counted: bool) {
    l.new_table(0, 2);
    l.push_str(&error_text(text));
    l.raw_set_field(-2, "err");
    if counted {
        l.push_bool(true);
        l.raw_set_field(-2, "ignore_error_stats_update");
    }
}

/// Whether the error table on top says its error was already counted in the statistics
/// (its `ignore_error_stats_update` field, set on errors that come from a called command).
pub fn counted_elsewhere(l: L) -> bool {
    let counted =
        l.raw_get_field(-1, "ignore_error_stats_update") == raw::TBOOLEAN && l.to_bool(-1);
    l.pop(1);
    counted
}

/// Redis's normalisation of an error string for the `err` field.
pub fn error_text(text: &str) -> String {
    let (code, msg) = match text.strip_prefix('-') {
        Some(rest) => match rest.split_once(' ') {
            Some((code, msg)) => (code, msg),
            None => ("ERR", rest),
        },
        None => ("ERR", text),
    };
    format!("{} {}", code, msg.trim_matches(|c| c == '\r' || c == '\n'))
}

impl ReplySink for LuaReplyBuilder<'_> {
    fn protocol(&self) -> Protocol {
        self.protocol
    }
    fn simple(&mut self, s: &str) {
        if !self.room(3) {
            return;
        }
        push_wrapped(self.l, "ok", |l| l.push_str(s));
        self.leaf();
    }
    fn error(&mut self, msg: &str) {
        if !self.room(3) {
            return;
        }
        let text = if msg.starts_with('-') {
            msg.to_string()
        } else {
            format!("-{msg}")
        };
        push_error_table(self.l, &text, true);
        self.leaf();
    }
    fn integer(&mut self, i: i64) {
        if !self.room(1) {
            return;
        }
        self.l.push_number(i as f64);
        self.leaf();
    }
    fn bulk(&mut self, b: &[u8]) {
        if !self.room(1) {
            return;
        }
        self.l.push_bytes(b);
        self.leaf();
    }
    fn null(&mut self) {
        if !self.room(1) {
            return;
        }
        if self.protocol == Protocol::Resp3 {
            self.l.push_nil();
        } else {
            self.l.push_bool(false);
        }
        self.leaf();
    }
    fn null_array(&mut self) {
        self.null();
    }
    fn array(&mut self, len: usize) {
        self.open(FrameKind::Array { next: 1 }, len, None);
    }
    fn map(&mut self, len: usize) {
        if self.protocol == Protocol::Resp3 {
            self.open(FrameKind::Map { key_pending: false }, len * 2, Some("map"));
        } else {
            self.open(FrameKind::Array { next: 1 }, len * 2, None);
        }
    }
    fn set(&mut self, len: usize) {
        if self.protocol == Protocol::Resp3 {
            self.open(FrameKind::Set, len, Some("set"));
        } else {
            self.open(FrameKind::Array { next: 1 }, len, None);
        }
    }
    fn double(&mut self, d: f64) {
        let l = self.l;
        if !self.room(3) {
            return;
        }
        if self.protocol == Protocol::Resp3 {
            push_wrapped(l, "double", |l| l.push_number(d));
        } else {
            l.push_str(&format_double(d));
        }
        self.leaf();
    }
    fn boolean(&mut self, b: bool) {
        if !self.room(1) {
            return;
        }
        if self.protocol == Protocol::Resp3 {
            self.l.push_bool(b);
        } else {
            self.l.push_number(b as i64 as f64);
        }
        self.leaf();
    }
    fn verbatim(&mut self, format: &str, text: &[u8]) {
        let l = self.l;
        if !self.room(4) {
            return;
        }
        if self.protocol == Protocol::Resp3 {
            l.new_table(0, 1);
            l.new_table(0, 2);
            l.push_bytes(text);
            l.raw_set_field(-2, "string");
            l.push_str(format);
            l.raw_set_field(-2, "format");
            l.raw_set_field(-2, "verbatim_string");
        } else {
            l.push_bytes(text);
        }
        self.leaf();
    }
    fn big_number(&mut self, digits: &str) {
        let l = self.l;
        if !self.room(3) {
            return;
        }
        if self.protocol == Protocol::Resp3 {
            push_wrapped(l, "big_number", |l| l.push_str(digits));
        } else {
            l.push_str(digits);
        }
        self.leaf();
    }
    fn push(&mut self, len: usize) {
        self.array(len);
    }
    fn attribute(&mut self, len: usize) {
        if len > 0 && self.failure.is_none() {
            self.frames.push(Frame {
                kind: FrameKind::Discard,
                remaining: len * 2,
            });
        }
    }
}

/// Registry references to the field names a returned table is checked for, so that checking
/// them costs no string hashing per table.
#[derive(Clone, Copy)]
pub struct ReplyKeys {
    refs: [c_int; 7],
}

const REPLY_KEY_NAMES: [&str; 7] = [
    "err",
    "ok",
    "double",
    "big_number",
    "verbatim_string",
    "map",
    "set",
];

impl ReplyKeys {
    pub fn new(l: L) -> Self {
        let mut refs = [0; 7];
        for (r, name) in refs.iter_mut().zip(REPLY_KEY_NAMES) {
            l.push_str(name);
            *r = l.registry_ref();
        }
        ReplyKeys { refs }
    }

    /// Whether the table at `idx` is an error table (`err` holds a string).
    pub fn is_error_table(&self, l: L, idx: c_int) -> bool {
        let t = self.get(l, idx, ERR);
        l.pop(1);
        t == raw::TSTRING
    }

    /// Pushes `t[name]` (raw) for the table at `idx`, returning its type.
    fn get(&self, l: L, idx: c_int, which: usize) -> c_int {
        let idx = l.absolute(idx);
        l.raw_get_index(raw::REGISTRY, self.refs[which] as i64);
        l.raw_get(idx);
        l.kind(-1)
    }
}

const ERR: usize = 0;
const OK: usize = 1;
const DOUBLE: usize = 2;
const BIG_NUMBER: usize = 3;
const VERBATIM: usize = 4;
const MAP: usize = 5;
const SET: usize = 6;

/// Writes the Lua value on top of the stack (popped) as a reply on `out`, as Redis converts a
/// script's return value. `script_resp3` is the protocol the script chose with setresp.
pub fn emit(
    l: L,
    keys: &ReplyKeys,
    out: &mut dyn ReplySink,
    script_resp3: bool,
    top_level_error: &mut Option<ErrorReply>,
) {
    emit_value(l, keys, out, script_resp3, 0, top_level_error);
}

fn emit_value(
    l: L,
    keys: &ReplyKeys,
    out: &mut dyn ReplySink,
    resp3: bool,
    depth: usize,
    top_error: &mut Option<ErrorReply>,
) {
    if depth > MAX_DEPTH || !l.check_stack(4) {
        l.pop(1);
        out.error("ERR reached lua stack limit");
        return;
    }
    match l.kind(-1) {
        raw::TSTRING => out.bulk(l.to_bytes(-1).unwrap_or_default()),
        raw::TBOOLEAN => {
            let b = l.to_bool(-1);
            if resp3 {
                out.boolean(b);
            } else if b {
                out.integer(1);
            } else {
                out.null();
            }
        }
        raw::TNUMBER => out.integer(lua_number_to_i64(l.to_number(-1))),
        raw::TTABLE => {
            emit_table(l, keys, out, resp3, depth, top_error);
            return;
        }
        _ => out.null(),
    }
    l.pop(1);
}

/// C's (long long) cast of a double, which Redis uses; out-of-range values saturate here.
fn lua_number_to_i64(n: f64) -> i64 {
    n as i64
}

fn emit_table(
    l: L,
    keys: &ReplyKeys,
    out: &mut dyn ReplySink,
    resp3: bool,
    depth: usize,
    top_error: &mut Option<ErrorReply>,
) {
    // A table with an empty hash part has none of the special fields: straight to the array.
    if l.has_no_hash_keys(-1) {
        return emit_array(l, keys, out, resp3, depth);
    }
    if keys.get(l, -1, ERR) == raw::TSTRING {
        let msg = String::from_utf8_lossy(l.to_bytes(-1).unwrap_or_default()).into_owned();
        l.pop(1);
        let counted = counted_elsewhere(l);
        l.pop(1);
        if depth == 0 {
            // The caller replies it, so it can honour `counted`.
            *top_error = Some(ErrorReply {
                message: msg,
                counted,
            });
        } else if counted {
            out.error_counted_elsewhere(&msg);
        } else {
            out.error(&msg);
        }
        return;
    }
    l.pop(1);
    if keys.get(l, -1, OK) == raw::TSTRING {
        let text = String::from_utf8_lossy(l.to_bytes(-1).unwrap_or_default()).into_owned();
        l.pop(2);
        out.simple(&text);
        return;
    }
    l.pop(1);
    if keys.get(l, -1, DOUBLE) == raw::TNUMBER {
        let d = l.to_number(-1);
        l.pop(2);
        out.double(d);
        return;
    }
    l.pop(1);
    if keys.get(l, -1, BIG_NUMBER) == raw::TSTRING {
        let digits =
            String::from_utf8_lossy(l.to_bytes(-1).unwrap_or_default()).replace(['\r', '\n'], " ");
        l.pop(2);
        out.big_number(&digits);
        return;
    }
    l.pop(1);
    if keys.get(l, -1, VERBATIM) == raw::TTABLE {
        let format_kind = l.raw_get_field(-1, "format");
        let string_kind = l.raw_get_field(-2, "string");
        if format_kind == raw::TSTRING && string_kind == raw::TSTRING {
            let format = String::from_utf8_lossy(l.to_bytes(-2).unwrap_or_default()).into_owned();
            let text = l.to_bytes(-1).unwrap_or_default().to_vec();
            l.pop(4);
            out.verbatim(&format, &text);
            return;
        }
        l.pop(2);
    }
    l.pop(1);
    if keys.get(l, -1, MAP) == raw::TTABLE {
        let pairs = count_pairs(l);
        out.map(pairs);
        l.push_nil();
        while l.next(-2) {
            l.push_value(-2);
            emit_value(l, keys, out, resp3, depth + 1, &mut None);
            emit_value(l, keys, out, resp3, depth + 1, &mut None);
        }
        l.pop(2);
        return;
    }
    l.pop(1);
    if keys.get(l, -1, SET) == raw::TTABLE {
        let members = count_pairs(l);
        out.set(members);
        l.push_nil();
        while l.next(-2) {
            l.pop(1);
            l.push_value(-1);
            emit_value(l, keys, out, resp3, depth + 1, &mut None);
        }
        l.pop(2);
        return;
    }
    l.pop(1);
    emit_array(l, keys, out, resp3, depth);
}

/// Writes the table on top (popped) as an array: elements 1..n up to the first nil.
fn emit_array(l: L, keys: &ReplyKeys, out: &mut dyn ReplySink, resp3: bool, depth: usize) {
    let mut len = 0i64;
    while l.raw_get_index(-1, len + 1) != raw::TNIL {
        l.pop(1);
        len += 1;
    }
    l.pop(1);
    out.array(len as usize);
    for i in 1..=len {
        l.raw_get_index(-1, i);
        emit_value(l, keys, out, resp3, depth + 1, &mut None);
    }
    l.pop(1);
}

/// Counts the entries of the table on top.
fn count_pairs(l: L) -> usize {
    let mut n = 0;
    l.push_nil();
    while l.next(-2) {
        l.pop(1);
        n += 1;
    }
    n
}

/// Reads the arguments of a redis.call-like function (stack positions 1..=top) as command
/// arguments: strings as they are, numbers as `%.17g`. Err for any other type.
pub fn command_args(l: L) -> Result<Vec<bytes::Bytes>, &'static str> {
    let n = l.top();
    if n == 0 {
        return Err("Please specify at least one argument for this redis lib call");
    }
    // All arguments go into one buffer, then become slices of it: two allocations per call
    // instead of one per argument.
    let mut numbers: Vec<(c_int, String)> = Vec::new();
    let mut total = 0;
    for i in 1..=n as c_int {
        match l.kind(i) {
            raw::TNUMBER => {
                let text = format_double(l.to_number(i));
                total += text.len();
                numbers.push((i, text));
            }
            raw::TSTRING => total += l.to_bytes(i).map_or(0, <[u8]>::len),
            _ => return Err("Lua redis lib command arguments must be strings or integers"),
        }
    }
    let mut buf = bytes::BytesMut::with_capacity(total);
    let mut ends = Vec::with_capacity(n as usize);
    let mut numbers = numbers.into_iter().peekable();
    for i in 1..=n as c_int {
        match numbers.next_if(|(at, _)| *at == i) {
            Some((_, text)) => buf.extend_from_slice(text.as_bytes()),
            None => buf.extend_from_slice(l.to_bytes(i).unwrap_or_default()),
        }
        ends.push(buf.len());
    }
    let all = buf.freeze();
    let mut start = 0;
    Ok(ends
        .into_iter()
        .map(|end| {
            let arg = all.slice(start..end);
            start = end;
            arg
        })
        .collect())
}
