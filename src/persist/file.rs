//! The file store: one redb file owned by one process. Its tables,
//! opening (with clear errors), recovery, the [`FileStore`] that writes
//! each batch in one redb transaction, and the [`FileReader`].
//!
//! Tables (all keys are job ids unless said otherwise):
//!
//! | table               | key               | value                          |
//! |---------------------|-------------------|--------------------------------|
//! | `workyard_meta`     | `&str`            | `u64`: `format`, `next_id`     |
//! | `workyard_jobs`     | `u64`             | an encoded [`Record`], with the payload if it is small |
//! | `workyard_payloads` | `u64`             | payloads over 512 bytes        |
//! | `workyard_finished` | `(finished_ms, id)` | `()`: succeeded and cancelled jobs, oldest first, for pruning |

use super::error::PersistError;
use super::op::{set_last, Answer, Claimed, Op, Outcome};
use super::record::{now_ms, truncate, Record, StoredJobState, INLINE_PAYLOAD_MAX, MAX_ERROR_LEN};
use super::retry::Jitter;
use super::store::{
    after_failure, guard, storage, AfterFailure, Config, Effect, Reader, Store, Written,
};
use redb::backends::FileBackend;
use redb::{
    Database, DatabaseError, ReadableDatabase, ReadableTable, StorageBackend, StorageError, Table,
    TableDefinition, TableHandle,
};
use std::collections::{HashMap, HashSet};
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, RwLock};
use std::time::Duration;

pub(crate) const META: TableDefinition<&str, u64> = TableDefinition::new("workyard_meta");
pub(crate) const JOBS: TableDefinition<u64, &[u8]> = TableDefinition::new("workyard_jobs");
pub(crate) const PAYLOADS: TableDefinition<u64, &[u8]> = TableDefinition::new("workyard_payloads");
pub(crate) const FINISHED: TableDefinition<(u64, u64), ()> =
    TableDefinition::new("workyard_finished");

/// The layout described above. Bump it on any incompatible change.
pub(crate) const FORMAT_VERSION: u64 = 1;
const FORMAT_KEY: &str = "format";
pub(crate) const NEXT_ID_KEY: &str = "next_id";

/// The file backend, counting `fsync`s (redb calls `sync_data` for each
/// durable commit) so that the queue can report fsyncs per job.
#[derive(Debug)]
struct CountingBackend {
    inner: FileBackend,
    syncs: Arc<AtomicU64>,
}

impl StorageBackend for CountingBackend {
    fn len(&self) -> Result<u64, std::io::Error> {
        self.inner.len()
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), std::io::Error> {
        self.inner.read(offset, out)
    }

    fn set_len(&self, len: u64) -> Result<(), std::io::Error> {
        self.inner.set_len(len)
    }

    fn sync_data(&self) -> Result<(), std::io::Error> {
        // ORDERING: Relaxed: a counter, read only for display.
        self.syncs.fetch_add(1, Relaxed);
        self.inner.sync_data()
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), std::io::Error> {
        self.inner.write(offset, data)
    }

    fn close(&self) -> Result<(), std::io::Error> {
        self.inner.close()
    }

    fn try_lock_range(
        &self,
        start: Bound<u64>,
        end: Bound<u64>,
    ) -> Result<bool, redb::BackendError> {
        self.inner.try_lock_range(start, end)
    }

    fn try_lock_shared_range(
        &self,
        start: Bound<u64>,
        end: Bound<u64>,
    ) -> Result<bool, redb::BackendError> {
        self.inner.try_lock_shared_range(start, end)
    }

    fn lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), redb::BackendError> {
        self.inner.lock_range(start, end)
    }

    fn lock_shared_range(
        &self,
        start: Bound<u64>,
        end: Bound<u64>,
    ) -> Result<(), redb::BackendError> {
        self.inner.lock_shared_range(start, end)
    }

    fn unlock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), redb::BackendError> {
        self.inner.unlock_range(start, end)
    }

    fn query_lock_range(
        &self,
        start: Bound<u64>,
        end: Bound<u64>,
    ) -> Result<bool, redb::BackendError> {
        self.inner.query_lock_range(start, end)
    }
}

/// What opening needs from the builder.
pub(crate) struct OpenOptions {
    pub(crate) cache_size: usize,
    pub(crate) verify: bool,
    pub(crate) max_attempts: u32,
}

