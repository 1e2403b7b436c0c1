//! Errors that work with `?`: `JobError`, `SpawnError` and `TrySpawnError`
//! go into `anyhow::Error` and `Box<dyn Error + Send + Sync>`, for any job,
//! and the refused job still comes back out.

use std::cell::Cell;
use std::convert::Infallible;
use std::error::Error;
use workyard::{Dispatcher, JobError, PanicPayload, RejectedJob, SpawnError, TrySpawnError};

type BoxError = Box<dyn Error + Send + Sync>;

fn assert_send_sync<T: Send + Sync + 'static>() {}

/// The type of a value, checked the same way (closures have no name).
fn assert_send_sync_value<T: Send + Sync + 'static>(_: &T) {}

/// A job that is `Send` but not `Sync`: it captures a `Cell`.
fn cell_job(start: u32) -> impl FnOnce() -> u32 + Send + 'static {
    let cell = Cell::new(start);
    move || {
        cell.set(cell.get() + 1);
        cell.get()
    }
}

#[test]
fn the_error_types_are_send_sync_and_static() {
    assert_send_sync::<PanicPayload>();
    assert_send_sync::<JobError>();
    assert_send_sync::<JobError<String>>();
    assert_send_sync::<JobError<std::io::Error>>();
    assert_send_sync::<RejectedJob<Cell<u32>>>();
    assert_send_sync::<SpawnError<Cell<u32>>>();
    assert_send_sync::<TrySpawnError<Cell<u32>>>();
    let job = cell_job(0);
    let pool = Dispatcher::builder().workers(1).build().unwrap();
    pool.shutdown();
    let refused = pool.spawn(job).unwrap_err();
    assert_send_sync_value(&refused);
    assert_send_sync_value(&TrySpawnError::from(refused));
}

fn anyhow_spawn_and_join(pool: &Dispatcher) -> anyhow::Result<u32> {
    Ok(pool.spawn(|| 1u32)?.join()?)
}

fn anyhow_cell_job(pool: &Dispatcher) -> anyhow::Result<u32> {
    Ok(pool.spawn(cell_job(41))?.join()?)
}

fn boxed_cell_job(pool: &Dispatcher) -> Result<u32, BoxError> {
    Ok(pool.spawn(cell_job(41))?.join()?)
}

fn boxed_try_spawn(pool: &Dispatcher) -> Result<u32, BoxError> {
    Ok(pool.try_spawn(cell_job(41))?.join()?)
}

#[test]
fn question_mark_converts_on_success() {
    let pool = Dispatcher::builder().workers(8).build().unwrap();
    assert_eq!(anyhow_spawn_and_join(&pool).unwrap(), 1);
    assert_eq!(anyhow_cell_job(&pool).unwrap(), 42);
    assert_eq!(boxed_cell_job(&pool).unwrap(), 42);
    assert_eq!(boxed_try_spawn(&pool).unwrap(), 42);
    pool.shutdown();
}

/// Spawns `job` on a shut-down pool through `?` into `anyhow::Error`, then
/// downcasts the error back and returns the job it held.
fn refused_through_anyhow<F>(pool: &Dispatcher, job: F) -> F
where
    F: FnOnce() -> u32 + Send + 'static,
{
    let spawn = || -> anyhow::Result<u32> { Ok(pool.spawn(job)?.join()?) };
    let err = spawn().unwrap_err();
    assert_eq!(
        err.to_string(),
        "the dispatcher is shut down and accepts no more jobs"
    );
    err.downcast::<SpawnError<F>>()
        .expect("a SpawnError of this job")
        .into_inner()
}

/// As [`refused_through_anyhow`], through `Box<dyn Error + Send + Sync>`
/// and `try_spawn`.
fn refused_through_box<F>(pool: &Dispatcher, job: F) -> (bool, F)
where
    F: FnOnce() -> u32 + Send + 'static,
{
    let spawn = || -> Result<u32, BoxError> { Ok(pool.try_spawn(job)?.join()?) };
    let err = spawn().unwrap_err();
    let err = err
        .downcast::<TrySpawnError<F>>()
        .expect("a TrySpawnError of this job");
    (err.is_closed(), err.into_inner())
}

#[test]
fn a_refused_job_comes_back_out_of_anyhow_and_box() {
    let pool = Dispatcher::builder().workers(8).build().unwrap();
    pool.shutdown();
    let job = refused_through_anyhow(&pool, cell_job(9));
    assert_eq!(job(), 10, "the refused job runs, unrun before");
    let (closed, job) = refused_through_box(&pool, cell_job(19));
    assert!(closed);
    assert_eq!(job(), 20);
}

#[test]
fn a_full_queue_gives_the_job_back_through_box() {
    let pool = Dispatcher::builder()
        .workers(8)
        .queue_capacity(1)
        .build()
        .unwrap();
    pool.pause();
    let queued = pool.try_spawn(|| 0u32).unwrap();
    let (closed, job) = refused_through_box(&pool, cell_job(29));
    assert!(!closed, "refused as Full");
    assert_eq!(job(), 30);
    pool.resume();
    assert_eq!(queued.join().unwrap(), 0);
    pool.shutdown();
}

#[test]
fn a_job_error_keeps_its_kind_and_payload_through_anyhow() {
    let pool = Dispatcher::builder().workers(8).build().unwrap();
    let panicked = || -> anyhow::Result<u32> {
        Ok(pool
            .spawn(|| -> u32 { std::panic::panic_any(String::from("deliberate")) })?
            .join()?)
    };
    let err = panicked().unwrap_err();
    assert_eq!(err.to_string(), "job panicked: deliberate");
    let err = err.downcast::<JobError<Infallible>>().unwrap();
    assert_eq!(err.into_panic().unwrap().message(), Some("deliberate"));

    let failed = || -> Result<u32, BoxError> {
        Ok(pool
            .spawn(workyard::fallible(|| Err::<u32, _>("no input".to_string())))?
            .join()?)
    };
    let err = failed().unwrap_err();
    assert_eq!(err.to_string(), "job failed: no input");
    let err = err.downcast::<JobError<String>>().unwrap();
    assert_eq!(err.into_failure().as_deref(), Some("no input"));
    pool.shutdown();
}

#[test]
fn a_rejected_job_is_reached_by_value_or_mut() {
    let mut rejected = RejectedJob::new(Cell::new(1u8));
    rejected.get_mut().set(5);
    assert_eq!(rejected.into_inner().get(), 5);
    // Sync jobs may be compared and looked at through `&`.
    assert_eq!(SpawnError::new(3u8), SpawnError::new(3u8));
    assert_ne!(
        TrySpawnError::Full(RejectedJob::new(3u8)),
        TrySpawnError::Closed(RejectedJob::new(3u8))
    );
    assert_eq!(*RejectedJob::new(7u8).get(), 7);
}
