//! Errors: why a job failed, why a spawn was refused, why a build failed.

use crate::job::CancelReason;
use crate::sync_wrapper::SyncWrapper;
use crate::unwind::PanicPayload;
use std::convert::Infallible;
use std::{error, fmt, io};

/// Why [`JobHandle::join`](crate::JobHandle::join) did not return a value.
///
/// `E` is the job's own error type ([`Infallible`] for plain closures).
/// It is `Send + Sync + 'static` whenever `E` is, so `?` turns it into
/// `anyhow::Error` or `Box<dyn Error + Send + Sync>`.
///
/// ```
/// use workyard::{Dispatcher, JobError};
///
/// let pool = Dispatcher::builder().workers(1).build().unwrap();
/// let handle = pool.spawn(|| -> u32 { panic!("boom") }).unwrap();
/// match handle.join() {
///     Err(JobError::Panicked(payload)) => assert_eq!(payload.message(), Some("boom")),
///     other => panic!("unexpected {other:?}"),
/// }
/// ```
#[non_exhaustive]
pub enum JobError<E = Infallible> {
    /// The job returned `Err(E)`; its status is `Failed`.
    Failed(E),
    /// The job panicked; its status is `Panicked`.
    Panicked(PanicPayload),
    /// The job was cancelled before it started, or asked to stop while it
    /// ran; its status is `Cancelled`.
    Cancelled(CancelReason),
}

impl<E> JobError<E> {
    /// `true` if the job returned an error.
    pub fn is_failed(&self) -> bool {
        matches!(self, JobError::Failed(_))
    }

    /// `true` if the job panicked.
    pub fn is_panic(&self) -> bool {
        matches!(self, JobError::Panicked(_))
    }

    /// `true` if the job was cancelled.
    pub fn is_cancelled(&self) -> bool {
        matches!(self, JobError::Cancelled(_))
    }

    /// The job's own error, if it failed.
    pub fn into_failure(self) -> Option<E> {
        match self {
            JobError::Failed(e) => Some(e),
            _ => None,
        }
    }

    /// The panic payload, if it panicked (re-raise it with
    /// [`std::panic::resume_unwind`]).
    pub fn into_panic(self) -> Option<PanicPayload> {
        match self {
            JobError::Panicked(p) => Some(p),
            _ => None,
        }
    }
}

impl<E: fmt::Debug> fmt::Debug for JobError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JobError::Failed(e) => f.debug_tuple("Failed").field(e).finish(),
            JobError::Panicked(p) => f.debug_tuple("Panicked").field(p).finish(),
            JobError::Cancelled(r) => f.debug_tuple("Cancelled").field(r).finish(),
        }
    }
}

impl<E: fmt::Display> fmt::Display for JobError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JobError::Failed(e) => write!(f, "job failed: {e}"),
            JobError::Panicked(p) => match p.message() {
                Some(m) => write!(f, "job panicked: {m}"),
                None => f.write_str("job panicked"),
            },
            JobError::Cancelled(r) => write!(f, "job {r}"),
        }
    }
}

impl<E: fmt::Debug + fmt::Display> error::Error for JobError<E> {}

/// A job the dispatcher refused, handed back unrun inside [`SpawnError`]
/// and [`TrySpawnError`]; take it out with [`into_inner`](Self::into_inner).
///
/// It is `Send + Sync` for any job (a job is `Send`, but a closure that
/// captures a `Cell` is not `Sync`), so that the errors holding it go into
/// `anyhow::Error` or `Box<dyn Error + Send + Sync>` with `?`. That is
/// sound because a shared reference gives no access to the job: it comes
/// out by value, or through `&mut` ([`get_mut`](Self::get_mut)). A job that
/// is `Sync` itself may also be looked at through `&` ([`get`](Self::get)).
///
/// ```
/// use std::cell::Cell;
///
/// let pool = workyard::Dispatcher::builder().workers(1).build().unwrap();
/// pool.shutdown();
/// let counter = Cell::new(0);
/// let refused = pool.spawn(move || counter.get() + 1).unwrap_err();
/// let boxed: Box<dyn std::error::Error + Send + Sync> = Box::new(refused);
/// assert_eq!(boxed.to_string(), "the dispatcher is shut down and accepts no more jobs");
/// ```
///
/// A job that is not `Sync` cannot be reached through `&`:
///
/// ```compile_fail
/// use std::cell::Cell;
///
/// fn peek(job: &workyard::RejectedJob<Cell<u8>>) -> u8 {
///     job.get().get()
/// }
/// ```
pub struct RejectedJob<J>(SyncWrapper<J>);

impl<J> RejectedJob<J> {
    /// Wraps a job, as the dispatcher does when it refuses one.
    pub fn new(job: J) -> Self {
        RejectedJob(SyncWrapper::new(job))
    }

    /// The job, to run elsewhere, retry or drop.
    pub fn into_inner(self) -> J {
        self.0.into_inner()
    }

