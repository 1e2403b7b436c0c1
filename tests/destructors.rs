//! Destructors and leaks: every value a job captured, and every result it
//! produced, is dropped exactly once, whatever happened to the job (ran,
//! cancelled while queued, panicked, interrupted while running, halted,
//! shut down, refused) and to its handle (joined, detached before or after
//! completion). Counts are per value (`Probe`), so a leak and a double drop
//! both fail. Small counts under Miri, which runs this file.

mod common;
#[path = "common/ledger.rs"]
mod ledger;

use common::{eventually, within, Gate, LIMIT};
use ledger::{Ledger, Probe};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;
use workyard::{CancelReason, Dispatcher, JobError, JobStatus};

/// Jobs per case.
const N: usize = if cfg!(miri) { 4 } else { 200 };

fn pool(workers: usize) -> Dispatcher {
    Dispatcher::builder().workers(workers).build().unwrap()
}

/// Spins (yielding) until the job is asked to stop.
fn until_cancelled() {
    while !workyard::is_cancelled() {
        std::thread::yield_now();
    }
}

#[test]
fn captured_values_of_jobs_that_ran() {
    within(LIMIT, || {
        let pool = pool(2);
        let captured = Ledger::new(N);
        let handles: Vec<_> = (0..N)
            .map(|i| {
                let probe = captured.probe(i);
                pool.spawn(move || probe.id * 2).unwrap()
            })
            .collect();
        // Half joined, half detached.
        for (i, h) in handles.into_iter().enumerate() {
            if i % 2 == 0 {
                assert_eq!(h.join().unwrap(), i * 2);
            }
        }
        pool.wait_idle();
        captured.assert_all_dropped_once(0..N, "ran");
        assert_eq!(pool.stats().succeeded, N as u64);
    });
}

#[test]
fn captured_values_of_jobs_cancelled_while_queued() {
    within(LIMIT, || {
        let pool = pool(2);
        let captured = Ledger::new(N);
        pool.pause();
        let handles: Vec<_> = (0..N)
            .map(|i| {
                let probe = captured.probe(i);
                pool.spawn(move || drop(probe)).unwrap()
            })
            .collect();
        for (i, h) in handles.iter().enumerate() {
            assert_eq!(captured.drops(i), 0);
            // By handle and by id, alternately.
            let cancelled = if i % 2 == 0 {
                h.cancel()
            } else {
                pool.cancel(h.id())
            };
            assert!(cancelled);
            assert_eq!(captured.drops(i), 1, "dropped by the canceller, at once");
        }
        pool.resume();
        pool.wait_idle();
        for h in handles {
            assert!(matches!(
                h.join(),
                Err(JobError::Cancelled(CancelReason::Caller))
            ));
        }
        captured.assert_all_dropped_once(0..N, "cancelled while queued");
        let stats = pool.stats();
        assert_eq!((stats.cancelled, stats.succeeded), (N as u64, 0));
    });
}

#[test]
fn values_and_results_of_jobs_without_a_handle() {
    within(LIMIT, || {
        let pool = pool(2);
        let captured = Ledger::new(2 * N);
        let results = Ledger::new(N);
        // Half run (their results dropped by the worker, nobody holding a
        // handle), half are cancelled by id while the pool is paused.
        for i in 0..N {
            let (probe, result) = (captured.probe(i), results.probe(i));
            pool.spawn_detached(move || {
                drop(probe);
                result
            })
            .unwrap();
        }
        pool.wait_idle();
        captured.assert_all_dropped_once(0..N, "ran without a handle");
        results.assert_all_dropped_once(0..N, "results nobody can take");
        pool.pause();
        let ids: Vec<_> = (N..2 * N)
            .map(|i| {
                let probe = captured.probe(i);
                pool.spawn_detached(move || drop(probe)).unwrap()
            })
            .collect();
        for (i, id) in (N..).zip(ids) {
            assert!(pool.cancel(id));
            assert_eq!(captured.drops(i), 1, "dropped by the canceller, at once");
        }
        pool.resume();
        pool.wait_idle();
        captured.assert_all_dropped_once(N..2 * N, "cancelled while queued");
        let stats = pool.stats();
        assert_eq!((stats.succeeded, stats.cancelled), (N as u64, N as u64));
    });
}

