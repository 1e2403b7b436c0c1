//! [`JobRef`]: a thin, counted pointer to a job's record, with the
//! reference count and a table of the record's functions in its [`Header`].
//!
//! It replaces `Arc<dyn ...>` for the same reasons tokio's `RawTask` does:
//!
//! - a spawn needs three references at once (the handle, the queue, the
//!   index; two without a handle, `spawn_detached`); a record is made with
//!   its count already at that, where `Arc` clones would be locked
//!   increments on the spawning thread;
//! - one word, not two: a queue slot and an index slot hold a plain
//!   pointer, which the index can swap with one compare-and-swap;
//! - no weak count: nothing holds a record weakly.
//!
//! The record types ([`JobCell`](super::cell::JobCell) and the scoped
//! cell) are `#[repr(C)]` with the header first and are allocated with
//! `Box`: a pointer to the header is a pointer to the whole record, with
//! the provenance of the whole allocation, and the header's
//! [`VTable`] casts it back to the concrete type.

use super::info::JobInfo;
use super::state::{self, Cancel, Snapshot, State};
use super::JobId;
use crate::error::JobError;
use crate::loom::{fence, AtomicPtr, AtomicU64, AtomicUsize};
use crate::time;
use atomic_waker::AtomicWaker;
use std::ptr::NonNull;
use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, Release};
use std::task::Waker;

/// The status record: everything about a job that does not depend on its type.
pub(crate) struct Header {
    pub(crate) state: State,
    /// References to the record (see `raw.rs`); it is freed when the last
    /// one goes.
    pub(crate) refs: AtomicUsize,
    /// The functions of the record's concrete type.
    pub(crate) vtable: &'static VTable,
    pub(crate) id: JobId,
    pub(crate) queued_at: u64,
    // ORDERING (for the two fields below): Relaxed. They are written
    // before a state transition with Release semantics and read after an
    // Acquire load of the state, which orders them; the one exception is
    // the finish time of a job cancelled while queued, stored just after
    // its transition (see `cancel`). (The worker that started the job is
    // in the status word itself.)
    pub(crate) started_at: AtomicU64,
    pub(crate) finished_at: AtomicU64,
    /// What only some jobs need, allocated when one does (a deadline at
    /// spawn, a joiner that has to wait): 24 bytes less per queued job.
    /// Null until then; once set it stays until the record drops.
    extras: AtomicPtr<Extras>,
}

/// The parts of a status record that most jobs never use.
struct Extras {
    /// When the job is cancelled if still unfinished (nanoseconds, see
    /// `time::deadline_nanos`; 0 for none).
    deadline: u64,
    /// The joiner's waker (a blocked thread's, or an async task's). The
    /// `WAITER` bit in the status word says whether anyone registered, so
    /// finishing a job nobody waits for costs no extra atomic operation.
    waker: AtomicWaker,
}

impl Extras {
    fn boxed(deadline: u64) -> *mut Extras {
        Box::into_raw(Box::new(Extras {
            deadline,
            waker: AtomicWaker::new(),
        }))
    }
}

impl Drop for Header {
    fn drop(&mut self) {
        // ORDERING: Acquire, for a box another thread installed (the last
        // `Arc` drop has synchronised with every user already; this says so
        // locally, and costs nothing on x86).
        let extras = self.extras.load(Acquire);
        if !extras.is_null() {
            // SAFETY: a non-null `extras` came from `Extras::boxed` and is
            // freed only here, once, when the record goes away.
            drop(unsafe { Box::from_raw(extras) });
        }
    }
}

impl Header {
    /// The header of a queued job's record of type `R`, for
    /// `raw::allocate` (which sets its count).
    #[inline]
    pub(crate) fn new<R: Record>(id: JobId, deadline: u64) -> Header {
        Header {
            state: State::new(),
            refs: AtomicUsize::new(0),
            vtable: &R::VTABLE,
            id,
            queued_at: time::now(),
            started_at: AtomicU64::new(0),
            finished_at: AtomicU64::new(0),
            extras: AtomicPtr::new(if deadline == 0 {
                std::ptr::null_mut()
            } else {
                Extras::boxed(deadline)
            }),
        }
    }

    /// The extras, if allocated.
    fn extras(&self) -> Option<&Extras> {
        // ORDERING: Acquire pairs with the AcqRel of the CAS that installed
        // them (or with the record's publication, for those made in `new`).
        let p = self.extras.load(Acquire);
        // SAFETY: non-null means a live box that is freed only when the
        // record drops, which outlives `&self`.
        unsafe { p.as_ref() }
    }

