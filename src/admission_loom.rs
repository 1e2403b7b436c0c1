//! Loom model (d): shutdown racing spawn on the admission word.
//!
//! Spawners run `Pool::admit` (and, when refused, its undo); a worker runs
//! the jobs it is handed, counts each in its own finished counter, and,
//! finding no job, runs `Pool::on_idle` and exits on `is_done`, as
//! `main_loop` does; the shutdown thread closes, then waits for
//! `pending() == 0` as `shutdown_pool` does. Waits are loom parks; the
//! wake-ups are the ones `Pool` sends: a push wakes the worker
//! (`wake_one`), `close` wakes it (`wake_all`), an idle worker that sees
//! nothing pending wakes the shutdown thread (`idle.notify_all`), and a
//! refusal does too (`unadmit`). A missing wake-up is a loom deadlock. Checked in every interleaving: a spawn is
//! either refused or its job has run by the time shutdown's wait returns;
//! nothing runs twice; the word ends closed and empty.

use super::Admission;
use crate::loom::{fence, model, AtomicUsize};
use loom::sync::Mutex;
use loom::thread::{self, Thread};
use std::sync::atomic::Ordering::{AcqRel, Acquire, Release, SeqCst};
use std::sync::Arc;

const WORKER: usize = 0;
const SHUTDOWN: usize = 1;

struct World {
    admission: Admission,
    /// The worker's finished count (`WorkerCounters::finished`).
    finished: AtomicUsize,
    /// Jobs pushed and not yet taken (the queues).
    queued: AtomicUsize,
    /// Jobs that ran.
    ran: AtomicUsize,
    /// The worker's and the shutdown thread's handles, registered by each
    /// before its first check (as a worker does in `Slot::thread`). A loom
    /// lock, so that loom sees the happens-before that std's lock gives
    /// `Slot::thread` (with an untracked lock, loom would let a thread that
    /// registered late read a stale word and park for good).
    threads: Mutex<[Option<Thread>; 2]>,
}

impl World {
    fn register(&self, who: usize) {
        self.threads.lock().unwrap()[who] = Some(thread::current());
    }

    fn unpark(&self, who: usize) {
        let thread = self.threads.lock().unwrap()[who].clone();
        if let Some(thread) = thread {
            thread.unpark();
        }
    }

    /// `Pool::pending`: the finished count first, then the admission word.
    fn pending(&self) -> usize {
        fence(SeqCst);
        let finished = self.finished.fetch_add(0, SeqCst);
        self.admission.pending(finished)
    }

    /// `Pool::signal_refusal`: a refusal may leave nothing pending.
    fn signal_refusal(&self) {
        self.unpark(SHUTDOWN);
        if self.admission.is_closed() {
            self.unpark(WORKER);
        }
    }

    /// `Dispatcher::submit`, from `admit` to `wake_one`: `true` if accepted.
    fn spawn(&self) -> bool {
        if self.admission.admit().is_none() {
            // `Admission::admit` took the refusal back; `Pool::admit` signals.
            self.signal_refusal();
            return false;
        }
        // ORDERING: Release, like the queues' push.
        self.queued.fetch_add(1, Release);
        self.unpark(WORKER);
        true
    }

    fn worker(self: &Arc<Self>) -> thread::JoinHandle<()> {
        let world = Arc::clone(self);
        thread::spawn(move || {
            world.register(WORKER);
            loop {
                // ORDERING: AcqRel: takes the job published by the push.
                let took = world
                    .queued
                    .fetch_update(AcqRel, Acquire, |q| q.checked_sub(1))
                    .is_ok();
                if took {
                    // ORDERING: AcqRel: the count is read after the joins
                    // and by shutdown, after `pending` reached 0.
                    world.ran.fetch_add(1, AcqRel);
                    // `WorkerCounters::count_finished`.
                    world.finished.fetch_add(1, SeqCst);
                    continue;
                }
                // `Pool::on_idle`: nothing pending wakes the waiter.
                if world.pending() == 0 {
                    world.unpark(SHUTDOWN);
                }
                // `Pool::is_done`: closed first, then pending, so a job
                // admitted before the close is counted (reading pending
                // first would miss one admitted in between).
                if world.admission.is_closed() && world.pending() == 0 {
                    return;
                }
                thread::park();
            }
        })
    }

    /// `shutdown_pool`: close, then wait until nothing is pending. Returns
    /// how many jobs had run when the wait ended.
    fn shutdown(self: &Arc<Self>) -> thread::JoinHandle<usize> {
        let world = Arc::clone(self);
        thread::spawn(move || {
            world.register(SHUTDOWN);
            world.admission.close();
            world.unpark(WORKER);
            while world.pending() != 0 {
                thread::park();
            }
            // ORDERING: Acquire: the worker counted the run before its
            // SeqCst finished-count store, which this thread has read.
            world.ran.load(Acquire)
        })
    }
}

fn world() -> Arc<World> {
    Arc::new(World {
        admission: Admission::new(),
        finished: AtomicUsize::new(0),
        queued: AtomicUsize::new(0),
        ran: AtomicUsize::new(0),
        threads: Mutex::new([None, None]),
    })
}

/// Shutdown and a worker race `spawners` spawns; returns nothing, asserts.
fn race(spawners: usize) {
    let world = world();
    let worker = world.worker();
    let shutdown = world.shutdown();
    let spawners: Vec<_> = (0..spawners)
        .map(|_| {
            let world = Arc::clone(&world);
            thread::spawn(move || world.spawn())
        })
        .collect();
    let accepted: usize = spawners
        .into_iter()
        .map(|s| usize::from(s.join().unwrap()))
        .sum();
    // Every accepted job had run when shutdown's wait returned.
    assert_eq!(shutdown.join().unwrap(), accepted);
    worker.join().unwrap();
    // ORDERING: Acquire; the worker was joined, which orders it anyway.
    assert_eq!(world.ran.load(Acquire), accepted, "no job ran twice");
    assert!(world.admission.is_closed());
    assert_eq!(world.pending(), 0);
}

#[test]
fn shutdown_races_one_spawn() {
    model("admission: shutdown vs spawn", || race(1));
}

#[test]
fn shutdown_races_two_spawns() {
    model("admission: shutdown vs 2 spawns", || race(2));
}
