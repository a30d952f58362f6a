//! The UCMA bridge conformance kit (tools/ucma-bridge-kit) against the
//! bridge simulator (src/ucma_sim.rs): every check passes against the
//! correct simulator, and each broken mode fails the check that matches its
//! fault. Then the simulator's own control API through a raw protocol
//! client: set-up failures, failover, refusals, publish/restore, restart and
//! schema policing.

use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use hub_e2e::ucma_sim::{Fault, UcmaSim, UcmaSimConfig};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use ucma_bridge_kit::protocol::{self, hub_credential};
use ucma_bridge_kit::{KitConfig, Verdict, run};

const ALICE: &str = "sip:alice@sim.test";
const BOB: &str = "sip:bob@sim.test";

async fn sim(broken: Option<Fault>) -> UcmaSim {
    let sim = UcmaSim::start(UcmaSimConfig {
        broken,
        ..Default::default()
    })
    .await;
    sim.add_user(ALICE);
    sim.add_user(BOB);
    sim.set_presence(ALICE, 6500, Some("on-the-phone"), Some("Back at 3"));
    sim.set_device(ALICE, Some("in-a-call"));
    sim.set_presence(BOB, 15500, None, None);
    sim.set_custom_activity(BOB, Some("Lunch"));
    sim
}

fn kit(sim: &UcmaSim, endpoint: Value) -> KitConfig {
    KitConfig {
        url: sim.url(),
        token: sim.token(),
        ca_pem: sim.ca_pem(),
        endpoint,
        targets: vec![ALICE.into(), BOB.into()],
        publish_target: Some(ALICE.into()),
        heartbeat_ms: 1000,
        skip_negative_setup: false,
    }
}

