//! What `Dispatcher::stats` promises (see `Stats`): a job is counted by the
//! time anyone can see it finished; `queued` never exceeds the queue bound;
//! queued jobs cancelled through the dispatcher count in the totals, not
//! under a worker; every figure is exact once idle.

mod common;

use common::Gate;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::Arc;
use workyard::{Dispatcher, JobError};

/// After each `join` returns, the job is already counted: 200 rounds of
/// 100 jobs on 8 workers, the count read right after the last join.
#[test]
fn a_joined_job_is_already_counted() {
    let pool = Dispatcher::builder().workers(8).build().unwrap();
    let mut expected = 0u64;
    for round in 0..200 {
        let handles: Vec<_> = (0..100u64)
            .map(|i| pool.spawn(move || i).unwrap())
            .collect();
        for h in handles {
            h.join().unwrap();
            expected += 1;
            let stats = pool.stats();
            assert!(
                stats.succeeded >= expected,
                "round {round}: {expected} joined, {} counted",
                stats.succeeded
            );
        }
        let stats = pool.stats();
        assert_eq!(stats.succeeded, expected, "round {round}");
        assert_eq!((stats.queued, stats.running), (0, 0), "round {round}");
    }
}

/// The same for failures, panics and `.await`.
#[test]
fn every_outcome_is_counted_before_its_joiner_returns() {
    common::silence_deliberate_panics();
    let pool = Dispatcher::builder().workers(8).build().unwrap();
    for round in 1..=300u64 {
        let failed = pool
            .spawn(workyard::fallible(|| Err::<(), _>("no")))
            .unwrap();
        assert!(failed.join().unwrap_err().is_failed());
        assert_eq!(pool.stats().failed, round, "failure {round}");

        let panicked = pool
            .spawn(|| -> u32 { std::panic::panic_any("deliberate") })
            .unwrap();
        assert!(panicked.join().unwrap_err().is_panic());
        assert_eq!(pool.stats().panicked, round, "panic {round}");
    }
    pollster::block_on(async {
        for i in 1..=10_000u64 {
            assert_eq!(pool.spawn(move || i).unwrap().await.unwrap(), i);
            assert_eq!(pool.stats().succeeded, i, "await {i}");
        }
    });
}

/// A job asked to stop while it runs ends cancelled, counted as such (and
/// under its worker: it ran there).
#[test]
fn a_job_stopped_while_running_counts_cancelled_under_its_worker() {
    let pool = Dispatcher::builder().workers(2).build().unwrap();
    let started = Gate::new();
    let s = started.clone();
    let handle = pool
        .spawn(move || {
            s.open();
            while !workyard::is_cancelled() {
                std::thread::yield_now();
            }
        })
        .unwrap();
    started.wait();
    assert!(handle.cancel());
    assert!(handle.join().unwrap_err().is_cancelled());
    let stats = pool.stats();
    assert_eq!((stats.cancelled, stats.succeeded), (1, 0));
    let under_workers: u64 = stats.per_worker.iter().map(|w| w.cancelled).sum();
    assert_eq!(under_workers, 1);
}

/// Queued jobs cancelled through the dispatcher count in the total at
/// once, and under no worker; ones cancelled through their handle count
/// when a worker drops them, again under no worker.
#[test]
fn queued_cancels_count_in_the_total_and_under_no_worker() {
    let pool = Dispatcher::builder().workers(1).build().unwrap();
    let gate = Gate::new();
    let g = gate.clone();
    let blocker = pool.spawn(move || g.wait()).unwrap();
    common::eventually("the blocker runs", || pool.stats().running == 1);
    let by_pool: Vec<_> = (0..1_000).map(|i| pool.spawn(move || i).unwrap()).collect();
    let by_handle: Vec<_> = (0..10).map(|i| pool.spawn(move || i).unwrap()).collect();
    for h in &by_handle {
        assert!(h.cancel());
    }
    // The ten cancelled through their handles are still queued (a worker
    // has not dropped them): they count there.
    let cancelled = pool.cancel_queued();
    assert_eq!(cancelled.len(), 1_000);
    let stats = pool.stats();
    assert_eq!(
        (stats.cancelled, stats.queued, stats.running),
        (1_000, 10, 1)
    );
    assert_eq!(stats.per_worker[0].cancelled, 0);
    for h in by_pool {
        assert!(matches!(h.join(), Err(JobError::Cancelled(_))));
    }
    gate.open();
    blocker.join().unwrap();
    pool.wait_idle();
    let stats = pool.stats();
    assert_eq!(
        (
            stats.cancelled,
            stats.succeeded,
            stats.queued,
            stats.running
        ),
        (1_010, 1, 0, 0)
    );
    let worker = &stats.per_worker[0];
    assert_eq!(
        (worker.cancelled, worker.jobs_run, worker.succeeded),
        (0, 1, 1)
    );
    assert_eq!(stats.finished(), 1_011);
}

