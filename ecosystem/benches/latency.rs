//! Wake latency: one job submitted to an idle pool (workers parked), timed
//! until it starts; p50, p99 and max over 1,000 samples per pool, and the
//! same for a bare thread's park/unpark, the floor under every pool. A custom
//! loop rather than criterion: each sample needs the pool to go idle first,
//! which criterion's timing loop would count or skip.

mod peers;

use peers::summary::{percentile_sorted, sorted_micros};
use peers::{latency, Contender, Kind};

const SAMPLES: usize = 1_000;

fn main() {
    let workers = peers::workers();
    println!(
        "wake_latency: {SAMPLES} samples per pool, {workers} workers, {}",
        peers::sys::machine()
    );
    println!(
        "{:<12} {:>9} {:>9} {:>9}",
        "pool", "p50 µs", "p99 µs", "max µs"
    );
    let mut rayon = None;
    let mut workyard = None;
    for kind in Kind::SINGLE_JOB {
        let contender = Contender::new(kind, workers);
        let us = sorted_micros(&latency::sample(&contender, SAMPLES));
        contender.shutdown();
        let (p50, p99) = (percentile_sorted(&us, 50.0), percentile_sorted(&us, 99.0));
        println!(
            "{:<12} {p50:>9.1} {p99:>9.1} {:>9.1}",
            kind.name(),
            us[us.len() - 1]
        );
        match kind {
            Kind::RayonSpawn => rayon = Some((p50, p99)),
            Kind::Workyard => workyard = Some((p50, p99)),
            _ => {}
        }
    }
    // Not a pool: the floor under all of them (see `latency::floor`).
    let us = sorted_micros(&latency::floor(SAMPLES));
    println!(
        "{:<12} {:>9.1} {:>9.1} {:>9.1}",
        "park/unpark",
        percentile_sorted(&us, 50.0),
        percentile_sorted(&us, 99.0),
        us[us.len() - 1]
    );
    if let (Some((w50, w99)), Some((r50, r99))) = (workyard, rayon) {
        println!(
            "workyard / rayon: p50 {:.2}x (target <= 0.50), p99 {:.2}x (target <= 0.35)",
            w50 / r50,
            w99 / r99
        );
    }
}
