//! `wait_idle` blocks until nothing is queued or running, jobs that spawn
//! jobs included, and the pool keeps working afterwards.

mod common;
use common::{within, LIMIT};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use workyard::Dispatcher;

fn spawn_tree(pool: &Dispatcher, depth: u32, count: &Arc<AtomicUsize>) {
    count.fetch_add(1, Ordering::Relaxed);
    if depth == 0 {
        return;
    }
    for _ in 0..3 {
        let (p, c) = (pool.clone(), count.clone());
        pool.spawn(move || spawn_tree(&p, depth - 1, &c)).unwrap();
    }
}

#[test]
fn waits_for_jobs_spawned_by_jobs() {
    within(LIMIT, || {
        let pool = Dispatcher::builder().workers(2).build().unwrap();
        let count = Arc::new(AtomicUsize::new(0));
        for round in 1..=3 {
            let (p, c) = (pool.clone(), count.clone());
            pool.spawn(move || spawn_tree(&p, 6, &c)).unwrap();
            pool.wait_idle();
            // 1 + 3 + 9 + ... + 3^6 jobs per tree.
            assert_eq!(count.load(Ordering::Relaxed), round * 1093);
            let stats = pool.stats();
            assert_eq!(
                stats.succeeded,
                round as u64 * 1093,
                "every call of spawn_tree is one job"
            );
            assert_eq!((stats.queued, stats.running), (0, 0));
        }
    });
}

#[test]
fn returns_at_once_when_idle() {
    within(LIMIT, || {
        let pool = Dispatcher::builder().workers(1).build().unwrap();
        pool.wait_idle();
        pool.wait_idle();
    });
}

#[test]
fn from_inside_a_job_it_runs_the_queue_instead_of_deadlocking() {
    within(LIMIT, || {
        let pool = Dispatcher::builder().workers(1).build().unwrap();
        let p = pool.clone();
        let ran = Arc::new(AtomicUsize::new(0));
        let r = ran.clone();
        let outer = pool
            .spawn(move || {
                for _ in 0..10 {
                    let r = r.clone();
                    p.spawn(move || r.fetch_add(1, Ordering::Relaxed)).unwrap();
                }
                p.wait_idle();
                r.load(Ordering::Relaxed)
            })
            .unwrap();
        assert_eq!(outer.join().unwrap(), 10);
        assert_eq!(ran.load(Ordering::Relaxed), 10);
    });
}

#[test]
fn many_waiters_at_once() {
    within(LIMIT, || {
        let pool = Dispatcher::builder().workers(2).build().unwrap();
        let count = Arc::new(AtomicUsize::new(0));
        for _ in 0..1000 {
            let c = count.clone();
            pool.spawn(move || c.fetch_add(1, Ordering::Relaxed))
                .unwrap();
        }
        let waiters: Vec<_> = (0..4)
            .map(|_| {
                let (p, c) = (pool.clone(), count.clone());
                std::thread::spawn(move || {
                    p.wait_idle();
                    c.load(Ordering::Relaxed)
                })
            })
            .collect();
        for w in waiters {
            assert_eq!(w.join().unwrap(), 1000);
        }
    });
}

/// A worker that saw the pool idle but told the waiters a moment later must
/// not release a `wait_idle` that began after a new spawn: many rounds of
/// "spawn, wait, count", with more workers than cores so that a worker is
/// often preempted between its idle check and its notification.
#[test]
fn an_idle_moment_before_the_wait_began_does_not_end_it() {
    within(LIMIT, || {
        let pool = Dispatcher::builder().workers(8).build().unwrap();
        let count = Arc::new(AtomicUsize::new(0));
        for round in 1..=20_000 {
            let (p, c) = (pool.clone(), count.clone());
            pool.spawn(move || {
                for _ in 0..16 {
                    let c = c.clone();
                    p.spawn(move || c.fetch_add(1, Ordering::Relaxed)).unwrap();
                }
            })
            .unwrap();
            pool.wait_idle();
            assert_eq!(count.load(Ordering::Relaxed), round * 16, "round {round}");
        }
    });
}
