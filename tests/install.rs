//! `Dispatcher::install` and the free functions inside a job: `install`
//! runs its closure on a worker (inline from one of the same pool), makes
//! `join` inside it parallel, gives back its result or its panic, does not
//! deadlock from a job of another pool, and is refused (`try_install`) or
//! runs on the caller once the pool is shut down. Inside a job,
//! `workyard::spawn`, `workyard::scope`, `current_thread_index` and
//! `current_num_threads` answer for that job's pool, and keep no pool
//! running.
//!
//! None of these tests uses the global dispatcher (`tests/global.rs`
//! does). No test sleeps to synchronise; each runs under a watchdog.

mod common;

use common::{eventually, meet, threads_named, within, Gate, LIMIT};
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::thread;
use workyard::{Dispatcher, JobId};

fn pool(workers: usize, prefix: &'static str) -> Dispatcher {
    Dispatcher::builder()
        .workers(workers)
        .thread_name(move |i| format!("{prefix}-{i}"))
        .build()
        .unwrap()
}

fn thread_name() -> String {
    thread::current().name().unwrap_or("").to_string()
}

#[test]
fn install_runs_on_a_worker_with_the_pools_numbers_and_borrows() {
    within(LIMIT, || {
        let pool = pool(8, "inst");
        let words = String::from("install borrows this");
        let (name, index, threads, total) = pool.install(|| {
            let total: usize = words.split(' ').map(str::len).sum();
            let index = workyard::current_thread_index();
            (thread_name(), index, workyard::current_num_threads(), total)
        });
        assert!(name.starts_with("inst-"), "{name}");
        assert!(index.is_some_and(|i| i < 8), "{index:?}");
        assert_eq!(threads, 8);
        assert_eq!(total, 18);
        assert_eq!(workyard::current_thread_index(), None);
        pool.shutdown();
    });
}

#[test]
fn join_inside_install_runs_both_halves_at_once_on_two_workers() {
    within(LIMIT, || {
        let pool = pool(8, "par");
        let arrived = AtomicUsize::new(0);
        let half = || {
            let met = meet(&arrived, 2);
            (met, workyard::current_thread_index(), thread_name())
        };
        let ((a_met, a_index, a_name), (b_met, b_index, b_name)) =
            pool.install(|| workyard::join(half, half));
        assert!(a_met && b_met, "the halves never ran at the same time");
        assert!(a_name.starts_with("par-") && b_name.starts_with("par-"));
        assert!(a_index.is_some() && b_index.is_some());
        assert_ne!(a_index, b_index);
        pool.shutdown();
    });
}

#[test]
fn install_resumes_the_panic_in_the_caller_and_the_workers_survive() {
    within(LIMIT, || {
        let pool = pool(8, "boom");
        let caught = panic::catch_unwind(AssertUnwindSafe(|| {
            pool.install(|| -> u32 { panic!("install panicked") })
        }))
        .unwrap_err();
        assert_eq!(caught.downcast_ref::<&str>(), Some(&"install panicked"));
        assert_eq!(pool.workers(), 8);
        assert_eq!(pool.install(|| 5), 5);
        pool.wait_idle();
        // A call, not a job: nothing counted as run or panicked.
        let stats = pool.stats();
        assert_eq!((stats.panicked, stats.succeeded), (0, 0));
        pool.shutdown();
    });
}

#[test]
fn install_from_a_job_of_the_same_pool_runs_inline() {
    within(LIMIT, || {
        let pool = pool(8, "same");
        let inner = pool.clone();
        let handle = pool
            .spawn(move || {
                let outer = (thread::current().id(), workyard::current_job());
                let inside = inner.install(|| (thread::current().id(), workyard::current_job()));
                (outer, inside)
            })
            .unwrap();
        let id: JobId = handle.id();
        let (outer, inside) = handle.join().unwrap();
        assert_eq!(outer, inside, "install left the job's thread");
        assert_eq!(inside.1, Some(id));
        pool.shutdown();
    });
}

#[test]
fn install_from_a_job_of_another_pool_runs_that_pools_jobs_meanwhile() {
    within(LIMIT, || {
        // One worker each: the job on `a` can only be helped by its own
        // worker, which is the one waiting in `install`.
        let (a, b) = (pool(1, "one-a"), pool(1, "one-b"));
        let b_in_job = b.clone();
        let handle = a
            .spawn(move || {
                let ran = Arc::new(AtomicBool::new(false));
                let flag = Arc::clone(&ran);
                let child = workyard::spawn(move || flag.store(true, SeqCst)).unwrap();
                // `f` runs on `b` until `a`'s child has run: only if the
                // waiting worker of `a` runs it while it waits.
                let seen = b_in_job.install(|| {
                    eventually("a's child runs while a's worker waits", || ran.load(SeqCst));
                    thread_name()
                });
                child.join().unwrap();
                seen
            })
            .unwrap();
        assert_eq!(handle.join().unwrap(), "one-b-0");
        a.shutdown();
        b.shutdown();
    });
}

#[test]
fn installs_back_and_forth_between_two_pools_of_8_finish() {
    within(LIMIT, || {
        let (a, b) = (pool(8, "ping"), pool(8, "pong"));
        let handles: Vec<_> = (0..64u64)
            .map(|i| {
                let (a_in, b_in) = (a.clone(), b.clone());
                a.spawn(move || {
                    b_in.install(|| {
                        let there = thread_name();
                        let back = a_in.install(|| (thread_name(), i * 2));
                        (there, back)
                    })
                })
                .unwrap()
            })
            .collect();
        let mut total = 0;
        for handle in handles {
            let (there, (back, doubled)) = handle.join().unwrap();
            assert!(there.starts_with("pong-"), "{there}");
            assert!(back.starts_with("ping-"), "{back}");
            total += doubled;
        }
        assert_eq!(total, 64 * 63);
        a.shutdown();
        b.shutdown();
    });
}

