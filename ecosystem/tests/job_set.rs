//! `JobSet`: results in the order the jobs finish, blocking and async;
//! exact `len`; cancel on drop unless detached.

#[path = "../../tests/common/mod.rs"]
mod common;
use common::{eventually, within, Gate, LIMIT};
use std::collections::HashSet;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use workyard::{CancelReason, Dispatcher, JobError, JobId, JobSet, JobStatus};

/// `n` jobs in a set, job `i` returning `i` once gate `i` opens.
fn gated_set(pool: &Dispatcher, n: usize) -> (JobSet<usize>, Vec<JobId>, Vec<Gate>) {
    let mut set = JobSet::new();
    let gates: Vec<Gate> = (0..n).map(|_| Gate::new()).collect();
    let ids = gates
        .iter()
        .enumerate()
        .map(|(i, gate)| {
            let gate = gate.clone();
            set.spawn(pool, move || {
                gate.wait();
                i
            })
            .unwrap()
        })
        .collect();
    (set, ids, gates)
}

/// The order the gated jobs are let finish in: not the order they went in.
const ORDER: [usize; 4] = [2, 0, 3, 1];

#[test]
fn join_next_gives_results_in_the_order_the_jobs_finish() {
    within(LIMIT, || {
        let pool = Dispatcher::builder().workers(4).build().unwrap();
        let (mut set, ids, gates) = gated_set(&pool, 4);
        assert_eq!(set.len(), 4);
        assert!(set.try_join_next().is_none(), "nothing finished yet");
        for (joined, &i) in ORDER.iter().enumerate() {
            gates[i].open();
            let (id, result) = set.join_next().unwrap();
            assert_eq!((id, result.unwrap()), (ids[i], i));
            assert_eq!(set.len(), 3 - joined);
        }
        assert!(set.is_empty());
        assert!(set.join_next().is_none());
        pool.shutdown();
    });
}

#[test]
fn join_next_async_gives_results_in_the_order_the_jobs_finish() {
    within(LIMIT, || {
        let pool = Dispatcher::builder().workers(4).build().unwrap();
        let (mut set, ids, gates) = gated_set(&pool, 4);
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            for (joined, &i) in ORDER.iter().enumerate() {
                gates[i].open();
                let (id, result) = set.join_next_async().await.unwrap();
                assert_eq!((id, result.unwrap()), (ids[i], i));
                assert_eq!(set.len(), 3 - joined);
            }
            assert!(set.join_next_async().await.is_none());
        });
        pool.shutdown();
    });
}

/// A waker that counts its wake-ups.
#[derive(Default)]
struct Counted(AtomicUsize);

impl Wake for Counted {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, SeqCst);
    }
}

#[test]
fn poll_join_next_is_woken_once_per_finished_job() {
    within(LIMIT, || {
        let pool = Dispatcher::builder().workers(2).build().unwrap();
        let counted = Arc::new(Counted::default());
        let waker = Waker::from(counted.clone());
        let mut cx = Context::from_waker(&waker);

        let mut empty = JobSet::<()>::new();
        assert!(matches!(empty.poll_join_next(&mut cx), Poll::Ready(None)));

        let (mut set, ids, gates) = gated_set(&pool, 2);
        assert!(set.poll_join_next(&mut cx).is_pending());
        gates[1].open();
        eventually("the finished job wakes the set", || {
            counted.0.load(SeqCst) == 1
        });
        match set.poll_join_next(&mut cx) {
            Poll::Ready(Some((id, Ok(1)))) => assert_eq!(id, ids[1]),
            other => panic!("expected job 1, got {:?}", other.map(|o| o.map(|j| j.0))),
        }
        assert!(set.poll_join_next(&mut cx).is_pending());
        assert_eq!(counted.0.load(SeqCst), 1, "no wake-up without a finish");
        gates[0].open();
        eventually("the second finish wakes the set", || {
            counted.0.load(SeqCst) == 2
        });
        assert!(matches!(
            set.poll_join_next(&mut cx),
            Poll::Ready(Some((_, Ok(0))))
        ));
        assert!(matches!(set.poll_join_next(&mut cx), Poll::Ready(None)));
        pool.shutdown();
    });
}

