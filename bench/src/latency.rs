//! Benchmark 2: latency from a NOTIFY leaving the presence server (the
//! benchmark, on loopback) to the change arriving at a live-feed client,
//! at a fixed offered load with many clients connected.
//!
//! Every user is followed by one SSE client and one WebSocket client
//! (each client follows `per_client` users, half the clients on each
//! transport), so each update reaches two clients. Each PIDF carries a
//! unique note; the client looks up when that note was sent.
//!
//! With `hog`, the highest rate runs once more with a CPU hog (a child
//! process spinning on one of the machine's cores) beside the hub, and the
//! row is printed beside the quiet one, with how many updates had not
//! reached the clients 5 s after they were sent.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::feed::{Clients, percentile};
use crate::hog::Hog;
use crate::hubctl::{BenchHub, TOKEN};
use crate::ingest::{Stream, open_loop, wait_until};
use crate::procfs;
use crate::report::{self, Report, Row};
use crate::sip::Package;
use crate::sipserver::{SipServer, Stamps};

/// Sizes of the run.
pub struct Params {
    pub users: usize,
    pub clients: usize,
    /// Offered rates: the baseline first, the one the target applies to
    /// last.
    pub rates: Vec<f64>,
    pub secs: f64,
    /// Run the highest rate once more with a CPU hog beside the hub.
    pub hog: bool,
}

/// The hub's count of feed events skipped for slow clients.
pub(crate) const FOLDED: &str = "presence_hub_feed_folded_total";
/// The hub's count of reports folded into a newer one while queued.
pub(crate) const COALESCED: &str = "presence_hub_presence_coalesced_total";

/// How long after sending an update counts as "not reached the client".
pub const LATE: Duration = Duration::from_secs(5);

/// The benchmark's SIP server with a hub subscribed to `users` users
/// (presence only, one sip-simple instance), and the stream of PIDF
/// updates with their send times.
pub struct Load {
    pub server: Arc<SipServer>,
    pub hub: BenchHub,
    pub stamps: Arc<Stamps>,
    stream: Arc<Mutex<Stream>>,
    users: usize,
}

impl Load {
    /// Start the server and a hub, subscribe `users`, and keep room for
    /// `notes` updates' send times.
    pub async fn start(users: usize, notes: usize) -> anyhow::Result<Load> {
        let server = Arc::new(SipServer::start()?);
        let hub = BenchHub::start(&["plugins/sip-simple"], &[]);
        hub.create_sip("sip-0", server.addr, "presence").await?;
        hub.wait_up("sip-0", Duration::from_secs(30)).await?;
        hub.import_users(users, &["sip-0".to_string()]).await?;
        anyhow::ensure!(
            wait_until(Duration::from_secs(90), || server
                .established(Package::Presence)
                >= users)
            .await,
            "only {} of {} users subscribed within 90 s",
            server.established(Package::Presence),
            users
        );
        Ok(Load {
            server,
            hub,
            stamps: Arc::new(Stamps::new(Instant::now(), notes + 1)),
            stream: Arc::new(Mutex::new(Stream::new(users, 1))),
            users,
        })
    }

    /// Offer `rate` PIDF updates per second for `secs`; returns the number
    /// sent, the time taken and the note numbers sent (`first..end`).
    pub async fn offer(&self, secs: f64, rate: f64) -> anyhow::Result<(u64, f64, u64, u64)> {
        let (server, stamps, stream) = (
            self.server.clone(),
            self.stamps.clone(),
            self.stream.clone(),
        );
        Ok(tokio::task::spawn_blocking(move || {
            let mut st = stream.lock().unwrap();
            let first = st.note;
            let (sent, took) = open_loop(&server, secs, rate, Some(&stamps), || st.next_presence());
            (sent, took, first, st.note)
        })
        .await?)
    }

    /// The user whose update carries note `n` (users in turn from note 1).
    fn user_of(&self, n: u64) -> usize {
        ((n - 1) as usize) % self.users
    }
}

