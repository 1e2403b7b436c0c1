//! Fork-join: `workyard::join` and `Dispatcher::join` give the sequential
//! results, never deadlock (deep nesting, one worker, joins inside jobs),
//! allocate nothing per join, and propagate panics only after both halves
//! are done, leaving the workers alive.
//!
//! No test sleeps to synchronise; each runs under a watchdog so that a
//! deadlock fails the test instead of hanging the suite.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::Duration;
use workyard::{Dispatcher, JobStatus};

// ---------------------------------------------------------------- helpers

/// Counts heap allocations made by the current thread.
struct CountingAlloc;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: forwards to the system allocator; the counter is a const-init
// thread-local `Cell` without a destructor, safe to touch from `alloc`.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

fn allocations() -> usize {
    ALLOCATIONS.with(Cell::get)
}

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

fn panic_message(payload: &(dyn std::any::Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("<non-string>")
}

fn fib_seq(n: u64) -> u64 {
    if n < 2 {
        n
    } else {
        fib_seq(n - 1) + fib_seq(n - 2)
    }
}

/// Forks down to `n <= cutoff`, sequential below.
fn fib_join(n: u64, cutoff: u64) -> u64 {
    if n <= cutoff {
        return fib_seq(n);
    }
    let (a, b) = workyard::join(|| fib_join(n - 1, cutoff), || fib_join(n - 2, cutoff));
    a + b
}

fn quicksort<T: Ord + Send>(v: &mut [T]) {
    if v.len() <= 32 {
        v.sort();
        return;
    }
    let mid = partition(v);
    let (low, high) = v.split_at_mut(mid);
    workyard::join(|| quicksort(low), || quicksort(&mut high[1..]));
}

/// Lomuto partition around the middle element; returns the pivot's index.
fn partition<T: Ord>(v: &mut [T]) -> usize {
    let last = v.len() - 1;
    v.swap(v.len() / 2, last);
    let mut store = 0;
    for i in 0..last {
        if v[i] <= v[last] {
            v.swap(i, store);
            store += 1;
        }
    }
    v.swap(store, last);
    store
}

fn random_vec(len: usize, mut seed: u64) -> Vec<u64> {
    (0..len)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % 1_000_000
        })
        .collect()
}

// ---------------------------------------------------------------- results

#[test]
fn fib_through_join_matches_sequential() {
    watchdog(60, || {
        let expected = fib_seq(27);
        for workers in [1, 2, 4] {
            let pool = pool(workers);
            for cutoff in [1, 12] {
                let handle = pool.spawn(move || fib_join(27, cutoff)).unwrap();
                assert_eq!(handle.join().unwrap(), expected, "{workers} workers");
            }
            // From outside the pool: the pair runs on the workers.
            let (a, b) = pool.join(|| fib_join(26, 10), || fib_join(25, 10));
            assert_eq!(a + b, expected);
            pool.wait_idle();
            let stats = pool.stats();
            assert_eq!(stats.succeeded, 2, "join halves are not counted as jobs");
            assert_eq!((stats.failed, stats.panicked), (0, 0));
        }
    });
}

#[test]
fn quicksort_through_join_matches_sort() {
    watchdog(60, || {
        for workers in [1, 2, 3] {
            let pool = pool(workers);
            let mut data = random_vec(200_000, 0x2545_F491 + workers as u64);
            let mut expected = data.clone();
            expected.sort();
            // Borrowed halves, joined from outside the pool.
            let mut halves = data.clone();
            let mut expected_halves = data.clone();
            expected_halves[..100_000].sort();
            expected_halves[100_000..].sort();
            let (left, right) = halves.split_at_mut(100_000);
            pool.join(|| quicksort(left), || quicksort(right));
            assert_eq!(halves, expected_halves, "{workers} workers");
            // And the whole vector from inside a job.
            let handle = pool
                .spawn(move || {
                    quicksort(&mut data);
                    data
                })
                .unwrap();
            assert_eq!(handle.join().unwrap(), expected, "{workers} workers");
        }
    });
}

#[test]
fn join_outside_any_worker_runs_on_the_global_dispatcher() {
    watchdog(30, || {
        let me = thread::current().id();
        let half = || {
            let on = thread::current();
            let name = on.name().unwrap_or("").to_string();
            (on.id(), name, workyard::current_thread_index())
        };
        let ((a_id, a_name, a_index), (b_id, b_name, b_index)) = workyard::join(half, half);
        assert!(a_id != me && b_id != me, "a half ran on the caller");
        assert!(a_name.starts_with("workyard-"), "{a_name}");
        assert!(b_name.starts_with("workyard-"), "{b_name}");
        assert!(a_index.is_some() && b_index.is_some());
        assert_eq!(workyard::current_thread_index(), None);
    });
}

