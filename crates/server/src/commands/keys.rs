//! Generic key commands: DEL, UNLINK, EXISTS, TYPE, KEYS, SCAN, RANDOMKEY, RENAME, RENAMENX,
//! COPY, MOVE, SWAPDB, TOUCH, OBJECT, and the expiry family (EXPIRE.., TTL.., PERSIST).

use super::spec::flags::*;
use super::{errors, CommandSpec, Ctx, ScanOptions};
use crate::notify::class;
use moonkv_keyspace::{glob_match, Value};
use moonkv_protocol::number::parse_i64;
use moonkv_protocol::ReplySink;

const fn key_cmd(
    name: &'static str,
    arity: i32,
    flags: u32,
    keys: (i32, i32, i32),
    handler: super::Handler,
) -> CommandSpec {
    CommandSpec::new(name, arity, flags, keys, "keyspace", handler).group("generic")
}

pub static COMMANDS: &[CommandSpec] = &[
    key_cmd("del", -2, WRITE, (1, -1, 1), del).summary("Delete keys", "1.0.0"),
    key_cmd("unlink", -2, WRITE | FAST, (1, -1, 1), del)
        .summary("Delete keys, freeing memory in the background", "4.0.0"),
    key_cmd("exists", -2, READONLY | FAST, (1, -1, 1), exists)
        .summary("Count how many of the keys exist", "1.0.0"),
    key_cmd("type", 2, READONLY | FAST, (1, 1, 1), type_cmd)
        .summary("The type of a key's value", "1.0.0"),
    CommandSpec::new("keys", 2, READONLY, (0, 0, 0), "keyspace dangerous", keys)
        .group("generic")
        .summary("All keys matching a pattern", "1.0.0"),
    key_cmd("scan", -2, READONLY, (0, 0, 0), scan)
        .summary("Iterate over keys incrementally", "2.8.0"),
    key_cmd("randomkey", 1, READONLY, (0, 0, 0), randomkey).summary("A random key", "1.0.0"),
    key_cmd("rename", 3, WRITE, (1, 2, 1), rename).summary("Rename a key", "1.0.0"),
    key_cmd("renamenx", 3, WRITE | FAST, (1, 2, 1), renamenx)
        .summary("Rename a key if the new name is free", "1.0.0"),
    key_cmd("copy", -3, WRITE | DENYOOM, (1, 2, 1), copy).summary("Copy a key's value", "6.2.0"),
    key_cmd("move", 3, WRITE | FAST, (1, 1, 1), move_cmd)
        .summary("Move a key to another database", "1.0.0"),
    CommandSpec::new(
        "swapdb",
        3,
        WRITE | FAST,
        (0, 0, 0),
        "keyspace dangerous",
        swapdb,
    )
    .group("server")
    .summary("Swap two databases", "4.0.0"),
    key_cmd("touch", -2, READONLY | FAST, (1, -1, 1), exists)
        .summary("Count existing keys, marking them accessed", "3.2.1"),
    key_cmd("expire", -3, WRITE | FAST, (1, 1, 1), expire)
        .summary("Set a time to live in seconds", "1.0.0"),
    key_cmd("pexpire", -3, WRITE | FAST, (1, 1, 1), pexpire)
        .summary("Set a time to live in milliseconds", "2.6.0"),
    key_cmd("expireat", -3, WRITE | FAST, (1, 1, 1), expireat)
        .summary("Set an expiry Unix time in seconds", "1.2.0"),
    key_cmd("pexpireat", -3, WRITE | FAST, (1, 1, 1), pexpireat)
        .summary("Set an expiry Unix time in milliseconds", "2.6.0"),
    key_cmd("ttl", 2, READONLY | FAST | RANDOM, (1, 1, 1), ttl)
        .summary("Time to live in seconds", "1.0.0"),
    key_cmd("pttl", 2, READONLY | FAST | RANDOM, (1, 1, 1), pttl)
        .summary("Time to live in milliseconds", "2.6.0"),
    key_cmd("expiretime", 2, READONLY | FAST, (1, 1, 1), expiretime)
        .summary("Expiry Unix time in seconds", "7.0.0"),
    key_cmd("pexpiretime", 2, READONLY | FAST, (1, 1, 1), pexpiretime)
        .summary("Expiry Unix time in milliseconds", "7.0.0"),
    key_cmd("persist", 2, WRITE | FAST, (1, 1, 1), persist)
        .summary("Remove a key's expiry", "2.2.0"),
    key_cmd("dump", 2, READONLY, (1, 1, 1), dump).summary("Serialize a key's value", "2.6.0"),
    key_cmd("restore", -4, WRITE | DENYOOM, (1, 1, 1), restore)
        .summary("Create a key from a DUMP payload", "2.6.0"),
    CommandSpec::new(
        "object",
        -2,
        0,
        (0, 0, 0),
        "",
        super::server_admin::container_help,
    )
    .group("generic")
    .subcommands(OBJECT_SUBCOMMANDS),
];