fn open_error(path: &Path, e: DatabaseError) -> PersistError {
    let path = path.to_path_buf();
    match e {
        DatabaseError::DatabaseAlreadyOpen | DatabaseError::LockProtocolMismatch => {
            PersistError::AlreadyOpen { path }
        }
        DatabaseError::UpgradeRequired(v) => PersistError::UnsupportedFormat {
            path,
            found: u64::from(v),
        },
        DatabaseError::Storage(StorageError::Io(source)) => {
            use std::io::ErrorKind::{InvalidData, UnexpectedEof};
            if matches!(source.kind(), InvalidData | UnexpectedEof) {
                // redb reports a short or foreign file as an I/O error.
                PersistError::Corrupted {
                    path,
                    reason: source.to_string(),
                }
            } else {
                PersistError::Io { path, source }
            }
        }
        other => PersistError::Corrupted {
            path,
            reason: other.to_string(),
        },
    }
}

/// Opens (or creates) the file and locks it.
pub(crate) fn open_database(
    path: &Path,
    options: &OpenOptions,
    syncs: Arc<AtomicU64>,
) -> Result<Database, PersistError> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|source| PersistError::Io {
            path: path.to_path_buf(),
            source,
        })?;
    let corrupted = |reason: String| PersistError::Corrupted {
        path: path.to_path_buf(),
        reason,
    };
    guard(
        || {
            let inner = FileBackend::new(file).map_err(|e| open_error(path, e))?;
            let backend = CountingBackend { inner, syncs };
            redb::Builder::new()
                .set_cache_size(options.cache_size)
                .set_check_integrity_on_open(options.verify)
                .create_with_backend(backend)
                .map_err(|e| open_error(path, e))
        },
        corrupted,
    )
}

/// What recovery found in the file, to rebuild the in-memory schedule.
#[derive(Default)]
pub(crate) struct Recovered {
    /// Pending jobs by name, in id order, with their `run_after`.
    pub(crate) pending: HashMap<Arc<str>, Vec<(u64, u64)>>,
    pub(crate) dead: Vec<u64>,
    pub(crate) succeeded: u64,
    pub(crate) cancelled: u64,
    /// Jobs that were running when the process died.
    pub(crate) interrupted: u64,
    pub(crate) next_id: u64,
    /// The oldest `finished` entry's time, for pruning.
    pub(crate) oldest_finished: Option<u64>,
}

/// Checks the file is a queue of a known format (initialising a new one),
/// returns every job that was running to pending (or dead, if that was
/// its last attempt), and gathers the schedule, all in one durable
/// transaction.
pub(crate) fn recover(
    db: &Database,
    path: &Path,
    options: &OpenOptions,
    now: u64,
) -> Result<Recovered, PersistError> {
    let corrupted = |reason: String| PersistError::Corrupted {
        path: path.to_path_buf(),
        reason,
    };
    guard(|| recover_inner(db, path, options, now), corrupted)
}

