//! Idle cost: CPU time the process burns while a pool sits idle for 2 s
//! right after 10,000 jobs, in ms of CPU per s; three runs per pool, each
//! pool alone in the process. A custom loop rather than criterion: the
//! figure is CPU time, not a duration criterion could time.

mod peers;

use peers::summary::Summary;
use peers::{idle, Contender, Kind};

const RUNS: usize = 3;

fn main() {
    let workers = peers::workers();
    println!(
        "idle_cpu: {RUNS} x {:?} per pool, {workers} workers, {}",
        idle::WINDOW,
        peers::sys::machine()
    );
    println!(
        "{:<12} {:>12} {:>20}",
        "pool", "median ms/s", "min-max ms/s"
    );
    let base: Vec<f64> = (0..RUNS)
        .map(|_| idle::baseline_ms_per_s(idle::WINDOW))
        .collect();
    print_row("no pool", &base);
    for kind in Kind::SINGLE_JOB {
        let runs: Vec<f64> = (0..RUNS)
            .map(|_| {
                let contender = Contender::new(kind, workers);
                let ms = idle::cpu_ms_per_s(&contender, idle::WINDOW);
                contender.shutdown();
                idle::settle();
                ms
            })
            .collect();
        print_row(kind.name(), &runs);
    }
    println!("target: workyard <= 0.2 ms of CPU per s");
}

fn print_row(name: &str, runs: &[f64]) {
    let s = Summary::of(runs);
    println!(
        "{name:<12} {:>12.3} {:>20}",
        s.median,
        format!("{:.3}-{:.3}", s.min, s.max)
    );
}
