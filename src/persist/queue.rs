//! [`Queue`] and [`QueueBuilder`]: the public face of the module, and
//! [`Shared`], the state its threads share.

use super::commit::Committer;
use super::error::PersistError;
use super::file::{self, FileReader, FileStore, OpenOptions};
use super::op::Op;
use super::record::{now_ms, JobRecord, StoredJobState};
use super::retry::Backoff;
use super::run;
use super::sched::{HandlerFn, Sched};
use super::shared::{in_handler, Shared, COMMITTER_NAME};
use super::store::{storage, Config, Reader, Store};
use super::{Delivery, QueueStats, StoredJobId, MAX_NAME_LEN};
use crate::signal::lock;
use crate::{Dispatcher, JobStatus};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed, Ordering::SeqCst};
use std::sync::{mpsc, Arc, Condvar, Mutex, RwLock};
use std::time::Duration;

/// `Queue::stop`, in numbered steps.
fn stop(shared: &Shared) -> Result<(), PersistError> {
    if in_handler() {
        return Err(PersistError::CalledFromHandler);
    }
    let _one_at_a_time = lock(&shared.stop_lock);
    let dispatcher = {
        let mut s = lock(&shared.sched);
        if s.stopped {
            return Ok(());
        }
        s.stopping = true;
        // ORDERING: SeqCst, see `is_stopping`.
        shared.stopping.store(true, SeqCst);
        s.dispatcher.clone()
    };
    shared.changed.notify_all();
    // 1. The feeder exits; after it, no attempt is spawned.
    let threads: Vec<_> = lock(&shared.threads).drain(..).collect();
    let (committer, feeder): (Vec<_>, Vec<_>) = threads
        .into_iter()
        .partition(|t| t.thread().name() == Some(COMMITTER_NAME));
    for t in feeder {
        let _ = t.join();
    }
    // 2. Attempts still queued on the dispatcher will not run: cancel
    //    them (each one's drop releases its job, uncounted). Attempts
    //    that start anyway see `stopping` and release themselves.
    if let Some(dispatcher) = &dispatcher {
        let runs: Vec<_> = lock(&shared.sched)
            .running
            .values()
            .filter_map(|r| r.run_id)
            .collect();
        for run in runs {
            if dispatcher.status(run) == Some(JobStatus::Queued) {
                dispatcher.cancel(run);
            }
        }
    }
    // 3. Running attempts finish and their outcomes are committed.
    {
        let mut s = lock(&shared.sched);
        // ORDERING: SeqCst as everywhere on `in_flight`; attempts
        // decrement it before sending their outcome, whose commit
        // wakes us under the lock.
        while s.broken.is_none() && !(s.running.is_empty() && shared.in_flight.load(SeqCst) == 0) {
            s = shared.changed.wait(s).unwrap_or_else(|e| e.into_inner());
        }
    }
    // 4. No more reads; the committer commits what is left, closes
    //    the file and exits.
    if let Some(reader) = shared
        .reader
        .write()
        .unwrap_or_else(|e| e.into_inner())
        .take()
    {
        reader.close();
    }
    let result = shared.call(|reply| Op::Shutdown { reply });
    for t in committer {
        let _ = t.join();
    }
    let mut s = lock(&shared.sched);
    s.stopped = true;
    s.dispatcher = None;
    drop(s);
    shared.changed.notify_all();
    match result {
        Err(PersistError::Stopped) | Ok(()) => match shared.closed() {
            PersistError::Stopped => Ok(()),
            broken => Err(broken),
        },
        Err(e) => Err(e),
    }
}

const FEEDER_NAME: &str = "workyard-persist-feed";
/// How often `wait_idle` on a shared store looks again whether other
/// processes' jobs are done (nothing in this process signals that).
const SHARED_IDLE_POLL: Duration = Duration::from_millis(10);

fn check_name(name: &str) -> Result<(), PersistError> {
    let reason = if name.is_empty() {
        "it is empty"
    } else if name.len() > MAX_NAME_LEN {
        "it is longer than MAX_NAME_LEN bytes"
    } else {
        return Ok(());
    };
    Err(PersistError::InvalidName {
        name: super::record::truncate(name.to_owned(), 64),
        reason,
    })
}

