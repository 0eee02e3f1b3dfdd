//! The command table and the one path every command takes: look-up, arity and permission
//! checks, MULTI queueing, execution and statistics. Each command family lives in its own file
//! and exports a `COMMANDS` slice of [`CommandSpec`]s.

pub mod admission;
mod bitops;
mod clients;
mod connection;
mod debug;
mod functions;
mod hashes;
pub(crate) mod info;
mod introspection;
pub(crate) mod keys;
mod lists;
mod longdouble;
mod memory;
mod persistence;
mod pubsub;
mod replication;
mod scripting;
mod server_admin;
mod sets;
mod sort;
pub mod spec;
mod strings;
mod transactions;
mod zsets;

pub use pubsub::publish_message;
pub use spec::{flags, CommandSpec, Handler, KeyFinder};

use crate::client::{ClientState, ReplyMode};
use crate::state::ServerState;
use admission::Refusal;
use bytes::Bytes;
use moonkv_keyspace::{Db, Value};
use moonkv_protocol::number::{parse_f64, parse_i64};
use moonkv_protocol::ErrorReply;
use moonkv_protocol::{ReplySink, RespWriter};
use std::collections::HashMap;
use std::sync::OnceLock;
// Command timing reads the TSC (quanta): a vDSO clock_gettime per command cost ~6% of a pipelined
// PING in perf.
use compact_bytes::CompactBytes;
use quanta::Instant;

/// Redis 7.0's error texts that many commands share.
pub mod errors {
    pub const WRONGTYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";
    pub const SYNTAX: &str = "ERR syntax error";
    pub const NOT_INTEGER: &str = "ERR value is not an integer or out of range";
    pub const NOT_FLOAT: &str = "ERR value is not a valid float";
    pub const OVERFLOW: &str = "ERR increment or decrement would overflow";
    pub const NO_SUCH_KEY: &str = "ERR no such key";
    pub const DB_INDEX: &str = "ERR DB index is out of range";
    pub const NOAUTH: &str = "NOAUTH Authentication required.";
}

/// All commands, flattened (subcommands included, as `parent|sub`), with a by-name index.
pub struct CommandTable {
    pub specs: Vec<&'static CommandSpec>,
    by_name: HashMap<Box<[u8]>, usize, foldhash::fast::RandomState>,
    /// Top-level commands only, for COMMAND / COMMAND COUNT / COMMAND LIST.
    pub top_level: Vec<&'static CommandSpec>,
}

static FAMILIES: &[&[CommandSpec]] = &[
    connection::COMMANDS,
    functions::COMMANDS,
    scripting::COMMANDS,
    keys::COMMANDS,
    strings::COMMANDS,
    bitops::COMMANDS,
    lists::COMMANDS,
    sets::COMMANDS,
    hashes::COMMANDS,
    zsets::COMMANDS,
    sort::COMMANDS,
    transactions::COMMANDS,
    pubsub::COMMANDS,
    replication::COMMANDS,
    server_admin::COMMANDS,
    persistence::COMMANDS,
    info::COMMANDS,
    memory::COMMANDS,
    debug::COMMANDS,
    clients::COMMANDS,
    introspection::COMMANDS,
];

impl CommandTable {
    fn build() -> Self {
        let mut specs = Vec::new();
        let mut by_name = HashMap::default();
        let mut top_level = Vec::new();
        for family in FAMILIES {
            for spec in family.iter() {
                top_level.push(spec);
                by_name.insert(spec.name.as_bytes().into(), specs.len());
                specs.push(spec);
                for sub in spec.subcommands {
                    by_name.insert(sub.name.as_bytes().into(), specs.len());
                    specs.push(sub);
                }
            }
        }
        CommandTable {
            specs,
            by_name,
            top_level,
        }
    }

    /// Case-insensitive look-up of a command or `parent|sub` name.
    pub fn lookup(&self, name: &[u8]) -> Option<(usize, &'static CommandSpec)> {
        let mut buf = [0u8; 64];
        let lower: &[u8] = if name.len() <= buf.len() {
            for (d, s) in buf.iter_mut().zip(name) {
                *d = s.to_ascii_lowercase();
            }
            &buf[..name.len()]
        } else {
            return None;
        };
        self.by_name.get(lower).map(|&i| (i, self.specs[i]))
    }

