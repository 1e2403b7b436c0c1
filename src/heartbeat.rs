//! The heartbeat of one worker slot: how the control thread tells a worker
//! that is forking `join`s to hand one of its pending halves to its peers.
//!
//! This is heartbeat scheduling (Acar, Charguéraud and Rainey, "Heartbeat
//! Scheduling", PLDI 2018), as Spice (judofyr/spice, `src/root.zig`) and
//! its Rust port chili (dragostis/chili, `src/lib.rs`) do it: a `join`
//! runs both halves inline as plain calls and only remembers the second
//! one; a timer sets a per-worker flag every [`INTERVAL`]; the next `join`
//! that sees the flag publishes the *oldest* half it still holds (the
//! largest piece of work) and clears it. Taken from them: the flag read
//! with one relaxed load per `join`, the oldest-first choice, and the
//! 100 µs period. Different here: the beat is a three-state word, so that
//! the timer runs only while some worker forks. Spice's and chili's
//! heartbeat threads tick for as long as the pool exists, which would cost
//! an idle pool its near-zero CPU; here the control thread (`control.rs`),
//! already a timer for deadlines, ticks only slots that joined recently,
//! and sleeps on its inbox once none did.
//!
//! The word's states and who moves it:
//!
//! ```text
//!            worker's take (announces: posts Order::Beat)
//!   IDLE ────────────────────────────────────────────► QUIET
//!    ▲                                                 │  ▲
//!    │ control: EXPIRE ticks in a row                  │  │ worker's take
//!    │ found it still BEAT (no join since)   control's │  │ (publishes)
//!    └─────────────────────────── BEAT ◄───────────────┘  │
//!                                   └─────────────────────┘
//! ```
//!
//! Every transition is a read-modify-write of the one word, so the two
//! sides cannot lose one another's move: a worker whose take finds `IDLE`
//! has taken the slot out of `IDLE` itself and must announce it (the
//! control thread then ticks the slot again); a control thread whose
//! expiry CAS fails saw the worker's take. The word orders no other
//! memory: a published half travels through the worker's deque, an
//! announcement through the inbox's lock. Hence relaxed operations.
//!
//! Cost while nobody forks: nothing (the control thread waits on its inbox
//! alone). While some worker forks: one control-thread wake-up per
//! [`INTERVAL`], and one relaxed load per `join`. A worker that stops
//! forking for [`EXPIRE`] ticks is dropped, and its next `join` announces
//! itself again (one post to the inbox, at most once per `EXPIRE` ticks).

use crate::loom::AtomicU8;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

/// How often a forking worker is asked to publish a pending half: Spice's
/// and chili's default. Shorter spreads work sooner and costs the control
/// thread more wake-ups; a thief that runs dry waits at most this long for
/// the next piece.
pub(crate) const INTERVAL: Duration = Duration::from_micros(100);

/// Ticks in a row without a `join` after which a slot is no longer ticked
/// (1 ms at [`INTERVAL`]): long enough that a worker forking in bursts
/// rarely announces itself again, short enough that an idle pool stops
/// ticking before anyone can measure it.
pub(crate) const EXPIRE: u32 = 10;

/// Not ticked: the worker has not forked for [`EXPIRE`] ticks, or never.
const IDLE: u8 = 0;
/// Ticked, and the last beat was taken.
const QUIET: u8 = 1;
/// A beat waits for the worker's next `join`.
const BEAT: u8 = 2;

/// One slot's heartbeat word (see the module doc).
pub(crate) struct Heartbeat {
    state: AtomicU8,
}

/// What a worker's [`Heartbeat::take`] found.
#[derive(Debug, PartialEq, Eq)]
#[must_use]
pub(crate) enum Taken {
    /// A beat: publish the oldest pending half.
    Beat,
    /// The slot was not ticked: post `Order::Beat` so that it is again
    /// (and publish now, as a first beat).
    Announce,
}

