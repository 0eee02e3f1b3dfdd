//! List commands: pushes, pops, indexes, ranges, LINSERT/LREM/LPOS, LMOVE, and the blocking
//! pops (BLPOP, BRPOP, BLMPOP, BLMOVE, BRPOPLPUSH), which wait through `crate::blocking`.

use super::spec::flags::*;
use super::{
    edit_collection, errors, parse_multi_pop, read_collection, CollectionKind, CommandSpec, Ctx,
};
use crate::blocking::Awaits;
use crate::notify::class;
use bytes::Bytes;
use moonkv_keyspace::{End, List, Value};
use moonkv_protocol::number::parse_i64;
use moonkv_protocol::ReplySink;

const fn list_cmd(
    name: &'static str,
    arity: i32,
    flags: u32,
    keys: (i32, i32, i32),
    handler: super::Handler,
) -> CommandSpec {
    CommandSpec::new(name, arity, flags, keys, "list", handler).group("list")
}

pub static COMMANDS: &[CommandSpec] = &[
    list_cmd("lpush", -3, WRITE | DENYOOM | FAST, (1, 1, 1), lpush).summary("Prepend elements", "1.0.0"),
    list_cmd("rpush", -3, WRITE | DENYOOM | FAST, (1, 1, 1), rpush).summary("Append elements", "1.0.0"),
    list_cmd("lpushx", -3, WRITE | DENYOOM | FAST, (1, 1, 1), lpushx).summary("Prepend elements to an existing list", "2.2.0"),
    list_cmd("rpushx", -3, WRITE | DENYOOM | FAST, (1, 1, 1), rpushx).summary("Append elements to an existing list", "2.2.0"),
    list_cmd("lpop", -2, WRITE | FAST, (1, 1, 1), lpop).summary("Remove and return the first elements", "1.0.0"),
    list_cmd("rpop", -2, WRITE | FAST, (1, 1, 1), rpop).summary("Remove and return the last elements", "1.0.0"),
    list_cmd("llen", 2, READONLY | FAST, (1, 1, 1), llen).summary("Length of a list", "1.0.0"),
    list_cmd("lindex", 3, READONLY, (1, 1, 1), lindex).summary("Element at an index", "1.0.0"),
    list_cmd("lrange", 4, READONLY, (1, 1, 1), lrange).summary("Elements in a range", "1.0.0"),
    list_cmd("lset", 4, WRITE | DENYOOM, (1, 1, 1), lset).summary("Replace the element at an index", "1.0.0"),
    list_cmd("ltrim", 4, WRITE, (1, 1, 1), ltrim).summary("Keep only a range of elements", "1.0.0"),
    list_cmd("lrem", 4, WRITE, (1, 1, 1), lrem).summary("Remove elements equal to a value", "1.0.0"),
    list_cmd("linsert", 5, WRITE | DENYOOM, (1, 1, 1), linsert).summary("Insert next to a pivot element", "2.2.0"),
    list_cmd("lpos", -3, READONLY, (1, 1, 1), lpos).summary("Positions of matching elements", "6.0.6"),
    list_cmd("rpoplpush", 3, WRITE | DENYOOM, (1, 2, 1), rpoplpush).summary("Move the last element to the head of another list", "1.2.0"),
    list_cmd("lmove", 5, WRITE | DENYOOM, (1, 2, 1), lmove).summary("Move an element between lists", "6.2.0"),
    list_cmd("lmpop", -4, WRITE, (0, 0, 0), lmpop).key_finder(numkeys_at_1).summary("Pop elements from the first non-empty list", "7.0.0"),
    list_cmd("blpop", -3, WRITE | NOSCRIPT | BLOCKING, (1, -2, 1), blpop)
        .summary("Remove and get the first element in a list, or block until one is available", "2.0.0"),
    list_cmd("brpop", -3, WRITE | NOSCRIPT | BLOCKING, (1, -2, 1), brpop)
        .summary("Remove and get the last element in a list, or block until one is available", "2.0.0"),
    list_cmd("brpoplpush", 4, WRITE | DENYOOM | NOSCRIPT | BLOCKING, (1, 2, 1), brpoplpush)
        .summary("Pop an element from a list, push it to another list and return it; or block until one is available", "2.2.0"),
    list_cmd("blmove", 6, WRITE | DENYOOM | NOSCRIPT | BLOCKING, (1, 2, 1), blmove)
        .summary("Pop an element from a list, push it to another list and return it; or block until one is available", "6.2.0"),
    list_cmd("blmpop", -5, WRITE | BLOCKING, (0, 0, 0), blmpop)
        .key_finder(numkeys_at_2)
        .summary("Pop elements from a list, or block until one is available", "7.0.0"),
];

