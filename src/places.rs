//! The places of a bounded queue (`queue_capacity`): a spawn reserves one,
//! and the job gives it back when it leaves the queue.
//!
//! A job leaves the queue when a worker takes it (to run it, or to discard
//! it because it was cancelled), so workers give places back as they pop.
//! A job cancelled while queued leaves the queue too, but it stays in a
//! deque until a worker pops it, which a busy or paused pool may not do for
//! long. So a cancel that knows the pool (`Dispatcher::cancel`,
//! `cancel_queued`, `halt`, a deadline) gives the place back at once, and
//! says so in the job's status word: its QUEUED → CANCELLED transition sets
//! `BY_POOL` in the same compare-and-swap (the flag also says the pool
//! counted the cancel, for `stats`). The worker that pops the job sees the
//! flag when its own claim fails and gives nothing back. Exactly
//! one of the two gives the place back, whichever order they run in: the
//! transition decides, and the flag travels with it. A cancel through a
//! `JobHandle`, which does not know its pool, leaves the flag clear and the
//! place to the pop.
//!
//! The canceller gives the place back right after its transition won, and
//! before the cancelled closure is dropped: that destructor is user code
//! and may spawn into this very queue.

use crate::loom::AtomicUsize;
use crossbeam_utils::CachePadded;
use std::sync::atomic::Ordering::SeqCst;

pub(crate) struct Places {
    /// `None`: unbounded, and nothing here is counted.
    capacity: Option<usize>,
    counts: CachePadded<Counts>,
}

struct Counts {
    /// Places reserved and not given back.
    reserved: AtomicUsize,
    /// Workers waiting for a place (a job spawning into the full queue).
    /// They park in the sleep mask, not on the pool's `space` signal.
    waiting_workers: AtomicUsize,
}

impl Places {
    pub(crate) fn new(capacity: Option<usize>) -> Places {
        Places {
            capacity,
            counts: CachePadded::new(Counts {
                reserved: AtomicUsize::new(0),
                waiting_workers: AtomicUsize::new(0),
            }),
        }
    }

    pub(crate) fn is_bounded(&self) -> bool {
        self.capacity.is_some()
    }

    /// Reserves a place; `false` if the queue is full.
    pub(crate) fn reserve(&self) -> bool {
        let Some(cap) = self.capacity else {
            return true;
        };
        // SeqCst pairs with the decrement in `give_back` and the waiter
        // counts (the pool's `space` signal, `waiting_workers`): either the
        // give-back sees the waiter, or the waiter's next reserve sees the
        // place (no lost wake-up).
        self.counts
            .reserved
            .fetch_update(SeqCst, SeqCst, |q| (q < cap).then_some(q + 1))
            .is_ok()
    }

    /// Counts a place for a job that leaves the queue as soon as it enters
    /// it (a spawn run inline, see `dispatcher::Admitted::Inline`): over
    /// the bound for the moment until its worker claims it.
    pub(crate) fn reserve_over(&self) {
        if self.capacity.is_some() {
            self.counts.reserved.fetch_add(1, SeqCst);
        }
    }

    /// Gives a place back: the job left the queue (see the module docs
    /// for who does it).
    pub(crate) fn give_back(&self) {
        self.counts.reserved.fetch_sub(1, SeqCst);
    }

    /// Is a place free now? (Always, when unbounded.)
    pub(crate) fn has_room(&self) -> bool {
        self.capacity
            .map_or(true, |cap| self.counts.reserved.load(SeqCst) < cap)
    }

    /// Are workers waiting for a place? Read after a give-back.
    pub(crate) fn has_waiting_workers(&self) -> bool {
        self.counts.waiting_workers.load(SeqCst) > 0
    }

    /// Counts a worker in as waiting for a place until the guard drops;
    /// before its first look, so that a give-back it does not see sees it.
    pub(crate) fn worker_waits(&self) -> WaitingWorker<'_> {
        self.counts.waiting_workers.fetch_add(1, SeqCst);
        WaitingWorker(self)
    }
}

/// A worker waiting for a place; see [`Places::worker_waits`].
pub(crate) struct WaitingWorker<'a>(&'a Places);

impl Drop for WaitingWorker<'_> {
    fn drop(&mut self) {
        self.0.counts.waiting_workers.fetch_sub(1, SeqCst);
    }
}

#[cfg(all(test, loom))]
#[path = "places_loom.rs"]
mod loom_tests;
