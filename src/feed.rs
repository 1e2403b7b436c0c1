//! Feeds: a deque of its own for each thread that spawns from outside the
//! pool, so that an outside spawn is a plain push.
//!
//! Every outside spawn used to go through the injector, whose `push` is a
//! compare-and-swap on its tail: a locked instruction per job, on a line
//! that every worker looking for work reads. A feed is a
//! `crossbeam_deque::Worker` (FIFO) owned by one spawning thread: its
//! `push` is a store and a release store, with no locked instruction, and
//! workers steal from it in batches as from the injector.
//!
//! The pool has [`FEEDS`] of them. A thread leases a free one the first
//! time it spawns into the pool (a CAS on the feed's flag, and the feed's
//! `Worker` moves into the thread's lease); when the thread exits, the
//! lease's destructor gives the `Worker` back and frees the flag. The
//! deque itself (and its stealer) belongs to the feed for the pool's whole
//! life, so jobs still in it when its thread exits stay where every worker
//! finds them, and the next lessee pushes behind them. A thread that finds
//! no free feed, or that already leases one of another pool, uses the
//! injector as before, and so does a push to a full feed.

use crate::job::task::Task;
use crate::signal::lock;
use crossbeam_deque::{Stealer, Worker};
use crossbeam_utils::CachePadded;
use std::cell::RefCell;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::{Arc, Mutex, Weak};

/// Feeds per pool: more spawning threads than this share the injector.
pub(crate) const FEEDS: usize = 4;

/// Most jobs a feed holds; more go to the injector. A feed's ring buffer
/// grows to the deepest its queue has been and never shrinks (only an
/// owner's pop shrinks it, and a feed's owner never pops): without a limit,
/// one burst of a million queued jobs would leave an 8 MB ring for the
/// pool's life. 16k slots are 128 KB: a burst deeper than that goes on in
/// the injector, whose segments are freed as they drain.
const FEED_LIMIT: usize = 16 * 1024;

/// A pool's feeds.
pub(crate) struct Feeds {
    list: Box<[Feed]>,
    /// Feeds ever leased: leases go to the lowest free feed, so these are
    /// the first `used`. Workers look at no others: `Stealer::is_empty`
    /// issues a SeqCst fence, and a search should not pay it for feeds
    /// that never held a job.
    used: CachePadded<AtomicUsize>,
}

impl Feeds {
    pub(crate) fn new() -> Feeds {
        Feeds {
            list: (0..FEEDS).map(|_| Feed::new()).collect(),
            used: CachePadded::new(AtomicUsize::new(0)),
        }
    }

    /// The feeds that may hold jobs. A worker that reads a stale count
    /// misses a feed for one search at most; the check before parking
    /// reads it after its SeqCst fence, which orders it after the
    /// spawner's `fetch_max` if the spawner's fence came first (rule 3 of
    /// `sleep.rs`).
    pub(crate) fn in_use(&self) -> &[Feed] {
        // ORDERING: Acquire pairs with the Release of `fetch_max` in `take`
        // (the stealers exist from the start; this orders nothing else).
        &self.list[..self.used.load(Acquire)]
    }
}

/// One feed: a deque that one spawning thread at a time pushes to.
pub(crate) struct Feed {
    /// Set while a thread leases the feed.
    leased: CachePadded<AtomicBool>,
    /// The pushing end, while no thread leases the feed.
    idle_end: Mutex<Option<Worker<Task>>>,
    /// What workers steal from.
    pub(crate) stealer: Stealer<Task>,
}

impl Feed {
    pub(crate) fn new() -> Feed {
        let end = Worker::new_fifo();
        Feed {
            leased: CachePadded::new(AtomicBool::new(false)),
            stealer: end.stealer(),
            idle_end: Mutex::new(Some(end)),
        }
    }
}

/// A thread's lease of one feed of one pool.
struct Lease {
    /// The pool's feeds, held weakly: a lease must not keep a pool alive.
    /// The `Weak` also keeps their address from being reused, so the
    /// address comparison in `push` cannot mistake a new pool for it.
    feeds: Weak<Feeds>,
    index: usize,
    end: Worker<Task>,
}