fn numkeys_at_1(args: &[Bytes]) -> Result<Vec<usize>, String> {
    super::keys_after_numkeys(args, 1)
}

fn numkeys_at_2(args: &[Bytes]) -> Result<Vec<usize>, String> {
    super::keys_after_numkeys(args, 2)
}

const LIST: CollectionKind<List> = CollectionKind {
    view: Value::as_list,
    view_mut: Value::as_list_mut,
    is_empty: List::is_empty,
    create: || Value::List(Box::default()),
};

fn read_list<'c>(ctx: &'c mut Ctx, key: &[u8]) -> Result<Option<&'c List>, ()> {
    read_collection(ctx, key, Value::as_list)
}

/// True if the key holds a list or nothing; otherwise replies WRONGTYPE.
fn is_list_or_missing(ctx: &mut Ctx, key: &[u8]) -> bool {
    let now = ctx.now_ms;
    if ctx
        .db()
        .peek(key, now)
        .is_some_and(|v| v.as_list().is_none())
    {
        ctx.wrong_type();
        return false;
    }
    true
}

/// Runs `edit` on the list at `key` (the caller checked it is a list, or made one), deleting
/// the key if the list became empty.
fn edit_list<R>(ctx: &mut Ctx, key: &[u8], edit: impl FnOnce(&mut List) -> R) -> Option<R> {
    edit_collection(ctx, key, &LIST, false, edit)?.ok()
}

fn push_generic(ctx: &mut Ctx, end: End, only_existing: bool) {
    let args = ctx.args;
    let key = &args[1];
    let pushed = edit_collection(ctx, key, &LIST, !only_existing, |l| {
        for item in &args[2..] {
            l.push(end, item);
        }
        l.len()
    });
    let len = match pushed {
        None => return ctx.integer(0),
        Some(Err(())) => return,
        Some(Ok(len)) => len,
    };
    ctx.notify(
        class::LIST,
        if end == End::Head { "lpush" } else { "rpush" },
        key,
    );
    ctx.integer(len as i64);
}

fn lpush(ctx: &mut Ctx) {
    push_generic(ctx, End::Head, false);
}

fn rpush(ctx: &mut Ctx) {
    push_generic(ctx, End::Tail, false);
}

fn lpushx(ctx: &mut Ctx) {
    push_generic(ctx, End::Head, true);
}

fn rpushx(ctx: &mut Ctx) {
    push_generic(ctx, End::Tail, true);
}

fn notify_pop(ctx: &mut Ctx, end: End, key: &[u8]) {
    ctx.notify(
        class::LIST,
        if end == End::Head { "lpop" } else { "rpop" },
        key,
    );
    let now = ctx.now_ms;
    if !ctx.db().exists(key, now) {
        ctx.notify(class::GENERIC, "del", key);
    }
}

fn pop_generic(ctx: &mut Ctx, end: End) {
    let args = ctx.args;
    let key = &args[1];
    let count = if args.len() == 3 {
        match parse_i64(&args[2]) {
            Some(n) if n >= 0 => Some(n as usize),
            _ => return ctx.error("ERR value is out of range, must be positive"),
        }
    } else if args.len() > 3 {
        return ctx.arity_error();
    } else {
        None
    };
    match read_list(ctx, key) {
        Err(()) => return,
        Ok(None) => {
            return if count.is_some() {
                ctx.null_array()
            } else {
                ctx.null()
            };
        }
        Ok(Some(_)) => {}
    }
    let wanted = count.unwrap_or(1);
    let popped = edit_list(ctx, key, |l| {
        (0..wanted).map_while(|_| l.pop(end)).collect::<Vec<_>>()
    })
    .unwrap_or_default();
    if wanted > 0 {
        notify_pop(ctx, end, key);
    }
    match count {
        None => ctx.bulk_opt(popped.first().map(Vec::as_slice)),
        Some(_) => {
            ctx.array(popped.len());
            for item in popped {
                ctx.bulk(&item);
            }
        }
    }
}

fn lpop(ctx: &mut Ctx) {
    pop_generic(ctx, End::Head);
}

