//! A strict Exchange Web Services simulator (on-premises Exchange 2007 SP1
//! and later) for the `exchange-ews` connector's end-to-end tests.
//!
//! Written from Microsoft's EWS reference (the `GetUserAvailability` and
//! `GetUserOofSettings` operations, their request and response elements,
//! `ResponseCodeType`) and the schema's `messages.xsd`/`types.xsd`
//! definitions of the types involved (`GetUserAvailabilityRequestType`,
//! `SerializableTimeZone`, `ArrayOfMailboxData`, `MailboxData`,
//! `EmailAddress`, `FreeBusyViewOptionsType`, `Duration`), and from MS-NLMP
//! for NTLM.
//!
//! Validation is twofold. Where `xmllint` (Debian's libxml2-utils, installed
//! by `.ci/install-test-deps.sh`) is on the PATH, every request is first
//! validated against XSDs in `tests/ews_xsd/`: the subset of Exchange's
//! `types.xsd` and `messages.xsd` these two operations use, transcribed from
//! Microsoft's published definitions (Exchange ships the full files with
//! the server, not as a package), inside a SOAP 1.1 envelope schema that
//! admits only declared EWS headers and requests. Then, always, the
//! simulator's own strict parser checks the same again (so the checks hold
//! where xmllint is missing: a note says so once) plus what a schema cannot
//! say. A request is refused as Exchange refuses one that fails schema
//! validation (HTTP 500, SOAP fault `ErrorSchemaValidation`) when: the
//! content type is not text/xml, the envelope is not SOAP 1.1, the
//! `RequestServerVersion` header is missing or names an unknown version
//! (real Exchange takes a missing header as Exchange2007; the simulator is
//! stricter, as the connector must always send it), an element is in the
//! wrong namespace or order, a required element is missing, a value is not
//! of its type (xs:int, xs:boolean, xs:dateTime, the enumerations). Beyond
//! the schema: more than 100 mailboxes in one request (the documented
//! maximum) is refused with `ErrorInvalidRequest` (the exact code Exchange
//! uses is unverified); a time window longer than 42 days with
//! `ErrorTimeIntervalTooBig`; one that ends before it starts with
//! `ErrorInvalidTimeInterval` (unverified name). Every refusal is recorded
//! as a violation; dropping a simulator with violations nobody took fails
//! the test.
//!
//! Authentication (per account, as Active Directory counts): Basic, NTLMv2
//! (a real NEGOTIATE / CHALLENGE / AUTHENTICATE handshake whose
//! AUTHENTICATE must arrive on the connection that got the CHALLENGE, as
//! IIS requires; the NTProofStr is checked against the account's
//! password), and bearer tokens. Failed attempts lock an account after
//! `lockout_threshold` failures in a row (then even the right password
//! fails, as AD's lock-out does) until [`EwsSim::unlock`].
//!
//! Knobs: [`EwsSim::busy_next`] answers the next requests with
//! `ErrorServerBusy` and `BackOffMilliseconds`; [`EwsSim::unavailable_next`]
//! with HTTP 503 and `Retry-After`.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::Write as _;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::ConnectInfo;
use axum::extract::connect_info::Connected;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::serve::{IncomingStream, Listener};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, Mac};
use md4::{Digest, Md4};
use quick_xml::events::Event as XmlEvent;
use quick_xml::name::ResolveResult;
use quick_xml::reader::NsReader;

pub const SOAP: &str = "http://schemas.xmlsoap.org/soap/envelope/";
pub const TYPES: &str = "http://schemas.microsoft.com/exchange/services/2006/types";
pub const MESSAGES: &str = "http://schemas.microsoft.com/exchange/services/2006/messages";
pub const ERRORS: &str = "http://schemas.microsoft.com/exchange/services/2006/errors";

/// `RequestServerVersion` values known to Exchange 2013 SP1 (types.xsd
/// `ExchangeVersionType`).
const VERSIONS: &[&str] = &[
    "Exchange2007",
    "Exchange2007_SP1",
    "Exchange2010",
    "Exchange2010_SP1",
    "Exchange2010_SP2",
    "Exchange2013",
    "Exchange2013_SP1",
];
/// The most identities one `GetUserAvailability` may ask for.
pub const MAX_MAILBOXES: usize = 100;
/// The default limit of the availability time window, days.
pub const MAX_WINDOW_DAYS: i64 = 42;

/// The simulated server's set-up.
#[derive(Debug, Clone)]
pub struct EwsSimConfig {
    /// The NetBIOS domain the accounts belong to.
    pub domain: String,
    pub basic: bool,
    pub ntlm: bool,
    /// Failures in a row that lock an account; None never locks.
    pub lockout_threshold: Option<u32>,
}

impl Default for EwsSimConfig {
    fn default() -> Self {
        EwsSimConfig {
            domain: "CONTOSO".into(),
            basic: true,
            ntlm: true,
            lockout_threshold: Some(5),
        }
    }
}

/// One calendar item as a test sets it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// Unix milliseconds, UTC.
    pub start: u64,
    pub end: u64,
    /// `Free`, `Tentative`, `Busy`, `OOF`, `WorkingElsewhere`, `NoData`.
    pub busy_type: String,
    pub subject: String,
    pub location: String,
    pub private: bool,
}

/// A mailbox's automatic replies.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OofSet {
    /// `Disabled`, `Enabled`, `Scheduled`.
    pub state: String,
    pub start: Option<u64>,
    pub end: Option<u64>,
    pub internal: String,
    pub external: String,
}

#[derive(Debug, Clone, Default)]
struct Account {
    password: String,
    attempts: u32,
    failures: u32,
    in_a_row: u32,
    locked: bool,
}

#[derive(Debug, Clone, Default)]
struct Mailbox {
    items: Vec<Item>,
    oof: OofSet,
}

/// One request as the simulator saw it.
#[derive(Debug, Clone)]
pub struct Logged {
    /// `GetUserAvailability`, `GetUserOofSettings`, or `-` when refused
    /// before the body was read.
    pub operation: String,
    /// `basic`, `ntlm-negotiate`, `ntlm-authenticate`, `bearer`, `none`.
    pub auth: String,
    /// The account the request signed in as (lower case), if any.
    pub account: Option<String>,
    /// Mailboxes asked for.
    pub mailboxes: Vec<String>,
    pub status: u16,
    /// The response code or fault code answered, if not NoError.
    pub code: Option<String>,
    /// `RequestServerVersion`.
    pub version: Option<String>,
    /// Unix ms.
    pub at: u64,
}

enum Busy {
    ServerBusy(u64),
    Unavailable(u64),
}

