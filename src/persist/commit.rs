//! The committer: the one thread that writes the file, in group commits.
//!
//! Every change to the file is an [`Op`] sent to this thread. It blocks
//! for one op, then takes every op already waiting (up to
//! [`MAX_BATCH`] jobs' worth), applies them all in **one** redb write
//! transaction and commits it with `Durability::Immediate` (one `fsync`).
//! Only then does it update the in-memory schedule and answer the ops'
//! callers. While it is committing, new ops pile up in the channel and
//! form the next batch: the busier the queue, the more jobs share an
//! `fsync`, with no timer and no added latency when it is quiet.
//!
//! If a commit fails (or the storage engine panics), nothing of that batch
//! is applied, its callers get [`PersistError::Storage`], and the queue is
//! broken: every later op is answered with [`PersistError::Broken`].

use super::error::PersistError;
use super::queue::Shared;
use super::record::{now_ms, truncate, JobState, Record, INLINE_PAYLOAD_MAX, MAX_ERROR_LEN};
use super::retry::Jitter;
use super::store::{self, FINISHED, JOBS, META, NEXT_ID_KEY, PAYLOADS};
use crate::signal::lock;
use redb::{Database, ReadableTable, Table};
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
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
/// The most finished jobs one automatic prune removes in a transaction.
const PRUNE_LIMIT: usize = 4096;

/// Where an op's answer goes.
pub(crate) type Reply<T> = mpsc::Sender<Result<T, PersistError>>;

/// How an attempt ended, as its [`Attempt`](super::run) reports it.
pub(crate) enum Outcome {
    /// The handler returned `Ok`.
    Succeeded,
    /// The handler returned `Err` or panicked.
    Failed(String),
    /// `Queue::cancel` was called for it.
    Cancelled,
    /// The run never started (cancelled or halted while queued on the
    /// dispatcher, refused by it, or the queue is stopping), or the
    /// dispatcher asked it to stop and it did not succeed: back to
    /// pending, and the attempt does not count.
    Released,
}

/// A job handed out by a claim.
pub(crate) struct Claimed {
    pub(crate) payload: Vec<u8>,
    pub(crate) attempt: u32,
    pub(crate) cancel: Arc<AtomicBool>,
}

/// A change to the file.
pub(crate) enum Op {
    /// Store new pending jobs with ids `first_id..first_id + jobs.len()`.
    Enqueue {
        first_id: u64,
        jobs: Vec<(String, Vec<u8>)>,
        reply: Reply<()>,
    },
    /// Pending → running for each id (in order; `None` where the job is
    /// no longer pending).
    Claim {
        ids: Vec<u64>,
        reply: Reply<Vec<Option<Claimed>>>,
    },
    /// Record how an attempt ended. Nobody waits for it.
    Finish { id: u64, outcome: Outcome },
    /// Cancel a pending, dead or running job; `false` if it was none.
    Cancel { id: u64, reply: Reply<bool> },
    /// Dead or cancelled → pending; `false` if it was neither.
    Requeue { id: u64, reply: Reply<bool> },
    /// Remove every finished job past the retention now; answers how many.
    Prune { reply: Reply<u64> },
    /// Commit everything before it, close the file and exit.
    Shutdown { reply: Reply<()> },
}

impl Op {
    /// Whether someone blocks until this op is answered.
    fn has_caller(&self) -> bool {
        !matches!(self, Op::Finish { .. })
    }

    fn weight(&self) -> usize {
        match self {
            Op::Enqueue { jobs, .. } => jobs.len(),
            Op::Claim { ids, .. } => ids.len(),
            _ => 1,
        }
    }
}

/// A change to the in-memory schedule, applied once the commit is durable.
enum Effect {
    Enqueued {
        id: u64,
        name: String,
    },
    Claimed {
        id: u64,
        cancel: Arc<AtomicBool>,
    },
    Succeeded {
        id: u64,
    },
    Retry {
        id: u64,
        name: String,
        due: u64,
    },
    Dead {
        id: u64,
    },
    Released {
        id: u64,
        name: String,
    },
    /// A running job was cancelled and finished.
    CancelledRun {
        id: u64,
    },
    CancelledPending {
        id: u64,
        name: String,
        run_after: u64,
    },
    CancelledDead {
        id: u64,
    },
    CancelRunning {
        id: u64,
    },
    Requeued {
        id: u64,
        name: String,
        was: JobState,
    },
    Pruned {
        succeeded: u64,
        cancelled: u64,
    },
    /// An attempt's outcome arrived for a job that was not running in the
    /// file (cannot happen unless the file was changed under us); only
    /// forget it in memory.
    Stray {
        id: u64,
    },
}

