//! Async backpressure: `reserve` and `spawn_async` wait for room in a
//! bounded queue without blocking the executor, are woken one per freed
//! place, give unused places back, and fail (not hang) at shutdown.

#[path = "../../tests/common/mod.rs"]
mod common;
use common::{eventually, held_pool, within, Gate, LIMIT};
use std::future::Future;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use workyard::{Dispatcher, TrySpawnError};

/// A waker that counts its wake-ups.
#[derive(Default)]
struct Counted(AtomicUsize);

impl Wake for Counted {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, SeqCst);
    }
}

/// A future polled by hand, with a waker that counts its wake-ups.
struct Probe<F> {
    future: Pin<Box<F>>,
    wakes: Arc<Counted>,
}

impl<F: Future> Probe<F> {
    fn new(future: F) -> Self {
        Probe {
            future: Box::pin(future),
            wakes: Arc::default(),
        }
    }

    fn poll(&mut self) -> Poll<F::Output> {
        let waker = Waker::from(self.wakes.clone());
        self.future.as_mut().poll(&mut Context::from_waker(&waker))
    }

    fn ready(&mut self) -> F::Output {
        match self.poll() {
            Poll::Ready(out) => out,
            Poll::Pending => panic!("expected the future to be ready"),
        }
    }

    fn wakes(&self) -> usize {
        self.wakes.0.load(SeqCst)
    }
}

/// A paused one-worker pool bounded at `capacity`, with its queue full.
fn full_paused_pool(capacity: usize) -> (Dispatcher, Vec<workyard::JobHandle<usize>>) {
    let pool = Dispatcher::builder()
        .workers(1)
        .queue_capacity(capacity)
        .build()
        .unwrap();
    pool.pause();
    let queued = (0..capacity)
        .map(|i| pool.try_spawn(move || i).unwrap())
        .collect();
    assert!(pool.try_spawn(|| 0).unwrap_err().is_full());
    (pool, queued)
}

/// Two `reserve` futures on a full queue, polled once each: waiting, in
/// that order.
fn two_waiters(pool: &Dispatcher) -> (Probe<workyard::Reserve<'_>>, Probe<workyard::Reserve<'_>>) {
    let mut first = Probe::new(pool.reserve());
    let mut second = Probe::new(pool.reserve());
    assert!(first.poll().is_pending());
    assert!(second.poll().is_pending());
    (first, second)
}

fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
}

/// One counter per job, each bumped by its job.
fn counters(n: usize) -> Arc<Vec<AtomicUsize>> {
    Arc::new((0..n).map(|_| AtomicUsize::new(0)).collect())
}

fn assert_each_ran_once(runs: &[AtomicUsize]) {
    for (i, c) in runs.iter().enumerate() {
        assert_eq!(c.load(SeqCst), 1, "job {i} ran {} times", c.load(SeqCst));
    }
}

const JOBS: usize = 10_000;

#[test]
fn ten_thousand_spawn_async_calls_into_a_queue_of_64_run_each_job_once() {
    within(LIMIT, || {
        let pool = Dispatcher::builder()
            .workers(8)
            .queue_capacity(64)
            .build()
            .unwrap();
        // Paused until the queue is full, so that the 65th spawn must wait.
        pool.pause();
        let resumer = {
            let pool = pool.clone();
            std::thread::spawn(move || {
                eventually("the queue fills", || pool.stats().queued == 64);
                pool.resume();
            })
        };
        let runs = counters(JOBS);
        let waited = AtomicUsize::new(0);
        current_thread().block_on(async {
            for i in 0..JOBS {
                let runs = runs.clone();
                let spawn = pool.spawn_async(move || {
                    runs[i].fetch_add(1, SeqCst);
                });
                let mut spawn = pin!(spawn);
                let handle = std::future::poll_fn(|cx| {
                    let polled = spawn.as_mut().poll(cx);
                    if polled.is_pending() {
                        waited.fetch_add(1, SeqCst);
                    }
                    polled
                })
                .await
                .unwrap();
                drop(handle);
            }
        });
        resumer.join().unwrap();
        pool.wait_idle();
        assert_each_ran_once(&runs);
        assert_eq!(pool.stats().succeeded, JOBS as u64);
        assert!(waited.load(SeqCst) >= 1, "the 65th spawn waited for room");
        pool.shutdown();
    });
}

