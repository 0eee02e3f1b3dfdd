//! Sorted set commands: ZADD/ZINCRBY, scores and ranks, ranges by rank, score and lex (and
//! their REV, STORE and REM forms), pops, set algebra (ZUNION/ZINTER/ZDIFF, STORE forms,
//! ZINTERCARD), ZRANDMEMBER, ZSCAN, and the blocking pops (BZPOPMIN, BZPOPMAX, BZMPOP).

use super::spec::flags::*;
use super::{
    edit_collection, errors, parse_multi_pop, parse_scan, read_collection, CollectionKind,
    CommandSpec, Ctx,
};
use crate::blocking::Awaits;
use crate::notify::class;
use bytes::Bytes;
use moonkv_keyspace::{
    glob_match, LexBound, LexRange, ScoreBound, ScoreRange, SortedSet, Value, ZSetLimits,
};
use moonkv_protocol::number::{format_double, parse_f64, parse_i64};
use moonkv_protocol::{Protocol, ReplySink};
use rand::seq::SliceRandom;

const fn zcmd(
    name: &'static str,
    arity: i32,
    flags: u32,
    keys: (i32, i32, i32),
    handler: super::Handler,
) -> CommandSpec {
    CommandSpec::new(name, arity, flags, keys, "sortedset", handler).group("sorted-set")
}

/// Keys of ZUNION/ZINTER/ZDIFF/ZINTERCARD/ZMPOP: `numkeys` at index 1.
fn numkeys_at_1(args: &[Bytes]) -> Result<Vec<usize>, String> {
    super::keys_after_numkeys(args, 1)
}

fn numkeys_at_2(args: &[Bytes]) -> Result<Vec<usize>, String> {
    super::keys_after_numkeys(args, 2)
}

/// Keys of the STORE forms: the destination, then `numkeys` keys after index 2.
fn store_keys(args: &[Bytes]) -> Result<Vec<usize>, String> {
    let mut keys = vec![1];
    keys.extend(super::keys_after_numkeys(args, 2)?);
    Ok(keys)
}

pub static COMMANDS: &[CommandSpec] = &[
    zcmd("zadd", -4, WRITE | DENYOOM | FAST, (1, 1, 1), zadd).summary("Add members or update their scores", "1.2.0"),
    zcmd("zincrby", 4, WRITE | DENYOOM | FAST, (1, 1, 1), zincrby).summary("Increment a member's score", "1.2.0"),
    zcmd("zscore", 3, READONLY | FAST, (1, 1, 1), zscore).summary("A member's score", "1.2.0"),
    zcmd("zmscore", -3, READONLY | FAST, (1, 1, 1), zmscore).summary("Several members' scores", "6.2.0"),
    zcmd("zrank", 3, READONLY | FAST, (1, 1, 1), zrank).summary("A member's rank by ascending score", "2.0.0"),
    zcmd("zrevrank", 3, READONLY | FAST, (1, 1, 1), zrevrank).summary("A member's rank by descending score", "2.0.0"),
    zcmd("zcard", 2, READONLY | FAST, (1, 1, 1), zcard).summary("Number of members", "1.2.0"),
    zcmd("zcount", 4, READONLY | FAST, (1, 1, 1), zcount).summary("Members within a score range", "2.0.0"),
    zcmd("zlexcount", 4, READONLY | FAST, (1, 1, 1), zlexcount).summary("Members within a lexicographic range", "2.8.9"),
    zcmd("zrem", -3, WRITE | FAST, (1, 1, 1), zrem).summary("Remove members", "1.2.0"),
    zcmd("zremrangebyrank", 4, WRITE, (1, 1, 1), zremrangebyrank).summary("Remove members within a rank range", "2.0.0"),
    zcmd("zremrangebyscore", 4, WRITE, (1, 1, 1), zremrangebyscore).summary("Remove members within a score range", "1.2.0"),
    zcmd("zremrangebylex", 4, WRITE, (1, 1, 1), zremrangebylex).summary("Remove members within a lexicographic range", "2.8.9"),
    zcmd("zrange", -4, READONLY, (1, 1, 1), zrange).summary("Members in a range of ranks, scores or members", "1.2.0"),
    zcmd("zrangestore", -5, WRITE | DENYOOM, (1, 2, 1), zrangestore).summary("Store a range of another sorted set", "6.2.0"),
    zcmd("zrevrange", -4, READONLY, (1, 1, 1), zrevrange).summary("Members in a range of ranks, highest first", "1.2.0"),
    zcmd("zrangebyscore", -4, READONLY, (1, 1, 1), zrangebyscore).summary("Members in a score range", "1.0.5"),
    zcmd("zrevrangebyscore", -4, READONLY, (1, 1, 1), zrevrangebyscore).summary("Members in a score range, highest first", "2.2.0"),
    zcmd("zrangebylex", -4, READONLY, (1, 1, 1), zrangebylex).summary("Members in a lexicographic range", "2.8.9"),
    zcmd("zrevrangebylex", -4, READONLY, (1, 1, 1), zrevrangebylex).summary("Members in a lexicographic range, reversed", "2.8.9"),
    zcmd("zpopmin", -2, WRITE | FAST, (1, 1, 1), zpopmin).summary("Remove and return the lowest-scored members", "5.0.0"),
    zcmd("zpopmax", -2, WRITE | FAST, (1, 1, 1), zpopmax).summary("Remove and return the highest-scored members", "5.0.0"),
    zcmd("zmpop", -4, WRITE, (0, 0, 0), zmpop).key_finder(numkeys_at_1).summary("Pop members from the first non-empty sorted set", "7.0.0"),
    zcmd("bzpopmin", -3, WRITE | NOSCRIPT | BLOCKING | FAST, (1, -2, 1), bzpopmin)
        .summary("Remove and return the member with the lowest score from one or more sorted sets, or block until one is available", "5.0.0"),
    zcmd("bzpopmax", -3, WRITE | NOSCRIPT | BLOCKING | FAST, (1, -2, 1), bzpopmax)
        .summary("Remove and return the member with the highest score from one or more sorted sets, or block until one is available", "5.0.0"),
    zcmd("bzmpop", -5, WRITE | BLOCKING, (0, 0, 0), bzmpop)
        .key_finder(numkeys_at_2)
        .summary("Remove and return members with scores in a sorted set or block until one is available", "7.0.0"),
    zcmd("zunion", -3, READONLY, (0, 0, 0), zunion).key_finder(numkeys_at_1).summary("Union of sorted sets", "6.2.0"),
    zcmd("zinter", -3, READONLY, (0, 0, 0), zinter).key_finder(numkeys_at_1).summary("Intersection of sorted sets", "6.2.0"),
    zcmd("zdiff", -3, READONLY, (0, 0, 0), zdiff).key_finder(numkeys_at_1).summary("Difference of sorted sets", "6.2.0"),
    zcmd("zunionstore", -4, WRITE | DENYOOM, (0, 0, 0), zunionstore).key_finder(store_keys).summary("Store a union", "2.0.0"),
    zcmd("zinterstore", -4, WRITE | DENYOOM, (0, 0, 0), zinterstore).key_finder(store_keys).summary("Store an intersection", "2.0.0"),
    zcmd("zdiffstore", -4, WRITE | DENYOOM, (0, 0, 0), zdiffstore).key_finder(store_keys).summary("Store a difference", "6.2.0"),
    zcmd("zintercard", -3, READONLY, (0, 0, 0), zintercard).key_finder(numkeys_at_1).summary("Size of an intersection", "7.0.0"),
    zcmd("zrandmember", -2, READONLY | RANDOM, (1, 1, 1), zrandmember).summary("Random members", "6.2.0"),
    zcmd("zscan", -3, READONLY | RANDOM, (1, 1, 1), zscan).summary("Iterate over members and scores", "2.8.0"),
];

