//! The admission word: how many jobs were ever accepted, and whether the
//! pool still accepts jobs, in one atomic; plus the count of admissions
//! taken back.
//!
//! `spawn` admits with one `fetch_add`, which also tells it whether the
//! pool was closed and gives the job its id; the control thread closes
//! with one `fetch_or`. Both are read-modify-writes of the same word, so
//! they are totally ordered: either the spawn came first and is counted in
//! every `pending` a worker computes after the close (so no worker leaves
//! before it ran), or the close came first and the spawn is refused.
//!
//! Workers never write here: each counts the jobs it finished in its own
//! cache line (`WorkerCounters::finished`), and `pending` is
//! `spawned - refused - finished`. The caller sums the finished counts
//! *before* `pending` reads `refused` and `spawned`, so the result can only
//! overestimate: a job counted as finished or refused was counted as
//! spawned earlier. The model in `admission_loom.rs` checks this.
//!
//! Idle workers ask "closed yet?" in every round of their search. Read
//! from the admission word, each look pulled the spawner's hottest cache
//! line away from it, and its next `fetch_add` missed. So `close` also
//! sets a flag in a line of its own, after the bit, and `is_closed` reads
//! that: seeing the flag implies seeing the bit, and a worker that reads
//! it a moment late is woken by the `wake_all` that follows every close.

use crate::loom::{AtomicBool, AtomicUsize};
use crossbeam_utils::CachePadded;
use std::sync::atomic::Ordering::SeqCst;

/// Set once the pool accepts no more jobs.
const CLOSED: usize = 1 << (usize::BITS - 1);

pub(crate) struct Admission {
    // ORDERING (whole type): SeqCst. `admit` and `close` need only the
    // total order of read-modify-writes on one word, but `pending` pairs
    // with the workers' finished counts and with `Signal`'s waiter count
    // (Dekker's pattern), which needs SeqCst.
    /// Admissions ever (refused ones included), plus `CLOSED`.
    spawned: CachePadded<AtomicUsize>,
    /// Admissions taken back: refused after all (closed, or full). Rare.
    refused: AtomicUsize,
    /// Set by `close` after `CLOSED`: what `is_closed` reads, so that its
    /// readers leave `spawned` to the spawners.
    closed: CachePadded<AtomicBool>,
}

impl Admission {
    pub(crate) fn new() -> Admission {
        Admission {
            spawned: CachePadded::new(AtomicUsize::new(0)),
            refused: AtomicUsize::new(0),
            closed: CachePadded::new(AtomicBool::new(false)),
        }
    }

    /// Counts a job in and returns its id (ids start at 1). `None` if the
    /// pool is closed: the admission is already taken back.
    #[must_use]
    pub(crate) fn admit(&self) -> Option<u64> {
        let prev = self.spawned.fetch_add(1, SeqCst);
        if prev & CLOSED != 0 {
            self.take_back();
            return None;
        }
        Some((prev & !CLOSED) as u64 + 1)
    }

    /// Takes back an admission whose job was refused after all.
    pub(crate) fn take_back(&self) {
        self.refused.fetch_add(1, SeqCst);
    }

    /// Stops accepting jobs.
    pub(crate) fn close(&self) {
        self.spawned.fetch_or(CLOSED, SeqCst);
        self.closed.store(true, SeqCst);
    }

    /// Whether `close` has run: `true` means every admission before the
    /// close is visible to a later `pending`.
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(SeqCst)
    }

    /// Jobs accepted so far, for `stats`. Refusals are read first: each
    /// was counted in `spawned` before it was taken back.
    pub(crate) fn accepted(&self) -> u64 {
        let refused = self.refused.load(SeqCst);
        let spawned = self.spawned.load(SeqCst) & !CLOSED;
        spawned.saturating_sub(refused) as u64
    }

    /// Jobs accepted and not yet finished, given `finished`, the sum of the
    /// workers' finished counts read before this call.
    pub(crate) fn pending(&self, finished: usize) -> usize {
        // Read-modify-writes rather than loads: they read the latest value
        // in each location's modification order, which is what the model
        // checker can verify (it treats SeqCst loads as Acquire). This is a
        // slow path (idle workers, waiters, stats), never the spawn path.
        let refused = self.refused.fetch_add(0, SeqCst);
        let spawned = self.spawned.fetch_add(0, SeqCst) & !CLOSED;
        spawned.saturating_sub(finished + refused)
    }
}

#[cfg(all(test, loom))]
#[path = "admission_loom.rs"]
mod loom_tests;

#[cfg(test)]
#[cfg(not(loom))]
mod tests {
    use super::*;

    #[test]
    fn ids_count_and_refusals_are_taken_back() {
        let a = Admission::new();
        assert!(!a.is_closed());
        assert_eq!(a.admit(), Some(1));
        assert_eq!(a.admit(), Some(2));
        a.take_back(); // the second was refused (full)
        assert_eq!(a.pending(0), 1);
        a.close();
        assert!(a.is_closed());
        assert_eq!(a.admit(), None, "closed: refused");
        assert_eq!(a.pending(0), 1, "the refusal was taken back at once");
        assert_eq!(a.pending(1), 0, "one worker finished the first job");
    }
}
