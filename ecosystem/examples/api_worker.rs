//! Replays the "API worker" seed program: 100 requests arrive at once, from
//! 100 threads, into a bounded queue served by 10 workers. Ctrl-C triggers a
//! graceful stop: requests being served finish, the backlog is dropped and
//! reported, and the threads are joined.
//!
//! Run with `cargo run --release --example api_worker` and press Ctrl-C
//! while it works, or pass `--interrupt-after-ms 150` to simulate Ctrl-C.

use std::sync::mpsc;
use std::time::{Duration, Instant};
use workyard::{Dispatcher, JobStatus};

/// Simulates serving one request: 20–110 ms of "work".
fn serve(request: u32) -> String {
    std::thread::sleep(Duration::from_millis(20 + u64::from(request % 10) * 10));
    format!("request {request}: 200 OK")
}

enum Event {
    AllSubmitted,
    Interrupted,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let pool = Dispatcher::builder()
        .workers(10)
        .queue_capacity(20)
        .build()?;
    let (events, event) = mpsc::channel();

    let on_ctrl_c = events.clone();
    ctrlc::set_handler(move || {
        let _ = on_ctrl_c.send(Event::Interrupted);
    })?;
    let mut args = std::env::args().skip(1);
    if let (Some(flag), Some(ms)) = (args.next(), args.next()) {
        if flag == "--interrupt-after-ms" {
            let simulated = events.clone();
            let ms: u64 = ms.parse()?;
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(ms));
                let _ = simulated.send(Event::Interrupted);
            });
        }
    }

    // 100 client threads, one request each; `spawn` blocks while the queue
    // is full (backpressure), and fails once the pool stops accepting.
    let start = Instant::now();
    let clients: Vec<_> = (0..100)
        .map(|request| {
            let pool = pool.clone();
            std::thread::spawn(move || pool.spawn(move || serve(request)).ok())
        })
        .collect();
    let submitted = std::thread::spawn(move || {
        let handles: Vec<_> = clients
            .into_iter()
            .filter_map(|c| c.join().expect("client thread"))
            .collect();
        let _ = events.send(Event::AllSubmitted);
        handles
    });

    let interrupted = match event.recv()? {
        Event::Interrupted => true,
        Event::AllSubmitted => false,
    };
    let dropped = if interrupted {
        println!("Ctrl-C: finishing the requests being served, dropping the backlog");
        // Nothing new starts; the backlog is dropped; shutdown refuses the
        // clients still waiting for room and joins once the running finish.
        pool.pause();
        let dropped = pool.cancel_queued();
        pool.shutdown();
        dropped
    } else {
        Vec::new()
    };
    let handles = submitted.join().expect("submitter thread");
    pool.shutdown();

    let (mut served, mut cancelled) = (0, 0);
    for handle in handles {
        let id = handle.id();
        match handle.join() {
            Ok(_) => served += 1,
            Err(e) if e.is_cancelled() => cancelled += 1,
            Err(e) => println!("{id}: {e}"),
        }
    }
    let stats = pool.stats();
    println!(
        "served {served} requests in {:.0?} with 10 workers",
        start.elapsed()
    );
    if interrupted {
        println!(
            "never served: {} requests ({cancelled} dropped from the queue, {} refused at the door)",
            100 - served,
            100 - served - cancelled
        );
        if !dropped.is_empty() {
            let first: Vec<_> = dropped.iter().take(5).map(|id| id.to_string()).collect();
            println!("  dropped backlog starts with: {}", first.join(", "));
        }
        for id in dropped.iter().take(3) {
            assert_eq!(pool.status(*id), Some(JobStatus::Cancelled));
        }
    }
    println!(
        "stats: {} succeeded, {} cancelled, {} still queued, {} running",
        stats.succeeded, stats.cancelled, stats.queued, stats.running
    );
    Ok(())
}
