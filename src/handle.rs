//! [`JobHandle`]: the typed, owning view of one job.

use crate::error::JobError;
use crate::job::cell::{Header, JobRef, Typed};
use crate::job::raw::TakeFn;
use crate::job::state::Cancel;
use crate::job::{JobId, JobInfo, JobStatus};
use crate::worker;
use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc as StdArc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

/// The handle of a spawned job: its id, live status and, once it finishes,
/// its typed result.
///
/// Dropping the handle detaches the job: it still runs, and its result is
/// dropped as soon as it is produced. A handle is also a [`Future`], so async
/// code can `.await` a job without blocking its executor.
///
/// ```
/// use workyard::{Dispatcher, JobStatus};
///
/// let pool = Dispatcher::builder().workers(2).build().unwrap();
/// let handle = pool.spawn(|| (1..=10u64).product::<u64>()).unwrap();
/// println!("{} is {}", handle.id(), handle.status());
/// assert_eq!(handle.join().unwrap(), 3_628_800);
/// ```
pub struct JobHandle<T, E = Infallible> {
    job: JobRef,
    /// Takes the result out of the record, as the record's own type.
    take: TakeFn<T, E>,
}

impl<T, E> JobHandle<T, E> {
    /// The handle of a job just made (`JobCell::spawn`, `raw::allocate`),
    /// whose `take` takes the result out of a record of its type.
    pub(crate) fn from_typed(typed: Typed<T, E>) -> Self {
        JobHandle {
            job: typed.job,
            take: typed.take,
        }
    }

    fn header(&self) -> &Header {
        self.job.header()
    }

    /// Takes the result; once, after the job reached a terminal state.
    fn take_result(&self) -> Result<T, JobError<E>> {
        debug_assert!(self.header().state.load().is_terminal());
        // SAFETY: `take` came with `job` from the record's own allocation
        // (`Typed`), so it matches its type; our callers consume or finish the
        // handle (`join`, `poll` returning `Ready`), and `take` panics
        // rather than take twice.
        unsafe { (self.take)(self.job.as_ptr()) }
    }

    /// The job's id.
    pub fn id(&self) -> JobId {
        self.header().id
    }

    /// The job's status now.
    pub fn status(&self) -> JobStatus {
        JobStatus::from_snapshot(self.header().state.load())
    }

    /// A snapshot of the job's status record.
    pub fn info(&self) -> JobInfo {
        self.header().info()
    }

    /// `true` once the job reached a terminal status; `join` then returns
    /// without blocking.
    pub fn is_finished(&self) -> bool {
        self.header().state.load().is_terminal()
    }

    /// Cancels the job. A queued job never runs and ends
    /// [`JobStatus::Cancelled`] at once. A running job cannot be killed: it is
    /// asked to stop (it sees [`is_cancelled`](crate::is_cancelled) return
    /// `true`), keeps running until it returns, and then ends `Cancelled`
    /// whatever it returned; its `join` gives
    /// [`JobError::Cancelled`]. Returns `false` if the job had already
    /// finished or been cancelled.
    ///
    /// In a [bounded](crate::DispatcherBuilder::queue_capacity) queue, a
    /// job cancelled through its handle keeps its place until a worker
    /// discards it (the handle does not know its dispatcher);
    /// [`Dispatcher::cancel`](crate::Dispatcher::cancel) frees it at once.
    ///
    /// ```
    /// use workyard::{Dispatcher, JobStatus};
    ///
    /// let pool = Dispatcher::builder().workers(1).build().unwrap();
    /// pool.pause();
    /// let handle = pool.spawn(|| 1).unwrap();
    /// assert!(handle.cancel());
    /// assert_eq!(handle.status(), JobStatus::Cancelled);
    /// assert!(handle.join().unwrap_err().is_cancelled());
    /// pool.resume();
    /// ```
    pub fn cancel(&self) -> bool {
        self.job.cancel(0, true) != Cancel::TooLate
    }

