//! [`Dispatcher`]: the public handle of a pool. The spawn path (admit,
//! publish) is here, top to bottom; control calls become orders for the
//! control thread (`control.rs`), and waiting for their effects is done
//! here, on the caller's thread, when the caller is not one of the pool's.

use crate::control::{self, join_all};
use crate::error::{RejectedJob, SpawnError, TrySpawnError, WorkerError};
use crate::feed;
use crate::handle::JobHandle;
use crate::job::cell::{JobCell, JobRef};
use crate::job::state::Cancel;
use crate::job::task::Task;
use crate::job::{Job, JobId, JobInfo, JobStatus};
use crate::join::{join_cold, join_in_worker, run_admitted};
use crate::order::{self, Ended, HaltReport, Order, Waiter};
use crate::pool::Pool;
use crate::stats::Stats;
use crate::worker::{self, on_pool_thread};
use crate::{time, Arc};
use std::fmt;
use std::time::{Duration, Instant};

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
    /// Set by `shutdown_background`: the last drop then does not wait.
    background: std::sync::atomic::AtomicBool,
}

impl Drop for Owner {
    fn drop(&mut self) {
        // ORDERING: Relaxed: read by the last owner, after every clone's
        // drop (the `Arc`'s count synchronises with them).
        if self.background.load(std::sync::atomic::Ordering::Relaxed) {
            close(&self.pool);
        } else {
            let _ = shutdown_pool(&self.pool, None);
        }
    }
}

/// Why [`admit`] refused a job.
pub(crate) enum Refused {
    Full,
    Closed,
}

impl Refused {
    /// The error that gives `job` back to the caller.
    fn with<J>(self, job: J) -> TrySpawnError<J> {
        match self {
            Refused::Full => TrySpawnError::Full(RejectedJob::new(job)),
            Refused::Closed => TrySpawnError::Closed(RejectedJob::new(job)),
        }
    }
}

/// How an admitted job goes on.
pub(crate) enum Admitted {
    /// Queue it (its place in a bounded queue is reserved).
    Queue(u64),
    /// Run it here and now: a job of this pool, nested too deep to wait
    /// for room in the full queue by running other jobs, runs the job it
    /// spawns itself (as Java's `CallerRunsPolicy`), so the stack grows
    /// with the user's own nesting, never with the queue's producers.
    Inline(u64),
}

impl Admitted {
    pub(crate) fn id(&self) -> u64 {
        match *self {
            Admitted::Queue(id) | Admitted::Inline(id) => id,
        }
    }
}

