//! [`Pending`]: the `join` halves a worker holds back, to run inline
//! unless a steal request publishes them.
//!
//! A `join` on a worker pushes its second half here (a pointer to the
//! [`StackHead`] of the `StackJob` in its own frame), runs the first half,
//! and pops the second back. Nothing here is atomic: only the worker's own
//! thread touches the stack, so a `join` that nobody needed costs a few
//! plain loads and stores. When a peer asks for work (`request.rs`), the
//! worker publishes the *oldest* half still held, the largest piece of
//! work, onto its deque, where thieves see it and the wake protocol
//! covers it like any pushed job.
//!
//! This is Spice's job list (judofyr/spice, `src/root.zig`: `Job.push`,
//! `pop`, `shift`), with one change that saves a store per `join`:
//! Spice unlinks a shared job from the list, so each pop has to relink;
//! here published halves stay in the stack and `published` marks the
//! boundary. That works because of two facts:
//!
//! 1. Halves are pushed and popped in LIFO order: each is popped by the
//!    `join` call that pushed it, before that call returns, and every
//!    nested `join` (also one run by a nested job while the thread waits)
//!    returns before it.
//! 2. Publishing always takes the oldest unpublished half, so the
//!    published ones are the bottom of the stack, up to `published`.
//!
//! So a half being popped (always the top) was published exactly if it
//! is `published`, one pointer comparison; and the oldest unpublished
//! half is the one just above `published` (its `newer` link, which is
//! valid because that half is not the top), or the bottom.

use super::task::{StackHead, StackRef};
use std::cell::Cell;
use std::ptr::{self, NonNull};

/// A worker's stack of pending `join` halves (see the module doc).
pub(crate) struct Pending {
    /// The newest half; null when empty.
    top: Cell<*const StackHead>,
    /// The oldest half; valid while `top` is not null.
    bottom: Cell<*const StackHead>,
    /// The newest published half; null if none is. Every half below it is
    /// published too.
    published: Cell<*const StackHead>,
}

impl Pending {
    pub(crate) fn new() -> Pending {
        Pending {
            top: Cell::new(ptr::null()),
            bottom: Cell::new(ptr::null()),
            published: Cell::new(ptr::null()),
        }
    }

    /// Pushes the half whose head `head` is.
    ///
    /// # Safety
    ///
    /// `head` points to the head of a live stack job, with provenance over
    /// the whole job (a thief may run it, see [`StackRef::new`]), and the
    /// job stays alive and in place until its [`Pending::pop`], which comes
    /// before the pop of any half pushed earlier. If `pop` says it was
    /// published, the job must further stay until its `StackRef` has been
    /// executed or taken back from the deque.
    #[inline]
    pub(crate) unsafe fn push(&self, head: NonNull<StackHead>) {
        let head = head.as_ptr().cast_const();
        let older = self.top.get();
        // SAFETY: `head` is alive (our contract); its links are ours, as
        // nobody else touches them.
        unsafe { (*head).older.set(older) };
        if older.is_null() {
            self.bottom.set(head);
        } else {
            // SAFETY: `older` is the top, alive until popped, after `head`.
            unsafe { (*older).newer.set(head) };
        }
        self.top.set(head);
    }

    /// Pops `head`, the top. Returns `true` if it was published: then it
    /// is on the worker's deque, or a thief has it.
    #[inline]
    pub(crate) fn pop(&self, head: NonNull<StackHead>) -> bool {
        let head = head.as_ptr().cast_const();
        debug_assert!(
            ptr::eq(self.top.get(), head),
            "join halves pop in LIFO order"
        );
        // SAFETY: `head` is the top, so it was pushed and not popped yet:
        // alive by `push`'s contract.
        let older = unsafe { (*head).older.get() };
        self.top.set(older);
        if ptr::eq(self.published.get(), head) {
            self.published.set(older);
            return true;
        }
        false
    }

    /// Marks the oldest half not yet published as published and returns
    /// it, for the caller to push onto its deque; `None` if every half is
    /// published (or there is none).
    #[inline]
    pub(crate) fn publish_oldest(&self) -> Option<StackRef> {
        let last = self.published.get();
        if ptr::eq(last, self.top.get()) {
            return None;
        }
        let oldest = if last.is_null() {
            self.bottom.get()
        } else {
            // SAFETY: `last` is published and not the top: alive, and its
            // `newer` is the half just above it, alive too (module doc).
            unsafe { (*last).newer.get() }
        };
        self.published.set(oldest);
        let oldest = NonNull::new(oldest.cast_mut()).expect("a pending half is not null");
        // SAFETY: `push`'s contract: the head of a live stack job, with
        // provenance over it, alive until executed or taken back, since
        // `pop` will now report it published.
        Some(unsafe { StackRef::new(oldest) })
    }
}

#[cfg(test)]
#[cfg(not(loom))]
mod tests {
    use super::*;

    fn head() -> StackHead {
        StackHead::new(|_, _| unreachable!())
    }

    #[test]
    fn halves_are_published_oldest_first_and_popped_newest_first() {
        let pending = Pending::new();
        let (a, b, c) = (head(), head(), head());
        let (pa, pb, pc) = (NonNull::from(&a), NonNull::from(&b), NonNull::from(&c));
        assert!(pending.publish_oldest().is_none());
        // SAFETY: the heads outlive `pending`'s use of them, and are
        // popped in LIFO order; the published ones are never executed.
        unsafe {
            pending.push(pa);
            pending.push(pb);
        }
        assert_eq!(
            pending.publish_oldest().map(|r| r.id()),
            Some(pa.as_ptr().cast_const())
        );
        // SAFETY: as above.
        unsafe { pending.push(pc) };
        assert_eq!(
            pending.publish_oldest().map(|r| r.id()),
            Some(pb.as_ptr().cast_const())
        );
        assert!(!pending.pop(pc));
        assert!(pending.pop(pb));
        assert!(pending.publish_oldest().is_none());
        // SAFETY: as above.
        unsafe { pending.push(pc) };
        assert_eq!(
            pending.publish_oldest().map(|r| r.id()),
            Some(pc.as_ptr().cast_const())
        );
        assert!(pending.publish_oldest().is_none());
        assert!(pending.pop(pc));
        assert!(pending.pop(pa));
        assert!(pending.publish_oldest().is_none());
        // SAFETY: as above.
        unsafe { pending.push(pb) };
        assert!(!pending.pop(pb));
    }
}
