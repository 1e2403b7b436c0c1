//! The seam between the queue and where its jobs are kept: [`Store`],
//! which applies a batch of [`Op`]s in one durable transaction, and
//! [`Reader`], which answers `status`, `payload`, `list` and the counts.
//!
//! Two stores implement them: `file` (one redb file, owned by one
//! process, with the whole schedule in memory) and `pg` (PostgreSQL,
//! shared by many processes, which picks the jobs to claim itself). What
//! sits above them is shared: the committer's group commit (`commit`),
//! the feeder and the attempts (`run`), the retry decision below, and the
//! public [`Queue`](super::Queue).
//!
//! A store reports what a committed batch changed as [`Effect`]s, which
//! the committer applies to the in-memory schedule only once the
//! transaction is durable, and the answers to the ops' callers, sent
//! after that.

use super::error::PersistError;
use super::op::{Answer, Op, Reply};
use super::record::{Record, StoredJobState};
use super::retry::Backoff;
use std::fmt;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

/// Validated options that every store uses.
pub(crate) struct Config {
    pub(crate) max_attempts: u32,
    pub(crate) backoff: Backoff,
    pub(crate) retention: Duration,
    pub(crate) max_in_flight: usize,
}

/// What to do with a job whose attempt `attempts` failed.
pub(crate) enum AfterFailure {
    /// Pending again, not before `delay_ms` from now (0: at once).
    Retry { delay_ms: u64 },
    /// Every allowed attempt is used up.
    Dead,
}

/// The retry rule, the same on every store: dead after `max_attempts`
/// attempts, else the backoff's delay (with `jitter`, a number in [0, 1)).
pub(crate) fn after_failure(config: &Config, attempts: u32, jitter: f64) -> AfterFailure {
    if attempts >= config.max_attempts {
        return AfterFailure::Dead;
    }
    let delay = config.backoff.delay(attempts, jitter);
    AfterFailure::Retry {
        delay_ms: u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
    }
}

/// A change to the in-memory schedule, applied once the commit is durable.
// Some variants and fields are only used by the PostgreSQL store.
#[cfg_attr(not(feature = "postgres"), allow(dead_code))]
pub(crate) enum Effect {
    Enqueued {
        id: u64,
        name: String,
    },
    /// Jobs stored in a shared store (they are not scheduled in memory).
    Stored {
        n: u64,
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
    /// A failed attempt in a shared store (retried or dead there).
    Failed {
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
        was: StoredJobState,
    },
    Pruned {
        succeeded: u64,
        cancelled: u64,
    },
    /// Jobs whose attempt was interrupted (by a crash, or a lease that
    /// ran out) went back to pending or dead.
    Recovered {
        n: u64,
    },
    /// A late outcome was refused: the job's lease had been taken over.
    Fenced {
        id: u64,
    },
    /// A heartbeat found this job's lease taken over.
    LeaseLost {
        id: u64,
    },
    /// Work may have become claimable (shared stores): wake the feeder.
    Ready,
    /// The store reconnected to its server.
    Reconnected,
    /// An attempt's outcome arrived for a job that was not running in the
    /// store; only forget it in memory.
    Stray {
        id: u64,
    },
}

/// What a [`Store::write`] produced.
#[derive(Default)]
pub(crate) struct Written {
    pub(crate) effects: Vec<Effect>,
    pub(crate) answers: Vec<Answer>,
    pub(crate) shutdown: Option<Reply<()>>,
}

/// Where the jobs are kept. Only the committer thread calls it.
pub(crate) trait Store: Send {
    /// Applies `batch` in one transaction and makes it durable. Pushes the
    /// answers before the work that could fail (so that a failure reaches
    /// every caller), and the effects. `Ok(true)` if it committed
    /// something. On an error nothing of the batch is applied, but a
    /// store may keep outcomes (`Op::Finish`) to write with a later
    /// batch, if the error is transient.
    fn write(
        &mut self,
        config: &Config,
        batch: Vec<Op>,
        out: &mut Written,
    ) -> Result<bool, PersistError>;

    /// The longest the committer waits for an op before it calls `write`
    /// with an empty batch, for the store's periodic work (pruning,
    /// heartbeats, reconnecting).
    fn tick(&self, config: &Config) -> Duration;

    /// How long an outcome that nobody waits for may be held back by the
    /// committer, to be written in the transaction of the next op that
    /// has a caller (see `commit`'s "Held outcomes"). Zero: every batch
    /// is written as it comes.
    fn outcome_hold(&self) -> Duration {
        Duration::ZERO
    }

    /// Closes the store after the last write.
    fn close(&mut self);
}

/// Counts of stored jobs by state, for a shared store's `stats`.
#[derive(Default, Clone)]
pub(crate) struct Counts {
    pub(crate) pending: u64,
    pub(crate) retrying: u64,
    pub(crate) waiting: u64,
    pub(crate) waiting_names: Vec<String>,
    pub(crate) running: u64,
    pub(crate) succeeded: u64,
    pub(crate) dead: u64,
    pub(crate) cancelled: u64,
}

/// Reads, from any thread.
pub(crate) trait Reader: Send + Sync {
    /// The stored job and its payload's length.
    fn record(&self, id: u64) -> Result<Option<(Record, usize)>, PersistError>;

    /// The stored job's payload.
    fn payload(&self, id: u64) -> Result<Option<Vec<u8>>, PersistError>;

    /// Up to `limit` ids in `state` (`handled`: the names with a handler,
    /// to tell pending from waiting); `None` where the in-memory schedule
    /// answers instead.
    fn list(
        &self,
        state: StoredJobState,
        handled: &[String],
        limit: usize,
    ) -> Result<Option<Vec<u64>>, PersistError>;

    /// For a shared store, the counts by state; `None` for the file, whose
    /// schedule in memory has them.
    fn counts(&self, handled: &[String]) -> Option<Result<Counts, PersistError>>;

    /// For a shared store: whether any job of a `handled` name is pending
    /// or running anywhere (for `wait_idle`); `None` for the file.
    fn busy(&self, handled: &[String]) -> Option<Result<bool, PersistError>>;

    /// Closes it; later reads fail with `Stopped`.
    fn close(&self);
}

/// A storage failure while running, as [`PersistError::Storage`].
pub(crate) fn storage(e: impl fmt::Display) -> PersistError {
    PersistError::Storage {
        reason: e.to_string(),
    }
}

/// Runs `f`, turning a panic inside the storage engine (which may happen
/// on a damaged file) into an error instead of unwinding into the caller.
pub(crate) fn guard<T>(
    f: impl FnOnce() -> Result<T, PersistError>,
    on_panic: impl FnOnce(String) -> PersistError,
) -> Result<T, PersistError> {
    match panic::catch_unwind(AssertUnwindSafe(f)) {
        Ok(result) => result,
        Err(payload) => {
            let message = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "the storage engine panicked".to_owned());
            Err(on_panic(message))
        }
    }
}
