//! Loom model of an index slot: an insert that pushes a record out races a
//! lookup that takes a reference to it under the slot's lock bit. The
//! lookup's reference must keep the record alive (its closure, dropped
//! only when the record is freed, stays undropped while the lookup holds
//! it), and the record must be freed exactly once, by whoever drops the
//! last reference.

use super::Index;
use crate::handle::JobHandle;
use crate::job::cell::{JobCell, JobRef};
use crate::job::JobId;
use crate::loom::model;
use loom::sync::atomic::AtomicUsize;
use loom::sync::Arc;
use loom::thread;
use std::sync::atomic::Ordering::SeqCst;

/// Counts its drops.
struct Tracked(Arc<AtomicUsize>);

impl Drop for Tracked {
    fn drop(&mut self) {
        self.0.fetch_add(1, SeqCst);
    }
}

/// A queued job whose closure counts its drop, with its handle dropped:
/// the returned reference is the only one left.
fn record(id: u64, drops: &Arc<AtomicUsize>) -> JobRef {
    let captured = Tracked(drops.clone());
    let (typed, [job]) = JobCell::spawn(JobId(id), move || drop(captured), 0);
    drop(JobHandle::from_typed(typed));
    job
}

#[test]
fn lookup_races_the_insert_that_pushes_its_record_out() {
    model("index: get vs insert pushing the record out", || {
        // A ring of one slot: id 2 pushes id 1 out.
        let index = Arc::new(Index::new(1));
        let first = Arc::new(AtomicUsize::new(0));
        let second = Arc::new(AtomicUsize::new(0));
        let one = record(1, &first);
        // Made terminal (the status word alone, so that the closure stays
        // until the record is freed): pushed out, it is dropped rather than
        // moved to the overflow.
        let _ = one.header().state.cancel(0, true);
        index.insert(one);
        let reader = {
            let (index, first) = (index.clone(), first.clone());
            thread::spawn(move || {
                let found = index.get(JobId(1));
                if let Some(job) = &found {
                    assert_eq!(job.header().id, JobId(1));
                    assert_eq!(first.load(SeqCst), 0, "freed while referenced");
                }
                found.is_some()
            })
        };
        index.insert(record(2, &second));
        let found = reader.join().unwrap();
        // Whoever dropped the last reference freed it, once.
        assert_eq!(first.load(SeqCst), 1);
        assert_eq!(second.load(SeqCst), 0, "still in the slot");
        let _ = found;
        drop(index);
        assert_eq!(second.load(SeqCst), 1, "freed with the index");
    });
}

/// A queued record pushed out of the ring by a concurrent insert moves to
/// the overflow: `find` (a lookup by id, or the halt's walk over live
/// records) must see it at every moment of the move.
fn live_record_being_pushed_out(name: &str, find: fn(&Index) -> bool) {
    model(name, move || {
        // A ring of one slot: id 2 pushes id 1 out while it is queued.
        let index = Arc::new(Index::new(1));
        let drops = Arc::new(AtomicUsize::new(0));
        index.insert(record(1, &drops));
        let reader = {
            let index = index.clone();
            thread::spawn(move || find(&index))
        };
        index.insert(record(2, &drops));
        assert!(reader.join().unwrap(), "missed queued job 1");
        assert_eq!(index.len(), 2, "1 in the overflow, 2 in the ring");
        drop(index);
        assert_eq!(drops.load(SeqCst), 2);
    });
}

#[test]
fn lookup_finds_a_live_record_being_pushed_out() {
    live_record_being_pushed_out("index: get vs insert moving a live record", |index| {
        index.get(JobId(1)).is_some()
    });
}

#[test]
fn walk_finds_a_live_record_being_pushed_out() {
    live_record_being_pushed_out("index: live vs insert moving a live record", |index| {
        index.live().iter().any(|j| j.header().id == JobId(1))
    });
}
