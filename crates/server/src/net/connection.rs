//! One client connection: read, parse, execute in batches, write.

use crate::client::{ClientEntry, ClientState, Outbound};
use crate::commands;
use crate::log;
use crate::server::Shared;
use crate::state::ServerState;
use bytes::BytesMut;
use moonkv_protocol::{ParseLimits, Protocol, RequestParser};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

const READ_CHUNK: usize = 16 * 1024;

/// The settings a connection needs outside the lock, refreshed after every batch so CONFIG SET
/// takes effect on the next read.
#[derive(Clone, Copy)]
struct ConnLimits {
    max_bulk_len: i64,
    query_buffer_limit: usize,
}

impl From<&crate::state::Settings> for ConnLimits {
    fn from(s: &crate::state::Settings) -> Self {
        ConnLimits { max_bulk_len: s.proto_max_bulk_len, query_buffer_limit: s.client_query_buffer_limit }
    }
}

fn format_addr(a: &SocketAddr) -> String {
    match a {
        SocketAddr::V4(v4) => format!("{}:{}", v4.ip(), v4.port()),
        SocketAddr::V6(v6) => format!("{}:{}", v6.ip(), v6.port()),
    }
}

/// Registers a new client, or refuses it when `maxclients` is reached.
fn register(state: &mut ServerState, peer: &SocketAddr, local: &SocketAddr, tx: mpsc::UnboundedSender<Outbound>) -> Result<ClientState, &'static str> {
    state.stats.total_connections_received += 1;
    if state.clients.len() >= state.settings.maxclients {
        state.stats.rejected_connections += 1;
        return Err("-ERR max number of clients reached\r\n");
    }
    let id = state.next_client_id;
    state.next_client_id += 1;
    let now = crate::time::unix_ms();
    let authenticated = state.settings.requirepass.is_none();
    let client = ClientState::new(id, format_addr(peer), format_addr(local), now, authenticated);
    state.clients.insert(
        id,
        ClientEntry {
            id,
            addr: client.addr.clone(),
            laddr: client.laddr.clone(),
            name: None,
            created_ms: now,
            last_interaction_ms: now,
            db: 0,
            last_command: "",
            monitor: false,
            no_evict: false,
            closing: false,
            sub: 0,
            psub: 0,
            multi: -1,
            protocol: Protocol::Resp2,
            tx,
        },
    );
    Ok(client)
}

/// Removes every trace of a client: registry, subscriptions, MONITOR, WATCHed keys.
fn unregister(state: &mut ServerState, client: &mut ClientState) {
    state.clients.remove(&client.id);
    state.monitors.remove(&client.id);
    commands::forget_client(state, client);
}

/// Runs one request, turning a panic (a bug) into an error reply for this request instead of
/// losing the connection or the server.
fn run_guarded(state: &mut ServerState, client: &mut ClientState, args: &[bytes::Bytes], out: &mut Vec<u8>, clock: &mut commands::BatchClock) {
    let len_before = out.len();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| commands::process_request(state, client, args, out, clock)));
    if result.is_err() {
        out.truncate(len_before);
        let name = String::from_utf8_lossy(&args[0]).into_owned();
        log::warning(&format!("Internal error while executing '{}' for client {}", name, client.addr));
        out.extend_from_slice(b"-ERR internal error while executing the command\r\n");
    }
}

