//! TLS on the hub's own listener (issue 20): the API, feeds and webhooks over
//! HTTPS from a certificate the test makes, renewed on disk and taken
//! without a restart; a bad renewal keeps the certificate in service; a
//! half-made configuration stops the start with a message naming what is
//! missing.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hub_e2e::{Hub, TOKEN, hub_binary};
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A private CA that signs leaf certificates for 127.0.0.1 and localhost.
struct Ca {
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    pem: String,
}

impl Ca {
    fn new() -> Ca {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "hub TLS test CA");
        let cert = params.self_signed(&key).unwrap();
        Ca {
            pem: cert.pem(),
            issuer: rcgen::Issuer::new(params, key),
        }
    }

    /// A new leaf (new key) written to `dir/hub.crt` and `dir/hub.key`;
    /// returns the leaf's DER to compare with what the hub serves.
    fn issue(&self, dir: &Path) -> Vec<u8> {
        let key = rcgen::KeyPair::generate().unwrap();
        let params =
            rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
                .unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        // Key first, as a renewal tool writing two files would: the hub may
        // look in between and must then keep the old pair, not fail.
        std::fs::write(dir.join("hub.key"), key.serialize_pem()).unwrap();
        std::fs::write(dir.join("hub.crt"), cert.pem()).unwrap();
        cert.der().to_vec()
    }
}

fn port_of(base: &str) -> u16 {
    base.rsplit(':').next().unwrap().parse().unwrap()
}

fn client(ca_pem: &str) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pemfile_certs(ca_pem) {
        roots.add(c).unwrap();
    }
    let mut cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    // A resumed session reports the certificate of the session it resumes:
    // every connection here does a full handshake to see what is served.
    cfg.resumption = rustls::client::Resumption::disabled();
    tokio_rustls::TlsConnector::from(Arc::new(cfg))
}

fn rustls_pemfile_certs(pem: &str) -> Vec<CertificateDer<'static>> {
    use rustls::pki_types::pem::PemObject;
    CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<_, _>>()
        .unwrap()
}

/// One HTTPS request (HTTP/1.1, `Connection: close`): status, body and the
/// certificate the hub presented.
async fn https(
    tls: &tokio_rustls::TlsConnector,
    port: u16,
    request: &str,
) -> Result<(u16, String, Vec<u8>), String> {
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| e.to_string())?;
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let mut s = tls.connect(name, tcp).await.map_err(|e| e.to_string())?;
    let leaf = s.get_ref().1.peer_certificates().unwrap()[0].to_vec();
    s.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    // The hub may end TLS without close_notify after `Connection: close`.
    let _ = s.read_to_end(&mut raw).await;
    let text = String::from_utf8_lossy(&raw).to_string();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("no HTTP answer: {text:?}"))?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    Ok((status, body.to_string(), leaf))
}

fn get(path: &str, auth: bool) -> String {
    let auth = if auth {
        format!("Authorization: Bearer {TOKEN}\r\n")
    } else {
        String::new()
    };
    format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}Connection: close\r\n\r\n")
}

/// Wait (bounded) until a new connection is served `want`.
async fn served(tls: &tokio_rustls::TlsConnector, port: u16, want: &[u8], why: &str) {
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, _, leaf) = https(tls, port, &get("/healthz", false)).await.unwrap();
        assert_eq!(status, 200);
        if leaf == want {
            return;
        }
        assert!(Instant::now() < until, "{why}: still the old certificate");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test]
