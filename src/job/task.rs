//! [`Task`]: what the injector and the workers' deques hold.
//!
//! Most entries are spawned jobs: one `Arc` each, with a status record.
//! The forked half of a `join` is not: it lives in its caller's stack
//! frame (a [`StackJob`](crate::join)), and the deque holds a thin,
//! type-erased pointer to it, a [`StackRef`], as rayon's `JobRef` does.
//! Both variants are two words at most and the enum uses the `Arc`'s
//! non-null niche, so a `Task` is as big as the `JobRef` it replaced
//! (checked by a test below): plain spawns pay nothing for it.

use super::cell::JobRef;
use crate::worker::WorkerCtx;
use std::ptr::NonNull;

/// One entry of a work queue.
///
/// **Invariant:** a `Task::Stack` is always executed, by a thief through
/// [`WorkerCtx::execute`] or by its owner popping it back; it is never
/// dropped unrun or cancelled. Its owner's stack frame is blocked until
/// then, so dropping one would hang that caller (not corrupt memory).
pub(crate) enum Task {
    /// A spawned (or scoped) job: counted in `Pool::pending`, listed in
    /// the index, with a status record.
    Job(JobRef),
    /// The forked half of a `join`, or the body of a `Dispatcher::join`
    /// called from outside the pool, living on its caller's stack.
    Stack(StackRef),
}

impl From<JobRef> for Task {
    fn from(job: JobRef) -> Task {
        Task::Job(job)
    }
}

/// The first field of every `#[repr(C)]` stack job: how to run it. A
/// [`StackRef`] points here, so the function can cast the pointer back to
/// the whole job.
pub(crate) struct StackHead {
    /// Runs the job on the worker `ctx`, stores its result and sets its
    /// latch. After the latch is set the job may be gone.
    pub(crate) execute: unsafe fn(NonNull<StackHead>, &WorkerCtx),
}

/// A type-erased pointer to a job on some thread's stack.
pub(crate) struct StackRef(NonNull<StackHead>);

// SAFETY: a StackRef is only made (`StackRef::new`) for a stack job whose
// closure and result are `Send`, and the job is touched through it by one
// thread only: whoever popped or stole this one `StackRef`.
unsafe impl Send for StackRef {}

impl StackRef {
    /// # Safety
    ///
    /// `head` is the first field of a `#[repr(C)]` stack job whose
    /// `execute` expects that job, and the job stays alive and in place
    /// until this `StackRef` has been executed or popped back by its owner.
    #[inline]
    pub(crate) unsafe fn new(head: NonNull<StackHead>) -> StackRef {
        StackRef(head)
    }

    /// Identifies the job, so that its owner recognises it when it pops
    /// it back.
    #[inline]
    pub(crate) fn id(&self) -> *const StackHead {
        self.0.as_ptr()
    }

    /// Runs the job on worker `ctx`.
    ///
    /// # Safety
    ///
    /// The caller popped or stole this `StackRef` from a queue (so nobody
    /// else runs it) and `ctx` is the calling thread's worker context.
    pub(crate) unsafe fn execute(self, ctx: &WorkerCtx) {
        // SAFETY: by `new`'s contract the job is alive and `head` points
        // at its initialised first field.
        let execute = unsafe { self.0.as_ref().execute };
        // SAFETY: the job's own `execute`, with the pointer it expects;
        // the caller's contract says this run is the only one.
        unsafe { execute(self.0, ctx) }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn a_task_is_no_bigger_than_a_job_ref() {
        assert_eq!(std::mem::size_of::<Task>(), std::mem::size_of::<JobRef>());
    }
}
