//! The in-memory schedule: which stored jobs are ready, backing off,
//! waiting for a handler, or out on the dispatcher.
//!
//! **Invariant:** the schedule follows the file; it never leads it. The
//! committer changes it only after the transaction that made the matching
//! change is durable, and in commit order. The one exception is the
//! feeder taking ready ids out of the lanes to claim them: a claim that
//! is not committed leaves the queue broken, so nothing reads them again.

use super::Delivery;
use crate::Dispatcher;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

/// A registered handler, type-erased: its error is turned into text.
pub(crate) type HandlerFn = dyn Fn(&Delivery<'_>) -> Result<(), String> + Send + Sync;

/// The jobs of one name.
#[derive(Default)]
pub(crate) struct Lane {
    /// Due pending jobs, oldest first.
    pub(crate) ready: VecDeque<u64>,
    /// `None` until a handler is registered: the lane's jobs wait.
    pub(crate) handler: Option<Arc<HandlerFn>>,
}

/// A claimed job: stored as `Running`, handed (or about to be handed) to
/// the dispatcher.
pub(crate) struct RunningJob {
    /// Set by `Queue::cancel`; the attempt reads it.
    pub(crate) cancel: Arc<AtomicBool>,
    /// The dispatcher's id for this attempt, once spawned.
    pub(crate) run_id: Option<crate::JobId>,
}

/// One job the feeder took to claim.
pub(crate) struct Take {
    pub(crate) id: u64,
    pub(crate) name: Arc<str>,
    pub(crate) handler: Arc<HandlerFn>,
}

#[derive(Default)]
pub(crate) struct Sched {
    pub(crate) lanes: HashMap<Arc<str>, Lane>,
    /// Pending jobs waiting out a retry backoff, by (due ms, id).
    pub(crate) delayed: BTreeMap<(u64, u64), Arc<str>>,
    pub(crate) running: HashMap<u64, RunningJob>,
    pub(crate) dead: BTreeSet<u64>,
    /// Stored succeeded and cancelled jobs (not yet pruned).
    pub(crate) succeeded: u64,
    pub(crate) cancelled: u64,
    /// Since open.
    pub(crate) enqueued: u64,
    pub(crate) completed: u64,
    pub(crate) failed_attempts: u64,
    pub(crate) recovered: u64,
    pub(crate) pruned: u64,
    pub(crate) commits: u64,
    /// Claims that handed out at least one job, since open.
    pub(crate) claims: u64,
    /// Late completions refused because the job's lease was lost (its
    /// fencing token was stale), since open.
    pub(crate) fenced: u64,
    /// Heartbeats that found a job's lease taken over, since open.
    pub(crate) leases_lost: u64,
    /// Connection failures and reconnects to the store's server.
    pub(crate) connection_errors: u64,
    pub(crate) reconnects: u64,
    pub(crate) last_connection_error: Option<String>,
    /// Bumped whenever work may have become claimable elsewhere (a
    /// notification from the server, a new handler, a local commit that
    /// made jobs ready): the feeder of a shared store waits for it.
    pub(crate) wakes: u64,
    /// A shared store's counts by state, as last read (for `stats`).
    pub(crate) counts: Option<super::store::Counts>,
    /// Lifecycle.
    pub(crate) dispatcher: Option<Dispatcher>,
    pub(crate) stopping: bool,
    pub(crate) stopped: bool,
    pub(crate) dispatcher_closed: bool,
    pub(crate) broken: Option<String>,
    /// Where the next round-robin pass over the lanes starts.
    cursor: usize,
}

impl Sched {
    /// The lane of `name`, made if needed, and the interned name.
    pub(crate) fn lane(&mut self, name: &str) -> (Arc<str>, &mut Lane) {
        let key = match self.lanes.get_key_value(name) {
            Some((k, _)) => Arc::clone(k),
            None => {
                let k: Arc<str> = Arc::from(name);
                self.lanes.insert(Arc::clone(&k), Lane::default());
                k
            }
        };
        let lane = self.lanes.get_mut(&key).expect("just made");
        (key, lane)
    }

    pub(crate) fn push_ready(&mut self, id: u64, name: &str) {
        self.lane(name).1.ready.push_back(id);
    }

    /// A job whose run was released goes first: it was next before.
    pub(crate) fn push_front(&mut self, id: u64, name: &str) {
        self.lane(name).1.ready.push_front(id);
    }

    pub(crate) fn push_delayed(&mut self, id: u64, name: &str, due: u64) {
        let (name, _) = self.lane(name);
        self.delayed.insert((due, id), name);
    }

    /// Forgets a pending job (it was cancelled).
    pub(crate) fn remove_pending(&mut self, id: u64, name: &str, run_after: u64) {
        if self.delayed.remove(&(run_after, id)).is_some() {
            return;
        }
        if let Some(lane) = self.lanes.get_mut(name) {
            if let Some(pos) = lane.ready.iter().position(|&x| x == id) {
                lane.ready.remove(pos);
            }
        }
    }

    /// Moves jobs whose backoff ended into their lanes. It wakes nobody:
    /// a handled job goes from backing off to ready and an unhandled one
    /// stays unhandled, so `is_idle` (what `wait_idle` waits on) keeps its
    /// answer.
    pub(crate) fn promote_due(&mut self, now: u64) {
        while let Some(entry) = self.delayed.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let ((_, id), name) = entry.remove_entry();
            if let Some(lane) = self.lanes.get_mut(&name) {
                lane.ready.push_back(id);
            }
        }
    }

    /// When the next backoff ends.
    pub(crate) fn next_due(&self) -> Option<u64> {
        self.delayed.keys().next().map(|&(due, _)| due)
    }

    /// Takes up to `max` ready jobs that have a handler, round-robin over
    /// the names so that one busy name does not starve the others.
    pub(crate) fn take_ready(&mut self, max: usize) -> Vec<Take> {
        let mut names: Vec<Arc<str>> = self
            .lanes
            .iter()
            .filter(|(_, lane)| lane.handler.is_some() && !lane.ready.is_empty())
            .map(|(name, _)| Arc::clone(name))
            .collect();
        let mut out = Vec::new();
        if names.is_empty() || max == 0 {
            return out;
        }
        names.sort_unstable();
        let start = self.cursor % names.len();
        names.rotate_left(start);
        self.cursor = self.cursor.wrapping_add(1);
        let share = max.div_ceil(names.len());
        loop {
            let before = out.len();
            for name in &names {
                let lane = self.lanes.get_mut(name).expect("listed above");
                let handler = lane.handler.clone().expect("filtered on a handler");
                let n = share.min(max - out.len()).min(lane.ready.len());
                for id in lane.ready.drain(..n) {
                    out.push(Take {
                        id,
                        name: Arc::clone(name),
                        handler: Arc::clone(&handler),
                    });
                }
            }
            if out.len() == max || out.len() == before {
                return out;
            }
        }
    }

    /// The names that have a handler, sorted.
    pub(crate) fn handled_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .lanes
            .iter()
            .filter(|(_, l)| l.handler.is_some())
            .map(|(n, _)| n.to_string())
            .collect();
        names.sort_unstable();
        names
    }

    /// The handler for `name`, if one is registered.
    pub(crate) fn handler(&self, name: &str) -> Option<(Arc<str>, Arc<HandlerFn>)> {
        let (key, lane) = self.lanes.get_key_value(name)?;
        Some((Arc::clone(key), lane.handler.clone()?))
    }

    fn has_handler(&self, name: &str) -> bool {
        self.lanes.get(name).is_some_and(|l| l.handler.is_some())
    }

    /// Ready jobs with a handler (`true`) or without (`false`).
    pub(crate) fn ready_count(&self, handled: bool) -> usize {
        self.lanes
            .values()
            .filter(|l| l.handler.is_some() == handled)
            .map(|l| l.ready.len())
            .sum()
    }

    /// Backing-off jobs with a handler (`true`) or without (`false`).
    pub(crate) fn delayed_count(&self, handled: bool) -> usize {
        self.delayed
            .values()
            .filter(|name| self.has_handler(name) == handled)
            .count()
    }

    /// Names that have pending jobs but no handler.
    pub(crate) fn waiting_names(&self) -> Vec<String> {
        let mut names: BTreeSet<&str> = self
            .lanes
            .iter()
            .filter(|(_, l)| l.handler.is_none() && !l.ready.is_empty())
            .map(|(n, _)| &**n)
            .collect();
        for name in self.delayed.values() {
            if !self.has_handler(name) {
                names.insert(name);
            }
        }
        names.into_iter().map(str::to_owned).collect()
    }

    /// Pending ids with a handler (`true`) or without (`false`), sorted.
    pub(crate) fn pending_ids(&self, handled: bool, limit: usize) -> Vec<u64> {
        let mut ids: Vec<u64> = self
            .lanes
            .values()
            .filter(|l| l.handler.is_some() == handled)
            .flat_map(|l| l.ready.iter().copied())
            .chain(
                self.delayed
                    .iter()
                    .filter(|(_, name)| self.has_handler(name) == handled)
                    .map(|(&(_, id), _)| id),
            )
            .collect();
        ids.sort_unstable();
        ids.truncate(limit);
        ids
    }

    /// Is `name` handled? (For reporting a pending job as waiting.)
    pub(crate) fn is_handled(&self, name: &str) -> bool {
        self.has_handler(name)
    }

    /// Nothing is runnable now or later, and nothing is out. Jobs without
    /// a handler do not count, backing off or not: nothing would run them.
    pub(crate) fn is_idle(&self, in_flight: usize) -> bool {
        in_flight == 0
            && self.running.is_empty()
            && self.ready_count(true) == 0
            && !self.delayed.values().any(|name| self.has_handler(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn handler() -> Arc<HandlerFn> {
        Arc::new(|_: &Delivery<'_>| Ok(()))
    }

    #[test]
    fn round_robin_over_handled_names_only() {
        let mut s = Sched::default();
        for id in 0..6 {
            s.push_ready(id, "a");
        }
        s.push_ready(10, "b");
        s.push_ready(20, "c");
        s.lane("a").1.handler = Some(handler());
        s.lane("b").1.handler = Some(handler());
        let took: Vec<u64> = s.take_ready(4).iter().map(|t| t.id).collect();
        assert_eq!(took, [0, 1, 10, 2]);
        assert_eq!(s.ready_count(true), 3);
        assert_eq!(s.ready_count(false), 1);
        assert_eq!(s.waiting_names(), ["c"]);
    }

    #[test]
    fn delayed_jobs_become_ready_when_due() {
        let mut s = Sched::default();
        s.lane("a").1.handler = Some(handler());
        s.push_delayed(1, "a", 100);
        s.push_delayed(2, "a", 50);
        assert_eq!(s.next_due(), Some(50));
        s.promote_due(60);
        assert_eq!(s.lanes["a"].ready, [2]);
        s.remove_pending(1, "a", 100);
        assert_eq!(s.next_due(), None);
        assert!(!s.is_idle(0));
        s.take_ready(10);
        assert!(s.is_idle(0));
    }
}
