//! Running stored jobs: the feeder thread, which claims ready jobs and
//! spawns them on the dispatcher, and [`Attempt`], the dispatcher job that
//! runs one handler call and reports how it ended.
//!
//! An attempt always reports exactly once: from `run` when it ran, or
//! from its `Drop` when it never did (the dispatcher cancelled or halted
//! it while it was queued, or refused it). A never-run attempt is
//! `Released`: its job goes back to pending and the attempt is not
//! counted, so neither a cancel nor a halt on the dispatcher can lose a
//! job or use up its retries. (Unless `Queue::cancel` asked for it: that
//! cancels the queued run too, and the job ends `Cancelled`.)

use super::op::{Op, Outcome};
use super::record::now_ms;
use super::sched::HandlerFn;
use super::shared::{HandlerScope, Shared};
use super::{Delivery, StoredJobId};
use crate::signal::lock;
use crate::{Dispatcher, Job, TrySpawnError};
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One attempt at one stored job, as a dispatcher job. Its status record
/// on the dispatcher is the attempt's: `Succeeded`, `Failed` with the
/// handler's error text, or `Panicked` with the handler's panic.
pub(crate) struct Attempt {
    shared: Arc<Shared>,
    id: u64,
    name: Arc<str>,
    payload: Vec<u8>,
    attempt: u32,
    handler: Arc<HandlerFn>,
    cancel: Arc<AtomicBool>,
    reported: bool,
}

impl Attempt {
    /// Reports the outcome: frees the in-flight slot first, so that when
    /// the committer applies the outcome (and wakes waiters) the slot is
    /// already free.
    fn report(&mut self, outcome: Outcome) {
        self.reported = true;
        self.shared.attempt_ended();
        // If the committer is gone the queue is stopped or broken; the job
        // stays `Running` in the file and is recovered on the next open.
        let _ = self.shared.send(Op::Finish {
            id: self.id,
            attempt: self.attempt,
            outcome,
        });
    }
}

impl Job for Attempt {
    type Output = ();
    type Error = String;

    fn run(mut self) -> Result<(), String> {
        // ORDERING: SeqCst, as the store in the committer's cancel.
        if self.cancel.load(SeqCst) {
            self.report(Outcome::Cancelled);
            return Err("cancelled before it started".into());
        }
        if self.shared.is_stopping() {
            self.report(Outcome::Released);
            return Err("not run: the queue is stopping; the job stays pending".into());
        }
        let delivery = Delivery {
            id: StoredJobId(self.id),
            name: &self.name,
            payload: &self.payload,
            attempt: self.attempt,
        };
        let result = {
            let _scope = HandlerScope::enter();
            let handler = &self.handler;
            panic::catch_unwind(AssertUnwindSafe(|| handler(&delivery)))
        };
        // ORDERING: SeqCst, as above.
        let outcome = if self.cancel.load(SeqCst) {
            Outcome::Cancelled
        } else {
            match &result {
                Ok(Ok(())) => Outcome::Succeeded,
                // Halted or cancelled on the dispatcher, and it stopped
                // short: not the job's failure.
                _ if crate::is_cancelled() => Outcome::Released,
                Ok(Err(e)) => Outcome::Failed(e.clone()),
                Err(payload) => Outcome::Failed(format!("panicked: {}", panic_message(payload))),
            }
        };
        self.report(outcome);
        match result {
            Ok(r) => r,
            // Let the dispatcher record the panic as this run's outcome.
            Err(payload) => panic::resume_unwind(payload),
        }
    }
}

impl Drop for Attempt {
    fn drop(&mut self) {
        if !self.reported {
            // `Queue::cancel` cancels a queued run on the dispatcher too,
            // which drops it here: that job is cancelled, not released.
            // ORDERING: SeqCst, as in `run`.
            let outcome = if self.cancel.load(SeqCst) {
                Outcome::Cancelled
            } else {
                Outcome::Released
            };
            self.report(outcome);
        }
    }
}

fn panic_message(payload: &Box<dyn std::any::Any + Send>) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(a non-string payload)")
}

/// How many attempts the feeder lets out at once: two per worker, plus
/// what the workers finish in four commit times at the recent rate, within
/// `max_in_flight`. (A claim takes one commit to come back; attempts must
/// not run dry meanwhile.) Under a flood of quick jobs it grows to the
/// maximum within a few commits; for slow jobs it stays small.
struct Window {
    floor: usize,
    max: usize,
    sampled_at: Instant,
    ended_then: u64,
    /// Attempts ended per second, recently.
    rate: f64,
}

