//! A worker slot: the fixed place of one worker (its deques, thread and
//! counters), reused when a halted worker is replaced. Slot indices are the
//! worker ids users see, so they stay stable for the dispatcher's life.
//!
//! Which slots have a thread, and which are asked to stop, is the control
//! thread's business alone (`control.rs`); a slot only carries the one
//! flag a worker reads, [`Slot::stop`], written by the control thread and
//! nobody else.

use crate::job::task::Task;
use crate::loom::thread::Thread;
use crate::loom::{AtomicBool, Mutex};
use crate::request::Request;
use crate::signal::lock;
use crate::stats::WorkerCounters;
use crossbeam_deque::{Stealer, Worker};
use crossbeam_utils::CachePadded;
use std::sync::atomic::Ordering::{Acquire, Release};

/// A worker's three deques: `local` (LIFO) for the jobs spawned inside
/// its jobs, as rayon's; `halves` (LIFO) for the `join` halves it
/// published to thieves (`join.rs`); `batch` (FIFO) for the jobs it took
/// in a batch from a feed, the injector or a peer's `local`, so that both
/// it and its thieves take the oldest of those first.
///
/// Halves have a deque of their own because they are stolen one at a
/// time and run at once, while `local` is stolen from in batches: a half
/// in a thief's batch could wait behind the batch's other jobs, also
/// where no worker takes jobs (paused, halting, past the nesting bound),
/// while its owner waits for it (`worker::find`).
pub(crate) struct Deques {
    pub(crate) local: Worker<Task>,
    pub(crate) halves: Worker<Task>,
    pub(crate) batch: Worker<Task>,
}

pub(crate) struct Slot {
    /// Thieves' end of the worker's `local` deque.
    pub(crate) stealer: Stealer<Task>,
    /// Thieves' end of the worker's `halves` deque.
    pub(crate) halves_stealer: Stealer<Task>,
    /// Thieves' end of the worker's `batch` deque.
    pub(crate) batch_stealer: Stealer<Task>,
    /// The deques' owning ends, kept here while no thread runs this slot.
    pub(crate) deques: Mutex<Option<Deques>>,
    /// The running thread, for unparking it.
    pub(crate) thread: Mutex<Option<Thread>>,
    /// Set by the control thread to halt this slot's worker: it finishes
    /// its current job, starts no other, and leaves. Cleared by the
    /// control thread before it starts a new thread here.
    stop: AtomicBool,
    pub(crate) counters: CachePadded<WorkerCounters>,
    /// Raised by idle peers, read by the worker on every `join`: a line
    /// of its own, away from the counters that `stats` reads.
    pub(crate) request: CachePadded<Request>,
}

impl Slot {
    pub(crate) fn new() -> Slot {
        let local = Worker::new_lifo();
        let halves = Worker::new_lifo();
        let batch = Worker::new_fifo();
        Slot {
            stealer: local.stealer(),
            halves_stealer: halves.stealer(),
            batch_stealer: batch.stealer(),
            deques: Mutex::new(Some(Deques {
                local,
                halves,
                batch,
            })),
            thread: Mutex::new(None),
            stop: AtomicBool::new(false),
            counters: CachePadded::new(WorkerCounters::default()),
            request: CachePadded::new(Request::default()),
        }
    }

    /// Has the control thread asked this slot's worker to halt?
    pub(crate) fn stop_requested(&self) -> bool {
        // ORDERING: Acquire pairs with the Release in `set_stop`; a worker
        // that reads it a moment late is unparked right after the store.
        self.stop.load(Acquire)
    }

    /// The control thread's single write: ask the worker to halt (`true`),
    /// or clear the request before a new thread starts here (`false`).
    pub(crate) fn set_stop(&self, stop: bool) {
        // ORDERING: Release: the control thread's earlier writes (none the
        // worker needs) are ordered before it; the unpark that follows a
        // `true` makes a parked worker look.
        self.stop.store(stop, Release);
    }

    /// Is there a job in any of its deques?
    pub(crate) fn has_jobs(&self) -> bool {
        !self.stealer.is_empty()
            || !self.halves_stealer.is_empty()
            || !self.batch_stealer.is_empty()
    }

    pub(crate) fn unpark(&self) {
        if let Some(thread) = lock(&self.thread).as_ref() {
            thread.unpark();
        }
    }
}