#[test]
fn dispatcher_join_from_outside_runs_on_the_workers() {
    watchdog(30, || {
        let pool = Dispatcher::builder()
            .workers(2)
            .thread_name(|i| format!("fj-{i}"))
            .build()
            .unwrap();
        let name = || thread::current().name().unwrap_or("").to_string();
        let (a, b) = pool.join(name, name);
        assert!(a.starts_with("fj-") && b.starts_with("fj-"), "{a} {b}");
        assert_eq!(workyard::current_job(), None);
        // Once shut down, it still answers, on the caller.
        pool.shutdown();
        let me = thread::current().id();
        let (a, b) = pool.join(|| thread::current().id(), || thread::current().id());
        assert_eq!((a, b), (me, me));
    });
}

#[test]
fn deep_recursion_of_10_000_nested_joins_on_one_worker() {
    // 10,000 nested `join` frames (each holding a StackJob) on one worker
    // take ~3 MiB of stack in a release build and ~14 MiB in a debug one
    // (measured on x86-64), more than the default 2 MiB thread stack: the
    // worker gets 64 MiB (reserved address space, touched only as used).
    fn depth(n: usize) -> usize {
        if n == 0 {
            return 0;
        }
        let (below, one) = workyard::join(|| depth(n - 1), || 1);
        below + one
    }
    watchdog(60, || {
        let pool = Dispatcher::builder()
            .workers(1)
            .stack_size(64 << 20)
            .build()
            .unwrap();
        let handle = pool.spawn(|| depth(10_000)).unwrap();
        assert_eq!(handle.join().unwrap(), 10_000);
        // The same depth with the recursion in the forked half: every
        // level pops its `b` back and runs it inline, one frame deeper.
        fn depth_b(n: usize) -> usize {
            if n == 0 {
                return 0;
            }
            let (one, below) = workyard::join(|| 1, || depth_b(n - 1));
            below + one
        }
        let handle = pool.spawn(|| depth_b(10_000)).unwrap();
        assert_eq!(handle.join().unwrap(), 10_000);
    });
}

#[test]
fn join_allocates_nothing() {
    watchdog(30, || {
        let pool = pool(1);
        let handle = pool
            .spawn(|| {
                fn sum(lo: u64, hi: u64) -> u64 {
                    if hi - lo <= 4 {
                        return (lo..hi).sum();
                    }
                    let mid = (lo + hi) / 2;
                    let (a, b) = workyard::join(|| sum(lo, mid), || sum(mid, hi));
                    a + b
                }
                sum(0, 4096); // warm-up: lets the deque reach its size
                let before = allocations();
                let total = sum(0, 4096);
                (total, allocations() - before)
            })
            .unwrap();
        assert_eq!(handle.join().unwrap(), (4096 * 4095 / 2, 0));
    });
}

#[test]
fn halves_run_as_part_of_the_calling_job_even_when_stolen() {
    watchdog(30, || {
        let pool = pool(2);
        let handle = pool
            .spawn(|| {
                let b_started = AtomicBool::new(false);
                let (a, b) = workyard::join(
                    || {
                        // Hold `a` until a peer stole `b` and started it.
                        while !b_started.load(SeqCst) {
                            std::hint::spin_loop();
                        }
                        (workyard::current_job(), thread::current().id())
                    },
                    || {
                        b_started.store(true, SeqCst);
                        (workyard::current_job(), thread::current().id())
                    },
                );
                (workyard::current_job(), a, b)
            })
            .unwrap();
        let id = handle.id();
        let (outer, a, b) = handle.join().unwrap();
        assert_eq!(outer, Some(id));
        assert_eq!(a.0, Some(id));
        assert_eq!(b.0, Some(id), "a stolen half still belongs to its job");
        assert_ne!(a.1, b.1, "b was stolen by the other worker");
        pool.wait_idle();
        assert!(pool.stats().steals >= 1);
    });
}

/// A `join` whose `a` waits for its `b` to start: only a peer can run
/// `b` meanwhile, and each nested join in `a` is a chance to publish the
/// oldest pending half, which is that `b`. Returns the threads that ran
/// `a` and `b`.
fn outer_half_runs_on_a_peer() -> (thread::ThreadId, thread::ThreadId) {
    let outer_started = AtomicBool::new(false);
    let ((), outer) = workyard::join(
        || {
            while !outer_started.load(SeqCst) {
                workyard::join(|| (), || ());
            }
        },
        || {
            outer_started.store(true, SeqCst);
            thread::current().id()
        },
    );
    (thread::current().id(), outer)
}

