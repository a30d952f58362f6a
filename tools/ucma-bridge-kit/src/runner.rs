//! The checks (PROTOCOL.md section 12) and the hub-side client they use.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{self, Message};

use crate::protocol::{self, Direction, Schema, VERSION, band, hub_credential, proof};

/// What the kit needs to know about the bridge under test.
#[derive(Clone, Debug)]
pub struct KitConfig {
    /// `wss://host:port/path` of the bridge.
    pub url: String,
    /// The shared token (PROTOCOL.md section 1); never sent as such.
    pub token: String,
    /// PEM of the CA that signed the bridge's certificate.
    pub ca_pem: String,
    /// The `endpoint` object of a `setup` (section 5) that the bridge can
    /// establish.
    pub endpoint: Value,
    /// Existing users to watch (at least one).
    pub targets: Vec<String>,
    /// A test user to publish Do Not Disturb for and restore; `None` skips
    /// the publish checks.
    pub publish_target: Option<String>,
    /// `hello.heartbeat_ms` the kit asks for (1000..=120000).
    pub heartbeat_ms: u64,
    /// Skip `setup-forbidden` and `setup-unreachable` (bridges whose UCMA
    /// takes minutes to give up).
    pub skip_negative_setup: bool,
}

/// The outcome of one check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    Fail,
    Skip,
}

/// One check's result.
#[derive(Clone, Debug)]
pub struct Check {
    /// One of [`CHECKS`].
    pub name: &'static str,
    pub verdict: Verdict,
    /// What was seen; for a failure, what was expected instead.
    pub detail: String,
}

impl Check {
    /// `PASS name — detail`.
    pub fn line(&self) -> String {
        let v = match self.verdict {
            Verdict::Pass => "PASS",
            Verdict::Fail => "FAIL",
            Verdict::Skip => "SKIP",
        };
        format!("{v} {} — {}", self.name, self.detail)
    }
}

/// Every check, in the order the kit reports them.
pub const CHECKS: &[&str] = &[
    "tls",
    "auth-reject",
    "version-unsupported",
    "hello",
    "auth-proof",
    "invalid-state",
    "setup-unreachable",
    "setup-forbidden",
    "setup",
    "watch-results",
    "presence-initial",
    "heartbeat-answer",
    "publish",
    "publish-visible",
    "heartbeat-send",
    "unwatch",
    "reconnect",
    "presence-valid",
    "presence-seq",
    "schema",
];

/// All checks of one run, in [`CHECKS`] order.
#[derive(Clone, Debug, Default)]
pub struct Report {
    pub checks: Vec<Check>,
}

impl Report {
    /// The result of one check, if it ran.
    pub fn get(&self, name: &str) -> Option<&Check> {
        self.checks.iter().find(|c| c.name == name)
    }
    /// True when no check failed.
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.verdict != Verdict::Fail)
    }
    /// Names of the failed checks.
    pub fn failed(&self) -> Vec<&'static str> {
        self.checks
            .iter()
            .filter(|c| c.verdict == Verdict::Fail)
            .map(|c| c.name)
            .collect()
    }
    fn put(&mut self, name: &'static str, verdict: Verdict, detail: impl Into<String>) {
        debug_assert!(CHECKS.contains(&name), "{name}");
        if self.get(name).is_some() {
            return;
        }
        self.checks.push(Check {
            name,
            verdict,
            detail: detail.into(),
        });
    }
    fn pass(&mut self, name: &'static str, detail: impl Into<String>) {
        self.put(name, Verdict::Pass, detail)
    }
    fn fail(&mut self, name: &'static str, detail: impl Into<String>) {
        self.put(name, Verdict::Fail, detail)
    }
    fn skip(&mut self, name: &'static str, detail: impl Into<String>) {
        self.put(name, Verdict::Skip, detail)
    }
    fn verdict(&mut self, name: &'static str, errors: Vec<String>, ok: impl Into<String>) {
        if errors.is_empty() {
            self.pass(name, ok)
        } else {
            self.fail(name, errors.join("; "))
        }
    }
    /// Mark every check not yet reported as skipped, then sort.
    fn finish(mut self, why: &str) -> Report {
        for name in CHECKS {
            self.skip(name, why);
        }
        self.checks
            .sort_by_key(|c| CHECKS.iter().position(|n| *n == c.name));
        self
    }
}

// ------------------------------------------------------------ time stamps

