//! A strict Microsoft Graph and identity-platform simulator for the Teams
//! connector's end-to-end tests.
//!
//! It plays, on 127.0.0.1, what the documentation says the services do and
//! refuses what they refuse:
//!
//! - the token endpoint (`/{tenant}/oauth2/v2.0/token`): client credentials
//!   (scope must be `<graph>/.default`), device code (`/devicecode`, then
//!   `authorization_pending` until a test signs the user in), authorization
//!   code (`/authorize` redirects with a code), refresh tokens (only when
//!   `offline_access` was asked for), with the identity platform's error
//!   codes for a wrong secret, an unknown app or tenant;
//! - Graph v1.0: `GET /users` (the tenant's users: `$select` of known user
//!   properties, `$top` 1 to 999, else Graph's 400 `Request_UnsupportedQuery`;
//!   pages linked by `@odata.nextLink` with an opaque `$skiptoken`),
//!   `GET /users/{id|upn}`, `POST
//!   /communications/getPresencesByUserId` (at most 650 GUIDs; a user whose
//!   presence the app may not read makes Graph refuse the whole call with
//!   403), `GET` presence, `setPresence` (sessionId = the app's client id,
//!   the five allowed pairs, expirationDuration PT5M..PT4H; an Available
//!   session not set again fades to AvailableInactive after the timeout,
//!   Away after two, Offline after three), `clearPresence`,
//!   `setUserPreferredPresence` (its six pairs), `clearUserPreferredPresence`,
//!   and `/subscriptions` (presence resources with at most 650 ids,
//!   `changeType` updated, expiry at most one hour ahead, delegated tokens
//!   only, the validation handshake against the notification URL within
//!   10 s, renewal by PATCH, `reauthorize`, DELETE);
//! - JSON batching (`POST /v1.0/$batch`): 1 to 20 requests, each with a
//!   unique `id`, a `method` and a URL relative to the version; a body needs
//!   a `Content-Type` header; each answered on its own (`id`, `status`,
//!   `headers`, `body`) under the batch's token, throttled on its own;
//! - bearer tokens: missing, unknown, expired (401) and missing permissions
//!   (403) are refused.
//!
//! Tests drive users' presence, and turn knobs: shorter token and
//! subscription lifetimes (the "clock"), throttling of the next requests,
//! lifecycle notifications, expiring every token, revoking consent, refusing
//! one user's presence, subscriptions that silently stop delivering, people
//! joining, leaving and renamed in the directory, short user-list pages.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// The calendar endpoints (`getSchedule`, `calendarView`, automatic replies).
#[path = "graph_calendar.rs"]
pub mod calendar;

/// The most ids a presence read or subscription may name.
pub const MAX_IDS: usize = 650;
/// Presence subscriptions live at most this long.
pub const MAX_SUBSCRIPTION: Duration = Duration::from_secs(3600);

/// Most users one `GET /users` page may hold (`$top`); the default is 100.
pub const MAX_USERS_PAGE: usize = 999;
const DEFAULT_USERS_PAGE: usize = 100;
/// User properties `$select` may name (Graph v1.0 `user`; those a list
/// returns by default first).
const USER_PROPERTIES: &[&str] = &[
    "id",
    "businessPhones",
    "displayName",
    "givenName",
    "jobTitle",
    "mail",
    "mobilePhone",
    "officeLocation",
    "preferredLanguage",
    "surname",
    "userPrincipalName",
    "accountEnabled",
    "department",
    "otherMails",
    "proxyAddresses",
];
const DEFAULT_USER_SELECT: usize = 11;

/// Permissions an admin consented to, by kind.
const APP_ROLES: &[&str] = &[
    "Presence.Read.All",
    "Presence.ReadWrite.All",
    "User.Read.All",
];
const DELEGATED_SCOPES: &[&str] = &[
    "Presence.Read",
    "Presence.Read.All",
    "Presence.ReadWrite",
    "User.Read",
    "User.ReadBasic.All",
    "offline_access",
    "openid",
    "profile",
];

/// What the simulated tenant and app registration look like.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub tenant: String,
    pub client_id: String,
    pub client_secret: String,
    /// Lifetime of access tokens (`expires_in`).
    pub token_lifetime: Duration,
    /// Lifetime Graph grants a subscription: the shortened clock. Requests
    /// beyond [`MAX_SUBSCRIPTION`] are still refused.
    pub subscription_lifetime: Duration,
    /// `interval` of a device code, in seconds (the real service says 5).
    pub device_poll_interval: u64,
    /// Graph requires https notification URLs; the test hub listens on
    /// plain http.
    pub require_https_notification_url: bool,
    /// The service account that signs in for delegated flows.
    pub operator_upn: String,
    /// Application permissions an administrator consented to (all of
    /// [`APP_ROLES`] by default); leave out `Presence.ReadWrite.All` for a
    /// tenant that lets the hub read presence but not write it.
    pub app_roles: Vec<String>,
    /// How long an Available application session holds without being set
    /// again (Graph: five minutes).
    pub available_timeout: Duration,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            tenant: "contoso.onmicrosoft.com".into(),
            client_id: "22553876-f5ab-4529-bffb-cfe50aa89f87".into(),
            client_secret: "correct-horse-battery-staple".into(),
            token_lifetime: Duration::from_secs(3600),
            subscription_lifetime: MAX_SUBSCRIPTION,
            device_poll_interval: 1,
            require_https_notification_url: false,
            operator_upn: "presence-svc@contoso.onmicrosoft.com".into(),
            app_roles: APP_ROLES.iter().map(|r| r.to_string()).collect(),
            available_timeout: Duration::from_secs(300),
        }
    }
}

/// One request the simulator answered.
#[derive(Debug, Clone)]
pub struct Logged {
    pub at: Instant,
    pub method: String,
    pub path: String,
    /// The query string, as sent (without `?`).
    pub query: String,
    pub status: u16,
    /// `grant_type` of token requests.
    pub grant: Option<String>,
    /// Ids in a getPresencesByUserId body; requests in a JSON batch.
    pub ids: usize,
    /// The ids of a getPresencesByUserId body.
    pub user_ids: Vec<String>,
    /// Answered by the throttling knob.
    pub throttled: bool,
    /// A request inside a JSON batch (the batch is logged too).
    pub in_batch: bool,
}

impl Logged {
    /// A Graph call (not the identity platform).
    pub fn is_graph(&self) -> bool {
        self.path.starts_with("/v1.0/")
    }
}

/// A notification POSTed to a notification URL, and the answer.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub at: Instant,
    pub subscription: String,
    pub lifecycle: Option<String>,
    pub status: Option<u16>,
}

/// A subscription as tests see it.
#[derive(Debug, Clone)]
pub struct SubView {
    pub id: String,
    pub ids: usize,
    pub expires_at_ms: u64,
    pub created: Instant,
    pub renewals: u32,
    pub reauthorizations: u32,
    pub paused: bool,
    pub expired: bool,
    pub notification_url: String,
    pub client_state: Option<String>,
}

/// A presence session as tests see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionView {
    pub session_id: String,
    pub availability: String,
    pub activity: String,
    pub expires_in: Duration,
}

struct Token {
    client_id: String,
    /// Signed-in user (delegated) or none (application).
    user: Option<String>,
    scopes: BTreeSet<String>,
    expires: Instant,
}

struct RefreshGrant {
    user: String,
    scopes: BTreeSet<String>,
}

struct DeviceCode {
    scopes: BTreeSet<String>,
    expires: Instant,
    approved: bool,
    last_poll: Option<Instant>,
}

struct AuthCode {
    redirect_uri: String,
    scopes: BTreeSet<String>,
    user: String,
}

#[derive(Clone)]
struct PState {
    availability: String,
    activity: String,
}

struct SessionState {
    state: PState,
    /// When the application last set it.
    set: Instant,
    expires: Instant,
}

impl SessionState {
    /// What the session shows at `now`: an Available one fades in stages
    /// unless set again within `timeout` (setPresence, "Timeout,
    /// expiration, and keep alive").
    fn shown(&self, now: Instant, timeout: Duration) -> PState {
        let idle = now.duration_since(self.set);
        let (a, act) = match self.state.availability.as_str() {
            "Available" if idle >= timeout * 3 => ("Offline", "Offline"),
            "Available" if idle >= timeout * 2 => ("Away", "Away"),
            "Available" if idle >= timeout => ("Available", "AvailableInactive"),
            _ => return self.state.clone(),
        };
        PState {
            availability: a.into(),
            activity: act.into(),
        }
    }
}

struct UserRec {
    id: String,
    upn: String,
    /// What the user's own Teams clients report.
    base: PState,
    sessions: BTreeMap<String, SessionState>,
    preferred: Option<(PState, Instant)>,
    sequence: u64,
    effective: (String, String),
    /// Graph refuses to show this user's presence to the app.
    presence_refused: bool,
    /// `displayName` and `mail` (null where the account has no mailbox).
    display_name: String,
    mail: Option<String>,
}

#[derive(Clone)]
struct SubRec {
    id: String,
    client_id: String,
    creator: String,
    ids: BTreeSet<String>,
    resource: String,
    notification_url: String,
    lifecycle_url: Option<String>,
    client_state: Option<String>,
    expires_ms: u64,
    created: Instant,
    renewals: u32,
    reauthorizations: u32,
    paused: bool,
    /// Delivers nothing any more, without a word (as reported in the field).
    muted: bool,
}

struct Throttle {
    remaining: u32,
    status: u16,
    retry_after: Option<u64>,
    /// Only requests whose path contains this are throttled.
    path_part: Option<String>,
}