    pub fn index_of(&self, spec: &CommandSpec) -> usize {
        self.by_name.get(spec.name.as_bytes()).copied().unwrap_or(0)
    }
}

/// The command table, built on first use.
pub fn table() -> &'static CommandTable {
    static TABLE: OnceLock<CommandTable> = OnceLock::new();
    TABLE.get_or_init(CommandTable::build)
}

/// Time readings shared by the commands of one batch: the wall clock read once per batch
/// (expiry decisions), and a monotonic instant that each command's timing starts from and
/// moves forward, so timing costs one clock read per command.
pub struct BatchClock {
    base_unix_ms: i64,
    base: Instant,
    pub last: Instant,
}

impl BatchClock {
    pub fn now() -> Self {
        let base = Instant::now();
        BatchClock {
            base_unix_ms: crate::time::unix_ms(),
            base,
            last: base,
        }
    }

    /// Wall-clock ms at `last`, derived without another clock read (commands earlier in the
    /// batch may have taken time, e.g. DEBUG SLEEP).
    pub fn unix_ms(&self) -> i64 {
        self.base_unix_ms + self.last.saturating_duration_since(self.base).as_millis() as i64
    }
}

/// Everything a command handler can reach. It is also the reply sink: a handler replies with
/// `ctx.bulk(..)`, `ctx.error(..)` and so on, and errors are counted on the way.
pub struct Ctx<'a> {
    pub state: &'a mut ServerState,
    pub client: &'a mut ClientState,
    pub args: &'a [Bytes],
    pub spec: &'static CommandSpec,
    /// The instant the command (or the transaction or script running it) started, Unix ms;
    /// used for every expiry decision so time stands still within one atomic unit.
    pub now_ms: i64,
    sink: &'a mut dyn ReplySink,
    errors: u32,
    propagation: Propagation,
    /// Replicate the command even though it changed no key (PUBLISH).
    forced_propagation: bool,
    /// Run on behalf of another command (EXEC, a script): it must not block.
    nested: bool,
}

/// How a command's effects go down the replication stream.
enum Propagation {
    /// As the command was called, if it changed the dataset.
    AsCalled,
    /// As these arguments instead (a deterministic rewrite).
    Rewritten(Vec<Bytes>),
}

impl<'a> Ctx<'a> {
    /// Whether an expiry time given to a command (EXPIRE and friends, GETEX, RESTORE) is
    /// already past, so the key goes now. Not while loading or on a replica, which keep the
    /// key with its time for the load's own deletion or the primary's (Redis's
    /// checkAlreadyExpired).
    pub fn already_expired(&self, at: i64) -> bool {
        at <= self.now_ms
            && self.state.persistence.loading.is_none()
            && self.state.replication.primary.is_none()
    }

    pub fn new(
        state: &'a mut ServerState,
        client: &'a mut ClientState,
        spec: &'static CommandSpec,
        args: &'a [Bytes],
        sink: &'a mut dyn ReplySink,
        now_ms: i64,
    ) -> Self {
        Ctx {
            state,
            client,
            args,
            spec,
            now_ms,
            sink,
            errors: 0,
            propagation: Propagation::AsCalled,
            forced_propagation: false,
            nested: false,
        }
    }

    /// Whether a blocking command may wait: not inside a transaction or a script, where it
    /// answers as if its timeout had passed.
    pub fn may_block(&self) -> bool {
        !self.nested && self.client.multi.is_none()
    }

    /// Leaves the reply to later: the connection parks the client until one of `keys` holds
    /// what it `awaits`, then runs this command again (see `crate::blocking`).
    pub fn block(
        &mut self,
        keys: &[Bytes],
        timeout: Option<std::time::Duration>,
        awaits: crate::blocking::Awaits,
    ) {
        self.client.block_request = Some(crate::blocking::BlockRequest {
            keys: keys.to_vec(),
            timeout,
            awaits,
        });
    }

