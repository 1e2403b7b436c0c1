//! Scoped jobs: [`Dispatcher::scope`] runs jobs that borrow from the
//! caller's stack, all finished before it returns.
//!
//! A scoped job is a real job: it is admitted like any other, gets an id
//! and a status record in the index, and its [`ScopedHandle`] offers
//! `id`/`status`/`info`/`cancel`/`join`. What differs is its cell
//! ([`ScopedCell`]): the closure and result may borrow for `'scope`, so
//! the cell's lifetime is erased when it enters the queues and the index
//! (which are `'static`), and the scope makes that sound by not returning
//! before every piece of `'scope` data in every cell is gone:
//!
//! 1. The scope counts its unfinished jobs (plus one for its own body).
//!    A cell counts itself out as the very last step of running or
//!    cancelling, after its closure is consumed or dropped and its result
//!    is stored or dropped; the last one out sets the scope's [`Latch`].
//! 2. When the body has returned and the count is zero, the scope drains
//!    every cell (it keeps a list of them): a result that nobody joined,
//!    because its handle was leaked, is dropped here, inside the scope.
//!    Such a result's destructor may hold the `Scope` and spawn; a spawn
//!    that finds the count at zero is refused, so no job starts after the
//!    count reached zero.
//!
//! After that a cell holds only its status record, so the index may keep
//! it (and drop it) as long as it likes. A panic in a scoped job that
//! nobody joined resumes in the caller of `scope` once everything is done.

use crate::dispatcher;
use crate::error::{JobError, SpawnError};
use crate::handle::JobHandle;
use crate::job::cell::{self, CurrentGuard, Header, JobRef};
use crate::job::raw::{self, Record, Tally};
use crate::job::state::{self, Cancel};
use crate::job::{JobId, JobInfo, JobStatus};
use crate::join::{AbortOnUnwind, Latch};
use crate::loom::{AtomicUsize, Mutex, UnsafeCell};
use crate::pool::Pool;
use crate::signal::lock;
use crate::unwind::{self, PanicPayload};
use crate::{time, Arc, Dispatcher};
use crossbeam_deque::{Injector, Steal};
use std::any::Any;
use std::convert::Infallible;
use std::fmt;
use std::marker::PhantomData;
use std::panic::resume_unwind;
use std::sync::atomic::Ordering::{AcqRel, Relaxed};
use std::time::Duration;

type Panic = Box<dyn Any + Send>;

/// A scope's bookkeeping, in the `scope` call's stack frame.
struct ScopeState {
    /// Scoped jobs not yet done, plus one for the body while it runs.
    pending: AtomicUsize,
    /// Set by whoever brings `pending` to zero.
    done: Latch,
    /// The first panic of a scoped job that nobody joined.
    panic: Mutex<Option<Panic>>,
    /// Every cell spawned in the scope, drained at the end. A `JobRef`
    /// erases their `'scope` (see `Scope::spawn`): a `Scope` holding
    /// `'scope` types with drop glue could not be lent out for `'scope`.
    members: Injector<JobRef>,
}

impl ScopeState {
    /// Keeps the first unjoined panic; drops later ones.
    fn record_panic(&self, payload: Panic) {
        let mut slot = lock(&self.panic);
        if slot.is_none() {
            *slot = Some(payload);
            return;
        }
        drop(slot);
        unwind::drop_quietly(payload);
    }

    /// Counts one job (or the body) out; the last one sets the latch.
    ///
    /// # Safety
    ///
    /// `this` is alive, and the caller holds one unit of `pending`, which
    /// it gives up here: it must not touch the scope afterwards (the owner
    /// may return as soon as the count is zero). A raw pointer rather than
    /// `&self` for that reason.
    unsafe fn count_out(this: *const Self) {
        // SAFETY: our unit of `pending` keeps the owner waiting, so the
        // state is alive until the decrement below, and the latch until
        // it is set.
        let state = unsafe { &*this };
        // ORDERING: AcqRel: Release hands this job's writes (to borrowed
        // data, to its result slot) over to the owner; Acquire lets the last
        // decrement see every earlier one's, before it sets the latch.
        if state.pending.fetch_sub(1, AcqRel) == 1 {
            // SAFETY: we brought the count to zero, so this is the latch's
            // only `set`, and the owner waits for it before freeing it.
            unsafe { Latch::set(&state.done) };
        }
    }
}