/// With `queue_capacity(64)` and spawners racing for room (blocking and
/// refused ones), `queued` never reads more than 64.
#[test]
fn queued_never_exceeds_the_capacity() {
    const CAPACITY: u64 = 64;
    let pool = Dispatcher::builder()
        .workers(8)
        .queue_capacity(CAPACITY as usize)
        .build()
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let spawners: Vec<_> = (0..4)
        .map(|t| {
            let pool = pool.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut n = 0u64;
                while !stop.load(SeqCst) {
                    if t % 2 == 0 {
                        pool.spawn(|| std::hint::black_box(0)).unwrap();
                    } else {
                        let _ = pool.try_spawn(|| std::hint::black_box(0));
                    }
                    n += 1;
                }
                n
            })
        })
        .collect();
    let mut max = 0;
    for _ in 0..20_000 {
        let stats = pool.stats();
        max = max.max(stats.queued);
        assert!(stats.queued <= CAPACITY, "{stats:?}");
    }
    stop.store(true, SeqCst);
    for s in spawners {
        s.join().unwrap();
    }
    pool.wait_idle();
    assert_eq!(pool.stats().queued, 0);
    println!("largest queued seen: {max}");
}

/// Once idle, the snapshot adds up exactly: every accepted job is
/// finished, in exactly one outcome.
#[test]
fn once_idle_every_figure_is_exact() {
    common::silence_deliberate_panics();
    let pool = Dispatcher::builder().workers(16).build().unwrap();
    let spawners: Vec<_> = (0..4u64)
        .map(|t| {
            let pool = pool.clone();
            std::thread::spawn(move || {
                for i in 0..2_500u64 {
                    match (t * 2_500 + i) % 4 {
                        0 => drop(pool.spawn(|| ()).unwrap()),
                        1 => drop(
                            pool.spawn(workyard::fallible(|| Err::<(), _>("x")))
                                .unwrap(),
                        ),
                        2 => drop(pool.spawn(deliberate_panic).unwrap()),
                        _ => {
                            let h = pool.spawn(|| ()).unwrap();
                            h.cancel();
                        }
                    }
                }
            })
        })
        .collect();
    for s in spawners {
        s.join().unwrap();
    }
    pool.wait_idle();
    let stats = pool.stats();
    assert_eq!((stats.queued, stats.running), (0, 0));
    assert_eq!(stats.failed, 2_500);
    assert_eq!(stats.panicked, 2_500);
    // A job cancelled through its handle may have started first.
    assert_eq!(stats.succeeded + stats.cancelled, 5_000);
    assert_eq!(stats.finished(), 10_000);
    // Every job either ran on a worker or was cancelled while queued.
    let ran: u64 = stats.per_worker.iter().map(|w| w.jobs_run).sum();
    let stopped_running: u64 = stats.per_worker.iter().map(|w| w.cancelled).sum();
    let cancelled_queued = stats.cancelled - stopped_running;
    assert_eq!(ran + cancelled_queued, 10_000);
}

fn deliberate_panic() {
    std::panic::panic_any("deliberate")
}

/// A spawn blocked on a full queue counts in `waiting_spawns`, not in
/// `queued`, until it gets a place.
#[test]
fn a_spawn_waiting_for_room_is_counted_apart() {
    let pool = Dispatcher::builder()
        .workers(1)
        .queue_capacity(2)
        .build()
        .unwrap();
    pool.pause();
    let queued: Vec<_> = (0..2).map(|i| pool.spawn(move || i).unwrap()).collect();
    let spawners: Vec<_> = (0..3)
        .map(|i| {
            let pool = pool.clone();
            std::thread::spawn(move || pool.spawn(move || 10 + i).unwrap().join().unwrap())
        })
        .collect();
    common::eventually("three spawns wait for room", || {
        pool.stats().waiting_spawns == 3
    });
    let stats = pool.stats();
    assert_eq!((stats.queued, stats.running, stats.finished()), (2, 0, 0));
    pool.resume();
    let mut results: Vec<_> = spawners.into_iter().map(|s| s.join().unwrap()).collect();
    results.sort();
    assert_eq!(results, [10, 11, 12]);
    for (i, h) in queued.into_iter().enumerate() {
        assert_eq!(h.join().unwrap(), i);
    }
    pool.wait_idle();
    let stats = pool.stats();
    assert_eq!(
        (stats.queued, stats.waiting_spawns, stats.succeeded),
        (0, 0, 5)
    );
}
