//! # workyard
//!
//! A work-stealing job scheduler to embed in CPU-bound programs in place of
//! a hand-rolled thread pool: typed job handles, a live status record per
//! job, cancellation, pause/resume, backpressure and graceful shutdown.
//!
//! ```
//! use workyard::{Dispatcher, JobStatus};
//!
//! let pool = Dispatcher::builder().workers(4).build()?;
//!
//! // Any closure is a job; its handle gives back the typed result.
//! let sum = pool.spawn(|| (1..=100u64).sum::<u64>())?;
//! let id = sum.id();
//! assert_eq!(sum.join()?, 5050);
//!
//! // Every job has a status record, queryable by id.
//! pool.wait_idle();
//! assert_eq!(pool.status(id), Some(JobStatus::Succeeded));
//! assert_eq!(pool.stats().succeeded, 1);
//! pool.shutdown();
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## How it runs
//!
//! Each worker thread owns a `crossbeam_deque::Worker`. Jobs spawned from
//! outside go to a deque of the spawning thread's own (a *feed*, one for
//! each of up to four spawning threads) or else to a global `Injector`,
//! and start in spawn order (FIFO); jobs spawned from inside a job go to
//! the running worker's own deque, newest first (LIFO, as rayon). An idle
//! worker takes from its own deques, then from its peers' batches, the
//! feeds and the injector, then steals from a random peer; it yields a
//! few times and parks. A new job wakes a parked worker unless one is
//! searching already, and a searcher that takes a job while more wait
//! wakes the next, so a burst reaches every worker. One control thread
//! per dispatcher carries out every control order (pause, resize, halt,
//! shutdown, deadlines) one at a time. See `ARCHITECTURE.md` for the map
//! and the invariants; the protocols are argued in the module docs.
//!
//! ## Features
//!
//! * `tracing`: a `tracing` span per job (`id`, `job` type name, `worker`)
//!   and events (target `workyard`) for steals, parking, halts and
//!   cancellations. Off by default; without it there is no cost.
//! * `persist`: `persist::Queue`, a durable job queue stored with
//!   [redb](https://crates.io/crates/redb) in one file: an acknowledged
//!   enqueue survives a crash, and a job a crash interrupted runs again.
//!   Off by default; the only part of the crate that does I/O (Rust 1.90).
//! * `postgres` (implies `persist`): the same queue on PostgreSQL
//!   (`persist::QueueBuilder::connect`), shared by many processes on many
//!   machines.
//!
//! ## Fork-join
//!
//! [`join`] (and [`Dispatcher::join`]) splits work in two without a heap
//! allocation. Inside a job both halves run inline, at about the cost of
//! a function call, until an idle peer asks for work: then the oldest
//! half still pending goes on the worker's deque for it to steal, so
//! recursion needs no hand-tuned sequential cutoff. [`scope`] (and
//! [`Dispatcher::scope`]) runs jobs that borrow from the caller's stack
//! and are all finished when it returns. Waiting inside a job (a handle's
//! `join`, a stolen half, the end of a scope) runs other jobs instead of
//! blocking the worker. [`Dispatcher::install`] runs a closure on a pool's
//! worker, so that the `join`s and scopes inside it run on that pool.
//!
//! ```
//! fn sum(v: &[u64]) -> u64 {
//!     if v.len() <= 1024 {
//!         return v.iter().sum();
//!     }
//!     let (l, r) = v.split_at(v.len() / 2);
//!     let (a, b) = workyard::join(|| sum(l), || sum(r));
//!     a + b
//! }
//!
//! let pool = workyard::Dispatcher::builder().workers(2).build().unwrap();
//! let data: Vec<u64> = (1..=100_000).collect();
//! let (a, b) = pool.join(|| sum(&data[..50_000]), || sum(&data[50_000..]));
//! assert_eq!(a + b, 5_000_050_000);
//! ```
//!
//! ## The current pool and the global dispatcher
//!
//! The free functions [`join`], [`scope`], [`spawn`], [`spawn_detached`],
//! [`current_num_threads`] and [`current_thread_index`] (rayon's names)
//! work on the *current pool*: inside a job, that job's dispatcher;
//! anywhere else, `main` included, the **global dispatcher**. It is built
//! on first use with the defaults, or once beforehand with
//! [`DispatcherBuilder::build_global`]. Unlike rayon's, it can be stopped:
//! [`shutdown_global`] runs what it accepted and joins its threads. It
//! stays ended: outside any pool, `join` then runs on the caller and
//! `spawn` (and a scope's spawns) are refused, giving the job back.
//!
//! ```
//! fn sum(v: &[u64]) -> u64 {
//!     if v.len() <= 1024 {
//!         return v.iter().sum();
//!     }
//!     let (l, r) = v.split_at(v.len() / 2);
//!     let (a, b) = workyard::join(|| sum(l), || sum(r));
//!     a + b
//! }
//!
//! workyard::Dispatcher::builder().workers(4).build_global()?;
//! let data: Vec<u64> = (1..=100_000).collect();
//! assert_eq!(sum(&data), 5_000_050_000); // in parallel, from `main`
//! let handle = workyard::spawn(|| workyard::current_thread_index())?;
//! assert!(handle.join()?.is_some_and(|i| i < 4));
//! workyard::shutdown_global();
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Guarantees
//!
//! * An accepted job runs at most once, and exactly once unless it is
//!   cancelled first. A refused job is handed back to the caller, unrun.
//! * A job's status only moves forward, and a terminal status is final.
//! * A panicking job is caught: its status is `Panicked`, its joiner gets
//!   the payload, and the worker thread carries on.
//! * Values captured by a job are dropped exactly once: after it ran, or
//!   when it is cancelled before it starts.
#![deny(missing_docs)]
#![warn(clippy::undocumented_unsafe_blocks)]

