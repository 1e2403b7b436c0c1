//! Loom models of the whole control loop (issue #17 §2): the real
//! [`Control`] running its real loop (`Control::run`: `carry_out`, the
//! exit test `closed && every slot Free`, `finish`) against modelled
//! workers, a spawner and an order-giver, all on the real [`Pool`] (gate,
//! stop flags, admission, `Sleep`, injector and deques, index, inbox and
//! replies).
//!
//! Worker threads cannot be started inside a model, so the `Control` is
//! built here (this module is `control`'s child and sees its fields) with
//! its slots already `Active`, exactly as `start_worker` leaves them
//! (stop flag cleared, slot marked used, counted as searching, `active`
//! published); no hook in the crate is needed. Each modelled worker then
//! follows `worker/mod.rs` step by step with the real pool calls:
//! `run` (halting check, `find_job` with the gate check, `execute_found`
//! with the pass-on, `on_idle`, `is_done`, one search round, `park` with
//! `prepare`, last look, `park`, `withdraw`), `execute` (the gate check
//! after taking a job and the put-back, `cell::claim`, `release_place`,
//! run or `discard`, `count_finished`) and `retire` (hand on the deques,
//! stop searching, `on_idle`, post `Exited`). The one simplification: a
//! search is one round without the `yield_now` (the real loop's eight
//! rounds only repeat the same look).
//!
//! Size: each model must finish within CI's budget at
//! `LOOM_MAX_PREEMPTIONS=2`. The two-worker models begin with their
//! workers idle ([`Begin::Idle`]) rather than just started, and an
//! order-giver posts its orders before it awaits their answers where the
//! order of the answers does not matter: each round trip through the
//! inbox and a reply multiplies the interleavings. The shutdown is
//! `Dispatcher::shutdown`'s order (a waiter, no ack). Two models with four
//! threads busy at once run at one preemption (`model_bounded`); each
//! says what it was at two.
//!
//! What every interleaving must show: the model ends (a lost wake-up or a
//! reply never sent is a loom deadlock); every accepted job ran exactly
//! once, or the halt reported it `never_started` and it ended Cancelled
//! unrun; no job starts while a pause answered before its spawn is in
//! force; the last worker is never halted; the shutdown waiter is answered
//! only after every worker posted `Exited`; every order is answered.

use super::{Control, Life};
use crate::error::WorkerError;
use crate::handle::JobHandle;
use crate::job::cell::{self, JobCell};
use crate::job::task::{Kind, Task};
use crate::job::{JobId, JobStatus};
use crate::loom::{model, model_bounded};
use crate::order::{reply, Answer, Ended, HaltReport, Order, Waiter};
use crate::pool::{Config, Pool};
use crate::signal::lock;
use crate::slot::Deques;
use crate::{time, Arc};
use loom::sync::atomic::{AtomicBool, AtomicUsize};
use loom::thread;
use std::collections::BinaryHeap;
use std::sync::atomic::Ordering::{Acquire, Release, SeqCst};

/// The pool, its control thread's state and what the checks count.
struct World {
    pool: Arc<Pool>,
    /// Workers that posted `Exited` (counted just before the post).
    exited: AtomicUsize,
    /// Loom's view of the queues' hand-off (see [`World::before_push`]).
    handoff: AtomicUsize,
    begin: Begin,
}

impl World {
    /// Before any push to a crossbeam queue: crossbeam's own Release/Acquire
    /// is invisible to loom (it is not built on loom's atomics), so without
    /// this the popping worker's first touch of a job's record (the
    /// `started_at` store in `cell::claim`) reads to loom as racing the
    /// record's creation. A Release RMW before the push, and an Acquire
    /// RMW after each pop (which reads the latest value, so this one or a
    /// later one in its release sequence), stand in for crossbeam's.
    fn before_push(&self) {
        self.handoff.fetch_add(1, Release);
    }

    /// After a pop from a crossbeam queue: see [`World::before_push`].
    fn after_pop(&self) {
        self.handoff.fetch_add(0, Acquire);
    }
}

