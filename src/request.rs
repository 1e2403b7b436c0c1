//! A worker slot's steal request: how an idle worker asks a peer that
//! forks `join`s to hand one of its pending halves over.
//!
//! Heartbeat scheduling (Acar, Charguéraud and Rainey, PLDI 2018), as
//! Spice (judofyr/spice, `src/root.zig`) and its Rust port chili
//! (dragostis/chili, `src/lib.rs`) do it, runs every `join` inline as a
//! plain call that only remembers its second half, and has a timer thread
//! set a flag per worker every 100 µs; the next `join` that sees the flag
//! publishes the *oldest* half it still holds (the largest piece of work).
//! Taken from them: the flag, read with one relaxed load per `join`, and
//! the oldest-first choice (`job::pending`).
//!
//! Different here: the flag is raised by the peers that want work, not by
//! a timer. A timer waking every 100 µs cost a memory-bound sequential
//! loop on a 2-CPU VM up to half its speed (its wake-ups preempt the
//! workers), and a publication while every worker is busy helps nobody.
//! So a worker raises every peer's flag when it runs out of jobs: as it
//! starts searching, and before it parks (also inside a wait, where the
//! thief that took its half may share the rest back). A forking peer's
//! next `join` publishes its oldest pending half onto its deque and wakes
//! a parked worker as any push does (rule 1 of `sleep.rs`), so a requester
//! that parked meanwhile is woken. Nothing ticks while the pool is idle or
//! fully busy; a peer that does not fork keeps the flag until it does.
//!
//! A worker started into an empty pool has nobody to hand a half to, so
//! its request starts [`SOLO`] and its `join`s push nothing; the control
//! thread raises it when it starts a peer, which ends that. The halves of
//! `join`s already under way then stay with their caller (they were never
//! pushed): only `join`s entered after the raise can be published, so a
//! recursion that was running alone shares its deeper, smaller halves
//! until it returns.
//!
//! The flag orders no other memory: a published half travels through the
//! deque (its push and steal synchronise), and the wake-up through the
//! sleep state's fences. A request seen late only delays a publication;
//! one never seen leaves the half to its owner, which runs it inline. So
//! relaxed operations suffice.

use crate::loom::AtomicUsize;
use std::sync::atomic::Ordering::Relaxed;

/// Nobody asked.
pub(crate) const IDLE: usize = 0;
/// A peer wants work: the next `join` publishes its oldest pending half.
pub(crate) const RAISED: usize = 1;
/// The worker is the pool's only one, so nobody can take a half: a
/// `join` is two plain calls, with nothing pushed on `Pending`. Set by the
/// control thread before it starts a worker into an empty pool; the first
/// peer to start raises the request (`raise` overwrites it), and from
/// then on the worker publishes as any does, from the `join`s it enters
/// after the raise (module doc). (A pool that shrinks back to one worker
/// does not become solo again: it only pays the bookkeeping.)
pub(crate) const SOLO: usize = 2;

/// One slot's steal request (see the module doc).
pub(crate) struct Request {
    word: AtomicUsize,
}

impl Default for Request {
    fn default() -> Self {
        Request {
            // A worker's first `join` publishes: peers that idled before
            // it started asked for work already, without a flag to show.
            word: AtomicUsize::new(RAISED),
        }
    }
}

impl Request {
    /// [`IDLE`], [`RAISED`] or [`SOLO`]: one relaxed load, on every `join`.
    #[inline]
    pub(crate) fn state(&self) -> usize {
        // ORDERING: the flag guards no other memory (module doc).
        self.word.load(Relaxed)
    }

    /// Does a peer want work?
    #[cfg(test)]
    pub(crate) fn is_raised(&self) -> bool {
        self.state() == RAISED
    }

    /// The owner takes the request: `true` if it was still raised.
    pub(crate) fn take(&self) -> bool {
        // ORDERING: as in `state`.
        self.word.swap(IDLE, Relaxed) == RAISED
    }

    /// A peer asks for work (ending a [`SOLO`] worker's solitude). Skips
    /// the store when the flag is up already, so that idle workers asking
    /// again and again do not keep taking the owner's cache line from it.
    pub(crate) fn raise(&self) {
        // ORDERING: as in `state`.
        if self.word.load(Relaxed) != RAISED {
            self.word.store(RAISED, Relaxed);
        }
    }

    /// Before a worker starts in this slot (the control thread's): alone
    /// in the pool ([`SOLO`]), or with peers, where its first `join`
    /// publishes ([`RAISED`], as a fresh slot).
    pub(crate) fn reset(&self, alone: bool) {
        // ORDERING: as in `state`; the thread start that follows orders it
        // before the worker's first load.
        self.word.store(if alone { SOLO } else { RAISED }, Relaxed);
    }
}

#[cfg(test)]
#[cfg(not(loom))]
mod tests {
    use super::*;

    #[test]
    fn a_raise_ends_a_solo_worker_s_solitude() {
        let request = Request::default();
        request.reset(true);
        assert_eq!(request.state(), SOLO);
        request.raise();
        assert_eq!(request.state(), RAISED);
        assert!(request.take());
        assert_eq!(request.state(), IDLE);
        request.reset(false);
        assert!(request.is_raised(), "a worker with peers publishes at once");
    }

    #[test]
    fn a_request_is_taken_once() {
        let request = Request::default();
        assert!(request.is_raised(), "a fresh slot publishes at once");
        assert!(request.take());
        assert!(!request.is_raised());
        assert!(!request.take());
        request.raise();
        request.raise();
        assert!(request.is_raised());
        assert!(request.take());
        assert!(!request.take());
    }
}

#[cfg(all(test, loom))]
#[path = "request_loom.rs"]
mod loom_tests;
