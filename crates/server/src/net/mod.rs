//! Networking: listeners, and one task per connection that reads requests, runs them under
//! the server lock in batches, and writes replies. Socket I/O always happens outside the lock,
//! so a slow client never holds up the data path.

mod connection;

pub use connection::serve_connection;

use crate::log;
use crate::server::Shared;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::{TcpListener, TcpSocket};

/// Binds every address of the `bind` directive. A `-` prefix marks an address that may be
/// unavailable (like `-::1` on hosts without IPv6), as in Redis. Port 0 disables TCP.
pub async fn bind_all(
    binds: &[String],
    port: u16,
    backlog: u32,
) -> Result<Vec<TcpListener>, String> {
    let mut listeners = Vec::new();
    if port == 0 {
        return Ok(listeners);
    }
    for bind in binds {
        let (optional, host) = match bind.strip_prefix('-') {
            Some(h) => (true, h),
            None => (false, bind.as_str()),
        };
        let host = if host == "*" { "0.0.0.0" } else { host };
        let addr: Result<SocketAddr, _> = if host.contains(':') {
            format!("[{}]:{}", host, port).parse()
        } else {
            format!("{}:{}", host, port).parse()
        };
        let result = match addr {
            Ok(addr) => listen(addr, backlog),
            Err(e) => Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                e.to_string(),
            )),
        };
        match result {
            Ok(l) => listeners.push(l),
            Err(e) if optional => log::log(
                log::Level::Verbose,
                &format!("Skipping optional bind {}: {}", host, e),
            ),
            Err(e) => {
                return Err(format!(
                    "Warning: Could not create server TCP listening socket {}:{}: {}",
                    host, port, e
                ))
            }
        }
    }
    if listeners.is_empty() {
        return Err("Failed listening on port: no address could be bound".into());
    }
    Ok(listeners)
}

fn listen(addr: SocketAddr, backlog: u32) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv6() {
        TcpSocket::new_v6()?
    } else {
        TcpSocket::new_v4()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(backlog.max(1))
}

pub async fn accept_loop(shared: Arc<Shared>, listener: TcpListener) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let _ = stream.set_nodelay(true);
                tokio::spawn(serve_connection(shared.clone(), stream, peer));
            }
            Err(e) => {
                log::warning(&format!("Accepting client connection: {}", e));
                // Out of file descriptors and similar: back off briefly instead of spinning.
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        }
    }
}