const ZSET: CollectionKind<SortedSet> = CollectionKind {
    view: Value::as_zset,
    view_mut: Value::as_zset_mut,
    is_empty: SortedSet::is_empty,
    create: || Value::ZSet(Box::default()),
};

fn limits(ctx: &Ctx) -> ZSetLimits {
    ctx.state.settings.zset_limits
}

fn read_zset<'c>(ctx: &'c mut Ctx, key: &[u8]) -> Result<Option<&'c SortedSet>, ()> {
    read_collection(ctx, key, Value::as_zset)
}

fn notify_if_deleted(ctx: &mut Ctx, key: &[u8]) {
    let now = ctx.now_ms;
    if !ctx.db().exists(key, now) {
        ctx.notify(class::GENERIC, "del", key);
    }
}

/// A score as RESP3 double, or as the `%.17g` bulk string RESP2 clients get.
fn reply_score(ctx: &mut Ctx, score: f64) {
    ctx.double(score);
}

/// Replies members, with scores when asked: RESP3 as [member, score] pairs, RESP2 flat.
fn reply_members(ctx: &mut Ctx, items: &[(Vec<u8>, f64)], with_scores: bool) {
    let resp3 = ctx.protocol() == Protocol::Resp3;
    if with_scores && resp3 {
        ctx.array(items.len());
        for (m, s) in items {
            ctx.array(2);
            ctx.bulk(m);
            ctx.double(*s);
        }
        return;
    }
    ctx.array(items.len() * if with_scores { 2 } else { 1 });
    for (m, s) in items {
        ctx.bulk(m);
        if with_scores {
            ctx.bulk(format_double(*s).as_bytes());
        }
    }
}

fn parse_score_bound(arg: &[u8]) -> Option<ScoreBound> {
    let (exclusive, text) = match arg.first() {
        Some(b'(') => (true, &arg[1..]),
        _ => (false, arg),
    };
    let value = parse_f64(text)?;
    Some(ScoreBound { value, exclusive })
}

fn parse_score_range(ctx: &mut Ctx, min: usize, max: usize) -> Option<ScoreRange> {
    match (
        parse_score_bound(ctx.arg(min)),
        parse_score_bound(ctx.arg(max)),
    ) {
        (Some(min), Some(max)) => Some(ScoreRange { min, max }),
        _ => {
            ctx.error("ERR min or max is not a float");
            None
        }
    }
}

fn parse_lex_bound(arg: &[u8]) -> Option<LexBound> {
    match arg {
        b"-" => Some(LexBound::NegInf),
        b"+" => Some(LexBound::PosInf),
        [b'[', rest @ ..] => Some(LexBound::Inclusive(rest.to_vec())),
        [b'(', rest @ ..] => Some(LexBound::Exclusive(rest.to_vec())),
        _ => None,
    }
}

