//! Loom model (b): the result hand-off from worker to joiner, through the
//! real `JobCell` and `JobHandle` (the joiner parks with loom's `park`, so
//! a lost unpark is a loom deadlock, and the result slot and the waiter slot
//! are loom `UnsafeCell`s, so a racy access is a loom failure).
//!
//! Checked: the joiner always wakes and gets the value; a handle dropped at
//! any point relative to the finish drops the output exactly once; a joiner
//! that replaces an earlier registration (join_timeout, then join on another
//! thread) is still woken; a job spawned without a handle, cancelled by the
//! pool (deferred, as the control thread does) while a worker claims it,
//! drops its closure and output exactly once, whichever reference goes last.
//!
//! Joiners are spawned threads that do nothing but join (see the note in
//! `state_loom.rs` on loom and stray unparks).

use super::{claim, state, JobCell, JobRef};
use crate::handle::JobHandle;
use crate::job::JobId;
use crate::loom::{model, AtomicUsize};
use loom::thread;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::Arc;
use std::time::Duration;

struct Tracked(Arc<AtomicUsize>);

impl Drop for Tracked {
    fn drop(&mut self) {
        self.0.fetch_add(1, SeqCst);
    }
}

/// A queued job returning `(7, Tracked)`, its handle, and its output's drop counter.
#[allow(clippy::type_complexity)]
fn spawn() -> (JobRef, JobHandle<(u32, Tracked)>, Arc<AtomicUsize>) {
    let drops = Arc::new(AtomicUsize::new(0));
    let out = drops.clone();
    let (typed, [job]) = JobCell::spawn(JobId(1), move || (7u32, Tracked(out)), 0);
    (job, JobHandle::from_typed(typed), drops)
}

fn worker(job: JobRef) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        assert!(claim(&job, 0, crate::time::now()));
        job.run(0, &crate::job::raw::NoTally);
    })
}

#[test]
fn joiner_parks_and_is_woken() {
    model("hand-off: join (WAITER, park) vs finish", || {
        let (job, handle, drops) = spawn();
        let w = worker(job);
        let joiner = {
            let drops = drops.clone();
            thread::spawn(move || {
                let (v, out) = handle.join().expect("succeeds");
                assert_eq!(v, 7);
                assert_eq!(drops.load(SeqCst), 0, "the joiner owns the output");
                drop(out);
            })
        };
        w.join().unwrap();
        joiner.join().unwrap();
        assert_eq!(drops.load(SeqCst), 1);
    });
}

#[test]
fn handle_dropped_while_finishing() {
    model("hand-off: handle dropped vs finish", || {
        let (job, handle, drops) = spawn();
        let w = worker(job.clone());
        drop(handle);
        w.join().unwrap();
        let word = job.header().state.load();
        assert!(word.is_terminal());
        assert!(
            !word.has(state::OUTPUT),
            "OUTPUT left set with no value to take"
        );
        assert_eq!(drops.load(SeqCst), 1, "output dropped exactly once");
    });
}

#[test]
fn joiner_moves_to_another_thread() {
    model(
        "hand-off: join_timeout then join elsewhere vs finish",
        || {
            let (job, handle, drops) = spawn();
            let w = worker(job);
            // One thread registers itself as the waiter, then (time is up)
            // gives the handle back; a second one replaces the registration and
            // joins. The first may still be unparked after it left.
            let first = thread::spawn(move || match handle.join_timeout(Duration::ZERO) {
                Ok(result) => Ok(result),
                Err(handle) => Err(thread::spawn(move || handle.join())),
            });
            w.join().unwrap();
            let joined = match first.join().unwrap() {
                Ok(result) => result,
                Err(second) => second.join().unwrap(),
            };
            let (v, out) = joined.expect("succeeds");
            assert_eq!(v, 7);
            drop(out);
            assert_eq!(drops.load(SeqCst), 1);
        },
    );
}

#[test]
fn job_without_a_handle_cancelled_by_the_pool_while_it_is_claimed() {
    model(
        "detached: deferred pool cancel vs claim, worker's drop vs index drop",
        || {
            let closures = Arc::new(AtomicUsize::new(0));
            let outputs = Arc::new(AtomicUsize::new(0));
            let ran = Arc::new(AtomicUsize::new(0));
            let captured = Tracked(closures.clone());
            let (out, r) = (outputs.clone(), ran.clone());
            let [queued, indexed] = JobCell::spawn_detached(JobId(1), move || {
                drop(captured);
                r.fetch_add(1, SeqCst);
                Tracked(out)
            });
            // As `worker::execute`: run it if the claim wins, else drop the
            // closure that a deferred cancel left.
            let w = thread::spawn(move || {
                if claim(&queued, 0, crate::time::now()) {
                    queued.run(0, &crate::job::raw::NoTally);
                } else {
                    queued.discard();
                }
            });
            // As the control thread's cancel by id (halt, deadline): it
            // leaves the closure to the worker; then the index lets go,
            // racing the worker's own last reference.
            let c = thread::spawn(move || {
                let _ = indexed.cancel(state::BY_POOL | state::DEFERRED, true);
                let word = indexed.header().state.load();
                assert!(!word.has(state::HANDLE) && !word.has(state::OUTPUT));
                drop(indexed);
            });
            w.join().unwrap();
            c.join().unwrap();
            // Both references are gone: the record is freed, and with it
            // nothing was left to drop.
            assert_eq!(closures.load(SeqCst), 1, "closure dropped exactly once");
            assert_eq!(
                outputs.load(SeqCst),
                ran.load(SeqCst),
                "an output, if any, dropped exactly once, at the end"
            );
        },
    );
}
