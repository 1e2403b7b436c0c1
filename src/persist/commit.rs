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
//! **Held outcomes.** An attempt's outcome (`Op::Finish`) has no caller
//! waiting for it. On PostgreSQL, where each commit is a WAL flush and
//! a round trip, outcomes that arrive alone (typically while the feeder
//! is launching the jobs its last claim returned) are not committed
//! alone: they are held, and written in the transaction of the next op
//! that has a caller, usually that feeder's next claim, a moment later.
//! That is what a hand-written loop does (one transaction per round
//! trip: write the last outcomes, claim the next jobs), and it saves
//! about a commit per claim under load. They are held only while that
//! next op is certain to come soon, so that nothing waits for a timer
//! in the ordinary course:
//!
//! * only while an attempt is in flight or a claim is reserved
//!   (`Shared::in_flight` > 0), or the feeder waits for a free slot
//!   (`Shared::starved`: the attempt that sent this outcome freed one,
//!   and woke it). The feeder changes both under the schedule's lock,
//!   where they are read here, so a feeder between its wake-up and its
//!   claim is seen as one or the other. An attempt frees its slot
//!   *before* it sends its outcome, so with the feeder gone (stopping)
//!   or idle the outcome of the last attempt to end finds neither and is
//!   written at once, with everything held before it: `wait_idle` and
//!   step 3 of `stop`, which wait for outcomes to be committed, wait no
//!   longer than before;
//! * not after a claim that found no job (`drained`): the feeder then
//!   waits for a wake-up, not for a slot, and no claim is coming;
//! * not once the queue is stopping (its feeder claims no more);
//! * at most the store's [`outcome_hold`](Store::outcome_hold) (a few
//!   milliseconds by default) after the first held one, and at most
//!   [`MAX_BATCH`] of them (in practice they never reach it: each one
//!   freed an in-flight slot, and there are at most `max_in_flight`).
//!   The hold is bounded below the lease (`QueueBuilder::connect` checks
//!   `heartbeat + outcome_hold < lease`), so a held job's lease cannot
//!   run out for it, though the committer skips its periodic work
//!   (heartbeats) while it holds.
//!
//! A held outcome is not durable yet, and changes nothing anywhere until
//! it is: its job still counts as running in `stats` and `status`, and a
//! crash meanwhile loses it as it loses an outcome not yet sent (the job
//! runs again after its lease). The file store holds nothing (its
//! `outcome_hold` is zero), so it behaves as before; whether holding
//! would pay for its `fsync`s too was not measured.
//!
//! If a commit fails (or the storage engine panics), nothing of that batch
//! is applied, its callers get [`PersistError::Storage`], and the queue is
//! broken: every later op is answered with [`PersistError::Broken`]. A
//! transient failure (a lost connection to PostgreSQL) fails that batch's
//! callers with [`PersistError::Connection`] but does not break the
//! queue: the store reconnects and keeps the batch's outcomes to write
//! with the next one.

use super::error::PersistError;
use super::op::{Answer, Op};
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
    held: Held,
}

/// Outcomes held back for the next op with a caller (see "Held outcomes"
/// above).
#[derive(Default)]
struct Held {
    ops: Vec<Op>,
    /// When they are written even if no such op came.
    until: Option<Instant>,
    /// The last claim found no job: the feeder waits for a wake-up, and no
    /// claim is coming to carry outcomes.
    drained: bool,
}

impl Held {
    /// Whether to hold `batch` (outcomes only, when `callers` is 0) back:
    /// it then joins the held outcomes. Otherwise the held ones go in
    /// front of it, to be written with it.
    fn hold(
        &mut self,
        shared: &Shared,
        hold_for: Duration,
        batch: &mut Vec<Op>,
        callers: usize,
    ) -> bool {
        let now = Instant::now();
        let outcomes = !batch.is_empty() || !self.ops.is_empty();
        let keep = outcomes
            && callers == 0
            && !hold_for.is_zero()
            && !self.drained
            && self.ops.len() + batch.len() < MAX_BATCH
            && self.until.map_or(true, |until| now < until)
            && claim_coming(shared);
        if keep {
            if !batch.is_empty() {
                self.until.get_or_insert(now + hold_for);
                self.ops.append(batch);
            }
            return true;
        }
        if !self.ops.is_empty() {
            self.ops.append(batch);
            *batch = std::mem::take(&mut self.ops);
        }
        self.until = None;
        false
    }
}

/// Whether the feeder is about to claim, or an attempt is still to end
/// (see "Held outcomes").
fn claim_coming(shared: &Shared) -> bool {
    let s = lock(&shared.sched);
    // ORDERING: SeqCst, as every access to `in_flight` and `starved`: an
    // attempt decrements `in_flight` before it sends its outcome, so the
    // outcome that brings it to zero finds zero here; `starved` is set
    // and cleared under the lock held here.
    !s.stopping && (shared.in_flight.load(SeqCst) > 0 || shared.starved.load(SeqCst))
}

