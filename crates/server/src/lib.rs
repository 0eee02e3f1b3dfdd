//! moonkv server: networking, client state, the command table and command families.
//!
//! Data flows one way: bytes -> [`moonkv_protocol`] requests -> [`commands`] dispatch ->
//! [`moonkv_keyspace`] -> replies written by a [`moonkv_protocol::ReplySink`] -> bytes.

pub mod blocking;
pub mod busy;
pub mod client;
pub mod commands;
pub mod config;
pub mod journal;
pub mod lazyfree;
pub mod log;
pub mod net;
pub mod notify;
pub mod persist;
pub mod replication;
pub mod scripting;
pub mod server;
pub mod state;
pub mod time;

/// The Redis version moonkv is compatible with, reported to clients (HELLO, INFO).
pub const REDIS_VERSION: &str = "7.0.15";
/// moonkv's own version.
pub const MOONKV_VERSION: &str = env!("CARGO_PKG_VERSION");
