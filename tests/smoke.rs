//! The basics: jobs run, results come back, counts are exact.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use workyard::{Dispatcher, JobStatus};

#[test]
fn runs_every_job_once_and_returns_results() {
    let pool = Dispatcher::builder().workers(2).build().unwrap();
    let ran = Arc::new(AtomicUsize::new(0));
    let handles: Vec<_> = (0..1000u64)
        .map(|i| {
            let ran = ran.clone();
            pool.spawn(move || {
                ran.fetch_add(1, Ordering::Relaxed);
                i * 3
            })
            .unwrap()
        })
        .collect();
    for (i, h) in handles.into_iter().enumerate() {
        assert_eq!(h.join().unwrap(), i as u64 * 3);
    }
    pool.wait_idle();
    assert_eq!(ran.load(Ordering::Relaxed), 1000);
    let stats = pool.stats();
    assert_eq!(stats.succeeded, 1000);
    assert_eq!((stats.failed, stats.panicked, stats.cancelled), (0, 0, 0));
    assert_eq!((stats.queued, stats.running), (0, 0));
    assert_eq!(
        stats.per_worker.iter().map(|w| w.jobs_run).sum::<u64>(),
        1000
    );
}

#[test]
fn detached_jobs_still_run() {
    let pool = Dispatcher::builder().workers(2).build().unwrap();
    let ran = Arc::new(AtomicUsize::new(0));
    let mut last = None;
    for _ in 0..500 {
        let ran = ran.clone();
        last = Some(
            pool.spawn(move || ran.fetch_add(1, Ordering::Relaxed))
                .unwrap()
                .id(),
        );
    }
    pool.wait_idle();
    assert_eq!(ran.load(Ordering::Relaxed), 500);
    assert_eq!(pool.status(last.unwrap()), Some(JobStatus::Succeeded));
}
