//! SORT and SORT_RO: sort the elements of a list or set, numerically or lexically, optionally
//! by external keys (`BY weight_*`), returning elements or related values (`GET data_*`,
//! `GET #`), with LIMIT and STORE.

use super::spec::flags::*;
use super::{CommandSpec, Ctx};
use crate::notify::class;
use bytes::Bytes;
use moonkv_keyspace::{Db, End, List, StrView, Value};
use moonkv_protocol::number::parse_f64;
use moonkv_protocol::ReplySink;
use std::cmp::Ordering;

pub static COMMANDS: &[CommandSpec] = &[
    CommandSpec::new(
        "sort",
        -2,
        WRITE | DENYOOM,
        (1, 1, 1),
        "set sortedset list dangerous",
        sort,
    )
    .group("generic")
    .key_finder(sort_keys)
    .summary("Sort the elements of a list or set", "1.0.0"),
    CommandSpec::new(
        "sort_ro",
        -2,
        READONLY,
        (1, 1, 1),
        "set sortedset list dangerous",
        sort_ro,
    )
    .group("generic")
    .summary("Sort the elements of a list or set, read-only", "7.0.0"),
];

/// SORT's keys: the sorted key, and the STORE destination if any (the last STORE wins, as
/// it does when the command runs).
fn sort_keys(args: &[Bytes]) -> Result<Vec<usize>, String> {
    let mut keys = vec![1];
    let mut store = None;
    let mut i = 2;
    while i < args.len() {
        let word = args[i].to_ascii_lowercase();
        match word.as_slice() {
            b"store" if i + 1 < args.len() => {
                store = Some(i + 1);
                i += 2;
            }
            b"by" | b"get" => i += 2,
            b"limit" => i += 3,
            _ => i += 1,
        }
    }
    keys.extend(store);
    Ok(keys)
}

struct SortOptions {
    by: Option<Bytes>,
    gets: Vec<Bytes>,
    limit: Option<(i64, i64)>,
    desc: bool,
    alpha: bool,
    store: Option<Bytes>,
}

fn parse_options(ctx: &mut Ctx, read_only: bool) -> Option<SortOptions> {
    let args = ctx.args;
    let mut o = SortOptions {
        by: None,
        gets: Vec::new(),
        limit: None,
        desc: false,
        alpha: false,
        store: None,
    };
    let mut i = 2;
    while i < args.len() {
        let left = args.len() - i - 1;
        match ctx.arg_lower(i).as_str() {
            "asc" => o.desc = false,
            "desc" => o.desc = true,
            "alpha" => o.alpha = true,
            "limit" if left >= 2 => {
                let offset = ctx.arg_i64(i + 1)?;
                let count = ctx.arg_i64(i + 2)?;
                o.limit = Some((offset, count));
                i += 2;
            }
            "store" if left >= 1 && !read_only => {
                o.store = Some(args[i + 1].clone());
                i += 1;
            }
            "by" if left >= 1 => {
                o.by = Some(args[i + 1].clone());
                i += 1;
            }
            "get" if left >= 1 => {
                o.gets.push(args[i + 1].clone());
                i += 1;
            }
            _ => {
                ctx.syntax_error();
                return None;
            }
        }
        i += 1;
    }
    Some(o)
}

/// Resolves a BY/GET pattern for one element: `#` is the element itself; otherwise the first
/// `*` is replaced by the element and the resulting key is read (a string, or a hash field
/// after `->`).
fn lookup(db: &mut Db, pattern: &[u8], element: &[u8], now: i64) -> Option<Vec<u8>> {
    if pattern == b"#" {
        return Some(element.to_vec());
    }
    let star = pattern.iter().position(|&b| b == b'*')?;
    let arrow = pattern
        .windows(2)
        .rposition(|w| w == b"->")
        .filter(|&a| a > star && a + 2 < pattern.len());
    let key_pattern = match arrow {
        Some(a) => &pattern[..a],
        None => pattern,
    };
    let mut key = Vec::with_capacity(key_pattern.len() + element.len());
    key.extend_from_slice(&key_pattern[..star]);
    key.extend_from_slice(element);
    key.extend_from_slice(&key_pattern[star + 1..]);
    let value = db.peek(&key, now)?;
    match arrow {
        Some(a) => value.hash_field(&pattern[a + 2..]).map(<[u8]>::to_vec),
        None => value.as_str().map(StrView::to_vec),
    }
}

fn sort(ctx: &mut Ctx) {
    sort_generic(ctx, false);
}

fn sort_ro(ctx: &mut Ctx) {
    sort_generic(ctx, true);
}

