//! The Goblero demo, done right: a program that must process 10,000 URLs,
//! crashes part way, and picks up where it stopped when run again.
//!
//! ```sh
//! cargo run --release --features persist --example urls            # Ctrl-C or kill it part way
//! cargo run --release --features persist --example urls            # resumes; in-flight items retried
//! cargo run --release --features persist --example urls -- --fresh # start over
//! ```
//!
//! Options: `--workers N` (default 4), `--items N` (default 10,000),
//! `--dir DIR` (default: `workyard-urls` in the temp directory), `--fresh`,
//! and with `--features postgres`: `--postgres URL` to keep the queue in
//! PostgreSQL (schema `workyard_urls`) instead of a file. Several copies
//! of the program may then run at once, on one or more machines, sharing
//! the work; kill one and the others finish its URLs once its leases run
//! out (15 s):
//!
//! ```sh
//! cargo run --release --features postgres --example urls -- --postgres postgres://user:pw@host/db --fresh
//! ```
//!
//! "Fetching" is local work (no network): a 1–5 ms pause standing in for
//! the request, then a checksum of the URL, appended to `results.txt`.
//! Ctrl-C ends the process at once, exactly like a crash: nothing is
//! flushed on the way out, and nothing needs to be.

use indicatif::{ProgressBar, ProgressStyle};
use std::fs::OpenOptions;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use workyard::persist::Queue;
use workyard::Dispatcher;

struct Args {
    workers: usize,
    items: usize,
    dir: PathBuf,
    fresh: bool,
    postgres: Option<String>,
}

fn parse_args() -> Args {
    let mut args = Args {
        workers: 4,
        items: 10_000,
        dir: std::env::temp_dir().join("workyard-urls"),
        fresh: false,
        postgres: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--workers" => args.workers = value().parse().expect("--workers takes a number"),
            "--items" => args.items = value().parse().expect("--items takes a number"),
            "--dir" => args.dir = PathBuf::from(value()),
            "--fresh" => args.fresh = true,
            "--postgres" => args.postgres = Some(value()),
            other => panic!("unknown flag {other}; see the example's docs"),
        }
    }
    args
}

/// A stand-in for fetching a URL: a short pause, then a checksum.
fn fetch(url: &[u8]) -> u64 {
    let pause = 1 + url.iter().map(|&b| u64::from(b)).sum::<u64>() % 5;
    std::thread::sleep(Duration::from_millis(pause));
    url.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

#[cfg(feature = "postgres")]
fn open_postgres(url: &str, fresh: bool) -> Result<Queue, Box<dyn std::error::Error>> {
    if fresh {
        let mut client = postgres::Client::connect(url, postgres::NoTls)?;
        client.batch_execute("DROP SCHEMA IF EXISTS workyard_urls CASCADE")?;
    }
    Ok(Queue::builder().schema("workyard_urls").connect(url)?)
}

#[cfg(not(feature = "postgres"))]
fn open_postgres(_url: &str, _fresh: bool) -> Result<Queue, Box<dyn std::error::Error>> {
    Err(
        "--postgres needs the `postgres` feature: cargo run --features postgres --example urls"
            .into(),
    )
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = parse_args();
    if args.fresh {
        let _ = std::fs::remove_dir_all(&args.dir);
    }
    std::fs::create_dir_all(&args.dir)?;
    let queue = match &args.postgres {
        None => Queue::open(args.dir.join("queue.redb"))?,
        Some(url) => open_postgres(url, args.fresh)?,
    };
    // Register first, so that stored jobs count as pending, not waiting.
    let results = Arc::new(
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(args.dir.join("results.txt"))?,
    );
    queue.register("fetch", move |job| -> Result<(), std::io::Error> {
        let sum = fetch(job.payload());
        let line = format!(
            "{} {} {sum:016x}\n",
            job.id().as_u64(),
            String::from_utf8_lossy(job.payload())
        );
        (&*results).write_all(line.as_bytes())
    })?;

    let before = queue.stats();
    let known = before.pending + before.running + before.dead + before.succeeded;

    if known == 0 {
        // First run: write the input file, then enqueue it, 1,000 per commit.
        let input = args.dir.join("urls.txt");
        let mut file = std::fs::File::create(&input)?;
        for i in 0..args.items {
            writeln!(file, "https://example.invalid/page/{i}")?;
        }
        drop(file);
        let lines: Vec<String> = BufReader::new(std::fs::File::open(&input)?)
            .lines()
            .collect::<Result<_, _>>()?;
        for chunk in lines.chunks(1000) {
            queue.enqueue_batch(chunk.iter().map(|url| ("fetch", url.as_bytes())))?;
        }
        println!("enqueued {} URLs from {}", lines.len(), input.display());
    } else {
        println!(
            "resuming: {} done before, {} left, {} in flight when the last run died (retried now)",
            before.succeeded, before.pending, before.recovered
        );
    }

    let total = queue.stats();
    let total = total.pending + total.running + total.succeeded + total.dead;
    let bar = ProgressBar::new(total);
    bar.set_style(ProgressStyle::with_template(
        "{bar:40} {pos}/{len} URLs  {per_sec}  eta {eta}",
    )?);
    let pool = Dispatcher::builder().workers(args.workers).build()?;
    queue.start(&pool)?;
    // Redraw a few times a second until nothing is left to run.
    loop {
        let s = queue.stats();
        bar.set_position(s.succeeded + s.dead);
        if s.pending + s.running == 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    queue.wait_idle()?;
    bar.finish();
    let s = queue.stats();
    queue.stop()?;
    println!(
        "done: {} fetched, {} dead; results in {}",
        s.succeeded,
        s.dead,
        args.dir.join("results.txt").display()
    );
    Ok(())
}
