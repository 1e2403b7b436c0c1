//! The global dispatcher, and the free functions that run on the current
//! pool: [`join`], [`scope`], [`spawn`], [`spawn_detached`],
//! [`current_num_threads`] and [`current_thread_index`].
//!
//! The current pool is, inside a job (and inside
//! [`Dispatcher::install`]), the pool of the worker running it; on any
//! other thread, the global dispatcher. Its life:
//!
//! 1. **Built once per process**, on the first free-function call made
//!    outside any pool, with the default configuration, or before that by
//!    [`DispatcherBuilder::build_global`] with the caller's. Racing first
//!    uses build one pool: the build is made under `INIT`.
//! 2. **Used without a lock**: once set, reaching it is one load of a
//!    `OnceLock`.
//! 3. **Ended by [`shutdown_global`]**, a graceful shutdown that joins its
//!    threads (rayon's global pool can never be stopped). It stays ended
//!    for the rest of the process, so that no thread comes back after the
//!    caller asked for them all to go. Free functions called outside any
//!    pool afterwards behave as on a shut-down [`Dispatcher`]: `join` runs
//!    both halves on the caller, `scope` runs its body on the caller and
//!    refuses its spawns, `spawn` is refused (the job comes back), and
//!    [`current_num_threads`] is 1. They never hang and never panic on
//!    that account.
//!
//! The static is never dropped, so without `shutdown_global` the threads
//! simply end with the process, as rayon's do.
//!
//! The free functions never hand a job a [`Dispatcher`]: inside a job they
//! reach the pool through the worker's own `Arc<Pool>`, which does not
//! own the pool. So nothing they do can keep a pool running after its
//! last `Dispatcher` is dropped, and no `Dispatcher` is ever dropped on a
//! worker on their account.

use crate::builder::DispatcherBuilder;
use crate::dispatcher::{self, Dispatcher};
use crate::error::{BuildError, SpawnError, TrySpawnError};
use crate::handle::JobHandle;
use crate::job::{Job, JobId};
use crate::join::{join_cold, join_on_worker, join_sequential};
use crate::pool::{Config, Pool};
use crate::scope::{scope_on, Scope};
use crate::signal::lock;
use crate::worker;
use crate::Arc;
use std::cell::Cell;
use std::sync::{Mutex, OnceLock};

/// The global dispatcher: unset until first use (or `build_global`);
/// `None` if `shutdown_global` came before any use.
static GLOBAL: OnceLock<Option<Dispatcher>> = OnceLock::new();

/// Held while `GLOBAL` is being set, so that racing first uses build one
/// pool (and `build_global` and a first use do not both build).
static INIT: Mutex<()> = Mutex::new(());

thread_local! {
    /// This thread is building the global dispatcher. A free function
    /// called meanwhile (from a `thread_name` closure) finds no global
    /// dispatcher instead of waiting for `INIT`, which this thread holds.
    static BUILDING: Cell<bool> = const { Cell::new(false) };
}

/// Marks this thread as `BUILDING` until dropped, also if the build
/// unwinds: the flag must not outlive it, or this thread would never see
/// the global dispatcher.
struct Building;

impl Building {
    fn enter() -> Building {
        BUILDING.with(|b| b.set(true));
        Building
    }
}

impl Drop for Building {
    fn drop(&mut self) {
        BUILDING.with(|b| b.set(false));
    }
}

/// Sets `GLOBAL` to what `make` gives, unless it is set already (then
/// `Err(None)`) or `make` fails (`Err(Some(error))`, and it stays unset).
fn initialize(
    make: impl FnOnce() -> Result<Option<Dispatcher>, BuildError>,
) -> Result<(), Option<BuildError>> {
    if BUILDING.with(Cell::get) {
        return Err(None);
    }
    let _init = lock(&INIT);
    if GLOBAL.get().is_some() {
        return Err(None);
    }
    let made = {
        let _building = Building::enter();
        make()
    };
    let set = GLOBAL.set(made.map_err(Some)?);
    debug_assert!(set.is_ok(), "only set under INIT");
    Ok(())
}

/// The global dispatcher, built with the defaults if this is its first
/// use; `None` if it was ended before any use, or could not be built (a
/// later call tries again).
fn global() -> Option<&'static Dispatcher> {
    if let Some(global) = GLOBAL.get() {
        return global.as_ref();
    }
    let _ = initialize(|| DispatcherBuilder::new().build().map(Some));
    GLOBAL.get().and_then(Option::as_ref)
}

