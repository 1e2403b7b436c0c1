//! The durable queue on PostgreSQL: throughput and latency, with the
//! raw-SQL ceiling beside the queue's figures.
//!
//! ```sh
//! cargo run --release --features postgres --example persist_pg_bench
//! cargo run --release --features postgres --example persist_pg_bench -- --url postgres://…
//! cargo run --release --features postgres --example persist_pg_bench -- --only processes
//! ```
//!
//! Without `--url` it starts a private cluster from the installed server
//! binaries (as the tests do, see `tests/common/pg.rs`) with **durable
//! commits** (`fsync` and `synchronous_commit` on, the defaults). Each
//! measurement uses a fresh schema. It measures:
//!
//! 1. `enqueue_batch` of 10,000 jobs, back to back.
//! 2. `enqueue` from 8 threads at once (group commit).
//! 3. claim + complete through the `Queue`: 4 workers, a no-op handler,
//!    `--jobs` jobs stored first; timed from `start` to the last outcome
//!    committed (`wait_idle`).
//!    Then the same with `outcome_hold(0)` (every outcome written as it
//!    comes), after 4, for the A/B.
//! 4. the raw-SQL ceiling of 3: one connection doing what the queue does
//!    per round trip, with the same claim size (256) — a transaction that
//!    writes the previous claim's outcomes (`UPDATE … FROM unnest`) and
//!    claims the next jobs (`FOR UPDATE SKIP LOCKED`) — and no handler.
//! 5. enqueue → handler start latency with idle consumers (p50, p99).
//! 6. 1, 2 and 4 consuming processes (this example run again as
//!    `--consume`), each with 4 workers, on `--jobs` stored jobs.

#[path = "../tests/common/pg.rs"]
mod pg;

use postgres::{Client, NoTls};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};
use workyard::persist::Queue;
use workyard::Dispatcher;

const CLAIM: i64 = 256;

fn queue(url: &str, schema: &str) -> Queue {
    Queue::builder()
        .schema(schema)
        .poll_interval(Duration::from_millis(200))
        .connect(url)
        .unwrap()
}

fn drop_schema(url: &str, schema: &str) {
    let mut c = Client::connect(url, NoTls).unwrap();
    c.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
        .unwrap();
}

fn rate(n: u64, took: Duration) -> String {
    format!("{:>9.0} jobs/s", n as f64 / took.as_secs_f64())
}

fn enqueue_batch(url: &str) {
    let q = queue(url, "b_batch");
    let batch: Vec<(&str, Vec<u8>)> = (0..10_000u32)
        .map(|i| ("n", i.to_le_bytes().to_vec()))
        .collect();
    let t = Instant::now();
    let rounds = 10;
    for _ in 0..rounds {
        q.enqueue_batch(batch.iter().map(|(n, p)| (*n, p.as_slice())))
            .unwrap();
    }
    println!(
        "enqueue_batch (10,000 per call):        {}",
        rate(10_000 * rounds, t.elapsed())
    );
    q.stop().unwrap();
    drop_schema(url, "b_batch");
}

fn enqueue_threads(url: &str) {
    let q = queue(url, "b_threads");
    let threads = 8;
    let per = 1500;
    let barrier = Arc::new(Barrier::new(threads + 1));
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let q = q.clone();
            let b = barrier.clone();
            std::thread::spawn(move || {
                b.wait();
                for _ in 0..per {
                    q.enqueue("n", b"x").unwrap();
                }
            })
        })
        .collect();
    let before = q.stats().commits;
    barrier.wait();
    let t = Instant::now();
    for h in handles {
        h.join().unwrap();
    }
    let took = t.elapsed();
    let commits = q.stats().commits - before;
    let n = (threads * per) as u64;
    println!(
        "enqueue, 8 threads:                     {} ({:.1} jobs per commit)",
        rate(n, took),
        n as f64 / commits as f64
    );
    q.stop().unwrap();
    drop_schema(url, "b_threads");
}

fn load(q: &Queue, jobs: u64) {
    let mut left = jobs;
    while left > 0 {
        let n = left.min(10_000);
        q.enqueue_batch((0..n).map(|_| ("noop", b"".as_slice())))
            .unwrap();
        left -= n;
    }
}

