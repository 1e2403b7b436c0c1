//! The durable queue on PostgreSQL, beyond what `tests/persist.rs` runs on
//! both stores: clear connection errors, several *processes* sharing one
//! queue while one is SIGKILLed again and again, a process paused past its
//! lease (its late outcome is fenced), a server restart under load, and
//! processes migrating an empty database at once.
//!
//! The processes are this test binary run again as a child
//! (`child_main`, an ignored test that does nothing unless
//! `WORKYARD_PG_CHILD` names a role). Every test uses a private cluster
//! (`common/pg.rs`) and its own schema or database.

#[path = "common/pg.rs"]
mod pg;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use workyard::persist::{PersistError, Queue, QueueBuilder, StoredJobState};
use workyard::Dispatcher;

/// Short leases so that a dead process's jobs come back quickly.
const LEASE: Duration = Duration::from_millis(300);
const HEARTBEAT: Duration = Duration::from_millis(100);

fn builder(schema: &str) -> QueueBuilder {
    Queue::builder()
        .schema(schema)
        .lease(LEASE)
        .heartbeat(HEARTBEAT)
        .poll_interval(Duration::from_millis(50))
}

fn pool(workers: usize) -> Dispatcher {
    Dispatcher::builder().workers(workers).build().unwrap()
}

fn temp_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("workyard-pgt-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Appends one line in one `write` (atomic for O_APPEND files on Linux,
/// so lines of several processes never mix).
fn append_line(path: &Path, line: &str) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all(format!("{line}\n").as_bytes()).unwrap();
}

/// Lines of whole numbers separated by spaces; a torn last line is skipped.
fn read_rows(path: &Path) -> Vec<Vec<u64>> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter_map(|l| l.split(' ').map(|w| w.parse().ok()).collect())
        .collect()
}

/// Runs this test binary again as a child in `role`.
fn spawn_child(role: &str, url: &str, schema: &str, dir: &Path) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_main",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("WORKYARD_PG_CHILD", role)
        .env("WORKYARD_PG_URL", url)
        .env("WORKYARD_PG_SCHEMA", schema)
        .env("WORKYARD_PG_DIR", dir)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

fn signal(child: &Child, sig: i32) {
    let pid = i32::try_from(child.id()).unwrap();
    // SAFETY: kill has no memory-safety preconditions; the pid is our
    // own child's, which we have not waited for yet.
    let rc = unsafe { libc::kill(pid, sig) };
    assert_eq!(rc, 0, "kill({pid}, {sig})");
}

/// The children's body. Roles:
/// * `migrate`: wait for `go`, connect (migrating if first), enqueue one
///   job, exit;
/// * `worker`: run `work` jobs (log `id attempt`) until `stop` appears;
/// * `pausable`: run `slow` jobs that log `id attempt` to `started.log`
///   and wait for `release`; exit once an outcome was fenced, writing
///   `fenced leases_lost` to `stats.txt`.
#[test]
#[ignore = "a child process of the other tests"]
fn child_main() {
    let Ok(role) = std::env::var("WORKYARD_PG_CHILD") else {
        return;
    };
    let url = std::env::var("WORKYARD_PG_URL").unwrap();
    let schema = std::env::var("WORKYARD_PG_SCHEMA").unwrap();
    let dir = PathBuf::from(std::env::var("WORKYARD_PG_DIR").unwrap());
    match role.as_str() {
        "migrate" => {
            while !dir.join("go").exists() {
                std::hint::spin_loop();
            }
            let queue = Queue::builder().schema(&schema).connect(&url).unwrap();
            let id = queue.enqueue("m", b"").unwrap();
            append_line(&dir.join("ids.log"), &id.as_u64().to_string());
            queue.stop().unwrap();
        }
        "worker" => {
            let queue = builder(&schema).connect(&url).unwrap();
            let log = dir.join("done.log");
            queue
                .register("work", move |job| -> Result<(), String> {
                    std::thread::sleep(Duration::from_micros(300));
                    let pid = std::process::id();
                    append_line(
                        &log,
                        &format!("{} {} {pid}", job.id().as_u64(), job.attempt()),
                    );
                    Ok(())
                })
                .unwrap();
            queue.start(&pool(2)).unwrap();
            while !dir.join("stop").exists() {
                std::thread::sleep(Duration::from_millis(10));
            }
            queue.stop().unwrap();
        }
        "pausable" => {
            let queue = builder(&schema).connect(&url).unwrap();
            let started = dir.join("started.log");
            let release = dir.join("release");
            queue
                .register("slow", move |job| -> Result<(), String> {
                    append_line(
                        &started,
                        &format!("{} {}", job.id().as_u64(), job.attempt()),
                    );
                    while !release.exists() {
                        std::thread::sleep(Duration::from_millis(2));
                    }
                    Ok(())
                })
                .unwrap();
            queue.start(&pool(1)).unwrap();
            let deadline = Instant::now() + Duration::from_secs(60);
            while queue.stats().fenced == 0 && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            let stats = queue.stats();
            std::fs::write(
                dir.join("stats.txt"),
                format!("{} {}", stats.fenced, stats.leases_lost),
            )
            .unwrap();
            queue.stop().unwrap();
        }
        other => panic!("unknown child role {other}"),
    }
}

