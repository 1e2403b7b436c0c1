//! The state shared by a dispatcher's handles, its worker threads and its
//! control thread, and the non-blocking operations on it: admitting a job,
//! waking a worker, cancelling through the pool, counting what is pending.
//!
//! Nothing here blocks or starts a thread: waiting is the worker layer's
//! (`worker`), and everything that changes which workers run or may start
//! jobs is the control thread's (`control.rs`), which alone writes
//! [`Pool::gate`](Pool::set_gate), the slots' stop flags and the count of
//! running workers.

use crate::admission::Admission;
use crate::feed::Feeds;
use crate::job::cell::JobRef;
use crate::job::index::Index;
use crate::job::state::{self, Cancel};
use crate::job::task::Task;
use crate::job::{JobId, JobStatus};
use crate::loom::{fence, AtomicU64, AtomicUsize, Mutex};
use crate::order::{Inbox, Threads};
use crate::places::Places;
use crate::signal::Signal;
use crate::sleep::{Claim, Sleep};
use crate::slot::Slot;
use crate::stats::Stats;
use crate::unwind::PanicHandler;
use crate::waker_queue::WakerQueue;
use crate::Arc;
use crossbeam_deque::Injector;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release, SeqCst};
use std::thread::JoinHandle;

/// What the builder fixed for the pool's life.
pub(crate) struct Config {
    pub(crate) max_workers: usize,
    pub(crate) capacity: Option<usize>,
    pub(crate) history: usize,
    pub(crate) stack_size: Option<usize>,
    pub(crate) handlers: Handlers,
}

/// A start or exit handler: gets the worker's index.
pub(crate) type WorkerHandler = Arc<dyn Fn(usize) + Send + Sync>;

/// The user's handlers, run on the worker threads (never on the control
/// thread).
#[derive(Default)]
pub(crate) struct Handlers {
    pub(crate) panic: Option<PanicHandler>,
    pub(crate) start: Option<WorkerHandler>,
    pub(crate) exit: Option<WorkerHandler>,
}

/// The gate's bit for the user's pause.
pub(crate) const GATE_PAUSE: usize = 1;
/// The gate's bit held while a halt walks the index.
pub(crate) const GATE_HALT: usize = 2;

pub(crate) struct Pool {
    /// Unique among the pools of this process (a worker thread's mark).
    id: u64,
    injector: Injector<Task>,
    /// One deque per outside spawning thread (up to `FEEDS`); see `feed.rs`.
    feeds: Arc<Feeds>,
    /// `max_workers` slots; only `slots[..high]` have ever run a thread.
    slots: Box<[Slot]>,
    high: AtomicUsize,
    sleep: Sleep,
    /// Admissions (with the CLOSED bit) and refusals; see `admission.rs`.
    /// Workers never write it: each counts its finished jobs in its own
    /// slot, so finishing a job touches no shared cache line.
    admission: Admission,
    /// The bounded queue's places (none counted when unbounded).
    places: Places,
    /// Queued jobs cancelled through the pool (`cancel_job`), for `stats`;
    /// the worker that pops such a job does not count it again.
    queued_cancels: AtomicU64,
    /// Threads blocked on a full queue: outside spawners, and workers that
    /// may not run other jobs meanwhile (halting ones). Other workers wait
    /// in the sleep mask instead; see `Places::worker_waits`.
    space: Signal,
    /// Async spawners waiting for a place (`Dispatcher::reserve`), woken
    /// one per freed place.
    space_wakers: WakerQueue,
    /// `wait_idle` callers, waiting for `pending` to reach 0.
    idle: Signal,
    /// 0 if workers may start jobs; else `GATE_PAUSE` and/or `GATE_HALT`.
    /// Written by the control thread only.
    gate: AtomicUsize,
    /// Workers running and not asked to halt; written by the control
    /// thread only.
    active: AtomicUsize,
    index: Index,
    /// The control thread's orders.
    orders: Inbox,
    /// The control thread itself, joined by the shutdown that waits last.
    control_thread: Mutex<Option<JoinHandle<()>>>,
    /// Set by the control thread as it ends: the threads it handed to the
    /// shutdown, for a later shutdown call to wait on too.
    gone: Mutex<Option<Threads>>,
    config: Config,
}

