//! Fork-join workloads, written once over a `join` function: fib(30) forked
//! down to n ≤ 12, and a parallel quicksort of 1,000,000 `u64`; and, with
//! no cutoff at all, the workloads of chili's and Spice's benchmarks that
//! measure what a `join` itself costs: a binary-tree sum and fib(30)
//! joining at every node, and a merge sort of 2,000,000 `u64`.

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
    random_u64s(SORT_LEN)
}

/// `len` pseudo-random `u64`, the same every time (xorshift64).
pub fn random_u64s(len: usize) -> Vec<u64> {
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    (0..len)
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

/// A node of a complete binary tree, as in chili's and Spice's benchmark.
pub struct Node {
    val: u64,
    left: Option<Box<Node>>,
    right: Option<Box<Node>>,
}

impl Node {
    /// A complete tree of `2^layers - 1` nodes, each holding 1.
    pub fn tree(layers: u32) -> Node {
        let child = || (layers > 1).then(|| Box::new(Node::tree(layers - 1)));
        Node {
            val: 1,
            left: child(),
            right: child(),
        }
    }
}

/// The sum of the tree's values, with a `join` at every node (no cutoff).
pub fn tree_sum<J: ForkJoin>(node: &Node) -> u64 {
    let (left, right) = J::join(
        || node.left.as_deref().map_or(0, tree_sum::<J>),
        || node.right.as_deref().map_or(0, tree_sum::<J>),
    );
    node.val + left + right
}

/// fib(n) with a `join` at every level (no cutoff): about 1.3 million
/// `join`s for fib(30), each around a nanosecond of work.
pub fn fib_every<J: ForkJoin>(n: u32) -> u64 {
    if n < 2 {
        return u64::from(n);
    }
    let (a, b) = J::join(|| fib_every::<J>(n - 1), || fib_every::<J>(n - 2));
    a + b
}

/// Elements the merge sort bench sorts.
pub const MERGE_LEN: usize = 2_000_000;
/// Slices this short are sorted sequentially (about 1,000 leaves for 2M).
const MERGE_CUTOFF: usize = 2_048;

/// Sorts `v` by a parallel merge sort, with `buf` (as long as `v`) as
/// scratch space; the merges themselves are sequential.
pub fn merge_sort<J: ForkJoin>(v: &mut [u64], buf: &mut [u64]) {
    if v.len() <= MERGE_CUTOFF {
        v.sort_unstable();
        return;
    }
    let mid = v.len() / 2;
    {
        let (lo, hi) = v.split_at_mut(mid);
        let (buf_lo, buf_hi) = buf.split_at_mut(mid);
        J::join(
            || merge_sort::<J>(lo, buf_lo),
            || merge_sort::<J>(hi, buf_hi),
        );
    }
    let (lo, hi) = v.split_at(mid);
    let (mut i, mut j) = (0, 0);
    for out in buf.iter_mut() {
        if j == hi.len() || (i < lo.len() && lo[i] <= hi[j]) {
            *out = lo[i];
            i += 1;
        } else {
            *out = hi[j];
            j += 1;
        }
    }
    v.copy_from_slice(buf);
}
