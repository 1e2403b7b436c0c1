//! The "hand-rolled pool": what a user writes directly on crossbeam-deque
//! before reaching for workyard, and so the baseline workyard must beat
//! while also keeping a status record per job.
//!
//! It is deliberately honest rather than minimal: per-worker LIFO deques, a
//! global injector, crossbeam-deque's documented find-task loop, a short
//! spin before parking, a Mutex+Condvar sleep with a sleeper count so that a
//! spawn only takes the lock when someone sleeps, spawns from inside a job
//! going to the local deque, and a pending counter for `wait_idle`. What it
//! leaves out is everything workyard adds: handles, status records, ids,
//! cancellation, stats.

mod join;

pub use join::join;

use crossbeam_deque::{Injector, Stealer, Worker};
use crossbeam_utils::{Backoff, CachePadded};
use std::cell::Cell;
use std::iter;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering::{AcqRel, Relaxed, SeqCst};
use std::sync::atomic::{fence, AtomicBool, AtomicUsize};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

/// A job: a boxed closure, nothing else.
type Task = Box<dyn FnOnce() + Send + 'static>;

struct Shared {
    injector: Injector<Task>,
    stealers: Box<[Stealer<Task>]>,
    /// Spawned and not yet finished, for `wait_idle`.
    pending: CachePadded<AtomicUsize>,
    /// Workers inside the sleep protocol; a spawn looks at it after a fence.
    sleepers: CachePadded<AtomicUsize>,
    sleep_lock: Mutex<()>,
    wake: Condvar,
    /// Threads blocked in `wait_idle`: finishing jobs skip the lock without.
    idle_waiters: AtomicUsize,
    idle_lock: Mutex<()>,
    idle: Condvar,
    shutdown: AtomicBool,
}

thread_local! {
    /// On a worker thread: its pool and its deque, for local spawns and join.
    static LOCAL: Cell<(*const Shared, *const Worker<Task>)> =
        const { Cell::new((std::ptr::null(), std::ptr::null())) };
}

/// crossbeam-deque's documented find-task loop, verbatim but for skipping
/// our own stealer.
fn find_task(
    local: &Worker<Task>,
    global: &Injector<Task>,
    stealers: &[Stealer<Task>],
) -> Option<Task> {
    local.pop().or_else(|| {
        iter::repeat_with(|| {
            global
                .steal_batch_and_pop(local)
                .or_else(|| stealers.iter().map(|s| s.steal()).collect())
        })
        .find(|s| !s.is_retry())
        .and_then(|s| s.success())
    })
}

impl Shared {
    fn has_work(&self) -> bool {
        !self.injector.is_empty() || self.stealers.iter().any(|s| !s.is_empty())
    }

    fn push(&self, task: Task) {
        // Counted before it can run, so `pending` never dips to 0 early.
        self.pending.fetch_add(1, Relaxed);
        let local = LOCAL.with(|l| {
            let (pool, deque) = l.get();
            (std::ptr::eq(pool, self)).then_some(deque)
        });
        match local {
            // SAFETY: LOCAL points at this thread's own deque while its
            // worker loop runs, which it does while we run inside it.
            Some(deque) => unsafe { (*deque).push(task) },
            None => self.injector.push(task),
        }
        // ORDERING: pairs with the fence in `sleep`: either that worker's
        // second look sees the task or we see it counted as a sleeper.
        fence(SeqCst);
        if self.sleepers.load(Relaxed) > 0 {
            drop(self.sleep_lock.lock().unwrap_or_else(|e| e.into_inner()));
            self.wake.notify_one();
        }
    }

    fn execute(&self, task: Task) {
        // A panicking job must not kill its worker or leave `pending` high.
        let _ = catch_unwind(AssertUnwindSafe(task));
        // ORDERING: SeqCst against `wait_idle`'s count of waiters (no lost
        // wake-up); Release publishes the job's effects.
        if self.pending.fetch_sub(1, SeqCst) == 1 && self.idle_waiters.load(SeqCst) > 0 {
            drop(self.idle_lock.lock().unwrap_or_else(|e| e.into_inner()));
            self.idle.notify_all();
        }
    }

