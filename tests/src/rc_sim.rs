//! A strict RingCentral platform simulator for the RingCentral connector's
//! end-to-end tests.
//!
//! It plays, on 127.0.0.1, what RingCentral's OpenAPI description
//! (`tests/rc_openapi/ringcentral-openapi.yml`) and developer guide say the
//! platform does, and refuses what they refuse:
//!
//! - **Every request is checked against the OpenAPI description** by
//!   openapi-core in a Python sidecar (`tests/rc_openapi/check.py`): REST
//!   calls, OAuth form posts and the REST requests carried in WebSocket
//!   `ClientRequest` frames. An invalid one is answered 400 with
//!   RingCentral's error body (`CMN-101`, schema
//!   `ParameterizedErrorResponseModel`) and recorded as a violation;
//!   dropping an [`RcSim`] with violations nobody took fails the test.
//! - OAuth (`/restapi/oauth/token|authorize|revoke|wstoken`): JWT bearer,
//!   authorization code (auto-consent), single-use refresh tokens,
//!   revocation of whole sessions; bearer checks (401) on every API call.
//! - Extensions (`GET .../extension`, paged), presence (`GET/PUT
//!   .../extension/{id}/presence`, `GET .../account/{id}/presence`).
//! - Subscriptions: WebHook (validation handshake, deliveries with the
//!   verification token, expiry, renewal) and WebSocket (the WebSocket
//!   gateway: `ConnectionDetails`, `ClientRequest`, `ServerNotification`,
//!   `Heartbeat`, server pings, session recovery with `wsc`, idle and
//!   absolute timeouts).
//! - Rate limits per `x-throttling-group` of the matched operation (read
//!   from the description), with the penalty window and its reset.
//!
//! Tests drive users' presence (status, DND, queue-call acceptance, notes,
//! meetings, calls) and turn knobs (throttling, token expiry and
//! revocation, forced WebSocket disconnects, short subscription lifetimes).
//!
//! Where the vendor's documents leave a detail open, the comment at that
//! place says "unverified" and names the choice.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde_json::{Value, json};
use tokio::sync::mpsc;

/// Largest `expiresIn` for a WebHook subscription (RC-OAS
/// `UpdateSubscriptionRequest.expiresIn`: 315360000 s, ten years).
pub const WEBHOOK_MAX_EXPIRES_IN: u64 = 315_360_000;
/// Missed events a WebSocket session keeps for recovery (`recoveryBufferSize`
/// in the guide's `ConnectionDetails` sample).
pub const RECOVERY_BUFFER_SIZE: usize = 100;
/// Lifetime of a WebSocket access token (`expires_in` in the guide's sample).
pub const WS_TOKEN_TTL_S: u64 = 30;
/// Lifetime of an authorization code (C7: the redirect carries
/// `expires_in=60`).
pub const AUTH_CODE_TTL_S: u64 = 60;
/// Latest active calls a detailed presence event carries (C4).
const MAX_EVENT_CALLS: usize = 7;

/// Requests per window for each rate-limit group and the penalty interval
/// (C8, `docs/basics/rate-limits.md`: Light 50, Medium 40, Heavy 10, Auth 5
/// per minute, penalty 60 s).
#[derive(Debug, Clone)]
pub struct RateLimits {
    pub light: u32,
    pub medium: u32,
    pub heavy: u32,
    pub auth: u32,
    /// Window of the limits, seconds (`X-Rate-Limit-Window`).
    pub window_s: u64,
    /// Penalty interval after a 429, seconds (`Retry-After`).
    pub penalty_s: u64,
}

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits {
            light: 50,
            medium: 40,
            heavy: 10,
            auth: 5,
            window_s: 60,
            penalty_s: 60,
        }
    }
}

impl RateLimits {
    fn of(&self, group: &str) -> Option<u32> {
        match group {
            "Light" => Some(self.light),
            "Medium" => Some(self.medium),
            "Heavy" => Some(self.heavy),
            "Auth" => Some(self.auth),
            _ => None,
        }
    }
}

/// The simulated account and app registration.
#[derive(Debug, Clone)]
pub struct RcSimConfig {
    /// The account id (`~` in paths means this account).
    pub account_id: String,
    pub client_id: String,
    pub client_secret: String,
    /// The JWT credential `assertion` must equal for the JWT bearer grant.
    pub jwt: String,
    /// The JWT's user (and the user who consents in the auth-code flow), an
    /// administrator; `~` as extension id means this extension.
    pub owner_extension: u64,
    /// Access token lifetime, seconds (`expires_in`).
    pub access_ttl_s: u64,
    /// Refresh token lifetime, seconds (`refresh_token_expires_in`).
    pub refresh_ttl_s: u64,
    /// Cap on the `expiresIn` granted to WebHook subscriptions, seconds.
    pub max_expires_in_s: u64,
    /// How long a dropped WebSocket session stays recoverable, seconds
    /// (`recoveryTimeout`, 180 in the guide).
    pub recovery_timeout_s: u64,
    pub limits: RateLimits,
    /// A WebSocket with no client message for this long gets `WSG-902`
    /// and is closed (`idleTimeout`, 1800 s in the guide).
    pub ws_idle_timeout_s: u64,
    /// Every WebSocket is closed with `WSG-903` after this long
    /// (`absoluteTimeout`, 86400 s in the guide).
    pub ws_absolute_timeout_s: u64,
    /// Interval of the server's WebSocket ping frames, seconds.
    pub ws_ping_interval_s: u64,
}

impl Default for RcSimConfig {
    fn default() -> Self {
        RcSimConfig {
            account_id: "37439510".into(),
            client_id: "rcSimClientId0000000001".into(),
            client_secret: "rc-sim-client-secret".into(),
            jwt: "eyJraWQiOiJyYy1zaW0iLCJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJodHRwczovL3BsYXRmb3JtLnJpbmdjZW50cmFsLmNvbS9yZXN0YXBpL29hdXRoL3Rva2VuIiwic3ViIjoiMTAwMDAwNDAwNCJ9.c2ltdWxhdGVk".into(),
            owner_extension: 1_000_004_004,
            access_ttl_s: 3600,
            refresh_ttl_s: 604_800,
            max_expires_in_s: WEBHOOK_MAX_EXPIRES_IN,
            recovery_timeout_s: 180,
            limits: RateLimits::default(),
            ws_idle_timeout_s: 1800,
            ws_absolute_timeout_s: 86_400,
            ws_ping_interval_s: 30,
        }
    }
}

/// One request the simulator answered (REST or a WebSocket `ClientRequest`).
#[derive(Debug, Clone)]
pub struct Logged {
    pub at: Instant,
    pub method: String,
    /// Path without query (a trailing `/` removed).
    pub path: String,
    pub query: String,
    /// `x-throttling-group` of the matched operation.
    pub group: Option<String>,
    /// `operationId` of the matched operation.
    pub operation: Option<String>,
    pub status: u16,
    /// Carried in a WebSocket `ClientRequest` frame.
    pub over_ws: bool,
    /// `grant_type` of token requests.
    pub grant: Option<String>,
    /// Sent inside a penalty window (and so reset it).
    pub penalty_reset: bool,
}

/// A WebHook notification POSTed to a subscription's address.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub at: Instant,
    pub subscription: String,
    /// The subscription's WebHook address the notification went to.
    pub address: String,
    /// The envelope's `event`.
    pub event: String,
    /// The answer's status; 0 when none came within 3 s.
    pub status: u16,
    /// The envelope `{uuid, event, timestamp, subscriptionId, ownerId, body}`.
    pub envelope: Value,
}

/// A subscription as tests see it.
#[derive(Debug, Clone)]
pub struct SubView {
    pub id: String,
    /// `WebHook` or `WebSocket`.
    pub transport: String,
    pub filters: Vec<String>,
    /// `disabledFilters` as answered.
    pub disabled: Vec<Value>,
    /// WebHook address.
    pub address: Option<String>,
    /// Expiry, Unix ms (WebSocket subscriptions: while the session lives).
    pub expires_at_ms: u64,
    pub expires_at: Instant,
    pub renewals: u32,
    /// False once expired, deleted, replaced or lost with its session.
    pub active: bool,
    /// Why it ended (`expired`, `deleted`, `replaced`, `session lost`).
    pub ended: Option<String>,
}

#[derive(Clone)]
struct Call {
    id: String,
    direction: String,
    queue_call: bool,
    status: String,
    start_ms: u64,
    from: String,
    from_name: String,
    to: String,
    to_name: String,
    party_id: String,
    session_id: String,
    telephony_session_id: String,
}

struct Ext {
    id: u64,
    number: String,
    name: String,
    email: String,
    kind: &'static str,
    /// The new communication handling service: `dndStatusPersonal` and
    /// `acceptCallQueueCalls` instead of `dndStatus` (RC-OAS
    /// `PresenceInfoResponse`).
    new_comm: bool,
    /// Presence the app may not read (subscriptions list it in
    /// `disabledFilters`).
    refused: bool,
    user_status: String,
    dnd: String,
    dnd_personal: String,
    accept_cq: bool,
    message: String,
    meeting: bool,
    allow_see: bool,
    ring_on_monitored: bool,
    pick_up_on_hold: bool,
    caller_id_visibility: Option<String>,
    calls: Vec<Call>,
    sequence: u64,
    writes: Vec<Value>,
}

enum Transport {
    WebHook {
        address: String,
        token: Option<String>,
    },
    WebSocket {
        session: String,
    },
}

struct SubRec {
    id: String,
    filters: Vec<String>,
    disabled: Vec<Value>,
    transport: Transport,
    owner: u64,
    created_ms: u64,
    expires_ms: u64,
    expires_at: Instant,
    asked: u64,
    renewals: u32,
    ended: Option<String>,
}

struct Session {
    owner: u64,
    revoked: bool,
    refresh: Option<String>,
    refresh_expires: Instant,
}

struct Access {
    session: String,
    expires: Instant,
    revoked: bool,
}

struct AuthCode {
    redirect_uri: String,
    expires: Instant,
}

struct WsToken {
    owner: u64,
    session: String,
    expires: Instant,
}

struct WsSession {
    wsc: String,
    owner: u64,
    auth_session: String,
    sequence: u64,
    sub: Option<String>,
    conn: Option<u64>,
    disconnected_at: Option<Instant>,
    buffer: VecDeque<Value>,
}

enum WsOut {
    Frame(String),
    Drop,
}

#[derive(Default)]
struct Bucket {
    hits: VecDeque<Instant>,
    penalty_until: Option<Instant>,
    penalty_len: u64,
    forced: Option<u64>,
}

struct HookJob {
    url: String,
    token: Option<String>,
    subscription: String,
    envelope: Value,
}

struct Sim {
    cfg: RcSimConfig,
    base: String,
    exts: Vec<Ext>,
    next_id: u64,
    sessions: HashMap<String, Session>,
    access: HashMap<String, Access>,
    refresh: HashMap<String, String>,
    spent_refresh: HashSet<String>,
    codes: HashMap<String, AuthCode>,
    ws_tokens: HashMap<String, WsToken>,
    ws_sessions: HashMap<String, WsSession>,
    conns: HashMap<u64, mpsc::UnboundedSender<WsOut>>,
    next_conn: u64,
    recoveries: Vec<String>,
    ws_frames: Vec<Value>,
    subs: BTreeMap<String, SubRec>,
    buckets: HashMap<String, Bucket>,
    penalty_resets: usize,
    grants: HashMap<String, usize>,
    log: Vec<Logged>,
    deliveries: Vec<Delivery>,
    violations: Vec<String>,
    hook_tx: mpsc::UnboundedSender<HookJob>,
    next_call: u64,
}

/// The running simulator.
pub struct RcSim {
    base: String,
    state: Arc<Mutex<Sim>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for RcSim {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
        let conns: Vec<_> = self.lock().conns.drain().map(|(_, tx)| tx).collect();
        for tx in conns {
            let _ = tx.send(WsOut::Drop);
        }
        if !std::thread::panicking() {
            let v = self.violations();
            if !v.is_empty() {
                panic!(
                    "the RingCentral simulator recorded {} request(s) that break RingCentral's OpenAPI description or guide (take_violations() if a test meant to send them):\n  {}",
                    v.len(),
                    v.join("\n  ")
                );
            }
        }
    }
}

// ---------------------------------------------------------------- helpers

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as u64
}

fn guid() -> String {
    let h = format!("{:032x}", fastrand::u128(..));
    format!(
        "{}-{}-4{}-8{}-{}",
        &h[0..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..32]
    )
}

fn opaque(prefix: &str) -> String {
    format!(
        "{prefix}{:032X}{:016X}",
        fastrand::u128(..),
        fastrand::u64(..)
    )
}

/// ISO 8601 with milliseconds and `Z`, as RingCentral writes
/// (`2016-02-18T09:37:24.597Z`).
fn iso(ms: u64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .expect("time in range");
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

fn urlencode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn query_map(q: &str) -> HashMap<String, Vec<String>> {
    let mut m: HashMap<String, Vec<String>> = HashMap::new();
    for (k, v) in form_urlencoded::parse(q.as_bytes()) {
        m.entry(k.into_owned()).or_default().push(v.into_owned());
    }
    m
}

fn q_true(q: &HashMap<String, Vec<String>>, k: &str) -> bool {
    q.get(k)
        .and_then(|v| v.first())
        .is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

fn q_num(q: &HashMap<String, Vec<String>>, k: &str) -> Option<u64> {
    q.get(k)
        .and_then(|v| v.first())
        .and_then(|v| v.parse().ok())
}

/// An answer before it becomes an HTTP response or a `ClientRequest` frame.
struct Answer {
    status: u16,
    body: Option<Value>,
    headers: Vec<(String, String)>,
}

impl Answer {
    fn json(status: u16, body: Value) -> Answer {
        Answer {
            status,
            body: Some(body),
            headers: Vec::new(),
        }
    }
    fn empty(status: u16) -> Answer {
        Answer {
            status,
            body: None,
            headers: Vec::new(),
        }
    }
    fn header(mut self, k: &str, v: impl Into<String>) -> Answer {
        self.headers.push((k.to_string(), v.into()));
        self
    }
}

/// RingCentral's API error body (guide `docs/basics/errors.md`; RC-OAS
/// `ApiErrorResponseModel`/`ParameterizedErrorResponseModel`), with the
/// first error repeated at the top level as the platform does (the
/// `CMN-301` sample in the community article on 429s).
fn api_error(status: u16, code: &str, message: &str) -> Answer {
    Answer::json(
        status,
        json!({
            "errorCode": code,
            "message": message,
            "errors": [{"errorCode": code, "message": message}],
        }),
    )
}

fn api_error_param(status: u16, code: &str, message: &str, param: &str) -> Answer {
    Answer::json(
        status,
        json!({
            "errorCode": code,
            "message": message,
            "errors": [{"errorCode": code, "message": message, "parameterName": param}],
        }),
    )
}

/// OAuth error body (RC-OAS response `OauthInvalidRequest`: `error` from
/// RFC 6749 plus `ParameterizedErrorResponseModel`; the OAU-210 sample in
/// RingCentral's community article has `error`, `errors`,
/// `error_description`).
fn oauth_error(status: u16, error: &str, code: &str, description: &str) -> Answer {
    Answer::json(
        status,
        json!({
            "error": error,
            "error_description": description,
            "errors": [{"errorCode": code, "message": description}],
        }),
    )
}

// ------------------------------------------------------- OpenAPI sidecar

/// The verdict of `tests/rc_openapi/check.py` on one request.
#[derive(Debug, Clone)]
struct Verdict {
    ok: bool,
    operation: Option<String>,
    group: Option<String>,
    errors: Vec<String>,
}

/// One openapi-core process per test process: it is stateless, loading the
/// 1.7 MB description costs about a second, and end-to-end test files start
/// several simulators (two at once in some tests). Requests are serialized
/// through the mutex (3–30 ms each).
struct Checker {
    io: Mutex<(ChildStdin, BufReader<ChildStdout>)>,
    _child: Child,
}

static CHECKER: OnceLock<Checker> = OnceLock::new();

const FIX: &str = "run `bash .ci/install-test-deps.sh` (it installs openapi-core==0.23.1 into target/openapi-venv), or point RC_OPENAPI_PYTHON at a python that has it";

fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("RC_OPENAPI_PYTHON") {
        return PathBuf::from(p);
    }
    let venv = crate::root().join("target/openapi-venv/bin/python");
    if venv.exists() {
        return venv;
    }
    PathBuf::from("python3")
}

fn checker() -> &'static Checker {
    CHECKER.get_or_init(|| {
        let py = python();
        let script = crate::root().join("tests/rc_openapi/check.py");
        let mut child = Command::new(&py)
            .arg("-u")
            .arg(&script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start {} for the RingCentral OpenAPI check: {e}; {FIX}",
                    py.display()
                )
            });
        let stdin = child.stdin.take().unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap_or_default();
        let hello: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
        if hello["ready"] != json!(true) {
            let _ = child.kill();
            panic!(
                "the RingCentral OpenAPI check ({} {}) did not start: {}; {FIX}",
                py.display(),
                script.display(),
                hello["error"].as_str().unwrap_or(line.trim())
            );
        }
        Checker {
            io: Mutex::new((stdin, stdout)),
            _child: child,
        }
    })
}

