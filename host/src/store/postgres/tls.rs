//! TLS to PostgreSQL with libpq's `sslmode` meanings
//! (<https://www.postgresql.org/docs/15/libpq-ssl.html>, table "SSL Mode
//! Descriptions"), by rustls with ring under rust-postgres's `connect`
//! (`tokio-postgres-rustls`).
//!
//! rust-postgres's `Config` knows only `disable`, `prefer` and `require`
//! and no `sslrootcert`, so [`parse`] takes `sslmode` and `sslrootcert` out
//! of the connection string (URL query or `key=value` form) and hands the
//! rest to `postgres::Config`, with its `ssl_mode` set to whether TLS is
//! optional (`prefer`) or required (`require`, `verify-ca`, `verify-full`).
//! What is verified is decided by the rustls certificate verifier:
//!
//! | `sslmode` | TLS | certificate check |
//! | --- | --- | --- |
//! | `disable` | never | none |
//! | `prefer` (default) | if the server offers it | none (as libpq, even with `sslrootcert`) |
//! | `require` | always | none; with `sslrootcert=<file>` as `verify-ca` (libpq) |
//! | `verify-ca` | always | chain to `sslrootcert` (else the system trust store) |
//! | `verify-full` | always | chain, and the certificate names the host connected to |
//!
//! `sslrootcert=system` is the system trust store (PostgreSQL 16's
//! meaning): `sslmode` then defaults to `verify-full`, and a weaker mode is
//! refused. Without `sslrootcert`, `verify-ca`/`verify-full` use the system
//! trust store too (libpq would read `~/.postgresql/root.crt`).

use std::error::Error as _;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use percent_encoding::percent_decode_str;
use postgres::Config;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::store::StoreError;

/// libpq's `sslmode` values this hub implements (`allow` is not one:
/// rust-postgres cannot try a plain connection first and TLS second).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    const ALLOWED: &'static str = "disable, prefer, require, verify-ca, verify-full";

    fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

impl FromStr for SslMode {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<Self, StoreError> {
        Ok(match s {
            "disable" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            other => {
                return Err(StoreError::Postgres(format!(
                    "database_url: sslmode {other:?} is not supported; allowed: {}",
                    SslMode::ALLOWED
                )));
            }
        })
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where the CA certificates that verify the server come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RootCert {
    /// `sslrootcert=<path>`: a PEM bundle.
    File(PathBuf),
    /// `sslrootcert=system`, or no `sslrootcert` with `verify-ca` /
    /// `verify-full`: the operating system's trust store.
    System,
}

/// The TLS part of `database_url`, and the client TLS setup it makes.
#[derive(Clone)]
pub struct Tls {
    /// The mode as written (or `prefer`); what is checked is [`Self::check`].
    pub mode: SslMode,
    /// `None` when nothing is verified.
    pub roots: Option<RootCert>,
    /// Whether the certificate must name the host (`verify-full`).
    pub check_name: bool,
    /// The first host of the URL, for error messages.
    host: Option<String>,
    connector: MakeRustlsConnect,
}

impl fmt::Debug for Tls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tls")
            .field("mode", &self.mode)
            .field("roots", &self.roots)
            .field("check_name", &self.check_name)
            .finish_non_exhaustive()
    }
}

impl Tls {
    /// The connector every connection of the store uses (workers, `LISTEN`).
    pub fn connector(&self) -> MakeRustlsConnect {
        self.connector.clone()
    }

    /// What is checked, for the log: `none`, `chain (FILE)`, `chain and
    /// host name (system trust store)`.
    pub fn check(&self) -> String {
        let what = if self.check_name {
            "chain and host name"
        } else {
            "chain"
        };
        match &self.roots {
            None => "none".into(),
            Some(RootCert::File(p)) => format!("{what} ({})", p.display()),
            Some(RootCert::System) => format!("{what} (system trust store)"),
        }
    }

