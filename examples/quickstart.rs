//! A dispatcher with a few workers running several job types; prints each
//! job's status, worker and run time, then the results and the stats.
//!
//! Run with `cargo run --release --example quickstart`.

use std::time::Duration;
use workyard::{fallible, Dispatcher, Job, JobError};

/// A typed job: checksums a buffer.
struct Checksum {
    data: Vec<u8>,
}

impl Job for Checksum {
    type Output = u32;
    type Error = String;

    fn run(self) -> Result<u32, String> {
        if self.data.is_empty() {
            return Err("nothing to checksum".to_string());
        }
        // Adler-32, by hand, to keep the example dependency-free.
        let (mut a, mut b) = (1u32, 0u32);
        for &byte in &self.data {
            a = (a + u32::from(byte)) % 65_521;
            b = (b + a) % 65_521;
        }
        Ok((b << 16) | a)
    }
}

/// Another job type on the same dispatcher: counts primes below a bound.
struct CountPrimes(u64);

impl Job for CountPrimes {
    type Output = usize;
    type Error = std::convert::Infallible;

    fn run(self) -> Result<usize, Self::Error> {
        Ok((2..self.0)
            .filter(|&n| (2..).take_while(|d| d * d <= n).all(|d| n % d != 0))
            .count())
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let pool = Dispatcher::builder()
        .workers(4)
        .thread_name(|i| format!("quickstart-{i}"))
        .build()?;

    let checksum = pool.spawn(Checksum {
        data: b"Wikipedia".to_vec(),
    })?;
    let empty = pool.spawn(Checksum { data: Vec::new() })?;
    let primes = pool.spawn(CountPrimes(200_000))?;
    let sleepy = pool.spawn(|| {
        std::thread::sleep(Duration::from_millis(20));
        "slept 20 ms"
    })?;
    let parsed = pool.spawn(fallible(|| "42".parse::<u8>()))?;
    let panics = pool.spawn(|| -> u8 { panic!("this job panics on purpose") })?;

    let ids = [
        checksum.id(),
        empty.id(),
        primes.id(),
        sleepy.id(),
        parsed.id(),
        panics.id(),
    ];
    println!("spawned {} jobs; statuses right away:", ids.len());
    for id in ids {
        println!("  {id}: {}", pool.status(id).expect("known id"));
    }

    println!("\nresults:");
    println!("  checksum      = {:#010x}", checksum.join()?);
    match empty.join() {
        Err(JobError::Failed(reason)) => println!("  empty buffer  = failed: {reason}"),
        other => println!("  empty buffer  = {other:?}"),
    }
    println!("  primes < 200k = {}", primes.join()?);
    println!("  sleepy        = {}", sleepy.join()?);
    println!("  parsed        = {}", parsed.join()?);
    match panics.join() {
        Err(e) => println!("  panics        = {e}"),
        Ok(v) => println!("  panics        = {v} (unexpected)"),
    }

    pool.wait_idle();
    println!("\nstatus records:");
    for id in ids {
        let info = pool.info(id).expect("within the history");
        println!(
            "  {id}: {:<9} worker {:?}, waited {:?}, ran {:?}",
            info.status().to_string(),
            info.worker(),
            info.wait_time(),
            info.run_time().unwrap_or_default()
        );
    }

    let stats = pool.stats();
    println!(
        "\nstats: {} workers, {} succeeded, {} failed, {} panicked, {} cancelled, {} steals",
        stats.workers, stats.succeeded, stats.failed, stats.panicked, stats.cancelled, stats.steals
    );
    for w in &stats.per_worker {
        println!(
            "  worker {}: {} jobs, busy {:?}",
            w.index, w.jobs_run, w.busy
        );
    }
    pool.shutdown();
    Ok(())
}
