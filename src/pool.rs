//! The state shared by a dispatcher's handles and its worker threads.

use crate::admission::Admission;
use crate::deadline::Deadlines;
use crate::feed::Feeds;
use crate::job::cell::JobRef;
use crate::job::index::Index;
use crate::job::state::Cancel;
use crate::job::task::Task;
use crate::job::JobId;
use crate::loom::{fence, AtomicUsize, Mutex};
use crate::places::Places;
use crate::signal::{lock, Signal};
use crate::stats::Stats;
use crate::worker::sleep::Sleep;
use crate::worker::slot::{self, Slot};
use crate::{worker, Arc};
use crossbeam_deque::Injector;
use std::io;
use std::sync::atomic::Ordering::{Acquire, Release, SeqCst};
use std::sync::{mpsc, MutexGuard};

/// Names a worker thread from its index.
pub(crate) type ThreadName = Arc<dyn Fn(usize) -> String + Send + Sync>;

/// What the builder fixed for the pool's life.
pub(crate) struct Config {
    pub(crate) max_workers: usize,
    pub(crate) capacity: Option<usize>,
    pub(crate) history: usize,
    pub(crate) thread_name: ThreadName,
    pub(crate) stack_size: Option<usize>,
}

/// `Pool::held`: the user's pause.
const USER_PAUSE: usize = 1;
/// `Pool::held`: one halt's hold.
const HALT_HOLD: usize = 2;

/// Why `Pool::grow_to` started fewer workers than asked.
#[derive(Debug)]
pub(crate) enum GrowError {
    /// The operating system refused a thread (or `thread_name` failed).
    Spawn(io::Error),
    /// The pool was shut down while the grow waited for an exiting thread.
    Closed,
}

pub(crate) struct Pool {
    pub(crate) injector: Injector<Task>,
    /// One deque per outside spawning thread (up to `FEEDS`); see `feed.rs`.
    pub(crate) feeds: Feeds,
    /// `max_workers` slots; only `slots[..high]` have ever run a thread.
    pub(crate) slots: Box<[Slot]>,
    high: AtomicUsize,
    pub(crate) sleep: Sleep,
    /// Admissions (with the CLOSED bit) and refusals; see `admission.rs`.
    /// Workers never write it: each counts its finished jobs in its own
    /// slot, so finishing a job touches no shared cache line.
    admission: Admission,
    /// The bounded queue's places (none counted when unbounded).
    pub(crate) places: Places,
    /// Outside spawners blocked on a full queue (workers wait in the sleep
    /// mask instead; see `Places::worker_waits`).
    pub(crate) space: Signal,
    /// `wait_idle` and `shutdown` callers, waiting for `pending` to reach 0.
    pub(crate) idle: Signal,
    /// Whether workers may start jobs: 0 if so. Bit `USER_PAUSE` is
    /// `pause`'s; each halt walking the index adds `HALT_HOLD` for the
    /// walk. Kept apart so that a `pause`, `resume` or shutdown racing a
    /// halt cannot lift the halt's hold (nor a halt lift a user's pause).
    held: AtomicUsize,
    pub(crate) index: Index,
    pub(crate) deadlines: Deadlines,
    /// Held by the orders that take workers out of ACTIVE (`halt_worker`,
    /// a shrinking `set_workers`), from their count of running workers
    /// through their requests, so that two of them cannot both count the
    /// same worker as one that stays. A growing `set_workers` holds it
    /// from its check that the pool is not closed while it claims slots
    /// and starts threads, and `join_workers` takes it before reading the
    /// slots, so a shutdown joins every thread a racing grow starts.
    /// Never taken by workers, nor on the spawn path.
    pub(crate) control: Mutex<()>,
    pub(crate) config: Config,
}

impl Pool {
    pub(crate) fn new(config: Config) -> Pool {
        Pool {
            injector: Injector::new(),
            feeds: Feeds::new(),
            slots: (0..config.max_workers).map(|_| Slot::new()).collect(),
            high: AtomicUsize::new(0),
            sleep: Sleep::new(config.max_workers),
            admission: Admission::new(),
            places: Places::new(config.capacity),
            space: Signal::default(),
            idle: Signal::default(),
            held: AtomicUsize::new(0),
            index: Index::new(config.history),
            deadlines: Deadlines::default(),
            control: Mutex::new(()),
            config,
        }
    }

    /// The slots that have ever run a thread: the only ones worth stealing
    /// from or reporting.
    pub(crate) fn used_slots(&self) -> &[Slot] {
        // ORDERING: Acquire pairs with the Release in `start_worker`, so the
        // slot's deque is initialised before anyone steals from it.
        &self.slots[..self.high.load(Acquire)]
    }

