//! Generic key commands: DEL, EXISTS, TYPE, KEYS, SCAN, RENAME, EXPIRE family, OBJECT, ...

use super::spec::flags::*;
use super::{CommandSpec, Ctx};
use moonkv_protocol::ReplySink;

pub static COMMANDS: &[CommandSpec] = &[
    CommandSpec::new("del", -2, WRITE, (1, -1, 1), "keyspace", del).group("generic"),
    CommandSpec::new("exists", -2, READONLY | FAST, (1, -1, 1), "keyspace", exists).group("generic"),
];

fn del(ctx: &mut Ctx) {
    let now = ctx.now_ms;
    let mut removed = 0;
    for i in 1..ctx.args.len() {
        let key = ctx.args[i].clone();
        if ctx.db().remove(&key, now).is_some() {
            removed += 1;
        }
    }
    ctx.integer(removed);
}

fn exists(ctx: &mut Ctx) {
    let now = ctx.now_ms;
    let mut count = 0;
    for i in 1..ctx.args.len() {
        let key = ctx.args[i].clone();
        if ctx.db().exists(&key, now) {
            count += 1;
        }
    }
    ctx.integer(count);
}
