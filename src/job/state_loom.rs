//! Loom model (a): the status word racing cancel against start against
//! finish, through the real `JobCell` (closure and result slot are loom
//! `UnsafeCell`s, so every access to them is checked against the
//! happens-before the status word provides).
//!
//! Checked in every interleaving: exactly one of the worker and the
//! canceller owns the closure (it runs at most once; its captured value is
//! dropped exactly once); the outcome the joiner gets matches who won; a
//! terminal state is final; the value written by the worker is seen by the
//! joiner (loom's cell tracking would flag a racy read).
//!
//! The joiner is always a spawned thread that does nothing but join: loom
//! fails a thread blocked in loom's own `JoinHandle::join` when an unpark
//! reaches it (std ignores such a stray unpark), and a worker may unpark a
//! joiner just after it stopped waiting.

use super::{Cancel, BY_HALT, CANCELLED, DEFERRED, SUCCEEDED};
use crate::error::JobError;
use crate::handle::JobHandle;
use crate::job::cell::{claim, JobCell, JobRef};
use crate::job::{CancelReason, JobId};
use crate::loom::{model, AtomicBool, AtomicUsize};
use loom::thread;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::Arc;

/// Counts its own drops.
struct Tracked(Arc<AtomicUsize>);

impl Drop for Tracked {
    fn drop(&mut self) {
        self.0.fetch_add(1, SeqCst);
    }
}

struct Counters {
    runs: Arc<AtomicUsize>,
    captured_drops: Arc<AtomicUsize>,
    output_drops: Arc<AtomicUsize>,
}

/// A job that counts its runs, captures a `Tracked` and returns one with 42.
#[allow(clippy::type_complexity)]
fn job() -> (JobHandle<(u32, Tracked)>, JobRef, Counters) {
    let c = Counters {
        runs: Arc::new(AtomicUsize::new(0)),
        captured_drops: Arc::new(AtomicUsize::new(0)),
        output_drops: Arc::new(AtomicUsize::new(0)),
    };
    let captured = Tracked(c.captured_drops.clone());
    let runs = c.runs.clone();
    let out = c.output_drops.clone();
    let job = move || {
        let _captured = captured;
        runs.fetch_add(1, SeqCst);
        (42u32, Tracked(out))
    };
    let (typed, [job]) = JobCell::spawn(JobId(1), job, 0);
    (JobHandle::from_typed(typed), job, c)
}

/// What the worker thread does with a popped job (`WorkerCtx::execute`):
/// `Some(outcome)` if it won the claim and ran it; if it lost, it drops the
/// closure a deferred cancel left to it (`JobRef::discard`).
fn work(job: JobRef) -> Option<usize> {
    let claimed = claim(&job, 0, crate::time::now());
    if !claimed {
        job.discard();
    }
    claimed.then(|| job.run(0, &crate::job::raw::NoTally))
}

/// Where the control thread's halt files a job (`Control::halt`).
#[derive(Debug, PartialEq, Eq)]
enum Halted {
    NeverStarted,
    Interrupted,
    AlreadyOver,
}

fn halted(cancel: Cancel) -> Halted {
    match cancel {
        Cancel::WasQueued(_) => Halted::NeverStarted,
        Cancel::Requested => Halted::Interrupted,
        Cancel::TooLate => Halted::AlreadyOver,
    }
}

#[test]
fn cancel_races_start_and_finish() {
    model("state: cancel vs start vs finish, joined", || {
        let (handle, job, c) = job();
        let worker = {
            let job = job.clone();
            thread::spawn(move || work(job))
        };
        let canceller = {
            let job = job.clone();
            thread::spawn(move || job.cancel(0, true))
        };
        let joiner = thread::spawn(move || handle.join());
        let ran = worker.join().unwrap();
        let cancel = canceller.join().unwrap();
        let joined = joiner.join().unwrap();

        let runs = c.runs.load(SeqCst);
        match cancel {
            Cancel::WasQueued(_) => {
                assert_eq!(ran, None, "cancelled while queued, yet claimed");
                assert_eq!(runs, 0);
                assert!(matches!(
                    joined,
                    Err(JobError::Cancelled(CancelReason::Caller))
                ));
            }
            Cancel::Requested => {
                assert_eq!(ran, Some(CANCELLED));
                assert_eq!(runs, 1);
                assert!(matches!(joined, Err(JobError::Cancelled(_))));
            }
            Cancel::TooLate => {
                assert_eq!(ran, Some(SUCCEEDED));
                assert_eq!(runs, 1);
                let (v, out) = joined.expect("finished before the cancel");
                assert_eq!(v, 42);
                drop(out);
            }
        }
        assert_eq!(c.captured_drops.load(SeqCst), 1, "closure dropped once");
        assert_eq!(c.output_drops.load(SeqCst), runs, "output dropped once");
        // Terminal is final.
        let before = job.header().state.load();
        assert!(before.is_terminal());
        assert_eq!(job.cancel(BY_HALT, true), Cancel::TooLate);
        assert_eq!(job.header().state.load(), before);
    });
}

