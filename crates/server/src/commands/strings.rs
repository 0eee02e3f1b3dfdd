//! String commands: GET/SET and their variants, counters, ranges, MGET/MSET, LCS.
//! Bit-level string commands live in `bitops.rs`.

use super::longdouble::{self, IncrFloatError, LongDouble, Parsed};
use super::spec::flags::*;
use super::{errors, CommandSpec, Ctx};
use crate::notify::class;
use compact_bytes::CompactBytes;
use moonkv_keyspace::{StrView, Value};
use moonkv_protocol::number::parse_i64;
use moonkv_protocol::ReplySink;

const fn string_cmd(
    name: &'static str,
    arity: i32,
    flags: u32,
    keys: (i32, i32, i32),
    handler: super::Handler,
) -> CommandSpec {
    CommandSpec::new(name, arity, flags, keys, "string", handler).group("string")
}

pub static COMMANDS: &[CommandSpec] = &[
    string_cmd("get", 2, READONLY | FAST, (1, 1, 1), get)
        .summary("Get the value of a key", "1.0.0"),
    string_cmd("set", -3, WRITE | DENYOOM, (1, 1, 1), set)
        .summary("Set the string value of a key", "1.0.0"),
    string_cmd("setnx", 3, WRITE | DENYOOM | FAST, (1, 1, 1), setnx)
        .summary("Set a key only if it does not exist", "1.0.0"),
    string_cmd("setex", 4, WRITE | DENYOOM, (1, 1, 1), setex)
        .summary("Set a key with a time to live in seconds", "2.0.0"),
    string_cmd("psetex", 4, WRITE | DENYOOM, (1, 1, 1), psetex)
        .summary("Set a key with a time to live in milliseconds", "2.6.0"),
    string_cmd("getset", 3, WRITE | DENYOOM | FAST, (1, 1, 1), getset)
        .summary("Set a key and return its old value", "1.0.0"),
    string_cmd("getdel", 2, WRITE | FAST, (1, 1, 1), getdel)
        .summary("Get a key's value and delete it", "6.2.0"),
    string_cmd("getex", -2, WRITE | FAST, (1, 1, 1), getex)
        .summary("Get a key's value and change its expiry", "6.2.0"),
    string_cmd("mget", -2, READONLY | FAST, (1, -1, 1), mget)
        .summary("Get the values of several keys", "1.0.0"),
    string_cmd("mset", -3, WRITE | DENYOOM, (1, -1, 2), mset).summary("Set several keys", "1.0.1"),
    string_cmd("msetnx", -3, WRITE | DENYOOM, (1, -1, 2), msetnx)
        .summary("Set several keys only if none exists", "1.0.1"),
    string_cmd("append", 3, WRITE | DENYOOM | FAST, (1, 1, 1), append)
        .summary("Append to a string", "2.0.0"),
    string_cmd("strlen", 2, READONLY | FAST, (1, 1, 1), strlen)
        .summary("Length of a string", "2.2.0"),
    string_cmd("incr", 2, WRITE | DENYOOM | FAST, (1, 1, 1), incr)
        .summary("Increment an integer by one", "1.0.0"),
    string_cmd("decr", 2, WRITE | DENYOOM | FAST, (1, 1, 1), decr)
        .summary("Decrement an integer by one", "1.0.0"),
    string_cmd("incrby", 3, WRITE | DENYOOM | FAST, (1, 1, 1), incrby)
        .summary("Increment an integer", "1.0.0"),
    string_cmd("decrby", 3, WRITE | DENYOOM | FAST, (1, 1, 1), decrby)
        .summary("Decrement an integer", "1.0.0"),
    string_cmd(
        "incrbyfloat",
        3,
        WRITE | DENYOOM | FAST,
        (1, 1, 1),
        incrbyfloat,
    )
    .summary("Increment a float", "2.6.0"),
    string_cmd("getrange", 4, READONLY, (1, 1, 1), getrange).summary("Get a substring", "2.4.0"),
    string_cmd("substr", 4, READONLY, (1, 1, 1), getrange)
        .summary("Get a substring (old name of GETRANGE)", "1.0.0"),
    string_cmd("setrange", 4, WRITE | DENYOOM, (1, 1, 1), setrange)
        .summary("Overwrite part of a string", "2.2.0"),
    string_cmd("lcs", -3, READONLY, (1, 2, 1), lcs)
        .summary("Longest common subsequence of two strings", "7.0.0"),
];

