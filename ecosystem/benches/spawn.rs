//! Spawn throughput: 1,000,000 tiny jobs submitted from one outside thread,
//! without handles (`spawn_detached`), with workyard's handles made and
//! dropped (`spawn_handles_dropped`; the peers have none and run as in
//! `spawn_detached`), and with every handle kept and joined
//! (`spawn_joined`), on workyard and each peer.

mod peers;

use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use peers::{spawn, Kind};

const JOBS: u64 = 1_000_000;

fn detached(c: &mut Criterion) {
    let mut group = c.benchmark_group("spawn_detached");
    // One run takes 0.1 s to seconds: one iteration per sample.
    group.sampling_mode(SamplingMode::Flat);
    group.throughput(Throughput::Elements(JOBS));
    peers::bench_each(&mut group, &Kind::ALL, |c| spawn::detached(c, JOBS));
    group.finish();
}

fn handles_dropped(c: &mut Criterion) {
    let mut group = c.benchmark_group("spawn_handles_dropped");
    group.sampling_mode(SamplingMode::Flat);
    group.throughput(Throughput::Elements(JOBS));
    peers::bench_each(&mut group, &Kind::ALL, |c| spawn::handles_dropped(c, JOBS));
    group.finish();
}

fn joined(c: &mut Criterion) {
    let mut group = c.benchmark_group("spawn_joined");
    group.sampling_mode(SamplingMode::Flat);
    group.throughput(Throughput::Elements(JOBS));
    peers::bench_each(&mut group, &Kind::ALL, |c| {
        assert_eq!(spawn::joined(c, JOBS), JOBS * (JOBS - 1) / 2);
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = peers::criterion();
    targets = detached, handles_dropped, joined
}
criterion_main!(benches);
