//! Per-connection state. The connection task owns a [`ClientState`]; the server keeps a
//! [`ClientEntry`] for each client with what other clients need to see or do (CLIENT LIST,
//! CLIENT KILL, PUBLISH delivery, MONITOR).

use crate::commands::CommandSpec;
use bytes::Bytes;
use moonkv_keyspace::WatchFlag;
use moonkv_protocol::Protocol;
use std::collections::HashSet;
use tokio::sync::mpsc::UnboundedSender;

/// Messages delivered to a connection from outside its own request/reply cycle.
#[derive(Debug)]
pub enum Outbound {
    /// Bytes to write as they are (pub/sub messages, MONITOR lines), already encoded for the
    /// client's protocol.
    Push(Vec<u8>),
    /// Bytes to write that do not count as queued output (a full resync's snapshot, which
    /// output buffer limits leave out, as Redis's do).
    Unmetered(Vec<u8>),
    /// Close the connection (CLIENT KILL, SHUTDOWN).
    Close,
    /// A blocked client was served or released: its state comes back with the reply to write
    /// before it goes on with the requests it has buffered.
    Resumed(Box<ClientState>, Vec<u8>),
}

/// CLIENT REPLY state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ReplyMode {
    #[default]
    On,
    Off,
    /// Skip the reply of the next command.
    SkipNext,
    /// Skipping the current command's reply (set from SkipNext when a command starts).
    Skipping,
}

/// A command queued by MULTI.
pub struct QueuedCommand {
    /// Position in the command table (for statistics).
    pub index: usize,
    pub spec: &'static CommandSpec,
    pub args: Vec<Bytes>,
}

#[derive(Default)]
pub struct MultiState {
    pub queued: Vec<QueuedCommand>,
    /// A command failed to queue (unknown, wrong arity...): EXEC answers EXECABORT.
    pub aborted: bool,
    /// The admission flags of the queued commands together (EXEC is admitted with them:
    /// a queued write makes EXEC a write).
    pub flags: u32,
    /// The admission flags some queued command lacks (a queued command that may not run on a
    /// stale replica makes EXEC one too).
    pub missing_flags: u32,
}

pub struct ClientState {
    pub id: u64,
    pub db: usize,
    pub protocol: Protocol,
    pub authenticated: bool,
    pub name: Option<Bytes>,
    pub addr: String,
    pub laddr: String,
    pub created_ms: i64,
    pub multi: Option<MultiState>,
    /// Keys watched by WATCH, as (db, key).
    pub watched: Vec<(usize, Vec<u8>)>,
    pub watch_dirty: WatchFlag,
    pub channels: HashSet<Bytes>,
    pub patterns: HashSet<Bytes>,
    pub reply_mode: ReplyMode,
    /// Close once the pending replies are written (QUIT, CLIENT KILL of oneself).
    pub close_after_reply: bool,
    pub monitor: bool,
    pub no_evict: bool,
    /// Name of the last command run (CLIENT LIST `cmd`).
    pub last_command: &'static str,
    pub last_interaction_ms: i64,
    /// Set by a blocking command that found nothing to take: the connection parks the client
    /// until a key it waits on gets data, the timeout passes, or CLIENT UNBLOCK.
    pub block_request: Option<crate::blocking::BlockRequest>,
    /// The last command name looked up, as sent, and its table index.
    pub last_lookup: Option<(compact_bytes::CompactBytes, usize)>,
    /// The client scripts run their commands as (SORT sorts what it would leave unordered).
    pub in_script: bool,
    /// The client a replica runs its primary's stream as: the primary decides, so the
    /// checks that protect the dataset from clients (read-only replica, OOM, MISCONF,
    /// min-replicas, stale data) do not apply to it.
    pub from_primary: bool,
    /// The replication offset after this client's last command: what WAIT waits for.
    pub write_offset: u64,
}

impl std::fmt::Debug for ClientState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientState")
            .field("id", &self.id)
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl ClientState {
    pub fn new(id: u64, addr: String, laddr: String, created_ms: i64, authenticated: bool) -> Self {
        Self {
            id,
            db: 0,
            protocol: Protocol::Resp2,
            authenticated,
            name: None,
            addr,
            laddr,
            created_ms,
            multi: None,
            watched: Vec::new(),
            watch_dirty: WatchFlag::default(),
            channels: HashSet::new(),
            patterns: HashSet::new(),
            reply_mode: ReplyMode::On,
            close_after_reply: false,
            monitor: false,
            no_evict: false,
            last_command: "",
            last_interaction_ms: created_ms,
            block_request: None,
            last_lookup: None,
            in_script: false,
            from_primary: false,
            write_offset: 0,
        }
    }

    /// Number of channel and pattern subscriptions.
    pub fn subscription_count(&self) -> usize {
        self.channels.len() + self.patterns.len()
    }

    /// RESP2 clients with subscriptions may only run pub/sub commands (RESP3 ones may run any).
    pub fn in_pubsub_context(&self) -> bool {
        self.protocol == Protocol::Resp2 && self.subscription_count() > 0
    }

    /// CLIENT LIST `flags` field.
    pub fn flags_string(&self) -> String {
        flags_string(
            self.monitor,
            false,
            self.from_primary,
            self.subscription_count() > 0,
            self.multi.is_some(),
            false,
            self.no_evict,
            self.close_after_reply,
        )
    }
}

