//! Replays the "job types" seed program: a batch job type and a single job
//! type, each with its own typed result, through the same dispatcher.
//!
//! Run with `cargo run --release --example job_types`.

use workyard::{Dispatcher, Job, JobHandle};

/// Resizes many images in one job; fails if any is empty.
struct ResizeBatch {
    sizes: Vec<(u32, u32)>,
    scale: f32,
}

/// What a batch produces (printed with `Debug`).
#[derive(Debug)]
#[allow(dead_code)] // read through Debug only
struct BatchReport {
    resized: usize,
    total_pixels: u64,
}

impl Job for ResizeBatch {
    type Output = BatchReport;
    type Error = String;

    fn run(self) -> Result<BatchReport, String> {
        let mut total_pixels = 0;
        for (i, &(w, h)) in self.sizes.iter().enumerate() {
            if w == 0 || h == 0 {
                return Err(format!("image {i} is empty"));
            }
            let (w, h) = (
                (w as f32 * self.scale) as u64,
                (h as f32 * self.scale) as u64,
            );
            total_pixels += w * h;
        }
        Ok(BatchReport {
            resized: self.sizes.len(),
            total_pixels,
        })
    }
}

/// Sends one notification; never fails.
struct Notify {
    user: &'static str,
}

impl Job for Notify {
    type Output = String;
    type Error = std::convert::Infallible;

    fn run(self) -> Result<String, Self::Error> {
        Ok(format!("notified {}", self.user))
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let pool = Dispatcher::builder().workers(2).build()?;

    let batches: Vec<JobHandle<BatchReport, String>> = vec![
        pool.spawn(ResizeBatch {
            sizes: vec![(1920, 1080), (640, 480)],
            scale: 0.5,
        })?,
        pool.spawn(ResizeBatch {
            sizes: vec![(800, 600), (0, 10)],
            scale: 0.5,
        })?,
    ];
    let singles: Vec<JobHandle<String>> = ["ada", "grace", "linus"]
        .into_iter()
        .map(|user| pool.spawn(Notify { user }))
        .collect::<Result<_, _>>()?;

    for batch in batches {
        let id = batch.id();
        match batch.join() {
            Ok(report) => println!("{id} batch: {report:?}"),
            Err(e) => println!("{id} batch failed: {e}"),
        }
    }
    for single in singles {
        println!("{} single: {}", single.id(), single.join()?);
    }
    pool.wait_idle();
    let stats = pool.stats();
    println!("{} succeeded, {} failed", stats.succeeded, stats.failed);
    Ok(())
}