impl DispatcherBuilder {
    /// Builds the global dispatcher, the one that the free functions
    /// ([`join`](crate::join), [`scope`](crate::scope),
    /// [`spawn`](crate::spawn)) use outside any pool, with this
    /// configuration (rayon's `ThreadPoolBuilder::build_global`). Without
    /// it, the first such call builds one with the defaults.
    ///
    /// # Errors
    ///
    /// [`BuildError::GlobalPoolAlreadyInitialized`] if the global
    /// dispatcher was built already (by an earlier `build_global` or a
    /// first use) or ended by [`shutdown_global`](crate::shutdown_global);
    /// otherwise the errors of [`build`](Self::build).
    ///
    /// ```
    /// use workyard::{BuildError, Dispatcher};
    ///
    /// Dispatcher::builder().workers(3).build_global()?;
    /// assert_eq!(workyard::current_num_threads(), 3);
    ///
    /// let again = Dispatcher::builder().workers(5).build_global().unwrap_err();
    /// assert!(matches!(again, BuildError::GlobalPoolAlreadyInitialized));
    /// workyard::shutdown_global();
    /// # Ok::<(), BuildError>(())
    /// ```
    pub fn build_global(self) -> Result<(), BuildError> {
        initialize(|| self.build().map(Some))
            .map_err(|e| e.unwrap_or(BuildError::GlobalPoolAlreadyInitialized))
    }
}

/// Shuts the global dispatcher down, gracefully: every job it accepted
/// runs, then its threads are joined (unlike rayon's global pool, which
/// never stops). Call it at the end of `main` to leave no thread behind.
///
/// The global dispatcher stays ended for the rest of the process; a
/// [`build_global`](DispatcherBuilder::build_global) afterwards fails.
/// Outside any pool, the free functions then behave as on a shut-down
/// [`Dispatcher`]: [`join`] runs both halves on the caller, [`scope`] runs
/// its body on the caller and refuses its spawns, [`spawn`] is refused
/// (the job comes back), and [`current_num_threads`] is 1. Inside a job of
/// another dispatcher they go on using that one.
///
/// Calling it again, or from several threads, is fine. Called before any
/// use, it builds nothing. Called from inside a job of the global
/// dispatcher it cannot wait for that job: it refuses new jobs and
/// returns, as [`Dispatcher::shutdown_background`] does.
///
/// ```
/// let (a, b) = workyard::join(|| 1 + 1, || 2 + 2);
/// assert_eq!((a, b), (2, 4));
/// workyard::shutdown_global();
/// // Afterwards, outside any pool: on the caller.
/// let me = std::thread::current().id();
/// assert_eq!(workyard::join(|| std::thread::current().id(), || 0).0, me);
/// assert!(workyard::spawn(|| 1).is_err());
/// ```
pub fn shutdown_global() {
    let _ = initialize(|| Ok(None));
    if let Some(Some(global)) = GLOBAL.get() {
        global.shutdown();
    }
}