/// Reads a string value as owned bytes, or None if missing. Err(()) means wrong type (already
/// replied).
fn read_string(ctx: &mut Ctx, key: &[u8]) -> Result<Option<Vec<u8>>, ()> {
    let now = ctx.now_ms;
    match ctx
        .db()
        .get(key, now)
        .map(|v| v.as_str().map(StrView::to_vec))
    {
        None => Ok(None),
        Some(Some(bytes)) => Ok(Some(bytes)),
        Some(None) => {
            ctx.wrong_type();
            Err(())
        }
    }
}

/// Replies with a string value straight from the keyspace (no copy). Returns false if the key
/// holds another type (nothing was replied).
fn reply_value(ctx: &mut Ctx, key: &[u8], count_stats: bool) -> bool {
    let now = ctx.now_ms;
    let (db, sink) = ctx.db_and_sink();
    let found = if count_stats {
        db.get(key, now)
    } else {
        db.peek(key, now)
    };
    match found.map(Value::as_str) {
        None => sink.null(),
        Some(Some(StrView::Bytes(b))) => sink.bulk(b),
        Some(Some(StrView::Int(i))) => sink.bulk_int(i),
        Some(None) => return false,
    }
    true
}

fn get(ctx: &mut Ctx) {
    let args = ctx.args;
    if !reply_value(ctx, &args[1], true) {
        ctx.wrong_type();
    }
}

/// When a key set by SET/GETEX should expire.
#[derive(Clone, Copy, PartialEq)]
enum ExpireOpt {
    None,
    KeepTtl,
    Persist,
    /// Absolute Unix ms.
    At(i64),
}

/// Turns `EX/PX/EXAT/PXAT <n>` into an absolute time; None means Redis's "invalid expire time".
fn expire_at(unit: &str, n: i64, now: i64) -> Option<i64> {
    if n <= 0 {
        return None;
    }
    match unit {
        "ex" => n.checked_mul(1000)?.checked_add(now),
        "px" => n.checked_add(now),
        "exat" => n.checked_mul(1000),
        "pxat" => Some(n),
        _ => None,
    }
}

/// Parses the number after EX/PX/EXAT/PXAT (`unit`) at `args[i]` into an absolute time;
/// replies the error and returns None when invalid.
fn parse_expire_arg(ctx: &mut Ctx, unit: &str, i: usize) -> Option<i64> {
    let n = ctx.arg_i64(i)?;
    let at = expire_at(unit, n, ctx.now_ms);
    if at.is_none() {
        invalid_expire(ctx);
    }
    at
}

fn invalid_expire(ctx: &mut Ctx) {
    let msg = format!("ERR invalid expire time in '{}' command", ctx.spec.name);
    ctx.error(&msg);
}

fn set(ctx: &mut Ctx) {
    let args = ctx.args;
    let (mut nx, mut xx, mut get_old) = (false, false, false);
    let mut expire = ExpireOpt::None;
    let mut i = 3;
    while i < args.len() {
        let opt = ctx.arg_lower(i);
        let has_next = i + 1 < args.len();
        match opt.as_str() {
            "nx" if !xx => nx = true,
            "xx" if !nx => xx = true,
            "get" => get_old = true,
            "keepttl" if expire == ExpireOpt::None => expire = ExpireOpt::KeepTtl,
            "ex" | "px" | "exat" | "pxat" if expire == ExpireOpt::None && has_next => {
                let Some(at) = parse_expire_arg(ctx, &opt, i + 1) else {
                    return;
                };
                expire = ExpireOpt::At(at);
                i += 1;
            }
            _ => return ctx.syntax_error(),
        }
        i += 1;
    }
    let key = &args[1];
    let now = ctx.now_ms;
    // A plain SET needs no look-up of the old value at all.
    let existing_is_string = if get_old || nx || xx {
        ctx.db().peek(key, now).map(Value::is_string)
    } else {
        None
    };
    if get_old {
        if existing_is_string == Some(false) {
            return ctx.wrong_type();
        }
        reply_value(ctx, key, true);
    }
    let exists = existing_is_string.is_some();
    if (nx && exists) || (xx && !exists) {
        if !get_old {
            ctx.null();
        }
        return;
    }
    store(ctx, key, Value::string(&args[2]), expire);
    if let ExpireOpt::At(at) = expire {
        propagate_set_pxat(ctx, key, &args[2], at);
    } else if get_old {
        // Replicas need the write, not the read (Redis drops GET from what it propagates).
        let options = args[3..].iter().filter(|a| !a.eq_ignore_ascii_case(b"get"));
        let kept: Vec<&[u8]> = args[..3].iter().chain(options).map(|a| &a[..]).collect();
        ctx.propagate_parts(&kept);
    }
    if !get_old {
        ctx.ok();
    }
}

