//! One place that chooses between `std` and `loom` primitives.
//!
//! Model tests build the crate with `RUSTFLAGS="--cfg loom"`; every module
//! imports atomics and cells from here so the same code is model-checked.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{fence, AtomicBool, AtomicU64, AtomicUsize};
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{fence, AtomicBool, AtomicU64, AtomicUsize};

// `Arc` stays std's even under loom: jobs are `Arc<dyn ...>`, and loom's
// `Arc` cannot be unsized. Locks are only on slow paths and stay std's too.
pub(crate) use std::sync::{Condvar, Mutex};

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