/// What one transport's clients got of one measured period.
pub struct Got {
    pub name: &'static str,
    /// Sorted latencies (µs) of the updates of the period that arrived.
    pub lat: Vec<u32>,
    /// Updates of the period that had not reached the client `LATE` after
    /// being sent (late or never).
    pub late: u64,
    /// Of those, updates superseded by a later update of the same user
    /// that did arrive in time (what coalescing would skip).
    pub superseded: u64,
    /// Clients cut off (resync or error) so far.
    pub ended: usize,
}

impl Got {
    pub fn p(&self, q: f64) -> f64 {
        percentile(&self.lat, q) / 1e6
    }

    pub fn summary(&self) -> String {
        format!(
            "p50 {} · p99 {} · p99.9 {}",
            report::secs(self.p(50.0)),
            report::secs(self.p(99.0)),
            report::secs(self.p(99.9))
        )
    }
}

/// One measured period: offer, wait until everything arrived (at most
/// `LATE`), and gather each transport's latencies.
pub struct Period {
    pub sent: u64,
    pub secs: f64,
    pub acked: u64,
    pub hub_cpu: f64,
    pub own_cpu: f64,
    /// Datagrams the kernel dropped on full socket buffers (all sockets)
    /// and events the hub's instance dropped on a full queue, in the
    /// period.
    pub kernel_drops: u64,
    pub queue_drops: u64,
    /// Feed events the hub skipped for slow clients because a newer one of
    /// the same user was waiting (`presence_hub_feed_folded_total`; 0
    /// where the hub does not count them).
    pub folded: f64,
    /// Reports the hub folded into a newer one of the same endpoint while
    /// queued (`presence_hub_presence_coalesced_total`; 0 where the hub
    /// does not count them).
    pub coalesced: f64,
    /// SSE, then WebSocket.
    pub got: [Got; 2],
}

impl Period {
    pub fn rate(&self) -> f64 {
        self.sent as f64 / self.secs
    }

    /// " (kernel UDP drops N, hub queue drops M, reports coalesced C,
    /// feed events folded F)" when there were any.
    pub fn drops(&self) -> String {
        if self.kernel_drops + self.queue_drops == 0 && self.folded + self.coalesced == 0.0 {
            return String::new();
        }
        format!(
            " (kernel UDP drops {}, hub queue drops {}, reports coalesced while queued {}, feed events folded for slow clients {})",
            self.kernel_drops, self.queue_drops, self.coalesced, self.folded
        )
    }
}

/// Warm up for a second at `rate` (latencies discarded).
pub async fn warm_up(load: &Load, clients: &Clients, rate: f64) -> anyhow::Result<()> {
    let (e0, w0) = (
        clients.sse.events.load(Ordering::Relaxed),
        clients.ws.events.load(Ordering::Relaxed),
    );
    let (warm, ..) = load.offer(1.0, rate).await?;
    wait_until(LATE, || {
        clients.sse.events.load(Ordering::Relaxed) >= e0 + warm
            && clients.ws.events.load(Ordering::Relaxed) >= w0 + warm
    })
    .await;
    Ok(())
}

