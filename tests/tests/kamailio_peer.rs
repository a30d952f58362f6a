//! The Kamailio test peer on its own, without the hub: presence
//! PUBLISH/SUBSCRIBE/NOTIFY, digest challenges, dialog-info of a call
//! through the proxy, resource lists, stop and restart.
//!
//! Needs `bash .ci/install-test-deps.sh` (kamailio, presence modules, sipp).

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use hub_e2e::kamailio::{AuthMode, Kamailio, ResourceList};

/// A SIP message as received.
#[derive(Debug, Clone)]
struct Msg {
    first: String,
    headers: Vec<(String, String)>,
    body: String,
}

impl Msg {
    fn parse(text: &str) -> Msg {
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((text, ""));
        let mut lines = head.split("\r\n");
        let first = lines.next().unwrap_or_default().to_string();
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        Msg {
            first,
            headers,
            body: body.to_string(),
        }
    }
    fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }
    fn status(&self) -> Option<u16> {
        self.first
            .strip_prefix("SIP/2.0 ")
            .and_then(|s| s.get(..3))
            .and_then(|s| s.parse().ok())
    }
    fn is_notify(&self) -> bool {
        self.first.starts_with("NOTIFY ")
    }
    fn tag(&self, header: &str) -> Option<String> {
        self.header(header)?
            .split(';')
            .find_map(|p| p.trim().strip_prefix("tag="))
            .map(str::to_string)
    }
}

/// A minimal UDP user agent: sends requests, answers NOTIFYs with 200 and
/// records everything it receives.
struct Ua {
    sock: UdpSocket,
    port: u16,
    server: SocketAddr,
    domain: String,
    user: String,
    seq: u32,
    received: Vec<Msg>,
}

impl Ua {
    fn new(k: &Kamailio, user: &str) -> Ua {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = sock.local_addr().unwrap().port();
        Ua {
            sock,
            port,
            server: k.addr(),
            domain: k.domain.clone(),
            user: user.to_string(),
            seq: 0,
            received: Vec::new(),
        }
    }

    /// Send a request to the server. `dialog` = (call-id, from-tag,
    /// to-tag) for in-dialog requests.
    #[allow(clippy::too_many_arguments)]
    fn request(
        &mut self,
        method: &str,
        ruri: &str,
        to: &str,
        call_id: &str,
        from_tag: &str,
        to_tag: Option<&str>,
        extra: &str,
        body: &str,
    ) {
        self.seq += 1;
        let to_tag = to_tag.map(|t| format!(";tag={t}")).unwrap_or_default();
        let msg = format!(
            "{method} {ruri} SIP/2.0\r\n\
             Via: SIP/2.0/UDP 127.0.0.1:{port};rport;branch=z9hG4bK{call_id}-{seq}\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:{user}@{domain}>;tag={from_tag}\r\n\
             To: <{to}>{to_tag}\r\n\
             Call-ID: {call_id}\r\n\
             CSeq: {seq} {method}\r\n\
             Contact: <sip:{user}@127.0.0.1:{port}>\r\n\
             {extra}Content-Length: {len}\r\n\r\n{body}",
            port = self.port,
            seq = self.seq,
            user = self.user,
            domain = self.domain,
            len = body.len(),
        );
        self.sock.send_to(msg.as_bytes(), self.server).unwrap();
    }

    /// Receive one message (answering a NOTIFY with 200), or None after
    /// `wait`.
    fn recv(&mut self, wait: Duration) -> Option<Msg> {
        let mut buf = vec![0u8; 65536];
        self.sock
            .set_read_timeout(Some(wait.max(Duration::from_millis(1))))
            .unwrap();
        let (n, from) = self.sock.recv_from(&mut buf).ok()?;
        let text = String::from_utf8_lossy(&buf[..n]).to_string();
        let msg = Msg::parse(&text);
        if msg.is_notify() {
            let mut ok = String::from("SIP/2.0 200 OK\r\n");
            for h in ["Via", "From", "To", "Call-ID", "CSeq"] {
                for (k, v) in &msg.headers {
                    if k.eq_ignore_ascii_case(h) {
                        ok.push_str(&format!("{h}: {v}\r\n"));
                    }
                }
            }
            ok.push_str("Content-Length: 0\r\n\r\n");
            self.sock.send_to(ok.as_bytes(), from).unwrap();
        }
        self.received.push(msg.clone());
        Some(msg)
    }

