//! Races between the control paths (halt_worker, set_workers, shutdown)
//! and between spawns and the id index. Each test drives the race many
//! times and asserts exact states; a timeout only detects a hang.

mod common;
use common::{eventually, threads_named, within, LIMIT};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};
use workyard::{Dispatcher, JobId, WorkerError, WorkerState};

/// Rounds for the control races: each builds a pool, so a round costs a
/// few thread starts.
const ROUNDS: usize = if cfg!(debug_assertions) { 100 } else { 500 };

/// Keeps one worker busy with a chain of tiny jobs (each spawns the next
/// onto its own worker's deque) until `stop`, so that the workers loop
/// through their halt check instead of parking.
fn chain(pool: Dispatcher, stop: Arc<AtomicBool>) {
    if !stop.load(SeqCst) {
        let next = pool.clone();
        let _ = pool.spawn(move || chain(next, stop));
    }
}

/// Lines two threads up closer than a `Barrier` does (both spin), then
/// delays the caller by `skew` spins, so that rounds sweep the interleavings
/// of two short control calls.
#[derive(Clone, Default)]
struct Start(Arc<AtomicUsize>);

impl Start {
    fn go(&self, skew: usize) {
        self.0.fetch_add(1, SeqCst);
        while self.0.load(SeqCst) < 2 {
            std::hint::spin_loop();
        }
        for _ in 0..skew {
            std::hint::spin_loop();
        }
    }
}