struct Sim {
    cfg: EwsSimConfig,
    accounts: BTreeMap<String, Account>,
    tokens: Vec<String>,
    mailboxes: BTreeMap<String, Mailbox>,
    oof_readable: bool,
    busy: VecDeque<Busy>,
    /// Pending NTLM challenges per connection.
    challenges: HashMap<SocketAddr, [u8; 8]>,
    log: Vec<Logged>,
    violations: Vec<String>,
    /// Requests xmllint validated against the XSDs.
    xsd_validated: usize,
}

/// The running simulator.
pub struct EwsSim {
    url: String,
    state: Arc<Mutex<Sim>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for EwsSim {
    fn drop(&mut self) {
        self.task.abort();
        let v = self.lock().violations.clone();
        if !v.is_empty() && !std::thread::panicking() {
            panic!("the EWS simulator refused requests:\n{}", v.join("\n"));
        }
    }
}

/// The connection a request came on.
#[derive(Debug, Clone, Copy)]
pub struct Conn(pub SocketAddr);

impl Connected<IncomingStream<'_, tokio::net::TcpListener>> for Conn {
    fn connect_info(s: IncomingStream<'_, tokio::net::TcpListener>) -> Self {
        Conn(*s.remote_addr())
    }
}

impl Connected<IncomingStream<'_, TlsListener>> for Conn {
    fn connect_info(s: IncomingStream<'_, TlsListener>) -> Self {
        Conn(*s.remote_addr())
    }
}

/// TCP plus a TLS handshake (rustls) per connection.
pub struct TlsListener {
    tcp: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
}

impl Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((tcp, addr)) = self.tcp.accept().await else {
                continue;
            };
            // A client that refuses the certificate just goes away.
            if let Ok(Ok(tls)) =
                tokio::time::timeout(std::time::Duration::from_secs(5), self.acceptor.accept(tcp))
                    .await
            {
                return (tls, addr);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn lock(s: &Arc<Mutex<Sim>>) -> MutexGuard<'_, Sim> {
    s.lock().unwrap_or_else(|e| e.into_inner())
}

impl EwsSim {
    fn new_state(cfg: EwsSimConfig) -> Arc<Mutex<Sim>> {
        Arc::new(Mutex::new(Sim {
            cfg,
            accounts: BTreeMap::new(),
            tokens: Vec::new(),
            mailboxes: BTreeMap::new(),
            oof_readable: true,
            busy: VecDeque::new(),
            challenges: HashMap::new(),
            log: Vec::new(),
            violations: Vec::new(),
            xsd_validated: 0,
        }))
    }

    fn router(state: Arc<Mutex<Sim>>) -> axum::Router {
        axum::Router::new().fallback(
            move |ConnectInfo(conn): ConnectInfo<Conn>,
                  method: Method,
                  uri: Uri,
                  headers: HeaderMap,
                  body: Bytes| {
                let st = state.clone();
                async move { handle(&st, conn.0, method, uri, headers, body) }
            },
        )
    }

    /// Plain HTTP on 127.0.0.1.
    pub async fn start(cfg: EwsSimConfig) -> EwsSim {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!(
            "http://127.0.0.1:{}/EWS/Exchange.asmx",
            listener.local_addr().unwrap().port()
        );
        let state = Self::new_state(cfg);
        let app = Self::router(state.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app.into_make_service_with_connect_info::<Conn>()).await;
        });
        EwsSim { url, state, task }
    }

    /// HTTPS on 127.0.0.1 with this server configuration (a certificate for
    /// `localhost` from a private CA); the URL names `localhost`.
    pub async fn start_tls(cfg: EwsSimConfig, tls: Arc<rustls::ServerConfig>) -> EwsSim {
        let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!(
            "https://localhost:{}/EWS/Exchange.asmx",
            tcp.local_addr().unwrap().port()
        );
        let listener = TlsListener {
            tcp,
            acceptor: tokio_rustls::TlsAcceptor::from(tls),
        };
        let state = Self::new_state(cfg);
        let app = Self::router(state.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app.into_make_service_with_connect_info::<Conn>()).await;
        });
        EwsSim { url, state, task }
    }

    fn lock(&self) -> MutexGuard<'_, Sim> {
        lock(&self.state)
    }

    /// The EWS URL (`…/EWS/Exchange.asmx`).
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// An account (the user name without domain) and its password.
    pub fn add_account(&self, user: &str, password: &str) {
        self.lock().accounts.insert(
            user.to_lowercase(),
            Account {
                password: password.into(),
                ..Account::default()
            },
        );
    }

    /// A bearer token the server accepts.
    pub fn add_token(&self, token: &str) {
        self.lock().tokens.push(token.into());
    }

    /// The administrator resets an account's password (it also unlocks).
    pub fn set_password(&self, user: &str, password: &str) {
        let mut s = self.lock();
        let a = s.accounts.entry(user.to_lowercase()).or_default();
        a.password = password.into();
        a.in_a_row = 0;
        a.locked = false;
    }

    pub fn unlock(&self, user: &str) {
        if let Some(a) = self.lock().accounts.get_mut(&user.to_lowercase()) {
            a.locked = false;
            a.in_a_row = 0;
        }
    }

    /// Sign-in attempts the account made (each Basic request, each NTLM
    /// AUTHENTICATE).
    pub fn attempts(&self, user: &str) -> u32 {
        self.lock()
            .accounts
            .get(&user.to_lowercase())
            .map_or(0, |a| a.attempts)
    }

    pub fn failures(&self, user: &str) -> u32 {
        self.lock()
            .accounts
            .get(&user.to_lowercase())
            .map_or(0, |a| a.failures)
    }

    pub fn locked(&self, user: &str) -> bool {
        self.lock()
            .accounts
            .get(&user.to_lowercase())
            .is_some_and(|a| a.locked)
    }

    pub fn add_mailbox(&self, smtp: &str) {
        self.lock()
            .mailboxes
            .entry(smtp.to_lowercase())
            .or_default();
    }

    pub fn set_items(&self, smtp: &str, items: Vec<Item>) {
        self.lock()
            .mailboxes
            .entry(smtp.to_lowercase())
            .or_default()
            .items = items;
    }

    pub fn set_oof(&self, smtp: &str, oof: OofSet) {
        self.lock()
            .mailboxes
            .entry(smtp.to_lowercase())
            .or_default()
            .oof = oof;
    }

    /// Whether the service account may read other mailboxes' OOF settings.
    pub fn set_oof_readable(&self, readable: bool) {
        self.lock().oof_readable = readable;
    }

    /// The next `n` signed-in requests get `ErrorServerBusy` with this
    /// `BackOffMilliseconds`.
    pub fn busy_next(&self, n: usize, back_off_ms: u64) {
        let mut s = self.lock();
        for _ in 0..n {
            s.busy.push_back(Busy::ServerBusy(back_off_ms));
        }
    }

    /// The next `n` signed-in requests get HTTP 503 with `Retry-After`.
    pub fn unavailable_next(&self, n: usize, retry_after_s: u64) {
        let mut s = self.lock();
        for _ in 0..n {
            s.busy.push_back(Busy::Unavailable(retry_after_s));
        }
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Logged> {
        self.lock().log.clone()
    }

    /// Requests of this operation answered 200.
    pub fn served(&self, operation: &str) -> usize {
        self.lock()
            .log
            .iter()
            .filter(|l| l.operation == operation && l.status == 200)
            .count()
    }

    /// Requests xmllint validated against the XSDs (0 where xmllint is
    /// missing).
    pub fn xsd_validated(&self) -> usize {
        self.lock().xsd_validated
    }

    /// Whether requests are validated by xmllint too.
    pub fn validates_with_xsd(&self) -> bool {
        xmllint()
    }

    pub fn violations(&self) -> Vec<String> {
        self.lock().violations.clone()
    }

    /// Takes the violations (a test that provoked them on purpose).
    pub fn take_violations(&self) -> Vec<String> {
        std::mem::take(&mut self.lock().violations)
    }
}