#[test]
fn connection_errors_say_what_is_wrong() {
    let cluster = pg::cluster();
    let reason = |result: Result<Queue, PersistError>| match result {
        Err(PersistError::Connect { url, reason }) => {
            assert!(!url.contains(pg::PASSWORD), "password shown in {url}");
            reason
        }
        other => panic!("expected a Connect error, got {other:?}"),
    };
    let r = reason(Queue::builder().connect("postgres://[::1"));
    assert!(r.contains("not a valid PostgreSQL URL"), "{r}");
    let r = reason(Queue::builder().connect(&cluster.url_for("no_such_db")));
    assert!(r.contains("database does not exist"), "{r}");
    assert!(r.contains("no_such_db"), "{r}");
    let wrong = format!(
        "postgres://postgres:wrong@127.0.0.1:{}/postgres",
        cluster.port
    );
    let r = reason(Queue::builder().connect(&wrong));
    assert!(r.contains("refused the password"), "{r}");
    let nopass = format!("postgres://postgres@127.0.0.1:{}/postgres", cluster.port);
    let r = reason(Queue::builder().connect(&nopass));
    assert!(r.contains("password"), "{r}");
    // Nothing listens on a port just freed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let r = reason(
        Queue::builder().connect(&format!("postgres://postgres:x@127.0.0.1:{port}/postgres")),
    );
    assert!(r.contains("could not reach the server"), "{r}");

    assert!(matches!(
        Queue::builder().schema("Bad-Name").connect(&cluster.url()),
        Err(PersistError::InvalidOption {
            option: "schema",
            ..
        })
    ));
    assert!(matches!(
        Queue::builder()
            .heartbeat(Duration::from_secs(20))
            .connect(&cluster.url()),
        Err(PersistError::InvalidOption {
            option: "heartbeat",
            ..
        })
    ));
    // A held outcome must be written (and the next heartbeat sent) before
    // the lease runs out.
    assert!(matches!(
        Queue::builder()
            .lease(Duration::from_secs(10))
            .heartbeat(Duration::from_secs(6))
            .outcome_hold(LONG_HOLD)
            .connect(&cluster.url()),
        Err(PersistError::InvalidOption {
            option: "outcome_hold",
            ..
        })
    ));
}

/// Far longer than the tests below take: if anything waited for a held
/// outcome's time to run out, they would fail their time limits.
const LONG_HOLD: Duration = Duration::from_secs(40);

fn holding(schema: &str) -> QueueBuilder {
    Queue::builder()
        .schema(schema)
        .lease(Duration::from_secs(120))
        .heartbeat(Duration::from_secs(60))
        .outcome_hold(LONG_HOLD)
        .poll_interval(Duration::from_millis(50))
}

