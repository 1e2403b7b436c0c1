//! The benchmark suite in under a minute: every workload of `benches/` run
//! a few times on workyard and on each peer (rayon, threadpool, a
//! hand-rolled crossbeam-deque pool), printed as one table of each peer's
//! figure, workyard's, workyard's ratio to it, and the targets.
//!
//! Run with `cargo run --release --example compare`; set
//! `WORKYARD_BENCH_WORKERS` to change the worker count (default 2), and
//! `WORKYARD_BENCH_PIN=1` to pin every pool's workers one to a CPU. With
//! an argument it runs one section only, for A/B runs of one change:
//! `heartbeat` (the fork-join rows that join at every node), `spawn`,
//! `forkjoin` (the classic fib and quicksort rows) or `coarse`.

#[path = "../benches/peers/mod.rs"]
mod peers;

#[global_allocator]
static ALLOC: peers::alloc::Counting = peers::alloc::Counting;

use peers::contender::{pin_rayon, pin_workers, pin_workyard};
use peers::forkjoin::{
    self, fib, fib_every, merge_sort, quicksort, tree_sum, HandJoin, Node, RayonJoin, Sequential,
    WorkyardJoin, FIB_N, MERGE_LEN,
};
use peers::hand::HandPool;
use peers::summary::{percentile_sorted, sorted_micros, Summary};
use peers::{coarse, idle, latency, memory, spawn, Contender, Kind};
use std::time::{Duration, Instant};

/// Timed repetitions per throughput figure (the median is shown).
const REPS: usize = 3;
const SPAWN_JOBS: u64 = 1_000_000;
const NESTED_JOBS: u64 = 100_000;
const LATENCY_SAMPLES: usize = 500;

/// Which way a figure is better.
#[derive(Clone, Copy, PartialEq)]
enum Better {
    Higher,
    Lower,
}

/// A target from the issue, in the table's convention.
#[derive(Clone, Copy)]
enum Target {
    /// Workyard's ratio to this peer at least this (> 1 = better).
    RatioAtLeast(f64),
    /// Workyard's own figure at most this.
    AtMost(f64),
    /// Workyard's own figure at least this.
    AtLeast(f64),
}

/// The peer name of the wake-latency floor rows.
const FLOOR: &str = "park/unpark";

#[derive(Clone, Copy)]
struct Row {
    workload: &'static str,
    unit: &'static str,
    better: Better,
    peer: &'static str,
    peer_figure: f64,
    /// `None` where workyard cannot run it yet (fork-join before `join`).
    workyard: Option<f64>,
    target: Option<Target>,
}

impl Row {
    /// Workyard's advantage: > 1.0 means workyard is better.
    fn ratio(&self) -> Option<f64> {
        let w = self.workyard?;
        Some(match self.better {
            Better::Higher => w / self.peer_figure,
            Better::Lower => self.peer_figure / w,
        })
    }

    fn target_text(&self) -> String {
        match self.target {
            None => String::new(),
            Some(Target::RatioAtLeast(r)) if self.better == Better::Lower => {
                format!(">= {r:.2}x (wy <= {:.2}x peer)", 1.0 / r)
            }
            Some(Target::RatioAtLeast(r)) => format!(">= {r:.2}x"),
            Some(Target::AtMost(v)) => format!("wy <= {v} {}", self.unit),
            Some(Target::AtLeast(v)) => format!("wy >= {v}"),
        }
    }

    fn met(&self) -> &'static str {
        let (Some(target), Some(w)) = (self.target, self.workyard) else {
            return if self.target.is_some() { "pending" } else { "" };
        };
        let met = match target {
            Target::RatioAtLeast(r) => self.ratio().is_some_and(|x| x >= r),
            Target::AtMost(v) => w <= v,
            Target::AtLeast(v) => w >= v,
        };
        if met {
            "met"
        } else {
            "NOT met"
        }
    }
}

fn median(samples: &[f64]) -> f64 {
    Summary::of(samples).median
}

