//! Fork-join workloads, written once over a `join` function: fib(30) forked
//! down to n ≤ 12, and a parallel quicksort of 1,000,000 `u64`.

/// A rayon-style `join`: runs both closures, potentially in parallel.
pub trait ForkJoin {
    fn join<A, B, RA, RB>(a: A, b: B) -> (RA, RB)
    where
        A: FnOnce() -> RA + Send,
        B: FnOnce() -> RB + Send,
        RA: Send,
        RB: Send;
}

/// No parallelism: the baseline that shows what forking costs.
pub struct Sequential;
pub struct RayonJoin;
pub struct HandJoin;

impl ForkJoin for Sequential {
    fn join<A, B, RA, RB>(a: A, b: B) -> (RA, RB)
    where
        A: FnOnce() -> RA + Send,
        B: FnOnce() -> RB + Send,
        RA: Send,
        RB: Send,
    {
        (a(), b())
    }
}

impl ForkJoin for RayonJoin {
    fn join<A, B, RA, RB>(a: A, b: B) -> (RA, RB)
    where
        A: FnOnce() -> RA + Send,
        B: FnOnce() -> RB + Send,
        RA: Send,
        RB: Send,
    {
        rayon::join(a, b)
    }
}

impl ForkJoin for HandJoin {
    fn join<A, B, RA, RB>(a: A, b: B) -> (RA, RB)
    where
        A: FnOnce() -> RA + Send,
        B: FnOnce() -> RB + Send,
        RA: Send,
        RB: Send,
    {
        super::hand::join(a, b)
    }
}

pub struct WorkyardJoin;

impl ForkJoin for WorkyardJoin {
    fn join<A, B, RA, RB>(a: A, b: B) -> (RA, RB)
    where
        A: FnOnce() -> RA + Send,
        B: FnOnce() -> RB + Send,
        RA: Send,
        RB: Send,
    {
        workyard::join(a, b)
    }
}

/// The n the fib bench starts from.
pub const FIB_N: u32 = 30;
/// Below this, fib runs sequentially.
const FIB_CUTOFF: u32 = 12;

pub fn fib<J: ForkJoin>(n: u32) -> u64 {
    if n <= FIB_CUTOFF {
        return fib_seq(n);
    }
    let (a, b) = J::join(|| fib::<J>(n - 1), || fib::<J>(n - 2));
    a + b
}

fn fib_seq(n: u32) -> u64 {
    if n < 2 {
        u64::from(n)
    } else {
        fib_seq(n - 1) + fib_seq(n - 2)
    }
}

/// Elements the quicksort bench sorts.
pub const SORT_LEN: usize = 1_000_000;
/// Slices this short are sorted sequentially (about 1,000 leaves for 1M).
const SORT_CUTOFF: usize = 1_024;

/// The same pseudo-random input every time (xorshift64).
pub fn sort_input() -> Vec<u64> {
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    (0..SORT_LEN)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        })
        .collect()
}

pub fn quicksort<J: ForkJoin>(v: &mut [u64]) {
    if v.len() <= SORT_CUTOFF {
        v.sort_unstable();
        return;
    }
    let mid = partition(v);
    let (lo, hi) = v.split_at_mut(mid);
    J::join(|| quicksort::<J>(lo), || quicksort::<J>(&mut hi[1..]));
}

/// Lomuto partition around the median of three; returns the pivot's index.
fn partition(v: &mut [u64]) -> usize {
    let last = v.len() - 1;
    let mid = v.len() / 2;
    if v[mid] < v[0] {
        v.swap(mid, 0);
    }
    if v[last] < v[0] {
        v.swap(last, 0);
    }
    if v[mid] < v[last] {
        v.swap(mid, last);
    }
    let pivot = v[last];
    let mut store = 0;
    for i in 0..last {
        if v[i] < pivot {
            v.swap(i, store);
            store += 1;
        }
    }
    v.swap(store, last);
    store
}

/// Panics unless `v` is sorted: checks a bench's output once, untimed.
pub fn assert_sorted(v: &[u64]) {
    assert!(
        v.windows(2).all(|w| w[0] <= w[1]),
        "quicksort left the input unsorted"
    );
}