impl Drop for Lease {
    fn drop(&mut self) {
        let Some(feeds) = self.feeds.upgrade() else {
            // The pool is gone: its workers have exited, and whatever is
            // left in the feed (jobs a halt cancelled) goes with `end`.
            return;
        };
        let feed = &feeds.list[self.index];
        let end = std::mem::replace(&mut self.end, Worker::new_fifo());
        *lock(&feed.idle_end) = Some(end);
        // ORDERING: Release: the next lessee, which claims with Acquire,
        // finds the end put back above.
        feed.leased.store(false, Release);
    }
}

thread_local! {
    static LEASE: RefCell<Option<Lease>> = const { RefCell::new(None) };
}

/// Pushes `task` to the calling thread's feed among `feeds` (a pool's),
/// leasing one if the thread has none yet. Gives the task back if the
/// thread cannot have one (all leased, or the thread leases a feed of
/// another, live pool), or if its feed holds [`FEED_LIMIT`] jobs.
pub(crate) fn push(feeds: &Arc<Feeds>, task: Task) -> Result<(), Task> {
    let mut task = Some(task);
    let pushed = LEASE.try_with(|lease| {
        // Never busy today (nothing below spawns); if it were, the
        // injector would take the job.
        let Ok(mut lease) = lease.try_borrow_mut() else {
            return false;
        };
        if let Some(held) = lease.as_ref() {
            if std::ptr::eq(held.feeds.as_ptr(), Arc::as_ptr(feeds)) {
                if held.end.len() >= FEED_LIMIT {
                    return false;
                }
                held.end.push(task.take().expect("not pushed yet"));
                return true;
            }
            if held.feeds.strong_count() > 0 {
                return false;
            }
            // The leased pool is gone: lease one of this pool instead.
        }
        let Some(new) = take(feeds) else {
            return false;
        };
        new.end.push(task.take().expect("not pushed yet"));
        // The old lease (of a dead pool) drops here.
        *lease = Some(new);
        true
    });
    // `try_with` fails while the thread's thread-locals are destroyed.
    match (pushed, task) {
        (Ok(true), None) => Ok(()),
        (_, Some(task)) => Err(task),
        (_, None) => unreachable!("a pushed task is reported as pushed"),
    }
}

/// Leases a free feed among `feeds`, if there is one.
fn take(feeds: &Arc<Feeds>) -> Option<Lease> {
    feeds.list.iter().enumerate().find_map(|(index, feed)| {
        // ORDERING: Acquire pairs with the Release of the last lease's
        // drop (its end is back). Relaxed on failure: we only move on.
        feed.leased
            .compare_exchange(false, true, Acquire, Relaxed)
            .ok()?;
        let end = lock(&feed.idle_end)
            .take()
            .expect("a free feed holds its pushing end");
        // ORDERING: Release, for `in_use`; before the caller's push, and so
        // before the SeqCst fence of the wake-up check that follows it.
        feeds.used.fetch_max(index + 1, Release);
        Some(Lease {
            feeds: Arc::downgrade(feeds),
            index,
            end,
        })
    })
}

#[cfg(test)]
#[cfg(not(loom))]
mod tests {
    use super::*;
    use crate::Dispatcher;
    use std::sync::atomic::AtomicUsize;
    use std::sync::atomic::Ordering::SeqCst;
    use std::sync::Barrier;

    fn leased(pool: &crate::pool::Pool) -> usize {
        pool.feeds()
            .list
            .iter()
            .filter(|f| f.leased.load(SeqCst))
            .count()
    }