/// A paused one-worker pool and a set of `n` jobs that count their runs.
fn paused_set(n: usize) -> (Dispatcher, JobSet<()>, Vec<JobId>, Arc<AtomicUsize>) {
    let pool = Dispatcher::builder().workers(1).build().unwrap();
    pool.pause();
    let runs = Arc::new(AtomicUsize::new(0));
    let mut set = JobSet::new();
    let ids = (0..n)
        .map(|_| {
            let runs = runs.clone();
            set.spawn(&pool, move || {
                runs.fetch_add(1, SeqCst);
            })
            .unwrap()
        })
        .collect();
    (pool, set, ids, runs)
}

#[test]
fn dropping_the_set_cancels_its_queued_jobs() {
    within(LIMIT, || {
        let (pool, set, ids, runs) = paused_set(5);
        assert_eq!(set.len(), 5);
        drop(set);
        for &id in &ids {
            assert_eq!(pool.status(id), Some(JobStatus::Cancelled));
            assert_eq!(
                pool.info(id).unwrap().cancel_reason(),
                Some(CancelReason::Caller)
            );
        }
        pool.resume();
        pool.wait_idle();
        assert_eq!(runs.load(SeqCst), 0, "no cancelled job ran");
        let stats = pool.stats();
        assert_eq!((stats.cancelled, stats.succeeded), (5, 0));
        pool.shutdown();
    });
}

#[test]
fn dropping_the_set_asks_its_running_job_to_stop() {
    within(LIMIT, || {
        let pool = Dispatcher::builder().workers(1).build().unwrap();
        let (set, ids, gates) = gated_set(&pool, 2);
        eventually("the first job runs", || {
            pool.status(ids[0]) == Some(JobStatus::Running)
        });
        drop(set);
        assert_eq!(pool.status(ids[1]), Some(JobStatus::Cancelled));
        gates[0].open();
        pool.wait_idle();
        assert_eq!(pool.status(ids[0]), Some(JobStatus::Cancelled));
        assert_eq!(pool.stats().cancelled, 2);
        pool.shutdown();
    });
}

#[test]
fn detached_jobs_keep_running() {
    within(LIMIT, || {
        let (pool, mut set, ids, runs) = paused_set(5);
        set.detach_all();
        assert_eq!(set.len(), 0);
        assert!(set.try_join_next().is_none());
        drop(set);
        pool.resume();
        pool.wait_idle();
        assert_eq!(runs.load(SeqCst), 5);
        for &id in &ids {
            assert_eq!(pool.status(id), Some(JobStatus::Succeeded));
        }
        pool.shutdown();
    });
}

#[test]
fn a_set_keeps_working_after_detach_all() {
    within(LIMIT, || {
        let pool = Dispatcher::builder().workers(2).build().unwrap();
        let (mut set, _, gates) = gated_set(&pool, 2);
        set.detach_all();
        let late = set.spawn(&pool, || 9).unwrap();
        // The detached jobs finish now; their wake-ups find nothing to join.
        for gate in &gates {
            gate.open();
        }
        assert_eq!(
            set.join_next().map(|(id, r)| (id, r.unwrap())),
            Some((late, 9))
        );
        assert!(set.join_next().is_none());
        pool.shutdown();
    });
}

#[test]
fn cancel_all_leaves_the_jobs_to_be_joined_as_cancelled() {
    within(LIMIT, || {
        let (pool, mut set, ids, runs) = paused_set(3);
        set.cancel_all();
        assert_eq!(set.len(), 3);
        let mut joined = Vec::new();
        while let Some((id, result)) = set.join_next() {
            assert!(matches!(
                result,
                Err(JobError::Cancelled(CancelReason::Caller))
            ));
            joined.push(id);
        }
        joined.sort_unstable();
        assert_eq!(joined, ids);
        pool.resume();
        pool.wait_idle();
        assert_eq!(runs.load(SeqCst), 0);
        pool.shutdown();
    });
}

#[test]
fn a_finished_handle_inserted_is_ready_at_once() {
    within(LIMIT, || {
        let pool = Dispatcher::builder().workers(1).build().unwrap();
        let handle = pool.spawn(|| 3).unwrap();
        pool.wait_idle();
        assert!(handle.is_finished());
        let mut set = JobSet::new();
        let id = set.insert(handle);
        assert_eq!(
            set.try_join_next().map(|(i, r)| (i, r.unwrap())),
            Some((id, 3))
        );
        assert!(set.is_empty());
        pool.shutdown();
    });
}

