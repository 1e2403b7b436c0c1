//! Stress: many jobs of every kind at once, with workers halted and added
//! and the pool paused and resumed underneath them, then exact accounting.
//!
//! Each job has a tag (0..JOBS) and a kind drawn from its tag: succeed,
//! fail (`Job::Error`), panic, spawn children (and join one from inside the
//! job), cancelled by its spawner (at once or a little later, so often while
//! running), or a deadline (`spawn_with_timeout`) that races its run.
//! Handles are joined at once, kept until the end, or dropped (detached).
//!
//! At the end: spawned = succeeded + failed + panicked + cancelled (from
//! `stats()` after `wait_idle`), with failed and panicked equal to the
//! number of jobs of those kinds; no tag ran twice and every job that could
//! not have been cancelled ran once; every joined result matches its kind,
//! and for kept handles its final status; every value a job captured was
//! dropped exactly once and no result is alive (nothing leaked); a watchdog
//! fails the test on a hang.
//!
//! `WORKYARD_STRESS_JOBS` sets the number of jobs (default 1,000,000; the
//! issue's figure is 10,000,000: `WORKYARD_STRESS_JOBS=10000000 cargo test
//! --release --test stress -- --nocapture`).

mod common;
#[path = "common/ledger.rs"]
mod ledger;

use common::within;
use ledger::{Ledger, Probe};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use workyard::{CancelReason, Dispatcher, Job, JobError, JobHandle, JobStatus, WorkerError};

const DEFAULT_JOBS: usize = 1_000_000;
const MAX_WORKERS: usize = 8;
/// Handles kept until the end, for the status-against-result check.
const KEEP: usize = 20_000;

fn jobs() -> usize {
    if cfg!(miri) {
        return 60;
    }
    std::env::var("WORKYARD_STRESS_JOBS")
        .ok()
        .map(|v| {
            v.replace('_', "")
                .parse()
                .expect("WORKYARD_STRESS_JOBS: a number")
        })
        .unwrap_or(DEFAULT_JOBS)
}

/// splitmix64: the randomness of a tag, fixed by the tag.
fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// xorshift64 for the chaos thread.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Succeed,
    Fail,
    Panic,
    Children,
    Cancel,
    Deadline,
}

fn kind(tag: usize) -> Kind {
    match mix(tag as u64) % 100 {
        0..=39 => Kind::Succeed,
        40..=49 => Kind::Fail,
        50..=54 => Kind::Panic,
        55..=64 => Kind::Children,
        65..=84 => Kind::Cancel,
        _ => Kind::Deadline,
    }
}

/// How many children a `Children` job spawns while tags last (1 to 3).
fn children_planned(tag: usize) -> usize {
    1 + (mix(tag as u64) >> 8) as usize % 3
}

/// Shared by the test and every job.
struct World {
    pool: Dispatcher,
    total: usize,
    next_tag: AtomicUsize,
    /// How many times each tag's job started running.
    runs: Box<[AtomicU8]>,
    /// 1 if a `cancel()` on that tag returned true.
    cancel_won: Box<[AtomicU8]>,
    /// Values captured by jobs: one per tag.
    captured: Arc<Ledger>,
    /// Values returned by `Succeed` jobs.
    results: Arc<Ledger>,
    joined: AtomicUsize,
    detached: AtomicUsize,
    children: AtomicUsize,
    kept: Mutex<Vec<(usize, Handle)>>,
}

type Output = (usize, Option<Probe>);
type Handle = JobHandle<Output, usize>;

struct StressJob {
    tag: usize,
    probe: Probe,
    world: Arc<World>,
}

/// Spins until asked to stop or `limit` has passed (a "long" job).
fn busy(limit: Duration) {
    let start = Instant::now();
    while !workyard::is_cancelled() && start.elapsed() < limit {
        std::hint::spin_loop();
    }
}

impl Job for StressJob {
    type Output = Output;
    type Error = usize;

