//! DEBUG: developer and test-suite hooks. Only available when `enable-debug-command` allows it,
//! as in Redis.

use super::spec::flags::*;
use super::{errors, CommandSpec, Ctx};
use moonkv_keyspace::{StrView, Value};
use moonkv_protocol::number::parse_f64;
use moonkv_protocol::{Protocol, ReplySink};
use std::hash::{BuildHasher, Hasher};

pub static COMMANDS: &[CommandSpec] = &[CommandSpec::new(
    "debug",
    -2,
    ADMIN | NOSCRIPT | LOADING | STALE,
    (0, 0, 0),
    "",
    debug,
)
.group("server")
.summary("Debugging and testing helpers", "1.0.0")];

const NOT_ALLOWED: &str = "ERR DEBUG command not allowed. If the enable-debug-command option is set to \"local\", you can run it from a local connection, otherwise you need to set this option in the configuration file, and then restart the server.";

fn debug(ctx: &mut Ctx) {
    if !ctx.state.settings.debug_command_enabled {
        return ctx.error(NOT_ALLOWED);
    }
    let sub = ctx.arg_lower(1);
    match sub.as_str() {
        "help" => help(ctx),
        "sleep" if ctx.args.len() == 3 => sleep(ctx),
        "set-active-expire" if ctx.args.len() == 3 => {
            ctx.state.active_expire_enabled = ctx.arg(2) != b"0";
            ctx.ok();
        }
        "replicate" if ctx.args.len() >= 3 => {
            // Puts a command on the replication stream as it is, without running it here
            // (Redis's hook for testing how replicas take a command they cannot run).
            if ctx.state.replication.active() {
                let parts: Vec<&[u8]> = ctx.args[2..].iter().map(|a| &a[..]).collect();
                let db = ctx.client.db;
                crate::replication::feed_now(ctx.state, db, &parts);
            }
            ctx.ok();
        }
        "aof-flush-sleep" if ctx.args.len() == 3 => {
            if let Some(us) = ctx.arg_i64(2) {
                ctx.state.aof.flush_sleep_us = us.max(0) as u64;
                ctx.ok();
            }
        }
        "set-skip-checksum-validation" if ctx.args.len() == 3 => {
            ctx.state.skip_checksum_validation = ctx.arg(2) != b"0";
            ctx.ok();
        }
        "set-disable-deny-scripts" if ctx.args.len() == 3 => {
            // Lets scripts call commands flagged noscript (Redis's test hook).
            ctx.state.scripting.allow_noscript_commands = ctx.arg(2) != b"0";
            ctx.ok();
        }
        "lua-panic-next" if ctx.args.len() == 2 => {
            // moonkv's test hook: the next Lua library function a script calls panics, to
            // check that a panic in the Lua layer is contained.
            let scripting = &ctx.state.scripting;
            for vm in [&scripting.eval_vm, &scripting.functions_vm]
                .into_iter()
                .flatten()
            {
                vm.panic_in_next_library_call();
            }
            ctx.ok();
        }
        "object" if ctx.args.len() == 3 => object(ctx),
        "protocol" if ctx.args.len() == 3 => protocol(ctx),
        "log" if ctx.args.len() == 3 => {
            crate::log::warning(&format!(
                "DEBUG LOG: {}",
                String::from_utf8_lossy(ctx.arg(2))
            ));
            ctx.ok();
        }
        "digest" if ctx.args.len() == 2 => digest(ctx),
        "digest-value" => digest_value(ctx),
        "change-repl-id" | "jmap" if ctx.args.len() == 2 => ctx.ok(),
        "reload" => reload(ctx),
        "loadaof" if ctx.args.len() == 2 => loadaof(ctx),
        "populate" if (3..=5).contains(&ctx.args.len()) => populate(ctx),
        // Sets the element size above which Redis stores a list element in its own node.
        // moonkv's lists have no such nodes, so only the argument is checked.
        "quicklist-packed-threshold" if ctx.args.len() == 3 => {
            match std::str::from_utf8(ctx.arg(2))
                .ok()
                .and_then(crate::config::parse_memory)
            {
                Some(n) if (0..=(1 << 32) - (1 << 20)).contains(&n) => ctx.ok(),
                _ => ctx.error(
                    "ERR argument must be a memory value bigger than 1 and smaller than 4gb",
                ),
            }
        }
        _ => {
            let msg = format!(
                "ERR unknown subcommand or wrong number of arguments for '{}'. Try DEBUG HELP.",
                String::from_utf8_lossy(ctx.arg(1))
            );
            ctx.error(&msg)
        }
    }
}

