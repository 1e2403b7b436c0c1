//! Throughput of the durable queue, with fsyncs per job.
//!
//! ```sh
//! cargo run --release --features persist --example persist_bench
//! cargo run --release --features persist --example persist_bench -- --depths 0,100000 --jobs 50000
//! ```
//!
//! Measures, each on a fresh file in the temp directory (or `--dir DIR`):
//!
//! 1. `enqueue_batch` of 1,000 jobs, from one thread, back to back.
//! 2. `enqueue` from 8 threads at once, each call durable on return.
//! 3. End to end at queue depth D: D jobs already stored and pending
//!    (loaded untimed), then, timed: one producer enqueues `--jobs` more
//!    in batches of 100 while the dispatcher runs a no-op handler on all
//!    of them; the clock stops when the last of the D + jobs has its
//!    completion committed. Throughput counts all D + jobs (each one
//!    claimed, run and completed durably; the timed enqueues included).
//!
//! First it times the disk's `fsync` alone, to put the figures in context.

use std::fs::OpenOptions;
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};
use workyard::persist::{PersistError, Queue, QueueStats};
use workyard::Dispatcher;

struct Args {
    dir: PathBuf,
    depths: Vec<u64>,
    jobs: u64,
    batches: u64,
    per_thread: u64,
}

fn parse_args() -> Args {
    let mut args = Args {
        dir: std::env::temp_dir(),
        depths: vec![0, 100_000, 1_000_000],
        jobs: 100_000,
        batches: 100,
        per_thread: 1_000,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--dir" => args.dir = PathBuf::from(value()),
            "--depths" => {
                args.depths = value()
                    .split(',')
                    .map(|d| d.parse().expect("--depths takes numbers"))
                    .collect()
            }
            "--jobs" => args.jobs = value().parse().expect("--jobs takes a number"),
            "--batches" => args.batches = value().parse().expect("--batches takes a number"),
            "--per-thread" => {
                args.per_thread = value().parse().expect("--per-thread takes a number")
            }
            other => panic!("unknown flag {other}; see the example's docs"),
        }
    }
    args
}

/// A fresh queue file.
fn fresh(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(format!("workyard-bench-{}-{name}.redb", std::process::id()));
    let _ = std::fs::remove_file(&path);
    path
}

fn fsync_probe(dir: &Path) -> Duration {
    let path = dir.join(format!("workyard-bench-{}-fsync", std::process::id()));
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    // Rewrite 16 pages in place, as redb mostly does: an append would
    // also journal the file's new size on every sync.
    file.write_all(&[0u8; 16 * 4096]).unwrap();
    file.sync_all().unwrap();
    let n: u32 = 200;
    let start = Instant::now();
    for i in 0..n {
        file.seek(SeekFrom::Start(u64::from(i % 16) * 4096))
            .unwrap();
        file.write_all(&[1u8; 4096]).unwrap();
        file.sync_data().unwrap();
    }
    let per = start.elapsed() / n;
    drop(file);
    let _ = std::fs::remove_file(&path);
    per
}

fn report(what: &str, jobs: u64, elapsed: Duration, before: &QueueStats, after: &QueueStats) {
    let fsyncs = after.fsyncs - before.fsyncs;
    let commits = after.commits - before.commits;
    println!(
        "{what:<40} {jobs:>8} jobs {:>6.2} s {:>8.0} jobs/s {:>7.4} fsyncs/job {:>6} commits {:>6.0} µs/commit",
        elapsed.as_secs_f64(),
        jobs as f64 / elapsed.as_secs_f64(),
        fsyncs as f64 / jobs as f64,
        commits,
        elapsed.as_secs_f64() * 1e6 / commits.max(1) as f64,
    );
}

