//! The committer: the one thread that writes the store, in group commits.
//!
//! Every change to the store is an [`Op`] sent to this thread. It blocks
//! for one op, then takes every op already waiting (up to
//! [`MAX_BATCH`] jobs' worth), and has the [`Store`] apply them all in
//! **one** durable transaction (one redb commit and `fsync`, or one
//! PostgreSQL `COMMIT`).
//! Only then does it update the in-memory schedule and answer the ops'
//! callers. While it is committing, new ops pile up in the channel and
//! form the next batch: the busier the queue, the more jobs share an
//! `fsync`, with no timer and no added latency when it is quiet.
//!
//! If a commit fails (or the storage engine panics), nothing of that batch
//! is applied, its callers get [`PersistError::Storage`], and the queue is
//! broken: every later op is answered with [`PersistError::Broken`]. A
//! transient failure (a lost connection to PostgreSQL) fails that batch's
//! callers with [`PersistError::Connection`] but does not break the
//! queue: the store reconnects and keeps the batch's outcomes to write
//! with the next one.

use super::error::PersistError;
use super::op::Op;
use super::shared::Shared;
use super::store::{Effect, Store, Written};
use crate::signal::lock;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a batch waits for the callers that the previous commit
/// answered, while fewer of them have sent their next op. A caller woken
/// by its answer needs some microseconds to send again; without the wait,
/// eight threads calling `enqueue` in a loop split into a group that makes
/// it into the next commit and stragglers that wait a whole commit for the
/// one after: 6.7 jobs per commit instead of 8 (measured with
/// `examples/persist_bench`: 8-thread enqueue 16.3k → 20.7k jobs/s,
/// medians of 5; 15 µs and 50 µs measured the same as 30 µs). A lone
/// caller never waits: it is the whole batch.
const STRAGGLER_WAIT: Duration = Duration::from_micros(30);
/// The most jobs one transaction carries (enqueued, claimed or finished):
/// bounds a commit's latency and memory under a flood.
const MAX_BATCH: usize = 16 * 1024;

pub(crate) struct Committer {
    shared: Arc<Shared>,
    store: Box<dyn Store>,
}

impl Committer {
    pub(crate) fn new(shared: Arc<Shared>, store: Box<dyn Store>) -> Committer {
        Committer { shared, store }
    }