/// A durable job queue in one file: jobs are named byte payloads, stored
/// before [`enqueue`](Self::enqueue) returns, run by the handler registered
/// for their name on a [`Dispatcher`], retried with backoff when they fail,
/// and recovered when the process dies mid-run. See the
/// [module docs](super) for the guarantees.
///
/// Clones share one queue. It stops gracefully ([`stop`](Self::stop))
/// when the last clone is dropped; call `stop` yourself to see its error,
/// and beware that a handler holding a clone keeps the queue alive.
///
/// ```
/// use workyard::Dispatcher;
/// use workyard::persist::{StoredJobState, Queue};
///
/// let dir = std::env::temp_dir().join(format!("workyard-doc-queue-{}", std::process::id()));
/// std::fs::create_dir_all(&dir).unwrap();
/// # let _ = std::fs::remove_file(dir.join("jobs.redb"));
/// let queue = Queue::builder().max_attempts(3).open(dir.join("jobs.redb"))?;
/// queue.register("greet", |job| -> Result<(), String> {
///     let who = std::str::from_utf8(job.payload()).map_err(|e| e.to_string())?;
///     println!("hello, {who} (attempt {})", job.attempt());
///     Ok(())
/// })?;
/// let id = queue.enqueue("greet", b"world")?; // on disk now
///
/// let pool = Dispatcher::builder().workers(2).build()?;
/// queue.start(&pool)?;
/// queue.wait_idle()?;
/// assert_eq!(queue.status(id)?.unwrap().state(), StoredJobState::Succeeded);
/// queue.stop()?;
/// # std::fs::remove_dir_all(&dir).unwrap();
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Queue {
    owner: Arc<Owner>,
}

/// Stops the queue when the last `Queue` clone goes.
struct Owner {
    shared: Arc<Shared>,
}

impl Drop for Owner {
    fn drop(&mut self) {
        let _ = stop(&self.shared);
    }
}

impl Queue {
    /// Opens the queue in `path` (creating the file if needed) with the
    /// default options; see [`QueueBuilder`].
    pub fn open(path: impl AsRef<Path>) -> Result<Queue, PersistError> {
        QueueBuilder::new().open(path)
    }

    /// A [`QueueBuilder`] to set options before opening.
    pub fn builder() -> QueueBuilder {
        QueueBuilder::new()
    }

    fn shared(&self) -> &Arc<Shared> {
        &self.owner.shared
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.shared().path
    }