    /// The extras, allocated now if they were not yet.
    fn extras_or_alloc(&self) -> &Extras {
        if let Some(extras) = self.extras() {
            return extras;
        }
        let new = Extras::boxed(0);
        // ORDERING: AcqRel: Release publishes the new box's contents;
        // Acquire, on failure, reads another thread's box.
        let p = match self
            .extras
            .compare_exchange(std::ptr::null_mut(), new, AcqRel, Acquire)
        {
            Ok(_) => new,
            Err(theirs) => {
                // SAFETY: ours was never shared.
                drop(unsafe { Box::from_raw(new) });
                theirs
            }
        };
        // SAFETY: as in `extras`.
        unsafe { &*p }
    }

    /// When the job is cancelled if still unfinished (nanoseconds, see
    /// `time::deadline_nanos`; 0 for none).
    pub(crate) fn deadline(&self) -> u64 {
        self.extras().map_or(0, |e| e.deadline)
    }

    /// When the job finished, for a finished job that this thread ran.
    pub(crate) fn finished_at(&self) -> u64 {
        self.finished_at.load(Relaxed)
    }

    /// How long the job ran, for a finished job that this thread ran.
    pub(crate) fn run_nanos(&self) -> u64 {
        time::nanos_between(
            self.started_at.load(Relaxed),
            self.finished_at.load(Relaxed),
        )
    }

    /// A consistent snapshot of the record.
    pub(crate) fn info(&self) -> JobInfo {
        let word = self.state.load();
        let started = word.was_started();
        JobInfo {
            id: self.id,
            word,
            worker: word.worker(),
            queued_at: time::to_instant(self.queued_at).expect("queued_at is always set"),
            started_at: started
                .then(|| time::to_instant(self.started_at.load(Relaxed)))
                .flatten(),
            finished_at: word
                .is_terminal()
                .then(|| time::to_instant(self.finished_at.load(Relaxed)))
                .flatten(),
        }
    }

    /// Asks for `waker` to be woken when the job reaches a terminal state.
    /// Returns `false` if it already has (then nobody will wake it).
    /// Registering again (each poll of a future) replaces the waker.
    pub(crate) fn register_waker(&self, waker: &Waker) -> bool {
        self.extras_or_alloc().waker.register(waker);
        // Set after the registration: a finisher that sees WAITER finds the
        // waker; if the job finished first, we see that here and do not wait.
        !self.state.set_waiter().is_terminal()
    }

    /// Wakes the joiner if `prev`, the word just before a terminal
    /// transition made by the caller, had one registered.
    pub(crate) fn wake_waiter(&self, prev: Snapshot) {
        if prev.has(state::WAITER) {
            // A registrant installed the extras before it set WAITER, and
            // the terminal transition that returned `prev` read WAITER
            // with Acquire: they are visible.
            if let Some(extras) = self.extras() {
                extras.waker.wake();
            }
        }
    }
}

/// Where the worker running a job counts it: told the job's outcome
/// before the terminal state is published, so that whoever sees the job
/// finished (its joiner, `wait_idle`, a scope's end) finds it counted too.
pub(crate) trait Tally {
    /// The job ran for `run_nanos` and is about to end in `state`.
    fn count(&self, state: usize, run_nanos: u64);
    /// A stop request reached the job between `count` and its terminal
    /// transition: it ended `CANCELLED` rather than the `state` counted.
    fn recount(&self, state: usize);
}

/// A tally that counts nothing, for tests that run records by hand.
#[cfg(test)]
pub(crate) struct NoTally;

#[cfg(test)]
impl Tally for NoTally {
    fn count(&self, _: usize, _: u64) {}
    fn recount(&self, _: usize) {}
}

/// A record type: `#[repr(C)]` with its [`Header`] as first field (which
/// the implementor promises by implementing this unsafe trait).
///
/// # Safety
///
/// The type is `#[repr(C)]` and its first field is the `Header`, so that a
/// pointer to the header is a pointer to the record.
pub(crate) unsafe trait Record: Sized {
    /// What a successful run gives the handle.
    type Output;
    /// What a failed run gives the handle.
    type Error;

