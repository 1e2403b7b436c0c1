//! Coarse jobs: 2,000 jobs of about 50 µs of arithmetic each. Efficiency is
//! sequential time / (wall time × workers): the share of the workers' time
//! spent on the jobs themselves.

use super::sync::Countdown;
use super::Contender;
use std::hint::black_box;
use std::time::{Duration, Instant};

pub const JOBS: u64 = 2_000;
pub const TARGET: Duration = Duration::from_micros(50);

/// A fixed amount of arithmetic, not a timed spin: a job that is preempted
/// takes longer, as real work would, instead of finishing early.
///
/// Never inlined, and its step is not affine: an inlined LCG step let LLVM
/// fold unrolled iterations together differently at each call site, so the
/// calibration, the sequential run and each pool's closure ran different
/// machine code (up to 8x apart).
#[inline(never)]
pub fn burn(iters: u64) -> u64 {
    let mut x = black_box(0x2545_F491_4F6C_DD1Du64);
    for _ in 0..black_box(iters) {
        x ^= x >> 29;
        x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    }
    black_box(x)
}

/// Iterations of `burn` that take about [`TARGET`] on this machine now
/// (the fastest of several tries, so that a preempted try does not count).
pub fn calibrate() -> u64 {
    const PROBE: u64 = 20_000;
    let fastest = (0..20)
        .map(|_| {
            let start = Instant::now();
            burn(PROBE);
            start.elapsed()
        })
        .min()
        .expect("tried");
    let per_iter = fastest.as_secs_f64() / PROBE as f64;
    (TARGET.as_secs_f64() / per_iter).round().max(1.0) as u64
}

/// All jobs one after another on this thread: the numerator of efficiency.
pub fn sequential(iters: u64) {
    for _ in 0..JOBS {
        burn(iters);
    }
}

/// All jobs spawned from this thread, handles dropped, then waited for.
pub fn run(c: &Contender, iters: u64) {
    match c {
        Contender::Workyard(pool) => {
            for _ in 0..JOBS {
                drop(pool.spawn(move || burn(iters)).expect("pool is up"));
            }
            pool.wait_idle();
        }
        Contender::RayonSpawn { pool, done } => {
            let done: &'static Countdown = done;
            done.add(JOBS as usize);
            for _ in 0..JOBS {
                pool.spawn(move || {
                    burn(iters);
                    done.done();
                });
            }
            done.wait();
        }
        Contender::RayonScope(pool) => pool.scope(|s| {
            for _ in 0..JOBS {
                s.spawn(move |_| {
                    burn(iters);
                });
            }
        }),
        Contender::Threadpool(pool) => {
            for _ in 0..JOBS {
                pool.execute(move || {
                    burn(iters);
                });
            }
            pool.join();
        }
        Contender::Hand(pool) => {
            for _ in 0..JOBS {
                pool.spawn(move || {
                    burn(iters);
                });
            }
            pool.wait_idle();
        }
    }
}

/// Sequential time over (wall time × workers).
pub fn efficiency(sequential: Duration, wall: Duration, workers: usize) -> f64 {
    sequential.as_secs_f64() / (wall.as_secs_f64() * workers as f64)
}
