//! The replica side: a task that keeps a link to the primary (REPLICAOF, `replicaof`). It
//! connects, does Redis's handshake (PING, AUTH, REPLCONF, PSYNC), loads the snapshot of a full
//! resync or resumes from its offset, then applies the primary's stream: each command runs
//! through the same path as a client's (`commands::process_request`, as the primary's client),
//! and goes on unchanged to this server's own replicas and backlog. It acknowledges its offset
//! every second and when asked (REPLCONF GETACK), and reconnects after a second when the link
//! breaks, asking to resume where it stopped.

use crate::client::ClientState;
use crate::server::Shared;
use crate::state::ServerState;
use bytes::{Bytes, BytesMut};
use moonkv_protocol::{ParseLimits, RequestParser};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

/// Where the link stands, as INFO and ROLE report it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum LinkState {
    /// Waiting to (re)connect.
    Connect,
    /// Connecting.
    Connecting,
    /// Connected, in the handshake (PING, AUTH, REPLCONF, PSYNC and its reply).
    Handshake,
    /// Receiving the snapshot of a full resync.
    Sync,
    /// Applying the stream.
    Connected,
}

impl LinkState {
    /// The word ROLE uses.
    pub fn role_word(self) -> &'static str {
        match self {
            LinkState::Connect => "connect",
            LinkState::Connecting => "connecting",
            LinkState::Handshake => "handshake",
            LinkState::Sync => "sync",
            LinkState::Connected => "connected",
        }
    }
}

pub struct PrimaryLink {
    pub host: String,
    pub port: u16,
    pub state: LinkState,
    /// When bytes last came from the primary, Unix ms.
    pub last_io_ms: i64,
    /// When the link went down (or was first asked for), Unix ms.
    pub down_since_ms: i64,
    /// Size of the snapshot being received (-1 when unknown, as with an EOF-marked one).
    pub sync_total_bytes: i64,
    pub sync_read_bytes: u64,
    /// The first sync did not happen yet since this server started as a replica: it has no
    /// history to resume (PSYNC ? -1).
    pub fresh: bool,
    /// The database the primary's stream last selected: a resumed stream goes on in it.
    pub stream_db: usize,
}

impl PrimaryLink {
    /// A link not connected yet; `fresh` when this server has no history to resume.
    pub fn new(host: String, port: u16, fresh: bool) -> Self {
        let now = crate::time::unix_ms();
        PrimaryLink {
            host,
            port,
            state: LinkState::Connect,
            last_io_ms: now,
            down_since_ms: now,
            sync_total_bytes: -1,
            sync_read_bytes: 0,
            fresh,
            stream_db: 0,
        }
    }
}

/// Makes this server a replica of `host:port` and starts the link task.
pub fn start(state: &mut ServerState, host: String, port: u16, fresh: bool) {
    state.replication.link_generation += 1;
    state.replication.primary = Some(PrimaryLink::new(host, port, fresh));
    // Replicas of this server must resync with the history it is about to follow.
    disconnect_replicas(state);
    crate::notify::apply_to_dbs(state);
    spawn_task(state);
}

/// Starts the task for the primary the state names (at start-up, `replicaof`).
pub fn spawn_task(state: &ServerState) {
    if state.replication.primary.is_none() {
        return;
    }
    if let Some(shared) = state.server.upgrade() {
        tokio::spawn(run(shared, state.replication.link_generation));
    }
}

/// REPLICAOF NO ONE: stops the link; this server is a primary again and starts a new history
/// (its replicas may resume the old one up to here).
pub fn stop(state: &mut ServerState) {
    let replication = &mut state.replication;
    if replication.primary.take().is_none() {
        return;
    }
    replication.link_generation += 1;
    replication.shift_replid();
    replication.local_expires.clear();
    // Its own effects start with a SELECT, whatever the passed-on stream selected last.
    replication.selected_db = None;
    crate::notify::apply_to_dbs(state);
    let replication = &state.replication;
    crate::log::notice(&format!(
        "Setting secondary replication ID to {}, valid up to offset: {}. New replication ID is {}",
        replication.replid2, replication.second_replid_offset, replication.replid
    ));
}

