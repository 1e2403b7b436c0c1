//! The control thread's inbox: the orders it carries out one at a time,
//! and the one-shot replies their callers wait for (see `control.rs`).
//!
//! The inbox is a mutex-protected queue with a condition variable: orders
//! are rare (pause, resize, halt, shutdown, a deadline to watch, a worker's
//! exit), so a lock costs nothing that matters here, and no order is ever
//! given on the spawn or run path except a deadline's `Watch`.
//!
//! Once the control thread has stopped (the pool is shut down and every
//! worker gone), [`Inbox::post`] refuses the order and hands it back: the
//! caller answers it itself with what a stopped pool says.

use crate::error::WorkerError;
use crate::job::JobId;
use crate::loom::tracked::{lock, Condvar, Mutex};
use std::collections::VecDeque;
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::Instant;

/// What [`Dispatcher::halt`](crate::Dispatcher::halt) (or a timed-out
/// [`Dispatcher::shutdown_timeout`](crate::Dispatcher::shutdown_timeout))
/// stopped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct HaltReport {
    /// Jobs that were queued and will never run, in id order (like Java's
    /// `shutdownNow`): re-queue or report them.
    pub never_started: Vec<JobId>,
    /// Jobs that were running and were asked to stop, in id order; they
    /// end `Cancelled` once they return. A timed-out `shutdown_timeout`
    /// returns without waiting for them: they finish on their own.
    pub interrupted: Vec<JobId>,
}

/// Worker threads to join: handed to the callers that wait for a
/// shutdown, each of which joins them all under the one lock, so that
/// every such caller returns only once the threads are gone.
pub(crate) type Threads = Arc<std::sync::Mutex<Vec<JoinHandle<()>>>>;

/// How a shutdown that someone waits for ended.
#[derive(Debug)]
pub(crate) enum Ended {
    /// Every accepted job ran and every worker left its loop: join these.
    Done(Threads),
    /// The deadline passed first: the control thread halted the pool.
    TimedOut(HaltReport),
}

/// What a `set_workers` started: a receiver that disconnects once each new
/// thread runs, and exited threads the caller may join (see
/// `Control::reap`).
pub(crate) struct Started {
    pub(crate) running: mpsc::Receiver<()>,
    pub(crate) exited: Vec<JoinHandle<()>>,
}

/// A shutdown caller that waits, and until when.
pub(crate) struct Waiter {
    pub(crate) reply: Reply<Ended>,
    pub(crate) deadline: Option<Instant>,
}

/// One order for the control thread.
pub(crate) enum Order {
    /// Close the gate to new starts (the user's pause).
    Pause(Reply<()>),
    /// Open it again.
    Resume(Reply<()>),
    /// Halt one worker (`Dispatcher::halt_worker`).
    HaltWorker(usize, Reply<Result<(), WorkerError>>),
    /// Run `n` workers; `reap`: the caller may join exited threads.
    SetWorkers {
        n: usize,
        reap: bool,
        reply: Reply<Result<Started, WorkerError>>,
    },
    /// Close, cancel every queued job, ask running ones to stop.
    Halt(Reply<HaltReport>),
    /// Close and let every accepted job run. `ack` is answered once the
    /// pool is closed; `waiter`, once every worker has left.
    Shutdown {
        ack: Option<Reply<()>>,
        waiter: Option<Waiter>,
    },
    /// Cancel job `id` at `at` (deadline nanoseconds) if still unfinished.
    Watch { id: JobId, at: u64 },
    /// The worker of this slot left its loop (posted by the worker).
    Exited(usize),
}

/// The control thread's queue of orders.
pub(crate) struct Inbox {
    state: Mutex<InboxState>,
    posted: Condvar,
}

struct InboxState {
    orders: VecDeque<Order>,
    /// Set by the control thread as it stops; no order is taken after.
    stopped: bool,
}

/// What [`Inbox::next`] found.
pub(crate) enum Next {
    Order(Order),
    /// The wait reached its deadline.
    TimedOut,
}

impl Inbox {
    pub(crate) fn new() -> Inbox {
        Inbox {
            state: Mutex::new(InboxState {
                orders: VecDeque::new(),
                stopped: false,
            }),
            posted: Condvar::new(),
        }
    }

    /// Queues `order` for the control thread; gives it back if the control
    /// thread has stopped.
    pub(crate) fn post(&self, order: Order) -> Result<(), Order> {
        let mut state = lock(&self.state);
        if state.stopped {
            return Err(order);
        }
        state.orders.push_back(order);
        drop(state);
        self.posted.notify_one();
        Ok(())
    }

    /// The control thread's wait for its next order, until `deadline`.
    pub(crate) fn next(&self, deadline: Option<Instant>) -> Next {
        let mut state = lock(&self.state);
        loop {
            if let Some(order) = state.orders.pop_front() {
                return Next::Order(order);
            }
            match deadline {
                None => state = self.posted.wait(state).unwrap_or_else(|e| e.into_inner()),
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        return Next::TimedOut;
                    }
                    state = self
                        .posted
                        .wait_timeout(state, d - now)
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
            }
        }
    }

    /// The control thread stops: no order is taken any more; returns the
    /// ones still queued, for it to answer.
    pub(crate) fn stop(&self) -> Vec<Order> {
        let mut state = lock(&self.state);
        state.stopped = true;
        state.orders.drain(..).collect()
    }
}

/// The sending half of a one-shot reply.
pub(crate) struct Reply<T>(Arc<Slot<T>>);

/// The receiving half: [`Answer::wait`] blocks until the reply is sent.
pub(crate) struct Answer<T>(Arc<Slot<T>>);

struct Slot<T> {
    value: Mutex<Option<T>>,
    sent: Condvar,
}

/// A one-shot reply channel.
pub(crate) fn reply<T>() -> (Reply<T>, Answer<T>) {
    let slot = Arc::new(Slot {
        value: Mutex::new(None),
        sent: Condvar::new(),
    });
    (Reply(Arc::clone(&slot)), Answer(slot))
}

impl<T> Reply<T> {
    pub(crate) fn send(self, value: T) {
        *lock(&self.0.value) = Some(value);
        self.0.sent.notify_all();
    }
}

impl<T> Answer<T> {
    /// Blocks until the reply is sent. The control thread answers every
    /// order it takes without waiting for anything, so this is short.
    pub(crate) fn wait(self) -> T {
        let mut value = lock(&self.0.value);
        loop {
            if let Some(v) = value.take() {
                return v;
            }
            value = self.0.sent.wait(value).unwrap_or_else(|e| e.into_inner());
        }
    }
}

#[cfg(all(test, loom))]
#[path = "order_loom.rs"]
mod loom_tests;
