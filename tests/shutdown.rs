//! Graceful shutdown: refuses new jobs, runs every accepted one exactly once,
//! joins the threads; also when called twice, concurrently, from inside a
//! job, or by dropping the last handle.

mod common;
use common::{eventually, threads_named, within, Gate, LIMIT};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use workyard::{Dispatcher, JobStatus};

#[test]
fn a_million_accepted_jobs_each_run_exactly_once() {
    within(LIMIT * 3, || {
        const N: usize = if cfg!(debug_assertions) {
            100_000
        } else {
            1_000_000
        };
        let pool = Dispatcher::builder().workers(2).build().unwrap();
        let runs: Arc<Vec<AtomicUsize>> = Arc::new((0..N).map(|_| AtomicUsize::new(0)).collect());
        for i in 0..N {
            let runs = runs.clone();
            pool.spawn(move || runs[i].fetch_add(1, Ordering::Relaxed))
                .unwrap();
        }
        pool.shutdown();
        let stats = pool.stats();
        assert_eq!(stats.succeeded, N as u64);
        assert_eq!(stats.workers, 0, "threads joined");
        let wrong: Vec<usize> = (0..N)
            .filter(|&i| runs[i].load(Ordering::Relaxed) != 1)
            .collect();
        assert!(
            wrong.is_empty(),
            "jobs not run exactly once: {:?}",
            &wrong[..wrong.len().min(10)]
        );
    });
}

#[test]
fn spawn_after_shutdown_returns_the_job() {
    let pool = Dispatcher::builder().workers(1).build().unwrap();
    pool.shutdown();
    assert!(pool.is_shutdown());
    let err = pool.spawn(|| 41 + 1).unwrap_err();
    assert_eq!(
        err.to_string(),
        "the dispatcher is shut down and accepts no more jobs"
    );
    assert_eq!((err.into_inner())(), 42);
    assert!(pool.try_spawn(|| ()).unwrap_err().is_closed());
}

#[test]
fn shutdown_twice_and_from_several_threads() {
    within(LIMIT, || {
        let pool = Dispatcher::builder().workers(2).build().unwrap();
        let ran = Arc::new(AtomicUsize::new(0));
        for _ in 0..10_000 {
            let r = ran.clone();
            pool.spawn(move || r.fetch_add(1, Ordering::Relaxed))
                .unwrap();
        }
        let closers: Vec<_> = (0..4)
            .map(|_| {
                let (p, r) = (pool.clone(), ran.clone());
                std::thread::spawn(move || {
                    p.shutdown();
                    // Every caller returns only after all accepted jobs ran.
                    r.load(Ordering::Relaxed)
                })
            })
            .collect();
        for c in closers {
            assert_eq!(c.join().unwrap(), 10_000);
        }
        pool.shutdown();
        assert_eq!(pool.stats().workers, 0);
    });
}

#[test]
fn shutdown_while_jobs_keep_spawning_jobs() {
    within(LIMIT, || {
        let pool = Dispatcher::builder().workers(2).build().unwrap();
        let ran = Arc::new(AtomicUsize::new(0));
        let refused = Arc::new(AtomicUsize::new(0));
        fn chain(pool: Dispatcher, ran: Arc<AtomicUsize>, refused: Arc<AtomicUsize>) {
            ran.fetch_add(1, Ordering::Relaxed);
            let (p, r, f) = (pool.clone(), ran.clone(), refused.clone());
            if pool.spawn(move || chain(p, r, f)).is_err() {
                refused.fetch_add(1, Ordering::Relaxed);
            }
        }
        for _ in 0..4 {
            let (p, r, f) = (pool.clone(), ran.clone(), refused.clone());
            pool.spawn(move || chain(p, r, f)).unwrap();
        }
        eventually("chains are running", || ran.load(Ordering::Relaxed) > 1000);
        pool.shutdown();
        // Each of the 4 chains ends with exactly one refused spawn.
        assert_eq!(refused.load(Ordering::Relaxed), 4);
        let stats = pool.stats();
        assert_eq!(stats.succeeded as usize, ran.load(Ordering::Relaxed));
    });
}