impl Committer {
    pub(crate) fn new(shared: Arc<Shared>, store: Box<dyn Store>) -> Committer {
        Committer {
            shared,
            store,
            held: Held::default(),
        }
    }

    /// The committer thread's body.
    pub(crate) fn run(mut self, ops: Receiver<Op>) {
        // How many callers the last batch answered.
        let mut answered = 0;
        let hold_for = self.store.outcome_hold();
        loop {
            let mut tick = self.store.tick(&self.shared.config);
            if let Some(until) = self.held.until {
                tick = tick.min(until.saturating_duration_since(Instant::now()));
            }
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
            if self.held.hold(&self.shared, hold_for, &mut batch, callers) {
                continue;
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
                let mut claims = 0;
                for answer in &answers {
                    match answer {
                        Answer::Picked(_, picked) => {
                            self.held.drained = picked.jobs.is_empty();
                            claims += u64::from(!picked.jobs.is_empty());
                        }
                        Answer::Claim(_, claimed) => {
                            claims += u64::from(claimed.iter().any(Option::is_some));
                        }
                        _ => {}
                    }
                }
                let mut cancels = Vec::new();
                let dispatcher = {
                    let mut s = lock(&self.shared.sched);
                    if committed {
                        s.commits += 1;
                    }
                    s.claims += claims;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::persist::op::{Outcome, Picked, PickedBatch};
    use crate::persist::retry::Backoff;
    use crate::persist::sched::Sched;
    use crate::persist::store::Config;
    use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize};
    use std::sync::{mpsc, Condvar, Mutex, RwLock};

    type Batches = Arc<Mutex<Vec<Vec<&'static str>>>>;

    /// A store that records the kinds of ops in each batch it writes and
    /// answers them; a claim for `max` jobs finds `max`.
    struct Recorder {
        hold: Duration,
        batches: Batches,
    }

    impl Store for Recorder {
        fn write(
            &mut self,
            _: &Config,
            batch: Vec<Op>,
            out: &mut Written,
        ) -> Result<bool, PersistError> {
            let mut kinds = Vec::new();
            for op in batch {
                match op {
                    Op::Finish { .. } => kinds.push("finish"),
                    Op::ClaimNext { max, reply, .. } => {
                        kinds.push("claim");
                        let jobs = (0..max as u64)
                            .map(|id| Picked {
                                id,
                                name: "n".into(),
                                payload: Vec::new(),
                                attempt: 1,
                                cancel: Arc::new(AtomicBool::new(false)),
                            })
                            .collect();
                        out.answers.push(Answer::Picked(
                            reply,
                            PickedBatch {
                                jobs,
                                next_due: None,
                            },
                        ));
                    }
                    Op::Shutdown { reply } => {
                        kinds.push("shutdown");
                        out.shutdown = Some(reply);
                    }
                    other => {
                        kinds.push("other");
                        out.answers.extend(other.into_answer());
                    }
                }
            }
            let wrote = !kinds.is_empty();
            if wrote {
                self.batches.lock().unwrap().push(kinds);
            }
            Ok(wrote)
        }

        fn tick(&self, _: &Config) -> Duration {
            Duration::from_secs(3600)
        }

        fn outcome_hold(&self) -> Duration {
            self.hold
        }

        fn close(&mut self) {}
    }

    /// A committer on a `Recorder`, with no feeder: the test plays it,
    /// setting `in_flight`, `starved` and `stopping` by hand.
    fn committer(hold: Duration) -> (Arc<Shared>, Batches, std::thread::JoinHandle<()>) {
        let (ops, rx) = mpsc::channel();
        let shared = Arc::new(Shared {
            path: Default::default(),
            config: Config {
                max_attempts: 1,
                backoff: Backoff::default(),
                retention: Duration::from_secs(60),
                max_in_flight: 8,
            },
            ops,
            sched: Mutex::new(Sched::default()),
            changed: Condvar::new(),
            reader: RwLock::new(None),
            local: false,
            poll: Duration::from_secs(1),
            in_flight: AtomicUsize::new(0),
            starved: AtomicBool::new(false),
            stopping: AtomicBool::new(false),
            ended: AtomicU64::new(0),
            commit_nanos: AtomicU64::new(0),
            syncs: Arc::new(AtomicU64::new(0)),
            threads: Mutex::new(Vec::new()),
            stop_lock: Mutex::new(()),
        });
        let batches = Batches::default();
        let store = Box::new(Recorder {
            hold,
            batches: Arc::clone(&batches),
        });
        let c = Committer::new(Arc::clone(&shared), store);
        let thread = std::thread::spawn(move || c.run(rx));
        (shared, batches, thread)
    }

    fn finish(shared: &Shared, id: u64) {
        shared
            .send(Op::Finish {
                id,
                attempt: 1,
                outcome: Outcome::Succeeded,
            })
            .unwrap();
    }

    /// A caller's op: answered once its batch is written.
    fn prune(shared: &Shared) {
        shared.call(|reply| Op::Prune { reply }).unwrap();
    }

    fn claim(shared: &Shared, max: usize) -> usize {
        let names = vec!["n".to_owned()];
        let batch = shared.call(|reply| Op::ClaimNext { names, max, reply });
        batch.unwrap().jobs.len()
    }

    /// Waits (polling, up to 10 s) until `n` batches were written.
    fn written(batches: &Batches, n: usize) -> Vec<Vec<&'static str>> {
        let deadline = Instant::now() + Duration::from_secs(10);
        while batches.lock().unwrap().len() < n && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        batches.lock().unwrap().clone()
    }

    fn stop(shared: &Shared, thread: std::thread::JoinHandle<()>) {
        shared.call(|reply| Op::Shutdown { reply }).unwrap();
        thread.join().unwrap();
    }

    /// Not to synchronise: a pause far longer than `STRAGGLER_WAIT`, so
    /// that outcomes not held would (most likely) be written before the
    /// op that follows them.
    fn gap() {
        std::thread::sleep(Duration::from_millis(20));
    }

    const LONG: Duration = Duration::from_secs(3600);

    #[test]
    fn outcomes_are_held_for_the_next_caller_while_an_attempt_is_in_flight() {
        let (shared, batches, thread) = committer(LONG);
        shared.in_flight.store(1, SeqCst);
        finish(&shared, 1);
        finish(&shared, 2);
        gap();
        prune(&shared);
        assert_eq!(
            *batches.lock().unwrap(),
            [vec!["finish", "finish", "other"]]
        );
        // The feeder waiting for a slot will claim: held for that claim.
        shared.in_flight.store(0, SeqCst);
        shared.starved.store(true, SeqCst);
        finish(&shared, 3);
        gap();
        assert_eq!(claim(&shared, 2), 2);
        assert_eq!(batches.lock().unwrap()[1], ["finish", "claim"]);
        stop(&shared, thread);
    }

    #[test]
    fn an_outcome_is_written_at_once_when_no_claim_or_outcome_is_coming() {
        let (shared, batches, thread) = committer(LONG);
        // Nothing in flight, the feeder not waiting for a slot: the last
        // outcome (as `wait_idle` and `stop` wait for) is not held.
        finish(&shared, 1);
        assert_eq!(written(&batches, 1), [vec!["finish"]]);
        // After a claim that found nothing the feeder waits for a wake-up.
        shared.in_flight.store(1, SeqCst);
        assert_eq!(claim(&shared, 0), 0);
        finish(&shared, 2);
        assert_eq!(written(&batches, 3)[2], ["finish"]);
        // A claim that found jobs ends that.
        assert_eq!(claim(&shared, 1), 1);
        finish(&shared, 3);
        prune(&shared);
        assert_eq!(batches.lock().unwrap()[4], ["finish", "other"]);
        // Stopping: the feeder claims no more.
        lock(&shared.sched).stopping = true;
        finish(&shared, 4);
        assert_eq!(written(&batches, 6)[5], ["finish"]);
        stop(&shared, thread);
    }

    #[test]
    fn a_held_outcome_is_written_when_its_hold_ends_or_at_shutdown() {
        let hold = Duration::from_millis(50);
        let (shared, batches, thread) = committer(hold);
        shared.in_flight.store(1, SeqCst);
        let sent = Instant::now();
        finish(&shared, 1);
        assert_eq!(written(&batches, 1), [vec!["finish"]]);
        assert!(sent.elapsed() >= hold, "written after {:?}", sent.elapsed());
        let (shared_long, batches_long, thread_long) = committer(LONG);
        shared_long.in_flight.store(1, SeqCst);
        finish(&shared_long, 1);
        stop(&shared_long, thread_long);
        assert_eq!(*batches_long.lock().unwrap(), [vec!["finish", "shutdown"]]);
        stop(&shared, thread);
    }

    #[test]
    fn a_store_without_a_hold_writes_each_batch_as_it_comes() {
        let (shared, batches, thread) = committer(Duration::ZERO);
        shared.in_flight.store(1, SeqCst);
        finish(&shared, 1);
        assert_eq!(written(&batches, 1), [vec!["finish"]]);
        stop(&shared, thread);
    }
}
