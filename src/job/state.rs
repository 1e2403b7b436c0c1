//! The status word of a job: one `AtomicUsize` holding the lifecycle state
//! and a few flags, changed only by the transitions in this file.
//!
//! ```text
//!            start()                  finish(outcome)
//!  QUEUED ───────────────▶ RUNNING ───────────────────▶ SUCCEEDED | FAILED | PANICKED
//!     │                       │                           (CANCELLED if CANCEL_REQUESTED
//!     │ cancel()              │ cancel(): sets CANCEL_REQUESTED   was set before it returned)
//!     ▼                       ▼
//!  CANCELLED              (still RUNNING until the job returns)
//! ```
//!
//! A terminal state (`SUCCEEDED`, `FAILED`, `PANICKED`, `CANCELLED`) is final:
//! every transition below refuses to leave one.

use crate::loom::AtomicUsize;
use std::sync::atomic::Ordering::{AcqRel, Acquire};

/// Mask of the three low bits that hold the lifecycle state.
const STATE_MASK: usize = 0b111;
/// Accepted, waiting in a queue.
pub(crate) const QUEUED: usize = 0;
/// A worker has claimed the job and is running it.
pub(crate) const RUNNING: usize = 1;
/// Returned `Ok`.
pub(crate) const SUCCEEDED: usize = 2;
/// Returned `Err`.
pub(crate) const FAILED: usize = 3;
/// Panicked; the payload is in the result slot.
pub(crate) const PANICKED: usize = 4;
/// Cancelled before it started, or asked to stop while running.
pub(crate) const CANCELLED: usize = 5;

/// Set by `cancel()` on a running job; the job sees it through
/// `workyard::is_cancelled()`, and the job ends `CANCELLED` whatever it returns.
pub(crate) const CANCEL_REQUESTED: usize = 1 << 3;
/// A joiner registered a waker and wants a wake-up on completion.
pub(crate) const WAITER: usize = 1 << 4;
/// The `JobHandle` is alive; without it nobody reads the result, so the
/// worker drops the result at once instead of keeping it.
pub(crate) const HANDLE: usize = 1 << 5;
/// The result slot holds a value that nobody has taken or dropped yet.
pub(crate) const OUTPUT: usize = 1 << 6;
/// The cancellation came from a deadline rather than a caller.
pub(crate) const BY_DEADLINE: usize = 1 << 7;
/// The cancellation came from `Dispatcher::halt` or a shutdown timeout.
pub(crate) const BY_HALT: usize = 1 << 8;
/// Set with CANCELLED by a cancel through the pool, which settled the
/// job's accounts at once: it gave the job's place in a bounded queue back
/// (see `places.rs`) and counted the cancel in the pool's stats. The worker
/// that pops the job only drops it.
pub(crate) const BY_POOL: usize = 1 << 9;
/// Set with CANCELLED by a cancel that left the closure in the record for
/// the worker that pops the job to drop (the control thread's cancels: it
/// runs no user code).
pub(crate) const DEFERRED: usize = 1 << 10;
/// The flags a cancel may pass: who cancelled, and the two above.
pub(crate) const CANCEL_FLAGS: usize = BY_DEADLINE | BY_HALT | BY_POOL | DEFERRED;

/// Where the index of the worker that started the job sits: set by the
/// QUEUED → RUNNING transition itself, so a reader that sees a job started
/// sees its worker in the same load (and the record needs no field for it).
const WORKER_SHIFT: u32 = 16;
const WORKER_MASK: usize = 0xFFFF << WORKER_SHIFT;
// Every worker index fits, also where `usize` has 32 bits.
const _: () = assert!(crate::MAX_WORKERS <= 1 << 16);

/// The word a job starts with: queued, with a live handle.
pub(crate) const INITIAL: usize = QUEUED | HANDLE;

/// A copy of the status word, decoded.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct Snapshot(pub(crate) usize);

impl Snapshot {
    pub(crate) fn state(self) -> usize {
        self.0 & STATE_MASK
    }

    pub(crate) fn is_terminal(self) -> bool {
        self.state() >= SUCCEEDED
    }

    /// Did a worker ever start it? (A job cancelled while queued did not;
    /// one cancelled while running keeps `CANCEL_REQUESTED`.)
    pub(crate) fn was_started(self) -> bool {
        match self.state() {
            QUEUED => false,
            CANCELLED => self.has(CANCEL_REQUESTED),
            _ => true,
        }
    }

