//! [`PersistError`]: what went wrong with a queue or its file.

use std::path::PathBuf;
use std::{error, fmt, io};

/// Why a [`Queue`](super::Queue) operation failed.
///
/// Every operation that takes a job from the caller (`enqueue`,
/// `enqueue_batch`) borrows it, so on an error the caller still holds the
/// name and payload: nothing is dropped silently, and nothing was stored
/// (a batch is stored whole or not at all).
///
/// ```
/// use workyard::persist::{PersistError, Queue};
///
/// let dir = std::env::temp_dir().join(format!("workyard-doc-error-{}", std::process::id()));
/// std::fs::create_dir_all(&dir).unwrap();
/// let path = dir.join("jobs.redb");
/// # let _ = std::fs::remove_file(&path);
///
/// let queue = Queue::open(&path).unwrap();
/// // Only one queue may have the file open at a time.
/// let again = Queue::open(&path).unwrap_err();
/// assert!(matches!(again, PersistError::AlreadyOpen { .. }));
///
/// // A job needs a name.
/// let bad = queue.enqueue("", b"payload").unwrap_err();
/// assert!(matches!(bad, PersistError::InvalidName { .. }));
/// queue.stop().unwrap();
/// # std::fs::remove_dir_all(&dir).unwrap();
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum PersistError {
    /// Another queue, in this process or another one, has the file open.
    /// Only one may at a time; the file is locked while it is open.
    AlreadyOpen {
        /// The file.
        path: PathBuf,
    },
    /// The file is not a readable queue: truncated, damaged, or not a
    /// workyard queue at all. Nothing was changed in it.
    Corrupted {
        /// The file.
        path: PathBuf,
        /// What was found wrong.
        reason: String,
    },
    /// The file was written in a format version this build cannot read.
    UnsupportedFormat {
        /// The file.
        path: PathBuf,
        /// The version found in the file.
        found: u64,
    },
    /// The operating system refused to open or read the file.
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// A write to the file failed while the queue was running (a full
    /// disk, a failed `fsync`, a damaged page). The operation that saw it
    /// was not stored, and the queue refuses all further work with
    /// [`Broken`](Self::Broken): what was committed before is safe on disk;
    /// reopen the file to go on.
    Storage {
        /// What the storage engine reported.
        reason: String,
    },
    /// An earlier write failed (see [`Storage`](Self::Storage)); the queue
    /// accepts nothing more. Reopen the file to go on.
    Broken {
        /// The first failure.
        reason: String,
    },
    /// A job name is empty or longer than
    /// [`MAX_NAME_LEN`](super::MAX_NAME_LEN) bytes.
    InvalidName {
        /// The name given (cut to 64 bytes).
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A [`QueueBuilder`](super::QueueBuilder) option has a value it
    /// cannot take.
    InvalidOption {
        /// The builder method, e.g. `"max_attempts"`.
        option: &'static str,
        /// What it must be instead.
        reason: &'static str,
    },
    /// [`Queue::start`](super::Queue::start) was called a second time.
    AlreadyStarted,
    /// [`Queue::wait_idle`](super::Queue::wait_idle) was called on a queue
    /// that was never started: nothing would ever run.
    NotStarted,
    /// The dispatcher the queue runs on was shut down or halted, so the
    /// queue stopped handing it jobs. The jobs are safe in the file.
    DispatcherClosed,
    /// The queue was stopped; it accepts no more calls.
    Stopped,
    /// [`Queue::stop`](super::Queue::stop) or
    /// [`Queue::wait_idle`](super::Queue::wait_idle) was called from inside
    /// one of the queue's own handlers, which would wait for itself.
    CalledFromHandler,
    /// [`QueueBuilder::connect`](super::QueueBuilder::connect) could not
    /// reach a usable PostgreSQL database: a malformed URL, a server that
    /// does not answer, a wrong password, a missing database, or a schema
    /// the user may not create. Nothing was changed.
    Connect {
        /// The URL, with any password replaced by `***`.
        url: String,
        /// What went wrong, in words (the server's message where it sent one).
        reason: String,
    },
    /// The connection to PostgreSQL was lost while the queue was running
    /// (the server restarted, the network dropped). The operation that saw
    /// it failed; the queue reconnects by itself, with backoff, and keeps
    /// running (it is not [`Broken`](Self::Broken)). An `enqueue` that gets
    /// this error may or may not have been stored, if the connection went
    /// down during its commit; one that returned `Ok` is stored.
    Connection {
        /// What the client library reported.
        reason: String,
    },
}

impl PersistError {
    /// A copy, for answering several callers with one error (`io::Error`
    /// cannot be cloned: an `Io` becomes a `Storage` with its text).
    pub(crate) fn duplicate(&self) -> PersistError {
        match self {
            PersistError::Broken { reason } => PersistError::Broken {
                reason: reason.clone(),
            },
            PersistError::Storage { reason } => PersistError::Storage {
                reason: reason.clone(),
            },
            PersistError::Connection { reason } => PersistError::Connection {
                reason: reason.clone(),
            },
            PersistError::Stopped => PersistError::Stopped,
            other => PersistError::Storage {
                reason: other.to_string(),
            },
        }
    }

    /// A failure the queue recovers from by itself (a lost connection).
    pub(crate) fn is_transient(&self) -> bool {
        matches!(self, PersistError::Connection { .. })
    }
}

impl fmt::Display for PersistError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PersistError::AlreadyOpen { path } => write!(
                f,
                "{} is already open by another queue (in this or another process)",
                path.display()
            ),
            PersistError::Corrupted { path, reason } => {
                write!(f, "{} is not a readable job queue: {reason}", path.display())
            }
            PersistError::UnsupportedFormat { path, found } => write!(
                f,
                "{} uses queue format version {found}, which this build cannot read",
                path.display()
            ),
            PersistError::Io { path, source } => {
                write!(f, "could not open {}: {source}", path.display())
            }
            PersistError::Storage { reason } => write!(f, "writing the queue file failed: {reason}"),
            PersistError::Broken { reason } => write!(
                f,
                "the queue stopped accepting work after a failed write ({reason}); reopen it"
            ),
            PersistError::InvalidName { name, reason } => {
                write!(f, "invalid job name {name:?}: {reason}")
            }
            PersistError::InvalidOption { option, reason } => {
                write!(f, "invalid QueueBuilder::{option}: {reason}")
            }
            PersistError::AlreadyStarted => f.write_str("the queue was already started"),
            PersistError::NotStarted => {
                f.write_str("the queue was never started, so no job would ever run")
            }
            PersistError::DispatcherClosed => f.write_str(
                "the dispatcher was shut down, so the queue stopped running jobs (they stay stored)",
            ),
            PersistError::Stopped => f.write_str("the queue was stopped"),
            PersistError::CalledFromHandler => {
                f.write_str("Queue::stop or wait_idle was called from inside one of the queue's handlers")
            }
            PersistError::Connect { url, reason } => {
                write!(f, "could not open the queue in PostgreSQL at {url}: {reason}")
            }
            PersistError::Connection { reason } => write!(
                f,
                "the connection to PostgreSQL was lost ({reason}); the queue reconnects by itself"
            ),
        }
    }
}

impl error::Error for PersistError {
    fn source(&self) -> Option<&(dyn error::Error + 'static)> {
        match self {
            PersistError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}