/// An answer, held back until the commit is durable.
enum Answer {
    Unit(Reply<()>),
    Claim(Reply<Vec<Option<Claimed>>>, Vec<Option<Claimed>>),
    Bool(Reply<bool>, bool),
    Count(Reply<u64>, u64),
}

impl Answer {
    // A caller that went away does not mind: send errors are ignored.
    fn send(self) {
        match self {
            Answer::Unit(r) => drop(r.send(Ok(()))),
            Answer::Claim(r, v) => drop(r.send(Ok(v))),
            Answer::Bool(r, v) => drop(r.send(Ok(v))),
            Answer::Count(r, v) => drop(r.send(Ok(v))),
        }
    }

    fn fail(self, e: &PersistError) {
        let e = || match e {
            PersistError::Broken { reason } => PersistError::Broken {
                reason: reason.clone(),
            },
            PersistError::Storage { reason } => PersistError::Storage {
                reason: reason.clone(),
            },
            other => store::storage(other),
        };
        match self {
            Answer::Unit(r) => drop(r.send(Err(e()))),
            Answer::Claim(r, _) => drop(r.send(Err(e()))),
            Answer::Bool(r, _) => drop(r.send(Err(e()))),
            Answer::Count(r, _) => drop(r.send(Err(e()))),
        }
    }
}

pub(crate) struct Committer {
    shared: Arc<Shared>,
    db: Option<Arc<Database>>,
    jitter: Jitter,
    buf: Vec<u8>,
    /// A lower bound of the oldest `finished` entry, to skip pruning when
    /// nothing can be due.
    oldest_finished: Option<u64>,
}

impl Committer {
    pub(crate) fn new(
        shared: Arc<Shared>,
        db: Arc<Database>,
        oldest_finished: Option<u64>,
    ) -> Committer {
        Committer {
            shared,
            db: Some(db),
            jitter: Jitter::new(),
            buf: Vec::new(),
            oldest_finished,
        }
    }