fn parse_lex_range(ctx: &mut Ctx, min: usize, max: usize) -> Option<LexRange> {
    match (parse_lex_bound(ctx.arg(min)), parse_lex_bound(ctx.arg(max))) {
        (Some(min), Some(max)) => Some(LexRange { min, max }),
        _ => {
            ctx.error("ERR min or max not valid string range item");
            None
        }
    }
}

/// Clamps Redis's inclusive, possibly negative, rank range to [0, len).
fn rank_range(start: i64, end: i64, len: usize) -> Option<(usize, usize)> {
    let len = len as i64;
    let start = if start < 0 {
        (len + start).max(0)
    } else {
        start
    };
    let end = if end < 0 { len + end } else { end.min(len - 1) };
    (start <= end && start < len && end >= 0).then_some((start as usize, end as usize))
}

fn zadd(ctx: &mut Ctx) {
    let args = ctx.args;
    let (mut nx, mut xx, mut gt, mut lt, mut ch, mut incr) =
        (false, false, false, false, false, false);
    let mut i = 2;
    while i < args.len() {
        match ctx.arg_lower(i).as_str() {
            "nx" => nx = true,
            "xx" => xx = true,
            "gt" => gt = true,
            "lt" => lt = true,
            "ch" => ch = true,
            "incr" => incr = true,
            _ => break,
        }
        i += 1;
    }
    let pairs = &args[i..];
    if pairs.is_empty() || pairs.len() % 2 != 0 {
        return ctx.syntax_error();
    }
    if nx && xx {
        return ctx.error("ERR XX and NX options at the same time are not compatible");
    }
    if (gt && nx) || (lt && nx) || (gt && lt) {
        return ctx.error("ERR GT, LT, and/or NX options at the same time are not compatible");
    }
    if incr && pairs.len() > 2 {
        return ctx.error("ERR INCR option supports a single increment-element pair");
    }
    let mut scores = Vec::with_capacity(pairs.len() / 2);
    for pair in pairs.chunks(2) {
        match parse_f64(&pair[0]) {
            Some(s) => scores.push(s),
            None => return ctx.error(errors::NOT_FLOAT),
        }
    }
    let limits = limits(ctx);
    let key = &args[1];
    // Nothing to create when XX is given and the key is missing.
    let create = !xx;
    let outcome = edit_collection(ctx, key, &ZSET, create, |z| {
        let (mut added, mut changed) = (0, 0);
        let mut incr_result: Option<f64> = None;
        for (pair, &score) in pairs.chunks(2).zip(&scores) {
            let member = &pair[1];
            let current = z.score(member);
            let new_score = match (current, incr) {
                (Some(c), true) => c + score,
                _ => score,
            };
            if new_score.is_nan() {
                return Err(());
            }
            match current {
                Some(_) if nx => continue,
                None if xx => continue,
                Some(c) => {
                    if (gt && new_score <= c) || (lt && new_score >= c) {
                        continue;
                    }
                    if new_score != c {
                        z.insert(member, new_score, limits);
                        changed += 1;
                    }
                }
                None => {
                    z.insert(member, new_score, limits);
                    added += 1;
                }
            }
            incr_result = Some(new_score);
        }
        Ok((added, changed, incr_result))
    });
    let (added, changed, incr_result) = match outcome {
        None => (0, 0, None),
        Some(Err(())) => return,
        Some(Ok(Err(()))) => return ctx.error("ERR resulting score is not a number (NaN)"),
        Some(Ok(Ok(r))) => r,
    };
    if added + changed > 0 {
        ctx.notify(class::ZSET, if incr { "zincr" } else { "zadd" }, key);
    }
    if incr {
        return match incr_result {
            Some(s) => reply_score(ctx, s),
            None => ctx.null(),
        };
    }
    ctx.integer(if ch { added + changed } else { added } as i64);
}

fn zincrby(ctx: &mut Ctx) {
    let args = ctx.args;
    let Some(delta) = ctx.arg_f64(2) else { return };
    let limits = limits(ctx);
    let result = edit_collection(ctx, &args[1], &ZSET, true, |z| {
        let new = z.score(&args[3]).unwrap_or(0.0) + delta;
        if new.is_nan() {
            return None;
        }
        z.insert(&args[3], new, limits);
        Some(new)
    });
    match result {
        Some(Ok(Some(score))) => {
            ctx.notify(class::ZSET, "zincr", &args[1]);
            reply_score(ctx, score)
        }
        Some(Ok(None)) => ctx.error("ERR resulting score is not a number (NaN)"),
        _ => {}
    }
}

fn zscore(ctx: &mut Ctx) {
    let args = ctx.args;
    let Ok(z) = read_zset(ctx, &args[1]) else {
        return;
    };
    match z.and_then(|z| z.score(&args[2])) {
        Some(s) => reply_score(ctx, s),
        None => ctx.null(),
    }
}

fn zmscore(ctx: &mut Ctx) {
    let args = ctx.args;
    let Ok(z) = read_zset(ctx, &args[1]) else {
        return;
    };
    let scores: Vec<Option<f64>> = args[2..]
        .iter()
        .map(|m| z.and_then(|z| z.score(m)))
        .collect();
    ctx.array(scores.len());
    for s in scores {
        match s {
            Some(s) => reply_score(ctx, s),
            None => ctx.null(),
        }
    }
}

