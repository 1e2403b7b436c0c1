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

/// A worker's two deques: `local` (LIFO) for the jobs spawned inside its
/// jobs, as rayon's; `batch` (FIFO) for the jobs it took in a batch from
/// a feed or the injector, so that both it and its thieves take the
/// oldest of those first.
pub(crate) struct Deques {
    pub(crate) local: Worker<Task>,
    pub(crate) batch: Worker<Task>,
}

pub(crate) struct Slot {
    /// Thieves' end of the worker's `local` deque.
    pub(crate) stealer: Stealer<Task>,
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
        let batch = Worker::new_fifo();
        Slot {
            stealer: local.stealer(),
            batch_stealer: batch.stealer(),
            deques: Mutex::new(Some(Deques { local, batch })),
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

    /// Is there a job in either deque?
    pub(crate) fn has_jobs(&self) -> bool {
        !self.stealer.is_empty() || !self.batch_stealer.is_empty()
    }

    pub(crate) fn unpark(&self) {
        if let Some(thread) = lock(&self.thread).as_ref() {
            thread.unpark();
        }
    }
}