fn rpop(ctx: &mut Ctx) {
    pop_generic(ctx, End::Tail);
}

fn llen(ctx: &mut Ctx) {
    let args = ctx.args;
    if let Ok(list) = read_list(ctx, &args[1]) {
        let len = list.map_or(0, List::len);
        ctx.integer(len as i64);
    }
}

fn lindex(ctx: &mut Ctx) {
    let args = ctx.args;
    let Some(index) = ctx.arg_i64(2) else { return };
    let Ok(list) = read_list(ctx, &args[1]) else {
        return;
    };
    let item = list
        .and_then(|l| l.position(index).and_then(|p| l.get(p)))
        .map(<[u8]>::to_vec);
    ctx.bulk_opt(item.as_deref());
}

fn lrange(ctx: &mut Ctx) {
    let args = ctx.args;
    let (Some(start), Some(stop)) = (parse_i64(&args[2]), parse_i64(&args[3])) else {
        return ctx.error(errors::NOT_INTEGER);
    };
    let now = ctx.now_ms;
    let (db, sink) = ctx.db_and_sink();
    match db.get(&args[1], now) {
        None => sink.array(0),
        Some(Value::List(list)) => match list.range(start, stop) {
            None => sink.array(0),
            Some((s, e)) => {
                sink.array(e - s + 1);
                for item in list.iter_from(s).take(e - s + 1) {
                    sink.bulk(item);
                }
            }
        },
        Some(_) => return ctx.wrong_type(),
    }
}

fn lset(ctx: &mut Ctx) {
    let args = ctx.args;
    let key = &args[1];
    let Some(index) = ctx.arg_i64(2) else { return };
    match read_list(ctx, key) {
        Err(()) => return,
        Ok(None) => return ctx.error(errors::NO_SUCH_KEY),
        Ok(Some(_)) => {}
    }
    let done = edit_list(ctx, key, |l| {
        l.position(index).is_some_and(|p| l.set(p, &args[3]))
    })
    .unwrap_or(false);
    if !done {
        return ctx.error("ERR index out of range");
    }
    ctx.notify(class::LIST, "lset", key);
    ctx.ok();
}

fn ltrim(ctx: &mut Ctx) {
    let args = ctx.args;
    let key = &args[1];
    let (Some(start), Some(stop)) = (parse_i64(&args[2]), parse_i64(&args[3])) else {
        return ctx.error(errors::NOT_INTEGER);
    };
    match read_list(ctx, key) {
        Err(()) => return,
        Ok(None) => return ctx.ok(),
        Ok(Some(_)) => {}
    }
    edit_list(ctx, key, |l| {
        let keep = l.range(start, stop);
        l.trim(keep);
    });
    ctx.notify(class::LIST, "ltrim", key);
    let now = ctx.now_ms;
    if !ctx.db().exists(key, now) {
        ctx.notify(class::GENERIC, "del", key);
    }
    ctx.ok();
}

fn lrem(ctx: &mut Ctx) {
    let args = ctx.args;
    let key = &args[1];
    let Some(count) = ctx.arg_i64(2) else { return };
    match read_list(ctx, key) {
        Err(()) => return,
        Ok(None) => return ctx.integer(0),
        Ok(Some(_)) => {}
    }
    let removed = edit_list(ctx, key, |l| l.remove_matching(&args[3], count)).unwrap_or(0);
    if removed > 0 {
        ctx.notify(class::LIST, "lrem", key);
        let now = ctx.now_ms;
        if !ctx.db().exists(key, now) {
            ctx.notify(class::GENERIC, "del", key);
        }
    }
    ctx.integer(removed as i64);
}

fn linsert(ctx: &mut Ctx) {
    let args = ctx.args;
    let key = &args[1];
    let after = if ctx.arg_is(2, "after") {
        true
    } else if ctx.arg_is(2, "before") {
        false
    } else {
        return ctx.syntax_error();
    };
    match read_list(ctx, key) {
        Err(()) => return,
        Ok(None) => return ctx.integer(0),
        Ok(Some(_)) => {}
    }
    let result = edit_list(ctx, key, |l| {
        let pivot = l.iter().position(|item| item == &args[3][..])?;
        l.insert(if after { pivot + 1 } else { pivot }, &args[4]);
        Some(l.len())
    })
    .flatten();
    match result {
        Some(len) => {
            ctx.notify(class::LIST, "linsert", key);
            ctx.integer(len as i64)
        }
        None => ctx.integer(-1),
    }
}

