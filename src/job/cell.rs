//! The heap allocation of a job: its status record ([`Header`]) and one
//! slot that holds the job, then its result. (A job with a deadline, or
//! whose joiner has to wait, gets a second, small one: the header's extras.)
//!
//! The queues and the id index hold it as a [`JobRef`], a counted pointer
//! to the header (see `raw.rs`); the typed handle holds a `JobRef` and the
//! function that takes the result out as the job's own type ([`Typed`]).

use super::info::CancelReason;
use super::raw::{self, Record};
pub(crate) use super::raw::{Header, JobRef, Tally, Typed};
use super::state::{self, Cancel, Start};
use super::{Job, JobId};
use crate::error::JobError;
use crate::loom::UnsafeCell;
use crate::unwind::{self, PanicPayload};
use crate::{time, trace};
use std::cell::Cell;
use std::sync::atomic::Ordering::Relaxed;

/// What a typed job leaves in its result slot.
pub(crate) type Outcome<J> = Result<<J as Job>::Output, JobError<<J as Job>::Error>>;

/// A plain job's record. `#[repr(C)]` with the header first: a pointer to
/// the header is a pointer to the record (see `raw.rs`).
#[repr(C)]
pub(crate) struct JobCell<J: Job> {
    header: Header,
    /// The job, then its outcome: one slot, because a job never holds
    /// both (16 bytes less per queued job than two `Option`s). Accessed by
    /// one thread at a time, as the status word arbitrates: the job by
    /// whoever wins QUEUED → RUNNING/CANCELLED; the outcome by the running
    /// worker before `finish`, then by whoever clears `OUTPUT`.
    stage: UnsafeCell<Stage<J>>,
}

/// What a [`JobCell`]'s slot holds.
pub(crate) enum Stage<J: Job> {
    /// Queued: the job itself.
    Queued(J),
    /// Finished, with an outcome a handle may still take.
    Done(Outcome<J>),
    /// Running, cancelled while queued, or the outcome was taken or dropped.
    Empty,
}

// SAFETY: `stage` is accessed by one thread at a time, as arbitrated by the
// status word (see the comment on the field), and `J`, `J::Output` and
// `J::Error` are `Send`.
unsafe impl<J: Job> Sync for JobCell<J> {}

impl<J: Job> JobCell<J> {
    /// A queued job's record, its handle and `N` more references to it
    /// (for the queue and the index).
    // `#[inline]` (also on `raw::allocate` and `Header::new`): these are
    // instantiated in the user's crate, where LLVM may leave them out of
    // line once a `#[global_allocator]` makes the allocation inlinable,
    // which costs the spawn path a call and its spills (BENCHMARKS.md).
    #[inline]
    pub(crate) fn spawn<const N: usize>(
        id: JobId,
        job: J,
        deadline: u64,
    ) -> (Typed<J::Output, J::Error>, [JobRef; N]) {
        let cell = JobCell {
            header: Header::new::<Self>(id, deadline),
            stage: UnsafeCell::new(Stage::Queued(job)),
        };
        // SAFETY: `J: Job` is `'static`, and so is the cell.
        unsafe { raw::allocate(cell) }
    }

    /// A queued job's record without a handle, and `N` references to it:
    /// nobody takes its result, so the worker drops it when the job ends.
    #[inline]
    pub(crate) fn spawn_detached<const N: usize>(id: JobId, job: J) -> [JobRef; N] {
        // No deadline: `spawn_detached` takes none, so the control thread
        // watches nothing for it.
        let mut header = Header::new::<Self>(id, 0);
        header.state = state::State::detached();
        let cell = JobCell {
            header,
            stage: UnsafeCell::new(Stage::Queued(job)),
        };
        // SAFETY: as in `spawn`; the word has no `HANDLE`.
        unsafe { raw::allocate_detached(cell) }
    }

