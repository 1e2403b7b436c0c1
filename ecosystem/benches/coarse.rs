//! Coarse jobs: 2,000 jobs of about 50 µs each, spawned from outside, on
//! each pool and one after another on the bench thread (`sequential`).
//! Efficiency = sequential / (pool time × workers); BENCHMARKS.md computes
//! it from these medians, `examples/compare.rs` live.

mod peers;

use criterion::{
    criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode, Throughput,
};
use peers::{coarse, Kind};

fn coarse_jobs(c: &mut Criterion) {
    let iters = coarse::calibrate();
    eprintln!(
        "coarse: {iters} iterations per job for ~{:?}",
        coarse::TARGET
    );
    let mut group = c.benchmark_group("coarse_2000x50us");
    group.sampling_mode(SamplingMode::Flat);
    group.throughput(Throughput::Elements(coarse::JOBS));
    group.bench_function(BenchmarkId::new("sequential", 1), |b| {
        b.iter(|| coarse::sequential(iters))
    });
    peers::bench_each(&mut group, &Kind::ALL, |c| coarse::run(c, iters));
    group.finish();
}

criterion_group! {
    name = benches;
    config = peers::criterion();
    targets = coarse_jobs
}
criterion_main!(benches);
