//! A counting global allocator: the net heap bytes requested while counting
//! is on. Binaries that measure memory install it with
//! `#[global_allocator] static A: peers::alloc::Counting = peers::alloc::Counting;`.
//!
//! Off, it costs one relaxed load per call, so the timing workloads that run
//! in the same binary are not skewed by a contended counter.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicBool, AtomicIsize};

pub struct Counting;

static ON: AtomicBool = AtomicBool::new(false);
static LIVE: AtomicIsize = AtomicIsize::new(0);

fn count(delta: isize) {
    if ON.load(Relaxed) {
        LIVE.fetch_add(delta, Relaxed);
    }
}

// SAFETY: every call is forwarded unchanged to `System`; only a counter is
// updated on the side.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            count(layout.size() as isize);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            count(layout.size() as isize);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.dealloc(ptr, layout) };
        count(-(layout.size() as isize));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            count(new_size as isize - layout.size() as isize);
        }
        p
    }
}

/// Net bytes allocated (allocated minus freed) while `f` ran, by any thread.
pub fn net_bytes<R>(f: impl FnOnce() -> R) -> (isize, R) {
    LIVE.store(0, Relaxed);
    ON.store(true, Relaxed);
    let r = f();
    ON.store(false, Relaxed);
    (LIVE.load(Relaxed), r)
}

/// `true` if this binary installed [`Counting`] (a probe allocation is seen).
pub fn installed() -> bool {
    // black_box: an unused allocation may otherwise be optimised away.
    let (bytes, probe) = net_bytes(|| std::hint::black_box(Box::new([0u8; 64])));
    drop(probe);
    bytes >= 64
}
