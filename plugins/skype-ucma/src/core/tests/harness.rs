//! A scripted bridge around the core: it answers as PROTOCOL.md says and
//! collects what the core asks of the host.

use presence_connector_sdk::{
    CloseInfo, Config, ConfigEntry, ConfigValue, ConnectorStatus, EndpointState, PresenceUpdate,
    WriteId, WriteOutcome,
};
use serde_json::{Value, json};

use crate::core::{Action, Core};
use crate::settings::Settings;
use crate::wire;
use presence_connector_sdk::plain::Core as _;

/// A connect: number, URL, upgrade headers.
pub type Connect = (u64, String, Vec<(String, String)>);

pub const TOKEN: &str = "correct horse battery staple 0123456789";

pub const USER: &[(&str, &str)] = &[
    ("bridge_url", "wss://bridge.example.com:9443/"),
    ("bridge_token", TOKEN),
    ("endpoint_type", "user-endpoint-with-tls"),
    ("server_fqdn", "sfb-pool.contoso.com"),
    ("user_name", "imagicle.presence"),
    ("sip_uri", "imagicle.presence@contoso.com"),
    ("password", "s3cret!"),
    ("domain", "CONTOSO"),
];

pub const TRUSTED: &[(&str, &str)] = &[
    ("bridge_url", "wss://bridge.example.com:9443/"),
    ("bridge_token", TOKEN),
    ("endpoint_type", "trusted-application-endpoint"),
    ("server_fqdn", "sfb-pool.contoso.com"),
    ("application_contact_uri", "sip:presence-app@contoso.com"),
    (
        "application_gruu",
        "sip:hubapp.contoso.com@contoso.com;gruu;opaque=srvr:presencehub:atifA",
    ),
    ("certificate_name", "OCSConnector"),
    ("application_host", "hubapp.contoso.com"),
    ("application_port", "14001"),
];

pub fn settings(pairs: &[(&str, &str)]) -> Settings {
    let entries = pairs
        .iter()
        .map(|(k, v)| ConfigEntry {
            name: (*k).into(),
            value: match v.parse::<i64>() {
                Ok(n) if k.ends_with("port") || k.ends_with("size") => ConfigValue::Integer(n),
                _ => ConfigValue::Text((*v).into()),
            },
        })
        .collect();
    Settings::from_config(&Config::new(entries)).expect("valid settings")
}

pub fn with(
    base: &[(&'static str, &'static str)],
    key: &'static str,
    value: &'static str,
) -> Vec<(&'static str, &'static str)> {
    let mut v: Vec<(&str, &str)> = base.iter().copied().filter(|(k, _)| *k != key).collect();
    v.push((key, value));
    v
}

/// Deterministic "random" bytes.
fn entropy() -> crate::core::Entropy {
    let mut n = 0u8;
    Box::new(move |len| {
        (0..len)
            .map(|_| {
                n = n.wrapping_add(73);
                n
            })
            .collect()
    })
}

pub struct H {
    pub core: Core,
    pub now: u64,
    pub out: Vec<Action>,
    pub conn: u64,
    pub hub_nonce: String,
    /// The wake-up asked for last (absolute).
    pub wake: Option<u64>,
    /// The connect `start` asked for.
    pub first_connect: Vec<Connect>,
}

impl H {
    pub fn new(pairs: &[(&str, &str)]) -> H {
        H::with_held(pairs, vec![])
    }

    pub fn with_held(pairs: &[(&str, &str)], held: Vec<(String, Vec<u8>)>) -> H {
        let mut h = H {
            core: Core::new(settings(pairs), held, entropy()),
            now: 1_700_000_000_000,
            out: Vec::new(),
            conn: 0,
            hub_nonce: String::new(),
            wake: None,
            first_connect: vec![],
        };
        h.core.start(h.now);
        h.collect();
        h.first_connect = h.connects();
        h
    }

