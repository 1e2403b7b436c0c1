//! The global dispatcher, which the free functions use outside any pool:
//! configured once by `build_global` (whose `thread_name` may itself call
//! them), parallel from a plain thread (`join`'s halves meet on two
//! workers, `scope`'s body and jobs run on workers, `spawn` returns a
//! handle), reporting its 8 workers, and ended for good by
//! `shutdown_global`, after which the free functions answer on the caller
//! or refuse, without hanging.
//!
//! The global dispatcher is process-wide, so this binary holds one test,
//! which drives the whole sequence in order. It sleeps nowhere; it runs
//! under a watchdog.

mod common;

use common::{meet, threads_named, within, LIMIT};
use std::sync::atomic::AtomicUsize;
use std::sync::Mutex;
use std::thread;
use workyard::{BuildError, Dispatcher};

const WORKERS: usize = 8;
/// The global workers' name prefix (not `global-`: the test binary's own
/// main thread is named `global-<hash>`).
const PREFIX: &str = "gpool-";

fn thread_name() -> String {
    thread::current().name().unwrap_or("").to_string()
}

/// Sorts `v` with `workyard::join`, recording which worker ran each leaf.
fn merge_sort(v: &mut [u32], leaves: &Mutex<Vec<Option<usize>>>) {
    if v.len() <= 2_048 {
        v.sort_unstable();
        leaves
            .lock()
            .unwrap()
            .push(workyard::current_thread_index());
        return;
    }
    let mid = v.len() / 2;
    let (lo, hi) = v.split_at_mut(mid);
    workyard::join(|| merge_sort(lo, leaves), || merge_sort(hi, leaves));
    let mut merged = Vec::with_capacity(v.len());
    let (mut i, mut j) = (0, 0);
    while i < mid && j < v.len() - mid {
        if v[i] <= v[mid + j] {
            merged.push(v[i]);
            i += 1;
        } else {
            merged.push(v[mid + j]);
            j += 1;
        }
    }
    merged.extend_from_slice(&v[i..mid]);
    merged.extend_from_slice(&v[mid + j..]);
    v.copy_from_slice(&merged);
}

#[test]
fn global_dispatcher_from_build_to_shutdown() {
    within(LIMIT, || {
        // Configured before any use; a second configuration is refused.
        Dispatcher::builder()
            .workers(WORKERS)
            .thread_name(|i| {
                // Called while the global dispatcher is being built, on
                // this thread: `join` finds none and runs here, rather
                // than wait for the build it is part of.
                let (index, threads) = workyard::join(|| i, workyard::current_num_threads);
                assert_eq!(threads, 1);
                format!("{PREFIX}{index}")
            })
            .build_global()
            .unwrap();
        let again = Dispatcher::builder().workers(2).build_global().unwrap_err();
        assert!(matches!(again, BuildError::GlobalPoolAlreadyInitialized));
        assert!(again.to_string().contains("already initialised"), "{again}");
        assert_eq!(workyard::current_num_threads(), WORKERS);
        assert_eq!(workyard::current_thread_index(), None);
        assert_eq!(threads_named(PREFIX), WORKERS);

        // `join` from this plain thread: both halves running at once, on
        // two different workers of the global dispatcher.
        let arrived = AtomicUsize::new(0);
        let half = || {
            let met = meet(&arrived, 2);
            (met, workyard::current_thread_index(), thread_name())
        };
        let ((a_met, a_index, a_name), (b_met, b_index, b_name)) = workyard::join(half, half);
        assert!(a_met && b_met, "the halves never ran at the same time");
        assert!(a_name.starts_with(PREFIX) && b_name.starts_with(PREFIX));
        assert!(a_index.is_some() && b_index.is_some());
        assert_ne!(a_index, b_index);

        // A merge sort from here runs on the workers, correctly.
        let mut data: Vec<u32> = (0..200_000u32)
            .map(|i| i.wrapping_mul(2_654_435_761))
            .collect();
        let mut expected = data.clone();
        expected.sort_unstable();
        let leaves = Mutex::new(Vec::new());
        merge_sort(&mut data, &leaves);
        assert!(
            data == expected,
            "merge sort through the global join is wrong"
        );
        let leaves = leaves.into_inner().unwrap();
        assert_eq!(leaves.len(), 128);
        assert!(
            leaves.iter().all(|i| i.is_some_and(|i| i < WORKERS)),
            "{leaves:?}"
        );

        // `scope`: the body and every job on a worker; `spawn`: a handle.
        let names = Mutex::new(Vec::new());
        let body = workyard::scope(|s| {
            for _ in 0..16 {
                s.spawn(|| names.lock().unwrap().push(thread_name()))
                    .unwrap();
            }
            (thread_name(), workyard::current_num_threads())
        });
        assert!(body.0.starts_with(PREFIX), "{}", body.0);
        assert_eq!(body.1, WORKERS);
        let names = names.into_inner().unwrap();
        assert_eq!(names.len(), 16);
        assert!(names.iter().all(|n| n.starts_with(PREFIX)), "{names:?}");
        let handle = workyard::spawn(|| (thread_name(), 6 * 7)).unwrap();
        let (name, answer) = handle.join().unwrap();
        assert!(name.starts_with(PREFIX) && answer == 42, "{name} {answer}");

        // Each of the 8 workers, all running at once, knows its index.
        let arrived = AtomicUsize::new(0);
        let indices = workyard::scope(|s| {
            let handles: Vec<_> = (0..WORKERS)
                .map(|_| {
                    s.spawn(|| {
                        assert!(meet(&arrived, WORKERS), "8 jobs never ran at once");
                        workyard::current_thread_index().unwrap()
                    })
                    .unwrap()
                })
                .collect();
            let mut indices: Vec<usize> = handles.into_iter().map(|h| h.join().unwrap()).collect();
            indices.sort_unstable();
            indices
        });
        assert_eq!(indices, (0..WORKERS).collect::<Vec<_>>());

        // Shut down: every thread joined; a second call is fine.
        workyard::shutdown_global();
        assert_eq!(threads_named(PREFIX), 0);
        workyard::shutdown_global();

        // Afterwards, outside any pool: on the caller, or refused.
        let me = thread::current().id();
        let (a, b) = workyard::join(|| thread::current().id(), || thread::current().id());
        assert_eq!((a, b), (me, me));
        let refused = workyard::spawn(|| "given back").unwrap_err();
        assert_eq!((refused.into_inner())(), "given back");
        let (body_thread, spawned) = workyard::scope(|s| {
            let refused = s.spawn(|| 1).unwrap_err();
            (thread::current().id(), (refused.into_inner())())
        });
        assert_eq!((body_thread, spawned), (me, 1));
        assert_eq!(workyard::current_num_threads(), 1);
        let late = Dispatcher::builder().build_global().unwrap_err();
        assert!(matches!(late, BuildError::GlobalPoolAlreadyInitialized));

        // Another dispatcher's jobs still use their own pool.
        let pool = Dispatcher::builder().workers(2).build().unwrap();
        let inside = pool.install(|| workyard::join(thread_name, workyard::current_num_threads));
        assert!(
            inside.0.starts_with("workyard-") && inside.1 == 2,
            "{inside:?}"
        );
        pool.shutdown();
    });
}
