//! Spawn-heavy workloads: many tiny jobs from outside the pool (handles
//! dropped, or kept and joined), many jobs spawned by one job, and a chain
//! of jobs each spawning the next.
//!
//! A tiny job is `black_box(i)`: the cost measured is the pool's alone.

use super::sync::{oneshot, Countdown};
use super::Contender;
use std::hint::black_box;

/// `n` tiny jobs submitted from this thread without handles (workyard's
/// `spawn_detached`, rayon's `spawn`, threadpool's `execute`), then waited
/// for: `wait_idle`, a countdown, `scope` or `join`, whichever is each
/// pool's own way.
pub fn detached(c: &Contender, n: u64) {
    match c {
        Contender::Workyard(pool) => {
            for i in 0..n {
                pool.spawn_detached(move || black_box(i))
                    .expect("pool is up");
            }
            pool.wait_idle();
        }
        Contender::RayonSpawn { pool, done } => {
            let done: &'static Countdown = done;
            done.add(n as usize);
            for i in 0..n {
                pool.spawn(move || {
                    black_box(i);
                    done.done();
                });
            }
            done.wait();
        }
        Contender::RayonScope(pool) => pool.scope(|s| {
            for i in 0..n {
                s.spawn(move |_| {
                    black_box(i);
                });
            }
        }),
        Contender::Threadpool(pool) => {
            for i in 0..n {
                pool.execute(move || {
                    black_box(i);
                });
            }
            pool.join();
        }
        Contender::Hand(pool) => {
            for i in 0..n {
                pool.spawn(move || {
                    black_box(i);
                });
            }
            pool.wait_idle();
        }
    }
}

/// As [`detached`], with workyard's jobs spawned with `spawn` and each
/// handle dropped at once: what a handle costs when it is not wanted. The
/// peers have no handle to drop and run [`detached`].
pub fn handles_dropped(c: &Contender, n: u64) {
    match c {
        Contender::Workyard(pool) => {
            for i in 0..n {
                drop(pool.spawn(move || black_box(i)).expect("pool is up"));
            }
            pool.wait_idle();
        }
        peer => detached(peer, n),
    }
}

/// `n` tiny jobs submitted from this thread, every result kept and collected
/// in order: workyard's handles; for the peers a one-shot slot per job (or,
/// in a rayon scope, a slot in a vector), as a user would add them.
pub fn joined(c: &Contender, n: u64) -> u64 {
    match c {
        Contender::Workyard(pool) => {
            let handles: Vec<_> = (0..n)
                .map(|i| pool.spawn(move || black_box(i)).expect("pool is up"))
                .collect();
            handles.into_iter().map(|h| h.join().expect("ran")).sum()
        }
        Contender::RayonSpawn { pool, .. } => collect_oneshots(n, |job| pool.spawn(job)),
        Contender::RayonScope(pool) => {
            let mut out = vec![0u64; n as usize];
            pool.scope(|s| {
                for (i, slot) in (0..n).zip(out.iter_mut()) {
                    s.spawn(move |_| *slot = black_box(i));
                }
            });
            out.into_iter().sum()
        }
        Contender::Threadpool(pool) => collect_oneshots(n, |job| pool.execute(job)),
        Contender::Hand(pool) => collect_oneshots(n, |job| pool.spawn(job)),
    }
}

fn collect_oneshots(n: u64, spawn: impl Fn(Box<dyn FnOnce() + Send>)) -> u64 {
    let receivers: Vec<_> = (0..n)
        .map(|i| {
            let (tx, rx) = oneshot();
            spawn(Box::new(move || tx.send(black_box(i))));
            rx
        })
        .collect();
    receivers.into_iter().map(|rx| rx.recv()).sum()
}

/// One job spawns `n` tiny jobs (from inside the pool, so onto its worker's
/// own deque where the pool has one), then everything is waited for.
pub fn fan_out(c: &Contender, n: u64) {
    match c {
        Contender::Workyard(pool) => {
            pool.spawn_detached(move || {
                for i in 0..n {
                    workyard::spawn_detached(move || black_box(i)).expect("pool is up");
                }
            })
            .expect("pool is up");
            pool.wait_idle();
        }
        Contender::RayonSpawn { pool, done } => {
            let done: &'static Countdown = done;
            done.add(n as usize);
            pool.spawn(move || {
                for i in 0..n {
                    rayon::spawn(move || {
                        black_box(i);
                        done.done();
                    });
                }
            });
            done.wait();
        }
        Contender::RayonScope(pool) => pool.scope(|s| {
            s.spawn(move |s| {
                for i in 0..n {
                    s.spawn(move |_| {
                        black_box(i);
                    });
                }
            });
        }),
        Contender::Threadpool(pool) => {
            let inner = pool.clone();
            pool.execute(move || {
                for i in 0..n {
                    inner.execute(move || {
                        black_box(i);
                    });
                }
            });
            pool.join();
        }
        Contender::Hand(pool) => {
            let inner = pool.spawner();
            pool.spawn(move || {
                for i in 0..n {
                    inner.spawn(move || {
                        black_box(i);
                    });
                }
            });
            pool.wait_idle();
        }
    }
}

/// A chain of `n` jobs, each spawning the next from inside the pool: the
/// cost of one spawn plus one hand-over, `n` times in sequence.
pub fn chain(c: &Contender, n: u64) {
    match c {
        Contender::Workyard(pool) => {
            fn link(left: u64) {
                if left > 0 {
                    workyard::spawn_detached(move || link(left - 1)).expect("pool is up");
                }
            }
            if n > 0 {
                pool.spawn_detached(move || link(n - 1))
                    .expect("pool is up");
            }
            pool.wait_idle();
        }
        Contender::RayonSpawn { pool, done } => {
            fn link(left: u64, done: &'static Countdown) {
                if left == 0 {
                    done.done();
                } else {
                    rayon::spawn(move || link(left - 1, done));
                }
            }
            let done: &'static Countdown = done;
            done.add(1);
            pool.spawn(move || link(n - 1, done));
            done.wait();
        }
        Contender::RayonScope(pool) => {
            fn link(s: &rayon::Scope<'_>, left: u64) {
                if left > 0 {
                    s.spawn(move |s| link(s, left - 1));
                }
            }
            pool.scope(|s| link(s, n));
        }
        Contender::Threadpool(pool) => {
            fn link(pool: threadpool::ThreadPool, left: u64) {
                if left > 0 {
                    let next = pool.clone();
                    pool.execute(move || link(next, left - 1));
                }
            }
            link(pool.clone(), n);
            pool.join();
        }
        Contender::Hand(pool) => {
            fn link(spawner: super::hand::Spawner, left: u64) {
                if left > 0 {
                    let next = spawner.clone();
                    spawner.spawn(move || link(next, left - 1));
                }
            }
            link(pool.spawner(), n);
            pool.wait_idle();
        }
    }
}