/// The first half of every spawn: counts the job in and reserves its place
/// in a bounded queue, blocking for room if `block`: on one of the pool's
/// own workers by running queued jobs meanwhile, or, past the nesting
/// bound, by running the new job itself (`Admitted::Inline`).
pub(crate) fn admit(pool: &Arc<Pool>, block: bool) -> Result<Admitted, Refused> {
    let id = pool.admit().ok_or(Refused::Closed)?;
    if pool.reserve() {
        return Ok(Admitted::Queue(id));
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
    enum Wait {
        Helping,
        Inline,
        Outside,
    }
    let wait = worker::with_current(|ctx| match ctx {
        Some(ctx) if std::ptr::eq(&*ctx.pool, &**pool) => {
            if ctx.is_halting() {
                Wait::Outside
            } else if ctx.may_help() {
                Wait::Helping
            } else {
                Wait::Inline
            }
        }
        _ => Wait::Outside,
    });
    match wait {
        Wait::Inline => {
            // It never waits in the queue: it leaves it at once, when this
            // worker claims it, and gives back the place counted here.
            pool.places().reserve_over();
            return Ok(Admitted::Inline(id));
        }
        Wait::Helping => {
            let _waiting = pool.places().worker_waits();
            // Until room, or until this worker is asked to halt meanwhile:
            // then it waits as an outside thread does, on `space`, since
            // a waiter that runs no jobs is not in the sleep mask that a
            // freed place wakes.
            let halting = || worker::with_current(|ctx| ctx.is_some_and(|c| c.is_halting()));
            worker::wait_until(|| room_or_closed() || halting(), None);
            pool.space().wait_until(&mut room_or_closed, None);
        }
        Wait::Outside => {
            pool.space().wait_until(&mut room_or_closed, None);
        }
    }
    if reserved {
        Ok(Admitted::Queue(id))
    } else {
        pool.unadmit();
        Err(Refused::Closed)
    }
}

/// The second half of every spawn: records the admitted job in the index,
/// has the control thread watch its deadline (`at`, 0 for none), queues
/// it (on the current worker's own deque when called from inside one of
/// this pool's jobs) and wakes a worker, unless one searches already. An
/// `Inline` job runs right here instead.
pub(crate) fn publish(pool: &Arc<Pool>, admitted: Admitted, [job, indexed]: [JobRef; 2], at: u64) {
    pool.index().insert(indexed);
    if at != 0 {
        // After the insert: the control thread finds the job through the index.
        control::post(
            pool,
            Order::Watch {
                id: job.header().id,
                at,
            },
        );
    }
    let job = worker::with_current(|ctx| match ctx {
        Some(ctx) if std::ptr::eq(&*ctx.pool, &**pool) => {
            if let Admitted::Inline(_) = admitted {
                ctx.execute(Task::job(job));
            } else {
                ctx.local.push(Task::job(job));
            }
            None
        }
        _ => Some(job),
    });
    if let Some(job) = job {
        if let Err(task) = feed::push(pool.feeds(), Task::job(job)) {
            pool.injector().push(task);
        }
    }
    pool.wake_one();
}

/// Every spawn onto `pool`, top to bottom: admit, then [`enqueue`].
/// Also the free `spawn`'s, which reaches the pool without a
/// `Dispatcher` (see `global.rs`).
pub(crate) fn submit<J: Job>(
    pool: &Arc<Pool>,
    job: J,
    block: bool,
    deadline: Option<Instant>,
) -> Result<JobHandle<J::Output, J::Error>, TrySpawnError<J>> {
    let admitted = match admit(pool, block) {
        Ok(admitted) => admitted,
        Err(refused) => return Err(refused.with(job)),
    };
    let at = deadline.map_or(0, time::deadline_nanos);
    Ok(enqueue(pool, admitted, job, at))
}

/// Makes the record of an admitted job and publishes it (see [`publish`]):
/// everything a spawn does after [`admit`].
#[inline]
pub(crate) fn enqueue<J: Job>(
    pool: &Arc<Pool>,
    admitted: Admitted,
    job: J,
    at: u64,
) -> JobHandle<J::Output, J::Error> {
    let (typed, refs) = JobCell::spawn(JobId(admitted.id()), job, at);
    let handle = JobHandle::from_typed(typed);
    publish(pool, admitted, refs, at);
    handle
}

/// [`submit`] without a handle: the job's id instead. Not `#[inline]`,
/// unlike `enqueue`: inlined into a caller's spawning loop it was slower
/// (docs/bench/log.md, 2026-12-03).
pub(crate) fn submit_detached<J: Job>(
    pool: &Arc<Pool>,
    job: J,
    block: bool,
) -> Result<JobId, TrySpawnError<J>> {
    let admitted = match admit(pool, block) {
        Ok(admitted) => admitted,
        Err(refused) => return Err(refused.with(job)),
    };
    let id = JobId(admitted.id());
    publish(pool, admitted, JobCell::spawn_detached(id, job), 0);
    Ok(id)
}

/// How a shutdown ended.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Shutdown {
    /// Every accepted job ran and the threads are joined.
    Done,
    /// The deadline passed with jobs still queued or running: halted.
    TimedOut(HaltReport),
    /// Called from one of the pool's own threads: closed, nothing awaited.
    FromPool,
}

/// Graceful shutdown: close, let every accepted job run, join the threads.
/// From one of the pool's own threads it only gives the order (the
/// caller's job is itself one of the jobs to wait for, or its thread one
/// of the threads to join), and the threads exit on their own.
pub(crate) fn shutdown_pool(pool: &Arc<Pool>, deadline: Option<Instant>) -> Shutdown {
    if on_pool_thread(pool) || control::on_control_thread(pool) {
        close(pool);
        return Shutdown::FromPool;
    }
    let (reply, answer) = order::reply();
    control::post(
        pool,
        Order::Shutdown {
            ack: None,
            waiter: Some(Waiter { reply, deadline }),
        },
    );
    match answer.wait() {
        Ended::Done(threads) => {
            join_all(pool, &threads);
            pool.index().trim();
            Shutdown::Done
        }
        Ended::TimedOut(report) => Shutdown::TimedOut(report),
    }
}

/// Starts a shutdown and returns once the pool is closed (spawns are
/// refused from then on), without waiting for the jobs or the threads.
fn close(pool: &Pool) {
    let _ = ask(pool, |ack| Order::Shutdown {
        ack: Some(ack),
        waiter: None,
    });
}

