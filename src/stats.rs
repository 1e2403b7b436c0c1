//! Counters: per-worker ones written by their worker alone, and the
//! [`Stats`] snapshot built from them.

use crate::job::raw::Tally;
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
///
/// A job is counted by its outcome (succeeded, failed, panicked or
/// cancelled while running) before its terminal state is published
/// (`Tally`), so whoever sees it finished finds it counted.
#[derive(Default)]
pub(crate) struct WorkerCounters {
    /// Jobs claimed; minus the outcomes below, the jobs running on this
    /// worker (more than one while a job waits inside another for one it
    /// runs).
    started: AtomicU64,
    succeeded: AtomicU64,
    failed: AtomicU64,
    panicked: AtomicU64,
    /// Jobs this worker ran that were asked to stop while they ran.
    cancelled: AtomicU64,
    /// Jobs cancelled through their handle while queued, which this
    /// worker popped and dropped: counted in `Stats::cancelled`, not in
    /// this worker's own figures (it never ran them).
    discarded: AtomicU64,
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

    fn outcome(&self, state: usize) -> &AtomicU64 {
        use crate::job::state as s;
        match state {
            s::SUCCEEDED => &self.succeeded,
            s::FAILED => &self.failed,
            s::PANICKED => &self.panicked,
            _ => &self.cancelled,
        }
    }

    pub(crate) fn count_start(&self) {
        Self::bump(&self.started, 1);
    }

    /// A job cancelled through its handle while queued was popped and
    /// dropped (one cancelled through the pool was counted by the pool).
    pub(crate) fn count_discarded(&self) {
        Self::bump(&self.discarded, 1);
    }

    pub(crate) fn discarded(&self) -> u64 {
        self.discarded.load(Relaxed)
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
        // The outcomes first: each job's trails its start, so `running`
        // cannot come out negative.
        let succeeded = self.succeeded.load(Relaxed);
        let failed = self.failed.load(Relaxed);
        let panicked = self.panicked.load(Relaxed);
        let cancelled = self.cancelled.load(Relaxed);
        let jobs_run = succeeded + failed + panicked + cancelled;
        let running = self.started.load(Relaxed).saturating_sub(jobs_run);
        WorkerStats {
            index,
            state: WorkerState::from_usize(self.state.load(Relaxed)),
            current_job: (current != 0).then_some(JobId(current)),
            running,
            jobs_run,
            succeeded,
            failed,
            panicked,
            cancelled,
            steals: self.steals.load(Relaxed),
            busy: Duration::from_nanos(self.busy_nanos.load(Relaxed)),
        }
    }
}

impl Tally for WorkerCounters {
    fn count(&self, state: usize, run_nanos: u64) {
        Self::bump(self.outcome(state), 1);
        Self::bump(&self.busy_nanos, run_nanos);
    }

