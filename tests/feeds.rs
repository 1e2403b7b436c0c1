//! Outside spawning threads push to feeds of their own (`src/feed.rs`):
//! no job may be lost or run twice whatever those threads do.

mod common;

use common::{within, LIMIT};

/// Jobs per spawning thread: few under Miri, which runs ~1000× slower.
/// (Under Miri, the destructor and stress tests push through feeds too:
/// every job they spawn from outside goes to one.)
const PER_THREAD: usize = if cfg!(miri) { 10 } else { 500 };
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use workyard::Dispatcher;

#[test]
fn jobs_from_many_short_lived_threads_all_run_once() {
    within(LIMIT, || {
        let pool = Arc::new(Dispatcher::builder().workers(2).build().unwrap());
        let runs: Arc<Vec<AtomicUsize>> =
            Arc::new((0..16 * PER_THREAD).map(|_| AtomicUsize::new(0)).collect());
        // Four waves of four threads: more threads than feeds over the
        // run, so feeds are given back and leased again, some while full.
        for wave in 0..4 {
            let threads: Vec<_> = (0..4)
                .map(|t| {
                    let (pool, runs) = (pool.clone(), runs.clone());
                    std::thread::spawn(move || {
                        for i in 0..PER_THREAD {
                            let runs = runs.clone();
                            let slot = (wave * 4 + t) * PER_THREAD + i;
                            drop(pool.spawn(move || runs[slot].fetch_add(1, SeqCst)).unwrap());
                        }
                    })
                })
                .collect();
            for t in threads {
                t.join().unwrap();
            }
        }
        pool.wait_idle();
        assert!(
            runs.iter().all(|r| r.load(SeqCst) == 1),
            "every job ran once"
        );
        assert_eq!(pool.stats().succeeded, 16 * PER_THREAD as u64);
    });
}

#[test]
fn one_thread_spawns_into_two_pools() {
    within(LIMIT, || {
        let first = Dispatcher::builder().workers(1).build().unwrap();
        let second = Dispatcher::builder().workers(1).build().unwrap();
        let (a, b) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        for _ in 0..PER_THREAD {
            let a = a.clone();
            drop(first.spawn(move || a.fetch_add(1, SeqCst)).unwrap());
            let b = b.clone();
            drop(second.spawn(move || b.fetch_add(1, SeqCst)).unwrap());
        }
        first.wait_idle();
        second.wait_idle();
        assert_eq!((a.load(SeqCst), b.load(SeqCst)), (PER_THREAD, PER_THREAD));
    });
}

#[test]
fn a_thread_spawns_into_a_new_pool_after_its_first_one_is_gone() {
    within(LIMIT, || {
        for round in 0..3 {
            let pool = Dispatcher::builder().workers(1).build().unwrap();
            let handles: Vec<_> = (0..100)
                .map(|i| pool.spawn(move || i + round).unwrap())
                .collect();
            let sum: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
            assert_eq!(sum, 4950 + 100 * round);
            pool.shutdown();
        }
    });
}