/// The single allocation of a scoped job, like `JobCell` but generic over
/// a closure that may borrow for `'scope`. `#[repr(C)]` with the header
/// first, as `JobCell` (see `raw.rs`).
#[repr(C)]
struct ScopedCell<'scope, F, T> {
    header: Header,
    /// `Some` until a worker takes it to run it or a canceller drops it;
    /// whoever wins the QUEUED → RUNNING/CANCELLED transition owns it.
    job: UnsafeCell<Option<F>>,
    /// Written once by the worker before `finish`; read once by whoever
    /// clears `OUTPUT` (the handle, or the scope's drain).
    output: UnsafeCell<Option<Result<T, JobError>>>,
    /// The scope's state; valid while this job holds its unit of the
    /// scope's count, and while the scope drains (see the module docs).
    scope: *const ScopeState,
    _scope: PhantomData<&'scope ()>,
}

// SAFETY: `job` and `output` are each accessed by one thread at a time, as
// arbitrated by the status word (exactly as in `JobCell`); `F` and `T` are
// `Send`; `scope` points at a `Sync` state used only through `&`.
unsafe impl<F: Send, T: Send> Send for ScopedCell<'_, F, T> {}
// SAFETY: as for `Send`.
unsafe impl<F: Send, T: Send> Sync for ScopedCell<'_, F, T> {}

impl<'scope, F, T> ScopedCell<'scope, F, T>
where
    F: FnOnce() -> T + Send + 'scope,
    T: Send + 'scope,
{
    fn scope(&self) -> &ScopeState {
        // SAFETY: called only while this job holds its unit of the count
        // (running, cancelling) or while its handle lives (`release`),
        // or from the scope's drain: all before the scope returns.
        unsafe { &*self.scope }
    }

    /// Drops an outcome nobody will read; a panic goes to the scope.
    fn dispose(&self, outcome: Option<Result<T, JobError>>) {
        match outcome {
            Some(Err(JobError::Panicked(payload))) => {
                self.scope().record_panic(payload.into_inner());
            }
            other => unwind::drop_quietly(other),
        }
    }

    /// Drops the closure of a job cancelled while queued, then counts the
    /// job out of the scope: its last step, as for a job that ran.
    ///
    /// # Safety
    ///
    /// The caller owns the closure: it won QUEUED → CANCELLED without
    /// `DEFERRED`, or it is the popper of a job cancelled with it.
    unsafe fn drop_closure(&self) {
        // SAFETY: the caller's contract.
        let job = self.job.with_mut(|p| unsafe { (*p).take() });
        unwind::drop_quietly(job);
        // SAFETY: the job never ran, so it still held its unit of the
        // scope's count, which we give up; nothing touches the scope
        // afterwards.
        unsafe { ScopeState::count_out(self.scope) };
    }

    /// Takes the result slot; the caller cleared `OUTPUT` (or never set it).
    fn take_output(&self) -> Option<Result<T, JobError>> {
        // SAFETY: whoever clears OUTPUT (or, before it was published, the
        // worker) owns the slot.
        self.output.with_mut(|p| unsafe { (*p).take() })
    }
}