    /// Waits for the job and returns its result. On a worker thread it runs
    /// other queued jobs while it waits, so joining from inside a job never
    /// deadlocks a pool, even one with a single worker.
    ///
    /// # Panics
    ///
    /// If called from inside the job itself (its handle smuggled into it),
    /// which would wait for itself forever; like a thread joining itself.
    /// The panic ends that job `Panicked`.
    pub fn join(self) -> Result<T, JobError<E>> {
        assert!(
            !self.is_running_here(),
            "workyard: {} cannot join itself (it would wait forever)",
            self.id()
        );
        let finished = self.wait(None);
        debug_assert!(finished);
        self.take_result()
    }

    /// Like [`join`](Self::join), but gives up after `timeout`, returning the
    /// handle so the caller can wait again, cancel it or drop it.
    ///
    /// Called from inside the job itself, it returns the handle at once:
    /// the job cannot finish while it waits for itself.
    ///
    /// ```
    /// use std::time::Duration;
    /// let pool = workyard::Dispatcher::builder().workers(1).build().unwrap();
    /// let handle = pool.spawn(|| 7).unwrap();
    /// let result = match handle.join_timeout(Duration::from_secs(10)) {
    ///     Ok(result) => result,
    ///     Err(handle) => handle.join(),
    /// };
    /// assert_eq!(result.unwrap(), 7);
    /// ```
    #[allow(clippy::type_complexity)]
    pub fn join_timeout(self, timeout: Duration) -> Result<Result<T, JobError<E>>, Self> {
        if self.is_running_here() {
            return Err(self);
        }
        let deadline = Instant::now().checked_add(timeout);
        if self.wait(deadline) {
            Ok(self.take_result())
        } else {
            Err(self)
        }
    }

    /// Asks for `waker` to be woken once the job is finished, in place of
    /// any waker registered before (see `Header::register_waker`);
    /// `false` if it is already finished (then nobody will wake it).
    pub(crate) fn wake_when_finished(&self, waker: &Waker) -> bool {
        self.header().register_waker(waker)
    }

    /// Is the calling thread running this very job?
    fn is_running_here(&self) -> bool {
        crate::job::cell::is_current(self.header())
    }

    /// Blocks until the job is terminal or `deadline` passes; `true` if done.
    fn wait(&self, deadline: Option<Instant>) -> bool {
        let header = self.header();
        if header.state.load().is_terminal() {
            return true;
        }
        let registered = with_thread_waker(|waker| header.register_waker(waker));
        if !registered {
            return true;
        }
        worker::wait_until(|| header.state.load().is_terminal(), deadline)
    }
}

/// Unparks a thread: the waker a blocking `join` registers.
struct ThreadWaker(crate::loom::thread::Thread);

impl Wake for ThreadWaker {
    fn wake(self: StdArc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &StdArc<Self>) {
        self.0.unpark();
    }
}

#[cfg(not(loom))]
thread_local! {
    /// One waker per thread, made once, so a blocking join allocates nothing.
    static THREAD_WAKER: Waker = Waker::from(StdArc::new(ThreadWaker(crate::loom::thread::current())));
}

/// Runs `f` with a waker that unparks the calling thread.
pub(crate) fn with_thread_waker<R>(f: impl FnOnce(&Waker) -> R) -> R {
    #[cfg(not(loom))]
    return THREAD_WAKER.with(f);
    // Loom runs its threads on one OS thread, so a thread-local cache would
    // be shared between them: make one per wait instead.
    #[cfg(loom)]
    return f(&Waker::from(StdArc::new(ThreadWaker(
        crate::loom::thread::current(),
    ))));
}

