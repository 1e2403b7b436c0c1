//! The places of a bounded queue (`queue_capacity`): a spawn reserves one,
//! and the job gives it back when it leaves the queue.
//!
//! A job leaves the queue when a worker takes it (to run it, or to discard
//! it because it was cancelled), so workers give places back as they pop.
//! A job cancelled while queued leaves the queue too, but it stays in a
//! deque until a worker pops it, which a busy or paused pool may not do for
//! long. So a cancel that knows the pool (`Dispatcher::cancel`,
//! `cancel_queued`, `halt`, the deadline timer) gives the place back at
//! once, and leaves a credit so that the pop that discards the job skips
//! its give-back. Credits are not tied to jobs: one may be spent by another
//! job's pop, which only delays that job's give-back until the cancelled
//! one is popped.
//!
//! The order keeps the count from dropping below the jobs it stands for
//! (so the bound holds, and it never wraps): the credit is made *before*
//! the cancel (a worker whose claim fails because of the cancel then sees
//! it), the early give-back only after the cancel won (but before the
//! cancelled closure is dropped: its destructor may spawn into this queue),
//! and a worker gives a place back only after its claim decided the job's
//! fate. A cancel that came too late takes its credit back, or, if a pop
//! spent it meanwhile, makes that pop's give-back. A cancel through a `JobHandle`, which does
//! not know its pool, leaves the place to the pop.

use crate::job::state::Cancel;
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
    /// Places given back by cancels before their jobs were popped.
    early: AtomicUsize,
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
                early: AtomicUsize::new(0),
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

    /// A worker took a job out of the queue. `true` if that gave a place
    /// back (then the caller wakes whoever waits for one); `false` if the
    /// pop made up for an early give-back instead.
    #[must_use]
    pub(crate) fn popped(&self) -> bool {
        let made_up = self.spend_credit();
        if !made_up {
            self.give_back();
        }
        !made_up
    }

    /// Runs `cancel` (a job's `cancel_then`) for a caller that knows the
    /// pool: a job it finds queued gives its place back at once, through
    /// the callback `cancel` calls as soon as it won, before the job's
    /// closure is dropped. That destructor is user code, and may spawn into
    /// this very queue, or wait for a spawner that does: with the place
    /// still taken and the credit already made, the worker popping the job
    /// would spend the credit instead of giving the place back, and that
    /// spawn could wait forever. `freed` runs right after each give-back
    /// (the pool wakes whoever waits for a place there).
    pub(crate) fn cancel(
        &self,
        cancel: impl FnOnce(&mut dyn FnMut()) -> Cancel,
        freed: &dyn Fn(),
    ) -> Cancel {
        if !self.is_bounded() {
            return cancel(&mut || {});
        }
        // The credit for the pop that will discard the job, so that the pop
        // does not give the place back a second time; made before the
        // cancel, so that a worker whose claim fails because of it sees it.
        self.counts.early.fetch_add(1, SeqCst);
        let result = cancel(&mut || {
            self.give_back();
            freed();
        });
        // Too late (the job started or ended): take the credit back, or, if
        // a pop already spent it and skipped its own give-back, make that
        // give-back now.
        if !matches!(result, Cancel::WasQueued(_)) && !self.spend_credit() {
            self.give_back();
            freed();
        }
        result
    }

    /// Spends one credit of an early give-back, if there is one.
    fn spend_credit(&self) -> bool {
        // SeqCst, as everything here: these counts pair with each other
        // and with the waiters' counts; none of it is on an unbounded
        // pool's path.
        self.counts
            .early
            .fetch_update(SeqCst, SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }

    fn give_back(&self) {
        self.counts.reserved.fetch_sub(1, SeqCst);
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
