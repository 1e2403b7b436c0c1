//! The bounded queue: `try_spawn` says Full, `spawn` blocks until there is room.

mod common;
use common::{eventually, within, Gate, LIMIT};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use workyard::{Dispatcher, JobStatus, TrySpawnError};

#[test]
fn try_spawn_reports_full_and_returns_the_job() {
    within(LIMIT, || {
        let pool = Dispatcher::builder()
            .workers(1)
            .queue_capacity(3)
            .build()
            .unwrap();
        pool.pause();
        let handles: Vec<_> = (0..3).map(|i| pool.try_spawn(move || i).unwrap()).collect();
        let refused = pool.try_spawn(|| 99).unwrap_err();
        assert!(refused.is_full());
        let job = refused.into_inner();
        assert_eq!(job(), 99, "the refused job comes back intact");
        assert_eq!(pool.stats().queued, 3);
        pool.resume();
        let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        assert_eq!(results, [0, 1, 2]);
    });
}

#[test]
fn running_jobs_do_not_count_against_the_bound() {
    within(LIMIT, || {
        let pool = Dispatcher::builder()
            .workers(1)
            .queue_capacity(1)
            .build()
            .unwrap();
        let gate = Gate::new();
        let g = gate.clone();
        let running = pool.spawn(move || g.wait()).unwrap();
        eventually("first job runs", || running.status() == JobStatus::Running);
        let queued = pool.try_spawn(|| ()).unwrap();
        assert!(matches!(pool.try_spawn(|| ()), Err(TrySpawnError::Full(_))));
        gate.open();
        running.join().unwrap();
        queued.join().unwrap();
    });
}

#[test]
fn spawn_blocks_while_full_and_loses_nothing() {
    within(LIMIT, || {
        let pool = Dispatcher::builder()
            .workers(2)
            .queue_capacity(4)
            .build()
            .unwrap();
        let ran = Arc::new(AtomicUsize::new(0));
        let producers: Vec<_> = (0..4)
            .map(|_| {
                let pool = pool.clone();
                let ran = ran.clone();
                std::thread::spawn(move || {
                    for _ in 0..5_000 {
                        let ran = ran.clone();
                        pool.spawn(move || ran.fetch_add(1, Ordering::Relaxed))
                            .unwrap();
                    }
                })
            })
            .collect();
        for p in producers {
            p.join().unwrap();
        }
        pool.wait_idle();
        assert_eq!(ran.load(Ordering::Relaxed), 20_000);
        assert_eq!(pool.stats().succeeded, 20_000);
    });
}

#[test]
fn a_blocked_spawner_is_released_by_progress() {
    within(LIMIT, || {
        let pool = Dispatcher::builder()
            .workers(1)
            .queue_capacity(1)
            .build()
            .unwrap();
        pool.pause();
        let first = pool.spawn(|| 1).unwrap();
        let p = pool.clone();
        let blocked = std::thread::spawn(move || p.spawn(|| 2).unwrap().join().unwrap());
        eventually("spawner waits", || !blocked.is_finished());
        pool.resume();
        assert_eq!(blocked.join().unwrap(), 2);
        assert_eq!(first.join().unwrap(), 1);
    });
}

#[test]
fn a_full_queue_does_not_deadlock_jobs_that_spawn() {
    within(LIMIT, || {
        let pool = Dispatcher::builder()
            .workers(1)
            .queue_capacity(2)
            .build()
            .unwrap();
        let p = pool.clone();
        let parent = pool
            .spawn(move || {
                let children: Vec<_> = (0..100u32).map(|i| p.spawn(move || i).unwrap()).collect();
                children.into_iter().map(|h| h.join().unwrap()).sum::<u32>()
            })
            .unwrap();
        assert_eq!(parent.join().unwrap(), (0..100).sum());
    });
}

#[test]
fn a_spawner_blocked_on_a_full_queue_is_refused_when_the_pool_closes() {
    within(LIMIT, || {
        let pool = Dispatcher::builder()
            .workers(1)
            .queue_capacity(1)
            .build()
            .unwrap();
        pool.pause();
        let queued = pool.spawn(|| 1).unwrap();
        let p = pool.clone();
        let blocked = std::thread::spawn(move || p.spawn(|| 2).map_err(|e| (e.into_inner())()));
        eventually("spawner waits for room", || pool.stats().queued == 2);
        pool.shutdown();
        assert_eq!(
            blocked.join().unwrap().unwrap_err(),
            2,
            "refused, and the job came back"
        );
        assert_eq!(queued.join().unwrap(), 1, "the accepted job still ran");
        assert_eq!(pool.stats().succeeded, 1);
    });
}

#[test]
fn cancel_queued_drops_the_backlog_and_keeps_running_jobs() {
    within(LIMIT, || {
        let pool = Dispatcher::builder().workers(1).build().unwrap();
        let gate = Gate::new();
        let g = gate.clone();
        let running = pool.spawn(move || g.wait()).unwrap();
        eventually("runs", || running.status() == JobStatus::Running);
        let backlog: Vec<_> = (0..5).map(|_| pool.spawn(|| ()).unwrap()).collect();
        let dropped = pool.cancel_queued();
        assert_eq!(dropped, backlog.iter().map(|h| h.id()).collect::<Vec<_>>());
        assert_eq!(running.status(), JobStatus::Running);
        gate.open();
        running.join().unwrap();
        assert!(backlog
            .into_iter()
            .all(|h| h.join().unwrap_err().is_cancelled()));
        assert!(pool.spawn(|| 3).unwrap().join().is_ok(), "still accepting");
    });
}