/// Where the modelled workers begin.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Begin {
    /// Just started, counted as searching, as `start_worker` leaves them.
    Started,
    /// Run dry: no longer searching, at the start of `park` (its
    /// `prepare`, last look and park). That is where every worker of a
    /// pool with nothing queued ends up after `build`, so the models of
    /// two workers begin there: the start-up search of each (covered by
    /// the one-worker models) more than doubles their interleavings.
    Idle,
}

/// A pool of `workers` slots, all `Active`, and its `Control`.
fn world(workers: usize, begin: Begin) -> (Arc<World>, Control) {
    let pool = Arc::new(Pool::new(Config {
        max_workers: workers,
        capacity: None,
        history: 4,
        stack_size: None,
        handlers: Default::default(),
    }));
    for index in 0..workers {
        // What `start_worker` does before and after its spawn.
        let slot = &pool.slots()[index];
        slot.set_stop(false);
        pool.mark_used(index);
        if begin == Begin::Started {
            pool.sleep().start_searching();
        }
    }
    let control = Control {
        pool: Arc::clone(&pool),
        names: (0..workers).map(|i| format!("w{i}")).collect(),
        life: vec![Life::Active; workers],
        threads: (0..workers).map(|_| None).collect(),
        exited: Vec::new(),
        active: workers,
        target: workers,
        paused: false,
        closed: false,
        waiters: Vec::new(),
        deadlines: BinaryHeap::new(),
        deferred: None,
    };
    control.publish_active();
    let world = Arc::new(World {
        pool,
        exited: AtomicUsize::new(0),
        handoff: AtomicUsize::new(0),
        begin,
    });
    (world, control)
}

/// Posts `order` as `control::post` does (a stopped pool answers it here).
fn post(world: &World, order: Order) {
    super::post(&world.pool, order);
}

fn pause(world: &World) {
    let (r, a) = reply();
    post(world, Order::Pause(r));
    a.wait();
}

fn resume(world: &World) {
    let (r, a) = reply();
    post(world, Order::Resume(r));
    a.wait();
}

fn halt_worker(world: &World, index: usize) -> Result<(), WorkerError> {
    let (r, a) = reply();
    post(world, Order::HaltWorker(index, r));
    a.wait()
}

fn halt(world: &World) -> HaltReport {
    let (r, a) = reply();
    post(world, Order::Halt(r));
    a.wait()
}

/// `shutdown` from outside the pool, as `Dispatcher::shutdown` gives it
/// (a waiter, no ack): waits for every worker to leave.
fn shutdown(world: &World, workers: usize) {
    let ended = post_shutdown(world);
    shut_down(world, ended, workers);
}

/// Posts the shutdown order; its answer comes once every worker left.
fn post_shutdown(world: &World) -> Answer<Ended> {
    let (reply, ended) = reply();
    post(
        world,
        Order::Shutdown {
            ack: None,
            waiter: Some(Waiter {
                reply,
                deadline: None,
            }),
        },
    );
    ended
}

/// Waits for the shutdown's answer and checks it came after every exit.
fn shut_down(world: &World, ended: Answer<Ended>, workers: usize) {
    match ended.wait() {
        Ended::Done(threads) => assert!(lock(&threads).is_empty(), "no real threads"),
        Ended::TimedOut(_) => panic!("no deadline was given"),
    }
    assert_eq!(
        world.exited.load(SeqCst),
        workers,
        "the shutdown waiter was answered before every worker posted Exited"
    );
}

/// One spawn from outside the pool, as `dispatcher::admit` + `publish` do
/// it (the injector standing in for the feeds): `None` if refused. `job`
/// runs as the job's closure.
fn spawn(world: &World, job: impl FnOnce() + Send + 'static) -> Option<JobHandle<()>> {
    let pool = &world.pool;
    let id = pool.admit()?;
    let (typed, [job, indexed]) = JobCell::spawn(JobId(id), job, 0);
    pool.index().insert(indexed);
    world.before_push();
    pool.injector().push(Task::job(job));
    pool.wake_one();
    Some(JobHandle::from_typed(typed))
}

