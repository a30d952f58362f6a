//! Benchmark 4: plugin lifecycle. Cold load of the sip-simple component by
//! the hub binary without and with the compiled-component cache (the hub's
//! own `load_ms`: compile or deserialize, link, instantiate and call
//! `describe`); an instance start (new store, instantiate, `configure`)
//! in-process; restart after a trap (the chaos test plugin's endless loop
//! hits its CPU deadline); and a hot reload of sip-simple while NOTIFYs
//! flow, counting updates lost.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use presence_hub::runtime::Services;
use presence_hub::store::SqliteStore;
use presence_hub::telemetry::Metrics;
use serde_json::Value;
use tokio::sync::watch;

use crate::feed::{self, FeedSink};
use crate::hubctl::{BenchHub, TOKEN};
use crate::ingest::{Stream, open_loop, wait_until};
use crate::overhead::tempfile_dir;
use crate::probe::Probe;
use crate::report::{self, Report, Row};
use crate::sip::Package;
use crate::sipserver::{self, SipServer};

/// Sizes of the run.
pub struct Params {
    pub load_samples: usize,
    pub restart_samples: usize,
    pub reload_users: usize,
    pub reload_rate: f64,
    pub reload_secs: f64,
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        f64::NAN
    } else {
        v[v.len() / 2]
    }
}

/// The hub's report of how it loaded `id`: (load_ms, compile source).
async fn load_of(hub: &BenchHub, id: &str) -> anyhow::Result<(f64, String)> {
    let v = hub
        .ok("GET", &format!("/api/v1/plugins/{id}"), None)
        .await?;
    Ok((
        v["load_ms"].as_f64().context("load_ms")?,
        v["compile_source"].as_str().unwrap_or("?").to_string(),
    ))
}

/// Run benchmark 4.
pub async fn run(r: &mut Report, p: &Params, root: &std::path::Path) -> anyhow::Result<()> {
    let mut hub = BenchHub::start(
        &["plugins/sip-simple", "test-plugins/chaos"],
        &[
            ("HUB_RESTART_BACKOFF_MIN_MS", "1"),
            ("HUB_RESTART_BACKOFF_MAX_MS", "1"),
            ("HUB_QUARANTINE_AFTER", "1000"),
        ],
    );
    let size = std::fs::metadata(root.join("dist/plugins/sip-simple/sip-simple.wasm"))?.len();

    // Load without the cache (first start, then with the cache emptied),
    // and with it.
    let cache = hub.hub.dir.path().join("data/cache");
    let mut cold = Vec::new();
    let mut warm = Vec::new();
    for i in 0..p.load_samples {
        if i > 0 {
            for e in std::fs::read_dir(&cache)?.flatten() {
                std::fs::remove_file(e.path())?;
            }
            hub.restart();
        }
        let (ms, src) = load_of(&hub, "sip-simple").await?;
        if src != "compiled" {
            bail!("expected a compilation, the hub says {src}");
        }
        cold.push(ms / 1e3);
        hub.restart();
        let (ms, src) = load_of(&hub, "sip-simple").await?;
        if src != "cache" {
            bail!("expected the compiled-component cache, the hub says {src}");
        }
        warm.push(ms / 1e3);
    }
    let (cold, warm) = (median(&mut cold), median(&mut warm));
    r.push(
        Row::info(
            "4",
            format!(
                "Load of sip-simple ({}) from the precompiled cache (the hub's load_ms: deserialize, link, instantiate, describe)",
                report::bytes(size as f64)
            ),
            report::secs(warm),
        )
        .baseline(format!("without the cache (Cranelift compile): {}", report::secs(cold)), Some(warm / cold))
        .target("< 5 ms", warm < 0.005),
    );

    // Instance start, in-process.
    let mut inst = Vec::new();
    let mut conf = Vec::new();
    let scratch = tempfile_dir("lifecycle")?;
    let folder = root.join("dist/plugins/sip-simple");
    let manifest = std::fs::read_to_string(folder.join("plugin.toml"))?;
    let component = std::fs::read(folder.join("sip-simple.wasm"))?;
    let server = Arc::new(SipServer::start()?);
    for _ in 0..p.load_samples + 1 {
        let services = Services {
            store: Arc::new(SqliteStore::open(&scratch.join("data"))?),
            metrics: Arc::new(Metrics::default()),
            presence: presence_hub::presence::Inbox::detached(),
            writes: Arc::default(),
        };
        let Value::Object(config) = serde_json::json!({
            "server": server.addr.to_string(),
            "uri": format!("hub@{}", sipserver::DOMAIN),
        }) else {
            unreachable!()
        };
        let (probe, t) = Probe::start(
            &manifest,
            &component,
            config,
            services,
            scratch.join("cache"),
        )
        .await?;
        drop(probe);
        inst.push(t.instantiate.as_secs_f64());
        conf.push(t.configure.as_secs_f64());
    }
    // The first compiled the component; keep the others.
    inst.remove(0);
    conf.remove(0);
    let (inst, conf) = (median(&mut inst), median(&mut conf));
    r.push(
        Row::info(
            "4",
            "Instance start of sip-simple (new store + instantiate, then configure: binds UDP, sends OPTIONS)",
            report::secs(inst + conf),
        )
        .baseline(
            format!("instantiate {} + configure {}", report::secs(inst), report::secs(conf)),
            None,
        ),
    );
    let _ = std::fs::remove_dir_all(&scratch);

    // Restart after a trap.
    hub.ok(
        "POST",
        "/api/v1/connectors",
        Some(serde_json::json!({"id": "chaos-0", "plugin": "chaos"})),
    )
    .await?;
    hub.wait_up("chaos-0", Duration::from_secs(10)).await?;
    let http = hub.hub.http.clone();
    let hook = |path: &str| hub.hub.url(&format!("/hooks/chaos-0/{path}"));
    let mut restarts = Vec::new();
    for _ in 0..p.restart_samples {
        let resp = http.post(hook("loop")).send().await?;
        let trapped = Instant::now();
        if resp.status().as_u16() != 500 {
            bail!("the endless loop answered {}", resp.status());
        }
        loop {
            let s = http.get(hook("ping")).send().await?.status().as_u16();
            if s == 200 {
                break;
            }
            if trapped.elapsed() > Duration::from_secs(10) {
                bail!("chaos-0 did not come back within 10 s");
            }
        }
        restarts.push(trapped.elapsed().as_secs_f64());
    }
    let worst = restarts.iter().cloned().fold(0.0, f64::max);
    let restart = median(&mut restarts);
    r.push(
        Row::info(
            "4",
            "Restart after a trap (CPU deadline), until the instance answers again; restart backoff set to 1 ms",
            report::secs(restart),
        )
        .baseline(
            format!(
                "an instance start (above): {}; worst restart of {}: {}",
                report::secs(inst + conf),
                p.restart_samples,
                report::secs(worst)
            ),
            Some(restart / (inst + conf)),
        )
        .target("< 50 ms", restart < 0.050),
    );
    r.note("lifecycle: the hub's default restart backoff (restart_backoff_min_ms = 100) adds 100 ms to the first restart after a crash, doubling with each crash in the window; the figure above is the restart itself");
    drop(hub);

    reload(r, p).await
}

