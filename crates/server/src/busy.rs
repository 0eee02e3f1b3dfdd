//! Serving clients while a slow script holds the server lock.
//!
//! Every command runs under the server lock, and a script keeps it for its whole run. Once a
//! script has run longer than `busy-reply-threshold`, Redis goes back to its event loop from
//! the script's hook and answers other clients (most of them with `-BUSY`). moonkv does the
//! same with a [`Desk`]: when the script becomes busy it opens the desk, and connections that
//! find the lock held hand their work to it instead of waiting. The script's hook serves the
//! desk every few milliseconds with the state it holds, so that work takes the same path as
//! any other (for a command: admission, where all but a few commands are answered `-BUSY`).
//! When the script ends, the desk closes and work not yet served goes back to its connection,
//! which then waits for the lock as usual.

use crate::state::ServerState;
use parking_lot::Mutex;
use std::collections::VecDeque;
use tokio::sync::{oneshot, Notify};

/// A piece of work for the state: called with the state, or with None if the desk closed
/// before serving it.
type Job = Box<dyn FnOnce(Option<&mut ServerState>) + Send>;

#[derive(Default)]
pub struct Desk {
    inner: Mutex<Queue>,
    /// Wakes connections waiting for the lock when the desk opens.
    opened: Notify,
}

#[derive(Default)]
struct Queue {
    /// Holders that opened the desk and have not closed it yet: a script that turns busy
    /// while the dataset loads opens it a second time, and its end must not close it.
    opened_by: u32,
    open: bool,
    jobs: VecDeque<Job>,
}

impl Desk {
    pub fn is_open(&self) -> bool {
        self.inner.lock().open
    }

    /// A future that completes when the desk opens next; create (and enable) it before
    /// checking [`Desk::is_open`] so an opening in between is not missed.
    pub fn opened(&self) -> tokio::sync::futures::Notified<'_> {
        self.opened.notified()
    }

    /// Opens the desk (a script became busy). Called by the lock holder.
    pub fn open(&self) {
        {
            let mut q = self.inner.lock();
            q.opened_by += 1;
            q.open = true;
        }
        self.opened.notify_waiters();
    }

    /// Closes the desk (the script ended) and hands the work not served back to its owners.
    /// Called by the lock holder, before it releases the lock.
    pub fn close(&self) {
        let jobs = {
            let mut q = self.inner.lock();
            q.opened_by = q.opened_by.saturating_sub(1);
            if q.opened_by > 0 {
                return;
            }
            q.open = false;
            std::mem::take(&mut q.jobs)
        };
        for job in jobs {
            job(None);
        }
    }

    /// Serves the work waiting at the desk with the state. Called by the lock holder.
    pub fn serve(&self, state: &mut ServerState) {
        loop {
            let Some(job) = self.inner.lock().jobs.pop_front() else {
                return;
            };
            job(Some(state));
        }
    }

    /// Hands `input` to the desk for `work` and waits for it to be served: `Ok(output)`;
    /// `Err(Some(input))` when the desk is (or gets) closed, so the caller takes the lock
    /// instead; `Err(None)` if the work was lost (it panicked).
    pub async fn submit<I, O>(
        &self,
        input: I,
        work: impl FnOnce(&mut ServerState, I) -> O + Send + 'static,
    ) -> Result<O, Option<I>>
    where
        I: Send + 'static,
        O: Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |state| {
            let result = match state {
                Some(state) => Ok(work(state, input)),
                None => Err(input),
            };
            let _ = tx.send(result);
        });
        {
            let mut q = self.inner.lock();
            if !q.open {
                drop(q);
                job(None);
            } else {
                q.jobs.push_back(job);
            }
        }
        match rx.await {
            Ok(result) => result.map_err(Some),
            Err(_) => Err(None),
        }
    }
}

impl Drop for Desk {
    fn drop(&mut self) {
        self.inner.lock().opened_by = 0;
        self.close();
    }
}

/// Lets the runtime go on without the current thread, which is about to keep the server lock
/// for long (a busy script). The runtime's other work moves to a new thread; the current
/// thread goes on as a blocking thread. Returns once the runtime was seen making progress
/// elsewhere (or after a short wait), so the hand-over sticks.
pub fn hand_off_runtime() {
    let Ok(handle) = tokio::runtime::Handle::try_current() else {
        return;
    };
    if handle.runtime_flavor() != tokio::runtime::RuntimeFlavor::MultiThread {
        return;
    }
    tokio::task::block_in_place(|| {
        let (tx, rx) = std::sync::mpsc::channel();
        handle.spawn(async move {
            let _ = tx.send(());
        });
        let _ = rx.recv_timeout(std::time::Duration::from_millis(200));
    });
}
