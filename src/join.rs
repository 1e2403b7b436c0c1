//! Fork-join: [`join`](crate::join) and [`Dispatcher::join`] run two
//! closures, in parallel when a peer is free, without a heap allocation.
//! (The free `join` picks its pool in `global.rs`: the current worker's,
//! else the global dispatcher's.)
//!
//! On a worker, a `join` is two plain calls: the caller keeps closure `b`
//! in a [`StackJob`] in its own frame, pushes it on the worker's
//! `Pending` stack (`job::pending`: a few plain stores, nothing atomic),
//! runs `a`, pops `b` back and runs it inline. Only when an idle peer has
//! asked for work (its steal request, `request.rs`: one relaxed load per
//! `join`) does a `join` publish the *oldest* half still pending, the
//! largest piece of work, as a [`StackRef`] on its deque, where thieves
//! see it and the wake protocol covers it as any push. This is heartbeat
//! scheduling as in Spice and chili (see `request.rs` for what is taken
//! from them and what differs): a `join` nobody needs costs about as
//! much as a function call, so the user needs no sequential cutoff. On a
//! pool's only worker (`request::SOLO`, until a peer starts) not even the
//! half is pushed: `a` and `b` are two plain calls, so a `join` entered
//! before the pool grew keeps its `b` for itself (`request.rs`).
//!
//! A published half's `join` ends as every `join` did before: it pops its
//! deque; if `b` is still there it runs it inline; if a thief took it,
//! the caller waits on the job's [`Latch`], running other jobs meanwhile
//! (`worker::wait_until`). Either way the frame outlives every use of
//! the `StackRef`, which is what makes the stack allocation sound.
//!
//! Panics in either half are caught, the other half still runs to the
//! end, and then the panic resumes in the caller (the first half's if
//! both panicked). If only `b` panics, `a`'s result is dropped while that
//! panic unwinds, so a result whose `Drop` panics too aborts the process,
//! as any double panic does. See `docs/forkjoin.md` for the protocol in
//! full.

use crate::job::cell::{self, CurrentGuard, Header};
use crate::job::task::{StackHead, StackRef, Task};
use crate::loom::{AtomicUsize, UnsafeCell};
use crate::pool::Pool;
use crate::request;
use crate::stats::WorkerState;
use crate::worker::{self, WorkerCtx};
use crate::{unwind, Arc};
use std::any::Any;
use std::mem;
use std::panic::resume_unwind;
use std::ptr::{self, NonNull};
use std::sync::atomic::Ordering::{Acquire, Release};
use std::thread::{self, Thread};

/// A closure's outcome: its value, or the payload it panicked with.
type Caught<R> = Result<R, Box<dyn Any + Send>>;

/// Nobody waits yet; a setter only has to flip the state.
const UNSET: usize = 0;
/// The owner stored its `Thread` in `sleeper` and may park: the setter
/// must unpark it.
const SLEEPY: usize = 1;
/// Set; the setter no longer touches the latch, which may be gone.
const SET: usize = 2;

/// A one-shot completion flag with a single waiter, its owner.
///
/// The owner only parks after announcing it (`UNSET → SLEEPY`, having
/// stored its `Thread`); a setter that sees `SLEEPY` takes the `Thread`
/// *before* storing `SET`, because once `SET` is visible the owner may
/// return and free the latch. So the setter never touches the latch after
/// `SET`, and the owner never leaves before it.
pub(crate) struct Latch {
    state: AtomicUsize,
    /// Written by the owner only while `UNSET`; taken by the setter only
    /// after it saw `SLEEPY`, before it stores `SET`.
    sleeper: UnsafeCell<Option<Thread>>,
}

// SAFETY: `sleeper` is accessed by one thread at a time, as arbitrated by
// `state` (see the field comment); `Thread` is `Send`.
unsafe impl Sync for Latch {}

impl Latch {
    pub(crate) fn new() -> Latch {
        Latch {
            state: AtomicUsize::new(UNSET),
            sleeper: UnsafeCell::new(None),
        }
    }

    /// `true` once set.
    #[inline]
    pub(crate) fn probe(&self) -> bool {
        // ORDERING: Acquire pairs with the Release stores in `set`, so the
        // owner sees everything written before the latch was set.
        self.state.load(Acquire) == SET
    }