fn recover_inner(
    db: &Database,
    path: &Path,
    options: &OpenOptions,
    now: u64,
) -> Result<Recovered, PersistError> {
    let corrupted = |reason: String| PersistError::Corrupted {
        path: path.to_path_buf(),
        reason,
    };
    let txn = db.begin_write().map_err(|e| corrupted(e.to_string()))?;
    let names: Vec<String> = txn
        .list_tables()
        .map_err(|e| corrupted(e.to_string()))?
        .map(|t| t.name().to_owned())
        .collect();
    let mut out = Recovered::default();
    let mut next_id = 1;
    {
        let mut meta = txn.open_table(META).map_err(|e| corrupted(e.to_string()))?;
        let format = meta
            .get(FORMAT_KEY)
            .map_err(|e| corrupted(e.to_string()))?
            .map(|v| v.value());
        match format {
            Some(FORMAT_VERSION) => {}
            Some(found) => {
                return Err(PersistError::UnsupportedFormat {
                    path: path.to_path_buf(),
                    found,
                })
            }
            None if names.is_empty() => {
                meta.insert(FORMAT_KEY, FORMAT_VERSION)
                    .map_err(|e| corrupted(e.to_string()))?;
            }
            None => {
                return Err(corrupted(
                    "it is a redb database, but not a workyard queue".into(),
                ))
            }
        }
        let stored = meta
            .get(NEXT_ID_KEY)
            .map_err(|e| corrupted(e.to_string()))?
            .map(|v| v.value());
        if let Some(v) = stored {
            next_id = v;
        }
    }
    {
        let mut jobs = txn.open_table(JOBS).map_err(|e| corrupted(e.to_string()))?;
        let mut running = Vec::new();
        for entry in jobs.iter().map_err(|e| corrupted(e.to_string()))? {
            let (key, value) = entry.map_err(|e| corrupted(e.to_string()))?;
            let id = key.value();
            let record = Record::decode(value.value())
                .map_err(|why| corrupted(format!("job {id}: {why}")))?;
            next_id = next_id.max(id + 1);
            match record.state {
                StoredJobState::Pending | StoredJobState::Waiting => {
                    push_pending(&mut out, id, &record)
                }
                StoredJobState::Running => running.push((id, record)),
                StoredJobState::Succeeded => out.succeeded += 1,
                StoredJobState::Cancelled => out.cancelled += 1,
                StoredJobState::Dead => out.dead.push(id),
            }
        }
        let mut buf = Vec::new();
        for (id, mut record) in running {
            out.interrupted += 1;
            record.interrupted = record.interrupted.saturating_add(1);
            let attempt = record.attempts;
            if attempt >= options.max_attempts {
                record.state = StoredJobState::Dead;
                record.finished_at = now;
                record.error = Some(format!(
                    "attempt {attempt} of {} was interrupted by a crash",
                    options.max_attempts
                ));
                out.dead.push(id);
            } else {
                record.state = StoredJobState::Pending;
                record.run_after = 0;
                record.error = Some(format!("attempt {attempt} was interrupted by a crash"));
                push_pending(&mut out, id, &record);
            }
            record.encode(&mut buf);
            jobs.insert(id, buf.as_slice()).map_err(storage)?;
        }
        for lane in out.pending.values_mut() {
            lane.sort_unstable();
        }
        out.dead.sort_unstable();
    }
    {
        let finished = txn
            .open_table(FINISHED)
            .map_err(|e| corrupted(e.to_string()))?;
        out.oldest_finished = finished
            .first()
            .map_err(|e| corrupted(e.to_string()))?
            .map(|(k, _)| k.value().0);
        // Create the payload table too, so every later transaction finds
        // all four.
        drop(
            txn.open_table(PAYLOADS)
                .map_err(|e| corrupted(e.to_string()))?,
        );
    }
    out.next_id = next_id;
    txn.commit().map_err(storage)?;
    Ok(out)
}

fn push_pending(out: &mut Recovered, id: u64, record: &Record) {
    let entry = (id, record.run_after);
    match out.pending.get_mut(record.name.as_str()) {
        Some(lane) => lane.push(entry),
        None => {
            out.pending
                .insert(Arc::from(record.name.as_str()), vec![entry]);
        }
    }
}

/// Opens the file and recovers it; on a failure the database is dropped
/// here under [`guard`] too: redb may panic while dropping a damaged
/// database whose recovery failed, and that must not unwind out of
/// `open`.
pub(crate) fn open(
    path: &Path,
    options: &OpenOptions,
    syncs: Arc<AtomicU64>,
    now: u64,
) -> Result<(Arc<Database>, Recovered), PersistError> {
    let db = open_database(path, options, syncs)?;
    match recover(&db, path, options, now) {
        Ok(recovered) => Ok((Arc::new(db), recovered)),
        Err(e) => {
            let _ = guard(
                || {
                    drop(db);
                    Ok(())
                },
                storage,
            );
            // A write that fails while recovering a file is the file's
            // damage (e.g. "Truncated free page list"), not a running
            // queue's storage failure.
            Err(match e {
                PersistError::Storage { reason } => PersistError::Corrupted {
                    path: path.to_path_buf(),
                    reason,
                },
                other => other,
            })
        }
    }
}

/// The most finished jobs one automatic prune removes in a transaction.
const PRUNE_LIMIT: usize = 4096;

/// Writes batches to the file, one redb write transaction each.
pub(crate) struct FileStore {
    db: Option<Arc<Database>>,
    jitter: Jitter,
    buf: Vec<u8>,
    /// The next job id to hand out (ids are never reused).
    next_id: u64,
    /// A lower bound of the oldest `finished` entry, to skip pruning when
    /// nothing can be due.
    oldest_finished: Option<u64>,
    /// Running jobs that `Queue::cancel` was called for: whatever their
    /// attempt reports, they end `Cancelled`. (The committer sees the
    /// cancel and the outcome in one order: if the outcome came first the
    /// job was no longer running and the cancel answered `false`.)
    cancelling: HashSet<u64>,
}

