//! Every status transition, as seen through handles and by id.

mod common;
use common::{eventually, within, Gate, LIMIT};
use workyard::{fallible, CancelReason, Dispatcher, JobError, JobStatus};

#[test]
fn queued_running_succeeded() {
    within(LIMIT, || {
        let pool = Dispatcher::builder().workers(1).build().unwrap();
        pool.pause();
        let gate = Gate::new();
        let g = gate.clone();
        let handle = pool.spawn(move || g.wait()).unwrap();
        assert_eq!(handle.status(), JobStatus::Queued);
        assert_eq!(pool.status(handle.id()), Some(JobStatus::Queued));
        let info = handle.info();
        assert_eq!(
            (info.worker(), info.started_at(), info.finished_at()),
            (None, None, None)
        );

        pool.resume();
        eventually("job starts", || handle.status() == JobStatus::Running);
        let info = pool.info(handle.id()).unwrap();
        assert_eq!(info.worker(), Some(0));
        assert!(info.started_at().is_some() && info.finished_at().is_none());
        assert_eq!(pool.stats().per_worker[0].current_job, Some(handle.id()));

        gate.open();
        let id = handle.id();
        handle.join().unwrap();
        pool.wait_idle();
        let info = pool.info(id).unwrap();
        assert_eq!(info.status(), JobStatus::Succeeded);
        assert!(info.finished_at().unwrap() >= info.started_at().unwrap());
        assert!(info.started_at().unwrap() >= info.queued_at());
    });
}

#[test]
fn failed_and_panicked_are_terminal_with_errors() {
    within(LIMIT, || {
        let pool = Dispatcher::builder().workers(2).build().unwrap();
        let failed = pool.spawn(fallible(|| Err::<u8, _>("no"))).unwrap();
        let panicked = pool.spawn(|| -> u8 { panic!("kaboom {}", 7) }).unwrap();
        let (f_id, p_id) = (failed.id(), panicked.id());
        assert_eq!(failed.join().unwrap_err().into_failure(), Some("no"));
        let payload = panicked.join().unwrap_err().into_panic().unwrap();
        assert_eq!(payload.message(), Some("kaboom 7"));
        pool.wait_idle();
        assert_eq!(pool.status(f_id), Some(JobStatus::Failed));
        assert_eq!(pool.status(p_id), Some(JobStatus::Panicked));
    });
}

#[test]
fn cancelled_while_queued_never_runs() {
    within(LIMIT, || {
        let pool = Dispatcher::builder().workers(1).build().unwrap();
        pool.pause();
        let handle = pool.spawn(|| panic!("must not run")).unwrap();
        let id = handle.id();
        assert!(pool.cancel(id));
        assert!(!pool.cancel(id), "cancelling twice is a no-op");
        assert!(!handle.cancel());
        assert_eq!(handle.status(), JobStatus::Cancelled);
        let info = handle.info();
        assert_eq!(info.cancel_reason(), Some(CancelReason::Caller));
        assert_eq!((info.worker(), info.started_at()), (None, None));
        assert!(matches!(
            handle.join(),
            Err(JobError::Cancelled(CancelReason::Caller))
        ));
        pool.resume();
        pool.wait_idle();
        let stats = pool.stats();
        assert_eq!(
            (stats.cancelled, stats.panicked, stats.succeeded),
            (1, 0, 0)
        );
        assert_eq!(stats.per_worker[0].jobs_run, 0);
    });
}

#[test]
fn cancelled_while_running_ends_cancelled_whatever_it_returns() {
    within(LIMIT, || {
        let pool = Dispatcher::builder().workers(1).build().unwrap();
        let handle = pool
            .spawn(|| {
                while !workyard::is_cancelled() {
                    std::thread::yield_now();
                }
                "returned normally"
            })
            .unwrap();
        eventually("job starts", || handle.status() == JobStatus::Running);
        assert!(handle.cancel());
        assert!(handle.info().cancel_requested());
        let id = handle.id();
        assert!(handle.join().unwrap_err().is_cancelled());
        pool.wait_idle();
        let info = pool.info(id).unwrap();
        assert_eq!(info.status(), JobStatus::Cancelled);
        assert_eq!(info.worker(), Some(0), "it did start");
        assert_eq!(pool.stats().cancelled, 1);
    });
}

#[test]
fn finished_jobs_cannot_be_cancelled() {
    let pool = Dispatcher::builder().workers(1).build().unwrap();
    let handle = pool.spawn(|| 5).unwrap();
    let id = handle.id();
    assert_eq!(handle.join().unwrap(), 5);
    assert!(!pool.cancel(id));
    assert_eq!(pool.status(id), Some(JobStatus::Succeeded));
}

