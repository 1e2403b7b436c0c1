//! Worker threads: the main loop, running a job, searching and parking
//! (the rules of `sleep.rs`), and waiting inside a job while running
//! others.
//!
//! A worker's life, as its thread sees it:
//!
//! 1. Started by the control thread in a slot it chose; marks its thread
//!    as one of the pool's for the thread's whole life (`on_pool_thread`),
//!    so that orders given from it, also from its thread-local
//!    destructors, never wait for effects that need it. Installs its
//!    pool's panic handler for the thread (`unwind::unseen_panic`) and
//!    runs the start handler, as a worker but not as a searcher, before it
//!    reports itself running.
//! 2. Loops: a job from its own deques, else a search (yields, then a park
//!    announced in the sleep mask), until the control thread asks it to
//!    stop ([`Slot::stop_requested`]) or the pool is closed and idle.
//! 3. Hands on what is left in its deques (to the injector) and any
//!    wake-up it was counted for, runs the exit handler, makes the idle
//!    check, tells the control thread it has left ([`Order::Exited`]) and
//!    ends.

mod find;

use crate::job::cell;
use crate::job::pending::Pending;
use crate::job::state;
use crate::job::task::{Kind, Task};
use crate::order::Order;
use crate::pool::{Pool, WorkerHandler};
use crate::request::Request;
use crate::signal::lock;
use crate::slot::{Deques, Slot};
use crate::stats::{WorkerCounters, WorkerState};
use crate::unwind::{self, PanicPayload};
use crate::{time, Arc};
use crossbeam_deque::Worker;
use std::cell::Cell;
use std::ptr::NonNull;
use std::time::Instant;

/// How many times an idle worker yields its CPU, looking for work after
/// each, before it parks: a few microseconds in all, so that a job spawned
/// just after a worker ran dry needs no futex wake-up. It yields rather
/// than spinning: in a VM a loop of `pause` instructions now and then costs
/// a millisecond of CPU (the hypervisor's pause-loop exits, most likely).
/// Since Linux forfeits a yielder's slice, a worker that yielded next to a
/// runnable thread may not preempt its waker when next woken; parking at
/// once, or a busy loop, cost throughput or idle CPU instead (BENCHMARKS.md).
const SEARCH_ROUNDS: u32 = 8;

/// How deep a worker nests jobs while it waits inside one (for a joined
/// job, for room in a bounded queue, for a stolen `join` half): each level
/// is a few frames of ours plus the job's own. Past it, a wait runs no
/// job but those its own jobs spawned (and a spawn into a full queue runs
/// its new job itself instead, see `dispatcher::Admitted::Inline`), so the
/// stack stays bounded however many jobs a producer queues.
pub(crate) const MAX_NESTING: u32 = 16;

/// What a worker thread knows about itself; lives on its stack.
pub(crate) struct WorkerCtx {
    pub(crate) pool: Arc<Pool>,
    pub(crate) index: usize,
    /// Jobs spawned inside this worker's jobs: LIFO for the owner.
    pub(crate) local: Worker<Task>,
    /// Jobs taken in a batch from a feed or the injector: FIFO.
    pub(crate) batch: Worker<Task>,
    rng: Cell<u64>,
    /// When this worker's last job finished, if it has not idled since
    /// (0 otherwise): the start time of the next job it runs.
    stamp: Cell<u64>,
    /// Counted in `Sleep::searching`? (False whenever a job runs.)
    searching: Cell<bool>,
    /// Jobs running on this thread now, nested ones included.
    depth: Cell<u32>,
    /// The `join` halves this thread runs inline unless a steal request
    /// publishes them (`join.rs`).
    pub(crate) pending: Pending,
    /// This slot's steal request, read on every `join`: kept at hand
    /// rather than found through `pool.slots()[index]` (a bounds check and
    /// three loads). Points into `pool`, which this context keeps alive.
    request: NonNull<Request>,
}

