//! Hash commands: fields get/set/delete, counters, random fields, HSCAN.

use super::longdouble::{self, IncrFloatError, Parsed};
use super::spec::flags::*;
use super::{
    edit_collection, errors, parse_scan, read_collection, CollectionKind, CommandSpec, Ctx,
};
use crate::notify::class;
use moonkv_keyspace::{glob_match, Hash, HashLimits, Value};
use moonkv_protocol::number::parse_i64;
use moonkv_protocol::ReplySink;

const fn hash_cmd(
    name: &'static str,
    arity: i32,
    flags: u32,
    handler: super::Handler,
) -> CommandSpec {
    CommandSpec::new(name, arity, flags, (1, 1, 1), "hash", handler).group("hash")
}

pub static COMMANDS: &[CommandSpec] = &[
    hash_cmd("hset", -4, WRITE | DENYOOM | FAST, hset).summary("Set fields", "2.0.0"),
    hash_cmd("hmset", -4, WRITE | DENYOOM | FAST, hmset)
        .summary("Set fields (old form of HSET)", "2.0.0"),
    hash_cmd("hsetnx", 4, WRITE | DENYOOM | FAST, hsetnx)
        .summary("Set a field if it is absent", "2.0.0"),
    hash_cmd("hget", 3, READONLY | FAST, hget).summary("A field's value", "2.0.0"),
    hash_cmd("hmget", -3, READONLY | FAST, hmget).summary("Several fields' values", "2.0.0"),
    hash_cmd("hgetall", 2, READONLY, hgetall).summary("All fields and values", "2.0.0"),
    hash_cmd("hdel", -3, WRITE | FAST, hdel).summary("Delete fields", "2.0.0"),
    hash_cmd("hlen", 2, READONLY | FAST, hlen).summary("Number of fields", "2.0.0"),
    hash_cmd("hexists", 3, READONLY | FAST, hexists).summary("Does a field exist", "2.0.0"),
    hash_cmd("hkeys", 2, READONLY, hkeys).summary("All field names", "2.0.0"),
    hash_cmd("hvals", 2, READONLY, hvals).summary("All values", "2.0.0"),
    hash_cmd("hincrby", 4, WRITE | DENYOOM | FAST, hincrby)
        .summary("Increment an integer field", "2.0.0"),
    hash_cmd("hincrbyfloat", 4, WRITE | DENYOOM | FAST, hincrbyfloat)
        .summary("Increment a float field", "2.6.0"),
    hash_cmd("hstrlen", 3, READONLY | FAST, hstrlen).summary("Length of a field's value", "3.2.0"),
    hash_cmd("hrandfield", -2, READONLY | RANDOM, hrandfield).summary("Random fields", "6.2.0"),
    hash_cmd("hscan", -3, READONLY | RANDOM, hscan).summary("Iterate over fields", "2.8.0"),
];

fn limits(ctx: &Ctx) -> HashLimits {
    ctx.state.settings.hash_limits
}

const HASH: CollectionKind<Hash> = CollectionKind {
    view: Value::as_hash,
    view_mut: Value::as_hash_mut,
    is_empty: Hash::is_empty,
    create: || Value::Hash(Box::new(Hash::new())),
};

fn read_hash<'c>(ctx: &'c mut Ctx, key: &[u8]) -> Result<Option<&'c Hash>, ()> {
    read_collection(ctx, key, Value::as_hash)
}

fn edit_hash<R>(
    ctx: &mut Ctx,
    key: &[u8],
    create: bool,
    edit: impl FnOnce(&mut Hash) -> R,
) -> Option<Result<R, ()>> {
    edit_collection(ctx, key, &HASH, create, edit)
}

fn set_fields(ctx: &mut Ctx) -> Option<usize> {
    let args = ctx.args;
    if args.len() % 2 != 0 {
        ctx.arity_error();
        return None;
    }
    let limits = limits(ctx);
    let added = match edit_hash(ctx, &args[1], true, |h| {
        args[2..]
            .chunks(2)
            .filter(|fv| h.set(&fv[0], &fv[1], limits))
            .count()
    }) {
        Some(Ok(n)) => n,
        _ => return None,
    };
    ctx.notify(class::HASH, "hset", &args[1]);
    Some(added)
}

fn hset(ctx: &mut Ctx) {
    if let Some(added) = set_fields(ctx) {
        ctx.integer(added as i64);
    }
}

fn hmset(ctx: &mut Ctx) {
    if set_fields(ctx).is_some() {
        ctx.ok();
    }
}