/// Hot reload of sip-simple while updates flow.
async fn reload(r: &mut Report, p: &Params) -> anyhow::Result<()> {
    let server = Arc::new(SipServer::start()?);
    let hub = BenchHub::start(&["plugins/sip-simple"], &[]);
    hub.create_sip("sip-0", server.addr, "both").await?;
    hub.wait_up("sip-0", Duration::from_secs(30)).await?;
    hub.import_users(p.reload_users, &["sip-0".to_string()])
        .await?;
    let users = p.reload_users;
    anyhow::ensure!(
        wait_until(Duration::from_secs(60), || {
            server.established(Package::Presence) >= users
                && server.established(Package::Dialog) >= users
        })
        .await,
        "users not subscribed"
    );
    let sink = FeedSink::new(true, None);
    let (stop_tx, stop_rx) = watch::channel(false);
    let client = tokio::spawn(feed::sse(
        hub.addr(),
        TOKEN.into(),
        None,
        sink.clone(),
        stop_rx,
    ));
    wait_until(Duration::from_secs(10), || {
        sink.ready.load(Ordering::Relaxed) == 1
    })
    .await;

    let dialogs0 = server.stats.dialogs.load(Ordering::Relaxed);
    let blast = {
        let (server, rate, secs) = (server.clone(), p.reload_rate, p.reload_secs);
        tokio::task::spawn_blocking(move || {
            let mut st = Stream::new(users, 1);
            open_loop(&server, secs, rate, None, || st.next_mixed())
        })
    };
    // Reload late: every user then gets fewer updates in the new dialogs
    // than it got in the old ones, so a state the new dialogs do not
    // deliver stays visible.
    tokio::time::sleep(Duration::from_secs_f64(p.reload_secs * 0.6)).await;
    let t = Instant::now();
    hub.ok("POST", "/api/v1/plugins/sip-simple/reload", None)
        .await?;
    let reload_call = t.elapsed().as_secs_f64();
    let back = wait_until(Duration::from_secs(30), || {
        server.stats.dialogs.load(Ordering::Relaxed) - dialogs0 >= 2 * users as u64
            && server.established(Package::Presence) >= users
            && server.established(Package::Dialog) >= users
    })
    .await;
    let resubscribed = t.elapsed().as_secs_f64();
    let (sent, _) = blast.await?;
    wait_until(Duration::from_secs(5), || server.outstanding() == 0).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let truth = server.truth();
    let seen = sink.last();
    let (mut notes, mut lines) = (0, 0);
    let stale = (0..users)
        .filter(|u| {
            let t = truth.get(*u).copied().unwrap_or_default();
            let s = seen.get(u).copied().unwrap_or_default();
            notes += usize::from(s.note != t.note);
            lines += usize::from(s.busy.unwrap_or(false) != t.in_call);
            s.note != t.note || s.busy.unwrap_or(false) != t.in_call
        })
        .count();
    let s = &server.stats;
    let _ = stop_tx.send(true);
    let _ = client.await;
    r.push(
        Row::info(
            "4",
            format!(
                "Hot reload of sip-simple under load ({} updates/s to {} users): users whose final presence misses an update",
                report::count(p.reload_rate),
                users
            ),
            format!("{stale} lost ({notes} rich, {lines} telephony)"),
        )
        .baseline(
            format!(
                "{sent} updates offered; {} NOTIFYs refused with 481 and {} sent to no dialog during the reload, their state re-sent in the new dialogs; reload call {}, all {} dialogs back after {}",
                s.rejected.load(Ordering::Relaxed),
                s.no_dialog.load(Ordering::Relaxed),
                report::secs(reload_call),
                2 * users,
                if back { report::secs(resubscribed) } else { "never (30 s)".into() }
            ),
            None,
        )
        .target("0 lost", stale == 0 && back),
    );
    Ok(())
}