    /// Runs the job on worker `worker`, counting its outcome in `tally`
    /// before anyone can see it finished; returns its terminal state.
    fn run(&self, worker: usize, tally: &dyn Tally) -> usize;
    /// Cancels the job (see `State::cancel`). If it wins QUEUED →
    /// CANCELLED, calls `won` at once, before any user code runs (the
    /// closure's destructor, a waker).
    /// With `DEFERRED` in `flags`, the closure stays for [`discard`](Record::discard).
    fn cancel(&self, flags: usize, running: bool, won: &mut dyn FnMut()) -> Cancel;
    /// The worker popped a job that a `DEFERRED` cancel left: drops its
    /// closure (and whatever else the cancel would have done after it).
    fn discard(&self);
    /// The handle is going away: drop an untaken result.
    fn release(&self);
    /// The scope is ending: drop a result whose handle leaked.
    fn drain(&self) {}
    /// Takes the result of a terminal job. Called at most once, by the handle.
    fn take_result(&self) -> Result<Self::Output, JobError<Self::Error>>;

    /// The record's table of functions. Each entry is called, through a
    /// `JobRef`, with the header of a live record of this type (`JobRef`'s
    /// invariant) and under the contract of the `JobRef` method that
    /// calls it.
    const VTABLE: VTable = VTable {
        run: |header, worker, tally| {
            // SAFETY: see above.
            unsafe { record::<Self>(header) }.run(worker, tally)
        },
        cancel: |header, reason, running, won| {
            // SAFETY: see above.
            unsafe { record::<Self>(header) }.cancel(reason, running, won)
        },
        discard: |header| {
            // SAFETY: see above.
            unsafe { record::<Self>(header) }.discard()
        },
        release: |header| {
            // SAFETY: see above.
            unsafe { record::<Self>(header) }.release()
        },
        drain: |header| {
            // SAFETY: see above.
            unsafe { record::<Self>(header) }.drain()
        },
        dealloc: |header| {
            // SAFETY: called by the last reference, so nobody else uses the
            // record; `allocate` made it with `Box::new`.
            drop(unsafe { Box::from_raw(header.cast::<Self>().as_ptr()) })
        },
    };
}

/// The record of type `R` at `header`.
///
/// # Safety
///
/// `header` is the header of a live `R` (see the module docs).
unsafe fn record<'a, R: Record>(header: NonNull<Header>) -> &'a R {
    // SAFETY: the caller's contract; the pointer has the provenance of the
    // whole box.
    unsafe { header.cast::<R>().as_ref() }
}

/// Takes the result of a terminal job out of a record, as the record's own
/// type; what a typed handle keeps beside its [`JobRef`].
pub(crate) type TakeFn<T, E> = unsafe fn(NonNull<Header>) -> Result<T, JobError<E>>;

/// A reference with its record's types: what a handle is made of.
pub(crate) struct Typed<T, E> {
    pub(crate) job: JobRef,
    /// Takes the result out of `job`'s record. Called once, on a terminal
    /// job (the handle's contract).
    pub(crate) take: TakeFn<T, E>,
}

/// The handle's way to take the result out of an `R`.
///
/// # Safety
///
/// As for [`record`], and the job is terminal.
unsafe fn take<R: Record>(header: NonNull<Header>) -> Result<R::Output, JobError<R::Error>> {
    // SAFETY: the caller's contract.
    unsafe { record::<R>(header) }.take_result()
}

/// Boxes a new record, whose header was made by `Header::new::<R>`, and
/// returns its handle and `N` more references: all counted at once, so the
/// spawning thread makes them with no atomic read-modify-write.
///
/// # Safety
///
/// A `JobRef` has no lifetime: the references outlive whatever `R`
/// borrows. If `R` is not `'static`, the caller guarantees that nothing
/// reached through a `JobRef` (a run, a cancel, the final drop) uses
/// borrowed data after it ends, as `Scope::spawn` does.
#[inline]
pub(crate) unsafe fn allocate<R: Record, const N: usize>(
    record: R,
) -> (Typed<R::Output, R::Error>, [JobRef; N]) {
    // SAFETY: the caller's contract.
    let (header, refs) = unsafe { boxed::<R, N>(record, 1) };
    // SAFETY: the extra count that `boxed` left; `take::<R>` is `R`'s.
    let job = unsafe { JobRef::adopt(header) };
    (
        Typed {
            job,
            take: take::<R>,
        },
        refs,
    )
}

