//! The admission word: how many accepted jobs are unfinished, and whether
//! the pool still accepts jobs, in one atomic.
//!
//! `spawn` admits with one `fetch_add`, which also tells it whether the
//! pool was closed; `shutdown` closes with one `fetch_or` and then waits for
//! the count to reach 0. Both are read-modify-writes of the same word, so
//! they are totally ordered: either the spawn came first and shutdown waits
//! for its job, or the close came first and the spawn is refused. The model
//! in `admission_loom.rs` checks this.

use crate::loom::AtomicUsize;
use crossbeam_utils::CachePadded;
use std::sync::atomic::Ordering::SeqCst;

/// Set once the pool accepts no more jobs.
const CLOSED: usize = 1 << (usize::BITS - 1);

/// The word as it was before a [`Admission::finish_one`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Left(usize);

impl Left {
    /// The job counted out was the last unfinished one.
    pub(crate) fn was_last(self) -> bool {
        self.0 & !CLOSED == 1
    }

    /// The pool was closed when it was counted out.
    pub(crate) fn closed(self) -> bool {
        self.0 & CLOSED != 0
    }
}

/// Jobs accepted and not yet finished, plus the `CLOSED` bit.
pub(crate) struct Admission {
    // ORDERING (whole type): SeqCst. `admit` and `close` need only the
    // total order of read-modify-writes on this one word, but the zero test
    // in `finish_one` pairs with `Signal`'s waiter count (Dekker's pattern)
    // and with the sleep protocol's fences, which need SeqCst.
    word: CachePadded<AtomicUsize>,
}

impl Admission {
    pub(crate) fn new() -> Admission {
        Admission {
            word: CachePadded::new(AtomicUsize::new(0)),
        }
    }

    /// Counts a job in. `false` if the pool is closed: the job was counted
    /// all the same, and the caller must count it out with
    /// [`finish_one`](Self::finish_one) (and act on what it returns).
    #[must_use]
    pub(crate) fn admit(&self) -> bool {
        self.word.fetch_add(1, SeqCst) & CLOSED == 0
    }

    /// Counts a job out (finished, discarded or refused).
    pub(crate) fn finish_one(&self) -> Left {
        Left(self.word.fetch_sub(1, SeqCst))
    }

    /// Stops accepting jobs.
    pub(crate) fn close(&self) {
        self.word.fetch_or(CLOSED, SeqCst);
    }

    /// Jobs accepted and not yet finished (including, for a moment, a
    /// refused one that is about to be counted out).
    pub(crate) fn pending(&self) -> usize {
        self.word.load(SeqCst) & !CLOSED
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.word.load(SeqCst) & CLOSED != 0
    }

    /// Closed and nothing left to run: a worker may exit.
    pub(crate) fn is_done(&self) -> bool {
        self.word.load(SeqCst) == CLOSED
    }
}

#[cfg(all(test, loom))]
#[path = "admission_loom.rs"]
mod loom_tests;

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn refused_after_close_and_counted_out() {
        let a = Admission::new();
        assert!(a.admit());
        a.close();
        assert!(a.is_closed() && !a.is_done());
        assert!(!a.admit(), "closed: refused");
        assert_eq!(
            a.pending(),
            2,
            "the refused job is counted until it is taken back"
        );
        assert!(!a.finish_one().was_last());
        let last = a.finish_one();
        assert!(last.was_last() && last.closed());
        assert!(a.is_done());
        assert_eq!(a.pending(), 0);
    }
}