/// Stores a string value with the given expiry and reports the events.
fn store(ctx: &mut Ctx, key: &[u8], value: Value, expire: ExpireOpt) {
    let now = ctx.now_ms;
    ctx.db().set(key, value, expire == ExpireOpt::KeepTtl);
    ctx.notify(class::STRING, "set", key);
    if let ExpireOpt::At(at) = expire {
        ctx.db().set_expire(key, at, now);
        ctx.notify(class::GENERIC, "expire", key);
    }
}

/// Replicates a SET-like command with an expiry as `SET key value PXAT <absolute ms>`, so
/// replicas expire the key at the same instant.
fn propagate_set_pxat(ctx: &mut Ctx, key: &[u8], value: &[u8], at: i64) {
    ctx.propagate_parts(&[b"SET", key, value, b"PXAT", at.to_string().as_bytes()]);
}

fn setnx(ctx: &mut Ctx) {
    let args = ctx.args;
    let now = ctx.now_ms;
    if ctx.db().exists(&args[1], now) {
        return ctx.integer(0);
    }
    store(ctx, &args[1], Value::string(&args[2]), ExpireOpt::None);
    ctx.integer(1);
}

fn setex_generic(ctx: &mut Ctx, unit: &str) {
    let args = ctx.args;
    let Some(at) = parse_expire_arg(ctx, unit, 2) else {
        return;
    };
    store(ctx, &args[1], Value::string(&args[3]), ExpireOpt::At(at));
    propagate_set_pxat(ctx, &args[1], &args[3], at);
    ctx.ok();
}

fn setex(ctx: &mut Ctx) {
    setex_generic(ctx, "ex");
}

fn psetex(ctx: &mut Ctx) {
    setex_generic(ctx, "px");
}

fn getset(ctx: &mut Ctx) {
    let args = ctx.args;
    if !reply_value(ctx, &args[1], true) {
        return ctx.wrong_type();
    }
    store(ctx, &args[1], Value::string(&args[2]), ExpireOpt::None);
    ctx.propagate_parts(&[b"SET", &args[1], &args[2]]);
}

fn getdel(ctx: &mut Ctx) {
    let args = ctx.args;
    if !reply_value(ctx, &args[1], true) {
        return ctx.wrong_type();
    }
    let now = ctx.now_ms;
    if ctx.db().remove(&args[1], now).is_some() {
        ctx.notify(class::GENERIC, "del", &args[1]);
        ctx.propagate_parts(&[b"DEL", &args[1]]);
    }
}

