//! [`Dispatcher`]: the public handle of a pool.

use crate::builder::DispatcherBuilder;
use crate::error::{SpawnError, TrySpawnError};
use crate::feed;
use crate::job::cell::{JobCell, JobRef};
use crate::job::state::Cancel;
use crate::job::task::Task;
use crate::job::{Job, JobHandle, JobId, JobInfo, JobStatus};
use crate::pool::Pool;
use crate::stats::Stats;
use crate::{time, worker, Arc};
use std::fmt;
use std::time::Instant;

/// A pool of worker threads that run [`Job`]s, with a live status record
/// per job.
///
/// Clones share one pool. The pool shuts down gracefully (every accepted
/// job still runs) when [`shutdown`](Self::shutdown) is called or the last
/// clone is dropped.
///
/// ```
/// use workyard::Dispatcher;
///
/// let pool = Dispatcher::builder().workers(4).build().unwrap();
/// let handles: Vec<_> = (0..8u64).map(|i| pool.spawn(move || i * i).unwrap()).collect();
/// let squares: Vec<u64> = handles.into_iter().map(|h| h.join().unwrap()).collect();
/// assert_eq!(squares, [0, 1, 4, 9, 16, 25, 36, 49]);
/// pool.shutdown();
/// ```
#[derive(Clone)]
pub struct Dispatcher {
    owner: Arc<Owner>,
}

/// Shuts the pool down when the last `Dispatcher` clone goes.
struct Owner {
    pool: Arc<Pool>,
}

impl Drop for Owner {
    fn drop(&mut self) {
        let _ = shutdown_pool(&self.pool, None);
    }
}

/// Is the calling thread one of `pool`'s workers?
pub(crate) fn on_worker_of(pool: &Arc<Pool>) -> bool {
    worker::with_current(|ctx| ctx.is_some_and(|ctx| Arc::ptr_eq(&ctx.pool, pool)))
}

/// Why [`admit`] refused a job.
pub(crate) enum Refused {
    Full,
    Closed,
}

/// The first half of every spawn: counts the job in and reserves its place
/// in a bounded queue, blocking for room if `block` (on one of the pool's
/// own workers, running queued jobs meanwhile). Returns the job's id.
pub(crate) fn admit(pool: &Arc<Pool>, block: bool) -> Result<u64, Refused> {
    let id = pool.admit().ok_or(Refused::Closed)?;
    if pool.reserve() {
        return Ok(id);
    }
    if !block {
        pool.unadmit();
        return Err(Refused::Full);
    }
    // Wait for room, unless the pool closes first: then the job is refused
    // like any spawn after shutdown. The check is called again after it
    // once succeeded (a worker's `wait_until` asks both before and after
    // parking), so it reserves at most once: reserving again would count
    // a second place, and forgetting the first would lose it for good.
    // Once reserved, a close that follows does not matter: the job was
    // admitted before it, and a close waits for admitted jobs.
    let mut reserved = false;
    let mut room_or_closed = || {
        if !reserved && !pool.is_closed() {
            reserved = pool.reserve();
        }
        reserved || pool.is_closed()
    };
    if on_worker_of(pool) {
        let _waiting = pool.places.worker_waits();
        worker::wait_until(&mut room_or_closed, None);
    } else {
        pool.space.wait_until(&mut room_or_closed, None);
    }
    if reserved {
        Ok(id)
    } else {
        pool.unadmit();
        Err(Refused::Closed)
    }
}

/// The second half of every spawn: records the admitted job in the index,
/// arms its deadline (`at`, 0 for none), queues it (on the current worker's
/// own deque when called from inside one of this pool's jobs) and wakes a
/// parked worker.
pub(crate) fn publish(pool: &Arc<Pool>, [job, indexed]: [JobRef; 2], at: u64) {
    pool.index.insert(indexed);
    if at != 0 {
        // After the insert: the timer finds the job through the index.
        pool.deadlines.watch(pool, job.header().id, at);
    }
    let job = worker::with_current(|ctx| match ctx {
        Some(ctx) if Arc::ptr_eq(&ctx.pool, pool) => {
            ctx.local.push(Task::job(job));
            None
        }
        _ => Some(job),
    });
    if let Some(job) = job {
        if let Err(task) = feed::push(pool, Task::job(job)) {
            pool.injector.push(task);
        }
    }
    pool.wake_one();
}

/// How a shutdown ended.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Shutdown {
    /// Every accepted job ran and the threads are joined.
    Done,
    /// The deadline passed with jobs still queued or running.
    TimedOut,
    /// Called from one of the pool's own workers, or from a destructor that
    /// its halt runs: closed, nothing awaited.
    FromWorker,
}