fn bench_batch(args: &Args) -> Result<(), PersistError> {
    let path = fresh(&args.dir, "batch");
    let queue = Queue::open(&path)?;
    let payload = [7u8; 16];
    let before = queue.stats();
    let start = Instant::now();
    for _ in 0..args.batches {
        queue.enqueue_batch((0..1000).map(|_| ("noop", &payload[..])))?;
    }
    let elapsed = start.elapsed();
    report(
        "enqueue_batch(1000), 1 thread",
        args.batches * 1000,
        elapsed,
        &before,
        &queue.stats(),
    );
    queue.stop()?;
    let _ = std::fs::remove_file(&path);
    Ok(())
}

fn bench_threads(args: &Args) -> Result<(), PersistError> {
    let path = fresh(&args.dir, "threads");
    let queue = Queue::open(&path)?;
    let threads = 8;
    let barrier = Arc::new(Barrier::new(threads + 1));
    let before = queue.stats();
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let queue = queue.clone();
            let barrier = barrier.clone();
            let n = args.per_thread;
            std::thread::spawn(move || -> Result<(), PersistError> {
                barrier.wait();
                for i in 0..n {
                    queue.enqueue("noop", &i.to_le_bytes())?;
                }
                Ok(())
            })
        })
        .collect();
    barrier.wait();
    let start = Instant::now();
    for w in workers {
        w.join().expect("enqueue thread panicked")?;
    }
    let elapsed = start.elapsed();
    report(
        "enqueue, 8 threads, each call durable",
        threads as u64 * args.per_thread,
        elapsed,
        &before,
        &queue.stats(),
    );
    queue.stop()?;
    let _ = std::fs::remove_file(&path);
    Ok(())
}

fn bench_end_to_end(args: &Args, depth: u64) -> Result<(), PersistError> {
    let path = fresh(&args.dir, &format!("e2e-{depth}"));
    let queue = Queue::open(&path)?;
    let payload = [7u8; 16];
    let load = Instant::now();
    let mut loaded = 0;
    while loaded < depth {
        let n = 1000.min(depth - loaded);
        queue.enqueue_batch((0..n).map(|_| ("noop", &payload[..])))?;
        loaded += n;
    }
    if depth > 0 {
        println!(
            "  (loaded depth {depth} in {:.1} s; file {} MiB)",
            load.elapsed().as_secs_f64(),
            std::fs::metadata(&path).map_or(0, |m| m.len() >> 20)
        );
    }
    queue.register("noop", |_| -> Result<(), String> { Ok(()) })?;
    let pool = Dispatcher::builder().build().expect("dispatcher");
    let before = queue.stats();
    let start = Instant::now();
    queue.start(&pool)?;
    let producer = {
        let queue = queue.clone();
        let jobs = args.jobs;
        std::thread::spawn(move || -> Result<(), PersistError> {
            let mut sent = 0;
            while sent < jobs {
                let n = 100.min(jobs - sent);
                queue.enqueue_batch((0..n).map(|_| ("noop", &payload[..])))?;
                sent += n;
            }
            Ok(())
        })
    };
    producer.join().expect("producer panicked")?;
    queue.wait_idle()?;
    let elapsed = start.elapsed();
    let after = queue.stats();
    assert_eq!(after.completed, depth + args.jobs, "every job completed");
    report(
        &format!("end to end, depth {depth}"),
        depth + args.jobs,
        elapsed,
        &before,
        &after,
    );
    queue.stop()?;
    pool.shutdown();
    let _ = std::fs::remove_file(&path);
    Ok(())
}

fn main() -> Result<(), PersistError> {
    let args = parse_args();
    println!(
        "workyard persist bench: {} logical CPUs, files in {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        args.dir.display()
    );
    println!(
        "fsync alone (4 KiB rewrite + fdatasync): {:.0} µs",
        fsync_probe(&args.dir).as_secs_f64() * 1e6
    );
    bench_batch(&args)?;
    bench_threads(&args)?;
    for &depth in &args.depths {
        bench_end_to_end(&args, depth)?;
    }
    Ok(())
}
