//! Issue #17 §4 item 8: a bounded queue (capacity 1), one outside producer
//! and jobs that spawn children. A worker that spawns into a full queue
//! runs queued jobs while it waits for room; those jobs spawn children of
//! their own, so the waits nest. Unbounded, they nest ~2,500 jobs deep on
//! one worker and the process aborts on a stack overflow, even with the
//! default 2 MiB stack. The nesting must be bounded.
//!
//! A stack overflow aborts the whole test binary, hence a file of its own.
//! The pool runs with a small stack (256 KiB) so that unbounded nesting
//! overflows quickly.
//!
//! On today's code this ABORTS the binary ("thread '...' has overflowed its
//! stack", SIGABRT).

mod common;
use common::within;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;
use workyard::Dispatcher;

const PARENTS: usize = 2_000;
const CHILDREN: usize = 4;

fn nesting(workers: usize) {
    within(Duration::from_secs(60), move || {
        let pool = Dispatcher::builder()
            .workers(workers)
            .queue_capacity(1)
            .stack_size(256 * 1024)
            .build()
            .unwrap();
        let ran = Arc::new(AtomicUsize::new(0));
        for _ in 0..PARENTS {
            let (p, ran) = (pool.clone(), ran.clone());
            pool.spawn(move || {
                for _ in 0..CHILDREN {
                    let r = ran.clone();
                    p.spawn(move || {
                        r.fetch_add(1, SeqCst);
                    })
                    .unwrap();
                }
                ran.fetch_add(1, SeqCst);
            })
            .unwrap();
        }
        pool.wait_idle();
        assert_eq!(ran.load(SeqCst), PARENTS * (CHILDREN + 1));
        pool.shutdown();
    });
}

#[test]
fn spawning_into_a_full_queue_from_jobs_nests_boundedly_one_worker() {
    nesting(1);
}

#[test]
fn spawning_into_a_full_queue_from_jobs_nests_boundedly_two_workers() {
    nesting(2);
}

/// A chain of jobs, each spawning a child and joining it, deeper than the
/// nesting bound: past it, a wait still runs the jobs its own jobs spawned,
/// so on one worker the chain finishes (it hung at depth 16 when a wait
/// past the bound ran nothing).
#[test]
fn a_chain_of_joins_deeper_than_the_bound_finishes_on_one_worker() {
    fn link(pool: workyard::Dispatcher, depth: u32) -> u32 {
        if depth == 0 {
            return 0;
        }
        let next = pool.clone();
        pool.spawn(move || link(next, depth - 1))
            .unwrap()
            .join()
            .unwrap()
            + 1
    }
    within(Duration::from_secs(20), || {
        for workers in [1, 2] {
            let pool = Dispatcher::builder()
                .workers(workers)
                .stack_size(8 << 20)
                .build()
                .unwrap();
            let p = pool.clone();
            let depth = pool.spawn(move || link(p, 100)).unwrap().join().unwrap();
            assert_eq!(depth, 100, "{workers} workers");
            pool.shutdown();
        }
    });
}