    fn run(self) -> Result<Output, usize> {
        let StressJob { tag, probe, world } = self;
        let _captured = probe;
        world.runs[tag].fetch_add(1, SeqCst);
        match kind(tag) {
            Kind::Succeed => Ok((tag, Some(world.results.probe(tag)))),
            Kind::Fail => Err(tag),
            // resume_unwind: a real unwind, without the panic hook's output.
            Kind::Panic => std::panic::resume_unwind(Box::new("planned")),
            Kind::Children => {
                let n = children_planned(tag);
                let join_first = (mix(tag as u64) >> 12) & 1 == 0;
                let mut spawned = 0;
                for c in 0..n {
                    let Some(h) = world.spawn_one() else { break };
                    world.children.fetch_add(1, SeqCst);
                    spawned += 1;
                    if c == 0 && join_first {
                        let child = h.0;
                        let result = h.1.join();
                        world.joined.fetch_add(1, SeqCst);
                        world.check(child, &result, None);
                    } else {
                        world.dispose(h.0, h.1, false);
                    }
                }
                Ok((spawned, None))
            }
            Kind::Cancel => {
                busy(Duration::from_micros(10));
                Ok((tag, None))
            }
            Kind::Deadline => {
                busy(Duration::from_micros(20));
                Ok((tag, None))
            }
        }
    }
}

impl World {
    /// Spawns the next tag's job, if any tag is left. `Cancel` jobs are
    /// cancelled here at once when spawned from inside a job.
    fn spawn_one(self: &Arc<Self>) -> Option<(usize, Handle)> {
        let tag = self.next_tag.fetch_add(1, SeqCst);
        if tag >= self.total {
            return None;
        }
        let job = StressJob {
            tag,
            probe: self.captured.probe(tag),
            world: Arc::clone(self),
        };
        let handle = if kind(tag) == Kind::Deadline {
            let timeout = Duration::from_nanos(mix(tag as u64) >> 40 & 0x7FFF); // 0..33µs
            self.pool.spawn_with_timeout(job, timeout)
        } else {
            self.pool.spawn(job)
        };
        let handle = handle.unwrap_or_else(|_| panic!("spawn refused before shutdown"));
        if kind(tag) == Kind::Cancel && workyard::current_job().is_some() {
            self.cancel(tag, &handle);
        }
        Some((tag, handle))
    }

    fn cancel(&self, tag: usize, handle: &Handle) {
        if handle.cancel() {
            self.cancel_won[tag].store(1, SeqCst);
        }
    }

    /// Joins the handle now, keeps it to the end, or drops it.
    fn dispose(&self, tag: usize, handle: Handle, may_join: bool) {
        let r = mix(tag as u64) >> 20;
        if may_join && r % 10 == 0 {
            let result = handle.join();
            self.joined.fetch_add(1, SeqCst);
            self.check(tag, &result, None);
            return;
        }
        if r % 20 == 1 {
            let mut kept = self.kept.lock().unwrap();
            if kept.len() < KEEP {
                kept.push((tag, handle));
                return;
            }
        }
        self.detached.fetch_add(1, SeqCst);
        drop(handle);
    }