/// The flag letters in the order Redis prints them.
fn flags_string(
    monitor: bool,
    replica: bool,
    primary: bool,
    pubsub: bool,
    multi: bool,
    blocked: bool,
    no_evict: bool,
    closing: bool,
) -> String {
    let mut f = String::new();
    for (on, c) in [
        (monitor, 'O'),
        (replica && !monitor, 'S'),
        (primary, 'M'),
        (pubsub, 'P'),
        (multi, 'x'),
        (blocked, 'b'),
        (closing, 'c'),
        (no_evict, 'e'),
    ] {
        if on {
            f.push(c);
        }
    }
    if f.is_empty() {
        f.push('N');
    }
    f
}

/// What the server keeps about each connected client.
pub struct ClientEntry {
    pub id: u64,
    pub addr: String,
    pub laddr: String,
    pub name: Option<Bytes>,
    pub created_ms: i64,
    pub last_interaction_ms: i64,
    pub db: usize,
    pub last_command: &'static str,
    pub monitor: bool,
    pub no_evict: bool,
    pub closing: bool,
    pub sub: usize,
    pub psub: usize,
    pub multi: i64,
    pub protocol: Protocol,
    /// Parked by a blocking command (kept by the blocking registry, not by `sync_from`).
    pub blocked: bool,
    /// Attached as a replica (SYNC/PSYNC).
    pub replica: bool,
    /// This server's link to its primary (flag M).
    pub primary: bool,
    pub tx: UnboundedSender<Outbound>,
    /// What the connection has not written yet, and the way to close it even then.
    pub output: std::sync::Arc<ClientOutput>,
}

/// The output side of a client's connection, shared by the registry and the connection.
#[derive(Default)]
pub struct ClientOutput {
    /// Bytes sent through the client's channel and not written yet (CLIENT LIST `omem`, the
    /// output buffer limits of replicas).
    pub queued: std::sync::atomic::AtomicUsize,
    /// Wakes a connection stuck writing to a peer that does not read, so it closes.
    pub kill: tokio::sync::Notify,
}

impl ClientEntry {
    /// Closes the connection, even one stuck writing to a peer that stopped reading.
    pub fn close_now(&self) {
        let _ = self.tx.send(Outbound::Close);
        self.output.kill.notify_one();
    }

    /// The registry entry of a client just created.
    pub fn new(
        client: &ClientState,
        tx: UnboundedSender<Outbound>,
        output: std::sync::Arc<ClientOutput>,
    ) -> Self {
        ClientEntry {
            id: client.id,
            addr: client.addr.clone(),
            laddr: client.laddr.clone(),
            name: None,
            created_ms: client.created_ms,
            last_interaction_ms: client.created_ms,
            db: 0,
            last_command: "",
            monitor: false,
            no_evict: false,
            closing: false,
            sub: 0,
            psub: 0,
            multi: -1,
            protocol: Protocol::Resp2,
            blocked: false,
            replica: false,
            primary: client.from_primary,
            tx,
            output,
        }
    }

    /// Refreshes the fields CLIENT LIST shows from the client's own state.
    pub fn sync_from(&mut self, c: &ClientState) {
        self.last_command = c.last_command;
        self.last_interaction_ms = c.last_interaction_ms;
        if self.name != c.name {
            self.name = c.name.clone();
        }
        self.db = c.db;
        self.monitor = c.monitor;
        self.no_evict = c.no_evict;
        self.closing = c.close_after_reply;
        self.sub = c.channels.len();
        self.psub = c.patterns.len();
        self.multi = c.multi.as_ref().map_or(-1, |m| m.queued.len() as i64);
        self.protocol = c.protocol;
    }

    /// One line of CLIENT LIST / CLIENT INFO, in Redis 7.0's field order.
    pub fn info_line(&self, now_ms: i64) -> String {
        let name = self
            .name
            .as_ref()
            .map(|n| String::from_utf8_lossy(n).into_owned())
            .unwrap_or_default();
        format!(
            "id={} addr={} laddr={} fd=8 name={} age={} idle={} flags={} db={} sub={} psub={} ssub=0 multi={} qbuf=0 qbuf-free=0 argv-mem=0 multi-mem=0 rbs=1024 rbp=0 obl=0 oll=0 omem={} tot-mem=0 events=r cmd={} user=default redir=-1 resp={}",
            self.id,
            self.addr,
            self.laddr,
            name,
            (now_ms - self.created_ms) / 1000,
            (now_ms - self.last_interaction_ms) / 1000,
            flags_string(self.monitor, self.replica, self.primary, self.sub + self.psub > 0, self.multi >= 0, self.blocked, self.no_evict, self.closing),
            self.db,
            self.sub,
            self.psub,
            self.multi,
            self.output.queued.load(std::sync::atomic::Ordering::Relaxed),
            if self.last_command.is_empty() { "NULL" } else { self.last_command },
            if self.protocol == Protocol::Resp3 { 3 } else { 2 },
        )
    }
}
