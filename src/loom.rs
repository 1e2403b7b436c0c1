//! One place that chooses between `std` and `loom` primitives.
//!
//! Model tests build the crate with `RUSTFLAGS="--cfg loom"`; every module
//! imports atomics and cells from here so the same code is model-checked.
//!
//! Under loom only the protocols are exercised, by the `loom_tests` modules
//! beside the code: the status word (`job/state_loom.rs`), the result
//! hand-off (`job/handoff_loom.rs`), the id index (`job/index_loom.rs`),
//! park/wake with the search hand-over (`sleep_loom.rs`), admission
//! against shutdown (`admission_loom.rs`), a bounded queue's places
//! (`places_loom.rs`) and the control thread's inbox (`order_loom.rs`).
//! Worker threads are real OS threads (`std::thread::Builder`) and are
//! never started inside a model; the worker loop parks through the
//! [`thread`] switch below, as a joiner does, so that the models that
//! replay its steps see every park and unpark.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{fence, AtomicBool, AtomicPtr, AtomicU64, AtomicUsize};
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{fence, AtomicBool, AtomicPtr, AtomicU64, AtomicUsize};

// `Arc` stays std's even under loom: jobs are `Arc<dyn ...>`, and loom's
// `Arc` cannot be unsized. Locks are only on slow paths and stay std's too.
pub(crate) use std::sync::Mutex;

/// Locks whose waits and notifications a model checks: those of the
/// control thread's inbox and its one-shot replies (`order.rs`) and of
/// [`Signal`](crate::signal::Signal) (`wait_idle`, room in a bounded
/// queue). Loom's under `--cfg loom`, so that their models
/// (`order_loom.rs`, `signal_loom.rs`) see every lock, wait and
/// notification, and a lost notification is a loom deadlock. Only those
/// two files use them (their fields are private); the rest of the crate
/// keeps std's locks and `signal::lock`.
pub(crate) mod tracked {
    #[cfg(loom)]
    pub(crate) use loom::sync::{Condvar, Mutex, MutexGuard};
    #[cfg(not(loom))]
    pub(crate) use std::sync::{Condvar, Mutex, MutexGuard};

    /// `signal::lock` for these locks: ignores poisoning.
    pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
        m.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// `UnsafeCell` with loom's closure-based access API, so that loom can track
/// every read and write of a job's closure and result slot.
#[cfg(loom)]
pub(crate) use loom::cell::UnsafeCell;

/// `UnsafeCell` with loom's closure-based access API (zero cost outside loom).
#[cfg(not(loom))]
#[derive(Debug)]
pub(crate) struct UnsafeCell<T>(std::cell::UnsafeCell<T>);

#[cfg(not(loom))]
impl<T> UnsafeCell<T> {
    pub(crate) const fn new(value: T) -> Self {
        Self(std::cell::UnsafeCell::new(value))
    }

    #[allow(dead_code)] // loom's API has it; model tests read through it
    pub(crate) fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
        f(self.0.get())
    }

    pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
        f(self.0.get())
    }
}

/// The thread handle, `current`, `park` and `park_timeout` a joiner uses
/// while it waits for a job (`JobHandle::join`). Loom's versions under
/// `--cfg loom`, so that a lost wake-up shows up as a loom deadlock.
pub(crate) mod thread {
    #[cfg(loom)]
    pub(crate) use loom::thread::{current, park, yield_now, Thread};
    #[cfg(not(loom))]
    pub(crate) use std::thread::{current, park, park_timeout, yield_now, Thread};

    /// Loom has no clock. A timed park may return early anyway (spuriously
    /// or because the time is up), so returning at once after a yield is one
    /// of its legal behaviours; loom explores the others through `park`.
    #[cfg(loom)]
    pub(crate) fn park_timeout(_: std::time::Duration) {
        loom::thread::yield_now();
    }
}

/// Runs a loom model, counting the interleavings it explores, and prints
/// the count (`cargo test ... -- --nocapture` shows it). The preemption
/// bound is loom's `LOOM_MAX_PREEMPTIONS`, 2 when unset, so a run without
/// the variable still finishes in seconds.
#[cfg(all(test, loom))]
pub(crate) fn model(name: &str, f: impl Fn() + Sync + Send + 'static) -> usize {
    model_bounded(name, usize::MAX, f)
}

/// [`model`] with at most `most` preemptions, however high
/// `LOOM_MAX_PREEMPTIONS` is: for a model whose state space at CI's bound
/// is past CI's budget (tokio bounds some of its models the same way).
#[cfg(all(test, loom))]
pub(crate) fn model_bounded(
    name: &str,
    most: usize,
    f: impl Fn() + Sync + Send + 'static,
) -> usize {
    use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
    let iterations = std::sync::Arc::new(AtomicUsize::new(0));
    let counter = std::sync::Arc::clone(&iterations);
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(builder.preemption_bound.unwrap_or(2).min(most));
    let bound = builder.preemption_bound;
    let start = std::time::Instant::now();
    // ORDERING (counter): Relaxed: loom runs every iteration on this one
    // OS thread, and the count is read after `check` returns.
    builder.check(move || {
        counter.fetch_add(1, Relaxed);
        f();
    });
    let n = iterations.load(Relaxed);
    println!(
        "loom model {name}: {n} interleavings explored (max preemptions {}) in {:.1?}",
        bound.map_or("unbounded".to_string(), |b| b.to_string()),
        start.elapsed()
    );
    n
}