    /// Takes the job out of the slot.
    ///
    /// # Safety
    /// The caller won QUEUED → RUNNING or QUEUED → CANCELLED.
    unsafe fn take_job(&self) -> Option<J> {
        // SAFETY: winning that transition (which happens once) makes the
        // caller the slot's only user until it publishes a terminal state.
        match unsafe { empty(&self.stage) } {
            Stage::Queued(job) => Some(job),
            _ => None,
        }
    }
}

/// Empties a job's slot and returns what it held. The status word decides
/// who may call it and what the slot then holds (the callers `expect` it).
///
/// # Safety
/// The caller has the slot to itself.
unsafe fn empty<J: Job>(slot: &UnsafeCell<Stage<J>>) -> Stage<J> {
    // SAFETY: the caller has the slot to itself.
    slot.with_mut(|p| unsafe { std::ptr::replace(p, Stage::Empty) })
}

/// Where [`complete`] keeps an outcome for the handle to take.
pub(crate) trait OutcomeSlot<T> {
    /// Stores `outcome`.
    ///
    /// # Safety
    /// The caller has the slot to itself (see `complete`).
    unsafe fn put(&self, outcome: T);

    /// Takes the stored outcome, if any.
    ///
    /// # Safety
    /// As for `put`.
    unsafe fn take(&self) -> Option<T>;
}

impl<T> OutcomeSlot<T> for UnsafeCell<Option<T>> {
    unsafe fn put(&self, outcome: T) {
        // SAFETY: the caller has the slot to itself.
        self.with_mut(|p| unsafe { *p = Some(outcome) });
    }

    unsafe fn take(&self) -> Option<T> {
        // SAFETY: the caller has the slot to itself.
        self.with_mut(|p| unsafe { (*p).take() })
    }
}

impl<J: Job> OutcomeSlot<Outcome<J>> for UnsafeCell<Stage<J>> {
    unsafe fn put(&self, outcome: Outcome<J>) {
        // SAFETY: the caller has the slot to itself; the job was taken
        // before it ran, so this overwrites `Empty` and drops nothing.
        self.with_mut(|p| unsafe { *p = Stage::Done(outcome) });
    }

    unsafe fn take(&self) -> Option<Outcome<J>> {
        // SAFETY: the caller has the slot to itself.
        match unsafe { empty(self) } {
            Stage::Done(outcome) => Some(outcome),
            _ => None,
        }
    }
}

#[cfg(not(loom))]
thread_local! {
    /// The status record of the job running on this thread, for
    /// `workyard::is_cancelled()`.
    static CURRENT: Cell<*const Header> = const { Cell::new(std::ptr::null()) };
}

// Loom runs its threads as coroutines on one OS thread: a std thread-local
// would be shared by every modelled thread, so a preempted job could see
// (or restore) another job's header. Loom's thread-local is per modelled
// thread; its macro has no `const` initialiser.
#[cfg(loom)]
loom::thread_local! {
    static CURRENT: Cell<*const Header> = Cell::new(std::ptr::null());
}

/// `true` if the job running on this thread has been asked to stop.
pub(crate) fn current_cancelled() -> bool {
    CURRENT.with(|c| {
        let header = c.get();
        // SAFETY: CURRENT is set only while `run` executes the job, during
        // which the worker holds a JobRef keeping the header alive.
        !header.is_null() && unsafe { (*header).state.load().has(state::CANCEL_REQUESTED) }
    })
}

/// The id of the job running on this thread, if any.
pub(crate) fn current_id() -> Option<JobId> {
    CURRENT.with(|c| {
        let header = c.get();
        // SAFETY: as in `current_cancelled`.
        (!header.is_null()).then(|| unsafe { (*header).id })
    })
}

/// The status record of the job running on this thread, or null: a join
/// half records it so that a thief runs the half as part of that job.
#[inline]
pub(crate) fn current_header() -> *const Header {
    CURRENT.with(Cell::get)
}

/// Is `header` the record of the job running on this thread? (By address:
/// ids are only unique within one dispatcher.)
pub(crate) fn is_current(header: &Header) -> bool {
    CURRENT.with(|c| std::ptr::eq(c.get(), header))
}

/// Restores the previous CURRENT, also when a nested job unwinds.
pub(crate) struct CurrentGuard(*const Header);