    /// Take the core's actions into `out`, following connects and wakes.
    pub fn collect(&mut self) {
        for a in self.core.take_actions() {
            match &a {
                Action::Connect { conn, .. } => self.conn = *conn,
                Action::Wake(ms) => self.wake = Some(self.now + ms),
                _ => {}
            }
            self.out.push(a);
        }
    }

    /// Messages sent to the bridge since the last call, as JSON.
    #[allow(dead_code)]
    pub fn sent(&mut self) -> Vec<Value> {
        let mut v = Vec::new();
        self.out.retain(|a| match a {
            Action::Send(_, text) => {
                v.push(serde_json::from_str(text).expect("JSON"));
                false
            }
            _ => true,
        });
        v
    }

    /// Sent messages of one type.
    pub fn sent_of(&mut self, kind: &str) -> Vec<Value> {
        let mut v = Vec::new();
        self.out.retain(|a| match a {
            Action::Send(_, text) => {
                let m: Value = serde_json::from_str(text).expect("JSON");
                if m["type"] == kind {
                    v.push(m);
                    false
                } else {
                    true
                }
            }
            _ => true,
        });
        v
    }

    pub fn take<T>(&mut self, f: impl Fn(&Action) -> Option<T>) -> Vec<T> {
        let mut v = Vec::new();
        self.out.retain(|a| match f(a) {
            Some(t) => {
                v.push(t);
                false
            }
            None => true,
        });
        v
    }

    pub fn updates(&mut self) -> Vec<PresenceUpdate> {
        self.take(|a| match a {
            Action::Presence(u) => Some((**u).clone()),
            _ => None,
        })
    }

    pub fn states(&mut self) -> Vec<(String, EndpointState, Option<String>)> {
        self.take(|a| match a {
            Action::EndpointState(e, s, d) => Some((e.clone(), *s, d.clone())),
            _ => None,
        })
    }

    pub fn outcomes(&mut self) -> Vec<(WriteId, WriteOutcome)> {
        self.take(|a| match a {
            Action::WriteOutcome(id, o) => Some((*id, o.clone())),
            _ => None,
        })
    }

    pub fn statuses(&mut self) -> Vec<(ConnectorStatus, String)> {
        self.take(|a| match a {
            Action::Status(s, d) => Some((*s, d.clone().unwrap_or_default())),
            _ => None,
        })
    }

    /// The last status reported (and everything else reported dropped).
    pub fn status(&mut self) -> (ConnectorStatus, String) {
        self.statuses().pop().expect("a status")
    }

    pub fn closes(&mut self) -> Vec<(u64, u16)> {
        self.take(|a| match a {
            Action::Close(c, code, _) => Some((*c, *code)),
            _ => None,
        })
    }

    pub fn connects(&mut self) -> Vec<Connect> {
        self.take(|a| match a {
            Action::Connect { conn, url, headers } => Some((*conn, url.clone(), headers.clone())),
            _ => None,
        })
    }

    pub fn kv(&mut self) -> Vec<(String, Option<Vec<u8>>)> {
        self.take(|a| match a {
            Action::KvSet(k, v) => Some((k.clone(), Some(v.clone()))),
            Action::KvDelete(k) => Some((k.clone(), None)),
            _ => None,
        })
    }

    // ---- the bridge's side -------------------------------------------

    pub fn open(&mut self) -> Value {
        self.core.on_ws_open(self.conn, self.now);
        self.collect();
        let hello = self.sent_of("hello").pop().expect("hello");
        self.hub_nonce = hello["nonce"].as_str().unwrap().to_string();
        hello
    }

    pub fn bridge(&mut self, msg: Value) {
        self.core.on_ws_text(self.conn, &msg.to_string(), self.now);
        self.collect();
    }

    pub fn bridge_text(&mut self, text: &str) {
        self.core.on_ws_text(self.conn, text, self.now);
        self.collect();
    }

