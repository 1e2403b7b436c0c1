//! Blocking waits on slow paths: a condition variable that costs nothing
//! to signal while nobody waits.

use crate::loom::tracked::{self, Condvar};
use crate::loom::AtomicUsize;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

/// Locks a mutex, ignoring poisoning: no code of ours panics while holding
/// one, and a poisoned lock must not take the pool down with it.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A condition some threads block on. Each waiter is counted before it
/// checks the condition, so a signaller that made the condition true with a
/// SeqCst operation and then sees no waiter can skip the lock.
#[derive(Default)]
pub(crate) struct Signal {
    lock: tracked::Mutex<()>,
    cond: Condvar,
    waiters: AtomicUsize,
    /// Bumped by [`Signal::notify_new`]: news for [`Signal::wait_for_news`].
    news: AtomicUsize,
}

impl Signal {
    /// Blocks until `ready()` or `deadline`; returns whether `ready()`.
    pub(crate) fn wait_until(
        &self,
        mut ready: impl FnMut() -> bool,
        deadline: Option<Instant>,
    ) -> bool {
        if ready() {
            return true;
        }
        let mut guard = tracked::lock(&self.lock);
        self.waiters.fetch_add(1, SeqCst);
        let result = loop {
            if ready() {
                break true;
            }
            match deadline {
                None => guard = self.cond.wait(guard).unwrap_or_else(|e| e.into_inner()),
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        break false;
                    }
                    guard = self
                        .cond
                        .wait_timeout(guard, d - now)
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
            }
        };
        self.waiters.fetch_sub(1, SeqCst);
        result
    }

    /// Blocks until `ready()`, or until [`notify_new`](Self::notify_new)
    /// finds its condition true after this call began: a waiter woken by
    /// news returns even if, by the time it runs, another waiter has made
    /// `ready()` false again (the pool went idle, and one of its
    /// `wait_idle` callers spawned at once: every caller waiting then still
    /// returns). Gives up at `deadline`; returns `true` unless it gave up.
    pub(crate) fn wait_for_news(
        &self,
        mut ready: impl FnMut() -> bool,
        deadline: Option<Instant>,
    ) -> bool {
        if ready() {
            return true;
        }
        // Read under the lock, which `notify_new` holds from its check to
        // its bump: either that check comes after this read, and so after
        // whatever our caller did before waiting (a spawn), or its news is
        // already counted in `seen`. Read without it, a notifier that
        // checked before our caller's spawn and bumped after this read
        // would end a wait that began after the idle moment it saw.
        let seen = {
            let _guard = tracked::lock(&self.lock);
            self.news.load(SeqCst)
        };
        self.wait_until(|| ready() || self.news.load(SeqCst) != seen, deadline)
    }

    /// If `still()` holds once checked under the lock, news: every caller
    /// of [`wait_for_news`](Self::wait_for_news) waiting now returns. The
    /// caller's own check of the condition may be stale by the time it
    /// gets the lock (a waiter that returned may have spawned again), so
    /// it is made again here.
    pub(crate) fn notify_new(&self, still: impl FnOnce() -> bool) {
        let guard = tracked::lock(&self.lock);
        if !still() {
            return;
        }
        self.news.fetch_add(1, SeqCst);
        drop(guard);
        self.cond.notify_all();
    }

    /// Is anyone blocked (or about to block) in `wait_until`?
    pub(crate) fn has_waiters(&self) -> bool {
        self.waiters.load(SeqCst) > 0
    }

    /// Wakes every waiter. Call after making the condition true with a
    /// SeqCst operation: then the SeqCst load of `waiters` cannot miss a
    /// waiter that checked the condition too early.
    pub(crate) fn notify_all(&self) {
        if self.waiters.load(SeqCst) > 0 {
            drop(tracked::lock(&self.lock));
            self.cond.notify_all();
        }
    }
}

#[cfg(all(test, loom))]
#[path = "signal_loom.rs"]
mod loom_tests;
