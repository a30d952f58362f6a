//! Demo mode: a simulated presence source, so a newcomer sees merged
//! presence change live without owning a PBX.
//!
//! It creates (once) demo users and two `http-push` connector instances, one
//! for telephony and one for rich presence, and then pushes signed random
//! changes to the hub's own webhooks, as a CTI bridge and a presence script
//! would. Nothing here bypasses the connectors: it uses the same path as any
//! outside system.

use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, Mac};
use rand::Rng;
use serde_json::{Value, json};
use sha2::Sha256;

use crate::engine::merge::Rules;
use crate::engine::users::User;
use crate::presence::Presence;
use crate::runtime::{NewConnector, Runtime};

/// Not a secret worth keeping: the demo's webhooks are on loopback.
const DEMO_SECRET: &str = "demo-shared-secret-0123456789";
const USERS: &[(&str, &str, &str)] = &[
    ("ada", "Ada Lovelace", "Engineering"),
    ("grace", "Grace Hopper", "Engineering"),
    ("alan", "Alan Turing", "Research"),
    ("edsger", "Edsger Dijkstra", "Research"),
    ("barbara", "Barbara Liskov", "Sales"),
    ("ken", "Ken Thompson", "Support"),
];

/// Set up the demo (idempotent) and start pushing changes to `base_url`.
pub async fn start(
    presence: Arc<Presence>,
    runtime: Arc<Runtime>,
    base_url: String,
) -> anyhow::Result<()> {
    for (i, (name, display, dept)) in USERS.iter().enumerate() {
        if presence.user(name).is_none() {
            presence.put_user(
                User {
                    username: name.to_string(),
                    display_name: display.to_string(),
                    department: Some(dept.to_string()),
                    email: Some(format!("{name}@demo.example")),
                    extension: Some(format!("{}", 9001 + i)),
                    voicemail_number: Some("9999".into()),
                    ..User::default()
                },
                true,
            )?;
        }
    }
    let mut rules: Rules = presence.rules();
    rules
        .instance_fields
        .insert("demo-tapi".into(), "extension".into());
    rules
        .instance_fields
        .insert("demo-rich".into(), "username".into());
    rules.voicemail_pilot.get_or_insert_with(|| "9999".into());
    presence.set_rules(rules)?;
    let existing: Vec<String> = runtime
        .connectors()
        .await
        .into_iter()
        .map(|c| c.id)
        .collect();
    for id in ["demo-tapi", "demo-rich"] {
        if !existing.iter().any(|e| e == id) {
            let mut config = serde_json::Map::new();
            config.insert("shared_secret".into(), DEMO_SECRET.into());
            runtime
                .create_connector(NewConnector {
                    id: id.into(),
                    plugin: "http-push".into(),
                    config,
                    enabled: true,
                    tls_ca_pem: None,
                    watches: vec![],
                })
                .await
                .map_err(|e| {
                    anyhow::anyhow!("demo needs the http-push plugin (cargo xtask plugins): {e}")
                })?;
        }
    }
    presence.connectors_changed();
    tokio::spawn(simulate(base_url));
    tracing::info!(
        "demo mode: pushing simulated presence for {} users every second",
        USERS.len()
    );
    Ok(())
}

fn random_change(rng: &mut impl Rng) -> (&'static str, Value) {
    let i = rng.random_range(0..USERS.len());
    let (name, _, _) = USERS[i];
    if rng.random_bool(0.5) {
        let line = ["idle", "idle", "ringing", "in-call", "on-hold"][rng.random_range(0..5)];
        let mut t = json!({"line": line, "dnd": rng.random_bool(0.1)});
        if rng.random_bool(0.15) {
            t["forward"] = if rng.random_bool(0.5) {
                json!({"number": "9999"})
            } else {
                json!({"number": "+4930123456"})
            };
        }
        (
            "demo-tapi",
            json!({"endpoint": format!("{}", 9001 + i), "telephony": t}),
        )
    } else {
        let (a, act, note) = [
            ("available", None, None),
            ("busy", Some("in-a-meeting"), Some("Weekly planning")),
            ("away", Some("be-right-back"), Some("Coffee")),
            ("do-not-disturb", Some("presenting"), None),
            ("offline", Some("off-work"), None),
        ][rng.random_range(0..5)];
        let mut r = json!({"availability": a});
        if let Some(act) = act {
            r["activity"] = act.into();
        }
        if let Some(n) = note {
            r["note"] = n.into();
        }
        ("demo-rich", json!({"endpoint": name, "rich": r}))
    }
}

async fn simulate(base_url: String) {
    let http = reqwest::Client::new();
    let mut seq = 0u64;
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let (instance, mut body) = {
            let mut rng = rand::rng();
            random_change(&mut rng)
        };
        seq += 1;
        body["sequence"] = seq.into();
        let bytes = serde_json::to_vec(&body).expect("json");
        let ts = crate::store::now_ms() / 1000;
        let mut mac =
            Hmac::<Sha256>::new_from_slice(DEMO_SECRET.as_bytes()).expect("any key length");
        mac.update(format!("{ts}.").as_bytes());
        mac.update(&bytes);
        let sig = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
        let r = http
            .post(format!("{base_url}/hooks/{instance}/presence"))
            .header("X-Hub-Timestamp", ts.to_string())
            .header("X-Hub-Signature", sig)
            .header("content-type", "application/json")
            .body(bytes)
            .send()
            .await;
        if let Err(e) = r {
            tracing::warn!(error = %e, "demo push failed");
        }
    }
}
