//! TLS client configuration: the Mozilla root set plus an instance's own CA
//! (on-premises PBXs and Lync pools often use a private CA).

use std::sync::Arc;

/// A TLS configuration problem.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("tls_ca_pem holds no PEM certificate")]
    NoCertificate,
    #[error("tls_ca_pem: {0}")]
    Invalid(String),
}

/// Certificates from a PEM bundle, checked to be usable as trust anchors.
pub fn parse_ca(pem: &str) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, TlsError> {
    let certs: Vec<_> = rustls_pemfile::certs(&mut pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::Invalid(e.to_string()))?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate);
    }
    let mut roots = rustls::RootCertStore::empty();
    for c in &certs {
        roots
            .add(c.clone())
            .map_err(|e| TlsError::Invalid(e.to_string()))?;
    }
    Ok(certs)
}

/// A client configuration trusting the web PKI roots and `extra_ca_pem`.
pub fn client_config(extra_ca_pem: Option<&str>) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(pem) = extra_ca_pem {
        for c in parse_ca(pem)? {
            roots.add(c).map_err(|e| TlsError::Invalid(e.to_string()))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Invalid(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(cfg))
}
