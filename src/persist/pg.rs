//! The PostgreSQL store (feature `postgres`): one queue shared by many
//! processes on many machines, in the tables of one schema.
//!
//! Tables (in the schema chosen with `QueueBuilder::schema`):
//!
//! | table                 | what                                                    |
//! |-----------------------|---------------------------------------------------------|
//! | `workyard_migrations` | one row per applied schema version                      |
//! | `workyard_meta`       | `next_id`: the next job id to hand out                  |
//! | `workyard_jobs`       | one row per job: name, payload, state, attempts, lease |
//!
//! **Protocol.** Every batch of ops is one transaction on this process's
//! one writing connection (the committer's group commit).
//!
//! * *Enqueue*: `next_id += n` hands out the batch's consecutive ids,
//!   then one `INSERT … SELECT FROM unnest(names, payloads)`, or from
//!   4,096 jobs (`COPY_MIN`) one `COPY … FROM STDIN (FORMAT binary)`;
//!   one `NOTIFY` per transaction that made jobs ready.
//! * *Claim*: the `n` lowest ids among the ready jobs (`state = pending
//!   AND run_after = 0 AND name = ANY(handled) ORDER BY id LIMIT n FOR
//!   UPDATE SKIP LOCKED`) and the `n` jobs whose backoff ended first
//!   (`run_after > 0 AND run_after <= now … ORDER BY run_after`), of
//!   those the `n` lowest ids, then `state = running, attempts += 1,
//!   owner = me, lease_until = now + lease`, in one statement. The new
//!   `attempts` is the claim's **fencing token**. No advisory lock is
//!   taken anywhere.
//! * *Heartbeat*: every `heartbeat`, one statement renews the lease of
//!   every job this process holds, matched on `(id, attempts)`. A job not
//!   renewed was taken over (its lease ran out and someone expired it).
//! * *Expiry*: a claimer first turns jobs whose lease ran out back to
//!   pending (or dead after the last attempt, or cancelled if a cancel
//!   was asked), counting the interrupted attempt, exactly as the file
//!   store's recovery does after a crash.
//! * *Finish*: one `UPDATE … FROM unnest(ids, tokens, states, …)` for all
//!   outcomes of a batch, applied only where the row is still running
//!   with the same token: a late outcome of a process that lost its lease
//!   changes nothing and is counted as fenced. Outcomes that reach the
//!   writer between two claims are held (up to `outcome_hold`, 5 ms by
//!   default) and written in the next claim's transaction, as a
//!   hand-written loop would: one commit per claim, not two (see
//!   "Held outcomes" in `commit`).
//! * *Cancel* of a running job sets `cancel_requested`; its owner learns
//!   it at its next heartbeat, and its outcome, whatever it is, records
//!   `cancelled`.
//! * *Wake-ups*: a transaction that made jobs ready sends one `NOTIFY`;
//!   every process `LISTEN`s on a second connection and wakes its feeder.
//!   Idle feeders also poll, so a lost notification only costs latency.
//! * *Connection loss*: the failing batch's callers get
//!   `PersistError::Connection`, its outcomes are kept and written after
//!   the reconnect (with backoff); jobs claimed in a commit whose result
//!   is unknown are released by their lease running out.
//!
//! **Claim plans.** The claim must read its index in order and stop after
//! `n` rows; a plan that collects every pending row and sorts them costs
//! O(backlog) per claim. PostgreSQL picks such a plan (a bitmap scan of
//! the pending jobs, then a sort) whenever its statistics say few rows
//! are pending: before the first `ANALYZE` of a table just filled (the
//! default selectivity of each of `state = 1` and `run_after = 0` is
//! 0.5 %), or when the last one ran while the queue was empty (figures in
//! `docs/persist.md`). Three things rule such plans out:
//!
//! - each of the claim's two scans has a partial index whose predicate is
//!   exactly the scan's conditions and whose key is its order
//!   (`workyard_jobs_ready`: id, where ready; `workyard_jobs_due`:
//!   run_after, where backed off), so an ordered scan of it needs no sort
//!   and no filter, and a backlog of backed-off jobs does not lengthen the
//!   scan for ready ones;
//! - the claim's transaction turns bitmap scans off ([`CLAIM_PLANS`]).
//!   With the indexes alone the planner still chose the bitmap scan for
//!   small claims on a large table, its estimates being what they are;
//!   without bitmap scans the ordered index scan is the cheapest plan left
//!   (a sequential scan must read the whole table). Sorts stay allowed:
//!   the claim's last step sorts at most `2n` ids, and `enable_sort = off`
//!   adds a cost penalty to that unavoidable sort that crosses
//!   `jit_above_cost`, so every claim would be JIT-compiled;
//! - the outcomes (`finish`) and the heartbeat, one row per job by id
//!   and token, must look each row up by its key; the running jobs'
//!   index (`workyard_jobs_leased`, by `lease_until`, for expiry) keeps
//!   an entry for every attempt that ran until vacuum, so a scan of it
//!   under the same stale statistics costs O(attempts ever run). So its
//!   predicate is `state = 2 AND lease_until >= 0`, which expiry
//!   states (`lease_until` is never negative) and these two statements do
//!   not: they cannot use it. (Listing running jobs states it too.)
//!
//! Unit tests EXPLAIN the claim under both kinds of stale statistics, and
//! the outcomes and the heartbeat with the planner pushed off nested
//! loops.

use super::error::PersistError;
use super::op::{set_last, Answer, Op, Outcome, Picked, PickedBatch};
use super::record::{truncate, Record, StoredJobState, MAX_ERROR_LEN};
use super::retry::Jitter;
use super::shared::Shared;
use super::store::{after_failure, AfterFailure, Config, Counts, Effect, Reader, Store, Written};
use postgres::binary_copy::BinaryCopyInWriter;
use postgres::error::SqlState;
use postgres::fallible_iterator::FallibleIterator;
use postgres::types::Type;
use postgres::{Client, NoTls, Statement};
use std::collections::{BTreeSet, HashMap};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Sent in each transaction that claims, before the claim: see "Claim
/// plans" in the module doc. `LOCAL`, so it ends with the transaction
/// (and never reaches another client behind a transaction-mode pooler).
const CLAIM_PLANS: &str = "SET LOCAL enable_bitmapscan = off";

/// The schema version this build creates and reads.
const SCHEMA_VERSION: i32 = 2;
/// The most finished jobs one automatic prune removes.
const PRUNE_LIMIT: i64 = 4096;
/// From how many jobs one `enqueue_batch` is stored with `COPY … (FORMAT
/// binary)` rather than one `INSERT … SELECT FROM unnest`. `COPY` costs
/// more per call (a round trip more, and the rows go out in many small
/// writes) and less per row. Measured on the project's 2-vCPU VM
/// (`persist_pg_bench`'s batch loop at other sizes, four rounds each,
/// load average ~1): 1,000 jobs INSERT 199k–253k/s, COPY 177k–205k/s;
/// 3,000 about even (224k–280k/s both); 5,000 INSERT 232k–289k/s, COPY
/// 296k–321k/s; 10,000 INSERT 237k–294k/s, COPY 295k–325k/s.
const COPY_MIN: usize = 4096;
/// The most expired leases one claim turns back.
const EXPIRE_LIMIT: i64 = 1024;
/// Reconnect backoff, first and longest wait.
const RECONNECT_MIN: Duration = Duration::from_millis(50);
const RECONNECT_MAX: Duration = Duration::from_secs(5);

const PENDING: i16 = 1;
const RUNNING: i16 = 2;
const SUCCEEDED: i16 = 3;
const DEAD: i16 = 4;
const CANCELLED: i16 = 5;

/// What `connect` needs from the builder.
pub(crate) struct PgOptions {
    pub(crate) url: String,
    pub(crate) schema: String,
    pub(crate) lease: Duration,
    pub(crate) heartbeat: Duration,
    pub(crate) max_attempts: u32,
    pub(crate) outcome_hold: Duration,
}

/// A connected queue's parts, for `QueueBuilder::connect` to launch.
pub(crate) struct Opened {
    pub(crate) store: Box<dyn Store>,
    pub(crate) reader: Arc<dyn Reader>,
    /// The listener thread's body.
    pub(crate) listener: Box<dyn FnOnce(Arc<Shared>) + Send>,
    /// The database and schema, without the password.
    pub(crate) description: String,
    /// Durable commits, for `QueueStats::fsyncs`.
    pub(crate) commits: Arc<AtomicU64>,
}

