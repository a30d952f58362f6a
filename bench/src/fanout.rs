//! Benchmark 2b: feed fan-out. The latency benchmark's set-up (one
//! sip-simple instance, `users` users, PIDF updates with unique notes, half
//! the feed clients on SSE and half on WebSocket, every update reaching one
//! client of each kind), measured first with `small` clients connected (the
//! baseline), then with `large` clients connected at once, at the same
//! offered rate on the same hub. Only the number of connections differs:
//! with more clients each follows fewer users.
//!
//! Each client is a socket here and one in the hub: the open-file limit is
//! raised to its hard limit at start (the hub inherits it), and each
//! connection takes a local port of the ephemeral range; both are checked
//! before connecting.

use std::time::Duration;

use crate::feed::Clients;
use crate::hubctl::TOKEN;
use crate::latency::{self, LATE, Load, Period};
use crate::report::{self, Report, Row};
use crate::sys;

/// Sizes of the run.
pub struct Params {
    pub users: usize,
    /// The baseline's client count.
    pub small: usize,
    /// The client count the target applies to.
    pub large: usize,
    pub rate: f64,
    pub secs: f64,
}

/// Room (file descriptors) the hub and this program need besides the
/// clients' sockets.
const FD_SPARE: u64 = 512;

/// Run benchmark 2b.
pub async fn run(r: &mut Report, p: &Params) -> anyhow::Result<()> {
    // Each process holds one socket per client (and the SIP sockets, the
    // database, the plugin files...).
    let (soft, hard) = sys::nofile();
    anyhow::ensure!(
        soft >= p.large as u64 + FD_SPARE,
        "the open-file limit is {soft} (hard {hard}): {} clients need at least {} (raise the hard limit, e.g. `ulimit -Hn {}`)",
        p.large,
        p.large as u64 + FD_SPARE,
        p.large as u64 + FD_SPARE
    );
    if let Some((lo, hi)) = sys::ephemeral_ports() {
        let ports = (hi.saturating_sub(lo) + 1) as usize;
        anyhow::ensure!(
            ports >= p.large + p.small + 1000,
            "the ephemeral port range {lo}-{hi} holds {ports} ports: too few for {} + {} client connections",
            p.small,
            p.large
        );
    }
    let notes = ((2.0 * (p.secs + 1.0) * p.rate) * 1.2) as usize + 10;
    let load = Load::start(p.users, notes).await?;
    let hub_nofile = sys::nofile_of(load.hub.pid()).unwrap_or(0);
    anyhow::ensure!(
        hub_nofile >= p.large as u64 + FD_SPARE,
        "the hub's open-file limit is {hub_nofile}: too low for {} clients",
        p.large
    );

    // The baseline: `small` clients.
    let small = Clients::connect(
        load.hub.addr(),
        TOKEN,
        p.users,
        p.small,
        Some(load.stamps.clone()),
        100,
        Duration::from_secs(60),
    )
    .await?;
    latency::warm_up(&load, &small, p.rate).await?;
    let base = latency::measure(&load, &small, p.rate, p.secs).await?;
    let base_clients = (small.per_transport, small.per_client, small.connect_secs);
    small.stop().await;
    // Let the hub drop the old connections before counting its memory.
    tokio::time::sleep(Duration::from_secs(2)).await;

    // `large` clients connected at once.
    let (rss0, fds0) = (load.hub.rss(), sys::fds_of(load.hub.pid()));
    let large = Clients::connect(
        load.hub.addr(),
        TOKEN,
        p.users,
        p.large,
        Some(load.stamps.clone()),
        256,
        Duration::from_secs(120),
    )
    .await?;
    let (rss1, fds1) = (load.hub.rss(), sys::fds_of(load.hub.pid()));
    latency::warm_up(&load, &large, p.rate).await?;
    let m = latency::measure(&load, &large, p.rate, p.secs).await?;
    let still = 2 * large.per_transport - large.ended();

    let row = |clients: usize, per_t: usize, per_c: usize, m: &Period| {
        let all = merged(m);
        (
            format!(
                "Feed fan-out: {} clients connected at once ({} SSE + {} WebSocket, {} users each), {} updates/s offered, NOTIFY → client, both transports",
                report::count(clients as f64),
                report::count(per_t as f64),
                report::count(per_t as f64),
                per_c,
                report::count(m.rate())
            ),
            all,
        )
    };
    let (fig_b, lat_b) = row(2 * base_clients.0, base_clients.0, base_clients.1, &base);
    let p99_b = percentile_s(&lat_b, 99.0);
    r.push(Row::info("2", fig_b, summary(&lat_b)).baseline(delivery(&base, base_clients.2), None));
    let (fig, lat) = row(
        2 * large.per_transport,
        large.per_transport,
        large.per_client,
        &m,
    );
    let p99 = percentile_s(&lat, 99.0);
    let late: u64 = m.got.iter().map(|g| g.late).sum();
    let ended: usize = m.got.iter().map(|g| g.ended).sum();
    r.push(
        Row::info("2", fig, summary(&lat))
            .baseline(
                format!(
                    "{} clients, same run: p99 {}; {}",
                    report::count((2 * base_clients.0) as f64),
                    report::secs(p99_b),
                    delivery(&m, large.connect_secs)
                ),
                Some(p99 / p99_b),
            )
            .target("p99 < 10 ms", p99 < 0.010 && late == 0 && ended == 0),
    );
    r.note(format!(
        "fan-out: {} clients took {:.1} s to connect and get their snapshots (at most 256 connecting at once); the hub's RSS grew {} ({} per client) and its open files from {} to {}; {} clients still connected after the measurement; open-file limit {} here and {} in the hub",
        report::count((2 * large.per_transport) as f64),
        large.connect_secs,
        report::bytes(rss1 as f64 - rss0 as f64),
        report::bytes((rss1 as f64 - rss0 as f64) / (2 * large.per_transport).max(1) as f64),
        fds0,
        fds1,
        still,
        sys::nofile().0,
        hub_nofile
    ));
    for (what, m) in [("1", &base), ("2", &m)] {
        r.note(format!(
            "fan-out period {what}: {} NOTIFYs sent in {:.1} s, {} answered{}; hub CPU {:.0}% of one core, benchmark process {:.0}%",
            m.sent,
            m.secs,
            m.acked,
            m.drops(),
            100.0 * m.hub_cpu / m.secs,
            100.0 * m.own_cpu / m.secs
        ));
    }
    large.stop().await;
    Ok(())
}