    /// Blocks until set, by the owner only (one thread, once). On a worker
    /// thread it runs other jobs meanwhile.
    pub(crate) fn wait(&self) {
        if self.probe() {
            return;
        }
        // SAFETY: the state is not SET, and only SLEEPY (set just below,
        // by us) lets a setter read the slot, so we are its only user.
        self.sleeper
            .with_mut(|p| unsafe { *p = Some(thread::current()) });
        // ORDERING: Release publishes the `Thread` to the setter that will
        // see SLEEPY; Acquire on failure (already SET) sees the result.
        if self
            .state
            .compare_exchange(UNSET, SLEEPY, Release, Acquire)
            .is_ok()
        {
            worker::wait_until(|| self.probe(), None);
        }
        debug_assert!(self.probe());
    }

    /// Sets the latch and unparks its owner if it may be parked.
    ///
    /// # Safety
    ///
    /// `this` is alive until the state turns SET, and this is the latch's
    /// only `set`. A raw pointer rather than `&self`: the latch may be freed
    /// while this function is still running.
    pub(crate) unsafe fn set(this: *const Latch) {
        // SAFETY: alive until we store SET (the caller's contract).
        let latch = unsafe { &*this };
        // ORDERING: Release on success publishes the job's result to the
        // owner's Acquire `probe`. Acquire on failure sees the `Thread`
        // that the owner stored before its Release CAS to SLEEPY.
        if latch
            .state
            .compare_exchange(UNSET, SET, Release, Acquire)
            .is_ok()
        {
            return;
        }
        // SLEEPY: the owner waits for SET, so the slot is ours until then.
        // SAFETY: as just said; the Acquire above saw the owner's write.
        let sleeper = latch.sleeper.with_mut(|p| unsafe { (*p).take() });
        // ORDERING: Release publishes the result (written before this call)
        // to the owner's Acquire `probe`. `latch` is not used again.
        latch.state.store(SET, Release);
        if let Some(thread) = sleeper {
            thread.unpark();
        }
    }
}

/// Aborts the process if dropped during unwinding: armed while a stack
/// frame is visible to other threads through a `StackRef` (or to running
/// scoped jobs), where unwinding out of the frame would free memory they
/// still use. Everything in such regions runs under `catch_unwind`, so it
/// never fires unless workyard itself has a bug.
pub(crate) struct AbortOnUnwind;

impl Drop for AbortOnUnwind {
    fn drop(&mut self) {
        eprintln!("workyard: unwinding out of a frame that other threads still use; aborting");
        std::process::abort();
    }
}

/// A job in its caller's stack frame: the forked half of a `join`, or the
/// body of a `Dispatcher::join` from outside the pool.
///
/// `#[repr(C)]` with `head` first, so that a pointer to `head` (what a
/// [`StackRef`] holds) is a pointer to the whole job.
#[repr(C)]
pub(crate) struct StackJob<F, R> {
    head: StackHead,
    latch: Latch,
    /// The status record of the job that forked this one (null outside
    /// any job): a thief runs the half "inside" that job, so that
    /// `is_cancelled()` and `current_job()` answer for it. It outlives us:
    /// that job is blocked in `join` until we are done.
    parent: *const Header,
    /// `Some` until the one runner takes it.
    func: UnsafeCell<Option<F>>,
    /// Written once by a thief before it sets the latch.
    result: UnsafeCell<Option<Caught<R>>>,
}