#[test]
fn captured_values_of_jobs_that_panicked() {
    within(LIMIT, || {
        let pool = pool(2);
        let captured = Ledger::new(N);
        let handles: Vec<_> = (0..N)
            .map(|i| {
                let probe = captured.probe(i);
                pool.spawn(move || -> usize {
                    let _held = probe;
                    std::panic::resume_unwind(Box::new("planned"))
                })
                .unwrap()
            })
            .collect();
        for h in handles {
            assert!(h.join().unwrap_err().is_panic());
        }
        pool.wait_idle();
        captured.assert_all_dropped_once(0..N, "panicked");
        assert_eq!(pool.stats().panicked, N as u64);
    });
}

#[test]
fn captured_values_and_results_of_jobs_interrupted_while_running() {
    within(LIMIT, || {
        let pool = pool(2);
        let captured = Ledger::new(2);
        let results = Ledger::new(2);
        let handles: Vec<_> = (0..2)
            .map(|i| {
                let probe = captured.probe(i);
                let results = results.clone();
                pool.spawn(move || {
                    let _held = probe;
                    until_cancelled();
                    results.probe(i) // returned, but the job ends Cancelled
                })
                .unwrap()
            })
            .collect();
        for h in &handles {
            eventually("both run", || h.status() == JobStatus::Running);
        }
        for h in &handles {
            assert!(h.cancel());
        }
        for h in handles {
            assert!(h.join().unwrap_err().is_cancelled());
        }
        pool.wait_idle();
        captured.assert_all_dropped_once(0..2, "interrupted: captured");
        results.assert_all_dropped_once(0..2, "interrupted: results");
    });
}

#[test]
fn a_halt_drops_queued_and_running_jobs_values_once() {
    within(LIMIT, || {
        let pool = pool(1);
        let captured = Ledger::new(N + 1);
        let results = Ledger::new(N + 1);
        let ran = Arc::new(AtomicUsize::new(0));
        let running = {
            let (probe, results) = (captured.probe(0), results.clone());
            pool.spawn(move || {
                let _held = probe;
                until_cancelled();
                results.probe(0)
            })
            .unwrap()
        };
        eventually("first job runs", || running.status() == JobStatus::Running);
        let queued: Vec<_> = (1..=N)
            .map(|i| {
                let (probe, results, ran) = (captured.probe(i), results.clone(), ran.clone());
                pool.spawn(move || {
                    let _held = probe;
                    ran.fetch_add(1, SeqCst);
                    results.probe(i)
                })
                .unwrap()
            })
            .collect();
        let report = pool.halt();
        assert_eq!(report.interrupted, [running.id()]);
        assert_eq!(report.never_started.len(), N);
        assert_eq!(ran.load(SeqCst), 0, "queued jobs never ran");
        // Handles still alive: nothing to take, nothing kept.
        for h in queued.into_iter().chain([running]) {
            assert!(matches!(
                h.join(),
                Err(JobError::Cancelled(CancelReason::Halt))
            ));
        }
        captured.assert_all_dropped_once(0..=N, "halt: captured");
        assert_eq!(results.drops(0), 1, "the interrupted job's result");
        assert_eq!(results.live(), 0);
        assert_eq!(results.dropped(), 1, "queued jobs produced no result");
    });
}

#[test]
fn a_graceful_shutdown_runs_and_drops_everything_once() {
    within(LIMIT, || {
        let pool = pool(2);
        let captured = Ledger::new(N);
        let results = Ledger::new(N);
        let gate = Gate::new();
        let handles: Vec<_> = (0..N)
            .map(|i| {
                let (probe, results, gate) = (captured.probe(i), results.clone(), gate.clone());
                pool.spawn(move || {
                    let _held = probe;
                    gate.wait();
                    results.probe(i)
                })
                .unwrap()
            })
            .collect();
        // Half detached before completion, half kept past the pool's end.
        let kept: Vec<_> = handles
            .into_iter()
            .enumerate()
            .filter_map(|(i, h)| (i % 2 == 0).then_some(h))
            .collect();
        let closer = {
            let pool = pool.clone();
            std::thread::spawn(move || pool.shutdown())
        };
        eventually("shutdown started", || pool.is_shutdown());
        drop(pool);
        gate.open();
        closer.join().unwrap();
        captured.assert_all_dropped_once(0..N, "shutdown: captured");
        for id in (1..N).step_by(2) {
            assert_eq!(
                results.drops(id),
                1,
                "detached result {id} dropped by the worker"
            );
        }
        for h in kept {
            let id = h.join().unwrap().id;
            assert_eq!(
                results.drops(id),
                1,
                "joined result {id} dropped by the joiner"
            );
        }
        results.assert_all_dropped_once(0..N, "shutdown: results");
    });
}