// SAFETY: `repr(C)`, header first.
unsafe impl<'scope, F, T> Record for ScopedCell<'scope, F, T>
where
    F: FnOnce() -> T + Send + 'scope,
    T: Send + 'scope,
{
    type Output = T;
    type Error = Infallible;

    fn run(&self, _worker: usize, tally: &dyn Tally) -> usize {
        // `claim` stored the worker and start time before RUNNING.
        // SAFETY: the caller won QUEUED → RUNNING, which happens once; a
        // canceller touches `job` only after winning QUEUED → CANCELLED.
        let job = self.job.with_mut(|p| unsafe { (*p).take() });
        let job = job.expect("a started job still holds its closure");

        let result = {
            let _current = CurrentGuard::enter(&self.header);
            unwind::catch(job)
        };
        let (outcome_state, outcome) = match result {
            Ok(value) => (state::SUCCEEDED, Ok(value)),
            Err(payload) => (
                state::PANICKED,
                Err(JobError::Panicked(PanicPayload::new(payload))),
            ),
        };

        // An unread panic goes to the scope (also when a stop was
        // requested: a panic is a bug, and a cancellation must not hide it).
        let end = cell::complete(
            &self.header,
            &self.output,
            outcome_state,
            outcome,
            |o| self.dispose(o),
            tally,
        );
        // SAFETY: we hold one unit of the scope's count (taken in `spawn`)
        // and use neither the scope nor `'scope` data after this.
        unsafe { ScopeState::count_out(self.scope) };
        end
    }

    fn cancel(&self, flags: usize, running: bool, won: &mut dyn FnMut()) -> Cancel {
        let result = self.header.state.cancel(flags, running);
        if let Cancel::WasQueued(prev) = result {
            won();
            // ORDERING: Relaxed, as in `JobCell::cancel`: stored after the
            // terminal transition, so a racing `info()` may briefly show no
            // finish time, never a wrong one.
            self.header.finished_at.store(time::now(), Relaxed);
            self.header.wake_waiter(prev);
            if flags & state::DEFERRED == 0 {
                // SAFETY: we won QUEUED → CANCELLED without DEFERRED: the
                // closure is ours (see `JobCell::cancel`).
                unsafe { self.drop_closure() };
            }
        }
        result
    }

    fn discard(&self) {
        // SAFETY: a DEFERRED cancel left the closure to the popper, and the
        // popper's failed claim makes it its only user.
        unsafe { self.drop_closure() };
    }

    fn take_result(&self) -> Result<T, JobError> {
        let word = self.header.state.load();
        debug_assert!(word.is_terminal());
        if word.state() == state::CANCELLED {
            return Err(JobError::Cancelled(
                crate::job::CancelReason::from_snapshot(word),
            ));
        }
        assert!(
            self.header.state.take_output(),
            "a job's result was taken twice"
        );
        self.take_output()
            .expect("OUTPUT was set, so the slot is full")
    }

    fn release(&self) {
        let prev = self.header.state.drop_handle();
        if prev.is_terminal() && prev.has(state::OUTPUT) && self.header.state.take_output() {
            // We cleared OUTPUT: the result is ours, and nobody joined it.
            self.dispose(self.take_output());
        }
    }

    /// Drops a result that is still stored because its handle was leaked
    /// (an unjoined panic goes to the scope instead).
    fn drain(&self) {
        if self.header.state.take_output() {
            self.dispose(self.take_output());
        }
    }
}

/// A scope in which jobs may borrow anything that outlives it; see
/// [`Dispatcher::scope`].
///
/// ```
/// let pool = workyard::Dispatcher::builder().workers(2).build().unwrap();
/// let mut left = vec![3, 1, 2];
/// let mut right = vec![6, 5, 4];
/// pool.scope(|s| {
///     s.spawn(|| left.sort()).unwrap();
///     s.spawn(|| right.sort()).unwrap();
/// });
/// assert_eq!((left, right), (vec![1, 2, 3], vec![4, 5, 6]));
/// ```
///
/// `'scope` is the scope itself, `'env` what its jobs borrow; as with
/// [`std::thread::Scope`], the two lifetimes let the compiler check that
/// neither a job nor its handle outlives the scope. A handle cannot
/// escape:
///
/// ```compile_fail,E0521
/// let pool = workyard::Dispatcher::builder().workers(1).build().unwrap();
/// let escaped = pool.scope(|s| s.spawn(|| 1).unwrap());
/// ```
///
/// and a job cannot borrow what dies before the scope ends:
///
/// ```compile_fail,E0373
/// let pool = workyard::Dispatcher::builder().workers(1).build().unwrap();
/// pool.scope(|s| {
///     let local = vec![1, 2, 3];
///     s.spawn(|| local.len()).unwrap();
/// });
/// ```
pub struct Scope<'scope, 'env: 'scope> {
    pool: Arc<Pool>,
    state: ScopeState,
    /// Invariant in `'scope` and `'env`, as `std::thread::Scope` is.
    scope: PhantomData<&'scope mut &'scope ()>,
    env: PhantomData<&'env mut &'env ()>,
}