/// `hold`: `QueueBuilder::outcome_hold` (`None`: the default).
fn claim_complete(url: &str, jobs: u64, hold: Option<Duration>) -> f64 {
    let mut builder = Queue::builder()
        .schema("b_claim")
        .poll_interval(Duration::from_millis(200));
    if let Some(hold) = hold {
        builder = builder.outcome_hold(hold);
    }
    let q = builder.connect(url).unwrap();
    load(&q, jobs);
    q.register("noop", |_| -> Result<(), String> { Ok(()) })
        .unwrap();
    let pool = Dispatcher::builder().workers(4).build().unwrap();
    let before = q.stats();
    let t = Instant::now();
    q.start(&pool).unwrap();
    q.wait_idle().unwrap();
    let took = t.elapsed();
    let stats = q.stats();
    assert_eq!(stats.completed, jobs);
    let r = jobs as f64 / took.as_secs_f64();
    let commits = stats.commits - before.commits;
    let claims = stats.claims - before.claims;
    println!(
        "claim + complete, Queue, 4 workers{}: {} ({commits} commits for {claims} claims: \
         {:.2} per claim)",
        if hold.is_some() {
            ", outcome_hold 0"
        } else {
            ":    "
        },
        rate(jobs, took),
        commits as f64 / claims as f64
    );
    q.stop().unwrap();
    drop_schema(url, "b_claim");
    r
}

fn raw_sql(url: &str, jobs: u64) -> f64 {
    let q = queue(url, "b_raw");
    load(&q, jobs);
    q.stop().unwrap();
    let mut c = Client::connect(url, NoTls).unwrap();
    let s = "b_raw";
    let claim = c
        .prepare(&format!(
            // The queue's claim (`src/persist/pg.rs`): ready jobs by id,
            // backed-off ones whose time came by `run_after`, each read in
            // order from its own partial index.
            "WITH ready AS (SELECT id FROM {s}.workyard_jobs \
                 WHERE state = 1 AND run_after = 0 AND name = ANY($1::text[]) \
                 ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED), \
             due AS (SELECT id FROM {s}.workyard_jobs \
                 WHERE state = 1 AND run_after > 0 AND run_after <= (SELECT {s}.workyard_now_ms()) \
                 AND name = ANY($1::text[]) \
                 ORDER BY run_after LIMIT $2 FOR UPDATE SKIP LOCKED), \
             c AS (SELECT id FROM (SELECT id FROM ready UNION ALL SELECT id FROM due) r \
                 ORDER BY id LIMIT $2) \
             UPDATE {s}.workyard_jobs AS j SET state = 2, attempts = j.attempts + 1, \
                 started_at = n.t, run_after = 0, lease_until = n.t + 15000, owner = 'raw' \
             FROM c, (SELECT {s}.workyard_now_ms() AS t) n WHERE j.id = c.id \
             RETURNING j.id, j.name, j.payload, j.attempts"
        ))
        .unwrap();
    let finish = c
        .prepare(&format!(
            "UPDATE {s}.workyard_jobs AS j SET state = u.state, finished_at = n.t, \
                 owner = NULL, lease_until = 0 \
             FROM unnest($1::bigint[], $2::int[], $3::smallint[]) AS u(id, token, state), \
                  (SELECT {s}.workyard_now_ms() AS t) n \
             WHERE j.id = u.id AND j.state = 2 AND j.attempts = u.token RETURNING j.id"
        ))
        .unwrap();
    let names = vec!["noop".to_owned()];
    let t = Instant::now();
    let mut done = 0u64;
    let mut held: Vec<(i64, i32)> = Vec::new();
    loop {
        let mut txn = c.transaction().unwrap();
        // As the queue's claiming transactions (`CLAIM_PLANS` there).
        txn.batch_execute("SET LOCAL enable_bitmapscan = off")
            .unwrap();
        if !held.is_empty() {
            let ids: Vec<i64> = held.iter().map(|h| h.0).collect();
            let tokens: Vec<i32> = held.iter().map(|h| h.1).collect();
            let states = vec![3i16; ids.len()];
            done += txn.query(&finish, &[&ids, &tokens, &states]).unwrap().len() as u64;
        }
        let rows = txn.query(&claim, &[&names, &CLAIM]).unwrap();
        txn.commit().unwrap();
        held = rows.iter().map(|r| (r.get(0), r.get(3))).collect();
        if held.is_empty() {
            break;
        }
    }
    let took = t.elapsed();
    assert_eq!(done, jobs);
    println!(
        "claim + complete, raw SQL, 1 conn:      {} (claims of {CLAIM})",
        rate(jobs, took)
    );
    drop_schema(url, s);
    jobs as f64 / took.as_secs_f64()
}