impl<F, R> StackJob<F, R>
where
    F: FnOnce() -> R + Send,
    R: Send,
{
    fn new(func: F, parent: *const Header) -> Self {
        StackJob {
            head: StackHead::new(Self::execute),
            latch: Latch::new(),
            parent,
            func: UnsafeCell::new(Some(func)),
            result: UnsafeCell::new(None),
        }
    }

    /// # Safety
    ///
    /// `self` stays alive and in place until the returned `StackRef` was
    /// executed (its latch is set) or popped back by the caller.
    unsafe fn as_task(&self) -> StackRef {
        // SAFETY: `head_ptr` is the first field of this `#[repr(C)]` job,
        // with provenance over all of it, and `execute` is
        // `Self::execute`; lifetime: the caller's contract.
        unsafe { StackRef::new(self.head_ptr()) }
    }

    /// A pointer to `head` that may reach the whole job (`#[repr(C)]`,
    /// `head` first), as a thief casting it back needs.
    #[inline]
    fn head_ptr(&self) -> NonNull<StackHead> {
        NonNull::from(self).cast()
    }

    /// `StackHead::execute` for this job type: runs it on a thief (or on
    /// the worker that took it from the injector), stores the outcome,
    /// sets the latch.
    ///
    /// # Safety
    ///
    /// `head` comes from `as_task` on a live `StackJob<F, R>`, and this is
    /// its only run.
    unsafe fn execute(head: NonNull<StackHead>, ctx: NonNull<()>) {
        // SAFETY: `StackRef::execute`'s contract: `ctx` is the calling
        // thread's worker context.
        let ctx = unsafe { ctx.cast::<WorkerCtx>().as_ref() };
        let this: *const Self = head.as_ptr().cast();
        // SAFETY: `head` is the first field of a `#[repr(C)] StackJob<F, R>`
        // (as_task), alive until we set the latch.
        let job = unsafe { &*this };
        // SAFETY: we are the only runner; the owner touches `func` only
        // after popping the job back, which it cannot now (we hold it).
        let func = job.func.with_mut(|p| unsafe { (*p).take() });
        let func = func.expect("a stack job runs once");
        let parent = job.parent;
        let counters = &ctx.pool.slots()[ctx.index].counters;
        let parent_id = if parent.is_null() {
            0
        } else {
            // SAFETY: a non-null parent outlives the join (see the field).
            unsafe { (*parent).id.0 }
        };
        let outer = counters.set_current(parent_id);
        counters.set_state(WorkerState::Running);
        let result = {
            let _current = CurrentGuard::enter_raw(parent);
            unwind::catch(func)
        };
        // SAFETY: nobody reads `result` before the latch is set.
        job.result.with_mut(|p| unsafe { *p = Some(result) });
        // SAFETY: the owner waits for this latch, so the job is alive until
        // it is set; we never touch `job` again afterwards.
        unsafe { Latch::set(&job.latch) };
        counters.set_current(outer);
        if outer == 0 {
            counters.set_state(WorkerState::Idle);
        }
    }

    /// Runs the job on its owner's thread, after the owner popped it back
    /// (or never published it).
    #[inline]
    fn run_inline(&self) -> R {
        // SAFETY: popped back: no other thread has or will have a StackRef.
        let func = self.func.with_mut(|p| unsafe { (*p).take() });
        func.expect("a stack job runs once")()
    }

    /// `run_inline`, catching a panic (when `a` already panicked).
    fn run_inline_caught(&self) -> Caught<R> {
        unwind::catch(|| self.run_inline())
    }

    /// The outcome left by the thief, once the latch is set.
    fn take_result(&self) -> Caught<R> {
        debug_assert!(self.latch.probe());
        // SAFETY: the latch is set (Acquire), so the thief wrote the slot
        // and is done with the job.
        let result = self.result.with_mut(|p| unsafe { (*p).take() });
        result.expect("a set latch means the result is stored")
    }
}

/// Returns both results, or resumes a panic: `a`'s if both panicked.
fn finish<RA, RB>(a: Caught<RA>, b: Caught<RB>) -> (RA, RB) {
    match (a, b) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(payload), b) => {
            unwind::drop_quietly(b);
            resume_unwind(payload)
        }
        (Ok(a), Err(payload)) => {
            unwind::drop_quietly(a);
            resume_unwind(payload)
        }
    }
}

/// Runs `a` then `b` on the calling thread, with `join`'s panic rules.
pub(crate) fn join_sequential<A, B, RA, RB>(a: A, b: B) -> (RA, RB)
where
    A: FnOnce() -> RA,
    B: FnOnce() -> RB,
{
    let a = unwind::catch(a);
    let b = unwind::catch(b);
    finish(a, b)
}

/// `join` on the pool's only worker (`request::SOLO`): no peer can take
/// `b`, so both are plain calls, with `join`'s panic rules.
#[inline]
fn join_alone<A, B, RA, RB>(a: A, b: B) -> (RA, RB)
where
    A: FnOnce() -> RA,
    B: FnOnce() -> RB,
{
    match unwind::catch(a) {
        // Nothing to wait for if `b` panics: let it unwind from here.
        Ok(a) => (a, b()),
        Err(payload) => finish(Err(payload), unwind::catch(b)),
    }
}