/// The URL with its password hidden.
fn redact(url: &str) -> String {
    if let Some(scheme_end) = url.find("://") {
        let rest = &url[scheme_end + 3..];
        let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
        if let Some(at) = rest[..authority_end].rfind('@') {
            let userinfo = &rest[..at];
            if let Some(colon) = userinfo.find(':') {
                return format!(
                    "{}{}:***{}",
                    &url[..scheme_end + 3],
                    &userinfo[..colon],
                    &rest[at..]
                );
            }
        }
        return url.to_owned();
    }
    // key=value form: hide password=...
    url.split_whitespace()
        .map(|kv| {
            if kv.starts_with("password=") {
                "password=***"
            } else {
                kv
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Whether an error means the connection (or the server) went away, so
/// that a reconnect may cure it.
fn is_transient(e: &postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    if let Some(db) = e.as_db_error() {
        let code = db.code();
        return code.code().starts_with("08")
            || *code == SqlState::ADMIN_SHUTDOWN
            || *code == SqlState::CRASH_SHUTDOWN
            || *code == SqlState::CANNOT_CONNECT_NOW
            || *code == SqlState::T_R_SERIALIZATION_FAILURE
            || *code == SqlState::T_R_DEADLOCK_DETECTED;
    }
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if s.is::<std::io::Error>() {
            return true;
        }
        source = s.source();
    }
    false
}

/// The error's text, with the server's message where it sent one.
fn describe(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!(
            "{}: {} (SQLSTATE {})",
            db.severity(),
            db.message(),
            db.code().code()
        ),
        None => {
            let mut text = e.to_string();
            let mut source = std::error::Error::source(e);
            while let Some(s) = source {
                let more = s.to_string();
                if !text.contains(&more) {
                    text.push_str(": ");
                    text.push_str(&more);
                }
                source = s.source();
            }
            text
        }
    }
}

/// A running-time failure: transient ones do not break the queue.
fn runtime(e: postgres::Error) -> PersistError {
    if is_transient(&e) {
        PersistError::Connection {
            reason: describe(&e),
        }
    } else {
        PersistError::Storage {
            reason: describe(&e),
        }
    }
}

fn check_schema(name: &str) -> Result<(), PersistError> {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_');
    let rest_ok = chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if first_ok && rest_ok && name.len() <= 63 {
        Ok(())
    } else {
        Err(PersistError::InvalidOption {
            option: "schema",
            reason: "must be 1 to 63 lower-case letters, digits or '_', not starting with a digit",
        })
    }
}

/// Parses the URL and connects once, with errors that say what is wrong.
fn open_client(config: &postgres::Config, url: &str) -> Result<Client, PersistError> {
    config.connect(NoTls).map_err(|e| connect_error(url, &e))
}

fn connect_error(url: &str, e: &postgres::Error) -> PersistError {
    let reason = match e.as_db_error().map(|db| db.code().clone()) {
        Some(code) if code == SqlState::INVALID_PASSWORD => {
            format!("the server refused the password ({})", describe(e))
        }
        Some(code) if code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION => {
            format!("the server refused the user ({})", describe(e))
        }
        Some(code) if code == SqlState::INVALID_CATALOG_NAME => {
            format!("the database does not exist ({})", describe(e))
        }
        Some(code) if code == SqlState::INSUFFICIENT_PRIVILEGE => format!(
            "the user may not create or use the queue's schema ({})",
            describe(e)
        ),
        Some(_) => describe(e),
        None if e.to_string().contains("password missing") => {
            "the server asks for a password and the URL has none".to_owned()
        }
        None => format!("could not reach the server ({})", describe(e)),
    };
    PersistError::Connect {
        url: redact(url),
        reason,
    }
}

/// Each schema version with the SQL that makes it from the one before,
/// given the schema's name; the last is [`SCHEMA_VERSION`].
type Migration = (i32, fn(&str) -> String);
const MIGRATIONS: [Migration; 2] = [(1, migration_1), (2, migration_2)];
const _: () = assert!(MIGRATIONS[MIGRATIONS.len() - 1].0 == SCHEMA_VERSION);

/// The SQL of schema version 1. `{s}` is the schema.
fn migration_1(s: &str) -> String {
    format!(
        "CREATE TABLE {s}.workyard_meta (key text PRIMARY KEY, value bigint NOT NULL);
         INSERT INTO {s}.workyard_meta VALUES ('next_id', 1);
         CREATE TABLE {s}.workyard_jobs (
             id bigint PRIMARY KEY,
             name text NOT NULL,
             payload bytea NOT NULL,
             state smallint NOT NULL,
             attempts integer NOT NULL DEFAULT 0,
             interrupted integer NOT NULL DEFAULT 0,
             enqueued_at bigint NOT NULL,
             started_at bigint NOT NULL DEFAULT 0,
             finished_at bigint NOT NULL DEFAULT 0,
             run_after bigint NOT NULL DEFAULT 0,
             lease_until bigint NOT NULL DEFAULT 0,
             owner text,
             cancel_requested boolean NOT NULL DEFAULT false,
             error text
         );
         CREATE INDEX workyard_jobs_pending ON {s}.workyard_jobs (id) WHERE state = 1;
         CREATE INDEX workyard_jobs_backoff ON {s}.workyard_jobs (run_after) WHERE state = 1;
         CREATE INDEX workyard_jobs_running ON {s}.workyard_jobs (lease_until) WHERE state = 2;
         CREATE INDEX workyard_jobs_finished ON {s}.workyard_jobs (finished_at, id)
             WHERE state IN (3, 5);
         CREATE FUNCTION {s}.workyard_now_ms() RETURNS bigint LANGUAGE sql VOLATILE AS
             $$ SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint $$;"
    )
}

/// The SQL of schema version 2: the claim's indexes, one for each of its
/// two scans and matching its conditions exactly, so that each is read
/// in order and stops at the claim's limit (see "Claim plans" in the
/// module doc). Version 1's pending index held the backed-off jobs as
/// well, and its by-`run_after` index the ready ones.
fn migration_2(s: &str) -> String {
    // The new indexes first: `CREATE INDEX` holds off writes while it
    // builds, but not reads; the `DROP`s take the table's exclusive lock,
    // held from there to the commit, only for the moment that is left.
    format!(
        "CREATE INDEX workyard_jobs_ready ON {s}.workyard_jobs (id)
             WHERE state = 1 AND run_after = 0;
         CREATE INDEX workyard_jobs_due ON {s}.workyard_jobs (run_after)
             WHERE state = 1 AND run_after > 0;
         CREATE INDEX workyard_jobs_leased ON {s}.workyard_jobs (lease_until)
             WHERE state = 2 AND lease_until >= 0;
         DROP INDEX IF EXISTS {s}.workyard_jobs_pending;
         DROP INDEX IF EXISTS {s}.workyard_jobs_backoff;
         DROP INDEX IF EXISTS {s}.workyard_jobs_running;"
    )
}

/// Whether a migration error is the loser's side of a race with another
/// process creating the same object, to be retried.
fn is_race(e: &postgres::Error) -> bool {
    e.as_db_error().is_some_and(|db| {
        let code = db.code();
        *code == SqlState::UNIQUE_VIOLATION
            || *code == SqlState::DUPLICATE_SCHEMA
            || *code == SqlState::DUPLICATE_TABLE
            || *code == SqlState::DUPLICATE_OBJECT
            || *code == SqlState::DUPLICATE_FUNCTION
            || *code == SqlState::T_R_DEADLOCK_DETECTED
            || *code == SqlState::T_R_SERIALIZATION_FAILURE
    })
}

/// Creates the schema and its tables, or migrates them to this build's
/// version: idempotent, and safe when several processes start at once.
/// `CREATE … IF NOT EXISTS` may still fail for the loser of a race on the
/// catalog; that is retried. The versions themselves are applied under
/// a transaction-level lock on the migrations table (`LOCK TABLE … SHARE
/// ROW EXCLUSIVE`, which conflicts with itself), so one process applies
/// each version and the others then see it applied.
fn migrate(client: &mut Client, schema: &str, url: &str) -> Result<(), PersistError> {
    let fail = |e: &postgres::Error| PersistError::Connect {
        url: redact(url),
        reason: format!("could not create the queue's tables: {}", describe(e)),
    };
    let mut tries = 0;
    loop {
        tries += 1;
        let result = (|| -> Result<i32, postgres::Error> {
            client.batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {schema}"))?;
            let mut t = client.transaction()?;
            t.batch_execute(&format!(
                "CREATE TABLE IF NOT EXISTS {schema}.workyard_migrations (
                     version integer PRIMARY KEY,
                     applied_at timestamptz NOT NULL DEFAULT now());
                 LOCK TABLE {schema}.workyard_migrations IN SHARE ROW EXCLUSIVE MODE;"
            ))?;
            let found: i32 = t
                .query_one(
                    &format!("SELECT coalesce(max(version), 0) FROM {schema}.workyard_migrations"),
                    &[],
                )?
                .get(0);
            for (version, sql) in MIGRATIONS {
                if found < version {
                    t.batch_execute(&sql(schema))?;
                    t.execute(
                        &format!("INSERT INTO {schema}.workyard_migrations (version) VALUES ($1)"),
                        &[&version],
                    )?;
                }
            }
            t.commit()?;
            Ok(found.max(SCHEMA_VERSION))
        })();
        match result {
            Ok(found) if found > SCHEMA_VERSION => {
                return Err(PersistError::UnsupportedFormat {
                    path: schema.into(),
                    found: u64::try_from(found).unwrap_or(0),
                })
            }
            Ok(_) => return Ok(()),
            Err(e) if is_race(&e) && tries < 20 => {
                std::thread::sleep(Duration::from_millis(5 * tries));
            }
            Err(e) => return Err(fail(&e)),
        }
    }
}

/// A process-unique owner name for leases: host, pid and a random part.
fn owner_name() -> String {
    use std::hash::{BuildHasher, Hasher};
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "host".to_owned());
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    format!(
        "{}:{}:{:08x}",
        host.trim(),
        std::process::id(),
        h.finish() as u32
    )
}