impl Window {
    fn new(shared: &Shared, workers: usize) -> Window {
        let max = shared.config.max_in_flight;
        Window {
            floor: (2 * workers).clamp(1, max),
            max,
            sampled_at: Instant::now(),
            // ORDERING: Relaxed: a statistic.
            ended_then: shared.ended.load(Relaxed),
            rate: 0.0,
        }
    }

    fn limit(&mut self, shared: &Shared) -> usize {
        let now = Instant::now();
        let dt = now.duration_since(self.sampled_at).as_secs_f64();
        if dt >= 0.005 {
            // ORDERING: Relaxed: a statistic.
            let ended = shared.ended.load(Relaxed);
            let recent = (ended - self.ended_then) as f64 / dt;
            // Follow increases at once, decreases halfway per sample.
            self.rate = if recent > self.rate {
                recent
            } else {
                (self.rate + recent) / 2.0
            };
            self.sampled_at = now;
            self.ended_then = ended;
        }
        // ORDERING: Relaxed: a statistic.
        let commit = Duration::from_nanos(shared.commit_nanos.load(Relaxed)).as_secs_f64();
        let ahead = (self.rate * 4.0 * commit).ceil();
        let ahead = if ahead.is_finite() && ahead < self.max as f64 {
            ahead as usize
        } else {
            self.max
        };
        (self.floor + ahead).min(self.max)
    }
}

/// The most jobs one claim asks a shared store for: tens to hundreds per
/// round trip is where batching pays; more only holds jobs that other
/// processes could run. It bounds each claim, not what is in flight (the
/// window does that, within `max_in_flight`, as on the file): when it
/// bounded both, a flood's claims asked only for what the workers had
/// finished during the previous claim's commit, about half of it, and
/// made twice the commits of a loop claiming 256 at a time
/// (`persist_pg_bench`, 4 workers: 392 claims for 50,000 jobs, 14.6k
/// jobs/s; bounding claims only: 199 claims, 23.6k jobs/s).
const SHARED_CLAIM_MAX: usize = 256;
/// How long the feeder of a shared store waits after a claim failed on a
/// lost connection, at first and at most (doubling in between).
const RETRY_MIN: Duration = Duration::from_millis(50);
const RETRY_MAX: Duration = Duration::from_secs(5);
/// How soon the feeder of a shared store claims again when due jobs were
/// all locked by other processes' claims in progress (a claim holds its
/// rows only for its transaction, a few milliseconds).
const LOCKED_RETRY: Duration = Duration::from_millis(2);

/// The feeder thread's body: claims ready jobs in batches, as many as the
/// in-flight limit allows, and spawns them on the dispatcher.
pub(crate) fn feed(shared: Arc<Shared>, dispatcher: Dispatcher) {
    if shared.local {
        feed_local(shared, dispatcher);
    } else {
        feed_shared(shared, dispatcher);
    }
}

/// For a store with a local schedule (the file): takes ready ids from the
/// schedule in memory and claims exactly those.
fn feed_local(shared: Arc<Shared>, dispatcher: Dispatcher) {
    let mut window = Window::new(&shared, dispatcher.workers());
    loop {
        let batch = {
            let mut s = lock(&shared.sched);
            loop {
                if s.stopping || s.broken.is_some() {
                    return;
                }
                s.promote_due(now_ms());
                // ORDERING: SeqCst with `attempt_ended`: either it sees
                // `starved` set and wakes us through the lock, or we see
                // its decrement here.
                shared.starved.store(true, SeqCst);
                let limit = window.limit(&shared);
                let free = limit.saturating_sub(shared.in_flight.load(SeqCst));
                if free > 0 {
                    // ORDERING: SeqCst, as `starved` above.
                    shared.starved.store(false, SeqCst);
                    let batch = s.take_ready(free);
                    if !batch.is_empty() {
                        // ORDERING: SeqCst, as every access to
                        // `in_flight` (see `Shared::attempt_ended`).
                        shared.in_flight.fetch_add(batch.len(), SeqCst);
                        break batch;
                    }
                }
                // Nothing ready (or no room): wait for a change, or for the
                // next backoff to end.
                s = match s.next_due() {
                    None => shared.changed.wait(s).unwrap_or_else(|e| e.into_inner()),
                    Some(due) => {
                        let wait = Duration::from_millis(due.saturating_sub(now_ms()).max(1));
                        shared
                            .changed
                            .wait_timeout(s, wait)
                            .unwrap_or_else(|e| e.into_inner())
                            .0
                    }
                };
                // ORDERING: SeqCst, as `starved` above.
                shared.starved.store(false, SeqCst);
            }
        };
        let ids = batch.iter().map(|t| t.id).collect();
        let claimed = match shared.call(|reply| Op::Claim { ids, reply }) {
            Ok(claimed) => claimed,
            Err(_) => {
                // The queue is broken or stopped: these jobs stay pending
                // in the file.
                shared.slots_freed(batch.len());
                return;
            }
        };
        let mut attempts = Vec::with_capacity(batch.len());
        let mut skipped = false;
        for (take, claimed) in batch.into_iter().zip(claimed) {
            let Some(claimed) = claimed else {
                // Cancelled between our take and the claim.
                shared.attempt_ended();
                skipped = true;
                continue;
            };
            attempts.push(Attempt {
                shared: Arc::clone(&shared),
                id: take.id,
                name: take.name,
                payload: claimed.payload,
                attempt: claimed.attempt,
                handler: take.handler,
                cancel: claimed.cancel,
                reported: false,
            });
        }
        if !launch(&shared, &dispatcher, attempts, skipped) {
            return;
        }
    }
}

