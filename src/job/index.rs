//! The id index: finds a job's status record by [`JobId`] for
//! `Dispatcher::status`/`info`/`cancel` and for `halt`.
//!
//! Ids are handed out sequentially, so the index is a ring of `R` slots (a
//! power of two) addressed by `id % R`: inserting is one compare-and-swap
//! and one store on one slot, with no hashing. The ring keeps the records of the last `R`
//! jobs spawned, finished or not: that is the history. A job pushed out of
//! the ring while still queued or running (only when more than `R` jobs are
//! live, a deep queue) moves to an overflow map, so every live job stays
//! findable, also while it moves; finished jobs leave the overflow lazily.
//!
//! A slot is a [`JobRef`]'s pointer with a lock bit. A reader sets it for
//! the moment it takes a reference of its own: the record cannot be pushed
//! out and freed meanwhile. An insert waits while the bit is set, then
//! sets it itself (one compare-and-swap) while it looks at the record it
//! pushes out and, if that one is still live, moves it to the overflow; a
//! plain store of the new record unlocks the slot. So a live job is in the
//! slot or in the overflow at every moment, and a spawn costs one
//! compare-and-swap and one store to the same line; workers never touch
//! the index.
//!
//! The record pushed out of the ring was last written by the worker that
//! ran it, on another core: reading its status and dropping it was a cache
//! miss per spawn, the largest single cost of a spawn. So each insert also
//! prefetches the record that the insert [`PREFETCH_AHEAD`] ids later will
//! push out.

use super::cell::{Header, JobRef};
use super::JobId;
use crate::loom::AtomicPtr;
use std::collections::VecDeque;
use std::ptr::{self, NonNull};
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};

// The overflow's lock is loom's under `--cfg loom`, unlike the crate's
// other locks: a record moving into the overflow is the subject of the
// model in `index_loom.rs`, and loom must schedule around that lock.
#[cfg(loom)]
use loom::sync::{Mutex, MutexGuard};
#[cfg(not(loom))]
use std::sync::{Mutex, MutexGuard};

/// Locks the overflow, ignoring poisoning (as `signal::lock`).
fn lock(m: &Mutex<Overflow>) -> MutexGuard<'_, Overflow> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Most finished overflow records dropped by one overflow insert.
const TRIM_BUDGET: usize = 4;

/// How many inserts ahead the record to be pushed out is prefetched: a few
/// spawns' time covers a miss to another core's cache.
const PREFETCH_AHEAD: u64 = 8;

/// The lock bit of a slot (a header is 8-byte aligned, so bit 0 is free).
const LOCKED: usize = 1;

pub(crate) struct Index {
    /// Each slot owns one count of the record it points at (or is null).
    ring: Box<[Slot]>,
    mask: u64,
    /// `false` for `history(0)`: finished records are not answered for.
    keep_finished: bool,
    overflow: Mutex<Overflow>,
    /// Records in the overflow (a hint for `has_overflow`, kept under its
    /// lock).
    overflow_len: AtomicUsize,
}

/// One ring slot: a [`JobRef`] as a pointer, with the [`LOCKED`] bit.
struct Slot(AtomicPtr<Header>);

/// Live jobs pushed out of the ring, sorted by id. They leave in id order
/// (mostly), so the overflow is appended at the back, trimmed at the front,
/// and searched by binary search.
#[derive(Default)]
struct Overflow {
    jobs: VecDeque<JobRef>,
}

/// Asks the CPU to start loading the two cache lines at `address` (0: none)
/// for writing (`prefetchw`): the record's status and count are written
/// when it is pushed out, and its memory is rewritten by the next spawn
/// that reuses it. Prefetching never faults, whatever the address; a CPU
/// without `prefetchw` runs it as a no-op. (`_mm_prefetch` with
/// `_MM_HINT_ET0` compiles to a plain read prefetch unless the `prfchw`
/// target feature is enabled at build time.)
#[inline]
fn prefetch(address: usize) {
    #[cfg(all(target_arch = "x86_64", not(miri)))]
    if address != 0 {
        // SAFETY: a prefetch is only a hint: it reads nothing into the
        // program and never faults, even for a freed or unmapped address.
        unsafe {
            std::arch::asm!(
                "prefetchw [{0}]",
                "prefetchw [{0} + 64]",
                in(reg) address,
                options(nostack, preserves_flags, readonly)
            );
        }
    }
    #[cfg(not(all(target_arch = "x86_64", not(miri))))]
    let _ = address;
}

