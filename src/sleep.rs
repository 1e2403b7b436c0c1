//! Parking idle workers without lost wake-ups, and keeping one of them
//! searching while jobs wait.
//!
//! A worker is in one of three states, as in tokio's scheduler
//! (`multi_thread/idle.rs`): **running** (it has a job, or is looking in
//! its own deque), **searching** (it looks in the shared queues and its
//! peers' deques; counted in `searching`), or **parked** (its bit is set
//! in `mask`, counted in `sleepers`).
//!
//! The invariant: *whenever a job is queued and a worker is parked, some
//! worker is searching, and a searcher that takes a job while jobs remain
//! queued wakes another first.* It holds through these rules:
//!
//! 1. **Wake as a searcher.** A spawner pushes its job, issues a SeqCst
//!    fence and reads `sleepers`, then `searching`. If a worker sleeps and
//!    none searches, it makes itself the searcher's stand-in (`searching`
//!    0 → 1 by CAS: of several spawners racing, one wakes somebody), then
//!    clears one bit of `mask` (the claim) and unparks that worker, which
//!    wakes counted as searching. A spawner that sees a searcher wakes
//!    nobody: the searcher finds the job, by rule 2 or 3.
//! 2. **Pass it on.** A searcher that takes a job stops searching; if it
//!    was the last searcher it issues a SeqCst fence and looks at every
//!    queue, and wakes another worker (rule 1) if any job is left. So a
//!    burst spreads over the pool one link at a time, each woken worker
//!    waking the next, until the jobs or the parked workers run out.
//! 3. **Park after a last look.** A searcher that finds nothing stops
//!    searching, sets its bit, bumps `sleepers`, issues a SeqCst fence and
//!    looks at every queue once more before it parks. Either its fence
//!    comes first in the single total order of SeqCst fences, and then a
//!    spawner whose wake-up it made unnecessary (rule 1) sees its bit, or
//!    the spawner's does, and then the last look sees the job. It then
//!    withdraws its bit and searches again.
//! 4. **Every wake-up is a searcher.** A worker leaving `park` for any
//!    reason (claimed by a spawner, unparked directly by a halt order or a
//!    joined job, or spuriously) searches: if its bit was claimed, the
//!    claimer counted it (rule 1); if the bit was still set, it clears the
//!    bit and counts itself.
//!
//! A stand-in whose claim finds no bit (the sleepers woke meanwhile) stops
//! searching by rule 2, fence and look included, so the spawner that
//! skipped its wake-up because of the stand-in is covered.
//!
//! The loom models in `sleep_loom.rs` check rules 1–4 with the real
//! `Sleep` against modelled queues: more workers than jobs, bursts that
//! land while a worker searches, and a searcher that takes a job while
//! another is queued. Without rule 2 (the last searcher passing the wake
//! on, what the pool did before) they find the burst left queued while a
//! worker sleeps.

use crate::loom::{fence, AtomicU64, AtomicUsize};
use crossbeam_utils::CachePadded;
use std::sync::atomic::Ordering::{Relaxed, SeqCst};

pub(crate) struct Sleep {
    /// Workers searching (rule 1's stand-ins included).
    searching: CachePadded<AtomicUsize>,
    /// How many bits are set in `mask`: lets a spawner skip the rest.
    sleepers: CachePadded<AtomicUsize>,
    /// One bit per worker slot: set while that worker is (about to be) parked.
    mask: Box<[AtomicU64]>,
}

