//! Jobs spawned without a handle (`Dispatcher::spawn_detached` and the free
//! `workyard::spawn_detached`): each runs exactly once, its status record
//! answers by id, cancel by id stops it, a panic reaches the panic
//! handler, and a refused one comes back. (That its closure and result are
//! dropped exactly once, when it ends, is checked in `destructors.rs`,
//! which also runs under Miri.) Pools have more workers than this
//! machine has cores, so that "every worker busy" is exact.

mod common;
#[path = "common/ledger.rs"]
mod ledger;

use common::{eventually, held_pool, meet, silence_deliberate_panics, within, Gate, LIMIT};
use ledger::Ledger;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering::SeqCst};
use std::sync::{mpsc, Arc};
use workyard::{CancelReason, Dispatcher, JobStatus, TrySpawnError};

fn pool(workers: usize) -> Dispatcher {
    Dispatcher::builder().workers(workers).build().unwrap()
}

/// One counter per job: each must read exactly 1 at the end.
fn counters(n: usize) -> Arc<Vec<AtomicU8>> {
    Arc::new((0..n).map(|_| AtomicU8::new(0)).collect())
}

fn assert_each_ran_once(runs: &[AtomicU8]) {
    for (i, r) in runs.iter().enumerate() {
        assert_eq!(r.load(SeqCst), 1, "job {i} ran {} times", r.load(SeqCst));
    }
}

#[test]
fn every_detached_job_runs_exactly_once_on_16_workers() {
    within(LIMIT, || {
        const N: usize = 20_000;
        let pool = pool(16);
        let runs = counters(N);
        let ids: Vec<_> = (0..N)
            .map(|i| {
                let runs = Arc::clone(&runs);
                pool.spawn_detached(move || runs[i].fetch_add(1, SeqCst))
                    .unwrap()
            })
            .collect();
        pool.wait_idle();
        assert_each_ran_once(&runs);
        let stats = pool.stats();
        assert_eq!(stats.succeeded, N as u64);
        assert_eq!((stats.queued, stats.running), (0, 0));
        // Ids are distinct and in spawn order; the newest are still kept
        // in the history, finished.
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
        for &id in &ids[N - 100..] {
            assert_eq!(pool.status(id), Some(JobStatus::Succeeded));
            assert!(pool.info(id).unwrap().finished_at().is_some());
        }
    });
}

#[test]
fn a_chain_of_detached_spawns_on_50_workers_loses_no_link() {
    within(LIMIT, || {
        const N: usize = 20_000;
        fn link(i: usize, runs: Arc<Vec<AtomicU8>>) {
            runs[i].fetch_add(1, SeqCst);
            if i + 1 < runs.len() {
                workyard::spawn_detached(move || link(i + 1, runs)).unwrap();
            }
        }
        let pool = pool(50);
        let runs = counters(N);
        let first = Arc::clone(&runs);
        pool.spawn_detached(move || link(0, first)).unwrap();
        pool.wait_idle();
        assert_each_ran_once(&runs);
        assert_eq!(pool.stats().succeeded, N as u64);
    });
}

#[test]
fn detached_jobs_that_block_occupy_all_8_workers_at_once() {
    within(LIMIT, || {
        const WORKERS: usize = 8;
        let pool = pool(WORKERS);
        let arrived = Arc::new(AtomicUsize::new(0));
        let gate = Gate::new();
        let met = Arc::new(AtomicUsize::new(0));
        for _ in 0..WORKERS {
            let (arrived, gate, met) = (arrived.clone(), gate.clone(), met.clone());
            pool.spawn_detached(move || {
                if meet(&arrived, WORKERS) {
                    met.fetch_add(1, SeqCst);
                }
                gate.wait();
            })
            .unwrap();
        }
        eventually("every worker runs one", || {
            pool.stats().running == WORKERS as u64
        });
        gate.open();
        pool.wait_idle();
        assert_eq!(met.load(SeqCst), WORKERS, "not all ran at the same moment");
        assert_eq!(pool.stats().succeeded, WORKERS as u64);
    });
}

