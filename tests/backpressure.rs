//! The bounded queue: `try_spawn` says Full, `spawn` blocks until there is room.

mod common;
use common::{eventually, held_pool, within, Gate, LIMIT};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use workyard::{Dispatcher, JobStatus, TrySpawnError};

#[test]
fn try_spawn_reports_full_and_returns_the_job() {
    within(LIMIT, || {
        let pool = Dispatcher::builder()
            .workers(1)
            .queue_capacity(3)
            .build()
            .unwrap();
        pool.pause();
        let handles: Vec<_> = (0..3).map(|i| pool.try_spawn(move || i).unwrap()).collect();
        let refused = pool.try_spawn(|| 99).unwrap_err();
        assert!(refused.is_full());
        let job = refused.into_inner();
        assert_eq!(job(), 99, "the refused job comes back intact");
        assert_eq!(pool.stats().queued, 3);
        pool.resume();
        let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        assert_eq!(results, [0, 1, 2]);
    });
}

#[test]
fn running_jobs_do_not_count_against_the_bound() {
    within(LIMIT, || {
        let pool = Dispatcher::builder()
            .workers(1)
            .queue_capacity(1)
            .build()
            .unwrap();
        let gate = Gate::new();
        let g = gate.clone();
        let running = pool.spawn(move || g.wait()).unwrap();
        eventually("first job runs", || running.status() == JobStatus::Running);
        let queued = pool.try_spawn(|| ()).unwrap();
        assert!(matches!(pool.try_spawn(|| ()), Err(TrySpawnError::Full(_))));
        gate.open();
        running.join().unwrap();
        queued.join().unwrap();
    });
}

#[test]
fn spawn_blocks_while_full_and_loses_nothing() {
    within(LIMIT, || {
        let pool = Dispatcher::builder()
            .workers(2)
            .queue_capacity(4)
            .build()
            .unwrap();
        let ran = Arc::new(AtomicUsize::new(0));
        let producers: Vec<_> = (0..4)
            .map(|_| {
                let pool = pool.clone();
                let ran = ran.clone();
                std::thread::spawn(move || {
                    for _ in 0..5_000 {
                        let ran = ran.clone();
                        pool.spawn(move || ran.fetch_add(1, Ordering::Relaxed))
                            .unwrap();
                    }
                })
            })
            .collect();
        for p in producers {
            p.join().unwrap();
        }
        pool.wait_idle();
        assert_eq!(ran.load(Ordering::Relaxed), 20_000);
        assert_eq!(pool.stats().succeeded, 20_000);
    });
}

#[test]
fn a_blocked_spawner_is_released_by_progress() {
    within(LIMIT, || {
        let pool = Dispatcher::builder()
            .workers(1)
            .queue_capacity(1)
            .build()
            .unwrap();
        pool.pause();
        let first = pool.spawn(|| 1).unwrap();
        let p = pool.clone();
        let blocked = std::thread::spawn(move || p.spawn(|| 2).unwrap().join().unwrap());
        eventually("spawner waits", || !blocked.is_finished());
        pool.resume();
        assert_eq!(blocked.join().unwrap(), 2);
        assert_eq!(first.join().unwrap(), 1);
    });
}

#[test]
fn a_full_queue_does_not_deadlock_jobs_that_spawn() {
    within(LIMIT, || {
        let pool = Dispatcher::builder()
            .workers(1)
            .queue_capacity(2)
            .build()
            .unwrap();
        let p = pool.clone();
        let parent = pool
            .spawn(move || {
                let children: Vec<_> = (0..100u32).map(|i| p.spawn(move || i).unwrap()).collect();
                children.into_iter().map(|h| h.join().unwrap()).sum::<u32>()
            })
            .unwrap();
        assert_eq!(parent.join().unwrap(), (0..100).sum());
    });
}

