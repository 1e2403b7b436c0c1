//! Scoped jobs: they borrow from the caller's stack, have status records
//! and typed handles, are all finished (and everything they borrowed is
//! released) when `scope` returns, and an unjoined panic reaches the
//! caller of `scope` after every other job finished.
//!
//! No test sleeps to synchronise; each runs under a watchdog so that a
//! deadlock fails the test instead of hanging the suite.

use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::Duration;
use workyard::{Dispatcher, JobError, JobStatus};

/// Runs `f` on its own thread and fails the test if it takes longer than
/// `secs` (a deadlock), instead of hanging the whole suite.
fn watchdog<R: Send + 'static>(secs: u64, f: impl FnOnce() -> R + Send + 'static) -> R {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(panic::catch_unwind(AssertUnwindSafe(f)));
    });
    match rx.recv_timeout(Duration::from_secs(secs)) {
        Ok(Ok(value)) => value,
        Ok(Err(payload)) => panic::resume_unwind(payload),
        Err(_) => panic!("timed out after {secs} s: deadlock?"),
    }
}

fn pool(workers: usize) -> Dispatcher {
    Dispatcher::builder().workers(workers).build().unwrap()
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "<non-string>".to_string())
}

/// Counts drops through a borrowed counter: dropping one after its scope
/// returned would be a use after free (and show up as a wrong count).
struct Borrowing<'a>(&'a AtomicUsize);

impl Drop for Borrowing<'_> {
    fn drop(&mut self) {
        self.0.fetch_add(1, SeqCst);
    }
}

// ---------------------------------------------------------------- results

#[test]
fn parallel_sum_over_a_borrowed_slice() {
    watchdog(60, || {
        let data: Vec<u64> = (1..=1_000_000).collect();
        let expected: u64 = 1_000_000 * 1_000_001 / 2;
        for workers in [1, 2, 4] {
            let pool = pool(workers);
            // Results written into borrowed slots...
            let mut partial = [0u64; 16];
            pool.scope(|s| {
                for (chunk, slot) in data.chunks(data.len() / 16).zip(partial.iter_mut()) {
                    s.spawn(move || *slot = chunk.iter().sum()).unwrap();
                }
            });
            assert_eq!(partial.iter().sum::<u64>(), expected, "{workers} workers");
            // ... and returned through typed handles.
            let total = pool.scope(|s| {
                let handles: Vec<_> = data
                    .chunks(1000)
                    .map(|chunk| s.spawn(move || chunk.iter().sum::<u64>()).unwrap())
                    .collect();
                handles.into_iter().map(|h| h.join().unwrap()).sum::<u64>()
            });
            assert_eq!(total, expected, "{workers} workers");
            pool.wait_idle();
            assert_eq!(pool.stats().succeeded, 16 + 1000);
        }
    });
}

#[test]
fn scoped_jobs_have_status_records_and_ids() {
    watchdog(30, || {
        let pool = pool(2);
        let text = String::from("borrowed");
        let (id, kept, statuses) = pool.scope(|s| {
            let a = s.spawn(|| text.len()).unwrap();
            let b = s.spawn(|| text.to_uppercase()).unwrap();
            let (ida, idb) = (a.id(), b.id());
            assert_ne!(ida, idb);
            assert!(pool.status(ida).is_some(), "scoped jobs are in the index");
            assert_eq!(a.join().unwrap(), 8);
            let info_b = b.info();
            assert_eq!(info_b.id(), idb);
            (ida, b.join().unwrap(), [idb])
        });
        assert_eq!(kept, "BORROWED");
        // After the scope every job is terminal, and still queryable.
        assert_eq!(pool.status(id), Some(JobStatus::Succeeded));
        assert_eq!(pool.status(statuses[0]), Some(JobStatus::Succeeded));
        let info = pool.info(id).unwrap();
        assert!(info.run_time().is_some() && info.worker().is_some());
    });
}

#[test]
fn every_job_is_finished_when_scope_returns() {
    watchdog(30, || {
        for workers in [1, 2] {
            let pool = pool(workers);
            let ran = AtomicUsize::new(0);
            let ids = Mutex::new(Vec::new());
            pool.scope(|s| {
                for _ in 0..200 {
                    // Handles dropped at once: detached, but still awaited.
                    let h = s.spawn(|| ran.fetch_add(1, SeqCst)).unwrap();
                    ids.lock().unwrap().push(h.id());
                }
            });
            assert_eq!(ran.load(SeqCst), 200);
            for id in ids.into_inner().unwrap() {
                assert_eq!(pool.status(id), Some(JobStatus::Succeeded));
            }
        }
    });
}

