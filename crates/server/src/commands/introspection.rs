//! COMMAND and its subcommands: the command table as clients see it.

use super::spec::flags::*;
use super::{table, CommandSpec, Ctx};
use moonkv_protocol::ReplySink;

pub static COMMANDS: &[CommandSpec] = &[CommandSpec::new("command", -1, LOADING | STALE, (0, 0, 0), "connection", command)
    .group("server")
    .subcommands(COMMAND_SUBCOMMANDS)];

static COMMAND_SUBCOMMANDS: &[CommandSpec] =
    &[CommandSpec::new("command|count", 2, LOADING | STALE, (0, 0, 0), "connection", command_count).group("server")];

fn command(ctx: &mut Ctx) {
    ctx.array(0);
}

fn command_count(ctx: &mut Ctx) {
    let n = table().top_level.len();
    ctx.integer(n as i64);
}
