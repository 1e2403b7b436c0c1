//! [`Shared`]: the state the queue's threads share (the caller's, the
//! committer, the feeder, a store's helper threads), and the marker of a
//! thread running one of the queue's handlers.

use super::error::PersistError;
use super::op::{Op, Reply};
use super::sched::Sched;
use super::store::{Config, Reader};
use crate::signal::lock;
use std::cell::Cell;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed, Ordering::SeqCst};
use std::sync::{mpsc, Arc, Condvar, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

thread_local! {
    /// How many handlers this thread is inside (a handler may run a
    /// nested job through `JobHandle::join`).
    static IN_HANDLER: Cell<usize> = const { Cell::new(0) };
}

/// `true` on a thread that is running one of a queue's handlers.
pub(crate) fn in_handler() -> bool {
    IN_HANDLER.with(Cell::get) > 0
}

/// Marks the current thread as inside a handler while it lives.
pub(crate) struct HandlerScope;

impl HandlerScope {
    pub(crate) fn enter() -> HandlerScope {
        IN_HANDLER.with(|c| c.set(c.get() + 1));
        HandlerScope
    }
}

impl Drop for HandlerScope {
    fn drop(&mut self) {
        IN_HANDLER.with(|c| c.set(c.get() - 1));
    }
}

/// The committer thread's name; `stop` joins it last.
pub(crate) const COMMITTER_NAME: &str = "workyard-persist-commit";

/// What the queue's threads share.
pub(crate) struct Shared {
    /// The file, or for PostgreSQL a description of the database.
    pub(crate) path: PathBuf,
    pub(crate) config: Config,
    pub(crate) ops: mpsc::Sender<Op>,
    pub(crate) sched: Mutex<Sched>,
    /// Signalled (under `sched`) whenever the schedule changes.
    pub(crate) changed: Condvar,
    /// For reads (`status`, `list`); `None` once stopped.
    pub(crate) reader: RwLock<Option<Arc<dyn Reader>>>,
    /// `true` when the schedule in memory is the whole truth (one process
    /// owns the store: the file); `false` when other processes share the
    /// store and the store itself picks the jobs to claim (PostgreSQL).
    pub(crate) local: bool,
    /// For a shared store: how long an idle feeder waits for a
    /// notification before it polls the store anyway.
    pub(crate) poll: Duration,
    /// Attempts reserved by the feeder and not yet ended.
    pub(crate) in_flight: AtomicUsize,
    /// The feeder waits for an in-flight slot.
    pub(crate) starved: AtomicBool,
    /// Mirrors `Sched::stopping`, for attempts to read without the lock.
    pub(crate) stopping: AtomicBool,
    /// Attempts ended since open, for the feeder's rate estimate.
    pub(crate) ended: AtomicU64,
    /// A moving average of how long a commit takes, in nanoseconds.
    pub(crate) commit_nanos: AtomicU64,
    /// `fsync`s done on the file (or durable commits) since open.
    pub(crate) syncs: Arc<AtomicU64>,
    pub(crate) threads: Mutex<Vec<JoinHandle<()>>>,
    /// Serialises `stop`.
    pub(crate) stop_lock: Mutex<()>,
}

impl Shared {
    /// Sends an op to the committer.
    pub(crate) fn send(&self, op: Op) -> Result<(), PersistError> {
        self.ops.send(op).map_err(|_| self.closed())
    }

    /// Sends an op and waits for its answer.
    pub(crate) fn call<T>(&self, op: impl FnOnce(Reply<T>) -> Op) -> Result<T, PersistError> {
        let (tx, rx) = mpsc::channel();
        self.send(op(tx))?;
        rx.recv().map_err(|_| self.closed())?
    }

    /// Why the committer no longer answers.
    pub(crate) fn closed(&self) -> PersistError {
        match &lock(&self.sched).broken {
            Some(reason) => PersistError::Broken {
                reason: reason.clone(),
            },
            None => PersistError::Stopped,
        }
    }

    pub(crate) fn is_stopping(&self) -> bool {
        // ORDERING: SeqCst: set before `stop` looks for queued attempts to
        // cancel, so an attempt either is cancelled there or sees it here.
        self.stopping.load(SeqCst)
    }

    /// An attempt ended (or a reservation was given back).
    pub(crate) fn attempt_ended(&self) {
        self.slots_freed(1);
        // ORDERING: Relaxed: a statistic.
        self.ended.fetch_add(1, Relaxed);
    }

    /// `n` in-flight reservations given back unused.
    pub(crate) fn slots_freed(&self, n: usize) {
        // ORDERING: SeqCst, paired with the feeder's store of `starved`
        // then load of `in_flight` (see `run::feed`).
        self.in_flight.fetch_sub(n, SeqCst);
        if self.starved.load(SeqCst) {
            drop(lock(&self.sched));
            self.changed.notify_all();
        }
    }

    /// Wakes a feeder waiting for claimable work (see `Sched::wakes`).
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    pub(crate) fn wake(&self) {
        lock(&self.sched).wakes += 1;
        self.changed.notify_all();
    }

    /// Folds one commit's duration into the moving average (weight 1/8).
    pub(crate) fn note_commit(&self, took: Duration) {
        let took = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        // ORDERING: Relaxed: only the committer writes it; a statistic.
        let avg = self.commit_nanos.load(Relaxed);
        let avg = if avg == 0 {
            took
        } else {
            avg - avg / 8 + took / 8
        };
        self.commit_nanos.store(avg, Relaxed);
    }

    /// The reader, or `Stopped` once the queue is stopped.
    pub(crate) fn reader(&self) -> Result<Arc<dyn Reader>, PersistError> {
        let reader = self.reader.read().unwrap_or_else(|e| e.into_inner());
        reader.clone().ok_or(PersistError::Stopped)
    }

    /// Records a connection failure (`None`: a reconnect).
    pub(crate) fn note_connection(&self, error: Option<String>) {
        let mut s = lock(&self.sched);
        match error {
            Some(e) => {
                s.connection_errors += 1;
                s.last_connection_error = Some(e);
            }
            None => s.reconnects += 1,
        }
    }
}