/// Runs `a` and `b`, potentially in parallel, and returns both results
/// (rayon's `join`).
///
/// Inside a job (on a worker thread of any [`Dispatcher`]), `a` runs on
/// the current thread, then `b`, both as plain calls, unless an idle peer
/// asked for work meanwhile: then the oldest `b` pending on this thread
/// goes on the worker's deque, where that peer steals it (if nobody did by
/// the time its `a` returns, it runs inline all the same). So a `join` at
/// every level of a recursion costs little more than the calls, and needs
/// no sequential cutoff. Nothing is allocated: `b` stays in this call's
/// stack frame.
/// While it waits for a stolen `b`, the thread runs other jobs, so nesting
/// `join` to any depth never deadlocks, even on one worker.
///
/// **Outside any pool** (on a thread of your own, `main` included) the
/// pair runs on the global dispatcher as by [`Dispatcher::join`], so it is
/// parallel there too, while the caller blocks. After
/// [`shutdown_global`], it runs `a` and then `b` on the calling thread,
/// with the same results and panic rules. Use [`Dispatcher::join`] to run
/// a pair on a given pool from anywhere.
///
/// # Panics
///
/// If `a` or `b` panics, the other still runs to completion, then the
/// panic resumes here; if both panic, `a`'s panic is the one that
/// resumes. The worker thread itself survives.
///
/// ```
/// fn fib(n: u64) -> u64 {
///     if n < 12 {
///         return (1..=n).fold((0, 1), |(a, b), _| (b, a + b)).0;
///     }
///     let (a, b) = workyard::join(|| fib(n - 1), || fib(n - 2));
///     a + b
/// }
///
/// let pool = workyard::Dispatcher::builder().workers(2).build().unwrap();
/// let handle = pool.spawn(|| fib(25)).unwrap();
/// assert_eq!(handle.join().unwrap(), 75_025);
/// assert_eq!(fib(20), 6_765); // outside any pool: on the global dispatcher
/// ```
///
/// Both closures must be `Send`, since either may run on another thread:
///
/// ```compile_fail,E0277
/// let shared = std::rc::Rc::new(1);
/// workyard::join(|| *shared + 1, || 2);
/// ```
#[inline]
pub fn join<A, B, RA, RB>(a: A, b: B) -> (RA, RB)
where
    A: FnOnce() -> RA + Send,
    B: FnOnce() -> RB + Send,
    RA: Send,
    RB: Send,
{
    join_on_worker(a, b).unwrap_or_else(|(a, b)| match global() {
        Some(global) => join_cold(global.pool(), a, b),
        None => join_sequential(a, b),
    })
}

/// Runs `f` with a [`Scope`] on the current pool (rayon's `scope`), and
/// returns once every job spawned in it has finished; see
/// [`Dispatcher::scope`].
///
/// Inside a job, the scope's jobs go to that job's pool, and `f` runs
/// right there. Outside any pool, `f` runs on a worker of the global
/// dispatcher (through [`Dispatcher::install`]: hence `Send`) while the
/// caller blocks, so that `join`s and scopes inside it are parallel.
/// After [`shutdown_global`], `f` runs on the caller and its spawns are
/// refused, each giving its closure back.
///
/// # Panics
///
/// As [`Dispatcher::scope`]: after every scoped job is done, with `f`'s
/// panic, or else with the first panic that no handle's `join` received.
///
/// ```
/// let mut halves = [vec![4, 1, 3], vec![9, 7, 8]];
/// let [left, right] = &mut halves;
/// workyard::scope(|s| {
///     s.spawn(|| left.sort()).unwrap();
///     s.spawn(|| right.sort()).unwrap();
/// });
/// assert_eq!(halves, [vec![1, 3, 4], vec![7, 8, 9]]);
/// ```
pub fn scope<'env, F, R>(f: F) -> R
where
    F: for<'scope> FnOnce(&'scope Scope<'scope, 'env>) -> R + Send,
    R: Send,
{
    let outside = worker::with_current(|ctx| match ctx {
        Some(ctx) => Ok(scope_on(&ctx.pool, f)),
        None => Err(f),
    });
    outside.unwrap_or_else(|f| match global() {
        // Once shut down, `install` runs this on the caller: the scope
        // is still on the global pool, which refuses its spawns.
        Some(global) => global.install(|| scope_on(global.pool(), f)),
        None => scope_on(&refusing_pool(), f),
    })
}

/// Queues a job on the current pool and returns its handle: inside a job,
/// that job's pool (on the worker's own deque, as
/// [`Dispatcher::spawn`] from inside a job); outside any pool, the global
/// dispatcher. No [`Dispatcher`] is needed, and none is kept: the job
/// does not keep its pool running.
///
/// # Errors
///
/// [`SpawnError`], with the job inside, if that pool is shut down (for the
/// global dispatcher: after [`shutdown_global`]). A bounded queue that is
/// full makes it block, as [`Dispatcher::spawn`].
///
/// ```
/// let pool = workyard::Dispatcher::builder().workers(2).build().unwrap();
/// let outer = pool.spawn(|| {
///     // Onto the same pool, without a `Dispatcher` in the closure.
///     let inner = workyard::spawn(|| workyard::current_num_threads()).unwrap();
///     inner.join().unwrap()
/// });
/// assert_eq!(outer.unwrap().join().unwrap(), 2);
///
/// // Outside any pool: the global dispatcher.
/// let handle = workyard::spawn(|| 6 * 7).unwrap();
/// assert_eq!(handle.join().unwrap(), 42);
/// ```
pub fn spawn<J: Job>(job: J) -> Result<JobHandle<J::Output, J::Error>, SpawnError<J>> {
    on_current_pool(
        job,
        |pool, job| dispatcher::submit(pool, job, true, None),
        Dispatcher::spawn,
    )
}