// ---------------------------------------------------------------------------
// HTTP

fn soap_response(status: StatusCode, xml: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/xml; charset=utf-8")],
        xml,
    )
        .into_response()
}

fn envelope(body: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s="{SOAP}"><s:Header><h:ServerVersionInfo MajorVersion="15" MinorVersion="0" MajorBuildNumber="1497" MinorBuildNumber="2" xmlns:h="{TYPES}" xmlns="{TYPES}" xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"/></s:Header><s:Body xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:xsd="http://www.w3.org/2001/XMLSchema">{body}</s:Body></s:Envelope>"#
    )
}

/// A SOAP fault as Exchange writes it for request-level errors.
fn fault(code: &str, message: &str, extra: &str) -> Response {
    let body = format!(
        r#"<s:Fault><faultcode xmlns:a="{TYPES}">a:{code}</faultcode><faultstring xml:lang="en-US">{m}</faultstring><detail><e:ResponseCode xmlns:e="{ERRORS}">{code}</e:ResponseCode><e:Message xmlns:e="{ERRORS}">{m}</e:Message>{extra}</detail></s:Fault>"#,
        m = esc(message)
    );
    let mut r = soap_response(StatusCode::INTERNAL_SERVER_ERROR, envelope(&body));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        "text/xml; charset=utf-8".parse().unwrap(),
    );
    r
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn challenge_401(cfg: &EwsSimConfig, ntlm: Option<String>) -> Response {
    let mut r = (StatusCode::UNAUTHORIZED, "401 - Unauthorized").into_response();
    let h = r.headers_mut();
    match ntlm {
        Some(token) => {
            h.append(
                header::WWW_AUTHENTICATE,
                format!("NTLM {token}").parse().unwrap(),
            );
        }
        None => {
            if cfg.ntlm {
                h.append(header::WWW_AUTHENTICATE, "Negotiate".parse().unwrap());
                h.append(header::WWW_AUTHENTICATE, "NTLM".parse().unwrap());
            }
            if cfg.basic {
                h.append(
                    header::WWW_AUTHENTICATE,
                    "Basic realm=\"localhost\"".parse().unwrap(),
                );
            }
        }
    }
    r
}

