//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::sync::mpsc;
use std::time::Duration;

/// Runs `f` on its own thread and fails the test if it takes longer than
/// `limit`: a hang becomes a failure instead of a stuck CI run.
pub fn within<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    let worker = std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(limit) {
        Ok(value) => {
            worker.join().expect("test thread");
            value
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => match worker.join() {
            Err(panic) => std::panic::resume_unwind(panic),
            Ok(()) => unreachable!("the thread sends before it returns"),
        },
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("hung: did not finish within {limit:?}"),
    }
}

/// The generous limit for tests that only hang on a bug.
pub const LIMIT: Duration = Duration::from_secs(60);

/// Waits (yielding, with a deadline) until `cond()` holds. For conditions no
/// API can block on, such as "the job is now running".
pub fn eventually(what: &str, cond: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + LIMIT;
    while !cond() {
        assert!(
            std::time::Instant::now() < deadline,
            "never happened: {what}"
        );
        std::thread::yield_now();
    }
}

/// A gate a job can wait on, opened from the test: lets a test hold a job
/// in the Running state for as long as it needs, without sleeping.
#[derive(Clone, Default)]
pub struct Gate(std::sync::Arc<(std::sync::Mutex<bool>, std::sync::Condvar)>);

impl Gate {
    pub fn new() -> Gate {
        Gate::default()
    }

    pub fn open(&self) {
        *self.0 .0.lock().unwrap() = true;
        self.0 .1.notify_all();
    }

    pub fn wait(&self) {
        let mut open = self.0 .0.lock().unwrap();
        while !*open {
            open = self.0 .1.wait(open).unwrap();
        }
    }
}

/// The worker threads of this process whose name starts with `prefix`
/// (Linux: `/proc/self/task/*/comm`).
pub fn threads_named(prefix: &str) -> usize {
    std::fs::read_dir("/proc/self/task")
        .map(|tasks| {
            tasks
                .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
                .filter(|name| name.starts_with(prefix))
                .count()
        })
        .unwrap_or(0)
}

/// Keeps the panic message of a job that panics on purpose, with the
/// payload `"deliberate"`, out of the test output; every other panic
/// (a failing assertion) is reported as usual.
pub fn silence_deliberate_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let report = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if info.payload().downcast_ref::<&str>() != Some(&"deliberate") {
                report(info)
            }
        }));
    });
}

/// Counts the caller in at `arrived` and waits (yielding, with a deadline)
/// until `n` threads have arrived: `true` if they all did, so that all `n`
/// were running at the same moment. Unlike a `Barrier`, it cannot hang.
pub fn meet(arrived: &std::sync::atomic::AtomicUsize, n: usize) -> bool {
    use std::sync::atomic::Ordering::SeqCst;
    arrived.fetch_add(1, SeqCst);
    let deadline = std::time::Instant::now() + LIMIT;
    while arrived.load(SeqCst) < n {
        if std::time::Instant::now() >= deadline {
            return false;
        }
        std::thread::yield_now();
    }
    true
}

/// A one-worker pool bounded at `capacity`, its worker held by a running
/// job until the returned gate opens: queued jobs stay queued meanwhile.
pub fn held_pool(capacity: usize) -> (workyard::Dispatcher, Gate, workyard::JobHandle<()>) {
    let pool = workyard::Dispatcher::builder()
        .workers(1)
        .queue_capacity(capacity)
        .build()
        .unwrap();
    let gate = Gate::new();
    let g = gate.clone();
    let held = pool.spawn(move || g.wait()).unwrap();
    eventually("the holding job runs", || {
        held.status() == workyard::JobStatus::Running
    });
    (pool, gate, held)
}