    /// The committer thread's body.
    pub(crate) fn run(mut self, ops: Receiver<Op>) {
        let retention = self.shared.config.retention;
        // Prune at least every quarter retention (between 50 ms and a
        // minute) even when no op comes.
        let tick = (retention / 4).clamp(Duration::from_millis(50), Duration::from_secs(60));
        // How many callers the last batch answered.
        let mut answered = 0;
        loop {
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
                // Close the file before answering, so that the caller of
                // `stop` can reopen it at once.
                self.db = None;
                let _ = shutdown.send(Ok(()));
                return;
            }
        }
    }

    /// Applies and commits one batch; returns the shutdown reply if the
    /// batch asked for one.
    fn process(&mut self, batch: Vec<Op>) -> Option<Reply<()>> {
        let mut effects = Vec::new();
        let mut answers = Vec::new();
        let mut shutdown = None;
        let broken = lock(&self.shared.sched).broken.clone();
        if let Some(reason) = broken {
            let e = PersistError::Broken { reason };
            for op in batch {
                match op {
                    Op::Shutdown { reply } => shutdown = Some(reply),
                    other => answer_of(other).into_iter().for_each(|a| a.fail(&e)),
                }
            }
            return shutdown;
        }
        let began = Instant::now();
        let result = store::guard(
            || self.write(batch, &mut effects, &mut answers, &mut shutdown),
            |panic| store::storage(format!("the storage engine panicked: {panic}")),
        );
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
                    for effect in effects {
                        apply(&mut s, effect, &mut cancels);
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
                lock(&self.shared.sched).broken = Some(e.to_string());
                self.shared.changed.notify_all();
                for answer in answers {
                    answer.fail(&e);
                }
            }
        }
        shutdown
    }

    /// Applies `batch` in one transaction; `Ok(true)` if it committed
    /// (`false`: nothing to write).
    fn write(
        &mut self,
        batch: Vec<Op>,
        effects: &mut Vec<Effect>,
        answers: &mut Vec<Answer>,
        shutdown: &mut Option<Reply<()>>,
    ) -> Result<bool, PersistError> {
        let db = Arc::clone(self.db.as_ref().expect("open until shutdown"));
        let txn = db.begin_write().map_err(store::storage)?;
        let now = now_ms();
        let mut dirty = false;
        let next_id;
        {
            let mut t = Tables {
                jobs: txn.open_table(JOBS).map_err(store::storage)?,
                payloads: txn.open_table(PAYLOADS).map_err(store::storage)?,
                finished: txn.open_table(FINISHED).map_err(store::storage)?,
            };
            let mut forced = false;
            for op in batch {
                match op {
                    Op::Enqueue {
                        first_id,
                        jobs,
                        reply,
                    } => {
                        // Hold the answer first: if a write fails the
                        // caller still hears about it.
                        answers.push(Answer::Unit(reply));
                        let n = jobs.len() as u64;
                        for (id, (name, payload)) in (first_id..).zip(jobs) {
                            let mut record = Record::new(name, now);
                            if payload.len() <= INLINE_PAYLOAD_MAX {
                                record.payload = Some(payload);
                            } else {
                                t.payloads
                                    .insert(id, payload.as_slice())
                                    .map_err(store::storage)?;
                            }
                            record.encode(&mut self.buf);
                            t.jobs
                                .insert(id, self.buf.as_slice())
                                .map_err(store::storage)?;
                            effects.push(Effect::Enqueued {
                                id,
                                name: record.name,
                            });
                        }
                        dirty |= n > 0;
                    }
                    Op::Claim { ids, reply } => {
                        answers.push(Answer::Claim(reply, Vec::with_capacity(ids.len())));
                        for id in ids {
                            let claimed = self.claim(&mut t, id, now, effects)?;
                            dirty |= claimed.is_some();
                            if let Some(Answer::Claim(_, out)) = answers.last_mut() {
                                out.push(claimed);
                            }
                        }
                    }
                    Op::Finish { id, outcome } => {
                        dirty |= self.finish(&mut t, id, outcome, now, effects)?;
                    }
                    Op::Cancel { id, reply } => {
                        answers.push(Answer::Bool(reply, false));
                        let (changed, wrote) = self.cancel(&mut t, id, now, effects)?;
                        dirty |= wrote;
                        set_last(answers, changed);
                    }
                    Op::Requeue { id, reply } => {
                        answers.push(Answer::Bool(reply, false));
                        let changed = self.requeue(&mut t, id, effects)?;
                        dirty |= changed;
                        set_last(answers, changed);
                    }
                    Op::Prune { reply } => {
                        answers.push(Answer::Count(reply, 0));
                        forced = true;
                    }
                    Op::Shutdown { reply } => *shutdown = Some(reply),
                }
            }
            let (pruned, max_pruned) = self.prune(&mut t, now, forced, effects)?;
            next_id = max_pruned.map_or(0, |id| id + 1);
            dirty |= pruned > 0;
            for answer in answers.iter_mut() {
                if let Answer::Count(_, n) = answer {
                    *n = pruned;
                }
            }
        }
        // Ids are never reused: on open the next id is past the highest
        // stored job and this mark, which only pruning needs to move.
        if next_id > 0 {
            let mut meta = txn.open_table(META).map_err(store::storage)?;
            let stored = meta
                .get(NEXT_ID_KEY)
                .map_err(store::storage)?
                .map_or(0, |v| v.value());
            if next_id > stored {
                meta.insert(NEXT_ID_KEY, next_id).map_err(store::storage)?;
            }
        }
        if dirty {
            txn.commit().map_err(store::storage)?;
        } else {
            txn.abort().map_err(store::storage)?;
        }
        Ok(dirty)
    }

    fn claim(
        &mut self,
        t: &mut Tables<'_>,
        id: u64,
        now: u64,
        effects: &mut Vec<Effect>,
    ) -> Result<Option<Claimed>, PersistError> {
        let Some(mut record) = t.record(id)? else {
            return Ok(None);
        };
        if record.state != JobState::Pending {
            return Ok(None);
        }
        record.state = JobState::Running;
        record.attempts = record.attempts.saturating_add(1);
        record.started_at = now;
        record.run_after = 0;
        t.put(id, &record, &mut self.buf)?;
        let payload = match record.payload.take() {
            Some(inline) => inline,
            None => t
                .payloads
                .get(id)
                .map_err(store::storage)?
                .map(|v| v.value().to_vec())
                .unwrap_or_default(),
        };
        let cancel = Arc::new(AtomicBool::new(false));
        effects.push(Effect::Claimed {
            id,
            cancel: Arc::clone(&cancel),
        });
        Ok(Some(Claimed {
            payload,
            attempt: record.attempts,
            cancel,
        }))
    }

    /// Returns whether it wrote.
    fn finish(
        &mut self,
        t: &mut Tables<'_>,
        id: u64,
        outcome: Outcome,
        now: u64,
        effects: &mut Vec<Effect>,
    ) -> Result<bool, PersistError> {
        let record = t.record(id)?;
        let Some(mut record) = record.filter(|r| r.state == JobState::Running) else {
            effects.push(Effect::Stray { id });
            return Ok(false);
        };
        let config = &self.shared.config;
        match outcome {
            Outcome::Succeeded => {
                record.state = JobState::Succeeded;
                record.finished_at = now;
                t.finish(id, now)?;
                self.note_finished(now);
                effects.push(Effect::Succeeded { id });
            }
            Outcome::Failed(error) => {
                record.error = Some(truncate(error, MAX_ERROR_LEN));
                if record.attempts >= config.max_attempts {
                    record.state = JobState::Dead;
                    record.finished_at = now;
                    effects.push(Effect::Dead { id });
                } else {
                    let delay = config.backoff.delay(record.attempts, self.jitter.next());
                    let delay = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
                    record.state = JobState::Pending;
                    record.run_after = if delay == 0 {
                        0
                    } else {
                        now.saturating_add(delay)
                    };
                    effects.push(Effect::Retry {
                        id,
                        name: record.name.clone(),
                        due: record.run_after,
                    });
                }
            }
            Outcome::Cancelled => {
                record.state = JobState::Cancelled;
                record.finished_at = now;
                t.finish(id, now)?;
                self.note_finished(now);
                effects.push(Effect::CancelledRun { id });
            }
            Outcome::Released => {
                record.state = JobState::Pending;
                record.attempts = record.attempts.saturating_sub(1);
                record.run_after = 0;
                effects.push(Effect::Released {
                    id,
                    name: record.name.clone(),
                });
            }
        }
        t.put(id, &record, &mut self.buf)?;
        Ok(true)
    }

    /// Returns (whether the job was cancelled, whether it wrote).
    fn cancel(
        &mut self,
        t: &mut Tables<'_>,
        id: u64,
        now: u64,
        effects: &mut Vec<Effect>,
    ) -> Result<(bool, bool), PersistError> {
        let Some(mut record) = t.record(id)? else {
            return Ok((false, false));
        };
        let effect = match record.state {
            JobState::Pending | JobState::Waiting => Effect::CancelledPending {
                id,
                name: record.name.clone(),
                run_after: record.run_after,
            },
            JobState::Dead => Effect::CancelledDead { id },
            JobState::Running => {
                // Its attempt records the cancellation when it returns.
                effects.push(Effect::CancelRunning { id });
                return Ok((true, false));
            }
            JobState::Succeeded | JobState::Cancelled => return Ok((false, false)),
        };
        record.state = JobState::Cancelled;
        record.finished_at = now;
        t.finish(id, now)?;
        self.note_finished(now);
        t.put(id, &record, &mut self.buf)?;
        effects.push(effect);
        Ok((true, true))
    }

    fn requeue(
        &mut self,
        t: &mut Tables<'_>,
        id: u64,
        effects: &mut Vec<Effect>,
    ) -> Result<bool, PersistError> {
        let Some(mut record) = t.record(id)? else {
            return Ok(false);
        };
        let was = record.state;
        match was {
            JobState::Dead => {}
            JobState::Cancelled => {
                t.finished
                    .remove((record.finished_at, id))
                    .map_err(store::storage)?;
            }
            _ => return Ok(false),
        }
        record.state = JobState::Pending;
        record.attempts = 0;
        record.run_after = 0;
        record.finished_at = 0;
        t.put(id, &record, &mut self.buf)?;
        effects.push(Effect::Requeued {
            id,
            name: record.name,
            was,
        });
        Ok(true)
    }

    fn note_finished(&mut self, at: u64) {
        self.oldest_finished = Some(self.oldest_finished.map_or(at, |t| t.min(at)));
    }

    /// Removes succeeded and cancelled jobs older than the retention: up
    /// to [`PRUNE_LIMIT`] of them, or all if `forced`. Returns how many,
    /// and the highest id removed.
    fn prune(
        &mut self,
        t: &mut Tables<'_>,
        now: u64,
        forced: bool,
        effects: &mut Vec<Effect>,
    ) -> Result<(u64, Option<u64>), PersistError> {
        let retention = u64::try_from(self.shared.config.retention.as_millis()).unwrap_or(u64::MAX);
        let cutoff = now.saturating_sub(retention);
        if self.oldest_finished.map_or(true, |t| t > cutoff) {
            return Ok((0, None));
        }
        let limit = if forced { usize::MAX } else { PRUNE_LIMIT };
        let mut due = Vec::new();
        for entry in t
            .finished
            .range(..=(cutoff, u64::MAX))
            .map_err(store::storage)?
        {
            let (key, _) = entry.map_err(store::storage)?;
            due.push(key.value());
            if due.len() == limit {
                break;
            }
        }
        let (mut succeeded, mut cancelled, mut max_id) = (0, 0, None);
        for (finished_at, id) in &due {
            t.finished
                .remove((*finished_at, *id))
                .map_err(store::storage)?;
            if let Some(record) = t.record(*id)? {
                match record.state {
                    JobState::Succeeded => succeeded += 1,
                    JobState::Cancelled => cancelled += 1,
                    // Requeued since (its entry would be gone) or damaged:
                    // keep the job.
                    _ => continue,
                }
                t.jobs.remove(*id).map_err(store::storage)?;
                if record.payload.is_none() {
                    t.payloads.remove(*id).map_err(store::storage)?;
                }
                max_id = max_id.max(Some(*id));
            }
        }
        self.oldest_finished = t
            .finished
            .first()
            .map_err(store::storage)?
            .map(|(k, _)| k.value().0);
        if succeeded + cancelled > 0 {
            effects.push(Effect::Pruned {
                succeeded,
                cancelled,
            });
        }
        Ok((succeeded + cancelled, max_id))
    }
}