/// Waits a moment for a reader to clear a slot's lock bit.
fn backoff(spins: &mut u32) {
    *spins += 1;
    if *spins < 64 && !cfg!(loom) {
        std::hint::spin_loop();
    } else {
        // The reader was descheduled inside its few instructions. (Under
        // loom, every wait yields, so that the model runs the reader.)
        crate::loom::thread::yield_now();
    }
}

impl Slot {
    fn empty() -> Slot {
        Slot(AtomicPtr::new(ptr::null_mut()))
    }

    /// Puts `job` in the slot. A live record it pushes out moves to
    /// `overflow` while the slot still holds it, locked: a lookup or a
    /// halt's walk finds it in the slot before, in the overflow after, and
    /// waits for the lock in between. (Moving it after the swap left a
    /// moment in which a live job was in neither.) A finished record
    /// pushed out is returned, for the caller to drop once the slot is
    /// unlocked.
    fn replace(
        &self,
        job: JobRef,
        overflow: &Mutex<Overflow>,
        overflow_len: &AtomicUsize,
    ) -> Option<JobRef> {
        let new = job.into_raw().as_ptr();
        let mut spins = 0;
        // ORDERING (both loads): Relaxed: the CASes below Acquire.
        let mut current = self.0.load(Relaxed);
        let old = loop {
            if current as usize & LOCKED != 0 {
                backoff(&mut spins);
                current = self.0.load(Relaxed);
                continue;
            }
            if current.is_null() {
                // ORDERING: Release publishes the new record to the
                // readers that Acquire the slot; there is no old record to
                // take over. Relaxed on failure, which only retries.
                match self.0.compare_exchange_weak(current, new, Release, Relaxed) {
                    Ok(_) => return None,
                    Err(seen) => current = seen,
                }
                continue;
            }
            let locked = current.cast::<u8>().wrapping_add(LOCKED).cast::<Header>();
            // ORDERING: Acquire takes over the old record: it reads the
            // Release of its inserter, and of the last reader's unlock, so
            // that reader's increment of the count happens before our
            // decrement. Relaxed on failure, which only retries.
            match self
                .0
                .compare_exchange_weak(current, locked, Acquire, Relaxed)
            {
                // SAFETY: the slot owned one count of `current`, which it
                // hands to us with the pointer; the lock bit keeps every
                // reader off the slot until we publish `new`.
                Ok(_) => break unsafe { JobRef::adopt(NonNull::new_unchecked(current)) },
                Err(seen) => current = seen,
            }
        };
        // No reader waits for this slot's bit while holding the overflow's
        // lock (`get` and `live` take them one after the other), so taking
        // the overflow's lock here cannot deadlock.
        let finished = if is_live(&old) {
            let mut overflow = lock(overflow);
            overflow.insert(old);
            overflow.publish_len(overflow_len);
            None
        } else {
            Some(old)
        };
        // ORDERING: Release publishes the new record to the readers that
        // Acquire the slot, and unlocks it: a reader that then misses the
        // old record here finds it in the overflow, moved before this.
        self.0.store(new, Release);
        finished
    }

    /// The address of the record in the slot, as a prefetch hint only.
    fn address(&self) -> usize {
        // ORDERING: Relaxed: nothing is read through it.
        self.0.load(Relaxed) as usize & !LOCKED
    }

