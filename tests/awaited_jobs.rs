//! A job that a running job waits for is never left, unstarted, where no
//! worker that may start it looks. Two ways this went wrong with thieves
//! that took a batch from a peer's own deque (882c8bc, 3b3e8d3, both
//! reverted): a published `join` half waited in the thief's FIFO batch
//! while the pool was paused, and past the nesting bound (a wait there
//! runs only its own deque, which holds what its own jobs spawned) a
//! spawned job waited in the batch of a thief that was halting, or itself
//! past the bound. A thief that takes one job and starts it at once
//! leaves everything else where its owner can run it.
//!
//! No sleeps arrange the interleavings; gates and `eventually` do. Only a
//! stall is detected by a time limit (`STALL`). In review the pause test
//! stalled on 882c8bc, the two deep ones on 882c8bc and 3b3e8d3 (30 of 30
//! runs each), and all three passed on the code before (30 of 30). Each
//! runs on 2 workers and on 8, six of them held by blocking jobs.

mod common;
use common::{eventually, within, Gate, LIMIT};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;
use workyard::{Dispatcher, JobHandle, JobStatus};

/// Holds `n` workers with jobs that block (without helping) until the
/// returned gate opens, so that in a pool of `n + 2` exactly the two
/// workers each test arranges are free, as in a pool of two.
fn hold_workers(pool: &Dispatcher, n: usize) -> Gate {
    let gate = Gate::new();
    let running = Arc::new(AtomicUsize::new(0));
    for _ in 0..n {
        let (gate, running) = (gate.clone(), running.clone());
        pool.spawn_detached(move || {
            running.fetch_add(1, SeqCst);
            gate.wait();
        })
        .unwrap();
    }
    eventually("the extra workers are held", || running.load(SeqCst) == n);
    gate
}

/// How long a wait that should finish may take before it counts as stalled.
const STALL: Duration = Duration::from_secs(5);

/// Children queued above the published half (on 882c8bc).
const CHILDREN: usize = 10;

/// 882c8bc stalled here.
fn a_joins_stolen_half_runs_while_paused(workers: usize) {
    within(LIMIT, move || {
        let pool = Dispatcher::builder().workers(workers).build().unwrap();
        let extra = hold_workers(&pool, workers - 2);
        // `start`: the job R waits on it before its `join`, so the other
        // worker can be held first. `queued`: opened by `a` once its
        // children are queued (on 882c8bc above the published half `b`).
        // `finish_a`: `a` waits on it. `release`: the children wait on it.
        let (start, queued, finish_a, release, hold) = (
            Gate::new(),
            Gate::new(),
            Gate::new(),
            Gate::new(),
            Gate::new(),
        );
        let started = Arc::new(AtomicUsize::new(0));
        let (done_tx, done_rx) = mpsc::channel();
        let r = {
            let (start, queued, finish_a, release, started, p) = (
                start.clone(),
                queued.clone(),
                finish_a.clone(),
                release.clone(),
                started.clone(),
                pool.clone(),
            );
            pool.spawn(move || {
                start.wait();
                // The other worker searched (and raised this worker's
                // steal request) before it took the holding job, so this
                // `join` publishes `b` before `a` runs.
                let (handles, ()) = workyard::join(
                    || {
                        let handles: Vec<_> = (0..CHILDREN)
                            .map(|_| {
                                let (release, started) = (release.clone(), started.clone());
                                p.spawn(move || {
                                    started.fetch_add(1, SeqCst);
                                    release.wait();
                                })
                                .unwrap()
                            })
                            .collect();
                        queued.open();
                        // Blocks without helping.
                        finish_a.wait();
                        handles
                    },
                    || (),
                );
                done_tx.send(()).unwrap();
                handles
            })
            .unwrap()
        };
        eventually("R runs", || r.status() == JobStatus::Running);
        let held = {
            let hold = hold.clone();
            pool.spawn(move || hold.wait()).unwrap()
        };
        eventually("the holding job runs", || {
            held.status() == JobStatus::Running
        });
        start.open();
        queued.wait();
        // The other worker is freed: it steals from R's worker (on
        // 882c8bc a batch with `b` in it) and starts a child, which blocks.
        hold.open();
        held.join().unwrap();
        eventually("a child runs on the thief", || started.load(SeqCst) >= 1);
        pool.pause();
        finish_a.open();
        release.open();
        let finished = done_rx.recv_timeout(STALL).is_ok();
        pool.resume();
        for h in r.join().unwrap() {
            h.join().unwrap();
        }
        extra.open();
        pool.shutdown();
        assert!(finished, "R's join did not finish while paused");
    });
}

type Inner = Arc<dyn Fn() + Send + Sync>;

/// Called in a job at depth 1: nests `levels` jobs on this worker (each
/// spawns the next and joins it; the other worker is blocked and cannot
/// steal), and runs `inner` in the innermost, at depth `levels`.
fn chain(pool: &Dispatcher, levels: u32, inner: Inner) {
    if levels == 1 {
        inner();
        return;
    }
    let p = pool.clone();
    pool.spawn(move || chain(&p, levels - 1, inner))
        .unwrap()
        .join()
        .unwrap();
}

/// The deep worker of both tests. Its job waits for `start`, nests 16
/// jobs deep, and the innermost spawns X0; X1, which waits for `x1_gate`
/// and joins X0; X2, whose handle goes to `x2`. Then it opens `queued`,
/// waits (not helping) for `go` and joins X1, 16 jobs deep.
#[derive(Default)]
struct Deep {
    start: Gate,
    queued: Gate,
    go: Gate,
    x1_gate: Gate,
    x1_started: Arc<AtomicBool>,
    x2: Arc<Mutex<Option<JobHandle<()>>>>,
}