    /// Receive until `f` matches, at most `secs` seconds.
    fn wait_for(&mut self, what: &str, secs: u64, f: impl Fn(&Msg) -> bool) -> Msg {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            if let Some(m) = self.recv(left)
                && f(&m)
            {
                return m;
            }
        }
        panic!(
            "timed out waiting for {what}; received:\n{}",
            self.received
                .iter()
                .map(|m| format!("{}\n{:?}\n{}", m.first, m.headers, m.body))
                .collect::<Vec<_>>()
                .join("\n-----\n")
        );
    }

    /// Initial SUBSCRIBE to `target`; returns (call-id, from-tag).
    fn subscribe(&mut self, target: &str, event: &str, expires: u32, extra: &str) -> Sub {
        let call_id = format!("sub-{}-{}-{}", self.user, target, self.port);
        let from_tag = format!("ft{}", self.port);
        let uri = format!("sip:{target}@{}", self.domain);
        self.request(
            "SUBSCRIBE",
            &uri,
            &uri,
            &call_id,
            &from_tag,
            None,
            &format!("Event: {event}\r\nExpires: {expires}\r\n{extra}"),
            "",
        );
        Sub {
            call_id,
            from_tag,
            uri,
            event: event.to_string(),
        }
    }

    fn response_to(&mut self, sub: &Sub, secs: u64) -> Msg {
        let cid = sub.call_id.clone();
        self.wait_for("a response to SUBSCRIBE", secs, |m| {
            m.status().is_some() && m.header("call-id") == Some(cid.as_str())
        })
    }

    fn notify_for(&mut self, sub: &Sub, secs: u64, f: impl Fn(&Msg) -> bool) -> Msg {
        let cid = sub.call_id.clone();
        self.wait_for("a NOTIFY", secs, |m| {
            m.is_notify() && m.header("call-id") == Some(cid.as_str()) && f(m)
        })
    }
}

struct Sub {
    call_id: String,
    from_tag: String,
    uri: String,
    event: String,
}

fn pidf(user: &str, basic: &str, note: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <presence xmlns=\"urn:ietf:params:xml:ns:pidf\" entity=\"sip:{user}@127.0.0.1\">\
         <tuple id=\"t-{user}\"><status><basic>{basic}</basic></status><note>{note}</note></tuple>\
         </presence>"
    )
}

fn installed() {
    assert!(
        hub_e2e::kamailio::kamailio_available(),
        "kamailio/sipp are not installed: run `bash .ci/install-test-deps.sh`"
    );
}

#[test]
fn publish_then_subscribe_presence() {
    installed();
    let k = Kamailio::start(AuthMode::None);
    k.sipp_publish("alice", &pidf("alice", "open", "Out to lunch"), 300);

    let mut hub = Ua::new(&k, "hub");

    // Below min_expires (10): 423 with Min-Expires.
    let short = hub.subscribe("alice", "presence", 5, "");
    let r = hub.response_to(&short, 5);
    assert_eq!(r.status(), Some(423), "{r:?}");
    assert_eq!(r.header("min-expires"), Some("10"), "{r:?}");

    let sub = hub.subscribe("alice", "presence", 60, "Accept: application/pidf+xml\r\n");
    let ok = hub.response_to(&sub, 5);
    assert_eq!(ok.status(), Some(200), "{ok:?}");
    assert_eq!(ok.header("expires"), Some("60"));
    let to_tag = ok.tag("to").expect("To tag in 200");
    let contact = ok.header("contact").unwrap().to_string();
    assert_eq!(contact, format!("<{}>", k.server_uri()));

    let n = hub.notify_for(&sub, 5, |m| m.body.contains("<basic>"));
    assert_eq!(n.header("event"), Some("presence"));
    assert_eq!(n.header("content-type"), Some("application/pidf+xml"));
    let state = n.header("subscription-state").unwrap();
    assert!(state.starts_with("active;expires="), "{state}");
    assert!(n.body.contains("<note>Out to lunch</note>"), "{}", n.body);
    assert!(n.body.contains("<basic>open</basic>"), "{}", n.body);
    assert!(
        n.body.contains("entity=\"sip:alice@127.0.0.1\""),
        "{}",
        n.body
    );

    // A new PUBLISH is notified.
    k.sipp_publish("alice", &pidf("alice", "closed", "Gone home"), 300);
    let n = hub.notify_for(&sub, 5, |m| m.body.contains("Gone home"));
    assert!(n.body.contains("<basic>closed</basic>"), "{}", n.body);
    assert!(!n.body.contains("Out to lunch"), "{}", n.body);

    // Removing the publication (Expires: 0) is notified as well.
    k.sipp_publish("alice", &pidf("alice", "closed", "Gone home"), 0);
    // Kamailio then notifies an "offline" document: the tuple, basic closed.
    let n = hub.notify_for(&sub, 5, |_| true);
    assert!(n.body.contains("<basic>closed</basic>"), "{}", n.body);
    assert!(!n.body.contains("Gone home"), "{}", n.body);

    // Unsubscribe: 200 and a final NOTIFY.
    let ruri = k.server_uri();
    let (cid, ftag, uri) = (sub.call_id.clone(), sub.from_tag.clone(), sub.uri.clone());
    hub.request(
        "SUBSCRIBE",
        &ruri,
        &uri,
        &cid,
        &ftag,
        Some(&to_tag),
        &format!("Event: {}\r\nExpires: 0\r\n", sub.event),
        "",
    );
    let n = hub.notify_for(&sub, 5, |m| {
        m.header("subscription-state")
            .is_some_and(|s| s.starts_with("terminated"))
    });
    assert_eq!(
        n.header("subscription-state"),
        Some("terminated;reason=timeout")
    );
}

