//! Loom models of the wake protocol (rules 1–4 of `sleep.rs`), with the
//! real [`Sleep`] and a counter of queued jobs standing in for the queues.
//!
//! Each modelled worker runs the loop of `WorkerCtx::run`
//! (`src/worker/mod.rs`): take a job if one is queued (`find_job`), leaving
//! the searching state first with the pass-on of rule 2
//! (`execute_found` → `Pool::pass_on`); else search, counted as searching
//! (`search`, one round); else park (`park`: stop searching, `prepare`,
//! look again, `park`, `withdraw`, back to searching, rule 3 and 4). A
//! spawner runs the tail of a spawn: push, then `Pool::wake_one` (rule 1,
//! with the retry after `Claim::StandInLeft`). Whoever takes the last job
//! ends the pool (`is_done`, and the `claim_all` of `on_idle` once closed),
//! so every worker returns.
//!
//! A lost wake-up leaves a job queued while every worker parks for good,
//! which loom reports as a deadlock.

use super::{Claim, Sleep};
use crate::loom::{fence, model, AtomicBool, AtomicUsize};
use loom::thread::{self, JoinHandle, Thread};
use std::cell::Cell;
use std::sync::atomic::Ordering::{AcqRel, Acquire, Release, SeqCst};
use std::sync::{Arc, OnceLock};

/// How `Pool::pass_on` behaves in a model.
#[derive(Clone, Copy, PartialEq, Eq)]
enum PassOn {
    /// Rule 2, as the pool does it.
    Rule2,
    /// Without rule 2: a searcher that takes a job just stops searching
    /// (what the pool did before the rewrite). Only for the model that
    /// shows the lost wake-up.
    Without,
}

struct World {
    sleep: Sleep,
    pass_on: PassOn,
    /// Jobs pushed and not yet taken (the queues).
    queued: AtomicUsize,
    /// Jobs taken by workers.
    taken: AtomicUsize,
    /// Jobs that will be pushed in all.
    total: usize,
    /// Each job, once taken, waits until this many jobs are taken (so that
    /// the worker that took it cannot take another before): `total` in the
    /// models where each worker must take one, 0 where jobs do not block.
    hold_until: usize,
    /// Set by whoever takes the last job: the pool is done (closed, empty).
    done: AtomicBool,
    /// Each slot's thread, for unparking (`Slot::thread`); set by the main
    /// thread once it has spawned the workers, before any job is pushed.
    threads: OnceLock<Vec<Thread>>,
    /// How often `wake_one` got `Claim::StandInLeft`, across iterations.
    stand_ins: Arc<std::sync::atomic::AtomicUsize>,
}

impl World {
    fn new(workers: usize, total: usize, hold_until: usize, pass_on: PassOn) -> Arc<World> {
        Self::counting(workers, total, hold_until, pass_on, Arc::default())
    }

    fn counting(
        workers: usize,
        total: usize,
        hold_until: usize,
        pass_on: PassOn,
        stand_ins: Arc<std::sync::atomic::AtomicUsize>,
    ) -> Arc<World> {
        Arc::new(World {
            sleep: Sleep::new(workers),
            pass_on,
            queued: AtomicUsize::new(0),
            taken: AtomicUsize::new(0),
            total,
            hold_until,
            done: AtomicBool::new(false),
            threads: OnceLock::new(),
            stand_ins,
        })
    }

    fn unpark(&self, slot: usize) {
        self.threads.get().expect("workers registered")[slot].unpark();
    }

    /// `Pool::has_work`.
    fn has_work(&self) -> bool {
        // ORDERING: Acquire, like a queue's emptiness check; ordered
        // against the sleep counts by the SeqCst fences around it.
        self.queued.load(Acquire) > 0
    }

    fn is_done(&self) -> bool {
        // ORDERING: Acquire pairs with the Release store in `take`.
        self.done.load(Acquire)
    }

    /// A spawn: the push, then `Pool::wake_one`.
    fn spawn_one(&self) {
        // ORDERING: Release, like the queues' push; the SeqCst fence in
        // `claim_one` is what orders it against the sleep counts.
        self.queued.fetch_add(1, Release);
        self.wake_one();
    }