#[test]
fn a_spawner_blocked_on_a_full_queue_is_refused_when_the_pool_closes() {
    within(LIMIT, || {
        let pool = Dispatcher::builder()
            .workers(1)
            .queue_capacity(1)
            .build()
            .unwrap();
        pool.pause();
        let queued = pool.spawn(|| 1).unwrap();
        let p = pool.clone();
        let blocked = std::thread::spawn(move || p.spawn(|| 2).map_err(|e| (e.into_inner())()));
        eventually("spawner waits for room", || {
            let stats = pool.stats();
            (stats.queued, stats.waiting_spawns) == (1, 1)
        });
        pool.shutdown();
        assert_eq!(
            blocked.join().unwrap().unwrap_err(),
            2,
            "refused, and the job came back"
        );
        assert_eq!(queued.join().unwrap(), 1, "the accepted job still ran");
        assert_eq!(pool.stats().succeeded, 1);
    });
}

#[test]
fn cancel_queued_drops_the_backlog_and_keeps_running_jobs() {
    within(LIMIT, || {
        let pool = Dispatcher::builder().workers(1).build().unwrap();
        let gate = Gate::new();
        let g = gate.clone();
        let running = pool.spawn(move || g.wait()).unwrap();
        eventually("runs", || running.status() == JobStatus::Running);
        let backlog: Vec<_> = (0..5).map(|_| pool.spawn(|| ()).unwrap()).collect();
        let dropped = pool.cancel_queued();
        assert_eq!(dropped, backlog.iter().map(|h| h.id()).collect::<Vec<_>>());
        assert_eq!(running.status(), JobStatus::Running);
        gate.open();
        running.join().unwrap();
        assert!(backlog
            .into_iter()
            .all(|h| h.join().unwrap_err().is_cancelled()));
        assert!(pool.spawn(|| 3).unwrap().join().is_ok(), "still accepting");
    });
}

/// Jobs spawning into a full queue wait for room on their worker; when a
/// peer frees the place, the waiter must get it (and keep only one).
#[test]
fn jobs_spawning_into_a_full_queue_on_two_workers_finish() {
    within(LIMIT, || {
        for round in 0..100 {
            let pool = Dispatcher::builder()
                .workers(2)
                .queue_capacity(1)
                .build()
                .unwrap();
            let parents: Vec<_> = (0..2)
                .map(|_| {
                    let p = pool.clone();
                    pool.spawn(move || {
                        for i in 0..2_000u64 {
                            drop(p.spawn(move || i).unwrap());
                        }
                    })
                    .unwrap()
                })
                .collect();
            for parent in parents {
                parent.join().unwrap();
            }
            pool.wait_idle();
            assert_eq!(pool.stats().succeeded, 4_002, "round {round}");
            pool.shutdown();
        }
    });
}

/// A worker being halted helps no one while its job waits for room, so it
/// parks: freeing a place must wake it.
#[test]
fn a_halting_workers_job_waiting_for_room_gets_it() {
    within(LIMIT, || {
        for round in 0..50 {
            let pool = Dispatcher::builder()
                .workers(2)
                .queue_capacity(1)
                .build()
                .unwrap();
            let (gate_p, gate_q) = (Gate::new(), Gate::new());
            let (g, p) = (gate_p.clone(), pool.clone());
            let parent = pool
                .spawn(move || {
                    g.wait();
                    p.spawn(|| 7).unwrap().join().unwrap()
                })
                .unwrap();
            let g = gate_q.clone();
            let other = pool.spawn(move || g.wait()).unwrap();
            eventually("both run", || {
                parent.status() == JobStatus::Running && other.status() == JobStatus::Running
            });
            let filler = pool.spawn(|| ()).unwrap();
            pool.halt_worker(parent.info().worker().unwrap()).unwrap();
            // The parent's spawn now waits for the filler's place, which the
            // other worker frees once its job returns.
            gate_p.open();
            gate_q.open();
            assert_eq!(parent.join().unwrap(), 7, "round {round}");
            filler.join().unwrap();
            other.join().unwrap();
            pool.shutdown();
        }
    });
}