/// A modelled worker of slot `index`: `main_loop`, `run` and `retire`.
fn worker(world: &World, index: usize) {
    let pool = &*world.pool;
    let slot = &pool.slots()[index];
    let Deques { local, batch } = lock(&slot.deques).take().expect("one thread per slot");
    *lock(&slot.thread) = Some(crate::loom::thread::current());
    // Started counted as searching (`start_worker`), or idle.
    let mut searching = world.begin == Begin::Started;
    let mut at_park = world.begin == Begin::Idle;
    let find = |local: &crossbeam_deque::Worker<Task>, batch: &crossbeam_deque::Worker<Task>| {
        if pool.is_paused() {
            return None;
        }
        local.pop().or_else(|| batch.pop()).or_else(|| {
            let slots = pool.used_slots();
            let peers = || (0..slots.len()).filter(|&v| v != index);
            for v in peers() {
                if let Some(t) = slots[v].batch_stealer.steal().success() {
                    return Some(t);
                }
            }
            if let Some(t) = pool.injector().steal_batch_and_pop(batch).success() {
                return Some(t);
            }
            for v in peers() {
                if let Some(t) = slots[v].stealer.steal().success() {
                    return Some(t);
                }
            }
            None
        })
    };
    loop {
        if !std::mem::replace(&mut at_park, false) {
            if slot.stop_requested() {
                break;
            }
            if let Some(task) = find(&local, &batch) {
                world.after_pop();
                // `execute_found`: stop searching (rule 2), then `execute`.
                if std::mem::replace(&mut searching, false) {
                    pool.pass_on();
                }
                let job = match task.into_kind() {
                    Kind::Job(job) => job,
                    Kind::Stack(_) => unreachable!("no join in these models"),
                };
                if pool.is_paused() {
                    world.before_push();
                    local.push(Task::job(job));
                    continue;
                }
                let claimed = cell::claim(&job, index, time::now());
                pool.release_place(&job, claimed);
                if claimed {
                    slot.counters.count_start();
                    job.run(index, &*slot.counters);
                } else {
                    job.discard();
                }
                drop(job);
                slot.counters.count_finished();
                continue;
            }
            pool.on_idle();
            if pool.is_done() {
                break;
            }
            // `search`: one round.
            if !std::mem::replace(&mut searching, true) {
                pool.sleep().start_searching();
            }
            if pool.has_work() || pool.is_done() || slot.stop_requested() {
                continue;
            }
        }
        // `park`.
        if std::mem::replace(&mut searching, false) {
            let _ = pool.sleep().stop_searching();
        }
        pool.sleep().prepare(index);
        if pool.has_work() || pool.is_done() || slot.stop_requested() {
            pool.sleep().withdraw(index);
            searching = true;
            continue;
        }
        crate::loom::thread::park();
        pool.sleep().withdraw(index);
        searching = true;
    }
    // `retire`.
    let mut moved = 0;
    while let Some(job) = batch.pop().or_else(|| local.pop()) {
        world.after_pop();
        world.before_push();
        pool.injector().push(job);
        moved += 1;
    }
    if moved > 0 {
        pool.wake_one();
    }
    if searching {
        pool.pass_on();
    }
    pool.on_idle();
    *lock(&slot.thread) = None;
    *lock(&slot.deques) = Some(Deques { local, batch });
    world.exited.fetch_add(1, SeqCst);
    let _ = pool.orders().post(Order::Exited(index));
}

/// Starts the control thread (the real loop) and `workers` workers.
fn start(world: &Arc<World>, control: Control) -> Vec<thread::JoinHandle<()>> {
    let workers = world.pool.slots().len();
    let mut threads = vec![thread::spawn(move || control.run())];
    for index in 0..workers {
        let world = Arc::clone(world);
        threads.push(thread::spawn(move || worker(&world, index)));
    }
    threads
}

fn end(world: &World, threads: Vec<thread::JoinHandle<()>>) {
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(
        world.pool.pending(),
        0,
        "an accepted job was never finished"
    );
}

/// A job that counts its runs.
fn counted(runs: &Arc<AtomicUsize>) -> impl FnOnce() + Send + 'static {
    let runs = Arc::clone(runs);
    move || {
        runs.fetch_add(1, SeqCst);
    }
}

