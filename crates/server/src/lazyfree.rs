//! Freeing big values away from the data path: UNLINK, FLUSHDB/FLUSHALL ASYNC and the
//! `lazyfree-lazy-*` settings hand values to one background thread, as Redis's lazyfree does,
//! so deleting a million-element collection does not stall every client for milliseconds.

use moonkv_keyspace::Value;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{channel, Sender};
use std::sync::Arc;

pub use moonkv_keyspace::value::LAZYFREE_THRESHOLD as THRESHOLD;

type Garbage = Box<dyn Send>;

pub struct LazyFree {
    tx: Option<Sender<Garbage>>,
    pending: Arc<AtomicU64>,
    freed: Arc<AtomicU64>,
}

impl LazyFree {
    /// Starts the freeing thread. If the thread cannot start, values are freed inline.
    pub fn start() -> Self {
        let (tx, rx) = channel::<Garbage>();
        let pending = Arc::new(AtomicU64::new(0));
        let freed = Arc::new(AtomicU64::new(0));
        let (p, f) = (pending.clone(), freed.clone());
        let spawned = std::thread::Builder::new()
            .name("lazyfree".into())
            .spawn(move || {
                while let Ok(garbage) = rx.recv() {
                    drop(garbage);
                    p.fetch_sub(1, Ordering::Relaxed);
                    f.fetch_add(1, Ordering::Relaxed);
                }
            });
        LazyFree {
            tx: spawned.ok().map(|_| tx),
            pending,
            freed,
        }
    }

    /// Frees `garbage` on the background thread.
    pub fn free<T: Send + 'static>(&self, garbage: T) {
        let Some(tx) = &self.tx else {
            return drop(garbage);
        };
        self.pending.fetch_add(1, Ordering::Relaxed);
        if let Err(returned) = tx.send(Box::new(garbage)) {
            self.pending.fetch_sub(1, Ordering::Relaxed);
            drop(returned);
        }
    }

    /// Frees a deleted value, in the background when `lazily` and it is big enough to matter.
    pub fn dispose(&self, value: Value, lazily: bool) {
        if lazily && value.free_effort() > THRESHOLD {
            self.free(value);
        }
    }

    /// Hands the values the databases set aside (lazy expiry, lazy overwrite) to the thread.
    pub fn collect(&self, dbs: &mut [moonkv_keyspace::Db]) {
        for db in dbs {
            for value in db.garbage.drain(..) {
                self.free(value);
            }
        }
    }

    /// INFO `lazyfree_pending_objects`.
    pub fn pending(&self) -> u64 {
        self.pending.load(Ordering::Relaxed)
    }

    /// INFO `lazyfreed_objects`.
    pub fn freed(&self) -> u64 {
        self.freed.load(Ordering::Relaxed)
    }
}