#[test]
fn outcomes_ride_in_the_next_claims_commit_and_wait_idle_does_not_wait_for_the_hold() {
    let url = pg::cluster().url();
    let schema = pg::schema("hold_claims");
    let queue = holding(&schema).connect(&url).unwrap();
    let jobs = 10_000;
    queue
        .enqueue_batch((0..jobs).map(|_| ("quick", b"".as_slice())))
        .unwrap();
    queue
        .register("quick", |_| -> Result<(), String> { Ok(()) })
        .unwrap();
    let before = queue.stats();
    let began = Instant::now();
    queue.start(&pool(4)).unwrap();
    queue.wait_idle().unwrap();
    let took = began.elapsed();
    let stats = queue.stats();
    assert!(
        took < LONG_HOLD / 2,
        "wait_idle waited for the hold: {took:?}"
    );
    assert_eq!(
        (stats.completed, stats.succeeded, stats.running),
        (jobs, jobs, 0)
    );
    let commits = stats.commits - before.commits;
    let claims = stats.claims - before.claims;

    // Every commit is a claim's, with the outcomes that came before it,
    // but for those after the last claim that found jobs: at most one
    // commit with the claim that found none, and one after it. (Written
    // as they come, outcomes that reach the writer while the feeder
    // launches its last claim's jobs are committed alone: 1–4 more
    // commits here on a quiet machine, a third more under load.)
    assert!(
        commits <= claims + 2,
        "{commits} commits for {claims} claims"
    );
    queue.stop().unwrap();
}

#[test]
fn once_stopping_no_outcome_is_held_and_stop_loses_none() {
    let url = pg::cluster().url();
    let schema = pg::schema("hold_stop");
    let queue = holding(&schema).max_in_flight(2).connect(&url).unwrap();
    let a = queue.enqueue("gated", b"a").unwrap();
    let b = queue.enqueue("gated", b"b").unwrap();
    // Each job's handler returns once its payload is released.
    let gate = Arc::new((Mutex::new((0, BTreeSet::new())), std::sync::Condvar::new()));
    let g = gate.clone();
    queue
        .register("gated", move |job| -> Result<(), String> {
            let (lock, changed) = &*g;
            let mut state = lock.lock().unwrap();
            state.0 += 1;
            changed.notify_all();
            while !state.1.contains(job.payload()) {
                state = changed.wait(state).unwrap();
            }
            Ok(())
        })
        .unwrap();
    let release = |payload: &[u8]| {
        gate.0.lock().unwrap().1.insert(payload.to_vec());
        gate.1.notify_all();
    };
    let workers = pool(2);
    queue.start(&workers).unwrap();
    assert!(
        pg::wait_for(Duration::from_secs(30), || gate.0.lock().unwrap().0 == 2),
        "both jobs never started"
    );
    // Both in one claim: two free slots, two due jobs.
    assert_eq!(queue.stats().claims, 1);
    let stopper = {
        let queue = queue.clone();
        std::thread::spawn(move || queue.stop())
    };
    assert!(
        pg::wait_for(Duration::from_secs(30), || matches!(
            queue.start(&workers),
            Err(PersistError::Stopped)
        )),
        "stop never began"
    );
    // `b` still runs, and no claim will come: `a`'s outcome is written
    // at once all the same.
    release(b"a");
    assert!(
        pg::wait_for(LONG_HOLD / 2, || queue
            .status(a)
            .unwrap()
            .is_some_and(|r| r.state() == StoredJobState::Succeeded)),
        "a's outcome was held while stopping"
    );
    let released = Instant::now();
    release(b"b");
    stopper.join().unwrap().unwrap();
    assert!(
        released.elapsed() < LONG_HOLD / 2,
        "stop waited for the hold"
    );
    let queue = holding(&schema).connect(&url).unwrap();
    for id in [a, b] {
        let record = queue.status(id).unwrap().unwrap();
        assert_eq!(
            (record.state(), record.attempts()),
            (StoredJobState::Succeeded, 1)
        );
    }
    queue.stop().unwrap();
}

