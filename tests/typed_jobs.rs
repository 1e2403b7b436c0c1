//! Several job types, each with its own result type, on one dispatcher.

use std::convert::Infallible;
use workyard::{Dispatcher, Job, JobError, JobHandle};

struct Add(u32, u32);
impl Job for Add {
    type Output = u32;
    type Error = Infallible;
    fn run(self) -> Result<u32, Infallible> {
        Ok(self.0 + self.1)
    }
}

struct Parse(&'static str);
impl Job for Parse {
    type Output = i64;
    type Error = std::num::ParseIntError;
    fn run(self) -> Result<i64, Self::Error> {
        self.0.parse()
    }
}

struct Words(String);
impl Job for Words {
    type Output = Vec<String>;
    type Error = &'static str;
    fn run(self) -> Result<Vec<String>, &'static str> {
        if self.0.is_empty() {
            return Err("empty text");
        }
        Ok(self.0.split_whitespace().map(str::to_owned).collect())
    }
}

#[test]
fn each_type_gets_its_own_result() {
    let pool = Dispatcher::builder().workers(2).build().unwrap();
    let add: JobHandle<u32> = pool.spawn(Add(2, 3)).unwrap();
    let parsed: JobHandle<i64, _> = pool.spawn(Parse("-17")).unwrap();
    let bad_parse = pool.spawn(Parse("x")).unwrap();
    let words = pool.spawn(Words("a bb ccc".into())).unwrap();
    let no_words = pool.spawn(Words(String::new())).unwrap();
    let closure = pool.spawn(|| vec![1u8, 2, 3]).unwrap();

    assert_eq!(add.join().unwrap(), 5);
    assert_eq!(parsed.join().unwrap(), -17);
    assert!(
        matches!(bad_parse.join(), Err(JobError::Failed(e)) if e.to_string().contains("invalid digit"))
    );
    assert_eq!(words.join().unwrap(), ["a", "bb", "ccc"]);
    assert_eq!(
        no_words.join().unwrap_err().into_failure(),
        Some("empty text")
    );
    assert_eq!(closure.join().unwrap(), [1, 2, 3]);

    pool.wait_idle();
    let stats = pool.stats();
    assert_eq!((stats.succeeded, stats.failed), (4, 2));
}

#[test]
fn a_closure_returning_result_is_an_ordinary_output() {
    let pool = Dispatcher::builder().workers(1).build().unwrap();
    let handle = pool.spawn(|| Err::<(), _>("kept as a value")).unwrap();
    assert_eq!(handle.join().unwrap(), Err("kept as a value"));
    pool.wait_idle();
    assert_eq!(pool.stats().failed, 0);
}

#[test]
fn job_errors_display_what_happened() {
    let pool = Dispatcher::builder().workers(1).build().unwrap();
    let err = pool
        .spawn(Words(String::new()))
        .unwrap()
        .join()
        .unwrap_err();
    assert_eq!(err.to_string(), "job failed: empty text");
    let err = pool
        .spawn(|| -> () { panic!("oh no") })
        .unwrap()
        .join()
        .unwrap_err();
    assert_eq!(err.to_string(), "job panicked: oh no");
}
