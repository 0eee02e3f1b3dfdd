//! CLIENT: a connection's view of itself and of the other clients.

use super::spec::flags::*;
use super::{CommandSpec, Ctx};
use crate::blocking::Release;
use crate::client::{ClientEntry, ReplyMode};
use moonkv_protocol::number::parse_i64;
use moonkv_protocol::ReplySink;

const fn client_cmd(
    name: &'static str,
    arity: i32,
    flags: u32,
    handler: super::Handler,
) -> CommandSpec {
    CommandSpec::new(name, arity, flags, (0, 0, 0), "connection", handler).group("connection")
}

pub static COMMANDS: &[CommandSpec] = &[CommandSpec::new(
    "client",
    -2,
    0,
    (0, 0, 0),
    "",
    super::server_admin::container_help,
)
.group("connection")
.subcommands(SUBCOMMANDS)];

static SUBCOMMANDS: &[CommandSpec] = &[
    client_cmd("client|id", 2, NOSCRIPT | LOADING | STALE, id)
        .summary("The current connection's id", "5.0.0"),
    client_cmd("client|setname", 3, NOSCRIPT | LOADING | STALE, setname)
        .summary("Name the current connection", "2.6.9"),
    client_cmd("client|getname", 2, NOSCRIPT | LOADING | STALE, getname)
        .summary("The current connection's name", "2.6.9"),
    client_cmd("client|list", -2, ADMIN | NOSCRIPT | LOADING | STALE, list)
        .summary("Lists client connections", "2.4.0"),
    client_cmd("client|info", 2, NOSCRIPT | LOADING | STALE, info)
        .summary("The current connection's details", "6.2.0"),
    client_cmd("client|kill", -3, ADMIN | NOSCRIPT | LOADING | STALE, kill)
        .summary("Closes client connections", "2.4.0"),
    client_cmd("client|reply", 3, NOSCRIPT | LOADING | STALE, reply)
        .summary("Switches replies on or off", "3.2.0"),
    client_cmd(
        "client|no-evict",
        3,
        ADMIN | NOSCRIPT | LOADING | STALE,
        no_evict,
    )
    .summary("Exempts the connection from client eviction", "7.0.0"),
    client_cmd(
        "client|unblock",
        -3,
        ADMIN | NOSCRIPT | LOADING | STALE,
        unblock,
    )
    .summary("Unblocks a client blocked by a blocking command", "5.0.0"),
    client_cmd("client|getredir", 2, NOSCRIPT | LOADING | STALE, getredir)
        .summary("Where tracking notifications go", "6.0.0"),
    client_cmd("client|help", 2, LOADING | STALE, help).summary("Help for CLIENT", "5.0.0"),
];

fn id(ctx: &mut Ctx) {
    let id = ctx.client.id as i64;
    ctx.integer(id);
}

fn setname(ctx: &mut Ctx) {
    let name = ctx.args[2].clone();
    if let Err(e) = super::server_admin::validate_client_name(&name) {
        return ctx.error(e);
    }
    ctx.client.name = (!name.is_empty()).then_some(name);
    ctx.ok();
}

fn getname(ctx: &mut Ctx) {
    let name = ctx.client.name.clone();
    ctx.bulk_opt(name.as_deref());
}

/// The CLIENT LIST `TYPE` filter.
fn matches_type(entry: &ClientEntry, ty: &str) -> bool {
    match ty {
        "normal" => !entry.replica && !entry.primary && entry.sub + entry.psub == 0,
        "pubsub" => entry.sub + entry.psub > 0,
        "replica" | "slave" => entry.replica,
        "master" => entry.primary,
        _ => false,
    }
}

fn valid_type(ty: &str) -> bool {
    matches!(ty, "normal" | "master" | "replica" | "slave" | "pubsub")
}