/// Seconds since the epoch of `YYYY-MM-DDTHH:MM:SS[.f]Z`, or `None`.
fn parse_ts(ts: &str) -> Option<f64> {
    let b = ts.as_bytes();
    if b.len() < 20 || !ts.ends_with('Z') || b[4] != b'-' || b[10] != b'T' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| ts.get(r)?.parse::<i64>().ok();
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, s) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let frac: f64 = match &ts[19..ts.len() - 1] {
        "" => 0.0,
        f => format!("0{f}").parse().ok()?,
    };
    // Days from civil (Howard Hinnant's algorithm).
    let y2 = if mo <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let doy = (153 * (if mo > 2 { mo - 3 } else { mo + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some((days * 86_400 + h * 3600 + mi * 60 + s) as f64 + frac)
}

fn now_s() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

// ------------------------------------------------------------ the client

type Ws = WebSocketStream<TlsStream<TcpStream>>;

enum ConnectError {
    /// TCP or TLS failed: the `tls` check's business.
    Transport(String),
    /// The upgrade got this HTTP status instead of 101.
    Http(u16),
    Other(String),
}

fn tls_config(ca_pem: &str) -> Result<Arc<rustls::ClientConfig>, String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        let cert = cert.map_err(|e| format!("CA PEM: {e}"))?;
        roots
            .add(cert)
            .map_err(|e| format!("CA certificate: {e}"))?;
    }
    if roots.is_empty() {
        return Err("the CA file holds no certificate".into());
    }
    let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(Arc::new(cfg))
}

async fn connect(
    url: &str,
    tls: &Arc<rustls::ClientConfig>,
    bearer: &str,
) -> Result<Ws, ConnectError> {
    let u = url::Url::parse(url).map_err(|e| ConnectError::Other(format!("URL: {e}")))?;
    if u.scheme() != "wss" {
        return Err(ConnectError::Other("the URL must be wss://".into()));
    }
    let host = u
        .host_str()
        .ok_or_else(|| ConnectError::Other("URL without host".into()))?
        .trim_matches(['[', ']'])
        .to_string();
    let port = u.port().unwrap_or(443);
    let tcp = tokio::time::timeout(
        Duration::from_secs(10),
        TcpStream::connect((host.as_str(), port)),
    )
    .await
    .map_err(|_| ConnectError::Transport(format!("TCP connect to {host}:{port} timed out")))?
    .map_err(|e| ConnectError::Transport(format!("TCP connect to {host}:{port}: {e}")))?;
    let name = rustls::pki_types::ServerName::try_from(host.clone())
        .map_err(|e| ConnectError::Other(format!("server name {host}: {e}")))?;
    let stream = tokio::time::timeout(
        Duration::from_secs(10),
        tokio_rustls::TlsConnector::from(tls.clone()).connect(name, tcp),
    )
    .await
    .map_err(|_| ConnectError::Transport("TLS handshake timed out".into()))?
    .map_err(|e| ConnectError::Transport(format!("TLS handshake: {e}")))?;
    let mut req = url
        .into_client_request()
        .map_err(|e| ConnectError::Other(e.to_string()))?;
    req.headers_mut().insert(
        "Authorization",
        format!("Bearer {bearer}")
            .parse()
            .map_err(|_| ConnectError::Other("bearer is not a header value".into()))?,
    );
    match tokio::time::timeout(
        Duration::from_secs(10),
        tokio_tungstenite::client_async(req, stream),
    )
    .await
    {
        Err(_) => Err(ConnectError::Other("WebSocket upgrade timed out".into())),
        Ok(Err(tungstenite::Error::Http(resp))) => Err(ConnectError::Http(resp.status().as_u16())),
        Ok(Err(e)) => Err(ConnectError::Other(format!("WebSocket upgrade: {e}"))),
        Ok(Ok((ws, _))) => Ok(ws),
    }
}

/// One connection to the bridge, as the hub would hold it.
struct Client {
    ws: Ws,
    schema: Arc<Schema>,
    /// "A", "B": names the connection in failure details.
    label: &'static str,
    /// Messages read but not yet taken by a check.
    buffered: VecDeque<Value>,
    /// Every parsed bridge message with its arrival time.
    received: Vec<(Instant, Value)>,
    /// Schema violations: "conn type: error".
    violations: Vec<String>,
    /// Indexes into `received` of messages that broke the schema.
    invalid: HashSet<usize>,
    /// Arrival times of the bridge's pings.
    bridge_pings: Vec<Instant>,
    /// Whether to answer the bridge's pings (always, for a hub).
    answer_pings: bool,
    /// Targets watched (between an `active` result and an unwatch result).
    watched: HashSet<String>,
    /// Presence pushes for a target that was not watched when they arrived.
    unwatched_pushes: Vec<(Instant, String)>,
    /// The close frame, once the bridge closed: (code, reason).
    closed: Option<(u16, String)>,
    next_id: u64,
}

impl Client {
    fn new(ws: Ws, schema: Arc<Schema>, label: &'static str) -> Client {
        Client {
            ws,
            schema,
            label,
            buffered: VecDeque::new(),
            received: Vec::new(),
            violations: Vec::new(),
            invalid: HashSet::new(),
            bridge_pings: Vec::new(),
            answer_pings: true,
            watched: HashSet::new(),
            unwatched_pushes: Vec::new(),
            closed: None,
            next_id: 0,
        }
    }

