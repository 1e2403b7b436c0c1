//! [`DispatcherBuilder`]: validated configuration, then worker start-up.

use crate::dispatcher::Dispatcher;
use crate::error::BuildError;
use crate::pool::{Config, Handlers, Pool};
use crate::unwind::PanicPayload;
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
/// // 0 means one worker per logical CPU, as with rayon's `num_threads(0)`.
/// let per_cpu = Dispatcher::builder().workers(0).build().unwrap();
/// assert_eq!(per_cpu.workers(), Dispatcher::new().workers());
///
/// let err = Dispatcher::builder().queue_capacity(0).build().unwrap_err();
/// assert!(matches!(err, BuildError::InvalidOption { option: "queue_capacity", .. }));
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
    handlers: Handlers,
}

impl DispatcherBuilder {
    /// A builder with the defaults: one worker per logical CPU, an
    /// unbounded queue, threads named `workyard-{index}`.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many worker threads to run (at most [`MAX_WORKERS`]; default,
    /// and `0`: the number of logical CPUs, as rayon's `num_threads(0)`).
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

    /// Called on the worker with the payload of a job's panic that nobody
    /// will ever see, instead of dropping it (rayon's `panic_handler`; rayon
    /// passes the bare `Box<dyn Any + Send>`, which is
    /// [`PanicPayload::into_inner`]). That is a job spawned with
    /// [`spawn`](Dispatcher::spawn) and its kin that panicked when:
    ///
    /// - its [`JobHandle`](crate::JobHandle) had been dropped before it
    ///   finished (a detached job, as every `rayon::spawn` job is); or
    /// - it had been asked to stop ([`cancel`](crate::JobHandle::cancel), a
    ///   deadline, a halt) while it ran: it ends `Cancelled` and its joiner
    ///   gets [`JobError::Cancelled`](crate::JobError::Cancelled).
    ///
    /// It is not called for a payload a handle can still take (a handle
    /// dropped after its job finished drops the payload unseen, as it
    /// drops any result), nor for the jobs of a [`scope`](Dispatcher::scope)
    /// and the halves of a [`join`](crate::join), whose panics reach their
    /// caller. It also gets the payloads of panics in
    /// [`start_handler`](Self::start_handler) and
    /// [`exit_handler`](Self::exit_handler).
    ///
    /// It runs before the job's status becomes final, so
    /// [`wait_idle`](Dispatcher::wait_idle) returns after it. A panic in the
    /// handler itself is caught and its payload dropped; the worker goes on.
    /// Without a handler such payloads are dropped.
    ///
    /// ```
    /// use std::sync::mpsc;
    ///
    /// let (tx, rx) = mpsc::channel();
    /// let tx = std::sync::Mutex::new(tx);
    /// let pool = workyard::Dispatcher::builder()
    ///     .workers(2)
    ///     .panic_handler(move |payload| {
    ///         let message = payload.message().unwrap_or("?").to_string();
    ///         tx.lock().unwrap().send(message).unwrap();
    ///     })
    ///     .build()
    ///     .unwrap();
    /// drop(pool.spawn(|| -> () { panic!("nobody joins me") }).unwrap());
    /// assert_eq!(rx.recv().unwrap(), "nobody joins me");
    /// ```
    pub fn panic_handler(mut self, f: impl Fn(PanicPayload) + Send + Sync + 'static) -> Self {
        self.handlers.panic = Some(Arc::new(f));
        self
    }

