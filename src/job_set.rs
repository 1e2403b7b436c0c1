//! [`JobSet`]: many job handles, joined in the order their jobs finish
//! (tokio's `JoinSet`).
//!
//! Nothing polls the handles. Each handle put in the set has its job's
//! waker slot (the one a joiner registers, `Header::register_waker`) set
//! to a `Notify` waker that knows the handle's key in the set. The job's
//! terminal transition wakes it, as it wakes any joiner, and the waker
//! pushes the key onto the set's ready queue, then wakes whoever waits on
//! the set: a task through [`JobSet::poll_join_next`], or a thread in
//! [`JobSet::join_next`]. Joining takes keys off that queue, so results
//! come in the order the jobs finished, whatever order they went in.
//!
//! A job outside any set pays nothing for this: the wake is the one every
//! joined job already makes, behind its `WAITER` bit. A job in a set costs
//! the set one small allocation (its waker) and a short lock when it
//! finishes.
//!
//! Keys are never reused, so a key woken after its handle left the set
//! (detached, or cancelled by a drop) is recognised and skipped.

use crate::dispatcher::Dispatcher;
use crate::error::{JobError, SpawnError};
use crate::handle::{with_thread_waker, JobHandle};
use crate::job::{Job, JobId};
use crate::loom::Mutex;
use crate::signal::lock;
use crate::worker;
use atomic_waker::AtomicWaker;
use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::sync::Arc as StdArc;
use std::task::{Context, Poll, Wake, Waker};

/// What joining a job of a [`JobSet`] gives: its id and its result.
type Joined<T, E> = (JobId, Result<T, JobError<E>>);

/// A set of job handles that gives back each job's result as it finishes,
/// in the order the jobs finish (tokio's `JoinSet`).
///
/// Put jobs in with [`spawn`](Self::spawn) or [`insert`](Self::insert),
/// and take results out with [`join_next`](Self::join_next) (blocking;
/// also the set's [`Iterator::next`]), [`join_next_async`](Self::join_next_async)
/// or [`poll_join_next`](Self::poll_join_next) (async), or
/// [`try_join_next`](Self::try_join_next) (never waits). Each returns
/// `None` once the set is empty.
///
/// **Dropping the set cancels the jobs still in it**, as
/// [`cancel_all`](Self::cancel_all) does; call
/// [`detach_all`](Self::detach_all) first to leave them running.
///
/// ```
/// use workyard::{Dispatcher, JobSet};
///
/// let pool = Dispatcher::builder().workers(4).build()?;
/// let mut set = JobSet::new();
/// for i in 1..=10u64 {
///     set.spawn(&pool, move || i * i)?;
/// }
/// assert_eq!(set.len(), 10);
/// let mut sum = 0;
/// while let Some((_id, result)) = set.join_next() {
///     sum += result?;
/// }
/// assert_eq!(sum, 385);
/// assert!(set.is_empty());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// Async, with backpressure from a bounded queue:
///
/// ```
/// # pollster::block_on(async {
/// use workyard::{Dispatcher, JobSet};
///
/// let pool = Dispatcher::builder().workers(4).queue_capacity(16).build()?;
/// let mut set = JobSet::new();
/// for i in 0..100u64 {
///     set.insert(pool.spawn_async(move || i).await?);
/// }
/// let mut sum = 0;
/// while let Some((_id, result)) = set.join_next_async().await {
///     sum += result?;
/// }
/// assert_eq!(sum, 4950);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
pub struct JobSet<T, E = Infallible> {
    jobs: HashMap<u64, JobHandle<T, E>>,
    /// The key the next handle gets.
    next_key: u64,
    ready: StdArc<Ready>,
}

/// What a set's handles and its joiner share.
#[derive(Default)]
struct Ready {
    /// Keys of finished jobs, in the order they finished.
    keys: Mutex<VecDeque<u64>>,
    /// Whoever waits on the set: a task, or a joining thread.
    joiner: AtomicWaker,
}

impl Ready {
    fn has_keys(&self) -> bool {
        !lock(&self.keys).is_empty()
    }
}

/// The waker a set registers for one of its handles.
struct Notify {
    key: u64,
    ready: StdArc<Ready>,
}

impl Wake for Notify {
    fn wake(self: StdArc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &StdArc<Self>) {
        lock(&self.ready.keys).push_back(self.key);
        // After the push: a joiner that registered and then found no key
        // is woken here (`AtomicWaker`'s contract).
        self.ready.joiner.wake();
    }
}

impl<T, E> JobSet<T, E> {
    /// An empty set.
    pub fn new() -> Self {
        JobSet {
            jobs: HashMap::new(),
            next_key: 0,
            ready: StdArc::default(),
        }
    }

    /// Spawns `job` on `dispatcher` (as [`Dispatcher::spawn`], which waits
    /// for room in a full bounded queue) and puts its handle in the set.
    /// Returns the job's id; if the dispatcher refuses the job, it comes
    /// back in the error and the set is unchanged.
    pub fn spawn<J>(&mut self, dispatcher: &Dispatcher, job: J) -> Result<JobId, SpawnError<J>>
    where
        J: Job<Output = T, Error = E>,
    {
        Ok(self.insert(dispatcher.spawn(job)?))
    }