/// Cancelling queued jobs frees their places at once, and only once: the
/// bound is exact again afterwards.
#[test]
fn cancelled_queued_jobs_free_their_places() {
    within(LIMIT, || {
        let (pool, gate, running) = held_pool(2);
        let a = pool.try_spawn(|| 1).unwrap();
        let b = pool.try_spawn(|| 2).unwrap();
        assert!(pool.try_spawn(|| 3).unwrap_err().is_full());
        // By id, and the whole backlog: both free places while the cancelled
        // jobs still sit in the queue.
        assert!(pool.cancel(a.id()));
        let c = pool.try_spawn(|| 3).unwrap();
        assert!(pool.try_spawn(|| 4).unwrap_err().is_full());
        assert_eq!(pool.cancel_queued(), [b.id(), c.id()]);
        let d = pool.try_spawn(|| 4).unwrap();
        let e = pool.try_spawn(|| 5).unwrap();
        assert!(
            pool.try_spawn(|| 6).unwrap_err().is_full(),
            "two places, two live jobs"
        );
        gate.open();
        running.join().unwrap();
        assert_eq!((d.join().unwrap(), e.join().unwrap()), (4, 5));
        for h in [a, b, c] {
            assert!(h.join().unwrap_err().is_cancelled());
        }
        pool.wait_idle();
        // Every cancelled job was popped by now: exactly two places again.
        pool.pause();
        let again: Vec<_> = (0..2).map(|i| pool.try_spawn(move || i).unwrap()).collect();
        assert!(pool.try_spawn(|| 9).unwrap_err().is_full());
        pool.resume();
        for h in again {
            h.join().unwrap();
        }
    });
}

/// Cancels by id racing workers that start the same jobs: whoever wins,
/// each job gives its place back once, so the bound is exact at the end.
#[test]
fn cancels_racing_starts_keep_the_bound_exact() {
    within(LIMIT, || {
        const CAP: usize = 3;
        let pool = Dispatcher::builder()
            .workers(2)
            .queue_capacity(CAP)
            .build()
            .unwrap();
        let ids = Arc::new(std::sync::Mutex::new(Vec::new()));
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let canceller = {
            let (pool, ids, done) = (pool.clone(), ids.clone(), done.clone());
            std::thread::spawn(move || {
                let mut cancelled = 0usize;
                while !done.load(Ordering::SeqCst) {
                    let last = ids.lock().unwrap().last().copied();
                    if let Some(id) = last {
                        cancelled += usize::from(pool.cancel(id));
                    }
                    std::thread::yield_now();
                }
                cancelled
            })
        };
        for i in 0..20_000u64 {
            let h = pool.spawn(move || i).unwrap();
            ids.lock().unwrap().push(h.id());
            match i % 4 {
                // By id, right away: a worker may be taking it just now.
                1 => drop(pool.cancel(h.id())),
                // Through the handle: its place goes back on pop.
                3 => drop(h.cancel()),
                _ => {}
            }
        }
        done.store(true, Ordering::SeqCst);
        let cancelled = canceller.join().unwrap();
        pool.wait_idle();
        let stats = pool.stats();
        assert_eq!(stats.succeeded + stats.cancelled, 20_000);
        assert!(cancelled as u64 <= stats.cancelled);
        pool.pause();
        let again: Vec<_> = (0..CAP).map(|_| pool.try_spawn(|| ()).unwrap()).collect();
        assert!(
            pool.try_spawn(|| ()).unwrap_err().is_full(),
            "exactly {CAP} places after the races"
        );
        pool.resume();
        for h in again {
            h.join().unwrap();
        }
    });
}

/// A value that spawns a job into its pool when dropped, and reports
/// whether the spawn was accepted.
struct SpawnsOnDrop(Option<Dispatcher>, std::sync::mpsc::Sender<bool>);