#[test]
fn install_waits_for_resume_and_counts_as_pending() {
    within(LIMIT, || {
        let pool = pool(2, "paused");
        pool.pause();
        let ran = Arc::new(AtomicBool::new(false));
        let caller = {
            let (pool, ran) = (pool.clone(), Arc::clone(&ran));
            thread::spawn(move || pool.install(|| ran.store(true, SeqCst)))
        };
        eventually("the install is queued", || pool.stats().queued == 1);
        assert!(!ran.load(SeqCst), "ran while paused");
        pool.resume();
        caller.join().unwrap();
        assert!(ran.load(SeqCst));
        pool.wait_idle();
        assert_eq!(pool.stats().queued, 0);
        pool.shutdown();
    });
}

#[test]
fn shutdown_waits_for_an_install_in_flight() {
    within(LIMIT, || {
        let pool = pool(2, "flight");
        let (started, release) = (Gate::new(), Gate::new());
        let caller = {
            let (pool, started, release) = (pool.clone(), started.clone(), release.clone());
            thread::spawn(move || {
                pool.install(|| {
                    started.open();
                    release.wait();
                    7
                })
            })
        };
        started.wait();
        let closer = {
            let pool = pool.clone();
            thread::spawn(move || pool.shutdown())
        };
        eventually("the shutdown closes the pool", || pool.is_shutdown());
        assert!(!closer.is_finished(), "shutdown did not wait for install");
        release.open();
        assert_eq!(caller.join().unwrap(), 7);
        closer.join().unwrap();
        assert_eq!(threads_named("flight-"), 0);
    });
}

#[test]
fn after_shutdown_install_runs_on_the_caller_and_try_install_refuses() {
    within(LIMIT, || {
        let pool = pool(2, "closed");
        assert_eq!(pool.try_install(|| 1).unwrap(), 1);
        pool.shutdown();
        let me = thread::current().id();
        assert_eq!(pool.install(|| thread::current().id()), me);
        let refused = pool.try_install(|| "given back").unwrap_err();
        assert_eq!((refused.into_inner())(), "given back");
    });
}

#[test]
fn free_spawn_and_scope_inside_a_job_use_its_pool() {
    within(LIMIT, || {
        let pool = pool(8, "cur");
        let handle = pool
            .spawn(|| {
                let spawned = workyard::spawn(thread_name).unwrap().join().unwrap();
                let names = Mutex::new(Vec::new());
                workyard::scope(|s| {
                    for _ in 0..16 {
                        s.spawn(|| names.lock().unwrap().push(thread_name()))
                            .unwrap();
                    }
                });
                (spawned, names.into_inner().unwrap())
            })
            .unwrap();
        let (spawned, scoped) = handle.join().unwrap();
        assert!(spawned.starts_with("cur-"), "{spawned}");
        assert_eq!(scoped.len(), 16);
        assert!(scoped.iter().all(|n| n.starts_with("cur-")), "{scoped:?}");
        pool.wait_idle();
        assert_eq!(pool.stats().succeeded, 1 + 1 + 16);
        pool.shutdown();
    });
}

#[test]
fn every_worker_of_8_reports_its_own_index_and_the_count() {
    within(LIMIT, || {
        let pool = pool(8, "idx");
        let arrived = Arc::new(AtomicUsize::new(0));
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let arrived = Arc::clone(&arrived);
                pool.spawn(move || {
                    // All 8 running at once: 8 different workers.
                    let met = meet(&arrived, 8);
                    (
                        met,
                        workyard::current_thread_index(),
                        workyard::current_num_threads(),
                    )
                })
                .unwrap()
            })
            .collect();
        let mut indices: Vec<usize> = handles
            .into_iter()
            .map(|h| {
                let (met, index, threads) = h.join().unwrap();
                assert!(met, "8 jobs never ran at the same time");
                assert_eq!(threads, 8);
                index.unwrap()
            })
            .collect();
        indices.sort_unstable();
        assert_eq!(indices, (0..8).collect::<Vec<_>>());
        pool.shutdown();
    });
}

#[test]
fn jobs_spawned_through_the_free_spawn_keep_no_pool_running() {
    within(LIMIT, || {
        let pool = pool(4, "alive");
        let (inner_started, release) = (Gate::new(), Gate::new());
        let (started, gate) = (inner_started.clone(), release.clone());
        // A job that hands the pool on without a `Dispatcher`: only the
        // test's `pool` owns it.
        let outer = pool
            .spawn(move || {
                workyard::spawn(move || {
                    started.open();
                    gate.wait();
                    workyard::current_num_threads()
                })
                .unwrap()
            })
            .unwrap();
        let inner = outer.join().unwrap();
        inner_started.wait();
        // Dropping the only `Dispatcher` shuts the pool down: it waits for
        // the running job, then joins every thread.
        let dropper = thread::spawn(move || drop(pool));
        release.open();
        dropper.join().unwrap();
        assert_eq!(inner.join().unwrap(), 4);
        assert_eq!(threads_named("alive-"), 0);
    });
}