/// DEBUG RELOAD [MERGE] [NOFLUSH] [NOSAVE]: saves the snapshot file (unless NOSAVE) and loads
/// it back, as a restart would. NOFLUSH loads over what is there (failing before any change,
/// where Redis fails halfway, when a key or library already exists); MERGE lets loaded keys
/// and libraries replace existing ones.
fn reload(ctx: &mut Ctx) {
    use crate::persist::snapshot::{self, Install};
    let (mut merge, mut flush, mut save) = (false, true, true);
    for i in 2..ctx.args.len() {
        match ctx.arg_lower(i).as_str() {
            "merge" => merge = true,
            "noflush" => flush = false,
            "nosave" => save = false,
            _ => {
                return ctx
                    .error("ERR DEBUG RELOAD only supports the MERGE, NOFLUSH and NOSAVE options.")
            }
        }
    }
    if save && snapshot::save(ctx.state).is_err() {
        return ctx.error("ERR");
    }
    let file_name = ctx.state.config.get("dbfilename").to_string();
    let loaded = std::fs::read(&file_name)
        .map_err(|e| {
            format!(
                "Fatal error loading the DB: {}",
                crate::persist::strerror(&e)
            )
        })
        .and_then(|data| {
            moonkv_persistence::rdb::read_snapshot(&data, &ctx.state.settings.load_limits())
                .map_err(|e| snapshot::load_error_text(&e))
        });
    let how = match (flush, merge) {
        (true, _) => Install::Replace,
        (false, true) => Install::Merge,
        (false, false) => Install::AddOnly,
    };
    let now = ctx.now_ms;
    let dirty = dirty_counters(ctx);
    let result = loaded.and_then(|snapshot| snapshot::install(ctx.state, snapshot, how, now));
    restore_dirty_counters(ctx, dirty);
    if let Err(e) = result {
        crate::log::warning(&e);
        return ctx.error("ERR Error trying to load the RDB dump");
    }
    crate::log::warning("DB reloaded by DEBUG RELOAD");
    ctx.ok();
}

/// The change counters of the databases. Reloading the dataset from a file changes nothing
/// a replica or the append-only file must hear of (replaying "DEBUG RELOAD" from the AOF
/// would reload forever), so the counters are put back afterwards, as Redis leaves its
/// `dirty` alone there.
fn dirty_counters(ctx: &mut Ctx) -> (Vec<u64>, u64) {
    let dbs = ctx.state.dbs.iter().map(|db| db.stats.dirty).collect();
    (dbs, ctx.state.server_dirty)
}

fn restore_dirty_counters(ctx: &mut Ctx, (dbs, server): (Vec<u64>, u64)) {
    for (db, dirty) in ctx.state.dbs.iter_mut().zip(dbs) {
        db.stats.dirty = dirty;
    }
    ctx.state.server_dirty = server;
    ctx.state.persistence.dirty_at_last_save = ctx
        .state
        .persistence
        .dirty_at_last_save
        .min(ctx.state.dirty());
}

/// DEBUG LOADAOF: makes the append-only file durable, empties the dataset and loads it back
/// from the file, as a restart would.
fn loadaof(ctx: &mut Ctx) {
    let dirty = dirty_counters(ctx);
    crate::persist::aof::flush_and_sync(ctx.state);
    crate::persist::snapshot::empty_dataset(ctx.state, ctx.now_ms);
    // Clients are answered -LOADING meanwhile, as at start-up.
    crate::persist::loading::start(ctx.state);
    let loaded = crate::persist::aof::load(ctx.state);
    crate::persist::loading::stop(ctx.state);
    if loaded.is_err() {
        // As Redis, which exits: the dataset is gone and the file cannot give it back.
        crate::log::warning("DEBUG LOADAOF could not load the append only file. Exiting.");
        std::process::exit(1);
    }
    restore_dirty_counters(ctx, dirty);
    crate::log::warning("Append Only File loaded by DEBUG LOADAOF");
    ctx.ok();
}

