//! fib(30) through `workyard::join` next to `rayon::join`: the same
//! divide-and-conquer (fork down to n <= 12, sequential below), the same
//! number of worker threads, in one process, runs interleaved so that both
//! see the same machine load. Prints the median and the fastest run of
//! each, and a sequential baseline.
//!
//! Run with
//! `cargo run --release --example fib_compare [runs] [workers] [cutoff] [order]`
//! (defaults: 51 runs, one worker per logical CPU, cutoff 12, `interleaved`).
//! A small cutoff (say 2) measures the cost of `join` itself. With order
//! `blocks`, each contender does all its runs in a row instead: on a busy
//! machine, one pool's idle workers still spinning after its run can steal
//! time from the next contender's run when they are interleaved.

use std::hint::black_box;
use std::time::{Duration, Instant};

const N: u64 = 30;
const WARMUP: usize = 5;

fn fib_seq(n: u64) -> u64 {
    if n < 2 {
        n
    } else {
        fib_seq(n - 1) + fib_seq(n - 2)
    }
}

fn fib_workyard(n: u64, cutoff: u64) -> u64 {
    if n <= cutoff {
        return fib_seq(n);
    }
    let (a, b) = workyard::join(
        || fib_workyard(n - 1, cutoff),
        || fib_workyard(n - 2, cutoff),
    );
    a + b
}

fn fib_rayon(n: u64, cutoff: u64) -> u64 {
    if n <= cutoff {
        return fib_seq(n);
    }
    let (a, b) = rayon::join(|| fib_rayon(n - 1, cutoff), || fib_rayon(n - 2, cutoff));
    a + b
}

fn time(f: impl FnOnce() -> u64) -> (Duration, u64) {
    let start = Instant::now();
    let value = black_box(f());
    (start.elapsed(), value)
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn summary(name: &str, samples: &[Duration]) {
    let min = samples.iter().min().expect("at least one run");
    println!(
        "{name:<22} median {:>9.3} ms   fastest {:>9.3} ms",
        median(samples.to_vec()).as_secs_f64() * 1e3,
        min.as_secs_f64() * 1e3
    );
}

fn main() {
    let mut args = std::env::args().skip(1);
    let runs: usize = args.next().map_or(51, |a| a.parse().expect("runs"));
    let workers: usize = args.next().map_or_else(
        || std::thread::available_parallelism().map_or(1, |n| n.get()),
        |a| a.parse().expect("workers"),
    );
    let cutoff: u64 = args.next().map_or(12, |a| a.parse().expect("cutoff"));
    let order = args.next().unwrap_or_else(|| "interleaved".to_string());
    assert!(
        order == "interleaved" || order == "blocks",
        "order is `interleaved` or `blocks`"
    );

    let pool = workyard::Dispatcher::builder()
        .workers(workers)
        .build()
        .expect("workyard pool");
    let rayon_pool = rayon::ThreadPoolBuilder::new()
        .num_threads(workers)
        .build()
        .expect("rayon pool");
    let expected = fib_seq(N);

    // Both pools start each run from the outside, as a program would:
    // workyard spawns one job, rayon `install`s one closure.
    let run_wy = || {
        time(|| {
            pool.spawn(move || fib_workyard(black_box(N), cutoff))
                .expect("spawn")
                .join()
                .expect("join")
        })
    };
    let run_ry = || time(|| rayon_pool.install(|| fib_rayon(black_box(N), cutoff)));
    let run_seq = || time(|| fib_seq(black_box(N)));
    let contenders: [&dyn Fn() -> (Duration, u64); 3] = [&run_wy, &run_ry, &run_seq];
    let mut samples: [Vec<Duration>; 3] = Default::default();
    let mut record = |which: usize, i: usize| {
        let (t, v) = contenders[which]();
        assert_eq!(v, expected);
        if i >= WARMUP {
            samples[which].push(t);
        }
    };
    if order == "blocks" {
        for which in 0..3 {
            for i in 0..WARMUP + runs {
                record(which, i);
            }
        }
    } else {
        for i in 0..WARMUP + runs {
            for which in 0..3 {
                record(which, i);
            }
        }
    }
    let [wy, ry, seq] = samples;

    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "fib({N}) = {expected}, forking down to n <= {cutoff}; {workers} workers each; \
         {runs} runs (+{WARMUP} warm-up), {order}; {} logical CPUs; loadavg {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    summary("workyard::join", &wy);
    summary("rayon::join", &ry);
    summary("sequential", &seq);
    let ratio = median(wy.clone()).as_secs_f64() / median(ry.clone()).as_secs_f64();
    println!("workyard / rayon (medians): {ratio:.2}");
    let stats = pool.stats();
    println!(
        "workyard: {} jobs, {} steals (join halves included)",
        stats.succeeded, stats.steals
    );
    pool.shutdown();
}