/// Offer `rate` for `secs` and measure what the clients got.
pub async fn measure(
    load: &Load,
    clients: &Clients,
    rate: f64,
    secs: f64,
) -> anyhow::Result<Period> {
    let (sse, ws) = (&clients.sse, &clients.ws);
    sse.take_latencies();
    ws.take_latencies();
    let (e0, w0, acked0) = (
        sse.events.load(Ordering::Relaxed),
        ws.events.load(Ordering::Relaxed),
        load.server.stats.updates_acked.load(Ordering::Relaxed),
    );
    let (cpu0, own0) = (load.hub.cpu_seconds(), procfs::own_cpu_seconds());
    let (kdrop0, qdrop0, fold0, coal0) = (
        procfs::udp_rcvbuf_errors(),
        load.hub.events_dropped("sip-0").await?,
        load.hub.metric(FOLDED).await?,
        load.hub.metric(COALESCED).await?,
    );
    let (sent, took, first, end) = load.offer(secs, rate).await?;
    let (hub_cpu, own_cpu) = (
        load.hub.cpu_seconds() - cpu0,
        procfs::own_cpu_seconds() - own0,
    );
    // Every update has had `LATE` to arrive when this wait ends.
    wait_until(LATE, || {
        sse.events.load(Ordering::Relaxed) - e0 >= sent
            && ws.events.load(Ordering::Relaxed) - w0 >= sent
    })
    .await;
    let acked = load.server.stats.updates_acked.load(Ordering::Relaxed) - acked0;
    let kernel_drops = procfs::udp_rcvbuf_errors().saturating_sub(kdrop0);
    let queue_drops = load
        .hub
        .events_dropped("sip-0")
        .await?
        .saturating_sub(qdrop0);
    let folded = load.hub.metric(FOLDED).await? - fold0;
    let coalesced = load.hub.metric(COALESCED).await? - coal0;
    let late_us = LATE.as_micros() as u32;
    let gather = |name: &'static str, sink: &crate::feed::FeedSink| {
        let mut lat = Vec::new();
        // Notes that arrived in time, and the newest of them per user.
        let mut arrived: HashSet<u64> = HashSet::new();
        let mut newest: HashMap<usize, u64> = HashMap::new();
        for (n, us) in sink.take_latencies() {
            if n < first || n >= end {
                continue;
            }
            lat.push(us);
            if us <= late_us {
                arrived.insert(n);
                let e = newest.entry(load.user_of(n)).or_default();
                *e = (*e).max(n);
            }
        }
        lat.sort_unstable();
        let (mut late, mut superseded) = (0u64, 0u64);
        for n in (first..end).filter(|n| !arrived.contains(n)) {
            late += 1;
            if newest.get(&load.user_of(n)).is_some_and(|m| *m > n) {
                superseded += 1;
            }
        }
        Got {
            name,
            lat,
            late,
            superseded,
            ended: sink.ended.lock().unwrap().len(),
        }
    };
    Ok(Period {
        sent,
        secs: took,
        acked,
        hub_cpu,
        own_cpu,
        kernel_drops,
        queue_drops,
        folded,
        coalesced,
        got: [gather("SSE", sse), gather("WebSocket", ws)],
    })
}