fn list(ctx: &mut Ctx) {
    let args = ctx.args;
    let mut ty: Option<String> = None;
    let mut ids: Option<Vec<u64>> = None;
    let mut i = 2;
    while i < args.len() {
        if ctx.arg_is(i, "type") && i + 1 < args.len() {
            let t = ctx.arg_lower(i + 1);
            if !valid_type(&t) {
                let msg = format!(
                    "ERR Unknown client type '{}'",
                    String::from_utf8_lossy(&args[i + 1])
                );
                return ctx.error(&msg);
            }
            ty = Some(t);
            i += 2;
        } else if ctx.arg_is(i, "id") && i + 1 < args.len() {
            let mut wanted = Vec::new();
            for a in &args[i + 1..] {
                match parse_i64(a) {
                    Some(n) if n > 0 => wanted.push(n as u64),
                    _ => return ctx.error("ERR Invalid client ID"),
                }
            }
            ids = Some(wanted);
            i = args.len();
        } else {
            return ctx.syntax_error();
        }
    }
    let now = ctx.now_ms;
    super::publish_client_state(ctx.state, ctx.client);
    let mut entries: Vec<&ClientEntry> = ctx
        .state
        .clients
        .values()
        .filter(|e| ty.as_deref().map_or(true, |t| matches_type(e, t)))
        .filter(|e| ids.as_ref().map_or(true, |ids| ids.contains(&e.id)))
        .collect();
    entries.sort_by_key(|e| e.id);
    let mut text = String::new();
    for e in entries {
        text.push_str(&e.info_line(now));
        text.push('\n');
    }
    ctx.verbatim("txt", text.as_bytes());
}

fn info(ctx: &mut Ctx) {
    let now = ctx.now_ms;
    super::publish_client_state(ctx.state, ctx.client);
    let line = match ctx.state.clients.get(&ctx.client.id) {
        Some(e) => e.info_line(now) + "\n",
        None => String::new(),
    };
    ctx.verbatim("txt", line.as_bytes());
}

/// Filters of CLIENT KILL's new form.
#[derive(Default)]
struct KillFilter {
    id: Option<u64>,
    addr: Option<String>,
    laddr: Option<String>,
    ty: Option<String>,
    skip_me: bool,
    max_age: Option<i64>,
}

fn kill(ctx: &mut Ctx) {
    let args = ctx.args;
    // Old form: CLIENT KILL addr:port, answers OK or an error.
    if args.len() == 3 {
        let addr = String::from_utf8_lossy(&args[2]).into_owned();
        let target = ctx
            .state
            .clients
            .values()
            .find(|e| e.addr == addr)
            .map(|e| e.id);
        return match target {
            Some(id) => {
                close_client(ctx, id);
                ctx.ok()
            }
            None => ctx.error("ERR No such client"),
        };
    }
    let mut filter = KillFilter {
        skip_me: true,
        ..Default::default()
    };
    let mut i = 2;
    while i < args.len() {
        if i + 1 >= args.len() {
            return ctx.syntax_error();
        }
        let value = String::from_utf8_lossy(&args[i + 1]).into_owned();
        match ctx.arg_lower(i).as_str() {
            "id" => match parse_i64(&args[i + 1]) {
                Some(n) if n > 0 => filter.id = Some(n as u64),
                _ => return ctx.error("ERR client-id should be greater than 0"),
            },
            "addr" => filter.addr = Some(value),
            "laddr" => filter.laddr = Some(value),
            "type" => {
                let t = value.to_ascii_lowercase();
                if !valid_type(&t) {
                    return ctx.error(&format!("ERR Unknown client type '{}'", value));
                }
                filter.ty = Some(t);
            }
            "user" => {
                if value != "default" {
                    return ctx.error(&format!("ERR No such user '{}'", value));
                }
            }
            "skipme" => match value.to_ascii_lowercase().as_str() {
                "yes" => filter.skip_me = true,
                "no" => filter.skip_me = false,
                _ => return ctx.syntax_error(),
            },
            "maxage" => match parse_i64(&args[i + 1]) {
                Some(n) => filter.max_age = Some(n),
                None => return ctx.syntax_error(),
            },
            _ => return ctx.syntax_error(),
        }
        i += 2;
    }
    let now = ctx.now_ms;
    let me = ctx.client.id;
    let targets: Vec<u64> = ctx
        .state
        .clients
        .values()
        .filter(|e| filter.id.map_or(true, |id| e.id == id))
        .filter(|e| filter.addr.as_ref().map_or(true, |a| &e.addr == a))
        .filter(|e| filter.laddr.as_ref().map_or(true, |a| &e.laddr == a))
        .filter(|e| filter.ty.as_deref().map_or(true, |t| matches_type(e, t)))
        .filter(|e| {
            filter
                .max_age
                .map_or(true, |age| (now - e.created_ms) / 1000 >= age)
        })
        .filter(|e| !(filter.skip_me && e.id == me))
        .map(|e| e.id)
        .collect();
    for &id in &targets {
        close_client(ctx, id);
    }
    ctx.integer(targets.len() as i64);
}