impl Checker {
    fn check(
        &self,
        method: &str,
        path: &str,
        query: &str,
        ct: &str,
        body: &[u8],
        ws: bool,
    ) -> Verdict {
        let line = json!({
            "method": method,
            "path": path,
            "query": query,
            "content_type": ct,
            "body_b64": base64::engine::general_purpose::STANDARD.encode(body),
            "ws": ws,
        })
        .to_string();
        let mut io = self.io.lock().unwrap_or_else(|p| p.into_inner());
        let (stdin, stdout) = &mut *io;
        writeln!(stdin, "{line}")
            .and_then(|_| stdin.flush())
            .unwrap_or_else(|e| panic!("the RingCentral OpenAPI check died: {e}; {FIX}"));
        let mut out = String::new();
        stdout.read_line(&mut out).unwrap_or_default();
        let v: Value = serde_json::from_str(&out).unwrap_or_else(|_| {
            panic!("the RingCentral OpenAPI check died (answered {out:?}); {FIX}")
        });
        Verdict {
            ok: v["ok"] == json!(true),
            operation: v["operation"].as_str().map(str::to_string),
            group: v["group"].as_str().map(str::to_string),
            errors: v["errors"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|e| e.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default(),
        }
    }
}

// ------------------------------------------------------------ presence

fn name_parts(name: &str) -> (String, String) {
    match name.split_once(' ') {
        Some((f, l)) => (f.to_string(), l.to_string()),
        None => (name.to_string(), String::new()),
    }
}

impl Ext {
    /// `telephonyStatus` across the extension's calls. Unverified: which
    /// call wins when several are in different states; this picks
    /// CallConnected, then Ringing, then OnHold.
    fn telephony(&self) -> &'static str {
        let has = |s: &str| self.calls.iter().any(|c| c.status == s);
        if has("CallConnected") {
            "CallConnected"
        } else if has("Ringing") {
            "Ringing"
        } else if has("OnHold") {
            "OnHold"
        } else {
            "NoCall"
        }
    }

    /// `presenceStatus`, "aggregated presence status, calculated from a
    /// number of sources" (RC-OAS `PresenceInfoResponse`); the exact rule is
    /// not published. The rule here: Offline if the user set Offline; Busy
    /// if on a call (any state), in a meeting, or the user set Busy; else
    /// Available. DND does not enter it (its enum has no DND value; DND is
    /// `dndStatus`).
    fn presence_status(&self) -> &'static str {
        if self.user_status == "Offline" {
            "Offline"
        } else if !self.calls.is_empty() || self.meeting || self.user_status == "Busy" {
            "Busy"
        } else {
            "Available"
        }
    }

    fn call_json(c: &Call, sip: bool) -> Value {
        let mut v = json!({
            "id": c.id,
            "direction": c.direction,
            "queueCall": c.queue_call,
            "from": c.from,
            "fromName": c.from_name,
            "to": c.to,
            "toName": c.to_name,
            "telephonyStatus": c.status,
            "startTime": iso(c.start_ms),
            "sessionId": c.session_id,
            "partyId": c.party_id,
            "telephonySessionId": c.telephony_session_id,
        });
        if c.status == "NoCall" {
            v["terminationType"] = json!("final");
        }
        if sip {
            v["sipData"] = json!({
                "callId": format!("{}@sip.ringcentral.com", c.session_id),
                "toTag": "blf",
                "fromTag": format!("{:x}", fastrand::u64(..)),
                "remoteUri": format!("sip:{}@sip.ringcentral.com", if c.direction == "Inbound" { &c.from } else { &c.to }),
                "localUri": format!("sip:{}@sip.ringcentral.com", if c.direction == "Inbound" { &c.to } else { &c.from }),
            });
        }
        v
    }

    /// The fields both `PresenceInfoResponse` and the presence event bodies
    /// carry.
    fn common(&self, v: &mut Value) {
        v["presenceStatus"] = json!(self.presence_status());
        v["telephonyStatus"] = json!(self.telephony());
        v["userStatus"] = json!(self.user_status);
        if self.kind == "User" {
            if self.new_comm {
                v["dndStatusPersonal"] = json!(self.dnd_personal);
                v["acceptCallQueueCalls"] = json!(self.accept_cq);
            } else {
                v["dndStatus"] = json!(self.dnd);
            }
        }
        v["meetingStatus"] = json!(if self.meeting {
            "Connected"
        } else {
            "Disconnected"
        });
        if !self.message.is_empty() {
            v["message"] = json!(self.message);
        }
        v["allowSeeMyPresence"] = json!(self.allow_see);
        v["ringOnMonitoredCall"] = json!(self.ring_on_monitored);
        v["pickUpCallsOnHold"] = json!(self.pick_up_on_hold);
        if let Some(c) = &self.caller_id_visibility {
            v["callerIdVisibility"] = json!(c);
        }
    }

    /// `PresenceInfoResponse` (RC-OAS).
    fn presence_json(&self, base: &str, account: &str, detailed: bool, sip: bool) -> Value {
        let ext_uri = format!(
            "{base}/restapi/v1.0/account/{account}/extension/{}",
            self.id
        );
        let mut v = json!({
            "uri": format!("{ext_uri}/presence"),
            "extension": {"id": self.id, "uri": ext_uri, "extensionNumber": self.number},
        });
        self.common(&mut v);
        if detailed || sip {
            v["activeCalls"] = self.calls.iter().map(|c| Ext::call_json(c, sip)).collect();
        }
        v
    }

    /// The event body (RC-OAS `ExtensionPresenceEventBody`,
    /// `DetailedExtensionPresenceEventBody`; C4 sample). `ended` are calls
    /// that just ended: they appear once with `NoCall` and
    /// `terminationType: final`.
    fn event_body(&self, detailed: bool, sip: bool, ended: &[Call]) -> Value {
        let mut v = json!({"extensionId": self.id.to_string(), "sequence": self.sequence});
        self.common(&mut v);
        if detailed || sip {
            let all: Vec<&Call> = self.calls.iter().chain(ended.iter()).collect();
            let shown = &all[all.len().saturating_sub(MAX_EVENT_CALLS)..];
            v["activeCalls"] = shown.iter().map(|c| Ext::call_json(c, sip)).collect();
            v["totalActiveCalls"] = json!(self.calls.len());
        }
        v
    }

    fn list_json(&self, base: &str, account: &str) -> Value {
        let (first, last) = name_parts(&self.name);
        let mut contact = json!({"firstName": first, "email": self.email});
        if !last.is_empty() {
            contact["lastName"] = json!(last);
        }
        if self.email.is_empty() {
            contact.as_object_mut().unwrap().remove("email");
        }
        json!({
            "uri": format!("{base}/restapi/v1.0/account/{account}/extension/{}", self.id),
            "id": self.id,
            "extensionNumber": self.number,
            "name": self.name,
            "type": self.kind,
            "status": "Enabled",
            "contact": contact,
        })
    }
}

/// What an event filter names (C4).
#[derive(Clone, Copy, PartialEq)]
enum Scope {
    Owner,
    Ext(u64),
    Account,
}

struct Filter {
    scope: Scope,
    detailed: bool,
    sip: bool,
}

fn parse_filter(f: &str, account: &str) -> Option<Filter> {
    let (path, q) = f.split_once('?').unwrap_or((f, ""));
    let q = query_map(q);
    let known = ["detailedTelephonyState", "sipData"];
    if q.keys().any(|k| !known.contains(&k.as_str())) {
        return None;
    }
    let sip = q_true(&q, "sipData");
    let detailed = sip || q_true(&q, "detailedTelephonyState");
    let parts: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    let scope = match parts.as_slice() {
        ["", "restapi", "v1.0", "account", acc, "presence"] if *acc == "~" || *acc == account => {
            Scope::Account
        }
        [
            "",
            "restapi",
            "v1.0",
            "account",
            acc,
            "extension",
            ext,
            "presence",
        ] if *acc == "~" || *acc == account => {
            if *ext == "~" {
                Scope::Owner
            } else {
                Scope::Ext(ext.parse().ok()?)
            }
        }
        _ => return None,
    };
    Some(Filter {
        scope,
        detailed,
        sip,
    })
}

// ------------------------------------------------------------ the state

impl Sim {
    fn ext(&self, id: u64) -> Option<usize> {
        self.exts.iter().position(|e| e.id == id)
    }

    fn ext_idx(&self, id: u64) -> usize {
        self.ext(id)
            .unwrap_or_else(|| panic!("no extension {id} in the simulated account"))
    }

    fn violation(&mut self, v: String) {
        eprintln!("rc_sim violation: {v}");
        self.violations.push(v);
    }

    /// A presence change of `idx`: bump `sequence`, notify every matching
    /// subscription once, with its most detailed matching filter (C4: "if
    /// both simple and detailed filters are given you receive detailed").
    fn changed(&mut self, idx: usize, ended: &[Call]) {
        self.exts[idx].sequence += 1;
        let ext_id = self.exts[idx].id;
        let account = self.cfg.account_id.clone();
        let mut out: Vec<(String, String, bool, bool)> = Vec::new();
        for s in self.subs.values() {
            if s.ended.is_some() || self.exts[idx].refused {
                continue;
            }
            let mut best: Option<(&String, &Filter)> = None;
            let parsed: Vec<(String, Filter)> = s
                .filters
                .iter()
                .filter_map(|f| parse_filter(f, &account).map(|p| (f.clone(), p)))
                .collect();
            for (f, p) in &parsed {
                let hit = match p.scope {
                    Scope::Owner => s.owner == ext_id,
                    Scope::Ext(e) => e == ext_id,
                    Scope::Account => true,
                };
                if hit && best.is_none_or(|(_, b)| (p.sip, p.detailed) > (b.sip, b.detailed)) {
                    best = Some((f, p));
                }
            }
            if let Some((f, p)) = best {
                // The event names the extension; the account part stays as
                // subscribed (C4 sample: `/restapi/v1.0/account/~/extension/
                // 6610372004/presence?detailedTelephonyState=true`).
                let (path, q) = f.split_once('?').unwrap_or((f, ""));
                let acc = path.split('/').nth(4).unwrap_or("~");
                let mut event = format!("/restapi/v1.0/account/{acc}/extension/{ext_id}/presence");
                if !q.is_empty() {
                    event = format!("{event}?{q}");
                }
                out.push((s.id.clone(), event, p.detailed, p.sip));
            }
        }
        for (sub, event, detailed, sip) in out {
            let body = self.exts[idx].event_body(detailed, sip, ended);
            let s = &self.subs[&sub];
            let envelope = json!({
                "uuid": format!("{}", fastrand::u64(1_000_000_000_000_000..u64::MAX)),
                "event": event,
                "timestamp": iso(now_ms()),
                "subscriptionId": sub,
                "ownerId": s.owner.to_string(),
                "body": body,
            });
            match &s.transport {
                Transport::WebHook { address, token } => {
                    let _ = self.hook_tx.send(HookJob {
                        url: address.clone(),
                        token: token.clone(),
                        subscription: sub.clone(),
                        envelope,
                    });
                }
                Transport::WebSocket { session } => {
                    let session = session.clone();
                    self.ws_notify(&session, envelope);
                }
            }
        }
    }

    /// Send a `ServerNotification` on the session's connection, or keep it
    /// for recovery (at most [`RECOVERY_BUFFER_SIZE`], the newest).
    fn ws_notify(&mut self, session: &str, envelope: Value) {
        let Some(ws) = self.ws_sessions.get_mut(session) else {
            return;
        };
        ws.sequence += 1;
        // Unverified: whether notifications carry `wsc` in their meta; the
        // .NET SDK's `WsgMeta` has a `wsc` member, so each one says the
        // session's latest sequence.
        let frame = json!([
            {
                "type": "ServerNotification",
                "messageId": envelope["uuid"],
                "status": 200,
                "headers": {"RCRequestId": guid()},
                "wsc": {"token": ws.wsc, "sequence": ws.sequence},
            },
            envelope,
        ]);
        let sent = ws
            .conn
            .and_then(|c| self.conns.get(&c))
            .is_some_and(|tx| tx.send(WsOut::Frame(frame.to_string())).is_ok());
        if sent {
            self.ws_frames.push(frame);
        } else {
            if ws.buffer.len() == RECOVERY_BUFFER_SIZE {
                ws.buffer.pop_front();
            }
            ws.buffer.push_back(frame);
        }
    }

    fn end_sub(&mut self, id: &str, why: &str) {
        if let Some(s) = self.subs.get_mut(id)
            && s.ended.is_none()
        {
            s.ended = Some(why.to_string());
        }
    }