/// `join` on worker `ctx`: `a` runs here, then `b`, both as plain calls,
/// unless a peer's steal request published `b` meanwhile (module doc).
#[inline]
pub(crate) fn join_in_worker<A, B, RA, RB>(ctx: &WorkerCtx, a: A, b: B) -> (RA, RB)
where
    A: FnOnce() -> RA + Send,
    B: FnOnce() -> RB + Send,
    RA: Send,
    RB: Send,
{
    join_in_worker_at(ctx, ctx.request().state(), a, b)
}

/// `join_in_worker`, with the worker's request state already read.
#[inline]
fn join_in_worker_at<A, B, RA, RB>(ctx: &WorkerCtx, request: usize, a: A, b: B) -> (RA, RB)
where
    A: FnOnce() -> RA + Send,
    B: FnOnce() -> RB + Send,
    RA: Send,
    RB: Send,
{
    if request == request::SOLO {
        return join_alone(a, b);
    }
    let job_b = StackJob::new(b, cell::current_header());
    let head = job_b.head_ptr();
    // From the push until `b` is popped back (off `pending`, or off the
    // deque if it was published) or its latch is set, `pending` or another
    // thread holds a pointer into this frame: it must not unwind meanwhile.
    let guard = AbortOnUnwind;
    // SAFETY: `job_b` stays in this frame, unmoved, until its `pop` below,
    // which comes after those of the joins inside `a` (they return first);
    // if published, until it is popped back or its latch is set (in
    // `join_published`); `guard` rules out unwinding before.
    unsafe { ctx.pending.push(head) };
    if request == request::RAISED {
        ctx.on_request();
    }
    let result_a = unwind::catch(a);
    if ctx.pending.pop(head) {
        return join_published(ctx, &job_b, result_a, guard);
    }
    // Never published: nobody else ever saw `job_b`.
    mem::forget(guard);
    match result_a {
        Ok(a) => {
            // Nothing to wait for if `b` panics: let it unwind from here.
            let b = job_b.run_inline();
            // Nothing left in it to drop (`func` taken, no result, no
            // sleeper): skip the drop glue's checks.
            mem::forget(job_b);
            (a, b)
        }
        Err(payload) => finish(Err(payload), job_b.run_inline_caught()),
    }
}

/// The end of a `join` whose `b` a steal request published: as every `join`
/// did before, take it back from the deque and run it, or, if
/// a thief took it, wait for its latch, running other jobs meanwhile.
#[cold]
#[inline(never)]
fn join_published<B, RA, RB>(
    ctx: &WorkerCtx,
    job_b: &StackJob<B, RB>,
    result_a: Caught<RA>,
    guard: AbortOnUnwind,
) -> (RA, RB)
where
    B: FnOnce() -> RB + Send,
    RB: Send,
{
    let b_id = job_b.head_ptr().as_ptr().cast_const();
    let result_b = if pop_back(ctx, &job_b.latch, b_id) {
        // Popped back: nobody else can see `job_b` any more.
        mem::forget(guard);
        if let Ok(a) = result_a {
            return (a, job_b.run_inline());
        }
        job_b.run_inline_caught()
    } else {
        job_b.latch.wait();
        mem::forget(guard);
        job_b.take_result()
    };
    finish(result_a, result_b)
}

/// After `a`: pops the local deque down to `b`. Returns `true` if it found
/// `b` (nobody stole it: the caller runs it), `false` if `b` was stolen or
/// already ran (the caller waits on its latch). Jobs pushed above `b` run
/// here, except while the pool is paused or this worker is being halted:
/// then they are put back as they were (taking our own `b` back is not
/// starting a new job), and a halted worker hands them on as it leaves.
#[inline]
fn pop_back(ctx: &WorkerCtx, latch: &Latch, b_id: *const StackHead) -> bool {
    let mut set_aside = Vec::new();
    let found = loop {
        if latch.probe() {
            // A wait inside `a` popped `b` and ran it already.
            break false;
        }
        match ctx.local.pop() {
            None => break false,
            Some(task) if task.is_stack(b_id) => break true,
            Some(task) if ctx.pool.is_paused() || ctx.is_halting() => set_aside.push(task),
            Some(task) => ctx.execute(task),
        }
    };
    if !set_aside.is_empty() {
        put_back(ctx, set_aside);
    }
    found
}