    /// Starts a worker thread in `index`, which the caller has claimed.
    /// A `thread_name` closure that panics or names a thread with a NUL
    /// byte (which `std::thread::Builder` would panic on) is an error like
    /// a refused thread, and the slot is given back.
    /// The new thread drops `running` once it runs (or as it unwinds).
    pub(crate) fn start_worker(
        self: &Arc<Self>,
        index: usize,
        previous: usize,
        running: mpsc::Sender<()>,
    ) -> io::Result<()> {
        let slot = &self.slots[index];
        let name = match crate::unwind::catch(|| (self.config.thread_name)(index)) {
            Ok(name) if !name.contains('\0') => name,
            Ok(_) => {
                slot.unclaim(previous);
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "thread_name gave a name with a NUL byte",
                ));
            }
            Err(_) => {
                slot.unclaim(previous);
                return Err(io::Error::other("thread_name panicked"));
            }
        };
        slot.join_thread();
        let mut builder = std::thread::Builder::new().name(name);
        if let Some(size) = self.config.stack_size {
            builder = builder.stack_size(size);
        }
        // ORDERING: Release pairs with the Acquire in `used_slots`: a thief
        // that sees this slot counted sees its deque's stealer set up.
        self.high.fetch_max(index + 1, Release);
        let pool = Arc::clone(self);
        match builder.spawn(move || worker::main_loop(pool, index, running)) {
            Ok(handle) => {
                *crate::signal::lock(&slot.join) = Some(handle);
                Ok(())
            }
            Err(e) => {
                slot.unclaim(previous);
                Err(e)
            }
        }
    }

    /// Starts workers until `n` are running, in the lowest free slots, and
    /// waits until the threads it started are running: a pool fresh from
    /// `build` has its workers up (as rayon's does), and a thread's start
    /// (~1 ms of CPU in a VM) is not paid during the first jobs.
    ///
    /// A slot whose worker is halting becomes free when that thread exits.
    /// If the free slots are not enough, a second pass waits for those
    /// threads (each finishes its current job first) and reuses their
    /// slots, rather than starting fewer workers than asked; except on one
    /// of the pool's own workers, where waiting could deadlock (nor does it
    /// wait there for the new threads to run).
    ///
    /// The caller holds `control` (checked, under it, that the pool is not
    /// closed); it is held while slots are claimed and threads started, so
    /// that a shutdown's `join_workers` sees every thread started before
    /// it, and released while waiting for a halting thread, whose current
    /// job may give orders of its own.
    pub(crate) fn grow_to(
        self: &Arc<Self>,
        n: usize,
        control: MutexGuard<'_, ()>,
    ) -> Result<(), GrowError> {
        let may_wait = !crate::dispatcher::on_worker_of(self);
        // Each thread started holds a sender and drops it once running, so
        // the channel disconnects when all of them run (or have unwound).
        let (running, all_running) = mpsc::channel();
        let result = self.start_until(n, may_wait, &running, control);
        drop(running);
        if may_wait {
            // Nothing is ever sent: this returns at the disconnect.
            let _ = all_running.recv();
        }
        result
    }

    /// `grow_to`'s starting half: hands each thread it starts a clone of
    /// `running`, and lets go of `control` when it returns.
    fn start_until<'a>(
        self: &'a Arc<Self>,
        n: usize,
        may_wait: bool,
        running: &mpsc::Sender<()>,
        mut control: MutexGuard<'a, ()>,
    ) -> Result<(), GrowError> {
        let mut workers = self.running_workers();
        for wait_for_halting in [false, true] {
            for (index, slot) in self.slots.iter().enumerate() {
                if workers >= n {
                    return Ok(());
                }
                // A halting thread (second pass) finishes its current job
                // first, which may give orders of its own; a halted one may
                // still run thread-local destructors, which may too. Either
                // is joined without `control`, which those orders take.
                let exiting = match slot.life() {
                    slot::HALTING => wait_for_halting && may_wait,
                    slot::HALTED => slot.may_have_thread(),
                    _ => false,
                };
                if exiting {
                    drop(control);
                    slot.join_exiting();
                    control = lock(&self.control);
                    // Meanwhile a shutdown may have joined the threads (and
                    // would not join one started now), and other orders may
                    // have changed the count.
                    if self.is_closed() {
                        return Err(GrowError::Closed);
                    }
                    workers = self.running_workers();
                    if workers >= n {
                        return Ok(());
                    }
                }
                if let Some(previous) = slot.try_claim() {
                    self.start_worker(index, previous, running.clone())
                        .map_err(GrowError::Spawn)?;
                    workers += 1;
                }
            }
        }
        Ok(())
    }

    /// Worker threads running and not asked to halt.
    pub(crate) fn running_workers(&self) -> usize {
        slot::running(self.used_slots())
    }

    /// Counts a job in, unless the pool is closed; returns its id (a
    /// refused spawn leaves a gap in ids). A refusal can bring `pending` to
    /// 0 without any worker noticing, so it signals like `unadmit`.
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
        self.idle.notify_all();
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
    /// wake `wait_idle`/`shutdown` callers, and (once closed) every worker
    /// so they can exit. The SeqCst load of the waiter count pairs with the
    /// waiter's increment; the worker's SeqCst finished-count store comes
    /// before it, so either the waiter sees the count or we see the waiter.
    pub(crate) fn on_idle(&self) {
        fence(SeqCst);
        let closed = self.is_closed();
        if (closed || self.idle.has_waiters()) && self.pending() == 0 {
            self.idle.notify_all();
            if closed {
                self.wake_all();
            }
        }
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.admission.is_closed()
    }

    /// Stops accepting jobs.
    pub(crate) fn close(&self) {
        self.admission.close();
        self.wake_all();
        // Spawners blocked on a full queue give up once closed.
        self.space.notify_all();
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

    /// A worker took a job out of the queue (to run or to discard it).
    pub(crate) fn release_place(&self) {
        if self.places.is_bounded() && self.places.popped() {
            self.place_freed();
        }
    }

    /// Cancels `job` for this pool's own callers (by id, `cancel_queued`,
    /// `halt`, the deadline timer): like `JobRef::cancel`, and a job found
    /// still queued gives its place in a bounded queue back at once (see
    /// `places.rs` for the order of the steps).
    pub(crate) fn cancel_job(&self, job: &JobRef, reason: usize, running: bool) -> Cancel {
        self.places
            .cancel(|won| job.cancel_then(reason, running, won), &|| {
                self.place_freed()
            })
    }

    /// Wakes whoever waits for a place: outside spawners on `space`,
    /// workers (jobs spawning into the full queue) in the sleep mask. Rare
    /// enough that waking every parked worker costs nothing that matters.
    fn place_freed(&self) {
        self.space.notify_all();
        if self.places.has_waiting_workers() {
            self.wake_all();
        }
    }

    /// May workers start jobs? Not while paused or while a halt walks.
    pub(crate) fn is_paused(&self) -> bool {
        // ORDERING: Acquire pairs with the SeqCst updates below; a worker
        // that misses a change by a moment is woken by their `wake_all`.
        self.held.load(Acquire) != 0
    }

    /// Paused by `pause` (what `Dispatcher::is_paused` reports).
    pub(crate) fn is_paused_by_user(&self) -> bool {
        // ORDERING: Acquire, as in `is_paused`.
        self.held.load(Acquire) & USER_PAUSE != 0
    }

    pub(crate) fn set_paused(&self, paused: bool) {
        // SeqCst (not just Release): `pause` sets the bit, then reads
        // `CLOSED`, while shutdown sets `CLOSED`, then clears the bit; with
        // both in the single SeqCst order, one of them sees the other
        // (Dekker), so a closed pool never stays paused.
        if paused {
            self.held.fetch_or(USER_PAUSE, SeqCst);
        } else {
            self.held.fetch_and(!USER_PAUSE, SeqCst);
            self.wake_all();
        }
    }

    /// Holds every worker back while a halt cancels the queued jobs, so
    /// that none starts one before the walk reaches it; `release_halt`
    /// ends the hold. Only a job a worker had already taken can start.
    pub(crate) fn hold_for_halt(&self) {
        // SeqCst, as `set_paused`.
        self.held.fetch_add(HALT_HOLD, SeqCst);
    }

    pub(crate) fn release_halt(&self) {
        // SeqCst, as `set_paused`.
        self.held.fetch_sub(HALT_HOLD, SeqCst);
        self.wake_all();
    }

    /// Pauses, unless the pool is closed: shutdown and halt wait for every
    /// accepted job to run or be discarded, which a paused pool never does.
    pub(crate) fn pause(&self) {
        self.set_paused(true);
        if self.is_closed() {
            self.set_paused(false);
        }
    }

    /// Is there anything for an idle worker to take?
    pub(crate) fn has_work(&self) -> bool {
        !self.is_paused()
            && (!self.injector.is_empty()
                || self.feeds.in_use().iter().any(|f| !f.stealer.is_empty())
                || self.used_slots().iter().any(|s| !s.stealer.is_empty()))
    }

    /// Wakes one parked worker, if any: called after each new job.
    pub(crate) fn wake_one(&self) {
        if let Some(slot) = self.sleep.claim_one() {
            self.slots[slot].unpark();
        }
    }

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
            .collect();
        Stats::new(
            self.running_workers(),
            per_worker,
            self.pending(),
            self.index.len(),
            running_jobs,
        )
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.deadlines.stop();
    }
}
