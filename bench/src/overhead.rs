//! Benchmark 5 (and the wasm-vs-native baseline of benchmark 1): one
//! NOTIFY through the host/plugin boundary, against the same plugin code
//! compiled natively and called directly.
//!
//! Both sides subscribe for real to the benchmark's SIP server and then
//! take the same stream of NOTIFYs (rendered by the server within their
//! own dialogs, not sent):
//!
//! - **wasm**: the packaged sip-simple component in the hub's own engine
//!   and host ([`crate::probe::Probe`]), one
//!   `handle-event(datagram)` call per NOTIFY. The plugin answers 200 over
//!   the host's UDP socket and reports into the hub's presence inbox.
//! - **native**: `sip_simple::core::Core::on_message` on the same bytes,
//!   then the same effects done natively: the 200 sent over a UDP socket,
//!   reports converted and queued in the presence inbox, timers kept in a map as
//!   the component does.

use std::collections::{BTreeMap, HashMap};
use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use presence_connector_sdk as sdk;
use presence_hub::engine as model;
use presence_hub::presence::{Inbox, Presence};
use presence_hub::runtime::Services;
use presence_hub::store::SqliteStore;
use presence_hub::telemetry::Metrics;
use sip_simple::core::{Action, Core, TimerKey};
use sip_simple::settings::{Events, Settings, Transport};
use sip_simple::sip::request::Local;

use crate::probe::{Probe, Pumped};
use crate::report::{self, Report, Row};
use crate::sip::Package;
use crate::sipserver::{self, SipServer, Update, big_socket, user_uri};

/// Measured per-NOTIFY costs, for the ingest baseline.
#[derive(Debug, Clone, Copy)]
pub struct Costs {
    /// Native Core::on_message alone (s).
    pub native_core: f64,
    /// Native Core plus the host-equivalent effects (s).
    pub native_full: f64,
    /// Through the component in the hub's engine (s).
    pub wasm: f64,
}

/// Sizes of the run.
pub struct Params {
    pub users: usize,
    pub notifies: usize,
    pub rounds: usize,
}

/// The benchmark's users as endpoints.
fn endpoints(n: usize) -> Vec<String> {
    (0..n).map(user_uri).collect()
}

/// Updates for users `0..users`, presence and dialog alternating,
/// `count` of them, notes from `first_note`.
pub fn update_stream(users: usize, count: usize, first_note: u64) -> Vec<Update> {
    (0..count)
        .map(|i| Update {
            user: (i / 2) % users,
            package: if i % 2 == 0 {
                Package::Presence
            } else {
                Package::Dialog
            },
            note: first_note + i as u64,
        })
        .collect()
}