impl Deep {
    fn innermost(&self, p: &Dispatcher) {
        let h0 = p.spawn(|| ()).unwrap();
        let (g, s) = (self.x1_gate.clone(), self.x1_started.clone());
        let h1 = p
            .spawn(move || {
                s.store(true, SeqCst);
                g.wait();
                h0.join().unwrap();
            })
            .unwrap();
        *self.x2.lock().unwrap() = Some(p.spawn(|| ()).unwrap());
        self.queued.open();
        self.go.wait();
        h1.join().unwrap();
    }

    /// Spawns the deep job and waits until it runs; the receiver hears
    /// when it has finished.
    fn spawn(self: &Arc<Self>, pool: &Dispatcher) -> (JobHandle<()>, mpsc::Receiver<()>) {
        let (done_tx, done_rx) = mpsc::channel();
        let (deep, p) = (Arc::clone(self), pool.clone());
        let job = pool
            .spawn(move || {
                deep.start.wait();
                let (d, pp) = (Arc::clone(&deep), p.clone());
                chain(&p, 16, Arc::new(move || d.innermost(&pp)));
                done_tx.send(()).unwrap();
            })
            .unwrap();
        eventually("the deep job runs", || job.status() == JobStatus::Running);
        (job, done_rx)
    }
}

/// Fails the test without dropping `pool` or `keep`, whose jobs hang.
fn hung(pool: Dispatcher, keep: impl Sized, what: &str) -> ! {
    eprintln!("{:#?}", pool.stats());
    std::mem::forget(pool);
    std::mem::forget(keep);
    panic!("hung: {what}");
}

/// The thief is halted while it runs X1; on 3b3e8d3 X0 sat in its batch.
fn deep_wait_with_halting_thief(workers: usize) {
    within(LIMIT, move || {
        let pool = Dispatcher::builder().workers(workers).build().unwrap();
        let extra = hold_workers(&pool, workers - 2);
        let deep = Arc::new(Deep::default());
        let (job, done) = deep.spawn(&pool);
        let hold = Gate::new();
        let held = {
            let hold = hold.clone();
            pool.spawn(move || hold.wait()).unwrap()
        };
        eventually("the holding job runs", || {
            held.status() == JobStatus::Running
        });
        let thief = pool.info(held.id()).unwrap().worker().unwrap();
        deep.start.open();
        deep.queued.wait();
        hold.open();
        eventually("X1 runs on the thief", || deep.x1_started.load(SeqCst));
        pool.halt_worker(thief).unwrap();
        deep.go.open();
        deep.x1_gate.open();
        if done.recv_timeout(STALL).is_err() {
            hung(
                pool,
                job,
                "the deep job's wait (X0 in the halted thief's batch)",
            );
        }
        job.join().unwrap();
        extra.open();
        pool.shutdown();
    });
}

/// No halt, no pause: the thief steals while 15 jobs deep, so X1 (16th)
/// waits on its own deque only; on 3b3e8d3 X0 sat in its batch.
fn deep_wait_with_deep_thief(workers: usize) {
    within(LIMIT, move || {
        let pool = Dispatcher::builder().workers(workers).build().unwrap();
        let extra = hold_workers(&pool, workers - 2);
        let deep = Arc::new(Deep::default());
        deep.x1_gate.open();
        let (job, done) = deep.spawn(&pool);
        let (start, (other_done_tx, other_done)) = (Gate::new(), mpsc::channel());
        let other = {
            let (p, start, x2) = (pool.clone(), start.clone(), deep.x2.clone());
            pool.spawn(move || {
                start.wait();
                let inner: Inner = Arc::new(move || {
                    // 15 deep: this wait still helps, and steals.
                    let h = x2.lock().unwrap().take().unwrap();
                    h.join().unwrap();
                });
                chain(&p, 15, inner);
                other_done_tx.send(()).unwrap();
            })
            .unwrap()
        };
        eventually("the other job runs", || {
            other.status() == JobStatus::Running
        });
        deep.start.open();
        deep.queued.wait();
        start.open();
        eventually("X1 runs on the thief", || deep.x1_started.load(SeqCst));
        deep.go.open();
        if done.recv_timeout(STALL).is_err() || other_done.recv_timeout(STALL).is_err() {
            hung(pool, (job, other), "X0 in the deep thief's batch");
        }
        job.join().unwrap();
        other.join().unwrap();
        extra.open();
        pool.shutdown();
    });
}

#[test]
fn a_joins_stolen_half_runs_while_paused_2_workers() {
    a_joins_stolen_half_runs_while_paused(2);
}

#[test]
fn a_joins_stolen_half_runs_while_paused_8_workers() {
    a_joins_stolen_half_runs_while_paused(8);
}

#[test]
fn deep_wait_with_halting_thief_2_workers() {
    deep_wait_with_halting_thief(2);
}

#[test]
fn deep_wait_with_halting_thief_8_workers() {
    deep_wait_with_halting_thief(8);
}

#[test]
fn deep_wait_with_deep_thief_2_workers() {
    deep_wait_with_deep_thief(2);
}

#[test]
fn deep_wait_with_deep_thief_8_workers() {
    deep_wait_with_deep_thief(8);
}
