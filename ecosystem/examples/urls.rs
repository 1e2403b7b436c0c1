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
//! `--two-and-kill` (with `--postgres`) shows that without a second
//! terminal: it enqueues the URLs, starts two consumer copies of this
//! program side by side (leases of 3 s), SIGKILLs one of them a third of
//! the way through, lets the other finish, and then checks the results:
//! every URL fetched, and fetched twice only if the killed copy had it in
//! flight.
//!
//! ```sh
//! cargo run --release --features postgres --example urls -- --postgres postgres://user:pw@host/db --two-and-kill
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
    /// `--two-and-kill`: the demo's parent.
    two_and_kill: bool,
    /// `--consumer`: one of the demo's children (runs, reports, exits).
    consumer: bool,
}

fn parse_args() -> Args {
    let mut args = Args {
        workers: 4,
        items: 10_000,
        dir: std::env::temp_dir().join("workyard-urls"),
        fresh: false,
        postgres: None,
        two_and_kill: false,
        consumer: false,
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
            "--two-and-kill" => args.two_and_kill = true,
            "--consumer" => args.consumer = true,
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

/// The demo's lease: short, so that the killed copy's URLs come back soon.
const DEMO_LEASE: Duration = Duration::from_secs(3);

#[cfg(feature = "postgres")]
fn open_postgres(
    url: &str,
    fresh: bool,
    lease: Option<Duration>,
) -> Result<Queue, Box<dyn std::error::Error>> {
    if fresh {
        let mut client = postgres::Client::connect(url, postgres::NoTls)?;
        client.batch_execute("DROP SCHEMA IF EXISTS workyard_urls CASCADE")?;
    }
    let mut builder = Queue::builder().schema("workyard_urls");
    if let Some(lease) = lease {
        builder = builder.lease(lease).heartbeat(lease / 3);
    }
    Ok(builder.connect(url)?)
}

#[cfg(not(feature = "postgres"))]
fn open_postgres(
    _url: &str,
    _fresh: bool,
    _lease: Option<Duration>,
) -> Result<Queue, Box<dyn std::error::Error>> {
    Err(
        "--postgres needs the `postgres` feature: cargo run --features postgres --example urls"
            .into(),
    )
}

/// The URLs of a first run, also written to `urls.txt`.
fn urls(args: &Args) -> Result<Vec<String>, Box<dyn std::error::Error>> {
    let input = args.dir.join("urls.txt");
    let mut file = std::fs::File::create(&input)?;
    for i in 0..args.items {
        writeln!(file, "https://example.invalid/page/{i}")?;
    }
    drop(file);
    Ok(BufReader::new(std::fs::File::open(&input)?)
        .lines()
        .collect::<Result<_, _>>()?)
}

/// Registers the fetcher, which appends one line per URL to `results`.
fn register(queue: &Queue, results: &std::path::Path) -> Result<(), Box<dyn std::error::Error>> {
    let results = Arc::new(OpenOptions::new().create(true).append(true).open(results)?);
    queue.register("fetch", move |job| -> Result<(), std::io::Error> {
        let sum = fetch(job.payload());
        let line = format!(
            "{} {} {sum:016x}\n",
            job.id().as_u64(),
            String::from_utf8_lossy(job.payload())
        );
        (&*results).write_all(line.as_bytes())
    })?;
    Ok(())
}

/// A child of `--two-and-kill`: fetches until nothing is left anywhere
/// (the other copy's leased URLs included), into its own results file.
fn consume(args: &Args, url: &str) -> Result<(), Box<dyn std::error::Error>> {
    let queue = open_postgres(url, false, Some(DEMO_LEASE))?;
    register(
        &queue,
        &args.dir.join(format!("results-{}.txt", std::process::id())),
    )?;
    let pool = Dispatcher::builder().workers(args.workers).build()?;
    queue.start(&pool)?;
    queue.wait_idle()?;
    let s = queue.stats();
    queue.stop()?;
    println!("{} {}", s.completed, s.recovered);
    Ok(())
}

/// `--two-and-kill`: two consumers side by side, one SIGKILLed a third of
/// the way through; then every URL must have a result, and only URLs the
/// killed one had in flight may have two.
fn two_and_kill(args: &Args, url: &str) -> Result<(), Box<dyn std::error::Error>> {
    use std::collections::HashMap;
    use std::process::{Command, Stdio};
    use std::time::Instant;
    let _ = std::fs::remove_dir_all(&args.dir);
    std::fs::create_dir_all(&args.dir)?;
    let queue = open_postgres(url, true, Some(DEMO_LEASE))?;
    let lines = urls(args)?;
    for chunk in lines.chunks(1000) {
        queue.enqueue_batch(chunk.iter().map(|url| ("fetch", url.as_bytes())))?;
    }
    println!("enqueued {} URLs; starting two consumers", lines.len());
    let spawn = || {
        Command::new(std::env::current_exe()?)
            .args(["--consumer", "--postgres", url, "--workers"])
            .arg(args.workers.to_string())
            .arg("--dir")
            .arg(&args.dir)
            .stdout(Stdio::piped())
            .spawn()
    };
    let mut victim = spawn()?;
    let mut survivor = spawn()?;
    let started = Instant::now();
    // The queue's own figures are shared by every process on it.
    while queue.stats().succeeded < lines.len() as u64 / 3 {
        // A consumer that cannot start (a bad URL, a lost server) must
        // not leave this loop waiting for work nobody does.
        for child in [&mut victim, &mut survivor] {
            if let Some(status) = child.try_wait()? {
                return Err(format!("consumer {} ended early: {status}", child.id()).into());
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    victim.kill()?;
    victim.wait()?;
    let at_kill = queue.stats();
    println!(
        "SIGKILLed consumer {} after {:.1} s with {} URLs done by both, {} running",
        victim.id(),
        started.elapsed().as_secs_f64(),
        at_kill.succeeded,
        at_kill.running
    );
    let survivor_id = survivor.id();
    let out = survivor.wait_with_output()?;
    let report = String::from_utf8_lossy(&out.stdout);
    let mut fields = report.split_whitespace().map(str::parse::<u64>);
    let (Some(Ok(completed)), Some(Ok(recovered))) = (fields.next(), fields.next()) else {
        return Err(format!("the surviving consumer failed: {report:?}").into());
    };
    println!(
        "consumer {} finished after {:.1} s: {completed} URLs by it, {recovered} of the \
         killed one's taken back when their leases ({} s) ran out",
        survivor_id,
        started.elapsed().as_secs_f64(),
        DEMO_LEASE.as_secs()
    );
    // Every result line of both consumers, by job id.
    let mut fetched: HashMap<u64, u32> = HashMap::new();
    for entry in std::fs::read_dir(&args.dir)? {
        let path = entry?.path();
        if path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("results-"))
        {
            for line in BufReader::new(std::fs::File::open(&path)?).lines() {
                let line = line?;
                let Some(Ok(id)) = line.split(' ').next().map(str::parse::<u64>) else {
                    continue; // the killed process's last line may be cut short
                };
                *fetched.entry(id).or_default() += 1;
            }
        }
    }
    let twice = fetched.values().filter(|&&n| n > 1).count() as u64;
    let end = queue.stats();
    queue.stop()?;
    // `recovered` counts what this process's claims took back: the
    // survivor's figure is the killed consumer's attempts in flight.
    println!(
        "{} of {} URLs fetched, {twice} of them twice (at most the {recovered} the killed \
         consumer had in flight)",
        fetched.len(),
        lines.len(),
    );
    if fetched.len() != lines.len() || end.succeeded != lines.len() as u64 {
        return Err("a URL was lost".into());
    }
    if twice > recovered {
        return Err("a URL ran twice that the killed consumer did not hold".into());
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = parse_args();
    match (&args.postgres, args.two_and_kill, args.consumer) {
        (Some(url), true, _) => return two_and_kill(&args, url),
        (Some(url), _, true) => return consume(&args, url),
        (None, true, _) | (None, _, true) => {
            return Err(
                "--two-and-kill shares the queue through PostgreSQL: add --postgres URL".into(),
            )
        }
        _ => {}
    }
    if args.fresh {
        let _ = std::fs::remove_dir_all(&args.dir);
    }
    std::fs::create_dir_all(&args.dir)?;
    let queue = match &args.postgres {
        None => Queue::open(args.dir.join("queue.redb"))?,
        Some(url) => open_postgres(url, args.fresh, None)?,
    };
    // Register first, so that stored jobs count as pending, not waiting.
    register(&queue, &args.dir.join("results.txt"))?;

    let before = queue.stats();
    let known = before.pending + before.running + before.dead + before.succeeded;

    if known == 0 {
        // First run: write the input file, then enqueue it, 1,000 per commit.
        let lines = urls(&args)?;
        for chunk in lines.chunks(1000) {
            queue.enqueue_batch(chunk.iter().map(|url| ("fetch", url.as_bytes())))?;
        }
        println!(
            "enqueued {} URLs from {}",
            lines.len(),
            args.dir.join("urls.txt").display()
        );
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