    /// Parses a blocking command's timeout in seconds (fractions allowed) as Redis 7.0 does.
    /// Ok(None) is "wait forever" (0, or less than a millisecond).
    pub fn arg_timeout(&mut self, i: usize) -> Option<Option<std::time::Duration>> {
        let Some(secs) = parse_f64(&self.args[i]) else {
            self.error("ERR timeout is not a float or out of range");
            return None;
        };
        let ms = (secs * 1000.0).trunc();
        // Redis converts with a C cast, which turns infinities and huge values negative.
        if ms < 0.0 || !ms.is_finite() || ms >= i64::MAX as f64 {
            self.error("ERR timeout is negative");
            return None;
        }
        let ms = ms as i64;
        if ms > 0 && ms > i64::MAX - self.now_ms {
            self.error("ERR timeout is out of range");
            return None;
        }
        Some((ms > 0).then(|| std::time::Duration::from_millis(ms as u64)))
    }

    /// The client's selected database.
    pub fn db(&mut self) -> &mut Db {
        &mut self.state.dbs[self.client.db]
    }

    /// The client's database and the reply sink at once, so a handler can reply with borrowed
    /// value bytes instead of copying them. Errors must still go through [`Ctx::error`].
    pub fn db_and_sink(&mut self) -> (&mut Db, &mut dyn ReplySink) {
        (&mut self.state.dbs[self.client.db], &mut *self.sink)
    }

    /// `proto-max-bulk-len`: the largest string a command may build.
    pub fn max_string_len(&self) -> usize {
        self.state.settings.proto_max_bulk_len.max(0) as usize
    }

    pub fn arg(&self, i: usize) -> &[u8] {
        &self.args[i]
    }

    /// The argument, lowercased, for keyword comparisons.
    pub fn arg_lower(&self, i: usize) -> String {
        String::from_utf8_lossy(&self.args[i]).to_ascii_lowercase()
    }

    /// True if argument `i` equals `word`, ignoring ASCII case.
    pub fn arg_is(&self, i: usize, word: &str) -> bool {
        self.args
            .get(i)
            .is_some_and(|a| a.eq_ignore_ascii_case(word.as_bytes()))
    }

    /// Parses an integer argument; on failure replies `ERR value is not an integer or out of
    /// range` and returns None.
    pub fn arg_i64(&mut self, i: usize) -> Option<i64> {
        let v = parse_i64(&self.args[i]);
        if v.is_none() {
            self.error(errors::NOT_INTEGER);
        }
        v
    }

    /// Parses a float argument; on failure replies `ERR value is not a valid float`.
    pub fn arg_f64(&mut self, i: usize) -> Option<f64> {
        let v = parse_f64(&self.args[i]);
        if v.is_none() {
            self.error(errors::NOT_FLOAT);
        }
        v
    }

    pub fn wrong_type(&mut self) {
        self.error(errors::WRONGTYPE);
    }

    pub fn syntax_error(&mut self) {
        self.error(errors::SYNTAX);
    }

    /// `ERR wrong number of arguments for '<cmd>' command`.
    pub fn arity_error(&mut self) {
        let msg = format!(
            "ERR wrong number of arguments for '{}' command",
            self.spec.name
        );
        self.error(&msg);
    }

    /// Reports a keyspace event on `key` in the client's database (notify-keyspace-events).
    pub fn notify(&mut self, event_class: u32, event: &str, key: &[u8]) {
        if self.state.settings.notify_flags & event_class != 0 {
            let db = self.client.db;
            crate::notify::notify(self.state, event_class, event, key, db);
        }
    }

    /// Replicates this command as `args` instead of as it was called (e.g. a relative TTL
    /// becomes absolute). Only used if the command changed the dataset.
    pub fn propagate_as(&mut self, args: Vec<Bytes>) {
        self.propagation = Propagation::Rewritten(args);
    }

    /// [`Ctx::propagate_as`] from byte slices (copied only when someone receives effects).
    pub fn propagate_parts(&mut self, parts: &[&[u8]]) {
        if self.propagating() {
            self.propagate_as(parts.iter().map(|p| Bytes::copy_from_slice(p)).collect());
        }
    }

    /// Replicates this command even if it changed no key.
    pub fn force_propagation(&mut self) {
        self.forced_propagation = true;
    }

    /// Whether this command's effects are sent anywhere (replicas, the append-only file), so a handler can
    /// skip building a rewritten form nobody reads.
    pub fn propagating(&self) -> bool {
        self.state.propagating()
    }

    /// Errors replied so far by this command.
    pub fn error_count(&self) -> u32 {
        self.errors
    }