fn rank_generic(ctx: &mut Ctx, reverse: bool) {
    let args = ctx.args;
    let Ok(z) = read_zset(ctx, &args[1]) else {
        return;
    };
    match z.and_then(|z| z.rank(&args[2], reverse)) {
        Some(r) => ctx.integer(r as i64),
        None => ctx.null(),
    }
}

fn zrank(ctx: &mut Ctx) {
    rank_generic(ctx, false);
}

fn zrevrank(ctx: &mut Ctx) {
    rank_generic(ctx, true);
}

fn zcard(ctx: &mut Ctx) {
    let args = ctx.args;
    if let Ok(z) = read_zset(ctx, &args[1]) {
        let n = z.map_or(0, SortedSet::len);
        ctx.integer(n as i64);
    }
}

fn zcount(ctx: &mut Ctx) {
    let args = ctx.args;
    let Some(range) = parse_score_range(ctx, 2, 3) else {
        return;
    };
    if let Ok(z) = read_zset(ctx, &args[1]) {
        let n = z.map_or(0, |z| z.count_by_score(&range));
        ctx.integer(n as i64);
    }
}

fn zlexcount(ctx: &mut Ctx) {
    let args = ctx.args;
    let Some(range) = parse_lex_range(ctx, 2, 3) else {
        return;
    };
    if let Ok(z) = read_zset(ctx, &args[1]) {
        let n = z.map_or(0, |z| z.count_by_lex(&range));
        ctx.integer(n as i64);
    }
}

/// Removes the given members (computed from the set by `select`) and replies how many.
fn remove_selected(ctx: &mut Ctx, select: impl FnOnce(&SortedSet) -> Vec<Vec<u8>>, event: &str) {
    let args = ctx.args;
    let key = &args[1];
    let removed = match edit_collection(ctx, key, &ZSET, false, |z| {
        let members = select(z);
        members.iter().filter(|m| z.remove(m)).count()
    }) {
        None => 0,
        Some(Err(())) => return,
        Some(Ok(n)) => n,
    };
    if removed > 0 {
        ctx.notify(class::ZSET, event, key);
        notify_if_deleted(ctx, key);
    }
    ctx.integer(removed as i64);
}

fn zrem(ctx: &mut Ctx) {
    let args = ctx.args;
    remove_selected(
        ctx,
        |_| args[2..].iter().map(|m| m.to_vec()).collect(),
        "zrem",
    );
}

fn zremrangebyrank(ctx: &mut Ctx) {
    let args = ctx.args;
    let (Some(start), Some(end)) = (parse_i64(&args[2]), parse_i64(&args[3])) else {
        return ctx.error(errors::NOT_INTEGER);
    };
    remove_selected(
        ctx,
        |z| match rank_range(start, end, z.len()) {
            Some((s, e)) => z
                .range_by_rank(s, e, false)
                .into_iter()
                .map(|(m, _)| m)
                .collect(),
            None => Vec::new(),
        },
        "zremrangebyrank",
    );
}

fn zremrangebyscore(ctx: &mut Ctx) {
    let Some(range) = parse_score_range(ctx, 2, 3) else {
        return;
    };
    remove_selected(
        ctx,
        |z| {
            z.range_by_score(&range, false, 0, None)
                .into_iter()
                .map(|(m, _)| m)
                .collect()
        },
        "zremrangebyscore",
    );
}

fn zremrangebylex(ctx: &mut Ctx) {
    let Some(range) = parse_lex_range(ctx, 2, 3) else {
        return;
    };
    remove_selected(
        ctx,
        |z| {
            z.range_by_lex(&range, false, 0, None)
                .into_iter()
                .map(|(m, _)| m)
                .collect()
        },
        "zremrangebylex",
    );
}

#[derive(Clone, Copy, PartialEq)]
enum RangeBy {
    Rank,
    Score,
    Lex,
}

/// A parsed ZRANGE-family request.
struct RangeRequest {
    by: RangeBy,
    reverse: bool,
    offset: i64,
    limit: Option<i64>,
    with_scores: bool,
}

/// Computes the range on the set at `key` (missing key: empty). `lo`/`hi` are argument
/// indexes of the range ends as the user wrote them.
fn compute_range(
    ctx: &mut Ctx,
    key: &[u8],
    lo: usize,
    hi: usize,
    req: &RangeRequest,
) -> Option<Vec<(Vec<u8>, f64)>> {
    // With REV, score and lex ranges are written high first.
    let (min, max) = if req.reverse && req.by != RangeBy::Rank {
        (hi, lo)
    } else {
        (lo, hi)
    };
    enum Bounds {
        Rank(i64, i64),
        Score(ScoreRange),
        Lex(LexRange),
    }
    let bounds = match req.by {
        RangeBy::Rank => {
            let (Some(s), Some(e)) = (parse_i64(ctx.arg(lo)), parse_i64(ctx.arg(hi))) else {
                ctx.error(errors::NOT_INTEGER);
                return None;
            };
            Bounds::Rank(s, e)
        }
        RangeBy::Score => Bounds::Score(parse_score_range(ctx, min, max)?),
        RangeBy::Lex => Bounds::Lex(parse_lex_range(ctx, min, max)?),
    };
    let z = read_zset(ctx, key).ok()?;
    let Some(z) = z else { return Some(Vec::new()) };
    if req.offset < 0 {
        return Some(Vec::new());
    }
    let limit = req.limit.filter(|&l| l >= 0).map(|l| l as usize);
    Some(match bounds {
        Bounds::Rank(s, e) => match rank_range(s, e, z.len()) {
            Some((s, e)) => z.range_by_rank(s, e, req.reverse),
            None => Vec::new(),
        },
        Bounds::Score(r) => z.range_by_score(&r, req.reverse, req.offset as usize, limit),
        Bounds::Lex(r) => z.range_by_lex(&r, req.reverse, req.offset as usize, limit),
    })
}

