//! Wake latency: one job submitted to a pool whose workers are all parked,
//! timed from just before the submit call to the first line of the job.

use super::sync::Countdown;
use super::Contender;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::Arc;
use std::thread::Thread;
use std::time::{Duration, Instant};

/// Pause before each sample: long past every pool's spin phase (rayon's is
/// the longest, tens of microseconds of yields), so the workers are parked.
pub const SETTLE: Duration = Duration::from_millis(3);

/// `samples` wake latencies, each measured on a freshly idle pool.
pub fn sample(c: &Contender, samples: usize) -> Vec<Duration> {
    // Leaked once per call: jobs are `'static` and the benches call this a
    // handful of times per process.
    let started: &'static AtomicU64 = Box::leak(Box::new(AtomicU64::new(0)));
    (0..samples)
        .map(|_| {
            std::thread::sleep(SETTLE);
            let t0 = Instant::now();
            let job = move || started.store(t0.elapsed().as_nanos() as u64, Release);
            // Each pool's own way to wait; none of them spins, so the waiting
            // thread does not compete with the worker being woken.
            match c {
                Contender::Workyard(pool) => {
                    pool.spawn(job).expect("pool is up").join().expect("ran");
                }
                Contender::RayonSpawn { pool, done } => {
                    let done: &'static Countdown = done;
                    done.add(1);
                    pool.spawn(move || {
                        job();
                        done.done();
                    });
                    done.wait();
                }
                Contender::RayonScope(pool) => pool.scope(|s| s.spawn(move |_| job())),
                Contender::Threadpool(pool) => {
                    pool.execute(job);
                    pool.join();
                }
                Contender::Hand(pool) => {
                    pool.spawn(job);
                    pool.wait_idle();
                }
            }
            Duration::from_nanos(started.load(Acquire))
        })
        .collect()
}

/// The floor under every pool's figure: `samples` wake latencies of one bare
/// thread, parked with `std::thread::park` and woken with `unpark`, in the
/// same protocol as [`sample`] (settle, wake, the waker blocks until the
/// woken thread has run). A pool cannot beat it without a worker that never
/// parks; where a target asks for less, the machine's wake-up path sets the
/// figure, not the pool.
pub fn floor(samples: usize) -> Vec<Duration> {
    struct Shared {
        base: Instant,
        /// When the wake-up call began, in nanoseconds since `base`.
        t0: AtomicU64,
        /// From the wake-up call to the woken thread running, in nanoseconds.
        latency: AtomicU64,
        go: AtomicBool,
        done: AtomicBool,
        stop: AtomicBool,
        waiter: Thread,
    }
    let shared = Arc::new(Shared {
        base: Instant::now(),
        t0: AtomicU64::new(0),
        latency: AtomicU64::new(0),
        go: AtomicBool::new(false),
        done: AtomicBool::new(false),
        stop: AtomicBool::new(false),
        waiter: std::thread::current(),
    });
    let since_base = |s: &Shared| s.base.elapsed().as_nanos() as u64;
    let woken = {
        let shared = shared.clone();
        std::thread::spawn(move || loop {
            // ORDERING: Acquire pairs with the waker's Release on `go`, so
            // the `t0` and `stop` it wrote before are seen.
            while !shared.go.swap(false, Acquire) {
                std::thread::park();
            }
            // ORDERING (these three): Relaxed, ordered by `go` and `done`.
            let latency = since_base(&shared) - shared.t0.load(Relaxed);
            shared.latency.store(latency, Relaxed);
            let stop = shared.stop.load(Relaxed);
            // ORDERING: Release publishes `latency` to the waiter's Acquire.
            shared.done.store(true, Release);
            shared.waiter.unpark();
            if stop {
                return;
            }
        })
    };
    let out = (0..samples)
        .map(|_| {
            std::thread::sleep(SETTLE);
            // ORDERING: Relaxed; the Release on `go` publishes it.
            shared.t0.store(since_base(&shared), Relaxed);
            shared.go.store(true, Release);
            woken.thread().unpark();
            while !shared.done.swap(false, Acquire) {
                std::thread::park();
            }
            // ORDERING: Relaxed after the Acquire on `done` above.
            Duration::from_nanos(shared.latency.load(Relaxed))
        })
        .collect();
    // ORDERING: Relaxed; the Release on `go` publishes it.
    shared.stop.store(true, Relaxed);
    shared.go.store(true, Release);
    woken.thread().unpark();
    woken.join().expect("the woken thread does not panic");
    out
}
