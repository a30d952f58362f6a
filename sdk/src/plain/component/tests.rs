//! [`Plain`] under the test kit: each hook gets the clock and its plain
//! input, queued actions are carried out, defaults answer as `Connector`'s
//! do, and a reconfiguration hands over to a new core.

use super::{Component, Core, CoreAction, Plain};
use crate::plain::{Action, Level, Request, Response};
use crate::testkit::{EPOCH_MS, TestHub, response, text, webhook};
use crate::types::{
    Capabilities, CloseInfo, ConnectorError, ConnectorStatus, EndpointId, Failure, HostError,
    PluginInfo, WriteAction, WriteRequest,
};
use crate::{Config, Cx, Event, Header, Presence, WebhookRequest, WsMessage, WsPayload};

fn info() -> PluginInfo {
    PluginInfo {
        name: "echo".into(),
        version: "0".into(),
        description: String::new(),
        config_fields: Vec::new(),
        endpoint_kinds: Vec::new(),
        capabilities: Capabilities::default(),
    }
}

/// A core that logs every hook with the clock it was given.
struct Echo {
    server: String,
    /// Which build this is (1 for the first configuration).
    generation: u32,
    watched: Vec<EndpointId>,
    actions: Vec<CoreAction<Self>>,
}

impl Echo {
    fn log(&mut self, line: String) {
        self.actions.push(Action::Log(Level::Info, line));
    }
}

impl Core for Echo {
    type TimerKey = &'static str;
    type RequestKey = u32;
    type SocketKey = u8;

    fn take_actions(&mut self) -> Vec<CoreAction<Self>> {
        std::mem::take(&mut self.actions)
    }

    fn start(&mut self, now: u64) {
        let line = format!("start {} at {now}", self.generation);
        self.log(line);
        self.actions.push(Action::SetTimer("poll", 1_000));
        self.actions
            .push(Action::Status(ConnectorStatus::UpAndRunning, None));
    }

    fn on_timer(&mut self, key: &'static str, now: u64) {
        self.log(format!("timer {key} at {now}"));
        let request = Request {
            method: "GET",
            url: format!("{}/state?at={now}", self.server),
            headers: Vec::new(),
            body: Vec::new(),
            timeout_ms: 5_000,
        };
        self.actions.push(Action::Http(7, request));
    }

    fn on_http(&mut self, key: u32, outcome: Result<Response, String>, now: u64) {
        match outcome {
            Ok(answer) => {
                let body = String::from_utf8_lossy(&answer.body).into_owned();
                self.log(format!("http {key} {} {body} at {now}", answer.status));
                self.actions
                    .push(Action::Presence(Presence::new("201").note(body).into()));
            }
            Err(why) => self.log(format!("http {key} failed: {why}")),
        }
    }

    fn on_ws_open(&mut self, key: u8, now: u64) {
        self.log(format!("ws {key} open at {now}"));
        self.actions.push(Action::WsSend(key, "hello".into()));
    }

    fn on_ws_text(&mut self, key: u8, text: &str, _: u64) {
        self.log(format!("ws {key} text {text}"));
    }

    fn on_ws_binary(&mut self, key: u8, data: &[u8], _: u64) {
        self.log(format!("ws {key} binary {data:?}"));
    }

    fn on_ws_closed(&mut self, key: u8, close: &CloseInfo, _: u64) {
        self.log(format!("ws {key} closed {:?}", close.code));
    }

    fn webhook(&mut self, request: WebhookRequest, now: u64) -> Response {
        self.log(format!("webhook {}", request.path));
        Response::new(202, "text/plain", format!("{} at {now}", request.method))
    }

    fn watch(&mut self, endpoints: &[EndpointId], now: u64) {
        self.watched.extend_from_slice(endpoints);
        let line = format!("watch {} {endpoints:?} at {now}", self.generation);
        self.log(line);
    }

    fn unwatch(&mut self, endpoints: &[EndpointId], _: u64) {
        self.watched.retain(|e| !endpoints.contains(e));
        self.log(format!("unwatch {endpoints:?}"));
    }

    fn shutdown(&mut self, now: u64) {
        let line = format!("shutdown {} at {now}", self.generation);
        self.log(line);
    }

    fn make_way(&mut self, _: u64) {
        let line = format!("make way {}", self.generation);
        self.log(line);
    }

    fn watched(&self) -> Vec<EndpointId> {
        self.watched.clone()
    }
}

impl Component for Echo {
    fn describe() -> PluginInfo {
        info()
    }