/// Parses the options after `args[from]` for ZRANGE/ZRANGESTORE (`store`: no WITHSCORES).
fn parse_range_options(ctx: &mut Ctx, from: usize, store: bool) -> Option<RangeRequest> {
    let args = ctx.args;
    let mut req = RangeRequest {
        by: RangeBy::Rank,
        reverse: false,
        offset: 0,
        limit: None,
        with_scores: false,
    };
    let mut i = from;
    while i < args.len() {
        match ctx.arg_lower(i).as_str() {
            "withscores" if !store => req.with_scores = true,
            "byscore" => req.by = RangeBy::Score,
            "bylex" => req.by = RangeBy::Lex,
            "rev" => req.reverse = true,
            "limit" if i + 2 < args.len() => {
                req.offset = ctx.arg_i64(i + 1)?;
                req.limit = Some(ctx.arg_i64(i + 2)?);
                i += 2;
            }
            _ => {
                ctx.syntax_error();
                return None;
            }
        }
        i += 1;
    }
    if req.limit.is_some() && req.by == RangeBy::Rank {
        ctx.error(
            "ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX",
        );
        return None;
    }
    if req.with_scores && req.by == RangeBy::Lex {
        ctx.error("ERR syntax error, WITHSCORES not supported in combination with BYLEX");
        return None;
    }
    Some(req)
}

fn zrange(ctx: &mut Ctx) {
    let args = ctx.args;
    let Some(req) = parse_range_options(ctx, 4, false) else {
        return;
    };
    if let Some(items) = compute_range(ctx, &args[1], 2, 3, &req) {
        reply_members(ctx, &items, req.with_scores);
    }
}

fn zrangestore(ctx: &mut Ctx) {
    let args = ctx.args;
    let Some(req) = parse_range_options(ctx, 5, true) else {
        return;
    };
    let Some(items) = compute_range(ctx, &args[2], 3, 4, &req) else {
        return;
    };
    store_result(ctx, &args[1], items, "zrangestore");
}

/// Stores `items` as the sorted set `dest` (deleting it when empty) and replies the size.
fn store_result(ctx: &mut Ctx, dest: &[u8], items: Vec<(Vec<u8>, f64)>, event: &str) {
    let now = ctx.now_ms;
    let count = items.len();
    if items.is_empty() {
        if ctx.db().remove(dest, now).is_some() {
            ctx.notify(class::GENERIC, "del", dest);
        }
        return ctx.integer(0);
    }
    let limits = limits(ctx);
    let mut z = SortedSet::new();
    for (m, s) in &items {
        z.insert(m, *s, limits);
    }
    ctx.db().set(dest, Value::ZSet(Box::new(z)), false);
    ctx.notify(class::ZSET, event, dest);
    ctx.integer(count as i64);
}

/// The legacy range commands: ZREVRANGE, ZRANGEBYSCORE, ZREVRANGEBYSCORE, ZRANGEBYLEX,
/// ZREVRANGEBYLEX.
fn legacy_range(ctx: &mut Ctx, by: RangeBy, reverse: bool) {
    let args = ctx.args;
    let mut req = RangeRequest {
        by,
        reverse,
        offset: 0,
        limit: None,
        with_scores: false,
    };
    let mut i = 4;
    while i < args.len() {
        match ctx.arg_lower(i).as_str() {
            "withscores" if by != RangeBy::Lex => req.with_scores = true,
            "limit" if by != RangeBy::Rank && i + 2 < args.len() => {
                let Some(offset) = ctx.arg_i64(i + 1) else {
                    return;
                };
                let Some(limit) = ctx.arg_i64(i + 2) else {
                    return;
                };
                req.offset = offset;
                req.limit = Some(limit);
                i += 2;
            }
            _ => return ctx.syntax_error(),
        }
        i += 1;
    }
    // The legacy REV forms take max before min, like ZRANGE ... REV.
    if let Some(items) = compute_range(ctx, &args[1], 2, 3, &req) {
        reply_members(ctx, &items, req.with_scores);
    }
}

fn zrevrange(ctx: &mut Ctx) {
    legacy_range(ctx, RangeBy::Rank, true);
}

fn zrangebyscore(ctx: &mut Ctx) {
    legacy_range(ctx, RangeBy::Score, false);
}

fn zrevrangebyscore(ctx: &mut Ctx) {
    legacy_range(ctx, RangeBy::Score, true);
}

fn zrangebylex(ctx: &mut Ctx) {
    legacy_range(ctx, RangeBy::Lex, false);
}

fn zrevrangebylex(ctx: &mut Ctx) {
    legacy_range(ctx, RangeBy::Lex, true);
}

