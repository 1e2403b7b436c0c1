//! Status records stay bounded: live jobs plus the configured history.

mod common;
use common::{within, LIMIT};
use workyard::{Dispatcher, JobStatus};

fn run_jobs(pool: &Dispatcher, n: usize) {
    for _ in 0..n {
        pool.spawn(|| ()).unwrap();
    }
    pool.wait_idle();
}

#[test]
fn records_do_not_grow_with_jobs_run() {
    within(LIMIT * 4, || {
        const TOTAL: usize = if cfg!(debug_assertions) {
            500_000
        } else {
            5_000_000
        };
        let pool = Dispatcher::builder()
            .workers(2)
            .history(1000)
            .build()
            .unwrap();
        run_jobs(&pool, 100_000);
        let after_100k = pool.stats().records;
        run_jobs(&pool, TOTAL - 100_000);
        let after_all = pool.stats().records;
        assert_eq!(pool.stats().succeeded, TOTAL as u64);
        assert!(
            after_all <= after_100k,
            "{after_all} records after {TOTAL} jobs, {after_100k} after 100k"
        );
        // At rest: exactly the ring, the last 1024 jobs (1000 rounded up).
        assert_eq!((after_100k, after_all), (1024, 1024));
    });
}

#[test]
fn spawning_and_joining_stays_bounded_without_wait_idle() {
    within(LIMIT * 2, || {
        const TOTAL: usize = if cfg!(debug_assertions) {
            100_000
        } else {
            1_000_000
        };
        let pool = Dispatcher::builder()
            .workers(2)
            .history(1000)
            .build()
            .unwrap();
        let mut peak = 0;
        for i in 0..TOTAL {
            pool.spawn(|| ()).unwrap().join().unwrap();
            if i % 10_000 == 0 {
                peak = peak.max(pool.stats().records);
            }
        }
        // One live job at a time: the ring alone holds the records.
        assert!(peak <= 1024, "peak {peak} records");
    });
}

#[test]
fn recent_jobs_stay_queryable_and_old_ones_go() {
    within(LIMIT, || {
        let pool = Dispatcher::builder()
            .workers(1)
            .history(100)
            .build()
            .unwrap();
        let first = pool.spawn(|| ()).unwrap().id();
        run_jobs(&pool, 10_000);
        let last = pool.spawn(|| ()).unwrap().id();
        pool.wait_idle();
        assert_eq!(pool.status(last), Some(JobStatus::Succeeded));
        assert_eq!(pool.status(first), None, "evicted from the history");
    });
}

#[test]
fn live_jobs_are_never_evicted() {
    within(LIMIT, || {
        let pool = Dispatcher::builder().workers(1).history(0).build().unwrap();
        pool.pause();
        let ids: Vec<_> = (0..5_000)
            .map(|_| pool.spawn(|| ()).unwrap().id())
            .collect();
        assert!(ids
            .iter()
            .all(|&id| pool.status(id) == Some(JobStatus::Queued)));
        pool.resume();
        pool.wait_idle();
    });
}