    /// Puts a handle in the set and returns its job's id. A job that has
    /// already finished is ready to join at once. Handles of jobs of
    /// different dispatchers may share a set (their ids may then repeat).
    pub fn insert(&mut self, handle: JobHandle<T, E>) -> JobId {
        let key = self.next_key;
        self.next_key += 1;
        let id = handle.id();
        self.watch(key, &handle);
        self.jobs.insert(key, handle);
        id
    }

    /// Has the set's ready queue get `key` when `handle`'s job finishes.
    fn watch(&self, key: u64, handle: &JobHandle<T, E>) {
        let notify = Waker::from(StdArc::new(Notify {
            key,
            ready: self.ready.clone(),
        }));
        if !handle.wake_when_finished(&notify) {
            notify.wake();
        }
    }

    /// How many jobs are in the set: those not joined yet, finished or not.
    pub fn len(&self) -> usize {
        self.jobs.len()
    }

    /// `true` if the set holds no job.
    pub fn is_empty(&self) -> bool {
        self.jobs.is_empty()
    }

    /// Takes the result of the job that finished first among those not
    /// joined yet, without waiting: `None` if none has finished (or the
    /// set is empty).
    pub fn try_join_next(&mut self) -> Option<Joined<T, E>> {
        loop {
            let key = lock(&self.ready.keys).pop_front()?;
            // A key whose handle left the set (detached, or cancelled by a
            // drop) before its job finished: nothing to join.
            let Some(handle) = self.jobs.get(&key) else {
                continue;
            };
            if !handle.is_finished() {
                // Only a terminal transition wakes a job's waiter, so this
                // does not happen; should it, watch the job again.
                self.watch(key, handle);
                continue;
            }
            let handle = self.jobs.remove(&key).expect("the key was just found");
            return Some((handle.id(), handle.join()));
        }
    }

    /// Waits for the next job of the set to finish and returns its id and
    /// result, in the order the jobs finish; `None` once the set is empty.
    ///
    /// Blocking, as [`JobHandle::join`]: on one of a dispatcher's worker
    /// threads it runs other queued jobs while it waits, so a job may wait
    /// on a set of jobs it spawned, even on a single worker.
    pub fn join_next(&mut self) -> Option<Joined<T, E>> {
        loop {
            let polled =
                with_thread_waker(|waker| self.poll_join_next(&mut Context::from_waker(waker)));
            if let Poll::Ready(joined) = polled {
                return joined;
            }
            // The poll registered this thread's waker: a job that finishes
            // from now on unparks it.
            worker::wait_until(|| self.ready.has_keys(), None);
        }
    }

    /// [`join_next`](Self::join_next) for async code: waits without
    /// blocking the thread (on any executor).
    pub fn join_next_async(&mut self) -> impl Future<Output = Option<Joined<T, E>>> + '_ {
        std::future::poll_fn(move |cx| self.poll_join_next(cx))
    }

    /// Polls for the next job of the set to finish (tokio's
    /// `JoinSet::poll_join_next`): `Ready(Some(..))` with the first
    /// finished job not joined yet, `Ready(None)` if the set is empty, or
    /// `Pending`, and then `cx`'s waker is woken when a job of the set
    /// finishes. Only the waker of the latest call is woken.
    pub fn poll_join_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Joined<T, E>>> {
        if let Some(joined) = self.try_join_next() {
            return Poll::Ready(Some(joined));
        }
        if self.jobs.is_empty() {
            return Poll::Ready(None);
        }
        self.ready.joiner.register(cx.waker());
        // Registered before this second look: a key pushed after the first
        // one wakes the waker.
        match self.try_join_next() {
            Some(joined) => Poll::Ready(Some(joined)),
            None => Poll::Pending,
        }
    }

    /// Cancels every job in the set, as [`JobHandle::cancel`]: a queued job
    /// never runs, a running one is asked to stop. They stay in the set,
    /// and joining them gives [`JobError::Cancelled`] (or the result of a
    /// job that finished first).
    pub fn cancel_all(&self) {
        for handle in self.jobs.values() {
            handle.cancel();
        }
    }

    /// Empties the set without cancelling its jobs: they run on, detached,
    /// as when a [`JobHandle`] is dropped.
    pub fn detach_all(&mut self) {
        self.jobs.clear();
        lock(&self.ready.keys).clear();
    }
}

impl<T, E> Default for JobSet<T, E> {
    fn default() -> Self {
        JobSet::new()
    }
}

/// Cancels the jobs still in the set (see [`JobSet::cancel_all`]).
impl<T, E> Drop for JobSet<T, E> {
    fn drop(&mut self) {
        self.cancel_all();
    }
}

/// [`JobSet::join_next`] as an iterator: each job's id and result, in the
/// order the jobs finish, until the set is empty.
///
/// ```
/// let pool = workyard::Dispatcher::builder().workers(2).build().unwrap();
/// let mut set = workyard::JobSet::new();
/// for i in 0..4u32 {
///     set.spawn(&pool, move || i).unwrap();
/// }
/// let mut results: Vec<u32> = set.map(|(_id, result)| result.unwrap()).collect();
/// results.sort_unstable();
/// assert_eq!(results, [0, 1, 2, 3]);
/// ```
impl<T, E> Iterator for JobSet<T, E> {
    type Item = Joined<T, E>;

    fn next(&mut self) -> Option<Self::Item> {
        self.join_next()
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.len(), Some(self.len()))
    }
}

impl<T, E> ExactSizeIterator for JobSet<T, E> {}

impl<T, E> fmt::Debug for JobSet<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobSet").field("len", &self.len()).finish()
    }
}
