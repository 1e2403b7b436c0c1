//! The id index: finds a job's status record by [`JobId`] for
//! `Dispatcher::status`/`info`/`cancel`, for every live job and a bounded
//! history of finished ones.
//!
//! It is sharded by id, and only `spawn` takes a shard's lock (for one hash
//! insert); workers never touch the index, so finishing a job costs it
//! nothing. Finished records leave the index lazily: each insert trims its
//! shard's oldest records once the shard holds more than its share of live
//! jobs plus its share of the history.

use super::cell::JobRef;
use super::JobId;
use crate::loom::Mutex;
use crossbeam_utils::CachePadded;
use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};

/// Most records looked at by one insert while trimming, so `spawn` stays O(1).
const TRIM_BUDGET: usize = 4;

pub(crate) struct Index {
    shards: Box<[CachePadded<Mutex<Shard>>]>,
    mask: u64,
    history_per_shard: usize,
}

#[derive(Default)]
struct Shard {
    records: HashMap<u64, JobRef, BuildHasherDefault<IdHasher>>,
    /// Ids in insertion order, oldest first; live ones are rotated to the back.
    order: VecDeque<u64>,
}

impl Index {
    /// `shards` is rounded up to a power of two; `history` finished records
    /// are kept in all (spread evenly over the shards).
    pub(crate) fn new(shards: usize, history: usize) -> Index {
        let shards = shards.next_power_of_two().max(1);
        Index {
            shards: (0..shards)
                .map(|_| CachePadded::new(Mutex::new(Shard::default())))
                .collect(),
            mask: shards as u64 - 1,
            history_per_shard: history.div_ceil(shards),
        }
    }

    fn shard(&self, id: JobId) -> &Mutex<Shard> {
        &self.shards[(id.0 & self.mask) as usize]
    }

    /// Adds a new job. `live` is how many jobs are queued or running now
    /// (an estimate is fine): records beyond the live ones and the history
    /// are trimmed, oldest finished first.
    pub(crate) fn insert(&self, job: JobRef, live: usize) {
        let id = job.header().id;
        let mut shard = self.shard(id).lock().unwrap_or_else(|e| e.into_inner());
        shard.records.insert(id.0, job);
        shard.order.push_back(id.0);
        let keep = self.history_per_shard + live / self.shards.len() + 1;
        for _ in 0..TRIM_BUDGET {
            if shard.order.len() <= keep {
                break;
            }
            let oldest = shard.order.pop_front().expect("order is longer than keep");
            let finished = shard
                .records
                .get(&oldest)
                .map_or(true, |job| job.header().state.load().is_terminal());
            if finished {
                shard.records.remove(&oldest);
            } else {
                shard.order.push_back(oldest);
            }
        }
    }

    /// Trims every shard down to its share of the history plus its live
    /// jobs. Called when the pool goes idle (`wait_idle`), so the record
    /// count at rest does not depend on how deep the queue was at the last
    /// insert.
    pub(crate) fn trim(&self) {
        for shard in self.shards.iter() {
            let mut shard = shard.lock().unwrap_or_else(|e| e.into_inner());
            let Shard { records, order } = &mut *shard;
            let mut excess = order.len().saturating_sub(self.history_per_shard);
            for _ in 0..order.len() {
                if excess == 0 {
                    break;
                }
                let oldest = order.pop_front().expect("within its length");
                if records
                    .get(&oldest)
                    .map_or(true, |job| job.header().state.load().is_terminal())
                {
                    records.remove(&oldest);
                    excess -= 1;
                } else {
                    order.push_back(oldest);
                }
            }
        }
    }

    pub(crate) fn get(&self, id: JobId) -> Option<JobRef> {
        let shard = self.shard(id).lock().unwrap_or_else(|e| e.into_inner());
        shard.records.get(&id.0).cloned()
    }

    /// Every queued or running job, in id order (takes each shard's lock
    /// in turn; for halt).
    pub(crate) fn live(&self) -> Vec<JobRef> {
        let mut live: Vec<JobRef> = Vec::new();
        for shard in self.shards.iter() {
            let shard = shard.lock().unwrap_or_else(|e| e.into_inner());
            live.extend(
                shard
                    .records
                    .values()
                    .filter(|j| !j.header().state.load().is_terminal())
                    .cloned(),
            );
        }
        live.sort_unstable_by_key(|j| j.header().id);
        live
    }

    /// Number of records held (live and finished), for tests and stats.
    pub(crate) fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|e| e.into_inner()).records.len())
            .sum()
    }
}

/// Ids are sequential, so a multiply-shift spreads them over hashbrown's
/// control bits at a fraction of SipHash's cost (ids are not attacker-chosen).
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (n ^ (n >> 29)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}