enum Auth {
    /// Signed in as this account (None: a bearer token).
    Ok(Option<String>, &'static str),
    /// Answer this (401 with a challenge or refusal).
    Answer(Response, &'static str, Option<String>),
}

impl Sim {
    /// Checks a password attempt as AD does, counting it.
    fn attempt(&mut self, user: &str, ok: impl Fn(&str) -> bool) -> bool {
        let threshold = self.cfg.lockout_threshold;
        let Some(a) = self.accounts.get_mut(&user.to_lowercase()) else {
            return false;
        };
        a.attempts += 1;
        if !a.locked && ok(&a.password) {
            a.in_a_row = 0;
            return true;
        }
        a.failures += 1;
        a.in_a_row += 1;
        if threshold.is_some_and(|t| a.in_a_row >= t) {
            a.locked = true;
        }
        false
    }

    fn authenticate(&mut self, conn: SocketAddr, headers: &HeaderMap) -> Auth {
        let Some(value) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
        else {
            return Auth::Answer(challenge_401(&self.cfg, None), "none", None);
        };
        let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
        let token = token.trim();
        if scheme.eq_ignore_ascii_case("Basic") && self.cfg.basic {
            let decoded = B64
                .decode(token)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .unwrap_or_default();
            let (who, pass) = decoded.split_once(':').unwrap_or((&decoded, ""));
            let user = account_of(who);
            let pass = pass.to_string();
            if self.attempt(&user, |p| p == pass) {
                return Auth::Ok(Some(user), "basic");
            }
            return Auth::Answer(challenge_401(&self.cfg, None), "basic", Some(user));
        }
        if scheme.eq_ignore_ascii_case("Bearer") {
            if self.tokens.iter().any(|t| t == token) {
                return Auth::Ok(None, "bearer");
            }
            return Auth::Answer(challenge_401(&self.cfg, None), "bearer", None);
        }
        if scheme.eq_ignore_ascii_case("NTLM") && self.cfg.ntlm {
            let msg = B64.decode(token).unwrap_or_default();
            if msg.len() < 12 || &msg[..8] != b"NTLMSSP\0" {
                return Auth::Answer(challenge_401(&self.cfg, None), "ntlm", None);
            }
            match u32::from_le_bytes(msg[8..12].try_into().unwrap()) {
                1 => {
                    let mut challenge = [0u8; 8];
                    for b in challenge.iter_mut() {
                        *b = fastrand::u8(..);
                    }
                    self.challenges.insert(conn, challenge);
                    let t2 = challenge_message(&self.cfg.domain, challenge, now_ms());
                    return Auth::Answer(
                        challenge_401(&self.cfg, Some(B64.encode(t2))),
                        "ntlm-negotiate",
                        None,
                    );
                }
                3 => {
                    let Some(challenge) = self.challenges.remove(&conn) else {
                        self.violations.push(format!(
                            "NTLM AUTHENTICATE on connection {conn} that got no CHALLENGE (IIS binds the handshake to one connection)"
                        ));
                        return Auth::Answer(
                            challenge_401(&self.cfg, None),
                            "ntlm-authenticate",
                            None,
                        );
                    };
                    let Some(a) = parse_authenticate(&msg) else {
                        return Auth::Answer(
                            challenge_401(&self.cfg, None),
                            "ntlm-authenticate",
                            None,
                        );
                    };
                    let user = account_of(&a.user);
                    let domain_ok = a.domain.is_empty()
                        || a.domain.eq_ignore_ascii_case(&self.cfg.domain)
                        || a.user.contains('@');
                    let ok = self.attempt(&user, |pw| domain_ok && a.verify(pw, &challenge));
                    if ok {
                        return Auth::Ok(Some(user), "ntlm-authenticate");
                    }
                    return Auth::Answer(
                        challenge_401(&self.cfg, None),
                        "ntlm-authenticate",
                        Some(user),
                    );
                }
                _ => {}
            }
        }
        Auth::Answer(challenge_401(&self.cfg, None), "none", None)
    }
}

/// `DOMAIN\user` and `user@domain` both name `user`.
fn account_of(who: &str) -> String {
    let who = who.rsplit('\\').next().unwrap_or(who);
    who.split('@').next().unwrap_or(who).to_lowercase()
}

/// Whether `xmllint` can be run (looked up once).
fn xmllint() -> bool {
    static FOUND: OnceLock<bool> = OnceLock::new();
    *FOUND.get_or_init(|| {
        let found = Command::new("xmllint")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !found {
            eprintln!(
                "ews_sim: xmllint not found (apt-get install libxml2-utils): requests are checked by the simulator's own parser only"
            );
        }
        found
    })
}

/// Validates a request against the XSDs in `tests/ews_xsd/` with xmllint:
/// None when xmllint is missing, else its verdict.
fn xsd_validate(body: &[u8]) -> Option<Result<(), String>> {
    if !xmllint() {
        return None;
    }
    let schema = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("ews_xsd/envelope.xsd");
    let mut child = Command::new("xmllint")
        .args(["--noout", "--nonet", "--schema"])
        .arg(&schema)
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .ok()?;
    let mut stdin = child.stdin.take()?;
    let _ = stdin.write_all(body);
    drop(stdin);
    let out = child.wait_with_output().ok()?;
    if out.status.success() {
        return Some(Ok(()));
    }
    let text = String::from_utf8_lossy(&out.stderr);
    let first = text
        .lines()
        .find(|l| l.contains("error"))
        .unwrap_or("invalid")
        .trim()
        .to_string();
    Some(Err(first))
}

fn handle(
    st: &Arc<Mutex<Sim>>,
    conn: SocketAddr,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let xsd = if method == Method::POST && !body.is_empty() {
        xsd_validate(&body)
    } else {
        None
    };
    let mut s = lock(st);
    let mut entry = Logged {
        operation: "-".into(),
        auth: "none".into(),
        account: None,
        mailboxes: vec![],
        status: 0,
        code: None,
        version: None,
        at: now_ms(),
    };
    // IIS paths are case-insensitive.
    if !uri.path().eq_ignore_ascii_case("/ews/exchange.asmx") {
        entry.status = 404;
        s.log.push(entry);
        return (StatusCode::NOT_FOUND, "404 - File or directory not found.").into_response();
    }
    let (auth, response) = match s.authenticate(conn, &headers) {
        Auth::Ok(account, how) => {
            entry.account = account;
            (how, None)
        }
        Auth::Answer(r, how, account) => {
            entry.account = account;
            (how, Some(r))
        }
    };
    entry.auth = auth.into();
    if let Some(r) = response {
        entry.status = 401;
        s.log.push(entry);
        return r;
    }
    if method != Method::POST {
        entry.status = 405;
        s.log.push(entry);
        return StatusCode::METHOD_NOT_ALLOWED.into_response();
    }
    if let Some(b) = s.busy.pop_front() {
        match b {
            Busy::ServerBusy(ms) => {
                entry.status = 500;
                entry.code = Some("ErrorServerBusy".into());
                s.log.push(entry);
                return fault(
                    "ErrorServerBusy",
                    "The server cannot service this request right now. Try again later.",
                    &format!(
                        r#"<t:MessageXml xmlns:t="{TYPES}"><t:Value Name="BackOffMilliseconds">{ms}</t:Value></t:MessageXml>"#
                    ),
                );
            }
            Busy::Unavailable(secs) => {
                entry.status = 503;
                s.log.push(entry);
                let mut r =
                    (StatusCode::SERVICE_UNAVAILABLE, "503 Service Unavailable").into_response();
                r.headers_mut()
                    .insert(header::RETRY_AFTER, secs.to_string().parse().unwrap());
                return r;
            }
        }
    }
    let ctype = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let result = if !ctype.to_ascii_lowercase().starts_with("text/xml") {
        Err(Refusal::schema(format!(
            "Content-Type `{ctype}`: EWS takes SOAP 1.1 as text/xml"
        )))
    } else if let Some(Err(e)) = xsd {
        Err(Refusal::schema(format!("(XSD) {e}")))
    } else {
        if xsd.is_some() {
            s.xsd_validated += 1;
        }
        parse(&body)
            .map_err(|e| Refusal::schema(format!("not well-formed XML: {e}")))
            .and_then(|root| check_request(&root))
    };
    match result {
        Err(r) => {
            entry.status = 500;
            entry.code = Some(r.code.to_string());
            s.violations.push(format!("{}: {}", r.code, r.message));
            s.log.push(entry);
            fault(r.code, &r.message, "")
        }
        Ok(req) => {
            entry.version = Some(req.version().to_string());
            let (xml, op, mailboxes, code) = s.answer(&req, entry.account.as_deref());
            entry.operation = op.into();
            entry.mailboxes = mailboxes;
            entry.code = code;
            entry.status = 200;
            s.log.push(entry);
            soap_response(StatusCode::OK, envelope(&xml))
        }
    }
}

// ---------------------------------------------------------------------------
// NTLM (MS-NLMP)

fn utf16(s: &str) -> Vec<u8> {
    s.encode_utf16().flat_map(u16::to_le_bytes).collect()
}

fn av(id: u16, value: &[u8]) -> Vec<u8> {
    let mut v = id.to_le_bytes().to_vec();
    v.extend_from_slice(&(value.len() as u16).to_le_bytes());
    v.extend_from_slice(value);
    v
}

/// CHALLENGE_MESSAGE with target info (NetBIOS domain and computer, DNS
/// names, a timestamp).
fn challenge_message(domain: &str, challenge: [u8; 8], now: u64) -> Vec<u8> {
    let target = utf16(domain);
    let mut info = Vec::new();
    info.extend(av(2, &utf16(domain)));
    info.extend(av(1, &utf16("EXCH01")));
    info.extend(av(4, &utf16("contoso.local")));
    info.extend(av(3, &utf16("exch01.contoso.local")));
    info.extend(av(7, &((now + 11_644_473_600_000) * 10_000).to_le_bytes()));
    info.extend(av(0, &[]));
    // UNICODE, REQUEST_TARGET, NTLM, ALWAYS_SIGN, TARGET_TYPE_DOMAIN,
    // EXTENDED_SESSIONSECURITY, TARGET_INFO, 128, 56.
    let flags: u32 =
        0x1 | 0x4 | 0x200 | 0x8000 | 0x1_0000 | 0x8_0000 | 0x80_0000 | 0x2000_0000 | 0x8000_0000;
    let mut m = b"NTLMSSP\0".to_vec();
    m.extend_from_slice(&2u32.to_le_bytes());
    let target_off = 48u32;
    m.extend_from_slice(&(target.len() as u16).to_le_bytes());
    m.extend_from_slice(&(target.len() as u16).to_le_bytes());
    m.extend_from_slice(&target_off.to_le_bytes());
    m.extend_from_slice(&flags.to_le_bytes());
    m.extend_from_slice(&challenge);
    m.extend_from_slice(&[0; 8]);
    let info_off = target_off + target.len() as u32;
    m.extend_from_slice(&(info.len() as u16).to_le_bytes());
    m.extend_from_slice(&(info.len() as u16).to_le_bytes());
    m.extend_from_slice(&info_off.to_le_bytes());
    m.extend_from_slice(&target);
    m.extend_from_slice(&info);
    m
}

struct Authenticate {
    user: String,
    domain: String,
    nt: Vec<u8>,
}

fn parse_authenticate(m: &[u8]) -> Option<Authenticate> {
    let field = |at: usize| -> Option<Vec<u8>> {
        let len = u16::from_le_bytes(m.get(at..at + 2)?.try_into().ok()?) as usize;
        let off = u32::from_le_bytes(m.get(at + 4..at + 8)?.try_into().ok()?) as usize;
        m.get(off..off + len).map(<[u8]>::to_vec)
    };
    let flags = u32::from_le_bytes(m.get(60..64)?.try_into().ok()?);
    let text = |b: Vec<u8>| {
        if flags & 1 != 0 {
            let u: Vec<u16> = b
                .chunks(2)
                .map(|c| u16::from_le_bytes([c[0], *c.get(1).unwrap_or(&0)]))
                .collect();
            String::from_utf16_lossy(&u)
        } else {
            String::from_utf8_lossy(&b).into_owned()
        }
    };
    Some(Authenticate {
        nt: field(20)?,
        domain: text(field(28)?),
        user: text(field(36)?),
    })
}

impl Authenticate {
    /// NTLMv2: NTProofStr = HMAC_MD5(NTOWFv2, server challenge || blob).
    fn verify(&self, password: &str, challenge: &[u8; 8]) -> bool {
        if self.nt.len() < 16 + 28 {
            return false;
        }
        let nt_hash = Md4::digest(utf16(password));
        let mut mac = Hmac::<md5::Md5>::new_from_slice(&nt_hash).unwrap();
        mac.update(&utf16(&format!(
            "{}{}",
            self.user.to_uppercase(),
            self.domain
        )));
        let key = mac.finalize().into_bytes();
        let mut mac = Hmac::<md5::Md5>::new_from_slice(&key).unwrap();
        mac.update(challenge);
        mac.update(&self.nt[16..]);
        mac.verify_slice(&self.nt[..16]).is_ok()
    }
}

// ---------------------------------------------------------------------------
// XML

#[derive(Debug, Clone, Default)]
struct El {
    ns: Option<String>,
    name: String,
    attrs: Vec<(String, String)>,
    children: Vec<El>,
    text: String,
}

impl El {
    fn q(&self) -> String {
        format!("{{{}}}{}", self.ns.as_deref().unwrap_or(""), self.name)
    }
    fn is(&self, ns: &str, name: &str) -> bool {
        self.ns.as_deref() == Some(ns) && self.name == name
    }
    fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

fn parse(input: &[u8]) -> Result<El, String> {
    let mut r = NsReader::from_reader(input);
    r.config_mut().check_end_names = true;
    let mut stack: Vec<El> = Vec::new();
    let mut root = None;
    loop {
        let (ns, ev) = r.read_resolved_event().map_err(|e| e.to_string())?;
        let ns = match ns {
            ResolveResult::Bound(n) => Some(String::from_utf8_lossy(n.as_ref()).into_owned()),
            _ => None,
        };
        let open = |s: &quick_xml::events::BytesStart<'_>| -> Result<El, String> {
            let mut attrs = Vec::new();
            for a in s.attributes() {
                let a = a.map_err(|e| e.to_string())?;
                if a.key.as_ref() == b"xmlns"
                    || a.key.prefix().is_some_and(|p| p.as_ref() == b"xmlns")
                {
                    continue;
                }
                attrs.push((
                    String::from_utf8_lossy(a.key.local_name().as_ref()).into_owned(),
                    a.unescape_value().map_err(|e| e.to_string())?.into_owned(),
                ));
            }
            Ok(El {
                ns: ns.clone(),
                name: String::from_utf8_lossy(s.local_name().as_ref()).into_owned(),
                attrs,
                ..El::default()
            })
        };
        match ev {
            XmlEvent::Start(s) => stack.push(open(&s)?),
            XmlEvent::Empty(s) => {
                let el = open(&s)?;
                match stack.last_mut() {
                    Some(p) => p.children.push(el),
                    None => root = Some(el),
                }
            }
            XmlEvent::End(_) => {
                let el = stack.pop().ok_or("unmatched end tag")?;
                match stack.last_mut() {
                    Some(p) => p.children.push(el),
                    None if root.is_some() => return Err("two root elements".into()),
                    None => root = Some(el),
                }
            }
            XmlEvent::Text(t) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&String::from_utf8_lossy(&t.into_inner()));
                } else if !t.iter().all(u8::is_ascii_whitespace) {
                    return Err("text outside the root element".into());
                }
            }
            XmlEvent::GeneralRef(g) => {
                if let Some(top) = stack.last_mut() {
                    let name = String::from_utf8_lossy(&g).into_owned();
                    let ch = match name.as_str() {
                        "amp" => "&".to_string(),
                        "lt" => "<".into(),
                        "gt" => ">".into(),
                        "quot" => "\"".into(),
                        "apos" => "'".into(),
                        other => {
                            let n = other
                                .strip_prefix("#x")
                                .and_then(|h| u32::from_str_radix(h, 16).ok())
                                .or_else(|| other.strip_prefix('#').and_then(|d| d.parse().ok()))
                                .and_then(char::from_u32)
                                .ok_or(format!("unknown entity &{other};"))?;
                            n.to_string()
                        }
                    };
                    top.text.push_str(&ch);
                }
            }
            XmlEvent::CData(t) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&String::from_utf8_lossy(&t.into_inner()));
                }
            }
            XmlEvent::DocType(_) => return Err("DTDs are not allowed".into()),
            XmlEvent::Eof => break,
            _ => {}
        }
    }
    if !stack.is_empty() {
        return Err("truncated document".into());
    }
    root.ok_or_else(|| "no root element".into())
}

