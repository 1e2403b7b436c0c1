//! With feature `tracing`, a subscriber sees a span per job and the
//! scheduler's events.

#[path = "../../tests/common/mod.rs"]
mod common;
use common::{within, LIMIT};
use std::io::Write;
use std::sync::{Arc, Mutex};
use workyard::{Dispatcher, Job};

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

struct Traced;
impl Job for Traced {
    type Output = ();
    type Error = std::convert::Infallible;
    fn run(self) -> Result<(), Self::Error> {
        // An event inside the job shows the job's span as its context.
        tracing::info!("inside the job");
        Ok(())
    }
}

#[test]
fn spans_and_events_reach_the_subscriber() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    tracing::subscriber::set_global_default(subscriber).unwrap();

    within(LIMIT, || {
        let pool = Dispatcher::builder().workers(1).build().unwrap();
        pool.spawn(Traced).unwrap().join().unwrap();
        pool.pause();
        let queued = pool.spawn(|| ()).unwrap();
        queued.cancel();
        pool.halt();
    });

    let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(
        text.contains("job{id=1 job=\"tracing::Traced\" worker=0}"),
        "no job span in:\n{text}"
    );
    assert!(text.contains("inside the job"), "{text}");
    assert!(
        text.contains("cancel") && text.contains("outcome=WasQueued"),
        "{text}"
    );
    assert!(
        text.contains("halt never_started=0 interrupted=0"),
        "{text}"
    );
    assert!(text.contains("worker exits"), "{text}");
}