fn print(report: &ucma_bridge_kit::Report) -> String {
    report
        .checks
        .iter()
        .map(|c| c.line())
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kit_passes_against_the_simulator_with_a_user_endpoint() {
    let sim = sim(None).await;
    let report = run(&kit(&sim, sim.user_endpoint(true))).await;
    let lines = print(&report);
    println!("{lines}");
    for c in &report.checks {
        // A user endpoint may publish only for itself: alice's publish is
        // "unsupported", so there is nothing to see.
        let want = if c.name == "publish-visible" {
            Verdict::Skip
        } else {
            Verdict::Pass
        };
        assert_eq!(c.verdict, want, "{}\n{lines}", c.line());
    }
    assert!(
        report
            .get("publish")
            .unwrap()
            .detail
            .contains("unsupported")
    );
    // The user endpoint publishes only for itself: alice is "unsupported".
    assert_eq!(
        sim.published(ALICE).len(),
        1,
        "publish only (restore skipped)"
    );
    assert!(sim.hub_publication(ALICE).is_none());
    assert_eq!(sim.auth_rejections(), 1, "the kit's wrong-bearer probe");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kit_passes_against_the_simulator_with_a_trusted_application() {
    let sim = sim(None).await;
    let report = run(&kit(&sim, sim.trusted_application_endpoint())).await;
    let lines = print(&report);
    println!("{lines}");
    assert!(report.passed(), "{lines}");
    for c in &report.checks {
        let want = if c.name == "setup-forbidden" {
            Verdict::Skip
        } else {
            Verdict::Pass
        };
        assert_eq!(c.verdict, want, "{}", c.line());
    }
    // Published DND, visible in presence, then restored.
    let p = sim.published(ALICE);
    assert_eq!(p.len(), 2, "{p:?}");
    assert_eq!(p[0]["type"], "publish");
    assert_eq!(p[0]["availability"], 9500);
    assert_eq!(p[1]["type"], "restore");
    assert!(sim.hub_publication(ALICE).is_none());
    assert_eq!(
        sim.presence(ALICE)["availability"],
        6500,
        "the user's own state is back"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kit_catches_each_broken_mode() {
    let cases = [
        (Fault::WrongFieldTypes, "presence-valid"),
        (Fault::NoHeartbeatAnswers, "heartbeat-answer"),
        (Fault::WrongVersionPick, "hello"),
        (Fault::OutOfOrderSeq, "presence-seq"),
        (Fault::MissingWatchResults, "watch-results"),
        (Fault::BadProof, "auth-proof"),
    ];
    let runs = cases.iter().map(|(fault, check)| async move {
        let sim = sim(Some(*fault)).await;
        let report = run(&kit(&sim, sim.trusted_application_endpoint())).await;
        (*fault, *check, report)
    });
    for (fault, check, report) in futures::future::join_all(runs).await {
        let lines = print(&report);
        println!("--- {fault:?}\n{lines}");
        let c = report.get(check).expect("the check ran");
        assert_eq!(
            c.verdict,
            Verdict::Fail,
            "{fault:?} must fail {check}:\n{lines}"
        );
        assert!(!report.passed());
    }
}

// ------------------------------------------------------------ raw client

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>;

async fn upgrade(sim: &UcmaSim, bearer: &str) -> Result<Ws, tokio_tungstenite::tungstenite::Error> {
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls::pki_types::pem::PemObject::pem_slice_iter(sim.ca_pem().as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", sim.port()))
        .await
        .unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(cfg))
        .connect("localhost".try_into().unwrap(), tcp)
        .await
        .unwrap();
    let mut req = sim.url().into_client_request().unwrap();
    req.headers_mut()
        .insert("Authorization", format!("Bearer {bearer}").parse().unwrap());
    tokio_tungstenite::client_async(req, tls)
        .await
        .map(|(ws, _)| ws)
}

struct Raw {
    ws: Ws,
    n: u64,
}

impl Raw {
    /// Connect, hello, check the welcome's proof.
    async fn open(sim: &UcmaSim) -> Raw {
        let ws = upgrade(sim, &hub_credential(&sim.token())).await.unwrap();
        let mut r = Raw { ws, n: 0 };
        let nonce = protocol::nonce();
        r.send(json!({"v": 1, "type": "hello", "versions": [1], "nonce": nonce, "heartbeat_ms": 60000}))
            .await;
        let w = r.recv().await;
        assert_eq!(w["type"], "welcome");
        let want = protocol::proof(&sim.token(), &nonce, w["nonce"].as_str().unwrap(), 1);
        assert_eq!(w["proof"], json!(want));
        r
    }

    async fn send(&mut self, v: Value) {
        self.ws.send(Message::text(v.to_string())).await.unwrap();
    }

    /// The next message (pings answered), within 5 s.
    async fn recv(&mut self) -> Value {
        loop {
            let f = tokio::time::timeout(Duration::from_secs(5), self.ws.next())
                .await
                .expect("a message within 5 s")
                .expect("connection open")
                .expect("a frame");
            if let Message::Text(t) = f {
                let v: Value = serde_json::from_str(t.as_str()).unwrap();
                if v["type"] == "ping" {
                    self.send(json!({"v": 1, "type": "pong", "request_id": v["request_id"]}))
                        .await;
                    continue;
                }
                return v;
            }
            if let Message::Close(c) = f {
                panic!("closed: {c:?}");
            }
        }
    }

    async fn request(&mut self, mut msg: Value) -> Value {
        self.n += 1;
        let rid = format!("r-{}", self.n);
        msg["v"] = json!(1);
        msg["request_id"] = json!(rid);
        self.send(msg).await;
        loop {
            let m = self.recv().await;
            if m["request_id"] == json!(rid) {
                return m;
            }
        }
    }

    async fn setup(&mut self, endpoint: Value) -> Value {
        self.request(json!({"type": "setup", "endpoint": endpoint}))
            .await
    }

    /// The close code, within 5 s.
    async fn close_code(&mut self) -> u16 {
        loop {
            match tokio::time::timeout(Duration::from_secs(5), self.ws.next())
                .await
                .unwrap()
            {
                Some(Ok(Message::Close(Some(c)))) => return c.code.into(),
                Some(Ok(_)) => continue,
                other => panic!("no close frame: {other:?}"),
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulator_setup_failures_match_the_seeds_statuses() {
    let sim = sim(None).await;
    let mut c = Raw::open(&sim).await;
    let code = |m: &Value| {
        (
            m["outcome"].as_str().unwrap().to_string(),
            m["code"].as_str().map(str::to_string),
        )
    };

    sim.set_pool_reachable(false);
    let m = c.setup(sim.user_endpoint(false)).await;
    assert_eq!(
        code(&m),
        ("failed".into(), Some("connection-error".into())),
        "{m}"
    );
    assert_eq!(m["retryable"], true);
    sim.set_pool_reachable(true);

    sim.set_certificate_ok(false);
    let m = c.setup(sim.user_endpoint(true)).await;
    assert_eq!(code(&m).1.as_deref(), Some("certificate-error"), "{m}");
    let m = c.setup(sim.trusted_application_endpoint()).await;
    assert_eq!(code(&m).1.as_deref(), Some("certificate-error"), "{m}");
    // Without TLS the certificate does not matter.
    sim.set_certificate_ok(true);

    let mut ep = sim.user_endpoint(false);
    ep["password"] = json!("wrong");
    let m = c.setup(ep).await;
    assert_eq!(code(&m).1.as_deref(), Some("forbidden"), "{m}");
    assert_eq!(m["sip_response_code"], 401);
    assert!(
        !m["detail"].as_str().unwrap().contains("wrong"),
        "no password in the detail"
    );

    let mut ep = sim.trusted_application_endpoint();
    ep["certificate_friendly_name"] = json!("NotThere");
    let m = c.setup(ep).await;
    assert_eq!(code(&m).1.as_deref(), Some("certificate-error"), "{m}");
    let mut ep = sim.trusted_application_endpoint();
    ep["application_gruu"] = json!("sip:other@sim.test;gruu;opaque=srvr:x");
    let m = c.setup(ep).await;
    assert_eq!(code(&m).1.as_deref(), Some("forbidden"), "{m}");
    let mut ep = sim.trusted_application_endpoint();
    ep["application_port"] = json!(14002);
    let m = c.setup(ep).await;
    assert_eq!(code(&m).1.as_deref(), Some("invalid-setup"), "{m}");

    sim.set_credentials("other", "sip:other@sim.test", "pw2", "SIM");
    let m = c.setup(sim.user_endpoint(false)).await;
    assert_eq!(m["outcome"], "established", "{m}");
    assert_eq!(m["endpoint_uri"], "sip:other@sim.test");
    assert_eq!(m["publish"], "self");
    let m = c.setup(sim.user_endpoint(false)).await;
    assert_eq!(m["code"], "invalid-state", "a second set-up: {m}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulator_pushes_fails_over_refuses_and_publishes() {
    let sim = sim(None).await;
    let mut c = Raw::open(&sim).await;
    assert_eq!(
        c.setup(sim.trusted_application_endpoint()).await["outcome"],
        "established"
    );
    let m = c
        .request(json!({"type": "watch", "targets": [ALICE, BOB, "sip:ghost@sim.test"]}))
        .await;
    let st: Vec<_> = m["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].clone())
        .collect();
    assert_eq!(st, [json!("active"), json!("active"), json!("not-found")]);
    let a = c.recv().await;
    assert_eq!(
        (a["target"].clone(), a["seq"].clone(), a["initial"].clone()),
        (json!(ALICE), json!(1), json!(true))
    );
    assert_eq!(a["availability"], 6500);
    assert_eq!(a["band"], "busy");
    assert_eq!(
        a["activity"],
        json!({"token": "on-the-phone", "custom": null})
    );
    assert_eq!(a["device"]["phone"], "in-a-call");
    let b = c.recv().await;
    assert_eq!(b["activity"], json!({"token": null, "custom": "Lunch"}));
    assert_eq!(b["band"], "away");
    assert_eq!(sim.watched().len(), 2);

    // A change is pushed with the next seq.
    sim.set_presence(ALICE, 9500, Some("urgent-interruptions-only"), None);
    let a = c.recv().await;
    assert_eq!(
        (
            a["seq"].clone(),
            a["availability"].clone(),
            a["initial"].clone()
        ),
        (json!(2), json!(9500), json!(false))
    );

    // Failover: lost, back, initial pushes continuing the seq.
    sim.fail_over();
    let l = c.recv().await;
    assert_eq!(
        (l["type"].clone(), l["state"].clone()),
        (json!("endpoint-state"), json!("lost"))
    );
    let e = c.recv().await;
    assert_eq!(e["state"], "established");
    let a = c.recv().await;
    assert_eq!(
        (a["seq"].clone(), a["initial"].clone()),
        (json!(3), json!(true))
    );
    let _b = c.recv().await;

    // Pool unreachable: writes fail retryably until it is back.
    sim.set_pool_reachable(false);
    assert_eq!(c.recv().await["state"], "lost");
    let p = c
        .request(json!({"type": "publish", "target": ALICE, "availability": 9500}))
        .await;
    assert_eq!(
        (
            p["outcome"].clone(),
            p["code"].clone(),
            p["retryable"].clone()
        ),
        (json!("failed"), json!("endpoint-lost"), json!(true))
    );
    sim.set_pool_reachable(true);
    assert_eq!(c.recv().await["state"], "established");
    c.recv().await;
    c.recv().await;

    // Refusal after the fact.
    sim.refuse_subscription(BOB);
    let t = c.recv().await;
    assert_eq!(
        (t["type"].clone(), t["status"].clone()),
        (json!("target-state"), json!("refused"))
    );

    // Publish permission per user.
    sim.set_publish_allowed(BOB, false);
    let p = c
        .request(json!({"type": "publish", "target": BOB, "availability": 9500}))
        .await;
    assert_eq!(
        (p["outcome"].clone(), p["code"].clone()),
        (json!("failed"), json!("forbidden"))
    );

    // DND written, pushed, restored.
    sim.set_presence(ALICE, 3500, None, Some("desk"));
    c.recv().await;
    let p = c
        .request(json!({"type": "publish", "target": ALICE, "availability": 9500, "activity": null, "note": "In a Teams call"}))
        .await;
    assert_eq!(p["outcome"], "applied");
    let a = c.recv().await;
    assert_eq!(
        (a["availability"].clone(), a["note"].clone()),
        (json!(9500), json!("In a Teams call"))
    );
    let r = c.request(json!({"type": "restore", "target": ALICE})).await;
    assert_eq!(
        (r["op"].clone(), r["outcome"].clone()),
        (json!("restore"), json!("applied"))
    );
    let a = c.recv().await;
    assert_eq!(
        (a["availability"].clone(), a["note"].clone()),
        (json!(3500), json!("desk"))
    );
    assert_eq!(sim.published(ALICE).len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulator_restarts_forgets_and_polices_the_schema() {
    let sim = sim(None).await;
    // A wrong bearer never gets a WebSocket.
    match upgrade(&sim, &hub_credential("nope")).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status(), 401),
        other => panic!("expected HTTP 401, got {:?}", other.map(|_| ())),
    }
    assert_eq!(sim.auth_rejections(), 1);

    let mut c = Raw::open(&sim).await;
    c.setup(sim.user_endpoint(false)).await;
    c.request(json!({"type": "watch", "targets": [ALICE]}))
        .await;
    assert_eq!(c.recv().await["seq"], 1);
    sim.set_presence(ALICE, 3500, None, None);
    assert_eq!(c.recv().await["seq"], 2);

    sim.restart().await;
    let bye = c.recv().await;
    assert_eq!(
        (bye["type"].clone(), bye["reason"].clone()),
        (json!("bye"), json!("bridge-restarting"))
    );
    assert_eq!(c.close_code().await, 1012);

    // Same port, nothing remembered: presence only after a new watch, seq 1.
    let mut c = Raw::open(&sim).await;
    assert!(sim.watched().is_empty());
    let m = c
        .request(json!({"type": "watch", "targets": [ALICE]}))
        .await;
    assert_eq!(m["code"], "invalid-state", "watch before set-up: {m}");
    c.setup(sim.user_endpoint(false)).await;
    c.request(json!({"type": "watch", "targets": [ALICE]}))
        .await;
    let a = c.recv().await;
    assert_eq!(
        (a["seq"].clone(), a["initial"].clone()),
        (json!(1), json!(true))
    );
    assert_eq!(sim.connects(), 2);

    // A hub message that breaks the schema: answered, recorded, taken.
    c.send(
        json!({"v": 1, "type": "watch", "request_id": "bad-1", "targets": "sip:alice@sim.test"}),
    )
    .await;
    let e = c.recv().await;
    assert_eq!(
        (
            e["code"].clone(),
            e["request_id"].clone(),
            e["fatal"].clone()
        ),
        (json!("bad-message"), json!("bad-1"), json!(false))
    );
    let v = sim.take_schema_violations();
    assert!(v.iter().any(|x| x.contains("watch")), "{v:?}");
    assert!(sim.messages().iter().any(|m| m["request_id"] == "bad-1"));

    // Unknown versions only: refused with 4002.
    let mut ws = upgrade(&sim, &hub_credential(&sim.token())).await.unwrap();
    ws.send(Message::text(
        json!({"v": 1, "type": "hello", "versions": [7], "nonce": protocol::nonce(), "heartbeat_ms": 15000}).to_string(),
    ))
    .await
    .unwrap();
    let mut r = Raw { ws, n: 0 };
    assert_eq!(r.recv().await["code"], "version-unsupported");
    assert_eq!(r.close_code().await, 4002);
}

/// Serve a simulator for running the kit binary by hand:
/// `UCMA_SIM_SECS=120 cargo test -p hub-e2e --test ucma_bridge_kit -- --ignored --nocapture serve_simulator`
/// prints the command line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a tool, not a test: serves the simulator for a manual run of the kit binary"]
async fn serve_simulator() {
    let sim = sim(None).await;
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    let ep = dir.path().join("endpoint.json");
    std::fs::write(&ca, sim.ca_pem()).unwrap();
    std::fs::write(&ep, sim.trusted_application_endpoint().to_string()).unwrap();
    println!(
        "ucma-bridge-kit --url {} --token {} --ca {} --endpoint-config {} --target {ALICE} --target {BOB} --publish-target {ALICE}",
        sim.url(),
        sim.token(),
        ca.display(),
        ep.display()
    );
    let secs = std::env::var("UCMA_SIM_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    tokio::time::sleep(Duration::from_secs(secs)).await;
}