    /// Time passes: WebHook subscriptions expire; dropped WebSocket
    /// sessions past the recovery window lose their subscription.
    fn tick(&mut self) {
        let now = Instant::now();
        let expired: Vec<String> = self
            .subs
            .values()
            .filter(|s| {
                s.ended.is_none()
                    && matches!(s.transport, Transport::WebHook { .. })
                    && s.expires_at <= now
            })
            .map(|s| s.id.clone())
            .collect();
        for id in expired {
            self.end_sub(&id, "expired");
        }
        let window = Duration::from_secs(self.cfg.recovery_timeout_s);
        let lost: Vec<String> = self
            .ws_sessions
            .values()
            .filter(|w| w.conn.is_none() && w.disconnected_at.is_some_and(|t| now >= t + window))
            .map(|w| w.wsc.clone())
            .collect();
        for wsc in lost {
            if let Some(w) = self.ws_sessions.remove(&wsc)
                && let Some(sub) = w.sub
            {
                self.end_sub(&sub, "session lost");
            }
        }
    }

    /// Rate limiting for `group` (C8): `Ok(headers)` or a 429.
    fn rate(&mut self, group: Option<&str>) -> (Option<Answer>, Vec<(String, String)>, bool) {
        let Some(group) = group else {
            return (None, Vec::new(), false);
        };
        let Some(limit) = self.cfg.limits.of(group) else {
            return (None, Vec::new(), false);
        };
        let window = self.cfg.limits.window_s;
        let penalty = self.cfg.limits.penalty_s;
        let now = Instant::now();
        let b = self.buckets.entry(group.to_string()).or_default();
        while b
            .hits
            .front()
            .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(window))
        {
            b.hits.pop_front();
        }
        let headers = |remaining: usize| {
            vec![
                ("X-Rate-Limit-Group".to_string(), group.to_string()),
                ("X-Rate-Limit-Limit".to_string(), limit.to_string()),
                ("X-Rate-Limit-Remaining".to_string(), remaining.to_string()),
                ("X-Rate-Limit-Window".to_string(), window.to_string()),
            ]
        };
        let too_many = |retry: u64| {
            api_error(429, "CMN-301", "Request rate exceeded")
                .header("Retry-After", retry.to_string())
        };
        // "Any request during the penalty window resets the penalty" (C8).
        if let Some(until) = b.penalty_until
            && now < until
        {
            b.penalty_until = Some(now + Duration::from_secs(b.penalty_len));
            let len = b.penalty_len;
            self.penalty_resets += 1;
            return (Some(too_many(len)), headers(0), true);
        }
        if let Some(retry) = b.forced.take() {
            b.penalty_until = Some(now + Duration::from_secs(retry));
            b.penalty_len = retry;
            return (Some(too_many(retry)), headers(0), false);
        }
        if b.hits.len() >= limit as usize {
            b.penalty_until = Some(now + Duration::from_secs(penalty));
            b.penalty_len = penalty;
            return (Some(too_many(penalty)), headers(0), false);
        }
        b.hits.push_back(now);
        let remaining = limit as usize - b.hits.len();
        (None, headers(remaining), false)
    }

    fn issue(&mut self, session: Option<String>, owner: u64, endpoint: Option<String>) -> Value {
        let sid = session.unwrap_or_else(|| opaque("S"));
        let refresh = opaque("U1BCMDFUMDRKV1MwMXxz");
        let access = opaque("U0pDMDFQMDdQQXxzLA");
        let ttl = self.cfg.access_ttl_s;
        let rttl = self.cfg.refresh_ttl_s;
        let s = self.sessions.entry(sid.clone()).or_insert(Session {
            owner,
            revoked: false,
            refresh: None,
            refresh_expires: Instant::now(),
        });
        if let Some(old) = s.refresh.replace(refresh.clone()) {
            self.refresh.remove(&old);
            self.spent_refresh.insert(old);
        }
        s.refresh_expires = Instant::now() + Duration::from_secs(rttl);
        // C7: the old access token is invalid as soon as the pair is
        // refreshed.
        for a in self.access.values_mut() {
            if a.session == sid {
                a.revoked = true;
            }
        }
        self.refresh.insert(refresh.clone(), sid.clone());
        self.access.insert(
            access.clone(),
            Access {
                session: sid.clone(),
                expires: Instant::now() + Duration::from_secs(ttl),
                revoked: false,
            },
        );
        json!({
            "access_token": access,
            "token_type": "bearer",
            "expires_in": ttl,
            "refresh_token": refresh,
            "refresh_token_expires_in": rttl,
            "scope": "ReadAccounts ReadPresence EditPresence WebSocketsSubscription",
            "owner_id": owner.to_string(),
            "endpoint_id": endpoint.unwrap_or_else(|| opaque("E")[..23].to_string()),
            "session_id": sid,
        })
    }
}

// ------------------------------------------------------------- requests

/// The authority a `ClientRequest` runs under: the WebSocket session's.
#[derive(Clone)]
struct WsCtx {
    wsc: String,
    owner: u64,
}

struct Req {
    method: String,
    path: String,
    query: String,
    content_type: String,
    authorization: Option<String>,
    body: Bytes,
    ws: Option<WsCtx>,
}

impl Req {
    fn form(&self) -> HashMap<String, String> {
        form_urlencoded::parse(&self.body).into_owned().collect()
    }
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(json!({}))
    }
}

/// A WebHook subscription waiting for its validation handshake.
struct PendingHook {
    rec: SubRec,
}

enum Routed {
    Done(Answer),
    Validate(Box<PendingHook>),
}

type Shared = Arc<Mutex<Sim>>;

fn lock(st: &Shared) -> MutexGuard<'_, Sim> {
    st.lock().unwrap_or_else(|p| p.into_inner())
}

/// Check, throttle, route, log: the path of every request, REST or
/// `ClientRequest`.
async fn process(st: &Shared, req: Req) -> Answer {
    let (m, p, q, ct, b, ws) = (
        req.method.clone(),
        req.path.clone(),
        req.query.clone(),
        req.content_type.clone(),
        req.body.clone(),
        req.ws.is_some(),
    );
    let verdict = tokio::task::spawn_blocking(move || checker().check(&m, &p, &q, &ct, &b, ws))
        .await
        .expect("the OpenAPI check runs");
    let grant = (req.path == "/restapi/oauth/token")
        .then(|| req.form().get("grant_type").cloned())
        .flatten();
    let (answer, rl_headers, reset) = {
        let mut s = lock(st);
        let (throttled, headers, reset) = s.rate(verdict.group.as_deref());
        let answer = if let Some(a) = throttled {
            Routed::Done(a)
        } else if !verdict.ok {
            let where_ = format!(
                "{}{} {}{}",
                if ws { "ClientRequest " } else { "" },
                req.method,
                req.path,
                if req.query.is_empty() {
                    String::new()
                } else {
                    format!("?{}", req.query)
                }
            );
            let what = format!(
                "{where_} (operation {}) breaks the OpenAPI description: {}",
                verdict.operation.as_deref().unwrap_or("none"),
                verdict.errors.join("; ")
            );
            s.violation(what);
            let message = verdict
                .errors
                .last()
                .cloned()
                .unwrap_or_else(|| "Request is invalid".into());
            Routed::Done(api_error(
                400,
                "CMN-101",
                &format!("Parameter is invalid: {message}"),
            ))
        } else {
            route(&mut s, &req, &verdict)
        };
        (answer, headers, reset)
    };
    let mut answer = match answer {
        Routed::Done(a) => a,
        Routed::Validate(p) => finish_webhook(st, *p).await,
    };
    answer.headers.extend(rl_headers);
    answer.headers.push(("RCRequestId".into(), guid()));
    lock(st).log.push(Logged {
        at: Instant::now(),
        method: req.method.clone(),
        path: req.path.clone(),
        query: req.query.clone(),
        group: verdict.group.clone(),
        operation: verdict.operation.clone(),
        status: answer.status,
        over_ws: req.ws.is_some(),
        grant,
        penalty_reset: reset,
    });
    answer
}

fn route(s: &mut Sim, req: &Req, verdict: &Verdict) -> Routed {
    let parts: Vec<&str> = req.path.split('/').collect();
    let m = req.method.as_str();
    match (m, parts.as_slice()) {
        ("POST", ["", "restapi", "oauth", "token"]) => return Routed::Done(token(s, req)),
        ("POST", ["", "restapi", "oauth", "revoke"]) => return Routed::Done(revoke(s, req)),
        ("GET", ["", "restapi", "oauth", "authorize"]) => return Routed::Done(authorize(s, req)),
        _ => {}
    }
    let owner = match bearer(s, req) {
        Ok(o) => o,
        Err(a) => return Routed::Done(a),
    };
    let base = s.base.clone();
    let account = s.cfg.account_id.clone();
    let check_acc = |acc: &str| acc == "~" || acc == account;
    let not_found_acc = || {
        api_error_param(
            404,
            "CMN-102",
            "Resource for parameter [accountId] is not found",
            "accountId",
        )
    };
    let resolve_ext = |s: &Sim, ext: &str| -> Result<usize, Answer> {
        let id = if ext == "~" {
            Some(owner)
        } else {
            ext.parse().ok()
        };
        id.and_then(|id| s.ext(id)).ok_or_else(|| {
            api_error_param(
                404,
                "CMN-102",
                "Resource for parameter [extensionId] is not found",
                "extensionId",
            )
        })
    };
    let q = query_map(&req.query);
    let a = match (m, parts.as_slice()) {
        ("POST", ["", "restapi", "oauth", "wstoken"]) => wstoken(s, req, owner),
        ("GET", ["", "restapi", "v1.0", "account", acc]) => {
            if !check_acc(acc) {
                not_found_acc()
            } else {
                Answer::json(
                    200,
                    json!({
                        "uri": format!("{base}/restapi/v1.0/account/{account}"),
                        "id": account.parse::<u64>().map(Value::from).unwrap_or(json!(account)),
                        "status": "Confirmed",
                        "operator": {"id": s.cfg.owner_extension},
                    }),
                )
            }
        }
        ("GET", ["", "restapi", "v1.0", "account", acc, "extension"]) => {
            if !check_acc(acc) {
                not_found_acc()
            } else {
                list_extensions(s, &q)
            }
        }
        ("GET", ["", "restapi", "v1.0", "account", acc, "extension", ext]) => {
            if !check_acc(acc) {
                not_found_acc()
            } else {
                match resolve_ext(s, ext) {
                    Ok(i) => Answer::json(200, s.exts[i].list_json(&base, &account)),
                    Err(a) => a,
                }
            }
        }
        (
            _,
            [
                "",
                "restapi",
                "v1.0",
                "account",
                acc,
                "extension",
                ext,
                "presence",
            ],
        ) => {
            if !check_acc(acc) {
                not_found_acc()
            } else {
                match resolve_ext(s, ext) {
                    Err(a) => a,
                    Ok(i) if m == "GET" => {
                        if s.exts[i].refused {
                            api_error(
                                403,
                                "CMN-408",
                                "In order to call this API endpoint, user needs to have [ReadPresenceStatus] permission for requested resource.",
                            )
                        } else {
                            let sip = q_true(&q, "sipData");
                            let detailed = q_true(&q, "detailedTelephonyState");
                            Answer::json(
                                200,
                                s.exts[i].presence_json(&base, &account, detailed, sip),
                            )
                        }
                    }
                    Ok(i) => put_presence(s, i, req),
                }
            }
        }
        ("GET", ["", "restapi", "v1.0", "account", acc, "presence"]) => {
            if !check_acc(acc) {
                not_found_acc()
            } else {
                account_presence(s, &q)
            }
        }
        ("GET", ["", "restapi", "v1.0", "subscription"]) => {
            let records: Vec<Value> = s
                .subs
                .values()
                .filter(|x| x.ended.is_none())
                .map(|x| sub_json(&base, x))
                .collect();
            Answer::json(
                200,
                json!({"uri": format!("{base}/restapi/v1.0/subscription"), "records": records}),
            )
        }
        ("POST", ["", "restapi", "v1.0", "subscription"]) => {
            return create_subscription(s, req, owner);
        }
        (_, ["", "restapi", "v1.0", "subscription", id]) => {
            let id = id.to_string();
            if s.subs.get(&id).is_none_or(|x| x.ended.is_some()) {
                api_error_param(404, "SUB-522", "Subscription not found", "subscriptionId")
            } else {
                match m {
                    "GET" => Answer::json(200, sub_json(&base, &s.subs[&id])),
                    "DELETE" => {
                        s.end_sub(&id, "deleted");
                        for w in s.ws_sessions.values_mut() {
                            if w.sub.as_deref() == Some(id.as_str()) {
                                w.sub = None;
                            }
                        }
                        Answer::empty(204)
                    }
                    _ => {
                        let body = req.json();
                        renew(s, &id, Some(&body))
                    }
                }
            }
        }
        ("POST", ["", "restapi", "v1.0", "subscription", id, "renew"]) => {
            let id = id.to_string();
            if s.subs.get(&id).is_none_or(|x| x.ended.is_some()) {
                api_error_param(404, "SUB-522", "Subscription not found", "subscriptionId")
            } else {
                renew(s, &id, None)
            }
        }
        _ => {
            s.violation(format!(
                "{} {} ({}) is valid but not played by the simulator",
                req.method,
                req.path,
                verdict.operation.as_deref().unwrap_or("unknown operation")
            ));
            api_error(
                501,
                "CMN-201",
                "Service temporary unavailable (not simulated)",
            )
        }
    };
    Routed::Done(a)
}

/// The bearer token's owner, or 401. Unverified: RingCentral's exact
/// codes; missing header `AGW-401`, unknown or revoked `OAU-213` ("Token
/// not found", the community FAQ), expired `OAU-210`.
fn bearer(s: &Sim, req: &Req) -> Result<u64, Answer> {
    if let Some(ws) = &req.ws {
        return Ok(ws.owner);
    }
    let Some(token) = req.authorization.as_deref().and_then(|a| {
        a.strip_prefix("Bearer ")
            .or_else(|| a.strip_prefix("bearer "))
    }) else {
        return Err(api_error(
            401,
            "AGW-401",
            "Authorization header is not specified",
        ));
    };
    let Some(a) = s.access.get(token.trim()) else {
        return Err(api_error(401, "OAU-213", "Token not found"));
    };
    let session = s.sessions.get(&a.session);
    if a.revoked || session.is_none_or(|x| x.revoked) {
        return Err(api_error(401, "OAU-213", "Token not found"));
    }
    if a.expires <= Instant::now() {
        return Err(api_error(401, "OAU-210", "Token expired"));
    }
    Ok(session.unwrap().owner)
}

/// Client authentication on the token and revoke endpoints (C7: `Basic
/// base64(clientId:clientSecret)`). Unverified: the error code for a wrong
/// or missing client (`OAU-123`); the description lists only 400 for
/// `getToken`, so 400 `invalid_client`.
fn client_auth(s: &Sim, req: &Req) -> Result<(), Answer> {
    let ok = req
        .authorization
        .as_deref()
        .and_then(|a| a.strip_prefix("Basic "))
        .and_then(|b| {
            base64::engine::general_purpose::STANDARD
                .decode(b.trim())
                .ok()
        })
        .and_then(|b| String::from_utf8(b).ok())
        .is_some_and(|cred| cred == format!("{}:{}", s.cfg.client_id, s.cfg.client_secret));
    if ok {
        Ok(())
    } else {
        Err(oauth_error(
            400,
            "invalid_client",
            "OAU-123",
            "Invalid client",
        ))
    }
}

