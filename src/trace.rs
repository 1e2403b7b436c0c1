//! `tracing` integration (feature `tracing`): a span per job and events for
//! scheduler decisions. Without the feature every macro here expands to
//! nothing, so the hot path carries no cost.

/// Emits a `tracing` event with target `workyard` when the feature is on.
#[cfg(feature = "tracing")]
macro_rules! event {
    ($level:ident, $($rest:tt)*) => {
        tracing::$level!(target: "workyard", $($rest)*)
    };
}

#[cfg(not(feature = "tracing"))]
macro_rules! event {
    ($($rest:tt)*) => {};
}

pub(crate) use event;

/// Enters a span for a running job; the guard closes it when dropped.
#[cfg(feature = "tracing")]
pub(crate) fn job_span<J>(id: u64, worker: usize) -> tracing::span::EnteredSpan {
    tracing::debug_span!(target: "workyard", "job", id, job = std::any::type_name::<J>(), worker)
        .entered()
}

#[cfg(not(feature = "tracing"))]
#[inline(always)]
pub(crate) fn job_span<J>(_id: u64, _worker: usize) {}