    /// Registers the handler for jobs named `name`, replacing any earlier
    /// one. Stored jobs of that name that were waiting for a handler become
    /// ready.
    ///
    /// A handler is any `Fn(&Delivery) -> Result<(), E>` that is `Send +
    /// Sync + 'static`, with `E: Display`. It runs on the dispatcher's
    /// workers, possibly several calls at once. `Err(e)` or a panic is a
    /// failed attempt: retried after a backoff, up to the maximum attempts,
    /// with `e` (or the panic message) stored as the job's last error.
    /// Delivery is at least once, so make handlers idempotent, e.g. keyed
    /// on [`Delivery::id`].
    ///
    /// Fails with [`PersistError::Stopped`] once [`stop`](Self::stop) has
    /// begun: nothing would call the handler any more.
    pub fn register<F, E>(&self, name: &str, handler: F) -> Result<(), PersistError>
    where
        F: Fn(&Delivery<'_>) -> Result<(), E> + Send + Sync + 'static,
        E: fmt::Display,
    {
        check_name(name)?;
        let handler: Arc<HandlerFn> =
            Arc::new(move |d: &Delivery<'_>| handler(d).map_err(|e| e.to_string()));
        {
            let mut s = lock(&self.shared().sched);
            if s.stopping {
                return Err(PersistError::Stopped);
            }
            s.lane(name).1.handler = Some(handler);
            // A shared store's feeder claims by name: it has a new one.
            s.wakes += 1;
        }
        self.shared().changed.notify_all();
        Ok(())
    }

    /// Stores a job and returns its id once it is durable (fsynced). It
    /// runs when the queue is started and a handler for `name` is
    /// registered.
    ///
    /// Concurrent calls share commits (group commit), so many threads
    /// enqueueing at once cost far fewer `fsync`s than jobs.
    ///
    /// On an error nothing was stored; `name` and `payload` are the
    /// caller's still.
    pub fn enqueue(&self, name: &str, payload: &[u8]) -> Result<StoredJobId, PersistError> {
        self.enqueue_batch([(name, payload)]).map(|ids| ids[0])
    }

    /// Stores many jobs in one transaction, all or none, and returns their
    /// ids (consecutive, in order) once they are durable. The fastest way
    /// to load a queue: one `fsync` for the whole batch.
    ///
    /// ```
    /// # let dir = std::env::temp_dir().join(format!("workyard-doc-batch-{}", std::process::id()));
    /// # std::fs::create_dir_all(&dir).unwrap();
    /// # let _ = std::fs::remove_file(dir.join("jobs.redb"));
    /// let queue = workyard::persist::Queue::open(dir.join("jobs.redb"))?;
    /// let urls = ["a.example", "b.example", "c.example"];
    /// let ids = queue.enqueue_batch(urls.iter().map(|u| ("fetch", u.as_bytes())))?;
    /// assert_eq!(ids.len(), 3);
    /// assert_eq!(ids[1].as_u64(), ids[0].as_u64() + 1);
    /// assert_eq!(queue.stats().waiting, 3); // nobody handles "fetch" yet
    /// # queue.stop()?;
    /// # std::fs::remove_dir_all(&dir).unwrap();
    /// # Ok::<(), workyard::persist::PersistError>(())
    /// ```
    pub fn enqueue_batch<I, N, P>(&self, jobs: I) -> Result<Vec<StoredJobId>, PersistError>
    where
        I: IntoIterator<Item = (N, P)>,
        N: AsRef<str>,
        P: AsRef<[u8]>,
    {
        let mut batch = Vec::new();
        for (name, payload) in jobs {
            let name = name.as_ref();
            check_name(name)?;
            batch.push((name.to_owned(), payload.as_ref().to_vec()));
        }
        let n = batch.len() as u64;
        let shared = self.shared();
        if n == 0 {
            // Nothing to send, so answer as the committer would.
            let s = lock(&shared.sched);
            if s.stopped || s.broken.is_some() {
                drop(s);
                return Err(shared.closed());
            }
            return Ok(Vec::new());
        }
        let first_id = shared.call(|reply| Op::Enqueue { jobs: batch, reply })?;
        Ok((first_id..first_id + n).map(StoredJobId).collect())
    }

    /// Starts running stored jobs on `dispatcher`: each attempt is one
    /// dispatcher job, with its own status record there (see
    /// [`JobRecord::run_id`]). At most
    /// [`max_in_flight`](QueueBuilder::max_in_flight) attempts are handed
    /// to it at once; while its bounded queue (if any) is full, the queue
    /// waits for room, and [`stop`](Self::stop) ends that wait. A halt or
    /// cancel of an attempt on the dispatcher before it ran puts its job
    /// back to pending, not counted as an attempt.
    pub fn start(&self, dispatcher: &Dispatcher) -> Result<(), PersistError> {
        let shared = self.shared();
        {
            let mut s = lock(&shared.sched);
            if s.stopping {
                return Err(PersistError::Stopped);
            }
            if s.dispatcher.is_some() {
                return Err(PersistError::AlreadyStarted);
            }
            s.dispatcher = Some(dispatcher.clone());
        }
        let feeder_shared = Arc::clone(shared);
        let feeder_dispatcher = dispatcher.clone();
        let thread = std::thread::Builder::new()
            .name(FEEDER_NAME.into())
            .spawn(move || run::feed(feeder_shared, feeder_dispatcher))
            .map_err(storage);
        match thread {
            Ok(t) => {
                lock(&shared.threads).push(t);
                Ok(())
            }
            Err(e) => {
                lock(&shared.sched).dispatcher = None;
                Err(e)
            }
        }
    }

    /// The stored job `id`, or `None` if there is none (never enqueued, or
    /// pruned after its retention).
    pub fn status(&self, id: StoredJobId) -> Result<Option<JobRecord>, PersistError> {
        let shared = self.shared();
        let found = shared.reader()?.record(id.0)?;
        let Some((record, payload_len)) = found else {
            return Ok(None);
        };
        let s = lock(&shared.sched);
        let state = match record.state {
            StoredJobState::Pending if !s.is_handled(&record.name) => StoredJobState::Waiting,
            other => other,
        };
        let run = s.running.get(&id.0).and_then(|r| r.run_id);
        Ok(Some(JobRecord {
            id,
            state,
            record,
            payload_len,
            run,
        }))
    }

    /// The payload of the stored job `id` (e.g. to inspect a dead job).
    pub fn payload(&self, id: StoredJobId) -> Result<Option<Vec<u8>>, PersistError> {
        self.shared().reader()?.payload(id.0)
    }

    /// Up to `limit` ids of jobs in `state`, lowest first. Pending,
    /// waiting, running and dead jobs are listed from memory; succeeded and
    /// cancelled ones by reading the file, oldest finished first.
    ///
    /// ```
    /// # let dir = std::env::temp_dir().join(format!("workyard-doc-list-{}", std::process::id()));
    /// # std::fs::create_dir_all(&dir).unwrap();
    /// # let _ = std::fs::remove_file(dir.join("jobs.redb"));
    /// use workyard::persist::{StoredJobState, Queue};
    /// let queue = Queue::open(dir.join("jobs.redb"))?;
    /// let a = queue.enqueue("mail", b"to: ann")?;
    /// let b = queue.enqueue("mail", b"to: bob")?;
    /// assert_eq!(queue.list(StoredJobState::Waiting, 10)?, [a, b]);
    /// assert!(queue.cancel(a)?);
    /// assert_eq!(queue.list(StoredJobState::Waiting, 10)?, [b]);
    /// assert_eq!(queue.list(StoredJobState::Cancelled, 10)?, [a]);
    /// # queue.stop()?;
    /// # std::fs::remove_dir_all(&dir).unwrap();
    /// # Ok::<(), workyard::persist::PersistError>(())
    /// ```
    pub fn list(
        &self,
        state: StoredJobState,
        limit: usize,
    ) -> Result<Vec<StoredJobId>, PersistError> {
        let shared = self.shared();
        let handled = {
            let s = lock(&shared.sched);
            // The schedule outlives the store; answer as reads of it do.
            if s.stopped {
                return Err(PersistError::Stopped);
            }
            s.handled_names()
        };
        if let Some(ids) = shared.reader()?.list(state, &handled, limit)? {
            return Ok(ids.into_iter().map(StoredJobId).collect());
        }
        let s = lock(&shared.sched);
        let ids: Vec<u64> = match state {
            StoredJobState::Pending => s.pending_ids(true, limit),
            StoredJobState::Waiting => s.pending_ids(false, limit),
            StoredJobState::Running => {
                let mut ids: Vec<u64> = s.running.keys().copied().collect();
                ids.sort_unstable();
                ids.truncate(limit);
                ids
            }
            StoredJobState::Dead => s.dead.iter().copied().take(limit).collect(),
            // The file's reader lists these.
            StoredJobState::Succeeded | StoredJobState::Cancelled => Vec::new(),
        };
        Ok(ids.into_iter().map(StoredJobId).collect())
    }

    /// Counts: jobs by state, and what the queue did since it was opened
    /// (commits and fsyncs included).
    ///
    /// For a PostgreSQL queue the counts by state are of the whole shared
    /// queue (every process's jobs), read from the database; the counts
    /// since open are this process's. If the database cannot be read, the
    /// counts by state are the last ones read.
    pub fn stats(&self) -> QueueStats {
        let shared = self.shared();
        let counts = if shared.local {
            None
        } else {
            let handled = lock(&shared.sched).handled_names();
            let fresh = shared.reader().ok().and_then(|r| r.counts(&handled));
            match fresh {
                Some(Ok(counts)) => {
                    let mut s = lock(&shared.sched);
                    s.counts = Some(counts);
                    s.counts.clone()
                }
                _ => lock(&shared.sched).counts.clone(),
            }
        };
        let s = lock(&shared.sched);
        let retrying = s.delayed_count(true) as u64;
        let mut stats = QueueStats {
            pending: s.ready_count(true) as u64 + retrying,
            retrying,
            waiting: (s.ready_count(false) + s.delayed_count(false)) as u64,
            waiting_names: s.waiting_names(),
            running: s.running.len() as u64,
            succeeded: s.succeeded,
            dead: s.dead.len() as u64,
            cancelled: s.cancelled,
            enqueued: s.enqueued,
            completed: s.completed,
            failed_attempts: s.failed_attempts,
            recovered: s.recovered,
            pruned: s.pruned,
            commits: s.commits,
            claims: s.claims,
            // ORDERING: Relaxed: a counter read for display.
            fsyncs: shared.syncs.load(Relaxed),
            fenced: s.fenced,
            leases_lost: s.leases_lost,
            connection_errors: s.connection_errors,
            reconnects: s.reconnects,
            last_connection_error: s.last_connection_error.clone(),
        };
        if let Some(c) = counts {
            stats.pending = c.pending;
            stats.retrying = c.retrying;
            stats.waiting = c.waiting;
            stats.waiting_names = c.waiting_names;
            stats.running = c.running;
            stats.succeeded = c.succeeded;
            stats.dead = c.dead;
            stats.cancelled = c.cancelled;
        } else if !shared.local {
            stats.pending = 0;
            stats.retrying = 0;
            stats.waiting = 0;
            stats.dead = 0;
            stats.succeeded = 0;
            stats.cancelled = 0;
        }
        stats
    }

    /// Cancels a stored job: a pending, waiting or dead one becomes
    /// `Cancelled` at once (durably); a running one is asked to stop (its
    /// handler sees [`is_cancelled`](crate::is_cancelled)) and is recorded
    /// `Cancelled` when it returns, whatever it returned. Returns `false`
    /// for an unknown id or a job already succeeded or cancelled.
    pub fn cancel(&self, id: StoredJobId) -> Result<bool, PersistError> {
        self.shared().call(|reply| Op::Cancel { id: id.0, reply })
    }

    /// Puts a dead or cancelled job back to pending with its attempts
    /// reset to 0. Returns `false` if it is neither (or unknown).
    pub fn requeue(&self, id: StoredJobId) -> Result<bool, PersistError> {
        self.shared().call(|reply| Op::Requeue { id: id.0, reply })
    }

    /// Removes every succeeded or cancelled job whose retention has passed,
    /// now, and returns how many. The queue also does this by itself in the
    /// background.
    pub fn prune(&self) -> Result<u64, PersistError> {
        self.shared().call(|reply| Op::Prune { reply })
    }

    /// Blocks until nothing is left to run: no pending job that has a
    /// handler (backing-off ones included) and none running. Jobs waiting
    /// for a handler do not count.
    ///
    /// It returns once every outcome is stored. Each attempt stores its
    /// outcome before it returns to the dispatcher, so the dispatcher's own
    /// [`stats`](crate::Dispatcher::stats) may not count the last attempts
    /// yet; call [`Dispatcher::wait_idle`](crate::Dispatcher::wait_idle)
    /// too before reading them.
    ///
    /// Fails if the queue was never started, stops, breaks, or its
    /// dispatcher shuts down, since then it would wait forever; and inside
    /// one of the queue's handlers, which would wait for itself.
    pub fn wait_idle(&self) -> Result<(), PersistError> {
        if in_handler() {
            return Err(PersistError::CalledFromHandler);
        }
        let shared = self.shared();
        let mut s = lock(&shared.sched);
        loop {
            if let Some(reason) = &s.broken {
                return Err(PersistError::Broken {
                    reason: reason.clone(),
                });
            }
            if s.stopping {
                return Err(PersistError::Stopped);
            }
            if s.dispatcher.is_none() {
                return Err(PersistError::NotStarted);
            }
            // ORDERING: SeqCst, see `stop`.
            let in_flight = shared.in_flight.load(SeqCst);
            if s.is_idle(in_flight) {
                if shared.local {
                    return Ok(());
                }
                // A shared store: idle here, but are other processes (or
                // jobs not yet claimed) still busy with handled names?
                // Not if this process can run nothing any more.
                if s.dispatcher_closed {
                    return Err(PersistError::DispatcherClosed);
                }
                let handled = s.handled_names();
                drop(s);
                match shared.reader()?.busy(&handled) {
                    None | Some(Ok(false)) => return Ok(()),
                    Some(Ok(true)) => {}
                    Some(Err(e)) if e.is_transient() => {}
                    Some(Err(e)) => return Err(e),
                }
                s = lock(&shared.sched);
                s = shared
                    .changed
                    .wait_timeout(s, SHARED_IDLE_POLL)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
                continue;
            }
            // Once the refused attempts are back to pending.
            if s.dispatcher_closed && in_flight == 0 && s.running.is_empty() {
                return Err(PersistError::DispatcherClosed);
            }
            s = shared.changed.wait(s).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Stops gracefully: hands no more jobs to the dispatcher, puts those
    /// it had not started back to pending (not counted as attempts), lets
    /// running ones finish, commits their outcomes, and closes the file.
    /// Jobs not run stay stored for the next open. Calling it again is
    /// fine; later calls on the queue fail with [`PersistError::Stopped`]
    /// (but for [`path`](Self::path) and [`stats`](Self::stats), which
    /// cannot fail: `stats` keeps the counts as they were at the stop).
    ///
    /// It waits for running handlers, so it fails with
    /// [`PersistError::CalledFromHandler`] inside one.
    pub fn stop(&self) -> Result<(), PersistError> {
        stop(self.shared())
    }
}

impl fmt::Debug for Queue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Queue")
            .field("path", &self.path())
            .field("stats", &self.stats())
            .finish()
    }
}

/// Options for a [`Queue`]; [`open`](Self::open) checks them and opens the
/// file.
///
/// ```
/// use std::time::Duration;
/// use workyard::persist::{Backoff, PersistError, Queue};
///
/// # let dir = std::env::temp_dir().join(format!("workyard-doc-builder-{}", std::process::id()));
/// # std::fs::create_dir_all(&dir).unwrap();
/// # let _ = std::fs::remove_file(dir.join("jobs.redb"));
/// let queue = Queue::builder()
///     .max_attempts(8)
///     .backoff(Backoff::new(Duration::from_millis(200)).max_delay(Duration::from_secs(60)))
///     .retention(Duration::from_secs(24 * 3600))
///     .max_in_flight(512)
///     .open(dir.join("jobs.redb"))
///     .unwrap();
/// queue.stop().unwrap();
///
/// let err = Queue::builder().max_attempts(0).open(dir.join("jobs.redb")).unwrap_err();
/// assert!(matches!(err, PersistError::InvalidOption { option: "max_attempts", .. }));
/// # std::fs::remove_dir_all(&dir).unwrap();
/// ```
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until `open` is called"]
pub struct QueueBuilder {
    max_attempts: u32,
    backoff: Backoff,
    retention: Duration,
    max_in_flight: usize,
    cache_size: usize,
    verify_on_open: bool,
    schema: String,
    lease: Duration,
    heartbeat: Duration,
    poll_interval: Duration,
    outcome_hold: Duration,
}

impl Default for QueueBuilder {
    fn default() -> Self {
        QueueBuilder {
            max_attempts: 5,
            backoff: Backoff::default(),
            retention: Duration::from_secs(7 * 24 * 3600),
            max_in_flight: 1024,
            cache_size: 64 << 20,
            verify_on_open: true,
            schema: "workyard".to_owned(),
            lease: Duration::from_secs(15),
            heartbeat: Duration::from_secs(5),
            poll_interval: Duration::from_secs(1),
            outcome_hold: Duration::from_millis(5),
        }
    }
}

impl QueueBuilder {
    /// The defaults: 5 attempts, [`Backoff::default`], 7 days' retention,
    /// 1024 jobs in flight, a 64 MiB cache, verify on open.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many attempts a job gets before it is dead (at least 1). An
    /// attempt interrupted by a crash counts.
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = n;
        self
    }

    /// The wait between a failed attempt and the next.
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// How long succeeded and cancelled jobs stay queryable before they
    /// are removed from the file. Dead jobs stay until requeued or
    /// cancelled.
    pub fn retention(mut self, retention: Duration) -> Self {
        self.retention = retention;
        self
    }

    /// The most claimed jobs handed to the dispatcher at once (at least 1;
    /// default 1024).
    ///
    /// Within it the queue claims only about what the workers finish in a
    /// few commit times (measured as it runs), plus two per worker: enough
    /// that the workers never wait for a claim, and few enough that a
    /// crash finds few claimed-but-unstarted jobs, each of which has that
    /// attempt counted. Quick jobs thus share `fsync`s by the hundreds, and
    /// slow ones are claimed a handful ahead.
    pub fn max_in_flight(mut self, n: usize) -> Self {
        self.max_in_flight = n;
        self
    }

    /// Memory for the storage engine's page cache, in bytes.
    pub fn cache_size(mut self, bytes: usize) -> Self {
        self.cache_size = bytes;
        self
    }

    /// Checks every page's checksum when the file is opened (default
    /// `true`), so that a damaged file is refused with
    /// [`PersistError::Corrupted`] rather than trusted. After a crash the
    /// storage engine walks the file anyway; turning this off only speeds
    /// up clean opens of large files.
    pub fn verify_on_open(mut self, verify: bool) -> Self {
        self.verify_on_open = verify;
        self
    }

    /// PostgreSQL: the schema that holds the queue's tables (default
    /// `workyard`), created by [`connect`](Self::connect) if needed. Queues
    /// in different schemas of one database are independent. Lower-case
    /// letters, digits and `_`, starting with a letter or `_`, at most 63
    /// bytes.
    pub fn schema(mut self, name: &str) -> Self {
        self.schema = name.to_owned();
        self
    }

    /// PostgreSQL: how long a claimed job stays this process's without a
    /// heartbeat (default 15 s). A job whose lease ran out (its process
    /// died, stalled or lost the database) is claimable by any process,
    /// its interrupted attempt counted; a late outcome from the process
    /// that lost it is refused ([`QueueStats::fenced`]).
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    /// PostgreSQL: how often this process renews the leases of all its
    /// claimed jobs, in one statement (default 5 s; less than the lease).
    pub fn heartbeat(mut self, every: Duration) -> Self {
        self.heartbeat = every;
        self
    }

    /// PostgreSQL: how long an idle queue waits for a notification
    /// (`LISTEN`/`NOTIFY`) before it looks for due jobs anyway (default
    /// 1 s): the fallback for a lost notification, and when retries that
    /// backed off in other processes come due.
    pub fn poll_interval(mut self, every: Duration) -> Self {
        self.poll_interval = every;
        self
    }

    /// PostgreSQL: how long an attempt's outcome that reaches the writer
    /// between two claims may wait to be written in the next claim's
    /// transaction instead of a commit of its own (default 5 ms; zero
    /// writes every outcome as it comes). Under load this saves about one
    /// commit, a WAL flush, per claim. Outcomes are held only while this
    /// process has attempts in flight and jobs left to claim, so
    /// [`wait_idle`](Queue::wait_idle) and [`stop`](Queue::stop) do not
    /// wait for it; a held outcome is not yet durable (its job counts as
    /// running). `heartbeat + outcome_hold` must be less than the lease.
    pub fn outcome_hold(mut self, hold: Duration) -> Self {
        self.outcome_hold = hold;
        self
    }

    fn config(&self) -> Result<Config, PersistError> {
        let invalid = |option, reason| Err(PersistError::InvalidOption { option, reason });
        if self.max_attempts == 0 {
            return invalid("max_attempts", "must be at least 1");
        }
        if self.max_in_flight == 0 {
            return invalid("max_in_flight", "must be at least 1");
        }
        Ok(Config {
            max_attempts: self.max_attempts,
            backoff: self.backoff,
            retention: self.retention,
            max_in_flight: self.max_in_flight,
        })
    }

    /// Checks the options, opens (or creates) the file, locks it, and
    /// recovers: jobs that were running when a previous process died go
    /// back to pending (their interrupted attempt counted) or, if that was
    /// their last attempt, dead.
    pub fn open(self, path: impl AsRef<Path>) -> Result<Queue, PersistError> {
        let config = self.config()?;
        let path = path.as_ref().to_path_buf();
        let options = OpenOptions {
            cache_size: self.cache_size,
            verify: self.verify_on_open,
            max_attempts: self.max_attempts,
        };
        let syncs = Arc::new(AtomicU64::new(0));
        let now = now_ms();
        let (db, recovered) = file::open(&path, &options, Arc::clone(&syncs), now)?;

        let mut sched = Sched::default();
        for (name, jobs) in &recovered.pending {
            for &(id, run_after) in jobs {
                if run_after > now {
                    sched.push_delayed(id, name, run_after);
                } else {
                    sched.push_ready(id, name);
                }
            }
        }
        sched.dead = recovered.dead.iter().copied().collect();
        sched.succeeded = recovered.succeeded;
        sched.cancelled = recovered.cancelled;
        sched.recovered = recovered.interrupted;
        let reader = Arc::new(FileReader::new(path.clone(), Arc::clone(&db)));
        let store = Box::new(FileStore::new(db, &recovered));
        let parts = Parts {
            path,
            config,
            sched,
            reader,
            store,
            local: true,
            poll: self.poll_interval,
            syncs,
        };
        let (queue, _) = parts.launch()?;
        Ok(queue)
    }

    /// Checks the options, connects to the PostgreSQL database at `url`
    /// (e.g. `postgres://user:password@host:5432/db`, or the key=value
    /// form), creates or migrates the queue's tables in its
    /// [`schema`](Self::schema), and opens the queue there. Many
    /// processes, on many machines, may open the same queue at once: each
    /// claims jobs for the names it has handlers for. See
    /// `docs/persist.md` for the protocol (claims, leases, fencing).
    ///
    /// A malformed URL, an unreachable server, a wrong password or a
    /// missing database fail with [`PersistError::Connect`], saying which.
    #[cfg(feature = "postgres")]
    pub fn connect(self, url: &str) -> Result<Queue, PersistError> {
        let config = self.config()?;
        if self.heartbeat.is_zero() || self.heartbeat >= self.lease {
            return Err(PersistError::InvalidOption {
                option: "heartbeat",
                reason: "must be more than zero and less than the lease",
            });
        }
        if self.heartbeat.saturating_add(self.outcome_hold) >= self.lease {
            return Err(PersistError::InvalidOption {
                option: "outcome_hold",
                reason: "heartbeat + outcome_hold must be less than the lease",
            });
        }
        if self.poll_interval.is_zero() {
            return Err(PersistError::InvalidOption {
                option: "poll_interval",
                reason: "must be more than zero",
            });
        }
        let options = super::pg::PgOptions {
            url: url.to_owned(),
            schema: self.schema.clone(),
            lease: self.lease,
            heartbeat: self.heartbeat,
            outcome_hold: self.outcome_hold,
            max_attempts: self.max_attempts,
        };
        let opened = super::pg::connect(&options)?;
        let parts = Parts {
            path: PathBuf::from(opened.description.clone()),
            config,
            sched: Sched::default(),
            reader: opened.reader,
            store: opened.store,
            local: false,
            poll: self.poll_interval,
            syncs: opened.commits,
        };
        let (queue, shared) = parts.launch()?;
        let listener = opened.listener;
        let listen_shared = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("workyard-persist-listen".into())
            .spawn(move || listener(listen_shared))
            .map_err(storage)?;
        lock(&shared.threads).push(thread);
        Ok(queue)
    }
}

/// What a store's opening hands to [`Parts::launch`].
struct Parts {
    path: PathBuf,
    config: Config,
    sched: Sched,
    reader: Arc<dyn Reader>,
    store: Box<dyn Store>,
    local: bool,
    poll: Duration,
    syncs: Arc<AtomicU64>,
}

impl Parts {
    /// Builds the shared state and starts the committer.
    fn launch(self) -> Result<(Queue, Arc<Shared>), PersistError> {
        let (tx, rx) = mpsc::channel();
        let shared = Arc::new(Shared {
            path: self.path,
            config: self.config,
            ops: tx,
            sched: Mutex::new(self.sched),
            changed: Condvar::new(),
            reader: RwLock::new(Some(self.reader)),
            local: self.local,
            poll: self.poll,
            in_flight: AtomicUsize::new(0),
            starved: AtomicBool::new(false),
            stopping: AtomicBool::new(false),
            ended: AtomicU64::new(0),
            commit_nanos: AtomicU64::new(0),
            syncs: self.syncs,
            threads: Mutex::new(Vec::new()),
            stop_lock: Mutex::new(()),
        });
        let committer = Committer::new(Arc::clone(&shared), self.store);
        let thread = std::thread::Builder::new()
            .name(COMMITTER_NAME.into())
            .spawn(move || committer.run(rx))
            .map_err(storage)?;
        lock(&shared.threads).push(thread);
        let queue = Queue {
            owner: Arc::new(Owner {
                shared: Arc::clone(&shared),
            }),
        };
        Ok((queue, shared))
    }
}
