//! Benchmark 3: scale. For each user count, a fresh hub with `instances`
//! sip-simple instances on the benchmark's SIP server; the users are
//! imported (user i watched by instance i mod instances, presence and
//! dialog), and the hub subscribes them all. Memory per watched user is
//! (RSS with N users − RSS with none) / N, split into the plugins' linear
//! memory (`presence_hub_connector_memory_bytes`) and the rest (host). Then
//! the hub is killed and started again on the same data: the time until
//! every subscription is established anew is the time to subscribe all at
//! start.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::heap;
use crate::hubctl::BenchHub;
use crate::ingest::wait_until;
use crate::report::{self, Report, Row};
use crate::sip::Package;
use crate::sipserver::SipServer;

/// Sizes of the run.
pub struct Params {
    pub sizes: Vec<usize>,
    pub instances: usize,
    /// The size the memory target applies to.
    pub target_size: usize,
    /// Longest wait for all subscriptions of one size.
    pub limit: Duration,
}

/// Figures of one size.
#[derive(Debug, Clone, Copy)]
struct Figures {
    users: usize,
    per_user: f64,
    plugin_per_user: f64,
    import: f64,
    subscribe_live: f64,
    subscribe_start: Option<f64>,
    idle_cpu: f64,
    /// RSS of the hub with the users, and its peak (VmHWM).
    rss: f64,
    peak: f64,
}

/// Run benchmark 3.
pub async fn run(r: &mut Report, p: &Params) -> anyhow::Result<()> {
    let mut all = Vec::new();
    for &n in &p.sizes {
        match one(p, n).await {
            Ok(f) => all.push(f),
            Err(e) => {
                r.push(Row::failed(
                    "3",
                    format!("Scale, {} users", report::count(n as f64)),
                    format!("{e:#}"),
                ));
            }
        }
    }
    for (i, f) in all.iter().enumerate() {
        let host = f.per_user - f.plugin_per_user;
        let at_target = f.users == p.target_size;
        // Against the next smaller size, so that the growth shows.
        let smaller = i.checked_sub(1).map(|j| &all[j]);
        let mut row = Row::info(
            "3",
            format!(
                "Memory per watched user at {} users ({} instances, presence + dialog each)",
                report::count(f.users as f64),
                p.instances
            ),
            format!(
                "{} (host {} + plugins' linear memory {})",
                report::bytes(f.per_user),
                report::bytes(host),
                report::bytes(f.plugin_per_user)
            ),
        )
        .baseline(
            format!(
                "{}hub RSS {} (peak {})",
                smaller
                    .map(|s| format!(
                        "at {} users: {}; ",
                        report::count(s.users as f64),
                        report::bytes(s.per_user)
                    ))
                    .unwrap_or_default(),
                report::bytes(f.rss),
                report::bytes(f.peak)
            ),
            smaller.map(|s| f.per_user / s.per_user),
        );
        if at_target {
            row = row.target("≤ 2 KiB", f.per_user <= 2048.0);
        }
        r.push(row);
    }
    if all.iter().any(|f| f.users == p.target_size) {
        match heap::breakdown(p.target_size, p.instances).await {
            Ok(parts) => {
                for (what, bytes) in parts {
                    r.push(Row::info(
                        "3",
                        format!(
                            "Host heap per user at {} users (in-process heap profile): {what}",
                            report::count(p.target_size as f64)
                        ),
                        report::bytes(bytes),
                    ));
                }
            }
            Err(e) => r.note(format!("scale: no heap profile: {e:#}")),
        }
    }
    for f in &all {
        r.push(
            Row::info(
                "3",
                format!(
                    "Time to subscribe all {} users (2 dialogs each) at hub start",
                    report::count(f.users as f64)
                ),
                match f.subscribe_start {
                    Some(s) => report::secs(s),
                    None => "not within the limit".into(),
                },
            )
            .baseline(
                format!(
                    "after a live import: import {} + subscribe {}; idle hub CPU {:.1}% of a core",
                    report::secs(f.import),
                    report::secs(f.subscribe_live),
                    f.idle_cpu * 100.0
                ),
                None,
            ),
        );
    }
    Ok(())
}

async fn one(p: &Params, n: usize) -> anyhow::Result<Figures> {
    let server = SipServer::start()?;
    let mut hub = BenchHub::start(&["plugins/sip-simple"], &[]);
    let ids: Vec<String> = (0..p.instances).map(|i| format!("sip-{i}")).collect();
    for id in &ids {
        hub.create_sip(id, server.addr, "both").await?;
    }
    for id in &ids {
        hub.wait_up(id, Duration::from_secs(30)).await?;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (rss0, mem0) = (
        hub.rss() as f64,
        hub.metric("presence_hub_connector_memory_bytes").await?,
    );

    let established =
        |s: &SipServer| s.established(Package::Presence) + s.established(Package::Dialog);
    let t = Instant::now();
    hub.import_users(n, &ids).await?;
    let import = t.elapsed().as_secs_f64();
    if !wait_until(p.limit, || established(&server) >= 2 * n).await {
        anyhow::bail!(
            "{} of {} subscriptions established within {:?} (import took {:.1} s); the hub's endpoint states: {}",
            established(&server),
            2 * n,
            p.limit,
            import,
            endpoint_states(&hub, &ids).await
        );
    }
    let subscribe_live = t.elapsed().as_secs_f64() - import;
    // Settle, then measure; idle CPU over the settling period.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let c0 = hub.cpu_seconds();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let idle_cpu = (hub.cpu_seconds() - c0) / 4.0;
    let (rss, mem) = (
        hub.rss() as f64,
        hub.metric("presence_hub_connector_memory_bytes").await?,
    );
    let peak = hub.hwm() as f64;

    // Start again on the same data: everything is subscribed anew.
    let acked0 = server.stats.initial_acked.load(Ordering::Relaxed);
    let t = Instant::now();
    hub.restart();
    let back = wait_until(p.limit, || {
        server.stats.initial_acked.load(Ordering::Relaxed) - acked0 >= 2 * n as u64
    })
    .await;
    let subscribe_start = back.then(|| t.elapsed().as_secs_f64());
    Ok(Figures {
        users: n,
        per_user: (rss - rss0) / n as f64,
        plugin_per_user: (mem - mem0) / n as f64,
        import,
        subscribe_live,
        subscribe_start,
        idle_cpu,
        rss,
        peak,
    })
}

/// How many endpoints of these instances are in each state (with the
/// detail), for a failure message.
async fn endpoint_states(hub: &BenchHub, ids: &[String]) -> String {
    let mut counts: std::collections::BTreeMap<String, usize> = Default::default();
    for id in ids {
        let Ok(v) = hub
            .ok("GET", &format!("/api/v1/connectors/{id}/endpoints"), None)
            .await
        else {
            continue;
        };
        if let Some(eps) = v["endpoints"].as_object() {
            for e in eps.values() {
                let key = format!(
                    "{} ({})",
                    e["state"].as_str().unwrap_or("none"),
                    e["state_detail"].as_str().unwrap_or("")
                );
                *counts.entry(key).or_default() += 1;
            }
        }
    }
    counts
        .iter()
        .map(|(k, v)| format!("{v} {k}"))
        .collect::<Vec<_>>()
        .join(", ")
}