#[test]
fn two_cancellers_race_the_worker() {
    model("state: caller cancel vs halt cancel vs worker", || {
        let (handle, job, c) = job();
        let worker = {
            let job = job.clone();
            thread::spawn(move || work(job))
        };
        let halter = {
            let job = job.clone();
            thread::spawn(move || job.cancel(BY_HALT | DEFERRED, true))
        };
        let joiner = thread::spawn(move || handle.join());
        // `JobHandle::cancel` is this call with reason 0.
        let by_caller = job.cancel(0, true) != Cancel::TooLate;
        let ran = worker.join().unwrap();
        let by_halt = halter.join().unwrap();
        let joined = joiner.join().unwrap();

        // At most one cancellation takes effect, and only before the finish.
        let effective = usize::from(by_caller) + usize::from(by_halt != Cancel::TooLate);
        assert!(effective <= 1, "two cancellations took effect");
        let word = job.header().state.load();
        assert!(word.is_terminal());
        assert_eq!(effective == 1, word.state() == CANCELLED);
        assert_eq!(ran.is_some(), c.runs.load(SeqCst) == 1);
        if matches!(by_halt, Cancel::WasQueued(_)) {
            assert_eq!(ran, None, "cancelled while queued, yet claimed");
        }
        match joined {
            Ok((42, out)) => {
                assert_eq!(effective, 0);
                drop(out);
            }
            Ok(_) => unreachable!(),
            Err(JobError::Cancelled(reason)) => {
                let expected = if by_caller {
                    CancelReason::Caller
                } else {
                    CancelReason::Halt
                };
                assert_eq!(reason, expected);
            }
            Err(_) => panic!("neither succeeded nor cancelled"),
        }
        assert_eq!(c.captured_drops.load(SeqCst), 1);
        assert_eq!(c.output_drops.load(SeqCst), c.runs.load(SeqCst));
    });
}

#[test]
fn halt_races_the_workers_pop_and_claim() {
    model(
        "state: halt (gate, deferred walk) vs worker (pop, gate check, claim)",
        || {
            let (handle, job, c) = job();
            let gate = Arc::new(AtomicBool::new(false));
            let worker = {
                let (job, gate) = (job.clone(), gate.clone());
                // `WorkerCtx::execute`: the gate is checked after the pop; a
                // job taken while it is closed is held, and runs (or is
                // discarded) once it opens again.
                thread::spawn(move || {
                    while gate.load(SeqCst) {
                        thread::yield_now();
                    }
                    work(job)
                })
            };
            // `Control::halt`: close the gate, cancel leaving the closure
            // to the popper (the control thread runs no user code), open.
            gate.store(true, SeqCst);
            let reported = halted(job.cancel(BY_HALT | DEFERRED, true));
            gate.store(false, SeqCst);
            let ran = worker.join().unwrap();
            // What the report says is what happened to the job.
            match reported {
                Halted::NeverStarted => assert_eq!((ran, c.runs.load(SeqCst)), (None, 0)),
                Halted::Interrupted => assert_eq!(ran, Some(CANCELLED)),
                Halted::AlreadyOver => assert_eq!(ran, Some(SUCCEEDED)),
            }
            let joined = handle.join();
            assert_eq!(joined.is_ok(), reported == Halted::AlreadyOver);
            assert_eq!(c.captured_drops.load(SeqCst), 1, "closure dropped once");
        },
    );
}
