//! A private, throwaway PostgreSQL cluster for tests and benchmarks, from
//! the installed server binaries: `initdb` into a temporary directory,
//! `pg_ctl start` on 127.0.0.1 with a free port (and its unix socket in
//! that directory), and an immediate stop when the process exits.
//!
//! Under root it runs the server as the `postgres` user (the server
//! refuses to run as root), creating that user if needed. Where the
//! binaries are missing it installs them from Debian's packages when it is
//! root, and otherwise fails saying what to install: a missing server is
//! never a silent skip.
//!
//! The stop at exit needs no destructor: a watchdog shell started with the
//! cluster waits on a pipe whose other end only this process holds, so
//! when the process exits (passes, fails, or is killed) the read returns
//! and the watchdog stops the server and removes its directory.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The superuser's password in every test cluster.
pub const PASSWORD: &str = "workyard-test";

pub struct Cluster {
    pub port: u16,
    pub dir: PathBuf,
    bin: PathBuf,
    as_postgres: bool,
    /// Held until exit: closing it stops the server (see the module docs).
    _watchdog: Option<Mutex<(Child, ChildStdin)>>,
}

/// One cluster per test process, started by the first caller. Fast and
/// not durable (`fsync=off`): tests kill clients, not the server's host.
pub fn cluster() -> &'static Cluster {
    static CLUSTER: OnceLock<Cluster> = OnceLock::new();
    CLUSTER.get_or_init(|| Cluster::start(false))
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

fn find_bin() -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("pg_ctl").exists().then_some((v, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Some(bin);
    }
    // Elsewhere (other distributions, Homebrew): pg_ctl on the PATH.
    let out = Command::new("pg_config").arg("--bindir").output().ok()?;
    let bin = PathBuf::from(String::from_utf8(out.stdout).ok()?.trim());
    bin.join("pg_ctl").exists().then_some(bin)
}

fn server_binaries() -> PathBuf {
    if let Some(bin) = find_bin() {
        return bin;
    }
    if is_root() {
        eprintln!("PostgreSQL server binaries not found: installing Debian's `postgresql` package");
        let ok = Command::new("sh")
            .arg("-c")
            .arg("apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql")
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if let Some(bin) = find_bin().filter(|_| ok) {
            return bin;
        }
        panic!("could not install PostgreSQL with apt-get; install the `postgresql` package (server binaries initdb and pg_ctl) and run the tests again");
    }
    panic!(
        "the PostgreSQL tests need the server binaries (initdb, pg_ctl): install them, e.g. \
         `sudo apt-get install postgresql` on Debian/Ubuntu, `dnf install postgresql-server` on \
         Fedora, `brew install postgresql` on macOS (or run the tests as root on Debian, which \
         installs them)"
    );
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().unwrap().port()
}