    /// Marks this command as run on behalf of another (a script): it must not block.
    pub fn set_nested(&mut self) {
        self.nested = true;
    }

    /// The server state, the calling client and the reply sink at once, for a script run that
    /// needs the state while it writes the reply. Errors written to the sink this way must be
    /// accounted for with [`Ctx::note_error`].
    pub fn parts(&mut self) -> (&mut ServerState, &mut ClientState, &mut dyn ReplySink) {
        (self.state, self.client, self.sink)
    }

    /// Accounts for an error reply written through [`Ctx::parts`]: the command failed, and the
    /// error statistics count it unless it was counted where it arose.
    pub fn note_error(&mut self, error: &ErrorReply) {
        self.errors += 1;
        if !error.counted {
            self.state.stats.record_error(&error.message);
        }
    }

    /// Runs another command on behalf of this one (EXEC, scripts), replying into the same sink.
    pub fn call(&mut self, index: usize, spec: &'static CommandSpec, args: &[Bytes]) {
        // Errors of the inner command count as its own failure, not as one of this command
        // (an EXEC whose queued command failed did not itself fail).
        let mut inner = Ctx::new(self.state, self.client, spec, args, self.sink, self.now_ms);
        inner.nested = true;
        call(&mut inner, index, Instant::now());
    }
}

impl ReplySink for Ctx<'_> {
    moonkv_protocol::forward_reply_sink!(sink);
    fn error(&mut self, msg: &str) {
        self.errors += 1;
        self.state.stats.record_error(msg);
        self.sink.error(msg)
    }
    fn error_counted_elsewhere(&mut self, msg: &str) {
        self.errors += 1;
        self.sink.error(msg)
    }
}

/// Executes a command whose checks passed, recording its statistics and feeding MONITOR.
/// `started` is when the command began; returns when it ended.
pub fn call(ctx: &mut Ctx, index: usize, started: Instant) -> Instant {
    let spec = ctx.spec;
    let errors_before = ctx.errors;
    let replicating = ctx.state.propagating();
    let db_at_start = ctx.client.db;
    let dirty_before = if replicating { ctx.state.dirty() } else { 0 };
    (spec.handler)(ctx);
    let ended = Instant::now();
    if ctx.client.block_request.is_some() {
        // Counted once, when it stops waiting (served, timed out or unblocked).
        return ended;
    }
    // MONITOR sees a command once it ran (as in Redis 7), so EXEC shows after its commands.
    if !ctx.state.monitors.is_empty() && !spec.has(flags::SKIP_MONITOR) && !spec.has(flags::ADMIN) {
        server_admin::feed_monitors(ctx.state, ctx.client, ctx.args);
    }
    let usec = ended.saturating_duration_since(started).as_micros() as u64;
    if ctx.state.settings.notify_flags != 0 || replicating {
        crate::notify::drain_db_events(ctx.state);
    }
    let changed = ctx.forced_propagation || ctx.state.dirty() > dirty_before;
    if replicating && changed && !spec.has(flags::PROPAGATES_INNER) {
        let args = match std::mem::replace(&mut ctx.propagation, Propagation::AsCalled) {
            Propagation::AsCalled => ctx.args.to_vec(),
            Propagation::Rewritten(args) => args,
        };
        let to = ctx.state.replication.targets;
        ctx.state
            .replication
            .pending
            .push(crate::replication::Effect {
                db: db_at_start,
                args,
                to,
            });
    }
    let failed = ctx.errors > errors_before;
    record_call(ctx.state, index, usec, failed);
    ended
}

/// Counts one finished call of the command at `index` in INFO stats and commandstats.
fn record_call(state: &mut ServerState, index: usize, usec: u64, failed: bool) {
    state.stats.total_commands_processed += 1;
    if let Some(s) = state.stats.commands.get_mut(index) {
        s.calls += 1;
        s.usec += usec;
        if failed {
            s.failed_calls += 1;
        }
    }
}

/// Accounts for a blocked command released without data (timeout, CLIENT UNBLOCK).
pub fn record_released_call(state: &mut ServerState, args: &[Bytes], failed: bool) {
    if let Some((index, _)) = table().lookup(&args[0]) {
        record_call(state, index, 0, failed);
    }
}

