//! Loom model of halting single workers: two `halt_worker` calls race for
//! the last two workers while each worker may act on a halt request the
//! moment it sees one (it exits, handing its slot back as HALTED). Each
//! call holds the pool's control lock around `halt_one`, as
//! `Dispatcher::halt_worker` does (a loom mutex here, so that loom
//! schedules around it); the workers never take it.
//!
//! Whatever the interleaving: at most one halt succeeds, a refused halt
//! leaves its worker running (a worker exits only for a halt that was
//! granted), and no slot counts as running once its thread has exited.

use super::{Slot, ACTIVE, HALTED};
use crate::control::halt_one;
use crate::loom::model;
use loom::sync::atomic::AtomicBool;
use loom::sync::{Arc, Mutex};
use loom::thread;
use std::sync::atomic::Ordering::SeqCst;

/// A worker's halt check followed, if it saw the request, by its exit.
fn worker(slots: &[Slot; 2], index: usize, exited: &AtomicBool) {
    if slots[index].halt_requested() {
        slots[index].mark_halted();
        exited.store(true, SeqCst);
    }
}

#[test]
fn racing_halts_of_the_last_two_workers() {
    model("slot: halt_worker vs halt_worker vs worker exits", || {
        let slots = Arc::new([Slot::new(), Slot::new()]);
        let control = Arc::new(Mutex::new(()));
        let halt = |slots: &[Slot; 2], control: &Mutex<()>, index| {
            let _control = control.lock().unwrap();
            halt_one(&slots[..], index).is_ok()
        };
        for slot in slots.iter() {
            assert!(slot.try_claim().is_some());
        }
        let exited = Arc::new([AtomicBool::new(false), AtomicBool::new(false)]);
        let workers: Vec<_> = (0..2)
            .map(|i| {
                let (slots, exited) = (slots.clone(), exited.clone());
                thread::spawn(move || worker(&slots, i, &exited[i]))
            })
            .collect();
        let halter = {
            let (slots, control) = (slots.clone(), control.clone());
            thread::spawn(move || halt(&slots, &control, 1))
        };
        let granted = [halt(&slots, &control, 0), halter.join().unwrap()];
        for w in workers {
            w.join().unwrap();
        }
        assert!(!(granted[0] && granted[1]), "both halts granted");
        for i in 0..2 {
            let exited = exited[i].load(SeqCst);
            assert!(granted[i] || !exited, "worker {i} exited on a refused halt");
            assert!(
                !(exited && slots[i].life() == ACTIVE),
                "slot {i} counts as running with no thread"
            );
            if exited {
                assert_eq!(slots[i].life(), HALTED);
            }
        }
    });
}