    /// A joined result is what its kind (and who cancelled it) allows, and
    /// if `status` is given, it matches that final status.
    fn check(
        &self,
        tag: usize,
        result: &Result<Output, JobError<usize>>,
        status: Option<JobStatus>,
    ) {
        let cancelled = self.cancel_won[tag].load(SeqCst) == 1;
        let ok = match (kind(tag), result) {
            (Kind::Succeed, Ok((t, Some(p)))) => *t == tag && p.id == tag,
            (Kind::Fail, Err(JobError::Failed(t))) => *t == tag,
            (Kind::Panic, Err(JobError::Panicked(p))) => p.message() == Some("planned"),
            // Fewer than planned only once the tag budget runs out: a
            // parent that runs last may find none left (found as a flake:
            // "tag 999984 (Children) gave Ok(0)").
            (Kind::Children, Ok((n, None))) => {
                *n == children_planned(tag)
                    || (*n < children_planned(tag) && self.next_tag.load(SeqCst) >= self.total)
            }
            (Kind::Cancel, Ok((t, None))) => !cancelled && *t == tag,
            (Kind::Cancel, Err(JobError::Cancelled(CancelReason::Caller))) => cancelled,
            (Kind::Deadline, Ok((t, None))) => *t == tag,
            (Kind::Deadline, Err(JobError::Cancelled(CancelReason::Deadline))) => true,
            _ => false,
        };
        let shown = match result {
            Ok((v, _)) => format!("Ok({v})"),
            Err(e) => format!("{e:?}"),
        };
        assert!(
            ok,
            "tag {tag} ({:?}, cancel won: {cancelled}) gave {shown}",
            kind(tag)
        );
        if let Some(status) = status {
            let expected = match result {
                Ok(_) => JobStatus::Succeeded,
                Err(JobError::Failed(_)) => JobStatus::Failed,
                Err(JobError::Panicked(_)) => JobStatus::Panicked,
                Err(_) => JobStatus::Cancelled,
            };
            assert_eq!(status, expected, "tag {tag}: status against result");
        }
    }
}

/// Halts and adds workers and pauses the pool until `stop`; returns the
/// number of (halts, resizes, pauses) it did.
fn chaos(pool: Dispatcher, stop: Arc<AtomicBool>) -> (usize, usize, usize) {
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    let (mut halts, mut resizes, mut pauses) = (0, 0, 0);
    while !stop.load(SeqCst) {
        match rng.next() % 3 {
            0 => match pool.halt_worker(rng.next() as usize % MAX_WORKERS) {
                Ok(()) => halts += 1,
                Err(WorkerError::NotRunning(_) | WorkerError::LastWorker) => {}
                Err(e) => panic!("halt_worker: {e}"),
            },
            1 => {
                pool.set_workers(1 + rng.next() as usize % MAX_WORKERS)
                    .expect("set_workers within max_workers");
                resizes += 1;
            }
            _ => {
                pool.pause();
                // Pacing, not synchronisation: how long the pool stays paused.
                std::thread::sleep(Duration::from_micros(200));
                pool.resume();
                pauses += 1;
            }
        }
        // Pacing between disturbances.
        std::thread::sleep(Duration::from_millis(1));
    }
    (halts, resizes, pauses)
}

#[test]
fn stress_every_kind_of_job_with_workers_coming_and_going() {
    let total = jobs();
    // Watchdog: generous for the machine (a hang fails instead of stalling).
    let limit = Duration::from_secs(120) + Duration::from_micros(100) * total as u32;
    within(limit, move || run(total));
}

