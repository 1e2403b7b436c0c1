//! The file: redb tables, opening (with clear errors) and recovery.
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
use super::record::{JobState, Record};
use redb::backends::FileBackend;
use redb::{
    Database, DatabaseError, ReadableTable, StorageBackend, StorageError, TableDefinition,
    TableHandle,
};
use std::collections::HashMap;
use std::fmt;
use std::ops::Bound;
use std::panic::{self, AssertUnwindSafe};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

pub(crate) const META: TableDefinition<&str, u64> = TableDefinition::new("workyard_meta");
pub(crate) const JOBS: TableDefinition<u64, &[u8]> = TableDefinition::new("workyard_jobs");
pub(crate) const PAYLOADS: TableDefinition<u64, &[u8]> = TableDefinition::new("workyard_payloads");
pub(crate) const FINISHED: TableDefinition<(u64, u64), ()> =
    TableDefinition::new("workyard_finished");

/// The layout described above. Bump it on any incompatible change.
pub(crate) const FORMAT_VERSION: u64 = 1;
const FORMAT_KEY: &str = "format";
pub(crate) const NEXT_ID_KEY: &str = "next_id";

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
                JobState::Pending | JobState::Waiting => push_pending(&mut out, id, &record),
                JobState::Running => running.push((id, record)),
                JobState::Succeeded => out.succeeded += 1,
                JobState::Cancelled => out.cancelled += 1,
                JobState::Dead => out.dead.push(id),
            }
        }
        let mut buf = Vec::new();
        for (id, mut record) in running {
            out.interrupted += 1;
            record.interrupted = record.interrupted.saturating_add(1);
            let attempt = record.attempts;
            if attempt >= options.max_attempts {
                record.state = JobState::Dead;
                record.finished_at = now;
                record.error = Some(format!(
                    "attempt {attempt} of {} was interrupted by a crash",
                    options.max_attempts
                ));
                out.dead.push(id);
            } else {
                record.state = JobState::Pending;
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
