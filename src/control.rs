//! Orders to the workers: halt everything, halt one worker, resize the
//! pool, and spawn with a deadline.

use crate::dispatcher::{join_workers, on_worker_of, shutdown_pool, Dispatcher, Shutdown};
use crate::error::{SpawnError, WorkerError};
use crate::job::state::{self, Cancel};
use crate::job::{Job, JobHandle, JobId};
use crate::pool::{GrowError, Pool};
use crate::signal::lock;
use crate::worker::slot::{self, Slot};
use crate::Arc;
use std::cell::Cell;
use std::time::{Duration, Instant};

/// What [`Dispatcher::halt`] (or a timed-out
/// [`Dispatcher::shutdown_timeout`]) stopped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct HaltReport {
    /// Jobs that were queued and will never run, in id order (like Java's
    /// `shutdownNow`): re-queue or report them.
    pub never_started: Vec<JobId>,
    /// Jobs that were running and were asked to stop, in id order; they
    /// end `Cancelled` once they return.
    pub interrupted: Vec<JobId>,
}

/// What a halt did to one job.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Halted {
    /// Queued: cancelled, it never starts.
    NeverStarted,
    /// Running: asked to stop.
    Interrupted,
    /// Already finished or cancelled.
    AlreadyOver,
}

thread_local! {
    /// The innermost halt walk on this thread (null if none); each links
    /// to the one it is nested in.
    static WALKING: Cell<*const WalkNode> = const { Cell::new(std::ptr::null()) };
}

struct WalkNode {
    pool: *const Pool,
    outer: *const WalkNode,
}

/// Marks this thread as walking `pool`'s halt until dropped. The walk runs
/// user code (the destructors of the jobs it cancels) while it holds the
/// workers back; a `halt` or `shutdown` of the same pool called from there
/// must not wait for the workers, as one called from a job does not.
struct Walking(Box<WalkNode>);

impl Walking {
    fn enter(pool: &Arc<Pool>) -> Walking {
        let node = Box::new(WalkNode {
            pool: Arc::as_ptr(pool),
            outer: WALKING.get(),
        });
        WALKING.set(&*node);
        Walking(node)
    }
}

impl Drop for Walking {
    fn drop(&mut self) {
        WALKING.set(self.0.outer);
    }
}

/// Is this thread inside `pool`'s halt walk (running a destructor of a job
/// it cancels)? Then waiting for `pool`'s workers would wait forever.
pub(crate) fn in_halt_walk_of(pool: &Arc<Pool>) -> bool {
    let mut node = WALKING.get();
    while !node.is_null() {
        // SAFETY: each node lives in a `Walking` guard further up this
        // thread's stack, which unlinks it before it goes away.
        let n = unsafe { &*node };
        if n.pool == Arc::as_ptr(pool) {
            return true;
        }
        node = n.outer;
    }
    false
}

/// What a halt's cancel (`BY_HALT`, running jobs included) did to a job.
pub(crate) fn halted(cancel: Cancel) -> Halted {
    match cancel {
        Cancel::WasQueued(_) => Halted::NeverStarted,
        Cancel::Requested => Halted::Interrupted,
        Cancel::TooLate => Halted::AlreadyOver,
    }
}

/// Asks worker `index` of `slots` to halt (ACTIVE → HALTING), unless it
/// is not running or is the last running worker; returns its slot, for
/// the caller to unpark.
///
/// The caller holds `Pool::control`, so no other order halts a worker
/// between the count and the request: the count is checked before the
/// request, and a request once made is never taken back. (Taking one back
/// was racy: the worker may already have seen it and exited, and storing
/// ACTIVE again then left a slot counted as running with no thread.) The
/// only other way out of ACTIVE is a worker's exit once the pool is closed
/// and idle, when running no worker is what was asked for.
pub(crate) fn halt_one(slots: &[Slot], index: usize) -> Result<&Slot, WorkerError> {
    let slot = slots.get(index).ok_or(WorkerError::NotRunning(index))?;
    if slot.life() != slot::ACTIVE {
        return Err(WorkerError::NotRunning(index));
    }
    if slot::running(slots) <= 1 {
        return Err(WorkerError::LastWorker);
    }
    if !slot.request_halt() {
        return Err(WorkerError::NotRunning(index));
    }
    Ok(slot)
}