#[test]
fn a_queued_detached_job_is_cancelled_by_id_and_never_runs() {
    within(LIMIT, || {
        let (pool, gate, held) = held_pool(4);
        let captured = Ledger::new(1);
        let probe = captured.probe(0);
        let ran = Arc::new(AtomicUsize::new(0));
        let r = ran.clone();
        let id = pool
            .spawn_detached(move || {
                let _probe = probe;
                r.fetch_add(1, SeqCst);
            })
            .unwrap();
        assert_eq!(pool.status(id), Some(JobStatus::Queued));
        assert!(pool.cancel(id));
        assert_eq!(pool.status(id), Some(JobStatus::Cancelled));
        assert_eq!(
            pool.info(id).unwrap().cancel_reason(),
            Some(CancelReason::Caller)
        );
        gate.open();
        held.join().unwrap();
        pool.wait_idle();
        assert_eq!(ran.load(SeqCst), 0);
        captured.assert_all_dropped_once(0..1, "cancelled while queued");
        assert_eq!(pool.stats().cancelled, 1);
    });
}

#[test]
fn a_halt_reports_and_drops_queued_detached_jobs_and_stops_the_running_one() {
    within(LIMIT, || {
        const QUEUED: usize = 20;
        let pool = pool(1);
        let captured = Ledger::new(QUEUED + 1);
        let probe = captured.probe(QUEUED);
        let running = pool
            .spawn_detached(move || {
                let _probe = probe;
                while !workyard::is_cancelled() {
                    std::thread::yield_now();
                }
            })
            .unwrap();
        eventually("the first job runs", || {
            pool.status(running) == Some(JobStatus::Running)
        });
        let queued: Vec<_> = (0..QUEUED)
            .map(|i| {
                let probe = captured.probe(i);
                pool.spawn_detached(move || drop(probe)).unwrap()
            })
            .collect();
        // The control thread cancels them, leaving each closure to the
        // worker that pops it (or to the pool's end).
        let report = pool.halt();
        assert_eq!(report.never_started, queued);
        assert_eq!(report.interrupted, vec![running]);
        captured.assert_all_dropped_once(0..=QUEUED, "halted");
        for id in queued {
            assert_eq!(
                pool.info(id).unwrap().cancel_reason(),
                Some(CancelReason::Halt)
            );
        }
        assert_eq!(pool.status(running), Some(JobStatus::Cancelled));
        assert_eq!(pool.stats().cancelled, QUEUED as u64 + 1);
    });
}

#[test]
fn cancel_queued_cancels_detached_jobs_but_not_the_running_one() {
    within(LIMIT, || {
        let (pool, gate, held) = held_pool(8);
        let ran = Arc::new(AtomicUsize::new(0));
        let ids: Vec<_> = (0..5)
            .map(|_| {
                let r = ran.clone();
                pool.spawn_detached(move || r.fetch_add(1, SeqCst)).unwrap()
            })
            .collect();
        assert_eq!(pool.cancel_queued(), ids);
        gate.open();
        held.join().unwrap();
        pool.wait_idle();
        assert_eq!(ran.load(SeqCst), 0);
        for id in ids {
            assert_eq!(pool.status(id), Some(JobStatus::Cancelled));
        }
        let stats = pool.stats();
        assert_eq!((stats.cancelled, stats.succeeded), (5, 1));
    });
}

#[test]
fn a_detached_panic_goes_to_the_panic_handler() {
    silence_deliberate_panics();
    within(LIMIT, || {
        let (tx, rx) = mpsc::channel();
        let pool = Dispatcher::builder()
            .workers(4)
            .panic_handler(move |payload| {
                tx.send(payload.message().map(str::to_owned)).unwrap();
            })
            .build()
            .unwrap();
        let id = pool
            .spawn_detached(|| -> () { std::panic::panic_any("deliberate") })
            .unwrap();
        // The handler runs before the job counts as finished.
        pool.wait_idle();
        let delivered = rx.try_recv().expect("the panic reached the handler");
        assert_eq!(delivered.as_deref(), Some("deliberate"));
        assert_eq!(pool.status(id), Some(JobStatus::Panicked));
        assert_eq!(pool.stats().panicked, 1);
        assert!(rx.try_recv().is_err(), "the handler ran more than once");
    });
}