fn token(s: &mut Sim, req: &Req) -> Answer {
    if let Err(a) = client_auth(s, req) {
        return a;
    }
    let f = req.form();
    let grant = f.get("grant_type").cloned().unwrap_or_default();
    let endpoint = f.get("endpoint_id").cloned();
    let owner = s.cfg.owner_extension;
    let answer = match grant.as_str() {
        "urn:ietf:params:oauth:grant-type:jwt-bearer" => {
            if f.get("assertion") != Some(&s.cfg.jwt) {
                // Unverified code; the JWT is the app's credential.
                return oauth_error(
                    400,
                    "invalid_grant",
                    "OAU-251",
                    "Invalid JWT: the assertion is not a valid credential",
                );
            }
            Answer::json(200, s.issue(None, owner, endpoint))
        }
        "authorization_code" => {
            let code = f.get("code").cloned().unwrap_or_default();
            let Some(c) = s.codes.remove(&code) else {
                return oauth_error(
                    400,
                    "invalid_grant",
                    "OAU-109",
                    "Authorization code is invalid or already used",
                );
            };
            if c.expires <= Instant::now() {
                return oauth_error(
                    400,
                    "invalid_grant",
                    "OAU-109",
                    "Authorization code is expired",
                );
            }
            if f.get("redirect_uri") != Some(&c.redirect_uri) {
                return oauth_error(
                    400,
                    "invalid_grant",
                    "OAU-109",
                    "Parameter [redirect_uri] does not match the authorization request",
                );
            }
            Answer::json(200, s.issue(None, owner, endpoint))
        }
        "refresh_token" => {
            let rt = f.get("refresh_token").cloned().unwrap_or_default();
            let Some(sid) = s.refresh.get(&rt).cloned() else {
                // C7 allows reusing a just-rotated refresh token for a few
                // seconds; the simulator is stricter (single use), which a
                // correct client never notices.
                let (code, msg) = if s.spent_refresh.contains(&rt) {
                    ("OAU-211", "Token is revoked")
                } else {
                    ("OAU-213", "Token not found")
                };
                return oauth_error(400, "invalid_grant", code, msg);
            };
            let sess = &s.sessions[&sid];
            if sess.revoked {
                return oauth_error(400, "invalid_grant", "OAU-211", "Token is revoked");
            }
            if sess.refresh_expires <= Instant::now() {
                return oauth_error(400, "invalid_grant", "OAU-210", "Token expired");
            }
            let owner = sess.owner;
            Answer::json(200, s.issue(Some(sid), owner, endpoint))
        }
        other => {
            return oauth_error(
                400,
                "unsupported_grant_type",
                "OAU-250",
                &format!("Unsupported grant type: {other}"),
            );
        }
    };
    *s.grants.entry(grant).or_default() += 1;
    answer
}

fn revoke(s: &mut Sim, req: &Req) -> Answer {
    if let Err(a) = client_auth(s, req) {
        return a;
    }
    let token = req
        .form()
        .get("token")
        .cloned()
        .or_else(|| {
            query_map(&req.query)
                .get("token")
                .and_then(|v| v.first().cloned())
        })
        .unwrap_or_default();
    let sid = s
        .access
        .get(&token)
        .map(|a| a.session.clone())
        .or_else(|| s.refresh.get(&token).cloned());
    // "kills the whole session" (C7); an unknown token is not an error
    // (RFC 7009 §2.2).
    if let Some(sid) = sid
        && let Some(sess) = s.sessions.get_mut(&sid)
    {
        sess.revoked = true;
    }
    Answer::empty(200)
}

fn authorize(s: &mut Sim, req: &Req) -> Answer {
    let q = query_map(&req.query);
    let one = |k: &str| q.get(k).and_then(|v| v.first()).cloned();
    if one("client_id").as_deref() != Some(s.cfg.client_id.as_str()) {
        return oauth_error(400, "invalid_request", "OAU-102", "Client id is invalid");
    }
    let Some(redirect) = one("redirect_uri") else {
        return oauth_error(
            400,
            "invalid_request",
            "OAU-101",
            "Parameter [redirect_uri] is missing",
        );
    };
    let code = opaque("U0pDMDFQMDFQQVMwMXxB");
    s.codes.insert(
        code.clone(),
        AuthCode {
            redirect_uri: redirect.clone(),
            expires: Instant::now() + Duration::from_secs(AUTH_CODE_TTL_S),
        },
    );
    let sep = if redirect.contains('?') { '&' } else { '?' };
    let mut loc = format!("{redirect}{sep}code={}", urlencode(&code));
    if let Some(state) = one("state") {
        loc.push_str(&format!("&state={}", urlencode(&state)));
    }
    loc.push_str(&format!("&expires_in={AUTH_CODE_TTL_S}"));
    Answer::empty(302).header("Location", loc)
}

fn wstoken(s: &mut Sim, req: &Req, owner: u64) -> Answer {
    let token = req
        .authorization
        .as_deref()
        .and_then(|a| a.strip_prefix("Bearer "))
        .unwrap_or_default()
        .trim()
        .to_string();
    let session = s
        .access
        .get(&token)
        .map(|a| a.session.clone())
        .unwrap_or_default();
    let ws_token = opaque("U0pDMDFQMDdQQXxz");
    s.ws_tokens.insert(
        ws_token.clone(),
        WsToken {
            owner,
            session,
            expires: Instant::now() + Duration::from_secs(WS_TOKEN_TTL_S),
        },
    );
    let uri = format!("{}/ws", s.base.replacen("http://", "ws://", 1));
    Answer::json(
        200,
        json!({"ws_access_token": ws_token, "uri": uri, "expires_in": WS_TOKEN_TTL_S}),
    )
}

/// Paging and navigation (RC-OAS `EnumeratedPagingModel`,
/// `PageNavigationModel`).
fn page<T>(
    items: &[T],
    q: &HashMap<String, Vec<String>>,
    uri: &str,
) -> (std::ops::Range<usize>, Value, Value) {
    let per = q_num(q, "perPage").unwrap_or(100).clamp(1, 1000) as usize;
    let page = q_num(q, "page").unwrap_or(1).max(1) as usize;
    let total = items.len();
    let pages = total.div_ceil(per).max(1);
    let start = ((page - 1) * per).min(total);
    let end = (start + per).min(total);
    let link = |p: usize| json!({"uri": format!("{uri}?page={p}&perPage={per}")});
    let mut paging = json!({
        "page": page, "perPage": per, "totalPages": pages, "totalElements": total,
    });
    if end > start {
        paging["pageStart"] = json!(start);
        paging["pageEnd"] = json!(end - 1);
    }
    let mut nav = json!({"firstPage": link(1), "lastPage": link(pages)});
    if page < pages {
        nav["nextPage"] = link(page + 1);
    }
    if page > 1 {
        nav["previousPage"] = link(page - 1);
    }
    (start..end, paging, nav)
}

fn list_extensions(s: &Sim, q: &HashMap<String, Vec<String>>) -> Answer {
    let base = &s.base;
    let account = &s.cfg.account_id;
    let matching: Vec<&Ext> = s
        .exts
        .iter()
        .filter(|e| {
            q.get("extensionNumber")
                .is_none_or(|v| v.contains(&e.number))
        })
        .filter(|e| {
            q.get("email")
                .is_none_or(|v| v.iter().any(|m| m.eq_ignore_ascii_case(&e.email)))
        })
        .filter(|e| q.get("type").is_none_or(|v| v.iter().any(|t| t == e.kind)))
        .filter(|_| {
            q.get("status")
                .is_none_or(|v| v.iter().all(|x| x.is_empty()) || v.iter().any(|x| x == "Enabled"))
        })
        .collect();
    let uri = format!("{base}/restapi/v1.0/account/{account}/extension");
    let (range, paging, nav) = page(&matching, q, &uri);
    let records: Vec<Value> = matching[range]
        .iter()
        .map(|e| e.list_json(base, account))
        .collect();
    Answer::json(
        200,
        json!({"uri": uri, "records": records, "paging": paging, "navigation": nav}),
    )
}

fn account_presence(s: &Sim, q: &HashMap<String, Vec<String>>) -> Answer {
    let base = &s.base;
    let account = &s.cfg.account_id;
    let visible: Vec<&Ext> = s.exts.iter().filter(|e| !e.refused).collect();
    let uri = format!("{base}/restapi/v1.0/account/{account}/presence");
    let (range, paging, nav) = page(&visible, q, &uri);
    let detailed = q_true(q, "detailedTelephonyState");
    let sip = q_true(q, "sipData");
    let records: Vec<Value> = visible[range]
        .iter()
        .map(|e| e.presence_json(base, account, detailed, sip))
        .collect();
    Answer::json(
        200,
        json!({"uri": uri, "records": records, "paging": paging, "navigation": nav}),
    )
}

/// `PUT .../presence` (RC-OAS `PresenceInfoRequest`). DND fields follow the
/// extension's model: classic `dndStatus`, or the new communication
/// handling service's `dndStatusPersonal`/`acceptCallQueueCalls`; sending
/// the other model's field is refused (unverified: RingCentral's exact
/// answer; the description says "not applicable").
fn put_presence(s: &mut Sim, i: usize, req: &Req) -> Answer {
    let body = req.json();
    s.exts[i].writes.push(body.clone());
    let e = &s.exts[i];
    let has = |k: &str| body.get(k).is_some();
    if e.kind != "User"
        && (has("dndStatus") || has("dndStatusPersonal") || has("acceptCallQueueCalls"))
    {
        // The old description: dndStatus "cannot be set for Department/
        // Announcement/Voicemail..." extensions (C2).
        return api_error_param(
            400,
            "CMN-101",
            &format!(
                "Parameter [dndStatus] cannot be set for a {} extension",
                e.kind
            ),
            "dndStatus",
        );
    }
    if e.new_comm && has("dndStatus") {
        return api_error_param(
            400,
            "CMN-101",
            "Parameter [dndStatus] is not applicable for User extensions when the new communication handling service is activated; use dndStatusPersonal",
            "dndStatus",
        );
    }
    if !e.new_comm && (has("dndStatusPersonal") || has("acceptCallQueueCalls")) {
        return api_error_param(
            400,
            "CMN-101",
            "Parameters [dndStatusPersonal, acceptCallQueueCalls] apply only when the new communication handling service is activated",
            "dndStatusPersonal",
        );
    }
    if body["dndStatus"] == json!("TakeDepartmentCallsOnly") {
        // C3 (call-queues-presence guide): "Do not set TakeDepartmentCallsOnly
        // via API" (legacy, unsupported).
        s.violation(format!(
            "PUT presence of {}: dndStatus TakeDepartmentCallsOnly must not be set through the API (call-queues-presence guide)",
            s.exts[i].id
        ));
        return api_error_param(
            400,
            "CMN-101",
            "Parameter [dndStatus] value TakeDepartmentCallsOnly is not supported",
            "dndStatus",
        );
    }
    let e = &mut s.exts[i];
    let str_of = |k: &str| body.get(k).and_then(Value::as_str).map(str::to_string);
    let bool_of = |k: &str| body.get(k).and_then(Value::as_bool);
    if let Some(v) = str_of("userStatus") {
        e.user_status = v;
    }
    if let Some(v) = str_of("dndStatus") {
        e.dnd = v;
    }
    if let Some(v) = str_of("dndStatusPersonal") {
        e.dnd_personal = v;
    }
    if let Some(v) = bool_of("acceptCallQueueCalls") {
        e.accept_cq = v;
    }
    if let Some(v) = str_of("message") {
        e.message = v;
    }
    if let Some(v) = bool_of("allowSeeMyPresence") {
        e.allow_see = v;
    }
    if let Some(v) = bool_of("ringOnMonitoredCall") {
        e.ring_on_monitored = v;
    }
    if let Some(v) = bool_of("pickUpCallsOnHold") {
        e.pick_up_on_hold = v;
    }
    if let Some(v) = str_of("callerIdVisibility") {
        e.caller_id_visibility = Some(v);
    }
    s.changed(i, &[]);
    let base = s.base.clone();
    let account = s.cfg.account_id.clone();
    Answer::json(200, s.exts[i].presence_json(&base, &account, false, false))
}

/// `SubscriptionInfo` (RC-OAS).
fn sub_json(base: &str, x: &SubRec) -> Value {
    let delivery = match &x.transport {
        Transport::WebHook { address, .. } => {
            json!({"transportType": "WebHook", "address": address, "encryption": false})
        }
        Transport::WebSocket { .. } => json!({"transportType": "WebSocket"}),
    };
    let (expires_ms, expires_in) = match x.transport {
        Transport::WebHook { .. } => (
            x.expires_ms,
            x.expires_at
                .saturating_duration_since(Instant::now())
                .as_secs()
                .max(1),
        ),
        // The guide: WebSocket subscriptions renew on their own; the
        // expiry fields can be ignored. Shown as the usual 15 minutes ahead.
        Transport::WebSocket { .. } => (now_ms() + 900_000, 900),
    };
    json!({
        "uri": format!("{base}/restapi/v1.0/subscription/{}", x.id),
        "id": x.id,
        "eventFilters": x.filters,
        "disabledFilters": x.disabled,
        "expirationTime": iso(expires_ms),
        "expiresIn": expires_in,
        "status": "Active",
        "creationTime": iso(x.created_ms),
        "deliveryMode": delivery,
    })
}

/// Filters checked at create or update: `Err` for a filter the simulator
/// does not understand (400 `SUB-520`, unverified code), `disabledFilters`
/// for extensions that do not exist or whose presence the app may not read
/// (unverified reasons).
fn check_filters(s: &Sim, filters: &[String], owner: u64) -> Result<Vec<Value>, Answer> {
    let mut disabled = Vec::new();
    for f in filters {
        let Some(p) = parse_filter(f, &s.cfg.account_id) else {
            return Err(api_error_param(
                400,
                "SUB-520",
                &format!("Event filter [{f}] is invalid"),
                "eventFilters",
            ));
        };
        let id = match p.scope {
            Scope::Owner => owner,
            Scope::Ext(e) => e,
            Scope::Account => continue,
        };
        match s.ext(id) {
            None => disabled.push(json!({"filter": f, "reason": "ResourceNotFound", "message": format!("Extension [{id}] is not found")})),
            Some(i) if s.exts[i].refused => disabled.push(json!({"filter": f, "reason": "PermissionDenied", "message": "In order to subscribe, user needs to have [ReadPresenceStatus] permission for requested resource."})),
            _ => {}
        }
    }
    Ok(disabled)
}