/// Awaiting a handle waits for the job without blocking the executor's
/// thread; works on any async runtime (the job's completion wakes the task).
///
/// ```
/// # fn block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     // Any executor works; this test uses a minimal one.
/// #     use std::task::{Context, Poll, Wake, Waker};
/// #     struct Unpark(std::thread::Thread);
/// #     impl Wake for Unpark { fn wake(self: std::sync::Arc<Self>) { self.0.unpark() } }
/// #     let waker = Waker::from(std::sync::Arc::new(Unpark(std::thread::current())));
/// #     let mut f = std::pin::pin!(f);
/// #     loop {
/// #         if let Poll::Ready(v) = f.as_mut().poll(&mut Context::from_waker(&waker)) { return v; }
/// #         std::thread::park();
/// #     }
/// # }
/// let pool = workyard::Dispatcher::builder().workers(2).build().unwrap();
/// let handle = pool.spawn(|| (1..=20u64).product::<u64>()).unwrap();
/// let product = block_on(async move { handle.await });
/// assert_eq!(product.unwrap(), 2_432_902_008_176_640_000);
/// ```
///
/// # Panics
///
/// If polled again after it returned `Ready` (the result was moved out).
impl<T, E> Future for JobHandle<T, E> {
    type Output = Result<T, JobError<E>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let header = self.header();
        if header.state.load().is_terminal() || !header.register_waker(cx.waker()) {
            return Poll::Ready(self.take_result());
        }
        Poll::Pending
    }
}

impl<T, E> Drop for JobHandle<T, E> {
    fn drop(&mut self) {
        self.job.release();
    }
}

impl<T, E> fmt::Debug for JobHandle<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobHandle")
            .field("id", &self.id())
            .field("status", &self.status())
            .finish()
    }
}

/// Every worker outcome against every handle action, in one thread, with
/// counted drops: the deterministic half of the hand-off (loom models the
/// concurrent half). Small enough for Miri, which checks the raw accesses
/// to the closure, result and waiter slots and the two views of one
/// allocation.
#[cfg(test)]
#[cfg(not(loom))]
mod tests {
    use super::*;
    use crate::job::cell::{claim, JobCell};
    use crate::job::{state, Job};
    use crate::Arc;

    /// `JobCell::spawn`, with the typed reference made a handle.
    fn spawn<J: Job, const N: usize>(
        id: JobId,
        job: J,
    ) -> (JobHandle<J::Output, J::Error>, [JobRef; N]) {
        let (typed, refs) = JobCell::spawn(id, job, 0);
        (JobHandle::from_typed(typed), refs)
    }
    use std::sync::atomic::AtomicUsize as Count;
    use std::sync::atomic::Ordering::SeqCst;

    /// Counts its drops.
    struct Probe(Arc<Count>);

    impl Drop for Probe {
        fn drop(&mut self) {
            self.0.fetch_add(1, SeqCst);
        }
    }

    #[derive(Clone, Copy, Debug, PartialEq)]
    enum Worker {
        Succeed,
        Fail,
        Panic,
        CancelQueued,
        CancelRunning,
    }

    #[derive(Clone, Copy, Debug, PartialEq)]
    enum Handle {
        /// Joins after the job finished.
        JoinAfter,
        /// Registers as the waiter before the run, joins after.
        WaitThenJoin,
        /// Dropped before the worker runs the job.
        DropBefore,
        /// Dropped after the job finished, while the queue still holds it.
        DropAfter,
    }

    struct TestJob {
        captured: Probe,
        outcome: Worker,
        out: Arc<Count>,
    }

    impl Job for TestJob {
        type Output = Probe;
        type Error = Probe;
        fn run(self) -> Result<Probe, Probe> {
            let _captured = self.captured;
            assert!(crate::current_job().is_some());
            match self.outcome {
                Worker::Fail => Err(Probe(self.out)),
                Worker::Panic => std::panic::resume_unwind(Box::new("planned")),
                _ => Ok(Probe(self.out)),
            }
        }
    }

    /// A job that ends as `w` says, and the drop counts of its closure
    /// and of its output.
    fn test_job(w: Worker) -> (TestJob, Arc<Count>, Arc<Count>) {
        let captured = Arc::new(Count::new(0));
        let output = Arc::new(Count::new(0));
        let job = TestJob {
            captured: Probe(captured.clone()),
            outcome: w,
            out: output.clone(),
        };
        (job, captured, output)
    }

