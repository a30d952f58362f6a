//! Benchmark 3: scale. For each user count, a fresh hub with `instances`
//! sip-simple instances on the benchmark's SIP server; the users are
//! imported (user i watched by instance i mod instances, presence and
//! dialog), and the hub subscribes them all. Memory per watched user is
//! (RSS with N users − RSS with none) / N, split into the plugins' linear
//! memory (`presence_hub_connector_memory_bytes`) and the rest (host). Then
//! the hub is killed and started again on the same data: the time until
//! every subscription is established anew is the time to subscribe all at
//! start. When the subscriptions do not all come up after the live import
//! within the limit, the memory is taken after the restart (if they all
//! came up then), else with what came up, and the row says which. The growth from the
//! size below the target size to the target size is shown as what each
//! added user adds to the hub's RSS.
//!
//! `run_hog` runs the target size again with a CPU hog (a child process
//! spinning on one core) beside the hub, from the import to the end of the
//! restart, and prints how many subscriptions came up beside the quiet
//! figures.

use std::time::{Duration, Instant};

use crate::heap;
use crate::hog::Hog;
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
#[derive(Debug, Clone)]
pub struct Figures {
    users: usize,
    per_user: f64,
    plugin_per_user: f64,
    /// Hub RSS before the import.
    rss0: f64,
    import: f64,
    /// Subscriptions established after the live import within the limit,
    /// and when the last came up (None: not all within the limit).
    up_live: usize,
    subscribe_live: Option<f64>,
    /// The hub's endpoint states when not all came up.
    states_live: Option<String>,
    /// The same after the hub was killed and started on the same data.
    up_start: usize,
    subscribe_start: Option<f64>,
    idle_cpu: f64,
    /// RSS of the hub with the users, and its peak (VmHWM).
    rss: f64,
    peak: f64,
    /// When the memory was taken: after the live import, or (when not
    /// all subscriptions came up then) after the restart, when they did.
    memory_at: MemoryAt,
    /// Instance restarts and errors counted by the hub during the live
    /// import and its subscriptions.
    restarts: f64,
    errors: f64,
    /// With a CPU hog: the share of a core it took.
    hog: Option<f64>,
}

/// When the memory of a size was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MemoryAt {
    /// After the live import, every subscription up.
    Import,
    /// After the restart, every subscription up (they were not all up
    /// after the live import).
    Start,
    /// After the live import with only some subscriptions up (nor did
    /// they all come up after the restart).
    Partial,
}

impl Figures {
    pub fn users(&self) -> usize {
        self.users
    }

    /// Subscriptions wanted: presence and dialog for each user.
    fn wanted(&self) -> usize {
        2 * self.users
    }

    /// "200,000 of 200,000 in 12.3 s" or "151,632 of 200,000 within 180 s".
    fn came_up(up: usize, wanted: usize, secs: Option<f64>, limit: Duration) -> String {
        match secs {
            Some(s) => format!(
                "{} of {} in {}",
                report::count(up as f64),
                report::count(wanted as f64),
                report::secs(s)
            ),
            None => format!(
                "{} of {} within {:.0} s",
                report::count(up.min(wanted) as f64),
                report::count(wanted as f64),
                limit.as_secs_f64()
            ),
        }
    }
}