pub(crate) fn record_rejection(state: &mut ServerState, index: usize) {
    if let Some(s) = state.stats.commands.get_mut(index) {
        s.rejected_calls += 1;
    }
}

/// Looks a command name up, trying the client's remembered last name first: clients (and
/// scripts) mostly repeat the same command, and a match skips the table look-up.
pub fn lookup_remembered(
    client: &mut ClientState,
    name: &[u8],
) -> Option<(usize, &'static CommandSpec)> {
    let table = table();
    if let Some((remembered, i)) = &client.last_lookup {
        if remembered.as_slice() == name {
            return Some((*i, table.specs[*i]));
        }
    }
    let found = table.lookup(name);
    if let Some((i, _)) = found {
        client.last_lookup = Some((CompactBytes::new(name), i));
    }
    found
}

/// Why [`resolve`] found no command.
pub enum Unresolved {
    Command,
    /// The container command exists but not this subcommand.
    Subcommand(&'static CommandSpec),
}

/// Finds the command (or `container|sub` subcommand) that `args` call.
pub fn resolve(
    client: &mut ClientState,
    args: &[Bytes],
) -> Result<(usize, &'static CommandSpec), Unresolved> {
    let name = args.first().ok_or(Unresolved::Command)?;
    // The table also holds subcommands by their full `container|sub` names; a client may
    // only call them through the container.
    if name.contains(&b'|') {
        return Err(Unresolved::Command);
    }
    let (index, spec) = lookup_remembered(client, name).ok_or(Unresolved::Command)?;
    if spec.subcommands.is_empty() || args.len() < 2 {
        return Ok((index, spec));
    }
    let full = [spec.name.as_bytes(), b"|", &args[1]].concat();
    table().lookup(&full).ok_or(Unresolved::Subcommand(spec))
}

/// Formats Redis's unknown-command error: the name and up to 128 bytes of arguments.
fn unknown_command_error(args: &[Bytes]) -> String {
    let mut tail = String::new();
    for a in &args[1..] {
        if tail.len() >= 128 {
            break;
        }
        let room = 128 - tail.len();
        let text = String::from_utf8_lossy(&a[..a.len().min(room)]).into_owned();
        tail.push('\'');
        tail.push_str(&text);
        tail.push_str("' ");
    }
    let name = String::from_utf8_lossy(&args[0][..args[0].len().min(128)]).into_owned();
    format!(
        "ERR unknown command '{}', with args beginning with: {}",
        name, tail
    )
}

/// Takes one request from a client through every check and runs it, appending the reply to
/// `out` (unless the client turned replies off).
pub fn process_request(
    state: &mut ServerState,
    client: &mut ClientState,
    args: &[Bytes],
    out: &mut Vec<u8>,
    clock: &mut BatchClock,
) {
    let mut scratch = Vec::new();
    let skipping = match client.reply_mode {
        ReplyMode::Off => true,
        ReplyMode::SkipNext => {
            client.reply_mode = ReplyMode::Skipping;
            true
        }
        ReplyMode::Skipping => true,
        ReplyMode::On => false,
    };
    let was_off = client.reply_mode == ReplyMode::Off;
    let target: &mut Vec<u8> = if skipping { &mut scratch } else { out };
    let mut writer = RespWriter::new(target, client.protocol);
    dispatch(state, client, args, &mut writer, clock);
    match client.reply_mode {
        ReplyMode::Skipping => client.reply_mode = ReplyMode::On,
        // CLIENT REPLY ON answers even though replies were off when it started.
        ReplyMode::On if was_off => out.extend_from_slice(&scratch),
        _ => {}
    }
}

fn dispatch(
    state: &mut ServerState,
    client: &mut ClientState,
    args: &[Bytes],
    sink: &mut dyn ReplySink,
    clock: &mut BatchClock,
) {
    let now_ms = clock.unix_ms();
    if !client.authenticated && state.settings.requirepass.is_none() {
        // The password was removed since the client connected.
        client.authenticated = true;
    }
    let admitted = admission::look_up(client, args).and_then(|(index, spec)| {
        admission::admit(state, client, index, spec, args).map(|()| (index, spec))
    });
    let (index, spec) = match admitted {
        Ok(found) => found,
        Err(refusal) => return reject(state, client, sink, refusal),
    };
    if client.multi.is_some() && !admission::runs_inside_multi(spec) {
        queue_in_multi(state, client, index, spec, args);
        sink.simple("QUEUED");
        return;
    }
    client.last_command = spec.name;
    client.last_interaction_ms = now_ms;
    let mut ctx = Ctx::new(state, client, spec, args, sink, now_ms);
    clock.last = call(&mut ctx, index, clock.last);
    if state.scripting.running.is_some() {
        // Served from a busy script's hook: the script's effects are not complete yet, so
        // nothing is replicated and no blocked client is served until it ends.
        return;
    }
    if state.propagating() {
        crate::replication::flush(state);
        client.write_offset = state.replication.offset;
    }
    if state.replication.primary.is_some() && !client.from_primary && spec.has(flags::WRITE) {
        crate::replication::remember_local_expires(state, client.db, spec, args);
    }
    crate::blocking::serve_ready_keys(state);
    if state.lazy_collection_enabled() {
        state.lazyfree.collect(&mut state.dbs);
    }
}

/// Queues a command of a client inside MULTI, noting the flags EXEC's admission will see.
fn queue_in_multi(
    state: &ServerState,
    client: &mut ClientState,
    index: usize,
    spec: &'static CommandSpec,
    args: &[Bytes],
) {
    let flags = admission::effective_flags(state, client, spec, args);
    if let Some(m) = client.multi.as_mut() {
        m.flags |= flags;
        m.missing_flags |= !flags;
        m.queued.push(crate::client::QueuedCommand {
            index,
            spec,
            args: args.to_vec(),
        });
    }
}

/// Runs a command from a trusted source, the append-only file being loaded (and later a
/// primary's stream): the same look-up, MULTI queueing and call as a client's request, but
/// none of the admission rules meant for clients, as in Redis. The command must not block.
/// Err names a command this server does not know.
pub fn run_trusted(
    state: &mut ServerState,
    client: &mut ClientState,
    args: &[Bytes],
    sink: &mut dyn ReplySink,
    now_ms: i64,
) -> Result<(), String> {
    let (index, spec) = match resolve(client, args) {
        Ok(found) => found,
        Err(_) => return Err(String::from_utf8_lossy(&args[0]).into_owned()),
    };
    if client.multi.is_some() && !admission::runs_inside_multi(spec) {
        queue_in_multi(state, client, index, spec, args);
        return Ok(());
    }
    let mut ctx = Ctx::new(state, client, spec, args, sink, now_ms);
    ctx.nested = true;
    call(&mut ctx, index, Instant::now());
    Ok(())
}

/// Replies a refused request as Redis's rejectCommand does: counted as an error and a
/// rejected call, and inside MULTI it dooms the transaction; a refused EXEC discards it.
fn reject(
    state: &mut ServerState,
    client: &mut ClientState,
    sink: &mut dyn ReplySink,
    mut refusal: Refusal,
) {
    let refused_exec = refusal
        .command
        .is_some_and(|i| table().specs[i].name == "exec");
    if refused_exec && client.multi.is_some() {
        transactions::discard_transaction(state, client);
        refusal.error = ErrorReply::new(format!(
            "EXECABORT Transaction discarded because of: {}",
            refusal.error.message
        ));
    } else if let Some(m) = client.multi.as_mut() {
        m.aborted = true;
    }
    sink.error_reply(&admission::count(state, refusal));
}

/// Publishes what other clients see of this one in CLIENT LIST (db, name, subscriptions, last
/// command). Done once per batch of requests, and by CLIENT LIST/INFO for the caller itself.
pub fn publish_client_state(state: &mut ServerState, client: &ClientState) {
    if let Some(entry) = state.clients.get_mut(&client.id) {
        entry.sync_from(client);
    }
}

/// Drops everything a disconnecting client left behind: subscriptions and WATCHes.
pub fn forget_client(state: &mut ServerState, client: &mut ClientState) {
    pubsub::unsubscribe_all(state, client);
    transactions::unwatch_all(state, client);
    replication::detach(state, client.id);
}

/// Reads the collection of one type stored at `key` (`view` picks the type, e.g.
/// `Value::as_set`): Ok(None) when the key is missing, Err(()) after replying WRONGTYPE.
pub fn read_collection<'c, T>(
    ctx: &'c mut Ctx,
    key: &[u8],
    view: fn(&Value) -> Option<&T>,
) -> Result<Option<&'c T>, ()> {
    let now = ctx.now_ms;
    match ctx.db().get(key, now).map(|v| view(v).is_some()) {
        None => Ok(None),
        Some(false) => {
            ctx.wrong_type();
            Err(())
        }
        Some(true) => Ok(ctx.db().peek(key, now).and_then(view)),
    }
}

