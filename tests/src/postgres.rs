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
//! [`Postgres::start_tls`] also turns on TLS (`ssl=on`) with a server
//! certificate for the names a test gives, signed by a private CA the kit
//! makes (rcgen; [`Postgres::ca_file`]), and can take TCP connections over
//! TLS only (`hostssl` lines in `pg_hba.conf`).
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
    /// With TLS: the PEM file of the CA that signed the server certificate.
    ca: Option<PathBuf>,
}

/// What [`Postgres::start_tls`] sets up.
#[derive(Clone, Debug)]
pub struct Tls {
    /// The server certificate's subject alternative names (DNS names, or
    /// IP addresses written as such).
    pub names: Vec<String>,
    /// `pg_hba.conf` takes TCP connections with TLS only (`hostssl`); the
    /// unix socket stays open to the superuser.
    pub hostssl_only: bool,
}

/// A private CA named `ca_name` (PEM) and a server certificate and key
/// (PEM) it signed for `names`.
fn pki(ca_name: &str, names: &[String]) -> (String, String, String) {
    let ca_key = rcgen::KeyPair::generate().expect("CA key");
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, ca_name);
    let ca = ca_params.self_signed(&ca_key).expect("CA certificate");
    let key = rcgen::KeyPair::generate().expect("server key");
    let params = rcgen::CertificateParams::new(names.to_vec()).expect("server params");
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let cert = params.signed_by(&key, &issuer).expect("server certificate");
    (ca.pem(), cert.pem(), key.serialize_pem())
}

/// Another private CA, which signed nothing this cluster serves: a PEM
/// file in `dir` (for "a CA that does not verify the server").
pub fn unrelated_ca(dir: &Path) -> PathBuf {
    let (ca, _, _) = pki("unrelated test CA", &["unrelated.invalid".to_string()]);
    let path = dir.join("unrelated-ca.pem");
    std::fs::write(&path, ca).unwrap();
    path
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

impl Postgres {
    /// initdb and start a cluster. Panics (with the server's log) when it
    /// does not start within pg_ctl's 30 s.
    pub fn start() -> Postgres {
        Self::start_with(None)
    }

    /// [`Postgres::start`] with `ssl=on`: `server.crt`/`server.key` (mode
    /// 0600, owned by the server's user) in the cluster's folder, for
    /// `tls.names`, signed by a new CA ([`Postgres::ca_file`]).
    pub fn start_tls(tls: Tls) -> Postgres {
        Self::start_with(Some(tls))
    }

    fn start_with(tls: Option<Tls>) -> Postgres {
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
        let mut me = Postgres {
            dir,
            port,
            as_postgres,
            ca: None,
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
        let mut opts = format!(
            "-c listen_addresses=127.0.0.1 -p {port} -k {sock} -c fsync=off \
             -c synchronous_commit=off -c full_page_writes=off -c max_connections=300 \
             -c shared_buffers=32MB",
            sock = me.dir.path().display()
        );
        if let Some(tls) = tls {
            opts.push_str(&me.set_up_tls(&tls));
        }
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

    /// Writes the server's certificate and key (and `pg_hba.conf`);
    /// returns the server options that use them.
    fn set_up_tls(&mut self, tls: &Tls) -> String {
        use std::os::unix::fs::PermissionsExt;
        let (ca, cert, key) = pki("postgres test CA", &tls.names);
        let ca_path = self.dir.path().join("ca.pem");
        let cert_path = self.dir.path().join("server.crt");
        let key_path = self.dir.path().join("server.key");
        std::fs::write(&ca_path, ca).unwrap();
        std::fs::write(&cert_path, cert).unwrap();
        std::fs::write(&key_path, key).unwrap();
        // The server refuses a key others can read.
        std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o600)).unwrap();
        if self.as_postgres {
            let out = Command::new("chown")
                .arg("postgres:postgres")
                .args([&cert_path, &key_path])
                .output()
                .unwrap();
            assert!(out.status.success(), "chown: {out:?}");
        }
        if tls.hostssl_only {
            // Overwriting keeps the file's owner (the server's user).
            std::fs::write(
                self.data().join("pg_hba.conf"),
                "local all all trust\n\
                 hostssl all all 127.0.0.1/32 trust\n\
                 hostssl all all ::1/128 trust\n",
            )
            .unwrap();
        }
        self.ca = Some(ca_path);
        format!(
            " -c ssl=on -c ssl_cert_file={} -c ssl_key_file={}",
            cert_path.display(),
            key_path.display()
        )
    }

    /// With [`Postgres::start_tls`]: the PEM file of the CA that signed the
    /// server certificate (what a client gives as `sslrootcert`).
    pub fn ca_file(&self) -> Option<&Path> {
        self.ca.as_deref()
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

    /// One TLS cluster for the whole test process, like
    /// [`Postgres::shared`]: a certificate for `localhost` only (so a
    /// connection to 127.0.0.1 meets a certificate for another name), TCP
    /// over TLS only.
    pub fn shared_tls() -> &'static Postgres {
        static SHARED_TLS: OnceLock<Postgres> = OnceLock::new();
        SHARED_TLS.get_or_init(|| {
            let pg = Postgres::start_tls(Tls {
                names: vec!["localhost".into()],
                hostssl_only: true,
            });
            extern "C" fn stop_shared_tls() {
                if let Some(pg) = SHARED_TLS.get() {
                    pg.stop();
                    let _ = std::fs::remove_dir_all(pg.dir.path());
                }
            }
            // SAFETY: registering a plain extern "C" function.
            unsafe { libc::atexit(stop_shared_tls) };
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
