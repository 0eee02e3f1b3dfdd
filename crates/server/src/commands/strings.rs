//! String commands: GET, SET and friends, counters, ranges, bit operations.

use super::spec::flags::*;
use super::{CommandSpec, Ctx};
use moonkv_keyspace::{StrView, Value};
use moonkv_protocol::ReplySink;

pub static COMMANDS: &[CommandSpec] = &[
    CommandSpec::new("get", 2, READONLY | FAST, (1, 1, 1), "string", get).group("string"),
    CommandSpec::new("set", -3, WRITE | DENYOOM, (1, 1, 1), "string", set).group("string"),
];

fn get(ctx: &mut Ctx) {
    let now = ctx.now_ms;
    let key = ctx.args[1].clone();
    let view = match ctx.db().get(&key, now) {
        None => return ctx.null(),
        Some(v) => match v.as_str() {
            None => return ctx.wrong_type(),
            Some(StrView::Int(i)) => Err(i),
            Some(StrView::Bytes(b)) => Ok(b.to_vec()),
        },
    };
    match view {
        Ok(bytes) => ctx.bulk(&bytes),
        Err(i) => ctx.bulk_int(i),
    }
}

fn set(ctx: &mut Ctx) {
    let key = ctx.args[1].clone();
    let value = Value::string(&ctx.args[2]);
    ctx.db().set(&key, value, false);
    ctx.ok();
}
