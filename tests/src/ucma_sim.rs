//! A UCMA bridge simulator: a TLS WebSocket server on 127.0.0.1 that behaves
//! as a correct bridge (docs/ucma-bridge/PROTOCOL.md, version 1) over a
//! simulated Skype for Business Front End, for the `skype-ucma` connector's
//! end-to-end tests and the conformance kit's CI run.
//!
//! The Front End model: users (SIP URI → availability, activity token or
//! custom text, notes, phone state, publish permission, whether watching them
//! is refused), the accounts each endpoint type can establish with, and
//! switches for "pool unreachable" and "bad certificate". The bridge part
//! keeps nothing across connections, as the protocol requires; `restart()`
//! drops every connection and listens again on the same port, while the
//! Front End (users, presence, hub publications) stays, as a real one would.
//!
//! Every message the hub sends is validated against the published JSON Schema
//! (`ucma_bridge_kit::protocol::Schema`); violations are recorded and
//! dropping the simulator panics if any were not taken
//! (`take_schema_violations`). A broken mode (`UcmaSimConfig::broken`)
//! injects one [`Fault`] so the conformance kit can prove it notices.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Message, http};
use ucma_bridge_kit::protocol::{self, Direction, Schema, band, close, hub_credential};

/// The Front End pool's FQDN the simulated bridge can reach; any other
/// `server_fqdn` is unreachable (`connection-error`).
pub const POOL_FQDN: &str = "sfb-pool.sim.test";

/// A deliberate protocol fault for the broken mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// `presence.availability` sent as a string ("6500").
    WrongFieldTypes,
    /// `ping` from the hub is never answered.
    NoHeartbeatAnswers,
    /// `welcome.version` (and `v`) is one higher than anything offered.
    WrongVersionPick,
    /// After each initial push, two more with seq n+2 then n+1.
    OutOfOrderSeq,
    /// `watch-result` leaves out the last target of a batch of two or more.
    MissingWatchResults,
    /// `welcome.proof` computed with another token.
    BadProof,
}

/// How to run the simulator.
#[derive(Clone, Debug)]
pub struct UcmaSimConfig {
    /// `Some`: misbehave this way.
    pub broken: Option<Fault>,
    /// The shared token; default: 64 random hex digits.
    pub token: String,
    /// `welcome.max_batch`.
    pub max_batch: u32,
}

impl Default for UcmaSimConfig {
    fn default() -> Self {
        UcmaSimConfig {
            broken: None,
            token: protocol::nonce(),
            max_batch: 500,
        }
    }
}

#[derive(Clone, Debug)]
struct User {
    availability: u32,
    token: Option<String>,
    custom: Option<String>,
    note: Option<String>,
    ooo: Option<String>,
    phone: Option<String>,
    display_name: Option<String>,
    refused: bool,
    publish_allowed: bool,
    /// The hub-owned `state`/`note` instance (PROTOCOL.md section 7).
    hub: Option<HubPublication>,
}

#[derive(Clone, Debug)]
struct HubPublication {
    availability: u64,
    activity: Value,
    note: Option<String>,
}

#[derive(Clone, Debug)]
struct UserAccount {
    user_name: String,
    sip_uri: String,
    password: String,
    domain: String,
}

#[derive(Clone, Debug)]
struct TrustedApp {
    contact_uri: String,
    gruu: String,
    certificate: String,
    host: String,
    port: u64,
}

enum Ev {
    /// A user's aggregated presence changed.
    Changed(String),
    /// Watching this user is now refused.
    Refused(String),
    /// The pool failed: lose the endpoint, re-establish when reachable.
    EndpointLost,
    /// Say bye, close 1012.
    Restart,
    /// Vanish without a close frame.
    Drop,
}

struct State {
    cfg: UcmaSimConfig,
    reachable: bool,
    certificate_ok: bool,
    users: BTreeMap<String, User>,
    account: UserAccount,
    app: TrustedApp,
    conns: HashMap<u64, mpsc::UnboundedSender<Ev>>,
    watching: HashMap<u64, BTreeSet<String>>,
    tasks: Vec<JoinHandle<()>>,
    next_conn: u64,
    connects: usize,
    auth_rejections: usize,
    messages: Vec<Value>,
    violations: Vec<String>,
    published: HashMap<String, Vec<Value>>,
}

type Shared = Arc<Mutex<State>>;

fn lock(st: &Shared) -> MutexGuard<'_, State> {
    st.lock().unwrap_or_else(|e| e.into_inner())
}

fn key(uri: &str) -> String {
    uri.to_ascii_lowercase()
}