    pub fn welcome_with(&mut self, token: &str, max_batch: usize) {
        let nonce = "b".repeat(64);
        let proof = wire::proof(token, &self.hub_nonce, &nonce, 1);
        self.bridge(json!({"v": 1, "type": "welcome", "version": 1, "nonce": nonce, "proof": proof, "bridge": "Sim.UcmaBridge/1.0 (UCMA 6.0)", "max_batch": max_batch}));
    }

    pub fn welcome(&mut self) {
        self.welcome_with(TOKEN, 500);
    }

    /// The `setup` the core sent; answered `established`.
    pub fn establish(&mut self, publish: &str) -> Value {
        let setup = self.sent_of("setup").pop().expect("setup");
        let uri = match setup["endpoint"]["kind"].as_str() {
            Some("user") => setup["endpoint"]["sip_uri"].clone(),
            _ => setup["endpoint"]["application_contact_uri"].clone(),
        };
        self.bridge(json!({"v": 1, "type": "setup-result", "request_id": setup["request_id"], "outcome": "established", "endpoint_uri": uri, "publish": publish}));
        setup
    }

    /// Open, welcome, established.
    pub fn up(&mut self, publish: &str) -> Value {
        self.open();
        self.welcome();
        self.establish(publish)
    }

    /// Answer a `watch` with `active` (persistent) for every target.
    pub fn answer_watch(&mut self, w: &Value) {
        let results: Vec<Value> = w["targets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| json!({"target": t, "status": "active", "mode": "persistent"}))
            .collect();
        self.bridge(json!({"v": 1, "type": "watch-result", "request_id": w["request_id"], "results": results}));
    }

    /// Watch these endpoints and answer every `watch` active.
    pub fn watch_active(&mut self, eps: &[&str]) {
        let eps: Vec<String> = eps.iter().map(|s| s.to_string()).collect();
        self.core.watch(&eps, self.now);
        self.collect();
        for w in self.sent_of("watch") {
            self.answer_watch(&w);
        }
    }

    pub fn presence(&mut self, target: &str, seq: u64, availability: i64, token: Option<&str>) {
        let band = crate::mapping::Band::of(availability).name();
        let activity = match token {
            Some(t) => json!({"token": t, "custom": null}),
            None => Value::Null,
        };
        self.bridge(json!({"v": 1, "type": "presence", "target": target, "seq": seq, "ts": "2024-05-06T09:12:33.1234567Z", "initial": seq == 1, "availability": availability, "band": band, "activity": activity, "note": null, "device": null}));
    }

    pub fn close(&mut self, code: Option<u16>, failure: Option<presence_connector_sdk::Failure>) {
        let close = CloseInfo {
            code,
            reason: String::new(),
            failure,
        };
        self.core.on_ws_closed(self.conn, &close, self.now);
        self.collect();
    }

    /// Let time pass to `at` (absolute) and wake the core.
    pub fn at(&mut self, at: u64) {
        self.now = at;
        self.core.on_timer((), self.now);
        self.collect();
    }

    pub fn advance(&mut self, ms: u64) {
        let at = self.now + ms;
        self.at(at);
    }

    /// Wake at each wake-up asked for until `ms` passed.
    pub fn run_for(&mut self, ms: u64) {
        let end = self.now + ms;
        while let Some(w) = self.wake.filter(|w| *w <= end) {
            self.wake = None;
            self.at(w.max(self.now));
        }
        self.at(end);
    }
}

impl H {
    /// Like [`run_for`](Self::run_for), the bridge answering each ping.
    pub fn run_answering(&mut self, ms: u64) -> usize {
        let end = self.now + ms;
        let mut pings = 0;
        loop {
            for p in self.sent_of("ping") {
                pings += 1;
                self.bridge(json!({"v": 1, "type": "pong", "request_id": p["request_id"]}));
            }
            match self.wake.filter(|w| *w <= end) {
                Some(w) => {
                    self.wake = None;
                    self.at(w.max(self.now));
                }
                None => break,
            }
        }
        self.at(end);
        pings
    }
}