#[test]
fn a_steal_request_publishes_the_oldest_pending_half_from_a_nested_join() {
    watchdog(30, || {
        let pool = pool(2);
        let handle = pool
            .spawn(|| {
                // The first join takes the slot's first request; the outer
                // one below is published only when the idle peer asks.
                workyard::join(|| (), || ());
                outer_half_runs_on_a_peer()
            })
            .unwrap();
        let (owner, outer) = handle.join().unwrap();
        assert_ne!(owner, outer, "the outer half was published and stolen");
    });
}

/// A pool's only worker runs `join`s as plain calls (nobody could take a
/// half); once the pool grows, a job already running on it publishes the
/// halves of the `join`s it enters from then on to the new peer, as any
/// worker does. (Those of `join`s entered before stay with it: see
/// `src/request.rs`.)
#[test]
fn the_only_worker_publishes_once_the_pool_grows_under_a_running_job() {
    watchdog(30, || {
        let pool = pool(1);
        let (started_tx, started) = mpsc::channel();
        let (grown_tx, grown) = mpsc::channel::<()>();
        let handle = pool
            .spawn(move || {
                // Solo: the halves run here, in order.
                let order = std::sync::Mutex::new(Vec::new());
                workyard::join(
                    || order.lock().unwrap().push('a'),
                    || order.lock().unwrap().push('b'),
                );
                assert_eq!(*order.lock().unwrap(), ['a', 'b']);
                started_tx.send(()).unwrap();
                grown.recv().unwrap();
                outer_half_runs_on_a_peer()
            })
            .unwrap();
        started.recv().unwrap();
        pool.set_workers(2).unwrap();
        grown_tx.send(()).unwrap();
        let (owner, outer) = handle.join().unwrap();
        assert_ne!(owner, outer, "the outer half went to the new worker");
    });
}

#[test]
fn a_cancelled_job_sees_it_in_stolen_halves() {
    watchdog(30, || {
        let pool = pool(2);
        let ready = Arc::new(AtomicUsize::new(0));
        let seen = ready.clone();
        let handle = pool
            .spawn(move || {
                let spin = || {
                    seen.fetch_add(1, SeqCst);
                    while !workyard::is_cancelled() {
                        std::hint::spin_loop();
                    }
                    thread::current().id()
                };
                workyard::join(spin, spin)
            })
            .unwrap();
        // Both halves running (so one was stolen), then cancel the job.
        while ready.load(SeqCst) < 2 {
            std::hint::spin_loop();
        }
        assert!(handle.cancel());
        assert!(handle.join().unwrap_err().is_cancelled());
    });
}

// ---------------------------------------------------------------- waiting inside jobs

#[test]
fn a_job_spawns_and_joins_10_000_children_on_one_worker() {
    watchdog(60, || {
        for workers in [1, 2] {
            let pool = pool(workers);
            let inner = pool.clone();
            let handle = pool
                .spawn(move || {
                    let children: Vec<_> = (0..10_000u64)
                        .map(|i| inner.spawn(move || i * 2).unwrap())
                        .collect();
                    children.into_iter().map(|h| h.join().unwrap()).sum::<u64>()
                })
                .unwrap();
            assert_eq!(handle.join().unwrap(), 10_000 * 9_999, "{workers} workers");
            pool.wait_idle();
            assert_eq!(pool.stats().succeeded, 10_001);
        }
    });
}

#[test]
fn jobs_join_handles_of_jobs_that_join_handles() {
    // A tree of spawned jobs, each joining its two children's handles.
    fn tree(pool: Dispatcher, depth: u32) -> u64 {
        if depth == 0 {
            return 1;
        }
        let (p1, p2) = (pool.clone(), pool.clone());
        let left = pool.spawn(move || tree(p1, depth - 1)).unwrap();
        let right = pool.spawn(move || tree(p2, depth - 1)).unwrap();
        left.join().unwrap() + right.join().unwrap()
    }
    watchdog(60, || {
        for workers in [1, 2] {
            let pool = pool(workers);
            let inner = pool.clone();
            let handle = pool.spawn(move || tree(inner, 10)).unwrap();
            assert_eq!(handle.join().unwrap(), 1024, "{workers} workers");
            pool.wait_idle();
            assert_eq!(pool.stats().succeeded, 2047);
        }
    });
}

#[test]
fn join_mixed_with_spawn_inside_halves() {
    watchdog(30, || {
        for workers in [1, 2] {
            let pool = pool(workers);
            let inner = pool.clone();
            let handle = pool
                .spawn(move || {
                    let (p1, p2) = (inner.clone(), inner);
                    let (a, b) = workyard::join(
                        move || p1.spawn(|| 20).unwrap().join().unwrap(),
                        move || p2.spawn(|| 22).unwrap().join().unwrap(),
                    );
                    a + b
                })
                .unwrap();
            assert_eq!(handle.join().unwrap(), 42);
        }
    });
}