/// Halt vs a worker vs a spawner, then a shutdown: the spawned job either
/// ran once (ending Succeeded, or Cancelled if the halt asked it to stop
/// while it ran), or is reported `never_started` and ends Cancelled unrun,
/// or was refused (the halt had closed the pool).
#[test]
fn halt_against_a_worker_and_a_spawner() {
    model("control: halt vs worker vs spawner, then shutdown", || {
        let (world, control) = world(1, Begin::Started);
        let threads = start(&world, control);
        let runs = Arc::new(AtomicUsize::new(0));
        let spawner = {
            let (world, runs) = (Arc::clone(&world), Arc::clone(&runs));
            thread::spawn(move || spawn(&world, counted(&runs)))
        };
        let report = halt(&world);
        shutdown(&world, 1);
        let handle = spawner.join().unwrap();
        end(&world, threads);
        let runs = runs.load(SeqCst);
        match handle {
            None => {
                assert_eq!(runs, 0);
                assert!(report.never_started.is_empty() && report.interrupted.is_empty());
            }
            Some(h) => {
                let id = h.id();
                let never = report.never_started.contains(&id);
                let interrupted = report.interrupted.contains(&id);
                assert!(!(never && interrupted));
                if never {
                    assert_eq!(runs, 0, "reported never_started, yet it ran");
                    assert_eq!(h.status(), JobStatus::Cancelled);
                } else {
                    assert_eq!(runs, 1, "accepted, not reported, and not run once");
                    let want = if interrupted {
                        JobStatus::Cancelled
                    } else {
                        JobStatus::Succeeded
                    };
                    assert_eq!(h.status(), want);
                }
            }
        }
    });
}

/// Pause, then a spawn after the pause was answered, then resume, against
/// a worker and a second spawner, then a shutdown: the first job never
/// starts before the resume was posted; each accepted job runs exactly
/// once (the second spawn may be refused by the shutdown's close).
///
/// Two spawners make four threads with the control thread and the worker:
/// at two preemptions this ran past two minutes unfinished, so it runs
/// at one. `pause_resume_against_a_worker` keeps the gate's case at two.
#[test]
fn pause_resume_against_a_spawner_and_a_worker() {
    model_bounded(
        "control: pause/resume vs spawner vs worker, then shutdown",
        1,
        || {
            let (world, control) = world(1, Begin::Started);
            let threads = start(&world, control);
            let runs = Arc::new(AtomicUsize::new(0));
            let other = {
                let (world, runs) = (Arc::clone(&world), Arc::clone(&runs));
                thread::spawn(move || spawn(&world, counted(&runs)))
            };
            pause(&world);
            let resumed = Arc::new(AtomicBool::new(false));
            let gated = {
                let (runs, resumed) = (Arc::clone(&runs), Arc::clone(&resumed));
                spawn(&world, move || {
                    assert!(
                        resumed.load(SeqCst),
                        "a job started while the pool was paused"
                    );
                    runs.fetch_add(1, SeqCst);
                })
                .expect("open pool")
            };
            resumed.store(true, SeqCst);
            resume(&world);
            shutdown(&world, 1);
            // The other spawn may come after the shutdown's close: refused.
            let other = other.join().unwrap();
            end(&world, threads);
            assert_eq!(runs.load(SeqCst), 1 + usize::from(other.is_some()));
            assert_eq!(gated.status(), JobStatus::Succeeded);
            if let Some(other) = other {
                assert_eq!(other.status(), JobStatus::Succeeded);
            }
        },
    );
}

