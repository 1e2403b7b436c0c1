//! [`Task`]: what the injector and the workers' deques hold.
//!
//! Most entries are spawned jobs: a [`JobRef`] each, with a status record.
//! The forked half of a `join` is not: it lives in its caller's stack
//! frame (a [`StackJob`](crate::join)), and the deque holds a thin,
//! type-erased pointer to it, a [`StackRef`], as rayon's `JobRef` does.
//! Both are one aligned pointer, so a `Task` is one word with the kind in
//! its low bit (checked by a test below): a queue slot is as small as it
//! can be, and plain spawns pay one bit test for sharing it with `join`.

use super::cell::{Header, JobRef};
use std::cell::Cell;
use std::mem::ManuallyDrop;
use std::ptr::NonNull;

/// One entry of a work queue: a [`JobRef`] or a [`StackRef`], as one
/// pointer whose low bit is set for a `StackRef`.
///
/// **Invariant:** a stack task is always executed, by a thief through
/// the worker's `execute` or by its owner popping it back; it is never
/// dropped unrun or cancelled. Its owner's stack frame is blocked until
/// then, so dropping one would hang that caller (not corrupt memory).
pub(crate) struct Task(NonNull<u8>);

/// The low bit of a [`Task`]: set for a stack job.
const STACK: usize = 1;

// Both kinds of pointer leave the low bit free.
const _: () = assert!(std::mem::align_of::<Header>() > STACK);
const _: () = assert!(std::mem::align_of::<StackHead>() > STACK);

/// What a [`Task`] holds, unpacked.
pub(crate) enum Kind {
    /// A spawned (or scoped) job: counted in `Pool::pending`, listed in
    /// the index, with a status record.
    Job(JobRef),
    /// The forked half of a `join`, or the body of a `Dispatcher::join`
    /// called from outside the pool, living on its caller's stack.
    Stack(StackRef),
}

// SAFETY: a `Task` is a `JobRef` or a `StackRef`, and both are `Send`.
unsafe impl Send for Task {}

impl Task {
    #[inline]
    pub(crate) fn job(job: JobRef) -> Task {
        Task(job.into_raw().cast())
    }

    #[inline]
    pub(crate) fn stack(stack: StackRef) -> Task {
        // The tag by pointer arithmetic, which keeps the provenance.
        Task(NonNull::new(stack.0.as_ptr().cast::<u8>().wrapping_add(STACK)).expect("aligned"))
    }

    #[inline]
    fn is_stack_task(&self) -> bool {
        self.0.as_ptr() as usize & STACK != 0
    }

    /// Is this the stack job `id`? (How a `join` recognises its own half.)
    #[inline]
    pub(crate) fn is_stack(&self, id: *const StackHead) -> bool {
        self.is_stack_task() && self.0.as_ptr().wrapping_sub(STACK).cast_const().cast() == id
    }

    /// Unpacks the task.
    #[inline]
    pub(crate) fn into_kind(self) -> Kind {
        let this = ManuallyDrop::new(self);
        if this.is_stack_task() {
            let head = this.0.as_ptr().wrapping_sub(STACK).cast::<StackHead>();
            // SAFETY: made by `Task::stack` from a non-null `StackRef`.
            Kind::Stack(StackRef(unsafe { NonNull::new_unchecked(head) }))
        } else {
            // SAFETY: made by `Task::job`, whose count we take over.
            Kind::Job(unsafe { JobRef::adopt(this.0.cast()) })
        }
    }
}

impl Drop for Task {
    fn drop(&mut self) {
        if !self.is_stack_task() {
            // SAFETY: made by `Task::job`; we give its count up.
            drop(unsafe { JobRef::adopt(self.0.cast()) });
        }
    }
}

impl From<JobRef> for Task {
    fn from(job: JobRef) -> Task {
        Task::job(job)
    }
}

/// The first field of every `#[repr(C)]` stack job: how to run it. A
/// [`StackRef`] points here, so the function can cast the pointer back to
/// the whole job.
///
/// The two links chain a worker's pending `join` halves (see
/// [`Pending`](super::pending::Pending)); only the thread whose stack holds
/// the job touches them, never a thief.
pub(crate) struct StackHead {
    /// Runs the job on the worker whose context (a `worker::WorkerCtx`,
    /// erased: the record layer does not know the worker layer) is the
    /// second argument, stores its result and sets its latch. After the
    /// latch is set the job may be gone.
    pub(crate) execute: unsafe fn(NonNull<StackHead>, NonNull<()>),
    /// The next older pending half (null at the bottom).
    pub(super) older: Cell<*const StackHead>,
    /// The half pushed on top of this one most recently; valid while this
    /// one is not the top.
    pub(super) newer: Cell<*const StackHead>,
}

impl StackHead {
    #[inline]
    pub(crate) fn new(execute: unsafe fn(NonNull<StackHead>, NonNull<()>)) -> StackHead {
        StackHead {
            execute,
            older: Cell::new(std::ptr::null()),
            newer: Cell::new(std::ptr::null()),
        }
    }
}

/// A type-erased pointer to a job on some thread's stack.
pub(crate) struct StackRef(NonNull<StackHead>);

// SAFETY: a StackRef is only made (`StackRef::new`) for a stack job whose
// closure and result are `Send`, and the job is touched through it by one
// thread only: whoever popped or stole this one `StackRef`. (Its owner
// still writes the head's links meanwhile, which the runner never reads.)
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

    /// Identifies the job (the owner recognises its own by address).
    #[cfg(all(test, not(loom)))]
    pub(crate) fn id(&self) -> *const StackHead {
        self.0.as_ptr()
    }

    /// Runs the job on the worker whose context `ctx` points to.
    ///
    /// # Safety
    ///
    /// The caller popped or stole this `StackRef` from a queue (so nobody
    /// else runs it) and `ctx` points to the calling thread's worker
    /// context (the `worker::WorkerCtx` that the job's `execute` expects).
    pub(crate) unsafe fn execute(self, ctx: NonNull<()>) {
        // SAFETY: by `new`'s contract the job is alive and `head` points
        // at its initialised first field.
        let execute = unsafe { self.0.as_ref().execute };
        // SAFETY: the job's own `execute`, with the pointer it expects;
        // the caller's contract says this run is the only one.
        unsafe { execute(self.0, ctx) }
    }
}

#[cfg(test)]
#[cfg(not(loom))]
mod tests {
    use super::*;

    use crate::job::cell::JobCell;
    use crate::job::JobId;

    #[test]
    fn a_task_is_one_word() {
        assert_eq!(std::mem::size_of::<Task>(), std::mem::size_of::<usize>());
    }

    #[test]
    fn a_task_gives_back_what_it_was_made_of() {
        let (typed, [job]) = JobCell::spawn(JobId(3), || 5, 0);
        let address = job.as_ptr();
        match Task::job(job).into_kind() {
            Kind::Job(job) => assert_eq!(job.as_ptr(), address),
            Kind::Stack(_) => panic!("a job came back as a stack task"),
        }
        let head = StackHead::new(|_, _| unreachable!());
        let id: *const StackHead = &head;
        // SAFETY: never executed; `head` outlives the task.
        let task = Task::stack(unsafe { StackRef::new(NonNull::from(&head)) });
        assert!(task.is_stack(id));
        assert!(!Task::job(JobCell::spawn::<1>(JobId(4), || (), 0).1[0].clone()).is_stack(id));
        match task.into_kind() {
            Kind::Stack(stack) => assert_eq!(stack.id(), id),
            Kind::Job(_) => panic!("a stack task came back as a job"),
        }
        drop(typed);
    }
}