#[test]
fn unknown_ids_are_none() {
    let pool = Dispatcher::builder().workers(1).build().unwrap();
    let handle = pool.spawn(|| ()).unwrap();
    let mut unknown = handle.id();
    for _ in 0..3 {
        unknown = pool.spawn(|| ()).unwrap().id();
    }
    pool.wait_idle();
    let other = Dispatcher::builder().workers(1).build().unwrap();
    assert_eq!(
        other.status(unknown),
        None,
        "ids belong to their dispatcher"
    );
    assert!(!other.cancel(unknown));
    assert!(other.info(unknown).is_none());
}

#[test]
fn ids_are_sequential_from_one() {
    let pool = Dispatcher::builder().workers(2).build().unwrap();
    let ids: Vec<u64> = (0..5)
        .map(|_| pool.spawn(|| ()).unwrap().id().as_u64())
        .collect();
    assert_eq!(ids, [1, 2, 3, 4, 5]);
    // A pair joined from outside the pool is admitted like a job and
    // leaves a gap, as a refused spawn does.
    assert_eq!(pool.join(|| 1, || 2), (1, 2));
    assert_eq!(pool.spawn(|| ()).unwrap().id().as_u64(), 7);
}

#[test]
fn join_timeout_gives_the_handle_back() {
    within(LIMIT, || {
        let pool = Dispatcher::builder().workers(1).build().unwrap();
        let gate = Gate::new();
        let g = gate.clone();
        let handle = pool.spawn(move || g.wait()).unwrap();
        let handle = handle
            .join_timeout(std::time::Duration::from_millis(10))
            .unwrap_err();
        assert!(!handle.is_finished());
        gate.open();
        assert!(handle.join_timeout(LIMIT).unwrap().is_ok());
    });
}

#[test]
fn joining_from_another_thread_after_a_timeout() {
    within(LIMIT, || {
        let pool = Dispatcher::builder().workers(1).build().unwrap();
        let gate = Gate::new();
        let g = gate.clone();
        let handle = pool.spawn(move || g.wait()).unwrap();
        let handle = handle
            .join_timeout(std::time::Duration::from_millis(5))
            .unwrap_err();
        let joiner = std::thread::spawn(move || handle.join());
        gate.open();
        assert!(joiner.join().unwrap().is_ok());
    });
}

/// `stats()` counts a job once however it runs: split by `join` over two
/// workers, or waiting inside another job on the same worker.
#[test]
fn stats_count_each_running_job_once() {
    within(LIMIT, || {
        let pool = Dispatcher::builder().workers(2).build().unwrap();
        // Both halves of one job's join, held on both workers.
        let (a_gate, b_gate) = (Gate::new(), Gate::new());
        let (a, b) = (a_gate.clone(), b_gate.clone());
        let (a_in, b_in) = (Gate::new(), Gate::new());
        let (a_i, b_i) = (a_in.clone(), b_in.clone());
        let parent = pool
            .spawn(move || {
                workyard::join(
                    || {
                        a_i.open();
                        a.wait()
                    },
                    || {
                        b_i.open();
                        b.wait()
                    },
                )
            })
            .unwrap();
        a_in.wait();
        b_in.wait();
        let waiting = pool.spawn(|| 7).unwrap();
        let stats = pool.stats();
        let listed: Vec<_> = stats.running_jobs.iter().map(|j| j.id()).collect();
        assert_eq!(
            (stats.running, stats.queued, listed),
            (1, 1, vec![parent.id()]),
            "one job on two workers, one queued"
        );
        let per_worker: Vec<_> = stats.per_worker.iter().map(|w| w.running).collect();
        assert_eq!(per_worker.iter().sum::<u64>(), 1, "{per_worker:?}");
        a_gate.open();
        b_gate.open();
        parent.join().unwrap();
        assert_eq!(waiting.join().unwrap(), 7);
        pool.wait_idle();

        // A job joining another that then runs inside it, on one worker.
        let pool = Dispatcher::builder().workers(1).build().unwrap();
        let gate = Gate::new();
        let (g, p) = (gate.clone(), pool.clone());
        let inner_in = Gate::new();
        let i_in = inner_in.clone();
        let outer = pool
            .spawn(move || {
                p.spawn(move || {
                    i_in.open();
                    g.wait()
                })
                .unwrap()
                .join()
                .unwrap()
            })
            .unwrap();
        inner_in.wait();
        let stats = pool.stats();
        assert_eq!((stats.running, stats.queued), (2, 0), "outer and inner run");
        assert_eq!(stats.per_worker[0].running, 2);
        assert_eq!(stats.running_jobs.len(), 1, "the innermost is listed");
        assert_eq!(outer.status(), JobStatus::Running);
        gate.open();
        outer.join().unwrap();
        pool.wait_idle();
        let stats = pool.stats();
        assert_eq!((stats.running, stats.queued, stats.succeeded), (0, 0, 2));
    });
}