impl Drop for SpawnsOnDrop {
    fn drop(&mut self) {
        if let Some(pool) = self.0.take() {
            let accepted = pool.spawn(|| ()).is_ok();
            let _ = self.1.send(accepted);
        }
    }
}

/// A job cancelled while queued frees its place before its closure is
/// dropped: a destructor that spawns into the full queue gets that place
/// (by id here, on the calling thread; by a deadline below, on the timer
/// thread), even while no worker is free to discard the cancelled job.
#[test]
fn a_cancelled_jobs_destructor_can_spawn_into_its_place() {
    within(LIMIT, || {
        for by_deadline in [false, true] {
            let (pool, gate, blocker) = held_pool(1);
            let (tx, rx) = std::sync::mpsc::channel();
            let value = SpawnsOnDrop(Some(pool.clone()), tx);
            let job = move || drop(value);
            let queued = if by_deadline {
                let due = std::time::Instant::now() + std::time::Duration::from_millis(1);
                pool.spawn_with_deadline(job, due).unwrap()
            } else {
                pool.spawn(job).unwrap()
            };
            if by_deadline {
                // The control thread cancels it, frees its place at once,
                // and leaves the closure (user code) to the worker that
                // discards the job: it runs no user code itself.
                eventually("the deadline cancels it", || {
                    queued.status() == JobStatus::Cancelled
                });
                // The control thread gives the place back just after its
                // cancel wins (it must win first: a place given back
                // for a job a worker then claims would be counted twice),
                // so a spawn may see the queue full for a moment; the
                // worker is still held, so nothing else can free it.
                let taken = loop {
                    match pool.try_spawn(|| ()) {
                        Ok(taken) => break taken,
                        Err(e) if e.is_full() => std::thread::yield_now(),
                        Err(_) => panic!("the pool closed"),
                    }
                };
                drop(taken);
                assert!(pool.try_spawn(|| ()).unwrap_err().is_full());
                gate.open();
                assert_eq!(rx.recv(), Ok(true), "the discarding worker drops it");
            } else {
                assert!(pool.cancel(queued.id()));
                // The worker is still held: only the early give-back can
                // make room for the destructor's spawn.
                assert_eq!(rx.recv(), Ok(true));
                gate.open();
            }
            assert_eq!(queued.status(), JobStatus::Cancelled);
            blocker.join().unwrap();
            pool.wait_idle();
            let expected = if by_deadline { 3 } else { 2 };
            assert_eq!(
                pool.stats().succeeded,
                expected,
                "the blocker, the job spawned by the destructor (and by the test)"
            );
        }
    });
}

/// The place a cancel frees goes to a spawner already waiting for it
/// before the cancelled closure is dropped: here that destructor waits for
/// the spawner, so waking it only afterwards would hang.
#[test]
fn a_waiting_spawner_gets_a_cancelled_jobs_place_before_its_destructor_runs() {
    struct WaitsForSpawner(Option<std::sync::mpsc::Receiver<()>>);
    impl Drop for WaitsForSpawner {
        fn drop(&mut self) {
            if let Some(spawned) = self.0.take() {
                spawned.recv().unwrap();
            }
        }
    }
    within(LIMIT, || {
        let (pool, gate, blocker) = held_pool(1);
        let (spawned_tx, spawned_rx) = std::sync::mpsc::channel();
        let value = WaitsForSpawner(Some(spawned_rx));
        let queued = pool.spawn(move || drop(value)).unwrap();
        let p = pool.clone();
        let spawner = std::thread::spawn(move || {
            let accepted = p.spawn(|| ()).is_ok();
            spawned_tx.send(()).unwrap();
            accepted
        });
        eventually("spawner waits for room", || {
            let stats = pool.stats();
            (stats.queued, stats.waiting_spawns) == (1, 1)
        });
        assert!(pool.cancel(queued.id()));
        assert!(spawner.join().unwrap());
        gate.open();
        blocker.join().unwrap();
        pool.wait_idle();
        assert_eq!(pool.stats().succeeded, 2);
    });
}
