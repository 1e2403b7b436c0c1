//! `JobHandle::cancel_on_drop`: dropping the guard cancels a queued job
//! (it never runs) and asks a running one to stop; `detach` and `join`
//! take the plain handle's behaviour back.

#[path = "../../tests/common/mod.rs"]
mod common;
use common::{eventually, within, Gate, LIMIT};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use workyard::{CancelOnDrop, Dispatcher, JobStatus};

fn assert_send_sync<T: Send + Sync>() {}

#[test]
fn the_guard_is_send_and_sync_like_the_handle() {
    assert_send_sync::<CancelOnDrop<u32>>();
    assert_send_sync::<CancelOnDrop<Vec<u8>, String>>();
}

#[test]
fn dropping_guards_cancels_queued_jobs_and_stops_running_ones() {
    within(LIMIT, || {
        let workers = 8;
        let pool = Dispatcher::builder().workers(workers).build().unwrap();
        let started = Arc::new(AtomicUsize::new(0));
        let saw_cancel = Arc::new(AtomicUsize::new(0));
        let guards: Vec<CancelOnDrop<()>> = (0..64)
            .map(|_| {
                let (started, saw_cancel) = (Arc::clone(&started), Arc::clone(&saw_cancel));
                pool.spawn(move || {
                    started.fetch_add(1, SeqCst);
                    // Holds its worker until asked to stop.
                    while !workyard::is_cancelled() {
                        std::thread::yield_now();
                    }
                    saw_cancel.fetch_add(1, SeqCst);
                })
                .unwrap()
                .cancel_on_drop()
            })
            .collect();
        eventually("every worker runs a job", || {
            started.load(SeqCst) == workers
        });
        let ids: Vec<_> = guards.iter().map(|g| g.id()).collect();
        // Queued ones first: a worker freed by a stop would start one.
        let (running, queued): (Vec<_>, Vec<_>) = guards
            .into_iter()
            .partition(|g| g.status() == JobStatus::Running);
        assert_eq!((running.len(), queued.len()), (workers, 64 - workers));
        drop(queued);
        drop(running);
        pool.wait_idle();
        assert_eq!(started.load(SeqCst), workers, "no queued job ran");
        assert_eq!(saw_cancel.load(SeqCst), workers);
        for id in ids {
            assert_eq!(pool.status(id), Some(JobStatus::Cancelled));
        }
        let stats = pool.stats();
        assert_eq!((stats.cancelled, stats.succeeded), (64, 0));
        pool.shutdown();
    });
}

#[test]
fn detach_join_and_join_timeout_keep_the_job() {
    within(LIMIT, || {
        let pool = Dispatcher::builder().workers(8).build().unwrap();
        assert_eq!(
            pool.spawn(|| 7).unwrap().cancel_on_drop().join().unwrap(),
            7
        );

        // Detached: dropping the plain handle lets the job finish.
        let gate = Gate::new();
        let g = gate.clone();
        let guard = pool.spawn(move || g.wait()).unwrap().cancel_on_drop();
        let id = guard.id();
        drop(guard.detach());
        gate.open();
        pool.wait_idle();
        assert_eq!(pool.status(id), Some(JobStatus::Succeeded));

        // A join that times out gives back a guard that still cancels.
        let gate = Gate::new();
        let g = gate.clone();
        let guard = pool
            .spawn(move || {
                g.wait();
                1
            })
            .unwrap()
            .cancel_on_drop();
        eventually("the job runs", || guard.status() == JobStatus::Running);
        let guard = guard
            .join_timeout(std::time::Duration::from_millis(1))
            .unwrap_err();
        assert_eq!(guard.status(), JobStatus::Running);
        let id = guard.id();
        drop(guard);
        gate.open();
        pool.wait_idle();
        assert_eq!(pool.status(id), Some(JobStatus::Cancelled));
        pool.shutdown();
    });
}

#[test]
fn an_awaited_guard_gives_the_result_and_a_dropped_future_cancels() {
    within(LIMIT, || {
        let pool = Dispatcher::builder().workers(8).build().unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let guard = pool.spawn(|| 40 + 2).unwrap().cancel_on_drop();
        assert_eq!(runtime.block_on(guard).unwrap(), 42);

        // A select! whose other branch wins drops the guard: the job stops.
        let started = Arc::new(AtomicUsize::new(0));
        let s = Arc::clone(&started);
        let guard = pool
            .spawn(move || {
                s.fetch_add(1, SeqCst);
                while !workyard::is_cancelled() {
                    std::thread::yield_now();
                }
            })
            .unwrap()
            .cancel_on_drop();
        let id = guard.id();
        eventually("the job runs", || started.load(SeqCst) == 1);
        let winner = runtime.block_on(async move {
            tokio::select! {
                _ = guard => "job",
                _ = std::future::ready(()) => "other",
            }
        });
        assert_eq!(winner, "other");
        pool.wait_idle();
        assert_eq!(pool.status(id), Some(JobStatus::Cancelled));
        pool.shutdown();
    });
}