fn create_subscription(s: &mut Sim, req: &Req, owner: u64) -> Routed {
    let body = req.json();
    let filters: Vec<String> = body["eventFilters"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|f| f.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let disabled = match check_filters(s, &filters, owner) {
        Ok(d) => d,
        Err(a) => return Routed::Done(a),
    };
    let mode = &body["deliveryMode"];
    // RingCentral's ids are UUIDs (the `SubscriptionInfo.id` example), but
    // the description's `subscriptionId` path parameter allows at most 20
    // characters; 20 hex digits keep renew/update/delete requests valid
    // against the description.
    let id = format!("{:020x}", fastrand::u128(..) >> 48);
    let now = Instant::now();
    match mode["transportType"].as_str() {
        Some("WebSocket") => {
            let Some(ws) = &req.ws else {
                return Routed::Done(api_error_param(
                    400,
                    "SUB-101",
                    "WebSocket subscriptions are created over a WebSocket connection",
                    "deliveryMode.transportType",
                ));
            };
            // "Only one subscription per server": a second replaces the first.
            let old = s.ws_sessions.get(&ws.wsc).and_then(|w| w.sub.clone());
            if let Some(old) = old {
                s.end_sub(&old, "replaced");
            }
            if let Some(w) = s.ws_sessions.get_mut(&ws.wsc) {
                w.sub = Some(id.clone());
            }
            let rec = SubRec {
                id: id.clone(),
                filters,
                disabled,
                transport: Transport::WebSocket {
                    session: ws.wsc.clone(),
                },
                owner,
                created_ms: now_ms(),
                expires_ms: u64::MAX,
                expires_at: now + Duration::from_secs(86_400 * 365),
                asked: 0,
                renewals: 0,
                ended: None,
            };
            let body = sub_json(&s.base, &rec);
            s.subs.insert(id, rec);
            Routed::Done(Answer::json(200, body))
        }
        _ => {
            let address = mode["address"].as_str().unwrap_or_default().to_string();
            // The platform wants https (and TLS 1.2+) for webhooks; the test
            // hub listens on plain http on 127.0.0.1, which is accepted too.
            let local =
                address.starts_with("http://127.0.0.1") || address.starts_with("http://localhost");
            if !(local || address.starts_with("https://")) {
                return Routed::Done(api_error_param(
                    400,
                    "SUB-523",
                    "WebHook address must be an https URL",
                    "deliveryMode.address",
                ));
            }
            let asked = body["expiresIn"].as_u64().unwrap_or(604_800);
            if asked > WEBHOOK_MAX_EXPIRES_IN {
                return Routed::Done(api_error_param(
                    400,
                    "CMN-101",
                    "Parameter [expiresIn] value is invalid",
                    "expiresIn",
                ));
            }
            let granted = asked.min(s.cfg.max_expires_in_s);
            let rec = SubRec {
                id,
                filters,
                disabled,
                transport: Transport::WebHook {
                    address,
                    token: mode["verificationToken"].as_str().map(str::to_string),
                },
                owner,
                created_ms: now_ms(),
                expires_ms: now_ms() + granted * 1000,
                expires_at: now + Duration::from_secs(granted),
                asked,
                renewals: 0,
                ended: None,
            };
            Routed::Validate(Box::new(PendingHook { rec }))
        }
    }
}

fn renew(s: &mut Sim, id: &str, body: Option<&Value>) -> Answer {
    let owner = s.subs[id].owner;
    if let Some(b) = body
        && let Some(f) = b["eventFilters"].as_array()
    {
        let filters: Vec<String> = f
            .iter()
            .filter_map(|x| x.as_str().map(str::to_string))
            .collect();
        match check_filters(s, &filters, owner) {
            Ok(d) => {
                let x = s.subs.get_mut(id).unwrap();
                x.filters = filters;
                x.disabled = d;
            }
            Err(a) => return a,
        }
    }
    let cap = s.cfg.max_expires_in_s;
    let x = s.subs.get_mut(id).unwrap();
    if let Some(asked) = body.and_then(|b| b["expiresIn"].as_u64()) {
        x.asked = asked;
    }
    if matches!(x.transport, Transport::WebHook { .. }) {
        let granted = x.asked.min(cap);
        x.expires_at = Instant::now() + Duration::from_secs(granted);
        x.expires_ms = now_ms() + granted * 1000;
    }
    x.renewals += 1;
    Answer::json(200, sub_json(&s.base, &s.subs[id]))
}

/// The WebHook validation handshake (C5, `creating-webhooks.md`): a POST
/// with `Validation-Token`; the answer must come within 3000 ms, be 200,
/// echo the token in a `Validation-Token` header and be at most 1024 bytes
/// (status line, headers and body); else `SUB-525`.
async fn handshake(url: &str) -> Result<(), String> {
    let token = guid();
    let resp = reqwest::Client::new()
        .post(url)
        .header("Validation-Token", &token)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::USER_AGENT, "RingCentral-Webhook/8.3")
        .timeout(Duration::from_millis(3000))
        .send()
        .await
        .map_err(|e| format!("no answer within 3000 ms: {e}"))?;
    let status = resp.status().as_u16();
    let echoed = resp
        .headers()
        .get("validation-token")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let mut size = "HTTP/1.1 200 OK\r\n\r\n".len();
    for (k, v) in resp.headers() {
        size += k.as_str().len() + 2 + v.len() + 2;
    }
    let body = resp.bytes().await.unwrap_or_default();
    size += body.len();
    if status != 200 {
        return Err(format!("answered {status}"));
    }
    if echoed.as_deref() != Some(token.as_str()) {
        return Err(format!("did not echo Validation-Token (got {echoed:?})"));
    }
    if size > 1024 {
        return Err(format!("answer of {size} bytes (at most 1024)"));
    }
    Ok(())
}

async fn finish_webhook(st: &Shared, p: PendingHook) -> Answer {
    let Transport::WebHook { address, .. } = &p.rec.transport else {
        unreachable!("only WebHook subscriptions are validated")
    };
    if let Err(e) = handshake(address).await {
        return api_error(
            400,
            "SUB-525",
            &format!("WebHook server response is invalid: {e}"),
        );
    }
    let mut s = lock(st);
    let body = sub_json(&s.base, &p.rec);
    s.subs.insert(p.rec.id.clone(), p.rec);
    Answer::json(200, body)
}

