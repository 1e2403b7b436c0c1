//! Idle cost: the CPU time the process burns while a pool that just finished
//! some work sits idle. It counts the spin-down right after the work (that
//! is part of what idling costs) and whatever polling follows.
//!
//! The measurement is process-wide, so only one pool may be alive: callers
//! build the contender, call this, and shut it down before the next.

use super::sys::process_cpu;
use super::{spawn, Contender};
use std::time::Duration;

/// How long the pool sits idle per measurement.
pub const WINDOW: Duration = Duration::from_secs(2);

/// Milliseconds of CPU per second of idling, after 10,000 tiny jobs.
pub fn cpu_ms_per_s(c: &Contender, window: Duration) -> f64 {
    spawn::detached(c, 10_000);
    let before = process_cpu();
    std::thread::sleep(window);
    let burnt = process_cpu() - before;
    burnt.as_secs_f64() * 1e3 / window.as_secs_f64()
}

/// The same figure with no pool at all: what the process costs by itself.
pub fn baseline_ms_per_s(window: Duration) -> f64 {
    let before = process_cpu();
    std::thread::sleep(window);
    (process_cpu() - before).as_secs_f64() * 1e3 / window.as_secs_f64()
}

/// Lets the threads of a pool just shut down (rayon's and threadpool's exit
/// after their handle is gone) leave before the next measurement.
pub fn settle() {
    std::thread::sleep(Duration::from_millis(300));
}
