//! Loom model (c): park/wake in [`Sleep`] loses no wake-up.
//!
//! Each modelled worker runs the loop of `WorkerCtx::idle`/`sleep_once`
//! (look for work; `prepare`; look again; `park`; `cancel`), a spawner runs
//! the tail of `Dispatcher::submit` (push, then `claim_one` and unpark the
//! claimed slot). A counter of queued jobs stands in for the queues. If a
//! wake-up were lost, a job would stay queued while every worker parks for
//! good, which loom reports as a deadlock.

use super::Sleep;
use crate::loom::{model, AtomicBool, AtomicUsize};
use loom::thread::{self, Thread};
use std::sync::atomic::Ordering::{AcqRel, Acquire, Release};
use std::sync::{Arc, Mutex};

struct World {
    sleep: Sleep,
    /// Jobs pushed and not yet taken (the queues).
    queued: AtomicUsize,
    /// Jobs taken by workers.
    taken: AtomicUsize,
    /// Jobs that will be pushed in all.
    total: usize,
    /// Set by whoever takes the last job: the pool is done (closed, empty).
    done: AtomicBool,
    /// Each slot's thread, for unparking (`Slot::thread`).
    threads: Mutex<Vec<Option<Thread>>>,
}

impl World {
    fn new(workers: usize, total: usize) -> Arc<World> {
        Arc::new(World {
            sleep: Sleep::new(workers),
            queued: AtomicUsize::new(0),
            taken: AtomicUsize::new(0),
            total,
            done: AtomicBool::new(false),
            threads: Mutex::new(vec![None; workers]),
        })
    }

    fn unpark(&self, slot: usize) {
        let thread = self.threads.lock().unwrap()[slot].clone();
        thread
            .expect("a claimed worker registered its thread")
            .unpark();
    }

    /// `Dispatcher::submit`'s push and `Pool::wake_one`.
    fn spawn_one(&self) {
        // ORDERING: Release, like the queues' push; the SeqCst fence in
        // `claim_one` is what orders it against the sleepers' count.
        self.queued.fetch_add(1, Release);
        if let Some(slot) = self.sleep.claim_one() {
            self.unpark(slot);
        }
    }

    /// Pops a job if one is queued.
    fn try_take(&self) -> bool {
        // ORDERING: AcqRel: takes the job published by the push.
        let took = self
            .queued
            .fetch_update(AcqRel, Acquire, |q| q.checked_sub(1))
            .is_ok();
        // ORDERING: AcqRel on `taken`: whoever takes the last job has seen
        // every earlier take.
        if took && self.taken.fetch_add(1, AcqRel) + 1 == self.total {
            // `Pool::finish_one` for the last job of a closed pool.
            // ORDERING: Release pairs with the Acquire in `is_done`.
            self.done.store(true, Release);
            self.sleep.claim_all(|slot| self.unpark(slot));
        }
        took
    }

    fn has_work(&self) -> bool {
        // ORDERING: Acquire; ordered against `prepare` by its SeqCst fence.
        self.queued.load(Acquire) > 0
    }

    fn is_done(&self) -> bool {
        // ORDERING: Acquire pairs with the Release store in `try_take`.
        self.done.load(Acquire)
    }

    /// `main_loop` with `idle`'s `sleep_once` (the search rounds are left out: they
    /// only re-check earlier).
    fn worker(self: &Arc<World>, i: usize) -> thread::JoinHandle<usize> {
        let world = Arc::clone(self);
        thread::spawn(move || {
            world.threads.lock().unwrap()[i] = Some(thread::current());
            let mut mine = 0;
            loop {
                if world.try_take() {
                    mine += 1;
                    continue;
                }
                if world.is_done() {
                    return mine;
                }
                world.sleep.prepare(i);
                if world.has_work() || world.is_done() {
                    world.sleep.cancel(i);
                    continue;
                }
                thread::park();
                world.sleep.cancel(i);
            }
        })
    }
}

#[test]
fn push_while_the_last_worker_parks() {
    model("sleep: 1 worker parks vs 1 spawner pushes", || {
        let world = World::new(1, 1);
        let w = world.worker(0);
        world.spawn_one();
        assert_eq!(w.join().unwrap(), 1);
        assert_eq!(world.sleep.claim_one(), None, "no sleeper left claimed");
    });
}

#[test]
fn two_workers_two_spawners() {
    model("sleep: 2 workers park vs 2 spawners push", || {
        let world = World::new(2, 2);
        let workers = [world.worker(0), world.worker(1)];
        let spawner = {
            let world = Arc::clone(&world);
            thread::spawn(move || world.spawn_one())
        };
        world.spawn_one();
        spawner.join().unwrap();
        let ran: usize = workers.into_iter().map(|w| w.join().unwrap()).sum();
        assert_eq!(ran, 2, "each job taken exactly once");
    });
}
