//! Async tasks waiting on a slow path, woken one at a time in the order
//! they came: the async counterpart of `Signal`, for futures that must not
//! block their executor's thread (a spawn waiting for room in a bounded
//! queue, `permit.rs`).
//!
//! The protocol mirrors `Signal`'s. A waiter enqueues its waker (which
//! counts it, SeqCst) and only then checks its condition again; a notifier
//! makes the condition true with a SeqCst operation and then reads the
//! count. Either the notifier sees the waiter and wakes one, or the
//! waiter's second check sees the condition: no lost wake-up. While nobody
//! waits, a notification is that one load, and takes no lock.
//!
//! A wake-up is handed to one waiter, which is taken off the queue. That
//! waiter owes it to the others if it does not use it: a future dropped
//! after it was woken, or one that got what it waited for some other way,
//! passes the wake-up on (see [`WakerQueue::leave`]).

use crate::loom::{AtomicUsize, Mutex};
use crate::signal::lock;
use std::collections::VecDeque;
use std::sync::atomic::Ordering::SeqCst;
use std::task::Waker;

/// A FIFO of wakers, each under the ticket its waiter holds.
#[derive(Default)]
pub(crate) struct WakerQueue {
    /// How many wakers `queue` holds; changed only under its lock, read
    /// without it by the notifiers. SeqCst: see the module docs.
    waiting: AtomicUsize,
    queue: Mutex<Queue>,
}

#[derive(Default)]
struct Queue {
    /// The ticket the next new waiter gets.
    next: u64,
    wakers: VecDeque<(u64, Waker)>,
}

/// A waiter's place in a [`WakerQueue`]: `None` until it first waits.
pub(crate) type Ticket = Option<u64>;

impl WakerQueue {
    /// Queues `waker` under `ticket`, or replaces the waker already queued
    /// there. A ticket whose waker was woken (and so taken off the queue)
    /// queues again, at the back. Check the condition again afterwards.
    pub(crate) fn register(&self, ticket: &mut Ticket, waker: &Waker) {
        let mut queue = lock(&self.queue);
        if let Some(t) = *ticket {
            if let Some((_, queued)) = queue.wakers.iter_mut().find(|(k, _)| *k == t) {
                if !queued.will_wake(waker) {
                    queued.clone_from(waker);
                }
                return;
            }
        }
        let t = queue.next;
        queue.next += 1;
        queue.wakers.push_back((t, waker.clone()));
        self.waiting.fetch_add(1, SeqCst);
        *ticket = Some(t);
    }

    /// The waiter holding `ticket` stops waiting: it got what it waited
    /// for (`satisfied`), or it gave up. If its waker had already been
    /// woken, that wake-up was meant for someone still waiting: unless the
    /// waiter used it (`satisfied`, and `more()` says there is nothing
    /// left over for another), it goes to the next waiter.
    pub(crate) fn leave(&self, ticket: &mut Ticket, satisfied: bool, more: impl FnOnce() -> bool) {
        let Some(t) = ticket.take() else {
            return;
        };
        let mut queue = lock(&self.queue);
        if let Some(at) = queue.wakers.iter().position(|(k, _)| *k == t) {
            queue.wakers.remove(at);
            self.waiting.fetch_sub(1, SeqCst);
            return;
        }
        drop(queue);
        if !satisfied || more() {
            self.wake_one();
        }
    }

    /// Wakes the waiter that came first, if any. Call after making the
    /// condition true with a SeqCst operation.
    pub(crate) fn wake_one(&self) {
        if self.waiting.load(SeqCst) == 0 {
            return;
        }
        let woken = {
            let mut queue = lock(&self.queue);
            let woken = queue.wakers.pop_front();
            if woken.is_some() {
                self.waiting.fetch_sub(1, SeqCst);
            }
            woken
        };
        // Outside the lock: the waker is the executor's code.
        if let Some((_, waker)) = woken {
            waker.wake();
        }
    }