thread_local! {
    static CURRENT: Cell<*const WorkerCtx> = const { Cell::new(std::ptr::null()) };
    /// This worker's steal request (`WorkerCtx::request`), set and reset
    /// with `CURRENT`: a `join` reads it first, one load from the thread's
    /// own block instead of two through the context, because in a
    /// memory-bound recursion every load ahead of the user's own delays
    /// its next cache miss (BENCHMARKS.md, the 2^24-node tree).
    static REQUEST: Cell<*const Request> = const { Cell::new(std::ptr::null()) };
    /// The id of the pool this thread is (or was) a worker of; 0 if none.
    /// Never cleared, and it has no destructor, so thread-local destructors
    /// that run after the worker left its loop still read it.
    static POOL_THREAD: Cell<u64> = const { Cell::new(0) };
}

/// The state of this thread's steal request (`request::IDLE`, `RAISED` or
/// `SOLO`), if it is a worker thread in its loop.
#[inline]
pub(crate) fn request_state() -> Option<usize> {
    let request = REQUEST.with(Cell::get);
    // SAFETY: REQUEST points into the slots of the pool whose worker this
    // thread is, kept alive by the `WorkerCtx` in `main_loop`'s frame; it
    // is set with CURRENT and reset before that frame returns, and only
    // read through shared references.
    unsafe { request.as_ref() }.map(Request::state)
}

/// Runs `f` with this thread's worker context, if it is a worker thread.
///
/// The thread-local is read on its own, and `f` called outside `with`:
/// a `join` is instantiated in the user's crate, where a `LocalKey::with`
/// around all of `f` is not inlined and reads the key through a function
/// pointer, on every `join`.
#[inline]
pub(crate) fn with_current<R>(f: impl FnOnce(Option<&WorkerCtx>) -> R) -> R {
    let ctx = CURRENT.with(Cell::get);
    // SAFETY: CURRENT points at the WorkerCtx on this thread's stack frame
    // in `main_loop`, and is reset before that frame returns; `f` runs on
    // this thread, inside that frame, and the reference does not outlive
    // the call.
    f(unsafe { ctx.as_ref() })
}

/// Is the calling thread one of `pool`'s worker threads, in its loop or
/// after it (in its thread-local destructors)? Such a thread must not wait
/// for the pool's threads to exit, nor for jobs to finish.
pub(crate) fn on_pool_thread(pool: &Pool) -> bool {
    POOL_THREAD.with(Cell::get) == pool.id()
}

/// The body of the worker thread of slot `index`, started by the control
/// thread. Drops `running` once set up and its start handler has returned
/// (`build`, and a `set_workers` from outside, wait for that).
pub(crate) fn main_loop(pool: Arc<Pool>, index: usize, running: std::sync::mpsc::Sender<()>) {
    POOL_THREAD.with(|p| p.set(pool.id()));
    unwind::set_panic_handler(pool.config().handlers.panic.clone());
    let slot = &pool.slots()[index];
    let Deques { local, batch } = lock(&slot.deques)
        .take()
        .expect("one thread per worker slot");
    *lock(&slot.thread) = Some(crate::loom::thread::current());
    slot.counters.set_state(WorkerState::Idle);
    let ctx = WorkerCtx {
        pool: Arc::clone(&pool),
        index,
        local,
        batch,
        stamp: Cell::new(0),
        rng: Cell::new(
            0x9E37_79B9_7F4A_7C15 ^ (index as u64 + 1).wrapping_mul(0xBF58_476D_1CE4_E5B9),
        ),
        // The control thread counted a new worker as searching (rule 4 of
        // `sleep.rs`: it starts like one woken from a park).
        searching: Cell::new(true),
        depth: Cell::new(0),
        pending: Pending::new(),
        request: NonNull::from(&*slot.request),
    };
    CURRENT.with(|c| c.set(&ctx));
    REQUEST.with(|r| r.set(ctx.request.as_ptr()));
    if let Some(start) = &pool.config().handlers.start {
        // User code, which may block: not as a searcher, whose count
        // would keep spawns from waking a parked peer meanwhile. As a
        // worker, so that a join or a spawn in it runs other jobs while
        // it waits.
        ctx.stop_searching();
        call_handler(start, index);
    }
    drop(running);
    ctx.run();
    REQUEST.with(|r| r.set(std::ptr::null()));
    CURRENT.with(|c| c.set(std::ptr::null()));
    ctx.retire();
}