    /// A connect error with what to change when TLS was the cause: an
    /// untrusted certificate, a certificate for another name, a server
    /// without TLS, a server that takes TLS connections only. Never holds
    /// the password (rust-postgres' errors do not carry it).
    pub fn explain(&self, e: &postgres::Error) -> String {
        let host = self.host.as_deref().unwrap_or("the database host");
        if let Some(r) = rustls_error(e) {
            let trusted = match &self.roots {
                Some(RootCert::File(p)) => format!("the CA certificates in {}", p.display()),
                _ => "the system trust store".into(),
            };
            return match r {
                rustls::Error::InvalidCertificate(
                    CertificateError::NotValidForName
                    | CertificateError::NotValidForNameContext { .. },
                ) => format!(
                    "the database server's certificate was not trusted: it does not name {host} \
                     ({r}); connect by a name the certificate holds, or set sslmode=verify-ca in \
                     database_url to check the issuing CA only"
                ),
                rustls::Error::InvalidCertificate(_) => format!(
                    "the database server's certificate was not trusted: {r} (checked against \
                     {trusted}); set sslrootcert=<PEM file of the CA that signed it> in \
                     database_url"
                ),
                _ => format!(
                    "TLS with the database server failed: {r} (sslmode={})",
                    self.mode
                ),
            };
        }
        let text = crate::io::failure::chain(e);
        if text.contains("server does not support TLS") {
            return format!(
                "the database server does not offer TLS, which sslmode={} requires: turn on ssl \
                 in its postgresql.conf, or set sslmode=prefer or disable in database_url",
                self.mode
            );
        }
        if self.mode == SslMode::Disable
            && e.code() == Some(&postgres::error::SqlState::INVALID_AUTHORIZATION_SPECIFICATION)
            && text.contains("no encryption")
        {
            return format!(
                "{text} (the server takes only TLS connections here: set sslmode=verify-full, \
                 verify-ca or require in database_url)"
            );
        }
        text
    }
}

/// Split `url` (a libpq URL or `key=value` string) into rust-postgres'
/// `Config` and the TLS setup its `sslmode` and `sslrootcert` ask for.
///
/// Errors ([`StoreError::Postgres`], starting `database_url`): not a
/// connection string; an `sslmode` other than [`SslMode::ALLOWED`];
/// `sslrootcert=system` with a mode weaker than `verify-full`; an
/// `sslrootcert` file that cannot be read, holds no PEM certificate or one
/// that is not usable as a CA; an empty system trust store when it is
/// needed. The messages name the path, never the password.
pub fn parse(url: &str) -> Result<(Config, Tls), StoreError> {
    let (rest, mode, root) = split_tls_options(url).unwrap_or_else(|| (url.to_owned(), None, None));
    let mut config = Config::from_str(&rest).map_err(|e| {
        StoreError::Postgres(format!(
            "database_url is not a PostgreSQL connection string \
             (postgres://user:password@host:port/database): {}",
            crate::io::failure::chain(&e)
        ))
    })?;
    let root = root.filter(|r| !r.is_empty()).map(|r| {
        if r == "system" {
            RootCert::System
        } else {
            RootCert::File(PathBuf::from(r))
        }
    });
    let mode = match (mode.as_deref(), &root) {
        (Some(m), _) => m.parse()?,
        (None, Some(RootCert::System)) => SslMode::VerifyFull,
        (None, _) => SslMode::Prefer,
    };
    if root == Some(RootCert::System) && mode != SslMode::VerifyFull {
        return Err(StoreError::Postgres(format!(
            "database_url: sslrootcert=system needs sslmode=verify-full (it is {mode}): \
             without the host name check any certificate from a public CA would pass"
        )));
    }
    let roots = match mode {
        SslMode::Disable | SslMode::Prefer => None,
        SslMode::Require => root.filter(|r| matches!(r, RootCert::File(_))),
        SslMode::VerifyCa | SslMode::VerifyFull => Some(root.unwrap_or(RootCert::System)),
    };
    let check_name = mode == SslMode::VerifyFull;
    config.ssl_mode(match mode {
        SslMode::Disable => postgres::config::SslMode::Disable,
        SslMode::Prefer => postgres::config::SslMode::Prefer,
        SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => {
            postgres::config::SslMode::Require
        }
    });
    let host = config.get_hosts().iter().find_map(|h| match h {
        postgres::config::Host::Tcp(h) => Some(h.clone()),
        _ => None,
    });
    let connector = MakeRustlsConnect::new(client_config(roots.as_ref(), check_name)?);
    Ok((
        config,
        Tls {
            mode,
            roots,
            check_name,
            host,
            connector,
        },
    ))
}