/// Connects, migrates, and builds the store, the reader and the listener.
pub(crate) fn connect(options: &PgOptions) -> Result<Opened, PersistError> {
    check_schema(&options.schema)?;
    let url = options.url.as_str();
    let mut config = postgres::Config::from_str(url).map_err(|e| PersistError::Connect {
        url: redact(url),
        reason: format!("not a valid PostgreSQL URL: {e}"),
    })?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(Duration::from_secs(10));
    }
    if config.get_application_name().is_none() {
        config.application_name("workyard");
    }
    config.keepalives_idle(Duration::from_secs(30));
    let mut client = open_client(&config, url)?;
    migrate(&mut client, &options.schema, url)?;
    let schema = options.schema.clone();
    let sql = Sql::new(&schema);
    let stmts = Stmts::prepare(&mut client, &sql).map_err(|e| connect_error(url, &e))?;
    let reader_client = open_client(&config, url)?;
    let description = {
        let host = config
            .get_hosts()
            .first()
            .map(|h| match h {
                postgres::config::Host::Tcp(h) => h.clone(),
                #[cfg(unix)]
                postgres::config::Host::Unix(p) => p.display().to_string(),
            })
            .unwrap_or_default();
        let port = config.get_ports().first().copied().unwrap_or(5432);
        let db = config
            .get_dbname()
            .or(config.get_user())
            .unwrap_or("postgres");
        format!("postgres://{host}:{port}/{db}?schema={schema}")
    };
    let commits = Arc::new(AtomicU64::new(0));
    let now = Instant::now();
    let store = PgStore {
        config: config.clone(),
        sql: sql.clone(),
        client: Some((client, stmts)),
        owner: owner_name(),
        lease_ms: i64::try_from(options.lease.as_millis()).unwrap_or(i64::MAX),
        heartbeat: options.heartbeat,
        outcome_hold: options.outcome_hold,
        expire_every: (options.lease / 4).max(Duration::from_millis(10)),
        max_attempts: i32::try_from(options.max_attempts).unwrap_or(i32::MAX),
        held: HashMap::new(),
        finishes: Vec::new(),
        jitter: Jitter::new(),
        next_heartbeat: now + options.heartbeat,
        next_expiry: now,
        next_prune: now,
        reconnect_at: now,
        reconnect_wait: RECONNECT_MIN,
        last_error: None,
        commits: Arc::clone(&commits),
    };
    let reader = PgReader {
        config: config.clone(),
        sql: sql.clone(),
        client: Mutex::new(Some(reader_client)),
    };
    let listen_config = config;
    let channel = sql.channel.clone();
    let listener = Box::new(move |shared: Arc<Shared>| listen(shared, listen_config, channel));
    Ok(Opened {
        store: Box::new(store),
        reader: Arc::new(reader),
        listener,
        description,
        commits,
    })
}

/// The statements' text, with the schema filled in.
#[derive(Clone)]
struct Sql {
    schema: String,
    channel: String,
}

impl Sql {
    fn new(schema: &str) -> Sql {
        Sql {
            schema: schema.to_owned(),
            channel: format!("workyard_{schema}"),
        }
    }

    fn jobs(&self) -> String {
        format!("{}.workyard_jobs", self.schema)
    }

    fn now(&self) -> String {
        format!("(SELECT {}.workyard_now_ms())", self.schema)
    }

    /// The outcomes of a batch, fenced by `(id, attempts)`; see "Claim
    /// plans" in the module doc for why nothing here names
    /// `lease_until`.
    fn finish(&self) -> String {
        let jobs = self.jobs();
        let s = &self.schema;
        format!(
            "UPDATE {jobs} AS j SET \
                 state = CASE WHEN j.cancel_requested THEN 5 ELSE u.state END, \
                 attempts = j.attempts - u.uncount, \
                 run_after = CASE WHEN u.delay > 0 THEN n.t + u.delay ELSE 0 END, \
                 finished_at = CASE WHEN j.cancel_requested OR u.state <> 1 \
                                    THEN n.t ELSE j.finished_at END, \
                 error = coalesce(u.error, j.error), owner = NULL, lease_until = 0, \
                 cancel_requested = false \
             FROM unnest($1::bigint[], $2::int[], $3::smallint[], $4::bigint[], \
                         $5::text[], $6::int[]) AS u(id, token, state, delay, error, uncount), \
                  (SELECT {s}.workyard_now_ms() AS t) n \
             WHERE j.id = u.id AND j.state = 2 AND j.attempts = u.token \
             RETURNING j.id, j.state"
        )
    }

    /// Renews the leases of `$1` ids at `$2` tokens by `$3` ms; as
    /// [`Sql::finish`], its conditions leave the running index alone.
    fn heartbeat(&self) -> String {
        let jobs = self.jobs();
        let now = self.now();
        format!(
            "UPDATE {jobs} AS j SET lease_until = {now} + $3 \
             FROM unnest($1::bigint[], $2::int[]) AS u(id, token) \
             WHERE j.id = u.id AND j.state = 2 AND j.attempts = u.token \
             RETURNING j.id, j.cancel_requested"
        )
    }

    /// The claim: `$1` names, `$2` the most jobs, `$3` the lease (ms),
    /// `$4` the owner. See "Claim plans" in the module doc.
    fn claim(&self) -> String {
        let jobs = self.jobs();
        let now = self.now();
        let s = &self.schema;
        format!(
            "WITH ready AS (SELECT id FROM {jobs} \
                 WHERE state = 1 AND run_after = 0 AND name = ANY($1::text[]) \
                 ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED), \
             due AS (SELECT id FROM {jobs} \
                 WHERE state = 1 AND run_after > 0 AND run_after <= {now} \
                 AND name = ANY($1::text[]) \
                 ORDER BY run_after LIMIT $2 FOR UPDATE SKIP LOCKED), \
             c AS (SELECT id FROM (SELECT id FROM ready UNION ALL SELECT id FROM due) r \
                 ORDER BY id LIMIT $2) \
             UPDATE {jobs} AS j SET state = 2, attempts = j.attempts + 1, \
                 started_at = n.t, run_after = 0, lease_until = n.t + $3, owner = $4 \
             FROM c, (SELECT {s}.workyard_now_ms() AS t) n WHERE j.id = c.id \
             RETURNING j.id, j.name, j.payload, j.attempts"
        )
    }
}