    /// The committer thread's body.
    pub(crate) fn run(mut self, ops: Receiver<Op>) {
        // How many callers the last batch answered.
        let mut answered = 0;
        loop {
            let tick = self.store.tick(&self.shared.config);
            let mut batch = Vec::new();
            match ops.recv_timeout(tick) {
                Ok(op) => batch.push(op),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
            // Everything already waiting joins this commit, and so do the
            // callers the last commit answered if they come back at once:
            // see `STRAGGLER_WAIT`.
            let mut weight = batch.first().map_or(0, Op::weight);
            let mut callers = batch.iter().filter(|op| op.has_caller()).count();
            let deadline = Instant::now() + STRAGGLER_WAIT;
            while weight < MAX_BATCH {
                match ops.try_recv() {
                    Ok(op) => {
                        weight += op.weight();
                        callers += usize::from(op.has_caller());
                        batch.push(op);
                    }
                    Err(_) if callers < answered && Instant::now() < deadline => {
                        std::thread::yield_now();
                    }
                    Err(_) => break,
                }
            }
            answered = callers;
            if let Some(shutdown) = self.process(batch) {
                // Close the store before answering, so that the caller of
                // `stop` can reopen it at once.
                self.store.close();
                let _ = shutdown.send(Ok(()));
                return;
            }
        }
    }

    /// Applies and commits one batch; returns the shutdown reply if the
    /// batch asked for one.
    fn process(&mut self, batch: Vec<Op>) -> Option<super::op::Reply<()>> {
        let broken = lock(&self.shared.sched).broken.clone();
        if let Some(reason) = broken {
            let e = PersistError::Broken { reason };
            let mut shutdown = None;
            for op in batch {
                match op {
                    Op::Shutdown { reply } => shutdown = Some(reply),
                    other => other.into_answer().into_iter().for_each(|a| a.fail(&e)),
                }
            }
            return shutdown;
        }
        let began = Instant::now();
        let mut out = Written::default();
        let result = self.store.write(&self.shared.config, batch, &mut out);
        let Written {
            effects,
            answers,
            shutdown,
        } = out;
        match result {
            Ok(committed) => {
                if committed {
                    self.shared.note_commit(began.elapsed());
                }
                let mut cancels = Vec::new();
                let dispatcher = {
                    let mut s = lock(&self.shared.sched);
                    if committed {
                        s.commits += 1;
                    }
                    let mut ready = false;
                    for effect in effects {
                        ready |= matches!(effect, Effect::Ready);
                        apply(&mut s, effect, &mut cancels);
                    }
                    if ready {
                        s.wakes += 1;
                    }
                    s.dispatcher.clone()
                };
                self.shared.changed.notify_all();
                // Outside the lock: cancelling a queued attempt drops it
                // here, and its drop reports back.
                if let Some(dispatcher) = dispatcher {
                    for run in cancels {
                        dispatcher.cancel(run);
                    }
                }
                for answer in answers {
                    answer.send();
                }
            }
            Err(e) => {
                if e.is_transient() {
                    self.shared.note_connection(Some(e.to_string()));
                } else {
                    lock(&self.shared.sched).broken = Some(e.to_string());
                }
                self.shared.changed.notify_all();
                for answer in answers {
                    answer.fail(&e);
                }
            }
        }
        shutdown
    }
}

/// Applies one effect; runs to cancel on the dispatcher go to `cancels`.
fn apply(s: &mut super::sched::Sched, effect: Effect, cancels: &mut Vec<crate::JobId>) {
    use super::record::StoredJobState;
    use super::sched::RunningJob;
    match effect {
        Effect::Enqueued { id, name } => {
            s.enqueued += 1;
            s.push_ready(id, &name);
        }
        Effect::Claimed { id, cancel } => {
            s.running.insert(
                id,
                RunningJob {
                    cancel,
                    run_id: None,
                },
            );
        }
        Effect::Succeeded { id } => {
            s.running.remove(&id);
            s.completed += 1;
            s.succeeded += 1;
        }
        Effect::Retry { id, name, due } => {
            s.running.remove(&id);
            s.failed_attempts += 1;
            if due == 0 {
                s.push_ready(id, &name);
            } else {
                s.push_delayed(id, &name, due);
            }
        }
        Effect::Dead { id } => {
            s.running.remove(&id);
            s.failed_attempts += 1;
            s.dead.insert(id);
        }
        Effect::Released { id, name } => {
            s.running.remove(&id);
            s.push_front(id, &name);
        }
        Effect::CancelledRun { id } => {
            s.running.remove(&id);
            s.cancelled += 1;
        }
        Effect::CancelledPending {
            id,
            name,
            run_after,
        } => {
            s.remove_pending(id, &name, run_after);
            s.cancelled += 1;
        }
        Effect::CancelledDead { id } => {
            s.dead.remove(&id);
            s.cancelled += 1;
        }
        Effect::CancelRunning { id } => {
            if let Some(job) = s.running.get(&id) {
                // ORDERING: SeqCst pairs with the feeder's check after it
                // records `run_id` (both under the schedule lock anyway).
                job.cancel.store(true, SeqCst);
                cancels.extend(job.run_id);
            }
        }
        Effect::Requeued { id, name, was } => {
            if was == StoredJobState::Dead {
                s.dead.remove(&id);
            } else {
                s.cancelled = s.cancelled.saturating_sub(1);
            }
            s.push_ready(id, &name);
        }
        Effect::Pruned {
            succeeded,
            cancelled,
        } => {
            s.succeeded = s.succeeded.saturating_sub(succeeded);
            s.cancelled = s.cancelled.saturating_sub(cancelled);
            s.pruned += succeeded + cancelled;
        }
        Effect::Stray { id } => {
            s.running.remove(&id);
        }
        Effect::Stored { n } => s.enqueued += n,
        Effect::Failed { id } => {
            s.running.remove(&id);
            s.failed_attempts += 1;
        }
        Effect::Recovered { n } => s.recovered += n,
        Effect::Fenced { id } => {
            s.running.remove(&id);
            s.fenced += 1;
        }
        Effect::LeaseLost { id } => {
            s.leases_lost += 1;
            if let Some(job) = s.running.get(&id) {
                // Another process owns the job now: an attempt that has
                // not started will not, and a running handler sees
                // `is_cancelled`. Its outcome is fenced either way.
                // ORDERING: SeqCst, as for `CancelRunning`.
                job.cancel.store(true, SeqCst);
            }
        }
        Effect::Ready => {}
        Effect::Reconnected => s.reconnects += 1,
    }
}