static OBJECT_SUBCOMMANDS: &[CommandSpec] = &[
    key_cmd("object|encoding", 3, READONLY, (2, 2, 1), object_encoding)
        .summary("Internal encoding of a value", "2.2.3"),
    key_cmd("object|refcount", 3, READONLY, (2, 2, 1), object_refcount)
        .summary("Reference count of a value", "2.2.3"),
    key_cmd("object|help", 2, LOADING | STALE, (0, 0, 0), object_help)
        .summary("Help for OBJECT", "6.2.0"),
];

/// DEL and UNLINK: UNLINK (or DEL with lazyfree-lazy-user-del) frees big values in the
/// background.
fn del(ctx: &mut Ctx) {
    let args = ctx.args;
    let now = ctx.now_ms;
    let lazily = ctx.spec.name == "unlink" || ctx.state.settings.lazyfree_user_del;
    let mut removed = 0;
    for key in &args[1..] {
        if let Some(value) = ctx.db().remove(key, now) {
            ctx.state.lazyfree.dispose(value, lazily);
            ctx.notify(class::GENERIC, "del", key);
            removed += 1;
        }
    }
    ctx.integer(removed);
}

fn exists(ctx: &mut Ctx) {
    let args = ctx.args;
    let now = ctx.now_ms;
    let db = ctx.db();
    let count = args[1..].iter().filter(|k| db.exists(k, now)).count();
    ctx.integer(count as i64);
}

fn type_cmd(ctx: &mut Ctx) {
    let args = ctx.args;
    let now = ctx.now_ms;
    let name = ctx
        .db()
        .peek(&args[1], now)
        .map_or("none", Value::type_name);
    ctx.simple(name);
}

fn keys(ctx: &mut Ctx) {
    let args = ctx.args;
    let pattern = &args[1];
    let now = ctx.now_ms;
    let match_all = &pattern[..] == b"*";
    let db = ctx.db();
    let found: Vec<Vec<u8>> = db
        .iter()
        .filter(|(k, _)| match_all || glob_match(pattern, k, false))
        .map(|(k, _)| k.as_slice().to_vec())
        .collect();
    let found: Vec<Vec<u8>> = found
        .into_iter()
        .filter(|k| !db.is_logically_expired(k, now))
        .collect();
    ctx.array(found.len());
    for k in found {
        ctx.bulk(&k);
    }
}

/// Parses a SCAN cursor (an unsigned 64-bit number).
pub fn parse_cursor(arg: &[u8]) -> Option<u64> {
    std::str::from_utf8(arg).ok()?.parse::<u64>().ok()
}