/// What the control thread's [`Heartbeat::tick`] left.
#[derive(Debug, PartialEq, Eq)]
#[must_use]
pub(crate) enum Ticked {
    /// Still ticked: the slot wants the next tick too.
    Beating,
    /// Not ticked any more; only an announcement brings it back.
    Idle,
}

impl Default for Heartbeat {
    fn default() -> Self {
        Heartbeat {
            state: AtomicU8::new(IDLE),
        }
    }
}

impl Heartbeat {
    /// Has the worker something to take? One relaxed load, on every
    /// `join`; the rare `true` leads to [`Heartbeat::take`].
    #[inline]
    pub(crate) fn is_due(&self) -> bool {
        // ORDERING: the word guards no other memory (module doc).
        self.state.load(Relaxed) != QUIET
    }

    /// The worker takes what is due, leaving the word `QUIET`; `None` if
    /// nothing was (it raced with nobody: only the worker writes `QUIET`).
    pub(crate) fn take(&self) -> Option<Taken> {
        // ORDERING: as in `is_due`; an announcement is carried by the
        // inbox's lock.
        match self.state.swap(QUIET, Relaxed) {
            BEAT => Some(Taken::Beat),
            IDLE => Some(Taken::Announce),
            _ => None,
        }
    }

    /// The control thread's tick. `quiet` counts, for this slot, the
    /// ticks in a row that found the last beat untaken; the slot stops
    /// being ticked at [`EXPIRE`].
    pub(crate) fn tick(&self, quiet: &mut u32) -> Ticked {
        // ORDERING (both CASes): as in `is_due`.
        match self.state.compare_exchange(QUIET, BEAT, Relaxed, Relaxed) {
            Ok(_) => {
                *quiet = 0;
                Ticked::Beating
            }
            Err(IDLE) => Ticked::Idle,
            Err(_) => {
                *quiet += 1;
                if *quiet < EXPIRE {
                    return Ticked::Beating;
                }
                match self.state.compare_exchange(BEAT, IDLE, Relaxed, Relaxed) {
                    Ok(_) => Ticked::Idle,
                    // Taken just now: the worker forks again.
                    Err(_) => {
                        *quiet = 0;
                        Ticked::Beating
                    }
                }
            }
        }
    }
}

#[cfg(test)]
#[cfg(not(loom))]
mod tests {
    use super::*;

    #[test]
    fn a_first_take_announces_and_later_ones_see_beats() {
        let beat = Heartbeat::default();
        assert!(beat.is_due());
        assert_eq!(beat.take(), Some(Taken::Announce));
        assert!(!beat.is_due());
        assert_eq!(beat.take(), None);
        let mut quiet = 0;
        assert_eq!(beat.tick(&mut quiet), Ticked::Beating);
        assert!(beat.is_due());
        assert_eq!(beat.take(), Some(Taken::Beat));
        assert!(!beat.is_due());
    }

    #[test]
    fn a_slot_that_stops_forking_expires_after_exactly_expire_ticks() {
        let beat = Heartbeat::default();
        assert_eq!(beat.take(), Some(Taken::Announce));
        let mut quiet = 0;
        assert_eq!(beat.tick(&mut quiet), Ticked::Beating);
        for _ in 1..EXPIRE {
            assert_eq!(beat.tick(&mut quiet), Ticked::Beating);
        }
        assert_eq!(beat.tick(&mut quiet), Ticked::Idle);
        assert_eq!(beat.tick(&mut quiet), Ticked::Idle);
        assert_eq!(beat.take(), Some(Taken::Announce));
    }

    #[test]
    fn an_idle_slot_is_not_ticked() {
        let beat = Heartbeat::default();
        let mut quiet = 0;
        assert_eq!(beat.tick(&mut quiet), Ticked::Idle);
        assert!(beat.is_due());
        assert_eq!(beat.take(), Some(Taken::Announce));
    }
}
