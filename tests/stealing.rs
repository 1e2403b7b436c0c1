//! Work stealing really happens: jobs pushed onto one worker's deque are
//! run by another.

mod common;
use common::{within, Gate, LIMIT};
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