/// Halting one of two idle workers against a spawn and both workers,
/// then a shutdown: the halt is carried out while the job is pushed and
/// a worker woken for it (the halted one, perhaps, which then leaves
/// counted as searching). The job must run before the shutdown, whose
/// `wake_all` would hide a lost wake-up: the joiner waits for it first,
/// so a lost one is a loom deadlock. At one preemption it does not catch
/// every such bug: with `Pool::pass_on`'s wake-up removed it still passed
/// (checked by hand); that case needs the higher bound, past CI's budget.
///
/// The order is posted, then the spawn made, then the answer awaited: as
/// two callers would, one halting and one spawning, except that the spawn
/// cannot come before the post (which changes nothing a worker sees). A
/// separate spawner thread made it five threads and millions of
/// interleavings at two preemptions; at two it is still past 560,000
/// (unfinished), so it runs at one.
#[test]
fn halt_worker_against_worker_exit_and_shutdown() {
    model_bounded(
        "control: halt_worker vs a spawn and 2 workers, then shutdown",
        1,
        || {
            let (world, control) = world(2, Begin::Idle);
            let threads = start(&world, control);
            let runs = Arc::new(AtomicUsize::new(0));
            let (r, halted) = reply();
            post(&world, Order::HaltWorker(1, r));
            let handle = spawn(&world, counted(&runs)).expect("open pool");
            handle.join().expect("the job runs");
            assert_eq!(halted.wait(), Ok(()));
            assert_eq!(world.pool.running_workers(), 1);
            shutdown(&world, 2);
            end(&world, threads);
            assert_eq!(runs.load(SeqCst), 1);
        },
    );
}

/// The pause model without the second spawner: the order-giver's own
/// spawn, made after its pause was answered, is the one under test.
#[test]
fn pause_resume_against_a_worker() {
    model(
        "control: pause, spawn, resume vs worker, then shutdown",
        || {
            let (world, control) = world(1, Begin::Started);
            let threads = start(&world, control);
            let resumed = Arc::new(AtomicBool::new(false));
            pause(&world);
            let runs = Arc::new(AtomicUsize::new(0));
            let gated = {
                let (runs, resumed) = (Arc::clone(&runs), Arc::clone(&resumed));
                spawn(&world, move || {
                    assert!(
                        resumed.load(SeqCst),
                        "a job started while the pool was paused"
                    );
                    runs.fetch_add(1, SeqCst);
                })
                .expect("open pool")
            };
            resumed.store(true, SeqCst);
            resume(&world);
            shutdown(&world, 1);
            end(&world, threads);
            assert_eq!(runs.load(SeqCst), 1);
            assert_eq!(gated.status(), JobStatus::Succeeded);
        },
    );
}

/// Halting one of two idle workers, a second halt (of the last one), and
/// a shutdown, against both workers: the first halt is granted, the
/// second refused (`stop` counts the halted worker out at once, not at
/// its `Exited`: counted at its exit, the second halt would be granted
/// in every interleaving where worker 1 had not left yet), the halted
/// worker leaves whether parked or not yet, and the shutdown waiter is
/// answered only after both posted `Exited` (the exit test is "every slot
/// Free"; one of "no worker active" would end the loop with worker 1
/// still in its loop).
///
/// The three orders are posted before their answers are awaited: each
/// round trip (a lock, a wait, a reply) multiplies the interleavings, and
/// the control thread carries them out in the same order either way.
#[test]
fn halt_worker_against_idle_workers_and_shutdown() {
    model(
        "control: halt_worker vs 2 idle workers, then shutdown",
        || {
            let (world, control) = world(2, Begin::Idle);
            let threads = start(&world, control);
            let (r, first) = reply();
            post(&world, Order::HaltWorker(1, r));
            let (r, last) = reply();
            post(&world, Order::HaltWorker(0, r));
            let ended = post_shutdown(&world);
            assert_eq!(first.wait(), Ok(()));
            assert_eq!(
                last.wait(),
                Err(WorkerError::LastWorker),
                "the last worker was halted"
            );
            shut_down(&world, ended, 2);
            end(&world, threads);
        },
    );
}

/// The last worker of a one-worker pool against that worker and a
/// shutdown: halting it is refused, a free slot is not running.
#[test]
fn halt_worker_refuses_the_last_worker() {
    model(
        "control: halt_worker of the last worker vs worker vs shutdown",
        || {
            let (world, control) = world(1, Begin::Started);
            let threads = start(&world, control);
            assert_eq!(
                halt_worker(&world, 0),
                Err(WorkerError::LastWorker),
                "the last worker was halted"
            );
            assert_eq!(halt_worker(&world, 1), Err(WorkerError::NotRunning(1)));
            assert_eq!(world.pool.running_workers(), 1);
            shutdown(&world, 1);
            end(&world, threads);
        },
    );
}