fn getex(ctx: &mut Ctx) {
    let args = ctx.args;
    let mut expire = ExpireOpt::None;
    let mut i = 2;
    while i < args.len() {
        let opt = ctx.arg_lower(i);
        match opt.as_str() {
            "persist" if expire == ExpireOpt::None => expire = ExpireOpt::Persist,
            "ex" | "px" | "exat" | "pxat" if expire == ExpireOpt::None && i + 1 < args.len() => {
                let Some(at) = parse_expire_arg(ctx, &opt, i + 1) else {
                    return;
                };
                expire = ExpireOpt::At(at);
                i += 1;
            }
            _ => return ctx.syntax_error(),
        }
        i += 1;
    }
    let key = &args[1];
    let now = ctx.now_ms;
    match ctx.db().get(key, now).map(Value::is_string) {
        None => return ctx.null(),
        Some(false) => return ctx.wrong_type(),
        Some(true) => {}
    }
    reply_value(ctx, key, false);
    match expire {
        ExpireOpt::At(at) if ctx.already_expired(at) => {
            ctx.db().remove(key, now);
            ctx.notify(class::GENERIC, "del", key);
            ctx.propagate_parts(&[b"DEL", key]);
        }
        ExpireOpt::At(at) => {
            ctx.db().set_expire(key, at, now);
            ctx.notify(class::GENERIC, "expire", key);
            ctx.propagate_parts(&[b"PEXPIREAT", key, at.to_string().as_bytes()]);
        }
        ExpireOpt::Persist => {
            if ctx.db().persist(key) {
                ctx.notify(class::GENERIC, "persist", key);
                ctx.propagate_parts(&[b"PERSIST", key]);
            }
        }
        ExpireOpt::None | ExpireOpt::KeepTtl => {}
    }
}

fn mget(ctx: &mut Ctx) {
    let args = ctx.args;
    let now = ctx.now_ms;
    let (db, sink) = ctx.db_and_sink();
    sink.array(args.len() - 1);
    for key in &args[1..] {
        match db.get(key, now).and_then(Value::as_str) {
            None => sink.null(),
            Some(StrView::Bytes(b)) => sink.bulk(b),
            Some(StrView::Int(i)) => sink.bulk_int(i),
        }
    }
}

fn mset_generic(ctx: &mut Ctx, only_if_none_exist: bool) -> bool {
    let args = ctx.args;
    if args.len() % 2 == 0 {
        ctx.arity_error();
        return false;
    }
    let now = ctx.now_ms;
    if only_if_none_exist && args[1..].chunks(2).any(|kv| ctx.db().exists(&kv[0], now)) {
        return false;
    }
    for kv in args[1..].chunks(2) {
        store(ctx, &kv[0], Value::string(&kv[1]), ExpireOpt::None);
    }
    true
}

fn mset(ctx: &mut Ctx) {
    if mset_generic(ctx, false) {
        ctx.ok();
    }
}

fn msetnx(ctx: &mut Ctx) {
    let args = ctx.args;
    if args.len() % 2 == 0 {
        return ctx.arity_error();
    }
    let done = mset_generic(ctx, true);
    ctx.integer(done as i64);
}

/// Checks that a string of `len` bytes is allowed; replies the error if not.
fn check_size(ctx: &mut Ctx, len: usize) -> bool {
    if len > ctx.max_string_len() {
        ctx.error("ERR string exceeds maximum allowed size (proto-max-bulk-len)");
        return false;
    }
    true
}

fn append(ctx: &mut Ctx) {
    let args = ctx.args;
    let (key, suffix) = (&args[1], &args[2]);
    let now = ctx.now_ms;
    let current_len = match ctx.db().peek(key, now).map(Value::as_str) {
        None => None,
        Some(None) => return ctx.wrong_type(),
        Some(Some(view)) => Some(view.len()),
    };
    let new_len = match current_len {
        None => {
            store(ctx, key, Value::string(suffix), ExpireOpt::None);
            ctx.notify(class::STRING, "append", key);
            return ctx.integer(suffix.len() as i64);
        }
        Some(len) => len + suffix.len(),
    };
    if !check_size(ctx, new_len) {
        return;
    }
    if let Some(buf) = ctx.db().get_mut(key, now).and_then(Value::as_raw_mut) {
        buf.extend_from_slice(suffix);
    }
    ctx.db().mark_modified(key);
    ctx.notify(class::STRING, "append", key);
    ctx.integer(new_len as i64);
}

fn strlen(ctx: &mut Ctx) {
    let args = ctx.args;
    let now = ctx.now_ms;
    match ctx
        .db()
        .get(&args[1], now)
        .map(|v| v.as_str().map(StrView::len))
    {
        None => ctx.integer(0),
        Some(Some(len)) => ctx.integer(len as i64),
        Some(None) => ctx.wrong_type(),
    }
}

/// What INCR-family arithmetic found, decided while the value was borrowed once.
enum IncrOutcome {
    Done(i64),
    Missing,
    WrongType,
    NotInteger,
    Overflow,
}