    /// Called on each worker thread as it starts, with its index (rayon's
    /// `start_handler`): at [`build`](Self::build), and for the workers
    /// [`set_workers`](Dispatcher::set_workers) starts later. `build`, and
    /// a `set_workers` called from outside the pool, return once the new
    /// workers' handlers have returned, so the handler must not wait for
    /// them to return.
    ///
    /// It runs as part of the worker: a spawn, a join or a `wait_idle` in
    /// it runs other jobs while it waits, and orders it gives (pause,
    /// `set_workers`, `shutdown`...) are queued as from any job, never
    /// waited for. A panic in it is caught and its payload goes to the
    /// [`panic_handler`](Self::panic_handler) (or is dropped); the worker
    /// then starts as usual.
    ///
    /// ```
    /// use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    /// use std::sync::Arc;
    ///
    /// let started = Arc::new(AtomicUsize::new(0));
    /// let count = Arc::clone(&started);
    /// let pool = workyard::Dispatcher::builder()
    ///     .workers(3)
    ///     .start_handler(move |_index| {
    ///         count.fetch_add(1, SeqCst);
    ///     })
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(started.load(SeqCst), 3);
    /// ```
    ///
    /// Pinning each worker to a CPU of its own. On a virtual machine the
    /// kernel sometimes wakes a second worker onto the CPU where the first
    /// one runs, and it waits there for milliseconds while another CPU
    /// idles (BENCHMARKS.md); pinned, it cannot. On Linux, with `libc`:
    ///
    /// ```
    /// # #[cfg(target_os = "linux")] {
    /// let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    /// let pool = workyard::Dispatcher::builder()
    ///     .workers(2)
    ///     .start_handler(move |index| {
    ///         // SAFETY: a zeroed `cpu_set_t` is an empty set, filled in
    ///         // before the call, which only reads it.
    ///         let rc = unsafe {
    ///             let mut set: libc::cpu_set_t = std::mem::zeroed();
    ///             libc::CPU_SET(index % cpus, &mut set);
    ///             libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set)
    ///         };
    ///         // Refused where that CPU is not ours to use: run unpinned.
    ///         let _ = rc;
    ///     })
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(pool.join(|| 1, || 2), (1, 2));
    /// # }
    /// ```
    pub fn start_handler(mut self, f: impl Fn(usize) + Send + Sync + 'static) -> Self {
        self.handlers.start = Some(Arc::new(f));
        self
    }

    /// Called on each worker thread as it exits, with its index (rayon's
    /// `exit_handler`): at the shutdown or a halt, and for a worker stopped
    /// by [`halt_worker`](Dispatcher::halt_worker) or
    /// [`set_workers`](Dispatcher::set_workers), after its last job. The
    /// shutdown returns once every handler has returned (it joins the
    /// threads); `halt_worker` and `set_workers` do not wait for it.
    ///
    /// It runs after the worker has left its loop: it runs no other job,
    /// and a join in it waits for the other workers (a spawn into a closed
    /// pool is refused). A panic in it is caught and its payload goes to
    /// the [`panic_handler`](Self::panic_handler) (or is dropped); the
    /// thread then exits as usual.
    ///
    /// ```
    /// use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    /// use std::sync::Arc;
    ///
    /// let exited = Arc::new(AtomicUsize::new(0));
    /// let count = Arc::clone(&exited);
    /// let pool = workyard::Dispatcher::builder()
    ///     .workers(3)
    ///     .exit_handler(move |_index| {
    ///         count.fetch_add(1, SeqCst);
    ///     })
    ///     .build()
    ///     .unwrap();
    /// pool.shutdown();
    /// assert_eq!(exited.load(SeqCst), 3);
    /// ```
    pub fn exit_handler(mut self, f: impl Fn(usize) + Send + Sync + 'static) -> Self {
        self.handlers.exit = Some(Arc::new(f));
        self
    }

    fn validate(&self) -> Result<(usize, usize), BuildError> {
        let invalid = |option, reason| Err(BuildError::InvalidOption { option, reason });
        let workers = match self.workers {
            None | Some(0) => num_cpus::get(),
            Some(n) => n,
        };
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
    /// dispatcher's control thread); returns once they run (and their
    /// [`start_handler`](Self::start_handler) returned).
    pub fn build(self) -> Result<Dispatcher, BuildError> {
        let (workers, max_workers) = self.validate()?;
        let names = self.names(max_workers)?;
        let config = Config {
            max_workers,
            capacity: self.queue_capacity,
            history: self.history.unwrap_or(DEFAULT_HISTORY),
            stack_size: self.stack_size,
            handlers: self.handlers,
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
            .field("thread_name", &closure(&self.thread_name))
            .field("stack_size", &self.stack_size)
            .field("history", &self.history)
            .field("max_workers", &self.max_workers)
            .field("panic_handler", &closure(&self.handlers.panic))
            .field("start_handler", &closure(&self.handlers.start))
            .field("exit_handler", &closure(&self.handlers.exit))
            .finish()
    }
}

/// How `Debug` shows an optional closure, as rayon's builder does.
fn closure<T>(f: &Option<T>) -> Option<&'static str> {
    f.as_ref().map(|_| "<closure>")
}