/// How [`edit_collection`] finds and, if asked, creates a collection type.
pub struct CollectionKind<T> {
    pub view: fn(&Value) -> Option<&T>,
    pub view_mut: fn(&mut Value) -> Option<&mut T>,
    pub is_empty: fn(&T) -> bool,
    pub create: fn() -> Value,
}

/// Runs `edit` on the collection at `key`, creating an empty one first when `create` is set;
/// deletes the key if the collection ends up empty, and records the modification. None when
/// the key is missing and not created; Some(Err) after replying WRONGTYPE.
pub fn edit_collection<T, R>(
    ctx: &mut Ctx,
    key: &[u8],
    kind: &CollectionKind<T>,
    create: bool,
    edit: impl FnOnce(&mut T) -> R,
) -> Option<Result<R, ()>> {
    let now = ctx.now_ms;
    match ctx.db().peek(key, now).map(|v| (kind.view)(v).is_some()) {
        Some(false) => {
            ctx.wrong_type();
            return Some(Err(()));
        }
        None if !create => return None,
        None => ctx.db().set(key, (kind.create)(), false),
        Some(true) => {}
    }
    let collection = ctx.db().get_mut(key, now).and_then(kind.view_mut)?;
    let result = edit(collection);
    if (kind.is_empty)(collection) {
        ctx.db().remove(key, now);
    } else {
        ctx.db().mark_modified(key);
    }
    Some(Ok(result))
}