/// Adds `delta` to the integer stored at `key` (0 when missing) and replies the result. The
/// value is updated in place with a single lookup, keeping its TTL as Redis does.
fn incr_by(ctx: &mut Ctx, delta: i64) {
    let args = ctx.args;
    let key = &args[1];
    let now = ctx.now_ms;
    let outcome = match ctx.db().get_mut(key, now) {
        None => IncrOutcome::Missing,
        Some(slot) => {
            let current = match slot.as_str() {
                None => None,
                Some(StrView::Int(i)) => Some(Some(i)),
                Some(StrView::Bytes(b)) => Some(parse_i64(b)),
            };
            match current {
                None => IncrOutcome::WrongType,
                Some(None) => IncrOutcome::NotInteger,
                Some(Some(i)) => match i.checked_add(delta) {
                    None => IncrOutcome::Overflow,
                    Some(result) => {
                        *slot = Value::Int(result);
                        IncrOutcome::Done(result)
                    }
                },
            }
        }
    };
    let result = match outcome {
        IncrOutcome::Done(result) => {
            ctx.db().mark_modified(key);
            result
        }
        IncrOutcome::Missing => {
            ctx.db().set(key, Value::Int(delta), false);
            delta
        }
        IncrOutcome::WrongType => return ctx.wrong_type(),
        IncrOutcome::NotInteger => return ctx.error(errors::NOT_INTEGER),
        IncrOutcome::Overflow => return ctx.error(errors::OVERFLOW),
    };
    ctx.notify(class::STRING, "incrby", key);
    ctx.integer(result);
}

fn incr(ctx: &mut Ctx) {
    incr_by(ctx, 1);
}

fn decr(ctx: &mut Ctx) {
    incr_by(ctx, -1);
}

fn incrby(ctx: &mut Ctx) {
    if let Some(delta) = ctx.arg_i64(2) {
        incr_by(ctx, delta);
    }
}

fn decrby(ctx: &mut Ctx) {
    let Some(delta) = ctx.arg_i64(2) else { return };
    match delta.checked_neg() {
        Some(d) => incr_by(ctx, d),
        None => ctx.error("ERR decrement would overflow"),
    }
}

fn incrbyfloat(ctx: &mut Ctx) {
    let args = ctx.args;
    let key = &args[1];
    let now = ctx.now_ms;
    // Redis adds in x87 80-bit precision and prints with %.17Lf; `longdouble` reproduces it so
    // that, e.g., 0.1 + 0.2 answers 0.3 exactly like Redis.
    let current = match ctx.db().peek(key, now).map(Value::as_str) {
        None => None,
        Some(None) => return ctx.wrong_type(),
        Some(Some(StrView::Int(i))) => Some(Parsed::Finite(LongDouble::from_i64(i))),
        Some(Some(StrView::Bytes(b))) => match longdouble::parse(b) {
            Some(p) => Some(p),
            None => return ctx.error(errors::NOT_FLOAT),
        },
    };
    let text = match longdouble::incr_by_float(current, &args[2]) {
        Ok(text) => text,
        Err(IncrFloatError::NotAFloat) => return ctx.error(errors::NOT_FLOAT),
        Err(IncrFloatError::NanOrInfinity) => {
            return ctx.error("ERR increment would produce NaN or Infinity")
        }
    };
    let value = Value::Str(CompactBytes::new(text.as_bytes()));
    match ctx.db().get_mut(key, now) {
        Some(slot) => {
            *slot = value;
            ctx.db().mark_modified(key);
        }
        None => ctx.db().set(key, value, false),
    }
    ctx.notify(class::STRING, "incrbyfloat", key);
    // Replicas get the result, not the increment: float addition must not drift.
    ctx.propagate_parts(&[b"SET", key, text.as_bytes(), b"KEEPTTL"]);
    ctx.bulk(text.as_bytes());
}

