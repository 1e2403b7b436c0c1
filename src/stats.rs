//! Counters: per-worker ones written by their worker alone, and the
//! [`Stats`] snapshot built from them.

use crate::job::{JobId, JobInfo};
use crate::loom::{AtomicU64, AtomicUsize};
use std::sync::atomic::Ordering::{Relaxed, SeqCst};
use std::time::Duration;

/// What a worker is doing.
///
/// ```
/// use workyard::{Dispatcher, WorkerState};
///
/// let pool = Dispatcher::builder().workers(2).build().unwrap();
/// pool.halt_worker(1).unwrap();
/// pool.shutdown();
/// let states: Vec<_> = pool.stats().per_worker.iter().map(|w| w.state).collect();
/// assert_eq!(states, [WorkerState::Exited, WorkerState::Halted]);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum WorkerState {
    /// Awake, looking for work.
    Idle,
    /// Running a job.
    Running,
    /// Parked: no work was found.
    Parked,
    /// The dispatcher is paused; the worker waits for `resume`.
    Paused,
    /// Halted by `halt_worker` or `set_workers`: its thread has exited, or
    /// exits once its current job returns.
    Halted,
    /// The dispatcher shut down and the thread has exited.
    Exited,
}

impl WorkerState {
    fn from_usize(v: usize) -> WorkerState {
        match v {
            0 => WorkerState::Idle,
            1 => WorkerState::Running,
            2 => WorkerState::Parked,
            3 => WorkerState::Paused,
            4 => WorkerState::Halted,
            _ => WorkerState::Exited,
        }
    }

    fn to_usize(self) -> usize {
        match self {
            WorkerState::Idle => 0,
            WorkerState::Running => 1,
            WorkerState::Parked => 2,
            WorkerState::Paused => 3,
            WorkerState::Halted => 4,
            WorkerState::Exited => 5,
        }
    }
}

/// One worker's counters. Only that worker writes them, so an update is a
/// plain load and store, not a locked read-modify-write.
#[derive(Default)]
pub(crate) struct WorkerCounters {
    /// Jobs claimed; minus `jobs_run`, the jobs running on this worker
    /// (more than one while a job waits inside another for one it runs).
    started: AtomicU64,
    jobs_run: AtomicU64,
    succeeded: AtomicU64,
    failed: AtomicU64,
    panicked: AtomicU64,
    cancelled: AtomicU64,
    steals: AtomicU64,
    busy_nanos: AtomicU64,
    state: AtomicUsize,
    current: AtomicU64,
    /// Jobs this worker finished or discarded: `Pool::pending` subtracts
    /// the sum of these from the spawned count.
    finished: AtomicUsize,
}

// ORDERING (whole impl): Relaxed. Each counter has one writer; readers want
// a recent value, and `wait_idle`'s SeqCst hand-off orders the final ones.
impl WorkerCounters {
    fn bump(counter: &AtomicU64, by: u64) {
        counter.store(counter.load(Relaxed) + by, Relaxed);
    }

    pub(crate) fn count_outcome(&self, state: usize) {
        use crate::job::state as s;
        let counter = match state {
            s::SUCCEEDED => &self.succeeded,
            s::FAILED => &self.failed,
            s::PANICKED => &self.panicked,
            _ => &self.cancelled,
        };
        Self::bump(counter, 1);
    }

    pub(crate) fn count_start(&self) {
        Self::bump(&self.started, 1);
    }

    pub(crate) fn count_run(&self, busy_nanos: u64) {
        Self::bump(&self.jobs_run, 1);
        Self::bump(&self.busy_nanos, busy_nanos);
    }

    /// Counts a job out. SeqCst, not Relaxed: `Pool::pending` and the idle
    /// hand-off in `Pool::on_idle` rely on its place in the total order.
    pub(crate) fn count_finished(&self) {
        // A locked RMW costs what a SeqCst store costs on x86 (an xchg),
        // and keeps the counter a single read-modify-write chain.
        self.finished.fetch_add(1, SeqCst);
    }

    /// Read with a read-modify-write, for `Pool::pending` (see
    /// `Admission::pending` for why); only slow paths call it.
    pub(crate) fn finished(&self) -> usize {
        self.finished.fetch_add(0, SeqCst)
    }

    pub(crate) fn count_steal(&self) {
        Self::bump(&self.steals, 1);
    }

    pub(crate) fn set_state(&self, state: WorkerState) {
        self.state.store(state.to_usize(), Relaxed);
    }

    /// Sets the job shown as running (0 for none); returns the previous one.
    pub(crate) fn set_current(&self, id: u64) -> u64 {
        let prev = self.current.load(Relaxed);
        self.current.store(id, Relaxed);
        prev
    }

