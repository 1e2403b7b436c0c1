//! Worker threads: the main loop, running a job, and waiting inside a job
//! while running others.

mod find;
pub(crate) mod sleep;

use crate::job::cell;
use crate::job::task::Task;
use crate::pool::{lock, Pool};
use crate::stats::WorkerState;
use crate::Arc;
use crossbeam_deque::Worker;
use crossbeam_utils::Backoff;
use std::cell::Cell;
use std::time::Instant;

/// What a worker thread knows about itself; lives on its stack.
pub(crate) struct WorkerCtx {
    pub(crate) pool: Arc<Pool>,
    pub(crate) index: usize,
    pub(crate) local: Worker<Task>,
    rng: Cell<u64>,
}

thread_local! {
    static CURRENT: Cell<*const WorkerCtx> = const { Cell::new(std::ptr::null()) };
}

/// Runs `f` with this thread's worker context, if it is a worker thread.
pub(crate) fn with_current<R>(f: impl FnOnce(Option<&WorkerCtx>) -> R) -> R {
    CURRENT.with(|c| {
        let ctx = c.get();
        // SAFETY: CURRENT points at the WorkerCtx on this thread's stack
        // frame in `main_loop`, and is reset before that frame returns.
        f(unsafe { ctx.as_ref() })
    })
}

/// The body of worker thread `index`.
pub(crate) fn main_loop(pool: Arc<Pool>, index: usize) {
    let local = lock(&pool.slots[index].deque)
        .take()
        .expect("one thread per worker slot");
    *lock(&pool.slots[index].thread) = Some(std::thread::current());
    let ctx = WorkerCtx {
        pool,
        index,
        local,
        rng: Cell::new(
            0x9E37_79B9_7F4A_7C15 ^ (index as u64 + 1).wrapping_mul(0xBF58_476D_1CE4_E5B9),
        ),
    };
    CURRENT.with(|c| c.set(&ctx));
    let counters = &ctx.pool.slots[index].counters;
    loop {
        if let Some(job) = ctx.find_job() {
            ctx.execute(job);
            continue;
        }
        if ctx.pool.is_done() {
            break;
        }
        ctx.idle();
    }
    counters.set_state(WorkerState::Exited);
    CURRENT.with(|c| c.set(std::ptr::null()));
    *lock(&ctx.pool.slots[index].deque) = Some(ctx.local);
}

impl WorkerCtx {
    fn counters(&self) -> &crate::stats::WorkerCounters {
        &self.pool.slots[self.index].counters
    }

    /// Runs (or, if it was cancelled while queued, discards) a popped job.
    pub(crate) fn execute(&self, task: Task) {
        let job = match task {
            Task::Job(job) => job,
            // SAFETY: we popped or stole it, so this run is its only one,
            // and `self` is this thread's context.
            Task::Stack(stack) => return unsafe { stack.execute(self) },
        };
        self.pool.release_place();
        let counters = self.counters();
        if cell::claim(&job) {
            let header = job.header();
            let outer = counters.set_current(header.id.0);
            counters.set_state(WorkerState::Running);
            let outcome = job.run(self.index);
            let info = header.info();
            let busy = info.run_time().map_or(0, |d| d.as_nanos() as u64);
            counters.count_run(busy);
            counters.count_outcome(outcome);
            counters.set_current(outer);
            if outer == 0 {
                counters.set_state(WorkerState::Idle);
            }
        } else {
            counters.count_outcome(crate::job::state::CANCELLED);
        }
        drop(job);
        self.pool.finish_one();
    }

    /// Spins briefly, then parks until woken by a new job, a resume or a
    /// shutdown.
    fn idle(&self) {
        let backoff = Backoff::new();
        while !backoff.is_completed() {
            backoff.snooze();
            if self.pool.has_work() || self.pool.is_done() {
                return;
            }
        }
        self.sleep_once(|| false, None);
    }

    /// Parks once, announced in the sleep mask so that a new job wakes us;
    /// returns at once if `ready()`, work or the end of the pool shows up
    /// after the announcement.
    fn sleep_once(&self, ready: impl Fn() -> bool, deadline: Option<Instant>) {
        let sleep = &self.pool.sleep;
        sleep.prepare(self.index);
        if ready() || self.pool.has_work() || self.pool.is_done() {
            sleep.cancel(self.index);
            return;
        }
        let counters = self.counters();
        let parked_state = if self.pool.is_paused() {
            WorkerState::Paused
        } else {
            WorkerState::Parked
        };
        let nested = counters.current() != 0;
        if !nested {
            counters.set_state(parked_state);
        }
        match deadline {
            None => std::thread::park(),
            Some(d) => std::thread::park_timeout(d.saturating_duration_since(Instant::now())),
        }
        sleep.cancel(self.index);
        if !nested {
            counters.set_state(WorkerState::Idle);
        }
    }

    fn next_random(&self) -> u64 {
        // xorshift64*: a cheap spread of steal victims; quality is irrelevant.
        let mut x = self.rng.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng.set(x);
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// Blocks the calling thread until `done()` returns `true` or `deadline`
/// passes; returns `done()`. The caller must have arranged to be unparked
/// when `done()` becomes true. On a worker thread it runs other jobs while
/// it waits, so a job waiting on another never starves a pool.
pub(crate) fn wait_until(done: impl Fn() -> bool, deadline: Option<Instant>) -> bool {
    loop {
        if done() {
            return true;
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return false;
        }
        let helped = with_current(|ctx| match ctx {
            Some(ctx) => {
                match ctx.find_job() {
                    Some(job) => ctx.execute(job),
                    None => ctx.sleep_once(&done, deadline),
                }
                true
            }
            None => false,
        });
        if !helped {
            match deadline {
                None => std::thread::park(),
                Some(d) => std::thread::park_timeout(d.saturating_duration_since(Instant::now())),
            }
        }
    }
}