fn client_config(
    roots: Option<&RootCert>,
    check_name: bool,
) -> Result<rustls::ClientConfig, StoreError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| StoreError::Postgres(format!("database TLS setup: {e}")))?;
    let verifier: Arc<dyn ServerCertVerifier> = match roots {
        None => Arc::new(NoCheck(provider)),
        Some(roots) => {
            let store = match roots {
                RootCert::File(path) => roots_from_file(path)?,
                RootCert::System => system_roots()?,
            };
            let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(store), provider)
                .build()
                .map_err(|e| StoreError::Postgres(format!("database TLS setup: {e}")))?;
            if check_name {
                webpki
            } else {
                Arc::new(ChainOnly(webpki))
            }
        }
    };
    Ok(builder
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth())
}

fn roots_from_file(path: &Path) -> Result<RootCertStore, StoreError> {
    let named = |what: String| {
        StoreError::Postgres(format!(
            "database_url: sslrootcert {}: {what}",
            path.display()
        ))
    };
    let pem = std::fs::read(path).map_err(|e| named(format!("cannot be read: {e}")))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| named(format!("is not a PEM file: {e}")))?;
    if certs.is_empty() {
        return Err(named("holds no PEM certificate".into()));
    }
    let mut store = RootCertStore::empty();
    for (i, c) in certs.into_iter().enumerate() {
        store
            .add(c)
            .map_err(|e| named(format!("certificate {} is not usable as a CA: {e}", i + 1)))?;
    }
    Ok(store)
}

fn system_roots() -> Result<RootCertStore, StoreError> {
    let found = rustls_native_certs::load_native_certs();
    let mut store = RootCertStore::empty();
    store.add_parsable_certificates(found.certs);
    if store.is_empty() {
        let errors: Vec<String> = found.errors.iter().map(ToString::to_string).collect();
        return Err(StoreError::Postgres(format!(
            "database_url: the system trust store holds no usable CA certificate ({}); set \
             sslrootcert=<PEM file of the CA that signed the database server's certificate>",
            if errors.is_empty() {
                "none found".into()
            } else {
                errors.join("; ")
            }
        )));
    }
    Ok(store)
}

/// `prefer` and `require` without a CA: encrypted, the certificate not
/// checked (libpq's meaning). The handshake's signatures are still checked,
/// so the peer holds the key of the certificate it sent.
#[derive(Debug)]
struct NoCheck(Arc<CryptoProvider>);

impl ServerCertVerifier for NoCheck {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `verify-ca`: the chain is checked, the name is not. rustls checks the
/// name only after the chain passed, so a name error means a trusted chain.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// The rustls error under a connect error (tokio-rustls wraps it in an
/// `io::Error`, whose `source()` skips the wrapped error itself).
fn rustls_error(e: &postgres::Error) -> Option<&rustls::Error> {
    let mut next = e.source();
    while let Some(err) = next {
        if let Some(r) = err.downcast_ref::<rustls::Error>() {
            return Some(r);
        }
        if let Some(r) = err
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        {
            return Some(r);
        }
        next = err.source();
    }
    None
}

/// `(string without sslmode/sslrootcert, sslmode, sslrootcert)`; `None`
/// when the string does not tokenize (rust-postgres then names the fault).
/// The last occurrence of a key wins, as in rust-postgres and libpq.
fn split_tls_options(url: &str) -> Option<(String, Option<String>, Option<String>)> {
    let params = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        url_params(url)?
    } else {
        keyword_params(url)?
    };
    let mut mode = None;
    let mut root = None;
    let mut cut: Vec<Range<usize>> = Vec::new();
    for (span, key, value) in params {
        match key.as_str() {
            "sslmode" => mode = Some(value),
            "sslrootcert" => root = Some(value),
            _ => continue,
        }
        cut.push(span);
    }
    let mut rest = String::with_capacity(url.len());
    let mut at = 0;
    for span in &cut {
        rest.push_str(&url[at..span.start]);
        at = span.end;
    }
    rest.push_str(&url[at..]);
    Some((tidy_url(rest), mode, root))
}