/// Resolves Redis's inclusive, possibly negative, [start, end] range over `len` bytes.
fn byte_range(start: i64, end: i64, len: usize) -> Option<(usize, usize)> {
    let len = len as i64;
    if len == 0 {
        return None;
    }
    let mut start = if start < 0 { len + start } else { start };
    let mut end = if end < 0 { len + end } else { end };
    start = start.max(0);
    end = end.max(0);
    if end >= len {
        end = len - 1;
    }
    if start > end {
        return None;
    }
    Some((start as usize, end as usize))
}

fn getrange(ctx: &mut Ctx) {
    let args = ctx.args;
    let (Some(start), Some(end)) = (parse_i64(&args[2]), parse_i64(&args[3])) else {
        return ctx.error(errors::NOT_INTEGER);
    };
    let Ok(value) = read_string(ctx, &args[1]) else {
        return;
    };
    let value = value.unwrap_or_default();
    // Both ends negative with start after end is empty, even before clamping (Redis 7 rule).
    if start < 0 && end < 0 && start > end {
        return ctx.bulk(b"");
    }
    match byte_range(start, end, value.len()) {
        Some((s, e)) => ctx.bulk(&value[s..=e]),
        None => ctx.bulk(b""),
    }
}

fn setrange(ctx: &mut Ctx) {
    let args = ctx.args;
    let (key, patch) = (&args[1], &args[3]);
    let Some(offset) = ctx.arg_i64(2) else { return };
    if offset < 0 {
        return ctx.error("ERR offset is out of range");
    }
    let offset = offset as usize;
    let now = ctx.now_ms;
    let current_len = match ctx.db().peek(key, now).map(Value::as_str) {
        None => None,
        Some(None) => return ctx.wrong_type(),
        Some(Some(view)) => Some(view.len()),
    };
    if patch.is_empty() {
        // Nothing to write: report the current length without creating the key.
        return ctx.integer(current_len.unwrap_or(0) as i64);
    }
    let Some(needed) = offset.checked_add(patch.len()) else {
        return ctx.error("ERR string exceeds maximum allowed size (proto-max-bulk-len)");
    };
    if !check_size(ctx, needed) {
        return;
    }
    if current_len.is_none() {
        ctx.db().set(key, Value::Raw(Vec::new()), false);
    }
    let mut new_len = 0;
    if let Some(buf) = ctx.db().get_mut(key, now).and_then(Value::as_raw_mut) {
        if buf.len() < needed {
            buf.resize(needed, 0);
        }
        buf[offset..needed].copy_from_slice(patch);
        new_len = buf.len();
    }
    ctx.db().mark_modified(key);
    ctx.notify(class::STRING, "setrange", key);
    ctx.integer(new_len as i64);
}

/// Largest LCS table (cells) computed; beyond it the command refuses rather than allocating
/// gigabytes.
const LCS_MAX_CELLS: usize = 1 << 28;

fn lcs(ctx: &mut Ctx) {
    let args = ctx.args;
    let (mut want_len, mut want_idx, mut with_match_len) = (false, false, false);
    let mut min_match_len: i64 = 0;
    let mut i = 3;
    while i < args.len() {
        match ctx.arg_lower(i).as_str() {
            "len" => want_len = true,
            "idx" => want_idx = true,
            "withmatchlen" => with_match_len = true,
            "minmatchlen" if i + 1 < args.len() => {
                let Some(n) = ctx.arg_i64(i + 1) else { return };
                min_match_len = n.max(0);
                i += 1;
            }
            _ => return ctx.syntax_error(),
        }
        i += 1;
    }
    let now = ctx.now_ms;
    let mut strings = Vec::with_capacity(2);
    for key in &args[1..3] {
        match ctx
            .db()
            .get(key, now)
            .map(|v| v.as_str().map(StrView::to_vec))
        {
            None => strings.push(Vec::new()),
            Some(Some(b)) => strings.push(b),
            Some(None) => return ctx.error("ERR The specified keys must contain string values"),
        }
    }
    if want_len && want_idx {
        return ctx.error("ERR If you want both the length and indexes, please just use IDX.");
    }
    let (a, b) = (&strings[0], &strings[1]);
    let cells = (a.len() + 1).saturating_mul(b.len() + 1);
    if cells > LCS_MAX_CELLS {
        return ctx
            .error("ERR Insufficient memory, transient memory for LCS exceeds proto-max-bulk-len");
    }
    let result = lcs_compute(a, b);
    if want_len {
        return ctx.integer(result.subsequence.len() as i64);
    }
    if !want_idx {
        return ctx.bulk(&result.subsequence);
    }
    let matches: Vec<&LcsMatch> = result
        .matches
        .iter()
        .filter(|m| m.len as i64 >= min_match_len)
        .collect();
    ctx.map(2);
    ctx.bulk(b"matches");
    ctx.array(matches.len());
    for m in matches {
        ctx.array(if with_match_len { 3 } else { 2 });
        ctx.array(2);
        ctx.integer(m.a_start as i64);
        ctx.integer((m.a_start + m.len - 1) as i64);
        ctx.array(2);
        ctx.integer(m.b_start as i64);
        ctx.integer((m.b_start + m.len - 1) as i64);
        if with_match_len {
            ctx.integer(m.len as i64);
        }
    }
    ctx.bulk(b"len");
    ctx.integer(result.subsequence.len() as i64);
}

