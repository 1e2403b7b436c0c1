//! Loom model of a steal request served by a publication (`request.rs`),
//! with the real [`Request`] and the real `Sleep`, a flag standing in for
//! the owner's deque, and a cell for the published half's result.
//!
//! The thief is an idle worker: it raises the owner's request, then parks
//! as `WorkerCtx::park` does (`prepare`, a last look, `park`, `withdraw`,
//! back to searching) until it finds the half queued, runs it, and sets
//! its latch. The owner forks: its `join`s look at the request
//! (`join_in_worker`), and the one that takes it publishes the pending
//! half (`WorkerCtx::on_request`: push, then `Pool::wake_one`, rule 1 of
//! `sleep.rs`). Then the owner's first half waits for the second to have
//! run, so that only the thief can finish it: a publication whose wake-up
//! is lost leaves both threads parked, which loom reports as a deadlock.
//! (A relaxed request may also be seen too late; then the owner runs its
//! half itself, as a `join` does, and ends the pool.)

use super::Request;
use crate::loom::{fence, model, AtomicBool, UnsafeCell};
use crate::sleep::{Claim, Sleep};
use loom::thread::{self, Thread};
use std::sync::atomic::Ordering::{AcqRel, Acquire, Release, SeqCst};
use std::sync::{Arc, OnceLock};

/// The thief's slot in the sleep mask.
const THIEF: usize = 0;

struct World {
    sleep: Sleep,
    /// The owner's request, raised by the thief.
    request: Request,
    /// The owner's deque: holds the published half.
    queued: AtomicBool,
    /// The half's result, written by whoever runs it.
    result: UnsafeCell<Option<u32>>,
    /// The half's latch.
    done: AtomicBool,
    /// The owner is done and ran or awaited its half: the pool's end.
    finished: AtomicBool,
    owner: OnceLock<Thread>,
    thief: Thread,
}

// SAFETY: `result` is written once by the thief before its Release store
// of `done`, and read by the owner after its Acquire load saw it.
unsafe impl Sync for World {}

impl World {
    /// The deque's pop or steal.
    fn take_queued(&self) -> bool {
        // ORDERING: AcqRel, as a deque's pop: sees the frame the push
        // published.
        self.queued.swap(false, AcqRel)
    }

    /// `Pool::wake_one`, with `sleep_loom.rs`'s stand-in handling.
    fn wake_one(&self) {
        loop {
            match self.sleep.claim_one() {
                Claim::Nobody => return,
                Claim::Woke(_) => {
                    self.thief.unpark();
                    return;
                }
                Claim::StandInLeft => {
                    if !self.sleep.stop_searching() {
                        return;
                    }
                    fence(SeqCst);
                    if !self.queued.load(SeqCst) {
                        return;
                    }
                    thread::yield_now();
                }
            }
        }
    }

    /// Runs the half: whoever took it from the deque, or its owner.
    fn run_half(&self) {
        // SAFETY: the runner is the only one (it took the half, or it is
        // the owner and never published it); the owner reads only after
        // its own run or after `done`.
        self.result.with_mut(|r| unsafe { *r = Some(7) });
        // ORDERING: Release publishes the result to the owner.
        self.done.store(true, Release);
    }

    /// The thief: raise, then park until the half shows (run it) or the
    /// pool is done (the owner ran it itself, never having seen the
    /// request in time, which only costs parallelism).
    fn thief(&self) {
        self.request.raise();
        loop {
            self.sleep.prepare(THIEF);
            let found = self.take_queued();
            if !found && !self.finished.load(SeqCst) {
                thread::park();
            }
            // Back searching (rule 4), then running a job or leaving.
            self.sleep.withdraw(THIEF);
            let _ = self.sleep.stop_searching();
            if found || self.take_queued() {
                self.run_half();
                self.owner.get().expect("owner started").unpark();
                return;
            }
            if self.finished.load(SeqCst) {
                return;
            }
        }
    }

    /// The owner: two `join`s look at the request; the one that takes it
    /// publishes, and then the owner waits on the latch for the thief to
    /// run the half, so that a lost wake-up deadlocks. If neither saw the
    /// request, the owner runs the half itself. Then the pool is done:
    /// every parked worker is woken (`Pool::on_idle`).
    fn owner(&self) -> u32 {
        let mut published = false;
        for _ in 0..2 {
            // Stands in for the time between two `join`s: hardware shows a
            // relaxed store eventually, loom only to a load after a fence
            // that follows the storer's (the thief's `prepare`).
            fence(SeqCst);
            if self.request.is_raised() && self.request.take() {
                // ORDERING: Release, as the deque's push (a swap: a
                // read-modify-write, as crossbeam's push is not, so that
                // loom orders it with the thief's take).
                let _ = self.queued.swap(true, Release);
                self.wake_one();
                published = true;
                break;
            }
        }
        if published {
            // ORDERING: Acquire pairs with the thief's Release.
            while !self.done.load(Acquire) {
                thread::park();
            }
        } else {
            self.run_half();
        }
        self.finished.store(true, SeqCst);
        self.sleep.claim_all(|_| self.thief.unpark());
        // SAFETY: the half ran: here, or on the thief before `done`.
        self.result.with(|r| unsafe { *r }).expect("the half ran")
    }
}

/// The owner's slot as the thief finds it: `solo` for a worker that was
/// the pool's only one until the thief started (`request::SOLO`, ended by
/// the thief's raise), else one that already took its first request.
fn thief_asks_owner_publishes(name: &'static str, solo: bool) {
    model(name, move || {
        let request = Request::default();
        if solo {
            request.reset(true);
        } else {
            assert!(request.take());
        }
        let world = Arc::new(World {
            sleep: Sleep::new(1),
            request,
            queued: AtomicBool::new(false),
            result: UnsafeCell::new(None),
            done: AtomicBool::new(false),
            finished: AtomicBool::new(false),
            owner: OnceLock::new(),
            thief: thread::current(),
        });
        let owner = {
            let world = Arc::clone(&world);
            thread::spawn(move || world.owner())
        };
        let _ = world.owner.set(owner.thread().clone());
        world.thief();
        assert_eq!(owner.join().unwrap(), 7);
        assert_eq!(world.sleep.searching(), 0);
    });
}

#[test]
fn a_published_half_wakes_the_parked_thief_that_asked() {
    thief_asks_owner_publishes(
        "request: a thief asks and parks vs the owner publishes",
        false,
    );
}

#[test]
fn a_solo_owner_publishes_once_a_new_peer_asks() {
    thief_asks_owner_publishes(
        "request: a new peer asks a solo owner, which publishes",
        true,
    );
}
