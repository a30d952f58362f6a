//! The runtime under the test kit: keyed timers on one host timer, request,
//! WebSocket, UDP socket and stream keys, refusals fed back, not-configured
//! answers and the default reconfiguration.

use super::TimerMux;
use crate::testkit::{TestHub, response, text, webhook};
use crate::{Capabilities, Failure, http};
use crate::{
    CloseInfo, Config, Connector, ConnectorError, ConnectorStatus, Cx, HostError, HttpError,
    PluginInfo, Request, ResponseExt, WebhookRequest, WebhookResponse, WsPayload,
};

#[test]
fn timers_fire_in_deadline_order_and_setting_again_moves_them() {
    let mut mux = TimerMux::default();
    mux.set("b", 200);
    mux.set("a", 100);
    mux.set("c", 100);
    mux.set("b", 50);
    assert_eq!(mux.next_deadline(), Some(50));
    assert_eq!(mux.due(100), ["b", "a", "c"]);
    assert_eq!(mux.next_deadline(), None);
    mux.set("d", 10);
    mux.cancel(&"d");
    assert!(mux.due(1_000).is_empty());
}

/// A connector that records what reaches it.
#[derive(Default)]
struct Probe {
    fired: Vec<(u64, String)>,
    http: Vec<(u32, Result<u16, String>)>,
    ws: Vec<String>,
    /// UDP socket and stream events, as "{key} {what}".
    net: Vec<String>,
}

fn pbx(port: u16) -> crate::SocketAddress {
    crate::SocketAddress {
        host: "pbx.example.com".into(),
        port,
    }
}

impl Connector for Probe {
    type TimerKey = String;
    type RequestKey = u32;
    type SocketKey = &'static str;

    fn describe() -> PluginInfo {
        PluginInfo {
            name: "probe".into(),
            version: "0".into(),
            description: String::new(),
            config_fields: Vec::new(),
            endpoint_kinds: Vec::new(),
            capabilities: Capabilities {
                webhooks: true,
                ..Capabilities::default()
            },
        }
    }

    fn new(cx: &mut Cx<Self>, config: &Config) -> Result<Self, ConnectorError> {
        let timers = config.opt_integer("timers")?.unwrap_or(0);
        for i in 0..timers {
            // Deadlines 1000, 999, ... so the last set fires first.
            cx.set_timer(format!("t{i}"), 1000 - i as u64);
        }
        cx.status(ConnectorStatus::UpAndRunning, None);
        Ok(Self::default())
    }

    fn on_timer(&mut self, cx: &mut Cx<Self>, key: String) {
        self.fired.push((cx.now(), key));
    }

    fn on_http(&mut self, _: &mut Cx<Self>, key: u32, outcome: Result<http::Response, HttpError>) {
        let outcome = outcome.map(|r| r.status).map_err(|e| e.to_string());
        self.http.push((key, outcome));
    }

    fn on_ws_open(&mut self, cx: &mut Cx<Self>, key: &'static str, _: crate::WebsocketOpen) {
        cx.ws_send_text(key, "hello");
    }

    fn on_ws_message(&mut self, cx: &mut Cx<Self>, key: &'static str, payload: WsPayload) {
        if let WsPayload::Text(text) = payload {
            self.ws.push(text.clone());
            cx.ws_send_text(key, format!("echo {text}"));
        }
    }

    fn on_ws_closed(&mut self, _: &mut Cx<Self>, key: &'static str, close: CloseInfo) {
        let why = close.failure.map(|f| crate::render_failure(&f));
        self.ws.push(format!("{key} closed: {why:?}"));
    }

    fn on_net_open(&mut self, _: &mut Cx<Self>, key: &'static str, local: crate::SocketAddress) {
        self.net
            .push(format!("{key} open {}:{}", local.host, local.port));
    }

    fn on_datagram(
        &mut self,
        cx: &mut Cx<Self>,
        key: &'static str,
        from: crate::SocketAddress,
        data: Vec<u8>,
    ) {
        let text = String::from_utf8_lossy(&data).into_owned();
        self.net.push(format!(
            "{key} datagram {text} from {}:{}",
            from.host, from.port
        ));
        cx.udp_send(key, from, format!("ack {text}"));
    }

