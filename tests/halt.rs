//! `halt` and `shutdown_timeout`: queued jobs never run and are reported,
//! running ones are asked to stop, nothing vanishes.

mod common;
use common::{eventually, within, LIMIT};
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use workyard::{CancelReason, Dispatcher, JobError, JobStatus};

fn spin_until_cancelled() -> u32 {
    while !workyard::is_cancelled() {
        std::thread::yield_now();
    }
    1
}

#[test]
fn halt_cancels_queued_and_interrupts_running() {
    within(LIMIT, || {
        let pool = Dispatcher::builder().workers(2).build().unwrap();
        let running: Vec<_> = (0..2)
            .map(|_| pool.spawn(spin_until_cancelled).unwrap())
            .collect();
        for h in &running {
            eventually("both run", || h.status() == JobStatus::Running);
        }
        let queued: Vec<_> = (0..5)
            .map(|_| pool.spawn(|| panic!("must not run")).unwrap())
            .collect();
        let report = pool.halt();
        let mut expected_queued: Vec<_> = queued.iter().map(|h| h.id()).collect();
        expected_queued.sort();
        assert_eq!(report.never_started, expected_queued);
        assert_eq!(
            report.interrupted,
            running.iter().map(|h| h.id()).collect::<Vec<_>>()
        );
        for h in queued.into_iter().chain(running) {
            assert!(matches!(
                h.join(),
                Err(JobError::Cancelled(CancelReason::Halt))
            ));
        }
        let stats = pool.stats();
        assert_eq!((stats.cancelled, stats.panicked, stats.workers), (7, 0, 0));
        assert!(pool.spawn(|| ()).is_err());
    });
}

#[test]
fn halt_during_a_spawn_storm_loses_nothing() {
    within(LIMIT, || {
        let pool = Dispatcher::builder().workers(2).build().unwrap();
        let ran = Arc::new(Mutex::new(Vec::new()));
        let accepted = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let spawners: Vec<_> = (0..3)
            .map(|_| {
                let (pool, ran, accepted, stop) =
                    (pool.clone(), ran.clone(), accepted.clone(), stop.clone());
                std::thread::spawn(move || {
                    let mut refused = 0;
                    while !stop.load(Ordering::Relaxed) {
                        let r = ran.clone();
                        match pool
                            .spawn(move || r.lock().unwrap().push(workyard::current_job().unwrap()))
                        {
                            Ok(h) => accepted.lock().unwrap().push(h.id()),
                            Err(e) => {
                                // The refused job comes back and can still be run here.
                                drop(e.into_inner());
                                refused += 1;
                                if refused > 10 {
                                    break;
                                }
                            }
                        }
                    }
                })
            })
            .collect();
        eventually("storm under way", || accepted.lock().unwrap().len() > 5_000);
        let report = pool.halt();
        stop.store(true, Ordering::Relaxed);
        for s in spawners {
            s.join().unwrap();
        }
        let ran = ran.lock().unwrap();
        let ran_set: HashSet<_> = ran.iter().copied().collect();
        assert_eq!(ran_set.len(), ran.len(), "no job ran twice");
        let never: HashSet<_> = report.never_started.iter().copied().collect();
        assert!(ran_set.is_disjoint(&never), "a reported job ran");
        let accepted: HashSet<_> = accepted.lock().unwrap().iter().copied().collect();
        let accounted: HashSet<_> = ran_set.union(&never).copied().collect();
        assert_eq!(
            accepted, accounted,
            "every accepted job either ran or is reported"
        );
        let stats = pool.stats();
        assert_eq!(stats.succeeded + stats.cancelled, accepted.len() as u64);
    });
}

#[test]
fn halt_from_inside_a_job_does_not_deadlock() {
    within(LIMIT, || {
        let pool = Dispatcher::builder().workers(1).build().unwrap();
        let p = pool.clone();
        let handle = pool
            .spawn(move || {
                let report = p.halt();
                (report.interrupted.len(), workyard::is_cancelled())
            })
            .unwrap();
        let id = handle.id();
        // The caller's own job is among the interrupted and ends Cancelled.
        assert!(handle.join().unwrap_err().is_cancelled());
        pool.shutdown();
        assert_eq!(
            pool.info(id).unwrap().cancel_reason(),
            Some(CancelReason::Halt)
        );
    });
}

#[test]
fn shutdown_timeout_in_time_is_graceful() {
    within(LIMIT, || {
        let pool = Dispatcher::builder().workers(2).build().unwrap();
        let ran = Arc::new(AtomicUsize::new(0));
        for _ in 0..1000 {
            let r = ran.clone();
            pool.spawn(move || r.fetch_add(1, Ordering::Relaxed))
                .unwrap();
        }
        assert_eq!(pool.shutdown_timeout(LIMIT), Ok(()));
        assert_eq!(ran.load(Ordering::Relaxed), 1000);
    });
}