#[test]
fn a_timed_out_shutdown_drops_everything_once() {
    within(LIMIT, || {
        let pool = pool(1);
        let captured = Ledger::new(N + 1);
        let blocker = {
            let probe = captured.probe(0);
            pool.spawn(move || {
                let _held = probe;
                until_cancelled();
            })
            .unwrap()
        };
        eventually("blocker runs", || blocker.status() == JobStatus::Running);
        for i in 1..=N {
            let probe = captured.probe(i);
            drop(pool.spawn(move || drop(probe)).unwrap());
        }
        let report = pool.shutdown_timeout(Duration::from_millis(1)).unwrap_err();
        assert_eq!(report.never_started.len(), N);
        // A timed-out shutdown does not wait for the running jobs it asked
        // to stop (beyond a short grace); the workers drop the cancelled
        // closures as they discard them, and a plain shutdown waits for that.
        pool.shutdown();
        captured.assert_all_dropped_once(0..=N, "shutdown_timeout");
    });
}

#[test]
fn results_are_dropped_once_whether_joined_or_detached() {
    within(LIMIT, || {
        let pool = pool(2);
        let results = Ledger::new(3 * N);
        let make = |i: usize| {
            let results = results.clone();
            move || results.probe(i)
        };
        // Joined: the joiner owns the value.
        for i in 0..N {
            let value = pool.spawn(make(i)).unwrap().join().unwrap();
            assert_eq!((value.id, results.drops(i)), (i, 0));
            drop(value);
            assert_eq!(results.drops(i), 1);
        }
        // Detached before completion: the worker drops it when produced.
        pool.pause();
        for i in N..2 * N {
            drop(pool.spawn(make(i)).unwrap());
        }
        pool.resume();
        pool.wait_idle();
        for i in N..2 * N {
            assert_eq!(results.drops(i), 1, "detached before completion");
        }
        // Detached after completion: the handle's drop drops it.
        for i in 2 * N..3 * N {
            let h = pool.spawn(make(i)).unwrap();
            eventually("finished", || h.is_finished());
            assert_eq!(results.drops(i), 0, "kept for the handle");
            drop(h);
            assert_eq!(results.drops(i), 1, "dropped with the handle");
        }
        // And a join that timed out first, then dropped unjoined.
        let gate = Gate::new();
        let g = gate.clone();
        let late = Ledger::new(1);
        let l = late.clone();
        let h = pool
            .spawn(move || {
                g.wait();
                l.probe(0)
            })
            .unwrap();
        let h = h.join_timeout(Duration::from_millis(1)).unwrap_err();
        gate.open();
        eventually("finished", || h.is_finished());
        drop(h);
        late.assert_all_dropped_once(0..1, "join_timeout then drop");
        pool.wait_idle();
        results.assert_all_dropped_once(0..3 * N, "results");
    });
}

#[test]
fn a_handle_outliving_its_dispatcher_still_owns_its_result() {
    within(LIMIT, || {
        let results = Ledger::new(2);
        let (joined, dropped) = {
            let pool = pool(1);
            let (a, b) = (results.clone(), results.clone());
            let joined = pool.spawn(move || a.probe(0)).unwrap();
            let dropped = pool.spawn(move || b.probe(1)).unwrap();
            (joined, dropped)
            // the pool shuts down here, after both ran
        };
        assert!(joined.is_finished() && dropped.is_finished());
        assert_eq!(results.dropped(), 0);
        drop(dropped);
        assert_eq!(joined.join().unwrap().id, 0);
        results.assert_all_dropped_once(0..2, "handles outliving the pool");
    });
}

