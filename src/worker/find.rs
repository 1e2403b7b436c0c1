//! Where a worker looks for a job, oldest outside jobs first: its own
//! deques (children of its jobs LIFO, then the batch it took FIFO), then
//! its peers' batches, the spawning threads' feeds and the injector (each
//! a FIFO, taken from in batches), then its peers' own deques, from a
//! random victim on.
//!
//! Outside jobs move in batches (one compare-and-swap for up to 32 jobs)
//! into the taker's FIFO `batch` deque, where both the taker and its
//! thieves take the oldest first. So jobs spawned by one outside thread
//! start in spawn order: a worker never takes a later one from a feed
//! while an earlier one waits in a peer's batch it can see. (Taken into
//! the LIFO deque, as before, a thief got the newest of a batch first.)

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
                if let Some(job) = outcome(slots[victim].stealer.steal()) {
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