pub async fn serve_connection(shared: Arc<Shared>, stream: TcpStream, peer: SocketAddr) {
    let local = stream.local_addr().unwrap_or(peer);
    let (tx, mut rx) = mpsc::unbounded_channel();
    let registered = {
        let mut state = shared.lock_async().await;
        register(&mut state, &peer, &local, tx).map(|c| (c, ConnLimits::from(&state.settings)))
    };
    let (mut reader, mut writer) = stream.into_split();
    let (mut client, mut limits) = match registered {
        Ok(r) => r,
        Err(msg) => {
            let _ = writer.write_all(msg.as_bytes()).await;
            return;
        }
    };
    log::log(log::Level::Verbose, &format!("Accepted {}", client.addr));

    let mut parser = RequestParser::new();
    let mut inbuf = BytesMut::with_capacity(READ_CHUNK);
    let mut out: Vec<u8> = Vec::with_capacity(READ_CHUNK);
    let mut args: Vec<bytes::Bytes> = Vec::with_capacity(8);
    'conn: loop {
        if inbuf.capacity() - inbuf.len() < 1024 {
            inbuf.reserve(READ_CHUNK);
        }
        tokio::select! {
            msg = rx.recv() => match msg {
                Some(Outbound::Push(bytes)) => {
                    if writer.write_all(&bytes).await.is_err() {
                        break 'conn;
                    }
                }
                Some(Outbound::Close) | None => break 'conn,
            },
            read = reader.read_buf(&mut inbuf) => {
                let n = match read {
                    Ok(0) | Err(_) => break 'conn,
                    Ok(n) => n,
                };
                let mut protocol_error = None;
                // Parse the first complete request before taking the lock; then run it and every
                // further complete request already buffered, parsing each under the lock, so a
                // pipeline takes the lock once and no per-request list is built.
                let parse_limits = |client: &ClientState, limits: &ConnLimits| ParseLimits { max_bulk_len: limits.max_bulk_len, authenticated: client.authenticated };
                let mut have_request = false;
                loop {
                    args.clear();
                    match parser.parse_into(&mut inbuf, parse_limits(&client, &limits), &mut args) {
                        Ok(true) if args.is_empty() => continue,
                        Ok(true) => have_request = true,
                        Ok(false) => {}
                        Err(e) => protocol_error = Some(e),
                    }
                    break;
                }
                if have_request {
                    let mut state = shared.lock_async().await;
                    state.stats.total_net_input_bytes += n as u64;
                    let out_before = out.len();
                    let mut clock = commands::BatchClock::now();
                    loop {
                        run_guarded(&mut state, &mut client, &args, &mut out, &mut clock);
                        if client.close_after_reply || state.shutdown_requested {
                            break;
                        }
                        // AUTH may have changed the limits that apply to the next request.
                        limits = ConnLimits::from(&state.settings);
                        // Find the next non-empty request, if one is complete.
                        let found = loop {
                            args.clear();
                            match parser.parse_into(&mut inbuf, parse_limits(&client, &limits), &mut args) {
                                Ok(true) if args.is_empty() => continue,
                                Ok(true) => break true,
                                Ok(false) => break false,
                                Err(e) => {
                                    protocol_error = Some(e);
                                    break false;
                                }
                            }
                        };
                        if !found {
                            break;
                        }
                    }
                    state.stats.total_net_output_bytes += (out.len() - out_before) as u64;
                    commands::publish_client_state(&mut state, &client);
                    limits = ConnLimits::from(&state.settings);
                    if state.shutdown_requested {
                        drop(state);
                        shared.shutdown.notify_one();
                        break 'conn;
                    }
                }
                if inbuf.len() > limits.query_buffer_limit {
                    log::warning(&format!("Closing client that reached max query buffer length: addr={}", client.addr));
                    break 'conn;
                }
                if let Some(e) = protocol_error {
                    out.extend_from_slice(format!("-ERR {}\r\n", e).as_bytes());
                    let _ = writer.write_all(&out).await;
                    log::log(log::Level::Verbose, &format!("Protocol error ({}) from client: addr={}", e.0, client.addr));
                    break 'conn;
                }
                if !out.is_empty() {
                    if writer.write_all(&out).await.is_err() {
                        break 'conn;
                    }
                    out.clear();
                    if out.capacity() > 1 << 20 {
                        out = Vec::with_capacity(READ_CHUNK);
                    }
                }
                if client.close_after_reply {
                    break 'conn;
                }
            }
        }
    }
    let mut state = shared.lock_async().await;
    unregister(&mut state, &mut client);
}
