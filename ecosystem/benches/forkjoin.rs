//! Fork-join: fib(30) forked down to n ≤ 12, and a parallel quicksort of
//! 1,000,000 `u64`, through `rayon::join`, the hand-rolled pool's join and
//! (once it lands) `workyard::join`, with a sequential run for reference.

mod peers;

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, SamplingMode};
use peers::forkjoin::{self, fib, quicksort, HandJoin, RayonJoin, Sequential, FIB_N};
use peers::hand::HandPool;

fn rayon_pool(workers: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(workers)
        .build()
        .expect("build a rayon pool")
}

fn fib30(c: &mut Criterion) {
    let workers = peers::workers();
    let expected = fib::<Sequential>(FIB_N);
    let mut group = c.benchmark_group("fib30");
    group.sampling_mode(SamplingMode::Flat);

    group.bench_function(BenchmarkId::new("sequential", 1), |b| {
        b.iter(|| fib::<Sequential>(black_box(FIB_N)))
    });

    let pool = rayon_pool(workers);
    assert_eq!(pool.install(|| fib::<RayonJoin>(FIB_N)), expected);
    group.bench_function(BenchmarkId::new("rayon", workers), |b| {
        b.iter(|| pool.install(|| fib::<RayonJoin>(FIB_N)))
    });
    drop(pool);

    let pool = HandPool::new(workers);
    assert_eq!(pool.install(|| fib::<HandJoin>(FIB_N)), expected);
    group.bench_function(BenchmarkId::new("hand-rolled", workers), |b| {
        b.iter(|| pool.install(|| fib::<HandJoin>(FIB_N)))
    });
    drop(pool);

    {
        use peers::forkjoin::WorkyardJoin;
        let pool = workyard::Dispatcher::builder()
            .workers(workers)
            .build()
            .expect("build a workyard dispatcher");
        let run = || {
            let (a, b) = pool.join(
                || fib::<WorkyardJoin>(FIB_N - 1),
                || fib::<WorkyardJoin>(FIB_N - 2),
            );
            a + b
        };
        assert_eq!(run(), expected);
        group.bench_function(BenchmarkId::new("workyard", workers), |b| b.iter(run));
        pool.shutdown();
    }
    group.finish();
}

fn quicksort_1m(c: &mut Criterion) {
    let workers = peers::workers();
    let input = forkjoin::sort_input();
    let mut group = c.benchmark_group("quicksort_1m");
    group.sampling_mode(SamplingMode::Flat);
    let fresh = || input.clone();

    group.bench_function(BenchmarkId::new("sequential", 1), |b| {
        b.iter_batched(
            fresh,
            |mut v| quicksort::<Sequential>(&mut v),
            BatchSize::LargeInput,
        )
    });

    let pool = rayon_pool(workers);
    let mut check = fresh();
    pool.install(|| quicksort::<RayonJoin>(&mut check));
    forkjoin::assert_sorted(&check);
    group.bench_function(BenchmarkId::new("rayon", workers), |b| {
        b.iter_batched(
            fresh,
            |mut v| pool.install(|| quicksort::<RayonJoin>(&mut v)),
            BatchSize::LargeInput,
        )
    });
    drop(pool);

    let pool = HandPool::new(workers);
    let mut check = fresh();
    pool.install(|| quicksort::<HandJoin>(&mut check));
    forkjoin::assert_sorted(&check);
    group.bench_function(BenchmarkId::new("hand-rolled", workers), |b| {
        b.iter_batched(
            fresh,
            |mut v| pool.install(|| quicksort::<HandJoin>(&mut v)),
            BatchSize::LargeInput,
        )
    });
    drop(pool);

    {
        use peers::forkjoin::WorkyardJoin;
        let pool = workyard::Dispatcher::builder()
            .workers(workers)
            .build()
            .expect("build a workyard dispatcher");
        let sort = |v: &mut [u64]| {
            pool.join(|| quicksort::<WorkyardJoin>(v), || ());
        };
        let mut check = fresh();
        sort(&mut check);
        forkjoin::assert_sorted(&check);
        group.bench_function(BenchmarkId::new("workyard", workers), |b| {
            b.iter_batched(fresh, |mut v| sort(&mut v), BatchSize::LargeInput)
        });
        pool.shutdown();
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = peers::criterion();
    targets = fib30, quicksort_1m
}
criterion_main!(benches);
