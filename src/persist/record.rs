//! A stored job: its state machine ([`StoredJobState`]), the record kept in the
//! file ([`Record`], with its byte encoding) and the snapshot handed to
//! callers ([`JobRecord`]).
//!
//! ```text
//!   enqueue        claim (attempts += 1, fsynced before it runs)
//!  ─────────▶ PENDING ───────────────────────▶ RUNNING ──── Ok ──────────▶ SUCCEEDED
//!               ▲ ▲  ▲                           │ │ │
//!               │ │  └── Err/panic, attempts < max (after a backoff)
//!               │ └───── released: the run was cancelled by the dispatcher
//!               │        or never started (attempts -= 1)
//!               │                                │ └── Err/panic, attempts = max ──▶ DEAD
//!               └─ open after a crash (the       └──── Queue::cancel ─────────────▶ CANCELLED
//!                  interrupted attempt counts;
//!                  DEAD if it was the last)
//!   PENDING, DEAD ── Queue::cancel ──▶ CANCELLED
//!   DEAD, CANCELLED ── Queue::requeue (attempts = 0) ──▶ PENDING
//!   SUCCEEDED, CANCELLED ── retention passed ──▶ (removed)
//! ```
//!
//! `WAITING` is not stored: it is how a `PENDING` job whose name has no
//! registered handler is reported.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The version written into [`Record`]'s first byte.
const RECORD_VERSION: u8 = 1;
/// Payloads up to this size are stored inside the job's record; larger
/// ones in the payloads table. Inline, an enqueue commit dirties one
/// B-tree fewer (measured: about 9 pages written per small commit instead
/// of 11, and a commit costs roughly a page write each); apart, a job's
/// state changes do not rewrite a large payload.
pub(crate) const INLINE_PAYLOAD_MAX: usize = 512;
/// Errors longer than this are cut (at a character boundary) before they
/// are stored, so a chatty handler cannot bloat every record.
pub(crate) const MAX_ERROR_LEN: usize = 4096;

/// Where a stored job is in its life. Named apart from the dispatcher's
/// [`JobStatus`](crate::JobStatus), the status of one run: a stored job
/// lives across attempts and restarts, through states a run does not have
/// (waiting for a handler, backing off, dead).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StoredJobState {
    /// Stored and due (or waiting out a retry backoff, see
    /// [`JobRecord::next_attempt_at`]).
    Pending,
    /// Pending, but no handler is registered for its name: it waits for
    /// one. Not stored as such; reported for pending jobs of such names.
    Waiting,
    /// Claimed and handed to the dispatcher (queued there or running).
    Running,
    /// Its handler returned `Ok`. Removed after the retention period.
    Succeeded,
    /// Every allowed attempt failed. Kept until it is
    /// [requeued](super::Queue::requeue) or cancelled.
    Dead,
    /// Cancelled with [`Queue::cancel`](super::Queue::cancel). Removed
    /// after the retention period.
    Cancelled,
}

impl StoredJobState {
    /// `true` for `Succeeded`, `Dead` and `Cancelled`: no attempt will be
    /// made unless the job is requeued.
    ///
    /// ```
    /// use workyard::persist::StoredJobState;
    /// assert!(StoredJobState::Dead.is_finished());
    /// assert!(!StoredJobState::Waiting.is_finished());
    /// ```
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            StoredJobState::Succeeded | StoredJobState::Dead | StoredJobState::Cancelled
        )
    }

    pub(crate) fn to_byte(self) -> u8 {
        match self {
            StoredJobState::Pending | StoredJobState::Waiting => 1,
            StoredJobState::Running => 2,
            StoredJobState::Succeeded => 3,
            StoredJobState::Dead => 4,
            StoredJobState::Cancelled => 5,
        }
    }

    fn from_byte(b: u8) -> Option<StoredJobState> {
        Some(match b {
            1 => StoredJobState::Pending,
            2 => StoredJobState::Running,
            3 => StoredJobState::Succeeded,
            4 => StoredJobState::Dead,
            5 => StoredJobState::Cancelled,
            _ => return None,
        })
    }
}

impl fmt::Display for StoredJobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StoredJobState::Pending => "pending",
            StoredJobState::Waiting => "waiting for a handler",
            StoredJobState::Running => "running",
            StoredJobState::Succeeded => "succeeded",
            StoredJobState::Dead => "dead",
            StoredJobState::Cancelled => "cancelled",
        })
    }
}

/// Milliseconds since the Unix epoch, the unit of every stored timestamp.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn to_time(ms: u64) -> Option<SystemTime> {
    (ms != 0).then(|| UNIX_EPOCH + Duration::from_millis(ms))
}

/// Cuts `s` to at most `max` bytes at a character boundary.
pub(crate) fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

