//! Read-only views of a status record: [`JobStatus`] and [`JobInfo`].

use super::state::{self, Snapshot};
use super::JobId;
use std::fmt;
use std::time::{Duration, Instant};

/// Where a job is in its life. The last four are terminal: once a job
/// reaches one, its status never changes again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobStatus {
    /// Accepted and waiting in a queue.
    Queued,
    /// A worker is running it.
    Running,
    /// Returned a value.
    Succeeded,
    /// Returned an error (a [`Job`](crate::Job) whose `run` gave `Err`).
    Failed,
    /// Panicked; the worker caught it and carried on.
    Panicked,
    /// Cancelled before it started, or asked to stop while running (see
    /// [`JobHandle::cancel`](crate::JobHandle::cancel)).
    Cancelled,
}

impl JobStatus {
    /// `true` for `Succeeded`, `Failed`, `Panicked` and `Cancelled`.
    ///
    /// ```
    /// assert!(workyard::JobStatus::Failed.is_terminal());
    /// assert!(!workyard::JobStatus::Running.is_terminal());
    /// ```
    pub fn is_terminal(self) -> bool {
        !matches!(self, JobStatus::Queued | JobStatus::Running)
    }

    pub(crate) fn from_snapshot(s: Snapshot) -> JobStatus {
        match s.state() {
            state::QUEUED => JobStatus::Queued,
            state::RUNNING => JobStatus::Running,
            state::SUCCEEDED => JobStatus::Succeeded,
            state::FAILED => JobStatus::Failed,
            state::PANICKED => JobStatus::Panicked,
            _ => JobStatus::Cancelled,
        }
    }
}

impl fmt::Display for JobStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            JobStatus::Queued => "queued",
            JobStatus::Running => "running",
            JobStatus::Succeeded => "succeeded",
            JobStatus::Failed => "failed",
            JobStatus::Panicked => "panicked",
            JobStatus::Cancelled => "cancelled",
        };
        f.write_str(name)
    }
}

/// Who cancelled a job.
///
/// ```
/// use std::time::Duration;
/// use workyard::{CancelReason, Dispatcher};
///
/// let pool = Dispatcher::builder().workers(1).build().unwrap();
/// pool.pause();
/// let by_caller = pool.spawn(|| ()).unwrap();
/// by_caller.cancel();
/// let by_deadline = pool.spawn_with_timeout(|| (), Duration::ZERO).unwrap();
/// pool.resume();
/// assert_eq!(by_caller.info().cancel_reason(), Some(CancelReason::Caller));
/// let id = by_deadline.id();
/// assert!(by_deadline.join().unwrap_err().is_cancelled());
/// assert_eq!(pool.info(id).unwrap().cancel_reason(), Some(CancelReason::Deadline));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CancelReason {
    /// A caller, through `JobHandle::cancel` or `Dispatcher::cancel`.
    Caller,
    /// The job's deadline passed.
    Deadline,
    /// The dispatcher was halted (or a shutdown timed out) before the job
    /// could finish.
    Halt,
}

impl CancelReason {
    pub(crate) fn from_snapshot(s: Snapshot) -> CancelReason {
        if s.has(state::BY_DEADLINE) {
            CancelReason::Deadline
        } else if s.has(state::BY_HALT) {
            CancelReason::Halt
        } else {
            CancelReason::Caller
        }
    }
}

impl fmt::Display for CancelReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CancelReason::Caller => "cancelled by a caller",
            CancelReason::Deadline => "cancelled by its deadline",
            CancelReason::Halt => "cancelled by a halt",
        })
    }
}

/// A snapshot of one job's status record.
///
/// ```
/// use workyard::{Dispatcher, JobStatus};
///
/// let pool = Dispatcher::builder().workers(1).build().unwrap();
/// let handle = pool.spawn(|| 6 * 7).unwrap();
/// let id = handle.id();
/// assert_eq!(handle.join().unwrap(), 42);
/// pool.wait_idle();
///
/// let info = pool.info(id).unwrap();
/// assert_eq!(info.status(), JobStatus::Succeeded);
/// assert_eq!(info.worker(), Some(0));
/// assert!(info.run_time().is_some());
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct JobInfo {
    pub(crate) id: JobId,
    pub(crate) word: Snapshot,
    pub(crate) worker: Option<usize>,
    pub(crate) queued_at: Instant,
    pub(crate) started_at: Option<Instant>,
    pub(crate) finished_at: Option<Instant>,
}

impl JobInfo {
    /// The job's id.
    pub fn id(&self) -> JobId {
        self.id
    }

    /// The job's status when the snapshot was taken.
    pub fn status(&self) -> JobStatus {
        JobStatus::from_snapshot(self.word)
    }

    /// The worker that ran (or is running) it; `None` if it never started.
    pub fn worker(&self) -> Option<usize> {
        self.worker
    }

    /// When it was accepted.
    pub fn queued_at(&self) -> Instant {
        self.queued_at
    }

    /// When a worker started it; `None` if it has not (or never will).
    pub fn started_at(&self) -> Option<Instant> {
        self.started_at
    }

    /// When it reached its terminal status; `None` while queued or running.
    pub fn finished_at(&self) -> Option<Instant> {
        self.finished_at
    }

    /// How long it ran: from start to finish, or to now while it runs.
    /// `None` if it never started.
    pub fn run_time(&self) -> Option<Duration> {
        let started = self.started_at?;
        Some(match self.finished_at {
            Some(finished) => finished.saturating_duration_since(started),
            None => started.elapsed(),
        })
    }

    /// How long it waited in a queue before it started (or until now, or
    /// until it was cancelled).
    pub fn wait_time(&self) -> Duration {
        let end = self
            .started_at
            .or(self.finished_at)
            .unwrap_or_else(Instant::now);
        end.saturating_duration_since(self.queued_at)
    }

    /// `true` once someone asked the job to stop (it may still be running).
    pub fn cancel_requested(&self) -> bool {
        self.word.has(state::CANCEL_REQUESTED) || self.status() == JobStatus::Cancelled
    }

    /// Who cancelled it, if it was cancelled or asked to stop.
    pub fn cancel_reason(&self) -> Option<CancelReason> {
        self.cancel_requested()
            .then(|| CancelReason::from_snapshot(self.word))
    }
}

impl fmt::Debug for JobInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobInfo")
            .field("id", &self.id)
            .field("status", &self.status())
            .field("worker", &self.worker)
            .field("wait_time", &self.wait_time())
            .field("run_time", &self.run_time())
            .field("cancel_reason", &self.cancel_reason())
            .finish()
    }
}
