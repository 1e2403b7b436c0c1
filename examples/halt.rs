//! Replays the seed prototype: workers report their status while they run
//! jobs, are halted one by one, and then all at once; every job's run time
//! is printed, and the jobs that never started are reported.
//!
//! Run with `cargo run --release --example halt`.

use std::time::Duration;
use workyard::{Dispatcher, JobStatus, WorkerState};

/// A job that works in small steps and stops early when asked to.
fn work(steps: u32) -> u32 {
    let mut done = 0;
    for _ in 0..steps {
        if workyard::is_cancelled() {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
        done += 1;
    }
    done
}

fn report(pool: &Dispatcher, moment: &str) {
    let stats = pool.stats();
    println!(
        "-- {moment}: {} workers running, {} queued, {} running",
        stats.workers, stats.queued, stats.running
    );
    for w in &stats.per_worker {
        let doing = match (w.state, w.current_job) {
            (WorkerState::Running, Some(job)) => format!("running {job}"),
            (state, _) => format!("{state:?}").to_lowercase(),
        };
        println!(
            "   worker {}: {doing:<16} {} jobs run, busy {:?}",
            w.index, w.jobs_run, w.busy
        );
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let pool = Dispatcher::builder().workers(4).build()?;
    let handles: Vec<_> = (0..40)
        .map(|i| pool.spawn(move || work(5 + i % 10)))
        .collect::<Result<_, _>>()?;
    let ids: Vec<_> = handles.iter().map(|h| h.id()).collect();

    std::thread::sleep(Duration::from_millis(30));
    report(&pool, "all four workers busy");

    for worker in [3, 2, 1] {
        pool.halt_worker(worker)?;
        std::thread::sleep(Duration::from_millis(30));
        report(&pool, &format!("after halt_worker({worker})"));
    }

    let halted = pool.halt();
    report(&pool, "after halt()");
    println!(
        "\nhalt: {} jobs never started, {} running jobs were asked to stop",
        halted.never_started.len(),
        halted.interrupted.len()
    );

    println!("\njob      status     worker  run time   steps done");
    for (id, handle) in ids.iter().zip(handles) {
        let info = pool.info(*id).expect("within the history");
        let result = handle.join();
        let steps = match (&result, info.status()) {
            (Ok(steps), _) => steps.to_string(),
            (Err(_), JobStatus::Cancelled) if info.started_at().is_some() => "stopped early".into(),
            (Err(_), _) => "-".into(),
        };
        println!(
            "{:<8} {:<10} {:<7} {:<10} {steps}",
            id.to_string(),
            info.status().to_string(),
            info.worker().map_or("-".into(), |w| w.to_string()),
            info.run_time().map_or("-".into(), |d| format!("{:.1?}", d)),
        );
    }
    Ok(())
}