impl Pool {
    pub(crate) fn new(config: Config) -> Pool {
        static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        Pool {
            // ORDERING: Relaxed: only uniqueness matters.
            id: NEXT_ID.fetch_add(1, Relaxed),
            injector: Injector::new(),
            feeds: Arc::new(Feeds::new()),
            slots: (0..config.max_workers).map(|_| Slot::new()).collect(),
            high: AtomicUsize::new(0),
            sleep: Sleep::new(config.max_workers),
            admission: Admission::new(),
            places: Places::new(config.capacity),
            queued_cancels: AtomicU64::new(0),
            space: Signal::default(),
            space_wakers: WakerQueue::default(),
            idle: Signal::default(),
            gate: AtomicUsize::new(0),
            active: AtomicUsize::new(0),
            index: Index::new(config.history),
            orders: Inbox::new(),
            control_thread: Mutex::new(None),
            gone: Mutex::new(None),
            config,
        }
    }

    /// Unique among the pools of this process (a worker thread's mark).
    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// The global queue: spawns beyond the feeds, a halted worker's jobs.
    pub(crate) fn injector(&self) -> &Injector<Task> {
        &self.injector
    }

    /// The outside spawning threads' queues.
    pub(crate) fn feeds(&self) -> &Arc<Feeds> {
        &self.feeds
    }

    /// Every worker slot, used or not.
    pub(crate) fn slots(&self) -> &[Slot] {
        &self.slots
    }

    /// The park/wake protocol's state.
    pub(crate) fn sleep(&self) -> &Sleep {
        &self.sleep
    }

    /// The bounded queue's places.
    pub(crate) fn places(&self) -> &Places {
        &self.places
    }

    /// Where threads blocked on a full queue wait.
    pub(crate) fn space(&self) -> &Signal {
        &self.space
    }

    /// Where async spawners wait for a place in a full queue.
    pub(crate) fn space_wakers(&self) -> &WakerQueue {
        &self.space_wakers
    }

    /// Where `wait_idle` callers wait.
    pub(crate) fn idle(&self) -> &Signal {
        &self.idle
    }

    /// The id index of every live record and the history.
    pub(crate) fn index(&self) -> &Index {
        &self.index
    }

    /// The control thread's inbox.
    pub(crate) fn orders(&self) -> &Inbox {
        &self.orders
    }

    /// The control thread's handle, for the last shutdown to join.
    pub(crate) fn control_thread(&self) -> &Mutex<Option<JoinHandle<()>>> {
        &self.control_thread
    }

    /// The threads the control thread handed over as it ended.
    pub(crate) fn gone(&self) -> &Mutex<Option<Threads>> {
        &self.gone
    }

    /// What the builder fixed.
    pub(crate) fn config(&self) -> &Config {
        &self.config
    }

    /// The slots that have ever run a thread: the only ones worth stealing
    /// from or reporting.
    pub(crate) fn used_slots(&self) -> &[Slot] {
        // ORDERING: Acquire pairs with the Release in `mark_used`, so the
        // slot's deques are initialised before anyone steals from them.
        &self.slots[..self.high.load(Acquire)]
    }

    /// The control thread is about to start a thread in slot `index`.
    pub(crate) fn mark_used(&self, index: usize) {
        // ORDERING: Release pairs with the Acquire in `used_slots`.
        self.high.fetch_max(index + 1, Release);
    }

    /// Worker threads running and not asked to halt.
    pub(crate) fn running_workers(&self) -> usize {
        // ORDERING: Acquire pairs with the control thread's Release store:
        // a caller that saw its order answered sees the new count.
        self.active.load(Acquire)
    }

    pub(crate) fn set_active(&self, n: usize) {
        // ORDERING: Release, for `running_workers`.
        self.active.store(n, Release);
    }

    /// Counts a job in, unless the pool is closed; returns its id (a
    /// refused spawn leaves a gap in ids).
    pub(crate) fn admit(&self) -> Option<u64> {
        let id = self.admission.admit();
        if id.is_none() {
            self.signal_refusal();
        }
        id
    }

    /// Takes back an admission (the job was refused after all). This can
    /// bring `pending` to 0 without any worker noticing, so it signals.
    pub(crate) fn unadmit(&self) {
        self.admission.take_back();
        self.signal_refusal();
    }

    fn signal_refusal(&self) {
        if self.idle.has_waiters() && self.pending() == 0 {
            self.idle.notify_new(|| self.pending() == 0);
        }
        if self.is_closed() {
            self.wake_all();
        }
    }