/// The open tables of one transaction.
struct Tables<'txn> {
    jobs: Table<'txn, u64, &'static [u8]>,
    payloads: Table<'txn, u64, &'static [u8]>,
    finished: Table<'txn, (u64, u64), ()>,
}

impl Tables<'_> {
    fn record(&self, id: u64) -> Result<Option<Record>, PersistError> {
        match self.jobs.get(id).map_err(store::storage)? {
            None => Ok(None),
            Some(v) => Record::decode(v.value())
                .map(Some)
                .map_err(|why| store::storage(format!("job {id}: {why}"))),
        }
    }

    fn put(&mut self, id: u64, record: &Record, buf: &mut Vec<u8>) -> Result<(), PersistError> {
        record.encode(buf);
        self.jobs
            .insert(id, buf.as_slice())
            .map_err(store::storage)?;
        Ok(())
    }

    fn finish(&mut self, id: u64, now: u64) -> Result<(), PersistError> {
        self.finished
            .insert((now, id), ())
            .map_err(store::storage)?;
        Ok(())
    }
}

/// Sets the value of the last answer, a `Bool` pushed before the work
/// that could fail (so that a failure still reaches its caller).
fn set_last(answers: &mut [Answer], value: bool) {
    if let Some(Answer::Bool(_, v)) = answers.last_mut() {
        *v = value;
    }
}

/// The answer an op expects, to fail it without applying it.
fn answer_of(op: Op) -> Option<Answer> {
    match op {
        Op::Enqueue { reply, .. } | Op::Shutdown { reply } => Some(Answer::Unit(reply)),
        Op::Claim { reply, .. } => Some(Answer::Claim(reply, Vec::new())),
        Op::Cancel { reply, .. } | Op::Requeue { reply, .. } => Some(Answer::Bool(reply, false)),
        Op::Prune { reply } => Some(Answer::Count(reply, 0)),
        Op::Finish { .. } => None,
    }
}

/// Applies one effect; runs to cancel on the dispatcher go to `cancels`.
fn apply(s: &mut super::sched::Sched, effect: Effect, cancels: &mut Vec<crate::JobId>) {
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
            if was == JobState::Dead {
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
    }
}
