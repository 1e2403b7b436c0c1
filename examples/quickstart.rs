//! A dispatcher with a few workers running several job types; prints each
//! job's status, worker and run time, then the results and the stats. Two
//! jobs panic on purpose, to show that a panic is caught: one is joined,
//! the other detached, whose payload goes to the panic handler.
//!
//! Run with `cargo run --release --example quickstart`.

use std::sync::mpsc;
use std::time::Duration;
use workyard::{fallible, Dispatcher, Job, JobError};

/// What the deliberately panicking jobs say; the panic hook keeps quiet
/// about these, and about nothing else.
const ON_PURPOSE: &str = "panics on purpose";

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

/// Keeps std's panic message (and backtrace note) for the deliberate
/// panics out of the output; any other panic is reported as usual.
fn quiet_about_deliberate_panics() {
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<&str>()
            .copied()
            .or_else(|| payload.downcast_ref::<String>().map(String::as_str));
        if !message.is_some_and(|m| m.contains(ON_PURPOSE)) {
            report(info);
        }
    }));
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    quiet_about_deliberate_panics();
    // The panic handler gets the payloads nobody joins for: a detached
    // job's. It runs on the worker; the channel brings them to `main`.
    let (unseen_tx, unseen) = mpsc::channel();
    let pool = Dispatcher::builder()
        .workers(4)
        .thread_name(|i| format!("quickstart-{i}"))
        .panic_handler(move |payload| {
            let message = payload.message().unwrap_or("<not a string>").to_string();
            let _ = unseen_tx.send(message);
        })
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
    let panics = pool.spawn(|| -> u8 { panic!("this job {ON_PURPOSE}") })?;
    // Detached: its handle is dropped at once, so nobody can join it.
    let detached = pool.spawn(|| -> () { panic!("this detached job {ON_PURPOSE}") })?;
    let detached_id = detached.id();
    drop(detached);

    let ids = [
        checksum.id(),
        empty.id(),
        primes.id(),
        sleepy.id(),
        parsed.id(),
        panics.id(),
        detached_id,
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
        Err(e) => println!("  panics        = {e} (deliberate: caught, the worker carried on)"),
        Ok(v) => println!("  panics        = {v} (unexpected)"),
    }

    pool.wait_idle();
    // `wait_idle` returned after the handler ran: the message is here.
    for message in unseen.try_iter() {
        println!("  detached      = panic handler got: {message} (deliberate)");
    }
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