/// Median wall time of `REPS` runs after one untimed warm-up run.
fn time_median(mut run: impl FnMut()) -> Duration {
    run();
    let secs: Vec<f64> = (0..REPS).map(|_| time(&mut run).as_secs_f64()).collect();
    Duration::from_secs_f64(median(&secs))
}

fn time(run: impl FnOnce()) -> Duration {
    let start = Instant::now();
    run();
    start.elapsed()
}

/// One pool per kind, all alive at once (idle ones are parked), so that
/// their runs can be interleaved.
fn contenders(kinds: &[Kind]) -> Vec<Contender> {
    kinds
        .iter()
        .map(|&kind| Contender::new(kind, peers::workers()))
        .collect()
}

/// Millions of jobs per second for `run` on each pool in `kinds`: the median
/// of `REPS` rounds, each running every pool once in turn, so that the
/// machine's drift (other tenants' load comes and goes) hits every pool alike.
fn throughput(kinds: &[Kind], jobs: u64, run: impl Fn(&Contender)) -> Vec<(Kind, f64)> {
    let pools = contenders(kinds);
    pools.iter().for_each(&run);
    let mut rates = vec![Vec::new(); pools.len()];
    for _ in 0..REPS {
        for (rate, pool) in rates.iter_mut().zip(&pools) {
            rate.push(jobs as f64 / time(|| run(pool)).as_secs_f64() / 1e6);
        }
    }
    pools.into_iter().for_each(Contender::shutdown);
    kinds
        .iter()
        .copied()
        .zip(rates.iter().map(|r| median(r)))
        .collect()
}

/// Rows comparing workyard's figure in `figures` with every peer's.
fn rows(
    workload: &'static str,
    unit: &'static str,
    better: Better,
    figures: &[(Kind, f64)],
    target: impl Fn(Kind) -> Option<Target>,
) -> Vec<Row> {
    let workyard = figures
        .iter()
        .find(|(k, _)| *k == Kind::Workyard)
        .map(|&(_, f)| f);
    figures
        .iter()
        .filter(|(k, _)| *k != Kind::Workyard)
        .map(|&(kind, peer_figure)| Row {
            workload,
            unit,
            better,
            peer: kind.name(),
            peer_figure,
            workyard,
            target: target(kind),
        })
        .collect()
}

fn spawn_rows() -> Vec<Row> {
    let spawn_target = |k| match k {
        Kind::RayonSpawn => Some(Target::RatioAtLeast(2.0)),
        Kind::Hand => Some(Target::RatioAtLeast(1.2)),
        _ => None,
    };
    let mut out = Vec::new();
    let f = throughput(&Kind::ALL, SPAWN_JOBS, |c| spawn::detached(c, SPAWN_JOBS));
    out.extend(rows(
        "spawn 1M, detached",
        "M jobs/s",
        Better::Higher,
        &f,
        spawn_target,
    ));
    let f = throughput(&Kind::ALL, SPAWN_JOBS, |c| {
        spawn::handles_dropped(c, SPAWN_JOBS)
    });
    out.extend(rows(
        "spawn 1M, handles dropped",
        "M jobs/s",
        Better::Higher,
        &f,
        |_| None,
    ));
    let f = throughput(&Kind::ALL, SPAWN_JOBS, |c| {
        std::hint::black_box(spawn::joined(c, SPAWN_JOBS));
    });
    out.extend(rows(
        "spawn 1M, handles joined",
        "M jobs/s",
        Better::Higher,
        &f,
        |_| None,
    ));
    let f = throughput(&Kind::ALL, NESTED_JOBS, |c| spawn::fan_out(c, NESTED_JOBS));
    out.extend(rows(
        "1 job spawns 100k",
        "M jobs/s",
        Better::Higher,
        &f,
        |_| None,
    ));
    let f = throughput(&Kind::ALL, NESTED_JOBS, |c| spawn::chain(c, NESTED_JOBS));
    out.extend(rows(
        "chain of 100k spawns",
        "M jobs/s",
        Better::Higher,
        &f,
        |_| None,
    ));
    out
}