fn run(total: usize) {
    let start = Instant::now();
    let pool = Dispatcher::builder()
        .workers(4)
        .max_workers(MAX_WORKERS)
        .queue_capacity(4096)
        .build()
        .unwrap();
    let world = Arc::new(World {
        pool: pool.clone(),
        total,
        next_tag: AtomicUsize::new(0),
        runs: (0..total).map(|_| AtomicU8::new(0)).collect(),
        cancel_won: (0..total).map(|_| AtomicU8::new(0)).collect(),
        captured: Ledger::new(total),
        results: Ledger::new(total),
        joined: AtomicUsize::new(0),
        detached: AtomicUsize::new(0),
        children: AtomicUsize::new(0),
        kept: Mutex::new(Vec::new()),
    });
    let stop = Arc::new(AtomicBool::new(false));
    let chaos = {
        let (pool, stop) = (pool.clone(), stop.clone());
        std::thread::spawn(move || chaos(pool, stop))
    };
    let spawners: Vec<_> = (0..2)
        .map(|_| {
            let world = Arc::clone(&world);
            std::thread::spawn(move || {
                // Cancel-kind jobs wait here a little, so that many are
                // cancelled while running rather than while queued.
                let mut later: Vec<(usize, Handle)> = Vec::new();
                while let Some((tag, handle)) = world.spawn_one() {
                    if kind(tag) == Kind::Cancel {
                        if mix(tag as u64) >> 30 & 1 == 0 {
                            world.cancel(tag, &handle);
                        } else {
                            later.push((tag, handle));
                            if later.len() >= 16 {
                                for (tag, handle) in later.drain(..) {
                                    world.cancel(tag, &handle);
                                    world.dispose(tag, handle, true);
                                }
                            }
                            continue;
                        }
                    }
                    world.dispose(tag, handle, true);
                }
                for (tag, handle) in later {
                    world.cancel(tag, &handle);
                    world.dispose(tag, handle, true);
                }
            })
        })
        .collect();
    for s in spawners {
        s.join().unwrap();
    }
    stop.store(true, SeqCst);
    let (halts, resizes, pauses) = chaos.join().unwrap();
    pool.resume();
    pool.wait_idle();
    let elapsed = start.elapsed();

    // Exact accounting.
    let stats = pool.stats();
    let count = |k: Kind| (0..total).filter(|&t| kind(t) == k).count() as u64;
    let spawned = world.next_tag.load(SeqCst).min(total) as u64;
    assert_eq!(spawned, total as u64, "every tag was spawned");
    assert_eq!(
        stats.succeeded + stats.failed + stats.panicked + stats.cancelled,
        spawned,
        "spawned = succeeded + failed + panicked + cancelled ({stats:?})"
    );
    assert_eq!(stats.failed, count(Kind::Fail), "failed");
    assert_eq!(stats.panicked, count(Kind::Panic), "panicked");
    let cancel_won = world
        .cancel_won
        .iter()
        .filter(|c| c.load(SeqCst) == 1)
        .count() as u64;
    assert!(
        (cancel_won..=cancel_won + count(Kind::Deadline)).contains(&stats.cancelled),
        "cancelled {} outside [{cancel_won}, +{} deadlines]",
        stats.cancelled,
        count(Kind::Deadline)
    );
    assert_eq!((stats.queued, stats.running), (0, 0));
    let mut ran = 0u64;
    for tag in 0..total {
        let runs = world.runs[tag].load(SeqCst);
        assert!(runs <= 1, "tag {tag} ran {runs} times");
        let may_skip = matches!(kind(tag), Kind::Cancel | Kind::Deadline);
        assert!(
            runs == 1 || may_skip,
            "tag {tag} ({:?}) never ran",
            kind(tag)
        );
        ran += u64::from(runs);
    }
    let jobs_run: u64 = stats.per_worker.iter().map(|w| w.jobs_run).sum();
    assert_eq!(jobs_run, ran, "workers' run counts against the jobs' own");

    // Kept handles: status against result.
    let kept = std::mem::take(&mut *world.kept.lock().unwrap());
    let kept_count = kept.len();
    for (tag, handle) in kept {
        let status = handle.status();
        assert!(status.is_terminal());
        let result = handle.join();
        world.check(tag, &result, Some(status));
    }
    let (joined, detached) = (world.joined.load(SeqCst), world.detached.load(SeqCst));
    assert_eq!(
        joined + detached + kept_count,
        total,
        "every handle was joined, kept or detached"
    );

    // Nothing leaked: every captured value dropped once, no result alive.
    pool.shutdown();
    world
        .captured
        .assert_all_dropped_once(0..total, "captured values");
    assert_eq!(world.results.live(), 0, "results still alive (leaked)");
    assert_eq!(
        world.results.dropped() as u64,
        count(Kind::Succeed),
        "one result per succeed-kind job (they are never cancelled)"
    );

    println!(
        "stress: {total} jobs ({} spawned by jobs) in {elapsed:.1?}; \
         succeeded {} + failed {} + panicked {} + cancelled {} = {}; \
         ran {ran}, never started {}, interrupted while running {}; handles joined {joined} (+{kept_count} kept to the end), \
         detached {detached}; chaos: {halts} worker halts, {resizes} resizes, {pauses} pauses",
        world.children.load(SeqCst),
        stats.succeeded,
        stats.failed,
        stats.panicked,
        stats.cancelled,
        stats.finished(),
        spawned - ran,
        stats.cancelled - (spawned - ran),
    );
}