/// Closes the links of every replica of this server.
fn disconnect_replicas(state: &mut ServerState) {
    for replica in std::mem::take(&mut state.replication.replicas) {
        if let Some(entry) = state.clients.get(&replica.client_id) {
            entry.close_now();
        }
    }
}

fn link_of(state: &mut ServerState, generation: u64) -> Option<&mut PrimaryLink> {
    if state.replication.link_generation != generation {
        return None;
    }
    state.replication.primary.as_mut()
}

async fn run(shared: Arc<Shared>, generation: u64) {
    loop {
        let target = {
            let mut state = shared.lock().await;
            link_of(&mut state, generation).map(|l| (l.host.clone(), l.port))
        };
        let Some((host, port)) = target else {
            return;
        };
        let outcome = session(&shared, generation, &host, port).await;
        {
            let mut state = shared.lock().await;
            let Some(link) = link_of(&mut state, generation) else {
                return;
            };
            let was_connected = link.state == LinkState::Connected;
            link.state = LinkState::Connect;
            if was_connected {
                link.down_since_ms = crate::time::unix_ms();
            }
            if let Err(reason) = outcome {
                crate::log::warning(&reason);
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// The longest handshake reply line accepted from a primary.
const MAX_REPLY_LINE: usize = 64 * 1024;

/// The connection to the primary, with what was read and not yet used.
struct Wire {
    reader: OwnedReadHalf,
    writer: OwnedWriteHalf,
    buf: BytesMut,
    timeout: Duration,
}

impl Wire {
    async fn send(&mut self, args: &[&[u8]]) -> Result<(), String> {
        let mut out = Vec::new();
        super::encode(&mut out, args);
        self.writer
            .write_all(&out)
            .await
            .map_err(|e| format!("Error writing to MASTER: {}", e))
    }

    async fn fill(&mut self) -> Result<(), String> {
        match tokio::time::timeout(self.timeout, self.reader.read_buf(&mut self.buf)).await {
            Err(_) => Err("Timeout connecting to the MASTER...".into()),
            Ok(Err(e)) => Err(format!("Error reading from MASTER: {}", e)),
            Ok(Ok(0)) => Err("Master closed the connection".into()),
            Ok(Ok(_)) => Ok(()),
        }
    }

    /// A REPLCONF the handshake can do without: a primary that refuses it is only noted.
    async fn replconf(&mut self, args: &[&[u8]], what: &str) -> Result<(), String> {
        let mut command: Vec<&[u8]> = vec![b"REPLCONF"];
        command.extend_from_slice(args);
        self.send(&command).await?;
        let reply = self.reply().await?;
        if reply.starts_with('-') {
            crate::log::notice(&format!(
                "(Non critical) Master does not understand REPLCONF {}: {}",
                what, reply
            ));
        }
        Ok(())
    }

    /// One reply line, without its line end.
    async fn line(&mut self) -> Result<String, String> {
        loop {
            if let Some(nl) = self.buf.iter().position(|&b| b == b'\n') {
                let line = self.buf.split_to(nl + 1);
                let text = String::from_utf8_lossy(&line[..nl]);
                return Ok(text.trim_end_matches('\r').to_string());
            }
            // A reply line is short: whatever sends this much without a line end is not a
            // primary speaking the protocol.
            if self.buf.len() > MAX_REPLY_LINE {
                return Err("Bad protocol from MASTER: reply line too long".into());
            }
            self.fill().await?;
        }
    }

    /// A reply line, skipping the empty lines a primary sends to keep the link alive while it
    /// prepares the snapshot.
    async fn reply(&mut self) -> Result<String, String> {
        loop {
            let line = self.line().await?;
            if !line.is_empty() {
                return Ok(line);
            }
        }
    }

    async fn exact(&mut self, len: usize) -> Result<Bytes, String> {
        while self.buf.len() < len {
            self.fill().await?;
        }
        Ok(self.buf.split_to(len).freeze())
    }
}

/// What the handshake needs from the server's state.
struct Handshake {
    timeout: Duration,
    auth: Option<(String, String)>,
    listening_port: u16,
    psync: Option<(String, u64)>,
}

fn handshake_settings(state: &mut ServerState, generation: u64) -> Option<Handshake> {
    let fresh = link_of(state, generation)?.fresh;
    let password = state.config.get("masterauth").to_string();
    let user = state.config.get("masteruser").to_string();
    let announced = state.config.get_i64("replica-announce-port");
    Some(Handshake {
        timeout: Duration::from_secs(state.config.get_i64("repl-timeout").max(1) as u64),
        auth: (!password.is_empty()).then_some((user, password)),
        listening_port: if announced > 0 {
            announced as u16
        } else {
            state.tcp_port
        },
        psync: (!fresh).then(|| {
            (
                state.replication.replid.clone(),
                state.replication.offset + 1,
            )
        }),
    })
}

fn set_link_state(shared_state: &mut ServerState, generation: u64, to: LinkState) -> bool {
    match link_of(shared_state, generation) {
        Some(link) => {
            link.state = to;
            link.last_io_ms = crate::time::unix_ms();
            true
        }
        None => false,
    }
}

async fn session(
    shared: &Arc<Shared>,
    generation: u64,
    host: &str,
    port: u16,
) -> Result<(), String> {
    let settings = {
        let mut state = shared.lock().await;
        if !set_link_state(&mut state, generation, LinkState::Connecting) {
            return Ok(());
        }
        crate::log::notice(&format!("Connecting to MASTER {}:{}", host, port));
        crate::log::notice("MASTER <-> REPLICA sync started");
        match handshake_settings(&mut state, generation) {
            Some(settings) => settings,
            None => return Ok(()),
        }
    };
    let stream = tokio::time::timeout(settings.timeout, TcpStream::connect((host, port)))
        .await
        .map_err(|_| "Timeout connecting to the MASTER...".to_string())?
        .map_err(|e| format!("Unable to connect to MASTER: {}", e))?;
    let _ = stream.set_nodelay(true);
    crate::log::notice("Non blocking connect for SYNC fired the event.");
    if !set_link_state(&mut *shared.lock().await, generation, LinkState::Handshake) {
        return Ok(());
    }
    let (reader, writer) = stream.into_split();
    let mut wire = Wire {
        reader,
        writer,
        buf: BytesMut::with_capacity(1 << 16),
        timeout: settings.timeout,
    };
    wire.send(&[b"PING"]).await?;
    let pong = wire.reply().await?;
    // A primary that wants a password still answers: the handshake goes on to AUTH.
    if pong.starts_with('-')
        && !pong.starts_with("-NOAUTH")
        && !pong.starts_with("-NOPERM")
        && !pong.starts_with("-ERR operation not permitted")
    {
        return Err(format!("Error reply to PING from master: '{}'", pong));
    }
    crate::log::notice("Master replied to PING, replication can continue...");
    if let Some((user, password)) = &settings.auth {
        if user.is_empty() {
            wire.send(&[b"AUTH", password.as_bytes()]).await?;
        } else {
            wire.send(&[b"AUTH", user.as_bytes(), password.as_bytes()])
                .await?;
        }
        let reply = wire.reply().await?;
        if reply.starts_with('-') {
            return Err(format!("Unable to AUTH to MASTER: {}", reply));
        }
    }
    let port_text = settings.listening_port.to_string();
    wire.replconf(&[b"listening-port", port_text.as_bytes()], "listening-port")
        .await?;
    wire.replconf(&[b"capa", b"eof", b"capa", b"psync2"], "capa")
        .await?;
    match &settings.psync {
        Some((replid, offset)) => {
            crate::log::notice(&format!(
                "Trying a partial resynchronization (request {}:{}).",
                replid, offset
            ));
            let offset = offset.to_string();
            wire.send(&[b"PSYNC", replid.as_bytes(), offset.as_bytes()])
                .await?;
        }
        None => {
            crate::log::notice("Partial resynchronization not possible (no cached master)");
            wire.send(&[b"PSYNC", b"?", b"-1"]).await?;
        }
    }
    let reply = wire.reply().await?;
    if let Some(rest) = reply.strip_prefix("+FULLRESYNC ") {
        let mut parts = rest.split_whitespace();
        let (Some(replid), Some(Ok(offset))) = (parts.next(), parts.next().map(str::parse::<u64>))
        else {
            return Err(format!("Bad reply to PSYNC from master: {}", reply));
        };
        crate::log::notice(&format!("Full resync from master: {}:{}", replid, offset));
        full_sync(shared, generation, &mut wire, replid.to_string(), offset).await?;
    } else if let Some(rest) = reply.strip_prefix("+CONTINUE") {
        crate::log::notice("Successful partial resynchronization with master.");
        let mut state = shared.lock().await;
        if link_of(&mut state, generation).is_none() {
            return Ok(());
        }
        let new_replid = rest.trim();
        let replication = &mut state.replication;
        if !new_replid.is_empty() && new_replid != replication.replid {
            // The primary follows a new history that continues ours.
            replication.replid2 = std::mem::replace(&mut replication.replid, new_replid.into());
            replication.second_replid_offset = replication.offset as i64 + 1;
            crate::log::notice(&format!(
                "Master replication ID changed to {}",
                replication.replid
            ));
            disconnect_replicas(&mut state);
        }
        super::ensure_backlog(&mut state);
        crate::log::notice("MASTER <-> REPLICA sync: Master accepted a Partial Resynchronization.");
        set_link_state(&mut state, generation, LinkState::Connected);
    } else if reply.starts_with("-NOMASTERLINK") || reply.starts_with("-LOADING") {
        return Err(format!(
            "Master is currently unable to PSYNC but should be in the future: {}",
            reply
        ));
    } else {
        return Err(format!("Unexpected reply to PSYNC from master: {}", reply));
    }
    apply_stream(shared, generation, wire).await
}

/// Receives the snapshot of a full resync and loads it in place of the dataset.
async fn full_sync(
    shared: &Arc<Shared>,
    generation: u64,
    wire: &mut Wire,
    replid: String,
    offset: u64,
) -> Result<(), String> {
    {
        let mut state = shared.lock().await;
        if !set_link_state(&mut state, generation, LinkState::Sync) {
            return Ok(());
        }
    }
    let header = wire.reply().await?;
    if header.starts_with('-') {
        return Err(format!(
            "MASTER aborted replication with an error: {}",
            header
        ));
    }
    let Some(size) = header.strip_prefix('$') else {
        return Err(format!(
            "Bad protocol from MASTER, the first byte is not '$' (we received '{}'), are you sure the host and port are right?",
            header
        ));
    };
    let payload = if let Some(mark) = size.strip_prefix("EOF:") {
        // Diskless: the snapshot ends with the 40-byte mark.
        let mark = mark.as_bytes().to_vec();
        crate::log::notice(
            "MASTER <-> REPLICA sync: receiving streamed RDB from master with EOF to disk",
        );
        loop {
            if wire.buf.len() >= mark.len() && wire.buf.ends_with(&mark) {
                let mut data = wire.buf.split();
                data.truncate(data.len() - mark.len());
                break data.freeze();
            }
            wire.fill().await?;
        }
    } else {
        let len: usize = size
            .parse()
            .map_err(|_| format!("Bad snapshot length from MASTER: {}", header))?;
        crate::log::notice(&format!(
            "MASTER <-> REPLICA sync: receiving {} bytes from master to disk",
            len
        ));
        {
            let mut state = shared.lock().await;
            if let Some(link) = link_of(&mut state, generation) {
                link.sync_total_bytes = len as i64;
            }
        }
        wire.exact(len).await?
    };
    let mut state = shared.lock().await;
    if link_of(&mut state, generation).is_none() {
        return Ok(());
    }
    load_snapshot(&mut state, &payload)?;
    let replication = &mut state.replication;
    replication.replid = replid;
    replication.offset = offset;
    replication.replid2 = super::NO_REPLID.to_string();
    replication.second_replid_offset = -1;
    replication.backlog = None;
    replication.selected_db = None;
    super::ensure_backlog(&mut state);
    if let Some(link) = link_of(&mut state, generation) {
        link.fresh = false;
        link.stream_db = 0;
    }
    crate::log::notice("MASTER <-> REPLICA sync: Finished with success");
    // The append-only file starts over from the loaded dataset.
    if state.aof.is_on() && state.aof.rewrite.is_none() {
        let _ = crate::persist::aof::start_rewrite(&mut state);
    }
    set_link_state(&mut state, generation, LinkState::Connected);
    Ok(())
}

/// Replaces the dataset with a primary's snapshot, keeping the file as `dbfilename` as a
/// disk-based load does.
fn load_snapshot(state: &mut ServerState, payload: &[u8]) -> Result<(), String> {
    if let Some(bgsave) = state.persistence.bgsave.take() {
        bgsave.abandon(state);
    }
    disconnect_replicas(state);
    if state.config.get("repl-diskless-load") == "disabled" {
        let target = state.config.get("dbfilename").to_string();
        let temp = format!(
            "temp-{}.{}.rdb",
            crate::time::unix_ms() / 1000,
            std::process::id()
        );
        let kept = std::fs::write(&temp, payload).and_then(|()| std::fs::rename(&temp, &target));
        if let Err(e) = kept {
            let _ = std::fs::remove_file(&temp);
            crate::log::warning(&format!(
                "Failed trying to rename the temp DB into {} in MASTER <-> REPLICA synchronization: {}",
                target,
                crate::persist::strerror(&e)
            ));
        }
    }
    crate::log::notice("MASTER <-> REPLICA sync: Flushing old data");
    state.replication.local_expires.clear();
    let now = crate::time::unix_ms();
    crate::persist::snapshot::empty_dataset(state, now);
    crate::log::notice("MASTER <-> REPLICA sync: Loading DB in memory");
    crate::persist::loading::start(state);
    crate::persist::loading::file_started(state, payload.len() as u64);
    let loaded = crate::persist::snapshot::load_rdb(state, payload);
    crate::persist::loading::stop(state);
    match loaded {
        Ok(loaded) => {
            crate::log::notice(&format!(
                "Done loading RDB, keys loaded: {}, keys expired: {}.",
                loaded.keys, loaded.expired
            ));
            state.persistence.dirty_at_last_save = state.dirty();
            Ok(())
        }
        Err(()) => {
            crate::persist::snapshot::empty_dataset(state, now);
            Err(
                "Failed trying to load the MASTER synchronization DB from disk, check server logs."
                    .into(),
            )
        }
    }
}

/// Applies the primary's stream until the link breaks or the primary changes. Meanwhile the
/// link is a client in the registry (flag M), which CLIENT KILL can close.
async fn apply_stream(shared: &Arc<Shared>, generation: u64, wire: Wire) -> Result<(), String> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let client = {
        let mut state = shared.lock().await;
        let id = state.next_client_id;
        state.next_client_id += 1;
        let text = |addr: std::io::Result<std::net::SocketAddr>| {
            addr.map(|a| a.to_string()).unwrap_or_default()
        };
        let mut client = ClientState::new(
            id,
            text(wire.reader.peer_addr()),
            text(wire.reader.local_addr()),
            crate::time::unix_ms(),
            true,
        );
        client.from_primary = true;
        if let Some(link) = link_of(&mut state, generation) {
            client.db = link.stream_db;
        }
        state.clients.insert(
            id,
            crate::client::ClientEntry::new(&client, tx, Default::default()),
        );
        client
    };
    let id = client.id;
    let outcome = apply_as(shared, generation, wire, client, rx).await;
    shared.lock().await.clients.remove(&id);
    outcome
}

async fn apply_as(
    shared: &Arc<Shared>,
    generation: u64,
    mut wire: Wire,
    mut client: ClientState,
    mut rx: tokio::sync::mpsc::UnboundedReceiver<crate::client::Outbound>,
) -> Result<(), String> {
    let mut parser = RequestParser::default();
    let limits = ParseLimits {
        max_bulk_len: i64::MAX,
        authenticated: true,
    };
    let mut args = Vec::new();
    let mut acks = tokio::time::interval(Duration::from_secs(1));
    let mut applied = { shared.lock().await.replication.offset };
    // What came with the handshake's last reply is the start of the stream.
    let mut have_data = !wire.buf.is_empty();
    loop {
        if !have_data {
            let read = tokio::select! {
                read = tokio::time::timeout(wire.timeout, wire.reader.read_buf(&mut wire.buf)) => Some(Some(read)),
                _ = acks.tick() => Some(None),
                message = rx.recv() => match message {
                    Some(crate::client::Outbound::Close) | None => None,
                    Some(_) => continue,
                },
            };
            let Some(read) = read else {
                return Err("Connection with master lost.".into());
            };
            match read {
                None => {
                    send_ack(&mut wire, applied).await?;
                    continue;
                }
                Some(Err(_)) => return Err("MASTER timeout: no data nor PING received...".into()),
                Some(Ok(Err(e))) => return Err(format!("Error reading from MASTER: {}", e)),
                Some(Ok(Ok(0))) => return Err("Connection with master lost.".into()),
                Some(Ok(Ok(_))) => {}
            }
        }
        have_data = false;
        let mut ack_requests = Vec::new();
        {
            let mut state = shared.lock().await;
            if link_of(&mut state, generation).is_none() {
                return Ok(());
            }
            // The primary decides when its keys expire: its commands see every key it sent.
            for db in state.dbs.iter_mut() {
                db.pause_expiry(true);
            }
            let mut clock = crate::commands::BatchClock::now();
            let mut replies = Vec::new();
            let outcome = loop {
                args.clear();
                match parser.parse_into(&mut wire.buf, limits, &mut args) {
                    Ok(false) => break Ok(()),
                    Err(e) => break Err(format!("Protocol error from MASTER: {}", e.0)),
                    Ok(true) => {}
                }
                if args.is_empty() {
                    continue;
                }
                if is_getack(&args) {
                    ack_requests.push(state.replication.offset);
                } else {
                    crate::commands::process_request(
                        &mut state,
                        &mut client,
                        &args,
                        &mut replies,
                        &mut clock,
                    );
                    if replies.first() == Some(&b'-') {
                        log_error_to_primary(&replies, &args[0]);
                    }
                    replies.clear();
                }
                // The command goes on to this server's replicas and backlog as it came.
                let parts: Vec<&[u8]> = args.iter().map(|a| &a[..]).collect();
                let mut raw = Vec::new();
                super::encode(&mut raw, &parts);
                super::send(&mut state, raw);
            };
            for db in state.dbs.iter_mut() {
                db.pause_expiry(false);
            }
            super::write_batch_effects(&mut state);
            applied = state.replication.offset;
            if let Some(link) = link_of(&mut state, generation) {
                link.last_io_ms = crate::time::unix_ms();
                link.stream_db = client.db;
            }
            outcome?;
        }
        for offset in ack_requests {
            send_ack(&mut wire, offset).await?;
        }
    }
}

/// A command from the primary failed here: the datasets may have diverged (Redis logs the
/// same line and goes on, under `propagation-error-behavior ignore`).
fn log_error_to_primary(reply: &[u8], command: &[u8]) {
    let text = String::from_utf8_lossy(&reply[1..]);
    crate::log::warning(&format!(
        "== CRITICAL == This replica is sending an error to its master: '{}' after processing the command '{}'",
        text.trim_end(),
        String::from_utf8_lossy(command).to_lowercase()
    ));
}

fn is_getack(args: &[Bytes]) -> bool {
    args.len() >= 2
        && args[0].eq_ignore_ascii_case(b"replconf")
        && args[1].eq_ignore_ascii_case(b"getack")
}

async fn send_ack(wire: &mut Wire, offset: u64) -> Result<(), String> {
    let offset = offset.to_string();
    wire.send(&[b"REPLCONF", b"ACK", offset.as_bytes()]).await
}
