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
//! The flag orders no other memory: a published half travels through the
//! deque (its push and steal synchronise), and the wake-up through the
//! sleep state's fences. A request seen late only delays a publication;
//! one never seen leaves the half to its owner, which runs it inline. So
//! relaxed operations suffice.

use crate::loom::AtomicBool;
use std::sync::atomic::Ordering::Relaxed;

/// One slot's steal request (see the module doc).
pub(crate) struct Request {
    raised: AtomicBool,
}

impl Default for Request {
    fn default() -> Self {
        Request {
            // A worker's first `join` publishes: peers that idled before
            // it started asked for work already, without a flag to show.
            raised: AtomicBool::new(true),
        }
    }
}

impl Request {
    /// Does a peer want work? One relaxed load, on every `join`.
    #[inline]
    pub(crate) fn is_raised(&self) -> bool {
        // ORDERING: the flag guards no other memory (module doc).
        self.raised.load(Relaxed)
    }

    /// The owner takes the request: `true` if it was still raised.
    pub(crate) fn take(&self) -> bool {
        // ORDERING: as in `is_raised`.
        self.raised.swap(false, Relaxed)
    }

    /// A peer asks for work. Skips the store when the flag is up already,
    /// so that idle workers asking again and again do not keep taking the
    /// owner's cache line from it.
    pub(crate) fn raise(&self) {
        // ORDERING: as in `is_raised`.
        if !self.raised.load(Relaxed) {
            self.raised.store(true, Relaxed);
        }
    }
}

#[cfg(test)]
#[cfg(not(loom))]
mod tests {
    use super::*;

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