    pub(crate) fn snapshot(&self, index: usize) -> WorkerStats {
        let current = self.current.load(Relaxed);
        // `jobs_run` first: it trails `started` (saturating all the same,
        // as Relaxed loads of two counters need not agree).
        let jobs_run = self.jobs_run.load(Relaxed);
        let running = self.started.load(Relaxed).saturating_sub(jobs_run);
        WorkerStats {
            index,
            state: WorkerState::from_usize(self.state.load(Relaxed)),
            current_job: (current != 0).then_some(JobId(current)),
            running: running as usize,
            jobs_run,
            succeeded: self.succeeded.load(Relaxed),
            failed: self.failed.load(Relaxed),
            panicked: self.panicked.load(Relaxed),
            cancelled: self.cancelled.load(Relaxed),
            steals: self.steals.load(Relaxed),
            busy: Duration::from_nanos(self.busy_nanos.load(Relaxed)),
        }
    }
}

/// One worker's figures, in [`Stats::per_worker`].
///
/// ```
/// let pool = workyard::Dispatcher::builder().workers(1).build().unwrap();
/// pool.spawn(|| ()).unwrap().join().unwrap();
/// pool.wait_idle();
/// let worker = &pool.stats().per_worker[0];
/// assert_eq!((worker.index, worker.jobs_run, worker.succeeded), (0, 1, 1));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct WorkerStats {
    /// The worker's index (stable for the dispatcher's life).
    pub index: usize,
    /// What it is doing now.
    pub state: WorkerState,
    /// The job it is running now, if any: the innermost one while a job
    /// waits inside another (a `join` of a handle whose job then runs here,
    /// say), and the job a stolen half of a [`join`](crate::join) belongs
    /// to while it runs that half.
    pub current_job: Option<JobId>,
    /// Jobs running on it now: usually 0 or 1, more while jobs wait
    /// inside one another. A stolen half of a `join` is not a job of its
    /// own and does not count.
    pub running: usize,
    /// Jobs it ran to the end.
    pub jobs_run: u64,
    /// Of the jobs it finished, how many succeeded.
    pub succeeded: u64,
    /// How many failed.
    pub failed: u64,
    /// How many panicked.
    pub panicked: u64,
    /// How many ended cancelled (including queued ones it discarded).
    pub cancelled: u64,
    /// Successful steals from other workers' deques.
    pub steals: u64,
    /// Time spent running jobs.
    pub busy: Duration,
}

/// A snapshot of a dispatcher's counters, from
/// [`Dispatcher::stats`](crate::Dispatcher::stats).
///
/// Totals are exact once the dispatcher is idle (after
/// [`wait_idle`](crate::Dispatcher::wait_idle)); while jobs run, each figure
/// is a recent value.
///
/// ```
/// use workyard::Dispatcher;
///
/// let pool = Dispatcher::builder().workers(2).build().unwrap();
/// for i in 0..10 {
///     pool.spawn(move || i * 2).unwrap();
/// }
/// pool.wait_idle();
/// let stats = pool.stats();
/// assert_eq!(stats.succeeded, 10);
/// assert_eq!(stats.queued + stats.running, 0);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Worker threads running (not halted).
    pub workers: usize,
    /// Jobs accepted and not yet started (or cancelled but not yet discarded).
    pub queued: usize,
    /// Jobs running now, each counted once: also one that waits inside
    /// another on the same worker, and one whose `join` halves run on two.
    pub running: usize,
    /// Jobs that succeeded.
    pub succeeded: u64,
    /// Jobs that failed.
    pub failed: u64,
    /// Jobs that panicked.
    pub panicked: u64,
    /// Jobs cancelled.
    pub cancelled: u64,
    /// Successful steals between workers.
    pub steals: u64,
    /// Status records held for lookup by id: the live jobs plus at most
    /// the configured history of finished ones. It does not grow with the
    /// number of jobs ever run.
    pub records: usize,
    /// The jobs the workers are running now, each with its worker and start
    /// time: each worker's [`current_job`](WorkerStats::current_job), once
    /// per job. A job waiting inside another is in [`running`](Self::running)
    /// but not here.
    pub running_jobs: Vec<JobInfo>,
    /// Each worker's figures, by worker index (halted workers included).
    pub per_worker: Vec<WorkerStats>,
}

impl Stats {
    pub(crate) fn new(
        workers: usize,
        per_worker: Vec<WorkerStats>,
        pending: usize,
        records: usize,
        running_jobs: Vec<JobInfo>,
    ) -> Stats {
        let sum = |f: fn(&WorkerStats) -> u64| per_worker.iter().map(f).sum::<u64>();
        let running = per_worker.iter().map(|w| w.running).sum();
        Stats {
            workers,
            queued: pending.saturating_sub(running),
            running,
            succeeded: sum(|w| w.succeeded),
            failed: sum(|w| w.failed),
            panicked: sum(|w| w.panicked),
            cancelled: sum(|w| w.cancelled),
            steals: sum(|w| w.steals),
            records,
            running_jobs,
            per_worker,
        }
    }

    /// Jobs that reached a terminal status.
    pub fn finished(&self) -> u64 {
        self.succeeded + self.failed + self.panicked + self.cancelled
    }
}
