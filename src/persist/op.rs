//! The messages between the queue's threads and the committer: an [`Op`]
//! is one change to the store, answered through a [`Reply`] once the
//! transaction that carried it is durable.

use super::error::PersistError;
use std::sync::atomic::AtomicBool;
use std::sync::{mpsc, Arc};

/// Where an op's answer goes.
pub(crate) type Reply<T> = mpsc::Sender<Result<T, PersistError>>;

/// How an attempt ended, as its `Attempt` (in `run`) reports it.
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

/// A job handed out by a claim of known ids (the file store).
pub(crate) struct Claimed {
    pub(crate) payload: Vec<u8>,
    pub(crate) attempt: u32,
    pub(crate) cancel: Arc<AtomicBool>,
}

/// A job handed out by a claim by name (the PostgreSQL store), where the
/// store picks the jobs.
pub(crate) struct Picked {
    pub(crate) id: u64,
    pub(crate) name: String,
    pub(crate) payload: Vec<u8>,
    pub(crate) attempt: u32,
    pub(crate) cancel: Arc<AtomicBool>,
}

/// What a claim by name found.
pub(crate) struct PickedBatch {
    pub(crate) jobs: Vec<Picked>,
    /// When no job was claimed: when the next pending one is due (Unix
    /// ms, the store's clock), if any; at or before now when due jobs
    /// exist but other processes' claims held them locked.
    pub(crate) next_due: Option<u64>,
}

/// A change to the store.
// Some variants and fields are only used by the PostgreSQL store.
#[cfg_attr(not(feature = "postgres"), allow(dead_code))]
pub(crate) enum Op {
    /// Store new pending jobs; answers the first of their consecutive ids.
    Enqueue {
        jobs: Vec<(String, Vec<u8>)>,
        reply: Reply<u64>,
    },
    /// Pending → running for each id (in order; `None` where the job is
    /// no longer pending). Only for stores with a local schedule.
    Claim {
        ids: Vec<u64>,
        reply: Reply<Vec<Option<Claimed>>>,
    },
    /// Pending → running for up to `max` due jobs of these names, picked
    /// by the store. Only for stores shared between processes.
    ClaimNext {
        names: Vec<String>,
        max: usize,
        reply: Reply<PickedBatch>,
    },
    /// Record how attempt `attempt` (the fencing token) ended. Nobody
    /// waits for it.
    Finish {
        id: u64,
        attempt: u32,
        outcome: Outcome,
    },
    /// Cancel a pending, dead or running job; `false` if it was none.
    Cancel { id: u64, reply: Reply<bool> },
    /// Dead or cancelled → pending; `false` if it was neither.
    Requeue { id: u64, reply: Reply<bool> },
    /// Remove every finished job past the retention now; answers how many.
    Prune { reply: Reply<u64> },
    /// Commit everything before it, close the store and exit.
    Shutdown { reply: Reply<()> },
}

impl Op {
    /// Whether someone blocks until this op is answered.
    pub(crate) fn has_caller(&self) -> bool {
        !matches!(self, Op::Finish { .. })
    }

    /// How many jobs it carries, to bound a transaction.
    pub(crate) fn weight(&self) -> usize {
        match self {
            Op::Enqueue { jobs, .. } => jobs.len(),
            Op::Claim { ids, .. } => ids.len(),
            Op::ClaimNext { max, .. } => *max,
            _ => 1,
        }
    }

    /// The answer it expects, to fail it without applying it.
    pub(crate) fn into_answer(self) -> Option<Answer> {
        match self {
            Op::Enqueue { reply, .. } => Some(Answer::First(reply, 0)),
            Op::Shutdown { reply } => Some(Answer::Unit(reply)),
            Op::Claim { reply, .. } => Some(Answer::Claim(reply, Vec::new())),
            Op::ClaimNext { reply, .. } => Some(Answer::Picked(
                reply,
                PickedBatch {
                    jobs: Vec::new(),
                    next_due: None,
                },
            )),
            Op::Cancel { reply, .. } | Op::Requeue { reply, .. } => {
                Some(Answer::Bool(reply, false))
            }
            Op::Prune { reply } => Some(Answer::Count(reply, 0)),
            Op::Finish { .. } => None,
        }
    }
}

/// An answer, held back until the commit is durable.
pub(crate) enum Answer {
    Unit(Reply<()>),
    First(Reply<u64>, u64),
    Claim(Reply<Vec<Option<Claimed>>>, Vec<Option<Claimed>>),
    Picked(Reply<PickedBatch>, PickedBatch),
    Bool(Reply<bool>, bool),
    Count(Reply<u64>, u64),
}

impl Answer {
    // A caller that went away does not mind: send errors are ignored.
    pub(crate) fn send(self) {
        match self {
            Answer::Unit(r) => drop(r.send(Ok(()))),
            Answer::First(r, v) => drop(r.send(Ok(v))),
            Answer::Claim(r, v) => drop(r.send(Ok(v))),
            Answer::Picked(r, v) => drop(r.send(Ok(v))),
            Answer::Bool(r, v) => drop(r.send(Ok(v))),
            Answer::Count(r, v) => drop(r.send(Ok(v))),
        }
    }

    pub(crate) fn fail(self, e: &PersistError) {
        let e = || e.duplicate();
        match self {
            Answer::Unit(r) => drop(r.send(Err(e()))),
            Answer::First(r, _) => drop(r.send(Err(e()))),
            Answer::Claim(r, _) => drop(r.send(Err(e()))),
            Answer::Picked(r, _) => drop(r.send(Err(e()))),
            Answer::Bool(r, _) => drop(r.send(Err(e()))),
            Answer::Count(r, _) => drop(r.send(Err(e()))),
        }
    }
}

/// Sets the value of the last answer, a `Bool` pushed before the work
/// that could fail (so that a failure still reaches its caller).
pub(crate) fn set_last(answers: &mut [Answer], value: bool) {
    if let Some(Answer::Bool(_, v)) = answers.last_mut() {
        *v = value;
    }
}
