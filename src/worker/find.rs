//! Where an idle worker looks for a job: its own deque, then the injector,
//! then the spawning threads' feeds, then its peers' deques from a random
//! victim on.

use super::WorkerCtx;
use crate::job::task::Task;
use crossbeam_deque::Steal;

impl WorkerCtx {
    pub(crate) fn find_job(&self) -> Option<Task> {
        if self.pool.is_paused() {
            return None;
        }
        self.local.pop().or_else(|| self.steal())
    }

    fn steal(&self) -> Option<Task> {
        let slots = self.pool.used_slots();
        loop {
            let mut retry = false;
            match self.pool.injector.steal_batch_and_pop(&self.local) {
                Steal::Success(job) => return Some(job),
                Steal::Retry => retry = true,
                Steal::Empty => {}
            }
            for feed in self.pool.feeds.in_use() {
                // `is_empty` first (two loads and a SeqCst fence): a steal
                // from an empty deque also pins the epoch, a locked
                // instruction.
                if feed.stealer.is_empty() {
                    continue;
                }
                match feed.stealer.steal_batch_and_pop(&self.local) {
                    Steal::Success(job) => return Some(job),
                    Steal::Retry => retry = true,
                    Steal::Empty => {}
                }
            }
            let n = slots.len();
            let start = (self.next_random() % n as u64) as usize;
            for victim in (start..n).chain(0..start).filter(|&v| v != self.index) {
                match slots[victim].stealer.steal() {
                    Steal::Success(job) => {
                        self.counters().count_steal();
                        crate::trace::event!(trace, thief = self.index, victim, "steal");
                        return Some(job);
                    }
                    Steal::Retry => retry = true,
                    Steal::Empty => {}
                }
            }
            if !retry {
                return None;
            }
        }
    }
}