/// DEBUG POPULATE count [prefix] [size]: creates `prefix:N` keys (default prefix `key`) for
/// N below count, skipping keys that exist, with the value `value:N`, zero-padded or cut to
/// `size` bytes when a size is given.
fn populate(ctx: &mut Ctx) {
    let count = match moonkv_protocol::number::parse_i64(ctx.arg(2)) {
        Some(n) if n >= 0 => n as u64,
        _ => return ctx.error("ERR value is out of range, must be positive"),
    };
    let prefix = if ctx.args.len() > 3 {
        ctx.arg(3).to_vec()
    } else {
        b"key".to_vec()
    };
    let size = if ctx.args.len() > 4 {
        match moonkv_protocol::number::parse_i64(ctx.arg(4)) {
            Some(n) if n >= 0 => Some(n as usize),
            _ => return ctx.error("ERR value is out of range, must be positive"),
        }
    } else {
        None
    };
    let now = ctx.now_ms;
    let db = ctx.db();
    let mut key = Vec::with_capacity(prefix.len() + 21);
    for i in 0..count {
        key.clear();
        key.extend_from_slice(&prefix);
        key.push(b':');
        key.extend_from_slice(i.to_string().as_bytes());
        if db.exists(&key, now) {
            continue;
        }
        let mut value = format!("value:{}", i).into_bytes();
        if let Some(size) = size {
            value.resize(size, 0);
        }
        db.set(&key, moonkv_keyspace::Value::string(&value), false);
    }
    ctx.ok();
}

fn help(ctx: &mut Ctx) {
    super::server_admin::reply_help(
        ctx,
        "DEBUG",
        &[
            "DIGEST",
            "    A hash of the whole dataset.",
            "DIGEST-VALUE <key> [<key> ...]",
            "    A hash of the value of each key.",
            "LOG <message>",
            "    Write <message> to the server log.",
            "LUA-PANIC-NEXT",
            "    Make the next Lua library function a script calls panic (a test of panic containment).",
            "OBJECT <key>",
            "    Low level details of the value at <key>.",
            "RELOAD",
            "    Save the dataset to an RDB image and load it back.",
            "LOADAOF",
            "    Same as RELOAD until the append only file exists.",
            "PROTOCOL <type>",
            "    Reply with a sample of a protocol type (string, integer, double, bignum, null, array, set, map, attrib, push, verbatim, true, false).",
            "AOF-FLUSH-SLEEP <microsec>",
            "    Sleep that long before each write to the append-only file (a test hook).",
            "SET-ACTIVE-EXPIRE <0|1>",
            "    Switch the active expiry cycle off or on.",
            "SET-SKIP-CHECKSUM-VALIDATION <0|1>",
            "    Skip (1) or make (0) the checksum checks of RDB files and RESTORE payloads.",
            "SLEEP <seconds>",
            "    Block the server for <seconds> (decimals allowed).",
        ],
    );
}

/// Blocks command execution like Redis's DEBUG SLEEP: the server lock is held meanwhile. The
/// runtime thread is handed over first (`block_in_place`), so connections keep being accepted
/// and replies already computed keep being written while this command runs.
fn sleep(ctx: &mut Ctx) {
    let Some(secs) = parse_f64(ctx.arg(2)) else {
        return ctx.error(errors::NOT_FLOAT);
    };
    if secs > 0.0 {
        let duration = std::time::Duration::from_secs_f64(secs.min(3600.0));
        match tokio::runtime::Handle::try_current() {
            Ok(_) => tokio::task::block_in_place(|| std::thread::sleep(duration)),
            Err(_) => std::thread::sleep(duration),
        }
    }
    ctx.ok();
}