struct Sim {
    cfg: SimConfig,
    base: String,
    users: Vec<UserRec>,
    tokens: HashMap<String, Token>,
    refresh: HashMap<String, RefreshGrant>,
    device: HashMap<String, DeviceCode>,
    codes: HashMap<String, AuthCode>,
    subs: BTreeMap<String, SubRec>,
    consent: bool,
    throttle: Option<Throttle>,
    log: Vec<Logged>,
    deliveries: Vec<Delivery>,
    /// Notifications produced while the lock was held, sent after.
    outbox: Vec<Outgoing>,
    /// Every user code handed out, in order.
    user_codes: Vec<String>,
    sequence: u64,
    cal: calendar::CalState,
    /// The most users a `GET /users` page holds, whatever `$top` asks
    /// (Graph may return fewer than asked).
    users_page_limit: usize,
}

/// The running simulator.
pub struct GraphSim {
    /// `http://127.0.0.1:PORT`: the authority and the Graph origin.
    pub base: String,
    state: Arc<Mutex<Sim>>,
    task: tokio::task::JoinHandle<()>,
    clock: tokio::task::JoinHandle<()>,
}

impl Drop for GraphSim {
    fn drop(&mut self) {
        self.task.abort();
        self.clock.abort();
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as u64
}

fn guid() -> String {
    let n = fastrand::u128(..);
    let h = format!("{n:032x}");
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
        "{prefix}.{:032x}{:032x}",
        fastrand::u128(..),
        fastrand::u128(..)
    )
}

fn rfc3339(ms: u64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .expect("time in range");
    // Graph writes seven fraction digits.
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}0000Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

fn parse_rfc3339(s: &str) -> Option<u64> {
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()?;
    u64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
}

/// Parse an ISO 8601 duration of hours, minutes and seconds (`PT1H30M`,
/// `PT300S`), the form Graph's Edm.Duration takes here.
fn parse_duration(s: &str) -> Option<Duration> {
    let rest = s.strip_prefix("PT")?;
    let mut total = 0u64;
    let mut num = String::new();
    let mut any = false;
    for c in rest.chars() {
        match c {
            '0'..='9' => num.push(c),
            'H' | 'M' | 'S' => {
                let n: u64 = num.parse().ok()?;
                num.clear();
                any = true;
                total += n * match c {
                    'H' => 3600,
                    'M' => 60,
                    _ => 1,
                };
            }
            _ => return None,
        }
    }
    (any && num.is_empty()).then(|| Duration::from_secs(total))
}

fn graph_error(status: u16, code: &str, message: &str) -> (u16, Value) {
    (status, json!({"error": {"code": code, "message": message}}))
}

fn oauth_error(status: u16, error: &str, description: &str) -> (u16, Value) {
    (
        status,
        json!({
            "error": error,
            "error_description": format!("{description}\r\nTrace ID: 0000\r\nCorrelation ID: 0000"),
            "error_codes": [description.split(':').next().unwrap_or("").trim_start_matches("AADSTS").parse::<u64>().unwrap_or(0)],
        }),
    )
}

const SESSION_PAIRS: &[(&str, &str)] = &[
    ("Available", "Available"),
    ("Busy", "InACall"),
    ("Busy", "InAConferenceCall"),
    ("Away", "Away"),
    ("DoNotDisturb", "Presenting"),
];

const PREFERRED_PAIRS: &[(&str, &str)] = &[
    ("Available", "Available"),
    ("Busy", "Busy"),
    ("DoNotDisturb", "DoNotDisturb"),
    ("BeRightBack", "BeRightBack"),
    ("Away", "Away"),
    ("Offline", "OffWork"),
];

fn rank(availability: &str) -> u8 {
    match availability {
        "DoNotDisturb" => 5,
        "Busy" | "BusyIdle" => 4,
        "Available" | "AvailableIdle" => 3,
        "Away" | "BeRightBack" => 2,
        "Offline" | "PresenceUnknown" => 0,
        _ => 1,
    }
}

impl UserRec {
    /// The aggregated presence: a preferred presence (while any session
    /// exists) wins, else the session with the highest availability.
    fn aggregate(&mut self, now: Instant, timeout: Duration) -> (String, String) {
        self.sessions.retain(|_, s| s.expires > now);
        if self.preferred.as_ref().is_some_and(|(_, e)| *e <= now) {
            self.preferred = None;
        }
        let has_session = !self.sessions.is_empty() || self.base.availability != "Offline";
        if let (Some((p, _)), true) = (&self.preferred, has_session) {
            return (p.availability.clone(), p.activity.clone());
        }
        let mut best = self.base.clone();
        for s in self.sessions.values() {
            let shown = s.shown(now, timeout);
            if rank(&shown.availability) > rank(&best.availability) {
                best = shown;
            }
        }
        (best.availability, best.activity)
    }

    fn json(&self) -> Value {
        json!({
            "@odata.type": "#microsoft.graph.presence",
            "id": self.id,
            "availability": self.effective.0,
            "activity": self.effective.1,
            "sequenceNumber": format!("{:020}", self.sequence),
            "statusMessage": null,
            "outOfOfficeSettings": {"message": null, "isOutOfOffice": false},
        })
    }
}

impl Sim {
    fn user_index(&self, key: &str) -> Option<usize> {
        let k = key.to_ascii_lowercase();
        self.users
            .iter()
            .position(|u| u.id == k || u.upn.to_ascii_lowercase() == k)
    }

    /// Recompute a user's presence; a change bumps the sequence number and
    /// returns the notifications to deliver.
    fn recompute(&mut self, idx: usize) -> Vec<Outgoing> {
        let now = Instant::now();
        let timeout = self.cfg.available_timeout;
        let eff = self.users[idx].aggregate(now, timeout);
        if eff == self.users[idx].effective {
            return Vec::new();
        }
        self.sequence += 1;
        let seq = self.sequence;
        let u = &mut self.users[idx];
        u.effective = eff;
        u.sequence = seq;
        let id = u.id.clone();
        let tenant = self.cfg.tenant.clone();
        let now_ms = now_ms();
        self.subs
            .values()
            .filter(|s| !s.paused && !s.muted && s.expires_ms > now_ms && s.ids.contains(&id))
            .map(|s| Outgoing {
                url: s.notification_url.clone(),
                subscription: s.id.clone(),
                lifecycle: None,
                body: json!({"value": [{
                    "subscriptionId": s.id,
                    "clientState": s.client_state,
                    "changeType": "updated",
                    "tenantId": tenant,
                    "resource": format!("communications/presences/{id}"),
                    "subscriptionExpirationDateTime": rfc3339(s.expires_ms),
                    "resourceData": {
                        "@odata.id": format!("users/{id}/presence"),
                        "@odata.type": "#microsoft.graph.presence",
                        "id": id,
                    },
                    "organizationId": tenant,
                }]}),
            })
            .collect()
    }
}

/// A notification on its way out.
struct Outgoing {
    url: String,
    subscription: String,
    lifecycle: Option<String>,
    body: Value,
}