/// Runs a start or exit handler: a panic in it is caught, and its payload
/// goes to the panic handler (a worker never unwinds).
fn call_handler(handler: &WorkerHandler, index: usize) {
    if let Err(payload) = unwind::catch(|| handler(index)) {
        unwind::unseen_panic(PanicPayload::new(payload));
    }
}

impl WorkerCtx {
    fn slot(&self) -> &Slot {
        &self.pool.slots()[self.index]
    }

    fn counters(&self) -> &WorkerCounters {
        &self.slot().counters
    }

    /// The main loop: run jobs, search, park, until asked to stop or the
    /// pool is done.
    fn run(&self) {
        loop {
            if self.is_halting() {
                return;
            }
            if let Some(job) = self.find_job() {
                self.execute_found(job);
                continue;
            }
            self.pool.on_idle();
            if self.pool.is_done() {
                return;
            }
            if self.search(&mut || false, None) {
                continue;
            }
            self.park(&mut || false, None, true);
        }
    }

    /// This worker's steal request, which a `join` reads each time.
    #[inline]
    pub(crate) fn request(&self) -> &Request {
        // SAFETY: it points into the pool's slots, which `self.pool`
        // keeps alive, and is only ever read through shared references.
        unsafe { self.request.as_ref() }
    }

    /// A `join` found a peer's steal request (`request.rs`): publish the
    /// oldest pending half onto `local`, where thieves see it, and wake a
    /// parked peer as any push does (rule 1 of `sleep.rs`).
    #[cold]
    #[inline(never)]
    pub(crate) fn on_request(&self) {
        if !self.request().take() {
            return;
        }
        if let Some(half) = self.pending.publish_oldest() {
            self.local.push(Task::stack(half));
            self.pool.wake_one();
        }
    }

    /// Is this worker being halted? Then it finishes its current job and
    /// starts no other, not even while it waits inside that job.
    pub(crate) fn is_halting(&self) -> bool {
        self.slot().stop_requested()
    }

    /// May this worker run other jobs while it waits inside one? Not while
    /// halting, and not past [`MAX_NESTING`].
    pub(crate) fn may_help(&self) -> bool {
        !self.is_halting() && self.depth.get() < MAX_NESTING
    }

    /// Runs a job this worker found, after passing the search on (rule 2
    /// of `sleep.rs`): a searcher that takes a job while others are queued
    /// wakes another worker first.
    pub(crate) fn execute_found(&self, task: Task) {
        self.stop_searching();
        self.execute(task);
    }

    /// Leaves the searching state, if in it, passing the search on.
    fn stop_searching(&self) {
        if self.searching.replace(false) {
            self.pool.pass_on();
        }
    }