    /// Jobs accepted and not yet finished. The finished and refused counts
    /// are read before the spawned count, so the result can only
    /// overestimate (a job counted as finished or refused was counted as
    /// spawned earlier): 0 means the pool really was idle at the moment
    /// `spawned` was read.
    pub(crate) fn pending(&self) -> usize {
        // Pairs with the fence a worker issues in `on_idle` after its last
        // finished-count store, and with `close`/`Signal` on the other side:
        // fence against fence, one side sees the other's writes (stated
        // with fences because loom checks fences, not SeqCst loads).
        fence(SeqCst);
        let finished: usize = self
            .used_slots()
            .iter()
            .map(|s| s.counters.finished())
            .sum();
        self.admission.pending(finished)
    }

    /// Called by a worker that found no job: if the pool just became idle,
    /// wake `wait_idle` callers (every caller waiting at this
    /// moment returns, see `Signal::wait_for_news`), and (once closed)
    /// every worker so they can exit. Also drops the finished records that
    /// a deep queue left in the index's overflow, so that memory is back
    /// to the history plus the live jobs without anyone calling
    /// `wait_idle`. The SeqCst load of the waiter count pairs with the
    /// waiter's increment; the worker's SeqCst finished-count store comes
    /// before it, so either the waiter sees the count or we see the waiter.
    pub(crate) fn on_idle(&self) {
        fence(SeqCst);
        let closed = self.is_closed();
        let waiters = self.idle.has_waiters();
        if closed || waiters || self.index.has_overflow() {
            if self.pending() != 0 {
                return;
            }
            self.index.trim();
            if waiters {
                self.idle.notify_new(|| self.pending() == 0);
            }
            if closed {
                self.wake_all();
            }
        }
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.admission.is_closed()
    }

    /// Stops accepting jobs (the control thread's, at a shutdown or halt).
    pub(crate) fn close(&self) {
        self.admission.close();
        self.wake_all();
        // Spawners blocked on a full queue give up once closed.
        self.space.notify_all();
        self.space_wakers.wake_all();
    }

    /// A worker may exit: closed and nothing left to run. `CLOSED` is read
    /// first: a job admitted before the close is then counted by `pending`
    /// (the other order misses one admitted in between; the loom model in
    /// `admission_loom.rs` finds that as a lost job).
    pub(crate) fn is_done(&self) -> bool {
        self.is_closed() && self.pending() == 0
    }

    /// Reserves a place in a bounded queue; `false` if it is full.
    pub(crate) fn reserve(&self) -> bool {
        self.places.reserve()
    }

    /// A worker took `job` out of the queue, to run it (`claimed`) or to
    /// discard it: gives its place back, unless a cancel through the pool
    /// already did and said so in the status word (see `places.rs`).
    pub(crate) fn release_place(&self, job: &JobRef, claimed: bool) {
        if !self.places.is_bounded() {
            return;
        }
        if claimed || !job.header().state.load().has(state::BY_POOL) {
            self.give_back_place();
        }
    }

    /// Cancels `job` for this pool's own callers (by id, `cancel_queued`,
    /// `halt`, a deadline): like `JobRef::cancel`, and a job found still
    /// queued is settled at once, as `BY_POOL` in the same transition says:
    /// it gives its place in a bounded queue back (see `places.rs`) and is
    /// counted cancelled. `defer`: leave the closure for the worker that
    /// pops the job to drop (the control thread runs no user code).
    pub(crate) fn cancel_job(
        &self,
        job: &JobRef,
        reason: usize,
        running: bool,
        defer: bool,
    ) -> Cancel {
        let bounded = self.places.is_bounded();
        let mut flags = reason | state::BY_POOL;
        if defer {
            flags |= state::DEFERRED;
        }
        job.cancel_then(flags, running, &mut || {
            // ORDERING: Relaxed: a count for `stats` only. The caller's
            // later `stats` sees it: on the same thread, or after the
            // control thread's reply to its order.
            self.queued_cancels.fetch_add(1, Relaxed);
            if bounded {
                self.give_back_place();
            }
        })
    }

    /// Gives a bounded queue's place back (a job left the queue, or an
    /// unused `Permit` was dropped) and wakes whoever waits for one:
    /// outside spawners and halting workers on `space`, other workers
    /// (jobs spawning into the full queue) in the sleep mask, and one
    /// async spawner. Each of these is one SeqCst load while nobody
    /// waits; waiting workers are rare enough that waking every parked
    /// one costs nothing that matters.
    pub(crate) fn give_back_place(&self) {
        self.places.give_back();
        self.space.notify_all();
        if self.places.has_waiting_workers() {
            self.wake_all();
        }
        self.space_wakers.wake_one();
    }