    pub(crate) fn has(self, flag: usize) -> bool {
        self.0 & flag != 0
    }

    /// The worker that started the job, if one did.
    pub(crate) fn worker(self) -> Option<usize> {
        self.was_started()
            .then_some((self.0 & WORKER_MASK) >> WORKER_SHIFT)
    }
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Snapshot(state={}, flags={:#x}, worker={})",
            self.state(),
            self.0 & !STATE_MASK & !WORKER_MASK,
            (self.0 & WORKER_MASK) >> WORKER_SHIFT
        )
    }
}

/// Outcome of [`State::start`].
#[must_use]
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Start {
    /// The caller now owns the job's closure and must run it.
    Run,
    /// The job was cancelled while queued; the caller must drop the closure.
    WasCancelled,
}

/// Outcome of [`State::cancel`].
#[must_use]
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Cancel {
    /// It was queued: it is now `CANCELLED` and the caller must finish it
    /// off (drop the closure, count it, wake its joiner) unless a worker
    /// will do that when it pops it.
    WasQueued(Snapshot),
    /// It is running: the stop request is set; the worker finishes it.
    Requested,
    /// Already finished, or already cancelled: nothing changed.
    TooLate,
}

/// The atomic status word of one job.
pub(crate) struct State(AtomicUsize);

impl State {
    pub(crate) fn new() -> Self {
        State(AtomicUsize::new(INITIAL))
    }

    /// The word of a job spawned without a handle: queued, and nobody
    /// will take its result.
    pub(crate) fn detached() -> Self {
        State(AtomicUsize::new(QUEUED))
    }

    /// Reads the word.
    pub(crate) fn load(&self) -> Snapshot {
        // ORDERING: Acquire pairs with the Release half of `finish`, so a
        // reader that sees a terminal state also sees the result and the
        // timestamps written before it.
        Snapshot(self.0.load(Acquire))
    }

    fn update(&self, mut f: impl FnMut(Snapshot) -> Option<usize>) -> Result<Snapshot, Snapshot> {
        // ORDERING: AcqRel: each transition publishes what was written
        // before it (result, timestamps, waiter) and sees what the previous
        // transition published.
        self.0
            .fetch_update(AcqRel, Acquire, |word| f(Snapshot(word)))
            .map(Snapshot)
            .map_err(Snapshot)
    }

    /// QUEUED → RUNNING, by worker `worker`, which popped the job.
    pub(crate) fn start(&self, worker: usize) -> Start {
        debug_assert!(worker < crate::MAX_WORKERS);
        let worker = (worker << WORKER_SHIFT) & WORKER_MASK;
        match self.update(|s| {
            (s.state() == QUEUED).then_some((s.0 & !STATE_MASK & !WORKER_MASK) | RUNNING | worker)
        }) {
            Ok(_) => Start::Run,
            Err(s) => {
                debug_assert_eq!(s.state(), CANCELLED, "a job was popped twice");
                Start::WasCancelled
            }
        }
    }

    /// QUEUED → CANCELLED, or RUNNING → RUNNING|CANCEL_REQUESTED.
    /// `flags` are some of [`CANCEL_FLAGS`]: who cancelled (`BY_DEADLINE`,
    /// `BY_HALT`, neither for a caller), and for a queued job `BY_POOL`
    /// and `DEFERRED` (a running job keeps only the first two).
    /// With `running == false`, only a queued job is cancelled.
    pub(crate) fn cancel(&self, flags: usize, running: bool) -> Cancel {
        debug_assert_eq!(flags & !CANCEL_FLAGS, 0);
        let reason = flags & (BY_DEADLINE | BY_HALT);
        let result = self.update(|s| match s.state() {
            QUEUED => Some((s.0 & !STATE_MASK) | CANCELLED | flags),
            RUNNING if running && !s.has(CANCEL_REQUESTED) => Some(s.0 | CANCEL_REQUESTED | reason),
            _ => None,
        });
        match result {
            Ok(prev) if prev.state() == QUEUED => Cancel::WasQueued(prev),
            Ok(_) => Cancel::Requested,
            Err(_) => Cancel::TooLate,
        }
    }