    /// Wakes every waiter (the condition will not change again: the pool
    /// closed). Takes the lock even if nobody seems to wait, so a waiter
    /// that registers after it sees the change in its second check.
    pub(crate) fn wake_all(&self) {
        let woken = {
            let mut queue = lock(&self.queue);
            self.waiting.fetch_sub(queue.wakers.len(), SeqCst);
            std::mem::take(&mut queue.wakers)
        };
        for (_, waker) in woken {
            waker.wake();
        }
    }
}

#[cfg(test)]
#[cfg(not(loom))]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize as Count;
    use std::sync::Arc;
    use std::task::Wake;

    struct Counted(Count);

    impl Wake for Counted {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, SeqCst);
        }
    }

    /// A waiter: its ticket and a waker that counts its wake-ups.
    struct Waiter {
        ticket: Ticket,
        counted: Arc<Counted>,
        waker: Waker,
    }

    impl Waiter {
        fn register(&mut self, q: &WakerQueue) {
            q.register(&mut self.ticket, &self.waker);
        }
    }

    /// `n` waiters, queued in order.
    fn queued<const N: usize>(q: &WakerQueue) -> [Waiter; N] {
        std::array::from_fn(|_| {
            let counted = Arc::new(Counted(Count::new(0)));
            let mut w = Waiter {
                ticket: None,
                waker: Waker::from(counted.clone()),
                counted,
            };
            w.register(q);
            w
        })
    }

    /// How often each waiter was woken.
    fn woken<const N: usize>(waiters: &[Waiter; N]) -> [usize; N] {
        std::array::from_fn(|i| waiters[i].counted.0.load(SeqCst))
    }

    #[test]
    fn wakes_one_at_a_time_in_arrival_order() {
        let q = WakerQueue::default();
        let mut w = queued::<2>(&q);
        w[0].register(&q); // again: keeps its place
        q.wake_one();
        assert_eq!(woken(&w), [1, 0]);
        q.wake_one();
        assert_eq!(woken(&w), [1, 1]);
        q.wake_one(); // nobody left
        assert_eq!(woken(&w), [1, 1]);
        assert_eq!(q.waiting.load(SeqCst), 0);
    }

    #[test]
    fn a_waiter_that_leaves_unwoken_takes_nothing_with_it() {
        let q = WakerQueue::default();
        let mut w = queued::<2>(&q);
        q.leave(&mut w[0].ticket, false, || unreachable!("never woken"));
        assert_eq!(w[0].ticket, None);
        q.wake_one();
        assert_eq!(woken(&w), [0, 1]);
    }

    #[test]
    fn an_unused_wake_up_goes_to_the_next_waiter() {
        let q = WakerQueue::default();
        let mut w = queued::<3>(&q);
        q.wake_one();
        assert_eq!(woken(&w), [1, 0, 0]);
        // Woken, then dropped: the second gets the wake-up.
        q.leave(&mut w[0].ticket, false, || unreachable!("not satisfied"));
        assert_eq!(woken(&w), [1, 1, 0]);
        // Woken and satisfied, with something left over: the third gets it.
        q.leave(&mut w[1].ticket, true, || true);
        assert_eq!(woken(&w), [1, 1, 1]);
        // Woken and satisfied, nothing left: the wake-up is used up.
        w[2].register(&q);
        q.wake_one();
        q.leave(&mut w[2].ticket, true, || false);
        assert_eq!(woken(&w), [1, 1, 2]);
        assert_eq!(q.waiting.load(SeqCst), 0);
    }

    #[test]
    fn wake_all_empties_the_queue() {
        let q = WakerQueue::default();
        let w = queued::<2>(&q);
        q.wake_all();
        assert_eq!(woken(&w), [1, 1]);
        assert_eq!(q.waiting.load(SeqCst), 0);
        q.wake_one();
        assert_eq!(woken(&w), [1, 1]);
    }
}
