//! Shared by every bench binary and by `examples/compare.rs`: the peer pools
//! (rayon, threadpool and a hand-rolled crossbeam-deque pool), one function
//! per workload that runs identical work on any of them, and the process
//! measurements (CPU time, RSS, live heap bytes).
//!
//! Every figure is meant to be read as a ratio to a peer measured in the same
//! process, since the machines these run on are shared and their absolute
//! speed drifts.

// Each bench binary compiles this module by itself and uses only part of it.
#![allow(dead_code)]

pub mod alloc;
pub mod coarse;
pub mod contender;
pub mod forkjoin;
pub mod hand;
pub mod idle;
pub mod latency;
pub mod memory;
pub mod spawn;
pub mod summary;
pub mod sync;
pub mod sys;

use std::time::Duration;

pub use contender::{Contender, Kind};

/// Worker threads per pool: `WORKYARD_BENCH_WORKERS`, else 2 (the shared
/// machines these numbers are taken on have 2 cores).
pub fn workers() -> usize {
    std::env::var("WORKYARD_BENCH_WORKERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(2)
}

/// Criterion settings for every group: few, flat samples, so that the whole
/// `cargo bench` stays within minutes on a 2-core machine while others
/// compile on it. The noise this leaves is why the figures are ratios.
pub fn criterion() -> criterion::Criterion {
    criterion::Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args()
}

/// Benchmarks `routine` on each pool in `kinds`, each built fresh with
/// [`workers`] threads and shut down before the next starts, so that no idle
/// pool shares the CPUs with the one measured. Ids read `pool/workers`.
pub fn bench_each(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    kinds: &[Kind],
    mut routine: impl FnMut(&Contender),
) {
    let workers = workers();
    for &kind in kinds {
        let contender = Contender::new(kind, workers);
        group.bench_function(criterion::BenchmarkId::new(kind.name(), workers), |b| {
            b.iter(|| routine(&contender))
        });
        contender.shutdown();
    }
}