async fn api_feeds_and_webhooks_over_https_with_renewal_without_restart() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new();
    let first = ca.issue(dir.path());
    let cert = dir.path().join("hub.crt");
    let key = dir.path().join("hub.key");
    let hub = Hub::start(
        &["plugins/http-push"],
        &[
            ("HUB_TLS_CERT", cert.to_str().unwrap()),
            ("HUB_TLS_KEY", key.to_str().unwrap()),
        ],
    );
    assert!(hub.base.starts_with("https://"), "{}", hub.base);
    let port = port_of(&hub.base);
    let tls = client(&ca.pem);

    // The API, with and without a token; the certificate is the one made.
    let (status, _, leaf) = https(&tls, port, &get("/healthz", false)).await.unwrap();
    assert_eq!((status, leaf.as_slice()), (200, first.as_slice()));
    let (status, body, _) = https(&tls, port, &get("/api/v1/users", true))
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        https(&tls, port, &get("/api/v1/users", false))
            .await
            .unwrap()
            .0,
        401
    );
    // Webhooks share the listener: a push to an unknown instance is
    // answered over TLS (not refused at the TLS layer).
    let push = "POST /hooks/nobody/presence HTTP/1.1\r\nHost: 127.0.0.1\r\n\
                Content-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}";
    let (status, _, _) = https(&tls, port, push).await.unwrap();
    assert_eq!(status, 404);
    // The feed streams over TLS too (first bytes of the SSE answer).
    {
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        let mut s = tls
            .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
            .await
            .unwrap();
        s.write_all(get("/api/v1/feed/sse", true).as_bytes())
            .await
            .unwrap();
        let mut buf = vec![0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
            .await
            .expect("feed answers")
            .unwrap();
        let head = String::from_utf8_lossy(&buf[..n]).to_string();
        assert!(
            head.starts_with("HTTP/1.1 200") && head.contains("text/event-stream"),
            "{head}"
        );
    }

    // Plain HTTP on the same port is not served.
    let plain = hub_e2e_plain_get(port).await;
    assert!(!plain.starts_with("HTTP/1.1 200"), "{plain}");

    // Renewal: a new pair on disk is taken without a restart.
    let second = ca.issue(dir.path());
    served(&tls, port, &second, "renewed certificate").await;

    // A bad renewal (a truncated certificate) is refused and logged; the
    // pair in service stays.
    std::fs::write(&cert, "-----BEGIN CERTIFICATE-----\nMIIB\n").unwrap();
    let until = Instant::now() + Duration::from_secs(30);
    while !hub.log().contains("TLS certificate not reloaded") {
        assert!(Instant::now() < until, "no warning; log:\n{}", hub.log());
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let (status, _, leaf) = https(&tls, port, &get("/healthz", false)).await.unwrap();
    assert_eq!((status, leaf), (200, second.clone()));

    // SIGHUP reloads at once too (the next renewal).
    let third = ca.issue(dir.path());
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(hub.pid().unwrap() as i32, libc::SIGHUP) };
    served(&tls, port, &third, "after SIGHUP").await;
    assert!(
        !hub.log().contains("PRIVATE KEY"),
        "the log never shows key material"
    );
}

/// What a plain-HTTP client gets from the TLS port (at most its first bytes).
async fn hub_e2e_plain_get(port: u16) -> String {
    let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    tcp.write_all(get("/healthz", false).as_bytes())
        .await
        .unwrap();
    let mut buf = vec![0u8; 512];
    let n = tokio::time::timeout(Duration::from_secs(15), tcp.read(&mut buf))
        .await
        .map(|r| r.unwrap_or(0))
        .unwrap_or(0);
    String::from_utf8_lossy(&buf[..n]).to_string()
}

/// Run the binary with `env` (plus the tests' usual isolation) and return
/// its exit status and stderr; it must exit by itself.
fn start_fails(env: &[(&str, PathBuf)]) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(hub_binary())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HUB_LISTEN", "127.0.0.1:0")
        .env("HUB_DATA_DIR", dir.path().join("data"))
        .env("HUB_PLUGINS_DIR", dir.path())
        .env("HUB_ADMIN_TOKEN", TOKEN)
        .envs(env.iter().map(|(k, v)| (*k, v.as_os_str())))
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn a_half_made_or_unusable_tls_configuration_stops_the_start_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    Ca::new().issue(dir.path());
    let cert = dir.path().join("hub.crt");
    let key = dir.path().join("hub.key");

    let (ok, out) = start_fails(&[("HUB_TLS_CERT", cert.clone())]);
    assert!(!ok && out.contains("HUB_TLS_KEY"), "{out}");
    assert!(!out.contains("listening"), "{out}");

    let (ok, out) = start_fails(&[("HUB_TLS_CERT", key.clone()), ("HUB_TLS_KEY", key.clone())]);
    assert!(
        !ok && out.contains("no PEM certificate") && out.contains("hub.key"),
        "{out}"
    );

    let other = tempfile::tempdir().unwrap();
    Ca::new().issue(other.path());
    let (ok, out) = start_fails(&[
        ("HUB_TLS_CERT", cert),
        ("HUB_TLS_KEY", other.path().join("hub.key")),
    ]);
    assert!(!ok && out.contains("does not fit"), "{out}");
}
