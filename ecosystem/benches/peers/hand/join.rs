//! Fork-join on the hand-rolled pool, the way a user adds it: `b` goes on
//! the local deque as a boxed job borrowing the caller's stack, `a` runs
//! inline, and the caller runs other jobs until `b` is done. Unlike rayon it
//! allocates per join; that is what a boxed-job pool costs.

use super::{find_task, HandPool, Task, LOCAL};
use crossbeam_utils::Backoff;
use std::cell::{Cell, UnsafeCell};
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::{Acquire, Release};
use std::thread::{self, Thread};

/// A job whose closure and result live on the stack of whoever waits for it.
struct StackJob<R> {
    done: AtomicBool,
    result: UnsafeCell<Option<thread::Result<R>>>,
    /// Unparked once `done` is set, for a waiter that blocks.
    waiter: Option<Thread>,
}

// SAFETY: `result` is written by the one task before `done` is set (Release)
// and read by the owner only after it saw `done` (Acquire).
unsafe impl<R: Send> Sync for StackJob<R> {}

impl<R: Send> StackJob<R> {
    fn new(waiter: Option<Thread>) -> Self {
        StackJob {
            done: AtomicBool::new(false),
            result: UnsafeCell::new(None),
            waiter,
        }
    }

    /// The boxed task that runs `f` into this job. The caller must not let
    /// `self` go before `done` is set.
    fn task<'a, F: FnOnce() -> R + Send + 'a>(&'a self, f: F) -> Task
    where
        R: 'a,
    {
        let run: Box<dyn FnOnce() + Send + 'a> = Box::new(move || {
            let result = catch_unwind(AssertUnwindSafe(f));
            // SAFETY: only this task writes `result`, before `done`.
            unsafe { *self.result.get() = Some(result) };
            // Cloned first: once `done` is set the owner may free `self`.
            let waiter = self.waiter.clone();
            self.done.store(true, Release);
            if let Some(waiter) = waiter {
                waiter.unpark();
            }
        });
        // SAFETY: only the lifetime changes. Both callers keep `self` and
        // everything `f` borrows alive until `done` is set, which is the
        // task's last use of them, and a queued task is never dropped unrun
        // (the pool runs every job before its threads exit).
        unsafe { std::mem::transmute::<Box<dyn FnOnce() + Send + 'a>, Task>(run) }
    }

    fn into_result(self) -> thread::Result<R> {
        self.result
            .into_inner()
            .expect("a done job holds its result")
    }
}

/// Runs `a` and `b`, potentially in parallel, like `rayon::join`. Outside a
/// worker of a hand-rolled pool it runs them one after the other. While `b`
/// runs elsewhere the caller runs other jobs, spins briefly, then parks
/// until `b`'s thief unparks it.
pub fn join<A, B, RA, RB>(a: A, b: B) -> (RA, RB)
where
    A: FnOnce() -> RA + Send,
    B: FnOnce() -> RB + Send,
    RA: Send,
    RB: Send,
{
    let (pool, local) = LOCAL.with(Cell::get);
    if pool.is_null() {
        return (a(), b());
    }
    // SAFETY: LOCAL is set only while this thread runs its worker loop, which
    // is below us on this stack, so both pointers are live.
    let (pool, local) = unsafe { (&*pool, &*local) };
    // Our thread, so that a thief finishing `b` can unpark us.
    let job_b = StackJob::new(Some(thread::current()));
    pool.push(job_b.task(b));
    // `b` borrows our stack: even if `a` panics we must wait for it.
    let ra = catch_unwind(AssertUnwindSafe(a));
    let backoff = Backoff::new();
    while !job_b.done.load(Acquire) {
        match find_task(local, &pool.injector, &pool.stealers) {
            Some(task) => {
                pool.execute(task);
                backoff.reset();
            }
            // Spinning on past this would take the CPU from the thief that
            // runs `b` whenever the machine has fewer free cores than workers.
            None if backoff.is_completed() => thread::park(),
            None => backoff.snooze(),
        }
    }
    match (ra, job_b.into_result()) {
        (Ok(ra), Ok(rb)) => (ra, rb),
        (Err(payload), _) | (_, Err(payload)) => resume_unwind(payload),
    }
}

impl HandPool {
    /// Runs `f` on one of the workers and returns its result, like
    /// `rayon::ThreadPool::install`. Call it from outside the pool.
    pub fn install<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        let job = StackJob::new(Some(thread::current()));
        self.shared.push(job.task(f));
        while !job.done.load(Acquire) {
            thread::park();
        }
        job.into_result()
            .unwrap_or_else(|payload| resume_unwind(payload))
    }
}
