//! The state shared by a dispatcher's handles and its worker threads.

use crate::job::index::Index;
use crate::job::task::Task;
use crate::loom::{AtomicBool, AtomicU64, AtomicUsize, Condvar, Mutex};
use crate::stats::{Stats, WorkerCounters};
use crate::worker::sleep::Sleep;
use crossbeam_deque::{Injector, Stealer, Worker};
use crossbeam_utils::CachePadded;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release, SeqCst};
use std::sync::MutexGuard;
use std::thread::{JoinHandle, Thread};
use std::time::Instant;

/// Set in `Pool::pending` once the pool accepts no more jobs.
const CLOSED: usize = 1 << (usize::BITS - 1);

/// Locks a mutex, ignoring poisoning: no code panics while holding one of
/// ours, and a poisoned lock must not take the pool down with it.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// One worker's place in the pool.
pub(crate) struct Slot {
    pub(crate) stealer: Stealer<Task>,
    /// The deque's owning end, parked here while no thread runs this slot.
    pub(crate) deque: Mutex<Option<Worker<Task>>>,
    /// The thread running this slot, for unparking it.
    pub(crate) thread: Mutex<Option<Thread>>,
    pub(crate) counters: CachePadded<WorkerCounters>,
}

/// A condition some threads block on, signalled without a lock unless
/// someone waits (each waiter is counted before it checks the condition).
#[derive(Default)]
pub(crate) struct Signal {
    lock: Mutex<()>,
    cond: Condvar,
    waiters: AtomicUsize,
}

impl Signal {
    /// Blocks until `ready()` or `deadline`; returns whether `ready()`.
    pub(crate) fn wait_until(&self, ready: impl Fn() -> bool, deadline: Option<Instant>) -> bool {
        if ready() {
            return true;
        }
        let mut guard = lock(&self.lock);
        self.waiters.fetch_add(1, SeqCst);
        let result = loop {
            if ready() {
                break true;
            }
            match deadline {
                None => guard = self.cond.wait(guard).unwrap_or_else(|e| e.into_inner()),
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        break false;
                    }
                    guard = self
                        .cond
                        .wait_timeout(guard, d - now)
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
            }
        };
        self.waiters.fetch_sub(1, SeqCst);
        result
    }

    /// Wakes every waiter. Call after making the condition true with a
    /// SeqCst operation: the SeqCst load of `waiters` then cannot miss a
    /// waiter that checked the condition too early.
    pub(crate) fn notify_all(&self) {
        if self.waiters.load(SeqCst) > 0 {
            drop(lock(&self.lock));
            self.cond.notify_all();
        }
    }
}

pub(crate) struct Pool {
    pub(crate) injector: Injector<Task>,
    pub(crate) slots: Box<[Slot]>,
    pub(crate) sleep: Sleep,
    /// Jobs accepted and not yet finished, plus the CLOSED bit: one RMW
    /// both admits a job and learns whether the pool still accepts jobs.
    pending: CachePadded<AtomicUsize>,
    /// Jobs accepted and not yet started, counted only when bounded.
    queued: CachePadded<AtomicUsize>,
    capacity: Option<usize>,
    /// Spawners blocked on a full queue.
    pub(crate) space: Signal,
    /// `wait_idle` and `shutdown` callers, waiting for `pending` to reach 0.
    pub(crate) idle: Signal,
    paused: AtomicBool,
    pub(crate) index: Index,
    next_id: CachePadded<AtomicU64>,
    pub(crate) threads: Mutex<Vec<JoinHandle<()>>>,
}

impl Pool {
    pub(crate) fn new(workers: usize, capacity: Option<usize>, history: usize) -> Pool {
        let slots = (0..workers)
            .map(|_| {
                let deque = Worker::new_lifo();
                Slot {
                    stealer: deque.stealer(),
                    deque: Mutex::new(Some(deque)),
                    thread: Mutex::new(None),
                    counters: CachePadded::new(WorkerCounters::default()),
                }
            })
            .collect();
        Pool {
            injector: Injector::new(),
            slots,
            sleep: Sleep::new(workers),
            pending: CachePadded::new(AtomicUsize::new(0)),
            queued: CachePadded::new(AtomicUsize::new(0)),
            capacity,
            space: Signal::default(),
            idle: Signal::default(),
            paused: AtomicBool::new(false),
            index: Index::new((workers * 8).clamp(16, 256), history),
            next_id: CachePadded::new(AtomicU64::new(1)),
            threads: Mutex::new(Vec::new()),
        }
    }

