//! The reason the persist module exists: a process that enqueues and runs
//! jobs is killed with SIGKILL at random moments, 32 times in a row, and
//! reopened each time. At the end every job `enqueue` acknowledged has
//! completed at least once, none is lost, and a job completed more than
//! once only if it was running at a kill (its record counts the
//! interrupted attempts).
//!
//! The child is this very test binary, re-run with `CHILD_ENV` set so that
//! only `child_process_entry_point` does anything.

#![cfg(unix)]

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use workyard::persist::{Backoff, PersistError, Queue, StoredJobId, StoredJobState};
use workyard::Dispatcher;

const CHILD_ENV: &str = "WORKYARD_PERSIST_CRASH_DIR";
const JOBS_ENV: &str = "WORKYARD_PERSIST_CRASH_JOBS";
const KILLS: usize = 32;
const JOBS_PER_RUN: u64 = 200;
/// Enough that repeated interruptions never make a job dead here.
const MAX_ATTEMPTS: u32 = 1000;

fn queue_path(dir: &Path) -> PathBuf {
    dir.join("queue.redb")
}

fn open(dir: &Path) -> Result<Queue, PersistError> {
    Queue::builder()
        .max_attempts(MAX_ATTEMPTS)
        .backoff(Backoff::new(Duration::from_millis(1)))
        .max_in_flight(64)
        .open(queue_path(dir))
}

fn append(file: &File, line: &str) {
    // One `write` per line: a kill cannot leave half of it.
    (&*file).write_all(line.as_bytes()).unwrap();
}

/// The child: open (recovering), run the stored jobs, enqueue its share,
/// wait until everything is done, stop, exit 0 — unless it is killed first.
#[test]
fn child_process_entry_point() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return; // Only the parent's re-run does anything.
    };
    let dir = PathBuf::from(dir);
    let jobs: u64 = std::env::var(JOBS_ENV).unwrap().parse().unwrap();
    let queue = match open(&dir) {
        Ok(q) => q,
        Err(e) => {
            eprintln!("open failed: {e}");
            std::process::exit(3);
        }
    };
    let log = |name| {
        Arc::new(
            OpenOptions::new()
                .append(true)
                .create(true)
                .open(dir.join(name))
                .unwrap(),
        )
    };
    let done = log("done.log");
    let acked = log("acked.log");
    queue
        .register("work", move |job| {
            let id = job.id().as_u64();
            if id % 7 == 0 && job.attempt() == 1 {
                return Err("transient failure on the first attempt");
            }
            if id % 11 == 0 && job.attempt() == 1 {
                panic!("first attempt panics");
            }
            // A little work, so that kills land inside handlers too.
            let spin = Instant::now() + Duration::from_micros(id % 400);
            while Instant::now() < spin {
                std::hint::spin_loop();
            }
            append(&done, &format!("{id}\n"));
            Ok(())
        })
        .unwrap();
    let pool = Dispatcher::builder().workers(2).build().unwrap();
    queue.start(&pool).unwrap();
    let mut sent = 0;
    while sent < jobs {
        let ids: Vec<StoredJobId> = if sent % 3 == 0 {
            let n = 10.min(jobs - sent);
            queue
                .enqueue_batch((0..n).map(|i| ("work", (sent + i).to_le_bytes())))
                .unwrap()
        } else {
            vec![queue.enqueue("work", &sent.to_le_bytes()).unwrap()]
        };
        sent += ids.len() as u64;
        let lines: String = ids.iter().map(|id| format!("{}\n", id.as_u64())).collect();
        append(&acked, &lines);
    }
    queue.wait_idle().unwrap();
    queue.stop().unwrap();
    std::process::exit(0);
}

struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn spawn_child(dir: &Path, jobs: u64) -> std::process::Child {
    let stderr = OpenOptions::new()
        .append(true)
        .create(true)
        .open(dir.join("child-stderr.log"))
        .unwrap();
    Command::new(std::env::current_exe().unwrap())
        .args([
            "child_process_entry_point",
            "--exact",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env(CHILD_ENV, dir)
        .env(JOBS_ENV, jobs.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap()
}

/// Polls a child process until it exits or `deadline` passes.
fn wait_until(child: &mut std::process::Child, deadline: Instant) -> Option<ExitStatus> {
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Complete lines of a log, as ids.
fn read_ids(path: &Path) -> Vec<u64> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let complete = match text.rfind('\n') {
        Some(end) => &text[..=end],
        None => "",
    };
    complete.lines().map(|l| l.parse().unwrap()).collect()
}

fn child_failure(dir: &Path, status: ExitStatus) -> String {
    let stderr = std::fs::read_to_string(dir.join("child-stderr.log")).unwrap_or_default();
    format!("child exited with {status}; its stderr:\n{stderr}")
}

#[test]
fn sigkill_at_random_moments_loses_nothing() {
    let dir = std::env::temp_dir().join(format!("workyard-crash-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    let mut rng = Rng(seed);
    let started = Instant::now();
    let (mut killed, mut finished_early) = (0, 0);
    // The kill comes at a random moment of a child's life, which is as long
    // as the disk makes it (100-250 ms on the machines here; with a fixed
    // 0-300 ms range, once 2 runs in 3 finished before their kill). Each
    // child that finishes first shortens the estimate to its own life.
    let mut life = Duration::from_millis(300);

    let mut round = 0;
    while killed < KILLS {
        assert!(
            round < 3 * KILLS,
            "too few runs lived long enough to be killed"
        );
        round += 1;
        let mut child = spawn_child(&dir, JOBS_PER_RUN);
        let born = Instant::now();
        if round == 1 {
            // While the child has the file open, nobody else may open it.
            let deadline = Instant::now() + Duration::from_secs(60);
            while read_ids(&dir.join("acked.log")).is_empty() {
                assert!(
                    Instant::now() < deadline,
                    "the child never acknowledged a job"
                );
                if let Some(status) = child.try_wait().unwrap() {
                    panic!("{}", child_failure(&dir, status));
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            assert!(matches!(open(&dir), Err(PersistError::AlreadyOpen { .. })));
        }
        let delay = life.mul_f64(rng.below(1000) as f64 / 1000.0);
        // (In round 1 the wait above may already have taken longer.)
        match wait_until(&mut child, born + delay) {
            Some(status) if status.success() => {
                finished_early += 1;
                life = life.min(born.elapsed());
            }
            Some(status) => panic!("{}", child_failure(&dir, status)),
            None => {
                child.kill().unwrap(); // SIGKILL
                child.wait().unwrap();
                killed += 1;
            }
        }
    }

    // A last run without a kill finishes everything.
    let mut child = spawn_child(&dir, 0);
    match wait_until(&mut child, Instant::now() + Duration::from_secs(120)) {
        Some(status) if status.success() => {}
        Some(status) => panic!("{}", child_failure(&dir, status)),
        None => {
            child.kill().unwrap();
            panic!("the final run did not finish within 120 s");
        }
    }

    let acked: BTreeSet<u64> = read_ids(&dir.join("acked.log")).into_iter().collect();
    let mut done: BTreeMap<u64, u32> = BTreeMap::new();
    for id in read_ids(&dir.join("done.log")) {
        *done.entry(id).or_default() += 1;
    }
    let queue = open(&dir).unwrap();
    for state in [
        StoredJobState::Pending,
        StoredJobState::Waiting,
        StoredJobState::Running,
        StoredJobState::Dead,
    ] {
        assert_eq!(queue.list(state, 10).unwrap(), [], "jobs left {state}");
    }
    let mut duplicates = 0;
    let mut interrupted_total = 0;
    let stored = queue.list(StoredJobState::Succeeded, usize::MAX).unwrap();
    for &id in &stored {
        let record = queue.status(id).unwrap().unwrap();
        assert_eq!(record.state(), StoredJobState::Succeeded);
        interrupted_total += record.interrupted();
        let runs = done.get(&id.as_u64()).copied().unwrap_or(0);
        assert!(runs >= 1, "{id} succeeded in the file but never logged");
        // A second completion happens only when the first was not yet
        // recorded at a kill: the job was running then, and its record
        // counts that interrupted attempt.
        assert!(
            runs - 1 <= record.interrupted(),
            "{id} completed {runs} times but was interrupted only {} times",
            record.interrupted()
        );
        duplicates += runs - 1;
    }
    let stored: BTreeSet<u64> = stored.iter().map(|id| id.as_u64()).collect();
    for id in &acked {
        assert!(stored.contains(id), "acknowledged job {id} was lost");
        assert!(
            done.contains_key(id),
            "acknowledged job {id} never completed"
        );
    }
    for id in done.keys() {
        assert!(stored.contains(id), "job {id} ran but is not stored");
    }
    assert!(
        interrupted_total > 0,
        "no kill ever landed on a running job; the test proved little"
    );
    eprintln!(
        "persist crash test (seed {seed}): {killed} SIGKILLs ({finished_early} runs finished first), \
         {} jobs acknowledged, {} stored, all completed; {} completions logged, \
         {duplicates} duplicates, {interrupted_total} interrupted attempts recovered; {:.1} s",
        acked.len(),
        stored.len(),
        done.values().sum::<u32>(),
        started.elapsed().as_secs_f64()
    );
    queue.stop().unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}