    /// RUNNING → terminal. `state` is the outcome the job produced; a stop
    /// request turns any outcome into `CANCELLED`. `stored` says the worker
    /// wrote the result slot: `OUTPUT` is set only if it did, no stop was
    /// requested and the handle is still alive. Returns the previous word.
    pub(crate) fn finish(&self, state: usize, stored: bool) -> Snapshot {
        let result = self.update(|s| {
            debug_assert_eq!(s.state(), RUNNING, "only a running job finishes");
            let cancelled = s.has(CANCEL_REQUESTED);
            let state = if cancelled { CANCELLED } else { state };
            let output = if stored && !cancelled && s.has(HANDLE) {
                OUTPUT
            } else {
                0
            };
            Some((s.0 & !STATE_MASK) | state | output)
        });
        match result {
            Ok(prev) | Err(prev) => prev,
        }
    }

    /// Clears `HANDLE`; returns the previous word.
    pub(crate) fn drop_handle(&self) -> Snapshot {
        // ORDERING: AcqRel: if the job is already terminal, the handle then
        // drops the result and must see it written (Acquire).
        Snapshot(self.0.fetch_and(!HANDLE, AcqRel))
    }

    /// Clears `OUTPUT` before the result is taken or dropped; `true` if it
    /// was set (the caller now owns the result). At most one caller wins.
    pub(crate) fn take_output(&self) -> bool {
        self.update(|s| s.has(OUTPUT).then_some(s.0 & !OUTPUT))
            .is_ok()
    }

    /// Sets `WAITER` after the joiner registered its waker. Returns the
    /// previous word; if it was terminal nobody will wake the joiner.
    pub(crate) fn set_waiter(&self) -> Snapshot {
        // ORDERING: AcqRel: Acquire sees the result if already finished;
        // Release orders the registration before a finisher's read of WAITER
        // (AtomicWaker itself synchronises the waker hand-off).
        Snapshot(self.0.fetch_or(WAITER, AcqRel))
    }
}

#[cfg(test)]
#[cfg(not(loom))]
mod tests {
    use super::*;

    #[test]
    fn start_then_finish() {
        let s = State::new();
        assert_eq!(s.start(3), Start::Run);
        assert_eq!(s.load().state(), RUNNING);
        assert_eq!(s.load().worker(), Some(3));
        s.finish(SUCCEEDED, true);
        let w = s.load();
        assert_eq!(w.worker(), Some(3), "the worker outlives the run");
        assert_eq!(w.state(), SUCCEEDED);
        assert!(w.has(OUTPUT) && w.has(HANDLE));
    }

    #[test]
    fn cancel_queued_prevents_start() {
        let s = State::new();
        assert!(matches!(s.cancel(0, true), Cancel::WasQueued(_)));
        assert_eq!(s.start(3), Start::WasCancelled);
        assert_eq!(s.load().state(), CANCELLED);
        assert_eq!(s.load().worker(), None, "a refused start leaves no worker");
        assert_eq!(s.cancel(0, true), Cancel::TooLate);
    }

    #[test]
    fn cancel_running_makes_outcome_cancelled() {
        let s = State::new();
        assert_eq!(s.start(4095), Start::Run);
        assert_eq!(s.cancel(BY_DEADLINE, true), Cancel::Requested);
        assert_eq!(
            s.load().worker(),
            Some(4095),
            "flags leave the worker alone"
        );
        assert_eq!(
            s.cancel(0, true),
            Cancel::TooLate,
            "second request changes nothing"
        );
        s.finish(SUCCEEDED, false);
        let w = s.load();
        assert_eq!(w.state(), CANCELLED);
        assert!(w.has(BY_DEADLINE));
    }

    #[test]
    fn queued_only_cancel_leaves_running_jobs_alone() {
        let s = State::new();
        assert_eq!(s.start(3), Start::Run);
        assert_eq!(s.cancel(0, false), Cancel::TooLate);
        assert!(!s.load().has(CANCEL_REQUESTED));
    }

    #[test]
    fn terminal_is_final() {
        let s = State::new();
        assert_eq!(s.start(3), Start::Run);
        s.finish(FAILED, true);
        assert_eq!(s.cancel(0, true), Cancel::TooLate);
        assert!(s.set_waiter().is_terminal());
        assert_eq!(s.load().state(), FAILED);
    }

    #[test]
    fn output_is_taken_once() {
        let s = State::new();
        assert_eq!(s.start(3), Start::Run);
        s.finish(SUCCEEDED, true);
        assert!(s.take_output());
        assert!(!s.take_output());
    }
}

#[cfg(all(test, loom))]
#[path = "state_loom.rs"]
mod loom_tests;