    fn case(w: Worker, h: Handle, drop_handle_last: bool) {
        let (job, captured, output) = test_job(w);
        let (handle, [job]) = spawn(JobId(7), job);
        let mut handle = Some(handle);
        let produces = matches!(w, Worker::Succeed | Worker::Fail | Worker::CancelRunning);

        match h {
            Handle::DropBefore => drop(handle.take()),
            Handle::WaitThenJoin => {
                let header = job.header();
                assert!(with_thread_waker(|w| header.register_waker(w)));
                assert!(with_thread_waker(|w| header.register_waker(w)), "again");
            }
            _ => {}
        }
        if w == Worker::CancelQueued {
            assert!(matches!(job.cancel(0, true), Cancel::WasQueued(_)));
            assert_eq!(captured.load(SeqCst), 1, "the canceller drops the closure");
            assert!(
                !claim(&job, 0, crate::time::now()),
                "a cancelled job is not claimed"
            );
        } else {
            assert!(claim(&job, 0, crate::time::now()));
            if w == Worker::CancelRunning {
                assert_eq!(job.cancel(0, true), Cancel::Requested);
            }
            let state = job.run(0, &crate::job::raw::NoTally);
            assert_eq!(captured.load(SeqCst), 1, "the worker drops the closure");
            let expected = match w {
                Worker::Succeed => state::SUCCEEDED,
                Worker::Fail => state::FAILED,
                Worker::Panic => state::PANICKED,
                _ => state::CANCELLED,
            };
            assert_eq!(state, expected);
        }
        assert_eq!(crate::current_job(), None, "CURRENT restored");
        assert!(job.header().state.load().is_terminal());
        assert_eq!(job.cancel(0, true), Cancel::TooLate);

        let kept = h != Handle::DropBefore && matches!(w, Worker::Succeed | Worker::Fail);
        assert_eq!(
            output.load(SeqCst),
            usize::from(produces && !kept),
            "an output nobody can take is dropped at once"
        );
        match h {
            Handle::DropBefore => {}
            Handle::DropAfter => {
                drop(handle.take());
                assert_eq!(
                    output.load(SeqCst),
                    usize::from(produces),
                    "dropped by release"
                );
            }
            Handle::JoinAfter | Handle::WaitThenJoin => {
                let result = handle.take().unwrap().join();
                match (w, result) {
                    (Worker::Succeed, Ok(_)) => {}
                    (Worker::Fail, Err(JobError::Failed(_))) => {}
                    (Worker::Panic, Err(JobError::Panicked(p))) => {
                        assert_eq!(p.message(), Some("planned"));
                    }
                    (Worker::CancelQueued | Worker::CancelRunning, Err(e)) => {
                        assert!(e.is_cancelled());
                    }
                    (w, r) => panic!("{w:?} gave {:?}", r.map(|_| ()).map_err(|_| ())),
                }
                assert_eq!(
                    output.load(SeqCst),
                    usize::from(produces),
                    "joined value dropped"
                );
            }
        }
        if drop_handle_last {
            // A second reference outlives the first: the last one frees it.
            let other = job.clone();
            drop(job);
            drop(other);
        } else {
            drop(job);
        }
        assert_eq!(captured.load(SeqCst), 1, "closure dropped exactly once");
        assert_eq!(
            output.load(SeqCst),
            usize::from(produces),
            "output dropped exactly once"
        );
    }

    #[test]
    fn every_worker_outcome_against_every_handle_action() {
        let workers = [
            Worker::Succeed,
            Worker::Fail,
            Worker::Panic,
            Worker::CancelQueued,
            Worker::CancelRunning,
        ];
        let handles = [
            Handle::JoinAfter,
            Handle::WaitThenJoin,
            Handle::DropBefore,
            Handle::DropAfter,
        ];
        for w in workers {
            for h in handles {
                for last in [false, true] {
                    case(w, h, last);
                }
            }
        }
    }

