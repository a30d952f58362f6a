//! The pieces of the UCMA bridge protocol both sides compute the same way
//! (`docs/ucma-bridge/PROTOCOL.md`): the bearer credential and the bridge's
//! proof (section 1), availability bands (section 6), and the JSON Schema of
//! every message (`docs/ucma-bridge/schema/messages.schema.json`, compiled
//! into this crate). The bridge simulator in `tests/src/ucma_sim.rs` uses the
//! same functions, so the kit and the simulator cannot drift apart silently.

use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

/// The protocol version this crate speaks.
pub const VERSION: u64 = 1;

/// The JSON Schema (draft 2020-12) of every message, as published in the
/// repository.
pub const SCHEMA_JSON: &str = include_str!("../../../docs/ucma-bridge/schema/messages.schema.json");

/// Instance id of the hub-owned `state`/`note` category instances a bridge
/// publishes at (section 7): 0x48554221, "HUB!".
pub const HUB_INSTANCE_ID: u64 = 0x4855_4221;

/// Largest message either side accepts, in bytes (section 1; close 1009).
pub const MAX_MESSAGE_BYTES: usize = 1 << 20;

/// Close codes (section 9).
pub mod close {
    /// The welcome's proof is missing or wrong (sent by the hub).
    pub const AUTH_FAILED: u16 = 4001;
    /// No common version (sent by the bridge).
    pub const VERSION_UNSUPPORTED: u16 = 4002;
    /// Protocol error: not JSON, wrong `v`, a message out of order.
    pub const PROTOCOL_ERROR: u16 = 4003;
    /// No pong within `heartbeat_ms`, or silence for 3 × `heartbeat_ms`.
    pub const HEARTBEAT_TIMEOUT: u16 = 4004;
    /// No hello within 10 s of the upgrade (sent by the bridge).
    pub const HELLO_TIMEOUT: u16 = 4005;
    /// WebSocket "service restart": the bridge is restarting.
    pub const SERVICE_RESTART: u16 = 1012;
}

fn hmac_hex(token: &str, data: &str) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(token.as_bytes()).expect("HMAC takes any key length");
    mac.update(data.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// The value the hub sends as `Authorization: Bearer <value>` on the upgrade:
/// lower-case hex of HMAC-SHA256(key = token, data = "ucma-bridge-hub"),
/// 64 characters. The token itself never goes on the wire.
pub fn hub_credential(token: &str) -> String {
    hmac_hex(token, "ucma-bridge-hub")
}

/// The bridge's `welcome.proof`: lower-case hex of
/// HMAC-SHA256(key = token, data = "ucma-bridge-proof|" + hub_nonce + "|" +
/// bridge_nonce + "|" + version), 64 characters.
pub fn proof(token: &str, hub_nonce: &str, bridge_nonce: &str, version: u64) -> String {
    hmac_hex(
        token,
        &format!("ucma-bridge-proof|{hub_nonce}|{bridge_nonce}|{version}"),
    )
}

/// A fresh nonce: 32 bytes from the operating system's generator as 64
/// lower-case hex digits.
///
/// # Panics
/// If the operating system has no random source.
pub fn nonce() -> String {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).expect("the OS random generator");
    hex::encode(b)
}

/// The band an availability number falls in (section 6), or `None` outside
/// −1…18999. −1 is `unknown`; 0–4499 `available` (the Lync 2010/2013 state
/// docs; OCS 2007 started the band at 3000), then the UCMA
/// `PresenceAvailability` lower bounds 4500, 6000, 7500, 9000, 12000, 15000,
/// 18000.
pub fn band(availability: i64) -> Option<&'static str> {
    Some(match availability {
        -1 => "unknown",
        0..=4499 => "available",
        4500..=5999 => "available-idle",
        6000..=7499 => "busy",
        7500..=8999 => "busy-idle",
        9000..=11999 => "do-not-disturb",
        12000..=14999 => "be-right-back",
        15000..=17999 => "away",
        18000..=18999 => "offline",
        _ => return None,
    })
}

/// Who sent a message: selects `$defs/hub_message` or `$defs/bridge_message`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Hub to bridge.
    Hub,
    /// Bridge to hub.
    Bridge,
}

/// The compiled schema, one validator per direction.
pub struct Schema {
    hub: jsonschema::Validator,
    bridge: jsonschema::Validator,
}

impl Default for Schema {
    fn default() -> Self {
        Self::new()
    }
}

impl Schema {
    /// Compile [`SCHEMA_JSON`] for both directions.
    ///
    /// # Panics
    /// If the published schema does not compile (a bug in the repository,
    /// caught by this crate's tests).
    pub fn new() -> Schema {
        let doc: Value = serde_json::from_str(SCHEMA_JSON).expect("the schema is JSON");
        // A root that points at one direction's definition; `$defs` stays
        // as published so every internal `$ref` resolves unchanged.
        let root = |def: &str| {
            json!({
                "$schema": doc["$schema"],
                "$ref": format!("#/$defs/{def}"),
                "$defs": doc["$defs"],
            })
        };
        let compile = |def: &str| {
            jsonschema::draft202012::new(&root(def))
                .unwrap_or_else(|e| panic!("schema $defs/{def} does not compile: {e}"))
        };
        Schema {
            hub: compile("hub_message"),
            bridge: compile("bridge_message"),
        }
    }

