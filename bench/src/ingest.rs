//! Benchmark 1: ingest. The benchmark plays the presence server: the real
//! hub's sip-simple instance subscribes (presence and dialog) to every
//! user, and the server sends NOTIFYs within those dialogs, PIDF and
//! dialog-info alternating, while an SSE client follows the whole live
//! feed. An update counts as taken when the plugin answered its NOTIFY
//! with 200 *and* the feed delivered the change; nothing may be lost.
//!
//! First a closed loop (at most `window` NOTIFYs unanswered) finds what the
//! hub can take; then fixed offered rates, from that figure down, each for
//! `step_secs`, until one passes with no update lost: that rate is the
//! sustained ingest rate, and its CPU time per update is compared with
//! Kamailio's per PUBLISH.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::feed::{self, FeedSink};
use crate::hubctl::{BenchHub, TOKEN};
use crate::overhead::Costs;
use crate::procfs;
use crate::report::{self, Report, Row};
use crate::sip::Package;
use crate::sipserver::{SipServer, Update};

/// Sizes of the run.
pub struct Params {
    pub users: usize,
    /// Unanswered NOTIFYs allowed in the closed loop.
    pub window: u64,
    pub closed_secs: f64,
    pub step_secs: f64,
    /// Offered rates tried, as fractions of the closed-loop rate.
    pub steps: Vec<f64>,
}

/// What benchmark 1 found, for the Kamailio comparison.
#[derive(Debug, Clone, Copy)]
pub struct Outcome {
    /// Updates per second sustained with none lost (0 if no step passed).
    pub rate: f64,
    /// Updates taken in the sustained step.
    pub updates: u64,
    /// Hub CPU seconds per update in that step.
    pub cpu_per_update: f64,
    /// Hub CPU seconds per update answered in the closed loop, and the
    /// updates answered there (for a comparison when no step passed).
    pub closed_cpu_per_update: f64,
    pub closed_updates: u64,
}

/// An endless stream of updates: users in turn, presence and dialog
/// alternating, note numbers unique in the run.
pub struct Stream {
    users: usize,
    i: u64,
    pub note: u64,
}

impl Stream {
    pub fn new(users: usize, first_note: u64) -> Stream {
        Stream {
            users,
            i: 0,
            note: first_note,
        }
    }

    /// Only presence updates (for latency).
    pub fn next_presence(&mut self) -> Update {
        let u = Update {
            user: (self.i as usize) % self.users,
            package: Package::Presence,
            note: self.note,
        };
        self.i += 1;
        self.note += 1;
        u
    }

    pub fn next_mixed(&mut self) -> Update {
        let package = if self.i.is_multiple_of(2) {
            Package::Presence
        } else {
            Package::Dialog
        };
        let u = Update {
            user: ((self.i / 2) as usize) % self.users,
            package,
            note: self.note,
        };
        self.i += 1;
        self.note += 1;
        u
    }
}

/// Keep at most `window` NOTIFYs unanswered for `secs`; returns the number
/// sent.
pub fn closed_loop(server: &SipServer, stream: &mut Stream, window: u64, secs: f64) -> u64 {
    let start = Instant::now();
    let mut sent = 0u64;
    let mut batch = Vec::with_capacity(32);
    while start.elapsed().as_secs_f64() < secs {
        let room = window.saturating_sub(server.outstanding()).min(32);
        if room == 0 {
            std::thread::sleep(Duration::from_micros(20));
            continue;
        }
        batch.clear();
        batch.extend((0..room).map(|_| stream.next_mixed()));
        sent += server.send(&batch, None) as u64;
    }
    sent
}

/// Offer `rate` updates per second for `secs` (paced in small batches);
/// returns the number sent and the time taken.
pub fn open_loop(
    server: &SipServer,
    secs: f64,
    rate: f64,
    stamps: Option<&crate::sipserver::Stamps>,
    mut next: impl FnMut() -> Update,
) -> (u64, f64) {
    let start = Instant::now();
    let mut sent = 0u64;
    let mut batch = Vec::with_capacity(64);
    loop {
        let el = start.elapsed().as_secs_f64();
        if el >= secs {
            break;
        }
        let due = (el * rate) as u64;
        if due > sent {
            let n = (due - sent).min(64);
            batch.clear();
            batch.extend((0..n).map(|_| next()));
            server.send(&batch, stamps);
            sent += n;
        } else {
            std::thread::sleep(Duration::from_micros(100));
        }
    }
    (sent, start.elapsed().as_secs_f64())
}