fn sort_generic(ctx: &mut Ctx, read_only: bool) {
    let args = ctx.args;
    let Some(mut opts) = parse_options(ctx, read_only) else {
        return;
    };
    let now = ctx.now_ms;
    // BY without a `*` means "do not sort" (unless it is a hash field lookup of `#`).
    let mut dont_sort = opts.by.as_ref().is_some_and(|b| !b.contains(&b'*'));
    let mut is_set = false;
    let elements: Vec<Vec<u8>> = match ctx.db().get(&args[1], now) {
        None => Vec::new(),
        Some(Value::List(l)) => l.iter().map(<[u8]>::to_vec).collect(),
        Some(Value::Set(s)) => {
            is_set = true;
            s.iter().map(std::borrow::Cow::into_owned).collect()
        }
        Some(Value::ZSet(z)) => {
            // Unsorted, a sorted set keeps its own order, reversed by DESC.
            let mut members: Vec<Vec<u8>> = z.iter().map(|(m, _)| m.to_vec()).collect();
            if dont_sort && opts.desc {
                members.reverse();
            }
            members
        }
        Some(_) => return ctx.wrong_type(),
    };
    // A set has no order of its own: what is stored (and so replicated), or what a script
    // sees, must not depend on its layout, so Redis sorts it lexically after all.
    if dont_sort && is_set && (opts.store.is_some() || ctx.client.in_script) {
        dont_sort = false;
        opts.alpha = true;
        opts.by = None;
    }

    let mut items: Vec<(Vec<u8>, Option<Vec<u8>>)> = Vec::with_capacity(elements.len());
    {
        let db = ctx.db();
        for e in elements {
            let weight = match (&opts.by, dont_sort) {
                (Some(by), false) => lookup(db, by, &e, now),
                _ => None,
            };
            items.push((e, weight));
        }
    }
    if !dont_sort {
        let by_given = opts.by.is_some();
        let mut scores: Vec<f64> = Vec::with_capacity(items.len());
        if !opts.alpha {
            for (e, w) in &items {
                let source = if by_given {
                    w.as_deref()
                } else {
                    Some(e.as_slice())
                };
                match source {
                    None => scores.push(0.0),
                    Some(s) => match parse_f64(s) {
                        Some(f) => scores.push(f),
                        None => {
                            return ctx
                                .error("ERR One or more scores can't be converted into double")
                        }
                    },
                }
            }
        }
        let mut order: Vec<usize> = (0..items.len()).collect();
        order.sort_by(|&a, &b| {
            let primary = if opts.alpha {
                let (ka, kb) = if by_given {
                    (items[a].1.as_deref(), items[b].1.as_deref())
                } else {
                    (Some(&items[a].0[..]), Some(&items[b].0[..]))
                };
                ka.cmp(&kb)
            } else {
                scores[a].partial_cmp(&scores[b]).unwrap_or(Ordering::Equal)
            };
            // Ties are broken by the element itself so results are deterministic.
            let ordering = primary.then_with(|| items[a].0.cmp(&items[b].0));
            if opts.desc {
                ordering.reverse()
            } else {
                ordering
            }
        });
        let mut sorted: Vec<Option<(Vec<u8>, Option<Vec<u8>>)>> =
            items.into_iter().map(Some).collect();
        items = order.into_iter().filter_map(|i| sorted[i].take()).collect();
    }
    let (start, count) = match opts.limit {
        None => (0, items.len()),
        Some((offset, count)) => {
            let start = offset.clamp(0, items.len() as i64) as usize;
            let count = if count < 0 {
                items.len()
            } else {
                count as usize
            };
            (start, count.min(items.len() - start))
        }
    };
    let selected = &items[start..start + count];
    let mut output: Vec<Option<Vec<u8>>> = Vec::new();
    {
        let db = ctx.db();
        for (e, _) in selected {
            if opts.gets.is_empty() {
                output.push(Some(e.clone()));
            }
            for g in &opts.gets {
                output.push(lookup(db, g, e, now));
            }
        }
    }
    match opts.store {
        Some(dest) => {
            let mut list = List::new();
            for item in &output {
                list.push(End::Tail, item.as_deref().unwrap_or(b""));
            }
            let len = list.len();
            if len == 0 {
                if ctx.db().remove(&dest, now).is_some() {
                    ctx.notify(class::GENERIC, "del", &dest);
                }
            } else {
                ctx.db().set(&dest, Value::List(Box::new(list)), false);
                ctx.notify(class::LIST, "sortstore", &dest);
            }
            ctx.integer(len as i64);
        }
        None => {
            ctx.array(output.len());
            for item in output {
                ctx.bulk_opt(item.as_deref());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_destination_is_a_key() {
        let args: Vec<Bytes> = ["SORT", "src", "BY", "w_*", "STORE", "dst"]
            .iter()
            .map(|s| Bytes::from(*s))
            .collect();
        assert_eq!(sort_keys(&args).unwrap(), vec![1, 5]);
        let args: Vec<Bytes> = ["SORT", "abc", "STORE", "invalid", "STORE", "def"]
            .iter()
            .map(|s| Bytes::from(*s))
            .collect();
        assert_eq!(sort_keys(&args).unwrap(), vec![1, 5]);
    }

    #[test]
    fn patterns_substitute_the_element() {
        let mut db = Db::new();
        db.set(b"w_a", Value::string(b"3"), false);
        assert_eq!(lookup(&mut db, b"w_*", b"a", 0), Some(b"3".to_vec()));
        assert_eq!(lookup(&mut db, b"#", b"a", 0), Some(b"a".to_vec()));
        assert_eq!(lookup(&mut db, b"w_*", b"b", 0), None);
    }
}