fn lpos(ctx: &mut Ctx) {
    let args = ctx.args;
    let mut rank: i64 = 1;
    let mut count: Option<usize> = None;
    let mut maxlen: usize = 0;
    let mut i = 3;
    while i < args.len() {
        if i + 1 >= args.len() {
            return ctx.syntax_error();
        }
        let Some(n) = ctx.arg_i64(i + 1) else { return };
        match ctx.arg_lower(i).as_str() {
            "rank" => {
                if n == 0 {
                    return ctx.error(
                        "ERR RANK can't be zero: use 1 to start from the first match, 2 from the second ... or use negative to start from the end of the list",
                    );
                }
                if n == i64::MIN {
                    return ctx.error("ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807");
                }
                rank = n;
            }
            "count" => {
                if n < 0 {
                    return ctx.error("ERR COUNT can't be negative");
                }
                count = Some(n as usize);
            }
            "maxlen" => {
                if n < 0 {
                    return ctx.error("ERR MAXLEN can't be negative");
                }
                maxlen = n as usize;
            }
            _ => return ctx.syntax_error(),
        }
        i += 2;
    }
    let Ok(list) = read_list(ctx, &args[1]) else {
        return;
    };
    let mut found = Vec::new();
    if let Some(list) = list {
        let wanted = match count {
            Some(0) => usize::MAX,
            Some(n) => n,
            None => 1,
        };
        let mut skip = rank.unsigned_abs() - 1;
        let len = list.len();
        let scan_limit = if maxlen == 0 { len } else { maxlen.min(len) };
        // Walk the elements in order (indexing each one would cost a chunk walk apiece).
        let elements: Box<dyn Iterator<Item = (usize, &[u8])>> = if rank > 0 {
            Box::new(list.iter().enumerate().take(scan_limit))
        } else {
            Box::new(list.iter().enumerate().rev().take(scan_limit))
        };
        for (p, element) in elements {
            if element == &args[2][..] {
                if skip > 0 {
                    skip -= 1;
                    continue;
                }
                found.push(p as i64);
                if found.len() >= wanted {
                    break;
                }
            }
        }
    }
    match count {
        None => match found.first() {
            Some(&p) => ctx.integer(p),
            None => ctx.null(),
        },
        Some(_) => {
            ctx.array(found.len());
            for p in found {
                ctx.integer(p);
            }
        }
    }
}

fn parse_end(ctx: &mut Ctx, i: usize) -> Option<End> {
    if ctx.arg_is(i, "left") {
        Some(End::Head)
    } else if ctx.arg_is(i, "right") {
        Some(End::Tail)
    } else {
        ctx.syntax_error();
        None
    }
}

/// Pops from `from` of the source and pushes at `to` of the destination, atomically.
fn move_generic(ctx: &mut Ctx, from: End, to: End) {
    let args = ctx.args;
    let (src, dst) = (&args[1], &args[2]);
    match read_list(ctx, src) {
        Err(()) => return,
        Ok(None) => return ctx.null(),
        Ok(Some(_)) => {}
    }
    // Check the destination's type before popping, so a WRONGTYPE changes nothing.
    if !is_list_or_missing(ctx, dst) {
        return;
    }
    let Some(Some(item)) = edit_list(ctx, src, |l| l.pop(from)) else {
        return ctx.null();
    };
    notify_pop(ctx, from, src);
    edit_collection(ctx, dst, &LIST, true, |l| l.push(to, &item));
    ctx.notify(
        class::LIST,
        if to == End::Head { "lpush" } else { "rpush" },
        dst,
    );
    ctx.bulk(&item);
}

fn rpoplpush(ctx: &mut Ctx) {
    move_generic(ctx, End::Tail, End::Head);
}

fn lmove(ctx: &mut Ctx) {
    let Some(from) = parse_end(ctx, 3) else {
        return;
    };
    let Some(to) = parse_end(ctx, 4) else { return };
    move_generic(ctx, from, to);
}

fn end_name(end: End) -> &'static [u8] {
    if end == End::Head {
        b"left"
    } else {
        b"right"
    }
}

fn pop_command(end: End) -> &'static [u8] {
    if end == End::Head {
        b"lpop"
    } else {
        b"rpop"
    }
}

