//! `JobHandle` is a `Future`: awaited under tokio and under a minimal
//! executor, without blocking the executor's threads.

#[path = "../../tests/common/mod.rs"]
mod common;
use common::{within, Gate, LIMIT};
use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use workyard::{Dispatcher, JobError};

/// The smallest executor: polls one future, parks between polls, and
/// counts how often it was woken.
fn block_on<F: Future>(future: F) -> (F::Output, usize) {
    run(future, None::<fn()>)
}

/// Like `block_on`, but runs `between` after the first poll, which must
/// return `Pending` (so the future has registered its waker by then).
fn block_on_after_first_poll<F: Future>(future: F, between: impl FnOnce()) -> (F::Output, usize) {
    run(future, Some(between))
}

fn run<F: Future>(future: F, between: Option<impl FnOnce()>) -> (F::Output, usize) {
    struct Unpark(std::thread::Thread, AtomicUsize);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.wake_by_ref();
        }
        fn wake_by_ref(self: &Arc<Self>) {
            self.1.fetch_add(1, Ordering::SeqCst);
            self.0.unpark();
        }
    }
    let unpark = Arc::new(Unpark(std::thread::current(), AtomicUsize::new(0)));
    let waker = Waker::from(unpark.clone());
    let mut future = pin!(future);
    if let Some(between) = between {
        let first = future.as_mut().poll(&mut Context::from_waker(&waker));
        assert!(
            first.is_pending(),
            "the first poll must find the job unfinished"
        );
        between();
    }
    loop {
        if let Poll::Ready(v) = future.as_mut().poll(&mut Context::from_waker(&waker)) {
            return (v, unpark.1.load(Ordering::SeqCst));
        }
        std::thread::park();
    }
}

#[test]
fn awaited_on_a_minimal_executor() {
    within(LIMIT, || {
        let pool = Dispatcher::builder().workers(2).build().unwrap();
        let gate = Gate::new();
        let g = gate.clone();
        let handle = pool
            .spawn(move || {
                g.wait();
                "done"
            })
            .unwrap();
        let opener = std::thread::spawn(move || gate.open());
        let (result, wakes) = block_on(handle);
        opener.join().unwrap();
        assert_eq!(result.unwrap(), "done");
        assert!(wakes <= 1, "woken once at most, got {wakes}");
    });
}

#[test]
fn a_finished_job_is_ready_at_the_first_poll() {
    let pool = Dispatcher::builder().workers(1).build().unwrap();
    let handle = pool.spawn(|| 5).unwrap();
    pool.wait_idle();
    let (result, wakes) = block_on(handle);
    assert_eq!((result.unwrap(), wakes), (5, 0));
}

#[test]
fn a_panicking_job_gives_an_error_to_the_awaiter() {
    within(LIMIT, || {
        let pool = Dispatcher::builder().workers(1).build().unwrap();
        let handle = pool.spawn(|| -> u8 { panic!("async boom") }).unwrap();
        let (result, _) = block_on(handle);
        match result {
            Err(JobError::Panicked(p)) => assert_eq!(p.message(), Some("async boom")),
            other => panic!("unexpected {other:?}"),
        }
    });
}

#[test]
fn under_tokio_many_jobs_are_awaited_concurrently() {
    within(LIMIT, || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .build()
            .unwrap();
        let pool = Dispatcher::builder().workers(2).build().unwrap();
        let sum = runtime.block_on(async {
            let tasks: Vec<_> = (0..1000u64)
                .map(|i| {
                    let handle = pool.spawn(move || i * i).unwrap();
                    tokio::spawn(async move { handle.await.unwrap() })
                })
                .collect();
            let mut sum = 0;
            for t in tasks {
                sum += t.await.unwrap();
            }
            sum
        });
        assert_eq!(sum, (0..1000u64).map(|i| i * i).sum());
    });
}

#[test]
fn a_handle_dropped_before_completion_detaches_the_job() {
    within(LIMIT, || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let pool = Dispatcher::builder().workers(1).build().unwrap();
        let gate = Gate::new();
        let ran = Arc::new(AtomicUsize::new(0));
        let (g, r) = (gate.clone(), ran.clone());
        let handle = pool
            .spawn(move || {
                g.wait();
                r.fetch_add(1, Ordering::SeqCst);
                vec![0u8; 1024]
            })
            .unwrap();
        let id = handle.id();
        runtime.block_on(async {
            // Time out the await: the future (the handle) is dropped unfinished.
            let timed_out =
                tokio::time::timeout(std::time::Duration::from_millis(10), handle).await;
            assert!(timed_out.is_err());
        });
        gate.open();
        pool.wait_idle();
        assert_eq!(ran.load(Ordering::SeqCst), 1, "the detached job still ran");
        assert_eq!(pool.status(id), Some(workyard::JobStatus::Succeeded));
    });
}

#[test]
fn cancelling_wakes_the_awaiter() {
    within(LIMIT, || {
        let pool = Dispatcher::builder().workers(1).build().unwrap();
        pool.pause();
        let handle = pool.spawn(|| 1).unwrap();
        let id = handle.id();
        let p = pool.clone();
        // The waker is registered by the first poll (the pool is paused, so
        // the job is still queued); only then does another thread cancel.
        let (result, wakes) = block_on_after_first_poll(handle, move || {
            std::thread::spawn(move || assert!(p.cancel(id)));
        });
        assert!(result.unwrap_err().is_cancelled());
        assert_eq!(wakes, 1, "the cancellation woke the awaiting task once");
    });
}
