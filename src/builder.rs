//! [`DispatcherBuilder`]: validated configuration, then worker start-up.

use crate::dispatcher::Dispatcher;
use crate::error::BuildError;
use crate::pool::{Config, Pool};
use crate::{control, Arc};
use std::fmt;

/// Names a worker thread from its index.
type ThreadName = Arc<dyn Fn(usize) -> String + Send + Sync>;

/// The most worker threads a dispatcher may have.
///
/// ```
/// let err = workyard::Dispatcher::builder().workers(workyard::MAX_WORKERS + 1).build();
/// assert!(err.is_err());
/// ```
pub const MAX_WORKERS: usize = 4096;
/// The smallest worker stack accepted, in bytes (smaller stacks overflow
/// in ordinary code and abort the process).
///
/// ```
/// let pool = workyard::Dispatcher::builder().stack_size(workyard::MIN_STACK_SIZE).build();
/// assert!(pool.is_ok());
/// ```
pub const MIN_STACK_SIZE: usize = 64 * 1024;
/// The largest [`DispatcherBuilder::history`]: the index's ring is
/// allocated up front, 8 bytes a slot (8 MiB at this size).
///
/// ```
/// let err = workyard::Dispatcher::builder().history(workyard::MAX_HISTORY + 1).build();
/// assert!(err.is_err());
/// ```
pub const MAX_HISTORY: usize = 1 << 20;

/// How many of the most recently spawned jobs keep their status records
/// queryable by id once finished, by default.
///
/// ```
/// let pool = workyard::Dispatcher::builder().workers(1).build().unwrap();
/// let first = pool.spawn(|| ()).unwrap().id();
/// for _ in 0..workyard::DEFAULT_HISTORY * 4 {
///     pool.spawn(|| ()).unwrap();
/// }
/// pool.wait_idle();
/// assert_eq!(pool.status(first), None); // evicted from the history
/// ```
pub const DEFAULT_HISTORY: usize = 1024;

/// Configures a [`Dispatcher`]. Setters only record values; [`build`]
/// checks them all and names the first bad one.
///
/// [`build`]: DispatcherBuilder::build
///
/// ```
/// use workyard::{BuildError, Dispatcher};
///
/// let pool = Dispatcher::builder()
///     .workers(4)
///     .queue_capacity(1_000)
///     .thread_name(|i| format!("render-{i}"))
///     .stack_size(4 << 20)
///     .build()
///     .unwrap();
/// assert_eq!(pool.workers(), 4);
///
/// let err = Dispatcher::builder().workers(0).build().unwrap_err();
/// assert!(matches!(err, BuildError::InvalidOption { option: "workers", .. }));
/// ```
#[derive(Default)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct DispatcherBuilder {
    workers: Option<usize>,
    queue_capacity: Option<usize>,
    thread_name: Option<ThreadName>,
    stack_size: Option<usize>,
    history: Option<usize>,
    max_workers: Option<usize>,
}

impl DispatcherBuilder {
    /// A builder with the defaults: one worker per logical CPU, an
    /// unbounded queue, threads named `workyard-{index}`.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many worker threads to run (1 to [`MAX_WORKERS`]; default: the
    /// number of logical CPUs).
    pub fn workers(mut self, n: usize) -> Self {
        self.workers = Some(n);
        self
    }

    /// Bounds how many jobs may wait in the queues (at least 1). When it is
    /// full, [`spawn`](Dispatcher::spawn) blocks and
    /// [`try_spawn`](Dispatcher::try_spawn) returns `Full`. Unbounded by
    /// default.
    ///
    /// A job leaves the queue when it starts, and when it is cancelled
    /// while queued through the dispatcher ([`Dispatcher::cancel`],
    /// [`Dispatcher::cancel_queued`], [`Dispatcher::halt`], a deadline);
    /// one cancelled through its [`JobHandle`](crate::JobHandle) leaves when
    /// a worker discards it.
    pub fn queue_capacity(mut self, n: usize) -> Self {
        self.queue_capacity = Some(n);
        self
    }

    /// Names worker threads; `f` gets the worker's index. [`build`](Self::build)
    /// calls it once for each index below
    /// [`max_workers`](Self::max_workers), on the calling thread, before
    /// any thread starts, so that no user code runs when the dispatcher
    /// later starts a thread (`set_workers`).
    ///
    /// A name containing a NUL byte, or a panic in `f`, fails the build
    /// with [`BuildError::InvalidOption`] for `thread_name`.
    pub fn thread_name(mut self, f: impl Fn(usize) -> String + Send + Sync + 'static) -> Self {
        self.thread_name = Some(Arc::new(f));
        self
    }