/// Run benchmark 5; returns the costs for benchmark 1's baseline.
pub async fn run(r: &mut Report, p: &Params, root: &Path) -> anyhow::Result<Costs> {
    let folder = root.join("dist/plugins/sip-simple");
    let mut manifest = std::fs::read_to_string(folder.join("plugin.toml"))?;
    let mut component = std::fs::read(folder.join("sip-simple.wasm"))?;
    // Profiling aid: another build of the component (e.g. one that keeps
    // its function names); the manifest's checksum no longer applies.
    if let Some(other) = std::env::var_os("HUB_BENCH_COMPONENT") {
        component = std::fs::read(&other)?;
        manifest = manifest
            .lines()
            .filter(|l| !l.starts_with("sha256"))
            .collect::<Vec<_>>()
            .join("\n");
        r.note(format!(
            "overhead: component from {}",
            other.to_string_lossy()
        ));
    }
    let scratch = tempfile_dir("overhead")?;

    // ---- wasm ----------------------------------------------------------
    let server = SipServer::start()?;
    // Reports go where the hub's go: into a presence service's inbox (the
    // guest's import only enqueues; the service works on its own thread).
    let store: Arc<SqliteStore> = Arc::new(SqliteStore::open(&scratch.join("data"))?);
    let (presence, _flows) = Presence::open(
        store.clone(),
        Default::default(),
        Arc::new(presence_hub::engine::sync::WriteIds::starting_at(1)),
    )?;
    let services = Services {
        store,
        metrics: Arc::new(Metrics::default()),
        presence: presence.inbox(),
        writes: Arc::default(),
    };
    let config = serde_json::json!({
        "server": server.addr.to_string(),
        "uri": format!("hub@{}", sipserver::DOMAIN),
        "subscribe": "both",
    });
    let serde_json::Value::Object(config) = config else {
        unreachable!()
    };
    let (mut probe, _) = Probe::start(
        &manifest,
        &component,
        config,
        services.clone(),
        scratch.join("cache"),
    )
    .await?;
    probe.watch(&endpoints(p.users)).await?;
    let socket = pump_until_subscribed(&mut probe, &server, p.users).await?;

    // ---- native --------------------------------------------------------
    let native_server = SipServer::start()?;
    let mut native = NativePlugin::start(native_server.addr, p.users, presence.inbox())?;
    native.pump_until(&native_server, p.users)?;

    let mut wasm_runs = Vec::new();
    let mut native_runs = Vec::new();
    let mut core_runs = Vec::new();
    let mut empty_runs = Vec::new();
    // Profiling aid: time only one side (`wasm` or `native`), so that a
    // profile of the run shows only that side (see bench/README.md).
    let only = std::env::var("HUB_BENCH_ONLY").unwrap_or_default();
    let mut note = 1u64;
    for _ in 0..p.rounds {
        let updates = update_stream(p.users, p.notifies, note);
        note += p.notifies as u64;
        // The same updates, rendered in each side's own dialogs.
        let for_wasm = server.render(&updates);
        let for_native = native_server.render(&updates);
        anyhow::ensure!(
            for_wasm.len() == updates.len() && for_native.len() == updates.len(),
            "not every user has live dialogs"
        );
        if only != "native" {
            let t = Instant::now();
            for (_, bytes) in for_wasm {
                probe.datagram(socket, server.addr, bytes).await?;
            }
            wasm_runs.push(t.elapsed().as_secs_f64() / p.notifies as f64);
            drain(&mut probe).await?;
        }
        if only != "wasm" {
            let (core_only, full) = native.time(&for_native);
            core_runs.push(core_only);
            native_runs.push(full);
        }
        if !only.is_empty() {
            continue;
        }
        let t = Instant::now();
        for _ in 0..p.notifies {
            probe.empty_call().await?;
        }
        empty_runs.push(t.elapsed().as_secs_f64() / p.notifies as f64);
    }
    let acked = server
        .stats
        .updates_acked
        .load(std::sync::atomic::Ordering::Relaxed);
    if acked + (p.notifies as u64) < (p.rounds * p.notifies) as u64 {
        r.note(format!(
            "overhead: the SIP server saw {acked} answers to {} NOTIFYs given to the component (answers are UDP and may be dropped by the kernel; the calls were made)",
            p.rounds * p.notifies
        ));
    }
    let native_call = native_noop_call(p.notifies);
    let med = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
    };
    let costs = Costs {
        native_core: med(&mut core_runs),
        native_full: med(&mut native_runs),
        wasm: med(&mut wasm_runs),
    };
    let empty = med(&mut empty_runs);
    let ratio = costs.wasm / costs.native_full;
    r.push(
        Row::info(
            "5",
            "One NOTIFY (PIDF or dialog-info) through the component: handle-event, plugin parse, 200 sent, 2 reports into the presence inbox",
            report::secs(costs.wasm),
        )
        .baseline(
            format!(
                "native Core::on_message + same effects: {} (Core alone {})",
                report::secs(costs.native_full),
                report::secs(costs.native_core)
            ),
            Some(ratio),
        )
        .target("wasm ≤ 1.5× native", ratio <= 1.5),
    );
    r.push(
        Row::info(
            "5",
            "One event through the host/plugin boundary, nothing to do (timer event for an unknown handle)",
            report::secs(empty),
        )
        .baseline(
            format!("native call of the same no-op: {}", report::secs(native_call)),
            Some(empty / native_call),
        ),
    );
    r.note(format!(
        "overhead: {} users subscribed (presence + dialog) on each side; {} rounds of {} NOTIFYs; medians of the rounds",
        p.users, p.rounds, p.notifies
    ));
    let _ = std::fs::remove_dir_all(&scratch);
    Ok(costs)
}