fn hsetnx(ctx: &mut Ctx) {
    let args = ctx.args;
    let limits = limits(ctx);
    let exists = match read_hash(ctx, &args[1]) {
        Err(()) => return,
        Ok(h) => h.is_some_and(|h| h.contains(&args[2])),
    };
    if exists {
        return ctx.integer(0);
    }
    edit_hash(ctx, &args[1], true, |h| h.set(&args[2], &args[3], limits));
    ctx.notify(class::HASH, "hset", &args[1]);
    ctx.integer(1);
}

fn hget(ctx: &mut Ctx) {
    let args = ctx.args;
    let now = ctx.now_ms;
    let (db, sink) = ctx.db_and_sink();
    match db.get(&args[1], now) {
        None => sink.null(),
        Some(Value::Hash(h)) => sink.bulk_opt(h.get(&args[2])),
        Some(_) => ctx.wrong_type(),
    }
}

fn hmget(ctx: &mut Ctx) {
    let args = ctx.args;
    let now = ctx.now_ms;
    let (db, sink) = ctx.db_and_sink();
    let hash = match db.get(&args[1], now) {
        None => None,
        Some(Value::Hash(h)) => Some(h),
        Some(_) => return ctx.wrong_type(),
    };
    sink.array(args.len() - 2);
    for f in &args[2..] {
        sink.bulk_opt(hash.and_then(|h| h.get(f)));
    }
}

/// HGETALL / HKEYS / HVALS.
fn reply_all(ctx: &mut Ctx, fields: bool, values: bool) {
    let args = ctx.args;
    let now = ctx.now_ms;
    let (db, sink) = ctx.db_and_sink();
    let hash = match db.get(&args[1], now) {
        None => None,
        Some(Value::Hash(h)) => Some(h),
        Some(_) => return ctx.wrong_type(),
    };
    let len = hash.map_or(0, |h| h.len());
    if fields && values {
        sink.map(len);
    } else {
        sink.array(len);
    }
    for (f, v) in hash.into_iter().flat_map(|h| h.iter()) {
        if fields {
            sink.bulk(f);
        }
        if values {
            sink.bulk(v);
        }
    }
}

fn hgetall(ctx: &mut Ctx) {
    reply_all(ctx, true, true);
}

fn hkeys(ctx: &mut Ctx) {
    reply_all(ctx, true, false);
}

fn hvals(ctx: &mut Ctx) {
    reply_all(ctx, false, true);
}

fn hdel(ctx: &mut Ctx) {
    let args = ctx.args;
    let removed = match edit_hash(ctx, &args[1], false, |h| {
        args[2..].iter().filter(|f| h.remove(f)).count()
    }) {
        None => 0,
        Some(Err(())) => return,
        Some(Ok(n)) => n,
    };
    if removed > 0 {
        ctx.notify(class::HASH, "hdel", &args[1]);
        let now = ctx.now_ms;
        if !ctx.db().exists(&args[1], now) {
            ctx.notify(class::GENERIC, "del", &args[1]);
        }
    }
    ctx.integer(removed as i64);
}

fn hlen(ctx: &mut Ctx) {
    let args = ctx.args;
    if let Ok(h) = read_hash(ctx, &args[1]) {
        let n = h.map_or(0, Hash::len);
        ctx.integer(n as i64);
    }
}

fn hexists(ctx: &mut Ctx) {
    let args = ctx.args;
    if let Ok(h) = read_hash(ctx, &args[1]) {
        let found = h.is_some_and(|h| h.contains(&args[2]));
        ctx.integer(found as i64);
    }
}

fn hstrlen(ctx: &mut Ctx) {
    let args = ctx.args;
    if let Ok(h) = read_hash(ctx, &args[1]) {
        let n = h.and_then(|h| h.get(&args[2])).map_or(0, <[u8]>::len);
        ctx.integer(n as i64);
    }
}

fn hincrby(ctx: &mut Ctx) {
    let args = ctx.args;
    let Some(delta) = ctx.arg_i64(3) else { return };
    let current = match read_hash(ctx, &args[1]) {
        Err(()) => return,
        Ok(h) => h.and_then(|h| h.get(&args[2])).map(<[u8]>::to_vec),
    };
    let current = match current {
        None => 0,
        Some(v) => match parse_i64(&v) {
            Some(i) => i,
            None => return ctx.error("ERR hash value is not an integer"),
        },
    };
    let Some(result) = current.checked_add(delta) else {
        return ctx.error(errors::OVERFLOW);
    };
    let limits = limits(ctx);
    edit_hash(ctx, &args[1], true, |h| {
        h.set(&args[2], result.to_string().as_bytes(), limits)
    });
    ctx.notify(class::HASH, "hincrby", &args[1]);
    ctx.integer(result);
}