/// A job as stored in the `jobs` table, with its payload inline if it is
/// at most [`INLINE_PAYLOAD_MAX`] bytes (else it is in `payloads`).
///
/// Encoding, little-endian, version 1:
/// `version u8 · state u8 · attempts u32 · interrupted u32 ·
/// enqueued_at u64 · started_at u64 · finished_at u64 · run_after u64 ·
/// name_len u16 · name · has_error u8 · [error_len u32 · error] ·
/// has_payload u8 · [payload_len u32 · payload]`.
/// Timestamps are Unix milliseconds, 0 for "never".
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Record {
    pub(crate) state: StoredJobState,
    /// Attempts started (claimed), including interrupted ones.
    pub(crate) attempts: u32,
    /// Attempts that were running when the process died.
    pub(crate) interrupted: u32,
    pub(crate) enqueued_at: u64,
    pub(crate) started_at: u64,
    pub(crate) finished_at: u64,
    /// Not before this time (a retry backoff); 0 for "now".
    pub(crate) run_after: u64,
    pub(crate) name: String,
    pub(crate) error: Option<String>,
    /// The payload, when it is stored inline.
    pub(crate) payload: Option<Vec<u8>>,
}

impl Record {
    pub(crate) fn new(name: String, now: u64) -> Record {
        Record {
            state: StoredJobState::Pending,
            attempts: 0,
            interrupted: 0,
            enqueued_at: now,
            started_at: 0,
            finished_at: 0,
            run_after: 0,
            name,
            error: None,
            payload: None,
        }
    }

    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        out.clear();
        out.push(RECORD_VERSION);
        out.push(self.state.to_byte());
        out.extend_from_slice(&self.attempts.to_le_bytes());
        out.extend_from_slice(&self.interrupted.to_le_bytes());
        for t in [
            self.enqueued_at,
            self.started_at,
            self.finished_at,
            self.run_after,
        ] {
            out.extend_from_slice(&t.to_le_bytes());
        }
        // Names are validated to fit in a u16 before they reach a record.
        let name_len = u16::try_from(self.name.len()).unwrap_or(u16::MAX);
        out.extend_from_slice(&name_len.to_le_bytes());
        out.extend_from_slice(&self.name.as_bytes()[..usize::from(name_len)]);
        // Errors are cut to MAX_ERROR_LEN and inline payloads are at most
        // INLINE_PAYLOAD_MAX bytes, far below u32::MAX.
        for field in [
            self.error.as_ref().map(String::as_bytes),
            self.payload.as_deref(),
        ] {
            match field {
                None => out.push(0),
                Some(bytes) => {
                    out.push(1);
                    let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
                    out.extend_from_slice(&len.to_le_bytes());
                    out.extend_from_slice(bytes);
                }
            }
        }
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<Record, &'static str> {
        let mut r = Reader(bytes);
        if r.u8()? != RECORD_VERSION {
            return Err("unknown record version");
        }
        let state = StoredJobState::from_byte(r.u8()?).ok_or("unknown job state")?;
        let attempts = r.u32()?;
        let interrupted = r.u32()?;
        let enqueued_at = r.u64()?;
        let started_at = r.u64()?;
        let finished_at = r.u64()?;
        let run_after = r.u64()?;
        let name_len = usize::from(r.u16()?);
        let name =
            String::from_utf8(r.take(name_len)?.to_vec()).map_err(|_| "name is not UTF-8")?;
        let error = r
            .optional()?
            .map(|text| String::from_utf8_lossy(text).into_owned());
        let payload = r.optional()?.map(<[u8]>::to_vec);
        if !r.0.is_empty() {
            return Err("trailing bytes");
        }
        Ok(Record {
            state,
            attempts,
            interrupted,
            enqueued_at,
            started_at,
            finished_at,
            run_after,
            name,
            error,
            payload,
        })
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], &'static str> {
        if self.0.len() < n {
            return Err("record is truncated");
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], &'static str> {
        let bytes = self.take(N)?;
        let mut out = [0; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    /// A flag byte, then (if 1) a u32 length and that many bytes.
    fn optional(&mut self) -> Result<Option<&'a [u8]>, &'static str> {
        match self.u8()? {
            0 => Ok(None),
            1 => {
                let len = usize::try_from(self.u32()?).map_err(|_| "field too long")?;
                self.take(len).map(Some)
            }
            _ => Err("bad field flag"),
        }
    }

    fn u8(&mut self) -> Result<u8, &'static str> {
        Ok(self.array::<1>()?[0])
    }

    fn u16(&mut self) -> Result<u16, &'static str> {
        self.array().map(u16::from_le_bytes)
    }

    fn u32(&mut self) -> Result<u32, &'static str> {
        self.array().map(u32::from_le_bytes)
    }

    fn u64(&mut self) -> Result<u64, &'static str> {
        self.array().map(u64::from_le_bytes)
    }
}