impl<'scope, 'env> Scope<'scope, 'env> {
    /// Queues a job that may borrow from outside the scope, and returns
    /// its handle. The job gets an id and a status record like any other
    /// ([`Dispatcher::status`] finds it, also after the scope), and counts
    /// towards the dispatcher's pending jobs, queue bound and stats.
    ///
    /// Called from one of the dispatcher's jobs (also from a scoped job),
    /// the job goes to the running worker's deque; from anywhere else, to
    /// the calling thread's queue (or the global one), as `spawn`. Like [`Dispatcher::spawn`] it blocks while a
    /// bounded queue is full, and fails once the dispatcher is shut down,
    /// giving the closure back. It also fails when called after every
    /// scoped job has finished, from the destructor of a result that the
    /// scope drops as it ends (one whose handle was leaked): a job spawned
    /// then would outlive the scope.
    ///
    /// ```
    /// let pool = workyard::Dispatcher::builder().workers(2).build().unwrap();
    /// let words = vec!["fork", "join", "scope"];
    /// let total = pool.scope(|s| {
    ///     let handles: Vec<_> = words
    ///         .iter()
    ///         .map(|w| s.spawn(move || w.len()).unwrap())
    ///         .collect();
    ///     handles.into_iter().map(|h| h.join().unwrap()).sum::<usize>()
    /// });
    /// assert_eq!(total, 13);
    /// ```
    pub fn spawn<F, T>(&'scope self, f: F) -> Result<ScopedHandle<'scope, T>, SpawnError<F>>
    where
        F: FnOnce() -> T + Send + 'scope,
        T: Send + 'scope,
    {
        // A unit of the count for the new job, unless the count is zero:
        // then every job is done and the scope is dropping the results
        // that leaked handles left behind, and this call comes from such a
        // result's destructor. A job spawned now would outlive the scope.
        // Any other caller holds a unit of the count (the body's, or that
        // of the scoped job it runs in), so it never sees zero.
        //
        // ORDERING: Relaxed: the count only guards the scope's return, which
        // cannot happen while the caller holds its unit; the queue push
        // below publishes the job itself.
        let counted = self
            .state
            .pending
            .fetch_update(Relaxed, Relaxed, |n| (n != 0).then_some(n + 1));
        if counted.is_err() {
            return Err(SpawnError::new(f));
        }
        let pool = &self.pool;
        let admitted = match dispatcher::admit(pool, true) {
            Ok(admitted) => admitted,
            Err(_) => {
                // SAFETY: the unit taken just above, given back; the caller
                // holds another, so the count does not reach zero here.
                unsafe { ScopeState::count_out(&self.state) };
                return Err(SpawnError::new(f));
            }
        };
        let cell = ScopedCell::<'scope, F, T> {
            header: Header::new::<ScopedCell<'scope, F, T>>(JobId(admitted.id()), 0),
            job: UnsafeCell::new(Some(f)),
            output: UnsafeCell::new(None),
            scope: &self.state,
            _scope: PhantomData,
        };
        // Four references: the handle, the scope, the queue and the index.
        //
        // SAFETY: each `JobRef` erases `'scope` (the queues, the index and
        // the scope's list are `'static`). The queues and the index only
        // start, cancel or inspect the cell: it is started or cancelled
        // before the scope's count reaches zero, and after that (scope
        // drained) its `'scope` fields are empty, so later calls and the
        // final drop touch only the status record. The handle keeps `T`
        // and is wrapped in a `ScopedHandle<'scope, _>`, which cannot leave
        // the scope.
        let (typed, [member, job, indexed]) = unsafe { raw::allocate(cell) };
        self.state.members.push(member);
        let handle = JobHandle::from_typed(typed);
        dispatcher::publish(pool, admitted, [job, indexed], 0);
        Ok(ScopedHandle {
            inner: handle,
            scope: PhantomData,
        })
    }
}

impl fmt::Debug for Scope<'_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scope")
            // ORDERING: Relaxed: a diagnostic snapshot, nothing to publish.
            .field("unfinished", &self.state.pending.load(Relaxed))
            .finish_non_exhaustive()
    }
}