/// [`allocate`] without a handle: `N` references only. The caller made the
/// header's status word without `HANDLE` (see `State::detached`), so the
/// worker drops the result as soon as the job ends.
///
/// # Safety
///
/// As for [`allocate`].
#[inline]
pub(crate) unsafe fn allocate_detached<R: Record, const N: usize>(record: R) -> [JobRef; N] {
    // SAFETY: the caller's contract; no count is left over.
    unsafe { boxed::<R, N>(record, 0) }.1
}

/// Boxes `record` with `N + extra` counts and returns its header and `N`
/// references; the caller adopts the `extra` counts left.
///
/// # Safety
///
/// As for [`allocate`], and the caller adopts exactly `extra` more
/// references to the header.
#[inline]
unsafe fn boxed<R: Record, const N: usize>(
    record: R,
    extra: usize,
) -> (NonNull<Header>, [JobRef; N]) {
    let record = Box::new(record);
    // `repr(C)`, header first (`Record`'s contract): the record's pointer
    // is the header's.
    let header = NonNull::from(Box::leak(record)).cast::<Header>();
    // SAFETY: just made, and not shared yet.
    let fresh = unsafe { header.as_ref() };
    // ORDERING: Relaxed: the record is not shared yet; whatever shares it
    // (a queue push, the index's CAS) publishes it.
    fresh.refs.store(N + extra, Relaxed);
    // SAFETY: a live, boxed `R` whose vtable is `R`'s, with `N + extra`
    // counts: one for each `JobRef` made here, `extra` for the caller.
    let refs = std::array::from_fn(|_| unsafe { JobRef::adopt(header) });
    (header, refs)
}

/// The functions of one record type, each taking a pointer to the header
/// of a live record of that type.
pub(crate) struct VTable {
    /// Runs the job on worker `worker`, counting it in the tally; returns
    /// its terminal state.
    pub(crate) run: unsafe fn(NonNull<Header>, usize, &dyn Tally) -> usize,
    /// Cancels the job (see `State::cancel`), calling the callback once it
    /// won, before any user code.
    pub(crate) cancel: unsafe fn(NonNull<Header>, usize, bool, &mut dyn FnMut()) -> Cancel,
    /// Drops the closure a `DEFERRED` cancel left (see `JobRef::discard`).
    pub(crate) discard: unsafe fn(NonNull<Header>),
    /// The handle is going away: drop an untaken result.
    pub(crate) release: unsafe fn(NonNull<Header>),
    /// The scope is ending: drop a result whose handle leaked. A no-op for
    /// jobs outside a scope.
    pub(crate) drain: unsafe fn(NonNull<Header>),
    /// Drops and frees the record; called once, by the last reference.
    pub(crate) dealloc: unsafe fn(NonNull<Header>),
}

/// One counted reference to a job's record: what the queues, the index,
/// the scope and (inside) a `JobHandle` hold.
pub(crate) struct JobRef(NonNull<Header>);

// SAFETY: a record is shared between threads by design: its job, result and
// outcome are `Send` (checked where the record is made), and every access to
// them is arbitrated by the status word; the rest of the header is atomics
// and fields written once before the record is shared.
unsafe impl Send for JobRef {}
// SAFETY: as for `Send`; `&JobRef` gives only `&Header` and the vtable
// functions, which are safe to call from several threads at once.
unsafe impl Sync for JobRef {}

impl JobRef {
    /// Takes over one of the counts of the record at `header`.
    ///
    /// # Safety
    ///
    /// `header` points at the header of a live record made by a `Box` of
    /// the type its vtable was made for, with full provenance, and the
    /// caller owns one of its counts, which it gives to the new `JobRef`.
    #[inline]
    pub(crate) unsafe fn adopt(header: NonNull<Header>) -> JobRef {
        JobRef(header)
    }

    /// Gives up the reference without dropping its count (see `adopt`).
    #[inline]
    pub(crate) fn into_raw(self) -> NonNull<Header> {
        let header = self.0;
        std::mem::forget(self);
        header
    }

    /// The record's address, for identity checks and prefetching.
    #[inline]
    pub(crate) fn as_ptr(&self) -> NonNull<Header> {
        self.0
    }

    #[inline]
    pub(crate) fn header(&self) -> &Header {
        // SAFETY: our count keeps the record alive for as long as `self`.
        unsafe { self.0.as_ref() }
    }