    /// A reference of our own to the record in the slot, if `keep` it.
    fn get(&self, keep: impl FnOnce(&JobRef) -> bool) -> Option<JobRef> {
        let mut spins = 0;
        // ORDERING (both loads): Relaxed: nothing is read through the
        // pointer before the CAS below, which Acquires it.
        let mut current = self.0.load(Relaxed);
        loop {
            if current.is_null() {
                return None;
            }
            if current as usize & LOCKED != 0 {
                backoff(&mut spins);
                current = self.0.load(Relaxed);
                continue;
            }
            // The lock bit set by pointer arithmetic, which keeps the
            // pointer's provenance (unlike a round trip through usize).
            let locked = current.cast::<u8>().wrapping_add(LOCKED).cast::<Header>();
            // ORDERING: Acquire, to read the record its inserter published;
            // Relaxed on failure, which only retries.
            match self
                .0
                .compare_exchange_weak(current, locked, Acquire, Relaxed)
            {
                Ok(_) => break,
                Err(seen) => current = seen,
            }
        }
        // SAFETY: the lock bit keeps the slot's count in place (an insert
        // waits for us), so the record is alive; `ManuallyDrop` borrows
        // the slot's count without giving it up.
        let slot_ref =
            std::mem::ManuallyDrop::new(unsafe { JobRef::adopt(NonNull::new_unchecked(current)) });
        let found = keep(&slot_ref).then(|| JobRef::clone(&slot_ref));
        // ORDERING: Release: an insert that Acquires the unlocked slot sees
        // our increment done before it drops the slot's count.
        self.0.store(current, Release);
        found
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        // ORDERING: Acquire, for the record's last inserter (the index is
        // being dropped, so no reader holds the lock bit).
        let current = self.0.load(Acquire);
        // SAFETY: the slot owned one count of its record.
        drop(NonNull::new(current).map(|p| unsafe { JobRef::adopt(p) }));
    }
}

fn is_live(job: &JobRef) -> bool {
    !job.header().state.load().is_terminal()
}

fn id_of(job: &JobRef) -> u64 {
    job.header().id.0
}

impl Overflow {
    fn insert(&mut self, job: JobRef) {
        let id = id_of(&job);
        if self.jobs.back().map_or(true, |last| id_of(last) < id) {
            self.jobs.push_back(job);
        } else {
            // Concurrent spawners can push out of order; keep it sorted.
            let at = self.jobs.partition_point(|j| id_of(j) < id);
            self.jobs.insert(at, job);
        }
        self.trim(TRIM_BUDGET);
    }

    /// Drops up to `budget` finished jobs from the front, stopping at the
    /// oldest live one. Looking at the front costs no cache miss in steady
    /// state (the same record is checked until it finishes); records stuck
    /// behind a long-running job leave once it finishes (or at `trim_all`).
    fn trim(&mut self, budget: usize) {
        for _ in 0..budget {
            match self.jobs.front() {
                Some(job) if !is_live(job) => drop(self.jobs.pop_front()),
                _ => break,
            }
        }
    }

    fn trim_all(&mut self) {
        self.jobs.retain(is_live);
    }

    /// Publishes the length (under the overflow's lock) for `has_overflow`.
    fn publish_len(&self, len: &AtomicUsize) {
        // ORDERING: Relaxed: see `Index::has_overflow`.
        len.store(self.jobs.len(), Relaxed);
    }

    fn get(&self, id: u64) -> Option<&JobRef> {
        self.jobs
            .binary_search_by_key(&id, id_of)
            .ok()
            .map(|at| &self.jobs[at])
    }
}

impl Index {
    /// A ring of at least `history` slots (rounded up to a power of two).
    pub(crate) fn new(history: usize) -> Index {
        let slots = history.max(1).next_power_of_two();
        Index {
            ring: (0..slots).map(|_| Slot::empty()).collect(),
            mask: slots as u64 - 1,
            keep_finished: history > 0,
            overflow: Mutex::new(Overflow::default()),
            overflow_len: AtomicUsize::new(0),
        }
    }

