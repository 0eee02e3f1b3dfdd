//! Set commands: membership, random members, algebra (SINTER/SUNION/SDIFF and their STORE
//! forms), SSCAN.

use super::spec::flags::*;
use super::{
    edit_collection, errors, parse_scan, read_collection, CollectionKind, CommandSpec, Ctx,
};
use crate::notify::class;
use bytes::Bytes;
use moonkv_keyspace::{glob_match, Set, Value};
use moonkv_protocol::number::parse_i64;
use moonkv_protocol::ReplySink;

const fn set_cmd(
    name: &'static str,
    arity: i32,
    flags: u32,
    keys: (i32, i32, i32),
    handler: super::Handler,
) -> CommandSpec {
    CommandSpec::new(name, arity, flags, keys, "set", handler).group("set")
}

pub static COMMANDS: &[CommandSpec] = &[
    set_cmd("sadd", -3, WRITE | DENYOOM | FAST, (1, 1, 1), sadd).summary("Add members", "1.0.0"),
    set_cmd("srem", -3, WRITE | FAST, (1, 1, 1), srem).summary("Remove members", "1.0.0"),
    set_cmd("smembers", 2, READONLY, (1, 1, 1), smembers).summary("All members", "1.0.0"),
    set_cmd("sismember", 3, READONLY | FAST, (1, 1, 1), sismember)
        .summary("Is a value a member", "1.0.0"),
    set_cmd("smismember", -3, READONLY | FAST, (1, 1, 1), smismember)
        .summary("Are values members", "6.2.0"),
    set_cmd("scard", 2, READONLY | FAST, (1, 1, 1), scard).summary("Number of members", "1.0.0"),
    set_cmd("spop", -2, WRITE | FAST | RANDOM, (1, 1, 1), spop)
        .summary("Remove and return random members", "1.0.0"),
    set_cmd("srandmember", -2, READONLY | RANDOM, (1, 1, 1), srandmember)
        .summary("Random members", "1.0.0"),
    set_cmd("smove", 4, WRITE | FAST, (1, 2, 1), smove)
        .summary("Move a member between sets", "1.0.0"),
    set_cmd("sinter", -2, READONLY, (1, -1, 1), sinter).summary("Intersection", "1.0.0"),
    set_cmd("sintercard", -3, READONLY, (0, 0, 0), sintercard)
        .key_finder(|args| super::keys_after_numkeys(args, 1))
        .summary("Size of the intersection", "7.0.0"),
    set_cmd("sinterstore", -3, WRITE | DENYOOM, (1, -1, 1), sinterstore)
        .summary("Store an intersection", "1.0.0"),
    set_cmd("sunion", -2, READONLY, (1, -1, 1), sunion).summary("Union", "1.0.0"),
    set_cmd("sunionstore", -3, WRITE | DENYOOM, (1, -1, 1), sunionstore)
        .summary("Store a union", "1.0.0"),
    set_cmd("sdiff", -2, READONLY, (1, -1, 1), sdiff).summary("Difference", "1.0.0"),
    set_cmd("sdiffstore", -3, WRITE | DENYOOM, (1, -1, 1), sdiffstore)
        .summary("Store a difference", "1.0.0"),
    set_cmd("sscan", -3, READONLY | RANDOM, (1, 1, 1), sscan)
        .summary("Iterate over members", "2.8.0"),
];

fn intset_limit(ctx: &Ctx) -> usize {
    ctx.state.settings.set_max_intset_entries
}

const SET: CollectionKind<Set> = CollectionKind {
    view: Value::as_set,
    view_mut: Value::as_set_mut,
    is_empty: Set::is_empty,
    create: || Value::Set(Box::new(Set::new())),
};

fn read_set<'c>(ctx: &'c mut Ctx, key: &[u8]) -> Result<Option<&'c Set>, ()> {
    read_collection(ctx, key, Value::as_set)
}

fn edit_set<R>(
    ctx: &mut Ctx,
    key: &[u8],
    create: bool,
    edit: impl FnOnce(&mut Set) -> R,
) -> Option<Result<R, ()>> {
    edit_collection(ctx, key, &SET, create, edit)
}

