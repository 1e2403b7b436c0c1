//! pause/resume, and deadlines on queued and running jobs.

mod common;
use common::{eventually, within, Gate, LIMIT};
use std::time::{Duration, Instant};
use workyard::{CancelReason, Dispatcher, JobError, JobStatus, WorkerState};

#[test]
fn pause_lets_running_jobs_finish_and_keeps_queued_ones_queued() {
    within(LIMIT, || {
        let pool = Dispatcher::builder().workers(2).build().unwrap();
        let gate = Gate::new();
        let g = gate.clone();
        let running = pool.spawn(move || g.wait()).unwrap();
        eventually("runs", || running.status() == JobStatus::Running);
        pool.pause();
        assert!(pool.is_paused());
        let queued: Vec<_> = (0..10).map(|i| pool.spawn(move || i).unwrap()).collect();
        gate.open();
        running.join().unwrap();
        eventually("workers park as paused", || {
            pool.stats()
                .per_worker
                .iter()
                .all(|w| w.state == WorkerState::Paused)
        });
        assert!(queued.iter().all(|h| h.status() == JobStatus::Queued));
        assert_eq!(pool.stats().queued, 10);
        pool.resume();
        let results: Vec<_> = queued.into_iter().map(|h| h.join().unwrap()).collect();
        assert_eq!(results, (0..10).collect::<Vec<_>>());
    });
}

#[test]
fn a_queued_job_past_its_deadline_never_runs() {
    within(LIMIT, || {
        let pool = Dispatcher::builder().workers(1).build().unwrap();
        pool.pause();
        let handle = pool
            .spawn_with_timeout(|| panic!("must not run"), Duration::from_millis(10))
            .unwrap();
        // The timer cancels it while it waits, without any worker.
        eventually("deadline passes", || {
            handle.status() == JobStatus::Cancelled
        });
        assert_eq!(handle.info().cancel_reason(), Some(CancelReason::Deadline));
        pool.resume();
        assert!(matches!(
            handle.join(),
            Err(JobError::Cancelled(CancelReason::Deadline))
        ));
        pool.wait_idle();
        assert_eq!((pool.stats().cancelled, pool.stats().panicked), (1, 0));
    });
}

#[test]
fn a_deadline_already_past_when_popped_is_caught_by_the_worker() {
    within(LIMIT, || {
        let pool = Dispatcher::builder().workers(1).build().unwrap();
        let past = Instant::now() - Duration::from_secs(1);
        let handle = pool
            .spawn_with_deadline(|| panic!("must not run"), past)
            .unwrap();
        assert!(matches!(
            handle.join(),
            Err(JobError::Cancelled(CancelReason::Deadline))
        ));
    });
}

#[test]
fn a_running_job_is_asked_to_stop_at_its_deadline() {
    within(LIMIT, || {
        let pool = Dispatcher::builder().workers(1).build().unwrap();
        let handle = pool
            .spawn_with_timeout(
                || {
                    while !workyard::is_cancelled() {
                        std::thread::yield_now();
                    }
                },
                Duration::from_millis(20),
            )
            .unwrap();
        let id = handle.id();
        assert!(matches!(
            handle.join(),
            Err(JobError::Cancelled(CancelReason::Deadline))
        ));
        pool.wait_idle();
        let info = pool.info(id).unwrap();
        assert_eq!(info.worker(), Some(0));
        // The deadline is 20 ms after spawn, so the job ended at least that
        // long after it was queued (1 ms of slack: record times come from
        // the TSC, deadlines from `Instant`).
        let lived = info.finished_at().unwrap().duration_since(info.queued_at());
        assert!(lived >= Duration::from_millis(19), "{lived:?}");
    });
}

#[test]
fn a_job_that_beats_its_deadline_succeeds() {
    within(LIMIT, || {
        let pool = Dispatcher::builder().workers(1).build().unwrap();
        let handle = pool
            .spawn_with_timeout(|| 9, Duration::from_secs(3600))
            .unwrap();
        assert_eq!(handle.join().unwrap(), 9);
    });
}