    fn rid(&mut self, prefix: &str) -> String {
        self.next_id += 1;
        format!("{prefix}-{}", self.next_id)
    }

    async fn send(&mut self, msg: Value) -> bool {
        self.ws.send(Message::text(msg.to_string())).await.is_ok()
    }

    /// The next bridge message that is not a ping (pings are answered and
    /// recorded), or `None` at the deadline or when the connection closed.
    async fn read_one(&mut self, deadline: Instant) -> Option<Value> {
        loop {
            if self.closed.is_some() {
                return None;
            }
            let next = tokio::time::timeout_at(deadline.into(), self.ws.next()).await;
            let frame = match next {
                Err(_) => return None,
                Ok(None) | Ok(Some(Err(_))) => {
                    self.closed.get_or_insert((1006, "connection lost".into()));
                    return None;
                }
                Ok(Some(Ok(f))) => f,
            };
            let text = match frame {
                Message::Text(t) => t.to_string(),
                Message::Close(f) => {
                    let (code, reason) = f
                        .map(|f| (u16::from(f.code), f.reason.to_string()))
                        .unwrap_or((1005, String::new()));
                    self.closed = Some((code, reason));
                    return None;
                }
                Message::Binary(_) => {
                    self.violations
                        .push(format!("{}: a binary frame (text only)", self.label));
                    continue;
                }
                _ => continue,
            };
            let at = Instant::now();
            let msg = match self.schema.check_text(Direction::Bridge, &text) {
                Ok(m) => m,
                Err((m, errs)) => {
                    let ty = m
                        .as_ref()
                        .and_then(|m| m["type"].as_str())
                        .unwrap_or("?")
                        .to_string();
                    for e in errs {
                        self.violations.push(format!("{} {ty}: {e}", self.label));
                    }
                    match m {
                        Some(m) => {
                            self.invalid.insert(self.received.len());
                            m
                        }
                        None => continue,
                    }
                }
            };
            self.received.push((at, msg.clone()));
            match msg["type"].as_str() {
                Some("ping") => {
                    self.bridge_pings.push(at);
                    if self.answer_pings {
                        let pong =
                            json!({"v": VERSION, "type": "pong", "request_id": msg["request_id"]});
                        self.send(pong).await;
                    }
                    continue;
                }
                Some("watch-result") => {
                    for r in msg["results"].as_array().into_iter().flatten() {
                        if r["status"] == "active"
                            && let Some(t) = r["target"].as_str()
                        {
                            self.watched.insert(t.to_string());
                        }
                    }
                }
                Some("unwatch-result") => {
                    for r in msg["results"].as_array().into_iter().flatten() {
                        if let Some(t) = r["target"].as_str() {
                            self.watched.remove(t);
                        }
                    }
                }
                Some("target-state") => {
                    if matches!(msg["status"].as_str(), Some("refused" | "not-found"))
                        && let Some(t) = msg["target"].as_str()
                    {
                        self.watched.remove(t);
                    }
                }
                Some("presence") => {
                    let t = msg["target"].as_str().unwrap_or("").to_string();
                    if !self.watched.contains(&t) {
                        self.unwatched_pushes.push((at, t));
                    }
                }
                _ => {}
            }
            return Some(msg);
        }
    }

    /// The first message (buffered or new) matching `pred`, before the
    /// deadline; other messages stay buffered.
    async fn wait_for(&mut self, within: Duration, pred: impl Fn(&Value) -> bool) -> Option<Value> {
        if let Some(i) = self.buffered.iter().position(&pred) {
            return self.buffered.remove(i);
        }
        let deadline = Instant::now() + within;
        while let Some(m) = self.read_one(deadline).await {
            if pred(&m) {
                return Some(m);
            }
            self.buffered.push_back(m);
        }
        None
    }

    /// Answer to a request: the message with this `request_id`.
    async fn answer(&mut self, rid: &str, within: Duration) -> Option<Value> {
        self.wait_for(within, |m| m["request_id"] == rid && m["type"] != "ping")
            .await
    }

    /// Read (and buffer) everything until `until`.
    async fn pump(&mut self, until: Instant) {
        while let Some(m) = self.read_one(until).await {
            self.buffered.push_back(m);
        }
    }

    /// Wait for the close frame (or connection end).
    async fn closed_within(&mut self, within: Duration) -> Option<(u16, String)> {
        let deadline = Instant::now() + within;
        while self.closed.is_none() {
            match self.read_one(deadline).await {
                Some(m) => self.buffered.push_back(m),
                None if self.closed.is_none() => return None,
                None => {}
            }
        }
        self.closed.clone()
    }

    async fn bye(&mut self) {
        self.send(json!({"v": VERSION, "type": "bye", "reason": "hub-stopping"}))
            .await;
        let _ = self.ws.close(None).await;
        // Drain until the bridge acknowledges the close (bounded).
        let _ = self.closed_within(Duration::from_secs(2)).await;
    }
}