// ---------------------------------------------------------------------------
// Request checks (messages.xsd / types.xsd)

struct Refusal {
    code: &'static str,
    message: String,
}

impl Refusal {
    fn schema(message: String) -> Refusal {
        Refusal {
            code: "ErrorSchemaValidation",
            message: format!("The request failed schema validation: {message}"),
        }
    }
}

type Check<T> = Result<T, Refusal>;

/// Walks an element's children in schema order.
struct Seq<'a> {
    parent: &'a El,
    at: usize,
}

impl<'a> Seq<'a> {
    fn new(parent: &'a El) -> Self {
        Seq { parent, at: 0 }
    }
    fn peek_is(&self, ns: &str, name: &str) -> bool {
        self.parent
            .children
            .get(self.at)
            .is_some_and(|c| c.is(ns, name))
    }
    fn optional(&mut self, ns: &str, name: &str) -> Option<&'a El> {
        if self.peek_is(ns, name) {
            self.at += 1;
            Some(&self.parent.children[self.at - 1])
        } else {
            None
        }
    }
    fn required(&mut self, ns: &str, name: &str) -> Check<&'a El> {
        self.optional(ns, name).ok_or_else(|| {
            let found = self
                .parent
                .children
                .get(self.at)
                .map_or("the end of the element".to_string(), El::q);
            Refusal::schema(format!(
                "{} expects {{{ns}}}{name} here, found {found}",
                self.parent.q()
            ))
        })
    }
    fn end(&self) -> Check<()> {
        match self.parent.children.get(self.at) {
            None => Ok(()),
            Some(c) => Err(Refusal::schema(format!(
                "unexpected {} in {}",
                c.q(),
                self.parent.q()
            ))),
        }
    }
}