#[test]
fn refused_after_shutdown_with_the_job_given_back() {
    within(LIMIT, || {
        let pool = pool(2);
        pool.shutdown();
        let refused = pool.spawn_detached(|| 6 * 7).unwrap_err();
        assert_eq!((refused.into_inner())(), 42);
        match pool.try_spawn_detached(|| 6 * 8) {
            Err(TrySpawnError::Closed(job)) => assert_eq!((job.into_inner())(), 48),
            other => panic!("expected Closed, got {:?}", other.map(|_| ())),
        }
        assert_eq!(pool.stats().succeeded, 0);
    });
}

#[test]
fn try_spawn_detached_on_a_full_queue_gives_the_job_back_without_blocking() {
    within(LIMIT, || {
        let (pool, gate, held) = held_pool(2);
        let ran = Arc::new(AtomicUsize::new(0));
        let ids: Vec<_> = (0..2)
            .map(|_| {
                let r = ran.clone();
                pool.try_spawn_detached(move || r.fetch_add(1, SeqCst))
                    .unwrap()
            })
            .collect();
        let r = ran.clone();
        match pool.try_spawn_detached(move || r.fetch_add(100, SeqCst)) {
            Err(TrySpawnError::Full(job)) => drop(job),
            other => panic!("expected Full, got {:?}", other.map(|_| ())),
        }
        assert_eq!(pool.stats().queued, 2);
        gate.open();
        held.join().unwrap();
        pool.wait_idle();
        assert_eq!(ran.load(SeqCst), 2, "the refused job never ran");
        for id in ids {
            assert_eq!(pool.status(id), Some(JobStatus::Succeeded));
        }
    });
}

#[test]
fn a_full_bounded_queue_blocks_a_detached_spawn_until_there_is_room() {
    within(LIMIT, || {
        let (pool, gate, held) = held_pool(2);
        let ran = Arc::new(AtomicUsize::new(0));
        for _ in 0..2 {
            let r = ran.clone();
            pool.spawn_detached(move || r.fetch_add(1, SeqCst)).unwrap();
        }
        let (tx, rx) = mpsc::channel();
        let (p, r) = (pool.clone(), ran.clone());
        let spawner = std::thread::spawn(move || {
            let id = p.spawn_detached(move || r.fetch_add(1, SeqCst)).unwrap();
            tx.send(id).unwrap();
        });
        eventually("the third spawn waits for room", || {
            pool.stats().waiting_spawns == 1
        });
        assert!(rx.try_recv().is_err(), "admitted past the bound");
        gate.open();
        let id = rx.recv_timeout(LIMIT).unwrap();
        spawner.join().unwrap();
        held.join().unwrap();
        pool.wait_idle();
        assert_eq!(ran.load(SeqCst), 3);
        assert_eq!(pool.status(id), Some(JobStatus::Succeeded));
    });
}

#[test]
fn the_free_spawn_detached_uses_the_current_pool_or_the_global_one() {
    within(LIMIT, || {
        let pool = pool(3);
        let (tx, rx) = mpsc::channel();
        pool.spawn_detached(move || {
            workyard::spawn_detached(move || {
                tx.send((
                    workyard::current_num_threads(),
                    workyard::current_thread_index(),
                ))
                .unwrap();
            })
            .unwrap();
        })
        .unwrap();
        let (threads, index) = rx.recv_timeout(LIMIT).unwrap();
        assert_eq!(threads, 3);
        assert!(index.is_some_and(|i| i < 3));
        pool.wait_idle();
        assert_eq!(pool.stats().succeeded, 2);

        // Outside any pool: the global dispatcher, which ran none here.
        let (tx, rx) = mpsc::channel();
        workyard::spawn_detached(move || tx.send(workyard::current_thread_index()).unwrap())
            .unwrap();
        assert!(rx.recv_timeout(LIMIT).unwrap().is_some());
        assert_eq!(pool.stats().succeeded, 2);
    });
}