/// The writer's prepared statements.
struct Stmts {
    /// Hands out `$1` ids: returns the first, and the server's clock.
    next_ids: Statement,
    enqueue: Statement,
    copy_jobs: Statement,
    claim: Statement,
    next_due: Statement,
    expire: Statement,
    finish: Statement,
    heartbeat: Statement,
    cancel_idle: Statement,
    cancel_running: Statement,
    requeue: Statement,
    prune: Statement,
    notify: Statement,
    orphans: Statement,
}

impl Stmts {
    fn prepare(client: &mut Client, sql: &Sql) -> Result<Stmts, postgres::Error> {
        let jobs = sql.jobs();
        let now = sql.now();
        let s = &sql.schema;
        Ok(Stmts {
            next_ids: client.prepare(&format!(
                "UPDATE {s}.workyard_meta SET value = value + $1 WHERE key = 'next_id' \
                 RETURNING value - $1, {s}.workyard_now_ms()"
            ))?,
            enqueue: client.prepare(&format!(
                "INSERT INTO {jobs} (id, name, payload, state, enqueued_at) \
                 SELECT $1::bigint + u.ord - 1, u.name, u.payload, 1, n.t \
                 FROM unnest($2::text[], $3::bytea[]) WITH ORDINALITY AS u(name, payload, ord), \
                      (SELECT {s}.workyard_now_ms() AS t) n"
            ))?,
            copy_jobs: client.prepare(&format!(
                "COPY {jobs} (id, name, payload, state, enqueued_at) FROM STDIN (FORMAT binary)"
            ))?,
            claim: client.prepare(&sql.claim())?,
            // After a claim that got nothing: 0 if ready jobs are left that
            // other claims held locked (look again soon), else when the
            // first backoff ends; each probe reads one claim index.
            next_due: client.prepare(&format!(
                "SELECT CASE WHEN EXISTS (SELECT FROM {jobs} \
                     WHERE state = 1 AND run_after = 0 AND name = ANY($1::text[])) THEN 0 \
                 ELSE (SELECT min(run_after) FROM {jobs} \
                     WHERE state = 1 AND run_after > 0 AND name = ANY($1::text[])) END"
            ))?,
            expire: client.prepare(&format!(
                "UPDATE {jobs} AS j SET \
                     state = CASE WHEN j.cancel_requested THEN 5 \
                                  WHEN j.attempts >= $1 THEN 4 ELSE 1 END, \
                     interrupted = j.interrupted + 1, run_after = 0, owner = NULL, \
                     lease_until = 0, \
                     finished_at = CASE WHEN j.cancel_requested OR j.attempts >= $1 \
                                        THEN n.t ELSE 0 END, \
                     error = 'attempt ' || j.attempts || CASE WHEN j.attempts >= $1 \
                         THEN ' of ' || $1 ELSE '' END || ' was interrupted: its lease ran \
                         out (its process died, stalled or lost the database)' \
                 FROM (SELECT id FROM {jobs} \
                       WHERE state = 2 AND lease_until >= 0 AND lease_until < {now} \
                       ORDER BY lease_until LIMIT $2 FOR UPDATE SKIP LOCKED) e, \
                      (SELECT {s}.workyard_now_ms() AS t) n \
                 WHERE j.id = e.id RETURNING j.id"
            ))?,
            finish: client.prepare(&sql.finish())?,
            heartbeat: client.prepare(&sql.heartbeat())?,
            cancel_idle: client.prepare(&format!(
                "UPDATE {jobs} SET state = 5, finished_at = {now}, cancel_requested = false \
                 WHERE id = $1 AND state IN (1, 4) RETURNING id"
            ))?,
            cancel_running: client.prepare(&format!(
                "UPDATE {jobs} SET cancel_requested = true WHERE id = $1 AND state = 2 \
                 RETURNING attempts"
            ))?,
            requeue: client.prepare(&format!(
                "UPDATE {jobs} SET state = 1, attempts = 0, run_after = 0, finished_at = 0, \
                 cancel_requested = false WHERE id = $1 AND state IN (4, 5) RETURNING id"
            ))?,
            prune: client.prepare(&format!(
                "DELETE FROM {jobs} WHERE id IN (SELECT id FROM {jobs} \
                     WHERE state IN (3, 5) AND finished_at <= {now} - $1 \
                     ORDER BY finished_at LIMIT $2) \
                 RETURNING state"
            ))?,
            notify: client.prepare("SELECT pg_notify($1, '')")?,
            orphans: client.prepare(&format!(
                "UPDATE {jobs} SET lease_until = 0 \
                 WHERE state = 2 AND lease_until >= 0 AND owner = $1 \
                 AND NOT (id = ANY($2::bigint[]))"
            ))?,
        })
    }
}

/// One outcome waiting to be written.
struct Finish {
    id: u64,
    token: u32,
    outcome: Outcome,
}

/// Writes batches to PostgreSQL, one transaction each, on one connection.
struct PgStore {
    config: postgres::Config,
    sql: Sql,
    /// `None` while disconnected.
    client: Option<(Client, Stmts)>,
    owner: String,
    lease_ms: i64,
    heartbeat: Duration,
    /// See `Store::outcome_hold`.
    outcome_hold: Duration,
    expire_every: Duration,
    max_attempts: i32,
    /// The jobs this process claimed and has not finished: id → token.
    held: HashMap<u64, u32>,
    /// Outcomes not yet written (kept across a lost connection).
    finishes: Vec<Finish>,
    jitter: Jitter,
    next_heartbeat: Instant,
    next_expiry: Instant,
    next_prune: Instant,
    reconnect_at: Instant,
    reconnect_wait: Duration,
    last_error: Option<String>,
    commits: Arc<AtomicU64>,
}

