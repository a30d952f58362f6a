//! Engine tests: the core driven by hand-written answers, no host involved.

use presence_connector_sdk::{
    Config, ConfigEntry, ConfigValue, ConnectorStatus, EndpointState, PresenceUpdate, UpdateOrigin,
    WriteOutcome,
};
use serde_json::{Value, json};

use super::*;
use presence_connector_sdk::plain::Core as _;

mod auth;
mod fuzz;
mod push;
mod reads;
mod rules;
mod writes;

pub const T0: u64 = 1_767_264_900_000;
pub const SERVER: &str = "https://platform.ringcentral.com";
pub const HOOKS: &str = "https://hub.example.com/hooks/rc";

pub fn settings(extra: &[(&str, &str)]) -> Settings {
    settings_with_hooks(extra, Some(HOOKS))
}

pub fn settings_with_hooks(extra: &[(&str, &str)], hooks: Option<&str>) -> Settings {
    let mut entries = vec![
        ("client_id", "cid"),
        ("client_secret", "csecret"),
        ("jwt", "eyJ.jwt.credential"),
    ];
    entries.extend_from_slice(extra);
    let entries = entries
        .into_iter()
        .map(|(k, v)| ConfigEntry {
            name: k.into(),
            value: match v {
                "true" => ConfigValue::Boolean(true),
                "false" => ConfigValue::Boolean(false),
                v => ConfigValue::Text(v.into()),
            },
        })
        .collect();
    Settings::from_config(&Config::new(entries), hooks).unwrap()
}

/// Distinct, predictable "random" bytes.
pub fn entropy() -> Entropy {
    let mut n = 0u8;
    Box::new(move |len| {
        n = n.wrapping_add(1);
        vec![n; len as usize]
    })
}

pub fn resp(status: u16, body: Value) -> Result<Response, String> {
    Ok(Response {
        status,
        headers: vec![],
        body: if body.is_null() {
            Vec::new()
        } else {
            serde_json::to_vec(&body).unwrap()
        },
    })
}

pub fn resp_h(status: u16, headers: &[(&str, &str)], body: Value) -> Result<Response, String> {
    let mut r = resp(status, body).unwrap();
    r.headers = headers
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    Ok(r)
}

/// Three extensions: ids 62000001.. numbers 101..
pub fn directory_body() -> Value {
    json!({
        "records": [
            {"id": 62000001, "extensionNumber": "101", "name": "Alice Smith",
             "contact": {"email": "alice@example.com"}},
            {"id": 62000002, "extensionNumber": "102", "name": "Bob Jones",
             "contact": {"email": "bob@example.com"}},
            {"id": 62000003, "extensionNumber": "103", "name": "Carol White",
             "contact": {"email": "carol@example.com"}}
        ],
        "paging": {"page": 1, "totalPages": 1, "perPage": 1000},
        "navigation": {}
    })
}

pub fn presence_body(ext: &str, dnd: &str, telephony: &str) -> Value {
    json!({
        "uri": format!("{SERVER}/restapi/v1.0/account/~/extension/{ext}/presence"),
        "extension": {"id": ext.parse::<u64>().unwrap(), "extensionNumber": "101"},
        "presenceStatus": "Available", "userStatus": "Available",
        "dndStatus": dnd, "telephonyStatus": telephony, "meetingStatus": "Disconnected",
        "allowSeeMyPresence": true, "ringOnMonitoredCall": false, "pickUpCallsOnHold": false
    })
}

pub fn event(ext: &str, seq: u64, body: Value) -> Value {
    let mut b = body;
    b["extensionId"] = json!(ext);
    b["sequence"] = json!(seq);
    json!({
        "uuid": format!("uuid-{seq}"),
        "event": format!("/restapi/v1.0/account/~/extension/{ext}/presence?detailedTelephonyState=true&sipData=true"),
        "timestamp": "2026-01-01T10:55:00.000Z",
        "subscriptionId": "sub-1",
        "ownerId": "62000001",
        "body": b
    })
}

/// A core and a clock.
pub struct H {
    pub core: Core,
    pub now: u64,
    pub log: Vec<Action>,
    /// How far [`requests`](H::requests), [`sent_frames`](H::sent_frames)
    /// and [`ws_token`](H::ws_token) have looked into the log.
    pub cursors: [usize; 3],
    /// The WebSocket [`watch`](H::watch) brought up, if it did.
    pub conn: Option<u64>,
}

impl H {
    pub fn new(s: Settings, stored: Stored) -> H {
        let mut core = Core::new(s, stored, T0, entropy());
        core.start(T0);
        H {
            core,
            now: T0,
            log: Vec::new(),
            cursors: [0; 3],
            conn: None,
        }
    }

    pub fn take(&mut self) -> Vec<Action> {
        let a = self.core.take_actions();
        self.log.extend(a.iter().cloned());
        a
    }

    /// Actions not yet looked at by the helper `which`.
    fn unseen(&mut self, which: usize) -> Vec<Action> {
        self.take();
        let from = self.cursors[which];
        self.cursors[which] = self.log.len();
        self.log[from..].to_vec()
    }