#[test]
fn refused_jobs_come_back_with_their_values() {
    within(LIMIT, || {
        let captured = Ledger::new(2);
        let bounded = Dispatcher::builder()
            .workers(1)
            .queue_capacity(1)
            .build()
            .unwrap();
        bounded.pause();
        let queued = bounded.try_spawn(|| ()).unwrap();
        let probe = captured.probe(0);
        let full = bounded.try_spawn(move || drop(probe)).unwrap_err();
        assert!(full.is_full());
        assert_eq!(
            captured.drops(0),
            0,
            "the refused job is handed back intact"
        );
        drop(full);
        assert_eq!(captured.drops(0), 1);
        bounded.resume();
        queued.join().unwrap();

        bounded.shutdown();
        let probe = captured.probe(1);
        let refused = bounded.spawn(move || drop(probe)).unwrap_err();
        assert_eq!(captured.drops(1), 0);
        (refused.into_inner())(); // runs here, drops the probe
        captured.assert_all_dropped_once(0..2, "refused");
    });
}

/// A value whose destructor panics.
struct PanicsOnDrop(Probe);

impl Drop for PanicsOnDrop {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            panic!("destructor of captured value {} panics", self.0.id);
        }
    }
}

#[test]
fn panicking_destructors_are_contained_and_counted_once() {
    within(LIMIT, || {
        let pool = pool(1);
        let captured = Ledger::new(3);
        // Dropped by the worker when the job ends: the job ends Panicked.
        let ran = {
            let value = PanicsOnDrop(captured.probe(0));
            pool.spawn(move || drop(value)).unwrap()
        };
        assert!(ran.join().unwrap_err().is_panic());
        // Dropped by the canceller while queued: swallowed, not re-raised.
        pool.pause();
        let cancelled = {
            let value = PanicsOnDrop(captured.probe(1));
            pool.spawn(move || drop(value)).unwrap()
        };
        assert!(cancelled.cancel(), "cancel does not unwind");
        pool.resume();
        // A result whose destructor panics, detached: the worker survives.
        let results = Ledger::new(1);
        let r = results.clone();
        drop(pool.spawn(move || PanicsOnDrop(r.probe(0))).unwrap());
        pool.wait_idle();
        let last = {
            let value = captured.probe(2);
            pool.spawn(move || value.id).unwrap()
        };
        assert_eq!(last.join().unwrap(), 2, "the worker is still alive");
        captured.assert_all_dropped_once(0..3, "panicking destructors");
        results.assert_all_dropped_once(0..1, "panicking result destructor");
        assert_eq!(pool.stats().workers, 1);
    });
}

/// A result that spawns into its scope from its destructor.
struct SpawnsOnDrop<'scope, 'env> {
    scope: &'scope workyard::Scope<'scope, 'env>,
    borrowed: &'env [u64],
    /// What the spawn in `drop` returned: `Some(true)` if it was accepted.
    accepted: &'env std::sync::Mutex<Option<bool>>,
    /// Runs of the job spawned in `drop`, or of its closure given back.
    late_runs: &'env AtomicUsize,
}

impl Drop for SpawnsOnDrop<'_, '_> {
    fn drop(&mut self) {
        let (borrowed, late_runs) = (self.borrowed, self.late_runs);
        let late = move || {
            late_runs.fetch_add(1, SeqCst);
            borrowed.iter().sum::<u64>()
        };
        let spawned = self.scope.spawn(late);
        *self.accepted.lock().unwrap() = Some(spawned.is_ok());
        if let Err(refused) = spawned {
            assert_eq!((refused.into_inner())(), 6, "the closure comes back whole");
        }
    }
}

#[test]
fn a_result_dropped_as_its_scope_ends_cannot_spawn_into_it() {
    within(LIMIT, || {
        let pool = pool(1);
        let data = vec![1u64, 2, 3];
        let accepted = std::sync::Mutex::new(None);
        let late_runs = AtomicUsize::new(0);
        pool.scope(|s| {
            let (data, accepted, late_runs) = (&data, &accepted, &late_runs);
            let handle = s
                .spawn(move || SpawnsOnDrop {
                    scope: s,
                    borrowed: data,
                    accepted,
                    late_runs,
                })
                .unwrap();
            // Leaked: the scope itself drops the result as it ends, after
            // its count of unfinished jobs reached zero.
            std::mem::forget(handle);
        });
        // Refused, and its closure ran once, on the caller, inside the
        // scope. Accepted, it was queued after the scope's last wait and
        // ran (under Miri: a use after free of `data`) after `scope`
        // returned.
        assert_eq!(*accepted.lock().unwrap(), Some(false));
        assert_eq!(late_runs.load(SeqCst), 1);
        pool.wait_idle();
        assert_eq!(pool.stats().succeeded, 1, "only the scoped job ran");
    });
}
