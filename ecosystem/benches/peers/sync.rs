//! The small synchronisation pieces a user adds around a pool that has no
//! handles or `wait_idle` of its own: a countdown to wait for a batch, a
//! one-shot result slot per job, and a gate that holds workers back.
//!
//! They are written the way a careful user would write them (no syscall on
//! the fast path), so that the peers are not handicapped by their glue.

use crossbeam_utils::CachePadded;
use std::cell::UnsafeCell;
use std::mem::MaybeUninit;
use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed};
use std::sync::atomic::{AtomicU8, AtomicUsize};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::Thread;

/// Counts jobs down to zero; `wait` blocks until it gets there. Only the
/// last `done` takes the lock.
#[derive(Default)]
pub struct Countdown {
    left: CachePadded<AtomicUsize>,
    lock: Mutex<()>,
    zero: Condvar,
}

impl Countdown {
    /// A countdown that lives for the rest of the process, so that `'static`
    /// jobs can borrow it without an `Arc` count per job.
    pub fn leak() -> &'static Countdown {
        Box::leak(Box::default())
    }

    /// Arms the countdown for `n` more `done` calls.
    pub fn add(&self, n: usize) {
        self.left.fetch_add(n, Relaxed);
    }

    pub fn done(&self) {
        // ORDERING: Release publishes the job's effects to `wait`'s Acquire.
        if self.left.fetch_sub(1, AcqRel) == 1 {
            // Taking the lock orders this notify after a waiter's check.
            drop(self.lock.lock().unwrap_or_else(|e| e.into_inner()));
            self.zero.notify_all();
        }
    }

    pub fn wait(&self) {
        let mut guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        while self.left.load(Acquire) != 0 {
            guard = self.zero.wait(guard).unwrap_or_else(|e| e.into_inner());
        }
    }
}

const EMPTY: u8 = 0;
const WAITING: u8 = 1;
const FULL: u8 = 2;

/// A one-shot result slot: one allocation, and an unpark only when the
/// receiver is already blocked (a Mutex+Condvar slot would make a futex
/// syscall on every send).
struct Slot<T> {
    state: AtomicU8,
    value: UnsafeCell<MaybeUninit<T>>,
    receiver: UnsafeCell<Option<Thread>>,
}

// SAFETY: `value` is written once by the sender before FULL is published and
// read once by the receiver after it saw FULL; `receiver` is written by the
// receiver before WAITING is published and read by the sender after it saw
// WAITING. The state word orders both hand-offs.
unsafe impl<T: Send> Sync for Slot<T> {}

pub struct Sender<T>(Arc<Slot<T>>);
pub struct Receiver<T>(Arc<Slot<T>>);

pub fn oneshot<T>() -> (Sender<T>, Receiver<T>) {
    let slot = Arc::new(Slot {
        state: AtomicU8::new(EMPTY),
        value: UnsafeCell::new(MaybeUninit::uninit()),
        receiver: UnsafeCell::new(None),
    });
    (Sender(slot.clone()), Receiver(slot))
}

impl<T> Sender<T> {
    pub fn send(self, value: T) {
        // SAFETY: only this (consumed) sender writes `value`, before FULL.
        unsafe { (*self.0.value.get()).write(value) };
        // ORDERING: Release publishes the value; Acquire sees the receiver's
        // thread if it announced itself.
        if self.0.state.swap(FULL, AcqRel) == WAITING {
            // SAFETY: WAITING was published after the receiver wrote its thread.
            if let Some(thread) = unsafe { (*self.0.receiver.get()).take() } {
                thread.unpark();
            }
        }
    }
}

impl<T> Receiver<T> {
    /// Blocks until the value is sent. A sender dropped unsent (its job
    /// panicked) would block this forever; the benches' jobs never panic.
    pub fn recv(self) -> T {
        if self.0.state.load(Acquire) != FULL {
            // SAFETY: the sender reads `receiver` only after seeing WAITING,
            // which is not set yet.
            unsafe { *self.0.receiver.get() = Some(std::thread::current()) };
            // ORDERING: Release publishes the thread; Acquire sees the value
            // if the sender got there first.
            let _ = self
                .0
                .state
                .compare_exchange(EMPTY, WAITING, AcqRel, Acquire);
            while self.0.state.load(Acquire) != FULL {
                std::thread::park();
            }
        }
        // SAFETY: FULL was published after the value was written, and only
        // this consumed receiver reads it.
        let value = unsafe { (*self.0.value.get()).assume_init_read() };
        // Tells `Slot::drop` that the value has moved out.
        self.0.state.store(EMPTY, Relaxed);
        value
    }
}

impl<T> Drop for Slot<T> {
    fn drop(&mut self) {
        // A value sent but never received is still ours to drop.
        if *self.state.get_mut() == FULL {
            // SAFETY: FULL means written and not moved out by `recv`.
            unsafe { self.value.get_mut().assume_init_drop() };
        }
    }
}

/// Holds jobs that call `pass` until `open`, so that everything spawned
/// meanwhile stays queued.
#[derive(Default)]
pub struct Gate {
    arrived: AtomicUsize,
    open: Mutex<bool>,
    opened: Condvar,
}

impl Gate {
    pub fn leak() -> &'static Gate {
        Box::leak(Box::default())
    }

    /// Called by a job: counts itself in, then blocks until the gate opens.
    pub fn pass(&self) {
        self.arrived.fetch_add(1, AcqRel);
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        while !*open {
            open = self.opened.wait(open).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Waits until `n` jobs are blocked in `pass`.
    pub fn wait_arrived(&self, n: usize) {
        while self.arrived.load(Acquire) < n {
            std::thread::sleep(std::time::Duration::from_micros(100));
        }
    }

    pub fn open(&self) {
        *self.open.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.opened.notify_all();
    }
}