    pub(crate) fn next_id(&self) -> u64 {
        // ORDERING: Relaxed: ids only need to be unique; nothing is
        // published through this counter.
        self.next_id.fetch_add(1, Relaxed)
    }

    /// Counts a job in, unless the pool is closed.
    pub(crate) fn admit(&self) -> bool {
        // ORDERING: SeqCst pairs with `close`: a spawner either sees CLOSED
        // or is counted before `shutdown` reads `pending`.
        if self.pending.fetch_add(1, SeqCst) & CLOSED != 0 {
            self.finish_one();
            return false;
        }
        true
    }

    /// Counts a job out (finished, discarded or refused).
    pub(crate) fn finish_one(&self) {
        // ORDERING: SeqCst orders this against `Signal::wait_until`'s count
        // of waiters and against the sleep protocol's fences.
        let prev = self.pending.fetch_sub(1, SeqCst);
        if prev & !CLOSED == 1 {
            self.idle.notify_all();
            if prev & CLOSED != 0 {
                self.wake_all();
            }
        }
    }

    pub(crate) fn pending(&self) -> usize {
        self.pending.load(SeqCst) & !CLOSED
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.pending.load(SeqCst) & CLOSED != 0
    }

    /// Stops accepting jobs; `true` for the first caller.
    pub(crate) fn close(&self) -> bool {
        let first = self.pending.fetch_or(CLOSED, SeqCst) & CLOSED == 0;
        self.wake_all();
        first
    }

    /// A worker may exit: closed and nothing left to run.
    pub(crate) fn is_done(&self) -> bool {
        self.pending.load(SeqCst) == CLOSED
    }

    /// Reserves a place in a bounded queue; `false` if it is full.
    pub(crate) fn reserve(&self) -> bool {
        let Some(cap) = self.capacity else {
            return true;
        };
        // ORDERING: SeqCst pairs with `release_place`'s decrement and the
        // count of blocked spawners in `space` (no lost wake-up).
        self.queued
            .fetch_update(SeqCst, SeqCst, |q| (q < cap).then_some(q + 1))
            .is_ok()
    }

    /// Frees the place of a job that left the queue (started or discarded).
    pub(crate) fn release_place(&self) {
        if self.capacity.is_some() {
            self.queued.fetch_sub(1, SeqCst);
            self.space.notify_all();
        }
    }

    pub(crate) fn is_paused(&self) -> bool {
        // ORDERING: Acquire pairs with the Release in `set_paused`; a worker
        // that misses the flag change by a moment is woken by `wake_all`.
        self.paused.load(Acquire)
    }

    pub(crate) fn set_paused(&self, paused: bool) {
        self.paused.store(paused, Release);
        if !paused {
            self.wake_all();
        }
    }

    /// Is there anything for an idle worker to take?
    pub(crate) fn has_work(&self) -> bool {
        !self.is_paused()
            && (!self.injector.is_empty() || self.slots.iter().any(|s| !s.stealer.is_empty()))
    }

    pub(crate) fn unpark(&self, slot: usize) {
        if let Some(thread) = lock(&self.slots[slot].thread).as_ref() {
            thread.unpark();
        }
    }

    /// Wakes one parked worker, if any: called after each new job.
    pub(crate) fn wake_one(&self) {
        if let Some(slot) = self.sleep.claim_one() {
            self.unpark(slot);
        }
    }

    pub(crate) fn wake_all(&self) {
        self.sleep.claim_all(|slot| self.unpark(slot));
    }

    pub(crate) fn stats(&self) -> Stats {
        let per_worker = self
            .slots
            .iter()
            .enumerate()
            .map(|(i, s)| s.counters.snapshot(i))
            .collect();
        Stats::from_workers(per_worker, self.pending(), self.index.len())
    }
}