#[test]
fn digest_challenges_www_and_proxy() {
    installed();
    let www = Kamailio::start(AuthMode::Www);
    let proxy = Kamailio::start(AuthMode::Proxy);
    assert_ne!(www.port, proxy.port);

    for (k, code, header) in [
        (&www, 401, "www-authenticate"),
        (&proxy, 407, "proxy-authenticate"),
    ] {
        let mut hub = Ua::new(k, "hub");
        let sub = hub.subscribe("alice", "presence", 60, "");
        let r = hub.response_to(&sub, 5);
        assert_eq!(r.status(), Some(code), "{r:?}");
        let challenge = r.header(header).expect("challenge header");
        assert!(challenge.starts_with("Digest "), "{challenge}");
        assert!(challenge.contains("qop=\"auth\""), "{challenge}");
        assert!(challenge.contains("realm=\"127.0.0.1\""), "{challenge}");
        assert!(challenge.contains("nonce=\""), "{challenge}");

        // PUBLISH is challenged as well.
        let mut alice = Ua::new(k, "alice");
        let uri = k.aor("alice");
        let body = pidf("alice", "open", "x");
        alice.request(
            "PUBLISH",
            &uri,
            &uri,
            "pub-unauth",
            "pt1",
            None,
            "Event: presence\r\nExpires: 60\r\nContent-Type: application/pidf+xml\r\n",
            &body,
        );
        let r = alice.wait_for("PUBLISH response", 5, |m| m.status().is_some());
        assert_eq!(r.status(), Some(code), "{r:?}");

        // With the right credentials (sipp computes the digest) it works.
        k.sipp_publish("alice", &pidf("alice", "open", "Authenticated"), 120);
        let st = k.sipp_subscribe("hub", "alice", "presence");
        assert!(st.success(), "authenticated SUBSCRIBE failed: {st}");
    }
}

