//! Memory per queued job: 1,000,000 tiny jobs held queued behind blocked
//! workers; heap bytes per job from a counting global allocator, and the C
//! allocator's in-use growth per job (headers and rounding included). Three runs per pool. A custom loop rather than
//! criterion: the figure is bytes, not time.

mod peers;

#[global_allocator]
static ALLOC: peers::alloc::Counting = peers::alloc::Counting;

use peers::memory::{self, PerJob};
use peers::summary::Summary;
use peers::{Contender, Kind};

const RUNS: usize = 3;

fn main() {
    assert!(
        peers::alloc::installed(),
        "the counting allocator is not installed"
    );
    let workers = peers::workers();
    println!(
        "queued_memory: {} jobs queued, {RUNS} runs per pool, {workers} workers, {}",
        memory::QUEUED,
        peers::sys::machine()
    );
    println!(
        "{:<12} {:>8} {:>11} {:>24} {:>13}",
        "pool", "closure", "heap B/job", "overhead B/job (min-max)", "malloc B/job"
    );
    for kind in Kind::SINGLE_JOB {
        let runs: Vec<PerJob> = (0..RUNS)
            .map(|_| {
                let contender = Contender::new(kind, workers);
                let m = memory::per_job(&contender, workers, memory::QUEUED);
                contender.shutdown();
                m
            })
            .collect();
        let heap = Summary::of(&runs.iter().map(|m| m.heap).collect::<Vec<_>>());
        let over = Summary::of(&runs.iter().map(PerJob::overhead).collect::<Vec<_>>());
        let malloc = Summary::of(&runs.iter().map(|m| m.malloc).collect::<Vec<_>>());
        println!(
            "{:<12} {:>8} {:>11.1} {:>24} {:>13.1}",
            kind.name(),
            runs[0].closure,
            heap.median,
            format!("{:.1} ({:.1}-{:.1})", over.median, over.min, over.max),
            malloc.median
        );
    }
    println!("target: workyard overhead <= 128 B per queued job beyond the closure");
}
