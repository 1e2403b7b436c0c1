//! [`CancelOnDrop`]: a job handle that cancels its job when dropped.
//!
//! Dropping a [`JobHandle`] detaches the job, as dropping a thread's or
//! tokio task's handle does. Code that owns a job for a scope (a request
//! that gives up on an error path, a `select!` whose other branch won)
//! wants the opposite, and opts in with [`JobHandle::cancel_on_drop`]. The
//! name says what it does in workyard's own words (tokio-util's
//! `AbortOnDropHandle` aborts; a workyard job is cancelled), and it is
//! named for the guard, as std's `PoisonError` or tokio-util's `DropGuard`
//! are, since it is a handle only through [`Deref`].

use crate::error::JobError;
use crate::handle::JobHandle;
use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::ops::Deref;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

/// A [`JobHandle`] that [cancels](JobHandle::cancel) its job when dropped:
/// a queued job then never runs, and a running one is asked to stop
/// ([`is_cancelled`](crate::is_cancelled) turns `true`). Made by
/// [`JobHandle::cancel_on_drop`].
///
/// It derefs to the handle (`id`, `status`, `info`, `cancel`...), joins
/// like it, and is a [`Future`] like it. [`detach`](Self::detach) gives the
/// plain handle back, which detaches the job on drop again.
///
/// ```
/// use workyard::{Dispatcher, JobStatus};
///
/// let pool = Dispatcher::builder().workers(1).build().unwrap();
/// pool.pause();
/// let guard = pool.spawn(|| "never runs").unwrap().cancel_on_drop();
/// let id = guard.id();
/// drop(guard);
/// assert_eq!(pool.status(id), Some(JobStatus::Cancelled));
/// pool.resume();
///
/// let guard = pool.spawn(|| 6 * 7).unwrap().cancel_on_drop();
/// assert_eq!(guard.join().unwrap(), 42);
/// ```
#[must_use = "dropping the guard at once cancels the job"]
pub struct CancelOnDrop<T, E = Infallible> {
    /// `Some` until a consuming method takes it; `None` only in `drop`
    /// after one did.
    handle: Option<JobHandle<T, E>>,
}

impl<T, E> JobHandle<T, E> {
    /// Makes this handle cancel its job when dropped (see
    /// [`CancelOnDrop`]), instead of detaching it.
    pub fn cancel_on_drop(self) -> CancelOnDrop<T, E> {
        CancelOnDrop { handle: Some(self) }
    }
}

impl<T, E> CancelOnDrop<T, E> {
    fn handle(&self) -> &JobHandle<T, E> {
        self.handle
            .as_ref()
            .expect("taken only by consuming methods")
    }

    /// Gives the plain handle back: dropping it no longer cancels the
    /// job, it detaches it.
    pub fn detach(mut self) -> JobHandle<T, E> {
        self.handle.take().expect("taken only by consuming methods")
    }

    /// Waits for the job and returns its result, as
    /// [`JobHandle::join`] does (with its panic for a job joining itself).
    pub fn join(self) -> Result<T, JobError<E>> {
        self.detach().join()
    }

    /// Like [`join`](Self::join), but gives up after `timeout`, returning
    /// the guard, which still cancels the job when dropped.
    #[allow(clippy::type_complexity)]
    pub fn join_timeout(self, timeout: Duration) -> Result<Result<T, JobError<E>>, Self> {
        self.detach()
            .join_timeout(timeout)
            .map_err(JobHandle::cancel_on_drop)
    }
}

impl<T, E> Deref for CancelOnDrop<T, E> {
    type Target = JobHandle<T, E>;

    fn deref(&self) -> &JobHandle<T, E> {
        self.handle()
    }
}

/// Awaits the job as its [`JobHandle`] does; dropping the future before
/// it is ready (a cancelled async task, a lost `select!` branch) cancels
/// the job.
impl<T, E> Future for CancelOnDrop<T, E> {
    type Output = Result<T, JobError<E>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let handle = self
            .handle
            .as_mut()
            .expect("taken only by consuming methods");
        Pin::new(handle).poll(cx)
    }
}

impl<T, E> Drop for CancelOnDrop<T, E> {
    fn drop(&mut self) {
        if let Some(handle) = self.handle.take() {
            // `false` if the job had finished already: nothing to stop.
            let _ = handle.cancel();
        }
    }
}

impl<T, E> fmt::Debug for CancelOnDrop<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("CancelOnDrop").field(self.handle()).finish()
    }
}