    /// Runs (or, if it was cancelled while queued, discards) a popped job.
    pub(crate) fn execute(&self, task: Task) {
        debug_assert!(!self.searching.get(), "a searcher runs no job");
        let job = match task.into_kind() {
            Kind::Job(job) => job,
            // SAFETY: we popped or stole it, so this run is its only one,
            // and `self` is this thread's context.
            Kind::Stack(stack) => {
                let depth = self.depth.replace(self.depth.get() + 1);
                // SAFETY: as above.
                unsafe { stack.execute(std::ptr::NonNull::from(self).cast()) };
                self.depth.set(depth);
                return;
            }
        };
        if self.pool.is_paused() {
            // Checked after taking the job: a job spawned after `pause`
            // returned was pushed after the gate closed, and taking it
            // synchronised with that push, so this check cannot miss the
            // pause (one checked before the pop could). Put back where
            // this worker takes it first after `resume`, and where peers
            // (and `has_work`) see it: a job held out of sight would keep
            // its place in a bounded queue while this worker waits.
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
        // Back to back, the previous job's end is this one's start: one
        // clock read per job instead of two.
        let start = match self.stamp.get() {
            0 => time::now(),
            end => end,
        };
        let claimed = cell::claim(&job, self.index, start);
        // The job has left the queue, to run or to be discarded: give its
        // place back, unless a cancel through the pool already did (it
        // says so in the status word, see `places.rs`).
        self.pool.release_place(&job, claimed);
        if claimed {
            // Published after the claim: `stats` lists a worker's current
            // job only once it is Running.
            let outer = counters.set_current(header.id.0);
            counters.count_start();
            counters.set_state(WorkerState::Running);
            let depth = self.depth.replace(self.depth.get() + 1);
            // Counts the outcome itself, before the job shows finished.
            job.run(self.index, counters);
            self.depth.set(depth);
            self.stamp.set(header.finished_at());
            counters.set_current(outer);
            if outer == 0 {
                counters.set_state(WorkerState::Idle);
            }
        } else {
            // Cancelled while queued; a cancel from the control thread left
            // the closure for us to drop (user code belongs on a worker).
            job.discard();
            if !header.state.load().has(state::BY_POOL) {
                // Cancelled through its handle: nobody counted it yet.
                counters.count_discarded();
            }
        }
        drop(job);
        counters.count_finished();
    }

    /// Searches for a job for a few rounds, yielding between them, counted
    /// as searching. `true` if there is one to take (the caller's next
    /// `find_job` takes it, still counted as searching), or if `ready()`,
    /// a halt, the end of the pool or `deadline` came first; `false` if
    /// the caller should park.
    fn search(&self, ready: &mut dyn FnMut() -> bool, deadline: Option<Instant>) -> bool {
        // The next job starts after a pause: read the clock afresh.
        self.stamp.set(0);
        if !self.searching.replace(true) {
            self.pool.sleep().start_searching();
        }
        // Forking peers publish a pending half at their next `join`.
        self.pool.request_work(self.index);
        for _ in 0..SEARCH_ROUNDS {
            crate::loom::thread::yield_now();
            if self.pool.has_work() || ready() {
                return true;
            }
            if self.pool.is_done() || self.is_halting() {
                return true;
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return true;
            }
        }
        false
    }

    /// Parks once, announced in the sleep mask (rule 3 of `sleep.rs`), and
    /// comes back searching (rule 4). Returns at once, without parking,
    /// if `ready()`, work, a halt or the end of the pool shows up after
    /// the announcement. `idle` is false for a wait inside a job.
    fn park(&self, ready: &mut dyn FnMut() -> bool, deadline: Option<Instant>, idle: bool) {
        self.stamp.set(0);
        if self.searching.replace(false) {
            // Parking: our last look below stands in for the pass-on.
            let _ = self.pool.sleep().stop_searching();
        }
        // Asked again: a peer may have taken the last request without a
        // half to give, or, inside a wait, forks the half we wait for.
        self.pool.request_work(self.index);
        let sleep = &self.pool.sleep();
        sleep.prepare(self.index);
        if ready() || self.pool.has_work() || self.pool.is_done() || self.is_halting() {
            sleep.withdraw(self.index);
            self.searching.set(true);
            return;
        }
        let counters = self.counters();
        if idle {
            let parked = if self.pool.is_paused() {
                WorkerState::Paused
            } else {
                WorkerState::Parked
            };
            counters.set_state(parked);
        }
        crate::trace::event!(trace, worker = self.index, "park");
        park_until(deadline);
        sleep.withdraw(self.index);
        self.searching.set(true);
        if idle {
            counters.set_state(WorkerState::Idle);
        }
    }

    /// The thread is leaving: hand queued jobs and the search it may be
    /// counted for on to the other workers, and tell the control thread.
    fn retire(self) {
        let pool = Arc::clone(&self.pool);
        let slot = &pool.slots()[self.index];
        let halted = slot.stop_requested();
        crate::trace::event!(debug, worker = self.index, halted, "worker exits");
        slot.counters.set_state(if halted {
            WorkerState::Halted
        } else {
            WorkerState::Exited
        });
        let mut moved = 0;
        while let Some(job) = self.batch.pop().or_else(|| self.local.pop()) {
            pool.injector().push(job);
            moved += 1;
        }
        if moved > 0 {
            pool.wake_one();
        }
        self.stop_searching();
        if let Some(exit) = &pool.config().handlers.exit {
            // Before the idle check and `Exited`: a job it spawns is
            // counted, and the shutdown's join waits for it to return.
            call_handler(exit, self.index);
        }
        // A halted worker leaves without the idle check of the main loop:
        // if the job it just finished was the pool's last, nobody else
        // would wake the `wait_idle` and `shutdown` callers.
        pool.on_idle();
        *lock(&slot.thread) = None;
        let index = self.index;
        let Self { local, batch, .. } = self;
        *lock(&slot.deques) = Some(Deques { local, batch });
        // Never refused: the control thread waits for every worker's
        // `Exited` before it stops taking orders.
        let _ = pool.orders().post(Order::Exited(index));
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

/// Parks the calling thread until unparked or `deadline` (may return
/// early, like any park).
fn park_until(deadline: Option<Instant>) {
    match deadline {
        None => crate::loom::thread::park(),
        Some(d) => crate::loom::thread::park_timeout(d.saturating_duration_since(Instant::now())),
    }
}

/// Blocks the calling thread until `done()` returns `true` or `deadline`
/// passes; returns `done()`. The caller must have arranged to be unparked
/// when `done()` becomes true. `done` may be called again after it
/// returned `true`, and must then return `true` again without repeating
/// any effect.
///
/// On a worker thread that may help ([`WorkerCtx::may_help`]) it runs
/// other jobs while it waits, searching for a few rounds when there are
/// none and then parked in the sleep mask, so a job waiting on another
/// never starves a pool. Nested
/// [`MAX_NESTING`] jobs deep it runs only the jobs in its own `local`
/// deque (those its jobs spawned: the user's own nesting, which is what it
/// may be waiting for), then waits. A halting worker runs none. Either
/// waits as an outside thread does: parked outside the mask, so that no
/// new job's wake-up is spent on it.
pub(crate) fn wait_until(mut done: impl FnMut() -> bool, deadline: Option<Instant>) -> bool {
    with_current(|ctx| match ctx {
        Some(ctx) if ctx.may_help() => ctx.wait_helping(&mut done, deadline),
        Some(ctx) if !ctx.is_halting() => ctx.wait_on_own(&mut done, deadline),
        _ => wait_parked(&mut done, deadline),
    })
}

/// `wait_until` for a thread that runs no jobs meanwhile.
fn wait_parked(done: &mut dyn FnMut() -> bool, deadline: Option<Instant>) -> bool {
    loop {
        if done() {
            return true;
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return false;
        }
        park_until(deadline);
    }
}

impl WorkerCtx {
    /// `wait_until` past the nesting bound: runs the jobs its own jobs
    /// spawned (newest first, as it would anyway), never a stolen one, so
    /// the stack grows only with the user's own nesting.
    fn wait_on_own(&self, done: &mut dyn FnMut() -> bool, deadline: Option<Instant>) -> bool {
        loop {
            if done() {
                return true;
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return false;
            }
            if self.is_halting() || self.pool.is_paused() {
                return wait_parked(done, deadline);
            }
            match self.local.pop() {
                Some(task) => self.execute(task),
                // Only this thread pushes to `local`: nothing more will
                // come while it waits.
                None => return wait_parked(done, deadline),
            }
        }
    }

    fn wait_helping(&self, done: &mut dyn FnMut() -> bool, deadline: Option<Instant>) -> bool {
        debug_assert!(!self.searching.get());
        let finished = loop {
            if done() {
                break true;
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                break false;
            }
            if !self.may_help() {
                // Asked to halt meanwhile: wait without taking jobs.
                self.stop_searching();
                return wait_parked(done, deadline);
            }
            match self.find_job() {
                Some(job) => self.execute_found(job),
                // A few rounds first, as an idle worker does: what this
                // wait needs (a stolen `join` half, a joined job) is often
                // microseconds away, and a park costs a futex wake-up, on
                // a VM tens of microseconds, each time.
                None if self.search(done, deadline) => {}
                None => self.park(done, deadline, false),
            }
        };
        // Back to the job it waits in: a wake-up it was counted for as a
        // searcher goes on to another worker.
        self.stop_searching();
        finished
    }
}
