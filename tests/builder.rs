//! Builder validation names the bad option; good options take effect.

use workyard::{BuildError, Dispatcher, MAX_WORKERS, MIN_STACK_SIZE};

fn invalid_option(result: Result<Dispatcher, BuildError>) -> &'static str {
    match result {
        Err(BuildError::InvalidOption { option, .. }) => option,
        other => panic!("expected InvalidOption, got {other:?}"),
    }
}

#[test]
fn bad_values_are_named() {
    assert_eq!(
        invalid_option(Dispatcher::builder().workers(MAX_WORKERS + 1).build()),
        "workers"
    );
    assert_eq!(
        invalid_option(Dispatcher::builder().queue_capacity(0).build()),
        "queue_capacity"
    );
    assert_eq!(
        invalid_option(Dispatcher::builder().stack_size(MIN_STACK_SIZE - 1).build()),
        "stack_size"
    );
    assert_eq!(
        invalid_option(Dispatcher::builder().workers(4).max_workers(2).build()),
        "max_workers"
    );
    let err = Dispatcher::builder()
        .workers(MAX_WORKERS + 1)
        .build()
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid DispatcherBuilder::workers: must be at most MAX_WORKERS (4096)"
    );
}

#[test]
fn zero_workers_means_one_per_logical_cpu() {
    let default = Dispatcher::builder().build().unwrap();
    let cpus = default.workers();
    default.shutdown();
    assert!(cpus >= 1);
    let pool = Dispatcher::builder().workers(0).build().unwrap();
    assert_eq!(pool.workers(), cpus);
    assert_eq!(pool.stats().per_worker.len(), cpus);
    pool.shutdown();
}

#[test]
fn options_take_effect() {
    let pool = Dispatcher::builder()
        .workers(3)
        .thread_name(|i| format!("custom-{i}"))
        .stack_size(MIN_STACK_SIZE * 4)
        .build()
        .unwrap();
    assert_eq!(pool.workers(), 3);
    let name = pool
        .spawn(|| std::thread::current().name().map(str::to_owned))
        .unwrap()
        .join()
        .unwrap();
    assert!(name.unwrap().starts_with("custom-"));
    let deep = pool
        .spawn(|| std::hint::black_box([0u8; 128 * 1024]).len())
        .unwrap();
    assert_eq!(deep.join().unwrap(), 128 * 1024);
}

#[test]
fn defaults_use_every_cpu() {
    let pool = Dispatcher::new();
    assert_eq!(pool.workers(), num_cpus::get());
    assert!(format!("{:?}", Dispatcher::builder()).contains("DispatcherBuilder"));
}

#[test]
fn dispatcher_is_clone_send_sync() {
    fn assert_traits<T: Clone + Send + Sync + 'static>() {}
    assert_traits::<Dispatcher>();
    fn assert_send<T: Send>() {}
    assert_send::<workyard::JobHandle<Vec<u8>, String>>();
}

/// `build` and `set_workers` return once the threads they start are
/// running, so that no first job waits for (or pays for) a thread's start.
#[cfg(target_os = "linux")]
#[test]
fn build_and_set_workers_return_with_their_threads_running() {
    // A thread takes its name from inside itself as it starts; Linux shows
    // it in `/proc/self/task/*/comm`, truncated to 15 bytes.
    fn running(prefix: &str) -> usize {
        std::fs::read_dir("/proc/self/task")
            .expect("procfs")
            .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
            .filter(|name| name.starts_with(prefix))
            .count()
    }
    let pool = Dispatcher::builder()
        .workers(3)
        .max_workers(5)
        .thread_name(|i| format!("wy-started-{i}"))
        .build()
        .unwrap();
    assert_eq!(running("wy-started-"), 3);
    pool.set_workers(5).unwrap();
    assert_eq!(running("wy-started-"), 5);
    pool.shutdown();
}