    /// The job, to change before a retry.
    pub fn get_mut(&mut self) -> &mut J {
        self.0.get_mut()
    }

    /// The job, for a job that may be shared between threads anyway.
    pub fn get(&self) -> &J
    where
        J: Sync,
    {
        self.0.get()
    }
}

/// Compares the jobs; only for jobs that are `Sync`, since comparing reads
/// them through `&`.
impl<J: PartialEq + Sync> PartialEq for RejectedJob<J> {
    fn eq(&self, other: &Self) -> bool {
        self.get() == other.get()
    }
}

impl<J: Eq + Sync> Eq for RejectedJob<J> {}

impl<J> fmt::Debug for RejectedJob<J> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RejectedJob(..)")
    }
}

/// [`Dispatcher::spawn`](crate::Dispatcher::spawn) was refused because the
/// dispatcher no longer accepts jobs (it is shutting down or halted). The
/// job is inside, unrun: take it back with [`into_inner`](Self::into_inner).
///
/// It is `Send + Sync + 'static` for any job (see [`RejectedJob`]), so `?`
/// turns it into `anyhow::Error` or `Box<dyn Error + Send + Sync>`; the
/// job comes back through a downcast.
///
/// ```
/// let pool = workyard::Dispatcher::builder().workers(1).build().unwrap();
/// pool.shutdown();
/// let job = pool.spawn(|| "run me elsewhere").unwrap_err().into_inner();
/// assert_eq!(job(), "run me elsewhere");
/// ```
pub struct SpawnError<J>(pub RejectedJob<J>);

/// Compares the jobs, as [`RejectedJob`] does (for `Sync` jobs).
impl<J: PartialEq + Sync> PartialEq for SpawnError<J> {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}

impl<J: Eq + Sync> Eq for SpawnError<J> {}

impl<J> SpawnError<J> {
    /// Wraps a refused job.
    pub fn new(job: J) -> Self {
        SpawnError(RejectedJob::new(job))
    }

    /// The job that was not accepted.
    pub fn into_inner(self) -> J {
        self.0.into_inner()
    }
}

impl<J> fmt::Debug for SpawnError<J> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SpawnError(..)")
    }
}

impl<J> fmt::Display for SpawnError<J> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the dispatcher is shut down and accepts no more jobs")
    }
}

impl<J> error::Error for SpawnError<J> {}

/// [`Dispatcher::try_spawn`](crate::Dispatcher::try_spawn) was refused;
/// the job is inside, unrun. Like [`SpawnError`], it is `Send + Sync` for
/// any job.
///
/// ```
/// use workyard::{Dispatcher, TrySpawnError};
///
/// let pool = Dispatcher::builder().workers(1).queue_capacity(1).build().unwrap();
/// pool.pause();
/// pool.try_spawn(|| 1).unwrap();
/// match pool.try_spawn(|| 2) {
///     Err(TrySpawnError::Full(job)) => assert_eq!(job.into_inner()(), 2),
///     other => panic!("expected Full, got {other:?}"),
/// }
/// ```
pub enum TrySpawnError<J> {
    /// The bounded queue is full; try again later, or use `spawn` to wait.
    Full(RejectedJob<J>),
    /// The dispatcher is shut down or halted.
    Closed(RejectedJob<J>),
}

/// Compares the kinds and the jobs, as [`RejectedJob`] does (for `Sync`
/// jobs).
impl<J: PartialEq + Sync> PartialEq for TrySpawnError<J> {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (TrySpawnError::Full(a), TrySpawnError::Full(b))
            | (TrySpawnError::Closed(a), TrySpawnError::Closed(b)) => a == b,
            _ => false,
        }
    }
}

impl<J: Eq + Sync> Eq for TrySpawnError<J> {}

impl<J> TrySpawnError<J> {
    /// The job that was not accepted.
    pub fn into_inner(self) -> J {
        match self {
            TrySpawnError::Full(j) | TrySpawnError::Closed(j) => j.into_inner(),
        }
    }

    /// `true` if the queue was full.
    pub fn is_full(&self) -> bool {
        matches!(self, TrySpawnError::Full(_))
    }

    /// `true` if the dispatcher was closed.
    pub fn is_closed(&self) -> bool {
        matches!(self, TrySpawnError::Closed(_))
    }
}

impl<J> From<SpawnError<J>> for TrySpawnError<J> {
    fn from(e: SpawnError<J>) -> Self {
        TrySpawnError::Closed(e.0)
    }
}

impl<J> fmt::Debug for TrySpawnError<J> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TrySpawnError::Full(_) => "Full(..)",
            TrySpawnError::Closed(_) => "Closed(..)",
        })
    }
}

impl<J> fmt::Display for TrySpawnError<J> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TrySpawnError::Full(_) => "the dispatcher's queue is full",
            TrySpawnError::Closed(_) => "the dispatcher is shut down and accepts no more jobs",
        })
    }
}

