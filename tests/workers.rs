//! Halting single workers and resizing the pool: jobs move, none is lost,
//! worker ids are stable.

mod common;
use common::{eventually, within, Gate, LIMIT};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use workyard::{Dispatcher, JobStatus, WorkerError, WorkerState};

#[test]
fn a_halted_workers_deque_moves_to_the_others() {
    within(LIMIT, || {
        let pool = Dispatcher::builder().workers(2).build().unwrap();
        let gate = Gate::new();
        // Keep worker B busy so it cannot steal yet.
        let g = gate.clone();
        let blocker = pool.spawn(move || g.wait()).unwrap();
        eventually("blocker runs", || blocker.status() == JobStatus::Running);
        let busy = blocker.info().worker().unwrap();
        let other = 1 - busy;

        // The other worker spawns children onto its own deque, then is halted
        // while they are still there.
        let p = pool.clone();
        let children = Arc::new(std::sync::Mutex::new(Vec::new()));
        let c = children.clone();
        let spawned = Gate::new();
        let s = spawned.clone();
        let hold = Gate::new();
        let h = hold.clone();
        let parent = pool
            .spawn(move || {
                for i in 0..100u32 {
                    c.lock()
                        .unwrap()
                        .push(p.spawn(move || (i, workyard::current_job())).unwrap());
                }
                s.open();
                h.wait();
            })
            .unwrap();
        spawned.wait();
        assert_eq!(parent.info().worker(), Some(other));
        pool.halt_worker(other).unwrap();
        hold.open();
        parent.join().unwrap();
        eventually("halted worker exits", || {
            pool.stats().per_worker[other].state == WorkerState::Halted
        });
        gate.open();
        let children = std::mem::take(&mut *children.lock().unwrap());
        let mut ids = Vec::new();
        for (i, child) in children.into_iter().enumerate() {
            ids.push(child.id());
            assert_eq!(child.join().unwrap().0, i as u32);
        }
        pool.wait_idle();
        for id in ids {
            assert_eq!(
                pool.info(id).unwrap().worker(),
                Some(busy),
                "{id} ran on the remaining worker"
            );
        }
        let stats = pool.stats();
        assert_eq!(
            stats.per_worker[other].jobs_run, 1,
            "only the parent ran on the halted worker"
        );
        assert_eq!(stats.per_worker[busy].jobs_run, 101);
        assert_eq!(stats.workers, 1);
    });
}

/// How a job on a worker that is being halted waits for something, after
/// it spawned children onto that worker's own deque.
#[derive(Clone, Copy, Debug)]
enum WaitInside {
    /// `join(a, b)`, the children spawned in `a`, above `b` on the deque.
    Join,
    /// `Dispatcher::wait_idle` from inside the job.
    WaitIdle,
}

/// While halting, a worker finishes its current job and starts no other,
/// also not the children that job left on its deque, however it waits.
fn a_halting_worker_runs_no_other_job_while_waiting(how: WaitInside) {
    within(LIMIT, move || {
        let pool = Dispatcher::builder().workers(2).build().unwrap();
        let gate = Gate::new();
        let g = gate.clone();
        let blocker = pool.spawn(move || g.wait()).unwrap();
        eventually("blocker runs", || blocker.status() == JobStatus::Running);
        let busy = blocker.info().worker().unwrap();
        let other = 1 - busy;

        let p = pool.clone();
        let children = Arc::new(std::sync::Mutex::new(Vec::new()));
        let c = children.clone();
        let spawned = Gate::new();
        let s = spawned.clone();
        let hold = Gate::new();
        let h = hold.clone();
        let spawn_children = move || {
            for i in 0..10u32 {
                c.lock().unwrap().push(p.spawn(move || i).unwrap());
            }
            s.open();
            h.wait();
        };
        let p = pool.clone();
        let parent = pool
            .spawn(move || match how {
                WaitInside::Join => {
                    workyard::join(spawn_children, || ());
                }
                WaitInside::WaitIdle => {
                    spawn_children();
                    // Not idle (this job runs): it runs what it may, returns.
                    p.wait_idle();
                }
            })
            .unwrap();
        spawned.wait();
        assert_eq!(parent.info().worker(), Some(other));
        pool.halt_worker(other).unwrap();
        hold.open();
        parent.join().unwrap();
        eventually("halted worker exits", || {
            pool.stats().per_worker[other].state == WorkerState::Halted
        });
        gate.open();
        let children = std::mem::take(&mut *children.lock().unwrap());
        let ids: Vec<_> = children.iter().map(|c| c.id()).collect();
        for (i, child) in children.into_iter().enumerate() {
            assert_eq!(child.join().unwrap(), i as u32);
        }
        for id in ids {
            assert_eq!(
                pool.info(id).unwrap().worker(),
                Some(busy),
                "{id} ran on the remaining worker ({how:?})"
            );
        }
        // A joiner may wake before its worker counted the job: the counts
        // are exact once idle.
        pool.wait_idle();
        let stats = pool.stats();
        assert_eq!(stats.per_worker[other].jobs_run, 1, "{how:?}");
        assert_eq!(stats.per_worker[busy].jobs_run, 11, "{how:?}");
    });
}

