//! Parking idle workers without lost wake-ups, and waking one per new job.
//!
//! A worker that found no job sets its bit in `mask`, bumps `sleepers`,
//! issues a SeqCst fence and looks at the queues once more before parking.
//! A spawner pushes its job, issues a SeqCst fence and reads `sleepers`.
//! The two fences are ordered one way or the other, so either the worker's
//! second look sees the job or the spawner sees the sleeper and unparks it
//! (Dekker's pattern; the same argument as crossbeam's and tokio's idle
//! protocols). A spawner wakes at most one worker, the one whose bit it
//! clears; clearing a bit is the claim, so no worker is woken twice and no
//! two spawners wake the same one while another sleeps on.

use crate::loom::{fence, AtomicU64, AtomicUsize};
use crossbeam_utils::CachePadded;
use std::sync::atomic::Ordering::{Relaxed, SeqCst};

pub(crate) struct Sleep {
    /// Workers awake and searching for work (tokio's "searching" state). A
    /// spawner that sees one wakes nobody: the searcher will find the job.
    /// A searcher stops searching before it announces itself as sleeping,
    /// so the announce/fence/re-check below still catches any job whose
    /// spawner skipped the wake-up because of it.
    searching: CachePadded<AtomicUsize>,
    /// How many bits are set in `mask`: lets a spawner skip the scan.
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

    /// Announces that worker `i` is going to park. The caller must look for
    /// work once more afterwards, and call [`Sleep::cancel`] if it found some.
    pub(crate) fn prepare(&self, i: usize) {
        self.mask[i / 64].fetch_or(1 << (i % 64), SeqCst);
        self.sleepers.fetch_add(1, SeqCst);
        fence(SeqCst);
    }

    /// Withdraws worker `i`'s announcement (it found work, or woke up).
    /// Harmless if a waker already claimed it: the unpark it sent (or is
    /// sending) only makes one later park return early.
    pub(crate) fn cancel(&self, i: usize) {
        let bit = 1 << (i % 64);
        if self.mask[i / 64].fetch_and(!bit, SeqCst) & bit != 0 {
            self.sleepers.fetch_sub(1, SeqCst);
        }
    }

    /// A worker found no job and starts searching for one.
    pub(crate) fn start_searching(&self) {
        self.searching.fetch_add(1, SeqCst);
    }

    /// A worker stops searching; `true` if it was the last one searching.
    /// Call before `prepare` when going to sleep.
    pub(crate) fn stop_searching(&self) -> bool {
        self.searching.fetch_sub(1, SeqCst) == 1
    }

    /// After a job was made visible: claims one sleeping worker, unless a
    /// worker is searching (it will find the job), and returns its slot for
    /// the caller to unpark.
    pub(crate) fn claim_one(&self) -> Option<usize> {
        fence(SeqCst);
        // `sleepers` first: it changes only when a worker parks or wakes,
        // so it stays in this core's cache, while `searching` is written
        // each time a busy worker runs dry; reading it on every spawn cost
        // a cache miss per job.
        // ORDERING: Relaxed is enough after the SeqCst fence above, which
        // pairs with the fence in `prepare`.
        if self.sleepers.load(Relaxed) == 0 {
            return None;
        }
        // SeqCst pairs with `stop_searching` and the fence in `prepare`: if
        // we still see a searcher, its later re-check sees our job.
        if self.searching.load(SeqCst) > 0 {
            return None;
        }
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

    /// A cheap look that may be stale: might some worker be parked? For
    /// pushes that need no guaranteed wake-up (a `join` half, which its
    /// owner runs itself if nobody steals it), to skip `claim_one`'s fence
    /// while nobody sleeps.
    #[inline]
    pub(crate) fn may_have_sleepers(&self) -> bool {
        // ORDERING: Relaxed: a stale 0 only delays a wake-up until the next
        // push; it never leaves a job unrun (see the caller).
        self.sleepers.load(Relaxed) != 0
    }

    /// Claims every sleeping worker (shutdown, resume): calls `unpark` for each.
    pub(crate) fn claim_all(&self, mut unpark: impl FnMut(usize)) {
        fence(SeqCst);
        for (w, word) in self.mask.iter().enumerate() {
            let bits = word.swap(0, SeqCst);
            if bits != 0 {
                self.sleepers.fetch_sub(bits.count_ones() as usize, SeqCst);
            }
            let mut rest = bits;
            while rest != 0 {
                unpark(w * 64 + rest.trailing_zeros() as usize);
                rest &= rest - 1;
            }
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn claim_one_wakes_each_sleeper_once() {
        let sleep = Sleep::new(130);
        for i in [3, 64, 129] {
            sleep.prepare(i);
        }
        let mut woken = vec![];
        while let Some(i) = sleep.claim_one() {
            woken.push(i);
        }
        assert_eq!(woken, vec![3, 64, 129]);
        assert_eq!(sleep.sleepers.load(SeqCst), 0);
    }

    #[test]
    fn nobody_is_woken_while_a_worker_searches() {
        let sleep = Sleep::new(2);
        sleep.prepare(1);
        sleep.start_searching();
        assert_eq!(sleep.claim_one(), None, "the searcher will find the job");
        assert!(sleep.stop_searching(), "it was the last searcher");
        assert_eq!(sleep.claim_one(), Some(1));
    }

    #[test]
    fn cancel_after_claim_does_not_underflow() {
        let sleep = Sleep::new(2);
        sleep.prepare(1);
        assert_eq!(sleep.claim_one(), Some(1));
        sleep.cancel(1);
        assert_eq!(sleep.sleepers.load(SeqCst), 0);
        sleep.prepare(0);
        sleep.prepare(1);
        let mut all = vec![];
        sleep.claim_all(|i| all.push(i));
        assert_eq!(all, vec![0, 1]);
        assert_eq!(sleep.claim_one(), None);
    }
}

#[cfg(all(test, loom))]
#[path = "sleep_loom.rs"]
mod loom_tests;