    // Whole pools: under Miri they run in `tests/feeds.rs` with Tree
    // Borrows, which crossbeam-epoch needs (see `.ci/run`); the unit tests
    // run under Stacked Borrows.
    #[test]
    #[cfg_attr(miri, ignore)]
    fn a_feed_outlives_its_thread_and_goes_to_the_next_one() {
        let dispatcher = Arc::new(Dispatcher::builder().workers(1).build().unwrap());
        let ran = Arc::new(AtomicUsize::new(0));
        dispatcher.pause();
        // A plain thread, joined: `join` returns after its thread-locals
        // (the lease) are destroyed, where a scoped thread's may not have.
        let spawn_from_a_thread = |n: usize| {
            let (dispatcher, ran) = (dispatcher.clone(), ran.clone());
            std::thread::spawn(move || {
                for _ in 0..n {
                    let ran = ran.clone();
                    drop(dispatcher.spawn(move || ran.fetch_add(1, SeqCst)).unwrap());
                }
                assert_eq!(leased(dispatcher.pool()), 1, "leased while it spawns");
            })
            .join()
            .unwrap();
        };
        spawn_from_a_thread(3);
        let pool = dispatcher.pool();
        assert_eq!(leased(pool), 0, "given back when the thread exits");
        assert_eq!(pool.feeds().in_use().len(), 1);
        assert_eq!(
            pool.feeds().list[0].stealer.len(),
            3,
            "its jobs stay queued"
        );
        spawn_from_a_thread(2);
        assert_eq!(
            pool.feeds().list[0].stealer.len(),
            5,
            "the next lessee pushes behind them"
        );
        assert!(pool.injector().is_empty());
        dispatcher.resume();
        dispatcher.wait_idle();
        assert_eq!(ran.load(SeqCst), 5);
    }

    #[test]
    #[cfg_attr(miri, ignore)]
    fn a_lease_of_a_dropped_pool_gives_way_to_one_of_the_next_pool() {
        let first = Dispatcher::builder().workers(1).build().unwrap();
        first.spawn(|| ()).unwrap().join().unwrap();
        assert_eq!(
            leased(first.pool()),
            1,
            "this thread leases a feed of the first"
        );
        drop(first);
        let second = Dispatcher::builder().workers(1).build().unwrap();
        second.pause();
        let handle = second.spawn(|| 7).unwrap();
        let pool = second.pool();
        assert_eq!(leased(pool), 1);
        assert_eq!(
            pool.feeds().list[0].stealer.len(),
            1,
            "in the feed, not the injector"
        );
        assert!(pool.injector().is_empty());
        second.resume();
        assert_eq!(handle.join().unwrap(), 7);
    }

    #[test]
    #[cfg_attr(miri, ignore)]
    fn a_full_feed_overflows_into_the_injector() {
        let dispatcher = Dispatcher::builder().workers(1).build().unwrap();
        let ran = Arc::new(AtomicUsize::new(0));
        dispatcher.pause();
        for _ in 0..FEED_LIMIT + 2 {
            let ran = ran.clone();
            drop(dispatcher.spawn(move || ran.fetch_add(1, SeqCst)).unwrap());
        }
        let pool = dispatcher.pool();
        assert_eq!(pool.feeds().list[0].stealer.len(), FEED_LIMIT);
        assert_eq!(pool.injector().len(), 2);
        dispatcher.resume();
        dispatcher.wait_idle();
        assert_eq!(ran.load(SeqCst), FEED_LIMIT + 2);
    }

    #[test]
    #[cfg_attr(miri, ignore)]
    fn threads_beyond_the_feeds_use_the_injector() {
        let dispatcher = Arc::new(Dispatcher::builder().workers(1).build().unwrap());
        let ran = Arc::new(AtomicUsize::new(0));
        dispatcher.pause();
        let all_spawned = Arc::new(Barrier::new(FEEDS + 1));
        let threads: Vec<_> = (0..=FEEDS)
            .map(|_| {
                let (dispatcher, ran) = (dispatcher.clone(), ran.clone());
                let all_spawned = all_spawned.clone();
                std::thread::spawn(move || {
                    drop(dispatcher.spawn(move || ran.fetch_add(1, SeqCst)).unwrap());
                    // Every thread keeps its lease until all have spawned.
                    all_spawned.wait();
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let pool = dispatcher.pool();
        assert_eq!(pool.feeds().in_use().len(), FEEDS);
        let in_feeds: usize = pool.feeds().in_use().iter().map(|f| f.stealer.len()).sum();
        assert_eq!((in_feeds, pool.injector().len()), (FEEDS, 1));
        assert_eq!(leased(pool), 0);
        dispatcher.resume();
        dispatcher.wait_idle();
        assert_eq!(ran.load(SeqCst), FEEDS + 1);
    }
}