#[test]
fn a_halting_worker_runs_no_other_job_after_a_join() {
    a_halting_worker_runs_no_other_job_while_waiting(WaitInside::Join);
}

#[test]
fn a_halting_worker_runs_no_other_job_in_wait_idle() {
    a_halting_worker_runs_no_other_job_while_waiting(WaitInside::WaitIdle);
}

#[test]
fn halting_each_worker_in_turn_while_jobs_run() {
    within(LIMIT, || {
        const N: usize = 100_000;
        let pool = Dispatcher::builder()
            .workers(4)
            .max_workers(8)
            .build()
            .unwrap();
        let runs: Arc<Vec<AtomicUsize>> = Arc::new((0..N).map(|_| AtomicUsize::new(0)).collect());
        for i in 0..N {
            let runs = runs.clone();
            pool.spawn(move || {
                runs[i].fetch_add(1, Ordering::Relaxed);
                std::hint::black_box((0..50).sum::<u64>())
            })
            .unwrap();
        }
        for i in 0..4 {
            pool.halt_worker(i).unwrap();
            pool.set_workers(4).unwrap();
            assert_eq!(pool.workers(), 4);
        }
        pool.wait_idle();
        let wrong = (0..N)
            .filter(|&i| runs[i].load(Ordering::Relaxed) != 1)
            .count();
        assert_eq!(wrong, 0, "jobs not run exactly once");
        let stats = pool.stats();
        assert_eq!(stats.succeeded, N as u64);
        assert_eq!(
            stats.per_worker.iter().map(|w| w.jobs_run).sum::<u64>(),
            N as u64
        );
    });
}

#[test]
fn set_workers_grows_and_shrinks() {
    within(LIMIT, || {
        let pool = Dispatcher::builder()
            .workers(1)
            .max_workers(4)
            .build()
            .unwrap();
        pool.set_workers(4).unwrap();
        assert_eq!(pool.workers(), 4);
        assert_eq!(pool.stats().per_worker.len(), 4);
        pool.set_workers(2).unwrap();
        assert_eq!(pool.workers(), 2);
        eventually("two halted", || {
            pool.stats()
                .per_worker
                .iter()
                .filter(|w| w.state == WorkerState::Halted)
                .count()
                == 2
        });
        let states: Vec<_> = pool.stats().per_worker.iter().map(|w| w.state).collect();
        assert_eq!(
            &states[2..],
            [WorkerState::Halted, WorkerState::Halted],
            "the highest indices go"
        );
        // Growing again reuses the halted slots: ids stay within max_workers.
        pool.set_workers(4).unwrap();
        assert_eq!(pool.workers(), 4);
        let sum: u64 = (0..1000u64)
            .map(|i| pool.spawn(move || i).unwrap())
            .map(|h| h.join().unwrap())
            .sum();
        assert_eq!(sum, 499_500);
    });
}

#[test]
fn bad_worker_orders_are_errors() {
    let pool = Dispatcher::builder()
        .workers(2)
        .max_workers(3)
        .build()
        .unwrap();
    assert_eq!(pool.set_workers(0), Err(WorkerError::Zero));
    assert_eq!(
        pool.set_workers(4),
        Err(WorkerError::AboveMax {
            requested: 4,
            max: 3
        })
    );
    assert_eq!(pool.halt_worker(7), Err(WorkerError::NotRunning(7)));
    assert_eq!(
        pool.halt_worker(2),
        Err(WorkerError::NotRunning(2)),
        "never started"
    );
    pool.halt_worker(1).unwrap();
    assert_eq!(
        pool.halt_worker(1),
        Err(WorkerError::NotRunning(1)),
        "already halted"
    );
    assert_eq!(pool.halt_worker(0), Err(WorkerError::LastWorker));
    assert_eq!(pool.workers(), 1);
    assert_eq!(
        WorkerError::LastWorker.to_string(),
        "cannot halt the last running worker; use halt() or shutdown()"
    );
    pool.shutdown();
    assert_eq!(pool.set_workers(2), Err(WorkerError::Shutdown));
}

#[test]
fn a_worker_can_halt_itself() {
    within(LIMIT, || {
        let pool = Dispatcher::builder().workers(2).build().unwrap();
        let p = pool.clone();
        let me = pool
            .spawn(move || {
                let me = workyard::current_job();
                let idx = p
                    .stats()
                    .per_worker
                    .iter()
                    .find(|w| w.current_job == me)
                    .unwrap()
                    .index;
                p.halt_worker(idx).map(|()| idx)
            })
            .unwrap()
            .join()
            .unwrap()
            .unwrap();
        eventually("it exits after its job", || {
            pool.stats().per_worker[me].state == WorkerState::Halted
        });
        let done = Arc::new(AtomicUsize::new(0));
        for _ in 0..100 {
            let d = done.clone();
            pool.spawn(move || d.fetch_add(1, Ordering::Relaxed))
                .unwrap();
        }
        pool.wait_idle();
        assert_eq!(done.load(Ordering::Relaxed), 100);
    });
}