/// POST WebHook notifications in order, 3 s each, and record the answers.
/// The verification token goes in a `Verification-Token` header
/// (unverified name: the guide's older text says `validation-token`, the
/// description's field is `verificationToken`; C5).
async fn hook_worker(st: Shared, mut rx: mpsc::UnboundedReceiver<HookJob>) {
    let http = reqwest::Client::new();
    while let Some(job) = rx.recv().await {
        let mut r = http
            .post(&job.url)
            .header(header::USER_AGENT, "RingCentral-Webhook/8.3")
            .timeout(Duration::from_secs(3))
            .json(&job.envelope);
        if let Some(t) = &job.token {
            r = r.header("Verification-Token", t);
        }
        let status = r.send().await.map(|r| r.status().as_u16()).unwrap_or(0);
        lock(&st).deliveries.push(Delivery {
            at: Instant::now(),
            subscription: job.subscription,
            address: job.url,
            event: job.envelope["event"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            status,
            envelope: job.envelope,
        });
    }
}

fn to_response(a: Answer) -> Response {
    let mut resp = match a.body {
        Some(b) => (
            StatusCode::from_u16(a.status).unwrap(),
            [(header::CONTENT_TYPE, "application/json; charset=UTF-8")],
            b.to_string(),
        )
            .into_response(),
        None => StatusCode::from_u16(a.status).unwrap().into_response(),
    };
    for (k, v) in a.headers {
        if let (Ok(k), Ok(v)) = (
            axum::http::HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(&v),
        ) {
            resp.headers_mut().insert(k, v);
        }
    }
    resp
}

async fn http_handler(
    st: Shared,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut path = uri.path().to_string();
    // The WebSocket guide's own sample posts to `/restapi/v1.0/subscription/`.
    if path.len() > 1 && path.ends_with('/') {
        path.pop();
    }
    let h = |k: header::HeaderName| {
        headers
            .get(k)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let req = Req {
        method: method.as_str().to_string(),
        path,
        query: uri.query().unwrap_or("").to_string(),
        content_type: h(header::CONTENT_TYPE).unwrap_or_default(),
        authorization: h(header::AUTHORIZATION),
        body,
        ws: None,
    };
    to_response(process(&st, req).await)
}

// ------------------------------------------------------------ WebSocket

fn ws_error_frame(status: u16, code: &str, message: &str) -> String {
    json!([
        {"type": "Error", "messageId": guid(), "status": status, "headers": {"RCRequestId": guid()}},
        {"errorCode": code, "message": message},
    ])
    .to_string()
}

async fn ws_handler(st: Shared, uri: Uri, upgrade: WebSocketUpgrade) -> Response {
    let q = query_map(uri.query().unwrap_or(""));
    let token = q
        .get("access_token")
        .and_then(|v| v.first())
        .cloned()
        .unwrap_or_default();
    let wsc = q.get("wsc").and_then(|v| v.first()).cloned();
    upgrade.on_upgrade(move |socket| ws_conn(st, socket, token, wsc))
}

/// Set up the session: a new one, or a recovered one (C6, guide
/// `session-recovery.md`). Returns the connection id, its receiver and the
/// frames to send first (`ConnectionDetails`, then replayed events).
fn ws_open(
    s: &mut Sim,
    token: &str,
    wsc: Option<String>,
) -> Result<(u64, mpsc::UnboundedReceiver<WsOut>, Vec<String>), String> {
    // A WebSocket token is good for one connection (guide `subscribing.md`).
    let Some(t) = s.ws_tokens.remove(token) else {
        return Err(ws_error_frame(
            401,
            "WSG-401",
            "Invalid or expired access_token",
        ));
    };
    if t.expires <= Instant::now() {
        return Err(ws_error_frame(
            401,
            "WSG-401",
            "Invalid or expired access_token",
        ));
    }
    let conn = s.next_conn;
    s.next_conn += 1;
    let (tx, rx) = mpsc::unbounded_channel();
    s.conns.insert(conn, tx);
    let now = Instant::now();
    let window = Duration::from_secs(s.cfg.recovery_timeout_s);
    let mut recovery: Option<(&'static str, Option<&'static str>)> = None;
    let mut replay = Vec::new();
    let mut session_key = None;
    if let Some(w) = wsc {
        // Codes from RingCentral's recovery experiments
        // (tylerlong/rc-ws-recover-test): WSG-1005 no subscription in the
        // session, WSG-1003 a different OAuth session. WSG-1004 for an
        // unknown or expired session is unverified.
        let verdict = match s.ws_sessions.get(&w) {
            None => Err("WSG-1004"),
            Some(x) if x.disconnected_at.is_some_and(|d| now >= d + window) => Err("WSG-1004"),
            Some(x) if x.sub.is_none() => Err("WSG-1005"),
            Some(x) if x.auth_session != t.session || x.owner != t.owner => Err("WSG-1003"),
            Some(_) => Ok(()),
        };
        match verdict {
            Ok(()) => {
                let x = s.ws_sessions.get_mut(&w).unwrap();
                // A connection the server still holds is replaced.
                if let Some(old) = x.conn.take()
                    && let Some(tx) = s.conns.remove(&old)
                {
                    let _ = tx.send(WsOut::Drop);
                }
                x.conn = Some(conn);
                x.disconnected_at = None;
                replay = x.buffer.drain(..).collect();
                session_key = Some(w);
                recovery = Some(("Successful", None));
            }
            Err(code) => {
                if let Some(old) = s.ws_sessions.remove(&w) {
                    if let Some(c) = old.conn
                        && let Some(tx) = s.conns.remove(&c)
                    {
                        let _ = tx.send(WsOut::Drop);
                    }
                    if let Some(sub) = old.sub {
                        s.end_sub(&sub, "session lost");
                    }
                }
                recovery = Some(("Failed", Some(code)));
            }
        }
        s.recoveries.push(recovery.unwrap().0.to_string());
    }
    let key = session_key.unwrap_or_else(|| {
        let k = opaque("RTFhRG5nfEx");
        s.ws_sessions.insert(
            k.clone(),
            WsSession {
                wsc: k.clone(),
                owner: t.owner,
                auth_session: t.session.clone(),
                sequence: 0,
                sub: None,
                conn: Some(conn),
                disconnected_at: None,
                buffer: VecDeque::new(),
            },
        );
        k
    });
    let seq = s.ws_sessions[&key].sequence;
    let mut details = json!({
        "creationTime": iso(now_ms()),
        "maxConnectionsPerSession": 50,
        "recoveryBufferSize": RECOVERY_BUFFER_SIZE,
        "recoveryTimeout": s.cfg.recovery_timeout_s,
        "idleTimeout": s.cfg.ws_idle_timeout_s,
        "absoluteTimeout": s.cfg.ws_absolute_timeout_s,
        "maxActiveRequests": 10,
    });
    if let Some((state, code)) = recovery {
        details["recoveryState"] = json!(state);
        if let Some(c) = code {
            details["recoveryErrorCode"] = json!(c);
        }
    }
    let hello = json!([
        {
            "type": "ConnectionDetails",
            "messageId": guid(),
            "status": 200,
            "wsc": {"token": key, "sequence": seq},
            "headers": {"RCRequestId": guid()},
        },
        details,
    ]);
    let mut first = vec![hello.to_string()];
    for f in &replay {
        s.ws_frames.push(f.clone());
        first.push(f.to_string());
    }
    Ok((conn, rx, first))
}

async fn ws_conn(st: Shared, mut socket: WebSocket, token: String, wsc: Option<String>) {
    let opened = ws_open(&mut lock(&st), &token, wsc);
    let (conn, mut rx, first) = match opened {
        Ok(x) => x,
        Err(frame) => {
            let _ = socket.send(Message::Text(frame.into())).await;
            let _ = socket.send(Message::Close(None)).await;
            return;
        }
    };
    let (idle, absolute, ping_every) = {
        let s = lock(&st);
        (
            Duration::from_secs(s.cfg.ws_idle_timeout_s),
            Duration::from_secs(s.cfg.ws_absolute_timeout_s),
            Duration::from_secs(s.cfg.ws_ping_interval_s.max(1)),
        )
    };
    for f in first {
        if socket.send(Message::Text(f.into())).await.is_err() {
            break;
        }
    }
    let started = tokio::time::Instant::now();
    let mut last_active = started;
    let mut ping = tokio::time::interval_at(started + ping_every, ping_every);
    loop {
        let idle_at = last_active + idle;
        let abs_at = started + absolute;
        tokio::select! {
            m = socket.recv() => match m {
                Some(Ok(Message::Text(t))) => {
                    last_active = tokio::time::Instant::now();
                    let replies = ws_client_frame(&st, conn, t.as_str()).await;
                    for r in replies {
                        if socket.send(Message::Text(r.into())).await.is_err() {
                            break;
                        }
                    }
                }
                // Unverified: what counts as activity for the idle timeout;
                // here client messages and client pings, not pongs.
                Some(Ok(Message::Ping(_))) => last_active = tokio::time::Instant::now(),
                Some(Ok(Message::Pong(_))) | Some(Ok(Message::Binary(_))) => {}
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
            },
            o = rx.recv() => match o {
                Some(WsOut::Frame(f)) => {
                    if socket.send(Message::Text(f.into())).await.is_err() {
                        break;
                    }
                }
                // force_disconnect: gone without a close frame.
                Some(WsOut::Drop) | None => return,
            },
            _ = ping.tick() => {
                if socket.send(Message::Ping(Bytes::from_static(b"rc-sim"))).await.is_err() {
                    break;
                }
            }
            _ = tokio::time::sleep_until(idle_at.min(abs_at)) => {
                let (code, msg) = if abs_at <= idle_at {
                    ("WSG-903", "Absolute timeout expired")
                } else {
                    ("WSG-902", "Idle timeout expired")
                };
                let _ = socket.send(Message::Text(ws_error_frame(408, code, msg).into())).await;
                let _ = socket.send(Message::Close(None)).await;
                break;
            }
        }
    }
    let mut s = lock(&st);
    s.conns.remove(&conn);
    for w in s.ws_sessions.values_mut() {
        if w.conn == Some(conn) {
            w.conn = None;
            w.disconnected_at = Some(Instant::now());
        }
    }
}

/// A client frame: `Heartbeat` is echoed, `ClientRequest` runs the REST
/// request under the session's authority and is answered by a frame whose
/// meta has `type: ClientRequest`, the same `messageId` and the status (as
/// RingCentral's SDKs expect: ringcentral-extensible `packages/extensions/
/// ws`, `meta.type === 'ClientRequest'`).
async fn ws_client_frame(st: &Shared, conn: u64, text: &str) -> Vec<String> {
    let frame: Value = serde_json::from_str(text).unwrap_or(Value::Null);
    let Some(arr) = frame.as_array().filter(|a| (1..=2).contains(&a.len())) else {
        lock(st).violation(format!(
            "WebSocket frame is not a JSON array [meta, body?]: {text}"
        ));
        return Vec::new();
    };
    let meta = &arr[0];
    match meta["type"].as_str() {
        Some("Heartbeat") => {
            let mut m = meta.clone();
            m["status"] = json!(200);
            vec![json!([m]).to_string()]
        }
        Some("ClientRequest") => {
            let (Some(id), Some(method), Some(full)) = (
                meta["messageId"].as_str(),
                meta["method"].as_str(),
                meta["path"].as_str(),
            ) else {
                lock(st).violation(format!(
                    "ClientRequest without messageId, method or path: {text}"
                ));
                return Vec::new();
            };
            let ctx = {
                let s = lock(st);
                s.ws_sessions
                    .values()
                    .find(|w| w.conn == Some(conn))
                    .map(|w| WsCtx {
                        wsc: w.wsc.clone(),
                        owner: w.owner,
                    })
            };
            let Some(ctx) = ctx else {
                return Vec::new();
            };
            let (path, q) = full.split_once('?').unwrap_or((full, ""));
            let mut query = q.to_string();
            if let Some(obj) = meta["query"].as_object() {
                let mut ser = form_urlencoded::Serializer::new(query.clone());
                for (k, v) in obj {
                    match v {
                        Value::String(x) => ser.append_pair(k, x),
                        Value::Array(xs) => {
                            for x in xs {
                                ser.append_pair(
                                    k,
                                    &x.as_str().map(str::to_string).unwrap_or(x.to_string()),
                                );
                            }
                            &mut ser
                        }
                        other => ser.append_pair(k, &other.to_string()),
                    };
                }
                query = ser.finish();
            }
            let mut path = path.to_string();
            if path.len() > 1 && path.ends_with('/') {
                path.pop();
            }
            let body = arr
                .get(1)
                .map(|b| Bytes::from(b.to_string()))
                .unwrap_or_default();
            let req = Req {
                method: method.to_uppercase(),
                path,
                query,
                content_type: "application/json".into(),
                authorization: None,
                body,
                ws: Some(ctx),
            };
            let a = process(st, req).await;
            let mut headers = serde_json::Map::new();
            for (k, v) in &a.headers {
                headers.insert(k.clone(), json!(v));
            }
            headers.insert("Content-Type".into(), json!("application/json"));
            let meta = json!({"type": "ClientRequest", "messageId": id, "status": a.status, "headers": headers});
            let out = match a.body {
                Some(b) => json!([meta, b]),
                None => json!([meta]),
            };
            vec![out.to_string()]
        }
        other => {
            lock(st).violation(format!("WebSocket message type {other:?} is not one a client sends (ClientRequest, Heartbeat)"));
            Vec::new()
        }
    }
}

// ------------------------------------------------------------ the handle

impl RcSim {
    /// Start on 127.0.0.1 with a free port. Starts (once per test process)
    /// the OpenAPI check, which panics with the fix if openapi-core is
    /// missing. The JWT's owner (`cfg.owner_extension`, number 100, "Admin
    /// Owner") exists from the start.
    pub async fn start(cfg: RcSimConfig) -> RcSim {
        tokio::task::spawn_blocking(checker)
            .await
            .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the simulator");
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (hook_tx, hook_rx) = mpsc::unbounded_channel();
        let owner = cfg.owner_extension;
        let state = Arc::new(Mutex::new(Sim {
            next_id: owner + 1000,
            cfg,
            base: base.clone(),
            exts: Vec::new(),
            sessions: HashMap::new(),
            access: HashMap::new(),
            refresh: HashMap::new(),
            spent_refresh: HashSet::new(),
            codes: HashMap::new(),
            ws_tokens: HashMap::new(),
            ws_sessions: HashMap::new(),
            conns: HashMap::new(),
            next_conn: 1,
            recoveries: Vec::new(),
            ws_frames: Vec::new(),
            subs: BTreeMap::new(),
            buckets: HashMap::new(),
            penalty_resets: 0,
            grants: HashMap::new(),
            log: Vec::new(),
            deliveries: Vec::new(),
            violations: Vec::new(),
            hook_tx,
            next_call: 1,
        }));
        let st_http = state.clone();
        let st_ws = state.clone();
        let app = axum::Router::new()
            .route(
                "/ws",
                axum::routing::get(move |uri: Uri, up: WebSocketUpgrade| {
                    let st = st_ws.clone();
                    async move { ws_handler(st, uri, up).await }
                }),
            )
            .fallback(
                move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                    let st = st_http.clone();
                    async move { http_handler(st, method, uri, headers, body).await }
                },
            );
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let worker = tokio::spawn(hook_worker(state.clone(), hook_rx));
        let st = state.clone();
        let clock = tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(200)).await;
                lock(&st).tick();
            }
        });
        let sim = RcSim {
            base,
            state,
            tasks: vec![server, worker, clock],
        };
        {
            let mut s = sim.lock();
            s.exts.push(Sim::new_ext(
                owner,
                "100",
                "Admin Owner",
                "admin@example.com",
                "User",
            ));
        }
        sim
    }

    fn lock(&self) -> MutexGuard<'_, Sim> {
        lock(&self.state)
    }

    /// `http://127.0.0.1:PORT`: the `server_url` for the connector.
    pub fn base(&self) -> String {
        self.base.clone()
    }

    /// The simulated account and app.
    pub fn config(&self) -> RcSimConfig {
        self.lock().cfg.clone()
    }

    /// Sign in as a client of this simulator would, with the JWT grant
    /// (`POST /restapi/oauth/token`, Basic client authentication): the
    /// `TokenInfo` answer as JSON. For tests that call the API themselves.
    pub async fn jwt_sign_in(&self) -> Value {
        let c = self.config();
        reqwest::Client::new()
            .post(format!("{}/restapi/oauth/token", self.base()))
            .basic_auth(&c.client_id, Some(&c.client_secret))
            .form(&[
                ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
                ("assertion", c.jwt.as_str()),
            ])
            .send()
            .await
            .expect("the simulator answers")
            .json()
            .await
            .expect("TokenInfo is JSON")
    }

    /// The authorization URL a user would open (auth-code flow); following
    /// it answers 302 to `redirect_uri?code=..&state=..&expires_in=60`.
    pub fn authorize_url(&self, redirect_uri: &str, state: &str) -> String {
        format!(
            "{}/restapi/oauth/authorize?response_type=code&client_id={}&redirect_uri={}&state={}",
            self.base,
            urlencode(&self.lock().cfg.client_id),
            urlencode(redirect_uri),
            urlencode(state)
        )
    }

    fn add(&self, number: &str, name: &str, email: &str, kind: &'static str) -> u64 {
        let mut s = self.lock();
        let id = s.next_id;
        s.next_id += 1000;
        s.exts.push(Sim::new_ext(id, number, name, email, kind));
        id
    }

    /// Add a User extension (Available, TakeAllCalls, no calls); returns
    /// its id.
    pub fn add_extension(&self, number: &str, name: &str, email: &str) -> u64 {
        self.add(number, name, email, "User")
    }

    /// Rename an extension (what the extension list answers as its name).
    pub fn rename_extension(&self, ext: u64, name: &str) {
        let mut s = self.lock();
        let i = s.ext_idx(ext);
        s.exts[i].name = name.into();
    }

    /// Remove an extension from the account: it leaves the extension list
    /// and requests naming it answer 404 (CMN-102).
    pub fn remove_extension(&self, ext: u64) {
        let mut s = self.lock();
        let i = s.ext_idx(ext);
        s.exts.remove(i);
    }

    /// Add a Department (call queue) extension: it has no DND, so a PUT of
    /// `dndStatus` on it is refused with 400.
    pub fn add_department(&self, number: &str, name: &str) -> u64 {
        self.add(number, name, "", "Department")
    }

    /// Switch an extension to the new communication handling service
    /// (presence then has `dndStatusPersonal` and `acceptCallQueueCalls`,
    /// no `dndStatus`) or back to the classic model.
    pub fn set_new_comm_handling(&self, ext: u64, on: bool) {
        let mut s = self.lock();
        let i = s.ext_idx(ext);
        s.exts[i].new_comm = on;
    }

    /// Refuse (or allow again) the app's reads of one extension's
    /// presence: GET answers 403, subscriptions list the filter in
    /// `disabledFilters`, no events.
    pub fn refuse_presence(&self, ext: u64, refused: bool) {
        let mut s = self.lock();
        let i = s.ext_idx(ext);
        s.exts[i].refused = refused;
    }

    fn mutate(&self, ext: u64, f: impl FnOnce(&mut Ext)) {
        let mut s = self.lock();
        let i = s.ext_idx(ext);
        f(&mut s.exts[i]);
        s.changed(i, &[]);
    }

    /// The user picks a status in the RingCentral app: `Available`, `Busy`
    /// or `Offline` (`userStatus`).
    pub fn user_sets_status(&self, ext: u64, user_status: &str) {
        assert!(
            ["Available", "Busy", "Offline"].contains(&user_status),
            "userStatus is Available|Busy|Offline, not {user_status}"
        );
        self.mutate(ext, |e| e.user_status = user_status.into());
    }

    /// The user changes DND in the RingCentral app: `dndStatus` (classic),
    /// or `dndStatusPersonal` (`TakeAllCalls|DoNotAcceptAnyCalls`) under
    /// the new communication handling service.
    pub fn user_sets_dnd(&self, ext: u64, dnd_status: &str) {
        let new_comm = {
            let s = self.lock();
            s.exts[s.ext_idx(ext)].new_comm
        };
        if new_comm {
            assert!(
                ["TakeAllCalls", "DoNotAcceptAnyCalls", "Unknown"].contains(&dnd_status),
                "dndStatusPersonal is TakeAllCalls|DoNotAcceptAnyCalls|Unknown, not {dnd_status}"
            );
            self.mutate(ext, |e| e.dnd_personal = dnd_status.into());
        } else {
            assert!(
                [
                    "TakeAllCalls",
                    "DoNotAcceptDepartmentCalls",
                    "TakeDepartmentCallsOnly",
                    "DoNotAcceptAnyCalls",
                    "Unknown"
                ]
                .contains(&dnd_status),
                "not a dndStatus: {dnd_status}"
            );
            self.mutate(ext, |e| e.dnd = dnd_status.into());
        }
    }

    /// The RingCentral app's "Accept queue calls" toggle. Classic model
    /// (C3, call-queues-presence guide): off is `dndStatus
    /// DoNotAcceptDepartmentCalls` (direct calls still ring), on is
    /// `TakeAllCalls`; a user in full DND (`DoNotAcceptAnyCalls`) stays
    /// there when turning it on, and turning it off from
    /// `TakeDepartmentCallsOnly` gives `DoNotAcceptAnyCalls`. New model:
    /// `acceptCallQueueCalls`.
    pub fn user_sets_accept_queue_calls(&self, ext: u64, on: bool) {
        self.mutate(ext, |e| {
            if e.new_comm {
                e.accept_cq = on;
                return;
            }
            e.dnd = match (e.dnd.as_str(), on) {
                ("DoNotAcceptDepartmentCalls", true) => "TakeAllCalls",
                ("TakeAllCalls", false) | ("Unknown", false) => "DoNotAcceptDepartmentCalls",
                ("TakeDepartmentCallsOnly", false) => "DoNotAcceptAnyCalls",
                (d, _) => d,
            }
            .to_string();
        });
    }

    /// The user's status note (`message`, at most 75 characters in the
    /// description); empty clears it.
    pub fn set_message(&self, ext: u64, text: &str) {
        self.mutate(ext, |e| e.message = text.into());
    }

    /// The user joins or leaves a RingCentral meeting (`meetingStatus`).
    pub fn set_meeting(&self, ext: u64, connected: bool) {
        self.mutate(ext, |e| e.meeting = connected);
    }

    /// A call to (`Inbound`) or from (`Outbound`) the extension starts
    /// ringing; `queue_call` marks a call-queue call. Returns the call id.
    pub fn start_call(&self, ext: u64, direction: &str, queue_call: bool) -> String {
        assert!(
            direction == "Inbound" || direction == "Outbound",
            "direction is Inbound|Outbound"
        );
        let mut s = self.lock();
        let i = s.ext_idx(ext);
        let n = s.next_call;
        s.next_call += 1;
        let e = &s.exts[i];
        let remote = format!("+1650555{:04}", n % 10_000);
        let (from, from_name, to, to_name) = if direction == "Inbound" {
            (
                remote,
                format!("Caller {n}"),
                e.number.clone(),
                e.name.clone(),
            )
        } else {
            (
                e.number.clone(),
                e.name.clone(),
                remote,
                format!("Callee {n}"),
            )
        };
        let id = format!("{:x}{:08x}", fastrand::u64(..), n);
        let call = Call {
            id: id.clone(),
            direction: direction.into(),
            queue_call,
            status: "Ringing".into(),
            start_ms: now_ms(),
            from,
            from_name,
            to,
            to_name,
            party_id: format!("p-{id}-1"),
            session_id: format!("{}", 17_000_000_000u64 + n),
            telephony_session_id: format!("s-{id}"),
        };
        s.exts[i].calls.push(call);
        s.changed(i, &[]);
        id
    }

    fn call_state(&self, call: &str, status: &str) {
        let mut s = self.lock();
        let (i, j) = s
            .exts
            .iter()
            .enumerate()
            .find_map(|(i, e)| e.calls.iter().position(|c| c.id == call).map(|j| (i, j)))
            .unwrap_or_else(|| panic!("no active call {call}"));
        if status == "NoCall" {
            let mut c = s.exts[i].calls.remove(j);
            c.status = "NoCall".into();
            s.changed(i, &[c]);
        } else {
            s.exts[i].calls[j].status = status.into();
            s.changed(i, &[]);
        }
    }

    /// The call is answered (`CallConnected`).
    pub fn answer_call(&self, call: &str) {
        self.call_state(call, "CallConnected");
    }

    /// The call is put on hold (`OnHold`).
    pub fn hold_call(&self, call: &str) {
        self.call_state(call, "OnHold");
    }

    /// The call ends: one last event lists it with `NoCall` and
    /// `terminationType: final`, then it is gone.
    pub fn end_call(&self, call: &str) {
        self.call_state(call, "NoCall");
    }

    /// The extension's presence as `GET .../presence?detailedTelephonyState=true`
    /// answers (RC-OAS `PresenceInfoResponse`).
    pub fn presence(&self, ext: u64) -> Value {
        let s = self.lock();
        let i = s.ext_idx(ext);
        s.exts[i].presence_json(&s.base, &s.cfg.account_id, true, false)
    }

    /// Bodies of `PUT .../presence` received for the extension (those that
    /// passed the OpenAPI check), in order.
    pub fn dnd_writes(&self, ext: u64) -> Vec<Value> {
        let s = self.lock();
        s.exts[s.ext_idx(ext)].writes.clone()
    }

    /// Drop every WebSocket without a close frame (as a network failure
    /// does). The sessions stay recoverable for `recovery_timeout_s`;
    /// events meanwhile are kept for replay. Returns how many were dropped.
    pub fn force_disconnect(&self) -> usize {
        let mut s = self.lock();
        let conns: Vec<(u64, mpsc::UnboundedSender<WsOut>)> = s.conns.drain().collect();
        let now = Instant::now();
        for w in s.ws_sessions.values_mut() {
            if w.conn.is_some() {
                w.conn = None;
                w.disconnected_at = Some(now);
            }
        }
        for (_, tx) in &conns {
            let _ = tx.send(WsOut::Drop);
        }
        conns.len()
    }

    /// Open WebSocket connections.
    pub fn ws_connections(&self) -> usize {
        self.lock().conns.len()
    }

    /// `recoveryState` of every reconnect that presented a `wsc` token
    /// (`Successful` or `Failed`), in order.
    pub fn ws_recoveries(&self) -> Vec<String> {
        self.lock().recoveries.clone()
    }

    /// Every `ServerNotification` frame sent on a WebSocket (replays
    /// included), in order.
    pub fn ws_notifications(&self) -> Vec<Value> {
        self.lock().ws_frames.clone()
    }

    /// Every subscription ever created, ended ones with `active: false`.
    pub fn subscriptions(&self) -> Vec<SubView> {
        self.lock()
            .subs
            .values()
            .map(|x| SubView {
                id: x.id.clone(),
                transport: match x.transport {
                    Transport::WebHook { .. } => "WebHook".into(),
                    Transport::WebSocket { .. } => "WebSocket".into(),
                },
                filters: x.filters.clone(),
                disabled: x.disabled.clone(),
                address: match &x.transport {
                    Transport::WebHook { address, .. } => Some(address.clone()),
                    Transport::WebSocket { .. } => None,
                },
                expires_at_ms: x.expires_ms,
                expires_at: x.expires_at,
                renewals: x.renewals,
                active: x.ended.is_none(),
                ended: x.ended.clone(),
            })
            .collect()
    }

    /// WebHook deliveries with the status the receiver answered.
    pub fn deliveries(&self) -> Vec<Delivery> {
        self.lock().deliveries.clone()
    }

    /// The next request in `group` (`Light|Medium|Heavy|Auth`) gets 429
    /// with `Retry-After: retry_after_s` and opens a penalty window that
    /// long.
    pub fn throttle_next(&self, group: &str, retry_after_s: u64) {
        assert!(
            ["Light", "Medium", "Heavy", "Auth"].contains(&group),
            "group is Light|Medium|Heavy|Auth"
        );
        self.lock()
            .buckets
            .entry(group.to_string())
            .or_default()
            .forced = Some(retry_after_s);
    }

    /// Every request answered, in order.
    pub fn requests(&self) -> Vec<Logged> {
        self.lock().log.clone()
    }

    /// Requests sent inside a penalty window (each reset it).
    pub fn penalty_resets(&self) -> usize {
        self.lock().penalty_resets
    }

    /// Tokens served by `grant_type` (`urn:ietf:params:oauth:grant-type:jwt-bearer`,
    /// `authorization_code`, `refresh_token`; `jwt` is accepted for the first).
    pub fn grants(&self, grant_type: &str) -> usize {
        let g = if grant_type == "jwt" {
            "urn:ietf:params:oauth:grant-type:jwt-bearer"
        } else {
            grant_type
        };
        self.lock().grants.get(g).copied().unwrap_or(0)
    }

    /// An administrator revoked the app's sessions: every access and
    /// refresh token stops working (401 / `invalid_grant`). The JWT still
    /// gets a new session.
    pub fn revoke_all_tokens(&self) {
        for s in self.lock().sessions.values_mut() {
            s.revoked = true;
        }
    }

    /// Every access token issued so far expires now (refresh tokens stay
    /// good).
    pub fn expire_access_tokens(&self) {
        let now = Instant::now();
        for a in self.lock().access.values_mut() {
            a.expires = now;
        }
    }

    /// Requests that broke the OpenAPI description or the guide, so far.
    pub fn violations(&self) -> Vec<String> {
        self.lock().violations.clone()
    }

    /// Take the violations (a test that sends bad requests on purpose
    /// takes them so that dropping the simulator does not fail it).
    pub fn take_violations(&self) -> Vec<String> {
        std::mem::take(&mut self.lock().violations)
    }
}