fn scan(ctx: &mut Ctx) {
    let Some(options) = super::parse_scan(ctx, 1, true) else {
        return;
    };
    let ScanOptions {
        mut cursor,
        pattern,
        count,
        type_filter,
    } = options;
    let now = ctx.now_ms;
    let db = ctx.db();
    let mut batch: Vec<Vec<u8>> = Vec::new();
    cursor = super::scan_loop(cursor, count, |c| {
        let next = db.scan_step(c, |k, v| {
            if type_filter.as_deref().is_some_and(|t| t != v.type_name()) {
                return;
            }
            batch.push(k.as_slice().to_vec());
        });
        (next, batch.len())
    });
    let mut keys = Vec::with_capacity(batch.len());
    for k in batch {
        if pattern.is_some_and(|p| !glob_match(p, &k, false)) {
            continue;
        }
        // Expired keys found by the scan are deleted now, as a lookup would.
        if db.expire_if_needed(&k, now) {
            continue;
        }
        keys.push(k);
    }
    ctx.array(2);
    ctx.bulk(cursor.to_string().as_bytes());
    ctx.array(keys.len());
    for k in keys {
        ctx.bulk(&k);
    }
}

fn randomkey(ctx: &mut Ctx) {
    let now = ctx.now_ms;
    let db = ctx.client.db;
    let state = &mut *ctx.state;
    let key = state.dbs[db].random_key(now, &mut state.rng);
    ctx.bulk_opt(key.as_deref());
}

/// RENAME/RENAMENX. Returns without replying on success so each caller answers its way;
/// Err(()) after an error reply.
fn rename_generic(ctx: &mut Ctx, only_if_free: bool) -> Result<bool, ()> {
    let args = ctx.args;
    let (src, dst) = (&args[1], &args[2]);
    let now = ctx.now_ms;
    if !ctx.db().exists(src, now) {
        ctx.error(errors::NO_SUCH_KEY);
        return Err(());
    }
    if src == dst {
        return Ok(!only_if_free);
    }
    if only_if_free && ctx.db().exists(dst, now) {
        return Ok(false);
    }
    let ttl = ctx.db().expire_time(src);
    let Some(value) = ctx.db().remove(src, now) else {
        return Ok(false);
    };
    ctx.db().set(dst, value, false);
    if let Some(at) = ttl {
        ctx.db().set_expire(dst, at, now);
    }
    ctx.notify(class::GENERIC, "rename_from", src);
    ctx.notify(class::GENERIC, "rename_to", dst);
    Ok(true)
}

fn rename(ctx: &mut Ctx) {
    if rename_generic(ctx, false).is_ok() {
        ctx.ok();
    }
}

fn renamenx(ctx: &mut Ctx) {
    if let Ok(done) = rename_generic(ctx, true) {
        ctx.integer(done as i64);
    }
}

/// Parses a database index argument; replies the error and returns None when invalid.
fn parse_db_index(ctx: &mut Ctx, i: usize) -> Option<usize> {
    let n = ctx.arg_i64(i)?;
    if n < 0 || n as usize >= ctx.state.dbs.len() {
        ctx.error(errors::DB_INDEX);
        return None;
    }
    Some(n as usize)
}

fn copy(ctx: &mut Ctx) {
    let args = ctx.args;
    let (src, dst) = (&args[1], &args[2]);
    let src_db = ctx.client.db;
    let mut dst_db = src_db;
    let mut replace = false;
    let mut i = 3;
    while i < args.len() {
        if ctx.arg_is(i, "replace") {
            replace = true;
        } else if ctx.arg_is(i, "db") && i + 1 < args.len() {
            let Some(n) = parse_db_index(ctx, i + 1) else {
                return;
            };
            dst_db = n;
            i += 1;
        } else {
            return ctx.syntax_error();
        }
        i += 1;
    }
    if src_db == dst_db && src == dst {
        return ctx.error("ERR source and destination objects are the same");
    }
    let now = ctx.now_ms;
    let Some(value) = ctx.state.dbs[src_db].peek(src, now).cloned() else {
        return ctx.integer(0);
    };
    let ttl = ctx.state.dbs[src_db].expire_time(src);
    let target = &mut ctx.state.dbs[dst_db];
    if target.exists(dst, now) {
        if !replace {
            return ctx.integer(0);
        }
        target.remove(dst, now);
    }
    target.set(dst, value, false);
    if let Some(at) = ttl {
        target.set_expire(dst, at, now);
    }
    crate::notify::notify(ctx.state, class::GENERIC, "copy_to", dst, dst_db);
    ctx.integer(1);
}