#[test]
fn failures_and_panics_come_back_as_job_errors() {
    within(LIMIT, || {
        let pool = Dispatcher::builder().workers(2).build().unwrap();
        let mut set: JobSet<u32, String> = JobSet::new();
        let ok = set.spawn(&pool, workyard::fallible(|| Ok(1))).unwrap();
        let failed = set
            .spawn(&pool, workyard::fallible(|| Err("no".to_string())))
            .unwrap();
        let panicked = set
            .spawn(
                &pool,
                workyard::fallible(|| -> Result<u32, String> { panic!("boom") }),
            )
            .unwrap();
        let mut seen = 0;
        for (id, result) in &mut set {
            match result {
                Ok(1) => assert_eq!(id, ok),
                Err(JobError::Failed(e)) => assert_eq!((id, e.as_str()), (failed, "no")),
                Err(JobError::Panicked(p)) => {
                    assert_eq!((id, p.message()), (panicked, Some("boom")))
                }
                other => panic!("unexpected {other:?}"),
            }
            seen += 1;
        }
        assert_eq!(seen, 3);
        pool.shutdown();
    });
}

#[test]
fn thousands_of_jobs_on_sixteen_workers_are_each_joined_once() {
    within(LIMIT, || {
        const N: u64 = 5_000;
        let pool = Dispatcher::builder().workers(16).build().unwrap();
        let mut set = JobSet::new();
        let mut spawned = HashSet::new();
        for i in 0..N {
            spawned.insert(set.spawn(&pool, move || i).unwrap());
        }
        assert_eq!(set.len(), N as usize);
        let mut sum = 0;
        let mut joined = HashSet::new();
        while let Some((id, result)) = set.join_next() {
            assert!(joined.insert(id), "{id} joined twice");
            sum += result.unwrap();
        }
        assert_eq!(joined, spawned);
        assert_eq!(sum, N * (N - 1) / 2);
        pool.shutdown();
    });
}

#[test]
fn async_joins_while_a_multi_threaded_runtime_spawns() {
    within(LIMIT, || {
        const N: u64 = 2_000;
        let pool = Dispatcher::builder()
            .workers(8)
            .queue_capacity(32)
            .build()
            .unwrap();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(4)
            .build()
            .unwrap();
        let sum = rt.block_on(async {
            let pool = pool.clone();
            tokio::spawn(async move {
                let mut set = JobSet::new();
                let mut sum = 0;
                for i in 0..N {
                    set.insert(pool.spawn_async(move || i).await.unwrap());
                    // Join what has finished meanwhile, without waiting.
                    while let Some((_, r)) = set.try_join_next() {
                        sum += r.unwrap();
                    }
                }
                while let Some((_, r)) = set.join_next_async().await {
                    sum += r.unwrap();
                }
                sum
            })
            .await
            .unwrap()
        });
        assert_eq!(sum, N * (N - 1) / 2);
        pool.shutdown();
    });
}

#[test]
fn a_job_joins_a_set_of_its_own_jobs_on_a_single_worker() {
    within(LIMIT, || {
        let pool = Dispatcher::builder().workers(1).build().unwrap();
        let inner = pool.clone();
        let outer = pool
            .spawn(move || {
                let mut set = JobSet::new();
                for i in 1..=3u32 {
                    set.spawn(&inner, move || i * 10).unwrap();
                }
                // The one worker runs them while this job waits.
                set.map(|(_, r)| r.unwrap()).sum::<u32>()
            })
            .unwrap();
        assert_eq!(outer.join().unwrap(), 60);
        pool.shutdown();
    });
}

#[test]
fn a_set_is_send_and_its_future_too() {
    fn assert_send<T: Send>(_: &T) {}
    let mut set = JobSet::<u8>::new();
    assert_send(&set);
    let next = set.join_next_async();
    assert_send(&next);
    assert!(futures_ready_none(next));
}

/// Polls a future once: `true` if it is ready with `None`.
fn futures_ready_none<F: Future<Output = Option<T>>, T>(f: F) -> bool {
    let waker = Waker::from(Arc::new(Counted::default()));
    let mut f = std::pin::pin!(f);
    matches!(
        f.as_mut().poll(&mut Context::from_waker(&waker)),
        Poll::Ready(None)
    )
}
