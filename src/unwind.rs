//! Catching a job's panic so the worker thread never unwinds.

use crate::sync_wrapper::SyncWrapper;
use crate::Arc;
use std::any::Any;
use std::cell::RefCell;
use std::fmt;
use std::panic::{self, AssertUnwindSafe};

/// Runs `f`, turning a panic into `Err(payload)`.
pub(crate) fn catch<R>(f: impl FnOnce() -> R) -> Result<R, Box<dyn Any + Send>> {
    // AssertUnwindSafe: after a panic the job's state is never observed
    // again; only the payload travels on, to the joiner.
    panic::catch_unwind(AssertUnwindSafe(f))
}

/// How many panic payloads in a row `drop_quietly` drops, each the payload
/// of the previous one's panicking destructor, before it leaks the next.
const PAYLOAD_DEPTH: usize = 8;

/// Drops `value`, swallowing a panic from its destructor: a worker must
/// survive a job whose captured values panic on drop. A panic payload
/// whose own destructor panics is dropped the same way, and so on; past
/// [`PAYLOAD_DEPTH`] such payloads the last one is leaked, so that a
/// payload that panics with another like itself on every drop cannot keep
/// the worker busy forever.
pub(crate) fn drop_quietly<T>(value: T) {
    let mut escaped = match catch(move || drop(value)) {
        Ok(()) => return,
        Err(payload) => payload,
    };
    for _ in 0..PAYLOAD_DEPTH {
        escaped = match catch(move || drop(escaped)) {
            Ok(()) => return,
            Err(payload) => payload,
        };
    }
    std::mem::forget(escaped);
}

/// `DispatcherBuilder::panic_handler`: gets the payloads of panics that
/// nobody else will see.
pub(crate) type PanicHandler = Arc<dyn Fn(PanicPayload) + Send + Sync>;

thread_local! {
    /// The panic handler of the pool this thread is a worker of, set as
    /// the worker starts: only a pool's own workers run its jobs and its
    /// start and exit handlers, so a worker needs only its pool's.
    static PANIC_HANDLER: RefCell<Option<PanicHandler>> = const { RefCell::new(None) };
}

/// Makes `handler` the calling worker thread's panic handler.
pub(crate) fn set_panic_handler(handler: Option<PanicHandler>) {
    PANIC_HANDLER.with(|h| *h.borrow_mut() = handler);
}

/// Hands the payload of a panic that nobody will see to this thread's
/// panic handler, or, without one, drops it quietly. A panic in the
/// handler is caught too, and its own payload dropped quietly.
pub(crate) fn unseen_panic(payload: PanicPayload) {
    // Cloned out, so the handler runs without the cell borrowed. During
    // the thread's exit the cell may be gone: then there is no handler.
    let handler = PANIC_HANDLER
        .try_with(|h| h.borrow().clone())
        .ok()
        .flatten();
    match handler {
        Some(handler) => {
            if let Err(escaped) = catch(move || handler(payload)) {
                drop_quietly(escaped);
            }
        }
        None => drop_quietly(payload),
    }
}

/// The payload of a panicked job, with its message when it had one.
///
/// It is `Send + Sync` whatever the payload, so that a
/// [`JobError`](crate::JobError) can go into `anyhow::Error` or
/// `Box<dyn Error + Send + Sync>`: the payload itself comes out only by
/// value ([`into_inner`](Self::into_inner)), as tokio's `JoinError` gives
/// its own.
///
/// ```
/// let pool = workyard::Dispatcher::builder().workers(1).build().unwrap();
/// let err = pool.spawn(|| -> () { panic!("disk full") }).unwrap().join().unwrap_err();
/// let payload = err.into_panic().unwrap();
/// assert_eq!(payload.message(), Some("disk full"));
/// // Or re-raise it on this thread: std::panic::resume_unwind(payload.into_inner());
/// ```
pub struct PanicPayload(SyncWrapper<Box<dyn Any + Send>>);

impl PanicPayload {
    pub(crate) fn new(payload: Box<dyn Any + Send>) -> Self {
        PanicPayload(SyncWrapper::new(payload))
    }

    /// The panic message, when the job panicked with a string (as `panic!`
    /// with a message does).
    pub fn message(&self) -> Option<&str> {
        // Both are `Sync`: a shared look at them is sound.
        if let Some(s) = self.0.downcast_ref::<&'static str>() {
            Some(s)
        } else {
            self.0.downcast_ref::<String>().map(String::as_str)
        }
    }

    /// The original payload, to re-raise with [`std::panic::resume_unwind`].
    pub fn into_inner(self) -> Box<dyn Any + Send> {
        self.0.into_inner()
    }
}

impl fmt::Debug for PanicPayload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.message() {
            Some(m) => f.debug_tuple("PanicPayload").field(&m).finish(),
            None => f.write_str("PanicPayload(<non-string payload>)"),
        }
    }
}
