//! A panicking job is contained: status Panicked, payload to the joiner,
//! the worker survives, other jobs are untouched.

mod common;
use common::{within, LIMIT};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use workyard::{Dispatcher, JobStatus};

#[test]
fn workers_survive_many_panics() {
    within(LIMIT, || {
        let pool = Dispatcher::builder().workers(2).build().unwrap();
        let ok = Arc::new(AtomicUsize::new(0));
        let handles: Vec<_> = (0..200)
            .map(|i| {
                let ok = ok.clone();
                pool.spawn(move || {
                    if i % 2 == 0 {
                        panic!("job {i} panics");
                    }
                    ok.fetch_add(1, Ordering::Relaxed);
                    i
                })
                .unwrap()
            })
            .collect();
        for (i, h) in handles.into_iter().enumerate() {
            match h.join() {
                Ok(v) => assert_eq!((v, i % 2), (i, 1)),
                Err(e) => {
                    assert_eq!(i % 2, 0);
                    assert_eq!(
                        e.into_panic().unwrap().message(),
                        Some(format!("job {i} panics").as_str())
                    );
                }
            }
        }
        pool.wait_idle();
        let stats = pool.stats();
        assert_eq!((stats.succeeded, stats.panicked), (100, 100));
        assert_eq!(ok.load(Ordering::Relaxed), 100);
        assert_eq!(stats.workers, 2, "no worker thread died");
        // The same workers keep running jobs afterwards.
        assert_eq!(pool.spawn(|| 1).unwrap().join().unwrap(), 1);
    });
}

#[test]
fn non_string_payloads_are_kept() {
    let pool = Dispatcher::builder().workers(1).build().unwrap();
    let err = pool
        .spawn(|| std::panic::panic_any(42u32))
        .unwrap()
        .join()
        .unwrap_err();
    let payload = err.into_panic().unwrap();
    assert_eq!(payload.message(), None);
    assert_eq!(*payload.into_inner().downcast::<u32>().unwrap(), 42);
}

#[test]
fn a_detached_panicking_job_is_recorded() {
    within(LIMIT, || {
        let pool = Dispatcher::builder().workers(1).build().unwrap();
        let id = pool.spawn(|| panic!("nobody joins me")).unwrap().id();
        pool.wait_idle();
        assert_eq!(pool.status(id), Some(JobStatus::Panicked));
    });
}

struct PanicOnDrop(Arc<AtomicUsize>);
impl Drop for PanicOnDrop {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
        panic!("drop panics");
    }
}

#[test]
fn a_result_that_panics_on_drop_does_not_kill_the_worker() {
    within(LIMIT, || {
        let pool = Dispatcher::builder().workers(1).build().unwrap();
        let drops = Arc::new(AtomicUsize::new(0));
        let d = drops.clone();
        drop(pool.spawn(move || PanicOnDrop(d)).unwrap());
        pool.wait_idle();
        assert_eq!(drops.load(Ordering::SeqCst), 1);
        assert_eq!(pool.spawn(|| 3).unwrap().join().unwrap(), 3);
    });
}