fn sadd(ctx: &mut Ctx) {
    let args = ctx.args;
    let limit = intset_limit(ctx);
    let Some(Ok(added)) = edit_set(ctx, &args[1], true, |s| {
        args[2..].iter().filter(|m| s.insert(m, limit)).count()
    }) else {
        return;
    };
    if added > 0 {
        ctx.notify(class::SET, "sadd", &args[1]);
    }
    ctx.integer(added as i64);
}

fn srem(ctx: &mut Ctx) {
    let args = ctx.args;
    let removed = match edit_set(ctx, &args[1], false, |s| {
        args[2..].iter().filter(|m| s.remove(m)).count()
    }) {
        None => 0,
        Some(Err(())) => return,
        Some(Ok(n)) => n,
    };
    if removed > 0 {
        ctx.notify(class::SET, "srem", &args[1]);
        notify_if_deleted(ctx, &args[1]);
    }
    ctx.integer(removed as i64);
}

fn notify_if_deleted(ctx: &mut Ctx, key: &[u8]) {
    let now = ctx.now_ms;
    if !ctx.db().exists(key, now) {
        ctx.notify(class::GENERIC, "del", key);
    }
}

fn reply_members<'m>(ctx: &mut Ctx, members: impl ExactSizeIterator<Item = &'m [u8]>) {
    ctx.set(members.len());
    for m in members {
        ctx.bulk(m);
    }
}

fn smembers(ctx: &mut Ctx) {
    let args = ctx.args;
    let now = ctx.now_ms;
    let (db, sink) = ctx.db_and_sink();
    match db.get(&args[1], now) {
        None => sink.set(0),
        Some(Value::Set(s)) => {
            sink.set(s.len());
            for m in s.iter() {
                sink.bulk(&m);
            }
        }
        Some(_) => ctx.wrong_type(),
    }
}

fn sismember(ctx: &mut Ctx) {
    let args = ctx.args;
    if let Ok(set) = read_set(ctx, &args[1]) {
        let found = set.is_some_and(|s| s.contains(&args[2]));
        ctx.integer(found as i64);
    }
}

fn smismember(ctx: &mut Ctx) {
    let args = ctx.args;
    let Ok(set) = read_set(ctx, &args[1]) else {
        return;
    };
    let flags: Vec<bool> = args[2..]
        .iter()
        .map(|m| set.is_some_and(|s| s.contains(m)))
        .collect();
    ctx.array(flags.len());
    for f in flags {
        ctx.integer(f as i64);
    }
}

fn scard(ctx: &mut Ctx) {
    let args = ctx.args;
    if let Ok(set) = read_set(ctx, &args[1]) {
        let n = set.map_or(0, Set::len);
        ctx.integer(n as i64);
    }
}

/// Parses SPOP/SRANDMEMBER's optional count.
fn parse_count(ctx: &mut Ctx) -> Result<Option<i64>, ()> {
    let args = ctx.args;
    match args.len() {
        2 => Ok(None),
        3 => match parse_i64(&args[2]) {
            Some(n) => Ok(Some(n)),
            None => {
                ctx.error(errors::NOT_INTEGER);
                Err(())
            }
        },
        _ => {
            ctx.syntax_error();
            Err(())
        }
    }
}

fn spop(ctx: &mut Ctx) {
    let args = ctx.args;
    let key = &args[1];
    let Ok(count) = parse_count(ctx) else { return };
    if count.is_some_and(|n| n < 0) {
        return ctx.error("ERR value is out of range, must be positive");
    }
    let wanted = count.unwrap_or(1) as usize;
    match read_set(ctx, key) {
        Err(()) => return,
        Ok(None) => {
            return if count.is_some() {
                ctx.set(0)
            } else {
                ctx.null()
            }
        }
        Ok(Some(_)) => {}
    }
    let mut rng = ctx.state.rng.clone();
    let chosen = edit_set(ctx, key, false, |s| s.pop_random(wanted, &mut rng))
        .and_then(Result::ok)
        .unwrap_or_default();
    ctx.state.rng = rng;
    if !chosen.is_empty() {
        ctx.notify(class::SET, "spop", key);
        notify_if_deleted(ctx, key);
    }
    // Replicas remove exactly the members chosen here, not random ones of their own.
    if !chosen.is_empty() && ctx.propagating() {
        let mut replica_args: Vec<Bytes> =
            vec![Bytes::from_static(b"SREM"), Bytes::copy_from_slice(key)];
        replica_args.extend(chosen.iter().map(|m| Bytes::copy_from_slice(m)));
        ctx.propagate_as(replica_args);
    }
    match count {
        None => ctx.bulk_opt(chosen.first().map(Vec::as_slice)),
        Some(_) => reply_members(ctx, chosen.iter().map(Vec::as_slice)),
    }
}