/// `tasks` tasks on `rt` reserve places and spawn `JOBS` jobs between them.
fn many_tasks_reserve(rt: tokio::runtime::Runtime, tasks: usize, capacity: usize) {
    let pool = Dispatcher::builder()
        .workers(8)
        .queue_capacity(capacity)
        .build()
        .unwrap();
    let runs = counters(JOBS);
    rt.block_on(async {
        let spawners: Vec<_> = (0..tasks)
            .map(|t| {
                let (pool, runs) = (pool.clone(), runs.clone());
                tokio::spawn(async move {
                    for i in (t..JOBS).step_by(tasks) {
                        let runs = runs.clone();
                        let permit = pool.reserve().await.unwrap();
                        permit
                            .spawn(move || {
                                runs[i].fetch_add(1, SeqCst);
                            })
                            .unwrap();
                    }
                })
            })
            .collect();
        for spawner in spawners {
            spawner.await.unwrap();
        }
    });
    pool.wait_idle();
    assert_each_ran_once(&runs);
    assert_eq!(pool.stats().succeeded, JOBS as u64);
    pool.shutdown();
}

#[test]
fn sixteen_tasks_on_one_thread_reserve_ten_thousand_places() {
    within(LIMIT, || many_tasks_reserve(current_thread(), 16, 64));
}

#[test]
fn sixteen_tasks_on_four_threads_share_a_queue_of_four() {
    within(LIMIT, || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(4)
            .build()
            .unwrap();
        many_tasks_reserve(rt, 16, 4);
    });
}

#[test]
fn a_freed_place_wakes_exactly_the_first_waiter() {
    within(LIMIT, || {
        let (pool, queued) = full_paused_pool(1);
        let (mut first, mut second) = two_waiters(&pool);
        assert_eq!((first.wakes(), second.wakes()), (0, 0));

        // A cancel through the pool frees the place at once.
        assert!(pool.cancel(queued[0].id()));
        assert_eq!((first.wakes(), second.wakes()), (1, 0));
        let permit = first.ready().unwrap();
        assert!(second.poll().is_pending(), "the permit holds the place");

        // The unused permit gives it back: now the second is woken.
        drop(permit);
        assert_eq!((first.wakes(), second.wakes()), (1, 1));
        let permit = second.ready().unwrap();
        let handle = permit.spawn(|| 7).unwrap();
        pool.resume();
        assert_eq!(handle.join().unwrap(), 7);
        pool.shutdown();
    });
}

#[test]
fn a_worker_taking_a_job_wakes_a_waiting_task() {
    within(LIMIT, || {
        let (pool, queued) = full_paused_pool(2);
        let gate = Gate::new();
        current_thread().block_on(async {
            let g = gate.clone();
            // Waits until the worker pops a queued job.
            let waiting = pool.spawn_async(move || g.wait());
            let mut waiting = pin!(waiting);
            assert!(futures_poll_once(waiting.as_mut()).await.is_pending());
            pool.resume();
            let held = waiting.await.unwrap();
            assert_eq!(queued.len(), 2);
            for handle in queued {
                handle.await.unwrap();
            }
            gate.open();
            held.await.unwrap();
        });
        pool.shutdown();
    });
}

/// Polls `f` once, with the task's own waker.
async fn futures_poll_once<F: Future + Unpin>(mut f: F) -> Poll<F::Output> {
    std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut f).poll(cx))).await
}

#[test]
fn a_dropped_permit_gives_its_place_back() {
    within(LIMIT, || {
        let pool = Dispatcher::builder()
            .workers(1)
            .queue_capacity(2)
            .build()
            .unwrap();
        pool.pause();
        let first = Probe::new(pool.reserve()).ready().unwrap();
        let second = Probe::new(pool.reserve()).ready().unwrap();
        assert_eq!(pool.stats().queued, 0, "a permit is not a job");
        assert!(matches!(pool.try_spawn(|| 0), Err(TrySpawnError::Full(_))));

        drop(first);
        let queued = pool.try_spawn(|| 1).unwrap();
        assert!(
            pool.try_spawn(|| 0).unwrap_err().is_full(),
            "exactly one place came back"
        );
        let spawned = second.spawn(|| 2).unwrap();
        assert_eq!(pool.stats().queued, 2);
        pool.resume();
        assert_eq!((queued.join().unwrap(), spawned.join().unwrap()), (1, 2));

        // Both places are free again.
        pool.pause();
        let a = pool.try_spawn(|| 3).unwrap();
        let b = pool.try_spawn(|| 4).unwrap();
        assert!(pool.try_spawn(|| 0).unwrap_err().is_full());
        pool.resume();
        assert_eq!((a.join().unwrap(), b.join().unwrap()), (3, 4));
        pool.shutdown();
    });
}

