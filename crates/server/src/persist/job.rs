//! Work on a thread of its own that the cron collects when it ends and that a shutdown (or a
//! superseding save) can abandon: the background save and the AOF rewrite.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

pub struct BackgroundJob {
    started: Instant,
    cancel: Arc<AtomicBool>,
    outcome: mpsc::Receiver<io::Result<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl BackgroundJob {
    /// Runs `work` on a thread named `name`; `work` checks the flag it is given and stops
    /// early once it is set.
    pub fn spawn(
        name: &str,
        work: impl FnOnce(&AtomicBool) -> io::Result<()> + Send + 'static,
    ) -> io::Result<BackgroundJob> {
        let cancel = Arc::new(AtomicBool::new(false));
        let (report, outcome) = mpsc::channel();
        let flag = cancel.clone();
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                let _ = report.send(work(&flag));
            })?;
        Ok(BackgroundJob {
            started: Instant::now(),
            cancel,
            outcome,
            thread: Some(thread),
        })
    }

    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// The outcome once the work ended (None while it runs); a thread that ended without
    /// reporting panicked, which counts as a failure.
    pub fn finished(&mut self) -> Option<io::Result<()>> {
        let outcome = match self.outcome.try_recv() {
            Ok(result) => result,
            Err(mpsc::TryRecvError::Empty) => return None,
            Err(mpsc::TryRecvError::Disconnected) => {
                Err(io::Error::other("the background job stopped unexpectedly"))
            }
        };
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        Some(outcome)
    }

    /// Asks the work to stop, without waiting: the caller may hold the server lock, which
    /// the work may be waiting for. The work ends at its next check of the flag.
    pub fn abandon(self) {
        self.cancel.store(true, Ordering::Relaxed);
    }
}