    fn build(cx: &mut Cx<Plain<Self>>, config: &Config) -> Result<Self, ConnectorError> {
        let server = config.text("server")?;
        // The store answers at once: count the builds there.
        let generation = cx
            .kv_get("builds")
            .ok()
            .flatten()
            .map_or(0, |v| v.len() as u32)
            + 1;
        cx.kv_set_logged("builds", &vec![0; generation as usize]);
        Ok(Echo {
            server: server.to_string(),
            generation,
            watched: Vec::new(),
            actions: Vec::new(),
        })
    }
}

fn lines(hub: &mut TestHub<Plain<Echo>>) -> Vec<String> {
    hub.logs().into_iter().map(|(_, line)| line).collect()
}

fn configured() -> TestHub<Plain<Echo>> {
    let mut hub = TestHub::<Plain<Echo>>::new();
    hub.configure(&[("server", text("https://pbx.example.com"))])
        .unwrap();
    hub
}

#[test]
fn each_hook_gets_the_clock_and_its_actions_are_carried_out() {
    let mut hub = configured();
    hub.script_http("GET", "/state", response(200, "busy"));
    assert_eq!(hub.status(), Some(ConnectorStatus::UpAndRunning));
    hub.watch(&["201"]).unwrap();
    hub.advance(1_000);
    let at = EPOCH_MS + 1_000;
    assert_eq!(
        lines(&mut hub),
        [
            format!("start 1 at {EPOCH_MS}"),
            format!("watch 1 [\"201\"] at {EPOCH_MS}"),
            format!("timer poll at {at}"),
            format!("http 7 200 busy at {at}"),
        ]
    );
    let sent = hub.requests();
    assert_eq!(sent.len(), 1);
    assert_eq!(
        sent[0].request.url,
        format!("https://pbx.example.com/state?at={at}")
    );
    assert_eq!(sent[0].request.timeout_ms, Some(5_000));
    let update = hub.presence().pop().expect("a presence update");
    assert_eq!(update.rich.unwrap().note.as_deref(), Some("busy"));
    hub.unwatch(&["201"]).unwrap();
    assert_eq!(lines(&mut hub).last().unwrap(), "unwatch [\"201\"]");
}

#[test]
fn a_webhook_reaches_the_core_and_its_answer_goes_back_with_its_headers() {
    let mut hub = configured();
    hub.advance(250);
    let answer = hub.webhook(webhook("POST", "/notify", &[], b"{}"));
    assert_eq!(answer.status, 202);
    assert_eq!(
        answer.headers,
        [Header {
            name: "content-type".into(),
            value: "text/plain".into(),
        }]
    );
    assert_eq!(
        answer.body,
        format!("POST at {}", EPOCH_MS + 250).as_bytes()
    );
    assert_eq!(lines(&mut hub).last().unwrap(), "webhook /notify");
}

#[test]
fn a_refused_request_reaches_the_core_as_rendered_text() {
    let mut hub = configured();
    hub.refuse(
        "https://pbx",
        HostError::NotGranted("https://pbx.example.com:443".into()),
    );
    hub.advance(1_000);
    assert_eq!(
        lines(&mut hub).last().unwrap(),
        "http 7 failed: not-granted: https://pbx.example.com:443"
    );
}

#[test]
fn websocket_frames_and_closes_reach_the_core_by_key() {
    // Through the runtime: a core that connects when it starts.
    struct Socketed(Echo);
    impl Core for Socketed {
        type TimerKey = &'static str;
        type RequestKey = u32;
        type SocketKey = u8;
        fn take_actions(&mut self) -> Vec<CoreAction<Self>> {
            self.0.take_actions()
        }
        fn start(&mut self, _: u64) {
            let options = crate::WsOptions::default();
            let url = "wss://push.example.com/ws".to_string();
            self.0.actions.push(Action::WsConnect(4, url, options));
        }
        fn on_ws_open(&mut self, key: u8, now: u64) {
            self.0.on_ws_open(key, now);
        }
        fn on_ws_text(&mut self, key: u8, text: &str, now: u64) {
            self.0.on_ws_text(key, text, now);
        }
        fn on_ws_binary(&mut self, key: u8, data: &[u8], now: u64) {
            self.0.on_ws_binary(key, data, now);
        }
        fn on_ws_closed(&mut self, key: u8, close: &CloseInfo, now: u64) {
            self.0.on_ws_closed(key, close, now);
        }
    }
    impl Component for Socketed {
        fn describe() -> PluginInfo {
            info()
        }
        fn build(_: &mut Cx<Plain<Self>>, _: &Config) -> Result<Self, ConnectorError> {
            Ok(Socketed(Echo {
                server: String::new(),
                generation: 1,
                watched: Vec::new(),
                actions: Vec::new(),
            }))
        }
    }
    let mut hub = TestHub::<Plain<Socketed>>::new();
    hub.configure(&[]).unwrap();
    hub.ws_accept("push.example.com");
    hub.ws_receive("push.example.com", "event");
    let socket = hub.sockets()[0].id;
    hub.event(Event::WebsocketMessage(WsMessage {
        socket,
        payload: WsPayload::Binary(vec![1, 2]),
    }));
    hub.ws_drop(
        "push.example.com",
        CloseInfo {
            code: Some(1001),
            reason: "going away".into(),
            failure: None,
        },
    );
    let logged: Vec<String> = hub.logs().into_iter().map(|(_, line)| line).collect();
    assert_eq!(
        logged,
        [
            format!("ws 4 open at {EPOCH_MS}"),
            "ws 4 text event".to_string(),
            "ws 4 binary [1, 2]".to_string(),
            "ws 4 closed Some(1001)".to_string(),
        ]
    );
    assert_eq!(hub.sockets()[0].sent, [WsPayload::Text("hello".into())]);
}

