//! Undoing a script's writes: a journal over every database for one run (see
//! [`moonkv_keyspace::Journal`]), plus what lies outside the databases: SWAPDB exchanges
//! and the effects waiting to be replicated.

use crate::state::ServerState;
use moonkv_keyspace::Completeness;

/// What a journaled run changed outside the databases' own journals.
pub struct RunJournal {
    /// SWAPDB exchanges, in order (undone after the databases' journals, newest first).
    swaps: Vec<(usize, usize)>,
    /// How many effects were waiting for replication when the run started.
    replication_mark: usize,
}

impl ServerState {
    /// Starts journaling every change to the keyspace.
    pub fn start_journal(&mut self, completeness: Completeness) {
        for db in self.dbs.iter_mut() {
            db.start_journal(completeness);
        }
        self.journal = Some(RunJournal {
            swaps: Vec::new(),
            replication_mark: self.replication.pending.len(),
        });
    }

    /// Whether a journal is on and can still undo everything.
    pub fn journal_can_undo(&self) -> bool {
        self.journal.is_some() && self.dbs.iter().all(|db| db.journal_complete())
    }

    /// Notes a SWAPDB for the journal, if one is on.
    pub fn journal_swap(&mut self, a: usize, b: usize) {
        if let Some(j) = self.journal.as_mut() {
            j.swaps.push((a, b));
        }
    }

    /// Stops journaling and keeps every change.
    pub fn commit_journal(&mut self) {
        if self.journal.take().is_some() {
            for db in self.dbs.iter_mut() {
                db.commit_journal();
            }
        }
    }

    /// Stops journaling and puts the keyspace back as it was when the journal started; the
    /// changes' effects are not replicated. False (and nothing undone) if the journal had
    /// given up.
    pub fn undo_journal(&mut self) -> bool {
        if !self.journal_can_undo() {
            self.commit_journal();
            return false;
        }
        let Some(run) = self.journal.take() else {
            return false;
        };
        for db in self.dbs.iter_mut() {
            db.undo_journal();
        }
        for &(a, b) in run.swaps.iter().rev() {
            let (low, high) = (a.min(b), a.max(b));
            let (left, right) = self.dbs.split_at_mut(high);
            left[low].swap_contents(&mut right[0]);
        }
        self.replication.pending.truncate(run.replication_mark);
        true
    }
}