/// Pushes the tasks `pop_back` set aside again, in their old order.
#[cold]
fn put_back(ctx: &WorkerCtx, set_aside: Vec<Task>) {
    for task in set_aside.into_iter().rev() {
        ctx.local.push(task);
    }
}

/// `Dispatcher::join` from a thread that is not one of the pool's
/// workers: the pair runs on the pool while this thread blocks. Refused
/// (the pool is shut down): both halves run here.
pub(crate) fn join_cold<A, B, RA, RB>(pool: &Arc<Pool>, a: A, b: B) -> (RA, RB)
where
    A: FnOnce() -> RA + Send,
    B: FnOnce() -> RB + Send,
    RA: Send,
    RB: Send,
{
    if pool.admit().is_none() {
        return join_sequential(a, b);
    }
    run_admitted(pool, move || {
        worker::with_current(|ctx| {
            let ctx = ctx.expect("a stack task runs on a worker");
            join_in_worker(ctx, a, b)
        })
    })
}

/// Runs `f` on one of `pool`'s workers and blocks this thread (on a
/// worker of another pool: runs that pool's jobs) until it returned; a
/// panic in `f` resumes here. The caller admitted `f` (`Pool::admit`):
/// counted in `pending`, it keeps the workers alive and makes
/// `wait_idle`/`shutdown` wait for it; it is counted out here.
pub(crate) fn run_admitted<F, R>(pool: &Arc<Pool>, f: F) -> R
where
    F: FnOnce() -> R + Send,
    R: Send,
{
    let job = StackJob::new(f, ptr::null());
    let guard = AbortOnUnwind;
    // SAFETY: `job` stays in this frame until its latch is set (a worker
    // always runs a queued stack task; `guard` rules out unwinding).
    let task = unsafe { job.as_task() };
    pool.injector().push(Task::stack(task));
    pool.wake_one();
    job.latch.wait();
    mem::forget(guard);
    // Counted out like a refused job: no worker counted it as finished.
    pool.unadmit();
    match job.take_result() {
        Ok(value) => value,
        Err(payload) => resume_unwind(payload),
    }
}

/// `join` on the worker this thread is, if it is one; the pair back
/// otherwise (the caller picks a pool: see `global::join`).
#[inline]
pub(crate) fn join_on_worker<A, B, RA, RB>(a: A, b: B) -> Result<(RA, RB), (A, B)>
where
    A: FnOnce() -> RA + Send,
    B: FnOnce() -> RB + Send,
    RA: Send,
    RB: Send,
{
    // The request first: on a solo worker it is all a `join` reads.
    let Some(request) = worker::request_state() else {
        return Err((a, b));
    };
    if request == request::SOLO {
        return Ok(join_alone(a, b));
    }
    worker::with_current(|ctx| {
        let ctx = ctx.expect("a thread with a steal request is a worker");
        Ok(join_in_worker_at(ctx, request, a, b))
    })
}

#[cfg(test)]
#[cfg(not(loom))]
mod tests {
    use crate::request::SOLO;
    use crate::Dispatcher;

    // A whole pool: crossbeam-epoch needs Tree Borrows under Miri, and the
    // unit tests run under Stacked Borrows (see `.ci/run`); the solo path
    // itself has no unsafe code.
    #[test]
    #[cfg_attr(miri, ignore)]
    fn a_pool_s_only_worker_is_solo_until_a_peer_starts() {
        let pool = Dispatcher::builder().workers(1).build().unwrap();
        let state = |pool: &Dispatcher, i: usize| pool.pool().slots()[i].request.state();
        assert_eq!(state(&pool, 0), SOLO);
        // `set_workers` returns once the new worker runs; the control
        // thread raised the first one's request before starting it.
        pool.set_workers(2).unwrap();
        assert_ne!(state(&pool, 0), SOLO);
        assert_ne!(state(&pool, 1), SOLO);
        let two = Dispatcher::builder().workers(2).build().unwrap();
        assert_ne!(state(&two, 0), SOLO);
        assert_ne!(state(&two, 1), SOLO);
    }
}