fn move_cmd(ctx: &mut Ctx) {
    let args = ctx.args;
    let key = &args[1];
    let src_db = ctx.client.db;
    let Some(dst_db) = parse_db_index(ctx, 2) else {
        return;
    };
    if src_db == dst_db {
        return ctx.error("ERR source and destination objects are the same");
    }
    let now = ctx.now_ms;
    if !ctx.state.dbs[src_db].exists(key, now) || ctx.state.dbs[dst_db].exists(key, now) {
        return ctx.integer(0);
    }
    let ttl = ctx.state.dbs[src_db].expire_time(key);
    let Some(value) = ctx.state.dbs[src_db].remove(key, now) else {
        return ctx.integer(0);
    };
    let target = &mut ctx.state.dbs[dst_db];
    target.set(key, value, false);
    if let Some(at) = ttl {
        target.set_expire(key, at, now);
    }
    crate::notify::notify(ctx.state, class::GENERIC, "move_from", key, src_db);
    crate::notify::notify(ctx.state, class::GENERIC, "move_to", key, dst_db);
    ctx.integer(1);
}

fn swapdb(ctx: &mut Ctx) {
    let args = ctx.args;
    let Some(a) = parse_i64(&args[1]) else {
        return ctx.error("ERR invalid first DB index");
    };
    let Some(b) = parse_i64(&args[2]) else {
        return ctx.error("ERR invalid second DB index");
    };
    let count = ctx.state.dbs.len() as i64;
    if a < 0 || a >= count || b < 0 || b >= count {
        return ctx.error(errors::DB_INDEX);
    }
    let (a, b) = (a as usize, b as usize);
    if a != b {
        let (low, high) = (a.min(b), a.max(b));
        let (left, right) = ctx.state.dbs.split_at_mut(high);
        let (first, second) = (&mut left[low], &mut right[0]);
        // WATCHes see a change for keys present on either side of the swap.
        let now = ctx.now_ms;
        first.touch_all_watched(Some(second), now);
        second.touch_all_watched(Some(first), now);
        first.swap_contents(second);
        first.stats.dirty += 1;
        ctx.state.journal_swap(a, b);
        // Clients blocked in either database may find their keys there now.
        crate::blocking::flag_waited_keys(ctx.state, a);
        crate::blocking::flag_waited_keys(ctx.state, b);
    }
    ctx.ok();
}

/// EXPIRE-family conditions (Redis 7).
#[derive(Default)]
struct ExpireCondition {
    nx: bool,
    xx: bool,
    gt: bool,
    lt: bool,
}

fn parse_expire_condition(ctx: &mut Ctx) -> Option<ExpireCondition> {
    let args = ctx.args;
    let mut c = ExpireCondition::default();
    for i in 3..args.len() {
        match ctx.arg_lower(i).as_str() {
            "nx" => c.nx = true,
            "xx" => c.xx = true,
            "gt" => c.gt = true,
            "lt" => c.lt = true,
            _ => {
                let msg = format!(
                    "ERR Unsupported option {}",
                    String::from_utf8_lossy(&args[i])
                );
                ctx.error(&msg);
                return None;
            }
        }
    }
    if c.nx && (c.xx || c.gt || c.lt) {
        ctx.error("ERR NX and XX, GT or LT options at the same time are not compatible");
        return None;
    }
    if c.gt && c.lt {
        ctx.error("ERR GT and LT options at the same time are not compatible");
        return None;
    }
    Some(c)
}