/// Pops up to `count` elements from the list at `key`, which the caller saw holding a list.
fn pop_elements(ctx: &mut Ctx, key: &[u8], end: End, count: usize) -> Vec<Vec<u8>> {
    let popped = edit_list(ctx, key, |l| {
        (0..count).map_while(|_| l.pop(end)).collect::<Vec<_>>()
    })
    .unwrap_or_default();
    if !popped.is_empty() {
        notify_pop(ctx, end, key);
    }
    popped
}

/// The first of `keys` that holds a list: Ok(None) if none does, Err(()) after WRONGTYPE.
fn first_nonempty_list(ctx: &mut Ctx, keys: &[Bytes]) -> Result<Option<Bytes>, ()> {
    for key in keys {
        if read_list(ctx, key)?.is_some() {
            return Ok(Some(key.clone()));
        }
    }
    Ok(None)
}

/// LMPOP and BLMPOP (with a timeout before numkeys).
fn multi_pop(ctx: &mut Ctx, blocking: bool) {
    let args = ctx.args;
    let Some(spec) = parse_multi_pop(ctx, blocking) else {
        return;
    };
    let Some(end) = parse_end(ctx, spec.side) else {
        return;
    };
    let keys = &args[spec.keys];
    let Ok(found) = first_nonempty_list(ctx, keys) else {
        return;
    };
    let Some(key) = found else {
        if blocking && ctx.may_block() {
            return ctx.block(keys, spec.timeout, Awaits::List);
        }
        return ctx.null_array();
    };
    let popped = pop_elements(ctx, &key, end, spec.count);
    let count = popped.len().to_string();
    ctx.propagate_parts(&[pop_command(end), &key, count.as_bytes()]);
    ctx.array(2);
    ctx.bulk(&key);
    ctx.array(popped.len());
    for item in popped {
        ctx.bulk(&item);
    }
}

fn lmpop(ctx: &mut Ctx) {
    multi_pop(ctx, false);
}

fn blmpop(ctx: &mut Ctx) {
    multi_pop(ctx, true);
}

/// BLPOP and BRPOP: `keys... timeout`.
fn blocking_pop(ctx: &mut Ctx, end: End) {
    let args = ctx.args;
    let Some(timeout) = ctx.arg_timeout(args.len() - 1) else {
        return;
    };
    let keys = &args[1..args.len() - 1];
    let Ok(found) = first_nonempty_list(ctx, keys) else {
        return;
    };
    let Some(key) = found else {
        if ctx.may_block() {
            return ctx.block(keys, timeout, Awaits::List);
        }
        return ctx.null_array();
    };
    let popped = pop_elements(ctx, &key, end, 1);
    ctx.propagate_parts(&[pop_command(end), &key]);
    ctx.array(2);
    ctx.bulk(&key);
    ctx.bulk(popped.first().map_or(&[][..], Vec::as_slice));
}

fn blpop(ctx: &mut Ctx) {
    blocking_pop(ctx, End::Head);
}

fn brpop(ctx: &mut Ctx) {
    blocking_pop(ctx, End::Tail);
}

/// BLMOVE and BRPOPLPUSH: LMOVE once the source has an element.
fn blocking_move(ctx: &mut Ctx, from: End, to: End, timeout_at: usize) {
    let args = ctx.args;
    let Some(timeout) = ctx.arg_timeout(timeout_at) else {
        return;
    };
    let src = &args[1];
    match read_list(ctx, src) {
        Err(()) => return,
        Ok(Some(_)) => {}
        Ok(None) => {
            if ctx.may_block() {
                return ctx.block(std::slice::from_ref(src), timeout, Awaits::List);
            }
            // Inside a transaction Redis answers a null bulk here (a timeout is a null array).
            return ctx.null();
        }
    }
    // The blocking form replicates as its non-blocking twin, as in Redis.
    if ctx.spec.name == "brpoplpush" {
        ctx.propagate_parts(&[b"rpoplpush", src, &args[2]]);
    } else {
        ctx.propagate_parts(&[b"lmove", src, &args[2], end_name(from), end_name(to)]);
    }
    move_generic(ctx, from, to);
}

fn brpoplpush(ctx: &mut Ctx) {
    blocking_move(ctx, End::Tail, End::Head, 3);
}

fn blmove(ctx: &mut Ctx) {
    let Some(from) = parse_end(ctx, 3) else {
        return;
    };
    let Some(to) = parse_end(ctx, 4) else { return };
    blocking_move(ctx, from, to, 5);
}