impl<J> error::Error for TrySpawnError<J> {}

/// [`DispatcherBuilder::build`](crate::DispatcherBuilder::build) failed.
///
/// ```
/// use workyard::{BuildError, Dispatcher};
///
/// let err = Dispatcher::builder().queue_capacity(0).build().unwrap_err();
/// assert!(matches!(err, BuildError::InvalidOption { option: "queue_capacity", .. }));
/// println!("{err}"); // invalid DispatcherBuilder::queue_capacity: must be at least 1 (...)
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum BuildError {
    /// A builder option has a value it cannot take.
    InvalidOption {
        /// The builder method, e.g. `"workers"`.
        option: &'static str,
        /// What it must be instead.
        reason: &'static str,
    },
    /// The operating system refused to start a worker thread. Threads
    /// already started were shut down again.
    Spawn(io::Error),
    /// [`DispatcherBuilder::build_global`](crate::DispatcherBuilder::build_global)
    /// came after the global dispatcher was initialised: built by an
    /// earlier `build_global` or on first use, or ended by
    /// [`shutdown_global`](crate::shutdown_global). (rayon's
    /// `GlobalPoolAlreadyInitialized`.) The new configuration was not used.
    GlobalPoolAlreadyInitialized,
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::InvalidOption { option, reason } => {
                write!(f, "invalid DispatcherBuilder::{option}: {reason}")
            }
            BuildError::Spawn(e) => write!(f, "could not start a worker thread: {e}"),
            BuildError::GlobalPoolAlreadyInitialized => f.write_str(
                "the global dispatcher is already initialised (by an earlier build_global, \
                 a first use of a free function, or shutdown_global): \
                 call build_global once, before any use",
            ),
        }
    }
}

impl error::Error for BuildError {
    fn source(&self) -> Option<&(dyn error::Error + 'static)> {
        match self {
            BuildError::Spawn(e) => Some(e),
            BuildError::InvalidOption { .. } | BuildError::GlobalPoolAlreadyInitialized => None,
        }
    }
}

/// A worker-control call ([`Dispatcher::halt_worker`],
/// [`Dispatcher::set_workers`]) was refused.
///
/// [`Dispatcher::halt_worker`]: crate::Dispatcher::halt_worker
/// [`Dispatcher::set_workers`]: crate::Dispatcher::set_workers
///
/// ```
/// use workyard::{Dispatcher, WorkerError};
///
/// let pool = Dispatcher::builder().workers(2).max_workers(4).build().unwrap();
/// assert_eq!(pool.set_workers(9), Err(WorkerError::AboveMax { requested: 9, max: 4 }));
/// assert_eq!(pool.halt_worker(3), Err(WorkerError::NotRunning(3)));
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum WorkerError {
    /// No running worker has this index (never started, or already halted).
    NotRunning(usize),
    /// Halting it would leave no worker; use `halt` or `shutdown`.
    LastWorker,
    /// A pool needs at least one worker.
    Zero,
    /// More workers than the builder's `max_workers`.
    AboveMax {
        /// The number asked for.
        requested: usize,
        /// The builder's `max_workers`.
        max: usize,
    },
    /// The dispatcher is shut down or halted.
    Shutdown,
    /// The operating system refused to start a thread.
    Spawn(io::Error),
}

impl PartialEq for WorkerError {
    fn eq(&self, other: &Self) -> bool {
        use WorkerError::*;
        match (self, other) {
            (NotRunning(a), NotRunning(b)) => a == b,
            (LastWorker, LastWorker) | (Zero, Zero) | (Shutdown, Shutdown) => true,
            (
                AboveMax {
                    requested: a,
                    max: m,
                },
                AboveMax {
                    requested: b,
                    max: n,
                },
            ) => (a, m) == (b, n),
            (Spawn(a), Spawn(b)) => a.kind() == b.kind(),
            _ => false,
        }
    }
}

impl fmt::Display for WorkerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WorkerError::NotRunning(i) => write!(
                f,
                "worker {i} is not running (never started, or already halted)"
            ),
            WorkerError::LastWorker => {
                f.write_str("cannot halt the last running worker; use halt() or shutdown()")
            }
            WorkerError::Zero => f.write_str("a dispatcher needs at least 1 worker"),
            WorkerError::AboveMax { requested, max } => {
                write!(f, "{requested} workers requested, but max_workers is {max}")
            }
            WorkerError::Shutdown => f.write_str("the dispatcher is shut down"),
            WorkerError::Spawn(e) => write!(f, "could not start a worker thread: {e}"),
        }
    }
}

impl error::Error for WorkerError {
    fn source(&self) -> Option<&(dyn error::Error + 'static)> {
        match self {
            WorkerError::Spawn(e) => Some(e),
            _ => None,
        }
    }
}
