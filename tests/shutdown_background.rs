//! `Dispatcher::shutdown_background` (issue #17 §3, tokio's name): it
//! returns at once, even while a job is blocked; the dispatcher refuses new
//! jobs from then on; every job accepted before it still runs; and the
//! worker threads exit on their own once the last one returns.
//!
//! This is a new API: on today's code this file does not compile (no
//! method `shutdown_background`). It is kept apart so that the other test
//! files still build.

mod common;
use common::{eventually, within, Gate, LIMIT};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};
use workyard::{Dispatcher, WorkerState};

#[test]
fn shutdown_background_returns_at_once_and_the_accepted_jobs_still_run() {
    within(LIMIT, || {
        let workers = 4;
        let pool = Dispatcher::builder().workers(workers).build().unwrap();
        let gate = Gate::new();
        let ran = Arc::new(AtomicUsize::new(0));
        let started = Arc::new(AtomicUsize::new(0));
        let jobs = 40;
        for _ in 0..jobs {
            let (gate, ran, started) = (gate.clone(), ran.clone(), started.clone());
            pool.spawn(move || {
                started.fetch_add(1, SeqCst);
                gate.wait();
                ran.fetch_add(1, SeqCst);
            })
            .unwrap();
        }
        eventually("a job is blocked", || started.load(SeqCst) > 0);

        let t = Instant::now();
        pool.shutdown_background();
        let took = t.elapsed();
        assert!(
            took < Duration::from_secs(1),
            "shutdown_background waited {took:?} with a job blocked"
        );
        assert!(pool.is_shutdown());
        assert!(
            pool.spawn(|| ()).is_err(),
            "a job accepted after shutdown_background"
        );
        assert!(pool.try_spawn(|| ()).is_err());
        assert_eq!(ran.load(SeqCst), 0);

        gate.open();
        eventually("every accepted job ran", || ran.load(SeqCst) == jobs);
        eventually("the workers exited on their own", || {
            pool.stats()
                .per_worker
                .iter()
                .all(|w| w.state == WorkerState::Exited)
        });
        let stats = pool.stats();
        assert_eq!(stats.succeeded, jobs as u64);
        assert_eq!(stats.queued + stats.running, 0);
        assert_eq!(ran.load(SeqCst), jobs, "a job ran twice");
        // A later shutdown has nothing left to wait for.
        pool.shutdown();
    });
}

#[test]
fn shutdown_background_from_inside_a_job_returns() {
    within(LIMIT, || {
        let pool = Dispatcher::builder().workers(2).build().unwrap();
        let p = pool.clone();
        let after = Arc::new(AtomicUsize::new(0));
        let a = after.clone();
        let handle = pool
            .spawn(move || {
                p.shutdown_background();
                a.store(p.spawn(|| ()).is_err() as usize + 1, SeqCst);
            })
            .unwrap();
        handle.join().unwrap();
        assert_eq!(
            after.load(SeqCst),
            2,
            "a spawn after shutdown_background was accepted"
        );
        eventually("the workers exited on their own", || {
            pool.stats()
                .per_worker
                .iter()
                .all(|w| w.state == WorkerState::Exited)
        });
    });
}

#[test]
fn dropping_the_last_dispatcher_after_shutdown_background_does_not_wait() {
    within(LIMIT, || {
        let pool = Dispatcher::builder().workers(2).build().unwrap();
        let gate = Gate::new();
        let (g, done) = (gate.clone(), Arc::new(AtomicUsize::new(0)));
        let d = done.clone();
        let started = Arc::new(AtomicUsize::new(0));
        let s = started.clone();
        pool.spawn(move || {
            s.store(1, SeqCst);
            g.wait();
            d.store(1, SeqCst);
        })
        .unwrap();
        eventually("the job runs", || started.load(SeqCst) == 1);
        pool.shutdown_background();
        let t = Instant::now();
        drop(pool);
        assert!(
            t.elapsed() < Duration::from_secs(1),
            "dropping the last handle after shutdown_background waited for the job"
        );
        gate.open();
        eventually("the detached job finished", || done.load(SeqCst) == 1);
    });
}
