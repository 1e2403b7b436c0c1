//! A durable job queue that survives a crash and loses nothing
//! (Cargo feature `persist`).
//!
//! Jobs are a handler **name** and a **payload** of bytes, stored in one
//! file (a [redb](https://docs.rs/redb) database) before
//! [`Queue::enqueue`] returns, so that a later run of the program can
//! process them. [`Queue::start`] runs them on a [`Dispatcher`](crate::Dispatcher) through the
//! handler [registered](Queue::register) for their name; each attempt is an
//! ordinary dispatcher job with its own status record.
//!
//! ```
//! use workyard::Dispatcher;
//! use workyard::persist::{Backoff, StoredJobState, Queue};
//! use std::time::Duration;
//!
//! let dir = std::env::temp_dir().join(format!("workyard-doc-persist-{}", std::process::id()));
//! std::fs::create_dir_all(&dir)?;
//! # let _ = std::fs::remove_file(dir.join("jobs.redb"));
//! let queue = Queue::builder()
//!     .max_attempts(3)
//!     .backoff(Backoff::new(Duration::from_millis(1)))
//!     .open(dir.join("jobs.redb"))?;
//!
//! queue.register("square", |job| -> Result<(), String> {
//!     let n: u64 = std::str::from_utf8(job.payload()).unwrap().parse().map_err(|_| "not a number")?;
//!     println!("{} squared is {}", n, n * n);
//!     Ok(())
//! })?;
//! let ok = queue.enqueue("square", b"12")?;      // durable when it returns
//! let bad = queue.enqueue("square", b"twelve")?; // will fail 3 times
//!
//! let pool = Dispatcher::builder().workers(2).build()?;
//! queue.start(&pool)?;
//! queue.wait_idle()?;
//! assert_eq!(queue.status(ok)?.unwrap().state(), StoredJobState::Succeeded);
//! let dead = queue.status(bad)?.unwrap();
//! assert_eq!((dead.state(), dead.attempts()), (StoredJobState::Dead, 3));
//! assert_eq!(dead.last_error(), Some("not a number"));
//! queue.stop()?;
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Guarantees
//!
//! * **Durable on return.** `enqueue` and `enqueue_batch` return only
//!   once their jobs are committed and fsynced. Concurrent calls, claims
//!   and completions share one transaction and one `fsync` (group commit).
//! * **At least once.** Every stored job runs until it succeeds, goes
//!   dead, or is cancelled. A job claimed when the process died is found
//!   `Running` on the next open and goes back to pending with the
//!   interrupted attempt counted (or dead, if it was its last): it may
//!   thus run twice, and only such jobs may.
//! * **Failures retry.** A handler's `Err` or panic is a failed attempt,
//!   retried after an exponential [`Backoff`] with jitter; after
//!   [`max_attempts`](QueueBuilder::max_attempts) the job is `Dead`: kept,
//!   listable, and re-queueable with [`Queue::requeue`]. A panic never
//!   takes the process down.
//! * **Nothing waits forever unseen.** A job whose name has no handler
//!   waits (`Waiting` in [`Queue::status`], counted in
//!   [`QueueStats::waiting`]) until one is registered.
//! * **Cancel and halt.** [`Queue::cancel`] cancels a stored job for
//!   good. Cancelling or halting an attempt on the dispatcher before it
//!   ran, or a [`Queue::stop`] that finds it not started, puts the job back
//!   to pending, not counted as an attempt.
//! * **Bounded file.** Succeeded and cancelled jobs are removed after the
//!   [`retention`](QueueBuilder::retention).
//! * **One owner.** The file is locked while open: a second queue, in
//!   this process or another, gets [`PersistError::AlreadyOpen`]. A
//!   truncated or damaged file gets [`PersistError::Corrupted`], never a
//!   panic.
//!
//! ## On PostgreSQL (feature `postgres`)
//!
//! [`QueueBuilder::connect`] opens the same queue in a PostgreSQL
//! database instead of a file, with the same API, states, retries and
//! guarantees, shared by any number of processes on any number of
//! machines: each claims due jobs of the names it has handlers for, in
//! batches (`FOR UPDATE SKIP LOCKED`), holds them under a lease that it
//! renews by heartbeat, and writes their outcomes in batches. A process
//! that dies or stalls loses its leases: its jobs become claimable by the
//! others with the interrupted attempt counted (the at-least-once rule
//! above, with "the next open" read as "the lease running out"), and the
//! late outcomes of a stalled one are refused ([`QueueStats::fenced`]).
//! Idle queues are woken by `LISTEN`/`NOTIFY`, with polling as fallback;
//! a lost connection is retried with backoff
//! ([`PersistError::Connection`], [`QueueStats::reconnects`]). The crate
//! creates and migrates its tables in a schema of your choice.
//!
//! The design (file layout, the state machine of a stored job, the group
//! commit protocol, recovery, and the PostgreSQL tables, claim, lease and
//! fence protocol) is described in `docs/persist.md`.