fn simple(e: &El) -> Check<&str> {
    if !e.children.is_empty() {
        return Err(Refusal::schema(format!("{} must hold text only", e.q())));
    }
    Ok(e.text.trim())
}

fn int(e: &El, range: std::ops::RangeInclusive<i64>) -> Check<i64> {
    let t = simple(e)?;
    t.parse::<i64>()
        .ok()
        .filter(|v| range.contains(v))
        .ok_or_else(|| Refusal::schema(format!("{} `{t}` is not a valid integer here", e.q())))
}

fn boolean(e: &El) -> Check<bool> {
    match simple(e)? {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        t => Err(Refusal::schema(format!(
            "{} `{t}` is not an xs:boolean",
            e.q()
        ))),
    }
}

fn one_of<'a>(e: &'a El, values: &[&str]) -> Check<&'a str> {
    let t = simple(e)?;
    if values.contains(&t) {
        Ok(t)
    } else {
        Err(Refusal::schema(format!(
            "{} `{t}` is not one of {}",
            e.q(),
            values.join(", ")
        )))
    }
}

/// xs:dateTime: seconds since the epoch of its wall-clock reading, and its
/// offset in minutes if it has one.
fn datetime(e: &El) -> Check<(i64, Option<i64>)> {
    let t = simple(e)?;
    parse_datetime(t)
        .ok_or_else(|| Refusal::schema(format!("{} `{t}` is not an xs:dateTime", e.q())))
}

fn parse_datetime(t: &str) -> Option<(i64, Option<i64>)> {
    let b = t.as_bytes();
    let num = |a: usize, n: usize| -> Option<i64> {
        let s = t.get(a..a + n)?;
        s.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| s.parse().ok())?
    };
    let (y, mo, d) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    let (h, mi, s) = (num(11, 2)?, num(14, 2)?, num(17, 2)?);
    if b.get(4) != Some(&b'-')
        || b.get(7) != Some(&b'-')
        || b.get(10) != Some(&b'T')
        || b.get(13) != Some(&b':')
        || b.get(16) != Some(&b':')
    {
        return None;
    }
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 59 {
        return None;
    }
    let mut rest = &t[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        let n = frac.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 {
            return None;
        }
        rest = &frac[n..];
    }
    let offset = match rest {
        "" => None,
        "Z" => Some(0),
        o if o.len() == 6 && (o.starts_with('+') || o.starts_with('-')) && &o[3..4] == ":" => {
            let v = o[1..3].parse::<i64>().ok()? * 60 + o[4..6].parse::<i64>().ok()?;
            Some(if o.starts_with('-') { -v } else { v })
        }
        _ => return None,
    };
    let secs = days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + s;
    Some((secs, offset))
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Wall-clock `YYYY-MM-DDThh:mm:ss` of epoch seconds.
fn wall(secs: i64) -> String {
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let r = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        r / 3600,
        r % 3600 / 60,
        r % 60
    )
}

const DAYS: &[&str] = &[
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Day",
    "Weekday",
    "WeekendDay",
];

/// `SerializableTimeZoneTime`: Bias, Time, DayOrder, Month, DayOfWeek, Year?
fn tz_time(e: &El) -> Check<i64> {
    let mut s = Seq::new(e);
    let bias = int(s.required(TYPES, "Bias")?, -1440..=1440)?;
    let time = simple(s.required(TYPES, "Time")?)?;
    if parse_datetime(&format!("2000-01-01T{time}")).is_none() {
        return Err(Refusal::schema(format!("Time `{time}` is not hh:mm:ss")));
    }
    int(s.required(TYPES, "DayOrder")?, 0..=5)?;
    int(s.required(TYPES, "Month")?, 0..=12)?;
    one_of(s.required(TYPES, "DayOfWeek")?, DAYS)?;
    s.optional(TYPES, "Year");
    s.end()?;
    Ok(bias)
}

/// `EmailAddress`: Name?, Address, RoutingType?
fn email(e: &El) -> Check<String> {
    let mut s = Seq::new(e);
    s.optional(TYPES, "Name");
    let address = simple(s.required(TYPES, "Address")?)?.to_string();
    if let Some(rt) = s.optional(TYPES, "RoutingType") {
        one_of(rt, &["SMTP", "EX"])?;
    }
    s.end()?;
    Ok(address)
}

enum Req {
    Availability {
        version: String,
        /// Minutes east of UTC the request's times are in.
        offset_min: i64,
        mailboxes: Vec<String>,
        start: i64,
        end: i64,
        view: String,
    },
    Oof {
        version: String,
        mailbox: String,
    },
}

impl Req {
    fn version(&self) -> &str {
        match self {
            Req::Availability { version, .. } | Req::Oof { version, .. } => version,
        }
    }
}