impl Cluster {
    /// Starts a new cluster; `durable` keeps `fsync` on (for benchmarks).
    pub fn start(durable: bool) -> Cluster {
        let bin = server_binaries();
        let as_postgres = is_root();
        static SEQ: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("workyard-pg-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("pw"), PASSWORD).unwrap();
        if as_postgres {
            let exists = Command::new("id")
                .arg("-u")
                .arg("postgres")
                .output()
                .is_ok_and(|o| o.status.success());
            if !exists {
                let status = Command::new("useradd")
                    .args([
                        "--system",
                        "--no-create-home",
                        "--shell",
                        "/bin/sh",
                        "postgres",
                    ])
                    .status()
                    .expect("run useradd");
                assert!(status.success(), "could not create the postgres user");
            }
            let status = Command::new("chown")
                .args(["-R", "postgres"])
                .arg(&dir)
                .status()
                .unwrap();
            assert!(status.success(), "could not chown the cluster directory");
        }
        let mut cluster = Cluster {
            port: 0,
            dir: dir.clone(),
            bin,
            as_postgres,
            _watchdog: None,
        };
        let data = dir.join("data");
        let started = Instant::now();
        let out = cluster
            .command("initdb")
            .arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "-E", "UTF8", "--no-sync"])
            .args(["--auth-local=trust", "--auth-host=scram-sha-256"])
            .arg(format!("--pwfile={}", dir.join("pw").display()))
            .output()
            .expect("run initdb");
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut conf = format!(
            "listen_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\nmax_connections = 300\n",
            dir.display()
        );
        if !durable {
            conf.push_str("fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n");
        }
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(data.join("postgresql.conf"))
            .unwrap();
        f.write_all(conf.as_bytes()).unwrap();
        // A port that another process grabs between our probe and the
        // server's bind: try a few.
        let mut last = String::new();
        for _ in 0..5 {
            let port = free_port();
            let out = cluster
                .command("pg_ctl")
                .arg("-D")
                .arg(&data)
                .arg("-l")
                .arg(dir.join("log"))
                .args(["-w", "-t", "60", "-o"])
                .arg(format!("-p {port}"))
                .arg("start")
                .output()
                .expect("run pg_ctl");
            if out.status.success() {
                cluster.port = port;
                break;
            }
            last = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stderr),
                std::fs::read_to_string(dir.join("log")).unwrap_or_default()
            );
        }
        assert!(cluster.port != 0, "pg_ctl start failed: {last}");
        cluster._watchdog = Some(Mutex::new(cluster.watchdog()));
        eprintln!(
            "test PostgreSQL cluster on 127.0.0.1:{} in {} (started in {:.1} s)",
            cluster.port,
            dir.display(),
            started.elapsed().as_secs_f64()
        );
        cluster
    }

    /// `sh` waiting for our end of its stdin to close, then stopping the
    /// server at once and removing the directory.
    fn watchdog(&self) -> (Child, ChildStdin) {
        let pg_ctl = self.bin.join("pg_ctl");
        let data = self.dir.join("data");
        let stop = format!(
            "{} -D {} stop -m immediate -w >/dev/null 2>&1",
            pg_ctl.display(),
            data.display()
        );
        let stop = if self.as_postgres {
            format!("runuser -u postgres -- {stop}")
        } else {
            stop
        };
        // Signals are ignored: `timeout` and job control signal the whole
        // process group, and the watchdog must outlive the test process
        // to stop the server after it.
        let script = format!(
            "trap '' HUP INT TERM; read _ignored; {stop}; rm -rf {}",
            self.dir.display()
        );
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(script)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn the watchdog");
        let stdin = child.stdin.take().unwrap();
        (child, stdin)
    }

    fn command(&self, tool: &str) -> Command {
        let path = self.bin.join(tool);
        if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            Command::new(path)
        }
    }

    /// A URL for database `db` as the superuser.
    pub fn url_for(&self, db: &str) -> String {
        format!(
            "postgres://postgres:{PASSWORD}@127.0.0.1:{}/{db}",
            self.port
        )
    }

    /// The URL of the `postgres` database.
    pub fn url(&self) -> String {
        self.url_for("postgres")
    }

    /// `pg_ctl restart -m fast`: every connection is dropped.
    pub fn restart(&self) {
        let out = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-w", "-t", "60", "-m", "fast", "-o"])
            .arg(format!("-p {}", self.port))
            .arg("-l")
            .arg(self.dir.join("log"))
            .arg("restart")
            .output()
            .expect("run pg_ctl restart");
        assert!(
            out.status.success(),
            "pg_ctl restart failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Runs SQL through `psql` (for set-up steps such as creating a role).
    pub fn psql(&self, sql: &str) {
        let out = self
            .command("psql")
            .args(["-h"])
            .arg(&self.dir)
            .arg("-p")
            .arg(self.port.to_string())
            .args([
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                sql,
            ])
            .output()
            .expect("run psql");
        assert!(
            out.status.success(),
            "psql failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub fn data_dir(&self) -> &Path {
        &self.dir
    }
}

/// A schema name unique to this process and `test`.
pub fn schema(test: &str) -> String {
    format!("t{}_{}", std::process::id(), test)
}

/// Waits up to `limit` for `cond`, polling.
pub fn wait_for(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while !cond() {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    true
}