fn object(ctx: &mut Ctx) {
    let args = ctx.args;
    // Like Redis, DEBUG OBJECT looks at the key as stored: a key whose time is up but that
    // was not yet deleted is still shown (and not deleted).
    let Some(value) = ctx.db().peek_stored(&args[2]) else {
        return ctx.error(errors::NO_SUCH_KEY);
    };
    // The value's address identifies it (it stays put while the key exists), which is what
    // tests read this field for.
    let address = value as *const Value as usize;
    let serialized = value.as_str().map_or(0, StrView::len);
    let refcount = match value {
        Value::Int(i) if (0..10_000).contains(i) => i32::MAX as i64,
        _ => 1,
    };
    let line = format!(
        "Value at:0x{:x} refcount:{} encoding:{} serializedlength:{} lru:0 lru_seconds_idle:0",
        address,
        refcount,
        value.encoding(),
        serialized
    );
    ctx.simple(&line);
}

fn protocol(ctx: &mut Ctx) {
    let kind = ctx.arg_lower(2);
    let resp3 = ctx.protocol() == Protocol::Resp3;
    match kind.as_str() {
        "string" => ctx.bulk(b"Hello World"),
        "integer" => ctx.integer(12345),
        "double" => ctx.double(3.141),
        "bignum" => ctx.big_number("1234567999999999999999999999999999999"),
        "null" => ctx.null(),
        "array" => {
            ctx.array(3);
            (0..3).for_each(|i| ctx.integer(i));
        }
        "set" => {
            ctx.set(3);
            (0..3).for_each(|i| ctx.integer(i));
        }
        "map" => {
            ctx.map(3);
            for i in 0..3 {
                ctx.integer(i);
                ctx.boolean(i == 1);
            }
        }
        "attrib" => {
            if resp3 {
                ctx.attribute(1);
                ctx.bulk(b"key-popularity");
                ctx.array(2);
                ctx.bulk(b"key:123");
                ctx.integer(90);
            }
            ctx.bulk(b"Some real reply following the attribute");
        }
        "push" => {
            if !resp3 {
                return ctx.error("ERR RESP2 is not supported by this command");
            }
            ctx.push(2);
            ctx.bulk(b"server-cpu-usage");
            ctx.integer(42);
            ctx.bulk(b"Some real reply following the push reply");
        }
        "verbatim" => ctx.verbatim("txt", b"This is a verbatim\nstring"),
        "true" => ctx.boolean(true),
        "false" => ctx.boolean(false),
        _ => ctx.error("ERR Wrong protocol type name. Please use one of the following: string|integer|double|bignum|null|array|set|map|attrib|push|verbatim|true|false"),
    }
}

/// A stable digest of one value: equal contents give equal digests, across keys and runs.
fn value_digest(value: &Value) -> u64 {
    let mut h = foldhash::quality::FixedState::with_seed(0x6d6f_6f6e_6b76).build_hasher();
    h.write(value.type_name().as_bytes());
    if let Some(view) = value.as_str() {
        h.write(&view.to_vec());
    }
    h.finish()
}

fn hex40(a: u64, b: u64) -> String {
    format!("{:016x}{:016x}{:08x}", a, b, (a ^ b) as u32)
}

fn digest_value(ctx: &mut Ctx) {
    let args = ctx.args;
    let now = ctx.now_ms;
    let digests: Vec<String> = args[2..]
        .iter()
        .map(|k| match ctx.db().peek(k, now) {
            Some(v) => {
                let d = value_digest(v);
                hex40(d, d.rotate_left(17))
            }
            None => "0".repeat(40),
        })
        .collect();
    ctx.array(digests.len());
    for d in digests {
        ctx.simple(&d);
    }
}

fn digest(ctx: &mut Ctx) {
    let mut acc: u64 = 0;
    for db in &ctx.state.dbs {
        for (k, v) in db.iter() {
            let mut h = foldhash::quality::FixedState::with_seed(7).build_hasher();
            h.write(k);
            // Order independent: combine per-key digests with addition.
            acc = acc.wrapping_add(h.finish() ^ value_digest(v));
        }
    }
    if acc == 0 {
        return ctx.simple(&"0".repeat(40));
    }
    ctx.simple(&hex40(acc, acc.rotate_left(29)));
}
