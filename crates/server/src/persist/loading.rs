//! The dataset being loaded from disk at start-up. Redis accepts connections while it loads
//! and, every `loading-process-events-interval-bytes`, answers the clients waiting: most
//! commands get `-LOADING`, the few flagged `loading` (INFO, CONFIG, DEBUG, ...) run. moonkv
//! does the same through the desk a busy script uses (see [`crate::busy`]): the loader holds
//! the server lock, opens the desk, and serves it as it goes; admission refuses what may not
//! run while loading.

use crate::state::ServerState;
use std::time::Instant;

/// A load under way (INFO's `loading_*` fields).
pub struct Loading {
    pub started_unix: i64,
    pub started: Instant,
    /// Size of every file to load.
    pub total_bytes: u64,
    /// Bytes of the files already loaded in full.
    done_bytes: u64,
    /// Bytes loaded, in all.
    pub loaded_bytes: u64,
    /// `loaded_bytes` at which the waiting clients are served next.
    serve_at: u64,
    /// `loading-process-events-interval-bytes`, read once for the load.
    serve_every: u64,
}

impl Loading {
    /// Progress in percent, and the estimated seconds left (INFO).
    pub fn progress(&self) -> (f64, u64) {
        if self.total_bytes == 0 {
            return (0.0, 1);
        }
        let perc = self.loaded_bytes as f64 * 100.0 / self.total_bytes as f64;
        let elapsed = self.started.elapsed().as_secs_f64();
        let eta = if self.loaded_bytes == 0 {
            1
        } else {
            let rate = self.loaded_bytes as f64 / elapsed.max(1e-3);
            ((self.total_bytes - self.loaded_bytes.min(self.total_bytes)) as f64 / rate) as u64
        };
        (perc, eta)
    }
}

/// Starts a load (at start-up, DEBUG LOADAOF): clients are served from now on (with
/// `-LOADING` for most commands) until [`stop`].
pub fn start(state: &mut ServerState) {
    state.persistence.loading = Some(Loading {
        started_unix: crate::time::unix_ms() / 1000,
        started: Instant::now(),
        total_bytes: 0,
        done_bytes: 0,
        loaded_bytes: 0,
        serve_at: 0,
        serve_every: state
            .config
            .get_i64("loading-process-events-interval-bytes")
            .max(1) as u64,
    });
    for db in state.dbs.iter_mut() {
        db.pause_expiry(true);
    }
    state.desk.open();
    // This thread stays with the load; the runtime goes on elsewhere, so connections reach
    // the desk.
    crate::busy::hand_off_runtime();
}

/// The load read `offset` bytes of its current file: serves the waiting clients when
/// another `loading-process-events-interval-bytes` have gone by. Nothing when not loading
/// (DEBUG RELOAD loads under the lock as one command).
pub fn progress(state: &mut ServerState, offset: u64) {
    let Some(loading) = state.persistence.loading.as_mut() else {
        return;
    };
    loading.loaded_bytes = loading.done_bytes + offset;
    if loading.loaded_bytes < loading.serve_at {
        return;
    }
    loading.serve_at = loading.loaded_bytes + loading.serve_every;
    let desk = state.desk.clone();
    desk.serve(state);
}

/// A file of `len` bytes is about to be loaded.
pub fn file_started(state: &mut ServerState, len: u64) {
    if let Some(loading) = state.persistence.loading.as_mut() {
        loading.total_bytes += len;
    }
}

/// The current file, `len` bytes, was loaded in full.
pub fn file_done(state: &mut ServerState, len: u64) {
    if let Some(loading) = state.persistence.loading.as_mut() {
        loading.done_bytes += len;
        loading.loaded_bytes = loading.done_bytes;
    }
}

/// The load ended: clients wait for the lock again, and get served normally.
pub fn stop(state: &mut ServerState) {
    if state.persistence.loading.take().is_some() {
        for db in state.dbs.iter_mut() {
            db.pause_expiry(false);
        }
        state.desk.close();
    }
}

/// Redis's `key-load-delay` (and `rdb-key-save-delay`) debugging pause, per key: a positive
/// value sleeps that many microseconds; a negative one -N sleeps 1 microsecond once in N
/// keys.
pub fn debug_delay(micros: i64) {
    use rand::Rng;
    let micros = if micros < 0 {
        u64::from(rand::thread_rng().gen_range(0..micros.unsigned_abs()) == 0)
    } else {
        micros as u64
    };
    if micros > 0 {
        std::thread::sleep(std::time::Duration::from_micros(micros));
    }
}