/// Pops up to `count` members from one end of the set at `key`.
fn pop(ctx: &mut Ctx, key: &[u8], count: usize, max: bool) -> Result<Vec<(Vec<u8>, f64)>, ()> {
    let popped = match edit_collection(ctx, key, &ZSET, false, |z| {
        let n = count.min(z.len());
        if n == 0 {
            return Vec::new();
        }
        let items = z.range_by_rank(0, n - 1, max);
        for (m, _) in &items {
            z.remove(m);
        }
        items
    }) {
        None => Vec::new(),
        Some(Err(())) => return Err(()),
        Some(Ok(items)) => items,
    };
    if !popped.is_empty() {
        ctx.notify(class::ZSET, if max { "zpopmax" } else { "zpopmin" }, key);
        notify_if_deleted(ctx, key);
    }
    Ok(popped)
}

fn pop_generic(ctx: &mut Ctx, max: bool) {
    let args = ctx.args;
    let count = match args.len() {
        2 => None,
        3 => match parse_i64(&args[2]) {
            Some(n) if n >= 0 => Some(n as usize),
            Some(_) => return ctx.error("ERR value is out of range, must be positive"),
            None => return ctx.error(errors::NOT_INTEGER),
        },
        _ => return ctx.syntax_error(),
    };
    let Ok(items) = pop(ctx, &args[1], count.unwrap_or(1), max) else {
        return;
    };
    if count.is_none() {
        // Without a count the reply is flat even in RESP3.
        ctx.array(items.len() * 2);
        for (m, s) in &items {
            ctx.bulk(m);
            reply_score(ctx, *s);
        }
        return;
    }
    reply_members(ctx, &items, true);
}

fn zpopmin(ctx: &mut Ctx) {
    pop_generic(ctx, false);
}

fn zpopmax(ctx: &mut Ctx) {
    pop_generic(ctx, true);
}

fn pop_command(max: bool) -> &'static [u8] {
    if max {
        b"zpopmax"
    } else {
        b"zpopmin"
    }
}

/// ZMPOP and BZMPOP (with a timeout before numkeys).
fn multi_pop(ctx: &mut Ctx, blocking: bool) {
    let args = ctx.args;
    let Some(spec) = parse_multi_pop(ctx, blocking) else {
        return;
    };
    let max = if ctx.arg_is(spec.side, "min") {
        false
    } else if ctx.arg_is(spec.side, "max") {
        true
    } else {
        return ctx.syntax_error();
    };
    let keys = &args[spec.keys];
    for key in keys {
        let Ok(items) = pop(ctx, key, spec.count, max) else {
            return;
        };
        if items.is_empty() {
            continue;
        }
        let count = items.len().to_string();
        ctx.propagate_parts(&[pop_command(max), key, count.as_bytes()]);
        ctx.array(2);
        ctx.bulk(key);
        ctx.array(items.len());
        for (m, s) in &items {
            ctx.array(2);
            ctx.bulk(m);
            reply_score(ctx, *s);
        }
        return;
    }
    if blocking && ctx.may_block() {
        return ctx.block(keys, spec.timeout, Awaits::SortedSet);
    }
    ctx.null_array();
}

fn zmpop(ctx: &mut Ctx) {
    multi_pop(ctx, false);
}

fn bzmpop(ctx: &mut Ctx) {
    multi_pop(ctx, true);
}

/// BZPOPMIN and BZPOPMAX: `keys... timeout`, replying key, member and score.
fn blocking_pop(ctx: &mut Ctx, max: bool) {
    let args = ctx.args;
    let Some(timeout) = ctx.arg_timeout(args.len() - 1) else {
        return;
    };
    let keys = &args[1..args.len() - 1];
    for key in keys {
        let Ok(items) = pop(ctx, key, 1, max) else {
            return;
        };
        let Some((member, score)) = items.into_iter().next() else {
            continue;
        };
        ctx.propagate_parts(&[pop_command(max), key]);
        ctx.array(3);
        ctx.bulk(key);
        ctx.bulk(&member);
        reply_score(ctx, score);
        return;
    }
    if ctx.may_block() {
        return ctx.block(keys, timeout, Awaits::SortedSet);
    }
    ctx.null_array();
}

fn bzpopmin(ctx: &mut Ctx) {
    blocking_pop(ctx, false);
}

fn bzpopmax(ctx: &mut Ctx) {
    blocking_pop(ctx, true);
}

#[derive(Clone, Copy, PartialEq)]
enum Algebra {
    Union,
    Inter,
    Diff,
}

#[derive(Clone, Copy)]
enum Aggregate {
    Sum,
    Min,
    Max,
}

/// A score times its input's weight; infinity times 0 gives 0 in Redis, never NaN.
fn weigh(score: f64, weight: f64) -> f64 {
    let r = score * weight;
    if r.is_nan() {
        0.0
    } else {
        r
    }
}

fn aggregate(a: f64, b: f64, how: Aggregate) -> f64 {
    let r = match how {
        Aggregate::Sum => a + b,
        Aggregate::Min => a.min(b),
        Aggregate::Max => a.max(b),
    };
    // inf + -inf: Redis stores 0 rather than NaN.
    if r.is_nan() {
        0.0
    } else {
        r
    }
}

/// Reads one input of the algebra commands: a sorted set, or a plain set (scores 1).
fn read_input(ctx: &mut Ctx, key: &[u8]) -> Result<Option<Vec<(Vec<u8>, f64)>>, ()> {
    let now = ctx.now_ms;
    match ctx.db().get(key, now) {
        None => Ok(None),
        Some(Value::ZSet(z)) => Ok(Some(z.iter().map(|(m, s)| (m.to_vec(), s)).collect())),
        Some(Value::Set(s)) => Ok(Some(s.iter().map(|m| (m.to_vec(), 1.0)).collect())),
        Some(_) => {
            ctx.wrong_type();
            Err(())
        }
    }
}