fn srandmember(ctx: &mut Ctx) {
    let args = ctx.args;
    let Ok(count) = parse_count(ctx) else { return };
    if count == Some(i64::MIN) {
        return ctx.error("ERR value is out of range");
    }
    let picked: Option<Vec<Vec<u8>>> = {
        let now = ctx.now_ms;
        let state = &mut *ctx.state;
        let db = &mut state.dbs[ctx.client.db];
        match db.get(&args[1], now) {
            None => None,
            Some(Value::Set(set)) => Some(match count {
                None => set
                    .random_member(&mut state.rng)
                    .map(|m| vec![m.into_owned()])
                    .unwrap_or_default(),
                Some(n) if n < 0 => (0..n.unsigned_abs())
                    .filter_map(|_| {
                        set.random_member(&mut state.rng)
                            .map(std::borrow::Cow::into_owned)
                    })
                    .collect(),
                Some(n) => set.random_distinct(n as usize, &mut state.rng),
            }),
            Some(_) => return ctx.wrong_type(),
        }
    };
    match (count, picked) {
        (None, None) => ctx.null(),
        (None, Some(p)) => ctx.bulk_opt(p.first().map(Vec::as_slice)),
        (Some(_), None) => ctx.array(0),
        (Some(_), Some(p)) => {
            ctx.array(p.len());
            for m in p {
                ctx.bulk(&m);
            }
        }
    }
}

fn smove(ctx: &mut Ctx) {
    let args = ctx.args;
    let (src, dst, member) = (&args[1], &args[2], &args[3]);
    let src_has = match read_set(ctx, src) {
        Err(()) => return,
        Ok(set) => set.map(|s| s.contains(member)),
    };
    let dst_has = match read_set(ctx, dst) {
        Err(()) => return,
        Ok(set) => set.is_some_and(|s| s.contains(member)),
    };
    let Some(true) = src_has else {
        return ctx.integer(0);
    };
    if src == dst {
        return ctx.integer(1);
    }
    edit_set(ctx, src, false, |s| s.remove(member));
    ctx.notify(class::SET, "srem", src);
    notify_if_deleted(ctx, src);
    // A destination that already has the member is left untouched (its WATCHes stay clean).
    if !dst_has {
        let limit = intset_limit(ctx);
        edit_set(ctx, dst, true, |s| s.insert(member, limit));
        ctx.notify(class::SET, "sadd", dst);
    }
    ctx.integer(1);
}

#[derive(Clone, Copy, PartialEq)]
enum Algebra {
    Inter,
    Union,
    Diff,
}