/// Hello, welcome and proof on a new connection. `Err` carries the reason
/// for the `hello` check.
struct Welcomed {
    client: Client,
    welcome: Value,
    hub_nonce: String,
    welcomed_at: Instant,
}

async fn open(
    cfg: &KitConfig,
    tls: &Arc<rustls::ClientConfig>,
    schema: &Arc<Schema>,
    label: &'static str,
    versions: &[u64],
) -> Result<(Client, String), String> {
    let ws = match connect(&cfg.url, tls, &hub_credential(&cfg.token)).await {
        Ok(ws) => ws,
        Err(ConnectError::Http(s)) => return Err(format!("upgrade refused with HTTP {s}")),
        Err(ConnectError::Transport(e)) | Err(ConnectError::Other(e)) => return Err(e),
    };
    let mut c = Client::new(ws, schema.clone(), label);
    let hub_nonce = protocol::nonce();
    let hello = json!({"v": 1, "type": "hello", "versions": versions, "nonce": hub_nonce,
        "heartbeat_ms": cfg.heartbeat_ms, "hub": "ucma-bridge-kit/0.1.0"});
    if !c.send(hello).await {
        return Err("could not send hello".into());
    }
    Ok((c, hub_nonce))
}

async fn welcome(
    cfg: &KitConfig,
    tls: &Arc<rustls::ClientConfig>,
    schema: &Arc<Schema>,
    label: &'static str,
) -> Result<Welcomed, String> {
    let (mut client, hub_nonce) = open(cfg, tls, schema, label, &[VERSION]).await?;
    let sent = Instant::now();
    let Some(m) = client.read_one(sent + Duration::from_secs(5)).await else {
        return Err(match &client.closed {
            Some((code, reason)) => format!("no welcome; the bridge closed with {code} {reason}"),
            None => "no welcome within 5 s".into(),
        });
    };
    if m["type"] != "welcome" {
        return Err(format!("expected welcome, got {m}"));
    }
    Ok(Welcomed {
        client,
        welcome: m,
        hub_nonce,
        welcomed_at: Instant::now(),
    })
}

fn check_welcome(w: &Welcomed) -> Vec<String> {
    let mut errs = Vec::new();
    let m = &w.welcome;
    let idx = w.client.received.len() - 1;
    if w.client.invalid.contains(&idx) {
        errs.push("the welcome breaks the schema".to_string());
    }
    if m["version"] != json!(VERSION) {
        errs.push(format!(
            "picked version {} but the kit offered only [{VERSION}]",
            m["version"]
        ));
    }
    if m["v"] != m["version"] {
        errs.push(format!(
            "v {} differs from version {}",
            m["v"], m["version"]
        ));
    }
    errs
}

fn check_proof(cfg: &KitConfig, w: &Welcomed) -> Result<String, String> {
    let m = &w.welcome;
    let (Some(bn), Some(p), Some(v)) = (
        m["nonce"].as_str(),
        m["proof"].as_str(),
        m["version"].as_u64(),
    ) else {
        return Err("welcome without nonce/proof/version".into());
    };
    if bn == w.hub_nonce {
        return Err("the bridge echoed the hub's nonce instead of its own".into());
    }
    let want = proof(&cfg.token, &w.hub_nonce, bn, v);
    if p != want {
        return Err(format!(
            "proof {p} is not HMAC-SHA256(token, \"ucma-bridge-proof|{}|{bn}|{v}\") (a hub closes with 4001 here)",
            w.hub_nonce
        ));
    }
    Ok(p.to_string())
}

async fn setup(c: &mut Client, endpoint: &Value) -> Option<Value> {
    let rid = c.rid("setup");
    c.send(json!({"v": VERSION, "type": "setup", "request_id": rid, "endpoint": endpoint}))
        .await;
    c.answer(&rid, Duration::from_secs(60)).await
}

fn describe(m: &Option<Value>) -> String {
    match m {
        None => "no answer in time".into(),
        Some(m) => m.to_string(),
    }
}

/// Watch `targets`, check the results; returns the active ones and errors.
async fn watch(
    c: &mut Client,
    targets: &[String],
) -> (Vec<String>, Vec<String>, Option<Value>, Instant) {
    let rid = c.rid("watch");
    c.send(json!({"v": VERSION, "type": "watch", "request_id": rid, "targets": targets}))
        .await;
    let res = c.answer(&rid, Duration::from_secs(15)).await;
    let at = Instant::now();
    let mut errs = Vec::new();
    let mut active = Vec::new();
    match &res {
        None => errs.push("no watch-result within 15 s".into()),
        Some(m) if m["type"] != "watch-result" => {
            errs.push(format!("expected watch-result, got {m}"))
        }
        Some(m) => {
            let results = m["results"].as_array().cloned().unwrap_or_default();
            if results.len() != targets.len() {
                errs.push(format!(
                    "{} result(s) for {} target(s): one per target is required",
                    results.len(),
                    targets.len()
                ));
            }
            for (i, t) in targets.iter().enumerate() {
                match results.get(i) {
                    Some(r) if r["target"] == json!(t) => {
                        if r["status"] == "active" {
                            active.push(t.clone());
                        }
                    }
                    Some(r) => errs.push(format!(
                        "result {i} is for {} but the request had {t} there",
                        r["target"]
                    )),
                    None => errs.push(format!("no result for {t}")),
                }
            }
        }
    }
    (active, errs, res, at)
}

