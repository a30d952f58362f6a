//! Why a connection or request ended, classified for the guest: a plugin must
//! tell a refused TLS certificate from a dead peer, and a server's forced
//! WebSocket close (with its code) from a network failure.

use std::error::Error as StdError;

/// Why a connection or request failed (contract 0.2.0 `failure`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    Dns(String),
    Refused,
    Timeout,
    Reset,
    TlsCertificate(String),
    Tls(String),
    UpgradeRefused {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    },
    Protocol(String),
    Other(String),
}

/// How a stream or WebSocket ended (contract 0.2.0 `close-info`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CloseInfo {
    /// The WebSocket close code the peer sent, if any.
    pub code: Option<u16>,
    pub reason: String,
    /// `None` for an orderly close.
    pub failure: Option<Failure>,
}

impl CloseInfo {
    pub fn failed(failure: Failure) -> Self {
        Self {
            failure: Some(failure),
            ..Self::default()
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Dns(m) => write!(f, "dns: {m}"),
            Failure::Refused => f.write_str("refused"),
            Failure::Timeout => f.write_str("timeout"),
            Failure::Reset => f.write_str("reset"),
            Failure::TlsCertificate(m) => write!(f, "tls-certificate: {m}"),
            Failure::Tls(m) => write!(f, "tls: {m}"),
            Failure::UpgradeRefused { status, .. } => write!(f, "upgrade-refused: HTTP {status}"),
            Failure::Protocol(m) => write!(f, "protocol: {m}"),
            Failure::Other(m) => write!(f, "other: {m}"),
        }
    }
}

/// The whole chain of an error's messages, joined with ": ".
pub fn chain(e: &(dyn StdError + 'static)) -> String {
    let mut msg = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        let next = s.to_string();
        if !msg.contains(&next) {
            msg.push_str(": ");
            msg.push_str(&next);
        }
        src = s.source();
    }
    msg
}

/// Classify an error by walking its source chain for the first cause we can
/// name: a rustls error (certificate or other TLS), an I/O error kind, or a
/// timeout. Anything else is `other` with the whole chain in words.
pub fn classify(e: &(dyn StdError + 'static)) -> Failure {
    let mut cur: Option<&(dyn StdError + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(t) = err.downcast_ref::<rustls::Error>() {
            return tls(t);
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            // rustls errors travel inside io::Error from tokio-rustls.
            if let Some(t) = io.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
                return tls(t);
            }
            if let Some(f) = io_kind(io) {
                return f;
            }
        }
        if err.downcast_ref::<tokio::time::error::Elapsed>().is_some() {
            return Failure::Timeout;
        }
        cur = err.source();
    }
    Failure::Other(chain(e))
}

/// A rustls error: certificate problems are named as such.
pub fn tls(e: &rustls::Error) -> Failure {
    match e {
        rustls::Error::InvalidCertificate(c) => Failure::TlsCertificate(certificate(c)),
        rustls::Error::NoCertificatesPresented => {
            Failure::TlsCertificate("the server presented no certificate".into())
        }
        other => Failure::Tls(other.to_string()),
    }
}

fn certificate(c: &rustls::CertificateError) -> String {
    use rustls::CertificateError as C;
    match c {
        C::UnknownIssuer => {
            "unknown issuer: the certificate is not signed by a trusted CA (add the CA to the connector instance's tls_ca_pem)".into()
        }
        C::Expired | C::ExpiredContext { .. } => "the certificate has expired".into(),
        C::NotValidYet | C::NotValidYetContext { .. } => "the certificate is not valid yet".into(),
        C::NotValidForName | C::NotValidForNameContext { .. } => {
            "the certificate is not valid for this host name".into()
        }
        C::Revoked => "the certificate is revoked".into(),
        C::BadSignature => "the certificate's signature is invalid".into(),
        other => format!("{other:?}"),
    }
}

/// An I/O error kind we can name; `None` for kinds that say nothing useful
/// (the caller then looks further down the chain).
pub fn io_kind(e: &std::io::Error) -> Option<Failure> {
    use std::io::ErrorKind as K;
    Some(match e.kind() {
        K::ConnectionRefused => Failure::Refused,
        K::TimedOut | K::WouldBlock => Failure::Timeout,
        K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe | K::UnexpectedEof => {
            Failure::Reset
        }
        K::InvalidData => Failure::Protocol(e.to_string()),
        _ => return None,
    })
}

/// A failure of the system resolver, named as DNS.
pub fn dns(host: &str, e: &std::io::Error) -> Failure {
    Failure::Dns(format!("cannot resolve {host}: {e}"))
}

/// An I/O error, classified or kept in words.
pub fn io(e: &std::io::Error) -> Failure {
    classify(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_certificate_problems_through_io_errors() {
        let inner = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let io = std::io::Error::new(std::io::ErrorKind::InvalidData, inner);
        match classify(&io) {
            Failure::TlsCertificate(m) => assert!(m.contains("unknown issuer"), "{m}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn names_io_kinds() {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert_eq!(classify(&refused), Failure::Refused);
        let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        assert_eq!(classify(&reset), Failure::Reset);
        let odd = std::io::Error::other("odd");
        assert_eq!(classify(&odd), Failure::Other("odd".into()));
    }
}
