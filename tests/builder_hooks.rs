//! The builder's handlers: `panic_handler` gets exactly the payloads nobody
//! else will see; `start_handler` and `exit_handler` run once on every
//! worker thread, may call back into the dispatcher, and their panics kill
//! neither the worker nor the pool.

mod common;
use common::{eventually, threads_named, within, Gate, LIMIT};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use workyard::{Dispatcher, DispatcherBuilder, JobStatus};

/// A shared list the handlers append to.
#[derive(Clone, Default)]
struct Log<T>(Arc<Mutex<Vec<T>>>);

impl<T: Clone + Ord> Log<T> {
    fn push(&self, value: T) {
        self.0.lock().unwrap().push(value);
    }

    fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }

    fn sorted(&self) -> Vec<T> {
        let mut all = self.0.lock().unwrap().clone();
        all.sort();
        all
    }
}

/// A builder whose panic handler logs each payload's message.
fn logging_panics(workers: usize, log: &Log<String>) -> DispatcherBuilder {
    let log = log.clone();
    Dispatcher::builder()
        .workers(workers)
        .panic_handler(move |payload| log.push(payload.message().unwrap_or("?").to_string()))
}

#[test]
fn the_panic_handler_gets_exactly_the_payloads_nobody_sees() {
    within(LIMIT, || {
        let seen = Log::default();
        let pool = logging_panics(8, &seen).build().unwrap();
        let gate = Gate::new();

        // Detached before they finish: all 64 reach the handler.
        for i in 0..64 {
            let gate = gate.clone();
            drop(
                pool.spawn(move || -> () {
                    gate.wait();
                    panic!("detached {i:02}")
                })
                .unwrap(),
            );
        }
        // Joined: the joiner gets the payload, the handler does not.
        let joined: Vec<_> = (0..16)
            .map(|i| {
                let gate = gate.clone();
                pool.spawn(move || -> () {
                    gate.wait();
                    panic!("joined {i}")
                })
                .unwrap()
            })
            .collect();
        gate.open();
        for (i, handle) in joined.into_iter().enumerate() {
            let payload = handle.join().unwrap_err().into_panic().unwrap();
            assert_eq!(payload.message(), Some(format!("joined {i}").as_str()));
        }
        // Dropped after it finished: the payload was there to take.
        let late = pool.spawn(|| -> () { panic!("dropped late") }).unwrap();
        eventually("the job finished", || late.is_finished());
        drop(late);
        pool.wait_idle();

        let expected: Vec<_> = (0..64).map(|i| format!("detached {i:02}")).collect();
        assert_eq!(seen.sorted(), expected);
        assert_eq!(pool.stats().panicked, 64 + 16 + 1);
        pool.shutdown();
    });
}

#[test]
fn a_job_asked_to_stop_that_panics_reaches_the_handler() {
    within(LIMIT, || {
        let seen = Log::default();
        let pool = logging_panics(8, &seen).build().unwrap();
        let handle = pool
            .spawn(|| -> () {
                while !workyard::is_cancelled() {
                    std::thread::yield_now();
                }
                panic!("stopped, then panicked")
            })
            .unwrap();
        eventually("the job runs", || handle.status() == JobStatus::Running);
        assert!(handle.cancel());
        let id = handle.id();
        assert!(handle.join().unwrap_err().is_cancelled());
        assert_eq!(pool.status(id), Some(JobStatus::Cancelled));
        pool.wait_idle();
        assert_eq!(seen.sorted(), ["stopped, then panicked"]);
        pool.shutdown();
    });
}

#[test]
fn a_panicking_panic_handler_kills_no_worker() {
    within(LIMIT, || {
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&calls);
        let pool = Dispatcher::builder()
            .workers(8)
            .thread_name(|i| format!("hooks-panicky-{i}"))
            .panic_handler(move |_payload| {
                counted.fetch_add(1, SeqCst);
                panic!("the panic handler panics too");
            })
            .build()
            .unwrap();
        for _ in 0..100 {
            drop(pool.spawn(|| -> () { panic!("detached") }).unwrap());
        }
        pool.wait_idle();
        assert_eq!(calls.load(SeqCst), 100);
        assert_eq!(pool.stats().panicked, 100);
        // Every worker is alive and runs jobs.
        assert_eq!(threads_named("hooks-panicky-"), 8);
        let handles: Vec<_> = (0..64u64)
            .map(|i| pool.spawn(move || i * 2).unwrap())
            .collect();
        let sum: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
        assert_eq!(sum, 2 * (0..64).sum::<u64>());
        assert_eq!(pool.workers(), 8);
        pool.shutdown();
    });
}