/// Run benchmark 2.
pub async fn run(r: &mut Report, p: &Params) -> anyhow::Result<()> {
    // Notes of the warm-up second and the measurement, with room to spare.
    let top = p.rates.iter().cloned().fold(0.0, f64::max);
    let hog_notes = if p.hog { top * p.secs } else { 0.0 };
    let total = ((p.rates.iter().sum::<f64>() * p.secs + top + hog_notes) * 1.2) as usize + 10;
    let load = Load::start(p.users, total).await?;
    let clients = Clients::connect(
        load.hub.addr(),
        TOKEN,
        p.users,
        p.clients,
        Some(load.stamps.clone()),
        100,
        Duration::from_secs(30),
    )
    .await?;
    let (half, per_client) = (clients.per_transport, clients.per_client);
    warm_up(&load, &clients, top).await?;

    // The first rate's p99 per transport: the baseline of the target rows.
    let mut base: Vec<(f64, f64)> = Vec::new();
    let mut quiet_top: Vec<(f64, Got)> = Vec::new();
    for (i, &rate) in p.rates.iter().enumerate() {
        let m = measure(&load, &clients, rate, p.secs).await?;
        let (achieved, drops) = (m.rate(), m.drops());
        let [sse, ws] = m.got;
        for (t, g) in [sse, ws].into_iter().enumerate() {
            let p99 = g.p(99.0);
            let got = g.lat.len();
            let mut row = Row::info(
                "2",
                format!(
                    "Latency NOTIFY → {} client, {} updates/s offered, {} clients connected ({} per transport, {} users each)",
                    g.name,
                    report::count(m.sent as f64 / m.secs),
                    2 * half,
                    half,
                    per_client
                ),
                g.summary(),
            )
            .baseline(
                format!(
                    "{}{} of {} updates delivered, {} clients cut off",
                    match base.get(t) {
                        Some((rate, p99)) if i > 0 => format!(
                            "at {}/s: p99 {}; ",
                            report::count(*rate),
                            report::secs(*p99)
                        ),
                        _ => String::new(),
                    },
                    report::count(got as f64),
                    m.sent,
                    g.ended
                ),
                base.get(t).filter(|_| i > 0).map(|(_, b)| p99 / b),
            );
            if i == 0 {
                base.push((rate, p99));
            }
            if i == p.rates.len() - 1 {
                row = row.target(
                    "p99 < 2 ms",
                    p99 < 0.002 && g.ended == 0 && got as u64 >= m.sent,
                );
                quiet_top.push((achieved, g));
            }
            r.push(row);
        }
        r.note(format!(
            "latency at {}/s: {} NOTIFYs sent in {:.1} s, {} answered{}; hub CPU {:.0}% of one core, benchmark process (server, sender, {} clients) {:.0}%",
            report::count(rate),
            m.sent,
            m.secs,
            m.acked,
            drops,
            100.0 * m.hub_cpu / m.secs,
            2 * half,
            100.0 * m.own_cpu / m.secs
        ));
    }

    if p.hog {
        // Let the quiet period's stragglers clear, then the same rate with
        // the hog spinning beside the hub.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let hog = Hog::start(Duration::from_secs_f64(p.secs + LATE.as_secs_f64() + 20.0))?;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let m = measure(&load, &clients, top, p.secs).await;
        let share = hog.stop();
        let m = m?;
        let (achieved, drops) = (m.rate(), m.drops());
        let [sse, ws] = m.got;
        for (t, g) in [sse, ws].into_iter().enumerate() {
            let p99 = g.p(99.0);
            let quiet = quiet_top.get(t);
            r.push(
                Row::info(
                    "2",
                    format!(
                        "Latency NOTIFY → {} client, {} updates/s offered, CPU hog on one of the {} cores beside the hub, {} clients connected",
                        g.name,
                        report::count(achieved),
                        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
                        2 * half
                    ),
                    format!(
                        "{}; {} of {} updates ({:.1}%) not in the client {} s after sending{}",
                        g.summary(),
                        g.late,
                        m.sent,
                        100.0 * g.late as f64 / m.sent.max(1) as f64,
                        LATE.as_secs(),
                        if g.superseded > 0 {
                            format!(
                                " ({} of them superseded by a later update of the same user that arrived)",
                                g.superseded
                            )
                        } else {
                            String::new()
                        }
                    ),
                )
                .baseline(
                    match quiet {
                        Some((rate, q)) => format!(
                            "quiet, same run, {}/s: {}; {} not in the client after {} s; {} clients cut off with the hog",
                            report::count(*rate),
                            q.summary(),
                            q.late,
                            LATE.as_secs(),
                            g.ended
                        ),
                        None => "—".into(),
                    },
                    quiet.map(|(_, q)| p99 / q.p(99.0)),
                )
                .target(
                    "p99 < 100 ms, every update in the client within 5 s",
                    p99 < 0.1 && g.late == 0 && g.ended == 0,
                ),
            );
        }
        r.note(format!(
            "latency with the CPU hog at {}/s: {} NOTIFYs sent in {:.1} s, {} answered{}; hog {:.0}% of one core, hub CPU {:.0}%, benchmark process {:.0}%",
            report::count(top),
            m.sent,
            m.secs,
            m.acked,
            drops,
            100.0 * share,
            100.0 * m.hub_cpu / m.secs,
            100.0 * m.own_cpu / m.secs
        ));
    }
    clients.stop().await;
    Ok(())
}