/// A core that leaves everything but its queue to the defaults.
struct Bare(Vec<CoreAction<Bare>>);

impl Core for Bare {
    type TimerKey = ();
    type RequestKey = ();
    type SocketKey = ();
    fn take_actions(&mut self) -> Vec<CoreAction<Self>> {
        std::mem::take(&mut self.0)
    }
}

impl Component for Bare {
    fn describe() -> PluginInfo {
        info()
    }
    fn build(_: &mut Cx<Plain<Self>>, _: &Config) -> Result<Self, ConnectorError> {
        Ok(Bare(vec![Action::Log(Level::Info, "built".into())]))
    }
}

#[test]
fn defaults_answer_404_refuse_writes_and_accept_watches() {
    let mut hub = TestHub::<Plain<Bare>>::new();
    assert_eq!(
        hub.watch(&["201"]),
        Err(ConnectorError::NotConfigured),
        "the runtime's not-configured answer holds for a core too"
    );
    hub.configure(&[]).unwrap();
    assert_eq!(hub.logs(), [(Level::Info, "built".to_string())]);
    assert_eq!(hub.webhook(webhook("POST", "/x", &[], b"{}")).status, 404);
    assert_eq!(hub.watch(&["201"]), Ok(()));
    assert_eq!(hub.unwatch(&["201"]), Ok(()));
    let write = WriteRequest {
        id: 1,
        endpoint: "201".into(),
        action: WriteAction::Restore,
    };
    assert!(matches!(
        hub.write(write),
        Err(ConnectorError::Unsupported(_))
    ));
    assert!(hub.write_outcomes().is_empty());
    hub.shutdown();
}

#[test]
fn shutdown_reaches_the_core_and_its_goodbye_is_carried_out() {
    let mut hub = configured();
    hub.advance(500);
    hub.shutdown();
    assert_eq!(
        lines(&mut hub).last().unwrap(),
        &format!("shutdown 1 at {}", EPOCH_MS + 500)
    );
}

#[test]
fn a_reconfiguration_lets_the_old_core_make_way_and_carries_its_watches() {
    let mut hub = configured();
    hub.watch(&["201", "202"]).unwrap();
    hub.configure(&[("server", text("https://pbx2.example.com"))])
        .unwrap();
    let logged = lines(&mut hub);
    assert_eq!(
        logged[2..],
        [
            "make way 1".to_string(),
            format!("start 2 at {EPOCH_MS}"),
            format!("watch 2 [\"201\", \"202\"] at {EPOCH_MS}"),
        ]
    );
    // The old core's timer went with it; the new one's polls the new server.
    hub.script_http("GET", "/state", response(200, "away"));
    hub.advance(1_000);
    let sent = hub.requests();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert!(sent[0].request.url.starts_with("https://pbx2.example.com/"));
    // A configuration the core refuses leaves the connector not configured.
    assert!(hub.configure(&[]).is_err());
    assert_eq!(hub.watch(&["203"]), Err(ConnectorError::NotConfigured));
}

#[test]
fn a_failed_answer_is_not_mistaken_for_a_refusal() {
    let mut hub = configured();
    hub.script_http("GET", "/state", Err(Failure::Refused));
    hub.advance(1_000);
    assert_eq!(
        lines(&mut hub).last().unwrap(),
        "http 7 failed: connection refused"
    );
}
