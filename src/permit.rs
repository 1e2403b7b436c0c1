//! Async backpressure: [`Dispatcher::reserve`] waits for a place in a
//! bounded queue without blocking the executor's thread, and gives a
//! [`Permit`] that spawns one job into that place.
//!
//! A [`Reserve`] future tries to reserve a place each time it is polled.
//! When the queue is full it queues its waker in the pool's
//! `space_wakers` (a `WakerQueue`) and tries once more: a place given
//! back after that try wakes it, one waiter per place, in the order they
//! came (`Pool::give_back_place`; the protocol is in `waker_queue.rs`).
//! The pool reads that queue's count only where it already wakes blocked
//! spawners, so spawning and running cost nothing more while no future
//! waits. A future dropped after it was woken hands its wake-up on; one
//! woken when the pool closes returns an error.
//!
//! A permit holds a place, not an admission: it does not count as pending
//! work, so `wait_idle` and `shutdown` do not wait for unused permits.
//! [`Permit::spawn`] admits the job into the place it holds, so it fails
//! only if the dispatcher closed meanwhile. A permit dropped unused gives
//! its place back and wakes the next waiter.

use crate::dispatcher::{self, Admitted};
use crate::error::SpawnError;
use crate::handle::JobHandle;
use crate::job::Job;
use crate::waker_queue::Ticket;
use crate::Dispatcher;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// A place reserved in a dispatcher's queue, from
/// [`Dispatcher::reserve`]: [`spawn`](Self::spawn) queues one job there
/// without waiting. Dropping an unused permit gives the place back.
///
/// ```
/// # pollster::block_on(async {
/// let pool = workyard::Dispatcher::builder().workers(1).queue_capacity(1).build()?;
/// pool.pause();
/// let permit = pool.reserve().await?;
/// assert!(pool.try_spawn(|| 0).unwrap_err().is_full(), "the permit holds the only place");
/// drop(permit);
/// let handle = pool.try_spawn(|| 1)?;
/// pool.resume();
/// assert_eq!(handle.await?, 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
#[must_use = "a permit holds a place in the queue until it is used or dropped"]
pub struct Permit<'a> {
    dispatcher: &'a Dispatcher,
}

impl Permit<'_> {
    /// Queues `job` in the reserved place and returns its handle, as
    /// [`Dispatcher::spawn`] would (without a deadline). It never waits:
    /// it fails only if the dispatcher was shut down or halted since the
    /// place was reserved, giving the job back.
    pub fn spawn<J: Job>(self, job: J) -> Result<JobHandle<J::Output, J::Error>, SpawnError<J>> {
        let pool = self.dispatcher.pool();
        let Some(id) = pool.admit() else {
            // Dropping `self` gives the place back.
            return Err(SpawnError::new(job));
        };
        // The place is the job's now: a worker gives it back when it pops
        // the job.
        std::mem::forget(self);
        Ok(dispatcher::enqueue(pool, Admitted::Queue(id), job, 0))
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        let pool = self.dispatcher.pool();
        if pool.places().is_bounded() {
            pool.give_back_place();
        }
    }
}

impl fmt::Debug for Permit<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Permit").finish_non_exhaustive()
    }
}

/// The future [`Dispatcher::reserve`] returns: a [`Permit`] once the
/// queue has room, or an error once the dispatcher no longer accepts
/// jobs.
///
/// Dropping it gives up waiting (and, if a freed place had woken it,
/// wakes the next waiter in its stead).
#[must_use = "futures do nothing unless polled"]
pub struct Reserve<'a> {
    dispatcher: &'a Dispatcher,
    /// Its place among the pool's waiting futures, once it waited.
    ticket: Ticket,
}

impl<'a> Reserve<'a> {
    /// Takes a place if the dispatcher is open and has room.
    fn try_reserve(&mut self) -> Option<Result<Permit<'a>, SpawnError<()>>> {
        let pool = self.dispatcher.pool();
        let done = if pool.is_closed() {
            Err(SpawnError::new(()))
        } else if pool.reserve() {
            Ok(Permit {
                dispatcher: self.dispatcher,
            })
        } else {
            return None;
        };
        // A place woke us but another spawner may have taken it, and we
        // got one freed later: if one is still free, someone else's wake-up
        // came to us.
        let places = pool.places();
        pool.space_wakers()
            .leave(&mut self.ticket, done.is_ok(), || places.has_room());
        Some(done)
    }
}

impl<'a> Future for Reserve<'a> {
    type Output = Result<Permit<'a>, SpawnError<()>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        if let Some(done) = this.try_reserve() {
            return Poll::Ready(done);
        }
        this.dispatcher
            .pool()
            .space_wakers()
            .register(&mut this.ticket, cx.waker());
        // Registered before this second look: a place given back after the
        // first one wakes us (see `waker_queue.rs`).
        match this.try_reserve() {
            Some(done) => Poll::Ready(done),
            None => Poll::Pending,
        }
    }
}

impl Drop for Reserve<'_> {
    fn drop(&mut self) {
        self.dispatcher
            .pool()
            .space_wakers()
            .leave(&mut self.ticket, false, || true);
    }
}

impl fmt::Debug for Reserve<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reserve")
            .field("waiting", &self.ticket.is_some())
            .finish()
    }
}

/// Async spawning: waiting for room in a bounded queue without blocking.
impl Dispatcher {
    /// Waits, without blocking the thread, for a place in the queue, and
    /// returns a [`Permit`] to spawn one job into it (tokio's
    /// `Sender::reserve`). With an unbounded queue it is ready at once.
    ///
    /// Waiting futures are woken one per freed place, in the order they
    /// began waiting. It fails with `SpawnError(())` once the dispatcher
    /// is shut down or halted, also while it waits. Dropping the future
    /// gives up its turn.
    ///
    /// ```
    /// # pollster::block_on(async {
    /// let pool = workyard::Dispatcher::builder().workers(4).queue_capacity(64).build()?;
    /// let mut handles = Vec::new();
    /// for i in 0..1000u64 {
    ///     // Waits here while 64 jobs are queued; the executor runs other tasks.
    ///     let permit = pool.reserve().await?;
    ///     handles.push(permit.spawn(move || i * 2)?);
    /// }
    /// let mut sum = 0;
    /// for handle in handles {
    ///     sum += handle.await?;
    /// }
    /// assert_eq!(sum, 999 * 1000);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub fn reserve(&self) -> Reserve<'_> {
        Reserve {
            dispatcher: self,
            ticket: None,
        }
    }

    /// Queues a job once the queue has room, waiting for it without
    /// blocking the thread: [`spawn`](Self::spawn) for async callers, made
    /// of [`reserve`](Self::reserve) and [`Permit::spawn`]. Fails only once
    /// the dispatcher is shut down or halted (also while it waits), giving
    /// the job back.
    ///
    /// ```
    /// # pollster::block_on(async {
    /// let pool = workyard::Dispatcher::builder().workers(2).queue_capacity(8).build()?;
    /// let handle = pool.spawn_async(|| "hello".len()).await?;
    /// assert_eq!(handle.await?, 5);
    ///
    /// pool.shutdown();
    /// let refused = pool.spawn_async(|| 1).await.unwrap_err();
    /// assert_eq!((refused.into_inner())(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub async fn spawn_async<J: Job>(
        &self,
        job: J,
    ) -> Result<JobHandle<J::Output, J::Error>, SpawnError<J>> {
        match self.reserve().await {
            Ok(permit) => permit.spawn(job),
            Err(_) => Err(SpawnError::new(job)),
        }
    }
}