/// How long a timed-out `shutdown_timeout` still waits for the jobs it
/// asked to stop, before it leaves them to finish on their own.
const SHUTDOWN_GRACE: Duration = Duration::from_millis(100);

/// Gives an order and waits for its answer: short, since the control
/// thread answers every order without waiting for anything (so this is
/// safe from any thread, one of the pool's included). On the control
/// thread itself (a waker it woke gave the order) the order is queued and
/// there is no answer to wait for: `None`.
fn ask<T>(pool: &Pool, order: impl FnOnce(order::Reply<T>) -> Order) -> Option<T> {
    let (reply, answer) = order::reply();
    control::post(pool, order(reply));
    if control::on_control_thread(pool) {
        return None;
    }
    Some(answer.wait())
}

impl Dispatcher {
    pub(crate) fn from_pool(pool: Arc<Pool>) -> Dispatcher {
        Dispatcher {
            owner: Arc::new(Owner {
                pool,
                background: std::sync::atomic::AtomicBool::new(false),
            }),
        }
    }

    pub(crate) fn pool(&self) -> &Arc<Pool> {
        &self.owner.pool
    }

    /// Queues a job and returns its handle.
    ///
    /// Called from outside the pool, the job goes to a queue of the calling
    /// thread's own (or the global queue), and jobs spawned from one thread
    /// start in the order they were spawned (FIFO); called from inside one
    /// of this dispatcher's jobs, it goes to the running worker's own
    /// deque, which that worker runs newest first (LIFO, as rayon) and idle
    /// peers steal from oldest first.
    ///
    /// If the queue is bounded and full, this blocks until there is room.
    /// On a worker thread it runs queued jobs meanwhile instead of
    /// blocking; nested 16 jobs deep that way, it runs the new job itself
    /// instead, so the stack stays bounded. It fails only once the
    /// dispatcher is shut down or halted (also while it waits for room),
    /// giving the job back.
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
            .map_err(|e| SpawnError::new(e.into_inner()))
    }

    /// Queues a job without a handle, as `rayon::spawn` or threadpool's
    /// `execute`, and returns its id: it runs as if spawned with
    /// [`spawn`](Self::spawn) and its handle dropped, for less (the record
    /// needs no count or flag for a handle). Its status record is kept as
    /// any job's: [`status`](Self::status), [`info`](Self::info) and
    /// [`cancel`](Self::cancel) take the id. Its result is dropped when it
    /// ends; a panic goes to the
    /// [panic handler](crate::DispatcherBuilder::panic_handler).
    ///
    /// It blocks and fails as [`spawn`](Self::spawn) does.
    ///
    /// ```
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// use std::sync::Arc;
    /// use workyard::{Dispatcher, JobStatus};
    ///
    /// let pool = Dispatcher::builder().workers(2).build().unwrap();
    /// let ran = Arc::new(AtomicUsize::new(0));
    /// let counter = Arc::clone(&ran);
    /// let id = pool
    ///     .spawn_detached(move || counter.fetch_add(1, Ordering::Relaxed))
    ///     .unwrap();
    /// pool.wait_idle();
    /// assert_eq!(ran.load(Ordering::Relaxed), 1);
    /// assert_eq!(pool.status(id), Some(JobStatus::Succeeded));
    /// ```
    pub fn spawn_detached<J: Job>(&self, job: J) -> Result<JobId, SpawnError<J>> {
        submit_detached(self.pool(), job, true).map_err(|e| SpawnError::new(e.into_inner()))
    }

    /// [`spawn_detached`](Self::spawn_detached) without ever blocking, as
    /// [`try_spawn`](Self::try_spawn): fails with `Full` if the bounded
    /// queue has no room, `Closed` if the dispatcher is shut down; either
    /// way the job comes back.
    ///
    /// ```
    /// use workyard::{Dispatcher, TrySpawnError};
    ///
    /// let pool = Dispatcher::builder().workers(1).queue_capacity(1).build().unwrap();
    /// pool.pause();
    /// let first = pool.try_spawn_detached(|| 1).unwrap();
    /// let second = pool.try_spawn_detached(|| 2);
    /// assert!(matches!(second, Err(TrySpawnError::Full(_))));
    /// pool.resume();
    /// pool.wait_idle();
    /// assert_eq!(pool.status(first), Some(workyard::JobStatus::Succeeded));
    /// ```
    pub fn try_spawn_detached<J: Job>(&self, job: J) -> Result<JobId, TrySpawnError<J>> {
        submit_detached(self.pool(), job, false)
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
        submit(self.pool(), job, block, deadline)
    }

    /// Like [`spawn`](Self::spawn), with a deadline: if the job has not
    /// finished by `deadline`, it is cancelled as by
    /// [`JobHandle::cancel`] (if it had not started, it never runs), and its
    /// status record says a deadline ended it
    /// ([`CancelReason::Deadline`](crate::CancelReason::Deadline)).
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use workyard::{CancelReason, Dispatcher, JobError};
    ///
    /// let pool = Dispatcher::builder().workers(1).build().unwrap();
    /// let slow = pool
    ///     .spawn_with_deadline(
    ///         || while !workyard::is_cancelled() { std::thread::yield_now() },
    ///         Instant::now() + Duration::from_millis(20),
    ///     )
    ///     .unwrap();
    /// assert!(matches!(slow.join(), Err(JobError::Cancelled(CancelReason::Deadline))));
    /// ```
    pub fn spawn_with_deadline<J: Job>(
        &self,
        job: J,
        deadline: Instant,
    ) -> Result<JobHandle<J::Output, J::Error>, SpawnError<J>> {
        self.submit(job, true, Some(deadline))
            .map_err(|e| SpawnError::new(e.into_inner()))
    }

    /// [`spawn_with_deadline`](Self::spawn_with_deadline) with the deadline
    /// `timeout` from now.
    pub fn spawn_with_timeout<J: Job>(
        &self,
        job: J,
        timeout: Duration,
    ) -> Result<JobHandle<J::Output, J::Error>, SpawnError<J>> {
        let deadline = Instant::now().checked_add(timeout);
        self.submit(job, true, deadline)
            .map_err(|e| SpawnError::new(e.into_inner()))
    }

    /// Runs `a` and `b` on this dispatcher, potentially in parallel, and
    /// returns both results once both are done.
    ///
    /// Called from one of this dispatcher's jobs it is [`join`](crate::join):
    /// `a` runs on the current worker and `b` may be stolen. Called from
    /// any other thread, the pair is queued as one task and the caller
    /// blocks (without polling) until a worker has run both; it counts as
    /// pending work for [`wait_idle`](Self::wait_idle) and
    /// [`shutdown`](Self::shutdown), and waits for
    /// [`resume`](Self::resume) while paused. It never counts against
    /// [`queue_capacity`](crate::DispatcherBuilder::queue_capacity). Once the
    /// dispatcher is shut down it runs `a` then `b` on the caller.
    ///
    /// Neither half gets a status record or a job id: they are parts of a
    /// call, not jobs. Inside a job, both halves run as part of that job:
    /// [`is_cancelled`](crate::is_cancelled) and
    /// [`current_job`](crate::current_job) answer for it, also on a thief.
    ///
    /// # Panics
    ///
    /// As [`join`](crate::join): after both halves finished, with `a`'s
    /// panic first.
    ///
    /// ```
    /// let pool = workyard::Dispatcher::builder().workers(2).build().unwrap();
    /// let data: Vec<u64> = (1..=1000).collect();
    /// let (left, right) = data.split_at(500);
    /// // Borrowing is fine: `join` returns only once both halves are done.
    /// let (a, b) = pool.join(|| left.iter().sum::<u64>(), || right.iter().sum::<u64>());
    /// assert_eq!(a + b, 500_500);
    /// ```
    pub fn join<A, B, RA, RB>(&self, a: A, b: B) -> (RA, RB)
    where
        A: FnOnce() -> RA + Send,
        B: FnOnce() -> RB + Send,
        RA: Send,
        RB: Send,
    {
        let pool = self.pool();
        let cold = worker::with_current(|ctx| match ctx {
            Some(ctx) if Arc::ptr_eq(&ctx.pool, pool) => Ok(join_in_worker(ctx, a, b)),
            _ => Err((a, b)),
        });
        cold.unwrap_or_else(|(a, b)| join_cold(pool, a, b))
    }

    /// Runs `f` on one of this dispatcher's workers and returns its
    /// result, blocking the caller until then (rayon's
    /// `ThreadPool::install`). Inside `f`, the free functions
    /// [`join`](crate::join), [`scope`](crate::scope),
    /// [`spawn`](crate::spawn) and
    /// [`current_num_threads`](crate::current_num_threads) use this
    /// dispatcher, so work that forks inside `f` runs in parallel on it.
    ///
    /// * Called from one of this dispatcher's jobs, `f` runs right there.
    /// * Called from any other thread, `f` is queued and the caller blocks,
    ///   without polling, until a worker has run it. It counts as pending
    ///   work for [`wait_idle`](Self::wait_idle) and
    ///   [`shutdown`](Self::shutdown), waits for [`resume`](Self::resume)
    ///   while paused, and never counts against
    ///   [`queue_capacity`](crate::DispatcherBuilder::queue_capacity).
    /// * Called from a job of *another* dispatcher, that job's worker runs
    ///   its own dispatcher's queued jobs while it waits (as in rayon), so
    ///   neither pool stalls; it only waits for good if the two pools'
    ///   jobs wait on each other in a cycle.
    /// * Once this dispatcher is shut down, `f` runs on the caller, as
    ///   [`join`](Self::join) does then; [`try_install`](Self::try_install)
    ///   gives it back instead.
    ///
    /// `f` is a call, not a job: it gets no id or status record. Queued,
    /// it runs inside no job ([`current_job`](crate::current_job) is
    /// `None`); inline, inside the calling one.
    ///
    /// # Panics
    ///
    /// If `f` panics, the panic resumes in the caller; the worker survives.
    ///
    /// ```
    /// let pool = workyard::Dispatcher::builder().workers(2).build().unwrap();
    /// let (index, threads) = pool.install(|| {
    ///     (workyard::current_thread_index(), workyard::current_num_threads())
    /// });
    /// assert!(index.is_some_and(|i| i < 2));
    /// assert_eq!(threads, 2);
    /// ```
    pub fn install<F, R>(&self, f: F) -> R
    where
        F: FnOnce() -> R + Send,
        R: Send,
    {
        self.try_install(f)
            .unwrap_or_else(|refused| (refused.into_inner())())
    }

    /// [`install`](Self::install), but once the dispatcher is shut down
    /// it refuses, giving `f` back unrun.
    ///
    /// ```
    /// let pool = workyard::Dispatcher::builder().workers(1).build().unwrap();
    /// assert_eq!(pool.try_install(|| 6 * 7).unwrap(), 42);
    /// pool.shutdown();
    /// let refused = pool.try_install(|| "run me elsewhere").unwrap_err();
    /// assert_eq!((refused.into_inner())(), "run me elsewhere");
    /// ```
    pub fn try_install<F, R>(&self, f: F) -> Result<R, SpawnError<F>>
    where
        F: FnOnce() -> R + Send,
        R: Send,
    {
        let pool = self.pool();
        let here = worker::with_current(|ctx| ctx.is_some_and(|ctx| Arc::ptr_eq(&ctx.pool, pool)));
        if here {
            return Ok(f());
        }
        if pool.admit().is_none() {
            return Err(SpawnError::new(f));
        }
        Ok(run_admitted(pool, f))
    }

    /// The status of a job by id: every queued or running job, and finished
    /// ones within the history (see [`DispatcherBuilder::history`](crate::DispatcherBuilder::history)).
    /// `None` for an id this dispatcher does not know (any more).
    pub fn status(&self, id: JobId) -> Option<JobStatus> {
        self.pool()
            .index()
            .get(id)
            .map(|job| JobStatus::from_snapshot(job.header().state.load()))
    }

    /// A snapshot of a job's status record by id; see [`status`](Self::status).
    pub fn info(&self, id: JobId) -> Option<JobInfo> {
        self.pool().index().get(id).map(|job| job.header().info())
    }

    /// Cancels a job by id, like [`JobHandle::cancel`]. Returns `false` for
    /// an unknown id or a job that already finished.
    pub fn cancel(&self, id: JobId) -> bool {
        self.pool()
            .index()
            .get(id)
            .is_some_and(|job| self.pool().cancel_job(&job, 0, true, false) != Cancel::TooLate)
    }

    /// Cancels every job still queued (each ends `Cancelled` with
    /// [`CancelReason::Caller`](crate::CancelReason::Caller) and never
    /// runs) and returns their ids in id order. Running jobs are left to
    /// finish, and the dispatcher keeps accepting new jobs: follow with
    /// [`shutdown`](Self::shutdown) for "finish what is running, drop the
    /// backlog, stop".
    ///
    /// ```
    /// let pool = workyard::Dispatcher::builder().workers(1).build().unwrap();
    /// pool.pause();
    /// let backlog: Vec<_> = (0..3).map(|i| pool.spawn(move || i).unwrap()).collect();
    /// let dropped = pool.cancel_queued();
    /// assert_eq!(dropped, backlog.iter().map(|h| h.id()).collect::<Vec<_>>());
    /// pool.shutdown();
    /// ```
    pub fn cancel_queued(&self) -> Vec<JobId> {
        let pool = self.pool();
        let mut cancelled = Vec::new();
        for job in pool.index().live() {
            if let Cancel::WasQueued(_) = pool.cancel_job(&job, 0, false, false) {
                cancelled.push(job.header().id);
            }
        }
        cancelled
    }

    /// Counters: workers, queued and running jobs, outcomes, steals, and
    /// each worker's figures.
    pub fn stats(&self) -> Stats {
        self.pool().stats()
    }

    /// The number of worker threads running (not halted, nor halting).
    pub fn workers(&self) -> usize {
        self.pool().running_workers()
    }

    /// Blocks, without polling, until no job is queued or running. The
    /// dispatcher stays up and accepts jobs afterwards. Every thread
    /// waiting when the dispatcher goes idle returns, even if one of them
    /// spawns again at once; a wait that began after a spawn returns only
    /// once that job is done. (A worker announces the idle moment after
    /// checking again, under a lock, that nothing is pending: a spawn by
    /// another thread in between makes the waiters wait for the next idle
    /// moment.)
    ///
    /// Called from inside one of this dispatcher's jobs it cannot wait for
    /// its own job to finish; it runs queued jobs until none is left to
    /// take (none at all if that job's worker is being
    /// [halted](Self::halt_worker)), then returns.
    ///
    /// While the dispatcher is [paused](Self::pause), queued jobs do not
    /// run, so this waits for [`resume`](Self::resume).
    pub fn wait_idle(&self) {
        let idle = self.wait_idle_until(None);
        debug_assert!(idle);
    }

    /// [`wait_idle`](Self::wait_idle), giving up after `timeout`: `true` if
    /// the dispatcher went idle in time (inside one of its jobs: if it
    /// found no queued job left to take before `timeout` passed), `false`
    /// if `timeout` passed first.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let pool = workyard::Dispatcher::builder().workers(2).build().unwrap();
    /// pool.pause();
    /// pool.spawn(|| ()).unwrap();
    /// assert!(!pool.wait_idle_timeout(Duration::from_millis(10)), "paused: still queued");
    /// pool.resume();
    /// assert!(pool.wait_idle_timeout(Duration::from_secs(60)));
    /// ```
    pub fn wait_idle_timeout(&self, timeout: Duration) -> bool {
        self.wait_idle_until(Instant::now().checked_add(timeout))
    }

    /// `wait_idle` until `deadline` (`None`: for ever); `true` if idle.
    fn wait_idle_until(&self, deadline: Option<Instant>) -> bool {
        let pool = self.pool();
        let helped = worker::with_current(|ctx| match ctx {
            Some(ctx) if std::ptr::eq(&*ctx.pool, &**pool) => {
                if ctx.may_help() {
                    while let Some(job) = ctx.find_job() {
                        ctx.execute(job);
                        if deadline.is_some_and(|d| Instant::now() >= d) {
                            return Some(false);
                        }
                    }
                }
                Some(true)
            }
            _ => None,
        });
        if let Some(idle) = helped {
            return idle;
        }
        let idle = pool.idle().wait_for_news(|| pool.pending() == 0, deadline);
        if idle {
            pool.index().trim();
        }
        idle
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
    /// accepted, so that the shutdown returns. Orders are carried out one
    /// at a time in the order given (see [`halt`](Self::halt)), so this
    /// holds also for a `pause` racing the shutdown from another thread.
    pub fn pause(&self) {
        let _ = ask(self.pool(), Order::Pause);
    }

    /// Lets workers start jobs again after [`pause`](Self::pause).
    pub fn resume(&self) {
        let _ = ask(self.pool(), Order::Resume);
    }

    /// `true` while paused.
    pub fn is_paused(&self) -> bool {
        self.pool().is_paused_by_user()
    }

    /// `true` once the dispatcher refuses new jobs.
    pub fn is_shutdown(&self) -> bool {
        self.pool().is_closed()
    }

    /// Halts worker `index`: it finishes its current job and exits; the
    /// jobs waiting in its own deques move to the global queue, so none is
    /// lost. Worker indices are stable: the others keep theirs, and
    /// [`stats`](Self::stats) shows this one as
    /// [`WorkerState::Halted`](crate::WorkerState::Halted). Returns at once,
    /// without waiting for the current job.
    ///
    /// Fails for an index that is not a running worker, and for the last
    /// running worker (use [`halt`](Self::halt) or
    /// [`shutdown`](Self::shutdown) to stop them all).
    ///
    /// ```
    /// use workyard::{Dispatcher, WorkerError};
    ///
    /// let pool = Dispatcher::builder().workers(2).build().unwrap();
    /// pool.halt_worker(1).unwrap();
    /// assert_eq!(pool.workers(), 1);
    /// assert_eq!(pool.halt_worker(1), Err(WorkerError::NotRunning(1)));
    /// assert_eq!(pool.halt_worker(0), Err(WorkerError::LastWorker));
    /// assert_eq!(pool.spawn(|| 5).unwrap().join().unwrap(), 5);
    /// ```
    pub fn halt_worker(&self, index: usize) -> Result<(), WorkerError> {
        ask(self.pool(), |reply| Order::HaltWorker(index, reply)).unwrap_or(Ok(()))
    }

    /// Grows or shrinks the pool to `n` running workers. New workers take
    /// the lowest free indices (reusing those of halted workers whose
    /// threads have left); shrinking halts the highest-indexed workers as
    /// [`halt_worker`](Self::halt_worker) does. Called from outside the
    /// pool it returns once the new threads run (as `build` does).
    ///
    /// A worker that is still halting (finishing its current job) keeps
    /// its slot until it leaves. Only when that leaves fewer free slots
    /// than needed (at [`max_workers`](crate::DispatcherBuilder::max_workers))
    /// does this start fewer than `n` at once; the rest start as the
    /// halting workers leave.
    ///
    /// Called from outside the pool, it waits for those too (a halting
    /// worker finishes its current job first), except while the pool is
    /// paused: a halting worker's job may then be waiting for a queued job
    /// that cannot start before the caller resumes, so it returns at once.
    /// A halting job that waits for something else only the caller would
    /// give afterwards makes the call wait for good: grow first, or leave
    /// `max_workers` room. From inside a job it does not wait.
    ///
    /// Fails for 0, for more than the builder's `max_workers`, after
    /// shutdown, and if the operating system refuses a thread (the workers
    /// started so far keep running). Orders are carried out one at a time,
    /// so a call racing a [`shutdown`](Self::shutdown) either fails or
    /// starts its threads before the shutdown, which then joins them too.
    ///
    /// ```
    /// let pool = workyard::Dispatcher::builder().workers(1).max_workers(8).build().unwrap();
    /// pool.set_workers(4).unwrap();
    /// assert_eq!(pool.workers(), 4);
    /// pool.set_workers(2).unwrap();
    /// assert_eq!(pool.workers(), 2);
    /// assert!(pool.set_workers(0).is_err());
    /// ```
    pub fn set_workers(&self, n: usize) -> Result<(), WorkerError> {
        let pool = self.pool();
        if n == 0 {
            return Err(WorkerError::Zero);
        }
        if n > pool.config().max_workers {
            return Err(WorkerError::AboveMax {
                requested: n,
                max: pool.config().max_workers,
            });
        }
        let outside = !on_pool_thread(pool) && !control::on_control_thread(pool);
        let Some(started) = ask(pool, |reply| Order::SetWorkers {
            n,
            reap: outside,
            reply,
        }) else {
            return Ok(());
        };
        let started = started?;
        if outside {
            // Nothing is ever sent: this returns once every new thread runs.
            let _ = started.running.recv();
            for thread in started.exited {
                let _ = thread.join();
            }
        }
        Ok(())
    }

    /// Stops now: refuses new jobs, cancels every queued job (each ends
    /// `Cancelled` with [`CancelReason::Halt`](crate::CancelReason::Halt)
    /// and never runs), asks every running job to stop, then joins the
    /// worker threads once their current jobs return.
    ///
    /// Workers start no job while the halt cancels, so a job still queued
    /// when the halt begins never starts, even if its worker is freed by the
    /// halt stopping the job before it; only a job a worker had already
    /// taken is reported as interrupted. The cancelled jobs' closures are
    /// dropped by the workers as they discard them, after the halt has let
    /// them go on (so a destructor may wait for the pool, or join another
    /// cancelled job, without hanging).
    ///
    /// A job accepted concurrently with the halt (its `spawn` returned
    /// `Ok` while `halt` ran) is either in the report or runs to completion:
    /// none vanishes.
    ///
    /// Control orders (`halt`, `halt_worker`, `set_workers`, `pause`,
    /// `resume`, the shutdowns, deadlines) are carried out one at a time,
    /// in the order given, by the dispatcher's control thread; any of them
    /// may be given from anywhere, a job or a destructor included. Called
    /// from one of this dispatcher's own threads (a job, or a worker's
    /// thread-local destructor), `halt` returns the report without waiting
    /// for the threads (they exit once the running jobs return). An order
    /// given on the control thread itself (by an async joiner's waker,
    /// which it wakes when a deadline or a halt cancels the job) is queued
    /// and the call returns at once, `halt` with an empty report.
    ///
    /// ```
    /// use workyard::{CancelReason, Dispatcher, JobError};
    ///
    /// let pool = Dispatcher::builder().workers(1).build().unwrap();
    /// pool.pause();
    /// let queued = pool.spawn(|| "never runs").unwrap();
    /// let report = pool.halt();
    /// assert_eq!(report.never_started, [queued.id()]);
    /// assert!(matches!(queued.join(), Err(JobError::Cancelled(CancelReason::Halt))));
    /// assert!(pool.spawn(|| ()).is_err());
    /// ```
    pub fn halt(&self) -> HaltReport {
        let pool = self.pool();
        let report = ask(pool, Order::Halt).unwrap_or_default();
        let _ = shutdown_pool(pool, None);
        report
    }

    /// Graceful shutdown: refuses new jobs (from anywhere, also from inside
    /// running jobs), lets every accepted job run (resuming a paused
    /// dispatcher), then joins the worker threads. Calling it again, or from
    /// several threads, is fine: each call returns once the threads are gone.
    ///
    /// Called from one of this dispatcher's own threads (inside a job, or
    /// in a worker's thread-local destructor), it cannot wait for that job
    /// or thread: it acts as [`shutdown_background`](Self::shutdown_background).
    pub fn shutdown(&self) {
        let _ = shutdown_pool(self.pool(), None);
    }

    /// Graceful shutdown that gives up waiting after `timeout`: like
    /// [`shutdown`](Self::shutdown) if every accepted job finishes in time
    /// (`Ok`). Otherwise, when `timeout` has passed, it [`halt`](Self::halt)s
    /// and returns with the report (`Err`) within a further 100 ms: the
    /// running jobs it asked to stop that have not returned by then are
    /// left to finish on their own, and their threads exit after them,
    /// detached (a later `shutdown` waits for them).
    ///
    /// Called from inside one of this dispatcher's jobs it cannot wait for
    /// that job: it refuses new jobs and returns `Ok` at once, like
    /// [`shutdown_background`](Self::shutdown_background).
    ///
    /// ```
    /// use std::time::Duration;
    /// let pool = workyard::Dispatcher::builder().workers(2).build().unwrap();
    /// pool.spawn(|| 1 + 1).unwrap();
    /// assert!(pool.shutdown_timeout(Duration::from_secs(10)).is_ok());
    /// ```
    pub fn shutdown_timeout(&self, timeout: Duration) -> Result<(), HaltReport> {
        let deadline = Instant::now().checked_add(timeout);
        match shutdown_pool(self.pool(), deadline) {
            Shutdown::Done | Shutdown::FromPool => Ok(()),
            Shutdown::TimedOut(report) => {
                // Jobs asked to stop usually return at once: give them a
                // moment, and join the threads if they are gone by then.
                let _ = shutdown_pool(self.pool(), Some(Instant::now() + SHUTDOWN_GRACE));
                Err(report)
            }
        }
    }

    /// Starts a graceful shutdown and returns at once (tokio's name; it
    /// waits only for the control thread to close the pool): new jobs are
    /// refused from now on, every accepted job still runs, and the
    /// worker threads exit on their own after the last one, detached.
    /// A later [`shutdown`](Self::shutdown) waits for them; dropping the
    /// last `Dispatcher` afterwards does not.
    ///
    /// ```
    /// let pool = workyard::Dispatcher::builder().workers(2).build().unwrap();
    /// let handle = pool.spawn(|| 6 * 7).unwrap();
    /// pool.shutdown_background();
    /// assert!(pool.spawn(|| 0).is_err());
    /// assert_eq!(handle.join().unwrap(), 42);
    /// ```
    pub fn shutdown_background(&self) {
        // ORDERING: Relaxed: see `Owner::drop`.
        self.owner
            .background
            .store(true, std::sync::atomic::Ordering::Relaxed);
        close(self.pool());
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