impl Sleep {
    pub(crate) fn new(slots: usize) -> Sleep {
        Sleep {
            searching: CachePadded::new(AtomicUsize::new(0)),
            sleepers: CachePadded::new(AtomicUsize::new(0)),
            mask: (0..slots.div_ceil(64)).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// A worker starts searching (it ran out of jobs, or withdrew from a
    /// park without being claimed).
    pub(crate) fn start_searching(&self) {
        self.searching.fetch_add(1, SeqCst);
    }

    /// A worker stops searching. Returns `true` if it was the last
    /// searcher: then, unless it is about to park (rule 3), it must fence
    /// and look for jobs left (rule 2; see `Pool::pass_on`).
    pub(crate) fn stop_searching(&self) -> bool {
        let before = self.searching.fetch_sub(1, SeqCst);
        debug_assert!(before > 0, "a worker stopped searching twice");
        before == 1
    }

    /// Announces that worker `i` is going to park (rule 3). The caller
    /// must look for work once more afterwards, then call
    /// [`Sleep::withdraw`] whether it parked or not.
    pub(crate) fn prepare(&self, i: usize) {
        self.mask[i / 64].fetch_or(1 << (i % 64), SeqCst);
        self.sleepers.fetch_add(1, SeqCst);
        fence(SeqCst);
    }

    /// Withdraws worker `i`'s announcement after its last look or its
    /// park, and makes it a searcher (rule 4): counted by its claimer if
    /// its bit was claimed, else here. A worker that will not search (it
    /// leaves the pool, or goes back to the job it waits in) calls
    /// [`Sleep::stop_searching`] next.
    pub(crate) fn withdraw(&self, i: usize) {
        let bit = 1 << (i % 64);
        if self.mask[i / 64].fetch_and(!bit, SeqCst) & bit != 0 {
            self.sleepers.fetch_sub(1, SeqCst);
            self.start_searching();
        }
    }

    /// After a job was made visible (rule 1): claims one parked worker and
    /// counts it as searching, unless a worker is searching already, and
    /// returns its slot for the caller to unpark (see [`Claim`]).
    pub(crate) fn claim_one(&self) -> Claim {
        fence(SeqCst);
        // `sleepers` first: it changes only when a worker parks or wakes,
        // so it stays in this core's cache, while `searching` is written
        // each time a worker runs dry.
        // ORDERING: Relaxed is enough after the SeqCst fence above, which
        // pairs with the fence in `prepare`.
        if self.sleepers.load(Relaxed) == 0 {
            return Claim::Nobody;
        }
        // SeqCst pairs with `stop_searching` and the fence in `prepare`:
        // if we still see a searcher, its pass-on or last look sees our job.
        if self.searching.load(SeqCst) != 0
            || self
                .searching
                .compare_exchange(0, 1, SeqCst, SeqCst)
                .is_err()
        {
            return Claim::Nobody;
        }
        // We are the stand-in searcher: the worker we claim takes our count.
        match self.claim_bit() {
            Some(slot) => Claim::Woke(slot),
            None => Claim::StandInLeft,
        }
    }

    /// Clears one set bit of `mask`; its worker is ours to unpark.
    fn claim_bit(&self) -> Option<usize> {
        for (w, word) in self.mask.iter().enumerate() {
            let mut bits = word.load(SeqCst);
            while bits != 0 {
                let bit = bits & bits.wrapping_neg();
                let prev = word.fetch_and(!bit, SeqCst);
                if prev & bit != 0 {
                    self.sleepers.fetch_sub(1, SeqCst);
                    return Some(w * 64 + bit.trailing_zeros() as usize);
                }
                bits = prev & !bit;
            }
        }
        None
    }

    /// Claims every parked worker (close, resume, halt), each counted as
    /// searching (rule 4): calls `unpark` for each.
    pub(crate) fn claim_all(&self, mut unpark: impl FnMut(usize)) {
        fence(SeqCst);
        for (w, word) in self.mask.iter().enumerate() {
            let bits = word.swap(0, SeqCst);
            if bits == 0 {
                continue;
            }
            let n = bits.count_ones() as usize;
            self.searching.fetch_add(n, SeqCst);
            self.sleepers.fetch_sub(n, SeqCst);
            let mut rest = bits;
            while rest != 0 {
                unpark(w * 64 + rest.trailing_zeros() as usize);
                rest &= rest - 1;
            }
        }
    }

    /// Workers searching now (for tests and stats).
    #[cfg(test)]
    pub(crate) fn searching(&self) -> usize {
        self.searching.load(SeqCst)
    }
}

/// What [`Sleep::claim_one`] did.
#[must_use]
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Claim {
    /// Nobody sleeps, or somebody searches: nothing to do.
    Nobody,
    /// Claimed this worker, counted as searching: unpark it.
    Woke(usize),
    /// Became the stand-in searcher but found no worker to claim: the
    /// caller stops searching in its place (rule 2, look included).
    StandInLeft,
}

#[cfg(test)]
#[cfg(not(loom))]
mod tests {
    use super::*;

    #[test]
    fn a_claimed_worker_is_counted_as_searching_and_blocks_further_claims() {
        let sleep = Sleep::new(130);
        for i in [3, 64, 129] {
            sleep.prepare(i);
        }
        assert_eq!(sleep.claim_one(), Claim::Woke(3));
        assert_eq!(sleep.searching(), 1, "the woken worker searches");
        assert_eq!(sleep.claim_one(), Claim::Nobody, "it will find the job");
        sleep.withdraw(3);
        assert_eq!(
            sleep.searching(),
            1,
            "claimed: counted once, by the claimer"
        );
        assert!(sleep.stop_searching(), "the last searcher");
        assert_eq!(sleep.claim_one(), Claim::Woke(64));
        sleep.withdraw(64);
        assert!(sleep.stop_searching());
        assert_eq!(sleep.claim_one(), Claim::Woke(129));
        sleep.withdraw(129);
        assert!(sleep.stop_searching());
        assert_eq!(sleep.claim_one(), Claim::Nobody, "nobody left asleep");
        assert_eq!(sleep.sleepers.load(SeqCst), 0);
    }

    #[test]
    fn a_worker_that_withdraws_unclaimed_counts_itself() {
        let sleep = Sleep::new(2);
        sleep.prepare(1);
        sleep.withdraw(1);
        assert_eq!(sleep.searching(), 1);
        assert_eq!(sleep.sleepers.load(SeqCst), 0);
        assert!(sleep.stop_searching());
    }

    #[test]
    fn a_stand_in_that_finds_no_bit_says_so() {
        let sleep = Sleep::new(2);
        sleep.prepare(0);
        // The worker withdraws between the spawner's two looks: simulated
        // by clearing the bit by hand but leaving `sleepers` for a moment.
        sleep.mask[0].fetch_and(!1, SeqCst);
        assert_eq!(sleep.claim_one(), Claim::StandInLeft);
        assert_eq!(sleep.searching(), 1, "the stand-in is counted");
        assert!(sleep.stop_searching());
    }

    #[test]
    fn claim_all_counts_every_woken_worker_as_searching() {
        let sleep = Sleep::new(70);
        sleep.prepare(0);
        sleep.prepare(69);
        let mut all = vec![];
        sleep.claim_all(|i| all.push(i));
        assert_eq!(all, vec![0, 69]);
        assert_eq!(sleep.searching(), 2);
        assert_eq!(sleep.claim_one(), Claim::Nobody);
    }
}

#[cfg(all(test, loom))]
#[path = "sleep_loom.rs"]
mod loom_tests;