impl FileStore {
    pub(crate) fn new(db: Arc<Database>, recovered: &Recovered) -> FileStore {
        FileStore {
            db: Some(db),
            jitter: Jitter::new(),
            buf: Vec::new(),
            next_id: recovered.next_id,
            oldest_finished: recovered.oldest_finished,
            cancelling: HashSet::new(),
        }
    }
}

impl Store for FileStore {
    fn tick(&self, config: &Config) -> Duration {
        // Prune at least every quarter retention (between 50 ms and a
        // minute) even when no op comes.
        (config.retention / 4).clamp(Duration::from_millis(50), Duration::from_secs(60))
    }

    fn close(&mut self) {
        // redb may panic dropping a database it found damaged: not here.
        let db = self.db.take();
        let _ = guard(
            || {
                drop(db);
                Ok(())
            },
            storage,
        );
    }

    fn write(
        &mut self,
        config: &Config,
        batch: Vec<Op>,
        out: &mut Written,
    ) -> Result<bool, PersistError> {
        let cancelling = self.cancelling.clone();
        let next_id = self.next_id;
        let result = guard(
            || self.write_inner(config, batch, out),
            |panic| storage(format!("the storage engine panicked: {panic}")),
        );
        if result.is_err() {
            // Nothing of the batch is applied.
            self.cancelling = cancelling;
            self.next_id = next_id;
        }
        result
    }
}

