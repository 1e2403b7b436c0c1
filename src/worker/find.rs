//! Where a worker looks for a job, oldest outside jobs first: its own
//! deques (children of its jobs LIFO, then its published `join` halves,
//! then the batch it took FIFO), then its peers' batches, the spawning
//! threads' feeds and the injector (each a FIFO, taken from in batches),
//! then its peers' published halves and own deques, from a random victim
//! on.
//!
//! Outside jobs move in batches (one compare-and-swap for up to 32 jobs)
//! into the taker's FIFO `batch` deque, where both the taker and its
//! thieves take the oldest first. So jobs spawned by one outside thread
//! start in spawn order: a worker never takes a later one from a feed
//! while an earlier one waits in a peer's batch it can see. (Taken into
//! the LIFO deque, as before, a thief got the newest of a batch first.)
//!
//! A peer's `local` deque is stolen from in batches too: the oldest job to
//! run and about half of the rest, at most 31 (tokio's stealer also takes
//! half), into the thief's `batch`, so a job that spawns many children
//! feeds its thief one search per batch instead of one per child. (From a
//! LIFO deque crossbeam moves the batch one compare-and-swap per job and
//! hands it over newest first; children of one job have no order.) The
//! thief's own `batch` keeps them out of `wait_on_own`, which runs only
//! what its own jobs spawned.
//!
//! A peer's `halves` are stolen one at a time, and the thief runs the half
//! at once (`WorkerCtx::execute` runs stack tasks also while the pool is
//! paused): the half's owner is inside a `join`, waiting for it, and in a
//! batch it could wait behind other jobs, also where nobody takes jobs
//! from a batch (paused, halting, past the nesting bound).

use super::WorkerCtx;
use crate::job::task::Task;
use crossbeam_deque::{Steal, Stealer};

impl WorkerCtx {
    pub(crate) fn find_job(&self) -> Option<Task> {
        if self.pool.is_paused() {
            return None;
        }
        self.local
            .pop()
            .or_else(|| self.halves.pop())
            .or_else(|| self.batch.pop())
            .or_else(|| self.steal())
    }

    fn steal(&self) -> Option<Task> {
        let slots = self.pool.used_slots();
        let n = slots.len();
        let start = (self.next_random() % n as u64) as usize;
        let peers = || (start..n).chain(0..start).filter(|&v| v != self.index);
        loop {
            let mut retry = false;
            let mut outcome = |steal: Steal<Task>| match steal {
                Steal::Success(job) => Some(job),
                Steal::Retry => {
                    retry = true;
                    None
                }
                Steal::Empty => None,
            };
            for victim in peers() {
                let batch = &slots[victim].batch_stealer;
                // `is_empty` first, as for the feeds below.
                if batch.is_empty() {
                    continue;
                }
                if let Some(job) = outcome(batch.steal()) {
                    self.counted_steal(victim);
                    return Some(job);
                }
            }
            for feed in self.pool.feeds().in_use() {
                if let Some(job) = outcome(self.take_batch(&feed.stealer)) {
                    return Some(job);
                }
            }
            if let Some(job) = outcome(self.pool.injector().steal_batch_and_pop(&self.batch)) {
                return Some(job);
            }
            for victim in peers() {
                let slot = &slots[victim];
                // `is_empty` first: halves are rare (one per steal request).
                if !slot.halves_stealer.is_empty() {
                    if let Some(job) = outcome(slot.halves_stealer.steal()) {
                        self.counted_steal(victim);
                        return Some(job);
                    }
                }
                if let Some(job) = outcome(slot.stealer.steal_batch_and_pop(&self.batch)) {
                    self.counted_steal(victim);
                    return Some(job);
                }
            }
            if !retry {
                return None;
            }
        }
    }

    /// A batch from a feed into our FIFO `batch` deque.
    fn take_batch(&self, from: &Stealer<Task>) -> Steal<Task> {
        // `is_empty` first (two loads and a SeqCst fence): a steal from an
        // empty deque also pins the epoch, a locked instruction.
        if from.is_empty() {
            return Steal::Empty;
        }
        from.steal_batch_and_pop(&self.batch)
    }

    fn counted_steal(&self, victim: usize) {
        self.counters().count_steal();
        crate::trace::event!(trace, thief = self.index, victim, "steal");
        let _ = victim;
    }
}
