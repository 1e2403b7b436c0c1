//! Memory per queued job: 1,000,000 tiny jobs held in the queues (every
//! worker blocked in a gate job) and the heap growth divided among them.
//!
//! Two figures: net bytes requested from the allocator (precise; needs the
//! counting allocator), and the growth of the C allocator's bytes in use,
//! which adds its chunk headers and size-class rounding. (RSS growth would
//! be blurred by memory that earlier measurements freed and this one reuses.)

use super::alloc::net_bytes;
use super::sync::{Countdown, Gate};
use super::sys::malloc_in_use;
use super::Contender;
use std::hint::black_box;

pub const QUEUED: u64 = 1_000_000;

pub struct PerJob {
    /// Heap bytes requested per queued job.
    pub heap: f64,
    /// The C allocator's in-use growth per queued job (0 off glibc).
    pub malloc: f64,
    /// The closure's own size: what is not the pool's overhead.
    pub closure: usize,
}

impl PerJob {
    /// Bytes per job beyond the closure itself.
    pub fn overhead(&self) -> f64 {
        self.heap - self.closure as f64
    }
}

fn size_of_closure<F>(_: &F) -> usize {
    std::mem::size_of::<F>()
}

/// Queues `n` jobs capturing one `u64` (plus, for rayon, the countdown
/// reference it needs to be waited for), measures, then lets them run.
pub fn per_job(c: &Contender, workers: usize, n: u64) -> PerJob {
    let gate = Gate::leak();
    let block = move || gate.pass();
    match c {
        Contender::Workyard(pool) => {
            (0..workers).for_each(|_| drop(pool.spawn(block).expect("up")))
        }
        Contender::RayonSpawn { pool, .. } => (0..workers).for_each(|_| pool.spawn(block)),
        Contender::RayonScope(_) => panic!("scope jobs cannot stay queued past the call"),
        Contender::Threadpool(pool) => (0..workers).for_each(|_| pool.execute(block)),
        Contender::Hand(pool) => (0..workers).for_each(|_| pool.spawn(block)),
    }
    gate.wait_arrived(workers);

    let malloc_before = malloc_in_use().unwrap_or(0);
    let (bytes, closure) = net_bytes(|| queue(c, n));
    let malloc = malloc_in_use().unwrap_or(0).saturating_sub(malloc_before);
    gate.open();
    match c {
        Contender::Workyard(pool) => pool.wait_idle(),
        Contender::RayonSpawn { done, .. } => done.wait(),
        Contender::RayonScope(_) => unreachable!("refused above"),
        Contender::Threadpool(pool) => pool.join(),
        Contender::Hand(pool) => pool.wait_idle(),
    }
    PerJob {
        heap: bytes as f64 / n as f64,
        malloc: malloc as f64 / n as f64,
        closure,
    }
}

/// Queues the jobs; returns the size of one job's closure.
fn queue(c: &Contender, n: u64) -> usize {
    let mut closure = 0;
    match c {
        Contender::Workyard(pool) => {
            for x in 0..n {
                let job = move || {
                    black_box(x);
                };
                closure = size_of_closure(&job);
                drop(pool.spawn(job).expect("up"));
            }
        }
        Contender::RayonSpawn { pool, done } => {
            let done: &'static Countdown = done;
            done.add(n as usize);
            for x in 0..n {
                let job = move || {
                    black_box(x);
                    done.done();
                };
                closure = size_of_closure(&job);
                pool.spawn(job);
            }
        }
        Contender::RayonScope(_) => unreachable!("refused in per_job"),
        Contender::Threadpool(pool) => {
            for x in 0..n {
                let job = move || {
                    black_box(x);
                };
                closure = size_of_closure(&job);
                pool.execute(job);
            }
        }
        Contender::Hand(pool) => {
            for x in 0..n {
                let job = move || {
                    black_box(x);
                };
                closure = size_of_closure(&job);
                pool.spawn(job);
            }
        }
    }
    closure
}