/// Poll `f` every 20 ms until it holds or `limit` passes.
pub async fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if f() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Run benchmark 1.
pub async fn run(r: &mut Report, p: &Params, costs: Option<Costs>) -> anyhow::Result<Outcome> {
    let rig = Rig::start(p.users, 1).await?;
    let (server, hub, sink) = (rig.server.clone(), &rig.hub, rig.sink.clone());

    let stream = Arc::new(std::sync::Mutex::new(Stream::new(p.users, 1)));
    let stats = server.stats.clone();
    let acked = move || {
        stats.updates_acked.load(Ordering::Relaxed) + stats.rejected.load(Ordering::Relaxed)
    };

    // Warm up, then the closed loop.
    {
        let (server, stream, window) = (server.clone(), stream.clone(), p.window);
        tokio::task::spawn_blocking(move || {
            closed_loop(&server, &mut stream.lock().unwrap(), window, 1.0)
        })
        .await?;
    }
    wait_until(Duration::from_secs(3), || server.outstanding() == 0).await;
    let (ev0, calls0) = (
        hub.metric("presence_hub_connector_events_in_total").await?,
        hub.metric("presence_hub_connector_event_calls_total")
            .await?,
    );
    let (a0, c0, t0) = (acked(), hub.cpu_seconds(), Instant::now());
    {
        let (server, stream, window, secs) =
            (server.clone(), stream.clone(), p.window, p.closed_secs);
        tokio::task::spawn_blocking(move || {
            closed_loop(&server, &mut stream.lock().unwrap(), window, secs)
        })
        .await?;
    }
    let closed_updates = acked() - a0;
    let closed_rate = closed_updates as f64 / t0.elapsed().as_secs_f64();
    let closed_cpu = (hub.cpu_seconds() - c0) / closed_updates.max(1) as f64;
    let events = hub.metric("presence_hub_connector_events_in_total").await? - ev0;
    let calls = hub
        .metric("presence_hub_connector_event_calls_total")
        .await?
        - calls0;
    wait_until(Duration::from_secs(3), || server.outstanding() == 0).await;
    wait_until(Duration::from_secs(5), || {
        sink.events.load(Ordering::Relaxed) >= server.stats.updates_acked.load(Ordering::Relaxed)
    })
    .await;
    r.push(
        Row::info(
            "1",
            format!(
                "Ingest, closed loop ({} NOTIFYs in flight, {} users × presence + dialog, 1 instance, SSE client on the whole feed)",
                p.window, p.users
            ),
            format!("{} updates/s", report::count(closed_rate)),
        )
        .baseline(
            format!("hub CPU {} per update", report::secs(closed_cpu)),
            None,
        ),
    );

    // Batched delivery (contract 0.2.0): how many queued events each
    // handle-events call took while the queue was backed up.
    r.push(
        Row::info(
            "1",
            "Batched delivery in the closed loop: events handed over per handle-events call (sip-simple takes batches of up to 64)",
            format!("{:.2} events per call", events / calls.max(1.0)),
        )
        .baseline(
            format!(
                "one event per call without batching; {} events in {} calls",
                report::count(events),
                report::count(calls)
            ),
            Some(events / calls.max(1.0)),
        ),
    );

    // Fixed offered rates, from the closed-loop figure down.
    let mut outcome = Outcome {
        rate: 0.0,
        updates: 0,
        cpu_per_update: f64::NAN,
        closed_cpu_per_update: closed_cpu,
        closed_updates,
    };
    let mut tried = Vec::new();
    for frac in &p.steps {
        let rate = closed_rate * frac;
        let s = &server.stats;
        let sent0 = s.updates_sent.load(Ordering::Relaxed);
        let ok0 = s.updates_acked.load(Ordering::Relaxed);
        let rej0 = s.rejected.load(Ordering::Relaxed);
        let feed0 = sink.events.load(Ordering::Relaxed);
        let (cpu0, own0, kdrop0) = (
            hub.cpu_seconds(),
            procfs::own_cpu_seconds(),
            procfs::udp_rcvbuf_errors(),
        );
        let qdrop0 = hub.events_dropped("sip-0").await?;
        // Presence is state: a change superseded by a newer one of the same
        // user before it reached the feed is folded (and counted), not lost.
        let superseded0 = hub.metric(crate::latency::COALESCED).await?
            + hub.metric(crate::latency::FOLDED).await?;
        let (sent, secs) = {
            let (server, stream, step) = (server.clone(), stream.clone(), p.step_secs);
            tokio::task::spawn_blocking(move || {
                let mut st = stream.lock().unwrap();
                open_loop(&server, step, rate, None, || st.next_mixed())
            })
            .await?
        };
        wait_until(Duration::from_secs(3), || server.outstanding() == 0).await;
        let cpu = hub.cpu_seconds() - cpu0;
        let own = procfs::own_cpu_seconds() - own0;
        let ok = s.updates_acked.load(Ordering::Relaxed) - ok0;
        let rejected = s.rejected.load(Ordering::Relaxed) - rej0;
        wait_until(Duration::from_secs(5), || {
            sink.events.load(Ordering::Relaxed) - feed0 >= ok
        })
        .await;
        let fed = sink.events.load(Ordering::Relaxed) - feed0;
        let sent_total = s.updates_sent.load(Ordering::Relaxed) - sent0;
        let kdrop = procfs::udp_rcvbuf_errors() - kdrop0;
        let qdrop = hub.events_dropped("sip-0").await? - qdrop0;
        let superseded = (hub.metric(crate::latency::COALESCED).await?
            + hub.metric(crate::latency::FOLDED).await?
            - superseded0) as u64;
        let unanswered = sent_total.saturating_sub(ok + rejected);
        let missing = ok.saturating_sub(fed + superseded);
        let achieved = sent as f64 / secs;
        let pass = unanswered == 0
            && rejected == 0
            && missing == 0
            && sink.ended.lock().unwrap().is_empty();
        tried.push(format!(
            "offered {}/s for {:.0} s: sent {sent_total}, answered {ok} (unanswered {unanswered}), in the feed {fed}, superseded by a newer change of the same user before reaching it {superseded} (missing {missing}), rejected {rejected}, kernel UDP drops {kdrop}, hub queue drops {qdrop}, hub CPU {:.2} s, bench CPU {:.2} s → {}",
            report::count(achieved),
            secs,
            cpu,
            own,
            if pass { "none lost" } else { "LOSS" }
        ));
        if pass {
            outcome = Outcome {
                rate: achieved,
                updates: ok,
                cpu_per_update: cpu / ok.max(1) as f64,
                ..outcome
            };
            break;
        }
        // Let the backlog clear before the next rate.
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    for t in &tried {
        r.note(format!("ingest step: {t}"));
    }

    // Every user's last value in the feed is what the server sent last.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let truth = server.truth();
    let seen = sink.last();
    let wrong = (0..p.users)
        .filter(|u| {
            let t = truth.get(*u).copied().unwrap_or_default();
            let s = seen.get(u).copied().unwrap_or_default();
            (t.note != 0 && s.note != t.note) || s.busy.is_some_and(|b| b != t.in_call)
        })
        .count();
    if wrong > 0 {
        r.note(format!(
            "ingest: {wrong} of {} users end with a feed value other than the server's last update",
            p.users
        ));
    }

    rig.stop().await;

    // The same closed loop with the users split across instances: one
    // instance is one actor (one plugin call at a time), so this shows
    // whether the limit is the instance or the machine.
    match closed_loop_instances(p, 2).await {
        Ok((rate, cpu)) => r.push(
            Row::info(
                "1",
                format!(
                    "Ingest, closed loop ({} NOTIFYs in flight, {} users split across 2 instances, SSE client on the whole feed)",
                    2 * p.window,
                    p.users
                ),
                format!("{} updates/s", report::count(rate)),
            )
            .baseline(
                format!(
                    "1 instance: {} updates/s; hub CPU {} per update",
                    report::count(closed_rate),
                    report::secs(cpu)
                ),
                Some(rate / closed_rate),
            ),
        ),
        Err(e) => r.note(format!("ingest with 2 instances failed: {e:#}")),
    }

    let native = costs.map(|c| 1.0 / c.native_full);
    r.push(
        Row::info(
            "1",
            "Ingest sustained with none lost (fixed offered rate, NOTIFY answered and change in the feed, final state checked)",
            if outcome.rate > 0.0 {
                format!("{} updates/s", report::count(outcome.rate))
            } else {
                "no step without loss".into()
            },
        )
        .baseline(
            match native {
                Some(n) => format!(
                    "same plugin code native, called directly, one core: {} updates/s",
                    report::count(n)
                ),
                None => "—".into(),
            },
            native.map(|n| outcome.rate / n),
        )
        .target("≥ 50,000 updates/s", outcome.rate >= 50_000.0 && wrong == 0),
    );
    Ok(outcome)
}

/// A fresh hub whose `instances` sip-simple instances share the users; a
/// closed loop of `window` NOTIFYs per instance for `closed_secs`, with an
/// SSE client on the whole feed. Returns updates/s and hub CPU per update.
async fn closed_loop_instances(p: &Params, instances: usize) -> anyhow::Result<(f64, f64)> {
    let rig = Rig::start(p.users, instances).await?;
    let (server, hub) = (&rig.server, &rig.hub);
    let window = p.window * instances as u64;
    let mut stream = Stream::new(p.users, 1);
    let srv = server.clone();
    let (rate, cpu) = {
        let stats = server.stats.clone();
        let acked = move || stats.updates_acked.load(Ordering::Relaxed);
        let secs = p.closed_secs;
        let cpu0 = hub.cpu_seconds();
        let (a0, t0) = (acked(), Instant::now());
        tokio::task::spawn_blocking(move || {
            // Warm-up, then the measured loop.
            closed_loop(&srv, &mut stream, window, 1.0);
            closed_loop(&srv, &mut stream, window, secs);
        })
        .await?;
        let n = acked() - a0;
        let el = t0.elapsed().as_secs_f64();
        (
            (n as f64) / el,
            (hub.cpu_seconds() - cpu0) / n.max(1) as f64,
        )
    };
    rig.stop().await;
    Ok((rate, cpu))
}

/// The benchmark's SIP server, a fresh hub whose `instances` sip-simple
/// instances share `users` (every user subscribed, presence and dialog),
/// and an SSE client on the whole feed that has its snapshot.
struct Rig {
    server: Arc<SipServer>,
    hub: BenchHub,
    sink: Arc<FeedSink>,
    stop: watch::Sender<bool>,
    client: tokio::task::JoinHandle<()>,
}

impl Rig {
    async fn start(users: usize, instances: usize) -> anyhow::Result<Rig> {
        let server = Arc::new(SipServer::start()?);
        let hub = BenchHub::start(&["plugins/sip-simple"], &[]);
        let ids: Vec<String> = (0..instances).map(|i| format!("sip-{i}")).collect();
        for id in &ids {
            hub.create_sip(id, server.addr, "both").await?;
        }
        for id in &ids {
            hub.wait_up(id, Duration::from_secs(30)).await?;
        }
        hub.import_users(users, &ids).await?;
        let subscribed = wait_until(Duration::from_secs(60), || {
            server.established(Package::Presence) >= users
                && server.established(Package::Dialog) >= users
        })
        .await;
        anyhow::ensure!(
            subscribed,
            "only {} presence and {} dialog subscriptions of {users} users within 60 s",
            server.established(Package::Presence),
            server.established(Package::Dialog),
        );
        let sink = FeedSink::new(true, None);
        let (stop, stop_rx) = watch::channel(false);
        let client = tokio::spawn(feed::sse(
            hub.addr(),
            TOKEN.to_string(),
            None,
            sink.clone(),
            stop_rx,
        ));
        anyhow::ensure!(
            wait_until(Duration::from_secs(10), || sink
                .ready
                .load(Ordering::Relaxed)
                == 1)
            .await,
            "the feed client got no snapshot: {:?}",
            sink.ended.lock().unwrap()
        );
        Ok(Rig {
            server,
            hub,
            sink,
            stop,
            client,
        })
    }

    /// End the feed client (the hub stops when dropped).
    async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.client.await;
    }
}
