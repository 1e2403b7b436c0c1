//! Worker threads: the main loop, running a job, and waiting inside a job
//! while running others.

mod find;
pub(crate) mod sleep;
pub(crate) mod slot;

use crate::job::cell;
use crate::job::state;
use crate::job::task::{Kind, Task};
use crate::pool::Pool;
use crate::signal::lock;
use crate::stats::{WorkerCounters, WorkerState};
use crate::{time, Arc};
use crossbeam_deque::Worker;
use slot::Slot;
use std::cell::Cell;
use std::time::Instant;

/// How many times an idle worker yields its CPU, looking for work after
/// each, before it parks: a few microseconds in all, so that a job spawned
/// just after a worker ran dry needs no futex wake-up. It yields rather
/// than spinning: in a VM a loop of `pause` instructions now and then costs
/// a millisecond of CPU (the hypervisor's pause-loop exits, most likely),
/// which made the idle benchmark's 2 s window cost 0.5 ms/s in a third of
/// the runs (`crossbeam_utils::Backoff`'s 127 pauses before its 4 yields).
/// Since Linux forfeits a yielder's slice (2025), a worker that yielded
/// next to a runnable thread may not preempt its waker when next woken:
/// a spawner that keeps its CPU busy waits for the load balancer. Parking
/// at once, or a busy loop, avoids that but cost detached-spawn throughput
/// or idle CPU here; see BENCHMARKS.md, "Why idle workers yield".
const SEARCH_ROUNDS: u32 = 8;

/// What a worker thread knows about itself; lives on its stack.
pub(crate) struct WorkerCtx {
    pub(crate) pool: Arc<Pool>,
    pub(crate) index: usize,
    pub(crate) local: Worker<Task>,
    rng: Cell<u64>,
    /// When this worker's last job finished, if it has not idled since
    /// (0 otherwise): the start time of the next job it runs.
    stamp: Cell<u64>,
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

/// The body of the worker thread of slot `index`. Drops `running` once
/// set up: `Pool::grow_to` waits for that.
pub(crate) fn main_loop(pool: Arc<Pool>, index: usize, running: std::sync::mpsc::Sender<()>) {
    let slot = &pool.slots[index];
    let local = lock(&slot.deque)
        .take()
        .expect("one thread per worker slot");
    *lock(&slot.thread) = Some(std::thread::current());
    slot.counters.set_state(WorkerState::Idle);
    drop(running);
    let ctx = WorkerCtx {
        pool: Arc::clone(&pool),
        index,
        local,
        stamp: Cell::new(0),
        rng: Cell::new(
            0x9E37_79B9_7F4A_7C15 ^ (index as u64 + 1).wrapping_mul(0xBF58_476D_1CE4_E5B9),
        ),
    };
    CURRENT.with(|c| c.set(&ctx));
    while !slot.halt_requested() {
        if let Some(job) = ctx.find_job() {
            ctx.execute(job);
            continue;
        }
        pool.on_idle();
        if pool.is_done() {
            break;
        }
        ctx.idle();
    }
    CURRENT.with(|c| c.set(std::ptr::null()));
    ctx.retire();
}

impl WorkerCtx {
    fn slot(&self) -> &Slot {
        &self.pool.slots[self.index]
    }

    fn counters(&self) -> &WorkerCounters {
        &self.slot().counters
    }

    /// Is this worker being halted? Then it finishes its current job and
    /// starts no other, not even while it waits inside that job.
    pub(crate) fn is_halting(&self) -> bool {
        self.slot().halt_requested()
    }

    /// A job to run while waiting inside another (for a joined job, for
    /// room in the queue, for the pool to go idle): none while halting.
    pub(crate) fn find_job_while_waiting(&self) -> Option<Task> {
        if self.is_halting() {
            None
        } else {
            self.find_job()
        }
    }

    /// Runs (or, if it was cancelled while queued, discards) a popped job.
    pub(crate) fn execute(&self, task: Task) {
        let job = match task.into_kind() {
            Kind::Job(job) => job,
            // SAFETY: we popped or stole it, so this run is its only one,
            // and `self` is this thread's context.
            Kind::Stack(stack) => return unsafe { stack.execute(self) },
        };
        if self.pool.is_paused() {
            // Checked after taking the job: a job spawned after `pause`
            // returned was pushed after the pause flag was set, and taking
            // it synchronised with that push, so this check cannot miss the
            // pause (one checked before the pop could). Put it back; it
            // runs after `resume`.
            self.local.push(Task::job(job));
            return;
        }
        let header = job.header();
        let deadline = header.deadline();
        if deadline != 0 && time::now_nanos() >= deadline {
            // Past its deadline before it started: it never runs.
            let _ = job.cancel(state::BY_DEADLINE, true);
        }
        let counters = self.counters();
        // Published before the claim, whose Release makes it visible to
        // anyone who sees the job Running.
        let outer = counters.set_current(header.id.0);
        // Back to back, the previous job's end is this one's start: one
        // clock read per job instead of two (a read costs ~50 ns in a VM).
        let start = match self.stamp.get() {
            0 => time::now(),
            end => end,
        };
        let claimed = cell::claim(&job, self.index, start);
        // The job has left the queue, to run or to be discarded. Given
        // back only now that the claim decided which: a cancel that won
        // while the job was still queued gave its place back already (see
        // `places.rs`), and one winning after a give-back here would count
        // the job's place twice.
        self.pool.release_place();
        if claimed {
            counters.count_start();
            counters.set_state(WorkerState::Running);
            let outcome = job.run(self.index);
            self.stamp.set(header.finished_at());
            let busy = header.run_nanos();
            counters.count_run(busy);
            counters.count_outcome(outcome);
            counters.set_current(outer);
            if outer == 0 {
                counters.set_state(WorkerState::Idle);
            }
        } else {
            counters.set_current(outer);
            counters.count_outcome(state::CANCELLED);
        }
        drop(job);
        counters.count_finished();
    }