/// Runs `n` jobs that each wait for all the others: they finish only if
/// `n` worker threads really run. A job that waits 10 s for the others has
/// proved that fewer do (a hang, reported as such).
fn rendezvous(pool: &Dispatcher, n: usize) {
    let arrived = Arc::new(AtomicUsize::new(0));
    let handles: Vec<_> = (0..n)
        .map(|_| {
            let arrived = arrived.clone();
            pool.spawn(move || {
                arrived.fetch_add(1, SeqCst);
                let deadline = Instant::now() + Duration::from_secs(10);
                while arrived.load(SeqCst) < n {
                    assert!(Instant::now() < deadline, "fewer than {n} workers run");
                    std::thread::yield_now();
                }
            })
            .unwrap()
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
}

/// Two `halt_worker` calls race for the last two workers. At most one may
/// succeed, and a refused halt must leave its worker running: the undo of
/// a refused halt must not leave a slot counted as running with no thread
/// behind it, nor let the worker it "undid" exit anyway. (The windows are
/// nanoseconds wide and this seldom lands in them; the loom model in
/// `src/worker/slot_loom.rs` is what finds both failures.)
#[test]
fn racing_halt_workers_leave_the_refused_worker_running() {
    within(LIMIT * 2, || {
        for round in 0..ROUNDS {
            let pool = Dispatcher::builder().workers(2).build().unwrap();
            let stop = Arc::new(AtomicBool::new(false));
            chain(pool.clone(), stop.clone());
            chain(pool.clone(), stop.clone());
            let start = Start::default();
            let racer = {
                let (pool, start) = (pool.clone(), start.clone());
                std::thread::spawn(move || {
                    start.go(0);
                    pool.halt_worker(1)
                })
            };
            start.go(round % 16);
            let first = pool.halt_worker(0);
            let second = racer.join().unwrap();
            let halted = usize::from(first.is_ok()) + usize::from(second.is_ok());
            assert!(halted <= 1, "both halts succeeded: {first:?} {second:?}");
            stop.store(true, SeqCst);
            pool.wait_idle();
            // Every worker whose halt was refused still runs jobs.
            rendezvous(&pool, 2 - halted);
            assert_eq!(pool.workers(), 2 - halted);
            pool.shutdown();
        }
    });
}

/// `set_workers(1)` (a shrink) races `halt_worker(0)` on a pool of two:
/// whatever the interleaving, at least one worker must keep running, or
/// queued jobs would never run.
#[test]
fn shrink_racing_halt_worker_keeps_a_worker() {
    within(LIMIT * 2, || {
        for round in 0..ROUNDS {
            let pool = Dispatcher::builder().workers(2).build().unwrap();
            let start = Start::default();
            let racer = {
                let (pool, start) = (pool.clone(), start.clone());
                std::thread::spawn(move || {
                    start.go(0);
                    pool.set_workers(1)
                })
            };
            start.go(round % 16);
            let halted = pool.halt_worker(0);
            racer.join().unwrap().unwrap();
            assert!(
                pool.workers() >= 1,
                "no worker left (halt_worker(0): {halted:?})"
            );
            assert_eq!(pool.spawn(|| 7).unwrap().join().unwrap(), 7);
            pool.shutdown();
        }
    });
}

/// A job pushed out of the history ring while still queued moves to the
/// overflow; it must be findable by id at every moment of the move.
#[test]
fn a_job_moving_out_of_the_ring_stays_findable() {
    within(LIMIT * 2, || {
        const PER_POOL: usize = 200_000;
        const POOLS: usize = if cfg!(debug_assertions) { 1 } else { 10 };
        // Ids are numbers from 1 in spawn order: any pool's ids name the
        // same jobs of a fresh pool.
        let ids: Arc<Vec<JobId>> = {
            let scratch = Dispatcher::builder().workers(1).history(0).build().unwrap();
            Arc::new(
                (0..PER_POOL)
                    .map(|_| scratch.spawn(|| ()).unwrap().id())
                    .collect(),
            )
        };
        for _ in 0..POOLS {
            // A ring of one slot: every spawn pushes the previous job out.
            let pool = Dispatcher::builder().workers(1).history(1).build().unwrap();
            pool.pause();
            let last = Arc::new(AtomicU64::new(0));
            let done = Arc::new(AtomicBool::new(false));
            let checked = Arc::new(AtomicU64::new(0));
            let checker = {
                let (pool, last, done, ids, checked) = (
                    pool.clone(),
                    last.clone(),
                    done.clone(),
                    ids.clone(),
                    checked.clone(),
                );
                std::thread::spawn(move || {
                    while !done.load(SeqCst) {
                        let n = last.load(SeqCst);
                        if n == 0 {
                            continue;
                        }
                        // Queued (the pool is paused) since its spawn returned.
                        let id = ids[n as usize - 1];
                        assert!(pool.status(id).is_some(), "queued {id:?} not found");
                        checked.fetch_add(1, SeqCst);
                    }
                })
            };
            for (n, id) in ids.iter().enumerate() {
                let handle = pool.spawn(|| ()).unwrap();
                assert_eq!(handle.id(), *id);
                last.store(n as u64 + 1, SeqCst);
                if n == PER_POOL / 2 {
                    // On a loaded machine the checker may not have run at
                    // all yet: let it look at least once mid-stream.
                    while checked.load(SeqCst) == 0 {
                        std::thread::yield_now();
                    }
                }
            }
            done.store(true, SeqCst);
            checker.join().unwrap();
            assert!(checked.load(SeqCst) > 0);
            pool.resume();
            pool.shutdown();
        }
    });
}

/// `set_workers` growing the pool races `shutdown`: shutdown returns only
/// once the threads are gone, so no worker thread may run after it
/// returned, and the grow either fails with `Shutdown` or started its
/// threads before the shutdown (which then joined them). Orders are
/// carried out one at a time by the control thread, so this holds by
/// construction; the test checks the outcome, counting the threads by name.
#[test]
fn grow_racing_shutdown_starts_no_thread_after_it_returned() {
    within(LIMIT, || {
        for round in 0..50 {
            let prefix = format!("grow-race-{round}-");
            let pool = Dispatcher::builder()
                .workers(1)
                .max_workers(8)
                .thread_name({
                    let prefix = prefix.clone();
                    move |i| format!("{prefix}{i}")
                })
                .build()
                .unwrap();
            let barrier = Arc::new(std::sync::Barrier::new(2));
            let grower = {
                let (pool, barrier) = (pool.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    pool.set_workers(8)
                })
            };
            barrier.wait();
            pool.shutdown();
            let states = |pool: &Dispatcher| -> Vec<WorkerState> {
                pool.stats().per_worker.iter().map(|w| w.state).collect()
            };
            // Joined: every thread left its loop (a thread the kernel has
            // not yet reaped may still be listed for a moment).
            assert!(states(&pool).iter().all(|s| *s == WorkerState::Exited));
            eventually("the joined threads are gone", || {
                threads_named(&prefix) == 0
            });
            let grown = grower.join().unwrap();
            assert!(
                matches!(grown, Ok(()) | Err(WorkerError::Shutdown)),
                "round {round}: {grown:?}"
            );
            // A thread started after shutdown returned would show up here.
            assert!(
                states(&pool).iter().all(|s| *s == WorkerState::Exited),
                "round {round}: {:?}",
                states(&pool)
            );
            assert_eq!(
                threads_named(&prefix),
                0,
                "round {round}: started after shutdown"
            );
            assert_eq!(pool.workers(), 0);
        }
    });
}

/// A halted worker's thread still runs its thread-local destructors after
/// its slot is free again; one of them may give a worker order (which
/// takes the dispatcher's control lock). `grows` concurrent `set_workers`
/// growing into that slot join the old thread first: none may hold the
/// lock meanwhile, nor wait for the slot's join lock while holding it.
fn grows_into_a_slot_whose_old_thread_gives_an_order_as_it_exits(grows: usize) {
    struct OrderOnExit(Dispatcher);
    impl Drop for OrderOnExit {
        fn drop(&mut self) {
            // Long enough for the grows to reach the join.
            std::thread::sleep(Duration::from_millis(300));
            assert!(self.0.halt_worker(usize::MAX).is_err());
        }
    }
    thread_local! {
        static ON_EXIT: std::cell::RefCell<Option<OrderOnExit>> =
            const { std::cell::RefCell::new(None) };
    }
    within(LIMIT, move || {
        let pool = Dispatcher::builder()
            .workers(2)
            .max_workers(2)
            .build()
            .unwrap();
        let (ran_on, on) = std::sync::mpsc::channel();
        let both = Arc::new(std::sync::Barrier::new(2));
        let handles: Vec<_> = (0..2)
            .map(|_| {
                let (p, b, ran_on) = (pool.clone(), both.clone(), ran_on.clone());
                pool.spawn(move || {
                    b.wait(); // one job on each worker
                    ran_on.send(workyard::current_job().unwrap()).unwrap();
                    ON_EXIT.with(|s| *s.borrow_mut() = Some(OrderOnExit(p)));
                })
                .unwrap()
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        let first = on.recv().unwrap();
        let worker = pool.info(first).unwrap().worker().unwrap();
        pool.halt_worker(worker).unwrap();
        while pool.stats().per_worker[worker].state != workyard::WorkerState::Halted {
            std::thread::yield_now();
        }
        // Its slot turns free at the end of the worker's exit path, just
        // before the thread-local destructors run; nothing public shows
        // that moment. (Too early, the grows take the HALTING path, which
        // passes either way.)
        std::thread::sleep(Duration::from_millis(50));
        let started: Vec<_> = (0..grows)
            .map(|_| {
                let p = pool.clone();
                let grow = std::thread::spawn(move || p.set_workers(2));
                // The second grow comes while the first joins.
                std::thread::sleep(Duration::from_millis(50));
                grow
            })
            .collect();
        for grow in started {
            grow.join().unwrap().unwrap();
        }
        assert_eq!(pool.workers(), 2);
    });
}

#[test]
fn growing_into_a_slot_whose_old_thread_gives_an_order_as_it_exits() {
    grows_into_a_slot_whose_old_thread_gives_an_order_as_it_exits(1);
}

#[test]
fn two_grows_into_a_slot_whose_old_thread_gives_an_order_as_it_exits() {
    grows_into_a_slot_whose_old_thread_gives_an_order_as_it_exits(2);
}

/// Two grows wait for the same halting worker. The first to get its slot
/// back starts a new worker there; the second must not then join that new,
/// live worker (which would wait until the pool shuts down).
#[test]
fn two_grows_waiting_for_one_halting_worker_both_return() {
    within(LIMIT, || {
        let pool = Dispatcher::builder()
            .workers(2)
            .max_workers(2)
            .build()
            .unwrap();
        let (release, released) = std::sync::mpsc::channel::<()>();
        let (running, is_running) = std::sync::mpsc::channel();
        let held = pool
            .spawn(move || {
                running.send(()).unwrap();
                released.recv().unwrap();
            })
            .unwrap();
        is_running.recv().unwrap();
        let worker = pool.info(held.id()).unwrap().worker().unwrap();
        pool.halt_worker(worker).unwrap();
        let grows: Vec<_> = (0..2)
            .map(|_| {
                let p = pool.clone();
                std::thread::spawn(move || p.set_workers(2))
            })
            .collect();
        // Let both grows reach their wait for the halting thread.
        std::thread::sleep(Duration::from_millis(200));
        release.send(()).unwrap();
        held.join().unwrap();
        for grow in grows {
            grow.join().unwrap().unwrap();
        }
        assert_eq!(pool.workers(), 2);
    });
}
