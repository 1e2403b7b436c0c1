//! The pools compared, built with the same number of worker threads.

use super::hand::HandPool;
use super::sync::Countdown;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Barrier};
use workyard::Dispatcher;

/// Are worker threads pinned to CPUs (`WORKYARD_BENCH_PIN=1`)? Off by
/// default, as users' pools run.
pub fn pinned() -> bool {
    std::env::var_os("WORKYARD_BENCH_PIN").is_some_and(|v| v != "0")
}

/// If [`pinned`], pins each of a pool's `workers` threads to a CPU of its
/// own (the CPUs this process may use, in turn), the same way for every
/// pool: `spawn` queues one job per thread, each held at a barrier until
/// every thread has taken one. Left to itself the kernel sometimes wakes a
/// pool's second worker onto the CPU where the first one runs, and the two
/// share it for milliseconds (BENCHMARKS.md). Panics if a pin is refused,
/// after every thread has passed the barrier.
pub fn pin_workers(workers: usize, spawn: impl Fn(Box<dyn FnOnce() + Send>)) {
    if !pinned() {
        return;
    }
    let cpus = Arc::new(super::sys::allowed_cpus());
    assert!(
        !cpus.is_empty(),
        "WORKYARD_BENCH_PIN: the CPUs allowed are unknown here"
    );
    let barrier = Arc::new(Barrier::new(workers + 1));
    let (next, refused) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    for _ in 0..workers {
        let (barrier, next, refused, cpus) = (
            Arc::clone(&barrier),
            Arc::clone(&next),
            Arc::clone(&refused),
            Arc::clone(&cpus),
        );
        spawn(Box::new(move || {
            let cpu = cpus[next.fetch_add(1, Relaxed) % cpus.len()];
            if !super::sys::pin_to_cpu(cpu) {
                refused.fetch_add(1, Relaxed);
            }
            barrier.wait();
        }));
    }
    // The barrier orders the workers' counts before this load.
    barrier.wait();
    assert_eq!(refused.load(Relaxed), 0, "a worker could not be pinned");
}

/// [`pin_workers`] for a workyard pool of `workers` threads.
pub fn pin_workyard(pool: &Dispatcher, workers: usize) {
    pin_workers(workers, |job| {
        pool.spawn_detached(job).expect("pool is up");
    });
}

/// [`pin_workers`] for a rayon pool of `workers` threads.
pub fn pin_rayon(pool: &rayon::ThreadPool, workers: usize) {
    pin_workers(workers, |job| pool.spawn(job));
}

/// Which pool, and for rayon which of its two ways to run detached jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Workyard,
    /// `rayon::ThreadPool::spawn` (and `rayon::spawn` inside jobs), waited
    /// for with a countdown: rayon's API for detached jobs.
    RayonSpawn,
    /// `rayon::ThreadPool::scope` with `Scope::spawn`: rayon's fastest way
    /// to spawn many jobs, though the spawning loop then runs on a worker.
    RayonScope,
    Threadpool,
    Hand,
}

impl Kind {
    /// Every pool, workyard first.
    pub const ALL: [Kind; 5] = [
        Kind::Workyard,
        Kind::RayonSpawn,
        Kind::RayonScope,
        Kind::Threadpool,
        Kind::Hand,
    ];

    /// The pools where "submit one job" has one obvious meaning.
    pub const SINGLE_JOB: [Kind; 4] = [
        Kind::Workyard,
        Kind::RayonSpawn,
        Kind::Threadpool,
        Kind::Hand,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Workyard => "workyard",
            Kind::RayonSpawn => "rayon-spawn",
            Kind::RayonScope => "rayon-scope",
            Kind::Threadpool => "threadpool",
            Kind::Hand => "hand-rolled",
        }
    }
}

/// A running pool.
pub enum Contender {
    Workyard(Dispatcher),
    RayonSpawn {
        pool: rayon::ThreadPool,
        /// Borrowed by `'static` jobs, so it lives as long as the process.
        done: &'static Countdown,
    },
    RayonScope(rayon::ThreadPool),
    Threadpool(threadpool::ThreadPool),
    Hand(HandPool),
}

impl Contender {
    pub fn new(kind: Kind, workers: usize) -> Contender {
        let rayon = || {
            rayon::ThreadPoolBuilder::new()
                .num_threads(workers)
                .build()
                .expect("build a rayon pool")
        };
        let pool = match kind {
            Kind::Workyard => Contender::Workyard(
                Dispatcher::builder()
                    .workers(workers)
                    .build()
                    .expect("build a workyard dispatcher"),
            ),
            Kind::RayonSpawn => Contender::RayonSpawn {
                pool: rayon(),
                done: Countdown::leak(),
            },
            Kind::RayonScope => Contender::RayonScope(rayon()),
            Kind::Threadpool => Contender::Threadpool(threadpool::ThreadPool::new(workers)),
            Kind::Hand => Contender::Hand(HandPool::new(workers)),
        };
        pool.pin(workers);
        pool
    }

    /// [`pin_workers`] for this pool.
    fn pin(&self, workers: usize) {
        match self {
            Contender::Workyard(pool) => pin_workyard(pool, workers),
            Contender::RayonSpawn { pool, .. } | Contender::RayonScope(pool) => {
                pin_rayon(pool, workers)
            }
            Contender::Threadpool(pool) => pin_workers(workers, |job| pool.execute(job)),
            Contender::Hand(pool) => pin_workers(workers, |job| pool.spawn(job)),
        }
    }

    pub fn kind(&self) -> Kind {
        match self {
            Contender::Workyard(_) => Kind::Workyard,
            Contender::RayonSpawn { .. } => Kind::RayonSpawn,
            Contender::RayonScope(_) => Kind::RayonScope,
            Contender::Threadpool(_) => Kind::Threadpool,
            Contender::Hand(_) => Kind::Hand,
        }
    }

    /// Shuts the pool down and, where its API allows, waits for its threads
    /// (rayon's and threadpool's exit on their own shortly after).
    pub fn shutdown(self) {
        match self {
            Contender::Workyard(pool) => pool.shutdown(),
            Contender::Threadpool(pool) => pool.join(),
            other => drop(other),
        }
    }
}
