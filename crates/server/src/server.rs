//! Server start-up, the periodic cron (active expiry, statistics) and shutdown.

use crate::busy::Desk;
use crate::config::Config;
use crate::log;
use crate::net;
use crate::state::ServerState;
use std::io::IsTerminal;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// What every connection task shares.
pub struct Shared {
    /// The server state behind the lock under which commands execute. Every command runs
    /// entirely under it, which is what makes commands, transactions and scripts atomic.
    state: tokio::sync::Mutex<ServerState>,
    /// Where work for the state goes while a busy script holds the lock (see `crate::busy`).
    pub desk: Arc<Desk>,
    /// Woken when SHUTDOWN or a signal asks the server to stop.
    pub shutdown: Notify,
}

/// How a connection got at the state: under the lock, or (while a busy script holds it)
/// through the desk.
pub enum Access<'a> {
    Locked(tokio::sync::MutexGuard<'a, ServerState>),
    Desk,
}

impl Shared {
    pub fn new(mut state: ServerState) -> Arc<Self> {
        Arc::new_cyclic(|server| {
            state.server = server.clone();
            Shared {
                desk: state.desk.clone(),
                state: tokio::sync::Mutex::new(state),
                shutdown: Notify::new(),
            }
        })
    }

    /// Waits for the lock from a thread outside the runtime (a background save), in the same
    /// queue as connections.
    pub fn lock_from_thread(&self) -> tokio::sync::MutexGuard<'_, ServerState> {
        self.state.blocking_lock()
    }

    /// Waits for the lock. The wait is a queue that the holder wakes on release: no polling,
    /// and no runtime thread is tied up meanwhile, so the runtime keeps accepting
    /// connections, flushing replies and delivering messages.
    pub async fn lock(&self) -> tokio::sync::MutexGuard<'_, ServerState> {
        self.state.lock().await
    }

    /// Waits for the lock, or for the desk to open if a script holding the lock becomes
    /// busy: work for clients goes through here, so that a busy script answers them.
    pub async fn access(&self) -> Access<'_> {
        loop {
            let opened = self.desk.opened();
            tokio::pin!(opened);
            opened.as_mut().enable();
            if let Ok(guard) = self.state.try_lock() {
                return Access::Locked(guard);
            }
            if self.desk.is_open() {
                return Access::Desk;
            }
            tokio::select! {
                guard = self.state.lock() => return Access::Locked(guard),
                _ = &mut opened => {}
            }
        }
    }
}

/// Active expiry: at each cron tick, sample keys with a TTL in each database and delete the
/// expired ones, repeating while more than a quarter of a sample was expired, within a time
/// budget (25% of the tick, like Redis's slow cycle).
fn active_expire_cycle(state: &mut ServerState, budget: Duration) {
    // A replica's keys expire when its primary says so (a DEL in the stream).
    if !state.active_expire_enabled || state.replication.primary.is_some() {
        return;
    }
    let started = Instant::now();
    let now = crate::time::unix_ms();
    let effort = state.config.get_i64("active-expire-effort").clamp(1, 10) as usize;
    let samples = 20 + 5 * (effort - 1);
    let ServerState { dbs, rng, .. } = state;
    for db in dbs.iter_mut() {
        loop {
            if db.expires_len() == 0 || started.elapsed() > budget {
                break;
            }
            let (sampled, expired) = db.active_expire_round(now, samples, rng);
            if sampled == 0 || expired * 4 <= sampled {
                break;
            }
        }
    }
}

/// Closes clients idle for longer than `timeout` seconds (0: never), except subscribers,
/// replicas and blocked clients, which legitimately stay silent, as in Redis.
fn close_idle_clients(state: &mut ServerState) {
    let timeout_secs = state.config.get_i64("timeout");
    if timeout_secs <= 0 {
        return;
    }
    let now = crate::time::unix_ms();
    for entry in state.clients.values() {
        let idle = now - entry.last_interaction_ms;
        let exempt = entry.sub + entry.psub > 0
            || state.replication.is_replica(entry.id)
            || entry.primary
            || entry.monitor
            || entry.blocked;
        if !exempt && idle > timeout_secs * 1000 {
            let _ = entry.tx.send(crate::client::Outbound::Close);
        }
    }
}

fn cron(state: &mut ServerState, tick: Duration) {
    active_expire_cycle(state, tick / 4);
    crate::persist::cron(state);
    crate::replication::cron(state);
    state.lazyfree.collect(&mut state.dbs);
    close_idle_clients(state);
    crate::notify::drain_db_events(state);
    let now = Instant::now();
    let processed = state.stats.total_commands_processed;
    let samples = &mut state.stats.ops_samples;
    samples.push((now, processed));
    if samples.len() > 16 {
        samples.remove(0);
    }
}