    /// `Pool::wake_one`.
    fn wake_one(&self) {
        loop {
            match self.sleep.claim_one() {
                Claim::Nobody => return,
                Claim::Woke(slot) => {
                    self.unpark(slot);
                    return;
                }
                Claim::StandInLeft => {
                    self.stand_ins.fetch_add(1, SeqCst);
                    if !self.stop_searching_last() {
                        return;
                    }
                    // Not in `Pool::wake_one`: the retry can spin while a
                    // withdrawing worker sits between its bit and its
                    // `sleepers` decrement (the next `claim_one` sees a
                    // sleeper and no bit again). A real CPU gets past that
                    // window; loom needs to be told to run the other thread.
                    thread::yield_now();
                }
            }
        }
    }

    /// `Pool::pass_on` (rule 2).
    fn pass_on(&self) {
        match self.pass_on {
            PassOn::Rule2 => {
                if self.stop_searching_last() {
                    self.wake_one();
                }
            }
            PassOn::Without => {
                let _ = self.sleep.stop_searching();
            }
        }
    }

    /// `Pool::stop_searching_last`.
    fn stop_searching_last(&self) -> bool {
        if !self.sleep.stop_searching() {
            return false;
        }
        fence(SeqCst);
        self.has_work()
    }

    /// `find_job`: pops a job if one is queued.
    fn try_pop(&self) -> bool {
        // ORDERING: AcqRel: takes the job published by the push.
        self.queued
            .fetch_update(AcqRel, Acquire, |q| q.checked_sub(1))
            .is_ok()
    }

    /// Runs a taken job: counts it, ends the pool after the last one, and
    /// (with `hold_until`) waits for the other jobs to be taken.
    fn run_job(&self, i: usize) {
        // ORDERING: AcqRel: whoever takes the last job has seen every
        // earlier take.
        let taken = self.taken.fetch_add(1, AcqRel) + 1;
        if taken == self.total {
            // `Pool::on_idle` of a closed pool whose last job ran.
            // ORDERING: Release pairs with the Acquire in `is_done`.
            self.done.store(true, Release);
            self.sleep.claim_all(|slot| self.unpark(slot));
            // Also the other workers waiting inside their jobs.
            for slot in 0..self.threads.get().expect("registered").len() {
                if slot != i {
                    self.unpark(slot);
                }
            }
        }
        // ORDERING: Acquire pairs with the AcqRel of the last take.
        while self.taken.load(Acquire) < self.hold_until {
            thread::park();
        }
    }

    /// `WorkerCtx::run` for slot `i`; returns how many jobs it took.
    /// `searching`: it starts counted as searching (a new worker, or one
    /// that was unparked), else parked (its bit was set by `prepare`
    /// before the model's threads started, see `parked`).
    fn worker(self: &Arc<World>, i: usize, parked: bool) -> JoinHandle<usize> {
        let world = Arc::clone(self);
        thread::spawn(move || {
            let searching = Cell::new(!parked);
            let mut mine = 0;
            if parked {
                world.park_tail(i, &searching);
            }
            loop {
                if world.try_pop() {
                    // `execute_found`: stop searching, passing it on.
                    if searching.replace(false) {
                        world.pass_on();
                    }
                    mine += 1;
                    world.run_job(i);
                    continue;
                }
                if world.is_done() {
                    if searching.replace(false) {
                        world.pass_on();
                    }
                    return mine;
                }
                // `search`, one round: counted as searching.
                if !searching.replace(true) {
                    world.sleep.start_searching();
                }
                if world.has_work() || world.is_done() {
                    continue;
                }
                // `park`.
                if searching.replace(false) {
                    // Parking: the last look below stands in for the pass-on.
                    let _ = world.sleep.stop_searching();
                }
                world.sleep.prepare(i);
                world.park_tail(i, &searching);
            }
        })
    }

    /// The end of `park`, after `prepare`: the last look, the park, and the
    /// withdrawal that makes the worker a searcher again (rule 4).
    fn park_tail(&self, i: usize, searching: &Cell<bool>) {
        if !(self.has_work() || self.is_done()) {
            thread::park();
        }
        self.sleep.withdraw(i);
        searching.set(true);
    }

    /// Starts `n` workers, all parked (`parked`) or all searching.
    fn start(self: &Arc<World>, n: usize, parked: bool) -> Vec<JoinHandle<usize>> {
        for i in 0..n {
            if parked {
                self.sleep.prepare(i);
            } else {
                // The control thread counts a new worker as searching.
                self.sleep.start_searching();
            }
        }
        let workers: Vec<_> = (0..n).map(|i| self.worker(i, parked)).collect();
        let threads = workers.iter().map(|w| w.thread().clone()).collect();
        assert!(self.threads.set(threads).is_ok());
        workers
    }

