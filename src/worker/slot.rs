//! A worker slot: the fixed place of one worker (its deque, thread and
//! counters), reused when a halted worker is replaced. Slot indices are the
//! worker ids users see, so they stay stable for the dispatcher's life.

use crate::job::task::Task;
use crate::loom::{AtomicUsize, Mutex};
use crate::signal::lock;
use crate::stats::WorkerCounters;
use crossbeam_deque::{Stealer, Worker};
use crossbeam_utils::CachePadded;
use std::sync::atomic::Ordering::SeqCst;
use std::thread::{JoinHandle, Thread};

/// Never had a thread.
pub(crate) const VACANT: usize = 0;
/// A thread runs this slot.
pub(crate) const ACTIVE: usize = 1;
/// Asked to halt: the thread exits after its current job.
pub(crate) const HALTING: usize = 2;
/// The thread has exited (halted, or the pool shut down); reusable.
pub(crate) const HALTED: usize = 3;

/// How many of `slots` are ACTIVE: running and not asked to halt.
pub(crate) fn running(slots: &[Slot]) -> usize {
    slots.iter().filter(|s| s.life() == ACTIVE).count()
}

pub(crate) struct Slot {
    pub(crate) stealer: Stealer<Task>,
    /// The deque's owning end, kept here while no thread runs this slot.
    pub(crate) deque: Mutex<Option<Worker<Task>>>,
    /// The running thread, for unparking it.
    pub(crate) thread: Mutex<Option<Thread>>,
    /// The running thread's handle, for joining it.
    pub(crate) join: Mutex<Option<JoinHandle<()>>>,
    /// VACANT, ACTIVE, HALTING or HALTED.
    life: AtomicUsize,
    pub(crate) counters: CachePadded<WorkerCounters>,
}

impl Slot {
    pub(crate) fn new() -> Slot {
        let deque = Worker::new_lifo();
        Slot {
            stealer: deque.stealer(),
            deque: Mutex::new(Some(deque)),
            thread: Mutex::new(None),
            join: Mutex::new(None),
            life: AtomicUsize::new(VACANT),
            counters: CachePadded::new(WorkerCounters::default()),
        }
    }

    // ORDERING (life): SeqCst. Transitions are rare (start, halt, exit) and
    // the halt flag is part of the sleep protocol's re-check, which relies
    // on SeqCst ordering against the unpark that follows it.
    pub(crate) fn life(&self) -> usize {
        self.life.load(SeqCst)
    }

    pub(crate) fn halt_requested(&self) -> bool {
        self.life() == HALTING
    }

    /// VACANT or HALTED → ACTIVE, for starting a thread here; returns the
    /// state it left.
    pub(crate) fn try_claim(&self) -> Option<usize> {
        [VACANT, HALTED].into_iter().find(|&from| {
            self.life
                .compare_exchange(from, ACTIVE, SeqCst, SeqCst)
                .is_ok()
        })
    }

    /// ACTIVE → HALTING. `false` if the slot was not active.
    pub(crate) fn request_halt(&self) -> bool {
        self.life
            .compare_exchange(ACTIVE, HALTING, SeqCst, SeqCst)
            .is_ok()
    }

    /// Called by the exiting thread, after it handed its deque back.
    pub(crate) fn mark_halted(&self) {
        self.life.store(HALTED, SeqCst);
    }

    /// Undoes `try_claim` when the thread could not be started.
    pub(crate) fn unclaim(&self, previous: usize) {
        self.life.store(previous, SeqCst);
    }

    pub(crate) fn unpark(&self) {
        if let Some(thread) = lock(&self.thread).as_ref() {
            thread.unpark();
        }
    }

    /// Does the slot still hold a thread to join?
    pub(crate) fn may_have_thread(&self) -> bool {
        // Never blocks: the caller holds `control`, and a joiner holds this
        // lock across a join whose thread may be waiting for `control`.
        match self.join.try_lock() {
            Ok(join) => join.is_some(),
            Err(std::sync::TryLockError::Poisoned(e)) => e.into_inner().is_some(),
            Err(std::sync::TryLockError::WouldBlock) => true,
        }
    }

    /// Joins the slot's exited (or exiting) thread, if it has one. The lock
    /// is held across the join: a second caller (a concurrent `shutdown`,
    /// say) then waits until the thread is gone too, instead of finding
    /// the handle taken and returning while the thread still runs its
    /// thread-local destructors. The exiting thread never takes this lock.
    pub(crate) fn join_thread(&self) {
        let mut join = lock(&self.join);
        self.join_locked(&mut join);
    }

    /// `join_thread` for a grow that let go of `control`: joins only if
    /// the slot is still not ACTIVE (checked under the join lock; a new
    /// thread's handle is stored only after the slot was claimed), so
    /// it never joins a worker another grow started meanwhile.
    pub(crate) fn join_exiting(&self) {
        let mut join = lock(&self.join);
        if self.life() != ACTIVE {
            self.join_locked(&mut join);
        }
    }

    fn join_locked(&self, join: &mut Option<JoinHandle<()>>) {
        if let Some(handle) = join.take() {
            // A worker thread never unwinds (jobs run under catch_unwind).
            let _ = handle.join();
        }
    }
}

#[cfg(all(test, loom))]
#[path = "slot_loom.rs"]
mod loom_tests;