async fn run_cron(shared: Arc<Shared>) {
    loop {
        let hz = shared.lock().await.settings.hz.max(1);
        let tick = Duration::from_millis(1000 / hz as u64);
        tokio::time::sleep(tick).await;
        let mut state = shared.lock().await;
        cron(&mut state, tick);
    }
}

/// Runs the server until SHUTDOWN or SIGTERM/SIGINT. Returns the process exit code.
pub async fn run(config: Config, config_file: Option<String>) -> i32 {
    let table = crate::commands::table();
    let mut state = ServerState::new(config, table.specs.len());
    state.config_file = config_file;
    state.executable = std::env::args().next().unwrap_or_default();
    // Like Redis, work inside `dir`: the snapshot and its temporary files are relative to it.
    let dir = state.config.get("dir").to_string();
    match crate::persist::enter_dir(&dir) {
        Ok(absolute) => {
            let _ = state.config.set("dir", &absolute, true);
        }
        Err(e) => {
            log::warning(&format!("Can't chdir to '{}': {}", dir, e));
            return 1;
        }
    }
    let port = state.tcp_port;
    let binds: Vec<String> = state
        .config
        .get("bind")
        .split_whitespace()
        .map(String::from)
        .collect();
    let backlog = state.config.get_i64("tcp-backlog") as u32;
    // Redis shows its logo when forced to, or when the log goes to a terminal.
    let banner = state.config.get_bool("always-show-logo")
        || (state.config.get("logfile").is_empty() && std::io::stdout().is_terminal());
    let shared = Shared::new(state);

    let listeners = match net::bind_all(&binds, port, backlog).await {
        Ok(l) => l,
        Err(e) => {
            log::warning(&e);
            // The line tools that start servers on guessed ports look for to try another.
            log::warning(&format!(
                "Failed listening on port {} (tcp), aborting.",
                port
            ));
            return 1;
        }
    };
    if banner {
        log::banner("standalone", &port.to_string());
    }
    log::notice(&format!("Running mode=standalone, port={}.", port));
    log::notice("Server initialized");
    // Clients may connect while the dataset loads: they are answered -LOADING until it is in.
    for listener in listeners {
        tokio::spawn(net::accept_loop(shared.clone(), listener));
    }
    {
        let mut state = shared.lock().await;
        crate::persist::loading::start(&mut state);
        // With `appendonly yes` the append-only file is the source of truth and the snapshot
        // file is not read, as in Redis.
        let loaded = if state.config.get_bool("appendonly") {
            crate::persist::aof::load(&mut state)
                .and_then(|_| crate::persist::aof::open_at_startup(&mut state))
                .map_err(|_| ())
        } else {
            crate::persist::snapshot::load_at_startup(&mut state)
        };
        crate::persist::loading::stop(&mut state);
        if loaded.is_err() {
            return 1;
        }
        // `replicaof` in the configuration: the link starts once the dataset is in.
        crate::replication::link::spawn_task(&state);
    }
    tokio::spawn(run_cron(shared.clone()));
    log::notice("Ready to accept connections");

    loop {
        let reason = wait_for_shutdown(&shared).await;
        if shared.desk.is_open() {
            // A busy script holds the state: saving now would persist its half-done work,
            // and waiting for it could be forever.
            log::warning(reason);
            log::warning("A busy script is running: exiting without the final save.");
            break;
        }
        let mut state = shared.lock().await;
        if state.shutdown_prepared {
            break;
        }
        log::warning(reason);
        log::warning("User requested shutdown...");
        if crate::persist::prepare_shutdown(&mut state, false, false).is_ok() {
            break;
        }
        log::warning("SIGTERM received but errors trying to shut down the server, check the logs for more information");
    }
    log::warning("moonkv is now ready to exit, bye bye...");
    0
}

async fn wait_for_shutdown(shared: &Shared) -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).ok();
    let mut int = signal(SignalKind::interrupt()).ok();
    let term_recv = async {
        match term.as_mut() {
            Some(s) => s.recv().await,
            None => std::future::pending().await,
        }
    };
    let int_recv = async {
        match int.as_mut() {
            Some(s) => s.recv().await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = term_recv => "Received SIGTERM scheduling shutdown...",
        _ = int_recv => "Received SIGINT scheduling shutdown...",
        _ = shared.shutdown.notified() => "SHUTDOWN command received",
    }
}