impl GraphSim {
    /// Start on 127.0.0.1 with a free port.
    pub async fn start(cfg: SimConfig) -> GraphSim {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the simulator");
        let base = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(Sim {
            cfg,
            base: base.clone(),
            users: Vec::new(),
            tokens: HashMap::new(),
            refresh: HashMap::new(),
            device: HashMap::new(),
            codes: HashMap::new(),
            subs: BTreeMap::new(),
            consent: true,
            throttle: None,
            log: Vec::new(),
            deliveries: Vec::new(),
            outbox: Vec::new(),
            user_codes: Vec::new(),
            sequence: 0,
            cal: Default::default(),
            users_page_limit: MAX_USERS_PAGE,
        }));
        let operator = state.lock().unwrap().cfg.operator_upn.clone();
        let st = state.clone();
        let app = axum::Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let st = st.clone();
                async move { handle(st, method, uri, headers, body).await }
            },
        );
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        // Time changes presence too (sessions fade and expire), and Graph
        // tells subscribers of that as of any change.
        let st = state.clone();
        let clock = tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(250)).await;
                let out = {
                    let mut s = st.lock().unwrap_or_else(|p| p.into_inner());
                    (0..s.users.len()).flat_map(|i| s.recompute(i)).collect()
                };
                deliver(&st, out);
            }
        });
        let sim = GraphSim {
            base,
            state,
            task,
            clock,
        };
        sim.add_user(&operator);
        sim
    }

    fn lock(&self) -> MutexGuard<'_, Sim> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The identity platform URL to configure (`authority`).
    pub fn authority(&self) -> String {
        self.base.clone()
    }

    /// The Graph base URL to configure (`graph_base`).
    pub fn graph_base(&self) -> String {
        format!("{}/v1.0", self.base)
    }

    /// The simulated tenant and app.
    pub fn config(&self) -> SimConfig {
        self.lock().cfg.clone()
    }

    /// Change the lifetimes (the simulator's clock) for tokens and
    /// subscriptions issued from now on.
    pub fn set_lifetimes(&self, token: Duration, subscription: Duration) {
        let mut s = self.lock();
        s.cfg.token_lifetime = token;
        s.cfg.subscription_lifetime = subscription.min(MAX_SUBSCRIPTION);
    }

    /// Add a user (offline until set); returns its object id.
    pub fn add_user(&self, upn: &str) -> String {
        let mut s = self.lock();
        if let Some(i) = s.user_index(upn) {
            return s.users[i].id.clone();
        }
        let id = guid();
        s.users.push(UserRec {
            id: id.clone(),
            upn: upn.to_string(),
            base: PState {
                availability: "Offline".into(),
                activity: "OffWork".into(),
            },
            sessions: BTreeMap::new(),
            preferred: None,
            sequence: 0,
            effective: ("Offline".into(), "OffWork".into()),
            presence_refused: false,
            display_name: upn.split('@').next().unwrap_or(upn).to_string(),
            mail: None,
        });
        id
    }

    /// Add a person to the directory: a user with a display name and a
    /// `mail` address (none for an account without a mailbox); returns its
    /// object id. A known UPN gets the name and address.
    pub fn add_person(&self, upn: &str, display_name: &str, mail: Option<&str>) -> String {
        let id = self.add_user(upn);
        let mut s = self.lock();
        let i = s.user_index(upn).expect("just added");
        s.users[i].display_name = display_name.to_string();
        s.users[i].mail = mail.map(str::to_string);
        id
    }

    /// A new display name for a user (by id or UPN).
    pub fn rename_user(&self, user: &str, display_name: &str) {
        let mut s = self.lock();
        let i = s.user_index(user).expect("known user");
        s.users[i].display_name = display_name.to_string();
    }

    /// The user leaves the tenant: gone from `GET /users`, its look-up
    /// and presence unknown.
    pub fn remove_user(&self, user: &str) {
        let mut s = self.lock();
        let i = s.user_index(user).expect("known user");
        s.users.remove(i);
    }

    /// The most users one `GET /users` page holds from now on, whatever
    /// `$top` asks (Graph may return fewer), so a few users take several
    /// pages.
    pub fn set_users_page_limit(&self, n: usize) {
        self.lock().users_page_limit = n.clamp(1, MAX_USERS_PAGE);
    }

    /// Graph refuses (true) or shows again (false) one user's presence to
    /// the app: a presence read naming the user is refused whole (403), as
    /// is a subscription covering the user.
    pub fn refuse_presence(&self, user: &str, refused: bool) {
        let mut s = self.lock();
        let i = s.user_index(user).expect("known user");
        s.users[i].presence_refused = refused;
    }

    /// Every subscription there is stops delivering, without a word;
    /// subscriptions created later deliver. Returns how many fell silent.
    pub fn mute_subscriptions(&self) -> usize {
        let mut s = self.lock();
        for x in s.subs.values_mut() {
            x.muted = true;
        }
        s.subs.len()
    }

    /// The object id of a user.
    pub fn id_of(&self, upn: &str) -> String {
        let s = self.lock();
        let i = s.user_index(upn).expect("known user");
        s.users[i].id.clone()
    }

    /// What the user's Teams clients report (a call starts, a meeting
    /// ends); notifications go out for subscriptions covering the user.
    pub fn set_presence(&self, user: &str, availability: &str, activity: &str) {
        let out = {
            let mut s = self.lock();
            let i = s.user_index(user).expect("known user");
            s.users[i].base = PState {
                availability: availability.into(),
                activity: activity.into(),
            };
            s.recompute(i)
        };
        self.deliver(out);
    }

    /// The user picks a status in the Teams client (a manual change): the
    /// user's preferred presence, which overrides every session while the
    /// user has one, for a day (what setUserPreferredPresence sets, done by
    /// the person rather than by an app); notifications go out.
    pub fn user_sets_status(&self, user: &str, availability: &str, activity: &str) {
        let out = {
            let mut s = self.lock();
            let i = s.user_index(user).expect("known user");
            s.users[i].preferred = Some((
                PState {
                    availability: availability.into(),
                    activity: activity.into(),
                },
                Instant::now() + Duration::from_secs(86_400),
            ));
            s.recompute(i)
        };
        self.deliver(out);
    }

    /// The aggregated presence of a user.
    pub fn presence(&self, user: &str) -> (String, String) {
        let mut s = self.lock();
        let i = s.user_index(user).expect("known user");
        let now = Instant::now();
        let timeout = s.cfg.available_timeout;
        s.users[i].aggregate(now, timeout)
    }

    /// The user's presence sessions set through setPresence.
    pub fn sessions(&self, user: &str) -> Vec<SessionView> {
        let s = self.lock();
        let i = s.user_index(user).expect("known user");
        let now = Instant::now();
        s.users[i]
            .sessions
            .iter()
            .filter(|(_, v)| v.expires > now)
            .map(|(k, v)| SessionView {
                session_id: k.clone(),
                availability: v.state.availability.clone(),
                activity: v.state.activity.clone(),
                expires_in: v.expires - now,
            })
            .collect()
    }

    /// The user's preferred presence, if set.
    pub fn preferred(&self, user: &str) -> Option<(String, String)> {
        let s = self.lock();
        let i = s.user_index(user).expect("known user");
        s.users[i]
            .preferred
            .as_ref()
            .filter(|(_, e)| *e > Instant::now())
            .map(|(p, _)| (p.availability.clone(), p.activity.clone()))
    }

    /// Answer the next `n` Graph requests with `status` (429 or 503) and a
    /// `Retry-After` of `retry_after` seconds (none if `None`).
    pub fn throttle_next(&self, n: u32, status: u16, retry_after: Option<u64>) {
        self.lock().throttle = Some(Throttle {
            remaining: n,
            status,
            retry_after,
            path_part: None,
        });
    }

    /// As [`GraphSim::throttle_next`], for requests whose path contains
    /// `path_part` only (`/presence/setPresence`).
    pub fn throttle_next_matching(
        &self,
        path_part: &str,
        n: u32,
        status: u16,
        retry_after: Option<u64>,
    ) {
        self.lock().throttle = Some(Throttle {
            remaining: n,
            status,
            retry_after,
            path_part: Some(path_part.into()),
        });
    }

    /// Every access token issued so far expires now.
    pub fn expire_tokens(&self) {
        let now = Instant::now();
        for t in self.lock().tokens.values_mut() {
            t.expires = now;
        }
    }

    /// An administrator revokes (false) or grants (true) consent: Graph
    /// answers 403 to every call needing a permission.
    pub fn set_consent(&self, granted: bool) {
        self.lock().consent = granted;
    }

    /// Sign the service account in on every pending device code.
    pub fn approve_device_codes(&self) -> usize {
        let mut s = self.lock();
        let mut n = 0;
        for d in s.device.values_mut() {
            if !d.approved {
                d.approved = true;
                n += 1;
            }
        }
        n
    }

    /// The user codes handed out so far (device-code sign-ins started).
    pub fn user_codes(&self) -> Vec<String> {
        self.lock().user_codes.clone()
    }

    /// Send a lifecycle notification (`reauthorizationRequired`,
    /// `subscriptionRemoved`, `missed`) for every subscription; returns how
    /// many were sent. `subscriptionRemoved` deletes the subscription and
    /// `reauthorizationRequired` pauses it until reauthorized or renewed,
    /// as Graph does.
    pub fn lifecycle(&self, event: &str) -> usize {
        let out: Vec<Outgoing> = {
            let mut s = self.lock();
            let tenant = s.cfg.tenant.clone();
            let now = now_ms();
            let ids: Vec<String> = s
                .subs
                .values()
                .filter(|x| x.expires_ms > now)
                .map(|x| x.id.clone())
                .collect();
            let mut out = Vec::new();
            for id in ids {
                let sub = if event == "subscriptionRemoved" {
                    s.subs.remove(&id)
                } else {
                    s.subs.get_mut(&id).map(|sub| {
                        if event == "reauthorizationRequired" {
                            sub.paused = true;
                        }
                        SubRec {
                            ids: BTreeSet::new(),
                            ..sub.clone()
                        }
                    })
                };
                let Some(sub) = sub else { continue };
                out.push(Outgoing {
                    url: sub
                        .lifecycle_url
                        .clone()
                        .unwrap_or_else(|| sub.notification_url.clone()),
                    subscription: sub.id.clone(),
                    lifecycle: Some(event.to_string()),
                    body: json!({"value": [{
                        "subscriptionId": sub.id,
                        "subscriptionExpirationDateTime": rfc3339(sub.expires_ms),
                        "tenantId": tenant,
                        "clientState": sub.client_state,
                        "lifecycleEvent": event,
                    }]}),
                });
            }
            out
        };
        let n = out.len();
        self.deliver(out);
        n
    }

    /// Subscriptions as they stand.
    pub fn subscriptions(&self) -> Vec<SubView> {
        let s = self.lock();
        let now = now_ms();
        s.subs
            .values()
            .map(|x| SubView {
                id: x.id.clone(),
                ids: x.ids.len(),
                expires_at_ms: x.expires_ms,
                created: x.created,
                renewals: x.renewals,
                reauthorizations: x.reauthorizations,
                paused: x.paused,
                expired: x.expires_ms <= now,
                notification_url: x.notification_url.clone(),
                client_state: x.client_state.clone(),
            })
            .collect()
    }

    /// Every request answered so far.
    pub fn requests(&self) -> Vec<Logged> {
        self.lock().log.clone()
    }

    /// Every notification sent so far.
    pub fn deliveries(&self) -> Vec<Delivery> {
        self.lock().deliveries.clone()
    }

    /// How many token requests used `grant_type` and succeeded.
    pub fn grants(&self, grant_type: &str) -> usize {
        self.lock()
            .log
            .iter()
            .filter(|l| l.grant.as_deref() == Some(grant_type) && l.status == 200)
            .count()
    }

    fn deliver(&self, out: Vec<Outgoing>) {
        deliver(&self.state, out);
    }
}

/// POST notifications, each on its own task, and record the answers.
fn deliver(state: &Arc<Mutex<Sim>>, out: Vec<Outgoing>) {
    for o in out {
        let st = state.clone();
        tokio::spawn(async move {
            // Graph waits 3 s for an answer before it counts a failure.
            let status = reqwest::Client::new()
                .post(&o.url)
                .timeout(Duration::from_secs(3))
                .json(&o.body)
                .send()
                .await
                .ok()
                .map(|r| r.status().as_u16());
            st.lock()
                .unwrap_or_else(|p| p.into_inner())
                .deliveries
                .push(Delivery {
                    at: Instant::now(),
                    subscription: o.subscription,
                    lifecycle: o.lifecycle,
                    status,
                });
        });
    }
}

