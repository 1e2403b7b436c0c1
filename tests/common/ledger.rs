//! Drop accounting for tests: a `Probe` is a value that records its own
//! drop in a `Ledger`, so a test can assert that every value a job captured
//! or returned was dropped exactly once, and that none is still alive.
#![allow(dead_code)]

use std::sync::atomic::{AtomicIsize, AtomicU8, Ordering::SeqCst};
use std::sync::Arc;

/// Drops seen per probe id, and how many probes are alive.
pub struct Ledger {
    drops: Box<[AtomicU8]>,
    live: AtomicIsize,
}

impl Ledger {
    /// A ledger for probes `0..n`.
    pub fn new(n: usize) -> Arc<Ledger> {
        Arc::new(Ledger {
            drops: (0..n).map(|_| AtomicU8::new(0)).collect(),
            live: AtomicIsize::new(0),
        })
    }

    /// Makes probe `id`.
    pub fn probe(self: &Arc<Self>, id: usize) -> Probe {
        self.live.fetch_add(1, SeqCst);
        Probe {
            ledger: Arc::clone(self),
            id,
        }
    }

    /// How many times probe `id` was dropped (0 or 1; a double drop fails
    /// in `Probe::drop` already).
    pub fn drops(&self, id: usize) -> u8 {
        self.drops[id].load(SeqCst)
    }

    /// Probes made and not yet dropped.
    pub fn live(&self) -> isize {
        self.live.load(SeqCst)
    }

    /// Probes dropped so far.
    pub fn dropped(&self) -> usize {
        self.drops.iter().filter(|d| d.load(SeqCst) > 0).count()
    }

    /// Every probe in `ids` was dropped exactly once and none is alive.
    pub fn assert_all_dropped_once(&self, ids: impl IntoIterator<Item = usize>, what: &str) {
        for id in ids {
            assert_eq!(
                self.drops(id),
                1,
                "{what}: probe {id} dropped {} times",
                self.drops(id)
            );
        }
        assert_eq!(self.live(), 0, "{what}: probes still alive (leaked)");
    }
}

/// A value that records its drop. Dropping one twice fails the test (in
/// the dropping thread; a worker turns that into a panicked job, which
/// the exact counts then catch).
pub struct Probe {
    ledger: Arc<Ledger>,
    pub id: usize,
}

impl std::fmt::Debug for Probe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Probe({})", self.id)
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        let before = self.ledger.drops[self.id].fetch_add(1, SeqCst);
        self.ledger.live.fetch_sub(1, SeqCst);
        assert_eq!(before, 0, "probe {} dropped twice", self.id);
    }
}