/// The index of an answer pushed for an op, and what the op asked.
enum Plan {
    Enqueue {
        answer: usize,
        jobs: Vec<(String, Vec<u8>)>,
    },
    Claim {
        answer: usize,
        names: Vec<String>,
        max: usize,
    },
    Cancel {
        answer: usize,
        id: u64,
    },
    Requeue {
        answer: usize,
        id: u64,
    },
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn to_u64(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

impl Store for PgStore {
    fn tick(&self, config: &Config) -> Duration {
        let prune =
            (config.retention / 4).clamp(Duration::from_millis(50), Duration::from_secs(60));
        let mut tick = prune.min(self.heartbeat / 2);
        if self.client.is_none() || !self.finishes.is_empty() {
            tick = tick.min(self.reconnect_wait);
        }
        tick.max(Duration::from_millis(1))
    }

    fn outcome_hold(&self) -> Duration {
        self.outcome_hold
    }

    fn close(&mut self) {
        self.client = None;
    }

    fn write(
        &mut self,
        config: &Config,
        batch: Vec<Op>,
        out: &mut Written,
    ) -> Result<bool, PersistError> {
        let mut plans = Vec::new();
        let mut forced_prune = None;
        for op in batch {
            match op {
                Op::Finish {
                    id,
                    attempt,
                    outcome,
                } => self.finishes.push(Finish {
                    id,
                    token: attempt,
                    outcome,
                }),
                Op::Enqueue { jobs, reply } => {
                    out.answers.push(Answer::First(reply, 0));
                    plans.push(Plan::Enqueue {
                        answer: out.answers.len() - 1,
                        jobs,
                    });
                }
                Op::ClaimNext { names, max, reply } => {
                    out.answers.push(Answer::Picked(
                        reply,
                        PickedBatch {
                            jobs: Vec::new(),
                            next_due: None,
                        },
                    ));
                    plans.push(Plan::Claim {
                        answer: out.answers.len() - 1,
                        names,
                        max,
                    });
                }
                Op::Claim { reply, .. } => {
                    // Claims by id are for the file store's schedule.
                    Answer::Claim(reply, Vec::new())
                        .fail(&super::store::storage("a claim by id reached PostgreSQL"));
                }
                Op::Cancel { id, reply } => {
                    out.answers.push(Answer::Bool(reply, false));
                    plans.push(Plan::Cancel {
                        answer: out.answers.len() - 1,
                        id,
                    });
                }
                Op::Requeue { id, reply } => {
                    out.answers.push(Answer::Bool(reply, false));
                    plans.push(Plan::Requeue {
                        answer: out.answers.len() - 1,
                        id,
                    });
                }
                Op::Prune { reply } => {
                    out.answers.push(Answer::Count(reply, 0));
                    forced_prune = Some(out.answers.len() - 1);
                }
                Op::Shutdown { reply } => out.shutdown = Some(reply),
            }
        }
        self.ensure_connected(out)?;
        let result = self.write_connected(config, plans, forced_prune, out);
        if let Err(e) = &result {
            if e.is_transient() {
                self.disconnected(e.to_string());
            }
        }
        result
    }
}

impl PgStore {
    /// Reconnects if needed (not before the backoff allows).
    fn ensure_connected(&mut self, out: &mut Written) -> Result<(), PersistError> {
        if self.client.is_some() {
            return Ok(());
        }
        if Instant::now() < self.reconnect_at {
            return Err(PersistError::Connection {
                reason: format!(
                    "not connected ({}); reconnecting",
                    self.last_error.as_deref().unwrap_or("connection lost")
                ),
            });
        }
        let connected = self.config.connect(NoTls).and_then(|mut client| {
            let stmts = Stmts::prepare(&mut client, &self.sql)?;
            Ok((client, stmts))
        });
        match connected {
            Ok((mut client, stmts)) => {
                // Jobs claimed in a commit whose answer was lost are ours
                // in the table but unknown here: let their leases lapse.
                let held: Vec<i64> = self.held.keys().map(|&id| to_i64(id)).collect();
                client
                    .execute(&stmts.orphans, &[&self.owner, &held])
                    .map_err(runtime)?;
                self.client = Some((client, stmts));
                self.reconnect_wait = RECONNECT_MIN;
                // Renew our leases first thing.
                self.next_heartbeat = Instant::now();
                out.effects.push(Effect::Ready);
                out.effects.push(Effect::Reconnected);
                Ok(())
            }
            Err(e) => {
                let e = runtime(e);
                self.disconnected(e.to_string());
                Err(e)
            }
        }
    }

    fn disconnected(&mut self, why: String) {
        self.client = None;
        self.last_error = Some(why);
        self.reconnect_at = Instant::now() + self.reconnect_wait;
        self.reconnect_wait = (self.reconnect_wait * 2).min(RECONNECT_MAX);
    }

    fn write_connected(
        &mut self,
        config: &Config,
        plans: Vec<Plan>,
        forced_prune: Option<usize>,
        out: &mut Written,
    ) -> Result<bool, PersistError> {
        let now = Instant::now();
        if now >= self.next_heartbeat {
            self.heartbeat(out)?;
            self.next_heartbeat = now + self.heartbeat;
        }
        let expire =
            now >= self.next_expiry && plans.iter().any(|p| matches!(p, Plan::Claim { .. }));
        if expire {
            self.next_expiry = now + self.expire_every;
        }
        let prune_due = now >= self.next_prune;
        if prune_due {
            self.next_prune = now + self.tick(config);
        }
        if plans.is_empty() && self.finishes.is_empty() && !prune_due && forced_prune.is_none() {
            return Ok(false);
        }
        let (client, stmts) = self.client.as_mut().expect("connected above");
        let mut txn = client.transaction().map_err(runtime)?;
        let mut ready = false;
        let mut effects = Vec::new();
        let mut dirty = false;

        // Outcomes first: they free this process's slots.
        let mut finished = Vec::new();
        if !self.finishes.is_empty() {
            let n = self.finishes.len();
            let (mut ids, mut tokens, mut states, mut delays, mut errors, mut uncounts) = (
                Vec::with_capacity(n),
                Vec::with_capacity(n),
                Vec::with_capacity(n),
                Vec::with_capacity(n),
                Vec::with_capacity(n),
                Vec::with_capacity(n),
            );
            for f in &self.finishes {
                let (state, delay, error, uncount): (i16, i64, Option<String>, i32) =
                    match &f.outcome {
                        Outcome::Succeeded => (SUCCEEDED, 0, None, 0),
                        Outcome::Cancelled => (CANCELLED, 0, None, 0),
                        Outcome::Released => (PENDING, 0, None, 1),
                        Outcome::Failed(e) => {
                            let error = Some(truncate(e.clone(), MAX_ERROR_LEN));
                            match after_failure(config, f.token, self.jitter.next()) {
                                AfterFailure::Dead => (DEAD, 0, error, 0),
                                AfterFailure::Retry { delay_ms } => {
                                    // `now + delay` must fit a bigint.
                                    (PENDING, to_i64(delay_ms).min(i64::MAX / 2), error, 0)
                                }
                            }
                        }
                    };
                ids.push(to_i64(f.id));
                tokens.push(i32::try_from(f.token).unwrap_or(i32::MAX));
                states.push(state);
                delays.push(delay);
                errors.push(error);
                uncounts.push(uncount);
            }
            let rows = txn
                .query(
                    &stmts.finish,
                    &[&ids, &tokens, &states, &delays, &errors, &uncounts],
                )
                .map_err(runtime)?;
            let applied: HashMap<u64, i16> = rows
                .iter()
                .map(|r| (to_u64(r.get::<_, i64>(0)), r.get::<_, i16>(1)))
                .collect();
            for f in &self.finishes {
                let effect = match applied.get(&f.id) {
                    None => Effect::Fenced { id: f.id },
                    Some(&CANCELLED) => Effect::CancelledRun { id: f.id },
                    Some(_) => match f.outcome {
                        Outcome::Succeeded => Effect::Succeeded { id: f.id },
                        Outcome::Failed(_) => Effect::Failed { id: f.id },
                        Outcome::Released | Outcome::Cancelled => Effect::Stray { id: f.id },
                    },
                };
                if let Some(&state) = applied.get(&f.id) {
                    ready |= state == PENDING;
                }
                finished.push(f.id);
                effects.push(effect);
            }
            dirty = true;
        }

        let mut claimed: Vec<(u64, u32)> = Vec::new();
        let mut claim_plans_set = false;
        for plan in plans {
            match plan {
                Plan::Enqueue { answer, jobs } => {
                    let n = jobs.len() as i64;
                    let first = if jobs.len() >= COPY_MIN {
                        copy_jobs(&mut txn, stmts, &jobs)?
                    } else {
                        let first: i64 = txn
                            .query_one(&stmts.next_ids, &[&n])
                            .map_err(runtime)?
                            .get(0);
                        let (names, payloads): (Vec<&str>, Vec<&[u8]>) = jobs
                            .iter()
                            .map(|(name, payload)| (name.as_str(), payload.as_slice()))
                            .unzip();
                        txn.execute(&stmts.enqueue, &[&first, &names, &payloads])
                            .map_err(runtime)?;
                        first
                    };
                    if let Some(Answer::First(_, v)) = out.answers.get_mut(answer) {
                        *v = to_u64(first);
                    }
                    effects.push(Effect::Stored { n: n as u64 });
                    ready = true;
                    dirty = true;
                }
                Plan::Claim { answer, names, max } => {
                    if !claim_plans_set {
                        txn.batch_execute(CLAIM_PLANS).map_err(runtime)?;
                        claim_plans_set = true;
                    }
                    if expire {
                        let rows = txn
                            .query(&stmts.expire, &[&self.max_attempts, &EXPIRE_LIMIT])
                            .map_err(runtime)?;
                        if !rows.is_empty() {
                            effects.push(Effect::Recovered {
                                n: rows.len() as u64,
                            });
                            dirty = true;
                        }
                    }
                    let max = i64::try_from(max).unwrap_or(i64::MAX);
                    let rows = txn
                        .query(&stmts.claim, &[&names, &max, &self.lease_ms, &self.owner])
                        .map_err(runtime)?;
                    let mut jobs: Vec<Picked> = rows
                        .into_iter()
                        .map(|r| {
                            let attempt: i32 = r.get(3);
                            Picked {
                                id: to_u64(r.get(0)),
                                name: r.get(1),
                                payload: r.get(2),
                                attempt: u32::try_from(attempt).unwrap_or(0),
                                cancel: Arc::new(AtomicBool::new(false)),
                            }
                        })
                        .collect();
                    jobs.sort_unstable_by_key(|p| p.id);
                    let next_due = if jobs.is_empty() {
                        let due: Option<i64> = txn
                            .query_one(&stmts.next_due, &[&names])
                            .map_err(runtime)?
                            .get(0);
                        due.map(to_u64)
                    } else {
                        None
                    };
                    for p in &jobs {
                        claimed.push((p.id, p.attempt));
                        effects.push(Effect::Claimed {
                            id: p.id,
                            cancel: Arc::clone(&p.cancel),
                        });
                    }
                    dirty |= !jobs.is_empty();
                    if let Some(Answer::Picked(_, b)) = out.answers.get_mut(answer) {
                        b.jobs = jobs;
                        b.next_due = next_due;
                    }
                }
                Plan::Cancel { answer, id } => {
                    let id64 = to_i64(id);
                    let idle = txn.query(&stmts.cancel_idle, &[&id64]).map_err(runtime)?;
                    let cancelled = if !idle.is_empty() {
                        effects.push(Effect::CancelledDead { id });
                        dirty = true;
                        true
                    } else {
                        let running = txn
                            .query(&stmts.cancel_running, &[&id64])
                            .map_err(runtime)?;
                        match running.first() {
                            Some(row) => {
                                dirty = true;
                                let token: i32 = row.get(0);
                                let ours = self.held.get(&id).copied() == u32::try_from(token).ok()
                                    || claimed.iter().any(|&(c, t)| {
                                        c == id && Some(t) == u32::try_from(token).ok()
                                    });
                                if ours {
                                    effects.push(Effect::CancelRunning { id });
                                }
                                true
                            }
                            None => false,
                        }
                    };
                    set_answer(&mut out.answers, answer, cancelled);
                }
                Plan::Requeue { answer, id } => {
                    let rows = txn.query(&stmts.requeue, &[&to_i64(id)]).map_err(runtime)?;
                    let done = !rows.is_empty();
                    if done {
                        ready = true;
                        dirty = true;
                    }
                    set_answer(&mut out.answers, answer, done);
                }
            }
        }

        if prune_due || forced_prune.is_some() {
            let retention = i64::try_from(config.retention.as_millis()).unwrap_or(i64::MAX);
            let limit = if forced_prune.is_some() {
                i64::MAX
            } else {
                PRUNE_LIMIT
            };
            let rows = txn
                .query(&stmts.prune, &[&retention, &limit])
                .map_err(runtime)?;
            let (mut succeeded, mut cancelled) = (0, 0);
            for r in &rows {
                if r.get::<_, i16>(0) == SUCCEEDED {
                    succeeded += 1;
                } else {
                    cancelled += 1;
                }
            }
            if succeeded + cancelled > 0 {
                effects.push(Effect::Pruned {
                    succeeded,
                    cancelled,
                });
                dirty = true;
            }
            if let Some(i) = forced_prune {
                if let Some(Answer::Count(_, n)) = out.answers.get_mut(i) {
                    *n = succeeded + cancelled;
                }
            }
        }
        if ready {
            txn.execute(&stmts.notify, &[&self.sql.channel])
                .map_err(runtime)?;
        }
        txn.commit().map_err(runtime)?;
        // ORDERING: Relaxed: a counter read for display.
        self.commits.fetch_add(1, Relaxed);
        // Durable: now the bookkeeping.
        self.finishes.clear();
        for id in finished {
            self.held.remove(&id);
        }
        for (id, token) in claimed {
            self.held.insert(id, token);
        }
        if ready {
            effects.push(Effect::Ready);
        }
        out.effects.extend(effects);
        Ok(dirty)
    }

    /// Renews the leases of every held job in one statement; reports the
    /// ones taken over and the cancels asked for.
    fn heartbeat(&mut self, out: &mut Written) -> Result<(), PersistError> {
        if self.held.is_empty() {
            return Ok(());
        }
        let (client, stmts) = self.client.as_mut().expect("connected");
        let (ids, tokens): (Vec<i64>, Vec<i32>) = self
            .held
            .iter()
            .map(|(&id, &t)| (to_i64(id), i32::try_from(t).unwrap_or(i32::MAX)))
            .unzip();
        let rows = client
            .query(&stmts.heartbeat, &[&ids, &tokens, &self.lease_ms])
            .map_err(runtime)?;
        // ORDERING: Relaxed: a counter read for display.
        self.commits.fetch_add(1, Relaxed);
        let mut renewed = BTreeSet::new();
        for r in &rows {
            let id = to_u64(r.get(0));
            renewed.insert(id);
            if r.get::<_, bool>(1) {
                out.effects.push(Effect::CancelRunning { id });
            }
        }
        let lost: Vec<u64> = self
            .held
            .keys()
            .copied()
            .filter(|id| !renewed.contains(id))
            .collect();
        for id in lost {
            // Its outcome will be fenced; renew it no more.
            self.held.remove(&id);
            out.effects.push(Effect::LeaseLost { id });
        }
        Ok(())
    }
}

/// Stores `jobs` as pending with `COPY … FROM STDIN (FORMAT binary)`,
/// their ids taken from `next_id` as for the `INSERT`; returns the first.
fn copy_jobs(
    txn: &mut postgres::Transaction<'_>,
    stmts: &Stmts,
    jobs: &[(String, Vec<u8>)],
) -> Result<i64, PersistError> {
    let n = jobs.len() as i64;
    let row = txn.query_one(&stmts.next_ids, &[&n]).map_err(runtime)?;
    let (first, at): (i64, i64) = (row.get(0), row.get(1));
    let writer = txn.copy_in(&stmts.copy_jobs).map_err(runtime)?;
    let mut writer = BinaryCopyInWriter::new(
        writer,
        &[Type::INT8, Type::TEXT, Type::BYTEA, Type::INT2, Type::INT8],
    );
    for (id, (name, payload)) in (first..).zip(jobs) {
        writer
            .write(&[&id, name, payload, &PENDING, &at])
            .map_err(runtime)?;
    }
    writer.finish().map_err(runtime)?;
    Ok(first)
}

fn set_answer(answers: &mut [Answer], i: usize, value: bool) {
    if let Some(a) = answers.get_mut(i) {
        set_last(std::slice::from_mut(a), value);
    }
}

/// The listener thread: `LISTEN`s on the queue's channel and wakes the
/// feeder for each notification, reconnecting with backoff when the
/// connection is lost (and waking the feeder then too: notifications sent
/// meanwhile are lost).
fn listen(shared: Arc<Shared>, config: postgres::Config, channel: String) {
    let mut wait = RECONNECT_MIN;
    while !shared.is_stopping() {
        let mut client = match config.connect(NoTls) {
            Ok(mut c) => match c.batch_execute(&format!("LISTEN {channel}")) {
                Ok(()) => c,
                Err(_) => {
                    sleep_unless_stopping(&shared, wait);
                    wait = (wait * 2).min(RECONNECT_MAX);
                    continue;
                }
            },
            Err(_) => {
                sleep_unless_stopping(&shared, wait);
                wait = (wait * 2).min(RECONNECT_MAX);
                continue;
            }
        };
        wait = RECONNECT_MIN;
        shared.wake();
        while !shared.is_stopping() {
            let mut notifications = client.notifications();
            let mut iter = notifications.timeout_iter(Duration::from_millis(50));
            match iter.next() {
                Ok(Some(_)) => {
                    // Wake at once, then drop what else is already here
                    // without waiting (one wake covers them all).
                    shared.wake();
                    drop(iter);
                    let mut pending = notifications.iter();
                    while let Ok(Some(_)) = pending.next() {}
                }
                Err(_) => break,
                Ok(None) => {
                    drop(iter);
                    drop(notifications);
                    if client.is_closed() {
                        break;
                    }
                }
            }
        }
    }
}

fn sleep_unless_stopping(shared: &Shared, wait: Duration) {
    let deadline = Instant::now() + wait;
    while !shared.is_stopping() {
        let now = Instant::now();
        if now >= deadline {
            return;
        }
        std::thread::sleep((deadline - now).min(Duration::from_millis(20)));
    }
}

/// Reads on a connection of their own (reconnected on demand).
struct PgReader {
    config: postgres::Config,
    sql: Sql,
    client: Mutex<Option<Client>>,
}

impl PgReader {
    /// Runs `f` on the connection, reconnecting once if it was lost.
    fn with<T>(
        &self,
        f: impl Fn(&mut Client) -> Result<T, postgres::Error>,
    ) -> Result<T, PersistError> {
        let mut guard = self.client.lock().unwrap_or_else(|e| e.into_inner());
        if guard.is_none() {
            return Err(PersistError::Stopped);
        }
        for attempt in 0..2 {
            if guard.as_ref().map_or(true, Client::is_closed) {
                *guard = Some(self.config.connect(NoTls).map_err(runtime)?);
            }
            let client = guard.as_mut().expect("connected above");
            match f(client) {
                Ok(v) => return Ok(v),
                Err(e) if is_transient(&e) && attempt == 0 => {
                    // Reconnect and try once more.
                    if let Ok(c) = self.config.connect(NoTls) {
                        *guard = Some(c);
                    }
                }
                Err(e) => return Err(runtime(e)),
            }
        }
        unreachable!("the loop returns")
    }
}

fn state_of(n: i16) -> StoredJobState {
    match n {
        RUNNING => StoredJobState::Running,
        SUCCEEDED => StoredJobState::Succeeded,
        DEAD => StoredJobState::Dead,
        CANCELLED => StoredJobState::Cancelled,
        _ => StoredJobState::Pending,
    }
}

fn limit_of(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

impl Reader for PgReader {
    fn record(&self, id: u64) -> Result<Option<(Record, usize)>, PersistError> {
        let jobs = self.sql.jobs();
        self.with(|c| {
            let row = c.query_opt(
                &format!(
                    "SELECT name, state, attempts, interrupted, enqueued_at, started_at, \
                     finished_at, run_after, error, octet_length(payload) FROM {jobs} WHERE id = $1"
                ),
                &[&to_i64(id)],
            )?;
            Ok(row.map(|r| {
                let attempts: i32 = r.get(2);
                let interrupted: i32 = r.get(3);
                let len: i32 = r.get(9);
                let record = Record {
                    name: r.get(0),
                    state: state_of(r.get(1)),
                    attempts: u32::try_from(attempts).unwrap_or(0),
                    interrupted: u32::try_from(interrupted).unwrap_or(0),
                    enqueued_at: to_u64(r.get(4)),
                    started_at: to_u64(r.get(5)),
                    finished_at: to_u64(r.get(6)),
                    run_after: to_u64(r.get(7)),
                    error: r.get(8),
                    payload: None,
                };
                (record, usize::try_from(len).unwrap_or(0))
            }))
        })
    }

    fn payload(&self, id: u64) -> Result<Option<Vec<u8>>, PersistError> {
        let jobs = self.sql.jobs();
        self.with(|c| {
            let row = c.query_opt(
                &format!("SELECT payload FROM {jobs} WHERE id = $1"),
                &[&to_i64(id)],
            )?;
            Ok(row.map(|r| r.get(0)))
        })
    }

    fn list(
        &self,
        state: StoredJobState,
        handled: &[String],
        limit: usize,
    ) -> Result<Option<Vec<u64>>, PersistError> {
        let jobs = self.sql.jobs();
        let limit = limit_of(limit);
        let rows = self.with(|c| match state {
            // Each scan names its index's predicate (see "Claim plans" in
            // the module doc): the ready jobs in id order, the backed-off
            // ones (few) sorted.
            StoredJobState::Pending | StoredJobState::Waiting => c.query(
                &format!(
                    "SELECT id FROM ( \
                         (SELECT id FROM {jobs} WHERE state = 1 AND run_after = 0 \
                          AND (name = ANY($1::text[])) = $2 ORDER BY id LIMIT $3) \
                         UNION ALL \
                         (SELECT id FROM {jobs} WHERE state = 1 AND run_after > 0 \
                          AND (name = ANY($1::text[])) = $2 ORDER BY id LIMIT $3)) p \
                     ORDER BY id LIMIT $3"
                ),
                &[&handled, &(state == StoredJobState::Pending), &limit],
            ),
            StoredJobState::Running => c.query(
                &format!(
                    "SELECT id FROM {jobs} WHERE state = 2 AND lease_until >= 0 \
                     ORDER BY id LIMIT $1"
                ),
                &[&limit],
            ),
            StoredJobState::Dead => c.query(
                &format!("SELECT id FROM {jobs} WHERE state = $1 ORDER BY id LIMIT $2"),
                &[&DEAD, &limit],
            ),
            StoredJobState::Succeeded | StoredJobState::Cancelled => c.query(
                &format!(
                    "SELECT id FROM {jobs} WHERE state = $1 ORDER BY finished_at, id LIMIT $2"
                ),
                &[
                    &(if state == StoredJobState::Succeeded {
                        SUCCEEDED
                    } else {
                        CANCELLED
                    }),
                    &limit,
                ],
            ),
        })?;
        Ok(Some(rows.iter().map(|r| to_u64(r.get(0))).collect()))
    }

    fn counts(&self, handled: &[String]) -> Option<Result<Counts, PersistError>> {
        let jobs = self.sql.jobs();
        let now = self.sql.now();
        let rows = self.with(|c| {
            c.query(
                &format!(
                    "SELECT name, state, run_after > {now}, count(*) FROM {jobs} \
                     GROUP BY 1, 2, 3"
                ),
                &[],
            )
        });
        Some(rows.map(|rows| {
            let mut counts = Counts::default();
            let mut waiting = BTreeSet::new();
            for r in rows {
                let name: String = r.get(0);
                let state: i16 = r.get(1);
                let later: bool = r.get(2);
                let n = u64::try_from(r.get::<_, i64>(3)).unwrap_or(0);
                match state {
                    PENDING if handled.contains(&name) => {
                        counts.pending += n;
                        if later {
                            counts.retrying += n;
                        }
                    }
                    PENDING => {
                        counts.waiting += n;
                        waiting.insert(name);
                    }
                    RUNNING => counts.running += n,
                    SUCCEEDED => counts.succeeded += n,
                    DEAD => counts.dead += n,
                    _ => counts.cancelled += n,
                }
            }
            counts.waiting_names = waiting.into_iter().collect();
            counts
        }))
    }

    fn busy(&self, handled: &[String]) -> Option<Result<bool, PersistError>> {
        let jobs = self.sql.jobs();
        Some(self.with(|c| {
            let row = c.query_one(
                &format!(
                    "SELECT EXISTS (SELECT 1 FROM {jobs} WHERE state IN (1, 2) \
                     AND name = ANY($1::text[]))"
                ),
                &[&handled],
            )?;
            Ok(row.get(0))
        }))
    }

    fn close(&self) {
        *self.client.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
}

/// The private test cluster of `tests/common/pg.rs`.
#[cfg(test)]
#[path = "../../tests/common/pg.rs"]
mod test_cluster;

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh schema of this build's version in the test cluster.
    fn fresh(schema: &str) -> (Client, Sql) {
        let url = test_cluster::cluster().url();
        let mut client = Client::connect(&url, NoTls).unwrap();
        client
            .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
            .unwrap();
        migrate(&mut client, schema, &url).unwrap();
        (client, Sql::new(schema))
    }

    /// The plan of `EXECUTE statement`, run (`EXPLAIN ANALYZE`) in a
    /// transaction that first sends `settings`, then undone.
    fn explain(client: &mut Client, settings: &str, statement: &str) -> String {
        client.batch_execute("BEGIN").unwrap();
        client.batch_execute(settings).unwrap();
        let rows = client
            .simple_query(&format!(
                "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) EXECUTE {statement}"
            ))
            .unwrap();
        client.batch_execute("ROLLBACK").unwrap();
        rows.iter()
            .filter_map(|m| match m {
                postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_owned),
                _ => None,
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The plan of one claim of at most `limit` jobs, made as the writer
    /// makes it (in a transaction that sent [`CLAIM_PLANS`]).
    fn claim_plan(client: &mut Client, limit: i64) -> String {
        explain(
            client,
            CLAIM_PLANS,
            &format!("claim('{{a}}', {limit}, 15000, 'test')"),
        )
    }

    /// Reads each partial index in order and stops at the limit: no
    /// bitmap scan of every pending job and no sort of them, whether the
    /// table was never analyzed or analyzed while every job was finished
    /// (both make the planner think almost nothing is pending), for small
    /// claims and full ones, on parameter plans and the generic one.
    #[test]
    fn a_claim_reads_its_indexes_in_order_whatever_the_statistics() {
        let (mut client, sql) = fresh("unit_claim_plans");
        let jobs = sql.jobs();
        client
            .batch_execute(&format!(
                "PREPARE claim(text[], bigint, bigint, text) AS {}",
                sql.claim()
            ))
            .unwrap();
        // 180,000 ready and 20,000 backed off whose time came, never
        // analyzed (autovacuum's first look is a minute away). Without
        // `CLAIM_PLANS`, a claim of 8 took the bitmap scan here.
        client
            .batch_execute(&format!(
                "INSERT INTO {jobs} (id, name, payload, state, enqueued_at, run_after) \
                 SELECT g, 'a', '\\x00', 1, 0, CASE WHEN g % 10 = 0 THEN 1 ELSE 0 END \
                 FROM generate_series(1, 200000) g"
            ))
            .unwrap();
        let check = |client: &mut Client, when: &str| {
            // Eight executions: after five, the generic plan may be used.
            for (run, limit) in [8, 256, 1, 8, 256, 8, 256, 8].into_iter().enumerate() {
                let plan = claim_plan(client, limit);
                let context = format!("{when}, run {run}, limit {limit}:\n{plan}");
                for index in ["workyard_jobs_ready", "workyard_jobs_due"] {
                    assert!(
                        plan.contains(&format!("Index Scan using {index}")),
                        "no ordered scan of {index}, {context}"
                    );
                }
                assert!(
                    !plan.contains("Bitmap") && !plan.contains("Seq Scan"),
                    "a scan of every pending job, {context}"
                );
                // The one sort: the final pick among at most 2 × `limit` ids.
                assert_eq!(plan.matches("Sort Key").count(), 1, "{context}");
                assert!(plan.contains("Sort Key: ready.id"), "{context}");
            }
        };
        check(&mut client, "never analyzed");
        client
            .batch_execute(&format!(
                "UPDATE {jobs} SET state = 3; ANALYZE {jobs}; \
                 UPDATE {jobs} SET state = 1"
            ))
            .unwrap();
        check(&mut client, "analyzed while all were finished");
    }

    /// `finish` and `heartbeat` cannot read the running index, whose dead
    /// entries grow with every attempt until vacuum: with nested loops
    /// off (pushing the planner to the plans it took under stale
    /// statistics) they still find their rows by key, not by that index.
    #[test]
    fn outcomes_and_heartbeats_find_their_rows_by_key() {
        let (mut client, sql) = fresh("unit_outcome_plans");
        let jobs = sql.jobs();
        // 200,000 attempts that ran; the last 256 still running.
        client
            .batch_execute(&format!(
                "INSERT INTO {jobs} (id, name, payload, state, enqueued_at, attempts, lease_until) \
                 SELECT g, 'a', '\\x00', 2, 0, 1, 1 FROM generate_series(1, 200000) g; \
                 UPDATE {jobs} SET state = 3, lease_until = 0 WHERE id <= 199744; \
                 PREPARE finish(bigint[], int[], smallint[], bigint[], text[], int[]) AS {}; \
                 PREPARE heartbeat(bigint[], int[], bigint) AS {}",
                sql.finish(),
                sql.heartbeat()
            ))
            .unwrap();
        let ids = format!(
            "'{{{}}}'",
            (199_745..=200_000)
                .map(|i: i64| i.to_string())
                .collect::<Vec<_>>()
                .join(",")
        );
        let each = |v: &str| format!("'{{{}}}'", vec![v; 256].join(","));
        let statements = [
            format!(
                "finish({ids}, {}, {}, {}, {}, {})",
                each("1"),
                each("3"),
                each("0"),
                each("NULL"),
                each("0")
            ),
            format!("heartbeat({ids}, {}, 15000)", each("1")),
        ];
        for analyzed in [false, true] {
            if analyzed {
                client.batch_execute(&format!("ANALYZE {jobs}")).unwrap();
            }
            for statement in &statements {
                let plan = explain(&mut client, "SET LOCAL enable_nestloop = off", statement);
                let name = statement.split('(').next().unwrap();
                assert!(
                    !plan.contains("workyard_jobs_leased"),
                    "{name} (analyzed: {analyzed}) read the running index:\n{plan}"
                );
                assert!(
                    plan.contains("actual rows=256"),
                    "{name} (analyzed: {analyzed}) did not reach its 256 rows:\n{plan}"
                );
            }
        }
    }

    /// A schema of version 1 (made by an earlier build) is migrated in
    /// place: its jobs stay, its claim indexes are replaced.
    #[test]
    fn version_1_is_migrated_to_2_with_its_jobs() {
        let schema = "unit_migrate_v1";
        let url = test_cluster::cluster().url();
        let mut client = Client::connect(&url, NoTls).unwrap();
        client
            .batch_execute(&format!(
                "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema};
                 CREATE TABLE {schema}.workyard_migrations (
                     version integer PRIMARY KEY,
                     applied_at timestamptz NOT NULL DEFAULT now());
                 {}
                 INSERT INTO {schema}.workyard_migrations (version) VALUES (1);
                 INSERT INTO {schema}.workyard_jobs (id, name, payload, state, enqueued_at, run_after)
                     VALUES (1, 'a', '\\x01', 1, 0, 0), (2, 'a', '\\x02', 1, 0, 99),
                            (3, 'a', '\\x03', 3, 0, 0);",
                migration_1(schema)
            ))
            .unwrap();
        migrate(&mut client, schema, &url).unwrap();
        // Twice: the second finds version 2 and does nothing.
        migrate(&mut client, schema, &url).unwrap();
        let versions: Vec<i32> = client
            .query(
                &format!("SELECT version FROM {schema}.workyard_migrations ORDER BY version"),
                &[],
            )
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert_eq!(versions, [1, 2]);
        let indexes: Vec<(String, String)> = client
            .query(
                "SELECT indexname::text, indexdef FROM pg_indexes WHERE schemaname = $1 \
                 AND tablename = 'workyard_jobs' ORDER BY indexname",
                &[&schema],
            )
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        let names: Vec<&str> = indexes.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "workyard_jobs_due",
                "workyard_jobs_finished",
                "workyard_jobs_leased",
                "workyard_jobs_pkey",
                "workyard_jobs_ready"
            ]
        );
        for (name, predicate) in [
            (
                "workyard_jobs_due",
                "(run_after) WHERE ((state = 1) AND (run_after > 0))",
            ),
            (
                "workyard_jobs_ready",
                "(id) WHERE ((state = 1) AND (run_after = 0))",
            ),
            (
                "workyard_jobs_leased",
                "(lease_until) WHERE ((state = 2) AND (lease_until >= 0))",
            ),
        ] {
            let def = &indexes.iter().find(|(n, _)| n == name).unwrap().1;
            assert!(def.contains(predicate), "{name}: {def}");
        }
        let kept: Vec<(i64, i16, i64)> = client
            .query(
                &format!("SELECT id, state, run_after FROM {schema}.workyard_jobs ORDER BY id"),
                &[],
            )
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect();
        assert_eq!(kept, [(1, 1, 0), (2, 1, 99), (3, 3, 0)]);
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact("postgres://ann:secret@db:5432/jobs"),
            "postgres://ann:***@db:5432/jobs"
        );
        assert_eq!(redact("postgres://ann@db/jobs"), "postgres://ann@db/jobs");
        assert_eq!(
            redact("host=db user=ann password=secret"),
            "host=db user=ann password=***"
        );
    }

    #[test]
    fn schema_names_are_checked() {
        assert!(check_schema("workyard_2").is_ok());
        assert!(check_schema("_x").is_ok());
        for bad in ["", "2x", "Work", "a-b", "a;drop", &"a".repeat(64)] {
            assert!(check_schema(bad).is_err(), "{bad:?}");
        }
    }
}