    fn slot(&self, id: u64) -> &Slot {
        &self.ring[(id & self.mask) as usize]
    }

    /// Adds a new job, pushing out the record `R` ids older.
    pub(crate) fn insert(&self, job: JobRef) {
        let id = job.header().id.0;
        prefetch(self.slot(id.wrapping_add(PREFETCH_AHEAD)).address());
        // A finished record pushed out is dropped here, after the slot is
        // unlocked.
        drop(
            self.slot(id)
                .replace(job, &self.overflow, &self.overflow_len),
        );
    }

    pub(crate) fn get(&self, id: JobId) -> Option<JobRef> {
        let found = self.slot(id.0).get(|job| job.header().id == id);
        let found = found.or_else(|| lock(&self.overflow).get(id.0).cloned());
        found.filter(|job| self.keep_finished || is_live(job))
    }

    /// Every queued or running job, in id order (for halt; slow).
    pub(crate) fn live(&self) -> Vec<JobRef> {
        let mut live: Vec<JobRef> = self
            .ring
            .iter()
            .filter_map(|slot| slot.get(is_live))
            .collect();
        live.extend(
            lock(&self.overflow)
                .jobs
                .iter()
                .filter(|j| is_live(j))
                .cloned(),
        );
        live.sort_unstable_by_key(|j| j.header().id);
        live
    }

    /// Drops every finished record from the overflow (when the pool is idle).
    pub(crate) fn trim(&self) {
        let mut overflow = lock(&self.overflow);
        overflow.trim_all();
        overflow.publish_len(&self.overflow_len);
    }

    /// Does the overflow hold records (live, or finished and waiting for a
    /// trim)? A hint: read without the lock.
    pub(crate) fn has_overflow(&self) -> bool {
        // ORDERING: Relaxed: a hint for the idle path, which trims under
        // the lock; a stale answer only delays a trim to the next idle.
        self.overflow_len.load(Relaxed) != 0
    }

    /// Number of records held (ring slots in use plus overflow).
    pub(crate) fn len(&self) -> usize {
        let in_ring = self.ring.iter().filter(|slot| slot.address() != 0).count();
        in_ring + lock(&self.overflow).jobs.len()
    }
}

#[cfg(all(test, loom))]
#[path = "index_loom.rs"]
mod loom_tests;

#[cfg(test)]
#[cfg(not(loom))]
mod tests {
    use super::*;
    use crate::job::cell::JobCell;

    fn job(id: u64) -> JobRef {
        let (_handle, [job]) = JobCell::spawn(JobId(id), || (), 0);
        job
    }

    fn finish(job: &JobRef) {
        assert!(crate::job::cell::claim(job, 0, crate::time::now()));
        job.run(0, &crate::job::raw::NoTally);
    }

    #[test]
    fn keeps_the_last_ring_of_ids_and_every_live_job() {
        let index = Index::new(4);
        let jobs: Vec<JobRef> = (1..=10).map(job).collect();
        for j in &jobs {
            index.insert(j.clone());
        }
        // Jobs 1..=6 were pushed out while live: all in the overflow.
        assert_eq!(index.len(), 10);
        for j in &jobs[..8] {
            finish(j);
        }
        index.insert(job(11));
        index.trim();
        assert!(
            index.get(JobId(1)).is_none(),
            "finished, pushed out, trimmed"
        );
        assert!(index.get(JobId(7)).is_none(), "finished, pushed out by 11");
        assert!(
            index.get(JobId(8)).is_some(),
            "finished but within the last 4 ids"
        );
        assert_eq!(
            index
                .live()
                .iter()
                .map(|j| j.header().id.0)
                .collect::<Vec<_>>(),
            [9, 10, 11]
        );
        assert_eq!(index.len(), 4);
    }

    #[test]
    fn a_stale_slot_does_not_answer_for_another_id() {
        let index = Index::new(2);
        index.insert(job(3));
        assert!(index.get(JobId(5)).is_none());
        assert!(index.get(JobId(3)).is_some());
    }
}