/// Submits `job` with `inside` to the current job's pool, or, outside any
/// pool, with `outside` to the global dispatcher: the free spawns' route.
fn on_current_pool<J: Job, T>(
    job: J,
    inside: impl FnOnce(&Arc<Pool>, J) -> Result<T, TrySpawnError<J>>,
    outside: impl FnOnce(&Dispatcher, J) -> Result<T, SpawnError<J>>,
) -> Result<T, SpawnError<J>> {
    let current = worker::with_current(|ctx| match ctx {
        Some(ctx) => Ok(inside(&ctx.pool, job)),
        None => Err(job),
    });
    let submitted = match current {
        Ok(submitted) => submitted,
        Err(job) => match global() {
            Some(global) => return outside(global, job),
            None => return Err(SpawnError::new(job)),
        },
    };
    submitted.map_err(|e| SpawnError::new(e.into_inner()))
}

/// [`spawn`] without a handle, as `rayon::spawn`: queues a job on the
/// current pool (inside a job, that job's pool, on the worker's own deque;
/// outside any pool, the global dispatcher) and returns its id. See
/// [`Dispatcher::spawn_detached`].
///
/// # Errors
///
/// As [`spawn`]: [`SpawnError`], with the job inside, if that pool is shut
/// down.
///
/// ```
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use std::sync::Arc;
///
/// // A chain: each job spawns the next, on the pool that runs it.
/// fn link(left: u64, sum: Arc<AtomicU64>) {
///     sum.fetch_add(left, Ordering::Relaxed);
///     if left > 0 {
///         workyard::spawn_detached(move || link(left - 1, sum)).unwrap();
///     }
/// }
/// let pool = workyard::Dispatcher::builder().workers(2).build().unwrap();
/// let sum = Arc::new(AtomicU64::new(0));
/// let counted = Arc::clone(&sum);
/// pool.spawn_detached(move || link(100, counted)).unwrap();
/// pool.wait_idle();
/// assert_eq!(sum.load(Ordering::Relaxed), 5050);
/// ```
pub fn spawn_detached<J: Job>(job: J) -> Result<JobId, SpawnError<J>> {
    on_current_pool(
        job,
        |pool, job| dispatcher::submit_detached(pool, job, true),
        Dispatcher::spawn_detached,
    )
}

/// The number of worker threads of the current pool (rayon's name):
/// inside a job, that job's dispatcher's [`workers`](Dispatcher::workers);
/// outside any pool, the global dispatcher's (built if this is its first
/// use), or 1 after [`shutdown_global`] (work then runs on the caller).
///
/// ```
/// let pool = workyard::Dispatcher::builder().workers(3).build().unwrap();
/// assert_eq!(pool.install(workyard::current_num_threads), 3);
/// ```
pub fn current_num_threads() -> usize {
    let inside = worker::with_current(|ctx| ctx.map(|ctx| ctx.pool.running_workers()));
    inside.unwrap_or_else(|| match global() {
        Some(global) if !global.is_shutdown() => global.workers().max(1),
        _ => 1,
    })
}

/// The index of the worker running the current job (rayon's name), as
/// [`Dispatcher::halt_worker`] and [`Stats`](crate::Stats) number them;
/// `None` outside any pool's worker.
///
/// ```
/// let pool = workyard::Dispatcher::builder().workers(4).build().unwrap();
/// let index = pool.spawn(workyard::current_thread_index).unwrap().join().unwrap();
/// assert!(index.is_some_and(|i| i < 4));
/// assert_eq!(workyard::current_thread_index(), None);
/// ```
pub fn current_thread_index() -> Option<usize> {
    worker::with_current(|ctx| ctx.map(|ctx| ctx.index))
}

/// A pool with no threads that refuses every job: where `scope` finds no
/// global dispatcher (ended before its first use, or not buildable), its
/// body still gets a `Scope`, whose spawns are refused.
#[cold]
fn refusing_pool() -> Arc<Pool> {
    let pool = Pool::new(Config {
        max_workers: 1,
        capacity: None,
        history: 0,
        stack_size: None,
        handlers: Default::default(),
    });
    pool.close();
    Arc::new(pool)
}