#[test]
fn join_inside_a_job_completes_while_the_pool_is_paused() {
    watchdog(30, || {
        let pool = pool(1);
        let go = Arc::new(AtomicBool::new(false));
        let (inner, flag) = (pool.clone(), go.clone());
        let handle = pool
            .spawn(move || {
                while !flag.load(SeqCst) {
                    std::hint::spin_loop();
                }
                // `a` spawns a child, which lands on the deque above `b`.
                let (child, b) = workyard::join(|| inner.spawn(|| 7).unwrap(), || 35);
                (child, b)
            })
            .unwrap();
        while handle.status() != JobStatus::Running {
            thread::yield_now();
        }
        pool.pause();
        go.store(true, SeqCst);
        // The join finishes (its own `b` runs) but the child stays queued.
        let (child, b) = handle.join().unwrap();
        assert_eq!(b, 35);
        assert_eq!(child.status(), JobStatus::Queued);
        pool.resume();
        assert_eq!(child.join().unwrap(), 7);
    });
}

// ---------------------------------------------------------------- panics

/// Counts drops, to show that nothing leaks when a half panics.
struct Token(Arc<AtomicUsize>);

impl Drop for Token {
    fn drop(&mut self) {
        self.0.fetch_add(1, SeqCst);
    }
}

/// Runs `join(a, b)` where the halves in `panics` panic (0 = a, 1 = b),
/// each half first finishing `work` units of counted work. Returns the
/// panic message, how much work ran, and how many tokens were dropped.
fn join_with_panics(pool: &Dispatcher, panics: [bool; 2], inside: bool) -> (String, usize, usize) {
    let work = Arc::new(AtomicUsize::new(0));
    let dropped = Arc::new(AtomicUsize::new(0));
    let half = |me: usize| {
        let work = work.clone();
        let token = Token(dropped.clone());
        move || {
            let _token = token;
            // Enough nested joins that `b` has a chance to be stolen.
            fn count(n: u32, work: &AtomicUsize) {
                if n == 0 {
                    work.fetch_add(1, SeqCst);
                    return;
                }
                workyard::join(|| count(n - 1, work), || count(n - 1, work));
            }
            count(6, &work);
            if panics[me] {
                panic!("half {me} panics");
            }
            Token(Arc::new(AtomicUsize::new(0))) // a result that must be dropped
        }
    };
    let (a, b) = (half(0), half(1));
    let result = if inside {
        let handle = pool
            .spawn(move || panic::catch_unwind(AssertUnwindSafe(|| workyard::join(a, b))).map(drop))
            .unwrap();
        handle.join().unwrap()
    } else {
        panic::catch_unwind(AssertUnwindSafe(|| pool.join(a, b))).map(drop)
    };
    let message = match result {
        Ok(()) => String::new(),
        Err(payload) => panic_message(&*payload).to_string(),
    };
    (message, work.load(SeqCst), dropped.load(SeqCst))
}

#[test]
fn a_panic_in_either_half_arrives_after_both_finished() {
    watchdog(60, || {
        for workers in [1, 2] {
            let pool = pool(workers);
            for inside in [true, false] {
                let cases = [
                    ([true, false], "half 0 panics"),
                    ([false, true], "half 1 panics"),
                    ([true, true], "half 0 panics"), // both: `a`'s wins
                    ([false, false], ""),
                ];
                for (panics, expected) in cases {
                    let (message, work, dropped) = join_with_panics(&pool, panics, inside);
                    let case = format!("{workers} workers, inside {inside}, panics {panics:?}");
                    assert_eq!(message, expected, "{case}");
                    assert_eq!(work, 128, "both halves ran to the end: {case}");
                    assert_eq!(dropped, 2, "both captured tokens dropped once: {case}");
                }
            }
            // The workers survived every panic.
            assert_eq!(pool.spawn(|| 5).unwrap().join().unwrap(), 5);
            pool.wait_idle();
            let stats = pool.stats();
            assert_eq!(stats.panicked, 0, "join panics were caught inside the jobs");
            assert_eq!(stats.succeeded, 4 + 1);
        }
    });
}

#[test]
fn a_panic_in_a_join_half_makes_the_job_panicked() {
    watchdog(30, || {
        let pool = pool(2);
        let handle = pool
            .spawn(|| workyard::join(|| 1, || -> u32 { panic!("b fails") }))
            .unwrap();
        let id = handle.id();
        let err = handle.join().unwrap_err();
        assert_eq!(err.into_panic().unwrap().message(), Some("b fails"));
        pool.wait_idle();
        assert_eq!(pool.status(id), Some(JobStatus::Panicked));
        assert_eq!(pool.spawn(|| 1).unwrap().join().unwrap(), 1);
    });
}