/// Everything a request carries.
struct Req {
    method: Method,
    path: String,
    query: String,
    headers: HeaderMap,
    body: Bytes,
}

impl Req {
    fn json(&self) -> Result<Value, (u16, Value)> {
        let ct = self
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !ct.starts_with("application/json") {
            return Err(graph_error(
                415,
                "UnsupportedMediaType",
                "Content-Type must be application/json",
            ));
        }
        serde_json::from_slice(&self.body)
            .map_err(|e| graph_error(400, "BadRequest", &format!("Invalid JSON: {e}")))
    }

    fn form(&self) -> Result<HashMap<String, String>, (u16, Value)> {
        let ct = self
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !ct.starts_with("application/x-www-form-urlencoded") {
            return Err(oauth_error(
                400,
                "invalid_request",
                "AADSTS900144: The request body must be application/x-www-form-urlencoded",
            ));
        }
        Ok(form_urlencoded::parse(&self.body).into_owned().collect())
    }
}

async fn handle(
    st: Arc<Mutex<Sim>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let req = Req {
        method,
        path: uri.path().to_string(),
        query: uri.query().unwrap_or("").to_string(),
        headers,
        body,
    };
    if req.path == "/v1.0/$batch" {
        return batch(&st, &req).await;
    }
    let (answer, throttled) = {
        let mut s = st.lock().unwrap_or_else(|p| p.into_inner());
        match throttle_knob(&mut s, &req.path) {
            Some(r) => (Answer::Ready(r), true),
            None => (route(&mut s, &req), false),
        }
    };
    let resp = match answer {
        Answer::Ready(r) => r,
        Answer::Validate(v) => create_subscription_validated(&st, v).await,
    };
    let mut s = st.lock().unwrap_or_else(|p| p.into_inner());
    let out = std::mem::take(&mut s.outbox);
    s.log
        .push(logged(&req, resp.status().as_u16(), throttled, false));
    drop(s);
    deliver(&st, out);
    resp
}

