//! Loom model: a `wait_idle` that begins after a spawn is not ended by an
//! idle moment seen before the spawn.
//!
//! A worker that found the pool idle runs `Pool::on_idle`'s notification
//! late (`stale`); a caller spawns (`pending` 0 → 1) and waits for news;
//! the job's worker finishes it (`pending` 1 → 0) and notifies. Checked in
//! every interleaving: the waiter returns only once its job finished, and
//! it does return (a missed notification is a loom deadlock). Without
//! either half of the fix (the notifier's check made again under the lock,
//! the waiter's `seen` read under it) loom finds the waiter released by
//! the stale notification.

use super::Signal;
use crate::loom::{model, AtomicUsize};
use loom::sync::atomic::AtomicBool;
use loom::thread;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::Arc;

#[test]
fn a_stale_idle_notification_does_not_end_a_later_wait() {
    model("stale idle notification vs a later wait", || {
        let signal = Arc::new(Signal::default());
        let pending = Arc::new(AtomicUsize::new(0));
        let finished = Arc::new(AtomicBool::new(false));
        let stale = {
            let (signal, pending) = (signal.clone(), pending.clone());
            thread::spawn(move || {
                if pending.load(SeqCst) == 0 {
                    signal.notify_new(|| pending.load(SeqCst) == 0);
                }
            })
        };
        pending.fetch_add(1, SeqCst);
        let worker = {
            let (signal, pending, finished) = (signal.clone(), pending.clone(), finished.clone());
            thread::spawn(move || {
                finished.store(true, SeqCst);
                pending.fetch_sub(1, SeqCst);
                signal.notify_new(|| pending.load(SeqCst) == 0);
            })
        };
        assert!(signal.wait_for_news(|| pending.load(SeqCst) == 0, None));
        assert!(finished.load(SeqCst), "released before its job finished");
        stale.join().unwrap();
        worker.join().unwrap();
    });
}
