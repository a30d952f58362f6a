//! A throw-away OpenLDAP `slapd` (Debian packages `slapd` and
//! `ldap-utils`) on 127.0.0.1 and a free port, from a temporary folder: a
//! `slapd.conf` (`slapd -f`) with the core, cosine and inetorgperson
//! schemas and an `mdb` database for [`SUFFIX`] whose root DN is
//! [`ROOT_DN`] / [`ROOT_PW`]. Entries change with `ldapadd`,
//! `ldapmodify` and `ldapdelete`. Killed on drop.
//!
//! [`Slapd::start_tls`] also gives it a certificate for `127.0.0.1` and
//! `localhost` from a private CA the test makes (rcgen): StartTLS on the
//! `ldap://` port and TLS from the first byte on an `ldaps://` port.

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const SUFFIX: &str = "dc=example,dc=com";
pub const ROOT_DN: &str = "cn=admin,dc=example,dc=com";
pub const ROOT_PW: &str = "slapd-root-secret";

const SLAPD: &str = "/usr/sbin/slapd";
const SCHEMAS: &str = "/etc/ldap/schema";
const MODULES: &str = "/usr/lib/ldap";

/// Whether slapd and the LDAP tools are installed
/// (`.ci/install-test-deps.sh` installs them).
pub fn available() -> bool {
    std::path::Path::new(SLAPD).exists() && which("ldapadd") && which("ldapmodify")
}

fn which(tool: &str) -> bool {
    Command::new(tool)
        .arg("-VV")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

pub struct Slapd {
    child: Child,
    pub port: u16,
    /// The `ldaps://` port ([`Slapd::start_tls`]).
    pub tls_port: Option<u16>,
    /// The private CA that signed slapd's certificate, PEM
    /// ([`Slapd::start_tls`]).
    pub ca_pem: Option<String>,
    dir: tempfile::TempDir,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A private CA (PEM) and a certificate and key (PEM) it signed for
/// `localhost` and `127.0.0.1`.
fn pki() -> (String, String, String) {
    let ca_key = rcgen::KeyPair::generate().expect("CA key");
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "slapd test CA");
    let ca = ca_params.self_signed(&ca_key).expect("CA certificate");
    let key = rcgen::KeyPair::generate().expect("server key");
    let params =
        rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .expect("server params");
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let cert = params.signed_by(&key, &issuer).expect("server certificate");
    (ca.pem(), cert.pem(), key.serialize_pem())
}

impl Slapd {
    /// Start slapd with `dc=example,dc=com` and `ou=people` under it.
    /// Panics (with slapd's log) when it does not answer within 10 s.
    pub fn start() -> Slapd {
        Self::start_with(false)
    }

    /// [`Slapd::start`] with TLS: StartTLS on [`Slapd::url`], TLS on
    /// [`Slapd::ldaps_url`], a certificate from [`Slapd::ca_pem`]'s CA.
    pub fn start_tls() -> Slapd {
        Self::start_with(true)
    }

    fn start_with(tls: bool) -> Slapd {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("db");
        std::fs::create_dir(&db).unwrap();
        let conf = dir.path().join("slapd.conf");
        std::fs::write(
            &conf,
            format!(
                "include {SCHEMAS}/core.schema\n\
                 include {SCHEMAS}/cosine.schema\n\
                 include {SCHEMAS}/inetorgperson.schema\n\
                 modulepath {MODULES}\n\
                 moduleload back_mdb\n\
                 pidfile {pid}\n\
                 database mdb\n\
                 maxsize 67108864\n\
                 suffix \"{SUFFIX}\"\n\
                 rootdn \"{ROOT_DN}\"\n\
                 rootpw {ROOT_PW}\n\
                 directory {db}\n",
                pid = dir.path().join("slapd.pid").display(),
                db = db.display(),
            ),
        )
        .unwrap();
        let mut ca_pem = None;
        if tls {
            let (ca, cert, key) = pki();
            let file = |name: &str, text: &str| {
                let path = dir.path().join(name);
                std::fs::write(&path, text).unwrap();
                path.display().to_string()
            };
            // Global directives go before the first `database`.
            let conf_text = std::fs::read_to_string(&conf).unwrap();
            let tls_conf = format!(
                "TLSCACertificateFile {}\nTLSCertificateFile {}\nTLSCertificateKeyFile {}\n",
                file("ca.pem", &ca),
                file("server.pem", &cert),
                file("server.key", &key),
            );
            let conf_text = conf_text.replacen("database mdb\n", &(tls_conf + "database mdb\n"), 1);
            std::fs::write(&conf, conf_text).unwrap();
            ca_pem = Some(ca);
        }
        let port = free_port();
        let tls_port = tls.then(free_port);
        let mut urls = format!("ldap://127.0.0.1:{port}/");
        if let Some(p) = tls_port {
            urls.push_str(&format!(" ldaps://127.0.0.1:{p}/"));
        }
        let log = std::fs::File::create(dir.path().join("slapd.log")).unwrap();
        // `-d` keeps slapd in the foreground (so it is our child to kill);
        // 256 logs connections and operations.
        let child = Command::new(SLAPD)
            .arg("-f")
            .arg(&conf)
            .arg("-h")
            .arg(&urls)
            .args(["-d", "256"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start /usr/sbin/slapd (Debian package slapd)");
        let mut me = Slapd {
            child,
            port,
            tls_port,
            ca_pem,
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err()
            || tls_port.is_some_and(|p| TcpStream::connect(("127.0.0.1", p)).is_err())
        {
            if Instant::now() > deadline || me.child.try_wait().unwrap().is_some() {
                panic!("slapd did not start:\n{}", me.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        me.add(&format!(
            "dn: {SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\ndc: example\no: Example\n\n\
             dn: ou=people,{SUFFIX}\nobjectClass: organizationalUnit\nou: people\n"
        ));
        me
    }

    /// `ldap://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("ldap://127.0.0.1:{}", self.port)
    }

    /// `ldaps://127.0.0.1:PORT` ([`Slapd::start_tls`] only).
    pub fn ldaps_url(&self) -> String {
        format!(
            "ldaps://127.0.0.1:{}",
            self.tls_port.expect("started with start_tls")
        )
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("slapd.log")).unwrap_or_default()
    }

    pub fn folder(&self) -> PathBuf {
        self.dir.path().to_owned()
    }

    fn tool(&self, tool: &str, args: &[&str], input: &str) {
        let mut child = Command::new(tool)
            .args(["-x", "-H", &self.url(), "-D", ROOT_DN, "-w", ROOT_PW])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{tool} (Debian package ldap-utils): {e}"));
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{tool} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Add the entries of an LDIF text.
    pub fn add(&self, ldif: &str) {
        self.tool("ldapadd", &[], ldif);
    }

    /// Apply an LDIF change record (`changetype: modify`).
    pub fn modify(&self, ldif: &str) {
        self.tool("ldapmodify", &[], ldif);
    }

    /// Delete one entry.
    pub fn delete(&self, dn: &str) {
        self.tool("ldapdelete", &[dn], "");
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