#[test]
fn call_through_proxy_gives_dialog_notifies() {
    installed();
    let k = Kamailio::start(AuthMode::None);
    let _bob = k.sipp_register_uas("bob", 700);

    let mut hub = Ua::new(&k, "hub");
    let sub = hub.subscribe(
        "bob",
        "dialog",
        120,
        "Accept: application/dialog-info+xml\r\n",
    );
    assert_eq!(hub.response_to(&sub, 5).status(), Some(200));
    // The immediate NOTIFY: no dialog yet, empty body.
    let first = hub.notify_for(&sub, 5, |_| true);
    assert_eq!(first.header("event"), Some("dialog"));

    let mut states = Vec::new();
    std::thread::scope(|s| {
        let call = s.spawn(|| k.sipp_call("alice", "bob", 1000));
        let deadline = Instant::now() + Duration::from_secs(30);
        while !states.contains(&"terminated") && Instant::now() < deadline {
            let Some(m) = hub.recv(Duration::from_millis(500)) else {
                continue;
            };
            if !m.is_notify() || m.body.is_empty() {
                continue;
            }
            assert_eq!(
                m.header("content-type"),
                Some("application/dialog-info+xml")
            );
            assert!(
                m.body.contains("entity=\"sip:bob@127.0.0.1\""),
                "{}",
                m.body
            );
            assert!(m.body.contains("direction=\"recipient\""), "{}", m.body);
            for st in ["early", "confirmed", "terminated"] {
                if m.body.contains(&format!("<state>{st}</state>")) && !states.contains(&st) {
                    states.push(st);
                }
            }
        }
        let status = call.join().unwrap();
        assert!(status.success(), "call failed: {status}\n{}", k.log());
    });
    assert_eq!(
        states,
        vec!["early", "confirmed", "terminated"],
        "dialog states seen by the watcher"
    );
}

#[test]
fn resource_list_subscription() {
    installed();
    let team = ResourceList {
        owner: "hub".into(),
        name: "team".into(),
        members: vec!["alice".into(), "bob".into()],
    };
    let mut k = Kamailio::start_with_lists(AuthMode::None, std::slice::from_ref(&team));
    k.sipp_publish("alice", &pidf("alice", "open", "In the team"), 300);

    let accept = "Supported: eventlist\r\n\
                  Accept: application/pidf+xml, application/rlmi+xml, multipart/related\r\n";
    let mut hub = Ua::new(&k, "hub");
    let sub = hub.subscribe("team", "presence", 60, accept);
    let ok = hub.response_to(&sub, 5);
    assert_eq!(ok.status(), Some(200), "{ok:?}");
    assert_eq!(ok.header("require"), Some("eventlist"));
    let n = hub.notify_for(&sub, 10, |m| m.body.contains("In the team"));
    let ct = n.header("content-type").unwrap();
    assert!(
        ct.starts_with("multipart/related;type=\"application/rlmi+xml\""),
        "{ct}"
    );
    assert_eq!(n.header("require"), Some("eventlist"));
    assert!(n.body.contains("uri=\"sip:team@127.0.0.1\""), "{}", n.body);
    assert!(
        n.body.contains("<resource uri=\"sip:alice@127.0.0.1\">"),
        "{}",
        n.body
    );

    // A list added while running is served too.
    k.set_lists(&[
        team,
        ResourceList {
            owner: "hub".into(),
            name: "duo".into(),
            members: vec!["carol".into()],
        },
    ]);
    k.sipp_publish("carol", &pidf("carol", "open", "Carol here"), 300);
    let mut hub2 = Ua::new(&k, "hub");
    let sub = hub2.subscribe("duo", "presence", 60, accept);
    assert_eq!(
        hub2.response_to(&sub, 5).header("require"),
        Some("eventlist")
    );
    hub2.notify_for(&sub, 10, |m| m.body.contains("Carol here"));
}

#[test]
fn stop_and_restart_keep_port_and_data() {
    installed();
    let mut k = Kamailio::start(AuthMode::None);
    let port = k.port;
    let pid = k.pid();
    assert!(k.answers());
    k.sipp_publish("dave", &pidf("dave", "open", "Survives restarts"), 600);

    k.stop();
    assert!(!k.is_running());
    assert!(!k.answers(), "still answering after stop");
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "main process still there"
    );

    k.start_again();
    assert_eq!(k.port, port);
    assert_ne!(k.pid(), pid);
    assert!(k.answers());
    let mut hub = Ua::new(&k, "hub");
    let sub = hub.subscribe("dave", "presence", 600, "");
    assert_eq!(hub.response_to(&sub, 5).status(), Some(200));
    hub.notify_for(&sub, 5, |m| m.body.contains("Survives restarts"));

    // Subscriptions survive a restart too: the watcher keeps being notified.
    k.restart();
    k.sipp_publish("dave", &pidf("dave", "open", "After the restart"), 600);
    hub.notify_for(&sub, 10, |m| m.body.contains("After the restart"));

    // restart() and a hard kill work as well.
    k.restart();
    assert!(k.answers());
    k.kill9();
    assert!(!k.answers());
    k.start_again();
    assert!(k.answers());
    assert_eq!(k.port, port);
}
