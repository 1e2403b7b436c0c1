//! Jobs: the [`Job`] trait, job ids, and the status record (the typed
//! handle is the API's, in `handle.rs`).

pub(crate) mod cell;
pub(crate) mod index;
mod info;
pub(crate) mod pending;
pub(crate) mod raw;
pub(crate) mod state;
pub(crate) mod task;

use std::convert::Infallible;
use std::fmt;

pub use info::{CancelReason, JobInfo, JobStatus};

/// A unit of work the [`Dispatcher`](crate::Dispatcher) can run.
///
/// Implement it for a struct to give a job type its own `run` method and
/// typed result; one dispatcher runs any number of job types. Returning
/// `Err` records the job as [`JobStatus::Failed`] and hands the error to
/// whoever joins it.
///
/// Every `FnOnce() -> T + Send + 'static` closure is a `Job` that always
/// succeeds (its `Error` is [`Infallible`]); wrap a closure returning
/// `Result` in [`fallible`] to have its `Err` recorded as a failure.
///
/// ```
/// use workyard::{Dispatcher, Job, JobStatus};
///
/// struct Resize { width: u32, height: u32 }
///
/// impl Job for Resize {
///     type Output = u64;
///     type Error = String;
///     fn run(self) -> Result<u64, String> {
///         if self.width == 0 { return Err("zero width".into()); }
///         Ok(u64::from(self.width) * u64::from(self.height))
///     }
/// }
///
/// let pool = Dispatcher::builder().workers(2).build().unwrap();
/// let ok = pool.spawn(Resize { width: 4, height: 3 }).unwrap();
/// let bad = pool.spawn(Resize { width: 0, height: 3 }).unwrap();
/// let text = pool.spawn(|| "closures are jobs too").unwrap();
/// assert_eq!(ok.join().unwrap(), 12);
/// assert_eq!(bad.join().unwrap_err().into_failure(), Some("zero width".to_string()));
/// assert_eq!(text.join().unwrap(), "closures are jobs too");
/// ```
pub trait Job: Send + 'static {
    /// What a successful run produces.
    type Output: Send + 'static;
    /// What a failed run produces.
    type Error: Send + 'static;
    /// Runs the job on a worker thread.
    fn run(self) -> Result<Self::Output, Self::Error>;
}

impl<F, T> Job for F
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    type Output = T;
    type Error = Infallible;

    fn run(self) -> Result<T, Infallible> {
        Ok(self())
    }
}

/// A closure job whose `Err` is a failure; made by [`fallible`].
#[derive(Debug, Clone)]
pub struct Fallible<F>(F);

/// Turns a closure returning `Result<T, E>` into a [`Job`] whose `Err` is
/// recorded as [`JobStatus::Failed`] (a bare closure's `Err` would be an
/// ordinary, successful output).
///
/// ```
/// use workyard::{fallible, Dispatcher, JobStatus};
///
/// let pool = Dispatcher::builder().workers(1).build().unwrap();
/// let handle = pool.spawn(fallible(|| "x".parse::<u32>())).unwrap();
/// let id = handle.id();
/// assert!(handle.join().unwrap_err().is_failed());
/// pool.wait_idle();
/// assert_eq!(pool.status(id), Some(JobStatus::Failed));
/// ```
pub fn fallible<F, T, E>(f: F) -> Fallible<F>
where
    F: FnOnce() -> Result<T, E> + Send + 'static,
    T: Send + 'static,
    E: Send + 'static,
{
    Fallible(f)
}

impl<F, T, E> Job for Fallible<F>
where
    F: FnOnce() -> Result<T, E> + Send + 'static,
    T: Send + 'static,
    E: Send + 'static,
{
    type Output = T;
    type Error = E;

    fn run(self) -> Result<T, E> {
        (self.0)()
    }
}

/// Identifies one job for the lifetime of its dispatcher. Ids are handed
/// out in spawn order, starting at 1; a refused spawn (`try_spawn` on a
/// full queue, or any spawn after shutdown) leaves a gap, and so does a
/// [`Dispatcher::join`](crate::Dispatcher::join) called from outside the
/// pool (the pair is admitted like a job, but gets no id of its own).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct JobId(pub(crate) u64);

impl JobId {
    /// The id as a number.
    ///
    /// ```
    /// let pool = workyard::Dispatcher::builder().workers(1).build().unwrap();
    /// let first = pool.spawn(|| ()).unwrap();
    /// assert_eq!(first.id().as_u64(), 1);
    /// ```
    pub fn as_u64(self) -> u64 {
        self.0
    }
}

impl fmt::Debug for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "JobId({})", self.0)
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "job#{}", self.0)
    }
}
