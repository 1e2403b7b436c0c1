//! The control thread: the one owner of every control operation.
//!
//! Every order that changes what the workers may do (pause, resume, halt
//! one worker, resize, halt everything, shut down) and every event that
//! changes which threads exist (a deadline coming due, a worker leaving)
//! is carried out by one thread per pool, one at a time, in the order its
//! inbox received them (`order.rs`). Nothing else writes the state these
//! operations share, so no two of them ever race: there is no pairwise
//! argument to make, and none of the locks, CAS loops and thread-locals
//! that used to arbitrate between them.
//!
//! Why a thread rather than one `Mutex<ControlState>`: the effects of an
//! order (starting threads, the halt's walk, waking the workers) must be
//! ordered with the next order too, and a lock released before them
//! would need the pairwise arguments again; a lock held across them would
//! make every order wait for them. The thread also serves as the deadline
//! timer, which needed a thread anyway.
//!
//! # Rules the design rests on
//!
//! 1. **The control thread never waits for anything but its inbox.** It
//!    joins no thread, runs no user code (a cancelled job's closure is
//!    dropped by the worker that pops it, thread names are made at
//!    `build`, and the one exception is a joiner's waker, woken as any
//!    job's completion wakes it), and blocks on no lock that user code
//!    holds. So it answers every order in bounded time, and any thread,
//!    a worker or a destructor included, may wait for that answer. An
//!    order given from the control thread itself (from such a waker) is
//!    queued and the call returns at once, without the answer.
//! 2. **Workers see only single-writer flags**: the gate
//!    (`Pool::gate`: the user's pause and a halt's hold), and one stop
//!    flag per slot (`Slot::stop_requested`), both written by the control
//!    thread alone; and they write only their own counters and post
//!    [`Order::Exited`] when they leave.
//! 3. **Waiting for effects is the caller's**, and only a thread outside
//!    the pool waits: a `shutdown` waits for every worker to leave and
//!    joins the threads itself, `set_workers` waits for its new threads to
//!    run. On one of the pool's own threads (a job, or a worker's
//!    thread-local destructor) the same calls return once the control
//!    thread has taken the order.
//!
//! # Shutdown, in steps
//!
//! 1. A caller posts [`Order::Shutdown`] (with a reply and an optional
//!    deadline, unless it is `shutdown_background` or a pool thread).
//! 2. The control thread closes the pool (spawns are refused from now
//!    on), opens the gate (a paused pool runs again) and wakes every
//!    worker.
//! 3. Workers run every accepted job. One that finds the pool closed and
//!    idle leaves its loop (handing on anything left in its deques) and
//!    posts `Exited`.
//! 4. When no slot has a thread in its loop, the control thread hands
//!    every thread handle to the waiting callers (one list that each joins
//!    under its lock), stops its inbox (later orders are answered by their
//!    callers as a stopped pool answers them), answers what was still
//!    queued, and ends.
//! 5. A caller whose deadline passes first (`shutdown_timeout`) gets the
//!    report of a halt instead (step 3 of the halt below), at once: the
//!    running jobs it asked to stop finish on their own, detached.
//!
//! # Halt, in steps
//!
//! 1. Close the gate to new starts (a worker that took a job just then
//!    puts it back unstarted), then close the pool, keeping the gate
//!    closed while the user's pause is lifted.
//! 2. Walk the index, which holds every live record: cancel each queued
//!    job (`BY_HALT`; its closure is left for the worker that pops it),
//!    ask each running one to stop.
//! 3. Open the gate, wake every worker, answer the report. Workers pop the
//!    cancelled jobs, drop their closures and count them; steps 3–4 of
//!    the shutdown follow.
//!
//! # Resizing
//!
//! `set_workers(n)` starts threads in the lowest free slots (never used,
//! or whose thread has left) and halts the highest-indexed running ones.
//! A slot whose worker is still halting is not free; if too few slots are
//! free (only at `max_workers`), the control thread starts the missing
//! workers as halting ones leave, and keeps the caller's running-ack
//! channel open until then, so that a `set_workers` from outside returns
//! once `n` run; but not while the pool is paused (a halting worker's job
//! may then wait for a queued one that cannot start before the caller
//! resumes). Thread handles of workers that left are kept, and handed to
//! the next `set_workers` called from outside the pool to join, or to the
//! shutdown.

use crate::error::WorkerError;
use crate::job::state;
use crate::job::JobId;
use crate::order::{Ended, HaltReport, Next, Order, Started, Threads, Waiter};
use crate::pool::{Pool, GATE_HALT, GATE_PAUSE};
use crate::signal::lock;
use crate::{time, worker, Arc};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What the control thread knows of one slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Life {
    /// No thread in its loop: never started, or its thread has left.
    Free,
    /// A worker runs here.
    Active,
    /// Asked to halt; its thread has not left yet.
    Stopping,
}