/// Run benchmark 3; returns each size's figures (for the hog comparison).
pub async fn run(r: &mut Report, p: &Params) -> anyhow::Result<Vec<Figures>> {
    let mut all = Vec::new();
    for &n in &p.sizes {
        match one(p, n, false).await {
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
                "{} (host {} + plugins' linear memory {}){}",
                report::bytes(f.per_user),
                report::bytes(host),
                report::bytes(f.plugin_per_user),
                match f.memory_at {
                    MemoryAt::Import => String::new(),
                    MemoryAt::Start => format!(
                        ", taken after the hub's restart (after the live import only {} of {} subscriptions were up within the limit)",
                        report::count(f.up_live as f64),
                        report::count(f.wanted() as f64)
                    ),
                    MemoryAt::Partial => format!(
                        ", with only {} of {} subscriptions up",
                        report::count(f.up_live as f64),
                        report::count(f.wanted() as f64)
                    ),
                }
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
    // The growth from the second largest size to the largest (10k to
    // 100k in a full run): what each added user adds to the hub.
    if let [.., s, f] = all.as_slice() {
        let added = f.users.saturating_sub(s.users).max(1) as f64;
        let grow = |f: &Figures| (f.rss - f.rss0, f.plugin_per_user * f.users as f64);
        let ((total_f, plug_f), (total_s, plug_s)) = (grow(f), grow(s));
        let marginal = (total_f - total_s) / added;
        let marginal_plugin = (plug_f - plug_s) / added;
        let mut row = Row::info(
            "3",
            format!(
                "Memory growth from {} to {} users: hub RSS added per added watched user",
                report::count(s.users as f64),
                report::count(f.users as f64)
            ),
            format!(
                "{} (host {} + plugins' linear memory {})",
                report::bytes(marginal),
                report::bytes(marginal - marginal_plugin),
                report::bytes(marginal_plugin)
            ),
        )
        .baseline(
            format!(
                "per watched user at {}: {}; the hub's growth with the users: {} at {} → {} at {} ({:.1}× for {:.0}× the users)",
                report::count(s.users as f64),
                report::bytes(s.per_user),
                report::bytes(total_s),
                report::count(s.users as f64),
                report::bytes(total_f),
                report::count(f.users as f64),
                total_f / total_s,
                f.users as f64 / s.users as f64
            ),
            Some(marginal / s.per_user),
        );
        if f.users == p.target_size {
            row = row.target("≤ 2 KiB", marginal <= 2048.0);
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
        let all_up = f.subscribe_live.is_some() && f.subscribe_start.is_some();
        r.push(
            Row::info(
                "3",
                format!(
                    "Time to subscribe all {} users (2 dialogs each) at hub start",
                    report::count(f.users as f64)
                ),
                match f.subscribe_start {
                    Some(s) => report::secs(s),
                    None => format!(
                        "not within the limit: {}",
                        Figures::came_up(f.up_start, f.wanted(), None, p.limit)
                    ),
                },
            )
            .baseline(
                format!(
                    "after a live import: import {} + subscribe {}; idle hub CPU {:.1}% of a core",
                    report::secs(f.import),
                    match f.subscribe_live {
                        Some(s) => report::secs(s),
                        None => format!(
                            "not within the limit: {}",
                            Figures::came_up(f.up_live, f.wanted(), None, p.limit)
                        ),
                    },
                    f.idle_cpu * 100.0
                ),
                None,
            )
            .target(format!("all within {:.0} s", p.limit.as_secs_f64()), all_up),
        );
        if let Some(states) = &f.states_live {
            r.note(format!(
                "scale at {} users: not all subscriptions up after the live import; the hub's endpoint states: {states}; instance restarts {} and errors {} counted meanwhile",
                report::count(f.users as f64),
                f.restarts,
                f.errors
            ));
        } else if f.restarts + f.errors > 0.0 {
            r.note(format!(
                "scale at {} users: {} instance restarts and {} errors during the import and its subscriptions",
                report::count(f.users as f64),
                f.restarts,
                f.errors
            ));
        }
    }
    Ok(all)
}

/// Benchmark 3 with a CPU hog: `n` users (the target size) once quiet
/// (or the figures `quiet` of this run's scale benchmark) and once with a
/// child process spinning on one core beside the hub, from the import to
/// the end of the restart.
pub async fn run_hog(
    r: &mut Report,
    p: &Params,
    n: usize,
    quiet: Option<Figures>,
) -> anyhow::Result<()> {
    let quiet = match quiet {
        Some(q) => q,
        None => one(p, n, false).await?,
    };
    let hog = one(p, n, true).await?;
    let cores = std::thread::available_parallelism()
        .map(|c| c.get())
        .unwrap_or(1);
    let rows = [
        (
            "after a live import",
            (hog.up_live, hog.subscribe_live),
            (quiet.up_live, quiet.subscribe_live),
        ),
        (
            "at hub start (killed and started on the same data)",
            (hog.up_start, hog.subscribe_start),
            (quiet.up_start, quiet.subscribe_start),
        ),
    ];
    for (when, (up, secs), (q_up, q_secs)) in rows {
        r.push(
            Row::info(
                "3",
                format!(
                    "Subscriptions of {} users (presence + dialog, {} instances) up {when}, CPU hog on one of the {cores} cores beside the hub",
                    report::count(n as f64),
                    p.instances
                ),
                Figures::came_up(up, hog.wanted(), secs, p.limit),
            )
            .baseline(
                format!(
                    "quiet, same run: {}",
                    Figures::came_up(q_up, quiet.wanted(), q_secs, p.limit)
                ),
                secs.zip(q_secs).map(|(h, q)| h / q),
            )
            .target(
                format!(
                    "all {} within {:.0} s",
                    report::count(hog.wanted() as f64),
                    p.limit.as_secs_f64()
                ),
                secs.is_some(),
            ),
        );
    }
    r.note(format!(
        "scale with the CPU hog at {} users: hog {:.0}% of one core; import {} (quiet {}); memory per watched user {} (quiet {}); idle hub CPU {:.1}% of a core{}",
        report::count(n as f64),
        100.0 * hog.hog.unwrap_or(0.0),
        report::secs(hog.import),
        report::secs(quiet.import),
        report::bytes(hog.per_user),
        report::bytes(quiet.per_user),
        hog.idle_cpu * 100.0,
        hog.states_live
            .as_deref()
            .map(|s| format!("; the hub's endpoint states when the live import's limit passed: {s}"))
            .unwrap_or_default()
    ));
    Ok(())
}

async fn one(p: &Params, n: usize, with_hog: bool) -> anyhow::Result<Figures> {
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
    // The hog spins from the import to the end of the restart; it stops
    // by itself after the longest this can take.
    let hog = if with_hog {
        Some(Hog::start(2 * p.limit + Duration::from_secs(120))?)
    } else {
        None
    };

    let (restarts0, errors0) = (
        hub.metric("presence_hub_connector_restarts_total").await?,
        hub.metric("presence_hub_connector_errors_total").await?,
    );
    let established =
        |s: &SipServer| s.established(Package::Presence) + s.established(Package::Dialog);
    let t = Instant::now();
    hub.import_users(n, &ids).await?;
    let import = t.elapsed().as_secs_f64();
    let all_up = wait_until(p.limit, || established(&server) >= 2 * n).await;
    let subscribe_live = all_up.then(|| t.elapsed().as_secs_f64() - import);
    let up_live = established(&server);
    let (restarts, errors) = (
        hub.metric("presence_hub_connector_restarts_total").await? - restarts0,
        hub.metric("presence_hub_connector_errors_total").await? - errors0,
    );
    let states_live = if all_up {
        None
    } else {
        Some(endpoint_states(&hub, &ids).await)
    };
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

    // Start again on the same data: everything is subscribed anew (each
    // user and package counted once, in a dialog made after the restart).
    let mark = server.dialogs_created();
    let anew = |s: &SipServer| {
        s.established_after(Package::Presence, mark) + s.established_after(Package::Dialog, mark)
    };
    let t = Instant::now();
    hub.restart();
    let back = wait_until(p.limit, || anew(&server) >= 2 * n).await;
    let subscribe_start = back.then(|| t.elapsed().as_secs_f64());
    let up_start = anew(&server);
    // Memory with every user watched: after the live import if all came
    // up then, else after the restart if all came up then (against the
    // same empty hub's RSS: same binary, plugins and instances).
    let (memory_at, rss, mem, peak) = if all_up {
        (MemoryAt::Import, rss, mem, peak)
    } else if back {
        tokio::time::sleep(Duration::from_secs(2)).await;
        (
            MemoryAt::Start,
            hub.rss() as f64,
            hub.metric("presence_hub_connector_memory_bytes").await?,
            hub.hwm() as f64,
        )
    } else {
        (MemoryAt::Partial, rss, mem, peak)
    };
    let hog = hog.map(Hog::stop);
    Ok(Figures {
        users: n,
        per_user: (rss - rss0) / n as f64,
        plugin_per_user: (mem - mem0) / n as f64,
        rss0,
        import,
        up_live,
        subscribe_live,
        states_live,
        up_start,
        subscribe_start,
        idle_cpu,
        rss,
        peak,
        memory_at,
        restarts,
        errors,
        hog,
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