/// The initial presence of each active target, seq 1, within 15 s.
async fn initial_pushes(c: &mut Client, active: &[String]) -> Vec<String> {
    let mut errs = Vec::new();
    for t in active {
        let tt = t.clone();
        match c
            .wait_for(Duration::from_secs(15), move |m| {
                m["type"] == "presence" && m["target"] == json!(tt) && m["initial"] == json!(true)
            })
            .await
        {
            None => errs.push(format!("no initial presence for {t} within 15 s")),
            Some(m) if m["seq"] != json!(1) => errs.push(format!(
                "initial presence for {t} has seq {}, expected 1",
                m["seq"]
            )),
            Some(_) => {}
        }
    }
    errs
}

/// Presence checks over one connection's messages.
fn presence_errors(c: &Client, valid: &mut Vec<String>, seq: &mut Vec<String>) {
    let mut last: HashMap<String, i64> = HashMap::new();
    for (i, (_, m)) in c.received.iter().enumerate() {
        if m["type"] != "presence" {
            continue;
        }
        let t = m["target"].as_str().unwrap_or("?").to_string();
        if c.invalid.contains(&i) {
            valid.push(format!("{}: presence for {t} breaks the schema", c.label));
        }
        match (m["availability"].as_i64(), m["band"].as_str()) {
            (Some(a), Some(b)) if band(a) == Some(b) => {}
            (a, b) => valid.push(format!(
                "{}: {t}: band {b:?} does not match availability {a:?} (expected {:?})",
                c.label,
                a.and_then(band)
            )),
        }
        match m["ts"].as_str().and_then(parse_ts) {
            Some(ts) if (ts - now_s()).abs() <= 300.0 => {}
            Some(_) => valid.push(format!(
                "{}: {t}: ts {} is more than 5 min off the kit's clock",
                c.label, m["ts"]
            )),
            None => valid.push(format!(
                "{}: {t}: ts {} is not RFC 3339 UTC",
                c.label, m["ts"]
            )),
        }
        match m["seq"].as_i64() {
            Some(s) => {
                let want = last.get(&t).map_or(1, |p| p + 1);
                if s != want {
                    seq.push(format!("{}: {t}: seq {s} where {want} was due", c.label));
                }
                last.insert(t, s);
            }
            None => seq.push(format!(
                "{}: {t}: seq {} is not an integer",
                c.label, m["seq"]
            )),
        }
    }
    for (_, t) in &c.unwatched_pushes {
        valid.push(format!(
            "{}: presence for {t}, which was not watched at the time",
            c.label
        ));
    }
}