impl Sim {
    fn new_ext(id: u64, number: &str, name: &str, email: &str, kind: &'static str) -> Ext {
        Ext {
            id,
            number: number.into(),
            name: name.into(),
            email: email.into(),
            kind,
            new_comm: false,
            refused: false,
            user_status: "Available".into(),
            dnd: "TakeAllCalls".into(),
            dnd_personal: "TakeAllCalls".into(),
            accept_cq: true,
            message: String::new(),
            meeting: false,
            allow_see: true,
            ring_on_monitored: false,
            pick_up_on_hold: false,
            caller_id_visibility: None,
            calls: Vec::new(),
            sequence: 0,
            writes: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message as TMsg;

    async fn jwt_token(sim: &RcSim) -> Value {
        sim.jwt_sign_in().await
    }

    async fn bearer_of(sim: &RcSim) -> String {
        jwt_token(sim).await["access_token"]
            .as_str()
            .unwrap()
            .to_string()
    }

    async fn call(
        sim: &RcSim,
        bearer: &str,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value, HeaderMap) {
        let mut r = reqwest::Client::new()
            .request(method.parse().unwrap(), format!("{}{path}", sim.base()))
            .bearer_auth(bearer);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let resp = r.send().await.unwrap();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::Null),
            headers,
        )
    }

    /// The OpenAPI check bites: malformed requests get 400 with RC's error
    /// body and a violation naming the problem; valid ones pass.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn openapi_check_bites() {
        let started = Instant::now();
        let sim = RcSim::start(RcSimConfig::default()).await;
        eprintln!("start (sidecar included): {:?}", started.elapsed());
        let alice = sim.add_extension("101", "Alice Adams", "alice@example.com");
        let b = bearer_of(&sim).await;
        let url = format!("/restapi/v1.0/account/~/extension/{alice}/presence");
        let t = Instant::now();
        let (s, v, _) = call(
            &sim,
            &b,
            "PUT",
            &url,
            Some(json!({"dndStatus": "DoNotAcceptAnyCalls"})),
        )
        .await;
        eprintln!("one checked request: {:?}", t.elapsed());
        assert_eq!(s, 200, "{v}");
        assert_eq!(v["dndStatus"], "DoNotAcceptAnyCalls");
        assert!(sim.violations().is_empty(), "{:?}", sim.violations());

        let (s, v, _) = call(&sim, &b, "PUT", &url, Some(json!({"dndStatus": "Nope"}))).await;
        assert_eq!(s, 400);
        assert_eq!(v["errors"][0]["errorCode"], "CMN-101", "{v}");
        let vs = sim.take_violations();
        assert_eq!(vs.len(), 1, "{vs:?}");
        assert!(
            vs[0].contains("Nope") && vs[0].contains("updateUserPresenceStatus"),
            "{vs:?}"
        );
        assert_eq!(
            sim.presence(alice)["dndStatus"],
            "DoNotAcceptAnyCalls",
            "nothing changed"
        );

        let (s, _, _) = call(
            &sim,
            &b,
            "GET",
            "/restapi/v1.0/account/~/extension?perPage=abc",
            None,
        )
        .await;
        assert_eq!(s, 400);
        let vs = sim.take_violations();
        assert!(vs.len() == 1 && vs[0].contains("perPage"), "{vs:?}");

        let body = json!({"eventFilters": ["/restapi/v1.0/account/~/presence"]});
        let (s, _, _) = call(&sim, &b, "POST", "/restapi/v1.0/subscription", Some(body)).await;
        assert_eq!(s, 400);
        let vs = sim.take_violations();
        assert!(vs.len() == 1 && vs[0].contains("deliveryMode"), "{vs:?}");

        // A WebSocket delivery mode is not a REST request's to make.
        let body = json!({"eventFilters": ["/restapi/v1.0/account/~/presence"], "deliveryMode": {"transportType": "WebSocket"}});
        let (s, _, _) = call(&sim, &b, "POST", "/restapi/v1.0/subscription", Some(body)).await;
        assert_eq!(s, 400);
        assert_eq!(sim.take_violations().len(), 1);