fn check_request(root: &El) -> Check<Req> {
    if !root.is(SOAP, "Envelope") {
        return Err(Refusal::schema(format!(
            "the root element is {}, not a SOAP 1.1 Envelope",
            root.q()
        )));
    }
    let mut env = Seq::new(root);
    let header = env.optional(SOAP, "Header");
    let body = env.required(SOAP, "Body")?;
    env.end()?;
    let rsv = header
        .and_then(|h| {
            h.children
                .iter()
                .find(|c| c.is(TYPES, "RequestServerVersion"))
        })
        .ok_or_else(|| Refusal::schema("the RequestServerVersion SOAP header is missing".into()))?;
    let version = rsv.attr("Version").unwrap_or("").to_string();
    if !VERSIONS.contains(&version.as_str()) {
        return Err(Refusal::schema(format!(
            "RequestServerVersion Version `{version}` is not an ExchangeVersionType"
        )));
    }
    if body.children.len() != 1 {
        return Err(Refusal::schema(
            "the SOAP Body must hold exactly one request".into(),
        ));
    }
    let op = &body.children[0];
    if op.is(MESSAGES, "GetUserOofSettingsRequest") {
        let mut s = Seq::new(op);
        let mailbox = email(s.required(TYPES, "Mailbox")?)?;
        s.end()?;
        return Ok(Req::Oof { version, mailbox });
    }
    if !op.is(MESSAGES, "GetUserAvailabilityRequest") {
        return Err(Refusal {
            code: "ErrorInvalidRequest",
            message: format!("the simulator serves no {}", op.q()),
        });
    }
    let mut s = Seq::new(op);
    let tz = s.required(TYPES, "TimeZone")?;
    let mut z = Seq::new(tz);
    let bias = int(z.required(TYPES, "Bias")?, -1440..=1440)?;
    let std_bias = tz_time(z.required(TYPES, "StandardTime")?)?;
    tz_time(z.required(TYPES, "DaylightTime")?)?;
    z.end()?;
    let arr = s.required(MESSAGES, "MailboxDataArray")?;
    let mut mailboxes = Vec::new();
    for md in &arr.children {
        if !md.is(TYPES, "MailboxData") {
            return Err(Refusal::schema(format!(
                "unexpected {} in MailboxDataArray",
                md.q()
            )));
        }
        let mut m = Seq::new(md);
        mailboxes.push(email(m.required(TYPES, "Email")?)?);
        one_of(
            m.required(TYPES, "AttendeeType")?,
            &["Organizer", "Required", "Optional", "Room", "Resource"],
        )?;
        if let Some(x) = m.optional(TYPES, "ExcludeConflicts") {
            boolean(x)?;
        }
        m.end()?;
    }
    if mailboxes.is_empty() {
        return Err(Refusal::schema("MailboxDataArray is empty".into()));
    }
    if mailboxes.len() > MAX_MAILBOXES {
        return Err(Refusal {
            code: "ErrorInvalidRequest",
            message: format!(
                "{} mailboxes in one request; at most {MAX_MAILBOXES} identities may be asked for",
                mailboxes.len()
            ),
        });
    }
    let fbo = s.optional(TYPES, "FreeBusyViewOptions");
    let svo = s.optional(TYPES, "SuggestionsViewOptions");
    s.end()?;
    if svo.is_some() {
        return Err(Refusal {
            code: "ErrorInvalidRequest",
            message: "the simulator serves no SuggestionsViewOptions".into(),
        });
    }
    let fbo = fbo.ok_or_else(|| Refusal {
        code: "ErrorInvalidRequest",
        message: "neither FreeBusyViewOptions nor SuggestionsViewOptions".into(),
    })?;
    let mut f = Seq::new(fbo);
    let tw = f.required(TYPES, "TimeWindow")?;
    if let Some(i) = f.optional(TYPES, "MergedFreeBusyIntervalInMinutes") {
        int(i, 5..=1440)?;
    }
    let view = match f.optional(TYPES, "RequestedView") {
        Some(v) => one_of(
            v,
            &[
                "None",
                "MergedOnly",
                "FreeBusy",
                "FreeBusyMerged",
                "Detailed",
                "DetailedMerged",
            ],
        )?
        .to_string(),
        None => "FreeBusy".into(),
    };
    f.end()?;
    let mut w = Seq::new(tw);
    let (start, so) = datetime(w.required(TYPES, "StartTime")?)?;
    let (end, eo) = datetime(w.required(TYPES, "EndTime")?)?;
    w.end()?;
    // Bias: UTC = local + bias. The simulator reads the window with the
    // standard bias (it does not apply daylight-saving transitions).
    let offset_min = -(bias + std_bias);
    let utc = |t: i64, o: Option<i64>| t - o.unwrap_or(offset_min) * 60;
    let (start, end) = (utc(start, so), utc(end, eo));
    if end <= start {
        return Err(Refusal {
            code: "ErrorInvalidTimeInterval",
            message: "the time window ends before it starts".into(),
        });
    }
    if end - start > MAX_WINDOW_DAYS * 86_400 {
        return Err(Refusal {
            code: "ErrorTimeIntervalTooBig",
            message: format!("the time window is longer than {MAX_WINDOW_DAYS} days"),
        });
    }
    Ok(Req::Availability {
        version,
        offset_min,
        mailboxes,
        start,
        end,
        view,
    })
}

// ---------------------------------------------------------------------------
// Answers

