//! Loom model: a bounded queue's places when a cancel that knows the pool
//! races the worker that pops and claims the same job, through the real
//! `JobCell` status word and the real `Places`.
//!
//! Checked in every interleaving: each job gives exactly one place back
//! in the end (the count returns to zero and never wraps below it), and no
//! credit is left over, whichever of the worker and the canceller wins,
//! also with a second job cancelled through its handle (no early give-back)
//! whose pop may spend the first job's credit.

use super::Places;
use crate::job::cell::{claim, JobCell, JobRef};
use crate::job::state::Cancel;
use crate::job::JobId;
use crate::loom::model;
use loom::thread;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::Arc;

fn job(id: u64) -> JobRef {
    let (handle, [job]) = JobCell::spawn(JobId(id), move || id, 0);
    drop(handle);
    job
}

/// What `WorkerCtx::execute` does with a popped job: claim, then give the
/// place back (or spend a credit), then run it if claimed.
fn pop(places: &Places, job: JobRef) -> bool {
    let claimed = claim(&job, 0, crate::time::now());
    let _ = places.popped();
    if claimed {
        job.run(0);
    }
    claimed
}

fn reserved(places: &Places) -> usize {
    places.counts.reserved.load(SeqCst)
}

fn credits(places: &Places) -> usize {
    places.counts.early.load(SeqCst)
}

#[test]
fn cancel_by_the_pool_races_the_workers_claim() {
    model("places: pool cancel vs pop and claim", || {
        let places = Arc::new(Places::new(Some(1)));
        assert!(places.reserve());
        let j = job(1);
        let worker = {
            let (places, j) = (places.clone(), j.clone());
            thread::spawn(move || pop(&places, j))
        };
        let freed = std::cell::Cell::new(0);
        let cancel = places.cancel(|won| j.cancel_then(0, true, won), &|| {
            freed.set(freed.get() + 1)
        });
        let ran = worker.join().unwrap();
        assert_eq!(ran, !matches!(cancel, Cancel::WasQueued(_)));
        if matches!(cancel, Cancel::WasQueued(_)) {
            assert_eq!(
                freed.get(),
                1,
                "a cancel that won gives the place back once"
            );
        }
        assert_eq!((reserved(&places), credits(&places)), (0, 0));
    });
}

#[test]
fn a_credit_spent_on_another_jobs_pop() {
    model(
        "places: pool cancel of one job, handle cancel of another",
        || {
            let places = Arc::new(Places::new(Some(2)));
            assert!(places.reserve());
            assert!(places.reserve());
            let (j, k) = (job(1), job(2));
            // The worker pops `k` first: it may spend `j`'s credit.
            let worker = {
                let (places, j, k) = (places.clone(), j.clone(), k.clone());
                thread::spawn(move || (pop(&places, k), pop(&places, j)))
            };
            let by_handle = {
                let k = k.clone();
                thread::spawn(move || k.cancel(0, true))
            };
            let _ = places.cancel(|won| j.cancel_then(0, true, won), &|| {});
            worker.join().unwrap();
            let _ = by_handle.join().unwrap();
            assert_eq!((reserved(&places), credits(&places)), (0, 0));
        },
    );
}

/// The place is back before the cancelled closure is dropped (whose
/// destructor may spawn into the queue, or wait for a spawner that does).
#[test]
fn the_place_is_back_before_the_closure_drops() {
    use std::sync::atomic::AtomicUsize;
    struct Probe(Arc<Places>, Arc<AtomicUsize>);
    impl Drop for Probe {
        fn drop(&mut self) {
            self.1.store(reserved(&self.0) + 1, SeqCst);
        }
    }
    model("places: give-back before the destructor", || {
        let places = Arc::new(Places::new(Some(1)));
        assert!(places.reserve());
        let seen = Arc::new(AtomicUsize::new(0));
        let probe = Probe(places.clone(), seen.clone());
        let (handle, [j]) = JobCell::spawn(JobId(1), move || drop(probe), 0);
        drop(handle);
        let worker = {
            let (places, j) = (places.clone(), j.clone());
            thread::spawn(move || pop(&places, j))
        };
        let cancel = places.cancel(|won| j.cancel_then(0, true, won), &|| {});
        worker.join().unwrap();
        if matches!(cancel, Cancel::WasQueued(_)) {
            assert_eq!(
                seen.load(SeqCst),
                1,
                "reserved was 0 when the closure dropped"
            );
        }
        assert_eq!((reserved(&places), credits(&places)), (0, 0));
    });
}