/// The handle of a scoped job: like [`JobHandle`], but it cannot outlive
/// its scope. Dropping it detaches the job (the scope still waits for it).
///
/// A panic that a handle's [`join`](Self::join) returns is handled; one
/// that nobody joined (the handle was dropped, or never joined) makes
/// [`Dispatcher::scope`] panic once every job is done.
///
/// ```
/// use workyard::{Dispatcher, JobStatus};
///
/// let pool = Dispatcher::builder().workers(2).build().unwrap();
/// let mut counts = [0u32; 2];
/// let id = pool.scope(|s| {
///     let (first, second) = counts.split_at_mut(1);
///     let a = s.spawn(|| first[0] += 1).unwrap();
///     let b = s.spawn(|| second[0] += 2).unwrap();
///     let id = a.id();
///     a.join().unwrap();
///     assert_eq!(b.join().unwrap(), ());
///     id
/// });
/// assert_eq!(counts, [1, 2]);
/// assert_eq!(pool.status(id), Some(JobStatus::Succeeded));
/// ```
pub struct ScopedHandle<'scope, T> {
    inner: JobHandle<T>,
    scope: PhantomData<&'scope ()>,
}

impl<'scope, T> ScopedHandle<'scope, T> {
    /// The job's id, under which [`Dispatcher::status`] and
    /// [`Dispatcher::info`] find it, also after the scope.
    ///
    /// ```
    /// let pool = workyard::Dispatcher::builder().workers(1).build().unwrap();
    /// let id = pool.scope(|s| s.spawn(|| 1).unwrap().id());
    /// assert_eq!(pool.status(id), Some(workyard::JobStatus::Succeeded));
    /// ```
    pub fn id(&self) -> JobId {
        self.inner.id()
    }

    /// The job's status now.
    ///
    /// ```
    /// use workyard::JobStatus;
    /// let pool = workyard::Dispatcher::builder().workers(1).build().unwrap();
    /// pool.pause();
    /// pool.scope(|s| {
    ///     let handle = s.spawn(|| 1).unwrap();
    ///     assert_eq!(handle.status(), JobStatus::Queued);
    ///     pool.resume();
    /// });
    /// ```
    pub fn status(&self) -> JobStatus {
        self.inner.status()
    }

    /// A snapshot of the job's status record.
    ///
    /// ```
    /// let pool = workyard::Dispatcher::builder().workers(1).build().unwrap();
    /// pool.scope(|s| {
    ///     let handle = s.spawn(|| 1).unwrap();
    ///     let id = handle.id();
    ///     assert_eq!(handle.info().id(), id);
    /// });
    /// ```
    pub fn info(&self) -> JobInfo {
        self.inner.info()
    }

    /// `true` once the job reached a terminal status; `join` then returns
    /// without blocking.
    ///
    /// ```
    /// let pool = workyard::Dispatcher::builder().workers(1).build().unwrap();
    /// pool.scope(|s| {
    ///     let handle = s.spawn(|| 1).unwrap();
    ///     while !handle.is_finished() {
    ///         std::thread::yield_now();
    ///     }
    ///     assert_eq!(handle.join().unwrap(), 1);
    /// });
    /// ```
    pub fn is_finished(&self) -> bool {
        self.inner.is_finished()
    }

    /// Cancels the job, as [`JobHandle::cancel`] does: a queued job never
    /// runs (its closure is dropped at once); a running one is asked to
    /// stop. Returns `false` if it had already finished or been cancelled.
    ///
    /// ```
    /// let pool = workyard::Dispatcher::builder().workers(1).build().unwrap();
    /// pool.pause();
    /// pool.scope(|s| {
    ///     let handle = s.spawn(|| 1).unwrap();
    ///     assert!(handle.cancel());
    ///     assert!(handle.join().unwrap_err().is_cancelled());
    /// });
    /// pool.resume();
    /// ```
    pub fn cancel(&self) -> bool {
        self.inner.cancel()
    }

    /// Waits for the job and returns its result (a panic comes back as
    /// [`JobError::Panicked`] and no longer reaches the scope). On a worker
    /// thread it runs other jobs while it waits.
    ///
    /// ```
    /// let pool = workyard::Dispatcher::builder().workers(1).build().unwrap();
    /// let message = pool.scope(|s| {
    ///     let handle = s.spawn(|| -> u8 { panic!("caught here") }).unwrap();
    ///     handle.join().unwrap_err().into_panic().unwrap().message().map(String::from)
    /// });
    /// assert_eq!(message.as_deref(), Some("caught here"));
    /// ```
    pub fn join(self) -> Result<T, JobError> {
        self.inner.join()
    }