impl Sim {
    fn answer(
        &self,
        req: &Req,
        account: Option<&str>,
    ) -> (String, &'static str, Vec<String>, Option<String>) {
        match req {
            Req::Oof { mailbox, .. } => {
                let key = mailbox.to_lowercase();
                let own = account.is_some_and(|a| key.split('@').next() == Some(a));
                let err = |code: &str, text: &str| {
                    format!(
                        r#"<GetUserOofSettingsResponse xmlns="{MESSAGES}"><ResponseMessage ResponseClass="Error"><MessageText>{text}</MessageText><ResponseCode>{code}</ResponseCode><DescriptiveLinkKey>0</DescriptiveLinkKey></ResponseMessage></GetUserOofSettingsResponse>"#
                    )
                };
                let Some(mb) = self.mailboxes.get(&key) else {
                    return (
                        err("ErrorMailRecipientNotFound", "No mailbox with such guid."),
                        "GetUserOofSettings",
                        vec![key],
                        Some("ErrorMailRecipientNotFound".into()),
                    );
                };
                if !self.oof_readable && !own {
                    return (
                        err(
                            "ErrorAccessDenied",
                            "Access is denied. Check credentials and try again.",
                        ),
                        "GetUserOofSettings",
                        vec![key],
                        Some("ErrorAccessDenied".into()),
                    );
                }
                let o = &mb.oof;
                let state = if o.state.is_empty() {
                    "Disabled"
                } else {
                    &o.state
                };
                let t = |ms: Option<u64>| wall(ms.map_or(0, |m| m as i64 / 1000));
                let xml = format!(
                    r#"<GetUserOofSettingsResponse xmlns="{MESSAGES}"><ResponseMessage ResponseClass="Success"><ResponseCode>NoError</ResponseCode></ResponseMessage><OofSettings xmlns="{TYPES}"><OofState>{state}</OofState><ExternalAudience>All</ExternalAudience><Duration><StartTime>{}</StartTime><EndTime>{}</EndTime></Duration><InternalReply xml:lang="en-US"><Message>{}</Message></InternalReply><ExternalReply xml:lang="en-US"><Message>{}</Message></ExternalReply></OofSettings><AllowExternalOof>All</AllowExternalOof></GetUserOofSettingsResponse>"#,
                    t(o.start),
                    t(o.end.or(Some(86_400_000))),
                    esc(&o.internal),
                    esc(&o.external)
                );
                (xml, "GetUserOofSettings", vec![key], None)
            }
            Req::Availability {
                offset_min,
                mailboxes,
                start,
                end,
                view,
                ..
            } => {
                let detailed = view.starts_with("Detailed");
                let local = |ms: u64| wall(ms as i64 / 1000 + offset_min * 60);
                let mut out = format!(
                    r#"<GetUserAvailabilityResponse xmlns="{MESSAGES}"><FreeBusyResponseArray>"#
                );
                let mut any_error = None;
                for m in mailboxes {
                    let Some(mb) = self.mailboxes.get(&m.to_lowercase()) else {
                        any_error = Some("ErrorMailRecipientNotFound".to_string());
                        out.push_str(&format!(
                            r#"<FreeBusyResponse><ResponseMessage ResponseClass="Error"><MessageText>Mail recipient not found in Active Directory.</MessageText><ResponseCode>ErrorMailRecipientNotFound</ResponseCode><DescriptiveLinkKey>0</DescriptiveLinkKey><MessageXml><ExceptionType xmlns="{ERRORS}">Microsoft.Exchange.InfoWorker.Common.Availability.MailRecipientNotFoundException</ExceptionType></MessageXml></ResponseMessage><FreeBusyView><FreeBusyViewType xmlns="{TYPES}">None</FreeBusyViewType></FreeBusyView></FreeBusyResponse>"#
                        ));
                        continue;
                    };
                    out.push_str(&format!(
                        r#"<FreeBusyResponse><ResponseMessage ResponseClass="Success"><ResponseCode>NoError</ResponseCode></ResponseMessage><FreeBusyView><FreeBusyViewType xmlns="{TYPES}">{view}</FreeBusyViewType>"#
                    ));
                    if view.ends_with("Merged") {
                        let slots = ((end - start) / 1800).max(1);
                        out.push_str(&format!(
                            r#"<MergedFreeBusy xmlns="{TYPES}">{}</MergedFreeBusy>"#,
                            "0".repeat(slots as usize)
                        ));
                    }
                    out.push_str(&format!(r#"<CalendarEventArray xmlns="{TYPES}">"#));
                    let mut items: Vec<&Item> = mb
                        .items
                        .iter()
                        .filter(|i| {
                            (i.start as i64 / 1000) < *end && (i.end as i64 / 1000) > *start
                        })
                        .collect();
                    items.sort_by_key(|i| i.start);
                    for i in items {
                        out.push_str(&format!(
                            "<CalendarEvent><StartTime>{}</StartTime><EndTime>{}</EndTime><BusyType>{}</BusyType>",
                            local(i.start),
                            local(i.end),
                            i.busy_type
                        ));
                        if detailed {
                            out.push_str(&format!(
                                "<CalendarEventDetails><ID>{:016X}</ID><Subject>{}</Subject><Location>{}</Location><IsMeeting>true</IsMeeting><IsRecurring>false</IsRecurring><IsException>false</IsException><IsReminderSet>true</IsReminderSet><IsPrivate>{}</IsPrivate></CalendarEventDetails>",
                                i.start,
                                esc(&i.subject),
                                esc(&i.location),
                                i.private
                            ));
                        }
                        out.push_str("</CalendarEvent>");
                    }
                    out.push_str("</CalendarEventArray>");
                    out.push_str(&format!(
                        r#"<WorkingHours xmlns="{TYPES}"><TimeZone><Bias>{}</Bias><StandardTime><Bias>0</Bias><Time>02:00:00</Time><DayOrder>5</DayOrder><Month>10</Month><DayOfWeek>Sunday</DayOfWeek></StandardTime><DaylightTime><Bias>0</Bias><Time>02:00:00</Time><DayOrder>5</DayOrder><Month>3</Month><DayOfWeek>Sunday</DayOfWeek></DaylightTime></TimeZone><WorkingPeriodArray><WorkingPeriod><DayOfWeek>Monday Tuesday Wednesday Thursday Friday</DayOfWeek><StartTimeInMinutes>480</StartTimeInMinutes><EndTimeInMinutes>1020</EndTimeInMinutes></WorkingPeriod></WorkingPeriodArray></WorkingHours>"#,
                        -offset_min
                    ));
                    out.push_str("</FreeBusyView></FreeBusyResponse>");
                }
                out.push_str("</FreeBusyResponseArray></GetUserAvailabilityResponse>");
                (
                    out,
                    "GetUserAvailability",
                    mailboxes.iter().map(|m| m.to_lowercase()).collect(),
                    any_error,
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ntlmv2_verification_matches_the_specification_example() {
        // MS-NLMP 4.2.4: the NTLMv2 response of User/Domain/Password.
        let hex = |s: &str| -> Vec<u8> {
            (0..s.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
                .collect()
        };
        let mut blob = vec![1u8, 1, 0, 0, 0, 0, 0, 0];
        blob.extend_from_slice(&[0; 8]);
        blob.extend_from_slice(&[0xaa; 8]);
        blob.extend_from_slice(&[0; 4]);
        blob.extend(av(2, &utf16("Domain")));
        blob.extend(av(1, &utf16("Server")));
        blob.extend(av(0, &[]));
        blob.extend_from_slice(&[0; 4]);
        let mut nt = hex("68cd0ab851e51c96aabc927bebef6a1c");
        nt.extend_from_slice(&blob);
        let a = Authenticate {
            user: "User".into(),
            domain: "Domain".into(),
            nt,
        };
        let challenge: [u8; 8] = hex("0123456789abcdef").try_into().unwrap();
        assert!(a.verify("Password", &challenge));
        assert!(!a.verify("password", &challenge));
    }

    #[test]
    fn dates_round_trip() {
        let (s, o) = parse_datetime("2026-07-17T08:30:00").unwrap();
        assert_eq!(o, None);
        assert_eq!(wall(s), "2026-07-17T08:30:00");
        assert_eq!(
            parse_datetime("2026-07-17T08:30:00+02:00").unwrap().1,
            Some(120)
        );
        assert!(parse_datetime("2026-07-17 08:30:00").is_none());
        assert!(parse_datetime("2026-13-17T08:30:00").is_none());
    }
}