// Layers, from the bottom; each module uses only lower ones (see
// ARCHITECTURE.md). Primitives:
mod error;
mod loom;
mod signal;
mod sync_wrapper;
mod time;
mod trace;
mod unwind;
mod waker_queue;
// The job record (state, info, cell, raw, task) and the id index:
mod job;
// Queues and counters:
mod admission;
mod feed;
mod order;
mod places;
mod request;
mod sleep;
mod slot;
mod stats;
// The pool's non-blocking operations:
mod pool;
// The worker loop and fork-join:
mod join;
mod worker;
// The control thread:
mod control;
// The API:
mod builder;
mod dispatcher;
mod handle;
mod job_set;
mod permit;
// Above `handle`: a guard around one.
mod cancel_on_drop;
#[cfg(feature = "persist")]
pub mod persist;
mod scope;
// The global dispatcher and the free functions on the current pool:
mod global;

pub(crate) use std::sync::Arc;

pub use builder::{DispatcherBuilder, DEFAULT_HISTORY, MAX_HISTORY, MAX_WORKERS, MIN_STACK_SIZE};
pub use cancel_on_drop::CancelOnDrop;
pub use dispatcher::Dispatcher;
pub use error::{BuildError, JobError, RejectedJob, SpawnError, TrySpawnError, WorkerError};
pub use global::{
    current_num_threads, current_thread_index, join, scope, shutdown_global, spawn, spawn_detached,
};
pub use handle::JobHandle;
pub use job::{fallible, CancelReason, Fallible, Job, JobId, JobInfo, JobStatus};
pub use job_set::JobSet;
pub use order::HaltReport;
pub use permit::{Permit, Reserve};
pub use scope::{Scope, ScopedHandle};
pub use stats::{Stats, WorkerState, WorkerStats};
pub use unwind::PanicPayload;

/// `true` if the job running on this thread has been asked to stop
/// (cancelled, past its deadline, or halted). Long jobs check it and return
/// early; it costs one atomic load. Outside a job it is `false`.
///
/// ```
/// use workyard::Dispatcher;
///
/// let pool = Dispatcher::builder().workers(1).build().unwrap();
/// let handle = pool.spawn(|| {
///     let mut spins = 0u64;
///     while !workyard::is_cancelled() {
///         spins += 1;
///         std::hint::spin_loop();
///     }
///     spins
/// }).unwrap();
/// while handle.status() == workyard::JobStatus::Queued {
///     std::thread::yield_now();
/// }
/// handle.cancel();
/// assert!(handle.join().unwrap_err().is_cancelled());
/// ```
pub fn is_cancelled() -> bool {
    job::cell::current_cancelled()
}

/// The id of the job running on this thread, if it is running one.
///
/// ```
/// let pool = workyard::Dispatcher::builder().workers(1).build().unwrap();
/// let handle = pool.spawn(workyard::current_job).unwrap();
/// let id = handle.id();
/// assert_eq!(handle.join().unwrap(), Some(id));
/// assert_eq!(workyard::current_job(), None);
/// ```
pub fn current_job() -> Option<JobId> {
    job::cell::current_id()
}

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