// Lowest first: each module uses only those above it.
mod commit;
mod error;
mod file;
mod op;
#[cfg(feature = "postgres")]
mod pg;
mod queue;
mod record;
mod retry;
mod run;
mod sched;
mod shared;
mod store;

use std::fmt;

pub use error::PersistError;
pub use queue::{Queue, QueueBuilder};
pub use record::{JobRecord, StoredJobState};
pub use retry::Backoff;

/// The longest job name, in bytes.
pub const MAX_NAME_LEN: usize = 1024;

/// Identifies a stored job for as long as it is in the file, across runs
/// of the program. Ids are handed out in enqueue order, starting at 1, and
/// never reused. Named apart from the dispatcher's [`crate::JobId`]
/// (`job#1`), which each of a stored job's attempts also gets while it runs
/// (see [`JobRecord::run_id`]); this one prints as `stored-job#7`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StoredJobId(u64);

impl StoredJobId {
    /// The id as a number.
    pub fn as_u64(self) -> u64 {
        self.0
    }

    /// The id with number `n`, e.g. read back from a log.
    ///
    /// ```
    /// use workyard::persist::StoredJobId;
    /// assert_eq!(StoredJobId::from_u64(7).as_u64(), 7);
    /// assert_eq!(StoredJobId::from_u64(7).to_string(), "stored-job#7");
    /// ```
    pub fn from_u64(n: u64) -> StoredJobId {
        StoredJobId(n)
    }
}

impl fmt::Debug for StoredJobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "persist::StoredJobId({})", self.0)
    }
}

impl fmt::Display for StoredJobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "stored-job#{}", self.0)
    }
}

/// What a handler gets: the job's id, name, payload and attempt number.
#[derive(Debug, Clone, Copy)]
pub struct Delivery<'a> {
    pub(crate) id: StoredJobId,
    pub(crate) name: &'a str,
    pub(crate) payload: &'a [u8],
    pub(crate) attempt: u32,
}

impl<'a> Delivery<'a> {
    /// The stored job's id: the same on every attempt, so a handler can use
    /// it to make its effect idempotent.
    pub fn id(&self) -> StoredJobId {
        self.id
    }

    /// The name it was enqueued with.
    pub fn name(&self) -> &'a str {
        self.name
    }

    /// The bytes it was enqueued with.
    pub fn payload(&self) -> &'a [u8] {
        self.payload
    }

    /// Which attempt this is, from 1. An attempt interrupted by a crash
    /// counts, so after a crash this can be 2 for a job never seen failing.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }
}

/// Counts from [`Queue::stats`]: stored jobs by state, and what the queue
/// did since it was opened.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct QueueStats {
    /// Pending jobs with a handler: ready, or waiting out a backoff.
    pub pending: u64,
    /// Of those, the ones waiting out a retry backoff.
    pub retrying: u64,
    /// Pending jobs whose name has no registered handler.
    pub waiting: u64,
    /// The names those jobs wait for, sorted.
    pub waiting_names: Vec<String>,
    /// Claimed jobs, out on the dispatcher.
    pub running: u64,
    /// Succeeded jobs still stored (within the retention).
    pub succeeded: u64,
    /// Dead jobs.
    pub dead: u64,
    /// Cancelled jobs still stored (within the retention).
    pub cancelled: u64,
    /// Jobs enqueued since open.
    pub enqueued: u64,
    /// Jobs that succeeded since open.
    pub completed: u64,
    /// Failed attempts (errors and panics) since open.
    pub failed_attempts: u64,
    /// Jobs found running at open, i.e. interrupted by a crash.
    pub recovered: u64,
    /// Finished jobs removed after their retention since open.
    pub pruned: u64,
    /// Write transactions committed since open (each is durable).
    pub commits: u64,
    /// Claims since open that handed out at least one job (each is part
    /// of one of the `commits`; a claim asks for up to 256 jobs on
    /// PostgreSQL). `commits` per `claims` shows how often outcomes were
    /// committed apart from a claim.
    pub claims: u64,
    /// `fsync` calls on the file since open (opening included). For a
    /// PostgreSQL queue: durable commits (each flushes the server's WAL).
    pub fsyncs: u64,
    /// Outcomes refused since open because the job's lease had been lost
    /// (PostgreSQL: another process took the job over after this one
    /// stalled past its lease). Such an attempt's result is not applied.
    pub fenced: u64,
    /// Heartbeats that found one of this process's jobs taken over.
    pub leases_lost: u64,
    /// Failed connections to the database since open (PostgreSQL).
    pub connection_errors: u64,
    /// Successful reconnections since open (PostgreSQL).
    pub reconnects: u64,
    /// The last connection failure, if any.
    pub last_connection_error: Option<String>,
}