#[test]
fn scoped_jobs_spawn_more_scoped_jobs() {
    fn tree<'scope>(
        s: &'scope workyard::Scope<'scope, '_>,
        count: &'scope AtomicUsize,
        depth: u32,
    ) {
        count.fetch_add(1, SeqCst);
        if depth > 0 {
            s.spawn(move || tree(s, count, depth - 1)).unwrap();
            s.spawn(move || tree(s, count, depth - 1)).unwrap();
        }
    }
    watchdog(30, || {
        for workers in [1, 2, 3] {
            let pool = pool(workers);
            let count = AtomicUsize::new(0);
            pool.scope(|s| tree(s, &count, 10));
            assert_eq!(count.load(SeqCst), 2047, "{workers} workers");
        }
    });
}

#[test]
fn scope_inside_a_job_on_one_worker_with_10_000_children() {
    watchdog(60, || {
        for workers in [1, 2] {
            let pool = pool(workers);
            let inner = pool.clone();
            let handle = pool
                .spawn(move || {
                    let values: Vec<u64> = (0..10_000).collect();
                    inner.scope(|s| {
                        let handles: Vec<_> = values
                            .iter()
                            .map(|v| s.spawn(move || v * 2).unwrap())
                            .collect();
                        handles.into_iter().map(|h| h.join().unwrap()).sum::<u64>()
                    })
                })
                .unwrap();
            assert_eq!(handle.join().unwrap(), 10_000 * 9_999, "{workers} workers");
        }
    });
}

#[test]
fn scoped_jobs_join_each_others_handles_on_one_and_two_workers() {
    watchdog(30, || {
        for workers in [1, 2] {
            let pool = pool(workers);
            let base = 40u64;
            let total = pool.scope(|s| {
                let first = s.spawn(|| base + 1).unwrap();
                // A scoped job waits for another one's handle (on one
                // worker it must run `first` itself meanwhile).
                let second = s.spawn(move || first.join().unwrap() + 1).unwrap();
                second.join().unwrap()
            });
            assert_eq!(total, 42, "{workers} workers");
        }
    });
}

#[test]
fn join_inside_scoped_jobs() {
    watchdog(30, || {
        let pool = pool(2);
        let mut data: Vec<u64> = (0..10_000).rev().collect();
        pool.scope(|s| {
            for chunk in data.chunks_mut(2_500) {
                s.spawn(move || {
                    let (lo, hi) = chunk.split_at_mut(1_250);
                    workyard::join(|| lo.sort(), || hi.sort());
                })
                .unwrap();
            }
        });
        for chunk in data.chunks(1_250) {
            assert!(chunk.windows(2).all(|w| w[0] <= w[1]));
        }
    });
}

// ---------------------------------------------------------------- lifetimes and drops

#[test]
fn results_of_leaked_handles_are_dropped_inside_the_scope() {
    watchdog(30, || {
        let pool = pool(2);
        let dropped = AtomicUsize::new(0);
        pool.scope(|s| {
            for _ in 0..10 {
                let handle = s.spawn(|| Borrowing(&dropped)).unwrap();
                std::mem::forget(handle);
            }
            let joined = s.spawn(|| Borrowing(&dropped)).unwrap();
            drop(joined.join().unwrap());
            let _detached = s.spawn(|| Borrowing(&dropped)).unwrap();
        });
        // Every result dropped exactly once, before `scope` returned.
        assert_eq!(dropped.load(SeqCst), 12);
    });
}

#[test]
fn a_cancelled_scoped_job_drops_its_closure_inside_the_scope() {
    watchdog(30, || {
        let pool = pool(1);
        let dropped = AtomicUsize::new(0);
        let ran = AtomicUsize::new(0);
        pool.pause();
        let status = pool.scope(|s| {
            let token = Borrowing(&dropped);
            let ran = &ran;
            let handle = s
                .spawn(move || {
                    let _token = token;
                    ran.fetch_add(1, SeqCst)
                })
                .unwrap();
            assert!(handle.cancel());
            let status = handle.status();
            assert!(handle.join().unwrap_err().is_cancelled());
            pool.resume();
            status
        });
        assert_eq!(status, JobStatus::Cancelled);
        assert_eq!(ran.load(SeqCst), 0);
        assert_eq!(dropped.load(SeqCst), 1);
        pool.wait_idle();
        assert_eq!(pool.stats().cancelled, 1);
    });
}