/// Options shared by SCAN, SSCAN and HSCAN.
pub struct ScanOptions<'a> {
    pub cursor: u64,
    pub pattern: Option<&'a [u8]>,
    pub count: i64,
    /// SCAN's TYPE filter (lowercase).
    pub type_filter: Option<String>,
}

/// Parses `cursor [MATCH p] [COUNT n] [TYPE t]` starting at `args[at]`; replies the error and
/// returns None when invalid. TYPE is accepted only when `allow_type`.
pub fn parse_scan<'a>(ctx: &mut Ctx<'a>, at: usize, allow_type: bool) -> Option<ScanOptions<'a>> {
    let args = ctx.args;
    let Some(cursor) = keys::parse_cursor(&args[at]) else {
        ctx.error("ERR invalid cursor");
        return None;
    };
    let mut options = ScanOptions {
        cursor,
        pattern: None,
        count: 10,
        type_filter: None,
    };
    let mut i = at + 1;
    while i < args.len() {
        if i + 1 >= args.len() {
            ctx.syntax_error();
            return None;
        }
        match ctx.arg_lower(i).as_str() {
            "match" => options.pattern = Some(&args[i + 1]),
            "count" => {
                let n = ctx.arg_i64(i + 1)?;
                if n < 1 {
                    ctx.syntax_error();
                    return None;
                }
                options.count = n;
            }
            "type" if allow_type => options.type_filter = Some(ctx.arg_lower(i + 1)),
            _ => {
                ctx.syntax_error();
                return None;
            }
        }
        i += 2;
    }
    Some(options)
}

/// Runs SCAN-style steps from `cursor` until `count` items are collected, the iteration ends,
/// or `count * 10` steps ran (Redis's bound on one call's work when most buckets are empty).
/// `step` visits one bucket and returns the next cursor and how many items are collected so far.
pub fn scan_loop(mut cursor: u64, count: i64, mut step: impl FnMut(u64) -> (u64, usize)) -> u64 {
    let mut steps_left = count.saturating_mul(10);
    loop {
        let (next, collected) = step(cursor);
        cursor = next;
        steps_left -= 1;
        if cursor == 0 || collected as i64 >= count || steps_left <= 0 {
            return cursor;
        }
    }
}

/// Which command [`parse_intercard`] parses for.
#[derive(Clone, Copy)]
pub enum IntercardFlavor {
    Set,
    SortedSet,
}

