//! Loom model of the control thread's inbox and its one-shot replies,
//! through the real [`Inbox`] and [`reply`] (their locks are loom's under
//! `--cfg loom`, see `crate::loom::tracked`).
//!
//! A control thread runs the loop of `Control::run`: take the next order
//! (`Inbox::next`), answer it; told to stop (a `Shutdown` order), it
//! answers that, stops the inbox (`Inbox::stop`) and answers every order
//! still queued, as `Control::finish` does. Two posters each post an order
//! and wait for its answer, while a third thread posts the stop; a poster
//! whose order is refused (the inbox stopped first) answers it itself, as
//! `control::post`/`refuse` do.
//!
//! Checked in every interleaving: every order is answered exactly once (a
//! lost one leaves its poster waiting: a loom deadlock), by the control
//! thread if and only if `post` took it, and the control thread ends.

use super::{reply, Inbox, Next, Order};
use crate::error::WorkerError;
use crate::loom::model;
use loom::sync::atomic::AtomicUsize;
use loom::thread;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::Arc;

struct World {
    inbox: Inbox,
    /// Answers sent, by anyone.
    answered: AtomicUsize,
    /// How often, across iterations, an order was answered from the
    /// drain of `stop`, and how often a post was refused.
    paths: Arc<[std::sync::atomic::AtomicUsize; 2]>,
}

impl World {
    /// Answers `order`: as the control thread does (`by_control`), or as
    /// a stopped pool does (`refuse`). `true` for the stop order.
    fn answer(&self, order: Order, by_control: bool) -> bool {
        self.answered.fetch_add(1, SeqCst);
        match order {
            Order::HaltWorker(i, r) => {
                r.send(if by_control {
                    Ok(())
                } else {
                    Err(WorkerError::NotRunning(i))
                });
                false
            }
            Order::Shutdown { ack, .. } => {
                ack.expect("the model's stop order has an ack").send(());
                true
            }
            _ => unreachable!("the model posts no other order"),
        }
    }

    /// `Control::run` and `Control::finish`.
    fn control(&self) {
        loop {
            match self.inbox.next(None) {
                Next::Order(order) => {
                    if self.answer(order, true) {
                        break;
                    }
                }
                Next::TimedOut => unreachable!("no deadline"),
            }
        }
        for order in self.inbox.stop() {
            self.paths[0].fetch_add(1, SeqCst);
            assert!(!self.answer(order, true), "one stop order");
        }
    }

    /// `control::post` of order `i` and the caller's wait for its answer:
    /// `(posted, answer)`.
    fn post(&self, i: usize) -> (bool, Result<(), WorkerError>) {
        let (r, answer) = reply();
        let posted = match self.inbox.post(Order::HaltWorker(i, r)) {
            Ok(()) => true,
            Err(order) => {
                self.paths[1].fetch_add(1, SeqCst);
                assert!(!self.answer(order, false));
                false
            }
        };
        (posted, answer.wait())
    }
}

#[test]
fn every_order_is_answered_once_before_or_after_stop() {
    let paths: Arc<[std::sync::atomic::AtomicUsize; 2]> = Arc::default();
    let seen = paths.clone();
    model(
        "order: 2 posters vs a stop vs the control thread",
        move || {
            let world = Arc::new(World {
                inbox: Inbox::new(),
                answered: AtomicUsize::new(0),
                paths: seen.clone(),
            });
            let control = {
                let world = world.clone();
                thread::spawn(move || world.control())
            };
            let posters: Vec<_> = (0..2)
                .map(|i| {
                    let world = world.clone();
                    thread::spawn(move || world.post(i))
                })
                .collect();
            // The stop (a shutdown whose last step stops the inbox).
            let (ack, stopped) = reply();
            let posted = world.inbox.post(Order::Shutdown {
                ack: Some(ack),
                waiter: None,
            });
            assert!(posted.is_ok(), "only the control thread stops the inbox");
            stopped.wait();
            for (i, p) in posters.into_iter().enumerate() {
                let (posted, answer) = p.join().unwrap();
                match answer {
                    Ok(()) => assert!(posted, "order {i}: answered by control, not posted"),
                    Err(WorkerError::NotRunning(j)) => {
                        assert_eq!(j, i);
                        assert!(!posted, "order {i}: taken, yet refused");
                    }
                    Err(_) => unreachable!(),
                }
            }
            control.join().unwrap();
            assert_eq!(world.answered.load(SeqCst), 3, "each order answered once");
        },
    );
    let [drained, refused] = [0, 1].map(|k| paths[k].load(SeqCst));
    println!("order: {drained} answers from stop's drain, {refused} refused posts");
    assert!(
        drained > 0,
        "no interleaving queued an order behind the stop"
    );
    assert!(refused > 0, "no interleaving posted after the stop");
}
