//! A throw-away PostgreSQL 15 cluster (Debian package `postgresql`) in a
//! temporary folder: `initdb` with trust authentication for the superuser
//! `postgres`, then `pg_ctl start` on 127.0.0.1 and a free port, its unix
//! socket in the same folder, `fsync=off` (a test's data need not survive
//! a power cut). Stopped (`pg_ctl stop -m immediate`) on drop.
//!
//! initdb and the server refuse to run as root, so as root they run as the
//! `postgres` system user (`runuser -u postgres --`) and the folder is
//! handed to that user.
//!
//! ```no_run
//! let pg = hub_e2e::postgres::Postgres::start();
//! let url = pg.create_database("conformance");
//! // postgres://postgres@127.0.0.1:PORT/conformance
//! ```

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

/// Debian's PostgreSQL 15 programs.
pub const BIN: &str = "/usr/lib/postgresql/15/bin";

/// Whether PostgreSQL 15's server programs are installed
/// (`.ci/install-test-deps.sh` installs them).
pub fn available() -> bool {
    ["initdb", "pg_ctl", "postgres", "psql"]
        .iter()
        .all(|p| Path::new(BIN).join(p).exists())
}

pub struct Postgres {
    dir: tempfile::TempDir,
    pub port: u16,
    as_postgres: bool,
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

impl Postgres {
    /// initdb and start a cluster. Panics (with the server's log) when it
    /// does not start within pg_ctl's 30 s.
    pub fn start() -> Postgres {
        assert!(
            available(),
            "PostgreSQL 15 is needed (Debian package postgresql; .ci/install-test-deps.sh)"
        );
        let dir = tempfile::Builder::new()
            .prefix("hub-pg-")
            .tempdir()
            .unwrap();
        let as_postgres = is_root();
        if as_postgres {
            let out = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .output()
                .unwrap();
            assert!(out.status.success(), "chown: {out:?}");
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let me = Postgres {
            dir,
            port,
            as_postgres,
        };
        let data = me.data();
        let out = me.run(
            "initdb",
            &[
                "-D",
                data.to_str().unwrap(),
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            ],
        );
        assert!(out.status.success(), "initdb failed: {}", text(&out));
        let opts = format!(
            "-c listen_addresses=127.0.0.1 -p {port} -k {sock} -c fsync=off \
             -c synchronous_commit=off -c full_page_writes=off -c max_connections=300 \
             -c shared_buffers=32MB",
            sock = me.dir.path().display()
        );
        let log = me.log_path();
        let out = me.run(
            "pg_ctl",
            &[
                "-D",
                data.to_str().unwrap(),
                "-l",
                log.to_str().unwrap(),
                "-o",
                &opts,
                "-w",
                "-t",
                "30",
                "start",
            ],
        );
        assert!(
            out.status.success(),
            "pg_ctl start failed: {}\n{}",
            text(&out),
            me.log()
        );
        me
    }

    /// One cluster for the whole test process, stopped when the process
    /// exits (statics are not dropped, so an `atexit` hook stops it and
    /// removes its folder).
    pub fn shared() -> &'static Postgres {
        static SHARED: OnceLock<Postgres> = OnceLock::new();
        SHARED.get_or_init(|| {
            let pg = Postgres::start();
            extern "C" fn stop_shared() {
                if let Some(pg) = SHARED.get() {
                    pg.stop();
                    let _ = std::fs::remove_dir_all(pg.dir.path());
                }
            }
            // SAFETY: registering a plain extern "C" function.
            unsafe { libc::atexit(stop_shared) };
            pg
        })
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("postgres.log")
    }

    /// The server's log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn run(&self, program: &str, args: &[&str]) -> Output {
        let exe = Path::new(BIN).join(program);
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&exe);
            c
        } else {
            Command::new(&exe)
        };
        cmd.args(args)
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("{program}: {e}"))
    }

    /// `postgres://postgres@127.0.0.1:PORT/postgres`.
    pub fn database_url(&self) -> String {
        self.url_of("postgres")
    }

    /// The URL of database `name` on this cluster.
    pub fn url_of(&self, name: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    /// Run SQL with `psql` as the superuser on database `db`; stdout.
    /// Panics with psql's output when it fails.
    pub fn psql(&self, db: &str, sql: &str) -> String {
        let port = self.port.to_string();
        let out = self.run(
            "psql",
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &port,
                "-U",
                "postgres",
                "-d",
                db,
                "-v",
                "ON_ERROR_STOP=1",
                "-X",
                "-A",
                "-t",
                "-c",
                sql,
            ],
        );
        assert!(out.status.success(), "psql {sql:?}: {}", text(&out));
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// A new, empty database named after `prefix` (made unique in this
    /// process and cluster); its URL.
    pub fn create_database(&self, prefix: &str) -> String {
        static N: AtomicU32 = AtomicU32::new(0);
        let clean: String = prefix
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '_'
                }
            })
            .take(40)
            .collect();
        let name = format!(
            "{clean}_{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        self.psql("postgres", &format!("CREATE DATABASE \"{name}\""));
        self.url_of(&name)
    }

    fn stop(&self) {
        let _ = self.run(
            "pg_ctl",
            &[
                "-D",
                self.data().to_str().unwrap(),
                "-m",
                "immediate",
                "-w",
                "stop",
            ],
        );
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop();
    }
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}