/// Parses `numkeys key... [WEIGHTS w...] [AGGREGATE SUM|MIN|MAX] [WITHSCORES]` from
/// `args[at]`, computes the operation and returns (items, with_scores).
fn algebra(
    ctx: &mut Ctx,
    at: usize,
    op: Algebra,
    allow_withscores: bool,
) -> Option<(Vec<(Vec<u8>, f64)>, bool)> {
    let args = ctx.args;
    let numkeys = ctx.arg_i64(at)?;
    if numkeys <= 0 {
        let msg = format!(
            "ERR at least 1 input key is needed for '{}' command",
            ctx.spec.name
        );
        ctx.error(&msg);
        return None;
    }
    let numkeys = numkeys as usize;
    if numkeys > args.len() - at - 1 {
        ctx.syntax_error();
        return None;
    }
    let keys = &args[at + 1..at + 1 + numkeys];
    let mut weights = vec![1.0; numkeys];
    let mut how = Aggregate::Sum;
    let mut with_scores = false;
    let mut i = at + 1 + numkeys;
    while i < args.len() {
        let word = ctx.arg_lower(i);
        if word == "weights" && op != Algebra::Diff && i + numkeys < args.len() {
            for (j, w) in weights.iter_mut().enumerate() {
                match parse_f64(&args[i + 1 + j]) {
                    Some(v) => *w = v,
                    None => {
                        ctx.error("ERR weight value is not a float");
                        return None;
                    }
                }
            }
            i += numkeys;
        } else if word == "aggregate" && op != Algebra::Diff && i + 1 < args.len() {
            how = match ctx.arg_lower(i + 1).as_str() {
                "sum" => Aggregate::Sum,
                "min" => Aggregate::Min,
                "max" => Aggregate::Max,
                _ => {
                    ctx.syntax_error();
                    return None;
                }
            };
            i += 1;
        } else if word == "withscores" && allow_withscores {
            with_scores = true;
        } else {
            ctx.syntax_error();
            return None;
        }
        i += 1;
    }
    let mut inputs = Vec::with_capacity(numkeys);
    for key in keys {
        inputs.push(read_input(ctx, key).ok()?);
    }
    let mut acc: Vec<(Vec<u8>, f64)> = Vec::new();
    let mut index: std::collections::HashMap<Vec<u8>, usize> = std::collections::HashMap::new();
    match op {
        Algebra::Union => {
            for (input, w) in inputs.iter().zip(&weights) {
                for (m, s) in input.iter().flatten() {
                    let weighted = weigh(*s, *w);
                    match index.get(m) {
                        Some(&pos) => acc[pos].1 = aggregate(acc[pos].1, weighted, how),
                        None => {
                            index.insert(m.clone(), acc.len());
                            acc.push((m.clone(), weighted));
                        }
                    }
                }
            }
        }
        Algebra::Inter => {
            if inputs.iter().any(Option::is_none) {
                return Some((Vec::new(), with_scores));
            }
            let sets: Vec<std::collections::HashMap<&[u8], f64>> = inputs
                .iter()
                .flatten()
                .map(|i| i.iter().map(|(m, s)| (m.as_slice(), *s)).collect())
                .collect();
            if let Some(first) = inputs[0].as_ref() {
                'members: for (m, s) in first {
                    let mut score = weigh(*s, weights[0]);
                    for (j, set) in sets.iter().enumerate().skip(1) {
                        match set.get(m.as_slice()) {
                            Some(other) => score = aggregate(score, weigh(*other, weights[j]), how),
                            None => continue 'members,
                        }
                    }
                    acc.push((m.clone(), score));
                }
            }
        }
        Algebra::Diff => {
            let others: Vec<std::collections::HashSet<&[u8]>> = inputs
                .iter()
                .skip(1)
                .flatten()
                .map(|i| i.iter().map(|(m, _)| m.as_slice()).collect())
                .collect();
            if let Some(first) = inputs[0].as_ref() {
                acc = first
                    .iter()
                    .filter(|(m, _)| !others.iter().any(|o| o.contains(m.as_slice())))
                    .cloned()
                    .collect();
            }
        }
    }
    // Results come out ordered like a sorted set.
    acc.sort_by(|a, b| {
        a.1.partial_cmp(&b.1)
            .unwrap_or(std::cmp::Ordering::Equal)
            .then_with(|| a.0.cmp(&b.0))
    });
    Some((acc, with_scores))
}

fn algebra_reply(ctx: &mut Ctx, op: Algebra) {
    if let Some((items, with_scores)) = algebra(ctx, 1, op, true) {
        reply_members(ctx, &items, with_scores);
    }
}

fn algebra_store(ctx: &mut Ctx, op: Algebra, event: &str) {
    let args = ctx.args;
    if let Some((items, _)) = algebra(ctx, 2, op, false) {
        store_result(ctx, &args[1], items, event);
    }
}

fn zunion(ctx: &mut Ctx) {
    algebra_reply(ctx, Algebra::Union);
}

fn zinter(ctx: &mut Ctx) {
    algebra_reply(ctx, Algebra::Inter);
}