/// A URL whose query lost parameters: no `?&`, `&&` or trailing `?`/`&`.
fn tidy_url(s: String) -> String {
    if !(s.starts_with("postgres://") || s.starts_with("postgresql://")) {
        return s;
    }
    let Some(q) = query_start(&s) else { return s };
    let (head, query) = s.split_at(q + 1);
    let query: Vec<&str> = query.split('&').filter(|p| !p.is_empty()).collect();
    if query.is_empty() {
        head[..head.len() - 1].to_owned()
    } else {
        format!("{head}{}", query.join("&"))
    }
}

/// Where the query's `?` is: after the credentials (up to the first `@`,
/// as rust-postgres reads them, so a `?` in a password is no query).
fn query_start(url: &str) -> Option<usize> {
    let from = url.find('@').map_or(0, |i| i + 1);
    url[from..].find('?').map(|i| from + i)
}

/// Each `key=value` of a URL's query: its span (separators excluded;
/// [`tidy_url`] drops those left over), the percent-decoded key and value.
fn url_params(url: &str) -> Option<Vec<(Range<usize>, String, String)>> {
    let Some(q) = query_start(url) else {
        return Some(Vec::new());
    };
    let mut out = Vec::new();
    let mut start = q + 1;
    for part in url[q + 1..].split('&') {
        let span = start..start + part.len();
        start = span.end + 1;
        if part.is_empty() {
            continue;
        }
        let (k, v) = part.split_once('=')?;
        let k = percent_decode_str(k).decode_utf8().ok()?.into_owned();
        let v = percent_decode_str(v).decode_utf8().ok()?.into_owned();
        out.push((span, k, v));
    }
    Some(out)
}

