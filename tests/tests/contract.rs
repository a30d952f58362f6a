//! Contract 0.2.0 end to end: a 0.1.0 plugin beside 0.2.0 plugins, write ids
//! and outcomes through the API, echo marks in the event log, a WebSocket
//! closed by the server with a code the plugin sees, a TLS certificate
//! failure named as such, and a made-up third-party connector mapped by the
//! attribute it declares.

use std::sync::Arc;

use futures::SinkExt;
use hub_e2e::Hub;
use serde_json::{Value, json};

async fn create(hub: &Hub, id: &str, plugin: &str, watches: &[&str]) {
    let (s, v) = hub
        .call(
            "POST",
            "/api/v1/connectors",
            Some(json!({"id": id, "plugin": plugin, "config": {}, "watches": watches})),
        )
        .await;
    assert_eq!(s, 201, "{v}");
}

async fn write(hub: &Hub, instance: &str, endpoint: &str, body: Value) -> Value {
    let (s, v) = hub
        .call(
            "POST",
            &format!("/api/v1/connectors/{instance}/endpoints/{endpoint}/presence"),
            Some(body),
        )
        .await;
    assert_eq!(s, 202, "{v}");
    v
}

fn detail_of(v: &Value, endpoint: &str) -> String {
    v["endpoints"][endpoint]["state_detail"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn a_0_1_0_plugin_runs_beside_0_2_0_plugins_and_writes_carry_ids() {
    let hub = Hub::start(&["test-plugins/legacy", "test-plugins/chaos"], &[]);
    let plugins = hub.get("/api/v1/plugins").await;
    let version_of = |id: &str| {
        plugins["plugins"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["id"] == id)
            .map(|p| p["api_version"].clone())
    };
    assert_eq!(version_of("legacy"), Some(json!("0.1.0")), "{plugins}");
    assert_eq!(version_of("chaos"), Some(json!("0.2.0")), "{plugins}");

    create(&hub, "old", "legacy", &["x"]).await;
    create(&hub, "new", "chaos", &["w"]).await;
    hub.wait_for("/api/v1/connectors/old/endpoints", "0.1.0 presence", |v| {
        v["endpoints"]["x"]["rich"]["note"] == "legacy:x"
    })
    .await;
    hub.wait_for("/api/v1/connectors/new/endpoints", "0.2.0 presence", |v| {
        v["endpoints"]["w"]["rich"]["availability"] == "available"
    })
    .await;

    // A 0.1.0 plugin reports no outcome: the write is accepted, and says so.
    let old = write(
        &hub,
        "old",
        "x",
        json!({"action": "set", "availability": "busy"}),
    )
    .await;
    assert_eq!(old["state"], "accepted", "{old}");
    assert!(old["detail"].as_str().unwrap().contains("0.1.0"), "{old}");
    hub.wait_for("/api/v1/connectors/old/endpoints", "0.1.0 write", |v| {
        v["endpoints"]["x"]["rich"]["availability"] == "busy"
    })
    .await;

    // A 0.2.0 plugin reports the outcome by id, and marks the echo.
    let new = write(
        &hub,
        "new",
        "w",
        json!({"action": "set", "availability": "do-not-disturb", "dnd_scope": "all-calls"}),
    )
    .await;
    let id = new["id"].as_u64().expect("a write id");
    assert!(id > old["id"].as_u64().unwrap(), "ids grow: {old} {new}");
    let done = hub
        .wait_for(&format!("/api/v1/writes/{id}"), "outcome", |v| {
            v["state"] != "pending"
        })
        .await;
    assert_eq!(done["state"], "applied", "{done}");
    assert_eq!(done["action"], "set do-not-disturb (all calls)", "{done}");
    let ep = hub
        .wait_for("/api/v1/connectors/new/endpoints", "echo", |v| {
            v["endpoints"]["w"]["rich"]["availability"] == "do-not-disturb"
        })
        .await;
    assert_eq!(
        ep["endpoints"]["w"]["origin"],
        json!({"kind": "hub-write", "write_id": id}),
        "{ep}"
    );
    let restore = write(&hub, "new", "w", json!({"action": "restore"})).await;
    let rid = restore["id"].as_u64().unwrap();
    let done = hub
        .wait_for(&format!("/api/v1/writes/{rid}"), "restore outcome", |v| {
            v["state"] != "pending"
        })
        .await;
    assert_eq!(done["state"], "restored", "{done}");
    let writes = hub.get("/api/v1/connectors/new/writes").await;
    assert_eq!(writes["writes"][0]["id"], rid, "{writes}");
    assert_eq!(
        hub.get("/api/v1/connectors/new/status").await["status"]["writes_applied"],
        2
    );
    let (s, v) = hub.call("GET", "/api/v1/writes/12", None).await;
    assert_eq!(s, 404, "{v}");

    // The event log says which update was the hub's own echo, and each
    // write's outcome.
    let log = hub
        .wait_for("/api/v1/events?limit=500", "write outcomes logged", |v| {
            v.to_string()
                .contains(&format!("write {rid} to w: restore -> restored"))
        })
        .await
        .to_string();
    assert!(log.contains(&format!("echo of hub write {id}")), "{log}");
    assert!(
        log.contains(&format!(
            "write {id} to w: set do-not-disturb (all calls) -> applied"
        )),
        "{log}"
    );
}

/// A WebSocket server that closes every connection at once with 4001.
async fn closing_ws_server() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                use tokio_tungstenite::tungstenite::protocol::{
                    CloseFrame, frame::coding::CloseCode,
                };
                let Ok(mut ws) =
                    tokio_tungstenite::accept_hdr_async(tcp, hub_e2e::choose_chaos_v1).await
                else {
                    return;
                };
                let frame = CloseFrame {
                    code: CloseCode::from(4001),
                    reason: "forced disconnect".into(),
                };
                let _ = ws
                    .send(tokio_tungstenite::tungstenite::Message::Close(Some(frame)))
                    .await;
                let _ = futures::StreamExt::next(&mut ws).await;
            });
        }
    });
    port
}