/// Both transports' latencies, sorted.
fn merged(m: &Period) -> Vec<u32> {
    let mut all: Vec<u32> = m.got.iter().flat_map(|g| g.lat.iter().copied()).collect();
    all.sort_unstable();
    all
}

fn percentile_s(sorted: &[u32], q: f64) -> f64 {
    crate::feed::percentile(sorted, q) / 1e6
}

fn summary(sorted: &[u32]) -> String {
    format!(
        "p50 {} · p99 {} · p99.9 {}",
        report::secs(percentile_s(sorted, 50.0)),
        report::secs(percentile_s(sorted, 99.0)),
        report::secs(percentile_s(sorted, 99.9))
    )
}

/// Per transport: p99, delivered, late, cut off; and the connect time.
fn delivery(m: &Period, connect_secs: f64) -> String {
    let parts: Vec<String> = m
        .got
        .iter()
        .map(|g| {
            format!(
                "{} p99 {}, {} of {} delivered, {} not within {} s, {} cut off",
                g.name,
                report::secs(g.p(99.0)),
                g.lat.len(),
                m.sent,
                g.late,
                LATE.as_secs(),
                g.ended
            )
        })
        .collect();
    format!(
        "{}; all connected in {:.1} s",
        parts.join("; "),
        connect_secs
    )
}
