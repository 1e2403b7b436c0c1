//! `wait_idle_timeout`: `false` while jobs are queued or running past the
//! timeout, `true` as soon as the dispatcher is idle, inside a job too.

mod common;
use common::{eventually, within, Gate, LIMIT};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;
use workyard::Dispatcher;

#[test]
fn false_while_busy_true_once_idle() {
    within(LIMIT, || {
        let pool = Dispatcher::builder().workers(8).build().unwrap();
        assert!(
            pool.wait_idle_timeout(Duration::ZERO),
            "idle from the start"
        );
        let gate = Gate::new();
        let handles: Vec<_> = (0..16)
            .map(|_| {
                let gate = gate.clone();
                pool.spawn(move || gate.wait()).unwrap()
            })
            .collect();
        eventually("8 jobs run", || pool.stats().running == 8);
        assert!(!pool.wait_idle_timeout(Duration::from_millis(20)));
        let stats = pool.stats();
        assert_eq!((stats.running, stats.queued), (8, 8), "still busy");
        gate.open();
        assert!(pool.wait_idle_timeout(LIMIT));
        let stats = pool.stats();
        assert_eq!((stats.running, stats.queued, stats.succeeded), (0, 0, 16));
        assert!(handles.iter().all(|h| h.is_finished()));
        pool.shutdown();
    });
}

#[test]
fn inside_a_job_it_runs_the_queued_jobs() {
    within(LIMIT, || {
        let pool = Dispatcher::builder().workers(1).build().unwrap();
        let ran = Arc::new(AtomicUsize::new(0));
        let (inner, counted) = (pool.clone(), Arc::clone(&ran));
        let outer = pool
            .spawn(move || {
                for _ in 0..5 {
                    let ran = Arc::clone(&counted);
                    drop(inner.spawn(move || ran.fetch_add(1, SeqCst)).unwrap());
                }
                let idle = inner.wait_idle_timeout(LIMIT);
                (idle, counted.load(SeqCst))
            })
            .unwrap();
        assert_eq!(outer.join().unwrap(), (true, 5));
        pool.shutdown();
    });
}