/// Graceful shutdown: close, let every accepted job run, join the threads.
/// From one of the pool's own workers it only closes (the caller's job is
/// itself one of the jobs to wait for), and the threads exit on their own.
pub(crate) fn shutdown_pool(pool: &Arc<Pool>, deadline: Option<Instant>) -> Shutdown {
    pool.close();
    pool.set_paused(false);
    if on_worker_of(pool) || crate::control::in_halt_walk_of(pool) {
        return Shutdown::FromWorker;
    }
    if !pool.idle.wait_until(|| pool.pending() == 0, deadline) {
        return Shutdown::TimedOut;
    }
    join_workers(pool);
    Shutdown::Done
}

/// Joins every worker thread. Slots are joined in order, each under its
/// own lock, so a concurrent second caller returns only once all are gone.
/// The pool is closed: first waits out a `set_workers` that found it open
/// and may still be starting threads (it holds `control` meanwhile), and
/// reads the slots after it, so those threads are joined too; one that
/// takes `control` after us sees the pool closed and starts none.
pub(crate) fn join_workers(pool: &Pool) {
    drop(crate::signal::lock(&pool.control));
    for slot in pool.used_slots() {
        slot.join_thread();
    }
}

impl Dispatcher {
    /// A dispatcher with the default configuration (one worker per logical
    /// CPU, unbounded queue).
    ///
    /// # Panics
    ///
    /// If the operating system refuses to start a thread. Use
    /// [`Dispatcher::builder`] to get that as an error instead.
    pub fn new() -> Dispatcher {
        DispatcherBuilder::new()
            .build()
            .unwrap_or_else(|e| panic!("workyard: {e}"))
    }

    /// A [`DispatcherBuilder`] to configure a dispatcher.
    pub fn builder() -> DispatcherBuilder {
        DispatcherBuilder::new()
    }

    pub(crate) fn from_pool(pool: Arc<Pool>) -> Dispatcher {
        Dispatcher {
            owner: Arc::new(Owner { pool }),
        }
    }

    pub(crate) fn pool(&self) -> &Arc<Pool> {
        &self.owner.pool
    }

    /// Queues a job and returns its handle.
    ///
    /// Called from outside the pool, the job goes to the global queue;
    /// called from inside one of this dispatcher's jobs, it goes to the
    /// running worker's own deque, where idle peers can steal it.
    ///
    /// If the queue is bounded and full, this blocks until there is room
    /// (on a worker thread it runs queued jobs meanwhile instead of
    /// blocking). It fails only once the dispatcher is shut down or halted
    /// (also while it waits for room), giving the job back.
    ///
    /// ```
    /// let pool = workyard::Dispatcher::builder().workers(2).build().unwrap();
    /// let handle = pool.spawn(|| "hello".len()).unwrap();
    /// assert_eq!(handle.join().unwrap(), 5);
    ///
    /// pool.shutdown();
    /// let refused = pool.spawn(|| 1).unwrap_err();
    /// assert_eq!((refused.into_inner())(), 1);
    /// ```
    pub fn spawn<J: Job>(&self, job: J) -> Result<JobHandle<J::Output, J::Error>, SpawnError<J>> {
        self.submit(job, true, None)
            .map_err(|e| SpawnError(e.into_inner()))
    }

    /// Queues a job without ever blocking: fails with `Full` if the bounded
    /// queue has no room, `Closed` if the dispatcher is shut down; either
    /// way the job comes back.
    ///
    /// ```
    /// use workyard::{Dispatcher, TrySpawnError};
    ///
    /// let pool = Dispatcher::builder().workers(1).queue_capacity(1).build().unwrap();
    /// pool.pause();
    /// let first = pool.try_spawn(|| 1).unwrap();
    /// let second = pool.try_spawn(|| 2);
    /// assert!(matches!(second, Err(TrySpawnError::Full(_))));
    /// pool.resume();
    /// assert_eq!(first.join().unwrap(), 1);
    /// ```
    pub fn try_spawn<J: Job>(
        &self,
        job: J,
    ) -> Result<JobHandle<J::Output, J::Error>, TrySpawnError<J>> {
        self.submit(job, false, None)
    }

    pub(crate) fn submit<J: Job>(
        &self,
        job: J,
        block: bool,
        deadline: Option<Instant>,
    ) -> Result<JobHandle<J::Output, J::Error>, TrySpawnError<J>> {
        let pool = self.pool();
        let id = match admit(pool, block) {
            Ok(id) => id,
            Err(Refused::Full) => return Err(TrySpawnError::Full(job)),
            Err(Refused::Closed) => return Err(TrySpawnError::Closed(job)),
        };
        let at = deadline.map_or(0, time::deadline_nanos);
        let (handle, refs) = JobCell::spawn(JobId(id), job, at);
        publish(pool, refs, at);
        Ok(handle)
    }