    /// Like [`join`](Self::join), but gives up after `timeout`, returning
    /// the handle.
    ///
    /// ```
    /// use std::time::Duration;
    /// let pool = workyard::Dispatcher::builder().workers(1).build().unwrap();
    /// pool.scope(|s| {
    ///     let handle = s.spawn(|| 7).unwrap();
    ///     let result = match handle.join_timeout(Duration::from_secs(10)) {
    ///         Ok(result) => result,
    ///         Err(handle) => handle.join(),
    ///     };
    ///     assert_eq!(result.unwrap(), 7);
    /// });
    /// ```
    #[allow(clippy::type_complexity)]
    pub fn join_timeout(self, timeout: Duration) -> Result<Result<T, JobError>, Self> {
        self.inner
            .join_timeout(timeout)
            .map_err(|inner| ScopedHandle {
                inner,
                scope: PhantomData,
            })
    }
}

impl<T> fmt::Debug for ScopedHandle<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScopedHandle")
            .field("id", &self.id())
            .field("status", &self.status())
            .finish()
    }
}

impl Dispatcher {
    /// Runs `f` with a [`Scope`] in which jobs may borrow from the caller's
    /// stack, and returns once every job spawned in it has finished (like
    /// [`std::thread::scope`], but on this dispatcher's workers).
    ///
    /// `f` itself runs on the calling thread (to run it on a worker too,
    /// call the free [`scope`](crate::scope) inside
    /// [`install`](Self::install)). While the scope waits for
    /// its jobs, a worker thread runs queued jobs (so a scope inside a job
    /// never deadlocks, even on one worker); another thread blocks without
    /// polling. When `scope` returns, every scoped job has a terminal
    /// status and everything it borrowed is released.
    ///
    /// # Panics
    ///
    /// After all scoped jobs are done: if `f` panicked, with its panic;
    /// otherwise, if a scoped job panicked and nobody received that panic
    /// through its handle's [`join`](ScopedHandle::join), with the first
    /// such panic.
    ///
    /// ```
    /// let pool = workyard::Dispatcher::builder().workers(2).build().unwrap();
    /// let data: Vec<u64> = (1..=10_000).collect();
    /// let mut sums = vec![0u64; 4];
    /// pool.scope(|s| {
    ///     for (chunk, sum) in data.chunks(2_500).zip(sums.iter_mut()) {
    ///         s.spawn(move || *sum = chunk.iter().sum()).unwrap();
    ///     }
    /// });
    /// assert_eq!(sums.iter().sum::<u64>(), 50_005_000);
    /// ```
    pub fn scope<'env, F, R>(&self, f: F) -> R
    where
        F: for<'scope> FnOnce(&'scope Scope<'scope, 'env>) -> R,
    {
        scope_on(self.pool(), f)
    }
}

/// [`Dispatcher::scope`] on `pool`, with the body on the calling thread;
/// also the free `scope`'s, which reaches the pool without a `Dispatcher`
/// (see `global.rs`).
pub(crate) fn scope_on<'env, F, R>(pool: &Arc<Pool>, f: F) -> R
where
    F: for<'scope> FnOnce(&'scope Scope<'scope, 'env>) -> R,
{
    let scope = Scope {
        pool: Arc::clone(pool),
        state: ScopeState {
            pending: AtomicUsize::new(1),
            done: Latch::new(),
            panic: Mutex::new(None),
            members: Injector::new(),
        },
        scope: PhantomData,
        env: PhantomData,
    };
    // From the first spawn until the count is zero, running jobs point
    // into `scope`: this frame must not unwind meanwhile.
    let guard = AbortOnUnwind;
    let result = unwind::catch(|| f(&scope));
    // SAFETY: the body's unit of the count, given up once; the state
    // lives in this frame until after the wait below.
    unsafe { ScopeState::count_out(&scope.state) };
    scope.state.done.wait();
    std::mem::forget(guard);

    // Every job is done; drop what leaked handles left behind.
    loop {
        match scope.state.members.steal() {
            Steal::Success(member) => member.drain(),
            Steal::Retry => continue,
            Steal::Empty => break,
        }
    }
    let job_panic = lock(&scope.state.panic).take();
    match result {
        Err(payload) => {
            unwind::drop_quietly(job_panic);
            resume_unwind(payload)
        }
        Ok(value) => match job_panic {
            Some(payload) => {
                unwind::drop_quietly(value);
                resume_unwind(payload)
            }
            None => value,
        },
    }
}
