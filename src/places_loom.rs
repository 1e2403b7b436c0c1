//! Loom model: a bounded queue's places when a cancel through the pool
//! races the worker that pops and claims the same job, through the real
//! `JobCell` status word and the real `Places`.
//!
//! The pool's cancel is `Pool::cancel_job`: `cancel_then` with
//! `BY_POOL` in its flags, giving the place back in the callback that
//! runs once QUEUED → CANCELLED is won. The worker is `WorkerCtx::execute`
//! with `Pool::release_place`: claim, then give the place back unless its
//! claim failed on a word that has `BY_POOL`, then run or discard.
//!
//! Checked in every interleaving: each job gives its place back exactly
//! once (counted per job, whoever gives it), the count is never given back
//! below zero and ends at zero, whichever of the worker and the canceller
//! wins; also with a second job cancelled through its handle (no
//! `BY_POOL`), whose place its pop gives back; and the place is back
//! before the cancelled closure drops.

use super::Places;
use crate::handle::JobHandle;
use crate::job::cell::{claim, JobCell, JobRef};
use crate::job::state::{Cancel, BY_HALT, BY_POOL, DEFERRED};
use crate::job::JobId;
use crate::loom::model;
use loom::sync::atomic::AtomicUsize;
use loom::thread;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::Arc;

/// The places, and how many times each job gave its place back.
struct World {
    places: Places,
    given: [AtomicUsize; 2],
}

impl World {
    fn new(jobs: usize) -> Arc<World> {
        let world = Arc::new(World {
            places: Places::new(Some(jobs)),
            given: [AtomicUsize::new(0), AtomicUsize::new(0)],
        });
        for _ in 0..jobs {
            assert!(world.places.reserve());
        }
        world
    }

    /// `Places::give_back` for job `k`, checking that the count does not
    /// go below zero.
    fn give_back(&self, k: usize) {
        assert!(reserved(&self.places) > 0, "a place given back twice");
        self.given[k].fetch_add(1, SeqCst);
        self.places.give_back();
    }

    /// `WorkerCtx::execute` and `Pool::release_place` for job `k`,
    /// popped: `true` if it claimed and ran it.
    fn pop(&self, k: usize, job: &JobRef) -> bool {
        let claimed = claim(job, 0, crate::time::now());
        if claimed || !job.header().state.load().has(BY_POOL) {
            self.give_back(k);
        }
        if claimed {
            job.run(0, &crate::job::raw::NoTally);
        } else {
            job.discard();
        }
        claimed
    }

    /// `Pool::cancel_job` of job `k` (bounded: with `BY_POOL`).
    fn cancel_by_pool(&self, k: usize, job: &JobRef, flags: usize) -> Cancel {
        job.cancel_then(flags | BY_POOL, true, &mut || self.give_back(k))
    }

    fn check_end(&self, jobs: usize) {
        for k in 0..jobs {
            assert_eq!(self.given[k].load(SeqCst), 1, "job {k}: one give-back");
        }
        assert_eq!(reserved(&self.places), 0);
    }
}

fn job(id: u64) -> JobRef {
    let (typed, [job]) = JobCell::spawn(JobId(id), move || id, 0);
    drop(JobHandle::from_typed(typed));
    job
}

fn reserved(places: &Places) -> usize {
    places.counts.reserved.load(SeqCst)
}

fn pool_cancel_races_pop(name: &str, flags: usize) {
    model(name, move || {
        let world = World::new(1);
        let j = job(1);
        let worker = {
            let (world, j) = (world.clone(), j.clone());
            thread::spawn(move || world.pop(0, &j))
        };
        let cancel = world.cancel_by_pool(0, &j, flags);
        let ran = worker.join().unwrap();
        assert_eq!(ran, !matches!(cancel, Cancel::WasQueued(_)));
        world.check_end(1);
    });
}

#[test]
fn cancel_by_the_pool_races_the_workers_claim() {
    pool_cancel_races_pop("places: pool cancel vs pop and claim", 0);
}

#[test]
fn deferred_halt_cancel_races_the_workers_claim() {
    // The control thread's halt: the closure is left to the popper.
    pool_cancel_races_pop(
        "places: halt cancel (deferred) vs pop and claim",
        BY_HALT | DEFERRED,
    );
}

#[test]
fn pool_cancel_of_one_job_handle_cancel_of_another() {
    model(
        "places: pool cancel of one job, handle cancel of another",
        || {
            let world = World::new(2);
            let (j, k) = (job(1), job(2));
            // The worker pops `k` first, then `j`.
            let worker = {
                let (world, j, k) = (world.clone(), j.clone(), k.clone());
                thread::spawn(move || (world.pop(1, &k), world.pop(0, &j)))
            };
            // `JobHandle::cancel`: no BY_POOL, the pop gives it back.
            let by_handle = {
                let k = k.clone();
                thread::spawn(move || k.cancel(0, true))
            };
            let _ = world.cancel_by_pool(0, &j, 0);
            worker.join().unwrap();
            let _ = by_handle.join().unwrap();
            world.check_end(2);
        },
    );
}

/// The place is back before the cancelled closure is dropped (whose
/// destructor may spawn into the queue, or wait for a spawner that does).
#[test]
fn the_place_is_back_before_the_closure_drops() {
    struct Probe(Arc<World>, Arc<AtomicUsize>);
    impl Drop for Probe {
        fn drop(&mut self) {
            self.1.store(reserved(&self.0.places) + 1, SeqCst);
        }
    }
    model("places: give-back before the destructor", || {
        let world = World::new(1);
        let seen = Arc::new(AtomicUsize::new(0));
        let probe = Probe(world.clone(), seen.clone());
        let (typed, [j]) = JobCell::spawn(JobId(1), move || drop(probe), 0);
        drop(JobHandle::from_typed(typed));
        let worker = {
            let (world, j) = (world.clone(), j.clone());
            thread::spawn(move || world.pop(0, &j))
        };
        let cancel = world.cancel_by_pool(0, &j, 0);
        worker.join().unwrap();
        if matches!(cancel, Cancel::WasQueued(_)) {
            assert_eq!(
                seen.load(SeqCst),
                1,
                "reserved was 0 when the closure dropped"
            );
        }
        world.check_end(1);
    });
}