    /// May workers start jobs? Not while paused or while a halt walks.
    pub(crate) fn is_paused(&self) -> bool {
        // ORDERING: Acquire pairs with the control thread's Release store;
        // a worker that misses a change by a moment is woken by the
        // `wake_all` that follows every opening.
        self.gate.load(Acquire) != 0
    }

    /// Paused by `pause` (what `Dispatcher::is_paused` reports).
    pub(crate) fn is_paused_by_user(&self) -> bool {
        // ORDERING: Acquire, as in `is_paused`.
        self.gate.load(Acquire) & GATE_PAUSE != 0
    }

    /// The control thread's write of the gate.
    pub(crate) fn set_gate(&self, gate: usize) {
        // SeqCst: a closing gate is ordered before the order's reply (and
        // so before any spawn its caller makes afterwards), and an opening
        // one before the `wake_all` whose fence pairs with a parking
        // worker's (rule 3 of `sleep.rs`).
        self.gate.store(gate, SeqCst);
    }

    /// Is there anything for an idle worker to take?
    pub(crate) fn has_work(&self) -> bool {
        !self.is_paused()
            && (!self.injector.is_empty()
                || self.feeds.in_use().iter().any(|f| !f.stealer.is_empty())
                || self.used_slots().iter().any(Slot::has_jobs))
    }

    /// Worker `from` has run out of jobs: asks every other worker to
    /// publish a pending `join` half at its next `join` (`request.rs`).
    pub(crate) fn request_work(&self, from: usize) {
        for (i, slot) in self.used_slots().iter().enumerate() {
            if i != from {
                slot.request.raise();
            }
        }
    }

    /// Wakes a parked worker as a searcher, unless one searches already
    /// (rule 1 of `sleep.rs`): called after each new job.
    pub(crate) fn wake_one(&self) {
        loop {
            match self.sleep.claim_one() {
                Claim::Nobody => return,
                Claim::Woke(slot) => {
                    self.slots[slot].unpark();
                    return;
                }
                // Our stand-in found nobody to wake: stop searching in its
                // place, looking once more, as a searcher does.
                Claim::StandInLeft => {
                    if !self.stop_searching_last() {
                        return;
                    }
                    // A sleeper is between clearing its bit and its
                    // counts (`withdraw`, `claim_all`): let it finish.
                    crate::loom::thread::yield_now();
                }
            }
        }
    }

    /// A searcher stops searching (to run a job, to return to the job it
    /// waits in, or to leave): if it was the last and jobs are left, it
    /// wakes another (rule 2 of `sleep.rs`).
    pub(crate) fn pass_on(&self) {
        if self.stop_searching_last() {
            self.wake_one();
        }
    }

    /// Stops searching; `true` if that was the last searcher and, after a
    /// fence, there is still work to take.
    fn stop_searching_last(&self) -> bool {
        if !self.sleep.stop_searching() {
            return false;
        }
        // Pairs with the fence of a spawner that saw us searching and woke
        // nobody: either it sees `searching` at 0 or we see its job.
        fence(SeqCst);
        self.has_work()
    }

    /// Wakes every parked worker, each counted as searching.
    pub(crate) fn wake_all(&self) {
        self.sleep.claim_all(|slot| self.slots[slot].unpark());
    }

    pub(crate) fn stats(&self) -> Stats {
        let per_worker: Vec<_> = self
            .used_slots()
            .iter()
            .enumerate()
            .map(|(i, s)| s.counters.snapshot(i))
            .collect();
        // A job whose `join` halves run on two workers is both workers'
        // current job: listed once.
        let mut current: Vec<JobId> = per_worker.iter().filter_map(|w| w.current_job).collect();
        current.sort_unstable();
        current.dedup();
        let running_jobs = current
            .into_iter()
            .filter_map(|id| self.index.get(id))
            .map(|job| job.header().info())
            // A worker's current job is published after its claim, but the
            // record may be read between a worker's claim of one job and
            // its publication of the next: keep only what runs.
            .filter(|info| info.status() == JobStatus::Running)
            .collect();
        let queued_cancels = self.queued_cancels.load(Relaxed)
            + self
                .used_slots()
                .iter()
                .map(|s| s.counters.discarded())
                .sum::<u64>();
        // After every count above, so that it covers each job they count.
        let accepted = self.admission.accepted();
        Stats::new(
            self.running_workers(),
            per_worker,
            accepted,
            queued_cancels,
            self.config.capacity,
            self.index.len(),
            running_jobs,
        )
    }
}