#[test]
fn shutdown_timeout_halts_when_time_runs_out() {
    within(LIMIT, || {
        let pool = Dispatcher::builder().workers(1).build().unwrap();
        let stuck = pool.spawn(spin_until_cancelled).unwrap();
        eventually("stuck job runs", || stuck.status() == JobStatus::Running);
        let waiting = pool.spawn(|| 0).unwrap();
        let report = pool
            .shutdown_timeout(Duration::from_millis(20))
            .unwrap_err();
        assert_eq!(report.interrupted, [stuck.id()]);
        assert_eq!(report.never_started, [waiting.id()]);
        assert!(stuck.join().unwrap_err().is_cancelled());
        assert!(waiting.join().unwrap_err().is_cancelled());
    });
}

/// `pause`, `resume` and shutdown racing a halt cannot let a job that was
/// queued when the halt began start: the halt's hold is its own.
#[test]
fn pause_and_resume_racing_a_halt_start_no_queued_job() {
    within(LIMIT, || {
        for racer_calls in ["pause", "resume", "shutdown"] {
            const N: usize = 50_000;
            let pool = Dispatcher::builder().workers(1).build().unwrap();
            pool.pause();
            let ran = Arc::new(AtomicUsize::new(0));
            for _ in 0..N {
                let ran = ran.clone();
                drop(
                    pool.spawn(move || ran.fetch_add(1, Ordering::SeqCst))
                        .unwrap(),
                );
            }
            let p = pool.clone();
            let racer = std::thread::spawn(move || {
                // The halt has begun (it closes first); its walk is under way.
                while !p.is_shutdown() {
                    std::hint::spin_loop();
                }
                match racer_calls {
                    "pause" => p.pause(),
                    "resume" => p.resume(),
                    _ => p.shutdown(),
                }
            });
            let report = pool.halt();
            racer.join().unwrap();
            assert_eq!(ran.load(Ordering::SeqCst), 0, "{racer_calls}");
            assert_eq!(report.never_started.len(), N, "{racer_calls}");
        }
    });
}

/// A job cancelled by a halt has its closure dropped by the worker that
/// discards it (the control thread runs no user code), after the walk. A
/// destructor that shuts the dispatcher down (or halts it) there runs on
/// one of its workers, so it does not wait for them; the outer halt does.
#[test]
fn a_destructor_that_shuts_down_during_a_halt_does_not_hang() {
    struct StopsOnDrop(Dispatcher, &'static str);
    impl Drop for StopsOnDrop {
        fn drop(&mut self) {
            match self.1 {
                "shutdown" => self.0.shutdown(),
                _ => drop(self.0.halt()),
            }
        }
    }
    within(LIMIT, || {
        for order in ["shutdown", "halt"] {
            let pool = Dispatcher::builder().workers(1).build().unwrap();
            pool.pause();
            let value = StopsOnDrop(pool.clone(), order);
            let queued = pool.spawn(move || drop(value)).unwrap();
            let others: Vec<_> = (0..3).map(|i| pool.spawn(move || i).unwrap()).collect();
            let report = pool.halt();
            // The walk cancels all four before any destructor runs, so a
            // halt from the destructor finds nothing left to report.
            assert_eq!(report.never_started.len(), 4, "{order}");
            assert_eq!(report.never_started[0], queued.id());
            assert!(queued.join().unwrap_err().is_cancelled());
            for h in others {
                assert!(h.join().unwrap_err().is_cancelled(), "{order}");
            }
            assert_eq!(
                pool.workers(),
                0,
                "{order}: the outer halt joined the workers"
            );
        }
    });
}

/// Halts nest across dispatchers: a destructor of a job that A's halt
/// cancels halts B (from A's worker, an outside thread for B, so it waits
/// for B's workers), and a destructor of a job that B's halt cancels shuts
/// B down (from B's own worker: it does not wait). (A destructor that
/// waited for A from B's worker while A's worker waits for B would be a
/// cycle of two waits, as with any two jobs waiting for each other.)
#[test]
fn a_halt_from_a_destructor_of_another_pools_halted_job() {
    struct OnDrop(Option<Box<dyn FnOnce() + Send>>);
    impl Drop for OnDrop {
        fn drop(&mut self) {
            if let Some(f) = self.0.take() {
                f()
            }
        }
    }
    within(LIMIT, || {
        let a = Dispatcher::builder().workers(1).build().unwrap();
        let b = Dispatcher::builder().workers(1).build().unwrap();
        a.pause();
        b.pause();
        let b1 = b.clone();
        let shuts_b = OnDrop(Some(Box::new(move || b1.shutdown())));
        let in_b = b.spawn(move || drop(shuts_b)).unwrap();
        let b2 = b.clone();
        let halts_b = OnDrop(Some(Box::new(move || {
            let report = b2.halt();
            assert_eq!(report.never_started.len(), 1);
            assert_eq!(b2.workers(), 0, "B's halt from A's worker joined B");
        })));
        let in_a = a.spawn(move || drop(halts_b)).unwrap();
        let report = a.halt();
        assert_eq!(report.never_started, [in_a.id()]);
        assert!(in_b.join().unwrap_err().is_cancelled());
        assert_eq!((a.workers(), b.workers()), (0, 0));
    });
}
