//! Work stealing really happens: jobs pushed onto one worker's deque are
//! run by another.

mod common;
use common::{eventually, within, Gate, LIMIT};
use workyard::Dispatcher;

#[test]
fn children_of_a_blocked_job_are_stolen() {
    within(LIMIT, || {
        let pool = Dispatcher::builder().workers(2).build().unwrap();
        let p = pool.clone();
        let gate = Gate::new();
        let g = gate.clone();
        // The parent spawns onto its own deque, then blocks (without
        // helping), so only the other worker can run the children.
        let parent = pool
            .spawn(move || {
                let ids: Vec<_> = (0..200).map(|_| p.spawn(|| ()).unwrap().id()).collect();
                g.wait();
                ids
            })
            .unwrap();
        let parent_id = parent.id();
        // Wait for all children: the gate opens only after they are done.
        let p = pool.clone();
        std::thread::spawn(move || {
            while p.stats().succeeded < 200 {
                std::thread::yield_now();
            }
            gate.open();
        });
        let ids = parent.join().unwrap();
        pool.wait_idle();
        let parent_worker = pool.info(parent_id).unwrap().worker().unwrap();
        for id in ids {
            let worker = pool.info(id).unwrap().worker().unwrap();
            assert_ne!(worker, parent_worker, "{id} ran on the blocked worker");
        }
        let stats = pool.stats();
        assert!(
            stats.steals >= 1,
            "at least one steal, got {}",
            stats.steals
        );
        assert_eq!(stats.per_worker[1 - parent_worker].steals, stats.steals);
    });
}

/// Steals a lone thief needs for `n` jobs on one peer's deque when each
/// steal takes the oldest job and half of the rest, at most 31 more.
fn batch_steals(mut n: u64) -> u64 {
    let mut steals = 0;
    while n > 0 {
        n -= 1 + ((n - 1) / 2).min(31);
        steals += 1;
    }
    steals
}

#[test]
fn a_thief_takes_a_blocked_jobs_children_in_batches() {
    const CHILDREN: u64 = 200;
    assert_eq!(batch_steals(CHILDREN), 11);
    within(LIMIT, || {
        let pool = Dispatcher::builder().workers(2).build().unwrap();
        // One worker is held until all the children are queued, so that
        // the thief meets all 200 at once on the parent's deque.
        let hold = Gate::new();
        let h = hold.clone();
        let held = pool.spawn(move || h.wait()).unwrap();
        eventually("the holding job runs", || pool.stats().running == 1);
        let (queued, release) = (Gate::new(), Gate::new());
        let (q, r, p) = (queued.clone(), release.clone(), pool.clone());
        let parent = pool
            .spawn(move || {
                let ids: Vec<_> = (0..CHILDREN)
                    .map(|_| p.spawn_detached(|| ()).unwrap())
                    .collect();
                q.open();
                // Blocks without helping: only the thief runs children.
                r.wait();
                ids
            })
            .unwrap();
        queued.wait();
        hold.open();
        held.join().unwrap();
        eventually("every child ran", || pool.stats().succeeded == CHILDREN + 1);
        release.open();
        let parent_id = parent.id();
        let ids = parent.join().unwrap();
        pool.wait_idle();
        let parent_worker = pool.info(parent_id).unwrap().worker().unwrap();
        for id in &ids {
            let info = pool.info(*id).unwrap();
            assert_eq!(info.status(), workyard::JobStatus::Succeeded);
            assert_ne!(
                info.worker(),
                Some(parent_worker),
                "{id} ran on the blocked worker"
            );
        }
        let stats = pool.stats();
        assert_eq!(stats.succeeded, CHILDREN + 2);
        // One steal per child would be 200.
        assert_eq!(stats.steals, batch_steals(CHILDREN));
        assert_eq!(stats.per_worker[1 - parent_worker].steals, stats.steals);
    });
}