/// Run every check against the bridge `cfg` describes. Never panics on a
/// bridge's misbehaviour; every problem becomes a failed check.
pub async fn run(cfg: &KitConfig) -> Report {
    let mut r = Report::default();
    let schema = Arc::new(Schema::new());
    let tls = match tls_config(&cfg.ca_pem) {
        Ok(t) => t,
        Err(e) => {
            r.fail("tls", e);
            return r.finish("not run: no TLS");
        }
    };

    // -- tls, auth-reject: a wrong bearer must be refused with HTTP 401.
    let wrong = hub_credential(&format!("{}-not-the-token", cfg.token));
    match connect(&cfg.url, &tls, &wrong).await {
        Err(ConnectError::Transport(e)) => {
            r.fail("tls", e);
            return r.finish("not run: no TLS connection");
        }
        Err(ConnectError::Other(e)) => {
            r.pass("tls", "TLS handshake completed");
            r.fail("auth-reject", format!("expected HTTP 401, got: {e}"));
        }
        Err(ConnectError::Http(401)) => {
            r.pass("tls", "TLS handshake completed with the given CA");
            r.pass("auth-reject", "wrong bearer refused with HTTP 401");
        }
        Err(ConnectError::Http(s)) => {
            r.pass("tls", "TLS handshake completed");
            r.fail(
                "auth-reject",
                format!("wrong bearer refused with HTTP {s}, expected 401"),
            );
        }
        Ok(mut ws) => {
            r.pass("tls", "TLS handshake completed");
            r.fail("auth-reject", "the upgrade succeeded with a wrong bearer");
            let _ = ws.close(None).await;
        }
    }

    let mut violations: Vec<String> = Vec::new();

    // -- version-unsupported: offer only 99.
    match open(cfg, &tls, &schema, "V", &[99]).await {
        Err(e) => r.fail("version-unsupported", e),
        Ok((mut c, _)) => {
            let m = c.read_one(Instant::now() + Duration::from_secs(5)).await;
            let mut errs = Vec::new();
            match &m {
                Some(m) if m["type"] == "error" && m["code"] == "version-unsupported" => {
                    if m["fatal"] != json!(true) {
                        errs.push("error not marked fatal".to_string());
                    }
                    if !m["supported"].is_array() {
                        errs.push("error without `supported`".to_string());
                    }
                }
                other => errs.push(format!(
                    "expected error version-unsupported, got {}",
                    describe(other)
                )),
            }
            match c.closed_within(Duration::from_secs(5)).await {
                Some((4002, _)) => {}
                Some((code, _)) => errs.push(format!("closed with {code}, expected 4002")),
                None => errs.push("not closed within 5 s".into()),
            }
            violations.append(&mut c.violations);
            r.verdict(
                "version-unsupported",
                errs,
                "error version-unsupported, then close 4002",
            );
        }
    }

    // -- connection A.
    let w = match welcome(cfg, &tls, &schema, "A").await {
        Ok(w) => w,
        Err(e) => {
            r.fail("hello", e);
            return r.finish("not run: no welcome");
        }
    };
    r.verdict(
        "hello",
        check_welcome(&w),
        format!("welcome {} in version 1", w.welcome["bridge"]),
    );
    let proof_a = match check_proof(cfg, &w) {
        Ok(p) => {
            r.pass("auth-proof", "proof matches the token and both nonces");
            Some(p)
        }
        Err(e) => {
            r.fail("auth-proof", e);
            None
        }
    };
    let welcomed_at = w.welcomed_at;
    let mut a = w.client;

    // -- invalid-state: watch before setup.
    let rid = a.rid("early");
    a.send(json!({"v": VERSION, "type": "watch", "request_id": rid, "targets": [cfg.targets[0]]}))
        .await;
    match a.answer(&rid, Duration::from_secs(5)).await {
        Some(m) if m["type"] == "error" && m["code"] == "invalid-state" => r.pass(
            "invalid-state",
            "watch before setup refused with invalid-state",
        ),
        other => r.fail(
            "invalid-state",
            format!(
                "expected error invalid-state for {rid}, got {}",
                describe(&other)
            ),
        ),
    }

    // -- negative set-ups.
    if cfg.skip_negative_setup {
        r.skip("setup-unreachable", "--skip-negative-setup");
        r.skip("setup-forbidden", "--skip-negative-setup");
    } else {
        let mut ep = cfg.endpoint.clone();
        ep["server_fqdn"] = json!("unreachable.invalid");
        match setup(&mut a, &ep).await {
            Some(m) if m["outcome"] == "failed" && m["code"] == "connection-error" => r.pass(
                "setup-unreachable",
                format!("failed connection-error: {}", m["detail"]),
            ),
            other => r.fail(
                "setup-unreachable",
                format!("expected failed connection-error, got {}", describe(&other)),
            ),
        }
        if cfg.endpoint["kind"] == "user" {
            let mut ep = cfg.endpoint.clone();
            ep["password"] = json!(format!(
                "{}-ucma-kit-wrong",
                ep["password"].as_str().unwrap_or("")
            ));
            match setup(&mut a, &ep).await {
                Some(m) if m["outcome"] == "failed" && m["code"] == "forbidden" => r.pass(
                    "setup-forbidden",
                    format!("failed forbidden: {}", m["detail"]),
                ),
                other => r.fail(
                    "setup-forbidden",
                    format!("expected failed forbidden, got {}", describe(&other)),
                ),
            }
        } else {
            r.skip(
                "setup-forbidden",
                "trusted application: no password to get wrong",
            );
        }
    }

    // -- setup.
    let established = match setup(&mut a, &cfg.endpoint).await {
        Some(m) if m["outcome"] == "established" => {
            r.pass(
                "setup",
                format!(
                    "established as {} (publish: {})",
                    m["endpoint_uri"], m["publish"]
                ),
            );
            true
        }
        other => {
            r.fail(
                "setup",
                format!("expected established within 60 s, got {}", describe(&other)),
            );
            false
        }
    };

    let mut presence_valid = Vec::new();
    let mut presence_seq = Vec::new();
    if established {
        // -- watch-results, presence-initial.
        let domain = cfg.targets[0]
            .split('@')
            .nth(1)
            .unwrap_or("example.invalid");
        let nobody = format!("sip:ucma-kit-nobody-{}@{domain}", &protocol::nonce()[..8]);
        let mut all = cfg.targets.clone();
        all.push(nobody.clone());
        let (active, mut errs, res, _) = watch(&mut a, &all).await;
        if let Some(m) = &res {
            let nb = m["results"]
                .as_array()
                .and_then(|rs| rs.iter().find(|x| x["target"] == json!(nobody)));
            match nb {
                Some(x) if x["status"] == "not-found" => {}
                Some(x) => errs.push(format!(
                    "{nobody} (made up) is {}, expected not-found",
                    x["status"]
                )),
                None => {}
            }
        }
        let n_active = active.len();
        r.verdict(
            "watch-results",
            errs,
            format!("one result per target, {n_active} active, the made-up one not-found"),
        );
        let errs = initial_pushes(&mut a, &active).await;
        r.verdict(
            "presence-initial",
            errs,
            format!("initial presence with seq 1 for {n_active} target(s)"),
        );

        // -- heartbeat-answer.
        let mut errs = Vec::new();
        for _ in 0..3 {
            let rid = a.rid("hb");
            let sent = Instant::now();
            a.send(json!({"v": VERSION, "type": "ping", "request_id": rid}))
                .await;
            match a.answer(&rid, Duration::from_secs(2)).await {
                Some(m) if m["type"] == "pong" => {}
                Some(m) => errs.push(format!("ping {rid} answered with {m}")),
                None => errs.push(format!("no pong for {rid} within 2 s")),
            }
            let _ = sent;
        }
        r.verdict("heartbeat-answer", errs, "3 pings answered within 2 s");

        // -- publish, publish-visible (opt-in).
        match &cfg.publish_target {
            None => {
                r.skip("publish", "no --publish-target");
                r.skip("publish-visible", "no --publish-target");
            }
            Some(t) => {
                let watched = a.watched.contains(t);
                let rid = a.rid("pub");
                a.send(
                    json!({"v": VERSION, "type": "publish", "request_id": rid, "target": t,
                    "availability": 9500, "activity": null}),
                )
                .await;
                let res = a.answer(&rid, Duration::from_secs(30)).await;
                let outcome = res
                    .as_ref()
                    .and_then(|m| m["outcome"].as_str().map(str::to_string));
                let mut errs = Vec::new();
                if let Some(m) = &res
                    && (m["op"] != "publish" || m["target"] != json!(t))
                {
                    errs.push(format!(
                        "publish-result names op {} target {}",
                        m["op"], m["target"]
                    ));
                }
                let mut visible = Vec::new();
                match outcome.as_deref() {
                    Some("applied") => {
                        if watched {
                            let tt = t.clone();
                            if a.wait_for(Duration::from_secs(10), move |m| {
                                m["type"] == "presence"
                                    && m["target"] == json!(tt)
                                    && m["band"] == "do-not-disturb"
                            })
                            .await
                            .is_none()
                            {
                                visible.push(format!(
                                    "no do-not-disturb presence for {t} within 10 s of the publish"
                                ));
                            }
                        }
                        let rid = a.rid("restore");
                        a.send(json!({"v": VERSION, "type": "restore", "request_id": rid, "target": t}))
                            .await;
                        match a.answer(&rid, Duration::from_secs(30)).await {
                            Some(m) if m["outcome"] == "applied" && m["op"] == "restore" => {}
                            other => errs.push(format!(
                                "restore: expected applied, got {}",
                                describe(&other)
                            )),
                        }
                        if watched {
                            let tt = t.clone();
                            if a.wait_for(Duration::from_secs(10), move |m| {
                                m["type"] == "presence" && m["target"] == json!(tt)
                            })
                            .await
                            .is_none()
                            {
                                visible.push(format!(
                                    "no presence for {t} within 10 s of the restore"
                                ));
                            }
                        }
                    }
                    Some("unsupported") => {}
                    Some(_) => errs.push(format!("publish failed: {}", describe(&res))),
                    None => errs.push(format!(
                        "expected publish-result within 30 s, got {}",
                        describe(&res)
                    )),
                }
                let ok = match (&outcome, &res) {
                    (Some(o), _) if o == "applied" => {
                        "publish applied; restore applied".to_string()
                    }
                    (_, Some(m)) => format!("publish answered unsupported: {}", m["reason"]),
                    _ => String::new(),
                };
                r.verdict("publish", errs, ok);
                if outcome.as_deref() != Some("applied") {
                    r.skip("publish-visible", "the publish was not applied");
                } else if !watched {
                    r.skip(
                        "publish-visible",
                        "the publish target is not among the active --target",
                    );
                } else {
                    r.verdict(
                        "publish-visible",
                        visible,
                        "DND pushed after the publish, a new presence after the restore",
                    );
                }
            }
        }

        // -- heartbeat-send: give the bridge two intervals and a second.
        let hb = Duration::from_millis(cfg.heartbeat_ms);
        let tol = Duration::from_secs(1);
        a.pump(welcomed_at + hb * 2 + tol).await;
        let mut errs = Vec::new();
        let mut prev = welcomed_at;
        for p in &a.bridge_pings {
            if p.duration_since(prev) > hb + tol {
                errs.push(format!(
                    "{} ms between bridge pings (heartbeat_ms {})",
                    p.duration_since(prev).as_millis(),
                    cfg.heartbeat_ms
                ));
            }
            prev = *p;
        }
        if Instant::now().duration_since(prev) > hb + tol {
            errs.push(format!(
                "no bridge ping for {} ms (heartbeat_ms {})",
                Instant::now().duration_since(prev).as_millis(),
                cfg.heartbeat_ms
            ));
        }
        let n = a.bridge_pings.len();
        r.verdict(
            "heartbeat-send",
            errs,
            format!("{n} bridge pings, none late"),
        );

        // -- unwatch.
        if let Some(t) = active.first().cloned() {
            let rid = a.rid("unwatch");
            a.send(json!({"v": VERSION, "type": "unwatch", "request_id": rid, "targets": [t]}))
                .await;
            let mut errs = Vec::new();
            match a.answer(&rid, Duration::from_secs(15)).await {
                Some(m) if m["type"] == "unwatch-result" => {
                    let ok = m["results"].as_array().is_some_and(|rs| {
                        rs.len() == 1 && rs[0]["target"] == json!(t) && rs[0]["status"] == "removed"
                    });
                    if !ok {
                        errs.push(format!(
                            "expected [{{target {t}, removed}}], got {}",
                            m["results"]
                        ));
                    }
                }
                other => errs.push(format!("expected unwatch-result, got {}", describe(&other))),
            }
            let since = Instant::now();
            a.pump(since + Duration::from_secs(2)).await;
            if a.unwatched_pushes
                .iter()
                .any(|(at, x)| *at >= since && *x == t)
            {
                errs.push(format!("presence for {t} after its unwatch-result"));
            }
            r.verdict("unwatch", errs, format!("{t} removed; no presence after"));
        } else {
            r.skip("unwatch", "no active target");
        }
    }
    presence_errors(&a, &mut presence_valid, &mut presence_seq);
    violations.append(&mut a.violations);
    a.bye().await;

    // -- reconnect: a new connection starts from nothing.
    if established {
        let mut errs = Vec::new();
        match welcome(cfg, &tls, &schema, "B").await {
            Err(e) => errs.push(format!("second connection: {e}")),
            Ok(w) => {
                errs.extend(check_welcome(&w));
                match check_proof(cfg, &w) {
                    Ok(p) if Some(&p) == proof_a.as_ref() => errs.push(
                        "the same proof as on the first connection (nonces not fresh?)".into(),
                    ),
                    Ok(_) => {}
                    Err(e) => errs.push(e),
                }
                let mut b = w.client;
                match setup(&mut b, &cfg.endpoint).await {
                    Some(m) if m["outcome"] == "established" => {
                        let (active, werrs, _, _) = watch(&mut b, &cfg.targets).await;
                        errs.extend(werrs);
                        errs.extend(initial_pushes(&mut b, &active).await);
                    }
                    other => errs.push(format!("set-up again: {}", describe(&other))),
                }
                presence_errors(&b, &mut presence_valid, &mut presence_seq);
                violations.append(&mut b.violations);
                b.bye().await;
            }
        }
        r.verdict(
            "reconnect",
            errs,
            "new connection: set-up, watch results and initial pushes with seq 1 again",
        );
        r.verdict(
            "presence-valid",
            presence_valid,
            "every presence schema-valid, band agrees, ts current, only for watched targets",
        );
        r.verdict(
            "presence-seq",
            presence_seq,
            "seq 1, 2, 3 … per target and connection",
        );
    }
    let n = violations.len();
    violations.truncate(10);
    if n > 0 {
        r.fail(
            "schema",
            format!("{n} violation(s): {}", violations.join(" | ")),
        );
    } else {
        r.pass(
            "schema",
            "every bridge message valid against messages.schema.json",
        );
    }
    r.finish("not run: set-up failed")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps() {
        assert_eq!(parse_ts("1970-01-01T00:00:00Z"), Some(0.0));
        assert_eq!(parse_ts("2024-05-06T09:12:33Z"), Some(1_714_986_753.0));
        let f = parse_ts("2024-05-06T09:12:33.1234567Z").unwrap();
        assert!((f - 1_714_986_753.123_456_7).abs() < 1e-3);
        assert_eq!(parse_ts("2024-05-06 09:12:33Z"), None);
        assert_eq!(parse_ts("2024-05-06T09:12:33+02:00"), None);
    }

    #[test]
    fn report_order_and_skips() {
        let mut r = Report::default();
        r.fail("schema", "x");
        r.pass("tls", "y");
        let r = r.finish("z");
        assert_eq!(r.checks.len(), CHECKS.len());
        assert_eq!(r.checks[0].name, "tls");
        assert_eq!(r.failed(), vec!["schema"]);
        assert!(!r.passed());
    }
}