/// One run of consecutive matching bytes, reported from the end of the strings backwards.
#[derive(Debug, PartialEq)]
struct LcsMatch {
    a_start: usize,
    b_start: usize,
    len: usize,
}

struct LcsResult {
    subsequence: Vec<u8>,
    matches: Vec<LcsMatch>,
}

/// Classic dynamic programming LCS, then a walk back from the end collecting the subsequence
/// and its runs (the order Redis reports them in).
fn lcs_compute(a: &[u8], b: &[u8]) -> LcsResult {
    let width = b.len() + 1;
    let mut table = vec![0u32; (a.len() + 1) * width];
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            table[i * width + j] = if a[i - 1] == b[j - 1] {
                table[(i - 1) * width + j - 1] + 1
            } else {
                table[(i - 1) * width + j].max(table[i * width + j - 1])
            };
        }
    }
    let mut subsequence = Vec::with_capacity(table[a.len() * width + b.len()] as usize);
    let mut matches: Vec<LcsMatch> = Vec::new();
    let (mut i, mut j) = (a.len(), b.len());
    while i > 0 && j > 0 {
        if a[i - 1] == b[j - 1] {
            subsequence.push(a[i - 1]);
            let (ai, bj) = (i - 1, j - 1);
            match matches.last_mut() {
                // Extends the current run if it continues diagonally.
                Some(m) if m.a_start == ai + 1 && m.b_start == bj + 1 => {
                    m.a_start = ai;
                    m.b_start = bj;
                    m.len += 1;
                }
                _ => matches.push(LcsMatch {
                    a_start: ai,
                    b_start: bj,
                    len: 1,
                }),
            }
            i -= 1;
            j -= 1;
        } else if table[(i - 1) * width + j] > table[i * width + j - 1] {
            i -= 1;
        } else {
            j -= 1;
        }
    }
    subsequence.reverse();
    LcsResult {
        subsequence,
        matches,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_follow_redis() {
        assert_eq!(byte_range(0, -1, 5), Some((0, 4)));
        assert_eq!(byte_range(-3, -1, 5), Some((2, 4)));
        assert_eq!(byte_range(3, 100, 5), Some((3, 4)));
        assert_eq!(byte_range(4, 2, 5), None);
        assert_eq!(byte_range(-100, 1, 5), Some((0, 1)));
        assert_eq!(byte_range(0, 0, 0), None);
    }

    #[test]
    fn lcs_matches_redis_example() {
        let r = lcs_compute(b"ohmytext", b"mynewtext");
        assert_eq!(r.subsequence, b"mytext");
        assert_eq!(
            r.matches,
            vec![
                LcsMatch {
                    a_start: 4,
                    b_start: 5,
                    len: 4
                },
                LcsMatch {
                    a_start: 2,
                    b_start: 0,
                    len: 2
                }
            ]
        );
    }

    #[test]
    fn expire_math_rejects_overflow() {
        assert_eq!(expire_at("ex", i64::MAX / 10, 0), None);
        assert_eq!(expire_at("ex", 0, 0), None);
        assert_eq!(expire_at("px", 10, 5), Some(15));
        assert_eq!(expire_at("exat", 2, 0), Some(2000));
    }
}