#[test]
fn start_and_exit_handlers_run_once_on_every_worker() {
    within(LIMIT, || {
        let starts: Log<(usize, String)> = Log::default();
        let exits: Log<(usize, String)> = Log::default();
        let here = || std::thread::current().name().unwrap_or("").to_string();
        let (s, e) = (starts.clone(), exits.clone());
        let pool = Dispatcher::builder()
            .workers(8)
            .max_workers(16)
            .start_handler(move |i| s.push((i, here())))
            .exit_handler(move |i| e.push((i, here())))
            .build()
            .unwrap();
        let named = |range: std::ops::Range<usize>| -> Vec<(usize, String)> {
            range.map(|i| (i, format!("workyard-{i}"))).collect()
        };
        // `build` returns once every start handler has returned.
        assert_eq!(starts.sorted(), named(0..8));
        assert_eq!(exits.len(), 0);

        pool.set_workers(12).unwrap();
        assert_eq!(starts.sorted(), named(0..12));

        pool.halt_worker(3).unwrap();
        pool.set_workers(10).unwrap(); // halts the highest: 11
        eventually("workers 3 and 11 exit", || exits.len() == 2);
        assert_eq!(
            exits.sorted(),
            vec![
                (3, "workyard-3".to_string()),
                (11, "workyard-11".to_string())
            ]
        );

        // The shutdown joins the threads: every exit handler has returned.
        pool.shutdown();
        assert_eq!(exits.sorted(), named(0..12));
        assert_eq!(starts.len(), 12, "no worker started twice");
    });
}

#[test]
fn handlers_may_call_back_into_the_dispatcher() {
    within(LIMIT, || {
        let slot: Arc<Mutex<Option<Dispatcher>>> = Arc::default();
        let ran = Arc::new(AtomicUsize::new(0));
        let refused = Arc::new(AtomicUsize::new(0));
        let pool_of = |slot: &Arc<Mutex<Option<Dispatcher>>>| slot.lock().unwrap().clone();
        let (start_slot, start_ran) = (Arc::clone(&slot), Arc::clone(&ran));
        let (exit_slot, exit_ran, exit_refused) =
            (Arc::clone(&slot), Arc::clone(&ran), Arc::clone(&refused));
        let pool = Dispatcher::builder()
            .workers(8)
            .max_workers(16)
            .start_handler(move |_| {
                // Empty during `build`: the handlers of the first workers
                // run before it returns.
                if let Some(pool) = pool_of(&start_slot) {
                    // Orders from a worker are queued, never waited for.
                    pool.pause();
                    pool.resume();
                    let ran = Arc::clone(&start_ran);
                    let job = pool.spawn(move || ran.fetch_add(1, SeqCst)).unwrap();
                    job.join().unwrap();
                }
            })
            .exit_handler(move |_| {
                if let Some(pool) = pool_of(&exit_slot) {
                    let ran = Arc::clone(&exit_ran);
                    match pool.spawn(move || ran.fetch_add(1, SeqCst)) {
                        Ok(job) => drop(job.join().unwrap()),
                        Err(_) => drop(exit_refused.fetch_add(1, SeqCst)),
                    }
                }
            })
            .build()
            .unwrap();
        assert_eq!(ran.load(SeqCst), 0);
        *slot.lock().unwrap() = Some(pool.clone());

        // Four new workers, each spawning and joining one job as it starts.
        pool.set_workers(12).unwrap();
        assert_eq!(ran.load(SeqCst), 4);
        // A halted worker's exit handler spawns into the open pool.
        pool.halt_worker(0).unwrap();
        eventually("the halted worker's job ran", || ran.load(SeqCst) == 5);
        // At the shutdown the pool is closed: the other 11 are refused.
        pool.shutdown();
        assert_eq!(ran.load(SeqCst), 5);
        assert_eq!(refused.load(SeqCst), 11);
        // The handlers hold a clone: break the cycle.
        drop(slot.lock().unwrap().take());
    });
}

#[test]
fn panicking_start_and_exit_handlers_kill_no_worker() {
    within(LIMIT, || {
        let seen = Log::default();
        let pool = logging_panics(8, &seen)
            .thread_name(|i| format!("hookbad-{i}"))
            .start_handler(|i| panic!("start {i}"))
            .exit_handler(|i| panic!("exit {i}"))
            .build()
            .unwrap();
        assert_eq!(pool.workers(), 8);
        assert_eq!(threads_named("hookbad-"), 8);
        let handles: Vec<_> = (0..100u64)
            .map(|i| pool.spawn(move || i).unwrap())
            .collect();
        let sum: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
        assert_eq!(sum, (0..100).sum::<u64>());
        pool.shutdown();
        let starts: BTreeSet<_> = (0..8).map(|i| format!("start {i}")).collect();
        let exits: BTreeSet<_> = (0..8).map(|i| format!("exit {i}")).collect();
        let expected: Vec<_> = starts
            .into_iter()
            .chain(exits)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        assert_eq!(seen.sorted(), expected);

        // Without a panic handler the payloads are dropped; same outcome.
        let pool = Dispatcher::builder()
            .workers(8)
            .start_handler(|i| panic!("start {i}"))
            .exit_handler(|i| panic!("exit {i}"))
            .build()
            .unwrap();
        assert_eq!(pool.spawn(|| 7).unwrap().join().unwrap(), 7);
        pool.shutdown();
    });
}