impl FileStore {
    fn write_inner(
        &mut self,
        config: &Config,
        batch: Vec<Op>,
        out: &mut Written,
    ) -> Result<bool, PersistError> {
        let effects = &mut out.effects;
        let answers = &mut out.answers;
        let db = Arc::clone(self.db.as_ref().expect("open until shutdown"));
        let txn = db.begin_write().map_err(storage)?;
        let now = now_ms();
        let mut dirty = false;
        let next_id;
        {
            let mut t = Tables {
                jobs: txn.open_table(JOBS).map_err(storage)?,
                payloads: txn.open_table(PAYLOADS).map_err(storage)?,
                finished: txn.open_table(FINISHED).map_err(storage)?,
            };
            let mut forced = false;
            for op in batch {
                match op {
                    Op::Enqueue { jobs, reply } => {
                        let first_id = self.next_id;
                        self.next_id += jobs.len() as u64;
                        // Hold the answer first: if a write fails the
                        // caller still hears about it.
                        answers.push(Answer::First(reply, first_id));
                        for (id, (name, payload)) in (first_id..).zip(jobs) {
                            let mut record = Record::new(name, now);
                            if payload.len() <= INLINE_PAYLOAD_MAX {
                                record.payload = Some(payload);
                            } else {
                                t.payloads.insert(id, payload.as_slice()).map_err(storage)?;
                            }
                            record.encode(&mut self.buf);
                            t.jobs.insert(id, self.buf.as_slice()).map_err(storage)?;
                            effects.push(Effect::Enqueued {
                                id,
                                name: record.name,
                            });
                            dirty = true;
                        }
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
                    Op::ClaimNext { reply, .. } => {
                        // The schedule in memory picks the ids for this
                        // store; nothing sends this op to it.
                        let e = storage("a claim by name reached the file store");
                        Answer::Picked(
                            reply,
                            super::op::PickedBatch {
                                jobs: Vec::new(),
                                next_due: None,
                            },
                        )
                        .fail(&e);
                    }
                    Op::Finish { id, outcome, .. } => {
                        dirty |= self.finish(config, &mut t, id, outcome, now, effects)?;
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
                    Op::Shutdown { reply } => out.shutdown = Some(reply),
                }
            }
            let (pruned, max_pruned) = self.prune(config, &mut t, now, forced, effects)?;
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
            let mut meta = txn.open_table(META).map_err(storage)?;
            let stored = meta
                .get(NEXT_ID_KEY)
                .map_err(storage)?
                .map_or(0, |v| v.value());
            if next_id > stored {
                meta.insert(NEXT_ID_KEY, next_id).map_err(storage)?;
            }
        }
        if dirty {
            txn.commit().map_err(storage)?;
        } else {
            txn.abort().map_err(storage)?;
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
        if record.state != StoredJobState::Pending {
            return Ok(None);
        }
        record.state = StoredJobState::Running;
        record.attempts = record.attempts.saturating_add(1);
        record.started_at = now;
        record.run_after = 0;
        t.put(id, &record, &mut self.buf)?;
        let payload = match record.payload.take() {
            Some(inline) => inline,
            None => t
                .payloads
                .get(id)
                .map_err(storage)?
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
        config: &Config,
        t: &mut Tables<'_>,
        id: u64,
        outcome: Outcome,
        now: u64,
        effects: &mut Vec<Effect>,
    ) -> Result<bool, PersistError> {
        let record = t.record(id)?;
        let Some(mut record) = record.filter(|r| r.state == StoredJobState::Running) else {
            self.cancelling.remove(&id);
            effects.push(Effect::Stray { id });
            return Ok(false);
        };
        // A cancel that answered `true` wins over whatever it returned.
        let outcome = if self.cancelling.remove(&id) {
            Outcome::Cancelled
        } else {
            outcome
        };
        match outcome {
            Outcome::Succeeded => {
                record.state = StoredJobState::Succeeded;
                record.finished_at = now;
                t.finish(id, now)?;
                self.note_finished(now);
                effects.push(Effect::Succeeded { id });
            }
            Outcome::Failed(error) => {
                record.error = Some(truncate(error, MAX_ERROR_LEN));
                match after_failure(config, record.attempts, self.jitter.next()) {
                    AfterFailure::Dead => {
                        record.state = StoredJobState::Dead;
                        record.finished_at = now;
                        effects.push(Effect::Dead { id });
                    }
                    AfterFailure::Retry { delay_ms } => {
                        record.state = StoredJobState::Pending;
                        record.run_after = if delay_ms == 0 {
                            0
                        } else {
                            now.saturating_add(delay_ms)
                        };
                        effects.push(Effect::Retry {
                            id,
                            name: record.name.clone(),
                            due: record.run_after,
                        });
                    }
                }
            }
            Outcome::Cancelled => {
                record.state = StoredJobState::Cancelled;
                record.finished_at = now;
                t.finish(id, now)?;
                self.note_finished(now);
                effects.push(Effect::CancelledRun { id });
            }
            Outcome::Released => {
                record.state = StoredJobState::Pending;
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
            StoredJobState::Pending | StoredJobState::Waiting => Effect::CancelledPending {
                id,
                name: record.name.clone(),
                run_after: record.run_after,
            },
            StoredJobState::Dead => Effect::CancelledDead { id },
            StoredJobState::Running => {
                // Its attempt's outcome, whatever it is, records the
                // cancellation (see `cancelling`).
                self.cancelling.insert(id);
                effects.push(Effect::CancelRunning { id });
                return Ok((true, false));
            }
            StoredJobState::Succeeded | StoredJobState::Cancelled => return Ok((false, false)),
        };
        record.state = StoredJobState::Cancelled;
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
            StoredJobState::Dead => {}
            StoredJobState::Cancelled => {
                t.finished
                    .remove((record.finished_at, id))
                    .map_err(storage)?;
            }
            _ => return Ok(false),
        }
        record.state = StoredJobState::Pending;
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
        config: &Config,
        t: &mut Tables<'_>,
        now: u64,
        forced: bool,
        effects: &mut Vec<Effect>,
    ) -> Result<(u64, Option<u64>), PersistError> {
        let retention = u64::try_from(config.retention.as_millis()).unwrap_or(u64::MAX);
        let cutoff = now.saturating_sub(retention);
        if self.oldest_finished.map_or(true, |t| t > cutoff) {
            return Ok((0, None));
        }
        let limit = if forced { usize::MAX } else { PRUNE_LIMIT };
        let mut due = Vec::new();
        for entry in t.finished.range(..=(cutoff, u64::MAX)).map_err(storage)? {
            let (key, _) = entry.map_err(storage)?;
            due.push(key.value());
            if due.len() == limit {
                break;
            }
        }
        let (mut succeeded, mut cancelled, mut max_id) = (0, 0, None);
        for (finished_at, id) in &due {
            t.finished.remove((*finished_at, *id)).map_err(storage)?;
            if let Some(record) = t.record(*id)? {
                match record.state {
                    StoredJobState::Succeeded => succeeded += 1,
                    StoredJobState::Cancelled => cancelled += 1,
                    // Requeued since (its entry would be gone) or damaged:
                    // keep the job.
                    _ => continue,
                }
                t.jobs.remove(*id).map_err(storage)?;
                if record.payload.is_none() {
                    t.payloads.remove(*id).map_err(storage)?;
                }
                max_id = max_id.max(Some(*id));
            }
        }
        self.oldest_finished = t
            .finished
            .first()
            .map_err(storage)?
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
        match self.jobs.get(id).map_err(storage)? {
            None => Ok(None),
            Some(v) => Record::decode(v.value())
                .map(Some)
                .map_err(|why| storage(format!("job {id}: {why}"))),
        }
    }

    fn put(&mut self, id: u64, record: &Record, buf: &mut Vec<u8>) -> Result<(), PersistError> {
        record.encode(buf);
        self.jobs.insert(id, buf.as_slice()).map_err(storage)?;
        Ok(())
    }

    fn finish(&mut self, id: u64, now: u64) -> Result<(), PersistError> {
        self.finished.insert((now, id), ()).map_err(storage)?;
        Ok(())
    }
}

/// Reads of the file, on read transactions.
pub(crate) struct FileReader {
    path: PathBuf,
    db: RwLock<Option<Arc<Database>>>,
}

impl FileReader {
    pub(crate) fn new(path: PathBuf, db: Arc<Database>) -> FileReader {
        FileReader {
            path,
            db: RwLock::new(Some(db)),
        }
    }

    /// Runs `f` on a read transaction of the file.
    fn read<T>(
        &self,
        f: impl FnOnce(&redb::ReadTransaction) -> Result<T, PersistError>,
    ) -> Result<T, PersistError> {
        let db = self.db.read().unwrap_or_else(|e| e.into_inner());
        let Some(db) = db.as_ref() else {
            return Err(PersistError::Stopped);
        };
        let path = self.path.clone();
        guard(
            || f(&db.begin_read().map_err(storage)?),
            |reason| PersistError::Corrupted { path, reason },
        )
    }
}

impl Reader for FileReader {
    fn record(&self, id: u64) -> Result<Option<(Record, usize)>, PersistError> {
        self.read(|txn| {
            let jobs = txn.open_table(JOBS).map_err(storage)?;
            let Some(bytes) = jobs.get(id).map_err(storage)? else {
                return Ok(None);
            };
            let mut record =
                Record::decode(bytes.value()).map_err(|why| storage(format!("job {id}: {why}")))?;
            let payload_len = match record.payload.take() {
                Some(inline) => inline.len(),
                None => {
                    let payloads = txn.open_table(PAYLOADS).map_err(storage)?;
                    let payload = payloads.get(id).map_err(storage)?;
                    payload.map_or(0, |v| v.value().len())
                }
            };
            Ok(Some((record, payload_len)))
        })
    }

    fn payload(&self, id: u64) -> Result<Option<Vec<u8>>, PersistError> {
        self.read(|txn| {
            let jobs = txn.open_table(JOBS).map_err(storage)?;
            let Some(bytes) = jobs.get(id).map_err(storage)? else {
                return Ok(None);
            };
            let record =
                Record::decode(bytes.value()).map_err(|why| storage(format!("job {id}: {why}")))?;
            if let Some(inline) = record.payload {
                return Ok(Some(inline));
            }
            let payloads = txn.open_table(PAYLOADS).map_err(storage)?;
            let payload = payloads.get(id).map_err(storage)?;
            Ok(Some(
                payload.map(|v| v.value().to_vec()).unwrap_or_default(),
            ))
        })
    }

    fn list(
        &self,
        state: StoredJobState,
        _handled: &[String],
        limit: usize,
    ) -> Result<Option<Vec<u64>>, PersistError> {
        if !matches!(state, StoredJobState::Succeeded | StoredJobState::Cancelled) {
            return Ok(None);
        }
        self.read(|txn| {
            let finished = txn.open_table(FINISHED).map_err(storage)?;
            let jobs = txn.open_table(JOBS).map_err(storage)?;
            let mut out = Vec::new();
            for entry in finished.iter().map_err(storage)? {
                if out.len() == limit {
                    break;
                }
                let (key, _) = entry.map_err(storage)?;
                let id = key.value().1;
                let Some(bytes) = jobs.get(id).map_err(storage)? else {
                    continue;
                };
                let record = Record::decode(bytes.value())
                    .map_err(|why| storage(format!("job {id}: {why}")))?;
                if record.state == state {
                    out.push(id);
                }
            }
            Ok(Some(out))
        })
    }

    fn counts(&self, _handled: &[String]) -> Option<Result<super::store::Counts, PersistError>> {
        None
    }

    fn busy(&self, _handled: &[String]) -> Option<Result<bool, PersistError>> {
        None
    }

    fn close(&self) {
        *self.db.write().unwrap_or_else(|e| e.into_inner()) = None;
    }
}