    /// Validate one message. Errors: one line per violation, "<path>: <what>".
    pub fn check(&self, dir: Direction, msg: &Value) -> Result<(), Vec<String>> {
        let v = match dir {
            Direction::Hub => &self.hub,
            Direction::Bridge => &self.bridge,
        };
        let errors: Vec<String> = v
            .iter_errors(msg)
            .map(|e| {
                let path = e.instance_path().to_string();
                format!("{}: {e}", if path.is_empty() { "/" } else { &path })
            })
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    /// Parse a text frame and validate it. Errors as [`Schema::check`]; a
    /// frame that is not JSON gives one line saying so.
    pub fn check_text(
        &self,
        dir: Direction,
        text: &str,
    ) -> Result<Value, (Option<Value>, Vec<String>)> {
        let msg: Value =
            serde_json::from_str(text).map_err(|e| (None, vec![format!("not JSON: {e}")]))?;
        match self.check(dir, &msg) {
            Ok(()) => Ok(msg),
            Err(errs) => Err((Some(msg), errs)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proof_vector() {
        // The test vectors printed in PROTOCOL.md section 1.
        let token = "correct horse battery staple 0123456789";
        assert_eq!(
            hub_credential(token),
            "3a45525d381fad8480771c6a3749236bbaf35aa3cbbeebf67c62b5ed15f0f657"
        );
        assert_eq!(
            proof(token, &"a".repeat(64), &"b".repeat(64), 1),
            "315c0528f26d7b337323d3ebacc3189240b2415bb11a8e354e86e23b18aa0e71"
        );
    }

    #[test]
    fn bands() {
        assert_eq!(band(3500), Some("available"));
        assert_eq!(band(0), Some("available"));
        assert_eq!(band(5000), Some("available-idle"));
        assert_eq!(band(6900), Some("busy"));
        assert_eq!(band(7500), Some("busy-idle"));
        assert_eq!(band(9500), Some("do-not-disturb"));
        assert_eq!(band(12500), Some("be-right-back"));
        assert_eq!(band(15500), Some("away"));
        assert_eq!(band(18500), Some("offline"));
        assert_eq!(band(-1), Some("unknown"));
        assert_eq!(band(19000), None);
        assert_eq!(band(-2), None);
    }

    /// Every JSON example in PROTOCOL.md is valid for at least one direction,
    /// and the bridge-only / hub-only ones are refused in the other.
    #[test]
    fn protocol_examples_validate() {
        let doc = include_str!("../../../docs/ucma-bridge/PROTOCOL.md");
        let s = Schema::new();
        let mut n = 0;
        for block in doc.split("```json\n").skip(1) {
            let text = block.split("\n```").next().unwrap();
            let msg: Value = serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"));
            let hub = s.check(Direction::Hub, &msg).is_ok();
            let bridge = s.check(Direction::Bridge, &msg).is_ok();
            let both = ["ping", "pong", "error", "bye"].contains(&msg["type"].as_str().unwrap());
            assert!(hub || bridge, "invalid example: {text}");
            assert_eq!(hub && bridge, both, "direction of {text}");
            n += 1;
        }
        assert!(n >= 20, "{n} examples");
    }

    #[test]
    fn schema_catches_wrong_types_and_unknown_fields() {
        let s = Schema::new();
        let ok = json!({"v": 1, "type": "presence", "target": "sip:a@x.test", "seq": 1,
            "ts": "2024-05-06T09:12:33.1234567Z", "initial": true, "availability": 6500,
            "band": "busy", "activity": {"token": "on-the-phone", "custom": null},
            "note": null, "device": null});
        s.check(Direction::Bridge, &ok).unwrap();
        let mut bad = ok.clone();
        bad["availability"] = json!("6500");
        assert!(s.check(Direction::Bridge, &bad).is_err());
        let mut typo = ok.clone();
        typo["requestId"] = json!("x");
        assert!(s.check(Direction::Bridge, &typo).is_err());
        let mut ext = ok.clone();
        ext["x-debug"] = json!({"anything": 1});
        s.check(Direction::Bridge, &ext).unwrap();
        assert!(
            s.check(Direction::Hub, &ok).is_err(),
            "presence is not a hub message"
        );
        let hello = json!({"v": 1, "type": "hello", "versions": [1], "nonce": "a".repeat(64), "heartbeat_ms": 15000});
        s.check(Direction::Hub, &hello).unwrap();
        let setup_no_pw = json!({"v": 1, "type": "setup", "request_id": "s", "endpoint": {"kind": "user", "tls": false,
            "server_fqdn": "pool.x.test", "user_name": "u", "sip_uri": "sip:u@x.test", "domain": "X"}});
        assert!(s.check(Direction::Hub, &setup_no_pw).is_err());
        let trusted_no_gruu = json!({"v": 1, "type": "setup", "request_id": "s", "endpoint": {"kind": "trusted-application",
            "server_fqdn": "pool.x.test", "application_contact_uri": "sip:app@x.test", "certificate_friendly_name": "C",
            "application_host": "h.x.test", "application_port": 14001}});
        assert!(s.check(Direction::Hub, &trusted_no_gruu).is_err());
    }
}