/// A TLS server whose certificate no trusted CA signed.
async fn self_signed_tls_server() -> u16 {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
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
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let _ = acceptor.accept(tcp).await;
            });
        }
    });
    port
}

#[tokio::test]
async fn connections_say_how_they_ended() {
    let hub = Hub::start(&["test-plugins/chaos"], &[]);
    let ws = closing_ws_server().await;
    let tls = self_signed_tls_server().await;
    let ws_ep = format!("ws:ws://127.0.0.1:{ws}/");
    let tls_ep = format!("tls:localhost:{tls}");
    let refused_ep = "connect:127.0.0.1:9".to_string();
    create(&hub, "c", "chaos", &[&ws_ep, &tls_ep, &refused_ep]).await;
    let v = hub
        .wait_for("/api/v1/connectors/c/endpoints", "closes reported", |v| {
            detail_of(v, &ws_ep).contains("closed")
                && detail_of(v, &tls_ep).contains("failure")
                && detail_of(v, &refused_ep).contains("failure")
        })
        .await;
    let ws_detail = detail_of(&v, &ws_ep);
    assert!(
        ws_detail.contains("code=4001") && ws_detail.contains("forced disconnect"),
        "{ws_detail}"
    );
    let tls_detail = detail_of(&v, &tls_ep);
    assert!(tls_detail.contains("tls-certificate"), "{tls_detail}");
    assert!(
        detail_of(&v, &refused_ep).contains("refused"),
        "{}",
        detail_of(&v, &refused_ep)
    );
}

#[tokio::test]
async fn a_third_party_connector_is_mapped_by_the_attribute_it_declares() {
    let hub = Hub::start(&["test-plugins/acme", "plugins/http-push"], &[]);
    let plugins = hub.get("/api/v1/plugins").await;
    let acme = plugins["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == "acme-presence")
        .cloned()
        .expect("acme loaded");
    assert_eq!(
        acme["endpoint_kinds"][0]["attribute"], "acme-badge",
        "{acme}"
    );
    let (s, v) = hub
        .call(
            "POST",
            "/api/v1/users",
            Some(json!({"username": "dora", "display_name": "Dora",
                "attributes": {"acme-badge": "B-17"}})),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    create(&hub, "badges", "acme-presence", &[]).await;
    // Watched by the declared attribute, with no operator mapping and no
    // plugin id known to the host.
    let p = hub
        .wait_for("/api/v1/presence/dora", "mapped by acme-badge", |v| {
            v["rich"]["state"] == "available"
        })
        .await;
    assert_eq!(p["rich"]["source"], "badges", "{p}");
    let ep = hub.get("/api/v1/connectors/badges/endpoints").await;
    assert_eq!(
        ep["endpoints"]["B-17"]["rich"]["note"], "badge B-17",
        "{ep}"
    );
    // Ranked like ours: with no winning technology set, the newest report
    // wins, whichever plugin sent it.
    let (s, v) = hub
        .call(
            "POST",
            "/hooks/badges/presence",
            Some(json!({"endpoint": "B-17", "availability": "busy"})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    hub.wait_for("/api/v1/presence/dora", "third-party change", |v| {
        v["rich"]["state"] == "busy"
    })
    .await;
}

#[tokio::test]
async fn a_plugin_knows_its_instance_and_gets_randomness_from_the_host() {
    let hub = Hub::start(
        &["test-plugins/chaos"],
        &[("HUB_PUBLIC_URL", "https://hub.example.com/")],
    );
    create(&hub, "c1", "chaos", &["info", "random"]).await;
    create(&hub, "c2", "chaos", &["random"]).await;
    let v = hub
        .wait_for("/api/v1/connectors/c1/endpoints", "info and random", |v| {
            v["endpoints"]["info"]["state"] == "active"
                && v["endpoints"]["random"]["state"] == "active"
        })
        .await;
    assert_eq!(
        v["endpoints"]["info"]["rich"]["note"],
        format!(
            "id=c1 hooks=https://hub.example.com/hooks/c1 hub={}",
            env!("CARGO_PKG_VERSION")
        ),
        "{v}"
    );
    let r1 = v["endpoints"]["random"]["rich"]["note"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(r1.len(), 32, "16 bytes in hex: {r1}");
    assert!(r1.chars().all(|c| c.is_ascii_hexdigit()), "{r1}");
    let v = hub
        .wait_for("/api/v1/connectors/c2/endpoints", "random", |v| {
            v["endpoints"]["random"]["state"] == "active"
        })
        .await;
    assert_ne!(
        v["endpoints"]["random"]["rich"]["note"], r1,
        "two draws differ"
    );
}