/// A snapshot of one stored job, from [`Queue::status`](super::Queue::status).
///
/// ```
/// use workyard::persist::{StoredJobState, Queue};
///
/// let dir = std::env::temp_dir().join(format!("workyard-doc-record-{}", std::process::id()));
/// std::fs::create_dir_all(&dir).unwrap();
/// # let _ = std::fs::remove_file(dir.join("jobs.redb"));
/// let queue = Queue::open(dir.join("jobs.redb")).unwrap();
/// let id = queue.enqueue("resize", b"cat.png").unwrap();
///
/// let record = queue.status(id).unwrap().unwrap();
/// assert_eq!(record.name(), "resize");
/// // No handler is registered for "resize" yet, so it waits for one.
/// assert_eq!(record.state(), StoredJobState::Waiting);
/// assert_eq!(record.attempts(), 0);
/// assert_eq!(record.payload_len(), 7);
/// assert!(record.last_error().is_none());
/// queue.stop().unwrap();
/// # std::fs::remove_dir_all(&dir).unwrap();
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct JobRecord {
    pub(crate) id: super::StoredJobId,
    pub(crate) state: StoredJobState,
    pub(crate) record: Record,
    pub(crate) payload_len: usize,
    pub(crate) run: Option<crate::JobId>,
}

impl JobRecord {
    /// The job's id.
    pub fn id(&self) -> super::StoredJobId {
        self.id
    }

    /// Its state.
    pub fn state(&self) -> StoredJobState {
        self.state
    }

    /// The handler name it was enqueued with.
    pub fn name(&self) -> &str {
        &self.record.name
    }

    /// Attempts started so far, including one running now and ones that
    /// were interrupted by a crash. Reset to 0 by a requeue.
    pub fn attempts(&self) -> u32 {
        self.record.attempts
    }

    /// How many of those attempts were running when the process died.
    pub fn interrupted(&self) -> u32 {
        self.record.interrupted
    }

    /// The payload's size in bytes.
    pub fn payload_len(&self) -> usize {
        self.payload_len
    }

    /// When it was enqueued.
    pub fn enqueued_at(&self) -> SystemTime {
        to_time(self.record.enqueued_at).unwrap_or(UNIX_EPOCH)
    }

    /// When its latest attempt started; `None` if none has.
    pub fn started_at(&self) -> Option<SystemTime> {
        to_time(self.record.started_at)
    }

    /// When it succeeded, went dead or was cancelled; `None` before.
    pub fn finished_at(&self) -> Option<SystemTime> {
        if self.state.is_finished() {
            to_time(self.record.finished_at)
        } else {
            None
        }
    }

    /// When a pending job that failed may be retried (the end of its
    /// backoff); `None` if it may run now.
    pub fn next_attempt_at(&self) -> Option<SystemTime> {
        if matches!(
            self.state,
            StoredJobState::Pending | StoredJobState::Waiting
        ) {
            to_time(self.record.run_after)
        } else {
            None
        }
    }

    /// The error of its latest failed attempt (a handler's `Err`, a panic
    /// message, or a note that the attempt was interrupted by a crash).
    pub fn last_error(&self) -> Option<&str> {
        self.record.error.as_deref()
    }

    /// The id of its current run on the [`Dispatcher`](crate::Dispatcher)
    /// while it is `Running` there: pass it to `Dispatcher::status` or
    /// `Dispatcher::info` for the live status record of the attempt.
    pub fn run_id(&self) -> Option<crate::JobId> {
        self.run
    }
}

impl fmt::Debug for JobRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobRecord")
            .field("id", &self.id)
            .field("name", &self.record.name)
            .field("state", &self.state)
            .field("attempts", &self.record.attempts)
            .field("interrupted", &self.record.interrupted)
            .field("last_error", &self.record.error)
            .field("run_id", &self.run)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let mut rec = Record::new("resize".into(), 17);
        rec.state = StoredJobState::Dead;
        rec.attempts = 3;
        rec.interrupted = 1;
        rec.started_at = 20;
        rec.finished_at = 30;
        rec.run_after = 40;
        rec.error = Some("boom ✗".into());
        rec.payload = Some(vec![1, 2, 3]);
        let mut buf = Vec::new();
        rec.encode(&mut buf);
        assert_eq!(Record::decode(&buf), Ok(rec.clone()));
        rec.error = None;
        rec.payload = Some(Vec::new());
        rec.encode(&mut buf);
        assert_eq!(Record::decode(&buf), Ok(rec.clone()));
        rec.payload = None;
        rec.encode(&mut buf);
        assert_eq!(Record::decode(&buf), Ok(rec));
    }

    #[test]
    fn rejects_every_truncation_and_bad_bytes() {
        let mut rec = Record::new("n".into(), 1);
        rec.error = Some("e".into());
        rec.payload = Some(b"p".to_vec());
        let mut buf = Vec::new();
        rec.encode(&mut buf);
        for len in 0..buf.len() {
            assert!(Record::decode(&buf[..len]).is_err(), "accepted {len} bytes");
        }
        let mut bad = buf.clone();
        bad[1] = 9;
        assert_eq!(Record::decode(&bad), Err("unknown job state"));
        bad = buf.clone();
        bad.push(0);
        assert_eq!(Record::decode(&bad), Err("trailing bytes"));
    }

    #[test]
    fn truncates_at_char_boundary() {
        assert_eq!(truncate("aé".into(), 2), "a");
        assert_eq!(truncate("abc".into(), 5), "abc");
    }
}