/// Shared body of EXPIRE/PEXPIRE/EXPIREAT/PEXPIREAT: `unit_ms` is 1000 for seconds, 1 for ms;
/// `relative` adds the current time.
fn expire_generic(ctx: &mut Ctx, unit_ms: i64, relative: bool) {
    let args = ctx.args;
    let key = &args[1];
    let Some(when) = ctx.arg_i64(2) else { return };
    let Some(condition) = parse_expire_condition(ctx) else {
        return;
    };
    let now = ctx.now_ms;
    let base = if relative { now } else { 0 };
    let Some(at) = when
        .checked_mul(unit_ms)
        .and_then(|ms| ms.checked_add(base))
    else {
        let msg = format!("ERR invalid expire time in '{}' command", ctx.spec.name);
        return ctx.error(&msg);
    };
    if !ctx.db().exists(key, now) {
        return ctx.integer(0);
    }
    let current = ctx.db().expire_time(key);
    let allowed = if condition.nx {
        current.is_none()
    } else {
        let xx_ok = !condition.xx || current.is_some();
        // A key without a TTL counts as living forever for GT/LT.
        let gt_ok = !condition.gt || current.is_some_and(|c| at > c);
        let lt_ok = !condition.lt || current.map_or(true, |c| at < c);
        xx_ok && gt_ok && lt_ok
    };
    if !allowed {
        return ctx.integer(0);
    }
    if ctx.already_expired(at) {
        ctx.db().remove(key, now);
        ctx.notify(class::GENERIC, "del", key);
        ctx.propagate_parts(&[b"DEL", key]);
    } else {
        ctx.db().set_expire(key, at, now);
        ctx.notify(class::GENERIC, "expire", key);
        // Replicas get the absolute time so they expire the key at the same instant.
        ctx.propagate_parts(&[b"PEXPIREAT", key, at.to_string().as_bytes()]);
    }
    ctx.integer(1);
}

fn expire(ctx: &mut Ctx) {
    expire_generic(ctx, 1000, true);
}

fn pexpire(ctx: &mut Ctx) {
    expire_generic(ctx, 1, true);
}

fn expireat(ctx: &mut Ctx) {
    expire_generic(ctx, 1000, false);
}

fn pexpireat(ctx: &mut Ctx) {
    expire_generic(ctx, 1, false);
}

/// -2 for a missing key, -1 without TTL, else the expiry time mapped by `f`.
fn ttl_generic(ctx: &mut Ctx, f: impl Fn(i64, i64) -> i64) {
    let args = ctx.args;
    let now = ctx.now_ms;
    if ctx.db().get(&args[1], now).is_none() {
        return ctx.integer(-2);
    }
    match ctx.db().expire_time(&args[1]) {
        None => ctx.integer(-1),
        Some(at) => ctx.integer(f(at, now)),
    }
}

fn ttl(ctx: &mut Ctx) {
    ttl_generic(ctx, |at, now| ((at - now).max(0) + 500) / 1000);
}

fn pttl(ctx: &mut Ctx) {
    ttl_generic(ctx, |at, now| (at - now).max(0));
}

fn expiretime(ctx: &mut Ctx) {
    ttl_generic(ctx, |at, _| at / 1000);
}

fn pexpiretime(ctx: &mut Ctx) {
    ttl_generic(ctx, |at, _| at);
}

fn persist(ctx: &mut Ctx) {
    let args = ctx.args;
    let now = ctx.now_ms;
    if !ctx.db().exists(&args[1], now) {
        return ctx.integer(0);
    }
    let removed = ctx.db().persist(&args[1]);
    if removed {
        ctx.notify(class::GENERIC, "persist", &args[1]);
    }
    ctx.integer(removed as i64);
}

fn dump(ctx: &mut Ctx) {
    let args = ctx.args;
    let now = ctx.now_ms;
    match ctx
        .db()
        .get(&args[1], now)
        .map(moonkv_persistence::rdb::dump_value)
    {
        Some(payload) => ctx.bulk(&payload),
        None => ctx.null(),
    }
}