/// Closes a client: another one through its channel, this one after its reply is written.
fn close_client(ctx: &mut Ctx, id: u64) {
    if id == ctx.client.id {
        ctx.client.close_after_reply = true;
    } else if let Some(entry) = ctx.state.clients.get(&id) {
        // Also a client stuck in a write to a peer that stopped reading.
        entry.close_now();
    }
}

fn reply(ctx: &mut Ctx) {
    match ctx.arg_lower(2).as_str() {
        "on" => {
            ctx.client.reply_mode = ReplyMode::On;
            ctx.ok();
        }
        "off" => ctx.client.reply_mode = ReplyMode::Off,
        "skip" => {
            if ctx.client.reply_mode != ReplyMode::Off {
                ctx.client.reply_mode = ReplyMode::SkipNext;
            }
        }
        _ => ctx.syntax_error(),
    }
}

fn no_evict(ctx: &mut Ctx) {
    match ctx.arg_lower(2).as_str() {
        "on" => ctx.client.no_evict = true,
        "off" => ctx.client.no_evict = false,
        _ => return ctx.syntax_error(),
    }
    ctx.ok();
}

fn unblock(ctx: &mut Ctx) {
    let Some(id) = ctx.arg_i64(2) else { return };
    let how = match ctx.args.len() {
        3 => Release::Timeout,
        4 if ctx.arg_is(3, "timeout") => Release::Timeout,
        4 if ctx.arg_is(3, "error") => Release::Error,
        4 => return ctx.error("ERR CLIENT UNBLOCK reason should be TIMEOUT or ERROR"),
        _ => return ctx.syntax_error(),
    };
    let done = u64::try_from(id).is_ok_and(|id| crate::blocking::unblock(ctx.state, id, how));
    ctx.integer(done as i64);
}

fn getredir(ctx: &mut Ctx) {
    // Client-side caching is not implemented, so there is never a redirection.
    ctx.integer(-1);
}

fn help(ctx: &mut Ctx) {
    super::server_admin::reply_help(
        ctx,
        "CLIENT",
        &[
            "GETNAME",
            "    The name of this connection.",
            "ID",
            "    The id of this connection.",
            "INFO",
            "    Details about this connection.",
            "KILL <ip:port> | <option> <value> [...]",
            "    Close connections matching an address, or filters: ID, ADDR, LADDR, TYPE, USER, SKIPME, MAXAGE.",
            "LIST [TYPE (NORMAL|MASTER|REPLICA|PUBSUB)] [ID <id> ...]",
            "    Details about client connections.",
            "NO-EVICT (ON|OFF)",
            "    Protect this connection from client eviction.",
            "REPLY (ON|OFF|SKIP)",
            "    Switch replies off, on, or off for the next command only.",
            "SETNAME <name>",
            "    Name this connection.",
            "UNBLOCK <clientid> [TIMEOUT|ERROR]",
            "    Unblock the specified blocked client.",
        ],
    );
}