    /// Parks until a spawn or shutdown wakes us, unless work shows up after
    /// we announced ourselves.
    fn sleep(&self) {
        let guard = self.sleep_lock.lock().unwrap_or_else(|e| e.into_inner());
        self.sleepers.fetch_add(1, SeqCst);
        fence(SeqCst);
        if !self.has_work() && !self.shutdown.load(SeqCst) {
            drop(self.wake.wait(guard).unwrap_or_else(|e| e.into_inner()));
        }
        self.sleepers.fetch_sub(1, AcqRel);
    }

    fn main_loop(&self, local: Worker<Task>, index: usize) {
        LOCAL.with(|l| l.set((self, &local)));
        let others: Vec<Stealer<Task>> = self
            .stealers
            .iter()
            .enumerate()
            .filter(|&(i, _)| i != index)
            .map(|(_, s)| s.clone())
            .collect();
        'work: loop {
            if let Some(task) = find_task(&local, &self.injector, &others) {
                self.execute(task);
                continue;
            }
            // New work often arrives within microseconds: spin a little first.
            let backoff = Backoff::new();
            while !backoff.is_completed() {
                backoff.snooze();
                if self.has_work() {
                    continue 'work;
                }
            }
            if self.shutdown.load(SeqCst) {
                break;
            }
            self.sleep();
        }
        LOCAL.with(|l| l.set((std::ptr::null(), std::ptr::null())));
    }
}

/// The hand-rolled pool. Dropping it runs every queued job, then joins the
/// threads.
pub struct HandPool {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

/// A cheap, clonable way to spawn onto a [`HandPool`] from inside its jobs.
#[derive(Clone)]
pub struct Spawner(Arc<Shared>);

impl Spawner {
    pub fn spawn(&self, f: impl FnOnce() + Send + 'static) {
        self.0.push(Box::new(f));
    }
}

impl HandPool {
    pub fn new(workers: usize) -> HandPool {
        let deques: Vec<Worker<Task>> = (0..workers).map(|_| Worker::new_lifo()).collect();
        let shared = Arc::new(Shared {
            injector: Injector::new(),
            stealers: deques.iter().map(Worker::stealer).collect(),
            pending: CachePadded::new(AtomicUsize::new(0)),
            sleepers: CachePadded::new(AtomicUsize::new(0)),
            sleep_lock: Mutex::new(()),
            wake: Condvar::new(),
            idle_waiters: AtomicUsize::new(0),
            idle_lock: Mutex::new(()),
            idle: Condvar::new(),
            shutdown: AtomicBool::new(false),
        });
        let threads = deques
            .into_iter()
            .enumerate()
            .map(|(index, local)| {
                let shared = shared.clone();
                std::thread::Builder::new()
                    .name(format!("hand-{index}"))
                    .spawn(move || shared.main_loop(local, index))
                    .expect("spawn a hand-rolled pool worker")
            })
            .collect();
        HandPool { shared, threads }
    }

    pub fn spawn(&self, f: impl FnOnce() + Send + 'static) {
        self.shared.push(Box::new(f));
    }

    pub fn spawner(&self) -> Spawner {
        Spawner(self.shared.clone())
    }

    /// Blocks until every spawned job has run.
    pub fn wait_idle(&self) {
        let s = &self.shared;
        s.idle_waiters.fetch_add(1, SeqCst);
        let mut guard = s.idle_lock.lock().unwrap_or_else(|e| e.into_inner());
        while s.pending.load(SeqCst) != 0 {
            guard = s.idle.wait(guard).unwrap_or_else(|e| e.into_inner());
        }
        drop(guard);
        s.idle_waiters.fetch_sub(1, SeqCst);
    }
}

impl Drop for HandPool {
    fn drop(&mut self) {
        self.shared.shutdown.store(true, SeqCst);
        drop(
            self.shared
                .sleep_lock
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
        );
        self.shared.wake.notify_all();
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}
