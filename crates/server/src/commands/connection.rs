//! Connection commands: PING, ECHO, QUIT, SELECT, AUTH, HELLO, RESET.

use super::spec::flags::*;
use super::{errors, CommandSpec, Ctx};
use crate::client::ReplyMode;
use moonkv_protocol::{Protocol, ReplySink};

pub static COMMANDS: &[CommandSpec] = &[
    CommandSpec::new("ping", -1, FAST, (0, 0, 0), "connection", ping).group("connection"),
    CommandSpec::new("echo", 2, FAST, (0, 0, 0), "connection", echo).group("connection"),
    CommandSpec::new(
        "quit",
        -1,
        ALLOW_BUSY | NO_AUTH | LOADING | STALE | FAST,
        (0, 0, 0),
        "connection",
        quit,
    )
    .group("connection"),
    CommandSpec::new(
        "select",
        2,
        LOADING | STALE | FAST,
        (0, 0, 0),
        "connection",
        select,
    )
    .group("connection"),
    CommandSpec::new(
        "auth",
        -2,
        NOSCRIPT | LOADING | STALE | FAST | NO_AUTH | SKIP_MONITOR | ALLOW_BUSY,
        (0, 0, 0),
        "connection",
        auth,
    )
    .group("connection"),
    CommandSpec::new(
        "hello",
        -1,
        NOSCRIPT | LOADING | STALE | FAST | NO_AUTH | ALLOW_BUSY,
        (0, 0, 0),
        "connection",
        hello,
    )
    .group("connection"),
    CommandSpec::new(
        "reset",
        1,
        NOSCRIPT | LOADING | STALE | FAST | NO_AUTH | ALLOW_BUSY,
        (0, 0, 0),
        "connection",
        reset,
    )
    .group("connection"),
];

fn ping(ctx: &mut Ctx) {
    if ctx.args.len() > 2 {
        return ctx.arity_error();
    }
    if ctx.client.in_pubsub_context() {
        ctx.array(2);
        ctx.bulk(b"pong");
        let payload = ctx.args.get(1).cloned().unwrap_or_default();
        ctx.bulk(&payload);
    } else if let Some(payload) = ctx.args.get(1).cloned() {
        ctx.bulk(&payload);
    } else {
        ctx.simple("PONG");
    }
}

fn echo(ctx: &mut Ctx) {
    let payload = ctx.args[1].clone();
    ctx.bulk(&payload);
}

fn quit(ctx: &mut Ctx) {
    ctx.client.close_after_reply = true;
    // QUIT always answers OK, even when replies are switched off.
    if ctx.client.reply_mode != ReplyMode::On {
        ctx.client.reply_mode = ReplyMode::On;
    }
    ctx.ok();
}

fn select(ctx: &mut Ctx) {
    let Some(index) = ctx.arg_i64(1) else { return };
    if index < 0 || index as usize >= ctx.state.dbs.len() {
        return ctx.error(errors::DB_INDEX);
    }
    ctx.client.db = index as usize;
    ctx.ok();
}

/// Checks a username/password pair against `requirepass` (the only user is `default`).
/// Returns the error to reply on failure.
fn check_credentials(ctx: &Ctx, user: &[u8], pass: &[u8]) -> Result<(), &'static str> {
    let valid = user == b"default"
        && match &ctx.state.settings.requirepass {
            Some(expected) => expected.as_slice() == pass,
            // Without requirepass the default user has `nopass`: any password is accepted.
            None => true,
        };
    if valid {
        Ok(())
    } else {
        Err("WRONGPASS invalid username-password pair or user is disabled.")
    }
}

fn auth(ctx: &mut Ctx) {
    let (user, pass) = match ctx.args.len() {
        2 => (b"default".as_slice(), &ctx.args[1][..]),
        3 => (&ctx.args[1][..], &ctx.args[2][..]),
        _ => return ctx.syntax_error(),
    };
    if ctx.args.len() == 2 && ctx.state.settings.requirepass.is_none() {
        return ctx.error(
            "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?",
        );
    }
    match check_credentials(ctx, user, pass) {
        Ok(()) => {
            ctx.client.authenticated = true;
            ctx.ok();
        }
        Err(e) => ctx.error(e),
    }
}

fn hello(ctx: &mut Ctx) {
    let mut protocol = ctx.client.protocol;
    let mut i = 1;
    if ctx.args.len() >= 2 {
        let Some(version) = moonkv_protocol::number::parse_i64(&ctx.args[1]) else {
            return ctx.error("ERR Protocol version is not an integer or out of range");
        };
        protocol = match version {
            2 => Protocol::Resp2,
            3 => Protocol::Resp3,
            _ => return ctx.error("NOPROTO unsupported protocol version"),
        };
        i = 2;
    }
    let mut setname = None;
    let mut credentials = None;
    while i < ctx.args.len() {
        let more = ctx.args.len() - i - 1;
        if ctx.arg_is(i, "auth") && more >= 2 {
            credentials = Some((ctx.args[i + 1].clone(), ctx.args[i + 2].clone()));
            i += 3;
        } else if ctx.arg_is(i, "setname") && more >= 1 {
            setname = Some(ctx.args[i + 1].clone());
            i += 2;
        } else {
            let msg = format!(
                "ERR Syntax error in HELLO option '{}'",
                String::from_utf8_lossy(&ctx.args[i])
            );
            return ctx.error(&msg);
        }
    }
    if let Some((user, pass)) = &credentials {
        if let Err(e) = check_credentials(ctx, user, pass) {
            return ctx.error(e);
        }
        ctx.client.authenticated = true;
    }
    if !ctx.client.authenticated && ctx.state.settings.requirepass.is_some() {
        return ctx.error(
            "NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time",
        );
    }
    if let Some(name) = setname {
        if let Err(e) = super::server_admin::validate_client_name(&name) {
            return ctx.error(e);
        }
        ctx.client.name = (!name.is_empty()).then_some(name);
    }
    ctx.client.protocol = protocol;
    // The reply itself is already in the new protocol, as in Redis.
    ctx.set_protocol(protocol);
    ctx.map(7);
    ctx.bulk(b"server");
    ctx.bulk(b"redis");
    ctx.bulk(b"version");
    ctx.bulk(crate::REDIS_VERSION.as_bytes());
    ctx.bulk(b"proto");
    ctx.integer(if protocol == Protocol::Resp3 { 3 } else { 2 });
    ctx.bulk(b"id");
    ctx.integer(ctx.client.id as i64);
    ctx.bulk(b"mode");
    ctx.bulk(b"standalone");
    ctx.bulk(b"role");
    ctx.bulk(b"master");
    ctx.bulk(b"modules");
    ctx.array(0);
}

fn reset(ctx: &mut Ctx) {
    super::transactions::discard_transaction(ctx.state, ctx.client);
    super::pubsub::unsubscribe_all(ctx.state, ctx.client);
    ctx.state.monitors.remove(&ctx.client.id);
    ctx.client.monitor = false;
    ctx.client.db = 0;
    ctx.client.name = None;
    ctx.client.reply_mode = ReplyMode::On;
    ctx.client.no_evict = false;
    ctx.client.protocol = Protocol::Resp2;
    ctx.set_protocol(Protocol::Resp2);
    ctx.client.authenticated = ctx.state.settings.requirepass.is_none();
    ctx.simple("RESET");
}