#[test]
fn a_woken_future_dropped_unpolled_hands_its_wake_up_on() {
    within(LIMIT, || {
        let (pool, queued) = full_paused_pool(1);
        let (first, mut second) = two_waiters(&pool);
        assert!(pool.cancel(queued[0].id()));
        assert_eq!((first.wakes(), second.wakes()), (1, 0));
        drop(first);
        assert_eq!(second.wakes(), 1, "the wake-up went on to the next waiter");
        let permit = second.ready().unwrap();
        drop(permit);
        pool.shutdown();
    });
}

#[test]
fn a_waiting_future_dropped_unwoken_leaves_the_next_in_line_first() {
    within(LIMIT, || {
        let (pool, queued) = full_paused_pool(1);
        let (first, mut second) = two_waiters(&pool);
        drop(first);
        assert!(pool.cancel(queued[0].id()));
        assert_eq!(second.wakes(), 1);
        drop(second.ready().unwrap());
        pool.shutdown();
    });
}

#[test]
fn shutdown_while_a_spawn_waits_returns_the_job() {
    within(LIMIT, || {
        let (pool, queued) = full_paused_pool(1);
        let mut waiting = Probe::new(pool.spawn_async(|| "not run"));
        let mut reserving = Probe::new(pool.reserve());
        assert!(waiting.poll().is_pending());
        assert!(reserving.poll().is_pending());

        pool.shutdown_background();
        assert_eq!((waiting.wakes(), reserving.wakes()), (1, 1));
        let refused = match waiting.poll() {
            Poll::Ready(Err(refused)) => refused,
            other => panic!("expected the job back, got {:?}", other.map(|r| r.is_ok())),
        };
        assert_eq!((refused.into_inner())(), "not run");
        assert!(reserving.ready().is_err());
        assert!(
            Probe::new(pool.reserve()).ready().is_err(),
            "closed: at once"
        );

        // The queued job still runs: the shutdown was graceful.
        assert_eq!(queued.into_iter().next().unwrap().join().unwrap(), 0);
        pool.shutdown();
    });
}

#[test]
fn shutdown_from_another_task_ends_a_waiting_spawn_async() {
    within(LIMIT, || {
        let (pool, gate, held) = held_pool(1);
        let queued = pool.spawn(|| 1).unwrap();
        current_thread().block_on(async {
            let (refused, ()) = tokio::join!(pool.spawn_async(|| 2), async {
                tokio::task::yield_now().await;
                pool.shutdown_background();
            });
            assert_eq!((refused.unwrap_err().into_inner())(), 2);
        });
        gate.open();
        held.join().unwrap();
        assert_eq!(queued.join().unwrap(), 1);
        pool.shutdown();
    });
}

#[test]
fn a_permit_used_after_shutdown_gives_the_job_back() {
    within(LIMIT, || {
        let pool = Dispatcher::builder()
            .workers(1)
            .queue_capacity(1)
            .build()
            .unwrap();
        let permit = Probe::new(pool.reserve()).ready().unwrap();
        pool.shutdown();
        let refused = permit.spawn(|| 5).unwrap_err();
        assert_eq!((refused.into_inner())(), 5);
    });
}

#[test]
fn an_unbounded_queue_always_has_room() {
    within(LIMIT, || {
        let pool = Dispatcher::builder().workers(1).build().unwrap();
        pool.pause();
        let permits: Vec<_> = (0..100)
            .map(|_| Probe::new(pool.reserve()).ready().unwrap())
            .collect();
        let handles: Vec<_> = permits
            .into_iter()
            .enumerate()
            .map(|(i, p)| p.spawn(move || i).unwrap())
            .collect();
        pool.resume();
        let total: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
        assert_eq!(total, 4950);
        pool.shutdown();
    });
}

#[test]
fn the_futures_are_send_for_multi_threaded_executors() {
    fn assert_send<T: Send>(_: &T) {}
    let pool = Dispatcher::builder().workers(1).build().unwrap();
    let spawn = pool.spawn_async(|| 1);
    assert_send(&spawn);
    let reserve = pool.reserve();
    assert_send(&reserve);
    drop((spawn, reserve));
    pool.shutdown();
}