fn now_ts() -> String {
    // RFC 3339 UTC with milliseconds, as a .NET bridge would write it.
    let t = time::OffsetDateTime::now_utc();
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

impl State {
    fn broadcast(&self, ev: impl Fn() -> Ev) {
        for tx in self.conns.values() {
            let _ = tx.send(ev());
        }
    }

    /// The aggregated snapshot of a user: the hub's instance wins over the
    /// user's own state while it exists.
    fn snapshot(&self, k: &str) -> Option<(i64, Value, Option<String>, Value, &User)> {
        let u = self.users.get(k)?;
        let (avail, activity) = match &u.hub {
            Some(h) => (h.availability as i64, h.activity.clone()),
            None if u.token.is_none() && u.custom.is_none() => (u.availability as i64, Value::Null),
            None => (
                u.availability as i64,
                json!({"token": u.token, "custom": u.custom}),
            ),
        };
        let note = u
            .hub
            .as_ref()
            .and_then(|h| h.note.clone())
            .or(u.note.clone());
        let device = match u.phone.as_deref() {
            None => Value::Null,
            Some("in-a-call") => {
                json!({"phone": "in-a-call", "availability": 6500, "activity_token": "on-the-phone"})
            }
            Some("in-a-conference") => {
                json!({"phone": "in-a-conference", "availability": 6500, "activity_token": "in-a-conference"})
            }
            Some("idle") => json!({"phone": "idle", "availability": 3500, "activity_token": null}),
            Some(_) => json!({"phone": "unknown", "availability": null, "activity_token": null}),
        };
        Some((avail, activity, note, device, u))
    }

    /// Establish an endpoint: `Ok((endpoint_uri, publish))` or
    /// `Err((code, detail, sip response code))`.
    fn establish(
        &self,
        ep: &Value,
    ) -> Result<(String, &'static str), (&'static str, String, Option<u16>)> {
        let s = |k: &str| ep[k].as_str().unwrap_or("").to_string();
        let fqdn = s("server_fqdn");
        if !self.reachable || !fqdn.eq_ignore_ascii_case(POOL_FQDN) {
            return Err((
                "connection-error",
                format!(
                    "ConnectionFailureException: cannot reach {fqdn} (no route to the Front End pool)"
                ),
                None,
            ));
        }
        match ep["kind"].as_str() {
            Some("user") => {
                if ep["tls"] == json!(true) && !self.certificate_ok {
                    return Err((
                        "certificate-error",
                        format!(
                            "TlsFailureException: the certificate of {fqdn} is not trusted (untrusted root)"
                        ),
                        None,
                    ));
                }
                let a = &self.account;
                if !s("sip_uri").eq_ignore_ascii_case(&a.sip_uri) {
                    return Err((
                        "not-found",
                        format!(
                            "RegisterException: 404 Not Found: {} is not enabled for Skype for Business",
                            s("sip_uri")
                        ),
                        Some(404),
                    ));
                }
                if s("user_name") != a.user_name
                    || s("password") != a.password
                    || !s("domain").eq_ignore_ascii_case(&a.domain)
                {
                    return Err((
                        "forbidden",
                        format!(
                            "RegisterException: 401 Unauthorized for {} (check user name, password, domain)",
                            s("sip_uri")
                        ),
                        Some(401),
                    ));
                }
                Ok((s("sip_uri"), "self"))
            }
            Some("trusted-application") => {
                let a = &self.app;
                if !self.certificate_ok {
                    return Err((
                        "certificate-error",
                        format!(
                            "TlsFailureException: MTLS to {fqdn} failed: the pool does not trust certificate '{}'",
                            s("certificate_friendly_name")
                        ),
                        None,
                    ));
                }
                if !s("certificate_friendly_name").eq_ignore_ascii_case(&a.certificate) {
                    return Err((
                        "certificate-error",
                        format!(
                            "no certificate with friendly name '{}' in LocalMachine\\My",
                            s("certificate_friendly_name")
                        ),
                        None,
                    ));
                }
                if ep["application_port"].as_u64() != Some(a.port)
                    || !s("application_host").eq_ignore_ascii_case(&a.host)
                {
                    return Err((
                        "invalid-setup",
                        format!(
                            "application host/port {}:{} do not match the trusted application pool ({}:{})",
                            s("application_host"),
                            ep["application_port"],
                            a.host,
                            a.port
                        ),
                        None,
                    ));
                }
                if s("application_gruu") != a.gruu
                    || !s("application_contact_uri").eq_ignore_ascii_case(&a.contact_uri)
                {
                    return Err((
                        "forbidden",
                        "RegisterException: 403 Forbidden: not a trusted application (GRUU or contact URI)".into(),
                        Some(403),
                    ));
                }
                Ok((s("application_contact_uri"), "any"))
            }
            _ => Err(("invalid-setup", "unknown endpoint kind".into(), None)),
        }
    }
}

/// The running simulator. Drop it to stop; dropping panics when hub messages
/// broke the schema and the test did not take them.
pub struct UcmaSim {
    state: Shared,
    port: u16,
    ca_pem: String,
    tls: Arc<rustls::ServerConfig>,
    accept: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for UcmaSim {
    fn drop(&mut self) {
        if let Some(t) = self.accept.lock().unwrap_or_else(|e| e.into_inner()).take() {
            t.abort();
        }
        let tasks = std::mem::take(&mut lock(&self.state).tasks);
        for t in tasks {
            t.abort();
        }
        if !std::thread::panicking() {
            let v = self.schema_violations();
            if !v.is_empty() {
                panic!(
                    "the UCMA bridge simulator recorded {} hub message(s) that break docs/ucma-bridge/schema (take_schema_violations() if a test meant to send them):\n  {}",
                    v.len(),
                    v.join("\n  ")
                );
            }
        }
    }
}

/// A private CA and a server certificate for `localhost` and `127.0.0.1`.
fn pki() -> (String, Arc<rustls::ServerConfig>) {
    let ca_key = rcgen::KeyPair::generate().expect("CA key");
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "UCMA bridge simulator CA");
    let ca = ca_params.self_signed(&ca_key).expect("CA certificate");
    let key = rcgen::KeyPair::generate().expect("server key");
    let params =
        rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .expect("server params");
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let cert = params.signed_by(&key, &issuer).expect("server certificate");
    let server = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("TLS versions")
    .with_no_client_auth()
    .with_single_cert(
        vec![cert.der().clone()],
        rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
    )
    .expect("server TLS config");
    (ca.pem(), Arc::new(server))
}

fn spawn_accept(
    st: Shared,
    listener: tokio::net::TcpListener,
    tls: Arc<rustls::ServerConfig>,
) -> JoinHandle<()> {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let st2 = st.clone();
            let acceptor = acceptor.clone();
            let task = tokio::spawn(async move {
                let Ok(stream) = acceptor.accept(tcp).await else {
                    return;
                };
                serve(st2, stream).await;
            });
            let mut s = lock(&st);
            s.tasks.retain(|t| !t.is_finished());
            s.tasks.push(task);
        }
    })
}