impl CurrentGuard {
    pub(crate) fn enter(header: &Header) -> CurrentGuard {
        Self::enter_raw(header)
    }

    /// Like `enter`, for a pointer taken from [`current_header`] (possibly
    /// null). The caller keeps the record alive while the guard lives.
    pub(crate) fn enter_raw(header: *const Header) -> CurrentGuard {
        CurrentGuard(CURRENT.with(|c| c.replace(header)))
    }
}

impl Drop for CurrentGuard {
    fn drop(&mut self) {
        CURRENT.with(|c| c.set(self.0));
    }
}

// SAFETY: `repr(C)`, header first.
unsafe impl<J: Job> Record for JobCell<J> {
    type Output = J::Output;
    type Error = J::Error;

    #[cfg_attr(not(feature = "tracing"), allow(clippy::let_unit_value))]
    fn run(&self, worker: usize, tally: &dyn Tally) -> usize {
        debug_assert_eq!(self.header.state.load().worker(), Some(worker));
        // SAFETY: the caller won QUEUED → RUNNING, which happens once; a
        // canceller touches the slot only after winning QUEUED → CANCELLED.
        let job = unsafe { self.take_job() };
        let job = job.expect("a started job still holds its closure");

        let result = {
            let _current = CurrentGuard::enter(&self.header);
            let _span = trace::job_span::<J>(self.header.id.0, worker);
            unwind::catch(move || job.run())
        };
        if result.is_err() {
            trace::event!(debug, id = self.header.id.0, "job panicked");
        }
        let (outcome_state, outcome): (usize, Outcome<J>) = match result {
            Ok(Ok(value)) => (state::SUCCEEDED, Ok(value)),
            Ok(Err(e)) => (state::FAILED, Err(JobError::Failed(e))),
            Err(payload) => (
                state::PANICKED,
                Err(JobError::Panicked(PanicPayload::new(payload))),
            ),
        };

        complete(
            &self.header,
            &self.stage,
            outcome_state,
            outcome,
            dispose::<J>,
            tally,
        )
    }

    fn cancel(&self, flags: usize, running: bool, won: &mut dyn FnMut()) -> Cancel {
        let result = self.header.state.cancel(flags, running);
        trace::event!(debug, id = self.header.id.0, flags, outcome = ?result, "cancel");
        if let Cancel::WasQueued(prev) = result {
            won();
            if flags & state::DEFERRED == 0 {
                // SAFETY: we won QUEUED → CANCELLED, so no worker will ever
                // take the closure (`start` fails), and without DEFERRED
                // the popper leaves it alone: it is ours to drop.
                let job = unsafe { self.take_job() };
                unwind::drop_quietly(job);
            }
            // ORDERING: Relaxed, unlike the field's usual write-before-
            // transition: the CAS to CANCELLED is already done, so a racing
            // `info()` may briefly show no finish time, never a wrong one.
            self.header.finished_at.store(time::now(), Relaxed);
            self.header.wake_waiter(prev);
        }
        result
    }

    fn discard(&self) {
        // SAFETY: a DEFERRED cancel won QUEUED → CANCELLED without touching
        // the slot; the popper, whose claim failed after it (Acquire, so
        // the slot is as the spawner left it), is its only user now.
        let job = unsafe { self.take_job() };
        unwind::drop_quietly(job);
    }

    fn take_result(&self) -> Outcome<J> {
        let word = self.header.state.load();
        debug_assert!(word.is_terminal());
        if word.state() == state::CANCELLED {
            return Err(JobError::Cancelled(CancelReason::from_snapshot(word)));
        }
        assert!(
            self.header.state.take_output(),
            "a job's result was taken twice"
        );
        // SAFETY: we cleared OUTPUT, which the worker set after writing the
        // slot (Release) and we read with Acquire: the slot is ours now.
        let outcome = unsafe { self.stage.take() };
        outcome.expect("OUTPUT was set, so the slot is full")
    }