    /// Stack size of each worker thread, in bytes (at least
    /// [`MIN_STACK_SIZE`]; default: the platform's thread default).
    pub fn stack_size(mut self, bytes: usize) -> Self {
        self.stack_size = Some(bytes);
        self
    }

    /// How many recent jobs stay queryable through [`Dispatcher::status`]
    /// and [`Dispatcher::info`] once finished: the records of the last `n`
    /// jobs spawned (rounded up to a power of two; default
    /// [`DEFAULT_HISTORY`]). Queued and running jobs always are, however
    /// old. Memory for records is bounded by this plus the live jobs.
    /// `history(0)` keeps no finished record at all; at most
    /// [`MAX_HISTORY`].
    pub fn history(mut self, n: usize) -> Self {
        self.history = Some(n);
        self
    }

    /// The most workers [`Dispatcher::set_workers`] may grow the pool to
    /// (default: the larger of `workers` and 64, at most [`MAX_WORKERS`]).
    /// Each slot costs about 2 KiB whether used or not.
    pub fn max_workers(mut self, n: usize) -> Self {
        self.max_workers = Some(n);
        self
    }

    fn validate(&self) -> Result<(usize, usize), BuildError> {
        let invalid = |option, reason| Err(BuildError::InvalidOption { option, reason });
        let workers = self.workers.unwrap_or_else(num_cpus::get);
        if workers == 0 {
            return invalid("workers", "must be at least 1");
        }
        if workers > MAX_WORKERS {
            return invalid("workers", "must be at most MAX_WORKERS (4096)");
        }
        if self.queue_capacity == Some(0) {
            return invalid(
                "queue_capacity",
                "must be at least 1 (leave it unset for an unbounded queue)",
            );
        }
        if self.history.is_some_and(|h| h > MAX_HISTORY) {
            return invalid("history", "must be at most MAX_HISTORY (1,048,576)");
        }
        if self.stack_size.is_some_and(|s| s < MIN_STACK_SIZE) {
            return invalid("stack_size", "must be at least MIN_STACK_SIZE (64 KiB)");
        }
        let max_workers = self.max_workers.unwrap_or(workers.clamp(64, MAX_WORKERS));
        if max_workers < workers || max_workers > MAX_WORKERS {
            return invalid(
                "max_workers",
                "must be at least `workers` and at most MAX_WORKERS (4096)",
            );
        }
        Ok((workers, max_workers))
    }

    /// The name of every worker slot, from `thread_name`.
    fn names(&self, max_workers: usize) -> Result<Vec<String>, BuildError> {
        let invalid = |reason| BuildError::InvalidOption {
            option: "thread_name",
            reason,
        };
        let Some(f) = &self.thread_name else {
            return Ok((0..max_workers).map(|i| format!("workyard-{i}")).collect());
        };
        (0..max_workers)
            .map(|i| match crate::unwind::catch(|| f(i)) {
                Ok(name) if !name.contains('\0') => Ok(name),
                Ok(_) => Err(invalid("gave a name with a NUL byte")),
                Err(payload) => {
                    crate::unwind::drop_quietly(payload);
                    Err(invalid("panicked"))
                }
            })
            .collect()
    }

    /// Checks the options and starts the worker threads (and the
    /// dispatcher's control thread); returns once they run.
    pub fn build(self) -> Result<Dispatcher, BuildError> {
        let (workers, max_workers) = self.validate()?;
        let names = self.names(max_workers)?;
        let config = Config {
            max_workers,
            capacity: self.queue_capacity,
            history: self.history.unwrap_or(DEFAULT_HISTORY),
            stack_size: self.stack_size,
        };
        let pool = Arc::new(Pool::new(config));
        if let Err(e) = control::start(&pool, names, workers) {
            let _ = crate::dispatcher::shutdown_pool(&pool, None);
            return Err(BuildError::Spawn(e));
        }
        Ok(Dispatcher::from_pool(pool))
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
}

impl Default for Dispatcher {
    fn default() -> Self {
        Dispatcher::new()
    }
}

impl fmt::Debug for DispatcherBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DispatcherBuilder")
            .field("workers", &self.workers)
            .field("queue_capacity", &self.queue_capacity)
            .field(
                "thread_name",
                &self.thread_name.as_ref().map(|_| "<closure>"),
            )
            .field("stack_size", &self.stack_size)
            .field("history", &self.history)
            .field("max_workers", &self.max_workers)
            .finish()
    }
}
