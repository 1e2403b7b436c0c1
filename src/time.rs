//! Timestamps for status records: raw clock ticks from `quanta` (the TSC
//! where it is reliable, else the OS clock), one `u64` each, converted to
//! `std::time::Instant` only when someone reads a record. 0 means "not yet".
//! Under Miri, which cannot run `quanta`'s inline assembly, ticks are
//! nanoseconds from `Instant`.
//!
//! Deadlines are kept in nanoseconds since the clock's anchor instead,
//! because they are set from an `Instant` and ticks cannot be computed from
//! nanoseconds; only jobs that have a deadline pay for that conversion.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

#[cfg(not(miri))]
type Clock = quanta::Clock;

/// `quanta::Clock`'s interface over `Instant`, for Miri.
#[cfg(miri)]
struct Clock(Instant);

#[cfg(miri)]
impl Clock {
    fn new() -> Clock {
        Clock(Instant::now())
    }

    fn raw(&self) -> u64 {
        self.0.elapsed().as_nanos() as u64
    }

    fn delta_as_nanos(&self, start: u64, end: u64) -> u64 {
        end.saturating_sub(start)
    }
}

struct Anchor {
    clock: Clock,
    raw: u64,
    at: Instant,
}

fn anchor() -> &'static Anchor {
    static ANCHOR: OnceLock<Anchor> = OnceLock::new();
    ANCHOR.get_or_init(|| {
        let clock = Clock::new();
        let (raw, at) = (clock.raw(), Instant::now());
        Anchor { clock, raw, at }
    })
}

/// Now, in raw ticks, never 0.
pub(crate) fn now() -> u64 {
    anchor().clock.raw().max(1)
}

/// Converts stored ticks back; `None` for 0 ("not yet").
pub(crate) fn to_instant(raw: u64) -> Option<Instant> {
    let a = anchor();
    (raw != 0).then(|| a.at + Duration::from_nanos(a.clock.delta_as_nanos(a.raw, raw)))
}

/// Nanoseconds between two stored tick values (0 if `end` is earlier).
pub(crate) fn nanos_between(start: u64, end: u64) -> u64 {
    if end <= start {
        return 0;
    }
    anchor().clock.delta_as_nanos(start, end)
}

/// Now, in nanoseconds since the anchor, never 0: the unit of deadlines.
pub(crate) fn now_nanos() -> u64 {
    let a = anchor();
    a.clock.delta_as_nanos(a.raw, a.clock.raw()).max(1)
}

/// A deadline in nanoseconds since the anchor (never 0; instants before
/// the anchor clamp to it).
pub(crate) fn deadline_nanos(at: Instant) -> u64 {
    let nanos = at.saturating_duration_since(anchor().at).as_nanos();
    u64::try_from(nanos).unwrap_or(u64::MAX).max(1)
}