#[test]
fn processes_starting_at_once_on_an_empty_database_migrate_it_once() {
    let cluster = pg::cluster();
    cluster.psql("CREATE DATABASE migration_race");
    let url = cluster.url_for("migration_race");
    let dir = temp_dir("migrate");
    const N: usize = 4;
    let mut children: Vec<Child> = (0..N)
        .map(|_| spawn_child("migrate", &url, "workyard", &dir))
        .collect();
    // Let them all reach the start line, then go at once.
    std::thread::sleep(Duration::from_millis(300));
    std::fs::write(dir.join("go"), b"").unwrap();
    for child in &mut children {
        assert!(child.wait().unwrap().success(), "a migrating child failed");
    }
    let ids: BTreeSet<u64> = read_rows(&dir.join("ids.log"))
        .into_iter()
        .map(|r| r[0])
        .collect();
    assert_eq!(ids, (1..=N as u64).collect::<BTreeSet<_>>());
    // One version row, and the queue works for a newcomer.
    let queue = Queue::builder().connect(&url).unwrap();
    assert_eq!(queue.stats().waiting, N as u64);
    assert_eq!(queue.list(StoredJobState::Waiting, 10).unwrap().len(), N);
    queue.stop().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn processes_share_a_queue_and_a_killed_ones_jobs_run_again_within_the_lease() {
    let cluster = pg::cluster();
    let url = cluster.url();
    let schema = pg::schema("kill");
    let dir = temp_dir("kill");
    let queue = builder(&schema).connect(&url).unwrap();
    let mut acked: BTreeSet<u64> = BTreeSet::new();
    let add = |queue: &Queue, acked: &mut BTreeSet<u64>, n: usize| {
        let ids = queue
            .enqueue_batch((0..n).map(|_| ("work", b"x".as_slice())))
            .unwrap();
        acked.extend(ids.iter().map(|id| id.as_u64()));
    };
    add(&queue, &mut acked, 2000);

    // Which child is killed, and when: printed, and replayed with
    // WORKYARD_KILL_SEED=S (the processes' own timing still varies).
    let seed = std::env::var("WORKYARD_KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x9e37_79b9_7f4a_7c15u64 ^ u64::from(std::process::id()));
    println!("kill test seed {seed} (replay with WORKYARD_KILL_SEED={seed})");
    let mut rng = seed;
    let mut next = move |n: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % n
    };
    let mut children: Vec<Child> = (0..3)
        .map(|_| spawn_child("worker", &url, &schema, &dir))
        .collect();
    let started = Instant::now();
    let mut kills = 0;
    let done_log = dir.join("done.log");
    let runs_by = |pid: u32| {
        read_rows(&done_log)
            .iter()
            .filter(|r| r.get(2) == Some(&u64::from(pid)))
            .count()
    };
    // Kill a process while it works (on a loaded machine a new process
    // may not have claimed anything yet, or the queue may have drained):
    // give it work and wait until it has finished one more job, so that
    // it holds a claimed batch. Its peers may claim all of that work
    // first (each may hold up to `max_in_flight` jobs): top up whenever
    // nothing is left waiting, at most every 200 ms.
    let wait_until_it_runs_one = |pid: u32, acked: &mut BTreeSet<u64>| {
        add(&queue, acked, 300);
        let before = runs_by(pid);
        let mut topped_up = Instant::now();
        assert!(
            pg::wait_for(Duration::from_secs(60), || {
                if runs_by(pid) > before {
                    return true;
                }
                if topped_up.elapsed() > Duration::from_millis(200) && queue.stats().waiting == 0 {
                    add(&queue, acked, 300);
                    topped_up = Instant::now();
                }
                false
            }),
            "worker {pid} ran no job within 60 s"
        );
    };
    for round in 0..8 {
        std::thread::sleep(Duration::from_millis(50 + next(150)));
        let victim = usize::try_from(next(children.len() as u64)).unwrap();
        let pid = children[victim].id();
        wait_until_it_runs_one(pid, &mut acked);
        children[victim].kill().unwrap(); // SIGKILL
        children[victim].wait().unwrap();
        kills += 1;
        children[victim] = spawn_child("worker", &url, &schema, &dir);
        if round % 2 == 0 {
            add(&queue, &mut acked, 500);
        }
    }
    // The last kill, while it works (topped up as every kill) and with no
    // new work after it: the survivors finish the killed process's jobs
    // once its leases run out.
    let pid = children[0].id();
    wait_until_it_runs_one(pid, &mut acked);
    let killed_at = Instant::now();
    children[0].kill().unwrap();
    children[0].wait().unwrap();
    kills += 1;
    let drained = pg::wait_for(Duration::from_secs(60), || {
        queue.list(StoredJobState::Pending, 1).unwrap().is_empty()
            && queue.list(StoredJobState::Waiting, 1).unwrap().is_empty()
            && queue.list(StoredJobState::Running, 1).unwrap().is_empty()
    });
    assert!(drained, "jobs left after 60 s: {:?}", queue.stats());
    let tail = killed_at.elapsed();
    std::fs::write(dir.join("stop"), b"").unwrap();
    for child in &mut children[1..] {
        assert!(child.wait().unwrap().success(), "a worker failed");
    }

    let mut runs: BTreeMap<u64, u32> = BTreeMap::new();
    for row in read_rows(&dir.join("done.log")) {
        *runs.entry(row[0]).or_default() += 1;
    }
    let mut duplicates = 0;
    let mut interrupted = 0;
    for &id in &acked {
        let record = queue
            .status(workyard::persist::StoredJobId::from_u64(id))
            .unwrap()
            .unwrap_or_else(|| panic!("acknowledged job {id} was lost"));
        assert_eq!(record.state(), StoredJobState::Succeeded, "job {id}");
        let n = runs.get(&id).copied().unwrap_or(0);
        assert!(n >= 1, "job {id} succeeded but never ran");
        // A second run only for a job whose earlier run was in flight in
        // a killed process: that attempt is counted as interrupted.
        assert!(
            n - 1 <= record.interrupted(),
            "job {id} ran {n} times but was interrupted {} times",
            record.interrupted()
        );
        duplicates += n - 1;
        interrupted += record.interrupted();
    }
    assert_eq!(runs.keys().copied().collect::<BTreeSet<_>>(), acked);
    assert!(interrupted > 0, "no kill landed on a running job");
    // The last killed process's jobs ran again within the lease, plus
    // the time to notice (a quarter lease) and to run what was left.
    assert!(
        tail < LEASE * 10,
        "the killed process's jobs took {tail:?} to finish"
    );
    eprintln!(
        "{kills} SIGKILLs over {:.1} s: {} jobs acknowledged, all succeeded; {duplicates} \
         duplicate runs, {interrupted} interrupted attempts; drained {tail:?} after the last kill",
        started.elapsed().as_secs_f64(),
        acked.len()
    );
    queue.stop().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_process_paused_past_its_lease_has_its_late_outcome_fenced() {
    let cluster = pg::cluster();
    let url = cluster.url();
    let schema = pg::schema("pause");
    let dir = temp_dir("pause");
    let queue = builder(&schema).connect(&url).unwrap();
    let id = queue.enqueue("slow", b"").unwrap();
    let mut child = spawn_child("pausable", &url, &schema, &dir);
    assert!(
        pg::wait_for(Duration::from_secs(30), || !read_rows(
            &dir.join("started.log")
        )
        .is_empty()),
        "the child never started the job"
    );
    signal(&child, libc::SIGSTOP);
    // Past the lease, this process takes the job over and runs it.
    let ran = Arc::new(Mutex::new(Vec::new()));
    let r = ran.clone();
    queue
        .register("slow", move |job| -> Result<(), String> {
            r.lock().unwrap().push(job.attempt());
            Ok(())
        })
        .unwrap();
    let paused = Instant::now();
    queue.start(&pool(1)).unwrap();
    queue.wait_idle().unwrap();
    let record = queue.status(id).unwrap().unwrap();
    assert!(
        paused.elapsed() >= LEASE,
        "taken over before the lease ran out"
    );
    assert_eq!(
        (record.state(), record.attempts(), record.interrupted()),
        (StoredJobState::Succeeded, 2, 1)
    );
    assert_eq!(*ran.lock().unwrap(), [2]);
    // Resumed, the paused process finishes its attempt 1: refused.
    let resumed = Arc::new(AtomicBool::new(false));
    signal(&child, libc::SIGCONT);
    resumed.store(true, Ordering::SeqCst);
    std::fs::write(dir.join("release"), b"").unwrap();
    assert!(child.wait().unwrap().success(), "the paused child failed");
    let stats = std::fs::read_to_string(dir.join("stats.txt")).unwrap();
    let fenced: Vec<u64> = stats.split(' ').map(|w| w.parse().unwrap()).collect();
    assert_eq!(fenced[0], 1, "late outcomes fenced (fenced, leases lost)");
    let record = queue.status(id).unwrap().unwrap();
    assert_eq!(
        (record.state(), record.attempts()),
        (StoredJobState::Succeeded, 2),
        "the late outcome changed the job"
    );
    queue.stop().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_server_restart_under_load_loses_nothing_and_work_resumes() {
    // Its own cluster: the restart must not disturb the other tests.
    let cluster = pg::Cluster::start(false);
    let url = cluster.url();
    let queue = builder("restart").connect(&url).unwrap();
    let done = Arc::new(Mutex::new(BTreeMap::<u64, u32>::new()));
    let d = done.clone();
    queue
        .register("work", move |job| -> Result<(), String> {
            *d.lock().unwrap().entry(job.id().as_u64()).or_default() += 1;
            Ok(())
        })
        .unwrap();
    let pool = pool(2);
    queue.start(&pool).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let enqueuer = {
        let queue = queue.clone();
        let stop = stop.clone();
        std::thread::spawn(move || {
            let (mut acked, mut failed) = (BTreeSet::new(), 0u64);
            while !stop.load(Ordering::SeqCst) {
                match queue.enqueue_batch((0..10).map(|_| ("work", b"".as_slice()))) {
                    Ok(ids) => acked.extend(ids.iter().map(|id| id.as_u64())),
                    Err(PersistError::Connection { .. }) => {
                        failed += 1;
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    Err(e) => panic!("enqueue failed: {e}"),
                }
            }
            (acked, failed)
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    cluster.restart();
    std::thread::sleep(Duration::from_millis(1000));
    stop.store(true, Ordering::SeqCst);
    let (acked, failed) = enqueuer.join().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match queue.wait_idle() {
            Ok(()) => break,
            Err(PersistError::Connection { .. }) if Instant::now() < deadline => {}
            Err(e) => panic!("wait_idle: {e}"),
        }
    }
    let done = done.lock().unwrap();
    for id in &acked {
        assert!(done.contains_key(id), "acknowledged job {id} never ran");
        let record = queue
            .status(workyard::persist::StoredJobId::from_u64(*id))
            .unwrap()
            .unwrap();
        assert_eq!(record.state(), StoredJobState::Succeeded, "job {id}");
    }
    let stats = queue.stats();
    assert!(stats.reconnects >= 1, "never reconnected: {stats:?}");
    assert!(stats.connection_errors >= 1, "{stats:?}");
    assert!(stats.last_connection_error.is_some());
    eprintln!(
        "restart under load: {} jobs acknowledged and run ({} enqueue calls failed during the \
         restart), {} reconnects, {} fenced",
        acked.len(),
        failed,
        stats.reconnects,
        stats.fenced
    );
    queue.stop().unwrap();
}

/// Batch sizes stored by `INSERT … unnest` and, from 4,096 jobs, by
/// `COPY … (FORMAT binary)`.
const BY_INSERT_AND_BY_COPY: [u64; 2] = [10, 5000];

#[test]
fn enqueue_batch_stores_the_same_by_insert_and_by_copy_and_notifies_once_per_batch() {
    let url = pg::cluster().url();
    let schema = pg::schema("batch_copy");
    let queue = builder(&schema).connect(&url).unwrap();
    let mut listener = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    listener
        .batch_execute(&format!("LISTEN workyard_{schema}"))
        .unwrap();
    let mut db = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let mut next = queue.enqueue("first", b"").unwrap().as_u64() + 1;
    for n in BY_INSERT_AND_BY_COPY {
        let jobs: Vec<(String, Vec<u8>)> = (0..n)
            .map(|i| {
                (
                    format!("name{}", i % 3),
                    i.to_le_bytes().repeat(1 + i as usize % 4),
                )
            })
            .collect();
        let ids = queue
            .enqueue_batch(jobs.iter().map(|(name, payload)| (name, payload)))
            .unwrap();
        let ids: Vec<u64> = ids.iter().map(|id| id.as_u64()).collect();
        assert_eq!(ids, (next..next + n).collect::<Vec<_>>(), "{n} jobs");
        next += n;
        let rows = db
            .query(
                &format!(
                    "SELECT id, name, payload, state, attempts, enqueued_at > 0 \
                     FROM {schema}.workyard_jobs WHERE id >= $1 AND id <= $2 ORDER BY id"
                ),
                &[&(ids[0] as i64), &(ids[ids.len() - 1] as i64)],
            )
            .unwrap();
        let stored: Vec<(u64, String, Vec<u8>, i16, i32, bool)> = rows
            .iter()
            .map(|r| {
                let id: i64 = r.get(0);
                (id as u64, r.get(1), r.get(2), r.get(3), r.get(4), r.get(5))
            })
            .collect();
        let expected: Vec<_> = ids
            .iter()
            .zip(&jobs)
            .map(|(&id, (name, payload))| (id, name.clone(), payload.clone(), 1, 0, true))
            .collect();
        assert!(stored == expected, "{n} jobs stored differently");
    }
    assert_eq!(queue.stats().waiting, 1 + 5010);
    // One notification per committed batch: the single enqueue's and the
    // two batches'.
    let mut notifications = listener.notifications();
    let mut got = 0;
    let mut iter = notifications.timeout_iter(Duration::from_millis(500));
    while let Some(_n) = postgres::fallible_iterator::FallibleIterator::next(&mut iter).unwrap() {
        got += 1;
    }
    assert_eq!(got, 3, "notifications");
    queue.stop().unwrap();
}

#[test]
fn a_failing_enqueue_batch_stores_nothing_and_breaks_the_queue_by_insert_and_by_copy() {
    let url = pg::cluster().url();
    for n in BY_INSERT_AND_BY_COPY {
        let schema = pg::schema(&format!("batch_fail{n}"));
        let queue = builder(&schema).connect(&url).unwrap();
        let mut db = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        // A row in the way of the batch's fourth id.
        db.batch_execute(&format!(
            "INSERT INTO {schema}.workyard_jobs (id, name, payload, state, enqueued_at) \
             SELECT value + 3, 'in_the_way', '', 5, 1 FROM {schema}.workyard_meta \
             WHERE key = 'next_id'"
        ))
        .unwrap();
        let err = queue
            .enqueue_batch((0..n).map(|_| ("x", b"".as_slice())))
            .unwrap_err();
        match &err {
            PersistError::Storage { reason } => {
                assert!(reason.contains("duplicate key"), "{n} jobs: {reason}")
            }
            other => panic!("{n} jobs: expected a Storage error, got {other:?}"),
        }
        assert!(matches!(
            queue.enqueue("x", b""),
            Err(PersistError::Broken { .. })
        ));
        let count: i64 = db
            .query_one(&format!("SELECT count(*) FROM {schema}.workyard_jobs"), &[])
            .unwrap()
            .get(0);
        assert_eq!(count, 1, "{n} jobs: stored by the failed batch");
        let next: i64 = db
            .query_one(
                &format!("SELECT value FROM {schema}.workyard_meta WHERE key = 'next_id'"),
                &[],
            )
            .unwrap()
            .get(0);
        assert_eq!(next, 1, "{n} jobs: ids handed out by the failed batch");
        let _ = queue.stop();
    }
}