fn restore(ctx: &mut Ctx) {
    let args = ctx.args;
    let key = &args[1];
    let Some(ttl) = ctx.arg_i64(2) else { return };
    let (mut replace, mut absolute) = (false, false);
    let mut i = 4;
    while i < args.len() {
        match ctx.arg_lower(i).as_str() {
            "replace" => replace = true,
            "absttl" => absolute = true,
            "idletime" if i + 1 < args.len() => {
                let Some(n) = ctx.arg_i64(i + 1) else { return };
                if n < 0 {
                    return ctx.error("ERR Invalid IDLETIME value, must be >= 0");
                }
                i += 1;
            }
            "freq" if i + 1 < args.len() => {
                let Some(n) = ctx.arg_i64(i + 1) else { return };
                if !(0..=255).contains(&n) {
                    return ctx.error("ERR Invalid FREQ value, must be >= 0 and <= 255");
                }
                i += 1;
            }
            _ => return ctx.syntax_error(),
        }
        i += 1;
    }
    if ttl < 0 {
        return ctx.error("ERR Invalid TTL value, must be >= 0");
    }
    let now = ctx.now_ms;
    if !replace && ctx.db().exists(key, now) {
        return ctx.error("BUSYKEY Target key name already exists.");
    }
    let value = match moonkv_persistence::rdb::restore_value(
        &args[3],
        &ctx.state.settings.load_limits(),
        !ctx.state.skip_checksum_validation,
    ) {
        Ok(v) => v,
        Err(moonkv_persistence::rdb::RestoreError::VersionOrChecksum) => {
            return ctx.error("ERR DUMP payload version or checksum are wrong")
        }
        Err(moonkv_persistence::rdb::RestoreError::BadFormat(reason)) => {
            if let Some(reason) = reason {
                crate::log::log(
                    crate::log::Level::Verbose,
                    &format!("Internal error in RDB reading offset 0 -> {}", reason),
                );
            }
            return ctx.error("ERR Bad data format");
        }
    };
    let expire_at = match ttl {
        0 => None,
        t if absolute => Some(t),
        t => match t.checked_add(now) {
            Some(at) => Some(at),
            None => return ctx.error("ERR Invalid TTL value, must be >= 0"),
        },
    };
    if expire_at.is_some_and(|at| ctx.already_expired(at)) {
        // Already expired: the key is not created (and an old one it replaces goes away).
        if ctx.db().remove(key, now).is_some() {
            ctx.notify(class::GENERIC, "del", key);
            ctx.propagate_parts(&[b"DEL", key]);
        }
        return ctx.ok();
    }
    ctx.db().set(key, value, false);
    if let Some(at) = expire_at {
        ctx.db().set_expire(key, at, now);
        if !absolute {
            // Replicas get the absolute expiry time.
            let mut replica_args = args.to_vec();
            replica_args[2] = bytes::Bytes::from(at.to_string());
            replica_args.push(bytes::Bytes::from_static(b"ABSTTL"));
            ctx.propagate_as(replica_args);
        }
    }
    ctx.notify(class::GENERIC, "restore", key);
    ctx.ok();
}

fn object_encoding(ctx: &mut Ctx) {
    let args = ctx.args;
    let now = ctx.now_ms;
    match ctx.db().peek(&args[2], now).map(Value::encoding) {
        Some(enc) => ctx.bulk(enc.as_bytes()),
        None => ctx.null(),
    }
}

/// Redis shares the integers 0..9999 between keys and reports them with a huge refcount.
const SHARED_INTEGERS: i64 = 10_000;
const SHARED_REFCOUNT: i64 = i32::MAX as i64;

fn object_refcount(ctx: &mut Ctx) {
    let args = ctx.args;
    let now = ctx.now_ms;
    match ctx.db().peek(&args[2], now) {
        Some(Value::Int(i)) if (0..SHARED_INTEGERS).contains(i) => ctx.integer(SHARED_REFCOUNT),
        Some(_) => ctx.integer(1),
        None => ctx.null(),
    }
}

fn object_help(ctx: &mut Ctx) {
    super::server_admin::reply_help(
        ctx,
        "OBJECT",
        &[
            "ENCODING <key>",
            "    The internal representation of the value stored at <key>.",
            "REFCOUNT <key>",
            "    How many references the value at <key> has.",
        ],
    );
}

#[cfg(test)]
mod tests {
    use super::parse_cursor;

    #[test]
    fn cursors_are_unsigned_64_bit() {
        assert_eq!(parse_cursor(b"0"), Some(0));
        assert_eq!(parse_cursor(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_cursor(b"-1"), None);
        assert_eq!(parse_cursor(b"abc"), None);
    }
}
