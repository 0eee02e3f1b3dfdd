//! MEMORY: how much memory keys and the server use.

use super::spec::flags::*;
use super::{CommandSpec, Ctx};
use moonkv_keyspace::Value;
use moonkv_protocol::ReplySink;

pub static COMMANDS: &[CommandSpec] = &[CommandSpec::new(
    "memory",
    -2,
    0,
    (0, 0, 0),
    "",
    super::server_admin::container_help,
)
.group("server")
.subcommands(SUBCOMMANDS)];

static SUBCOMMANDS: &[CommandSpec] = &[
    CommandSpec::new("memory|usage", -3, READONLY, (2, 2, 1), "keyspace", usage)
        .group("server")
        .summary("Estimated bytes a key and its value use", "4.0.0"),
    CommandSpec::new("memory|doctor", 2, 0, (0, 0, 0), "", doctor)
        .group("server")
        .summary("Memory problems report", "4.0.0"),
    CommandSpec::new("memory|help", 2, LOADING | STALE, (0, 0, 0), "", help)
        .group("server")
        .summary("Help for MEMORY", "4.0.0"),
];

/// Bytes of the table node holding a key (key inline up to 23 bytes, value, chain link) plus
/// its bucket slot.
const ENTRY_OVERHEAD: usize = 64 + 8;
const INLINE_BYTES: usize = 23;

/// Heap bytes for a byte string stored in a node or collection.
fn string_heap(len: usize) -> usize {
    if len <= INLINE_BYTES {
        0
    } else {
        len
    }
}

/// Estimated bytes used by one key and its value.
pub fn estimate(key: &[u8], value: &Value) -> usize {
    let value_bytes = match value {
        Value::Int(_) => 0,
        Value::Str(_) => value.as_str().map_or(0, |v| string_heap(v.len())),
        Value::Raw(v) => v.capacity(),
        Value::List(list) => 32 + list.allocated_bytes(),
        Value::Set(set) => {
            48 + set
                .iter()
                .map(|m| ENTRY_OVERHEAD + string_heap(m.len()))
                .sum::<usize>()
        }
        Value::ZSet(z) => {
            64 + z.index_bytes()
                + z.iter()
                    .map(|(m, _)| ENTRY_OVERHEAD + string_heap(m.len()))
                    .sum::<usize>()
        }
        Value::Hash(hash) => {
            48 + hash
                .iter()
                .map(|(f, v)| ENTRY_OVERHEAD + string_heap(f.len()) + string_heap(v.len()))
                .sum::<usize>()
        }
    };
    ENTRY_OVERHEAD + string_heap(key.len()) + value_bytes
}

fn usage(ctx: &mut Ctx) {
    let args = ctx.args;
    if args.len() > 3 && !(args.len() == 5 && ctx.arg_is(3, "samples")) {
        return ctx.syntax_error();
    }
    if args.len() == 5 && ctx.arg_i64(4).is_none() {
        return;
    }
    let now = ctx.now_ms;
    match ctx.db().peek(&args[2], now) {
        Some(v) => {
            let bytes = estimate(&args[2], v);
            ctx.integer(bytes as i64)
        }
        None => ctx.null(),
    }
}

fn doctor(ctx: &mut Ctx) {
    ctx.verbatim("txt", b"No memory problems detected.");
}

fn help(ctx: &mut Ctx) {
    super::server_admin::reply_help(
        ctx,
        "MEMORY",
        &[
            "DOCTOR",
            "    A report on memory problems.",
            "USAGE <key> [SAMPLES <count>]",
            "    Estimated bytes used by <key> and its value.",
        ],
    );
}
