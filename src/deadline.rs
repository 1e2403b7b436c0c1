//! Job deadlines: one timer thread per pool, started by the first job that
//! has a deadline, cancels each such job when its deadline passes. Jobs
//! without a deadline never touch it.
//!
//! An entry names its job by id and finds it through the pool's index when
//! it comes due: a live job is always in the index, and a job that
//! finished early is freed at once rather than kept until its deadline.
//! The thread holds the pool weakly, so that it never keeps it alive.

use crate::job::{state, JobId};
use crate::loom::{Condvar, Mutex};
use crate::pool::Pool;
use crate::signal::lock;
use crate::time;
use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

#[derive(Default)]
pub(crate) struct Deadlines {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    wake: Condvar,
}

#[derive(Default)]
struct State {
    heap: BinaryHeap<Reverse<Entry>>,
    stopped: bool,
}

/// A pending deadline.
struct Entry {
    at: u64,
    id: u64,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.id) == (other.at, other.id)
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.at, self.id).cmp(&(other.at, other.id))
    }
}

impl Deadlines {
    /// Arranges for job `id`, already in `pool`'s index, to be cancelled
    /// at `at` (a `time::deadline_nanos` value).
    pub(crate) fn watch(&self, pool: &Arc<Pool>, id: JobId, at: u64) {
        let entry = Entry { at, id: id.0 };
        let mut state = lock(&self.shared.state);
        if state.stopped {
            return;
        }
        let earliest = state.heap.peek().map_or(true, |Reverse(top)| at < top.at);
        state.heap.push(Reverse(entry));
        drop(state);
        if earliest {
            self.shared.wake.notify_one();
        }
        let mut thread = lock(&self.thread);
        if thread.is_none() {
            let shared = Arc::clone(&self.shared);
            let pool = Arc::downgrade(pool);
            // If the OS refuses a thread, deadlines still apply to queued
            // jobs when a worker pops them (see `worker::execute`).
            *thread = std::thread::Builder::new()
                .name("workyard-deadlines".into())
                .spawn(move || shared.run(&pool))
                .ok();
        }
    }

    /// Ends the timer thread (pool dropped).
    pub(crate) fn stop(&self) {
        lock(&self.shared.state).stopped = true;
        self.shared.wake.notify_one();
        if let Some(thread) = lock(&self.thread).take() {
            if thread.thread().id() != std::thread::current().id() {
                let _ = thread.join();
            }
        }
    }
}

impl Shared {
    fn run(&self, pool: &Weak<Pool>) {
        let mut state = lock(&self.state);
        while !state.stopped {
            let now = time::now_nanos();
            match state.heap.peek() {
                None => state = self.wake.wait(state).unwrap_or_else(|e| e.into_inner()),
                Some(Reverse(top)) if top.at <= now => {
                    let Reverse(due) = state.heap.pop().expect("peeked");
                    drop(state);
                    // The pool is only gone while it stops this thread.
                    if let Some(pool) = pool.upgrade() {
                        if let Some(job) = pool.index.get(JobId(due.id)) {
                            let _ = pool.cancel_job(&job, state::BY_DEADLINE, true);
                        }
                    }
                    state = lock(&self.state);
                }
                Some(Reverse(top)) => {
                    let wait = Duration::from_nanos(top.at - now);
                    state = self
                        .wake
                        .wait_timeout(state, wait)
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
            }
        }
    }
}