/// The log entry of an answered request.
fn logged(req: &Req, status: u16, throttled: bool, in_batch: bool) -> Logged {
    let grant = if req.path.ends_with("/oauth2/v2.0/token") {
        form_urlencoded::parse(&req.body)
            .find(|(k, _)| k == "grant_type")
            .map(|(_, v)| v.into_owned())
    } else {
        None
    };
    let body = serde_json::from_slice::<Value>(&req.body).unwrap_or(Value::Null);
    let user_ids: Vec<String> = if req.path.ends_with("/getPresencesByUserId") {
        body["ids"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    } else {
        Vec::new()
    };
    let ids = match body["requests"].as_array() {
        Some(batch) if req.path.ends_with("/$batch") => batch.len(),
        _ => user_ids.len(),
    };
    Logged {
        at: Instant::now(),
        method: req.method.to_string(),
        path: req.path.clone(),
        query: req.query.clone(),
        status,
        grant,
        ids,
        user_ids,
        throttled,
        in_batch,
    }
}

/// The throttling knob's answer, if it applies to a Graph request on
/// `path`.
fn throttle_knob(s: &mut Sim, path: &str) -> Option<Response> {
    let t = s.throttle.as_mut().filter(|t| {
        path.starts_with("/v1.0/")
            && t.remaining > 0
            && t.path_part
                .as_ref()
                .is_none_or(|p| path.contains(p.as_str()))
    })?;
    t.remaining -= 1;
    let mut r = (
        StatusCode::from_u16(t.status).unwrap(),
        axum::Json(json!({"error": {"code": "TooManyRequests", "message": "Too many requests; retry after the time Retry-After gives"}})),
    )
        .into_response();
    if let Some(secs) = t.retry_after {
        r.headers_mut()
            .insert(header::RETRY_AFTER, secs.to_string().parse().unwrap());
    }
    Some(r)
}

/// Most requests one JSON batch may carry.
pub const MAX_BATCH: usize = 20;

/// `POST /v1.0/$batch`: checked as a whole (token, shape, at most 20
/// requests, unique ids, relative URLs, a Content-Type with every body),
/// then each request answered on its own, in the order given (Graph may
/// answer in any order; dependencies are not modelled beyond checking that
/// they name a request of the batch).
async fn batch(st: &Arc<Mutex<Sim>>, req: &Req) -> Response {
    let inner = {
        let mut s = st.lock().unwrap_or_else(|p| p.into_inner());
        let parsed = batch_requests(&s, req);
        match parsed {
            Err(e) => Err(e),
            Ok(list) => Ok(list
                .into_iter()
                .map(|(id, r)| {
                    let (answer, throttled) = match throttle_knob(&mut s, &r.path) {
                        Some(t) => (t, true),
                        None => match route(&mut s, &r) {
                            Answer::Ready(a) => (a, false),
                            // The validation handshake needs the lock
                            // released; not offered inside a batch here.
                            Answer::Validate(_) => (
                                reply_response(graph_error(
                                    400,
                                    "BadRequest",
                                    "Creating subscriptions inside a JSON batch is not supported by this simulator.",
                                )),
                                false,
                            ),
                        },
                    };
                    s.log
                        .push(logged(&r, answer.status().as_u16(), throttled, true));
                    (id, answer)
                })
                .collect::<Vec<_>>()),
        }
    };
    let (status, body) = match inner {
        Err(e) => e,
        Ok(answers) => {
            let mut responses = Vec::new();
            for (id, a) in answers {
                let status = a.status().as_u16();
                let headers: serde_json::Map<String, Value> = a
                    .headers()
                    .iter()
                    .filter_map(|(k, v)| Some((k.to_string(), json!(v.to_str().ok()?))))
                    .collect();
                let bytes = axum::body::to_bytes(a.into_body(), usize::MAX)
                    .await
                    .unwrap_or_default();
                let mut item = json!({"id": id, "status": status, "headers": headers});
                if !bytes.is_empty() {
                    item["body"] = serde_json::from_slice(&bytes)
                        .unwrap_or_else(|_| json!(String::from_utf8_lossy(&bytes)));
                }
                responses.push(item);
            }
            (200, json!({ "responses": responses }))
        }
    };
    let mut s = st.lock().unwrap_or_else(|p| p.into_inner());
    let out = std::mem::take(&mut s.outbox);
    s.log.push(logged(req, status, false, false));
    drop(s);
    deliver(st, out);
    (StatusCode::from_u16(status).unwrap(), axum::Json(body)).into_response()
}

/// The requests of a JSON batch, each as a request of its own carrying the
/// batch's token; or the 4xx Graph answers for the whole batch.
fn batch_requests(s: &Sim, req: &Req) -> Result<Vec<(String, Req)>, (u16, Value)> {
    if req.method != Method::POST {
        return Err(graph_error(
            405,
            "BadRequest",
            "Specified HTTP method is not allowed for the request target.",
        ));
    }
    // The token is checked for the batch as a whole.
    bearer(s, req)?;
    let body = req.json()?;
    let bad = |m: &str| graph_error(400, "BadRequest", m);
    let Some(list) = body["requests"].as_array() else {
        return Err(bad("The batch body must hold a 'requests' array."));
    };
    if list.is_empty() {
        return Err(bad("A batch must hold at least one request."));
    }
    if list.len() > MAX_BATCH {
        return Err(bad(&format!(
            "Maximum number of requests in a batch is {MAX_BATCH}; got {}.",
            list.len()
        )));
    }
    let ids: Vec<&str> = list.iter().filter_map(|r| r["id"].as_str()).collect();
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    for r in list {
        let Some(id) = r["id"].as_str().filter(|i| !i.is_empty()) else {
            return Err(bad("Every request in a batch needs a string 'id'."));
        };
        if !seen.insert(id) {
            return Err(bad(&format!(
                "Batch request ids must be unique: '{id}' repeats."
            )));
        }
        let Some(method) = r["method"].as_str().and_then(|m| m.parse::<Method>().ok()) else {
            return Err(bad(&format!("Request '{id}' needs a 'method'.")));
        };
        let Some(url) = r["url"].as_str().filter(|u| !u.is_empty()) else {
            return Err(bad(&format!("Request '{id}' needs a 'url'.")));
        };
        if url.contains("://") {
            return Err(bad(&format!(
                "Request '{id}': the url must be relative to the version (/users/...)."
            )));
        }
        if let Some(deps) = r.get("dependsOn") {
            let named = deps.as_array().is_some_and(|d| {
                d.iter()
                    .all(|x| x.as_str().is_some_and(|x| ids.contains(&x)))
            });
            if !named {
                return Err(bad(&format!(
                    "Request '{id}': dependsOn must name requests of this batch."
                )));
            }
        }
        let mut headers = HeaderMap::new();
        if let Some(auth) = req.headers.get(header::AUTHORIZATION) {
            headers.insert(header::AUTHORIZATION, auth.clone());
        }
        if let Some(h) = r.get("headers") {
            let Some(map) = h.as_object() else {
                return Err(bad(&format!("Request '{id}': headers must be an object.")));
            };
            for (k, v) in map {
                let (Ok(name), Some(value)) = (
                    k.parse::<header::HeaderName>(),
                    v.as_str()
                        .and_then(|v| v.parse::<header::HeaderValue>().ok()),
                ) else {
                    return Err(bad(&format!("Request '{id}': header '{k}' is not valid.")));
                };
                headers.insert(name, value);
            }
        }
        let body = match r.get("body") {
            None | Some(Value::Null) => Bytes::new(),
            Some(b) => {
                if !headers.contains_key(header::CONTENT_TYPE) {
                    return Err(bad(&format!(
                        "Write request id : {id} does not contain Content-Type header or body."
                    )));
                }
                Bytes::from(serde_json::to_vec(b).unwrap())
            }
        };
        let (path, query) = url.split_once('?').unwrap_or((url, ""));
        out.push((
            id.to_string(),
            Req {
                method,
                path: format!("/v1.0/{}", path.trim_start_matches('/')),
                query: query.to_string(),
                headers,
                body,
            },
        ));
    }
    Ok(out)
}

enum Answer {
    Ready(Response),
    /// A subscription request that passed the checks and now needs the
    /// validation handshake (done without the lock held).
    Validate(Box<PendingSub>),
}

struct PendingSub {
    rec: SubRec,
    requested_ms: u64,
    include_resource_data: bool,
    change_type: String,
    tls: Option<String>,
}

fn reply((status, body): (u16, Value)) -> Answer {
    Answer::Ready(reply_response((status, body)))
}

fn reply_response((status, body): (u16, Value)) -> Response {
    (StatusCode::from_u16(status).unwrap(), axum::Json(body)).into_response()
}

fn empty(status: u16) -> Answer {
    Answer::Ready(StatusCode::from_u16(status).unwrap().into_response())
}

fn route(s: &mut Sim, req: &Req) -> Answer {
    let segs: Vec<&str> = req.path.trim_start_matches('/').split('/').collect();
    let m = &req.method;
    match segs.as_slice() {
        [tenant, "oauth2", "v2.0", endpoint] => {
            if *tenant != s.cfg.tenant {
                return reply(oauth_error(
                    400,
                    "invalid_request",
                    &format!(
                        "AADSTS90002: Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID"
                    ),
                ));
            }
            match (*endpoint, m) {
                ("token", &Method::POST) => reply(token(s, req)),
                ("devicecode", &Method::POST) => reply(devicecode(s, req)),
                ("authorize", &Method::GET) => authorize(s, req),
                ("token" | "devicecode", _) | ("authorize", _) => reply(oauth_error(
                    405,
                    "invalid_request",
                    "AADSTS900561: The endpoint only accepts POST requests",
                )),
                _ => reply(graph_error(404, "NotFound", "no such endpoint")),
            }
        }
        ["v1.0", rest @ ..] => graph(s, req, rest),
        _ => reply(graph_error(404, "NotFound", "no such endpoint")),
    }
}

fn scopes_of(s: &Sim, scope: &str) -> BTreeSet<String> {
    scope
        .split_whitespace()
        .map(|x| {
            x.strip_prefix(&format!("{}/", s.base))
                .or_else(|| x.strip_prefix("https://graph.microsoft.com/"))
                .unwrap_or(x)
                .to_string()
        })
        .collect()
}

fn issue(
    s: &mut Sim,
    client_id: &str,
    user: Option<String>,
    scopes: BTreeSet<String>,
) -> (u16, Value) {
    let access = opaque("eyJ0eXAiOiJKV1QiLCJzaW0iOnRydWV9");
    let life = s.cfg.token_lifetime;
    let granted: BTreeSet<String> = match &user {
        // Delegated tokens carry what was asked and consented to.
        Some(_) => scopes
            .iter()
            .filter(|x| DELEGATED_SCOPES.contains(&x.as_str()))
            .cloned()
            .collect(),
        // Application tokens carry the app's consented roles.
        None => s
            .cfg
            .app_roles
            .iter()
            .filter(|r| APP_ROLES.contains(&r.as_str()))
            .cloned()
            .collect(),
    };
    let mut body = json!({
        "token_type": "Bearer",
        "expires_in": life.as_secs().max(1),
        "ext_expires_in": life.as_secs().max(1),
        "access_token": access,
    });
    if let Some(u) = &user {
        body["scope"] = json!(granted.iter().cloned().collect::<Vec<_>>().join(" "));
        if scopes.contains("offline_access") {
            let r = opaque("0.refresh");
            s.refresh.insert(
                r.clone(),
                RefreshGrant {
                    user: u.clone(),
                    scopes: scopes.clone(),
                },
            );
            body["refresh_token"] = json!(r);
        }
    }
    s.tokens.insert(
        access,
        Token {
            client_id: client_id.to_string(),
            user,
            scopes: granted,
            expires: Instant::now() + life.max(Duration::from_secs(1)),
        },
    );
    (200, body)
}

fn token(s: &mut Sim, req: &Req) -> (u16, Value) {
    let f = match req.form() {
        Ok(f) => f,
        Err(e) => return e,
    };
    let client_id = f.get("client_id").cloned().unwrap_or_default();
    if client_id != s.cfg.client_id {
        return oauth_error(
            400,
            "unauthorized_client",
            &format!(
                "AADSTS700016: Application with identifier '{client_id}' was not found in the directory '{}'",
                s.cfg.tenant
            ),
        );
    }
    let secret_ok = |f: &HashMap<String, String>| -> Result<(), (u16, Value)> {
        match f.get("client_secret") {
            Some(x) if *x == s.cfg.client_secret => Ok(()),
            Some(_) => Err(oauth_error(
                401,
                "invalid_client",
                "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID",
            )),
            None => Ok(()),
        }
    };
    match f.get("grant_type").map(String::as_str) {
        Some("client_credentials") => {
            if !f.contains_key("client_secret") {
                return oauth_error(
                    401,
                    "invalid_client",
                    "AADSTS7000218: The request body must contain the following parameter: 'client_assertion' or 'client_secret'",
                );
            }
            if let Err(e) = secret_ok(&f) {
                return e;
            }
            let scope = f.get("scope").cloned().unwrap_or_default();
            let want = format!("{}/.default", s.base);
            if scope != want && scope != "https://graph.microsoft.com/.default" {
                return oauth_error(
                    400,
                    "invalid_scope",
                    &format!(
                        "AADSTS1002012: The provided value for scope {scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI)"
                    ),
                );
            }
            issue(s, &client_id, None, BTreeSet::new())
        }
        Some("refresh_token") => {
            if let Err(e) = secret_ok(&f) {
                return e;
            }
            let rt = f.get("refresh_token").cloned().unwrap_or_default();
            let Some(g) = s.refresh.get(&rt) else {
                return oauth_error(
                    400,
                    "invalid_grant",
                    "AADSTS70008: The provided authorization code or refresh token has expired due to inactivity",
                );
            };
            let (user, scopes) = (g.user.clone(), g.scopes.clone());
            issue(s, &client_id, Some(user), scopes)
        }
        Some("urn:ietf:params:oauth:grant-type:device_code") => {
            let code = f.get("device_code").cloned().unwrap_or_default();
            let interval = Duration::from_secs(s.cfg.device_poll_interval);
            let operator = s.cfg.operator_upn.clone();
            let Some(d) = s.device.get_mut(&code) else {
                return oauth_error(
                    400,
                    "bad_verification_code",
                    "AADSTS70019: Verification code is not recognised",
                );
            };
            let now = Instant::now();
            if now >= d.expires {
                return oauth_error(
                    400,
                    "expired_token",
                    "AADSTS70020: The provided value for the input parameter 'device_code' is not valid. This device code has expired",
                );
            }
            // Polling faster than `interval` is answered slow_down.
            let too_fast = d
                .last_poll
                .is_some_and(|t| now.duration_since(t) + Duration::from_millis(200) < interval);
            d.last_poll = Some(now);
            if too_fast {
                return oauth_error(400, "slow_down", "AADSTS70000: polling too fast");
            }
            if !d.approved {
                return oauth_error(
                    400,
                    "authorization_pending",
                    "AADSTS70016: OAuth 2.0 device flow error. Authorization is pending. Continue polling",
                );
            }
            let scopes = d.scopes.clone();
            s.device.remove(&code);
            let user = s.users[s.user_index(&operator).expect("operator exists")]
                .id
                .clone();
            issue(s, &client_id, Some(user), scopes)
        }
        Some("authorization_code") => {
            if let Err(e) = secret_ok(&f) {
                return e;
            }
            let code = f.get("code").cloned().unwrap_or_default();
            let Some(c) = s.codes.remove(&code) else {
                return oauth_error(
                    400,
                    "invalid_grant",
                    "AADSTS70000: The provided authorization code is invalid or has expired",
                );
            };
            if f.get("redirect_uri") != Some(&c.redirect_uri) {
                return oauth_error(
                    400,
                    "invalid_grant",
                    "AADSTS50148: The redirect_uri does not match the one in the authorization request",
                );
            }
            issue(s, &client_id, Some(c.user), c.scopes)
        }
        other => oauth_error(
            400,
            "unsupported_grant_type",
            &format!(
                "AADSTS70003: The app requested an unsupported grant type '{}'",
                other.unwrap_or("")
            ),
        ),
    }
}

fn devicecode(s: &mut Sim, req: &Req) -> (u16, Value) {
    let f = match req.form() {
        Ok(f) => f,
        Err(e) => return e,
    };
    if f.get("client_id") != Some(&s.cfg.client_id) {
        return oauth_error(
            400,
            "unauthorized_client",
            "AADSTS700016: Application was not found in the directory",
        );
    }
    let Some(scope) = f.get("scope").filter(|x| !x.is_empty()) else {
        return oauth_error(
            400,
            "invalid_request",
            "AADSTS900144: The request body must contain the following parameter: 'scope'",
        );
    };
    let scopes = scopes_of(s, scope);
    let device_code = opaque("device");
    let user_code = format!("{:08X}", fastrand::u32(..));
    let verification_uri = format!("{}/devicelogin", s.base);
    s.user_codes.push(user_code.clone());
    s.device.insert(
        device_code.clone(),
        DeviceCode {
            scopes,
            expires: Instant::now() + Duration::from_secs(900),
            approved: false,
            last_poll: None,
        },
    );
    (
        200,
        json!({
            "device_code": device_code,
            "user_code": user_code,
            "verification_uri": verification_uri,
            "expires_in": 900,
            "interval": s.cfg.device_poll_interval,
            "message": format!("To sign in, use a web browser to open the page {verification_uri} and enter the code {user_code} to authenticate."),
        }),
    )
}

fn authorize(s: &mut Sim, req: &Req) -> Answer {
    let q: HashMap<String, String> = form_urlencoded::parse(req.query.as_bytes())
        .into_owned()
        .collect();
    if q.get("client_id") != Some(&s.cfg.client_id) {
        return reply(oauth_error(
            400,
            "unauthorized_client",
            "AADSTS700016: Application was not found in the directory",
        ));
    }
    if q.get("response_type").map(String::as_str) != Some("code") {
        return reply(oauth_error(
            400,
            "unsupported_response_type",
            "AADSTS70005: response_type must be code",
        ));
    }
    let (Some(redirect), Some(scope)) = (q.get("redirect_uri"), q.get("scope")) else {
        return reply(oauth_error(
            400,
            "invalid_request",
            "AADSTS900144: redirect_uri and scope are required",
        ));
    };
    let code = opaque("0.code");
    let operator = s.cfg.operator_upn.clone();
    let user = s.users[s.user_index(&operator).expect("operator exists")]
        .id
        .clone();
    let scopes = scopes_of(s, scope);
    s.codes.insert(
        code.clone(),
        AuthCode {
            redirect_uri: redirect.clone(),
            scopes,
            user,
        },
    );
    let mut location = format!("{redirect}?code={}", urlencode(&code));
    if let Some(state) = q.get("state") {
        location.push_str(&format!("&state={}", urlencode(state)));
    }
    Answer::Ready((StatusCode::FOUND, [(header::LOCATION, location)]).into_response())
}

fn urlencode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Who calls: the signed-in user (none for an application token), the
/// permissions the token carries, and the application.
struct Caller {
    user: Option<String>,
    perms: BTreeSet<String>,
    app_id: String,
}

/// The caller's token, or the 401 Graph answers.
fn bearer(s: &Sim, req: &Req) -> Result<Caller, (u16, Value)> {
    let auth = req
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let Some(tok) = auth.strip_prefix("Bearer ").filter(|t| !t.is_empty()) else {
        return Err(graph_error(
            401,
            "InvalidAuthenticationToken",
            "Access token is empty.",
        ));
    };
    let Some(t) = s.tokens.get(tok) else {
        return Err(graph_error(
            401,
            "InvalidAuthenticationToken",
            "IDX14100: JWT is not well formed.",
        ));
    };
    if Instant::now() >= t.expires {
        return Err(graph_error(
            401,
            "InvalidAuthenticationToken",
            "Lifetime validation failed, the token is expired.",
        ));
    }
    Ok(Caller {
        user: t.user.clone(),
        perms: t.scopes.clone(),
        app_id: t.client_id.clone(),
    })
}

fn forbidden(code: &str) -> (u16, Value) {
    graph_error(
        403,
        code,
        "Insufficient privileges to complete the operation.",
    )
}

fn graph(s: &mut Sim, req: &Req, rest: &[&str]) -> Answer {
    let Caller {
        user,
        perms,
        app_id,
    } = match bearer(s, req) {
        Ok(t) => t,
        Err(e) => return reply(e),
    };
    let has = |p: &[&str]| s.consent && p.iter().any(|x| perms.contains(*x));
    let m = req.method.clone();
    match rest {
        ["users"] => {
            if m != Method::GET {
                return reply(graph_error(
                    405,
                    "Request_BadRequest",
                    "Specified HTTP method is not allowed for the request target.",
                ));
            }
            let need: &[&str] = if user.is_some() {
                &["User.ReadBasic.All", "User.Read.All"]
            } else {
                &["User.Read.All"]
            };
            if !has(need) {
                return reply(forbidden("Authorization_RequestDenied"));
            }
            reply(list_users(s, req))
        }
        ["users", key] => {
            if m != Method::GET {
                return reply(graph_error(
                    405,
                    "Request_BadRequest",
                    "Specified HTTP method is not allowed for the request target.",
                ));
            }
            let need: &[&str] = if user.is_some() {
                &["User.ReadBasic.All", "User.Read.All"]
            } else {
                &["User.Read.All"]
            };
            if !has(need) {
                return reply(forbidden("Authorization_RequestDenied"));
            }
            let key = form_urlencoded::parse(format!("k={key}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default();
            match s.user_index(&key) {
                Some(i) => reply((
                    200,
                    json!({"id": s.users[i].id, "userPrincipalName": s.users[i].upn}),
                )),
                None => reply(graph_error(
                    404,
                    "Request_ResourceNotFound",
                    &format!(
                        "Resource '{key}' does not exist or one of its queried reference-property objects are not present."
                    ),
                )),
            }
        }
        ["communications", "getPresencesByUserId"] => {
            if m != Method::POST {
                return reply(graph_error(
                    405,
                    "BadRequest",
                    "Specified HTTP method is not allowed for the request target.",
                ));
            }
            if !has(&["Presence.Read.All", "Presence.ReadWrite.All"]) {
                return reply(forbidden("Forbidden"));
            }
            let body = match req.json() {
                Ok(b) => b,
                Err(e) => return reply(e),
            };
            let Some(ids) = body["ids"].as_array() else {
                return reply(graph_error(
                    400,
                    "BadRequest",
                    "The parameter 'ids' is required.",
                ));
            };
            if ids.is_empty() || ids.len() > MAX_IDS {
                return reply(graph_error(
                    400,
                    "BadRequest",
                    &format!(
                        "The number of ids must be between 1 and {MAX_IDS}; got {}.",
                        ids.len()
                    ),
                ));
            }
            let mut value = Vec::new();
            let mut seen = BTreeSet::new();
            for id in ids {
                let Some(id) = id.as_str().filter(|x| is_guid(x)) else {
                    return reply(graph_error(
                        400,
                        "BadRequest",
                        &format!("Invalid user id {id}: ids are object id GUIDs."),
                    ));
                };
                let id = id.to_ascii_lowercase();
                if !seen.insert(id.clone()) {
                    continue;
                }
                // Unknown ids have no presence: left out of the answer.
                if let Some(i) = s.users.iter().position(|u| u.id == id) {
                    // One user the app may not see refuses the whole call.
                    if s.users[i].presence_refused {
                        return reply(forbidden("Forbidden"));
                    }
                    let out = s.recompute(i);
                    s.outbox.extend(out);
                    value.push(s.users[i].json());
                }
            }
            reply((
                200,
                json!({"@odata.context": format!("{}/v1.0/$metadata#Collection(microsoft.graph.presence)", s.base), "value": value}),
            ))
        }
        ["users", key, "presence"] | ["communications", "presences", key] => {
            if m != Method::GET {
                return reply(graph_error(
                    405,
                    "BadRequest",
                    "Specified HTTP method is not allowed for the request target.",
                ));
            }
            if !has(&[
                "Presence.Read",
                "Presence.Read.All",
                "Presence.ReadWrite.All",
            ]) {
                return reply(forbidden("Forbidden"));
            }
            if !is_guid(key) {
                return reply(graph_error(
                    400,
                    "BadRequest",
                    "The user id must be an object id GUID.",
                ));
            }
            match s.user_index(key) {
                Some(i) if s.users[i].presence_refused => reply(forbidden("Forbidden")),
                Some(i) => {
                    let out = s.recompute(i);
                    s.outbox.extend(out);
                    reply((200, s.users[i].json()))
                }
                None => reply(graph_error(404, "NotFound", "The user has no presence.")),
            }
        }
        ["users", key, "presence", action] => {
            if m != Method::POST {
                return reply(graph_error(
                    405,
                    "BadRequest",
                    "Specified HTTP method is not allowed for the request target.",
                ));
            }
            let Some(idx) = s.user_index(key) else {
                return reply(graph_error(404, "NotFound", "The user does not exist."));
            };
            // Writing presence: the application permission for any user;
            // the delegated one only for the signed-in user.
            let allowed = match &user {
                None => has(&["Presence.ReadWrite.All"]),
                Some(u) => has(&["Presence.ReadWrite"]) && *u == s.users[idx].id,
            };
            if !allowed {
                return reply(forbidden("Forbidden"));
            }
            write_presence(s, req, idx, action, &app_id)
        }
        ["subscriptions", ..] if calendar::claims(s, req, rest) => {
            calendar::subscriptions(s, req, rest, user.as_deref(), &app_id)
        }
        ["subscriptions"] => match m {
            Method::POST => create_subscription(s, req, user, &perms, &app_id),
            Method::GET => {
                let list: Vec<Value> = s
                    .subs
                    .values()
                    .filter(|x| x.client_id == app_id)
                    .map(sub_json)
                    .collect();
                reply((200, json!({"value": list})))
            }
            _ => reply(graph_error(
                405,
                "BadRequest",
                "Specified HTTP method is not allowed for the request target.",
            )),
        },
        [
            "users",
            _,
            "calendar" | "calendarView" | "mailboxSettings",
            ..,
        ] => calendar::route(s, req, rest, user.as_deref()),
        ["subscriptions", id] => subscription_item(s, req, id, user, &app_id, false),
        ["subscriptions", id, "reauthorize"] => {
            if m != Method::POST {
                return reply(graph_error(
                    405,
                    "BadRequest",
                    "Specified HTTP method is not allowed for the request target.",
                ));
            }
            subscription_item(s, req, id, user, &app_id, true)
        }
        _ => reply(graph_error(
            400,
            "BadRequest",
            &format!(
                "Resource not found for the segment '{}'.",
                rest.first().unwrap_or(&"")
            ),
        )),
    }
}

/// `GET /v1.0/users`: a page of the tenant's users, in a stable order.
fn list_users(s: &Sim, req: &Req) -> (u16, Value) {
    let mut select: Vec<String> = USER_PROPERTIES[..DEFAULT_USER_SELECT]
        .iter()
        .map(|p| p.to_string())
        .collect();
    let mut top = DEFAULT_USERS_PAGE;
    let mut offset = 0usize;
    for (k, v) in form_urlencoded::parse(req.query.as_bytes()) {
        match k.as_ref() {
            "$select" => {
                select = Vec::new();
                for p in v.split(',').map(str::trim) {
                    let Some(known) = USER_PROPERTIES.iter().find(|x| x.eq_ignore_ascii_case(p))
                    else {
                        return graph_error(
                            400,
                            "Request_BadRequest",
                            &format!(
                                "Could not find a property named '{p}' on type 'Microsoft.DirectoryServices.User'."
                            ),
                        );
                    };
                    select.push(known.to_string());
                }
            }
            "$top" => match v.parse::<usize>() {
                Ok(n) if (1..=MAX_USERS_PAGE).contains(&n) => top = n,
                _ => {
                    return graph_error(
                        400,
                        "Request_UnsupportedQuery",
                        &format!(
                            "Invalid page size specified: '{v}'. Must be between 1 and {MAX_USERS_PAGE} inclusive."
                        ),
                    );
                }
            },
            "$skiptoken" => {
                let parsed = v
                    .strip_prefix("RFNwdAIAAQAAA")
                    .and_then(|h| usize::from_str_radix(h, 16).ok());
                match parsed {
                    Some(o) => offset = o,
                    None => {
                        return graph_error(
                            400,
                            "Request_BadRequest",
                            "The specified page token value has expired and can no longer be included in your request.",
                        );
                    }
                }
            }
            other => {
                return graph_error(
                    400,
                    "Request_UnsupportedQuery",
                    &format!("The query parameter '{other}' is not supported by this simulator."),
                );
            }
        }
    }
    let size = top.min(s.users_page_limit);
    let value: Vec<Value> = s
        .users
        .iter()
        .skip(offset)
        .take(size)
        .map(|u| {
            let mut o = serde_json::Map::new();
            for p in &select {
                let v = match p.as_str() {
                    "id" => json!(u.id),
                    "displayName" => json!(u.display_name),
                    "mail" => json!(u.mail),
                    "userPrincipalName" => json!(u.upn),
                    "accountEnabled" => json!(true),
                    "businessPhones" | "otherMails" | "proxyAddresses" => json!([]),
                    _ => Value::Null,
                };
                o.insert(p.clone(), v);
            }
            Value::Object(o)
        })
        .collect();
    let mut body = json!({
        "@odata.context": format!("{}/v1.0/$metadata#users({})", s.base, select.join(",")),
        "value": value,
    });
    let next = offset + size;
    if next < s.users.len() {
        body["@odata.nextLink"] = json!(format!(
            "{}/v1.0/users?$select={}&$top={top}&$skiptoken=RFNwdAIAAQAAA{next:x}",
            s.base,
            select.join(",")
        ));
    }
    (200, body)
}

fn is_guid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

fn write_presence(s: &mut Sim, req: &Req, idx: usize, action: &str, app_id: &str) -> Answer {
    let body = if action == "clearUserPreferredPresence" {
        // The action takes no parameters.
        if !req.body.is_empty() && req.body.as_ref() != b"{}" {
            return reply(graph_error(
                400,
                "BadRequest",
                "clearUserPreferredPresence takes no request body.",
            ));
        }
        Value::Null
    } else {
        match req.json() {
            Ok(b) => b,
            Err(e) => return reply(e),
        }
    };
    let text = |k: &str| body[k].as_str().map(str::to_string);
    let now = Instant::now();
    match action {
        "setPresence" => {
            let Some(session) = text("sessionId") else {
                return reply(graph_error(400, "BadRequest", "sessionId is required."));
            };
            if session != app_id {
                return reply(graph_error(
                    400,
                    "BadRequest",
                    "sessionId must be the id of the calling application.",
                ));
            }
            let (Some(a), Some(act)) = (text("availability"), text("activity")) else {
                return reply(graph_error(
                    400,
                    "BadRequest",
                    "availability and activity are required.",
                ));
            };
            if !SESSION_PAIRS.contains(&(a.as_str(), act.as_str())) {
                return reply(graph_error(
                    400,
                    "BadRequest",
                    &format!("The availability/activity pair {a}/{act} is not supported."),
                ));
            }
            let duration = match text("expirationDuration") {
                None => Duration::from_secs(300),
                Some(d) => match parse_duration(&d) {
                    Some(d)
                        if (Duration::from_secs(300)..=Duration::from_secs(4 * 3600))
                            .contains(&d) =>
                    {
                        d
                    }
                    _ => {
                        return reply(graph_error(
                            400,
                            "BadRequest",
                            "expirationDuration must be between PT5M and PT4H.",
                        ));
                    }
                },
            };
            s.users[idx].sessions.insert(
                session,
                SessionState {
                    state: PState {
                        availability: a,
                        activity: act,
                    },
                    set: now,
                    expires: now + duration,
                },
            );
        }
        "clearPresence" => {
            let Some(session) = text("sessionId") else {
                return reply(graph_error(400, "BadRequest", "sessionId is required."));
            };
            if session != app_id {
                return reply(graph_error(
                    400,
                    "BadRequest",
                    "sessionId must be the id of the calling application.",
                ));
            }
            s.users[idx].sessions.remove(&session);
        }
        "setUserPreferredPresence" => {
            let (Some(a), Some(act)) = (text("availability"), text("activity")) else {
                return reply(graph_error(
                    400,
                    "BadRequest",
                    "availability and activity are required.",
                ));
            };
            if !PREFERRED_PAIRS.contains(&(a.as_str(), act.as_str())) {
                return reply(graph_error(
                    400,
                    "BadRequest",
                    &format!("The availability/activity pair {a}/{act} is not supported."),
                ));
            }
            let default = if a == "DoNotDisturb" || a == "Busy" {
                86_400
            } else {
                7 * 86_400
            };
            let duration = match text("expirationDuration") {
                None => Duration::from_secs(default),
                Some(d) => match parse_duration(&d) {
                    Some(d) if d >= Duration::from_secs(300) => d,
                    _ => {
                        return reply(graph_error(
                            400,
                            "BadRequest",
                            "expirationDuration must be an ISO 8601 duration of at least PT5M.",
                        ));
                    }
                },
            };
            s.users[idx].preferred = Some((
                PState {
                    availability: a,
                    activity: act,
                },
                now + duration,
            ));
        }
        "clearUserPreferredPresence" => s.users[idx].preferred = None,
        _ => {
            return reply(graph_error(
                400,
                "BadRequest",
                &format!("Resource not found for the segment '{action}'."),
            ));
        }
    }
    let out = s.recompute(idx);
    s.outbox.extend(out);
    empty(200)
}

/// The ids of a presence subscription resource.
fn resource_ids(resource: &str) -> Result<BTreeSet<String>, String> {
    let r = resource.trim_start_matches('/');
    if let Some(id) = r.strip_prefix("communications/presences/") {
        return if is_guid(id) {
            Ok([id.to_ascii_lowercase()].into())
        } else {
            Err(format!("'{id}' is not a user object id"))
        };
    }
    let filter = r
        .strip_prefix("communications/presences?$filter=")
        .ok_or_else(|| format!("resource '{resource}' is not a presence resource"))?;
    let list = filter
        .trim()
        .strip_prefix("id in (")
        .and_then(|x| x.strip_suffix(')'))
        .ok_or("the filter must be id in ('...')")?;
    let mut ids = BTreeSet::new();
    for part in list.split(',') {
        let id = part.trim().trim_matches('\'');
        if !is_guid(id) {
            return Err(format!("'{id}' is not a user object id"));
        }
        ids.insert(id.to_ascii_lowercase());
    }
    if ids.is_empty() || ids.len() > MAX_IDS {
        return Err(format!(
            "a presence subscription names 1 to {MAX_IDS} users; got {}",
            ids.len()
        ));
    }
    Ok(ids)
}

fn check_url(s: &Sim, url: &str, field: &str) -> Result<(), (u16, Value)> {
    let ok = match url::Url::parse(url) {
        Ok(u) => {
            u.scheme() == "https" || (u.scheme() == "http" && !s.cfg.require_https_notification_url)
        }
        Err(_) => false,
    };
    if ok {
        Ok(())
    } else {
        Err(graph_error(
            400,
            "ValidationError",
            &format!("{field} must be an https URL."),
        ))
    }
}

fn create_subscription(
    s: &mut Sim,
    req: &Req,
    user: Option<String>,
    perms: &BTreeSet<String>,
    app_id: &str,
) -> Answer {
    let Some(user) = user else {
        return reply(graph_error(
            403,
            "ExtensionError",
            "Operation: Create; Exception: [Status Code: Forbidden; Reason: Application permissions are not supported for presence subscriptions]",
        ));
    };
    if !s.consent || !perms.contains("Presence.Read.All") {
        return reply(forbidden("ExtensionError"));
    }
    let body = match req.json() {
        Ok(b) => b,
        Err(e) => return reply(e),
    };
    let text = |k: &str| body[k].as_str().map(str::to_string);
    let (Some(change_type), Some(notification_url), Some(resource), Some(expiration)) = (
        text("changeType"),
        text("notificationUrl"),
        text("resource"),
        text("expirationDateTime"),
    ) else {
        return reply(graph_error(
            400,
            "ValidationError",
            "changeType, notificationUrl, resource and expirationDateTime are required.",
        ));
    };
    if change_type != "updated" {
        return reply(graph_error(
            400,
            "ValidationError",
            "Presence subscriptions support changeType 'updated' only.",
        ));
    }
    let ids = match resource_ids(&resource) {
        Ok(ids) => ids,
        Err(e) => return reply(graph_error(400, "ValidationError", &e)),
    };
    if s.users
        .iter()
        .any(|u| u.presence_refused && ids.contains(&u.id))
    {
        return reply(forbidden("ExtensionError"));
    }
    let Some(requested_ms) = parse_rfc3339(&expiration) else {
        return reply(graph_error(
            400,
            "ValidationError",
            "expirationDateTime is not a valid DateTimeOffset.",
        ));
    };
    let now = now_ms();
    if requested_ms <= now {
        return reply(graph_error(
            400,
            "ValidationError",
            "Subscription expiration must be in the future.",
        ));
    }
    if requested_ms > now + MAX_SUBSCRIPTION.as_millis() as u64 {
        return reply(graph_error(
            400,
            "ValidationError",
            "Subscription expiration can only be 60 minutes in the future.",
        ));
    }
    if let Err(e) = check_url(s, &notification_url, "notificationUrl") {
        return reply(e);
    }
    let lifecycle_url = text("lifecycleNotificationUrl");
    if let Some(l) = &lifecycle_url
        && let Err(e) = check_url(s, l, "lifecycleNotificationUrl")
    {
        return reply(e);
    }
    let client_state = text("clientState");
    if client_state.as_ref().is_some_and(|c| c.len() > 128) {
        return reply(graph_error(
            400,
            "ValidationError",
            "clientState must be at most 128 characters.",
        ));
    }
    let include = body["includeResourceData"].as_bool().unwrap_or(false);
    if include
        && (text("encryptionCertificate").is_none() || text("encryptionCertificateId").is_none())
    {
        return reply(graph_error(
            400,
            "ValidationError",
            "includeResourceData requires encryptionCertificate and encryptionCertificateId.",
        ));
    }
    Answer::Validate(Box::new(PendingSub {
        rec: SubRec {
            id: guid(),
            client_id: app_id.to_string(),
            creator: user,
            ids,
            resource,
            notification_url,
            lifecycle_url,
            client_state,
            expires_ms: 0,
            created: Instant::now(),
            renewals: 0,
            reauthorizations: 0,
            paused: false,
            muted: false,
        },
        requested_ms,
        include_resource_data: include,
        change_type,
        tls: text("latestSupportedTlsVersion"),
    }))
}

/// The validation handshake: POST `?validationToken=...` to each URL; the
/// answer must come within 10 s, be 200 with text/plain, and echo the token.
async fn validate(url: &str) -> Result<(), String> {
    let token = format!(
        "Validation: Testing client application reachability for subscription Request-Id: {}",
        guid()
    );
    let sep = if url.contains('?') { '&' } else { '?' };
    let full = format!("{url}{sep}validationToken={}", urlencode(&token));
    let resp = reqwest::Client::new()
        .post(&full)
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .map_err(|e| format!("the validation request to {url} failed: {e}"))?;
    let status = resp.status().as_u16();
    // Every Content-Type value counts: the hub's webhook route currently
    // sends its own `application/octet-stream` beside the plugin's header.
    let ct: Vec<String> = resp
        .headers()
        .get_all(header::CONTENT_TYPE)
        .iter()
        .filter_map(|v| v.to_str().ok().map(str::to_string))
        .collect();
    let body = resp.text().await.unwrap_or_default();
    if status != 200 || !ct.iter().any(|c| c.starts_with("text/plain")) || body != token {
        return Err(format!(
            "Subscription validation request failed. Notification endpoint must respond with 200 OK to validation request (got {status}, {ct:?})."
        ));
    }
    Ok(())
}

async fn create_subscription_validated(st: &Arc<Mutex<Sim>>, p: Box<PendingSub>) -> Response {
    let mut urls = vec![p.rec.notification_url.clone()];
    if let Some(l) = &p.rec.lifecycle_url {
        urls.push(l.clone());
    }
    for u in &urls {
        if let Err(e) = validate(u).await {
            let (status, body) = graph_error(400, "ValidationError", &e);
            return (StatusCode::from_u16(status).unwrap(), axum::Json(body)).into_response();
        }
    }
    let mut s = st.lock().unwrap_or_else(|p| p.into_inner());
    let mut rec = p.rec;
    let granted = now_ms() + s.cfg.subscription_lifetime.as_millis() as u64;
    rec.expires_ms = p.requested_ms.min(granted);
    let mut body = sub_json(&rec);
    body["includeResourceData"] = json!(p.include_resource_data);
    body["changeType"] = json!(p.change_type);
    body["latestSupportedTlsVersion"] = json!(p.tls.unwrap_or_else(|| "v1_2".into()));
    s.subs.insert(rec.id.clone(), rec);
    (StatusCode::CREATED, axum::Json(body)).into_response()
}

fn sub_json(x: &SubRec) -> Value {
    json!({
        "id": x.id,
        "resource": x.resource,
        "applicationId": x.client_id,
        "changeType": "updated",
        "clientState": x.client_state,
        "notificationUrl": x.notification_url,
        "lifecycleNotificationUrl": x.lifecycle_url,
        "expirationDateTime": rfc3339(x.expires_ms),
        "creatorId": x.creator,
    })
}

fn subscription_item(
    s: &mut Sim,
    req: &Req,
    id: &str,
    user: Option<String>,
    app_id: &str,
    reauthorize: bool,
) -> Answer {
    let now = now_ms();
    let granted_max = now + s.cfg.subscription_lifetime.as_millis() as u64;
    let body = if req.method == Method::PATCH {
        match req.json() {
            Ok(b) => Some(b),
            Err(e) => return reply(e),
        }
    } else {
        None
    };
    // Expired subscriptions are gone: Graph answers 404 from then on.
    if s.subs.get(id).is_some_and(|x| x.expires_ms <= now) {
        s.subs.remove(id);
    }
    let Some(sub) = s.subs.get_mut(id) else {
        return reply(graph_error(
            404,
            "ResourceNotFound",
            "The object was not found.",
        ));
    };
    if sub.client_id != app_id || user.as_deref() != Some(sub.creator.as_str()) {
        return reply(graph_error(
            403,
            "ExtensionError",
            "The subscription belongs to another application or user.",
        ));
    }
    if reauthorize {
        sub.paused = false;
        sub.reauthorizations += 1;
        return empty(204);
    }
    match req.method {
        Method::GET => reply((200, sub_json(sub))),
        Method::DELETE => {
            s.subs.remove(id);
            empty(204)
        }
        Method::PATCH => {
            let body = body.unwrap_or(Value::Null);
            let Some(obj) = body.as_object() else {
                return reply(graph_error(
                    400,
                    "ValidationError",
                    "The body must be a JSON object.",
                ));
            };
            if let Some(k) = obj
                .keys()
                .find(|k| *k != "expirationDateTime" && *k != "notificationUrl")
            {
                return reply(graph_error(
                    400,
                    "ValidationError",
                    &format!("Property '{k}' cannot be updated."),
                ));
            }
            let Some(requested) = obj
                .get("expirationDateTime")
                .and_then(Value::as_str)
                .and_then(parse_rfc3339)
            else {
                return reply(graph_error(
                    400,
                    "ValidationError",
                    "expirationDateTime is required.",
                ));
            };
            if requested <= now || requested > now + MAX_SUBSCRIPTION.as_millis() as u64 {
                return reply(graph_error(
                    400,
                    "ValidationError",
                    "Subscription expiration can only be 60 minutes in the future.",
                ));
            }
            sub.expires_ms = requested.min(granted_max);
            sub.renewals += 1;
            // Renewing also reauthorizes (lifecycle events guide).
            sub.paused = false;
            reply((200, sub_json(sub)))
        }
        _ => reply(graph_error(
            405,
            "BadRequest",
            "Specified HTTP method is not allowed for the request target.",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_resources() {
        assert_eq!(parse_duration("PT1H"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_duration("PT1H30M"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("PT300S"), Some(Duration::from_secs(300)));
        assert_eq!(parse_duration("P1D"), None);
        assert_eq!(parse_duration("PT"), None);
        let a = "fa8bf3dc-eca7-46b7-bad1-db199b62afc3";
        assert_eq!(
            resource_ids(&format!("/communications/presences/{a}"))
                .unwrap()
                .len(),
            1
        );
        assert_eq!(
            resource_ids(&format!("/communications/presences?$filter=id in ('{a}')"))
                .unwrap()
                .len(),
            1
        );
        assert!(resource_ids("/users/x/messages").is_err());
        let many: Vec<String> = (0..651).map(|_| format!("'{}'", guid())).collect();
        assert!(
            resource_ids(&format!(
                "/communications/presences?$filter=id in ({})",
                many.join(",")
            ))
            .is_err()
        );
        let t = rfc3339(1_767_264_900_123);
        assert_eq!(t, "2026-01-01T10:55:00.1230000Z");
        assert_eq!(parse_rfc3339(&t), Some(1_767_264_900_123));
        assert!(is_guid(&guid()));
    }
}