#[test]
fn shutdown_resumes_a_paused_dispatcher() {
    within(LIMIT, || {
        let pool = Dispatcher::builder().workers(1).build().unwrap();
        pool.pause();
        let handle = pool.spawn(|| 7).unwrap();
        pool.shutdown();
        assert_eq!(handle.join().unwrap(), 7);
    });
}

#[test]
fn shutdown_from_inside_a_job_does_not_deadlock() {
    within(LIMIT, || {
        let pool = Dispatcher::builder().workers(2).build().unwrap();
        let gate = Gate::new();
        let g = gate.clone();
        let queued_behind = pool.spawn(move || g.wait()).unwrap();
        let p = pool.clone();
        let inner = pool
            .spawn(move || {
                p.shutdown();
                p.is_shutdown()
            })
            .unwrap();
        assert!(
            inner.join().unwrap(),
            "shutdown from a job returns at once, closed"
        );
        assert!(pool.spawn(|| ()).is_err());
        gate.open();
        queued_behind.join().unwrap();
        pool.shutdown();
        assert_eq!(pool.stats().workers, 0);
    });
}

#[test]
fn dropping_the_last_handle_inside_a_job_does_not_deadlock() {
    within(LIMIT, || {
        let pool = Dispatcher::builder()
            .workers(2)
            .thread_name(|i| format!("last-drop-{i}"))
            .build()
            .unwrap();
        assert_eq!(threads_named("last-drop-"), 2);
        let ran = Arc::new(AtomicUsize::new(0));
        let gate = Gate::new();
        for _ in 0..100 {
            let (r, g) = (ran.clone(), gate.clone());
            pool.spawn(move || {
                g.wait();
                r.fetch_add(1, Ordering::SeqCst);
            })
            .unwrap();
        }
        let last = pool.clone();
        let handle = pool.spawn(move || drop(last)).unwrap();
        drop(pool);
        gate.open();
        eventually("the workers exit on their own", || {
            threads_named("last-drop-") == 0
        });
        assert_eq!(ran.load(Ordering::SeqCst), 100, "every accepted job ran");
        assert_eq!(handle.status(), JobStatus::Succeeded);
    });
}

#[test]
fn dropping_the_last_handle_outside_waits_for_the_jobs() {
    within(LIMIT, || {
        let pool = Dispatcher::builder().workers(2).build().unwrap();
        let ran = Arc::new(AtomicUsize::new(0));
        for _ in 0..10_000 {
            let r = ran.clone();
            pool.spawn(move || r.fetch_add(1, Ordering::Relaxed))
                .unwrap();
        }
        drop(pool);
        assert_eq!(ran.load(Ordering::Relaxed), 10_000);
    });
}

/// "Each call returns once the threads are gone": also the call that finds
/// another one already joining a thread. The worker's exit is made slow (a
/// thread-local destructor) so that both calls overlap it.
#[test]
fn concurrent_shutdowns_both_return_after_the_threads_are_gone() {
    struct SlowExit(Arc<AtomicBool>);
    impl Drop for SlowExit {
        fn drop(&mut self) {
            std::thread::sleep(Duration::from_millis(300));
            self.0.store(true, Ordering::SeqCst);
        }
    }
    thread_local! {
        static ON_EXIT: std::cell::RefCell<Option<SlowExit>> = const { std::cell::RefCell::new(None) };
    }
    within(LIMIT, || {
        let pool = Dispatcher::builder().workers(1).build().unwrap();
        let exited = Arc::new(AtomicBool::new(false));
        let e = exited.clone();
        pool.spawn(move || ON_EXIT.with(|g| *g.borrow_mut() = Some(SlowExit(e))))
            .unwrap()
            .join()
            .unwrap();
        let callers: Vec<_> = (0..2)
            .map(|_| {
                let (pool, exited) = (pool.clone(), exited.clone());
                std::thread::spawn(move || {
                    pool.shutdown();
                    exited.load(Ordering::SeqCst)
                })
            })
            .collect();
        let saw_exit: Vec<bool> = callers.into_iter().map(|c| c.join().unwrap()).collect();
        assert_eq!(
            saw_exit,
            [true, true],
            "a shutdown returned before the thread exited"
        );
    });
}