impl UcmaSim {
    /// Start on 127.0.0.1 (a free port) with a fresh private CA. The Front
    /// End starts reachable, with a good certificate, no users, and the
    /// accounts of [`UcmaSim::user_endpoint`] and
    /// [`UcmaSim::trusted_application_endpoint`].
    pub async fn start(cfg: UcmaSimConfig) -> UcmaSim {
        let (ca_pem, tls) = pki();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the UCMA simulator");
        let port = listener.local_addr().expect("local address").port();
        let state = Arc::new(Mutex::new(State {
            cfg,
            reachable: true,
            certificate_ok: true,
            users: BTreeMap::new(),
            account: UserAccount {
                user_name: "hub.presence".into(),
                sip_uri: "sip:hub.presence@sim.test".into(),
                password: "Passw0rd!".into(),
                domain: "SIM".into(),
            },
            app: TrustedApp {
                contact_uri: "sip:presence-app@sim.test".into(),
                gruu: "sip:hubapp.sim.test@sim.test;gruu;opaque=srvr:presencehub:c2ltdWxhdG9y"
                    .into(),
                certificate: "OCSConnector".into(),
                host: "hubapp.sim.test".into(),
                port: 14001,
            },
            conns: HashMap::new(),
            watching: HashMap::new(),
            tasks: Vec::new(),
            next_conn: 1,
            connects: 0,
            auth_rejections: 0,
            messages: Vec::new(),
            violations: Vec::new(),
            published: HashMap::new(),
        }));
        let accept = spawn_accept(state.clone(), listener, tls.clone());
        UcmaSim {
            state,
            port,
            ca_pem,
            tls,
            accept: Mutex::new(Some(accept)),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// `wss://localhost:PORT/ucma` (the certificate also names 127.0.0.1).
    pub fn url(&self) -> String {
        format!("wss://localhost:{}/ucma", self.port)
    }

    /// The listening port (stable across `restart`).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// PEM of the private CA that signed the server certificate.
    pub fn ca_pem(&self) -> String {
        self.ca_pem.clone()
    }

    /// The shared token (the hub's bearer is derived from it).
    pub fn token(&self) -> String {
        self.lock().cfg.token.clone()
    }

    /// A `setup.endpoint` the simulator establishes: a user endpoint with or
    /// without TLS, with the current user account.
    pub fn user_endpoint(&self, tls: bool) -> Value {
        let a = self.lock().account.clone();
        json!({"kind": "user", "tls": tls, "server_fqdn": POOL_FQDN, "user_name": a.user_name,
            "sip_uri": a.sip_uri, "password": a.password, "domain": a.domain})
    }

    /// A `setup.endpoint` for the trusted application the simulator knows.
    pub fn trusted_application_endpoint(&self) -> Value {
        let a = self.lock().app.clone();
        json!({"kind": "trusted-application", "server_fqdn": POOL_FQDN,
            "application_contact_uri": a.contact_uri, "application_gruu": a.gruu,
            "certificate_friendly_name": a.certificate, "application_host": a.host,
            "application_port": a.port})
    }

    /// Replace the user account user endpoints establish with.
    pub fn set_credentials(&self, user_name: &str, sip_uri: &str, password: &str, domain: &str) {
        self.lock().account = UserAccount {
            user_name: user_name.into(),
            sip_uri: sip_uri.into(),
            password: password.into(),
            domain: domain.into(),
        };
    }

    /// Replace the trusted application (contact URI, GRUU, certificate
    /// friendly name, application host and port).
    pub fn set_trusted_application(
        &self,
        contact_uri: &str,
        gruu: &str,
        certificate_friendly_name: &str,
        host: &str,
        port: u16,
    ) {
        self.lock().app = TrustedApp {
            contact_uri: contact_uri.into(),
            gruu: gruu.into(),
            certificate: certificate_friendly_name.into(),
            host: host.into(),
            port: port.into(),
        };
    }

    /// Add a user (Available, 3500; publishing allowed). Case-insensitive
    /// key; the hub's spelling is echoed back.
    pub fn add_user(&self, sip_uri: &str) {
        self.lock().users.insert(
            key(sip_uri),
            User {
                availability: 3500,
                token: None,
                custom: None,
                note: None,
                ooo: None,
                phone: None,
                display_name: None,
                refused: false,
                publish_allowed: true,
                hub: None,
            },
        );
    }

    fn change(&self, uri: &str, f: impl FnOnce(&mut User)) {
        let k = key(uri);
        let mut s = self.lock();
        let u = s
            .users
            .get_mut(&k)
            .unwrap_or_else(|| panic!("no simulated user {uri}: add_user first"));
        f(u);
        s.broadcast(|| Ev::Changed(k.clone()));
    }

    /// The user's own state: UCMA availability number, activity token
    /// (`on-the-phone`, `in-a-meeting`, ... or `None`), personal note.
    /// Clears any custom activity text. Pushed to every watching hub.
    ///
    /// # Panics
    /// If the user was not added.
    pub fn set_presence(
        &self,
        uri: &str,
        availability: u32,
        activity: Option<&str>,
        note: Option<&str>,
    ) {
        self.change(uri, |u| {
            u.availability = availability;
            u.token = activity.map(str::to_string);
            u.custom = None;
            u.note = note.map(str::to_string);
        });
    }

    /// Custom activity text the user typed (`None` clears it).
    pub fn set_custom_activity(&self, uri: &str, text: Option<&str>) {
        self.change(uri, |u| u.custom = text.map(str::to_string));
    }

    /// Out-of-office note (`None` clears it).
    pub fn set_out_of_office_note(&self, uri: &str, text: Option<&str>) {
        self.change(uri, |u| u.ooo = text.map(str::to_string));
    }

    /// ContactCard display name.
    pub fn set_display_name(&self, uri: &str, name: Option<&str>) {
        self.change(uri, |u| u.display_name = name.map(str::to_string));
    }

    /// Phone state: `Some("idle" | "in-a-call" | "in-a-conference" |
    /// anything else → unknown)`, `None`: UCMA gives no phone state.
    pub fn set_device(&self, uri: &str, phone: Option<&str>) {
        self.change(uri, |u| u.phone = phone.map(str::to_string));
    }

    /// Whether the hub may publish for this user (false → `publish-result`
    /// failed forbidden).
    pub fn set_publish_allowed(&self, uri: &str, allowed: bool) {
        self.change(uri, |u| u.publish_allowed = allowed);
    }

    /// Refuse watching this user from now on: new watches get `refused`,
    /// current ones a `target-state` refused.
    pub fn refuse_subscription(&self, uri: &str) {
        let k = key(uri);
        let mut s = self.lock();
        if let Some(u) = s.users.get_mut(&k) {
            u.refused = true;
        }
        s.broadcast(|| Ev::Refused(k.clone()));
    }

    /// Make the pool (un)reachable. Unreachable: every established endpoint
    /// is lost (`endpoint-state` lost) and set-ups fail with
    /// `connection-error`; reachable again: lost endpoints come back within
    /// about 200 ms with initial pushes.
    pub fn set_pool_reachable(&self, reachable: bool) {
        let mut s = self.lock();
        s.reachable = reachable;
        if !reachable {
            s.broadcast(|| Ev::EndpointLost);
        }
    }

    /// A pool failover: every established endpoint is lost and comes back
    /// about 200 ms later.
    pub fn fail_over(&self) {
        self.lock().broadcast(|| Ev::EndpointLost);
    }

    /// `false`: TLS and MTLS endpoints fail with `certificate-error`.
    pub fn set_certificate_ok(&self, ok: bool) {
        self.lock().certificate_ok = ok;
    }

    /// Restart the bridge: `bye` bridge-restarting and close 1012 on every
    /// connection, forget all bridge state, listen again on the same port.
    /// The Front End (users, presence, hub publications) stays.
    pub async fn restart(&self) {
        if let Some(t) = self.accept.lock().unwrap_or_else(|e| e.into_inner()).take() {
            t.abort();
        }
        self.lock().broadcast(|| Ev::Restart);
        let deadline = Instant::now() + Duration::from_secs(2);
        while !self.lock().conns.is_empty() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        {
            let mut s = self.lock();
            for t in s.tasks.drain(..) {
                t.abort();
            }
            s.conns.clear();
            s.watching.clear();
        }
        // The aborted accept task releases the socket asynchronously.
        let listener = loop {
            match tokio::net::TcpListener::bind(("127.0.0.1", self.port)).await {
                Ok(l) => break l,
                Err(_) if Instant::now() < deadline + Duration::from_secs(3) => {
                    tokio::time::sleep(Duration::from_millis(20)).await
                }
                Err(e) => panic!("rebind 127.0.0.1:{}: {e}", self.port),
            }
        };
        *self.accept.lock().unwrap_or_else(|e| e.into_inner()) =
            Some(spawn_accept(self.state.clone(), listener, self.tls.clone()));
    }

    /// Drop every connection without a close frame (a crashed bridge or a
    /// broken network); the listener stays.
    pub fn drop_connections(&self) {
        self.lock().broadcast(|| Ev::Drop);
    }

    /// The aggregated presence the Front End shows for a user:
    /// `{availability, band, activity, note, device}`.
    pub fn presence(&self, uri: &str) -> Value {
        let s = self.lock();
        let (a, act, note, dev, _) = s.snapshot(&key(uri)).expect("known user");
        json!({"availability": a, "band": band(a), "activity": act, "note": note, "device": dev})
    }

    /// The hub-owned publication in force for a user, if any:
    /// `{availability, activity, note}`.
    pub fn hub_publication(&self, uri: &str) -> Option<Value> {
        let s = self.lock();
        let h = s.users.get(&key(uri))?.hub.clone()?;
        Some(json!({"availability": h.availability, "activity": h.activity, "note": h.note}))
    }

    /// Every `publish` and `restore` message received for this user, in
    /// order (whatever their outcome).
    pub fn published(&self, uri: &str) -> Vec<Value> {
        self.lock()
            .published
            .get(&key(uri))
            .cloned()
            .unwrap_or_default()
    }

    /// Everything the hubs sent, in arrival order (text frames that were
    /// not JSON as strings).
    pub fn messages(&self) -> Vec<Value> {
        self.lock().messages.clone()
    }

    /// Targets watched on any open connection (lower case).
    pub fn watched(&self) -> BTreeSet<String> {
        self.lock().watching.values().flatten().cloned().collect()
    }

    /// Open WebSocket connections.
    pub fn connections(&self) -> usize {
        self.lock().conns.len()
    }

    /// WebSocket connections accepted so far.
    pub fn connects(&self) -> usize {
        self.lock().connects
    }

    /// Upgrades refused with HTTP 401 (wrong or missing bearer).
    pub fn auth_rejections(&self) -> usize {
        self.lock().auth_rejections
    }

    /// Hub messages that broke the schema or the protocol so far.
    pub fn schema_violations(&self) -> Vec<String> {
        self.lock().violations.clone()
    }

    /// Take them (a test that sends bad messages on purpose).
    pub fn take_schema_violations(&self) -> Vec<String> {
        std::mem::take(&mut self.lock().violations)
    }
}

// ------------------------------------------------------------ one connection

type Tx = futures_util::stream::SplitSink<
    tokio_tungstenite::WebSocketStream<tokio_rustls::server::TlsStream<tokio::net::TcpStream>>,
    Message,
>;

struct Conn {
    id: u64,
    st: Shared,
    tx: Tx,
    fault: Option<Fault>,
    version: Option<u64>,
    hb: Duration,
    endpoint: Option<(String, &'static str)>,
    lost: bool,
    retry_at: Option<Instant>,
    /// lower-case key → the hub's spelling.
    watched: BTreeMap<String, String>,
    seq: HashMap<String, u64>,
    next_ping: Option<Instant>,
    pong_due: Option<(String, Instant)>,
    last_rx: Instant,
    pings: u64,
}

/// What the loop does after handling something.
enum Next {
    Go,
    End,
}

async fn serve(st: Shared, stream: tokio_rustls::server::TlsStream<tokio::net::TcpStream>) {
    let want = format!("Bearer {}", hub_credential(&lock(&st).cfg.token));
    let st_cb = st.clone();
    // tungstenite's callback signature fixes the large error type.
    #[allow(clippy::result_large_err)]
    let callback = move |req: &Request, resp: Response| -> Result<Response, ErrorResponse> {
        let got = req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok());
        if got == Some(want.as_str()) {
            Ok(resp)
        } else {
            lock(&st_cb).auth_rejections += 1;
            Err(http::Response::builder()
                .status(http::StatusCode::UNAUTHORIZED)
                .body(Some("bearer missing or wrong".to_string()))
                .expect("a 401 response"))
        }
    };
    let Ok(ws) = tokio_tungstenite::accept_hdr_async(stream, callback).await else {
        return;
    };
    let (tx, mut rx) = ws.split();
    let (etx, mut erx) = mpsc::unbounded_channel();
    let (id, fault) = {
        let mut s = lock(&st);
        let id = s.next_conn;
        s.next_conn += 1;
        s.connects += 1;
        s.conns.insert(id, etx);
        s.watching.insert(id, BTreeSet::new());
        (id, s.cfg.broken)
    };
    let mut c = Conn {
        id,
        st: st.clone(),
        tx,
        fault,
        version: None,
        hb: Duration::from_secs(15),
        endpoint: None,
        lost: false,
        retry_at: None,
        watched: BTreeMap::new(),
        seq: HashMap::new(),
        next_ping: None,
        pong_due: None,
        last_rx: Instant::now(),
        pings: 0,
    };
    let hello_deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let timer = [
            c.version.is_none().then_some(hello_deadline),
            c.next_ping,
            c.pong_due.as_ref().map(|p| p.1),
            c.version.map(|_| c.last_rx + c.hb * 3),
            c.retry_at,
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
        let next = tokio::select! {
            frame = rx.next() => match frame {
                Some(Ok(Message::Text(t))) => c.on_text(t.as_str()).await,
                Some(Ok(Message::Binary(_))) => {
                    c.violation("a binary frame (text only)".into());
                    c.close(close::PROTOCOL_ERROR, "binary frame").await
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => Next::End,
                Some(Ok(_)) => Next::Go,
            },
            ev = erx.recv() => match ev {
                Some(ev) => c.on_event(ev).await,
                None => Next::End,
            },
            _ = tokio::time::sleep_until(timer) => c.on_timer(hello_deadline).await,
        };
        if let Next::End = next {
            break;
        }
    }
    let mut s = lock(&st);
    s.conns.remove(&id);
    s.watching.remove(&id);
}

impl Conn {
    fn v(&self) -> u64 {
        self.version.unwrap_or(1)
    }

    fn violation(&self, what: String) {
        lock(&self.st)
            .violations
            .push(format!("connection {}: {what}", self.id));
    }

    async fn send(&mut self, msg: Value) {
        let _ = self.tx.send(Message::text(msg.to_string())).await;
    }

    async fn close(&mut self, code: u16, reason: &str) -> Next {
        let _ = self
            .tx
            .send(Message::Close(Some(CloseFrame {
                code: CloseCode::from(code),
                reason: reason.to_string().into(),
            })))
            .await;
        let _ = self.tx.close().await;
        Next::End
    }

    async fn error(&mut self, code: &str, detail: &str, rid: Option<&Value>, fatal: bool) {
        let mut m =
            json!({"v": self.v(), "type": "error", "code": code, "detail": detail, "fatal": fatal});
        if let Some(r) = rid.filter(|r| r.is_string()) {
            m["request_id"] = r.clone();
        }
        self.send(m).await;
    }

    fn sync_watching(&self) {
        let set = self.watched.keys().cloned().collect();
        lock(&self.st).watching.insert(self.id, set);
    }

    async fn on_text(&mut self, text: &str) -> Next {
        self.last_rx = Instant::now();
        let parsed: Option<Value> = serde_json::from_str(text).ok();
        lock(&self.st)
            .messages
            .push(parsed.clone().unwrap_or_else(|| Value::String(text.into())));
        let Some(msg) = parsed.filter(|m| m.is_object()) else {
            self.violation(format!("not a JSON object: {text}"));
            self.error("bad-message", "not a JSON object", None, true)
                .await;
            return self.close(close::PROTOCOL_ERROR, "not JSON").await;
        };
        let ty = msg["type"].as_str().unwrap_or("").to_string();
        if let Err(errs) = Schema::shared().check(Direction::Hub, &msg) {
            for e in &errs {
                self.violation(format!("{ty}: {e}"));
            }
            if self.version.is_some() && msg["v"] != json!(self.v()) {
                self.error("bad-message", "wrong v", msg.get("request_id"), true)
                    .await;
                return self.close(close::PROTOCOL_ERROR, "wrong v").await;
            }
            self.error(
                "bad-message",
                &errs.join("; "),
                msg.get("request_id"),
                false,
            )
            .await;
            return Next::Go;
        }
        let rid = msg["request_id"].clone();
        if self.version.is_none() && ty != "hello" {
            self.violation(format!("{ty} before hello"));
            self.error("invalid-state", "hello first", Some(&rid), true)
                .await;
            return self.close(close::PROTOCOL_ERROR, "hello first").await;
        }
        match ty.as_str() {
            "hello" => self.on_hello(&msg).await,
            "setup" => {
                if self.endpoint.is_some() {
                    self.error(
                        "invalid-state",
                        "the endpoint is already established",
                        Some(&rid),
                        false,
                    )
                    .await;
                    return Next::Go;
                }
                let res = lock(&self.st).establish(&msg["endpoint"]);
                let m = match res {
                    Ok((uri, publish)) => {
                        self.endpoint = Some((uri.clone(), publish));
                        json!({"v": self.v(), "type": "setup-result", "request_id": rid, "outcome": "established",
                            "endpoint_uri": uri, "publish": publish})
                    }
                    Err((code, detail, sip)) => {
                        let mut m = json!({"v": self.v(), "type": "setup-result", "request_id": rid, "outcome": "failed",
                            "code": code, "retryable": matches!(code, "connection-error" | "timeout" | "internal-error"),
                            "detail": detail});
                        if let Some(sip) = sip {
                            m["sip_response_code"] = json!(sip);
                        }
                        m
                    }
                };
                self.send(m).await;
                Next::Go
            }
            "watch" => self.on_watch(&msg).await,
            "unwatch" => {
                let mut results = Vec::new();
                for t in msg["targets"].as_array().into_iter().flatten() {
                    let t = t.as_str().unwrap_or("");
                    let status = if self.watched.remove(&key(t)).is_some() {
                        "removed"
                    } else {
                        "not-watched"
                    };
                    results.push(json!({"target": t, "status": status}));
                }
                self.sync_watching();
                let m = json!({"v": self.v(), "type": "unwatch-result", "request_id": rid, "results": results});
                self.send(m).await;
                Next::Go
            }
            "publish" | "restore" => self.on_publish(&ty, &msg).await,
            "ping" => {
                if self.fault != Some(Fault::NoHeartbeatAnswers) {
                    let m = json!({"v": self.v(), "type": "pong", "request_id": rid});
                    self.send(m).await;
                }
                Next::Go
            }
            "pong" => {
                if self
                    .pong_due
                    .as_ref()
                    .is_some_and(|(id, _)| json!(id) == rid)
                {
                    self.pong_due = None;
                }
                Next::Go
            }
            "bye" => self.close(1000, "bye").await,
            "error" => {
                if msg["fatal"] == json!(true) {
                    Next::End
                } else {
                    Next::Go
                }
            }
            _ => Next::Go,
        }
    }

    async fn on_hello(&mut self, msg: &Value) -> Next {
        if self.version.is_some() {
            self.violation("a second hello".into());
            self.error("invalid-state", "a second hello", None, true)
                .await;
            return self.close(close::PROTOCOL_ERROR, "second hello").await;
        }
        let offered: Vec<u64> = msg["versions"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_u64)
            .collect();
        if !offered.contains(&protocol::VERSION) {
            let detail = format!(
                "bridge speaks {}; hub offered {offered:?}",
                protocol::VERSION
            );
            self.send(
                json!({"v": 1, "type": "error", "code": "version-unsupported", "detail": detail,
                "fatal": true, "supported": [protocol::VERSION]}),
            )
            .await;
            return self
                .close(close::VERSION_UNSUPPORTED, "no common version")
                .await;
        }
        let version = match self.fault {
            Some(Fault::WrongVersionPick) => offered.iter().max().copied().unwrap_or(1) + 1,
            _ => protocol::VERSION,
        };
        self.version = Some(version);
        self.hb = Duration::from_millis(msg["heartbeat_ms"].as_u64().unwrap_or(15_000));
        self.next_ping = Some(Instant::now() + self.hb);
        let token = lock(&self.st).cfg.token.clone();
        let token = if self.fault == Some(Fault::BadProof) {
            format!("{token}-not")
        } else {
            token
        };
        let nonce = protocol::nonce();
        let hub_nonce = msg["nonce"].as_str().unwrap_or("");
        let proof = protocol::proof(&token, hub_nonce, &nonce, version);
        let max_batch = lock(&self.st).cfg.max_batch;
        self.send(json!({"v": version, "type": "welcome", "version": version, "nonce": nonce, "proof": proof,
            "bridge": "ucma-sim/1.0 (simulated UCMA 6.0)", "max_batch": max_batch}))
            .await;
        Next::Go
    }

    async fn on_watch(&mut self, msg: &Value) -> Next {
        let rid = msg["request_id"].clone();
        if self.endpoint.is_none() || self.lost {
            self.error(
                "invalid-state",
                "watch before the endpoint is established",
                Some(&rid),
                false,
            )
            .await;
            return Next::Go;
        }
        let mut results = Vec::new();
        let mut active = Vec::new();
        {
            let s = lock(&self.st);
            for t in msg["targets"].as_array().into_iter().flatten() {
                let t = t.as_str().unwrap_or("");
                let k = key(t);
                let r = match s.users.get(&k) {
                    None => json!({"target": t, "status": "not-found", "detail": "404 Not Found"}),
                    Some(u) if u.refused => {
                        json!({"target": t, "status": "refused", "detail": "403 Forbidden"})
                    }
                    Some(_) => {
                        active.push(k.clone());
                        self.watched.insert(k, t.to_string());
                        json!({"target": t, "status": "active", "mode": "persistent"})
                    }
                };
                results.push(r);
            }
        }
        self.sync_watching();
        if self.fault == Some(Fault::MissingWatchResults) && results.len() > 1 {
            results.pop();
        }
        self.send(
            json!({"v": self.v(), "type": "watch-result", "request_id": rid, "results": results}),
        )
        .await;
        for k in active {
            self.push(&k, true).await;
        }
        Next::Go
    }

    async fn on_publish(&mut self, ty: &str, msg: &Value) -> Next {
        let rid = msg["request_id"].clone();
        let target = msg["target"].as_str().unwrap_or("").to_string();
        let k = key(&target);
        let base = json!({"v": self.v(), "type": "publish-result", "request_id": rid, "target": target, "op": ty});
        let with = |extra: Value| {
            let mut m = base.clone();
            for (a, b) in extra.as_object().into_iter().flatten() {
                m[a] = b.clone();
            }
            m
        };
        let answer = {
            let mut s = lock(&self.st);
            s.published.entry(k.clone()).or_default().push(msg.clone());
            match (&self.endpoint, self.lost) {
                (None, _) | (_, true) => with(
                    json!({"outcome": "failed", "code": "endpoint-lost", "retryable": true,
                    "reason": "the endpoint is not established"}),
                ),
                (Some((own, "self")), _) if key(own) != k => with(json!({"outcome": "unsupported",
                    "reason": format!("user endpoint: can only publish for {own}")})),
                _ => match s.users.get_mut(&k) {
                    None => with(
                        json!({"outcome": "failed", "code": "not-found", "retryable": false,
                        "reason": "PublishSubscribeException: 404 Not Found"}),
                    ),
                    Some(u) if !u.publish_allowed => with(
                        json!({"outcome": "failed", "code": "forbidden", "retryable": false,
                        "reason": "PublishSubscribeException: 403 Forbidden (the application may not publish for this user)"}),
                    ),
                    Some(u) => {
                        u.hub = (ty == "publish").then(|| HubPublication {
                            availability: msg["availability"].as_u64().unwrap_or(3500),
                            activity: msg.get("activity").cloned().unwrap_or(Value::Null),
                            note: msg["note"].as_str().map(str::to_string),
                        });
                        s.broadcast(|| Ev::Changed(k.clone()));
                        with(json!({"outcome": "applied"}))
                    }
                },
            }
        };
        self.send(answer).await;
        Next::Go
    }

    /// Push one target's snapshot (with the faults that touch pushes).
    async fn push(&mut self, k: &str, initial: bool) {
        let Some(target) = self.watched.get(k).cloned() else {
            return;
        };
        let snap = {
            let s = lock(&self.st);
            s.snapshot(k).map(|(a, act, note, dev, u)| {
                (a, act, note, dev, u.ooo.clone(), u.display_name.clone())
            })
        };
        let Some((avail, activity, note, device, ooo, display)) = snap else {
            return;
        };
        let seq = self.seq.entry(k.to_string()).or_insert(0);
        *seq += 1;
        let n = *seq;
        let mut m = json!({"v": self.v(), "type": "presence", "target": target, "seq": n, "ts": now_ts(),
            "initial": initial, "availability": avail, "band": band(avail), "activity": activity,
            "note": note, "out_of_office_note": ooo, "device": device, "display_name": display});
        if self.fault == Some(Fault::WrongFieldTypes) {
            m["availability"] = json!(avail.to_string());
        }
        self.send(m.clone()).await;
        if initial && self.fault == Some(Fault::OutOfOrderSeq) {
            for s in [n + 2, n + 1] {
                m["seq"] = json!(s);
                m["initial"] = json!(false);
                self.send(m.clone()).await;
            }
            self.seq.insert(k.to_string(), n + 2);
        }
    }

    async fn on_event(&mut self, ev: Ev) -> Next {
        match ev {
            Ev::Changed(k) => {
                if self.endpoint.is_some() && !self.lost && self.watched.contains_key(&k) {
                    self.push(&k, false).await;
                }
                Next::Go
            }
            Ev::Refused(k) => {
                if let Some(t) = self.watched.remove(&k) {
                    self.sync_watching();
                    let m = json!({"v": self.v(), "type": "target-state", "target": t, "status": "refused",
                        "detail": "subscription terminated: 403 Forbidden"});
                    self.send(m).await;
                }
                Next::Go
            }
            Ev::EndpointLost => {
                if self.endpoint.is_some() && !self.lost {
                    self.lost = true;
                    self.retry_at = Some(Instant::now() + Duration::from_millis(200));
                    let m = json!({"v": self.v(), "type": "endpoint-state", "state": "lost", "code": "connection-error",
                        "retry_in_ms": 200, "detail": "endpoint Reestablishing: the Front End pool failed over"});
                    self.send(m).await;
                }
                Next::Go
            }
            Ev::Restart => {
                let m = json!({"v": self.v(), "type": "bye", "reason": "bridge-restarting", "detail": "simulated restart"});
                self.send(m).await;
                self.close(close::SERVICE_RESTART, "restarting").await
            }
            Ev::Drop => Next::End,
        }
    }

    async fn on_timer(&mut self, hello_deadline: Instant) -> Next {
        let now = Instant::now();
        if self.version.is_none() {
            if now >= hello_deadline {
                self.error("hello-timeout", "no hello within 10 s", None, true)
                    .await;
                return self.close(close::HELLO_TIMEOUT, "hello timeout").await;
            }
            return Next::Go;
        }
        if self.pong_due.as_ref().is_some_and(|p| now >= p.1) || now >= self.last_rx + self.hb * 3 {
            return self
                .close(close::HEARTBEAT_TIMEOUT, "heartbeat timeout")
                .await;
        }
        if self.next_ping.is_some_and(|t| now >= t) {
            self.pings += 1;
            let id = format!("sim-hb-{}", self.pings);
            self.send(json!({"v": self.v(), "type": "ping", "request_id": id}))
                .await;
            if self.pong_due.is_none() {
                self.pong_due = Some((id, now + self.hb));
            }
            self.next_ping = Some(now + self.hb);
        }
        if self.retry_at.is_some_and(|t| now >= t) {
            if lock(&self.st).reachable {
                self.retry_at = None;
                self.lost = false;
                let m = json!({"v": self.v(), "type": "endpoint-state", "state": "established",
                    "detail": "re-established after the failover"});
                self.send(m).await;
                let keys: Vec<String> = self.watched.keys().cloned().collect();
                for k in keys {
                    self.push(&k, true).await;
                }
            } else {
                self.retry_at = Some(now + Duration::from_millis(200));
            }
        }
        Next::Go
    }
}

/// One compiled schema for every simulator in the process (compiling takes
/// a few milliseconds; tests start many simulators).
trait SharedSchema {
    fn shared() -> &'static Schema;
}

impl SharedSchema for Schema {
    fn shared() -> &'static Schema {
        static S: std::sync::OnceLock<Schema> = std::sync::OnceLock::new();
        S.get_or_init(Schema::new)
    }
}