        // A token request with a grant the description does not know.
        let c = sim.config();
        let r = reqwest::Client::new()
            .post(format!("{}/restapi/oauth/token", sim.base()))
            .basic_auth(&c.client_id, Some(&c.client_secret))
            .form(&[("grant_type", "password"), ("username", "x")])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 400);
        let vs = sim.take_violations();
        assert!(vs.len() == 1 && vs[0].contains("getToken"), "{vs:?}");
        assert!(sim.requests().iter().all(|r| r.group.is_some()));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn oauth_grants_refresh_rotation_revocation() {
        let limits = RateLimits {
            auth: 50,
            ..RateLimits::default()
        };
        let sim = RcSim::start(RcSimConfig {
            limits,
            ..RcSimConfig::default()
        })
        .await;
        let c = sim.config();
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let tok = jwt_token(&sim).await;
        for k in [
            "access_token",
            "refresh_token",
            "scope",
            "owner_id",
            "endpoint_id",
            "session_id",
        ] {
            assert!(tok[k].is_string(), "{k} in {tok}");
        }
        assert_eq!(tok["token_type"], "bearer");
        assert_eq!(tok["owner_id"], c.owner_extension.to_string());
        let me = "/restapi/v1.0/account/~/extension/~";
        let (s, v, _) = call(&sim, tok["access_token"].as_str().unwrap(), "GET", me, None).await;
        assert_eq!((s, v["id"].as_u64()), (200, Some(c.owner_extension)));

        let refresh = |rt: String| {
            let http = http.clone();
            let c = c.clone();
            let url = format!("{}/restapi/oauth/token", sim.base());
            async move {
                let r = http
                    .post(url)
                    .basic_auth(&c.client_id, Some(&c.client_secret))
                    .form(&[
                        ("grant_type", "refresh_token"),
                        ("refresh_token", rt.as_str()),
                    ])
                    .send()
                    .await
                    .unwrap();
                (r.status().as_u16(), r.json::<Value>().await.unwrap())
            }
        };
        let (s, new) = refresh(tok["refresh_token"].as_str().unwrap().into()).await;
        assert_eq!(s, 200, "{new}");
        let (s, v) = refresh(tok["refresh_token"].as_str().unwrap().into()).await;
        assert_eq!(
            (s, v["error"].as_str()),
            (400, Some("invalid_grant")),
            "{v}"
        );
        let (s, _, _) = call(&sim, tok["access_token"].as_str().unwrap(), "GET", me, None).await;
        assert_eq!(s, 401, "the old access token died with the refresh");
        let new_access = new["access_token"].as_str().unwrap();
        assert_eq!(call(&sim, new_access, "GET", me, None).await.0, 200);
        assert_eq!(sim.grants("refresh_token"), 1);
        assert_eq!(sim.grants("jwt"), 1);

        sim.expire_access_tokens();
        let (s, v, _) = call(&sim, new_access, "GET", me, None).await;
        assert_eq!(
            (s, v["errors"][0]["errorCode"].as_str()),
            (401, Some("OAU-210"))
        );
        let (s, newer) = refresh(new["refresh_token"].as_str().unwrap().into()).await;
        assert_eq!(s, 200);
        sim.revoke_all_tokens();
        assert_eq!(
            call(
                &sim,
                newer["access_token"].as_str().unwrap(),
                "GET",
                me,
                None
            )
            .await
            .0,
            401
        );
        let (s, v) = refresh(newer["refresh_token"].as_str().unwrap().into()).await;
        assert_eq!((s, v["error"].as_str()), (400, Some("invalid_grant")));

        // Authorization code: auto-consent, single use, redirect_uri checked.
        let r = http
            .get(sim.authorize_url("http://127.0.0.1:9/cb", "xyz"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 302);
        let loc = url::Url::parse(r.headers()["location"].to_str().unwrap()).unwrap();
        let q: HashMap<String, String> = loc.query_pairs().into_owned().collect();
        assert_eq!(q["state"], "xyz");
        let exchange = |redirect: &'static str| {
            let http = http.clone();
            let c = c.clone();
            let code = q["code"].clone();
            let url = format!("{}/restapi/oauth/token", sim.base());
            async move {
                http.post(url)
                    .basic_auth(&c.client_id, Some(&c.client_secret))
                    .form(&[
                        ("grant_type", "authorization_code"),
                        ("code", code.as_str()),
                        ("redirect_uri", redirect),
                    ])
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            }
        };
        assert_eq!(exchange("http://127.0.0.1:9/cb").await, 200);
        assert_eq!(
            exchange("http://127.0.0.1:9/cb").await,
            400,
            "codes are single use"
        );
        assert_eq!(sim.grants("authorization_code"), 1);

        // Wrong client secret.
        let r = http
            .post(format!("{}/restapi/oauth/token", sim.base()))
            .basic_auth(&c.client_id, Some("wrong"))
            .form(&[
                ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
                ("assertion", c.jwt.as_str()),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 400);
        assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_client");
        assert!(sim.violations().is_empty(), "{:?}", sim.violations());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn extensions_page_and_presence_rules() {
        let sim = RcSim::start(RcSimConfig::default()).await;
        let a = sim.add_extension("101", "Alice Adams", "alice@example.com");
        sim.add_extension("102", "Bob Brown", "bob@example.com");
        let q = sim.add_department("200", "Support Queue");
        let b = bearer_of(&sim).await;
        let (s, v, h) = call(
            &sim,
            &b,
            "GET",
            "/restapi/v1.0/account/~/extension?page=1&perPage=3",
            None,
        )
        .await;
        assert_eq!(s, 200);
        assert_eq!(v["records"].as_array().unwrap().len(), 3);
        assert_eq!(v["paging"]["totalElements"], 4);
        assert!(v["navigation"]["nextPage"]["uri"].is_string());
        assert_eq!(h["x-rate-limit-group"], "Medium");
        assert_eq!(v["records"][1]["contact"]["email"], "alice@example.com");
        let (_, v, _) = call(
            &sim,
            &b,
            "GET",
            "/restapi/v1.0/account/~/extension?type=Department",
            None,
        )
        .await;
        assert_eq!(v["records"][0]["id"], q);
        let acc = sim.config().account_id;
        let (s, _, _) = call(
            &sim,
            &b,
            "GET",
            &format!("/restapi/v1.0/account/{acc}/extension/{}/presence", a + 7),
            None,
        )
        .await;
        assert_eq!(s, 404);
        let (s, v, _) = call(
            &sim,
            &b,
            "PUT",
            &format!("/restapi/v1.0/account/~/extension/{q}/presence"),
            Some(json!({"dndStatus": "DoNotAcceptAnyCalls"})),
        )
        .await;
        assert_eq!(s, 400, "{v}");

        let call_id = sim.start_call(a, "Inbound", true);
        assert_eq!(sim.presence(a)["telephonyStatus"], "Ringing");
        assert_eq!(sim.presence(a)["presenceStatus"], "Busy");
        sim.answer_call(&call_id);
        assert_eq!(
            sim.presence(a)["activeCalls"][0]["telephonyStatus"],
            "CallConnected"
        );
        sim.end_call(&call_id);
        assert_eq!(sim.presence(a)["presenceStatus"], "Available");
        sim.user_sets_accept_queue_calls(a, false);
        assert_eq!(sim.presence(a)["dndStatus"], "DoNotAcceptDepartmentCalls");
        sim.user_sets_accept_queue_calls(a, true);
        assert_eq!(sim.presence(a)["dndStatus"], "TakeAllCalls");
        sim.set_new_comm_handling(a, true);
        sim.user_sets_accept_queue_calls(a, false);
        let p = sim.presence(a);
        assert_eq!(
            (p["acceptCallQueueCalls"].as_bool(), p.get("dndStatus")),
            (Some(false), None)
        );
        let (s, v, _) = call(
            &sim,
            &b,
            "GET",
            "/restapi/v1.0/account/~/presence?detailedTelephonyState=true&perPage=2",
            None,
        )
        .await;
        assert_eq!((s, v["records"].as_array().unwrap().len()), (200, 2));
        assert!(sim.violations().is_empty(), "{:?}", sim.violations());
    }

    /// A WebHook receiver: echoes `Validation-Token` (unless `echo` is
    /// false) and keeps what it is sent.
    async fn receiver(echo: bool) -> (String, Arc<Mutex<Vec<(HeaderMap, Value)>>>) {
        let got = Arc::new(Mutex::new(Vec::new()));
        let g = got.clone();
        let app = axum::Router::new().fallback(move |headers: HeaderMap, body: Bytes| {
            let g = g.clone();
            async move {
                let mut resp = StatusCode::OK.into_response();
                if let Some(t) = headers.get("validation-token") {
                    if echo {
                        resp.headers_mut().insert("validation-token", t.clone());
                    }
                } else {
                    g.lock().unwrap().push((
                        headers,
                        serde_json::from_slice(&body).unwrap_or(Value::Null),
                    ));
                }
                resp
            }
        });
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", l.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
        (url, got)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn webhook_handshake_delivery_and_expiry() {
        let sim = RcSim::start(RcSimConfig {
            max_expires_in_s: 2,
            ..RcSimConfig::default()
        })
        .await;
        let a = sim.add_extension("101", "Alice Adams", "alice@example.com");
        let b = bearer_of(&sim).await;
        let (bad, _) = receiver(false).await;
        let sub = |address: String| {
            json!({
                "eventFilters": [
                    format!("/restapi/v1.0/account/~/extension/{a}/presence"),
                    "/restapi/v1.0/account/~/presence?detailedTelephonyState=true",
                    "/restapi/v1.0/account/~/extension/999/presence",
                ],
                "deliveryMode": {"transportType": "WebHook", "address": address, "verificationToken": "s3cr3t"},
                "expiresIn": 3600,
            })
        };
        let (s, v, _) = call(
            &sim,
            &b,
            "POST",
            "/restapi/v1.0/subscription",
            Some(sub(bad)),
        )
        .await;
        assert_eq!(
            (s, v["errors"][0]["errorCode"].as_str()),
            (400, Some("SUB-525")),
            "{v}"
        );
        let (good, got) = receiver(true).await;
        let (s, v, _) = call(
            &sim,
            &b,
            "POST",
            "/restapi/v1.0/subscription",
            Some(sub(good)),
        )
        .await;
        assert_eq!(s, 200, "{v}");
        assert!(v["expiresIn"].as_u64().unwrap() <= 2, "{v}");
        assert_eq!(
            v["disabledFilters"][0]["filter"],
            "/restapi/v1.0/account/~/extension/999/presence"
        );
        let id = v["id"].as_str().unwrap().to_string();
        let c = sim.start_call(a, "Inbound", false);
        tokio::time::sleep(Duration::from_millis(500)).await;
        let d = sim.deliveries();
        assert_eq!(d.len(), 1, "one delivery per change and subscription");
        assert_eq!(d[0].status, 200);
        let (h, env) = got.lock().unwrap()[0].clone();
        assert_eq!(h["verification-token"], "s3cr3t");
        assert_eq!(
            env["body"]["activeCalls"][0]["id"], c,
            "the detailed filter wins: {env}"
        );
        assert_eq!(env["body"]["sequence"], 1);
        assert_eq!(env["ownerId"], sim.config().owner_extension.to_string());
        let (s, _, _) = call(
            &sim,
            &b,
            "POST",
            &format!("/restapi/v1.0/subscription/{id}/renew"),
            None,
        )
        .await;
        assert_eq!(s, 200);
        tokio::time::sleep(Duration::from_millis(2600)).await;
        let (s, _, _) = call(
            &sim,
            &b,
            "POST",
            &format!("/restapi/v1.0/subscription/{id}/renew"),
            None,
        )
        .await;
        assert_eq!(s, 404, "expired subscriptions vanish");
        let v = sim.subscriptions();
        assert!(!v[0].active && v[0].renewals == 1, "{v:?}");
        sim.end_call(&c);
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(sim.deliveries().len(), 1, "no delivery after expiry");
        assert!(sim.violations().is_empty(), "{:?}", sim.violations());
    }

    type Ws = tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >;

    async fn next_json(ws: &mut Ws) -> Value {
        loop {
            let m = tokio::time::timeout(Duration::from_secs(5), ws.next())
                .await
                .expect("a frame within 5 s")
                .expect("open")
                .expect("a frame");
            if let TMsg::Text(t) = m {
                return serde_json::from_str(t.as_str()).unwrap();
            }
        }
    }

    async fn ws_connect(sim: &RcSim, bearer: &str, wsc: Option<&str>) -> (Ws, Value) {
        let (s, t, h) = call(sim, bearer, "POST", "/restapi/oauth/wstoken", None).await;
        assert_eq!(s, 200, "{t}");
        assert_eq!(h["x-rate-limit-group"], "Auth");
        let mut url = format!(
            "{}?access_token={}",
            t["uri"].as_str().unwrap(),
            t["ws_access_token"].as_str().unwrap()
        );
        if let Some(w) = wsc {
            url.push_str(&format!("&wsc={w}"));
        }
        let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        let hello = next_json(&mut ws).await;
        assert_eq!(hello[0]["type"], "ConnectionDetails", "{hello}");
        (ws, hello)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn websocket_subscription_and_recovery() {
        let sim = RcSim::start(RcSimConfig::default()).await;
        let a = sim.add_extension("101", "Alice Adams", "alice@example.com");
        let b = bearer_of(&sim).await;
        let (mut ws, hello) = ws_connect(&sim, &b, None).await;
        assert_eq!(hello[1]["recoveryTimeout"], 180);
        assert!(hello[1].get("recoveryState").is_none());
        let wsc = hello[0]["wsc"]["token"].as_str().unwrap().to_string();
        ws.send(TMsg::Text(
            json!([{"type": "Heartbeat", "messageId": "hb-1"}])
                .to_string()
                .into(),
        ))
        .await
        .unwrap();
        assert_eq!(next_json(&mut ws).await[0]["messageId"], "hb-1");
        let sub = json!([
            {"type": "ClientRequest", "messageId": "m-1", "method": "POST", "path": "/restapi/v1.0/subscription/"},
            {"eventFilters": [format!("/restapi/v1.0/account/~/extension/{a}/presence?detailedTelephonyState=true&sipData=true")],
             "deliveryMode": {"transportType": "WebSocket"}},
        ]);
        ws.send(TMsg::Text(sub.to_string().into())).await.unwrap();
        let r = next_json(&mut ws).await;
        assert_eq!(
            (
                r[0]["type"].as_str(),
                r[0]["messageId"].as_str(),
                r[0]["status"].as_u64()
            ),
            (Some("ClientRequest"), Some("m-1"), Some(200)),
            "{r}"
        );
        assert_eq!(r[1]["deliveryMode"]["transportType"], "WebSocket");
        let call_id = sim.start_call(a, "Inbound", true);
        let n = next_json(&mut ws).await;
        assert_eq!(n[0]["type"], "ServerNotification");
        assert_eq!(n[1]["body"]["activeCalls"][0]["id"], call_id);
        assert!(n[1]["body"]["activeCalls"][0]["sipData"].is_object());

        // An invalid ClientRequest is refused and recorded.
        let bad = json!([{"type": "ClientRequest", "messageId": "m-2", "method": "PUT", "path": format!("/restapi/v1.0/account/~/extension/{a}/presence")}, {"userStatus": "Sleeping"}]);
        ws.send(TMsg::Text(bad.to_string().into())).await.unwrap();
        assert_eq!(next_json(&mut ws).await[0]["status"], 400);
        let vs = sim.take_violations();
        assert!(vs.len() == 1 && vs[0].contains("Sleeping"), "{vs:?}");

        assert_eq!(sim.ws_connections(), 1);
        assert_eq!(sim.force_disconnect(), 1);
        sim.answer_call(&call_id);
        sim.set_message(a, "back soon");
        let (mut ws2, hello) = ws_connect(&sim, &b, Some(&wsc)).await;
        assert_eq!(hello[1]["recoveryState"], "Successful", "{hello}");
        let r1 = next_json(&mut ws2).await;
        let r2 = next_json(&mut ws2).await;
        assert_eq!(r1[1]["body"]["telephonyStatus"], "CallConnected");
        assert_eq!(r2[1]["body"]["message"], "back soon");
        assert_eq!(sim.ws_recoveries(), vec!["Successful".to_string()]);
        assert!(
            sim.requests()
                .iter()
                .any(|r| r.over_ws && r.operation.as_deref() == Some("createSubscription"))
        );

        // A second POST on the same connection replaces the subscription.
        ws2.send(TMsg::Text(sub.to_string().into())).await.unwrap();
        assert_eq!(next_json(&mut ws2).await[0]["status"], 200);
        let subs = sim.subscriptions();
        assert_eq!(subs.iter().filter(|s| s.active).count(), 1, "{subs:?}");

        // A fresh OAuth session cannot recover this one.
        drop(ws2);
        tokio::time::sleep(Duration::from_millis(200)).await;
        let other = bearer_of(&sim).await;
        let (_, hello) = ws_connect(&sim, &other, Some(&wsc)).await;
        assert_eq!(hello[1]["recoveryState"], "Failed");
        assert_eq!(hello[1]["recoveryErrorCode"], "WSG-1003");
        assert!(sim.subscriptions().iter().all(|s| !s.active));
        assert!(sim.violations().is_empty(), "{:?}", sim.violations());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn rate_limits_and_penalty_resets_two_accounts() {
        let limits = RateLimits {
            auth: 2,
            window_s: 1,
            penalty_s: 1,
            ..RateLimits::default()
        };
        let sim = RcSim::start(RcSimConfig {
            limits,
            ..RcSimConfig::default()
        })
        .await;
        let other = RcSim::start(RcSimConfig {
            account_id: "222000".into(),
            ..RcSimConfig::default()
        })
        .await;
        assert_ne!(sim.base(), other.base());
        let a = sim.add_extension("101", "Alice Adams", "alice@example.com");
        let b = bearer_of(&sim).await;
        bearer_of(&sim).await;
        let t = jwt_token(&sim).await;
        assert_eq!(t["errorCode"], "CMN-301", "{t}");
        assert_eq!(sim.penalty_resets(), 0);
        jwt_token(&sim).await;
        assert_eq!(
            sim.penalty_resets(),
            1,
            "a request inside the penalty resets it"
        );
        tokio::time::sleep(Duration::from_millis(1100)).await;
        assert!(jwt_token(&sim).await["access_token"].is_string());

        sim.throttle_next("Light", 1);
        let url = format!("/restapi/v1.0/account/~/extension/{a}/presence");
        let (s, v, h) = call(&sim, &b, "GET", &url, None).await;
        assert_eq!(
            (s, v["errors"][0]["errorCode"].as_str()),
            (429, Some("CMN-301"))
        );
        assert_eq!(h["retry-after"], "1");
        assert_eq!(h["x-rate-limit-group"], "Light");
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let (s, _, h) = call(&sim, &b, "GET", &url, None).await;
        assert_eq!(s, 200);
        assert_eq!(h["x-rate-limit-limit"], "50");
        assert_eq!(h["x-rate-limit-window"], "1");
        assert_eq!(sim.penalty_resets(), 1);
        // The other account: its own tokens, its own account id.
        let ob = bearer_of(&other).await;
        let (s, _, _) = call(
            &other,
            &ob,
            "GET",
            "/restapi/v1.0/account/222000/extension",
            None,
        )
        .await;
        assert_eq!(s, 200);
        let (s, _, _) = call(
            &other,
            &b,
            "GET",
            "/restapi/v1.0/account/222000/extension",
            None,
        )
        .await;
        assert_eq!(s, 401, "tokens are per simulator");
        let (s, _, _) = call(
            &other,
            &ob,
            "GET",
            "/restapi/v1.0/account/37439510/extension",
            None,
        )
        .await;
        assert_eq!(s, 404);
    }
}