/// A scratch directory under the system's temp dir.
pub fn tempfile_dir(what: &str) -> anyhow::Result<std::path::PathBuf> {
    let d = std::env::temp_dir().join(format!("hub-bench-{what}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d)?;
    Ok(d)
}

/// Deliver the probe's I/O (answers, NOTIFYs, timers) until every user's
/// two dialogs are established; returns the plugin's UDP socket handle.
async fn pump_until_subscribed(
    probe: &mut Probe,
    server: &SipServer,
    users: usize,
) -> anyhow::Result<u32> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut socket = None;
    loop {
        match probe.pump(Duration::from_millis(20)).await? {
            Some(Pumped::Datagram { socket: s }) => socket = Some(s),
            Some(Pumped::Other) => {}
            None => {
                if server.established(Package::Presence) >= users
                    && server.established(Package::Dialog) >= users
                {
                    return socket.context("no datagram arrived");
                }
            }
        }
        if Instant::now() > deadline {
            bail!(
                "the component did not subscribe {users} users within 60 s ({} presence, {} dialog)",
                server.established(Package::Presence),
                server.established(Package::Dialog)
            );
        }
    }
}

/// Deliver whatever is queued (timers the NOTIFYs set, stray datagrams).
async fn drain(probe: &mut Probe) -> anyhow::Result<()> {
    while probe.pump(Duration::from_millis(1)).await?.is_some() {}
    Ok(())
}

/// The time of a native call that does nothing (the no-op counterpart of
/// an ignored event), per call.
fn native_noop_call(n: usize) -> f64 {
    let mut core = Core::new(settings(SocketAddr::from(([127, 0, 0, 1], 9))), random(1));
    let t = Instant::now();
    for _ in 0..n {
        std::hint::black_box(core.take_actions());
    }
    t.elapsed().as_secs_f64() / n as f64
}

fn settings(server: SocketAddr) -> Settings {
    Settings {
        server_host: server.ip().to_string(),
        server_port: server.port(),
        transport: Transport::Udp,
        user: "hub".into(),
        user_domain: sipserver::DOMAIN.into(),
        auth_id: "hub".into(),
        password: None,
        domain: sipserver::DOMAIN.into(),
        expires: 3600,
        events: Events {
            presence: true,
            dialog: true,
            features: false,
        },
        list_uri: None,
        blf_list_uri: None,
        publish_expires: 3600,
        keepalive_ms: 30_000,
    }
}

/// The sip-simple protocol engine run natively, with natively done
/// effects equivalent to what the component and the host do.
struct NativePlugin {
    core: Core,
    sock: UdpSocket,
    server: SocketAddr,
    /// The same inbox the component reports into.
    inbox: Inbox,
    instance: Arc<str>,
    timers: HashMap<TimerKey, (Instant, u64)>,
    queue: BTreeMap<(Instant, u64), TimerKey>,
    serial: u64,
}

impl NativePlugin {
    fn start(server: SocketAddr, users: usize, inbox: Inbox) -> anyhow::Result<NativePlugin> {
        let sock = big_socket()?;
        sock.set_read_timeout(Some(Duration::from_millis(20)))?;
        let local = sock.local_addr()?;
        let mut core = Core::new(settings(server), random(7));
        core.transport_up(Local {
            transport: "UDP",
            host: local.ip().to_string(),
            port: local.port(),
        });
        core.watch(&endpoints(users));
        let mut p = NativePlugin {
            core,
            sock,
            server,
            inbox,
            instance: Arc::from("native"),
            timers: HashMap::new(),
            queue: BTreeMap::new(),
            serial: 0,
        };
        p.effects();
        Ok(p)
    }

    fn pump_until(&mut self, server: &SipServer, users: usize) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut buf = vec![0u8; 65_536];
        loop {
            match self.sock.recv_from(&mut buf) {
                Ok((n, _)) => {
                    self.core.on_message(&buf[..n]);
                    self.effects();
                }
                Err(_) => {
                    if server.established(Package::Presence) >= users
                        && server.established(Package::Dialog) >= users
                    {
                        return Ok(());
                    }
                }
            }
            if Instant::now() > deadline {
                bail!("the native core did not subscribe {users} users within 60 s");
            }
        }
    }

    /// Carry out the core's actions as the component and host would.
    fn effects(&mut self) {
        for a in self.core.take_actions() {
            match a {
                Action::Send(b) => {
                    let _ = self.sock.send_to(&b, self.server);
                }
                Action::SetTimer(k, ms) => {
                    if let Some(old) = self.timers.remove(&k) {
                        self.queue.remove(&old);
                    }
                    self.serial += 1;
                    let at = (Instant::now() + Duration::from_millis(ms), self.serial);
                    self.timers.insert(k.clone(), at);
                    self.queue.insert(at, k);
                }
                Action::CancelTimer(k) => {
                    if let Some(old) = self.timers.remove(&k) {
                        self.queue.remove(&old);
                    }
                }
                Action::Presence(u) => {
                    self.inbox.report(&self.instance, presence(u));
                }
                Action::EndpointState(ep, st, detail) => {
                    self.inbox
                        .endpoint_state(&self.instance, ep, endpoint_state(st), detail);
                }
                Action::Status(..) | Action::Warn(_) | Action::Info(_) | Action::Outcome(..) => {}
            }
        }
    }

    /// Seconds per NOTIFY: (Core alone, Core plus effects).
    fn time(&mut self, msgs: &[(SocketAddr, Vec<u8>)]) -> (f64, f64) {
        let n = msgs.len() as f64;
        // Core alone: actions taken and dropped.
        let t = Instant::now();
        for (_, b) in msgs {
            self.core.on_message(b);
            std::hint::black_box(self.core.take_actions());
        }
        let core_only = t.elapsed().as_secs_f64() / n;
        let t = Instant::now();
        for (_, b) in msgs {
            self.core.on_message(b);
            self.effects();
        }
        (core_only, t.elapsed().as_secs_f64() / n)
    }
}