fn forkjoin_rows() -> Vec<Row> {
    let workers = peers::workers();
    let input = forkjoin::sort_input();
    let rayon = rayon::ThreadPoolBuilder::new()
        .num_threads(workers)
        .build()
        .expect("build a rayon pool");
    pin_rayon(&rayon, workers);
    let rayon_fib = time_median(|| {
        std::hint::black_box(rayon.install(|| fib::<RayonJoin>(FIB_N)));
    });
    let rayon_sort = time_median(|| {
        let mut v = input.clone();
        rayon.install(|| quicksort::<RayonJoin>(&mut v));
    });
    drop(rayon);
    let hand = HandPool::new(workers);
    pin_workers(workers, |job| hand.spawn(job));
    let hand_fib = time_median(|| {
        std::hint::black_box(hand.install(|| fib::<HandJoin>(FIB_N)));
    });
    let hand_sort = time_median(|| {
        let mut v = input.clone();
        hand.install(|| quicksort::<HandJoin>(&mut v));
    });
    drop(hand);
    let workyard = {
        let pool = workyard::Dispatcher::builder()
            .workers(workers)
            .build()
            .expect("build a workyard dispatcher");
        pin_workyard(&pool, workers);
        let fib = time_median(|| {
            std::hint::black_box(pool.join(
                || fib::<WorkyardJoin>(FIB_N - 1),
                || fib::<WorkyardJoin>(FIB_N - 2),
            ));
        });
        let sort = time_median(|| {
            let mut v = input.clone();
            pool.join(|| quicksort::<WorkyardJoin>(&mut v), || ());
        });
        pool.shutdown();
        Some((fib, sort))
    };
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let row = |workload, peer, figure: Duration, wy: Option<Duration>, target| Row {
        workload,
        unit: "ms",
        better: Better::Lower,
        peer,
        peer_figure: ms(figure),
        workyard: wy.map(ms),
        target,
    };
    // The sort includes cloning the input (about 1 ms), for every pool alike.
    vec![
        row(
            "fib(30) via join",
            "rayon",
            rayon_fib,
            workyard.map(|w| w.0),
            Some(Target::RatioAtLeast(1.0)),
        ),
        row(
            "fib(30) via join",
            "hand-rolled",
            hand_fib,
            workyard.map(|w| w.0),
            None,
        ),
        row(
            "quicksort 1M u64",
            "rayon",
            rayon_sort,
            workyard.map(|w| w.1),
            None,
        ),
        row(
            "quicksort 1M u64",
            "hand-rolled",
            hand_sort,
            workyard.map(|w| w.1),
            None,
        ),
    ]
}

/// One fork-join workload timed inside each pool (so that no figure
/// includes the hand-off from the outside thread) and sequentially.
struct Timed {
    sequential: Duration,
    rayon: Duration,
    workyard: Duration,
    workyard_1: Duration,
}

impl Timed {
    /// `work::<J>()` `iters` times per sample on rayon (with `workers`
    /// threads), on workyard with `workers` and with 1, and on this
    /// thread: a warm-up round, then `REPS` rounds that each run every
    /// contender once in turn, so that the machine's drift hits all alike.
    fn measure<W: Work>(work: &W, iters: u32, workers: usize) -> Timed {
        let rayon = rayon::ThreadPoolBuilder::new()
            .num_threads(workers)
            .build()
            .expect("build a rayon pool");
        pin_rayon(&rayon, workers);
        let build = |workers| {
            let pool = workyard::Dispatcher::builder()
                .workers(workers)
                .build()
                .expect("build a workyard dispatcher");
            pin_workyard(&pool, workers);
            pool
        };
        let (workyard, workyard_1) = (build(workers), build(1));
        let sample = |run: &dyn Fn()| {
            let start = Instant::now();
            for _ in 0..iters {
                run();
            }
            start.elapsed() / iters
        };
        let inside = |pool: &workyard::Dispatcher| {
            pool.join(|| sample(&|| work.run::<WorkyardJoin>()), || ())
                .0
        };
        let mut rounds: [Vec<f64>; 4] = Default::default();
        for round in 0..=REPS {
            let times = [
                sample(&|| work.run::<Sequential>()),
                rayon.install(|| sample(&|| work.run::<RayonJoin>())),
                inside(&workyard),
                inside(&workyard_1),
            ];
            if round > 0 {
                for (all, time) in rounds.iter_mut().zip(times) {
                    all.push(time.as_secs_f64());
                }
            }
        }
        workyard.shutdown();
        workyard_1.shutdown();
        let [sequential, rayon, workyard, workyard_1] =
            rounds.map(|r| Duration::from_secs_f64(median(&r)));
        Timed {
            sequential,
            rayon,
            workyard,
            workyard_1,
        }
    }