/// Parses SINTERCARD/ZINTERCARD's `numkeys key... [LIMIT n]`; returns (numkeys, limit, with 0
/// meaning none) or replies the error.
pub fn parse_intercard(ctx: &mut Ctx, flavor: IntercardFlavor) -> Option<(usize, usize)> {
    let args = ctx.args;
    // The two commands validate numkeys with different code in Redis, hence different texts.
    let numkeys = match (parse_i64(&args[1]), flavor) {
        (Some(n), _) if n > 0 => n as usize,
        (_, IntercardFlavor::Set) => {
            ctx.error("ERR numkeys should be greater than 0");
            return None;
        }
        (None, IntercardFlavor::SortedSet) => {
            ctx.error(errors::NOT_INTEGER);
            return None;
        }
        (Some(_), IntercardFlavor::SortedSet) => {
            ctx.error("ERR at least 1 input key is needed for 'zintercard' command");
            return None;
        }
    };
    if numkeys > args.len() - 2 {
        match flavor {
            IntercardFlavor::Set => {
                ctx.error("ERR Number of keys can't be greater than number of args")
            }
            IntercardFlavor::SortedSet => ctx.syntax_error(),
        }
        return None;
    }
    let mut limit = 0usize;
    let mut i = 2 + numkeys;
    while i < args.len() {
        if ctx.arg_is(i, "limit") && i + 1 < args.len() {
            // A limit that does not parse as a count is reported like a negative one.
            limit = match parse_i64(&args[i + 1]) {
                Some(n) if n >= 0 => n as usize,
                _ => {
                    ctx.error("ERR LIMIT can't be negative");
                    return None;
                }
            };
            i += 2;
        } else {
            ctx.syntax_error();
            return None;
        }
    }
    Some((numkeys, limit))
}

/// Key finder helper for families: parse a `numkeys` argument at `at`, keys following it.
/// The shared arguments of LMPOP/BLMPOP/ZMPOP/BZMPOP: `numkeys key [key ...] <side> [COUNT n]`.
pub struct MultiPop {
    /// Argument indexes of the keys.
    pub keys: std::ops::Range<usize>,
    /// Argument index of the side word (LEFT|RIGHT or MIN|MAX), for the caller to parse.
    pub side: usize,
    pub count: usize,
    /// The blocking forms' timeout (None: wait forever, or not a blocking form).
    pub timeout: Option<std::time::Duration>,
}

/// Parses [`MultiPop`] arguments, after a timeout for the blocking forms (BLMPOP, BZMPOP),
/// with Redis 7.0's error texts; replies the error and returns None on bad input.
pub fn parse_multi_pop(ctx: &mut Ctx, blocking: bool) -> Option<MultiPop> {
    let args = ctx.args;
    let timeout = if blocking { ctx.arg_timeout(1)? } else { None };
    let numkeys_at = if blocking { 2 } else { 1 };
    let numkeys = match parse_i64(&args[numkeys_at]) {
        Some(n) if n > 0 => n as usize,
        _ => {
            ctx.error("ERR numkeys should be greater than 0");
            return None;
        }
    };
    let side = numkeys_at.saturating_add(numkeys).saturating_add(1);
    if side >= args.len() {
        ctx.syntax_error();
        return None;
    }
    let mut count = None;
    let mut i = side + 1;
    while i < args.len() {
        if count.is_none() && ctx.arg_is(i, "count") && i + 1 < args.len() {
            match parse_i64(&args[i + 1]) {
                Some(n) if n > 0 => count = Some(n as usize),
                _ => {
                    ctx.error("ERR count should be greater than 0");
                    return None;
                }
            }
            i += 2;
        } else {
            ctx.syntax_error();
            return None;
        }
    }
    Some(MultiPop {
        keys: numkeys_at + 1..side,
        side,
        count: count.unwrap_or(1),
        timeout,
    })
}

pub fn keys_after_numkeys(args: &[Bytes], at: usize) -> Result<Vec<usize>, String> {
    let n = args
        .get(at)
        .and_then(|a| parse_i64(a))
        .ok_or("ERR value is not an integer or out of range")?;
    if n < 0 || at as i64 + 1 + n > args.len() as i64 {
        return Err("ERR Number of keys can't be greater than number of args".into());
    }
    Ok((at + 1..at + 1 + n as usize).collect())
}
