//! TLS on the hub's own listener (API, console, feeds and webhooks), from a
//! PEM certificate chain and private key on disk, reloaded without a
//! restart: the files are looked at every [`timing::TLS_RELOAD_POLL`] and on
//! `SIGHUP`, and a new pair is taken for the next handshakes once it parses
//! and its key matches its certificate. A bad pair (half-written by a
//! renewal tool, a key for another certificate) is refused with a warning
//! and the current one stays in service, so a renewal can never take the
//! hub off the air.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio_rustls::TlsAcceptor;

use crate::timing;

/// Why a certificate and key cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ServerTlsError {
    #[error("cannot read {path}: {source} (check tls_cert / tls_key, HUB_TLS_CERT / HUB_TLS_KEY)")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path} holds no PEM certificate (expected `-----BEGIN CERTIFICATE-----` blocks, leaf first)"
    )]
    NoCertificate { path: PathBuf },
    #[error(
        "{path} holds no PEM private key (expected PKCS#8 `BEGIN PRIVATE KEY`, `BEGIN RSA PRIVATE KEY` or `BEGIN EC PRIVATE KEY`)"
    )]
    NoKey { path: PathBuf },
    #[error("{path}: {reason}")]
    Pem { path: PathBuf, reason: String },
    #[error("the key in {key} does not fit the certificate in {cert}: {reason}")]
    Mismatch {
        cert: PathBuf,
        key: PathBuf,
        reason: String,
    },
}

/// Where the certificate chain and its key live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM, leaf certificate first, then intermediates.
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 RSA or SEC1 EC).
    pub key: PathBuf,
}

/// The listener's TLS: an acceptor whose certificate can be swapped.
#[derive(Clone)]
pub struct ServerTls {
    acceptor: TlsAcceptor,
    current: Arc<CurrentCert>,
    files: TlsFiles,
}

impl ServerTls {
    /// Load `files` and build the acceptor (TLS 1.2 and 1.3, ALPN
    /// `http/1.1`, no client certificates).
    pub fn load(files: TlsFiles) -> Result<Self, ServerTlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let key = load_pair(&files, &provider)?;
        let current = Arc::new(CurrentCert {
            key: RwLock::new(Arc::new(key)),
            provider: provider.clone(),
        });
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| ServerTlsError::Pem {
                path: files.cert.clone(),
                reason: e.to_string(),
            })?
            .with_no_client_auth()
            .with_cert_resolver(current.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            current,
            files,
        })
    }

    /// The acceptor for new connections.
    pub fn acceptor(&self) -> &TlsAcceptor {
        &self.acceptor
    }

    /// Read the files again; on success new handshakes use them.
    pub fn reload(&self) -> Result<(), ServerTlsError> {
        let key = load_pair(&self.files, &self.current.provider)?;
        *self.current.key.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(key);
        Ok(())
    }

    /// Reload whenever the files change (looked at every
    /// [`timing::TLS_RELOAD_POLL`]) or the process gets `SIGHUP`, until the
    /// returned task is aborted.
    pub fn watch(&self) -> tokio::task::JoinHandle<()> {
        let tls = self.clone();
        tokio::spawn(async move {
            let mut hup =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
            let mut seen = fingerprint(&tls.files);
            loop {
                let signalled = tokio::select! {
                    _ = tokio::time::sleep(timing::TLS_RELOAD_POLL) => false,
                    Some(()) = async { match hup.as_mut() { Some(h) => h.recv().await, None => std::future::pending().await } } => true,
                };
                let now = fingerprint(&tls.files);
                if !signalled && now == seen {
                    continue;
                }
                seen = now;
                match tls.reload() {
                    Ok(()) => tracing::info!(
                        cert = %tls.files.cert.display(),
                        "TLS certificate reloaded; new connections use it"
                    ),
                    Err(e) => tracing::warn!(
                        error = %e,
                        "TLS certificate not reloaded; the current one stays in service"
                    ),
                }
            }
        })
    }
}