/// Each `key = value` of a libpq keyword string (values bare with `\`
/// escapes, or single-quoted), as rust-postgres tokenizes it: the span of
/// the whole pair, the key and the unescaped value.
fn keyword_params(s: &str) -> Option<Vec<(Range<usize>, String, String)>> {
    let b = s.as_bytes();
    let mut i = 0;
    let mut out = Vec::new();
    let skip_ws = |mut i: usize| {
        while i < b.len() && (b[i] as char).is_ascii_whitespace() {
            i += 1;
        }
        i
    };
    loop {
        i = skip_ws(i);
        if i >= b.len() {
            return Some(out);
        }
        let start = i;
        while i < b.len() && b[i] != b'=' && !(b[i] as char).is_ascii_whitespace() {
            i += 1;
        }
        let key = s[start..i].to_owned();
        i = skip_ws(i);
        if b.get(i) != Some(&b'=') {
            return None;
        }
        i = skip_ws(i + 1);
        let mut value = Vec::new();
        if b.get(i) == Some(&b'\'') {
            i += 1;
            loop {
                match b.get(i) {
                    None => return None,
                    Some(b'\'') => {
                        i += 1;
                        break;
                    }
                    Some(b'\\') if i + 1 < b.len() => {
                        value.push(b[i + 1]);
                        i += 2;
                    }
                    Some(&c) => {
                        value.push(c);
                        i += 1;
                    }
                }
            }
        } else {
            while i < b.len() && !(b[i] as char).is_ascii_whitespace() {
                if b[i] == b'\\' && i + 1 < b.len() {
                    value.push(b[i + 1]);
                    i += 2;
                } else {
                    value.push(b[i]);
                    i += 1;
                }
            }
            if value.is_empty() {
                return None;
            }
        }
        out.push((start..i, key, String::from_utf8(value).ok()?));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(url: &str) -> (String, Option<String>, Option<String>) {
        split_tls_options(url).unwrap()
    }

    #[test]
    fn url_options_are_taken_out() {
        assert_eq!(
            split(
                "postgres://hub:p%3Fw@db.example:5432/hub?sslmode=verify-full&sslrootcert=/etc/presence-hub/db-ca.pem"
            ),
            (
                "postgres://hub:p%3Fw@db.example:5432/hub".into(),
                Some("verify-full".into()),
                Some("/etc/presence-hub/db-ca.pem".into())
            )
        );
        assert_eq!(
            split(
                "postgresql://h/db?connect_timeout=3&sslrootcert=%2Ftmp%2Fa%20b.pem&application_name=x"
            ),
            (
                "postgresql://h/db?connect_timeout=3&application_name=x".into(),
                None,
                Some("/tmp/a b.pem".into())
            )
        );
        // A `?` in the password (not percent-encoded) is no query.
        assert_eq!(
            split("postgres://u:a?b@h/db?sslmode=require"),
            ("postgres://u:a?b@h/db".into(), Some("require".into()), None)
        );
        assert_eq!(
            split("postgres://h/db"),
            ("postgres://h/db".into(), None, None)
        );
    }

    #[test]
    fn keyword_options_are_taken_out() {
        assert_eq!(
            split(
                "host=db.example user=hub sslmode = verify-ca sslrootcert='/etc/a b.pem' dbname=hub"
            ),
            (
                "host=db.example user=hub   dbname=hub".into(),
                Some("verify-ca".into()),
                Some("/etc/a b.pem".into())
            )
        );
        assert_eq!(
            split(r"host=h sslrootcert=/x\ y.pem"),
            ("host=h ".into(), None, Some("/x y.pem".into()))
        );
        assert!(split_tls_options("host=h sslmode").is_none());
    }

    #[test]
    fn modes_follow_libpq() {
        let t = |url: &str| parse(url).map(|(c, t)| (c.get_ssl_mode(), t));
        use postgres::config::SslMode as Pg;
        let (pg, tls) = t("postgres://h/db").unwrap();
        assert_eq!(
            (pg, tls.mode, tls.roots),
            (Pg::Prefer, SslMode::Prefer, None)
        );
        let (pg, tls) = t("postgres://h/db?sslmode=disable").unwrap();
        assert_eq!((pg, tls.roots), (Pg::Disable, None));
        let (pg, tls) = t("postgres://h/db?sslmode=require").unwrap();
        assert_eq!((pg, tls.roots), (Pg::Require, None));
        let (pg, tls) = t("host=h sslmode=verify-full").unwrap();
        assert_eq!(
            (pg, tls.roots, tls.check_name),
            (Pg::Require, Some(RootCert::System), true)
        );
        let (_, tls) = t("postgres://h/db?sslrootcert=system").unwrap();
        assert_eq!(tls.mode, SslMode::VerifyFull);

        let err = t("postgres://h/db?sslcert=/c.pem").unwrap_err().to_string();
        assert!(err.contains("unknown option `sslcert`"), "{err}");
        let err = t("postgres://h/db?sslmode=allow").unwrap_err().to_string();
        assert!(
            err.contains("sslmode \"allow\" is not supported; allowed: disable, prefer, require, verify-ca, verify-full"),
            "{err}"
        );
        let err = t("postgres://h/db?sslmode=require&sslrootcert=system")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("sslrootcert=system needs sslmode=verify-full"),
            "{err}"
        );
        let err = t("postgres://u:secret@h/db?sslmode=verify-ca&sslrootcert=/nonexistent/ca.pem")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("database_url: sslrootcert /nonexistent/ca.pem: cannot be read"),
            "{err}"
        );
        assert!(!err.contains("secret"), "{err}");
        // prefer never verifies (libpq), so its CA file is not even read.
        let (_, tls) = t("postgres://h/db?sslrootcert=/nonexistent/ca.pem").unwrap();
        assert_eq!(tls.roots, None);
    }

    #[test]
    fn a_ca_file_without_certificates_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, "not a certificate\n").unwrap();
        let err = parse(&format!(
            "postgres://h/db?sslmode=require&sslrootcert={}",
            path.display()
        ))
        .unwrap_err()
        .to_string();
        assert!(
            err.contains(&format!(
                "sslrootcert {}: holds no PEM certificate",
                path.display()
            )),
            "{err}"
        );
    }
}
