//! The id index: finds a job's status record by [`JobId`] for
//! `Dispatcher::status`/`info`/`cancel` and for `halt`.
//!
//! Ids are handed out sequentially, so the index is a ring of `R` slots (a
//! power of two) addressed by `id % R`: inserting is one uncontended lock of
//! one slot and a pointer swap, with no hashing. The ring keeps the records
//! of the last `R` jobs spawned, finished or not: that is the history. A
//! job pushed out of the ring while still queued or running (only when more
//! than `R` jobs are live, a deep queue) moves to an overflow map, so every
//! live job stays findable; finished jobs leave the overflow lazily.
//!
//! The slot locks are `std::sync::Mutex`es that only a lookup of that same
//! slot contends for; workers never touch the index.
//!
//! The record pushed out of the ring was last written by the worker that
//! ran it, on another core: reading its status and dropping it was a cache
//! miss per spawn, the largest single cost of a spawn. So each insert also
//! prefetches the record that the insert [`PREFETCH_AHEAD`] ids later will
//! push out, from a copy of its address kept beside the slot.

use super::cell::JobRef;
use super::JobId;
use crate::loom::Mutex;
use crate::signal::lock;
use std::collections::VecDeque;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::Relaxed;

/// Most finished overflow records dropped by one overflow insert.
const TRIM_BUDGET: usize = 4;

/// How many inserts ahead the record to be pushed out is prefetched: a few
/// spawns' time covers a miss to another core's cache.
const PREFETCH_AHEAD: u64 = 8;

pub(crate) struct Index {
    ring: Box<[Mutex<Option<JobRef>>]>,
    /// The address of the record in each ring slot, only ever used as a
    /// prefetch hint (a stale one costs a useless prefetch, nothing more).
    addresses: Box<[AtomicUsize]>,
    mask: u64,
    /// `false` for `history(0)`: finished records are not answered for.
    keep_finished: bool,
    overflow: Mutex<Overflow>,
}

/// Live jobs pushed out of the ring, sorted by id. They leave in id order
/// (mostly), so the overflow is appended at the back, trimmed at the front,
/// and searched by binary search.
#[derive(Default)]
struct Overflow {
    jobs: VecDeque<JobRef>,
}

/// Where a record's memory starts: the `Arc`'s counts, 16 bytes before its
/// data. Pushing a record out touches the counts, the status word and the
/// job slot, all within the record's first 128 bytes.
fn record_address(job: &JobRef) -> usize {
    (crate::Arc::as_ptr(job) as *const u8 as usize).wrapping_sub(16)
}

/// Asks the CPU to start loading the two cache lines at `address` (0: none)
/// for writing (`prefetchw`): the record's counts and status are written when
/// it is pushed out, and its memory is rewritten by the next spawn that
/// reuses it. Prefetching never faults, whatever the address; a CPU without
/// `prefetchw` runs it as a no-op. (`_mm_prefetch` with `_MM_HINT_ET0`
/// compiles to a plain read prefetch unless the `prfchw` target feature is
/// enabled at build time.)
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
            ring: (0..slots).map(|_| Mutex::new(None)).collect(),
            addresses: (0..slots).map(|_| AtomicUsize::new(0)).collect(),
            mask: slots as u64 - 1,
            keep_finished: history > 0,
            overflow: Mutex::new(Overflow::default()),
        }
    }

    fn slot(&self, id: JobId) -> &Mutex<Option<JobRef>> {
        &self.ring[(id.0 & self.mask) as usize]
    }

    /// Adds a new job, pushing out the record `R` ids older.
    pub(crate) fn insert(&self, job: JobRef) {
        let id = job.header().id.0;
        let at = (id & self.mask) as usize;
        // ORDERING (both): Relaxed, a hint: nothing is read through it.
        self.addresses[at].store(record_address(&job), Relaxed);
        let ahead = (id.wrapping_add(PREFETCH_AHEAD) & self.mask) as usize;
        prefetch(self.addresses[ahead].load(Relaxed));
        let old = lock(&self.ring[at]).replace(job);
        if let Some(old) = old {
            if is_live(&old) {
                lock(&self.overflow).insert(old);
            }
            // A finished record is dropped here, outside the slot lock.
        }
    }

    pub(crate) fn get(&self, id: JobId) -> Option<JobRef> {
        let found = lock(self.slot(id))
            .as_ref()
            .filter(|job| job.header().id == id)
            .cloned();
        let found = found.or_else(|| lock(&self.overflow).get(id.0).cloned());
        found.filter(|job| self.keep_finished || is_live(job))
    }

    /// Every queued or running job, in id order (for halt; slow).
    pub(crate) fn live(&self) -> Vec<JobRef> {
        let mut live: Vec<JobRef> = self
            .ring
            .iter()
            .filter_map(|slot| lock(slot).clone())
            .filter(is_live)
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
        lock(&self.overflow).trim_all();
    }

    /// Number of records held (ring slots in use plus overflow).
    pub(crate) fn len(&self) -> usize {
        let in_ring = self.ring.iter().filter(|slot| lock(slot).is_some()).count();
        in_ring + lock(&self.overflow).jobs.len()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::job::cell::JobCell;
    use crate::Arc;

    fn job(id: u64) -> JobRef {
        let cell: Arc<JobCell<fn()>> = JobCell::new(JobId(id), (|| ()) as fn(), 0);
        cell
    }

    fn finish(job: &JobRef) {
        assert!(crate::job::cell::claim(job, 0, crate::time::now()));
        job.run(0);
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