    /// A record spawned without a handle, for every worker outcome: the
    /// worker drops the output at once, and the last of its two references
    /// (the queue's and the index's), in either order, frees it.
    #[test]
    fn every_worker_outcome_of_a_job_without_a_handle() {
        for w in [
            Worker::Succeed,
            Worker::Fail,
            Worker::Panic,
            Worker::CancelQueued,
            Worker::CancelRunning,
        ] {
            // A job without a handle is cancelled only through the pool:
            // by id (`BY_POOL`) or by the control thread, which leaves the
            // closure to the worker that pops it (`DEFERRED`).
            for (index_last, deferred) in [(false, false), (true, false), (false, true)] {
                let (job, captured, output) = test_job(w);
                let [queued, indexed] = JobCell::spawn_detached(JobId(9), job);
                let flags = state::BY_POOL | if deferred { state::DEFERRED } else { 0 };
                assert!(!queued.header().state.load().has(state::HANDLE));
                // One count per reference made, none for a handle: a count
                // left over would leak the record (only Miri's leak check
                // would see it otherwise).
                assert_eq!(queued.header().refs.load(SeqCst), 2);
                if w == Worker::CancelQueued {
                    assert!(matches!(indexed.cancel(flags, true), Cancel::WasQueued(_)));
                    assert_eq!(captured.load(SeqCst), usize::from(!deferred));
                    assert!(!claim(&queued, 0, crate::time::now()));
                    if deferred {
                        // As `worker::execute` after a failed claim.
                        queued.discard();
                    }
                } else {
                    assert!(claim(&queued, 0, crate::time::now()));
                    if w == Worker::CancelRunning {
                        assert_eq!(indexed.cancel(flags, true), Cancel::Requested);
                    }
                    queued.run(0, &crate::job::raw::NoTally);
                }
                let word = indexed.header().state.load();
                assert!(word.is_terminal() && !word.has(state::OUTPUT), "{w:?}");
                let produces = matches!(w, Worker::Succeed | Worker::Fail | Worker::CancelRunning);
                assert_eq!(captured.load(SeqCst), 1, "{w:?}: closure dropped once");
                assert_eq!(
                    output.load(SeqCst),
                    usize::from(produces),
                    "{w:?}: output dropped when the job ended"
                );
                if index_last {
                    drop(queued);
                    drop(indexed);
                } else {
                    drop(indexed);
                    drop(queued);
                }
                assert_eq!(captured.load(SeqCst), 1);
                assert_eq!(output.load(SeqCst), usize::from(produces));
            }
        }
    }

    #[test]
    fn nested_runs_restore_the_current_job() {
        let (inner_handle, [inner]) = spawn(JobId(2), crate::current_job);
        let (outer_handle, [outer]) = spawn(JobId(1), move || {
            let me = crate::current_job();
            assert!(claim(&inner, 0, crate::time::now()));
            inner.run(0, &crate::job::raw::NoTally);
            (me, crate::current_job())
        });
        assert!(claim(&outer, 0, crate::time::now()));
        assert_eq!(outer.run(0, &crate::job::raw::NoTally), state::SUCCEEDED);
        assert_eq!(
            outer_handle.join().unwrap(),
            (Some(JobId(1)), Some(JobId(1)))
        );
        assert_eq!(inner_handle.join().unwrap(), Some(JobId(2)));
        assert_eq!(crate::current_job(), None);
    }

    #[test]
    fn a_joiner_on_another_thread_is_woken() {
        let count = if cfg!(miri) { 5 } else { 200 };
        for i in 0..count {
            let (handle, [job]) = spawn(JobId(i), move || i * 2);
            let joiner = std::thread::spawn(move || handle.join().unwrap());
            assert!(claim(&job, 0, crate::time::now()));
            job.run(0, &crate::job::raw::NoTally);
            assert_eq!(joiner.join().unwrap(), i * 2);
        }
    }

    #[test]
    fn a_handle_dropped_on_another_thread_drops_the_output_once() {
        let count = if cfg!(miri) { 5 } else { 200 };
        let drops = Arc::new(Count::new(0));
        for i in 0..count {
            let out = drops.clone();
            let (handle, [job]) = spawn(JobId(i), move || Probe(out));
            let dropper = std::thread::spawn(move || drop(handle));
            assert!(claim(&job, 0, crate::time::now()));
            job.run(0, &crate::job::raw::NoTally);
            dropper.join().unwrap();
            drop(job);
            assert_eq!(drops.load(SeqCst), i as usize + 1);
        }
    }
}