    fn recount(&self, state: usize) {
        let counted = self.outcome(state);
        counted.store(counted.load(Relaxed) - 1, Relaxed);
        Self::bump(&self.cancelled, 1);
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
    pub running: u64,
    /// Jobs it ran to the end.
    pub jobs_run: u64,
    /// Of the jobs it finished, how many succeeded.
    pub succeeded: u64,
    /// How many failed.
    pub failed: u64,
    /// How many panicked.
    pub panicked: u64,
    /// How many were asked to stop while they ran here, and so ended
    /// cancelled. Queued jobs that were cancelled count only in
    /// [`Stats::cancelled`]: no worker ran them.
    pub cancelled: u64,
    /// Successful steals from other workers' deques.
    pub steals: u64,
    /// Time spent running jobs.
    pub busy: Duration,
}

/// A snapshot of a dispatcher's counters, from
/// [`Dispatcher::stats`](crate::Dispatcher::stats).
///
/// What it promises:
///
/// - **A job is counted by the time anyone can see it finished.** When
///   its [`join`](crate::JobHandle::join) (or `.await`, or the end of its
///   [`scope`](crate::Dispatcher::scope), or
///   [`wait_idle`](crate::Dispatcher::wait_idle)) returns, the job is in
///   [`succeeded`](Self::succeeded), [`failed`](Self::failed),
///   [`panicked`](Self::panicked) or [`cancelled`](Self::cancelled), and
///   no longer in [`queued`](Self::queued) or [`running`](Self::running).
///   A queued job cancelled through the dispatcher
///   ([`Dispatcher::cancel`](crate::Dispatcher::cancel),
///   [`cancel_queued`](crate::Dispatcher::cancel_queued), a halt, a
///   deadline) is counted before that call returns; one cancelled through
///   its [`JobHandle`](crate::JobHandle), which does not know its
///   dispatcher, when a worker drops it.
/// - **`queued` never exceeds the
///   [`queue_capacity`](crate::DispatcherBuilder::queue_capacity).** A
///   spawn still waiting for room counts in
///   [`waiting_spawns`](Self::waiting_spawns) until it gets a place.
/// - **Each figure is read on its own, without a lock**, while jobs move
///   from queued to running to finished: in a snapshot taken while jobs
///   run, `waiting_spawns + queued + running + finished()` may differ from
///   the number of jobs accepted by the few that changed state during the
///   read. Once the
///   dispatcher is idle every figure is exact.
///
/// All counts of jobs are `u64`.
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
    /// Jobs accepted and not yet started, including ones cancelled through
    /// their handle that no worker has dropped yet.
    pub queued: u64,
    /// Spawns blocked on a full bounded queue, waiting for room (always 0
    /// for an unbounded one). Their jobs are accepted, but not queued yet.
    pub waiting_spawns: u64,
    /// Jobs running now, each counted once: also one that waits inside
    /// another on the same worker, and one whose `join` halves run on two.
    pub running: u64,
    /// Jobs that succeeded.
    pub succeeded: u64,
    /// Jobs that failed.
    pub failed: u64,
    /// Jobs that panicked.
    pub panicked: u64,
    /// Jobs cancelled: while queued, or asked to stop while running.
    pub cancelled: u64,
    /// Successful steals between workers.
    pub steals: u64,
    /// Status records held for lookup by id: the live jobs plus at most
    /// the configured history of finished ones. It does not grow with the
    /// number of jobs ever run.
    pub records: u64,
    /// The jobs the workers are running now, each with its worker and start
    /// time: each worker's [`current_job`](WorkerStats::current_job), once
    /// per job. A job waiting inside another is in [`running`](Self::running)
    /// but not here.
    pub running_jobs: Vec<JobInfo>,
    /// Each worker's figures, by worker index (halted workers included).
    pub per_worker: Vec<WorkerStats>,
}

impl Stats {
    /// `accepted`: jobs accepted so far, read after every worker's figures
    /// (so it covers every job they counted); `queued_cancels`: jobs
    /// cancelled while queued and counted (by the pool, or by the worker
    /// that dropped one cancelled through its handle); `capacity`: the
    /// queue bound, if any.
    pub(crate) fn new(
        workers: usize,
        per_worker: Vec<WorkerStats>,
        accepted: u64,
        queued_cancels: u64,
        capacity: Option<usize>,
        records: usize,
        running_jobs: Vec<JobInfo>,
    ) -> Stats {
        let sum = |f: fn(&WorkerStats) -> u64| per_worker.iter().map(f).sum::<u64>();
        let running = sum(|w| w.running);
        let finished = sum(|w| w.jobs_run) + queued_cancels;
        // What is neither running nor finished waits in the queue, or is a
        // spawn still waiting for room in a full one.
        let unfinished = accepted.saturating_sub(running + finished);
        let queued = capacity.map_or(unfinished, |c| unfinished.min(c as u64));
        Stats {
            workers,
            queued,
            waiting_spawns: unfinished - queued,
            running,
            succeeded: sum(|w| w.succeeded),
            failed: sum(|w| w.failed),
            panicked: sum(|w| w.panicked),
            cancelled: sum(|w| w.cancelled) + queued_cancels,
            steals: sum(|w| w.steals),
            records: records as u64,
            running_jobs,
            per_worker,
        }
    }

    /// Jobs that reached a terminal status.
    pub fn finished(&self) -> u64 {
        self.succeeded + self.failed + self.panicked + self.cancelled
    }
}