    /// Runs the job on worker `worker` and returns its terminal state.
    /// Only the caller that won [`claim`](super::cell::claim) may call it.
    #[inline]
    pub(crate) fn run(&self, worker: usize, tally: &dyn Tally) -> usize {
        // SAFETY: a live record of the type its vtable was made for.
        unsafe { (self.header().vtable.run)(self.0, worker, tally) }
    }

    /// Cancels the job (see [`State::cancel`](super::state::State::cancel);
    /// `running == false` leaves a running job alone). A job cancelled
    /// while queued has its closure dropped and its joiner woken here; the
    /// worker that later pops it only counts it.
    #[inline]
    pub(crate) fn cancel(&self, reason: usize, running: bool) -> Cancel {
        self.cancel_then(reason, running, &mut || {})
    }

    /// [`cancel`](Self::cancel), calling `won` as soon as it has won
    /// QUEUED → CANCELLED: before the closure's destructor or the joiner's
    /// waker, which are user code and may block (see `Places::cancel`).
    pub(crate) fn cancel_then(
        &self,
        reason: usize,
        running: bool,
        won: &mut dyn FnMut(),
    ) -> Cancel {
        // SAFETY: as in `run`.
        unsafe { (self.header().vtable.cancel)(self.0, reason, running, won) }
    }

    /// A worker popped this job and its claim failed: if the cancel left
    /// the closure to the popper (`DEFERRED`), drop it now.
    #[inline]
    pub(crate) fn discard(&self) {
        if self.header().state.load().has(state::DEFERRED) {
            // SAFETY: as in `run`; only the popper calls this, once, after
            // its failed claim, and a `DEFERRED` canceller never touches
            // the closure.
            unsafe { (self.header().vtable.discard)(self.0) }
        }
    }

    /// The job's handle is going away. Called once, by the handle.
    #[inline]
    pub(crate) fn release(&self) {
        // SAFETY: as in `run`.
        unsafe { (self.header().vtable.release)(self.0) }
    }

    /// Drops a result nobody will take (the end of a scope).
    #[inline]
    pub(crate) fn drain(&self) {
        // SAFETY: as in `run`.
        unsafe { (self.header().vtable.drain)(self.0) }
    }
}

impl Clone for JobRef {
    #[inline]
    fn clone(&self) -> JobRef {
        // ORDERING: Relaxed, as in `Arc::clone`: a new reference is made from
        // an existing one, which already keeps the record alive and visible.
        let old = self.header().refs.fetch_add(1, Relaxed);
        // As `Arc` does: a count near overflow means references are being
        // leaked in a loop; wrapping would free a record still in use.
        if old > isize::MAX as usize {
            std::process::abort();
        }
        JobRef(self.0)
    }
}

impl Drop for JobRef {
    #[inline]
    fn drop(&mut self) {
        // ORDERING: Release, as in `Arc::drop`: this reference's uses of the
        // record happen before whoever frees it.
        if self.header().refs.fetch_sub(1, Release) != 1 {
            return;
        }
        // ORDERING: Acquire pairs with every other reference's Release
        // decrement: their uses happen before the free below.
        fence(Acquire);
        // SAFETY: we dropped the last count: nobody else can reach the
        // record, and its vtable frees it as the type it was made as.
        unsafe { (self.header().vtable.dealloc)(self.0) }
    }
}

#[cfg(test)]
#[cfg(not(loom))]
mod tests {
    use super::*;
    use crate::job::cell::JobCell;
    use crate::job::JobId;

    #[test]
    fn a_job_ref_is_one_word() {
        assert_eq!(std::mem::size_of::<JobRef>(), std::mem::size_of::<usize>());
        assert_eq!(
            std::mem::size_of::<Option<JobRef>>(),
            std::mem::size_of::<usize>()
        );
    }

    #[test]
    fn the_last_reference_frees_the_record_once() {
        let drops = std::sync::Arc::new(());
        let captured = drops.clone();
        let (handle, [a]) = JobCell::spawn::<1>(JobId(1), move || drop(captured), 0);
        let b = a.clone();
        assert_eq!(a.header().refs.load(Relaxed), 3);
        drop(a);
        drop(handle);
        assert_eq!(std::sync::Arc::strong_count(&drops), 2, "b keeps it");
        drop(b);
        assert_eq!(std::sync::Arc::strong_count(&drops), 1, "freed");
    }
}