    /// The status of a job by id: every queued or running job, and finished
    /// ones within the history (see [`DispatcherBuilder::history`]).
    /// `None` for an id this dispatcher does not know (any more).
    pub fn status(&self, id: JobId) -> Option<JobStatus> {
        self.pool()
            .index
            .get(id)
            .map(|job| JobStatus::from_snapshot(job.header().state.load()))
    }

    /// A snapshot of a job's status record by id; see [`status`](Self::status).
    pub fn info(&self, id: JobId) -> Option<JobInfo> {
        self.pool().index.get(id).map(|job| job.header().info())
    }

    /// Cancels a job by id, like [`JobHandle::cancel`]. Returns `false` for
    /// an unknown id or a job that already finished.
    pub fn cancel(&self, id: JobId) -> bool {
        self.pool()
            .index
            .get(id)
            .is_some_and(|job| self.pool().cancel_job(&job, 0, true) != Cancel::TooLate)
    }

    /// Counters: workers, queued and running jobs, outcomes, steals, and
    /// each worker's figures.
    pub fn stats(&self) -> Stats {
        self.pool().stats()
    }

    /// The number of worker threads running (not halted).
    pub fn workers(&self) -> usize {
        self.pool().running_workers()
    }

    /// Blocks, without polling, until no job is queued or running. The
    /// dispatcher stays up and accepts jobs afterwards.
    ///
    /// Called from inside one of this dispatcher's jobs it cannot wait for
    /// its own job to finish; it runs queued jobs until none is left to
    /// take (none at all if that job's worker is being
    /// [halted](Self::halt_worker)), then returns.
    ///
    /// While the dispatcher is [paused](Self::pause), queued jobs do not
    /// run, so this waits for [`resume`](Self::resume).
    pub fn wait_idle(&self) {
        let pool = self.pool();
        if on_worker_of(pool) {
            worker::with_current(|ctx| {
                let ctx = ctx.expect("on a worker");
                while let Some(job) = ctx.find_job_while_waiting() {
                    ctx.execute(job);
                }
            });
            return;
        }
        pool.idle.wait_until(|| pool.pending() == 0, None);
        pool.index.trim();
    }

    /// Stops workers from starting new jobs; running jobs finish, queued
    /// ones stay queued, and spawning still works (within the queue bound).
    /// No job spawned after `pause` returns starts before
    /// [`resume`](Self::resume); a job a worker was already taking at the
    /// moment of the call may still start.
    ///
    /// Once a [`shutdown`](Self::shutdown) or [`halt`](Self::halt) has
    /// begun, `pause` does nothing (and [`is_paused`](Self::is_paused) stays
    /// `false`): a closing dispatcher always runs or discards the jobs it
    /// accepted, so that the shutdown returns. This holds also for a `pause`
    /// racing the shutdown from another thread.
    pub fn pause(&self) {
        self.pool().pause();
    }

    /// Lets workers start jobs again after [`pause`](Self::pause).
    pub fn resume(&self) {
        self.pool().set_paused(false);
    }

    /// `true` while paused.
    pub fn is_paused(&self) -> bool {
        self.pool().is_paused_by_user()
    }

    /// `true` once the dispatcher refuses new jobs.
    pub fn is_shutdown(&self) -> bool {
        self.pool().is_closed()
    }

    /// Graceful shutdown: refuses new jobs (from anywhere, also from inside
    /// running jobs), lets every accepted job run (resuming a paused
    /// dispatcher), then joins the worker threads. Calling it again, or from
    /// several threads, is fine: each call returns once the threads are gone.
    ///
    /// Called from inside one of this dispatcher's own jobs, it cannot wait
    /// for that job: it refuses new jobs and returns at once, and the
    /// workers exit on their own after the last accepted job. The same
    /// holds for a call from the destructor of a job that a
    /// [`halt`](Self::halt) cancels (the halt holds the workers back while
    /// it runs it; the halt itself waits for them).
    pub fn shutdown(&self) {
        let _ = shutdown_pool(self.pool(), None);
    }
}

impl Default for Dispatcher {
    fn default() -> Self {
        Dispatcher::new()
    }
}

impl fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dispatcher")
            .field("workers", &self.workers())
            .field("pending", &self.pool().pending())
            .field("shutdown", &self.is_shutdown())
            .finish()
    }
}