    fn on_stream_data(&mut self, cx: &mut Cx<Self>, key: &'static str, data: Vec<u8>) {
        let text = String::from_utf8_lossy(&data).into_owned();
        self.net.push(format!("{key} data {text}"));
        cx.stream_send(key, format!("ack {text}"));
    }

    fn on_net_closed(&mut self, _: &mut Cx<Self>, key: &'static str, close: CloseInfo) {
        let why = close.failure.map(|f| crate::render_failure(&f));
        self.net.push(format!("{key} closed: {why:?}"));
    }

    fn on_shutdown(&mut self, cx: &mut Cx<Self>) {
        cx.status(ConnectorStatus::Disabled, Some("bye"));
    }

    fn webhook(&mut self, cx: &mut Cx<Self>, request: WebhookRequest) -> WebhookResponse {
        match request.path.as_str() {
            "/get" => cx.http(7, Request::get("https://api.example.com/a")),
            "/get-twice" => {
                cx.http(1, Request::get("https://api.example.com/one"));
                cx.http(2, Request::get("https://api.example.com/two"));
            }
            "/cancel" => cx.cancel_http(7),
            "/ws" => cx.ws_connect(
                "main",
                "wss://push.example.com/s",
                crate::WsOptions::default(),
            ),
            "/timer" => cx.set_timer("hook".into(), 10),
            "/udp" => {
                // Sent in order after the bind, before on_net_open.
                cx.udp_bind("pbx", pbx(5060));
                cx.udp_send("pbx", pbx(5060), "OPTIONS");
            }
            "/tcp" => {
                cx.stream_connect(
                    "pbx",
                    pbx(5061),
                    crate::net::StreamOptions {
                        security: crate::net::StreamSecurity::Tls,
                        connect_timeout_ms: None,
                    },
                );
                cx.stream_send("pbx", "OPTIONS");
            }
            "/net-close" => cx.net_close("pbx"),
            _ => {}
        }
        WebhookResponse {
            status: 204,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }
}

fn probe(timers: i64) -> TestHub<Probe> {
    let mut hub = TestHub::new();
    hub.configure(&[("timers", crate::ConfigValue::Integer(timers))])
        .unwrap();
    hub
}

fn hook(hub: &mut TestHub<Probe>, path: &str) {
    assert_eq!(hub.webhook(webhook("POST", path, &[], b"")).status, 204);
}

#[test]
fn many_keyed_timers_share_one_host_timer_and_fire_on_time() {
    let mut hub = probe(500);
    assert_eq!(hub.host().timers.len(), 1);
    assert_eq!(hub.pending().0, 500);
    let start = hub.now();
    hub.advance(500);
    assert!(hub.connector().unwrap().fired.is_empty());
    hub.advance(500);
    let fired = &hub.connector().unwrap().fired;
    assert_eq!(fired.len(), 500);
    assert_eq!(fired[0], (start + 501, "t499".to_string()));
    assert_eq!(fired[499], (start + 1000, "t0".to_string()));
    assert!(hub.host().timers.is_empty());
}

#[test]
fn an_earlier_timer_rearms_the_host_timer() {
    let mut hub = probe(1);
    hook(&mut hub, "/timer");
    assert_eq!(hub.host().timers.len(), 1);
    hub.advance(10);
    assert_eq!(hub.connector().unwrap().fired.len(), 1);
    hub.advance(990);
    assert_eq!(hub.connector().unwrap().fired.len(), 2);
}

#[test]
fn responses_come_back_by_key() {
    let mut hub = probe(0);
    hub.script_http("GET", "/one", response(200, "ok"));
    hook(&mut hub, "/get-twice");
    hub.respond("/two", response(503, ""));
    assert_eq!(hub.connector().unwrap().http, [(1, Ok(200)), (2, Ok(503))]);
    assert_eq!(hub.requests().len(), 2);
    assert_eq!(hub.pending().1, 0);
}

#[test]
fn a_refused_request_comes_back_as_a_failure() {
    let mut hub = probe(0);
    hub.refuse(
        "https://api.example.com",
        HostError::NotGranted("https://api.example.com:443".into()),
    );
    hook(&mut hub, "/get");
    assert_eq!(
        hub.connector().unwrap().http,
        [(
            7,
            Err("refused by the host: not-granted: https://api.example.com:443".into())
        )]
    );
    assert!(hub.requests().is_empty());
}

#[test]
fn a_cancelled_request_delivers_nothing() {
    let mut hub = probe(0);
    hook(&mut hub, "/get");
    hook(&mut hub, "/cancel");
    assert!(hub.open_requests().is_empty());
    assert_eq!(hub.pending().1, 0);
    assert!(hub.connector().unwrap().http.is_empty());
}

#[test]
fn websockets_are_named_by_key() {
    let mut hub = probe(0);
    hook(&mut hub, "/ws");
    hub.ws_accept("push.example.com");
    hub.ws_receive("push.example.com", "ping");
    let socket = hub.sockets().remove(0);
    assert_eq!(
        socket.sent,
        [
            WsPayload::Text("hello".into()),
            WsPayload::Text("echo ping".into())
        ]
    );
    hub.ws_drop(
        "push.example.com",
        CloseInfo {
            code: None,
            reason: String::new(),
            failure: Some(Failure::Timeout),
        },
    );
    assert_eq!(hub.pending().2, 0);
    assert_eq!(hub.connector().unwrap().ws.len(), 2);
}

#[test]
fn a_refused_websocket_is_reported_closed() {
    let mut hub = probe(0);
    hub.refuse(
        "wss://",
        HostError::NotGranted("wss://push.example.com:443".into()),
    );
    hook(&mut hub, "/ws");
    let ws = &hub.connector().unwrap().ws;
    assert_eq!(ws.len(), 1);
    assert!(
        ws[0].contains("not-granted: wss://push.example.com:443"),
        "{ws:?}"
    );
}

#[test]
fn before_configuration_calls_answer_not_configured() {
    let mut hub = TestHub::<Probe>::new();
    assert_eq!(hub.webhook(webhook("GET", "/", &[], b"")).status, 503);
    assert_eq!(hub.watch(&["1"]), Err(ConnectorError::NotConfigured));
    assert_eq!(hub.unwatch(&["1"]), Err(ConnectorError::NotConfigured));
    let bad = hub.configure(&[("timers", text("many"))]);
    assert!(matches!(bad, Err(ConnectorError::InvalidConfig(_))));
    assert_eq!(hub.watch(&["1"]), Err(ConnectorError::NotConfigured));
}

#[test]
fn the_default_reconfigure_says_goodbye_and_starts_afresh() {
    let mut hub = probe(3);
    hook(&mut hub, "/ws");
    hook(&mut hub, "/udp");
    let udp = hub.host().udp[0].0;
    hub.configure(&[("timers", crate::ConfigValue::Integer(1))])
        .unwrap();
    assert_eq!(
        hub.statuses(),
        [
            (ConnectorStatus::UpAndRunning, None),
            (ConnectorStatus::Disabled, Some("bye".into())),
            (ConnectorStatus::UpAndRunning, None),
        ]
    );
    assert_eq!(hub.pending(), (1, 0, 0));
    assert_eq!(
        hub.sockets()[0].closed_by_connector,
        Some((1000, "reconfigured".into()))
    );
    assert_eq!(hub.host().net_closed, [udp]);
    hub.advance(1000);
    assert_eq!(hub.connector().unwrap().fired.len(), 1);
}

#[test]
fn writes_are_unsupported_by_default() {
    let mut hub = probe(0);
    let refused = hub.write(crate::WriteRequest {
        id: 1,
        endpoint: "1".into(),
        action: crate::WriteAction::Restore,
    });
    assert!(matches!(refused, Err(ConnectorError::Unsupported(_))));
}

#[test]
fn response_helpers_read_headers_and_text() {
    let answer = http::Response {
        status: 201,
        headers: vec![crate::Header {
            name: "Retry-After".into(),
            value: "5".into(),
        }],
        body: b"done".to_vec(),
    };
    assert_eq!(answer.header("retry-after"), Some("5"));
    assert_eq!(answer.text(), "done");
    assert!(answer.is_success());
}

#[test]
fn udp_sockets_are_named_by_key() {
    let mut hub = probe(0);
    hook(&mut hub, "/udp");
    assert_eq!(hub.datagrams_sent_text("pbx"), ["OPTIONS"]);
    assert_eq!(hub.host().datagrams[0].1, pbx(5060));
    hub.udp_receive("pbx", b"200 OK");
    assert_eq!(
        hub.connector().unwrap().net,
        [
            "pbx open 192.0.2.1:5060",
            "pbx datagram 200 OK from pbx.example.com:5060"
        ]
    );
    assert_eq!(hub.datagrams_sent_text("pbx"), ["OPTIONS", "ack 200 OK"]);
    assert_eq!(hub.pending().2, 1);

    let socket = hub.host().udp[0].0;
    hook(&mut hub, "/net-close");
    assert_eq!(hub.host().net_closed, [socket]);
    assert_eq!(hub.pending().2, 0);
    // A datagram still in the host's queue for the closed socket is dropped.
    hub.datagram(crate::Datagram {
        socket,
        from: pbx(5060),
        data: b"late".to_vec(),
    });
    assert_eq!(hub.connector().unwrap().net.len(), 2);
}

#[test]
fn streams_are_named_by_key() {
    let mut hub = probe(0);
    hook(&mut hub, "/tcp");
    assert!(
        hub.connector().unwrap().net.is_empty(),
        "open before connect"
    );
    hub.stream_accept("pbx");
    hub.stream_receive("pbx", b"NOTIFY");
    assert_eq!(hub.stream_sent_text("pbx"), "OPTIONSack NOTIFY");
    hub.stream_drop(
        "pbx",
        CloseInfo {
            code: None,
            reason: String::new(),
            failure: Some(Failure::Refused),
        },
    );
    assert_eq!(
        hub.connector().unwrap().net,
        [
            "pbx open 192.0.2.1:40000",
            "pbx data NOTIFY",
            "pbx closed: Some(\"connection refused\")"
        ]
    );
    assert_eq!(hub.pending().2, 0);
}

#[test]
fn connecting_a_key_again_replaces_its_stream() {
    let mut hub = probe(0);
    hook(&mut hub, "/tcp");
    hook(&mut hub, "/tcp");
    let first = hub.host().streams[0].0;
    let second = hub.host().streams[1].0;
    assert_eq!(hub.host().net_closed, [first]);
    assert_eq!(hub.pending().2, 1);
    // Bytes on the replaced stream do not reach the connector.
    hub.stream_data(crate::StreamData {
        socket: first,
        data: b"stale".to_vec(),
    });
    assert!(hub.connector().unwrap().net.is_empty());
    hub.stream_data(crate::StreamData {
        socket: second,
        data: b"fresh".to_vec(),
    });
    assert_eq!(hub.connector().unwrap().net, ["pbx data fresh"]);
}

#[test]
fn a_refused_bind_is_reported_closed_and_sends_are_dropped() {
    let mut hub = probe(0);
    hub.refuse(
        "pbx.example.com:",
        HostError::NotGranted("pbx.example.com:5060".into()),
    );
    hook(&mut hub, "/udp");
    assert_eq!(
        hub.connector().unwrap().net,
        ["pbx closed: Some(\"not-granted: pbx.example.com:5060\")"]
    );
    assert!(hub.host().datagrams.is_empty());
    assert!(
        hub.logs()
            .iter()
            .any(|(_, line)| line == "UDP socket \"pbx\" is not open; message dropped"),
        "{:?}",
        hub.logs()
    );
}