/// Random bytes for the native core (the component asks the host): a
/// splitmix64 stream, distinct per seed, so Call-IDs and tags never collide.
fn random(seed: u64) -> sip_simple::core::RandomBytes {
    let mut state = seed;
    Box::new(move |n| {
        (0..n)
            .map(|_| {
                state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
                let mut z = state;
                z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
                (z ^ (z >> 31)) as u8
            })
            .collect()
    })
}

/// sip-simple's update as the host's report (what the host's conversion
/// does).
pub fn presence(u: sdk::PresenceUpdate) -> model::PresenceReport {
    model::PresenceReport {
        endpoint: u.endpoint,
        observed_at_ms: u.observed_at,
        ordering: u.ordering.map(|o| model::ReportOrdering {
            epoch: o.epoch,
            sequence: o.sequence,
        }),
        origin: model::UpdateOrigin::Platform,
        calendar: None,
        valid_for_ms: None,
        telephony: u.telephony.map(|t| model::TelephonyPresence {
            line: match t.line {
                sdk::LineState::Idle => model::LineState::Idle,
                sdk::LineState::Ringing => model::LineState::Ringing,
                sdk::LineState::Dialing => model::LineState::Dialing,
                sdk::LineState::InCall => model::LineState::InCall,
                sdk::LineState::OnHold => model::LineState::OnHold,
                sdk::LineState::Unknown => model::LineState::Unknown,
            },
            do_not_disturb: t.do_not_disturb,
            forward: t.forward.map(|f| match f {
                sdk::ForwardTarget::Voicemail => model::ForwardTarget::Voicemail,
                sdk::ForwardTarget::Number(n) => model::ForwardTarget::Number(n),
            }),
            source: model::TelephonySource::SipDerived,
        }),
        rich: u.rich.map(|r| model::RichPresence {
            availability: match r.availability {
                sdk::Availability::Available => model::Availability::Available,
                sdk::Availability::Away => model::Availability::Away,
                sdk::Availability::Busy => model::Availability::Busy,
                sdk::Availability::DoNotDisturb => model::Availability::DoNotDisturb,
                sdk::Availability::Offline => model::Availability::Offline,
                sdk::Availability::Unknown => model::Availability::Unknown,
            },
            activity: r.activity.map(|a| match a {
                sdk::Activity::InACall => model::Activity::InACall,
                sdk::Activity::InAConference => model::Activity::InAConference,
                sdk::Activity::InAMeeting => model::Activity::InAMeeting,
                sdk::Activity::Presenting => model::Activity::Presenting,
                sdk::Activity::OutOfOffice => model::Activity::OutOfOffice,
                sdk::Activity::BeRightBack => model::Activity::BeRightBack,
                sdk::Activity::OffWork => model::Activity::OffWork,
                sdk::Activity::Inactive => model::Activity::Inactive,
                sdk::Activity::Other(s) => model::Activity::Other(s),
            }),
            note: r.note,
        }),
        raw: u.raw.into_iter().map(|v| (v.name, v.value)).collect(),
    }
}

fn endpoint_state(s: sdk::EndpointState) -> model::EndpointState {
    match s {
        sdk::EndpointState::Active => model::EndpointState::Active,
        sdk::EndpointState::Requesting => model::EndpointState::Requesting,
        sdk::EndpointState::NotFound => model::EndpointState::NotFound,
        sdk::EndpointState::AccessDenied => model::EndpointState::AccessDenied,
        sdk::EndpointState::Error => model::EndpointState::Error,
    }
}
