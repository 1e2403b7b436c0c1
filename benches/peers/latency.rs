//! Wake latency: one job submitted to a pool whose workers are all parked,
//! timed from just before the submit call to the first line of the job.

use super::sync::Countdown;
use super::Contender;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::{Acquire, Release};
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
