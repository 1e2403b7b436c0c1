//! Timestamps as nanoseconds since a process-wide epoch, so that a status
//! record stores each one in a single `AtomicU64` (0 means "not yet").

use std::sync::OnceLock;
use std::time::{Duration, Instant};

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// Now, as nanoseconds since the epoch, never 0.
pub(crate) fn now() -> u64 {
    let nanos = epoch().elapsed().as_nanos();
    u64::try_from(nanos).unwrap_or(u64::MAX).max(1)
}

/// Converts a stored timestamp back; `None` for 0 ("not yet").
pub(crate) fn to_instant(nanos: u64) -> Option<Instant> {
    (nanos != 0).then(|| epoch() + Duration::from_nanos(nanos))
}

/// Converts an `Instant` to a stored timestamp (never 0; instants before
/// the epoch clamp to it).
pub(crate) fn from_instant(at: Instant) -> u64 {
    let nanos = at.saturating_duration_since(epoch()).as_nanos();
    u64::try_from(nanos).unwrap_or(u64::MAX).max(1)
}
