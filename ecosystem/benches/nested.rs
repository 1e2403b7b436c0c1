//! Spawning from inside jobs: one job that spawns 100,000 tiny jobs
//! (`spawn_fan_out`), and a chain of 100,000 jobs each spawning the next
//! (`spawn_chain`).

mod peers;

use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use peers::{spawn, Kind};

const FAN_OUT: u64 = 100_000;
const CHAIN: u64 = 100_000;

fn fan_out(c: &mut Criterion) {
    let mut group = c.benchmark_group("spawn_fan_out");
    group.sampling_mode(SamplingMode::Flat);
    group.throughput(Throughput::Elements(FAN_OUT));
    peers::bench_each(&mut group, &Kind::ALL, |c| spawn::fan_out(c, FAN_OUT));
    group.finish();
}

fn chain(c: &mut Criterion) {
    let mut group = c.benchmark_group("spawn_chain");
    group.sampling_mode(SamplingMode::Flat);
    group.throughput(Throughput::Elements(CHAIN));
    peers::bench_each(&mut group, &Kind::ALL, |c| spawn::chain(c, CHAIN));
    group.finish();
}

criterion_group! {
    name = benches;
    config = peers::criterion();
    targets = fan_out, chain
}
criterion_main!(benches);
