//! Bad input sweep: every builder option with zero, tiny and huge values,
//! and every public `Dispatcher` and `JobHandle` method called in a wrong
//! state (after shutdown, after halt, twice, from inside a job). Each call
//! must give its documented error or value; none may panic or hang (the
//! whole sweep runs under the watchdog, and each pool under its own).
//! The one documented panic, `JobHandle::join` of a job from inside that
//! same job, is checked to be a panic of that job and not a hang.

mod common;
use common::{eventually, within, Gate, LIMIT};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use workyard::{
    BuildError, CancelReason, Dispatcher, DispatcherBuilder, JobError, JobHandle, JobId, JobStatus,
    WorkerError, MAX_HISTORY, MAX_WORKERS, MIN_STACK_SIZE,
};

// ---------------------------------------------------------------- builder

#[derive(Debug, PartialEq)]
enum Built {
    /// Built, and a job ran on it.
    Works,
    /// `BuildError::InvalidOption` naming this option.
    Invalid(&'static str),
    /// `BuildError::Spawn`: the thread could not be started.
    Spawn,
}

fn b() -> DispatcherBuilder {
    Dispatcher::builder().workers(1)
}

#[test]
fn every_builder_option_with_bad_values() {
    type Case = (&'static str, fn() -> DispatcherBuilder, Built);
    let cases: &[Case] = &[
        ("workers(0)", || b().workers(0), Built::Works),
        ("workers(1)", || b().workers(1), Built::Works),
        (
            "workers(MAX_WORKERS + 1)",
            || b().workers(MAX_WORKERS + 1),
            Built::Invalid("workers"),
        ),
        (
            "workers(usize::MAX)",
            || b().workers(usize::MAX),
            Built::Invalid("workers"),
        ),
        (
            "queue_capacity(0)",
            || b().queue_capacity(0),
            Built::Invalid("queue_capacity"),
        ),
        ("queue_capacity(1)", || b().queue_capacity(1), Built::Works),
        (
            "queue_capacity(usize::MAX)",
            || b().queue_capacity(usize::MAX),
            Built::Works,
        ),
        (
            "stack_size(0)",
            || b().stack_size(0),
            Built::Invalid("stack_size"),
        ),
        (
            "stack_size(MIN - 1)",
            || b().stack_size(MIN_STACK_SIZE - 1),
            Built::Invalid("stack_size"),
        ),
        (
            "stack_size(MIN)",
            || b().stack_size(MIN_STACK_SIZE),
            Built::Works,
        ),
        (
            "stack_size(usize::MAX)",
            || b().stack_size(usize::MAX),
            Built::Spawn,
        ),
        ("history(0)", || b().history(0), Built::Works),
        (
            "history(MAX_HISTORY)",
            || b().history(MAX_HISTORY),
            Built::Works,
        ),
        (
            "history(MAX_HISTORY + 1)",
            || b().history(MAX_HISTORY + 1),
            Built::Invalid("history"),
        ),
        (
            "history(usize::MAX)",
            || b().history(usize::MAX),
            Built::Invalid("history"),
        ),
        (
            "max_workers(0)",
            || b().max_workers(0),
            Built::Invalid("max_workers"),
        ),
        (
            "max_workers(< workers)",
            || b().workers(3).max_workers(2),
            Built::Invalid("max_workers"),
        ),
        (
            "max_workers(MAX_WORKERS)",
            || b().max_workers(MAX_WORKERS),
            Built::Works,
        ),
        (
            "max_workers(MAX_WORKERS + 1)",
            || b().max_workers(MAX_WORKERS + 1),
            Built::Invalid("max_workers"),
        ),
        (
            "max_workers(usize::MAX)",
            || b().max_workers(usize::MAX),
            Built::Invalid("max_workers"),
        ),
        (
            "thread_name(empty)",
            || b().thread_name(|_| String::new()),
            Built::Works,
        ),
        (
            "thread_name(NUL byte)",
            || b().thread_name(|i| format!("w\0{i}")),
            Built::Invalid("thread_name"),
        ),
        (
            "thread_name(panics)",
            || b().thread_name(|_| panic!("no name")),
            Built::Invalid("thread_name"),
        ),
    ];
    for &(name, make, ref expected) in cases {
        let got = within(LIMIT, move || match make().build() {
            Ok(pool) => {
                assert_eq!(pool.spawn(|| 6 * 7).unwrap().join().unwrap(), 42, "{name}");
                pool.shutdown();
                Built::Works
            }
            Err(BuildError::InvalidOption { option, .. }) => Built::Invalid(option),
            Err(BuildError::Spawn(_)) => Built::Spawn,
            Err(e) => panic!("{name}: unexpected {e}"),
        });
        assert_eq!(&got, expected, "{name}");
    }
}

#[test]
fn option_edges_take_effect() {
    within(LIMIT, || {
        // history(0): finished records leave the index once idle.
        let pool = b().history(0).build().unwrap();
        let h = pool.spawn(|| ()).unwrap();
        let id = h.id();
        h.join().unwrap();
        pool.wait_idle();
        assert_eq!(pool.status(id), None, "no history kept");
        // queue_capacity(1): one queued job at most.
        let pool = b().queue_capacity(1).build().unwrap();
        pool.pause();
        let first = pool.try_spawn(|| 1).unwrap();
        assert!(pool.try_spawn(|| 2).unwrap_err().is_full());
        pool.resume();
        assert_eq!(first.join().unwrap(), 1);
        // Every slot's name is made at build, so a name that only a later
        // `set_workers` would use fails the build, not that call.
        let built = b()
            .max_workers(2)
            .thread_name(|i| if i == 0 { "ok".into() } else { "bad\0".into() })
            .build();
        assert!(matches!(
            built,
            Err(BuildError::InvalidOption {
                option: "thread_name",
                ..
            })
        ));
    });
}

// ------------------------------------------------------------- dispatcher

/// Every public `Dispatcher` method, with an argument that is wrong or
/// extreme where it takes one. `finished` is a job of `pool` that
/// succeeded.
const METHODS: &[&str] = &[
    "spawn",
    "try_spawn",
    "spawn_with_deadline(past)",
    "spawn_with_timeout(0)",
    "spawn_with_timeout(MAX)",
    "status(finished)",
    "info(finished)",
    "cancel(finished)",
    "stats",
    "workers",
    "wait_idle",
    "pause",
    "resume",
    "is_shutdown",
    "shutdown",
    "shutdown_timeout(0)",
    "shutdown_timeout(MAX)",
    "halt",
    "halt_worker(0)",
    "halt_worker(usize::MAX)",
    "set_workers(0)",
    "set_workers(2)",
    "set_workers(usize::MAX)",
];

fn joined<T: std::fmt::Debug, E: std::fmt::Debug>(h: JobHandle<T, E>) -> String {
    match h.join() {
        Ok(v) => format!("ran {v:?}"),
        Err(JobError::Cancelled(r)) => format!("cancelled {r:?}"),
        Err(e) => format!("{e:?}"),
    }
}

/// Calls `method` on `pool` and describes what it returned.
fn observe(pool: &Dispatcher, method: &str, finished: JobId) -> String {
    let refused = |closed: bool| if closed { "refused" } else { "?" }.to_string();
    match method {
        "spawn" => pool.spawn(|| 1).map_or_else(|_| refused(true), joined),
        "try_spawn" => match pool.try_spawn(|| 1) {
            Ok(h) => joined(h),
            Err(e) => refused(e.is_closed()),
        },
        "spawn_with_deadline(past)" => {
            let past = Instant::now()
                .checked_sub(Duration::from_millis(1))
                .unwrap();
            pool.spawn_with_deadline(|| 1, past)
                .map_or_else(|_| refused(true), joined)
        }
        "spawn_with_timeout(0)" => pool
            .spawn_with_timeout(|| 1, Duration::ZERO)
            .map_or_else(|_| refused(true), joined),
        "spawn_with_timeout(MAX)" => pool
            .spawn_with_timeout(|| 1, Duration::MAX)
            .map_or_else(|_| refused(true), joined),
        "status(finished)" => format!("{:?}", pool.status(finished)),
        "info(finished)" => format!("{:?}", pool.info(finished).map(|i| i.status())),
        "cancel(finished)" => format!("{}", pool.cancel(finished)),
        "stats" => {
            let s = pool.stats();
            format!("workers {} finished {}", s.workers, s.finished())
        }
        "workers" => format!("{}", pool.workers()),
        "wait_idle" => {
            pool.wait_idle();
            "returned".into()
        }
        "pause" => {
            pool.pause();
            let paused = pool.is_paused();
            pool.resume();
            format!("paused {paused}")
        }
        "resume" => {
            pool.resume();
            format!("paused {}", pool.is_paused())
        }
        "is_shutdown" => format!("{}", pool.is_shutdown()),
        "shutdown" => {
            pool.shutdown();
            format!("returned, shut down {}", pool.is_shutdown())
        }
        "shutdown_timeout(0)" => format!("{:?}", pool.shutdown_timeout(Duration::ZERO)),
        "shutdown_timeout(MAX)" => format!("{:?}", pool.shutdown_timeout(Duration::MAX)),
        "halt" => {
            let r = pool.halt();
            format!(
                "never started {} interrupted {}",
                r.never_started.len(),
                r.interrupted.len()
            )
        }
        "halt_worker(0)" => format!("{:?}", pool.halt_worker(0)),
        "halt_worker(usize::MAX)" => format!("{:?}", pool.halt_worker(usize::MAX)),
        "set_workers(0)" => format!("{:?}", pool.set_workers(0)),
        "set_workers(2)" => format!("{:?}", pool.set_workers(2)),
        "set_workers(usize::MAX)" => format!("{:?}", pool.set_workers(usize::MAX)),
        other => unreachable!("{other}"),
    }
}

/// A pool with two workers (of at most 4) and one finished job.
fn fresh() -> (Dispatcher, JobId) {
    let pool = Dispatcher::builder()
        .workers(2)
        .max_workers(4)
        .build()
        .unwrap();
    let h = pool.spawn(|| 0).unwrap();
    let id = h.id();
    h.join().unwrap();
    pool.wait_idle(); // stats are exact once idle
    (pool, id)
}

/// What each method gives (after shutdown, after halt, from inside a job).
fn expected(method: &str) -> [&'static str; 3] {
    const ABOVE: &str = "Err(AboveMax { requested: 18446744073709551615, max: 4 })";
    match method {
        "spawn" | "try_spawn" | "spawn_with_timeout(MAX)" => ["refused", "refused", "ran 1"],
        "spawn_with_deadline(past)" | "spawn_with_timeout(0)" => {
            ["refused", "refused", "cancelled Deadline"]
        }
        "status(finished)" => ["Some(Succeeded)"; 3],
        "info(finished)" => ["Some(Succeeded)"; 3],
        "cancel(finished)" => ["false"; 3],
        "stats" => [
            "workers 0 finished 1",
            "workers 0 finished 1",
            "workers 2 finished 1",
        ],
        "workers" => ["0", "0", "2"],
        "wait_idle" => ["returned"; 3],
        // A closed dispatcher cannot be paused (documented on `pause`).
        "pause" => ["paused false", "paused false", "paused true"],
        "resume" => ["paused false"; 3],
        "is_shutdown" => ["true", "true", "false"],
        "shutdown" => ["returned, shut down true"; 3],
        "shutdown_timeout(0)" | "shutdown_timeout(MAX)" => ["Ok(())"; 3],
        // Inside a job, the calling job is the one running job.
        "halt" => [
            "never started 0 interrupted 0",
            "never started 0 interrupted 0",
            "never started 0 interrupted 1",
        ],
        "halt_worker(0)" => ["Err(NotRunning(0))", "Err(NotRunning(0))", "Ok(())"],
        "halt_worker(usize::MAX)" => ["Err(NotRunning(18446744073709551615))"; 3],
        "set_workers(0)" => ["Err(Zero)"; 3],
        "set_workers(2)" => ["Err(Shutdown)", "Err(Shutdown)", "Ok(())"],
        "set_workers(usize::MAX)" => [ABOVE; 3],
        other => unreachable!("{other}"),
    }
}

#[test]
fn every_dispatcher_method_after_shutdown_after_halt_and_inside_a_job() {
    within(LIMIT, || {
        for &method in METHODS {
            let [after_shutdown, after_halt, inside] = expected(method);

            let (pool, finished) = fresh();
            pool.shutdown();
            assert_eq!(
                observe(&pool, method, finished),
                after_shutdown,
                "{method} after shutdown"
            );

            let (pool, finished) = fresh();
            pool.halt();
            assert_eq!(
                observe(&pool, method, finished),
                after_halt,
                "{method} after halt"
            );

            // From inside a job; the answer comes back on a channel, since
            // some calls (halt) end the calling job cancelled.
            let (pool, finished) = fresh();
            let (tx, rx) = mpsc::channel();
            let p = pool.clone();
            drop(pool.spawn(move || tx.send(observe(&p, method, finished)).unwrap()));
            let got = rx.recv_timeout(LIMIT).expect("the job answered");
            assert_eq!(got, inside, "{method} inside a job");
        }
    });
}

#[test]
fn dispatcher_methods_called_twice() {
    within(LIMIT, || {
        // Each pair: the second call's documented result.
        let (pool, finished) = fresh();
        pool.pause();
        let queued = pool.spawn(|| 1).unwrap();
        assert!(pool.cancel(queued.id()));
        assert!(
            !pool.cancel(queued.id()),
            "second cancel: already cancelled"
        );
        pool.pause();
        assert!(pool.is_paused(), "pause twice: still paused");
        pool.resume();
        pool.resume();
        assert!(!pool.is_paused(), "resume twice: still running");
        assert_eq!(pool.set_workers(3), Ok(()));
        assert_eq!(pool.set_workers(3), Ok(()));
        assert_eq!(pool.workers(), 3);
        assert_eq!(pool.halt_worker(2), Ok(()));
        assert_eq!(pool.halt_worker(2), Err(WorkerError::NotRunning(2)));
        pool.wait_idle();
        pool.wait_idle();
        assert_eq!(pool.shutdown_timeout(Duration::ZERO), Ok(()));
        assert_eq!(pool.shutdown_timeout(Duration::ZERO), Ok(()));
        pool.shutdown();
        pool.shutdown();
        assert_eq!(pool.status(finished), Some(JobStatus::Succeeded));

        let (pool, _) = fresh();
        let gate = Gate::new();
        let g = gate.clone();
        let running = pool.spawn(move || g.wait()).unwrap();
        eventually("running", || running.status() == JobStatus::Running);
        let first = pool.halt_worker(0).and(pool.halt_worker(1));
        assert!(first.is_err(), "one of the two is the last worker");
        gate.open();
        running.join().unwrap();
        let report = pool.halt();
        assert_eq!(
            (report.never_started.len(), report.interrupted.len()),
            (0, 0)
        );
        let again = pool.halt();
        assert_eq!(
            again,
            workyard::HaltReport::default(),
            "second halt: nothing left"
        );
    });
}

#[test]
fn set_workers_right_after_a_shrink_reaches_the_size_asked() {
    // Growing may need the slots of workers still halting: it waits for
    // them rather than returning `Ok` with fewer workers than asked.
    within(LIMIT, || {
        let pool = Dispatcher::builder()
            .workers(4)
            .max_workers(4)
            .build()
            .unwrap();
        for _ in 0..50 {
            assert_eq!(pool.set_workers(1), Ok(()));
            assert_eq!(pool.workers(), 1);
            assert_eq!(pool.set_workers(4), Ok(()));
            assert_eq!(pool.workers(), 4);
        }
        assert_eq!(pool.spawn(|| 9).unwrap().join().unwrap(), 9);
    });
}

#[test]
fn pause_racing_a_shutdown_cannot_stall_it() {
    // The shutdown resumes the pool, then waits for the queued jobs; a
    // pause from another thread after that resume must not stop them.
    within(LIMIT, || {
        for _ in 0..20 {
            let pool = Dispatcher::builder().workers(1).build().unwrap();
            let gate = Gate::new();
            let g = gate.clone();
            pool.spawn(move || g.wait()).unwrap();
            for _ in 0..10 {
                pool.spawn(|| ()).unwrap();
            }
            let closer = {
                let pool = pool.clone();
                std::thread::spawn(move || pool.shutdown())
            };
            eventually("shutdown began", || pool.is_shutdown());
            pool.pause();
            assert!(!pool.is_paused());
            gate.open();
            closer.join().unwrap();
            assert_eq!(pool.stats().succeeded, 11);
        }
    });
}

// -------------------------------------------------------------- JobHandle

#[test]
fn job_handle_methods_in_wrong_states() {
    within(LIMIT, || {
        // After its dispatcher is gone: everything still answers.
        let h = {
            let pool = fresh().0;
            pool.spawn(|| 5).unwrap()
        };
        assert!(h.is_finished());
        assert_eq!(h.status(), JobStatus::Succeeded);
        assert_eq!(h.info().status(), JobStatus::Succeeded);
        assert!(!h.cancel(), "finished: too late");
        assert!(!h.cancel(), "twice");
        assert_eq!(h.join_timeout(Duration::ZERO).unwrap().unwrap(), 5);

        // Never started, then halted: cancelled by the halt.
        let (pool, _) = fresh();
        pool.pause();
        let h = pool.spawn(|| 5).unwrap();
        pool.halt();
        assert_eq!(h.status(), JobStatus::Cancelled);
        assert!(!h.cancel());
        assert!(matches!(
            h.join(),
            Err(JobError::Cancelled(CancelReason::Halt))
        ));

        // Zero and huge timeouts, twice.
        let (pool, _) = fresh();
        let gate = Gate::new();
        let g = gate.clone();
        let h = pool.spawn(move || g.wait()).unwrap();
        let h = h.join_timeout(Duration::ZERO).unwrap_err();
        let h = h.join_timeout(Duration::ZERO).unwrap_err();
        gate.open();
        assert!(h.join_timeout(Duration::MAX).unwrap().is_ok());

        // Cancel twice while queued.
        pool.pause();
        let h = pool.spawn(|| ()).unwrap();
        assert!(h.cancel());
        assert!(!h.cancel());
        pool.resume();
        assert!(h.join().unwrap_err().is_cancelled());
    });
}

#[test]
fn job_handle_methods_from_inside_its_own_job() {
    within(LIMIT, || {
        let pool = fresh().0;
        type Own = Arc<Mutex<Option<JobHandle<String>>>>;
        let slot: Own = Arc::default();
        let gate = Gate::new();
        let (s, g) = (slot.clone(), gate.clone());
        let outer = pool
            .spawn(move || {
                g.wait();
                let own = s.lock().unwrap().take().unwrap();
                let seen = format!(
                    "{} {} {:?}",
                    own.status(),
                    own.is_finished(),
                    own.info().status()
                );
                // A timed join of itself returns the handle at once.
                let own = own.join_timeout(Duration::MAX).unwrap_err();
                // A join of itself panics (documented) instead of hanging.
                let _ = own.join();
                seen
            })
            .unwrap();
        let id = outer.id();
        *slot.lock().unwrap() = Some(outer);
        gate.open();
        pool.wait_idle();
        assert_eq!(pool.status(id), Some(JobStatus::Panicked));

        // Cancelling itself: the job ends Cancelled whatever it returns.
        let slot: Own = Arc::default();
        let gate = Gate::new();
        let (s, g) = (slot.clone(), gate.clone());
        let h = pool
            .spawn(move || {
                g.wait();
                let own = s.lock().unwrap().take().unwrap();
                assert!(own.cancel());
                assert!(!own.cancel());
                format!("{}", workyard::is_cancelled())
            })
            .unwrap();
        let id = h.id();
        *slot.lock().unwrap() = Some(h);
        gate.open();
        pool.wait_idle();
        assert_eq!(pool.status(id), Some(JobStatus::Cancelled));
    });
}