/// Computes the set operation over `keys`; Err(()) after replying WRONGTYPE.
fn compute(ctx: &mut Ctx, keys: &[Bytes], op: Algebra) -> Result<Vec<Vec<u8>>, ()> {
    let mut sets: Vec<Option<Vec<Vec<u8>>>> = Vec::with_capacity(keys.len());
    for key in keys {
        let members =
            read_set(ctx, key)?.map(|s| s.iter().map(std::borrow::Cow::into_owned).collect());
        sets.push(members);
    }
    let result: Vec<Vec<u8>> = match op {
        Algebra::Inter => {
            if sets.iter().any(Option::is_none) {
                return Ok(Vec::new());
            }
            let mut sets: Vec<Vec<Vec<u8>>> = sets.into_iter().flatten().collect();
            sets.sort_by_key(Vec::len);
            let lookup: Vec<std::collections::HashSet<&Vec<u8>>> =
                sets[1..].iter().map(|s| s.iter().collect()).collect();
            sets[0]
                .iter()
                .filter(|m| lookup.iter().all(|s| s.contains(m)))
                .cloned()
                .collect()
        }
        Algebra::Union => {
            let mut seen = std::collections::HashSet::new();
            sets.into_iter()
                .flatten()
                .flatten()
                .filter(|m| seen.insert(m.clone()))
                .collect()
        }
        Algebra::Diff => {
            let mut iter = sets.into_iter();
            let first = iter.next().flatten().unwrap_or_default();
            let others: Vec<std::collections::HashSet<Vec<u8>>> =
                iter.flatten().map(|s| s.into_iter().collect()).collect();
            first
                .into_iter()
                .filter(|m| !others.iter().any(|o| o.contains(m)))
                .collect()
        }
    };
    Ok(result)
}

fn algebra_reply(ctx: &mut Ctx, op: Algebra) {
    let args = ctx.args;
    if let Ok(members) = compute(ctx, &args[1..], op) {
        reply_members(ctx, members.iter().map(Vec::as_slice));
    }
}

fn algebra_store(ctx: &mut Ctx, op: Algebra) {
    let args = ctx.args;
    let dst = &args[1];
    let Ok(members) = compute(ctx, &args[2..], op) else {
        return;
    };
    let now = ctx.now_ms;
    let limit = intset_limit(ctx);
    if members.is_empty() {
        if ctx.db().remove(dst, now).is_some() {
            ctx.notify(class::GENERIC, "del", dst);
        }
        return ctx.integer(0);
    }
    let mut set = Set::new();
    for m in &members {
        set.insert(m, limit);
    }
    ctx.db().set(dst, Value::Set(Box::new(set)), false);
    let event = match op {
        Algebra::Inter => "sinterstore",
        Algebra::Union => "sunionstore",
        Algebra::Diff => "sdiffstore",
    };
    ctx.notify(class::SET, event, dst);
    ctx.integer(members.len() as i64);
}

fn sinter(ctx: &mut Ctx) {
    algebra_reply(ctx, Algebra::Inter);
}

fn sunion(ctx: &mut Ctx) {
    algebra_reply(ctx, Algebra::Union);
}

fn sdiff(ctx: &mut Ctx) {
    algebra_reply(ctx, Algebra::Diff);
}

fn sinterstore(ctx: &mut Ctx) {
    algebra_store(ctx, Algebra::Inter);
}

fn sunionstore(ctx: &mut Ctx) {
    algebra_store(ctx, Algebra::Union);
}

fn sdiffstore(ctx: &mut Ctx) {
    algebra_store(ctx, Algebra::Diff);
}

fn sintercard(ctx: &mut Ctx) {
    let args = ctx.args;
    let Some((numkeys, limit)) = super::parse_intercard(ctx, super::IntercardFlavor::Set) else {
        return;
    };
    let Ok(members) = compute(ctx, &args[2..2 + numkeys], Algebra::Inter) else {
        return;
    };
    let n = if limit > 0 {
        members.len().min(limit)
    } else {
        members.len()
    };
    ctx.integer(n as i64);
}

fn sscan(ctx: &mut Ctx) {
    let args = ctx.args;
    let Some(options) = parse_scan(ctx, 2, false) else {
        return;
    };
    let (mut cursor, pattern, count) = (options.cursor, options.pattern, options.count);
    let Ok(set) = read_set(ctx, &args[1]) else {
        return;
    };
    let mut found: Vec<Vec<u8>> = Vec::new();
    if let Some(set) = set {
        cursor = super::scan_loop(cursor, count, |c| {
            let next = set.scan_step(c, |m| {
                if pattern.map_or(true, |p| glob_match(p, m, false)) {
                    found.push(m.to_vec());
                }
            });
            (next, found.len())
        });
    } else {
        cursor = 0;
    }
    ctx.array(2);
    ctx.bulk(cursor.to_string().as_bytes());
    ctx.array(found.len());
    for m in found {
        ctx.bulk(&m);
    }
}