fn hincrbyfloat(ctx: &mut Ctx) {
    let args = ctx.args;
    let current = match read_hash(ctx, &args[1]) {
        Err(()) => return,
        Ok(h) => h.and_then(|h| h.get(&args[2])).map(<[u8]>::to_vec),
    };
    let current: Option<Parsed> = match current {
        None => None,
        Some(v) => match longdouble::parse(&v) {
            Some(p) => Some(p),
            None => return ctx.error("ERR hash value is not a float"),
        },
    };
    if matches!(longdouble::parse(&args[3]), Some(Parsed::Infinite)) {
        return ctx.error("ERR value is NaN or Infinity");
    }
    let text = match longdouble::incr_by_float(current, &args[3]) {
        Ok(t) => t,
        Err(IncrFloatError::NotAFloat) => return ctx.error(errors::NOT_FLOAT),
        Err(IncrFloatError::NanOrInfinity) => {
            return ctx.error("ERR increment would produce NaN or Infinity")
        }
    };
    let limits = limits(ctx);
    edit_hash(ctx, &args[1], true, |h| {
        h.set(&args[2], text.as_bytes(), limits)
    });
    ctx.notify(class::HASH, "hincrbyfloat", &args[1]);
    // Replicas get the resulting value so float rounding cannot drift between them.
    ctx.propagate_parts(&[b"HSET", &args[1], &args[2], text.as_bytes()]);
    ctx.bulk(text.as_bytes());
}

fn hrandfield(ctx: &mut Ctx) {
    let args = ctx.args;
    let count = match args.len() {
        2 => None,
        3 | 4 => {
            let Some(n) = ctx.arg_i64(2) else { return };
            if args.len() == 4 && !ctx.arg_is(3, "withvalues") {
                return ctx.syntax_error();
            }
            Some(n)
        }
        _ => return ctx.syntax_error(),
    };
    let with_values = args.len() == 4;
    if count.is_some_and(|n| n < -(i64::MAX / 2)) {
        return ctx.error("ERR value is out of range");
    }
    let picked: Option<Vec<(Vec<u8>, Vec<u8>)>> = {
        let now = ctx.now_ms;
        let state = &mut *ctx.state;
        match state.dbs[ctx.client.db].get(&args[1], now) {
            None => None,
            Some(Value::Hash(h)) => {
                let mut out = Vec::new();
                match count {
                    None | Some(0) => {
                        if count.is_none() {
                            if let Some((f, v)) = h.random_field(&mut state.rng) {
                                out.push((f.to_vec(), v.to_vec()));
                            }
                        }
                    }
                    Some(n) if n < 0 => {
                        for _ in 0..n.unsigned_abs() {
                            if let Some((f, v)) = h.random_field(&mut state.rng) {
                                out.push((f.to_vec(), v.to_vec()));
                            }
                        }
                    }
                    Some(n) => out = h.random_distinct(n as usize, &mut state.rng),
                }
                Some(out)
            }
            Some(_) => return ctx.wrong_type(),
        }
    };
    match (count, picked) {
        (None, None) => ctx.null(),
        (None, Some(p)) => ctx.bulk_opt(p.first().map(|(f, _)| f.as_slice())),
        (Some(_), p) => {
            let p = p.unwrap_or_default();
            if with_values && ctx.protocol() == moonkv_protocol::Protocol::Resp3 {
                ctx.array(p.len());
                for (f, v) in p {
                    ctx.array(2);
                    ctx.bulk(&f);
                    ctx.bulk(&v);
                }
            } else {
                ctx.array(p.len() * if with_values { 2 } else { 1 });
                for (f, v) in p {
                    ctx.bulk(&f);
                    if with_values {
                        ctx.bulk(&v);
                    }
                }
            }
        }
    }
}

fn hscan(ctx: &mut Ctx) {
    let args = ctx.args;
    let Some(options) = parse_scan(ctx, 2, false) else {
        return;
    };
    let (mut cursor, pattern, count) = (options.cursor, options.pattern, options.count);
    let Ok(hash) = read_hash(ctx, &args[1]) else {
        return;
    };
    let mut found: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    match hash {
        None => cursor = 0,
        Some(h) => {
            cursor = super::scan_loop(cursor, count, |c| {
                let next = h.scan_step(c, |f, v| {
                    if pattern.map_or(true, |p| glob_match(p, f, false)) {
                        found.push((f.to_vec(), v.to_vec()));
                    }
                });
                (next, found.len())
            });
        }
    }
    ctx.array(2);
    ctx.bulk(cursor.to_string().as_bytes());
    ctx.array(found.len() * 2);
    for (f, v) in found {
        ctx.bulk(&f);
        ctx.bulk(&v);
    }
}
