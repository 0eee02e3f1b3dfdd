//! FUNCTION commands (Redis 7 Functions). The function engine arrives with scripting; until
//! then the library registry is always empty, and FLUSH (which test suites and tools call to
//! reset a server) empties it.

use super::spec::flags::*;
use super::{CommandSpec, Ctx};
use moonkv_protocol::ReplySink;

pub static COMMANDS: &[CommandSpec] =
    &[CommandSpec::new("function", -2, 0, (0, 0, 0), "", super::server_admin::container_help).group("scripting").subcommands(SUBCOMMANDS)];

static SUBCOMMANDS: &[CommandSpec] = &[CommandSpec::new("function|flush", -2, WRITE | NOSCRIPT, (0, 0, 0), "scripting", function_flush)
    .group("scripting")
    .summary("Deletes all libraries", "7.0.0")];

fn function_flush(ctx: &mut Ctx) {
    match ctx.args.len() {
        2 => {}
        3 if ctx.arg_is(2, "async") || ctx.arg_is(2, "sync") => {}
        3 => return ctx.error("ERR FUNCTION FLUSH only supports SYNC|ASYNC option"),
        _ => return ctx.syntax_error(),
    }
    ctx.ok();
}