fn latency(url: &str) {
    let q = queue(url, "b_latency");
    let origin = Instant::now();
    let samples = Arc::new(Mutex::new(Vec::new()));
    let s = samples.clone();
    q.register("ping", move |job| -> Result<(), String> {
        let sent = u64::from_le_bytes(job.payload().try_into().unwrap());
        let now = origin.elapsed().as_nanos() as u64;
        s.lock().unwrap().push(now - sent);
        Ok(())
    })
    .unwrap();
    let pool = Dispatcher::builder().workers(4).build().unwrap();
    q.start(&pool).unwrap();
    // A second process's view: a producer on its own queue handle, so the
    // wake-up goes through NOTIFY, not through this process's memory.
    let producer = queue(url, "b_latency");
    let n = 300;
    for _ in 0..n {
        let sent = origin.elapsed().as_nanos() as u64;
        producer.enqueue("ping", &sent.to_le_bytes()).unwrap();
        std::thread::sleep(Duration::from_millis(8));
    }
    q.wait_idle().unwrap();
    let mut v = samples.lock().unwrap().clone();
    v.sort_unstable();
    let pct = |p: f64| Duration::from_nanos(v[((v.len() - 1) as f64 * p) as usize]);
    println!(
        "enqueue → handler start (idle, other queue handle): p50 {:?}, p99 {:?}, max {:?} ({} samples)",
        pct(0.5),
        pct(0.99),
        pct(1.0),
        v.len()
    );
    producer.stop().unwrap();
    q.stop().unwrap();
    drop_schema(url, "b_latency");
}

fn consume(url: &str, schema: &str) {
    let q = queue(url, schema);
    q.register("noop", |_| -> Result<(), String> { Ok(()) })
        .unwrap();
    let pool = Dispatcher::builder().workers(4).build().unwrap();
    let t = Instant::now();
    q.start(&pool).unwrap();
    q.wait_idle().unwrap();
    let stats = q.stats();
    println!("{}", stats.completed);
    // For the parent's log: what each consumer did, to explain a slow phase.
    eprintln!(
        "  consumer {}: {} jobs in {:.2} s, {} claims, {} commits, {} recovered, {} fenced",
        std::process::id(),
        stats.completed,
        t.elapsed().as_secs_f64(),
        stats.claims,
        stats.commits,
        stats.recovered,
        stats.fenced
    );
    q.stop().unwrap();
}

/// The machine's CPU time so far, busy and total, in clock ticks (Linux's
/// `/proc/stat`; `None` elsewhere): shows whether a phase saturated the
/// CPUs that the server and the consumers share.
fn cpu_ticks() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let ticks: Vec<u64> = stat
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .filter_map(|t| t.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal …
    let idle = ticks.get(3)? + ticks.get(4)?;
    let total: u64 = ticks.iter().take(8).sum();
    Some((total - idle, total))
}

fn processes(url: &str, jobs: u64) {
    for k in [1, 2, 4] {
        let schema = format!("b_proc{k}");
        let q = queue(url, &schema);
        load(&q, jobs);
        let cpu_before = cpu_ticks();
        let t = Instant::now();
        let children: Vec<_> = (0..k)
            .map(|_| {
                std::process::Command::new(std::env::current_exe().unwrap())
                    .args(["--consume", url, &schema])
                    .stdout(std::process::Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        let total = AtomicU64::new(0);
        for c in children {
            let out = c.wait_with_output().unwrap();
            let n: u64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
            total.fetch_add(n, Ordering::Relaxed);
        }
        let took = t.elapsed();
        assert_eq!(total.load(Ordering::Relaxed), jobs);
        let busy = match (cpu_before, cpu_ticks()) {
            (Some((b0, t0)), Some((b1, t1))) if t1 > t0 => {
                format!(
                    ", CPUs {:.0} % busy",
                    100.0 * (b1 - b0) as f64 / (t1 - t0) as f64
                )
            }
            _ => String::new(),
        };
        println!(
            "{k} consuming process(es), 4 workers each: {} (incl. process start{busy})",
            rate(jobs, took)
        );
        q.stop().unwrap();
        drop_schema(url, &schema);
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--consume") {
        consume(&args[1], &args[2]);
        return;
    }
    let mut url = None;
    let mut jobs = 50_000u64;
    let mut only: Option<String> = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--url" => url = it.next().cloned(),
            "--jobs" => jobs = it.next().unwrap().parse().unwrap(),
            "--only" => only = it.next().cloned(),
            other => panic!("unknown flag {other}"),
        }
    }
    let _cluster;
    let url = match url {
        Some(u) => u,
        None => {
            _cluster = pg::Cluster::start(true);
            _cluster.url()
        }
    };
    println!("PostgreSQL durable queue benchmark, {jobs} jobs where a count applies");
    if only.as_deref() == Some("processes") {
        processes(&url, jobs);
        return;
    }
    assert!(only.is_none(), "--only takes `processes`");
    enqueue_batch(&url);
    enqueue_threads(&url);
    let queue_rate = claim_complete(&url, jobs, None);
    let raw_rate = raw_sql(&url, jobs);
    let unheld_rate = claim_complete(&url, jobs, Some(Duration::ZERO));
    println!(
        "Queue / raw SQL:                        {:.0} % (outcome_hold 0: {:.0} %)",
        100.0 * queue_rate / raw_rate,
        100.0 * unheld_rate / raw_rate
    );
    latency(&url);
    processes(&url, jobs);
}