/// For a store shared between processes (PostgreSQL): asks the store for
/// up to the free in-flight slots' worth of due jobs of the names this
/// process handles; when none is due, waits for a wake (a notification
/// from the server, a local commit, a new handler), the next backoff's
/// end, or the poll interval, whichever comes first.
fn feed_shared(shared: Arc<Shared>, dispatcher: Dispatcher) {
    let mut window = Window::new(&shared, dispatcher.workers());
    let mut retry = RETRY_MIN;
    loop {
        let (names, free, wakes) = {
            let mut s = lock(&shared.sched);
            loop {
                if s.stopping || s.broken.is_some() {
                    return;
                }
                // ORDERING: SeqCst, as in `feed_local`.
                shared.starved.store(true, SeqCst);
                let limit = window.limit(&shared);
                let free = limit
                    .saturating_sub(shared.in_flight.load(SeqCst))
                    .min(SHARED_CLAIM_MAX);
                let names = s.handled_names();
                if free > 0 && !names.is_empty() {
                    // ORDERING: SeqCst, as in `feed_local`.
                    shared.starved.store(false, SeqCst);
                    shared.in_flight.fetch_add(free, SeqCst);
                    break (names, free, s.wakes);
                }
                s = shared.changed.wait(s).unwrap_or_else(|e| e.into_inner());
                // ORDERING: SeqCst, as above.
                shared.starved.store(false, SeqCst);
            }
        };
        let batch = match shared.call(|reply| Op::ClaimNext {
            names,
            max: free,
            reply,
        }) {
            Ok(batch) => {
                retry = RETRY_MIN;
                batch
            }
            Err(e) if e.is_transient() => {
                shared.slots_freed(free);
                wait_for_wake(&shared, wakes, Some(retry));
                retry = (retry * 2).min(RETRY_MAX);
                continue;
            }
            Err(_) => {
                // Broken or stopped: nothing was claimed.
                shared.slots_freed(free);
                return;
            }
        };
        let got = batch.jobs.len();
        if got < free {
            shared.slots_freed(free - got);
        }
        let mut attempts = Vec::with_capacity(got);
        let mut skipped = false;
        for picked in batch.jobs {
            let handler = lock(&shared.sched).handler(&picked.name);
            let Some((name, handler)) = handler else {
                // Handlers are never unregistered, so this does not
                // happen; give the job back uncounted if it does.
                let _ = shared.send(Op::Finish {
                    id: picked.id,
                    attempt: picked.attempt,
                    outcome: Outcome::Released,
                });
                shared.attempt_ended();
                skipped = true;
                continue;
            };
            attempts.push(Attempt {
                shared: Arc::clone(&shared),
                id: picked.id,
                name,
                payload: picked.payload,
                attempt: picked.attempt,
                handler,
                cancel: picked.cancel,
                reported: false,
            });
        }
        if !launch(&shared, &dispatcher, attempts, skipped) {
            return;
        }
        if got == 0 {
            // Due jobs that other processes' claims held locked are
            // worth another look soon; a backoff's end, at its end.
            let until_due = batch
                .next_due
                .map(|due| Duration::from_millis(due.saturating_sub(now_ms())).max(LOCKED_RETRY));
            let wait = until_due.map_or(shared.poll, |d| d.min(shared.poll));
            wait_for_wake(&shared, wakes, Some(wait));
        }
    }
}

/// Waits until `Sched::wakes` moves past `seen`, the queue stops, or
/// `limit` passes.
fn wait_for_wake(shared: &Shared, seen: u64, limit: Option<Duration>) {
    let deadline = limit.map(|l| Instant::now() + l);
    let mut s = lock(&shared.sched);
    while s.wakes == seen && !s.stopping && s.broken.is_none() {
        s = match deadline {
            None => shared.changed.wait(s).unwrap_or_else(|e| e.into_inner()),
            Some(deadline) => {
                let now = Instant::now();
                if now >= deadline {
                    return;
                }
                shared
                    .changed
                    .wait_timeout(s, deadline - now)
                    .unwrap_or_else(|e| e.into_inner())
                    .0
            }
        };
    }
}