    /// At the end: nobody left asleep or counted as searching.
    fn check_end(&self) {
        assert_eq!(self.queued.load(SeqCst), 0);
        assert_eq!(self.sleep.searching(), 0, "a search count leaked");
        assert_eq!(self.sleep.claim_one(), Claim::Nobody, "a bit left set");
    }
}

/// Model (a): two parked workers, one spawner pushing two jobs back to
/// back. The second push may see the worker the first one woke searching
/// and wake nobody; that worker takes the first job and must pass the
/// search on (rule 2), since the jobs block until both are taken: a worker
/// that took one cannot take the other.
fn burst(pass_on: PassOn) {
    let world = World::new(2, 2, 2, pass_on);
    let workers = world.start(2, true);
    world.spawn_one();
    world.spawn_one();
    let took: Vec<usize> = workers.into_iter().map(|w| w.join().unwrap()).collect();
    assert_eq!(took, [1, 1], "each worker took exactly one job");
    world.check_end();
}

#[test]
fn a_burst_wakes_one_worker_per_job() {
    model("sleep (a): 2 parked workers vs a burst of 2 jobs", || {
        burst(PassOn::Rule2)
    });
}

/// Model (a) without rule 2: loom finds the second job left queued while
/// the second worker sleeps (a deadlock).
#[test]
#[should_panic(expected = "deadlock")]
fn without_the_pass_on_a_burst_loses_a_wake_up() {
    model("sleep (a) without rule 2: expected to deadlock", || {
        burst(PassOn::Without)
    });
}

/// Model (b): the classic Dekker case. A worker that starts searching,
/// finds nothing and parks, against a spawner that pushes one job: either
/// the worker's last look sees the job or the spawner sees its bit.
#[test]
fn push_while_the_last_worker_parks() {
    model("sleep (b): 1 worker parks vs 1 spawner pushes", || {
        let world = World::new(1, 1, 0, PassOn::Rule2);
        let workers = world.start(1, false);
        world.spawn_one();
        for w in workers {
            assert_eq!(w.join().unwrap(), 1);
        }
        world.check_end();
    });
}

/// Model (b) with two of each: two searching workers park while two
/// spawners push.
#[test]
fn two_workers_park_while_two_spawners_push() {
    model("sleep (b2): 2 workers park vs 2 spawners push", || {
        let world = World::new(2, 2, 0, PassOn::Rule2);
        let workers = world.start(2, false);
        let spawner = {
            let world = Arc::clone(&world);
            thread::spawn(move || world.spawn_one())
        };
        world.spawn_one();
        spawner.join().unwrap();
        let took: usize = workers.into_iter().map(|w| w.join().unwrap()).sum();
        assert_eq!(took, 2, "each job taken exactly once");
        world.check_end();
    });
}

/// Model (c): the stand-in path. A parked worker is unparked directly
/// (by a halt order or a joined job, rule 4) while two spawners push: a
/// spawner may become the stand-in searcher, find no bit to claim (the
/// worker withdrew it) and stop searching in the stand-in's place, looking
/// again (`Claim::StandInLeft`); the other spawner, which saw the
/// stand-in searching, woke nobody. Some interleaving must take that path.
#[test]
fn a_stand_in_that_finds_nobody_passes_the_search_on() {
    let stand_ins = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = stand_ins.clone();
    model(
        "sleep (c): stand-in left (direct unpark vs 2 spawners)",
        move || {
            let world = World::counting(1, 2, 0, PassOn::Rule2, seen.clone());
            let workers = world.start(1, true);
            let spawner = {
                let world = Arc::clone(&world);
                thread::spawn(move || world.spawn_one())
            };
            // The direct unpark (rule 4), then this thread's own spawn.
            world.unpark(0);
            world.spawn_one();
            spawner.join().unwrap();
            for w in workers {
                assert_eq!(w.join().unwrap(), 2);
            }
            world.check_end();
        },
    );
    assert!(
        stand_ins.load(SeqCst) > 0,
        "no interleaving took the StandInLeft path"
    );
}