    /// Yields a few times, looking for work, then parks until woken by a
    /// new job, a resume, a halt or a shutdown.
    fn idle(&self) {
        // The next job starts after a pause: read the clock afresh.
        self.stamp.set(0);
        let sleep = &self.pool.sleep;
        sleep.start_searching();
        for _ in 0..SEARCH_ROUNDS {
            std::thread::yield_now();
            if self.pool.has_work() {
                // The last searcher to leave with work wakes another, so a
                // burst of jobs whose spawners saw a searcher still spreads.
                if sleep.stop_searching() {
                    self.pool.wake_one();
                }
                return;
            }
            if self.pool.is_done() || self.slot().halt_requested() {
                sleep.stop_searching();
                return;
            }
        }
        sleep.stop_searching();
        self.sleep_once(|| false, None);
    }

    /// Parks once, announced in the sleep mask so that a new job wakes us;
    /// returns at once if `ready()`, work, a halt or the end of the pool
    /// shows up after the announcement.
    fn sleep_once(&self, mut ready: impl FnMut() -> bool, deadline: Option<Instant>) {
        self.stamp.set(0);
        let sleep = &self.pool.sleep;
        sleep.prepare(self.index);
        if ready() || self.pool.has_work() || self.pool.is_done() || self.slot().halt_requested() {
            sleep.cancel(self.index);
            return;
        }
        let counters = self.counters();
        let nested = counters.current() != 0;
        if !nested {
            let parked = if self.pool.is_paused() {
                WorkerState::Paused
            } else {
                WorkerState::Parked
            };
            counters.set_state(parked);
        }
        crate::trace::event!(trace, worker = self.index, "park");
        match deadline {
            None => std::thread::park(),
            Some(d) => std::thread::park_timeout(d.saturating_duration_since(Instant::now())),
        }
        sleep.cancel(self.index);
        if !nested {
            counters.set_state(WorkerState::Idle);
        }
    }

    /// The thread is leaving: hand queued jobs and any wake-up it consumed
    /// on to the other workers, and give the slot back.
    fn retire(self) {
        let pool = Arc::clone(&self.pool);
        let slot = &pool.slots[self.index];
        pool.sleep.cancel(self.index);
        let halted = slot.halt_requested();
        crate::trace::event!(debug, worker = self.index, halted, "worker exits");
        slot.counters.set_state(if halted {
            WorkerState::Halted
        } else {
            WorkerState::Exited
        });
        let mut moved = 0;
        while let Some(job) = self.local.pop() {
            pool.injector.push(job);
            moved += 1;
        }
        for _ in 0..moved.max(1) {
            pool.wake_one();
        }
        // A halted worker leaves without the idle check of the main loop:
        // if the job it just finished was the pool's last, nobody else
        // would wake the `wait_idle` and `shutdown` callers.
        pool.on_idle();
        *lock(&slot.thread) = None;
        *lock(&slot.deque) = Some(self.local);
        slot.mark_halted();
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
/// when `done()` becomes true. `done` may be called again after it
/// returned `true` (on a worker, before and after each park), and must
/// then return `true` again without repeating any effect. On a worker
/// thread it runs other jobs while it waits (unless its worker is being
/// halted), so a job waiting on another never starves a pool.
pub(crate) fn wait_until(mut done: impl FnMut() -> bool, deadline: Option<Instant>) -> bool {
    loop {
        if done() {
            return true;
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return false;
        }
        let helped = with_current(|ctx| match ctx {
            Some(ctx) => {
                match ctx.find_job_while_waiting() {
                    Some(job) => ctx.execute(job),
                    None => ctx.sleep_once(&mut done, deadline),
                }
                true
            }
            None => false,
        });
        if !helped {
            // Not a worker: a joiner, parked through the loom switch so
            // that the hand-off models see this park.
            match deadline {
                None => crate::loom::thread::park(),
                Some(d) => {
                    crate::loom::thread::park_timeout(d.saturating_duration_since(Instant::now()))
                }
            }
        }
    }
}