/// The control thread's state: owned by it, touched by nobody else.
struct Control {
    pool: Arc<Pool>,
    /// Thread names, one per slot, made at build (user code never runs
    /// on the control thread).
    names: Vec<String>,
    life: Vec<Life>,
    /// The thread of each slot's current or last worker.
    threads: Vec<Option<JoinHandle<()>>>,
    /// Threads whose slot got a new thread since: joined later.
    exited: Vec<JoinHandle<()>>,
    /// Running workers: `Life::Active` slots (published in `Pool::active`).
    active: usize,
    /// Workers wanted (the last `set_workers`, less halts since).
    target: usize,
    paused: bool,
    closed: bool,
    /// Shutdown callers waiting for the workers to leave.
    waiters: Vec<Waiter>,
    /// Deadlines of jobs: (nanoseconds, id), soonest first.
    deadlines: BinaryHeap<Reverse<(u64, u64)>>,
    /// While a grow waits for halting workers to leave (too few free
    /// slots): the running-ack sender its caller waits on. Dropped once
    /// `target` runs, or when a later order changes it.
    deferred: Option<mpsc::Sender<()>>,
}

thread_local! {
    /// The id of the pool whose control thread this is; 0 if none.
    static CONTROL_OF: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Is the calling thread `pool`'s control thread? (Only a joiner's waker,
/// which it wakes when it cancels a job, runs user code there; an order
/// given from it is queued without waiting for the answer.)
pub(crate) fn on_control_thread(pool: &Pool) -> bool {
    CONTROL_OF.with(std::cell::Cell::get) == pool.id()
}

/// Starts the control thread of `pool` and, through it, `workers` worker
/// threads; returns once they run. The thread holds the pool until it
/// ends (after the shutdown).
pub(crate) fn start(pool: &Arc<Pool>, names: Vec<String>, workers: usize) -> std::io::Result<()> {
    let slots = pool.slots().len();
    let control = Control {
        pool: Arc::clone(pool),
        names,
        life: vec![Life::Free; slots],
        threads: (0..slots).map(|_| None).collect(),
        exited: Vec::new(),
        active: 0,
        target: 0,
        paused: false,
        closed: false,
        waiters: Vec::new(),
        deadlines: BinaryHeap::new(),
        deferred: None,
    };
    let handle = std::thread::Builder::new()
        .name("workyard-control".into())
        .spawn(move || control.run())
        .map_err(|e| {
            // Nobody will take orders: the build's shutdown is answered
            // as a stopped pool's.
            let _ = pool.orders().stop();
            e
        })?;
    *lock(pool.control_thread()) = Some(handle);
    let (reply, answer) = crate::order::reply();
    post(
        pool,
        Order::SetWorkers {
            n: workers,
            reap: false,
            reply,
        },
    );
    let started = answer.wait().map_err(|e| match e {
        WorkerError::Spawn(e) => e,
        other => std::io::Error::other(other.to_string()),
    })?;
    // Nothing is ever sent: this returns once every new thread runs.
    let _ = started.running.recv();
    Ok(())
}

/// Posts `order`, or, if the control thread has stopped, answers it as a
/// stopped pool does.
pub(crate) fn post(pool: &Pool, order: Order) {
    if let Err(order) = pool.orders().post(order) {
        refuse(pool, order);
    }
}

/// The answer of a pool whose control thread has stopped: every worker
/// has left, the pool is closed.
fn refuse(pool: &Pool, order: Order) {
    match order {
        Order::Pause(r) | Order::Resume(r) => r.send(()),
        Order::HaltWorker(i, r) => r.send(Err(WorkerError::NotRunning(i))),
        Order::SetWorkers { reply, .. } => reply.send(Err(WorkerError::Shutdown)),
        Order::Halt(r) => r.send(HaltReport::default()),
        Order::Shutdown { ack, waiter } => {
            if let Some(ack) = ack {
                ack.send(());
            }
            if let Some(waiter) = waiter {
                let threads = lock(pool.gone()).clone().unwrap_or_default();
                waiter.reply.send(Ended::Done(threads));
            }
        }
        Order::Watch { .. } | Order::Exited(_) => {}
    }
}

impl Control {
    fn run(mut self) {
        CONTROL_OF.with(|c| c.set(self.pool.id()));
        loop {
            let due = self.next_due();
            if let Next::Order(order) = self.pool.orders().next(due) {
                self.carry_out(order);
            }
            self.fire_deadlines();
            self.time_out_waiters();
            if self.closed && self.life.iter().all(|&l| l == Life::Free) {
                break;
            }
        }
        self.finish();
    }

    fn carry_out(&mut self, order: Order) {
        match order {
            Order::Pause(reply) => {
                // A closing pool always runs or discards what it accepted.
                if !self.closed {
                    self.paused = true;
                    self.publish_gate(0);
                }
                reply.send(());
            }
            Order::Resume(reply) => {
                self.paused = false;
                self.publish_gate(0);
                self.pool.wake_all();
                reply.send(());
            }
            Order::HaltWorker(index, reply) => reply.send(self.halt_worker(index)),
            Order::SetWorkers { n, reap, reply } => reply.send(self.set_workers(n, reap)),
            Order::Halt(reply) => reply.send(self.halt()),
            Order::Shutdown { ack, waiter } => {
                self.close();
                if let Some(ack) = ack {
                    ack.send(());
                }
                self.waiters.extend(waiter);
            }
            Order::Watch { id, at } => self.deadlines.push(Reverse((at, id.0))),
            Order::Exited(index) => self.exited(index),
        }
    }

    /// The gate workers read: the user's pause and, during a halt's walk,
    /// its hold (`extra`).
    fn publish_gate(&self, extra: usize) {
        let pause = if self.paused { GATE_PAUSE } else { 0 };
        self.pool.set_gate(pause | extra);
    }

    fn publish_active(&self) {
        self.pool.set_active(self.active);
    }

    fn close(&mut self) {
        self.close_holding(0);
    }

    /// Closes the pool and opens the user's pause, keeping `hold` (a
    /// halt's) in the gate: a halt must not let the gate open, even for a
    /// moment, between the pause it lifts and the hold it needs.
    fn close_holding(&mut self, hold: usize) {
        if self.closed {
            return;
        }
        self.closed = true;
        self.deferred = None;
        self.paused = false;
        self.publish_gate(hold);
        self.pool.close();
    }

    fn halt_worker(&mut self, index: usize) -> Result<(), WorkerError> {
        if self.life.get(index) != Some(&Life::Active) {
            return Err(WorkerError::NotRunning(index));
        }
        if self.active <= 1 {
            return Err(WorkerError::LastWorker);
        }
        self.stop(index);
        self.target = self.active;
        self.deferred = None;
        crate::trace::event!(info, worker = index, "halt_worker");
        Ok(())
    }

    fn stop(&mut self, index: usize) {
        self.life[index] = Life::Stopping;
        self.active -= 1;
        self.publish_active();
        let slot = &self.pool.slots()[index];
        slot.set_stop(true);
        slot.unpark();
    }

    fn set_workers(&mut self, n: usize, reap: bool) -> Result<Started, WorkerError> {
        if self.closed {
            return Err(WorkerError::Shutdown);
        }
        self.target = n;
        self.deferred = None;
        for index in (0..self.life.len()).rev() {
            if self.active <= n {
                break;
            }
            if self.life[index] == Life::Active {
                self.stop(index);
            }
        }
        let (running, all_running) = mpsc::channel();
        let grown = self.grow(&running);
        if grown.is_ok() && self.active < self.target && !self.paused {
            // Too few free slots: the rest start as halting workers leave,
            // and the caller's wait covers them too, unless the pool is
            // paused: a halting worker's job may then wait for a queued
            // job that cannot start until the caller resumes.
            self.deferred = Some(running.clone());
        }
        drop(running);
        grown.map_err(WorkerError::Spawn)?;
        let exited = if reap {
            let (done, still) = std::mem::take(&mut self.exited)
                .into_iter()
                .partition(|t| t.is_finished());
            self.exited = still;
            done
        } else {
            Vec::new()
        };
        Ok(Started {
            running: all_running,
            exited,
        })
    }

    /// Starts workers in free slots, lowest first, until `target` run.
    fn grow(&mut self, running: &mpsc::Sender<()>) -> std::io::Result<()> {
        for index in 0..self.life.len() {
            if self.active >= self.target {
                break;
            }
            if self.life[index] == Life::Free {
                if let Err(e) = self.start_worker(index, running.clone()) {
                    // Keep what runs; ask for no more than that.
                    self.target = self.active;
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    fn start_worker(&mut self, index: usize, running: mpsc::Sender<()>) -> std::io::Result<()> {
        let pool = &self.pool;
        let slot = &pool.slots()[index];
        slot.set_stop(false);
        // Alone in the pool, its `join`s need no bookkeeping for thieves
        // (`request::SOLO`); with peers, a solo worker must start
        // publishing: raise its request (a new peer's first search would
        // too, but only once it runs dry).
        let alone = self.life.iter().all(|&l| l == Life::Free);
        slot.request.reset(alone);
        if !alone {
            for (i, life) in self.life.iter().enumerate() {
                if *life != Life::Free {
                    pool.slots()[i].request.raise();
                }
            }
        }
        pool.mark_used(index);
        let mut builder = std::thread::Builder::new().name(self.names[index].clone());
        if let Some(size) = pool.config().stack_size {
            builder = builder.stack_size(size);
        }
        // A new worker starts counted as searching, as one woken from a
        // park (rule 4 of `sleep.rs`).
        pool.sleep().start_searching();
        let thread_pool = Arc::clone(pool);
        match builder.spawn(move || worker::main_loop(thread_pool, index, running)) {
            Ok(handle) => {
                if let Some(old) = self.threads[index].replace(handle) {
                    self.exited.push(old);
                }
                self.life[index] = Life::Active;
                self.active += 1;
                self.publish_active();
                Ok(())
            }
            Err(e) => {
                pool.pass_on();
                Err(e)
            }
        }
    }

    fn exited(&mut self, index: usize) {
        match self.life[index] {
            Life::Active => {
                self.active -= 1;
                self.publish_active();
            }
            Life::Stopping => {}
            Life::Free => debug_assert!(false, "a free slot's worker left"),
        }
        self.life[index] = Life::Free;
        if !self.closed && self.active < self.target {
            // A grow that found too few free slots goes on here. A thread
            // refused now keeps the pool at what runs.
            let running = match &self.deferred {
                Some(running) => running.clone(),
                None => mpsc::channel().0,
            };
            let _ = self.grow(&running);
        }
        if self.active >= self.target {
            self.deferred = None;
        }
    }

    fn halt(&mut self) -> HaltReport {
        self.publish_gate(GATE_HALT);
        self.close_holding(GATE_HALT);
        let mut report = HaltReport::default();
        for job in self.pool.index().live() {
            match self.pool.cancel_job(&job, state::BY_HALT, true, true) {
                state::Cancel::WasQueued(_) => report.never_started.push(job.header().id),
                state::Cancel::Requested => report.interrupted.push(job.header().id),
                state::Cancel::TooLate => {}
            }
        }
        self.publish_gate(0);
        // Workers discard the cancelled jobs; a parked one must look.
        self.pool.wake_all();
        crate::trace::event!(
            info,
            never_started = report.never_started.len(),
            interrupted = report.interrupted.len(),
            "halt"
        );
        report
    }

    /// When the next deadline (of a job or a waiting shutdown) is due.
    fn next_due(&self) -> Option<Instant> {
        let job = self.deadlines.peek().map(|Reverse((at, _))| {
            let wait = at.saturating_sub(time::now_nanos());
            Instant::now() + Duration::from_nanos(wait)
        });
        let waiter = self.waiters.iter().filter_map(|w| w.deadline).min();
        job.into_iter().chain(waiter).min()
    }

    fn fire_deadlines(&mut self) {
        let now = time::now_nanos();
        while let Some(&Reverse((at, id))) = self.deadlines.peek() {
            if at > now {
                break;
            }
            self.deadlines.pop();
            if let Some(job) = self.pool.index().get(JobId(id)) {
                let _ = self.pool.cancel_job(&job, state::BY_DEADLINE, true, true);
            }
        }
    }

    fn time_out_waiters(&mut self) {
        let now = Instant::now();
        if !self
            .waiters
            .iter()
            .any(|w| w.deadline.is_some_and(|d| d <= now))
        {
            return;
        }
        if self.pool.pending() == 0 {
            // Every accepted job finished in time: what is left is the
            // workers' exit, which the shutdown waits for.
            for waiter in &mut self.waiters {
                waiter.deadline = None;
            }
            return;
        }
        let report = self.halt();
        let (late, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut self.waiters)
            .into_iter()
            .partition(|w| w.deadline.is_some_and(|d| d <= now));
        self.waiters = rest;
        for waiter in late {
            waiter.reply.send(Ended::TimedOut(report.clone()));
        }
    }

    /// Every worker has left a closed pool: hand the threads over, stop
    /// the inbox, answer what is left.
    fn finish(mut self) {
        let mut all: Vec<JoinHandle<()>> = std::mem::take(&mut self.exited);
        all.extend(self.threads.iter_mut().filter_map(Option::take));
        let threads: Threads = Arc::new(std::sync::Mutex::new(all));
        *lock(self.pool.gone()) = Some(Arc::clone(&threads));
        for waiter in self.waiters.drain(..) {
            waiter.reply.send(Ended::Done(Arc::clone(&threads)));
        }
        for order in self.pool.orders().stop() {
            refuse(&self.pool, order);
        }
    }
}

/// Joins every thread in `threads`, under its lock: a second caller waits
/// until the first has joined them all. The control thread goes last.
pub(crate) fn join_all(pool: &Pool, threads: &Threads) {
    let mut threads = lock(threads);
    for thread in threads.drain(..) {
        // A worker thread never unwinds (jobs run under catch_unwind).
        let _ = thread.join();
    }
    if let Some(control) = lock(pool.control_thread()).take() {
        let _ = control.join();
    }
}

#[cfg(all(test, loom))]
#[path = "control_loom.rs"]
mod loom_tests;
