//! TLS with certificate checks (system roots plus an instance's own CA) and
//! the WebSocket client, through a real plugin.

use std::sync::Arc;

use futures::{SinkExt, StreamExt};
use hub_e2e::Hub;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Pki {
    ca_pem: String,
    server: Arc<rustls::ServerConfig>,
}

/// A private CA and a certificate for `localhost` it signed.
fn pki() -> Pki {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "hub test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let cert = params.signed_by(&key, &issuer).unwrap();
    let server = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(
        vec![cert.der().clone()],
        rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
    )
    .unwrap();
    Pki {
        ca_pem: ca.pem(),
        server: Arc::new(server),
    }
}

/// A TLS server on 127.0.0.1 answering every request with HTTP 200.
async fn tls_server(cfg: Arc<rustls::ServerConfig>) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let acceptor = tokio_rustls::TlsAcceptor::from(cfg);
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut buf = [0u8; 4096];
                if tls.read(&mut buf).await.unwrap_or(0) > 0 {
                    let _ = tls
                        .write_all(
                            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
                        )
                        .await;
                    let _ = tls.shutdown().await;
                }
            });
        }
    });
    port
}

/// A WebSocket server that answers each text message with "echo: <text>".
async fn ws_server() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(mut ws) =
                    tokio_tungstenite::accept_hdr_async(tcp, hub_e2e::choose_chaos_v1).await
                else {
                    return;
                };
                while let Some(Ok(msg)) = ws.next().await {
                    if let tokio_tungstenite::tungstenite::Message::Text(t) = msg {
                        let reply = format!("echo: {t}");
                        if ws.send(reply.into()).await.is_err() {
                            break;
                        }
                    }
                }
            });
        }
    });
    port
}

#[tokio::test]
async fn tls_trusts_the_instance_ca_only_and_websockets_work() {
    let pki = pki();
    let port = tls_server(pki.server.clone()).await;
    let wsport = ws_server().await;
    let hub = Hub::start(&["test-plugins/chaos"], &[]);
    let stream = format!("tls:localhost:{port}");
    let https = format!("http:https://localhost:{port}/");
    let ws = format!("ws:ws://127.0.0.1:{wsport}/");

    // Without the CA, the certificate is refused.
    let (s, v) = hub
        .call(
            "POST",
            "/api/v1/connectors",
            Some(json!({"id": "noca", "plugin": "chaos", "watches": [stream, https]})),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let eps = hub
        .wait_for("/api/v1/connectors/noca/endpoints", "refusals", |v| {
            v["endpoints"][&stream]["state"] == "error"
                && v["endpoints"][&https]["state"] == "error"
        })
        .await;
    for ep in [&stream, &https] {
        let d = eps["endpoints"][ep]["state_detail"]
            .as_str()
            .unwrap()
            .to_lowercase();
        assert!(
            d.contains("certificate") || d.contains("issuer"),
            "{ep}: {d}"
        );
    }

    // With the CA configured on the instance, both connect.
    let (s, v) = hub
        .call(
            "POST",
            "/api/v1/connectors",
            Some(json!({"id": "withca", "plugin": "chaos", "tls_ca_pem": pki.ca_pem, "watches": [stream, https, ws]})),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["tls_ca_configured"], true);
    let eps = hub
        .wait_for("/api/v1/connectors/withca/endpoints", "connections", |v| {
            v["endpoints"][&stream]["state"] == "active"
                && v["endpoints"][&https]["state_detail"] == "status 200"
                && v["endpoints"][&ws]["rich"]["note"] == "echo: hello"
        })
        .await;
    assert_eq!(eps["endpoints"][&ws]["state"], "active");

    // A CA that is not PEM is refused, naming the field.
    let (s, v) = hub
        .call(
            "POST",
            "/api/v1/connectors",
            Some(json!({"id": "badca", "plugin": "chaos", "tls_ca_pem": "not a certificate"})),
        )
        .await;
    assert_eq!(s, 422, "{v}");
    assert_eq!(v["field"], "tls_ca_pem");
}