/// The pair in service, read by every handshake.
#[derive(Debug)]
struct CurrentCert {
    key: RwLock<Arc<CertifiedKey>>,
    provider: Arc<CryptoProvider>,
}

impl ResolvesServerCert for CurrentCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.key.read().unwrap_or_else(|p| p.into_inner()).clone())
    }
}

/// Modification time and size of both files: a renewal changes at least one.
fn fingerprint(files: &TlsFiles) -> [Option<(SystemTime, u64)>; 2] {
    let of = |p: &Path| {
        std::fs::metadata(p)
            .ok()
            .and_then(|m| Some((m.modified().ok()?, m.len())))
    };
    [of(&files.cert), of(&files.key)]
}

fn read(path: &Path) -> Result<Vec<u8>, ServerTlsError> {
    std::fs::read(path).map_err(|source| ServerTlsError::Read {
        path: path.to_owned(),
        source,
    })
}

/// Parse the chain and key and check that they belong together.
fn load_pair(files: &TlsFiles, provider: &CryptoProvider) -> Result<CertifiedKey, ServerTlsError> {
    let pem_err = |path: &Path| {
        let path = path.to_owned();
        move |e: std::io::Error| ServerTlsError::Pem {
            path,
            reason: e.to_string(),
        }
    };
    let cert_pem = read(&files.cert)?;
    let chain: Vec<_> = rustls_pemfile::certs(&mut cert_pem.as_slice())
        .collect::<Result<_, _>>()
        .map_err(pem_err(&files.cert))?;
    if chain.is_empty() {
        return Err(ServerTlsError::NoCertificate {
            path: files.cert.clone(),
        });
    }
    let key_pem = read(&files.key)?;
    let key = rustls_pemfile::private_key(&mut key_pem.as_slice())
        .map_err(pem_err(&files.key))?
        .ok_or_else(|| ServerTlsError::NoKey {
            path: files.key.clone(),
        })?;
    CertifiedKey::from_der(chain, key, provider).map_err(|e| ServerTlsError::Mismatch {
        cert: files.cert.clone(),
        key: files.key.clone(),
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(dir: &Path, name: &str) -> TlsFiles {
        let ck = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let files = TlsFiles {
            cert: dir.join(format!("{name}.crt")),
            key: dir.join(format!("{name}.key")),
        };
        std::fs::write(&files.cert, ck.cert.pem()).unwrap();
        std::fs::write(&files.key, ck.signing_key.serialize_pem()).unwrap();
        files
    }

    #[test]
    fn errors_name_the_file_and_what_is_expected() {
        let dir = tempfile::tempdir().unwrap();
        let good = pair(dir.path(), "a");
        let other = pair(dir.path(), "b");
        let missing = TlsFiles {
            cert: dir.path().join("nope.crt"),
            key: good.key.clone(),
        };
        let e = ServerTls::load(missing).err().unwrap().to_string();
        assert!(e.contains("nope.crt") && e.contains("HUB_TLS_CERT"), "{e}");

        let swapped = TlsFiles {
            cert: good.key.clone(),
            key: good.cert.clone(),
        };
        let e = ServerTls::load(swapped).err().unwrap().to_string();
        assert!(e.contains("no PEM certificate"), "{e}");

        let mismatched = TlsFiles {
            cert: good.cert.clone(),
            key: other.key.clone(),
        };
        let e = ServerTls::load(mismatched).err().unwrap().to_string();
        assert!(e.contains("does not fit"), "{e}");

        assert!(ServerTls::load(good).is_ok());
    }

    #[test]
    fn a_bad_reload_keeps_the_pair_in_service() {
        let dir = tempfile::tempdir().unwrap();
        let files = pair(dir.path(), "a");
        let tls = ServerTls::load(files.clone()).unwrap();
        let before = tls.current.key.read().unwrap().cert[0].clone();
        std::fs::write(&files.key, "-----BEGIN PRIVATE KEY-----\ngarbage\n").unwrap();
        assert!(tls.reload().is_err());
        assert_eq!(tls.current.key.read().unwrap().cert[0], before);
    }
}