impl Dispatcher {
    /// Stops now: refuses new jobs, cancels every queued job (each ends
    /// `Cancelled` with [`CancelReason::Halt`](crate::CancelReason::Halt)
    /// and never runs), asks every running job to stop, then joins the
    /// worker threads once their current jobs return.
    ///
    /// Workers start no job while the halt cancels, so a job still queued
    /// when the halt begins never starts, even if its worker is freed by the
    /// halt stopping the job before it; only a job a worker had already
    /// taken is reported as interrupted.
    ///
    /// A job accepted concurrently with the halt (its `spawn` returned
    /// `Ok` while `halt` ran) is either in the report or runs to completion:
    /// none vanishes.
    ///
    /// Called from inside one of this dispatcher's jobs, the calling job is
    /// one of the running jobs asked to stop, and `halt` returns without
    /// joining the threads (they exit once the running jobs return). So
    /// does a `halt` called from the destructor of a job that an outer
    /// `halt` cancels; the outer one waits.
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
        pool.close();
        // Held while the walk cancels: otherwise a worker whose job the walk
        // has just stopped would start the next queued job before the walk
        // reaches it. (Only a job a worker had already taken when the hold
        // landed can still start; it is then reported as interrupted.) Not
        // the user's pause: a `pause`, `resume` or shutdown racing the walk
        // would lift that.
        pool.hold_for_halt();
        let mut report = HaltReport::default();
        let walking = Walking::enter(pool);
        for job in pool.index.live() {
            match halted(pool.cancel_job(&job, state::BY_HALT, true)) {
                Halted::NeverStarted => report.never_started.push(job.header().id),
                Halted::Interrupted => report.interrupted.push(job.header().id),
                Halted::AlreadyOver => {}
            }
        }
        drop(walking);
        crate::trace::event!(
            info,
            never_started = report.never_started.len(),
            interrupted = report.interrupted.len(),
            "halt"
        );
        // Workers discard the cancelled jobs, so a paused pool must run.
        pool.release_halt();
        pool.set_paused(false);
        if !on_worker_of(pool) && !in_halt_walk_of(pool) {
            pool.idle.wait_until(|| pool.pending() == 0, None);
            join_workers(pool);
        }
        report
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
        for job in pool.index.live() {
            if let Cancel::WasQueued(_) = pool.cancel_job(&job, 0, false) {
                cancelled.push(job.header().id);
            }
        }
        cancelled
    }

    /// Graceful shutdown that gives up waiting after `timeout`: like
    /// [`shutdown`](Self::shutdown) if every accepted job finishes in time
    /// (`Ok`), otherwise it [`halt`](Self::halt)s and reports what did not
    /// run (`Err`).
    ///
    /// Called from inside one of this dispatcher's jobs it cannot wait for
    /// that job: it refuses new jobs and returns `Ok` at once, like
    /// `shutdown`.
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
            Shutdown::Done | Shutdown::FromWorker => Ok(()),
            Shutdown::TimedOut => Err(self.halt()),
        }
    }

    /// Halts worker `index`: it finishes its current job and exits; the
    /// jobs waiting in its own deque move to the global queue, so none is
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
        let pool = self.pool();
        let control = lock(&pool.control);
        let slot = halt_one(pool.used_slots(), index)?;
        drop(control);
        slot.unpark();
        crate::trace::event!(info, worker = index, "halt_worker");
        Ok(())
    }

    /// Grows or shrinks the pool to `n` running workers. New workers take
    /// the lowest free indices (reusing halted ones); shrinking halts the
    /// highest-indexed workers as [`halt_worker`](Self::halt_worker) does.
    ///
    /// Growing right after a shrink (or a `halt_worker`) may need the slots
    /// of workers that are still halting: it then waits for those threads to
    /// exit (after their current job) and reuses the slots, so that `n`
    /// workers run when it returns. Called from inside one of this
    /// dispatcher's jobs it does not wait (that could deadlock), and may
    /// leave fewer than `n` running until those workers are gone.
    ///
    /// Fails for 0, for more than the builder's
    /// [`max_workers`](crate::DispatcherBuilder::max_workers), after shutdown,
    /// and if the operating system refuses a thread (the workers started so
    /// far keep running). A call racing a [`shutdown`](Self::shutdown)
    /// either fails or starts its threads before that shutdown joins the
    /// workers (it stops starting them once it sees the shutdown), so the
    /// shutdown joins those threads too.
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
        if n > pool.config.max_workers {
            return Err(WorkerError::AboveMax {
                requested: n,
                max: pool.config.max_workers,
            });
        }
        // Held from the count through the halts of a shrink, as in
        // `halt_worker`: a halt that landed between our count and our
        // requests would otherwise go uncounted, and the two could take
        // the last worker (leaving queued jobs to wait forever). A grow
        // keeps it while it starts threads (see `Pool::control`): a
        // shutdown then either sees them or we see it closed.
        let control = lock(&pool.control);
        if pool.is_closed() {
            return Err(WorkerError::Shutdown);
        }
        let running = pool.running_workers();
        if n > running {
            pool.grow_to(n, control).map_err(|e| match e {
                GrowError::Spawn(e) => WorkerError::Spawn(e),
                GrowError::Closed => WorkerError::Shutdown,
            })?;
        } else {
            let mut excess = running - n;
            for slot in pool.used_slots().iter().rev() {
                if excess == 0 {
                    break;
                }
                if slot.request_halt() {
                    slot.unpark();
                    excess -= 1;
                }
            }
        }
        Ok(())
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
            .map_err(|e| SpawnError(e.into_inner()))
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
            .map_err(|e| SpawnError(e.into_inner()))
    }
}