    pub fn requests(&mut self) -> Vec<(ReqId, Request)> {
        self.unseen(0)
            .into_iter()
            .filter_map(|a| match a {
                Action::Http(id, r) => Some((id, r)),
                _ => None,
            })
            .collect()
    }

    pub fn answer(&mut self, id: ReqId, r: Result<Response, String>) {
        self.core.on_http(id, r, self.now);
    }

    pub fn timer(&mut self, key: TimerKey) {
        self.core.on_timer(key, self.now);
    }

    pub fn advance(&mut self, ms: u64) {
        self.now += ms;
    }

    /// Answer the token request among `reqs`.
    pub fn token(&mut self, reqs: &[(ReqId, Request)], life: u64, refresh: &str) {
        let (id, _) = reqs
            .iter()
            .find(|(_, r)| r.url.ends_with("/restapi/oauth/token"))
            .expect("a token request");
        let body = json!({"access_token": format!("at-{id}"), "token_type": "bearer",
            "expires_in": life, "refresh_token": refresh, "refresh_token_expires_in": 604_800,
            "scope": "ReadPresence EditPresence", "session_id": "s1"});
        self.answer(*id, resp(200, body));
    }

    pub fn find<'a>(
        reqs: &'a [(ReqId, Request)],
        method: &str,
        path: &str,
    ) -> Option<&'a (ReqId, Request)> {
        reqs.iter()
            .find(|(_, r)| r.method == method && r.url.starts_with(&format!("{SERVER}{path}")))
    }

    /// Signed in, directory read; returns the requests that followed.
    pub fn ready(&mut self) -> Vec<(ReqId, Request)> {
        let reqs = self.requests();
        self.token(&reqs, 3600, "rt-1");
        let reqs = self.requests();
        let (id, _) = H::find(&reqs, "GET", "/restapi/v1.0/account/~/extension?")
            .expect("directory")
            .clone();
        self.answer(id, resp(200, directory_body()));
        self.requests()
    }

    /// Watch `eps` and leave the WebSocket to the test; returns the
    /// requests that followed (no reads: they wait for the subscription).
    pub fn watch_only(&mut self, eps: &[&str]) -> Vec<(ReqId, Request)> {
        let eps: Vec<String> = eps.iter().map(|s| s.to_string()).collect();
        self.core.watch(&eps, self.now);
        self.requests()
    }

    /// Watch `eps`; reads wait until notifications flow, so a WebSocket
    /// the watch asks for is brought up (subscription `sub-1`) first.
    /// Returns every request that followed, the reads among them.
    pub fn watch(&mut self, eps: &[&str]) -> Vec<(ReqId, Request)> {
        let eps: Vec<String> = eps.iter().map(|s| s.to_string()).collect();
        self.core.watch(&eps, self.now);
        let mut reqs = self.requests();
        if self.conn.is_none() && H::find(&reqs, "POST", "/restapi/oauth/wstoken").is_some() {
            let conn = self.ws_live(&reqs);
            self.conn = Some(conn);
            reqs.extend(self.requests());
        }
        reqs
    }

    /// Answer the presence reads among `reqs` with these dnd statuses (by
    /// extension id; others TakeAllCalls).
    pub fn answer_reads(&mut self, reqs: &[(ReqId, Request)], telephony: &str) {
        for (id, r) in reqs {
            if r.method == "GET"
                && r.url
                    .contains("/presence?detailedTelephonyState=true&sipData=true")
                && r.url.contains("/extension/")
            {
                let ext = r
                    .url
                    .split("/extension/")
                    .nth(1)
                    .unwrap()
                    .split('/')
                    .next()
                    .unwrap();
                let body = presence_body(ext, "TakeAllCalls", telephony);
                self.answer(*id, resp(200, body));
            }
        }
    }

    pub fn presences(&mut self) -> Vec<PresenceUpdate> {
        self.take();
        self.log
            .iter()
            .filter_map(|a| match a {
                Action::Presence(u) => Some(u.clone()),
                _ => None,
            })
            .collect()
    }

    pub fn outcomes(&mut self) -> Vec<(u64, WriteOutcome)> {
        self.take();
        self.log
            .iter()
            .filter_map(|a| match a {
                Action::WriteOutcome(id, o) => Some((*id, o.clone())),
                _ => None,
            })
            .collect()
    }

    pub fn last_status(&mut self) -> (ConnectorStatus, String) {
        self.take();
        self.log
            .iter()
            .rev()
            .find_map(|a| match a {
                Action::Status(s, d) => Some((*s, d.clone().unwrap_or_default())),
                _ => None,
            })
            .expect("a status")
    }

    pub fn ep_state(&mut self, ep: &str) -> Option<EndpointState> {
        self.take();
        self.log.iter().rev().find_map(|a| match a {
            Action::EndpointState(e, s, _) if e == ep => Some(*s),
            _ => None,
        })
    }

    pub fn kv(&mut self, key: &str) -> Option<Vec<u8>> {
        self.take();
        self.log.iter().rev().find_map(|a| match a {
            Action::KvSet(k, v) if k == key => Some(Some(v.clone())),
            Action::KvDelete(k) if k == key => Some(None),
            _ => None,
        })?
    }

    /// Everything the store would hold now.
    pub fn stored(&mut self) -> Stored {
        self.take();
        let mut exts = std::collections::BTreeMap::new();
        for a in &self.log {
            match a {
                Action::KvSet(k, v) if k.starts_with(keys::EXT_PREFIX) => {
                    exts.insert(k[keys::EXT_PREFIX.len()..].to_string(), v.clone());
                }
                _ => {}
            }
        }
        Stored {
            tokens: self.kv(keys::TOKENS),
            subscription: self.kv(keys::SUBSCRIPTION),
            penalties: self.kv(keys::PENALTIES),
            exts: exts.into_iter().collect(),
        }
    }

    /// A WebHook delivery with the right token.
    pub fn notify(&mut self, token: &str, body: &Value) -> HookAnswer {
        let headers = vec![("Verification-Token".to_string(), token.to_string())];
        let body = serde_json::to_vec(body).unwrap();
        let hook = Hook {
            method: "POST",
            path: "/notify",
            query: "",
            headers: &headers,
            body: &body,
        };
        self.core.on_webhook(&hook, self.now)
    }
}