/// Hands claimed attempts to the dispatcher and records their run ids;
/// `false` when the feeder must exit (the dispatcher refused, or the
/// queue is stopping).
fn launch(
    shared: &Arc<Shared>,
    dispatcher: &Dispatcher,
    attempts: Vec<Attempt>,
    skipped: bool,
) -> bool {
    let mut runs = Vec::with_capacity(attempts.len());
    let mut refused = false;
    let mut stopping = false;
    for attempt in attempts {
        let id = attempt.id;
        if stopping {
            // Dropping it releases its job.
            drop(attempt);
            continue;
        }
        match hand_over(shared, dispatcher, attempt) {
            Handed::Run(run) => runs.push((id, run)),
            Handed::Refused => refused = true,
            Handed::Stopping => stopping = true,
            Handed::Cancelled => {}
        }
    }
    let mut cancel = Vec::new();
    {
        let mut s = lock(&shared.sched);
        for (id, run) in runs {
            if let Some(job) = s.running.get_mut(&id) {
                job.run_id = Some(run);
                // A cancel that came before we knew the run id.
                // ORDERING: SeqCst, as the committer's store.
                if job.cancel.load(SeqCst) {
                    cancel.push(run);
                }
            }
        }
        if refused {
            s.dispatcher_closed = true;
        }
        if !(refused || stopping) {
            // The feeder claims next, or waits for a slot: starved. Said
            // before the lock goes, so that the committer never sees it
            // between claims with nothing in flight and nothing starved
            // (see "Held outcomes" in `commit`).
            // ORDERING: SeqCst, as every access to `starved`.
            shared.starved.store(true, SeqCst);
        }
    }
    // A freed slot may be what `wait_idle` waits for (we took the lock
    // after freeing it, so no waiter can miss this).
    if skipped || refused {
        shared.changed.notify_all();
    }
    for run in cancel {
        dispatcher.cancel(run);
    }
    // Stopping: the runs handed over are recorded above, where `stop`
    // looks for the queued ones to cancel.
    !(refused || stopping)
}

/// How [`hand_over`] ended. Unless it is `Run`, the attempt was dropped,
/// which reported it: `Released`, or `Cancelled` if `Queue::cancel` asked.
enum Handed {
    /// Queued on the dispatcher as this run.
    Run(crate::JobId),
    /// The dispatcher is shut down or halted.
    Refused,
    /// The queue is stopping (or broken) while the dispatcher's queue was
    /// full.
    Stopping,
    /// `Queue::cancel` asked while the dispatcher's queue was full.
    Cancelled,
}

/// How long the feeder waits before it offers an attempt again to a
/// dispatcher whose bounded queue is full. It waits on `changed`, where
/// `stop` wakes it, not in a blocking `spawn`, which only room or the
/// dispatcher's shutdown ends; the dispatcher has no room signal to wait
/// on beside `changed`, hence the polling. A full queue is that queue's
/// worth of work ahead of the workers, so a refill this late costs
/// throughput only if they finish all of it sooner.
const FULL_RETRY: Duration = Duration::from_millis(1);

/// Queues `attempt` on the dispatcher, waiting out a full bounded queue
/// unless the queue stops or the job is cancelled meanwhile.
fn hand_over(shared: &Shared, dispatcher: &Dispatcher, mut attempt: Attempt) -> Handed {
    loop {
        attempt = match dispatcher.try_spawn(attempt) {
            Ok(handle) => return Handed::Run(handle.id()),
            Err(TrySpawnError::Closed(refused)) => {
                drop(refused);
                return Handed::Refused;
            }
            Err(TrySpawnError::Full(attempt)) => attempt.into_inner(),
        };
        // ORDERING: SeqCst, as the committer's store.
        if attempt.cancel.load(SeqCst) {
            drop(attempt);
            return Handed::Cancelled;
        }
        let s = lock(&shared.sched);
        // Checked under the lock that `stop` sets it under, before the
        // wait: its wake-up cannot come in between.
        if s.stopping || s.broken.is_some() {
            // Not under the lock: the drop reports, and that may take it.
            drop(s);
            drop(attempt);
            return Handed::Stopping;
        }
        drop(
            shared
                .changed
                .wait_timeout(s, FULL_RETRY)
                .unwrap_or_else(|e| e.into_inner()),
        );
    }
}