    /// Rows: against rayon (at least `over_rayon`), workyard's speedup
    /// against rayon's if `speedup`, and workyard on 1 worker against the
    /// sequential run if `one_worker`.
    fn rows(
        &self,
        names: [&'static str; 3],
        unit: &'static str,
        over_rayon: f64,
        speedup: bool,
        one_worker: bool,
    ) -> Vec<Row> {
        let scale = if unit == "µs" { 1e6 } else { 1e3 };
        let figure = |d: Duration| d.as_secs_f64() * scale;
        let mut out = vec![Row {
            workload: names[0],
            unit,
            better: Better::Lower,
            peer: "rayon",
            peer_figure: figure(self.rayon),
            workyard: Some(figure(self.workyard)),
            target: Some(Target::RatioAtLeast(over_rayon)),
        }];
        if speedup {
            let of = |d: Duration| self.sequential.as_secs_f64() / d.as_secs_f64();
            out.push(Row {
                workload: names[1],
                unit: "x",
                better: Better::Higher,
                peer: "rayon",
                peer_figure: of(self.rayon),
                workyard: Some(of(self.workyard)),
                target: Some(Target::RatioAtLeast(1.0)),
            });
        }
        if one_worker {
            out.push(Row {
                workload: names[2],
                unit,
                better: Better::Lower,
                peer: "sequential",
                peer_figure: figure(self.sequential),
                workyard: Some(figure(self.workyard_1)),
                target: Some(Target::RatioAtLeast(1.0 / 1.3)),
            });
        }
        out
    }
}

/// A fork-join workload over any `join`.
trait Work: Sync {
    fn run<J: forkjoin::ForkJoin>(&self);
}

struct TreeSum(Node);

impl Work for TreeSum {
    fn run<J: forkjoin::ForkJoin>(&self) {
        std::hint::black_box(tree_sum::<J>(&self.0));
    }
}

struct FibEvery;

impl Work for FibEvery {
    fn run<J: forkjoin::ForkJoin>(&self) {
        std::hint::black_box(fib_every::<J>(FIB_N));
    }
}

struct FibCutoff;

impl Work for FibCutoff {
    fn run<J: forkjoin::ForkJoin>(&self) {
        std::hint::black_box(fib::<J>(FIB_N));
    }
}

/// Includes cloning the input and allocating the scratch buffer (a few
/// ms), for every pool alike.
struct MergeSort(Vec<u64>);

impl Work for MergeSort {
    fn run<J: forkjoin::ForkJoin>(&self) {
        let mut v = self.0.clone();
        let mut buf = vec![0; v.len()];
        merge_sort::<J>(&mut v, &mut buf);
        std::hint::black_box(&v);
    }
}

/// Fork-join with a `join` at every node, where what one `join` costs is
/// the whole figure (chili's and Spice's benchmarks), next to the usual
/// cutoff workloads; all timed inside the pools.
fn heartbeat_rows() -> Vec<Row> {
    let workers = peers::workers();
    let mut out = Vec::new();
    let small = Timed::measure(&TreeSum(Node::tree(10)), 2_000, workers);
    out.extend(small.rows(
        ["tree sum 1,023 nodes", "", "tree sum 1,023 nodes, 1 worker"],
        "µs",
        3.0,
        false,
        true,
    ));
    let big = TreeSum(Node::tree(24));
    let t = Timed::measure(&big, 1, workers);
    drop(big);
    out.extend(t.rows(
        ["tree sum 2^24 nodes", "", "tree sum 2^24 nodes, 1 worker"],
        "ms",
        3.0,
        false,
        true,
    ));
    let t = Timed::measure(&FibEvery, 1, workers);
    out.extend(t.rows(
        ["fib(30), join at every level", "", ""],
        "ms",
        3.0,
        false,
        false,
    ));
    let t = Timed::measure(&FibCutoff, 1, workers);
    out.extend(t.rows(
        ["fib(30), cutoff 12", "fib(30), cutoff 12, speedup", ""],
        "ms",
        1.0,
        true,
        false,
    ));
    let t = Timed::measure(&MergeSort(forkjoin::random_u64s(MERGE_LEN)), 1, workers);
    out.extend(t.rows(
        ["merge sort 2M u64", "merge sort 2M u64, speedup", ""],
        "ms",
        1.0,
        true,
        false,
    ));
    out
}

fn latency_rows() -> Vec<Row> {
    let workers = peers::workers();
    let mut p50 = Vec::new();
    let mut p99 = Vec::new();
    for kind in Kind::SINGLE_JOB {
        let contender = Contender::new(kind, workers);
        let us = sorted_micros(&latency::sample(&contender, LATENCY_SAMPLES));
        contender.shutdown();
        p50.push((kind, percentile_sorted(&us, 50.0)));
        p99.push((kind, percentile_sorted(&us, 99.0)));
    }
    let floor = sorted_micros(&latency::floor(LATENCY_SAMPLES));
    let mut out = rows("wake latency p50", "µs", Better::Lower, &p50, |k| {
        (k == Kind::RayonSpawn).then_some(Target::RatioAtLeast(2.0))
    });
    out.push(floor_row(&out, percentile_sorted(&floor, 50.0)));
    let p99_rows = rows("wake latency p99", "µs", Better::Lower, &p99, |k| {
        (k == Kind::RayonSpawn).then_some(Target::RatioAtLeast(1.0 / 0.35))
    });
    let p99_floor = floor_row(&p99_rows, percentile_sorted(&floor, 99.0));
    out.extend(p99_rows);
    out.push(p99_floor);
    out
}

/// A bare thread's park/unpark, measured like the pools: not a peer but the
/// floor under all of them, so a reader sees when a target asks for less.
fn floor_row(pool_rows: &[Row], figure: f64) -> Row {
    let first = &pool_rows[0];
    Row {
        peer: FLOOR,
        peer_figure: figure,
        target: None,
        ..*first
    }
}

fn idle_rows() -> Vec<Row> {
    let workers = peers::workers();
    let window = Duration::from_secs(2);
    let figures: Vec<(Kind, f64)> = Kind::SINGLE_JOB
        .iter()
        .map(|&kind| {
            let contender = Contender::new(kind, workers);
            let ms = idle::cpu_ms_per_s(&contender, window);
            contender.shutdown();
            idle::settle();
            (kind, ms)
        })
        .collect();
    rows(
        "idle CPU, 2 s after work",
        "ms/s",
        Better::Lower,
        &figures,
        |_| Some(Target::AtMost(0.2)),
    )
}

fn coarse_rows() -> Vec<Row> {
    let workers = peers::workers();
    let iters = coarse::calibrate();
    let pools = contenders(&Kind::ALL);
    pools.iter().for_each(|pool| coarse::run(pool, iters));
    // Each pool run is paired with a sequential run just before it, so that
    // both halves of the efficiency see the same machine load.
    let mut efficiency = vec![Vec::new(); pools.len()];
    for _ in 0..REPS {
        for (eff, pool) in efficiency.iter_mut().zip(&pools) {
            let sequential = time(|| coarse::sequential(iters));
            let wall = time(|| coarse::run(pool, iters));
            eff.push(coarse::efficiency(sequential, wall, workers));
        }
    }
    pools.into_iter().for_each(Contender::shutdown);
    let figures: Vec<(Kind, f64)> = Kind::ALL
        .iter()
        .copied()
        .zip(efficiency.iter().map(|e| median(e)))
        .collect();
    rows(
        "coarse 2000 x 50 µs, efficiency",
        "",
        Better::Higher,
        &figures,
        |_| Some(Target::AtLeast(0.97)),
    )
}

fn memory_rows() -> Vec<Row> {
    let workers = peers::workers();
    let figures: Vec<(Kind, f64)> = Kind::SINGLE_JOB
        .iter()
        .map(|&kind| {
            let contender = Contender::new(kind, workers);
            let m = memory::per_job(&contender, workers, memory::QUEUED);
            contender.shutdown();
            (kind, m.overhead())
        })
        .collect();
    rows(
        "1M queued, B/job beyond closure",
        "B",
        Better::Lower,
        &figures,
        |_| Some(Target::AtMost(128.0)),
    )
}

fn print(rows: &[Row]) {
    println!(
        "{:<38} {:<12} {:>10} {:>10} {:>9}  {:<28} met",
        "workload (unit)", "peer", "peer", "workyard", "ratio", "target"
    );
    println!("{}", "-".repeat(123));
    let mut last = "";
    for r in rows {
        let name = if r.workload == last {
            String::new()
        } else if r.unit.is_empty() {
            r.workload.to_string()
        } else {
            format!("{} ({})", r.workload, r.unit)
        };
        last = r.workload;
        let wy = r.workyard.map_or("n/a".to_string(), |w| format!("{w:.3}"));
        let ratio = r.ratio().map_or("n/a".to_string(), |x| format!("{x:.2}x"));
        println!(
            "{name:<38} {:<12} {:>10.3} {wy:>10} {ratio:>9}  {:<28} {}",
            r.peer,
            r.peer_figure,
            r.target_text(),
            r.met()
        );
    }
}

/// Says, below the table, how the p99 target compares with the floor.
fn latency_note(table: &[Row]) {
    let figure = |peer: &str| {
        table
            .iter()
            .find(|r| r.workload == "wake latency p99" && r.peer == peer)
            .map(|r| r.peer_figure)
    };
    if let (Some(rayon), Some(floor)) = (figure(Kind::RayonSpawn.name()), figure(FLOOR)) {
        println!(
            "\nwake latency p99: the target asks workyard for <= {:.1} µs (0.35 x rayon-spawn); \
             a bare thread's park/unpark, measured the same way, took {floor:.1} µs",
            0.35 * rayon
        );
    }
}

fn main() {
    assert!(
        peers::alloc::installed(),
        "the counting allocator is not installed"
    );
    let only: Option<fn() -> Vec<Row>> = match std::env::args().nth(1).as_deref() {
        None => None,
        Some("heartbeat") => Some(heartbeat_rows),
        Some("spawn") => Some(spawn_rows),
        Some("forkjoin") => Some(forkjoin_rows),
        Some("coarse") => Some(coarse_rows),
        Some(other) => {
            eprintln!(
                "unknown section {other:?}: heartbeat, spawn, forkjoin or coarse (none: all)"
            );
            std::process::exit(2);
        }
    };
    let started = Instant::now();
    let workers = peers::workers();
    let pinned = if peers::contender::pinned() {
        ", each pinned to a CPU"
    } else {
        ""
    };
    println!(
        "workyard vs peers, {workers} workers{pinned}, {}; ratio > 1.00 means workyard is better\n",
        peers::sys::machine()
    );
    if let Some(rows) = only {
        print(&rows());
        println!("\ntook {:.0} s", started.elapsed().as_secs_f64());
        return;
    }
    // Memory first, while the heap is fresh; idle before the CPU-heavy parts
    // leave other pools' threads winding down.
    let mut table = memory_rows();
    table.extend(idle_rows());
    table.extend(latency_rows());
    table.extend(spawn_rows());
    table.extend(forkjoin_rows());
    table.extend(heartbeat_rows());
    table.extend(coarse_rows());
    print(&table);
    latency_note(&table);
    println!("\ntook {:.0} s", started.elapsed().as_secs_f64());
}