pub fn details(recovery: Option<&str>) -> String {
    let mut body = json!({"creationTime": "2026-01-01T10:55:00.000Z", "maxConnectionsPerSession": 50,
        "recoveryBufferSize": 100, "recoveryTimeout": 180, "idleTimeout": 1800,
        "absoluteTimeout": 86400, "maxActiveRequests": 10});
    if let Some(r) = recovery {
        body["recoveryState"] = json!(r);
    }
    json!([{"type": "ConnectionDetails", "messageId": "cd", "status": 200,
        "wsc": {"token": "wsc-token-1", "sequence": 1}, "headers": {"RCRequestId": "r"}}, body])
    .to_string()
}

impl H {
    /// Answer the wstoken request among `reqs`; returns the connection
    /// number and URL the core opened.
    pub fn ws_token(&mut self, reqs: &[(ReqId, Request)]) -> (u64, String) {
        let (id, r) = H::find(reqs, "POST", "/restapi/oauth/wstoken").expect("a wstoken request");
        assert!(r.body.is_empty());
        let id = *id;
        self.answer(id, resp(200, json!({"ws_access_token": "wst/1", "uri": "wss://ws-api.ringcentral.com/ws", "expires_in": 30})));
        self.unseen(2)
            .into_iter()
            .find_map(|a| match a {
                Action::WsConnect(c, u, _) => Some((c, u)),
                _ => None,
            })
            .expect("a WebSocket connect")
    }

    /// The frames sent on the WebSocket since the last look.
    pub fn sent_frames(&mut self) -> Vec<Value> {
        self.unseen(1)
            .into_iter()
            .filter_map(|a| match a {
                Action::WsSend(_, t) => Some(serde_json::from_str(&t).unwrap()),
                _ => None,
            })
            .collect()
    }

    /// Open, hello, subscribe: the WebSocket is live with subscription `sub-1`.
    pub fn ws_live(&mut self, reqs: &[(ReqId, Request)]) -> u64 {
        let (conn, _) = self.ws_token(reqs);
        self.core.on_ws_open(conn, self.now);
        assert!(
            self.sent_frames().is_empty(),
            "nothing before ConnectionDetails"
        );
        self.core.on_ws_text(conn, &details(None), self.now);
        let frames = self.sent_frames();
        let sub = frames
            .iter()
            .find(|f| f[0]["type"] == "ClientRequest")
            .expect("a subscribe request")
            .clone();
        self.ws_subscribed(conn, &sub);
        conn
    }

    pub fn ws_subscribed(&mut self, conn: u64, sub: &Value) {
        let answer = json!([{"type": "ClientRequest", "messageId": sub[0]["messageId"], "status": 200},
            {"id": "sub-1", "uri": "x", "eventFilters": sub[1]["eventFilters"], "expirationTime": "2026-01-02T10:55:00.000Z",
             "expiresIn": 86400, "status": "Active", "creationTime": "2026-01-01T10:55:00.000Z",
             "deliveryMode": {"transportType": "WebSocket"}}]);
        self.core.on_ws_text(conn, &answer.to_string(), self.now);
    }

    /// A notification over the WebSocket.
    pub fn ws_event(&mut self, conn: u64, ev: Value) {
        let frame = json!([{"type": "ServerNotification", "messageId": "n", "status": 200}, ev]);
        self.core.on_ws_text(conn, &frame.to_string(), self.now);
    }

    /// Signed in, directory read, `eps` watched and read (NoCall,
    /// TakeAllCalls), WebSocket live.
    pub fn live(&mut self, eps: &[&str]) -> u64 {
        self.ready();
        let reqs = self.watch(eps);
        self.answer_reads(&reqs, "NoCall");
        self.conn.expect("watching brings the WebSocket up")
    }
}