fn zdiff(ctx: &mut Ctx) {
    algebra_reply(ctx, Algebra::Diff);
}

fn zunionstore(ctx: &mut Ctx) {
    algebra_store(ctx, Algebra::Union, "zunionstore");
}

fn zinterstore(ctx: &mut Ctx) {
    algebra_store(ctx, Algebra::Inter, "zinterstore");
}

fn zdiffstore(ctx: &mut Ctx) {
    algebra_store(ctx, Algebra::Diff, "zdiffstore");
}

fn zintercard(ctx: &mut Ctx) {
    let args = ctx.args;
    let Some((numkeys, limit)) = super::parse_intercard(ctx, super::IntercardFlavor::SortedSet)
    else {
        return;
    };
    let mut sets = Vec::with_capacity(numkeys);
    for key in &args[2..2 + numkeys] {
        let Ok(input) = read_input(ctx, key) else {
            return;
        };
        sets.push(input.unwrap_or_default());
    }
    let lookup: Vec<std::collections::HashSet<&[u8]>> = sets[1..]
        .iter()
        .map(|s| s.iter().map(|(m, _)| m.as_slice()).collect())
        .collect();
    let mut n = 0usize;
    for (m, _) in &sets[0] {
        if lookup.iter().all(|s| s.contains(m.as_slice())) {
            n += 1;
            if limit > 0 && n >= limit {
                break;
            }
        }
    }
    ctx.integer(n as i64);
}

fn zrandmember(ctx: &mut Ctx) {
    let args = ctx.args;
    let count = match args.len() {
        2 => None,
        3 | 4 => {
            let Some(n) = ctx.arg_i64(2) else { return };
            if args.len() == 4 && !ctx.arg_is(3, "withscores") {
                return ctx.syntax_error();
            }
            Some(n)
        }
        _ => return ctx.syntax_error(),
    };
    if count.is_some_and(|n| n < -(i64::MAX / 2)) {
        return ctx.error("ERR value is out of range");
    }
    let with_scores = args.len() == 4;
    let picked: Option<Vec<(Vec<u8>, f64)>> = {
        let now = ctx.now_ms;
        let state = &mut *ctx.state;
        match state.dbs[ctx.client.db].get(&args[1], now) {
            None => None,
            Some(Value::ZSet(z)) => Some(match count {
                None => z
                    .random_member(&mut state.rng)
                    .map(|(m, s)| vec![(m.to_vec(), s)])
                    .unwrap_or_default(),
                Some(n) if n < 0 => (0..n.unsigned_abs())
                    .filter_map(|_| {
                        z.random_member(&mut state.rng)
                            .map(|(m, s)| (m.to_vec(), s))
                    })
                    .collect(),
                Some(n) => {
                    let mut all: Vec<(Vec<u8>, f64)> =
                        z.iter().map(|(m, s)| (m.to_vec(), s)).collect();
                    all.shuffle(&mut state.rng);
                    all.truncate(n as usize);
                    all
                }
            }),
            Some(_) => return ctx.wrong_type(),
        }
    };
    match (count, picked) {
        (None, p) => ctx.bulk_opt(
            p.as_ref()
                .and_then(|p| p.first())
                .map(|(m, _)| m.as_slice()),
        ),
        (Some(_), p) => reply_members(ctx, &p.unwrap_or_default(), with_scores),
    }
}

fn zscan(ctx: &mut Ctx) {
    let args = ctx.args;
    let Some(options) = parse_scan(ctx, 2, false) else {
        return;
    };
    let (mut cursor, pattern, count) = (options.cursor, options.pattern, options.count);
    let Ok(z) = read_zset(ctx, &args[1]) else {
        return;
    };
    let mut found: Vec<(Vec<u8>, f64)> = Vec::new();
    match z {
        None => cursor = 0,
        Some(z) => {
            cursor = super::scan_loop(cursor, count, |c| {
                let next = z.scan_step(c, |m, s| {
                    if pattern.map_or(true, |p| glob_match(p, m, false)) {
                        found.push((m.to_vec(), s));
                    }
                });
                (next, found.len())
            });
        }
    }
    ctx.array(2);
    ctx.bulk(cursor.to_string().as_bytes());
    ctx.array(found.len() * 2);
    for (m, s) in found {
        ctx.bulk(&m);
        ctx.bulk(format_double(s).as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rank_ranges_clamp_like_redis() {
        assert_eq!(rank_range(0, -1, 5), Some((0, 4)));
        assert_eq!(rank_range(-100, 100, 5), Some((0, 4)));
        assert_eq!(rank_range(3, 1, 5), None);
        assert_eq!(rank_range(5, 10, 5), None);
        assert_eq!(rank_range(0, -6, 5), None);
    }

    #[test]
    fn bounds_parse() {
        assert_eq!(
            parse_score_bound(b"(1.5"),
            Some(ScoreBound {
                value: 1.5,
                exclusive: true
            })
        );
        assert_eq!(
            parse_score_bound(b"-inf"),
            Some(ScoreBound {
                value: f64::NEG_INFINITY,
                exclusive: false
            })
        );
        assert_eq!(parse_score_bound(b"x"), None);
        assert_eq!(
            parse_lex_bound(b"[a"),
            Some(LexBound::Inclusive(b"a".to_vec()))
        );
        assert_eq!(parse_lex_bound(b"a"), None);
    }
}
