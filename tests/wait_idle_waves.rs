//! `wait_idle` and idle moments (issue #17 §3), after threadpool's
//! `test_join_wavesurfer`: when the pool goes idle, every thread waiting in
//! `wait_idle` at that moment returns, even if one of them (the "surfer")
//! spawns a new wave of jobs the instant it returns.
//!
//! Made exact without timing: each wave's jobs wait on the wave's own
//! [`Gate`]. For wave k the test lets every waiter call `wait_idle`, waits
//! until each waiter has announced that it is about to call it and its
//! thread is then seen asleep (its state in
//! `/proc/self/task/TID/stat`; while wave k is held by its gate the only
//! thing a waiter can sleep on is `wait_idle`), then opens wave k's gate.
//! The surfer, once back, spawns wave k+1 (held by a closed gate) and
//! reports; every other waiter must report that it returned while wave k+1
//! is still held. One that missed the idle moment would wait for wave k+1,
//! which cannot finish before the test opens its gate: the test fails
//! after a deadline, naming the waiter and the wave.
//!
//! On today's code this FAILS with an assertion ("waiters [1, 2, 3] did not
//! return at the idle moment after wave 0" (or 1), within ~5 s): a woken waiter
//! re-checks "nothing pending", sees the surfer's new wave and sleeps on.

mod common;
use common::{within, Gate};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};
use workyard::Dispatcher;

const WAVES: usize = 12;
const WAITERS: usize = 4;
const JOBS_PER_WAVE: usize = 8;

/// The kernel's id of the calling thread.
fn tid() -> i64 {
    // SAFETY: gettid has no preconditions and cannot fail.
    unsafe { libc::syscall(libc::SYS_gettid) }
}

/// Is thread `tid` of this process asleep (state `S`)?
fn asleep(tid: i64) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")) else {
        return false;
    };
    // The state follows the parenthesised name, which may hold spaces.
    stat.rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .is_some_and(|state| state == "S")
}

struct Waves {
    gates: Vec<Gate>,
    ran: Vec<AtomicUsize>,
}

impl Waves {
    fn spawn(self: &Arc<Waves>, pool: &Dispatcher, wave: usize) {
        for _ in 0..JOBS_PER_WAVE {
            let waves = self.clone();
            pool.spawn(move || {
                waves.gates[wave].wait();
                waves.ran[wave].fetch_add(1, SeqCst);
            })
            .unwrap();
        }
    }
}

#[test]
fn every_waiter_returns_at_the_idle_moment_even_when_one_spawns_the_next_wave() {
    within(Duration::from_secs(30), || {
        let pool = Dispatcher::builder().workers(4).build().unwrap();
        let waves = Arc::new(Waves {
            gates: (0..WAVES).map(|_| Gate::new()).collect(),
            ran: (0..WAVES).map(|_| AtomicUsize::new(0)).collect(),
        });
        let (report_tx, reports) = mpsc::channel::<(usize, usize)>();
        let (tid_tx, tids) = mpsc::channel::<(usize, i64)>();
        let mut go = Vec::new();
        // Waiter w stores wave + 1 here just before its `wait_idle` for
        // that wave: after it, the next thing it can sleep on is the wait.
        let entering: Arc<Vec<AtomicUsize>> =
            Arc::new((0..WAITERS).map(|_| AtomicUsize::new(0)).collect());
        for w in 0..WAITERS {
            let (go_tx, go_rx) = mpsc::channel::<usize>();
            go.push(go_tx);
            let (pool, waves, report_tx, tid_tx, entering) = (
                pool.clone(),
                waves.clone(),
                report_tx.clone(),
                tid_tx.clone(),
                entering.clone(),
            );
            std::thread::spawn(move || {
                tid_tx.send((w, tid())).unwrap();
                while let Ok(wave) = go_rx.recv() {
                    entering[w].store(wave + 1, SeqCst);
                    pool.wait_idle();
                    if w == 0 && wave + 1 < WAVES {
                        // The surfer: a new wave the instant the pool is idle.
                        waves.spawn(&pool, wave + 1);
                    }
                    let _ = report_tx.send((w, wave));
                }
            });
        }
        let mut tid_of = [0i64; WAITERS];
        for _ in 0..WAITERS {
            let (w, t) = tids.recv().unwrap();
            tid_of[w] = t;
        }

        waves.spawn(&pool, 0);
        for wave in 0..WAVES {
            for go in &go {
                go.send(wave).unwrap();
            }
            // Every waiter asleep in wait_idle (seen twice in a row, so
            // that a brief sleep on a lock on the way in does not count).
            let deadline = Instant::now() + Duration::from_secs(5);
            while !(entering.iter().all(|e| e.load(SeqCst) == wave + 1)
                && tid_of.iter().all(|&t| asleep(t))
                && tid_of.iter().all(|&t| asleep(t)))
            {
                assert!(
                    Instant::now() < deadline,
                    "wave {wave}: the waiters never all blocked in wait_idle"
                );
                std::thread::yield_now();
            }
            waves.gates[wave].open();
            let mut returned = [false; WAITERS];
            let deadline = Instant::now() + Duration::from_secs(5);
            while !returned.iter().all(|&r| r) {
                let left = deadline.saturating_duration_since(Instant::now());
                match reports.recv_timeout(left) {
                    Ok((w, at)) => {
                        assert_eq!(at, wave, "waiter {w} reported for another wave");
                        assert!(!returned[w], "waiter {w} returned twice");
                        returned[w] = true;
                    }
                    Err(_) => {
                        let missing: Vec<_> = (0..WAITERS).filter(|&w| !returned[w]).collect();
                        // Let the stragglers go before failing.
                        for gate in &waves.gates {
                            gate.open();
                        }
                        panic!(
                            "waiters {missing:?} did not return at the idle moment after wave \
                             {wave} (the surfer had spawned wave {} and it was held)",
                            wave + 1
                        );
                    }
                }
            }
            assert_eq!(waves.ran[wave].load(SeqCst), JOBS_PER_WAVE, "wave {wave}");
            if wave + 1 < WAVES {
                assert_eq!(
                    waves.ran[wave + 1].load(SeqCst),
                    0,
                    "wave {} ran before its gate opened",
                    wave + 1
                );
            }
        }
        drop(go);
        pool.wait_idle();
        for (wave, ran) in waves.ran.iter().enumerate() {
            assert_eq!(ran.load(SeqCst), JOBS_PER_WAVE, "wave {wave}");
        }
        pool.shutdown();
    });
}