#[test]
fn spawn_after_shutdown_gives_the_closure_back() {
    let pool = pool(1);
    pool.shutdown();
    let value = pool.scope(|s| {
        let refused = s.spawn(|| 7).unwrap_err();
        (refused.into_inner())()
    });
    assert_eq!(value, 7);
}

// ---------------------------------------------------------------- panics

#[test]
fn an_unjoined_panic_reaches_the_caller_after_the_other_jobs() {
    watchdog(30, || {
        for workers in [1, 2] {
            let pool = pool(workers);
            let finished = AtomicUsize::new(0);
            let dropped = AtomicUsize::new(0);
            let result = panic::catch_unwind(AssertUnwindSafe(|| {
                pool.scope(|s| {
                    s.spawn(|| -> () { panic!("scoped job panics") }).unwrap();
                    for _ in 0..100 {
                        let token = Borrowing(&dropped);
                        let finished = &finished;
                        s.spawn(move || {
                            let _token = token;
                            finished.fetch_add(1, SeqCst);
                        })
                        .unwrap();
                    }
                    "body result"
                })
            }));
            let payload = result.unwrap_err();
            assert_eq!(panic_message(&*payload), "scoped job panics");
            assert_eq!(finished.load(SeqCst), 100, "{workers} workers");
            assert_eq!(dropped.load(SeqCst), 100);
            // The workers survived.
            assert_eq!(pool.spawn(|| 1).unwrap().join().unwrap(), 1);
            pool.wait_idle();
            assert_eq!(pool.stats().panicked, 1);
        }
    });
}

#[test]
fn a_joined_panic_is_handled_and_does_not_reach_the_caller() {
    watchdog(30, || {
        let pool = pool(2);
        let message = pool.scope(|s| {
            let handle = s.spawn(|| -> u32 { panic!("handled") }).unwrap();
            match handle.join() {
                Err(JobError::Panicked(p)) => p.message().map(str::to_string),
                other => panic!("unexpected {other:?}"),
            }
        });
        assert_eq!(message.as_deref(), Some("handled"));
    });
}

#[test]
fn a_panic_behind_a_leaked_handle_still_reaches_the_caller() {
    watchdog(30, || {
        let pool = pool(2);
        let result = panic::catch_unwind(AssertUnwindSafe(|| {
            pool.scope(|s| {
                let handle = s.spawn(|| -> u32 { panic!("leaked") }).unwrap();
                std::mem::forget(handle);
            })
        }));
        assert_eq!(panic_message(&*result.unwrap_err()), "leaked");
    });
}

#[test]
fn a_panicking_body_waits_for_its_jobs_and_wins_over_theirs() {
    watchdog(30, || {
        for workers in [1, 2] {
            let pool = pool(workers);
            let finished = AtomicUsize::new(0);
            let release = AtomicBool::new(false);
            let result = panic::catch_unwind(AssertUnwindSafe(|| {
                pool.scope(|s| {
                    s.spawn(|| -> () { panic!("job panics") }).unwrap();
                    for _ in 0..10 {
                        s.spawn(|| {
                            // On one worker this runs only once the body
                            // waits; with two it may start at once.
                            while workers > 1 && !release.load(SeqCst) {
                                std::hint::spin_loop();
                            }
                            finished.fetch_add(1, SeqCst);
                        })
                        .unwrap();
                    }
                    release.store(true, SeqCst);
                    panic!("body panics");
                })
            }));
            assert_eq!(panic_message(&*result.unwrap_err()), "body panics");
            assert_eq!(finished.load(SeqCst), 10, "{workers} workers");
        }
    });
}

#[test]
fn panics_in_nested_positions_inside_scoped_jobs() {
    // A join half panics inside a scoped job, which panics out of the job:
    // the scope reports it after the sibling jobs finished.
    watchdog(30, || {
        let pool = pool(2);
        let finished = Arc::new(AtomicUsize::new(0));
        let result = panic::catch_unwind(AssertUnwindSafe(|| {
            pool.scope(|s| {
                s.spawn(|| workyard::join(|| 1, || -> u32 { panic!("deep half") }))
                    .unwrap();
                for _ in 0..20 {
                    let finished = finished.clone();
                    s.spawn(move || finished.fetch_add(1, SeqCst)).unwrap();
                }
            })
        }));
        assert_eq!(panic_message(&*result.unwrap_err()), "deep half");
        assert_eq!(finished.load(SeqCst), 20);
        assert_eq!(pool.spawn(|| 2).unwrap().join().unwrap(), 2);
    });
}