    fn release(&self) {
        let prev = self.header.state.drop_handle();
        if prev.is_terminal() && prev.has(state::OUTPUT) && self.header.state.take_output() {
            // SAFETY: we cleared OUTPUT (see take_result).
            let outcome = unsafe { self.stage.take() };
            unwind::drop_quietly(outcome);
        }
    }
}

/// Drops an outcome that no handle will take; a panic's payload, which
/// nobody would see otherwise, goes to the pool's panic handler instead.
fn dispose<J: Job>(outcome: Option<Outcome<J>>) {
    match outcome {
        Some(Err(JobError::Panicked(payload))) => unwind::unseen_panic(payload),
        other => unwind::drop_quietly(other),
    }
}

/// The second half of every run, shared by plain and scoped jobs: keeps
/// `outcome` in `slot` if a handle may still read it (else hands it to
/// `dispose`), stamps the finish time, counts the job in `tally`, moves
/// the status word to its terminal state and wakes the joiner. Returns the
/// terminal state.
pub(crate) fn complete<T>(
    header: &Header,
    slot: &impl OutcomeSlot<T>,
    outcome_state: usize,
    outcome: T,
    dispose: impl Fn(Option<T>),
    tally: &dyn Tally,
) -> usize {
    let now = header.state.load();
    let stopped = now.has(state::CANCEL_REQUESTED);
    let keep = now.has(state::HANDLE) && !stopped;
    if keep {
        // SAFETY: only the running worker writes the slot, before `finish`
        // publishes OUTPUT; nobody reads it until OUTPUT is set.
        unsafe { slot.put(outcome) };
    } else {
        dispose(Some(outcome));
    }
    header.finished_at.store(time::now(), Relaxed);
    // Counted before `finish` publishes the terminal state (Release), so
    // a joiner that sees it (Acquire) sees the count as well. A stop
    // request that lands in between is rare: it is recounted after.
    let counted = if stopped {
        state::CANCELLED
    } else {
        outcome_state
    };
    tally.count(counted, header.run_nanos());
    let prev = header.state.finish(outcome_state, keep);
    let published = keep && prev.has(state::HANDLE) && !prev.has(state::CANCEL_REQUESTED);
    if keep && !published {
        // The handle left (or a stop request came) between our check and
        // `finish`: OUTPUT was not set, so the slot is still ours alone.
        // SAFETY: as above; no reader can see OUTPUT.
        dispose(unsafe { slot.take() });
    }
    let end = if prev.has(state::CANCEL_REQUESTED) {
        state::CANCELLED
    } else {
        outcome_state
    };
    if end != counted {
        tally.recount(counted);
    }
    header.wake_waiter(prev);
    end
}

/// Claims a popped job for worker `worker`, starting at `now` (a
/// `time::now()` value, possibly the end of the worker's previous job; it
/// is clamped so a job never starts before it was queued): `true` if the
/// caller must run it, `false` if it was cancelled while queued (then it is
/// only counted).
pub(crate) fn claim(job: &JobRef, worker: usize, now: u64) -> bool {
    let header = job.header();
    // Written before the QUEUED → RUNNING transition, whose Release makes
    // it visible to whoever sees the job Running (the transition itself
    // carries the worker). If the job was cancelled instead, `info`
    // ignores it (`was_started` is false).
    header.started_at.store(now.max(header.queued_at), Relaxed);
    header.state.start(worker) == Start::Run
}

#[cfg(all(test, loom))]
#[path = "handoff_loom.rs"]
mod loom_tests;

#[cfg(all(test, not(loom), target_pointer_width = "64"))]
#[test]
fn a_queued_job_costs_88_bytes_plus_its_closure() {
    // The memory target (issue #5): ≤ 128 bytes per queued job beyond the
    // closure. The record with an 8-byte closure is 88 (its count and
    // vtable included), the injector slot 16 and the index overflow 8.
    let x = 7u64;
    let job = move || x;
    fn cell_size<J: Job>(_: &J) -> usize {
        std::mem::size_of::<JobCell<J>>()
    }
    assert_eq!(std::mem::size_of::<Header>(), 64);
    assert_eq!(cell_size(&job), 88);
}
