//! Benchmark 2: latency from a NOTIFY leaving the presence server (the
//! benchmark, on loopback) to the change arriving at a live-feed client,
//! at a fixed offered load with many clients connected.
//!
//! Every user is followed by one SSE client and one WebSocket client
//! (each client follows `per_client` users, half the clients on each
//! transport), so each update reaches two clients. Each PIDF carries a
//! unique note; the client looks up when that note was sent.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::feed::{self, FeedSink, percentile};
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
}

/// Run benchmark 2.
pub async fn run(r: &mut Report, p: &Params) -> anyhow::Result<()> {
    let server = Arc::new(SipServer::start()?);
    let hub = BenchHub::start(&["plugins/sip-simple"], &[]);
    hub.create_sip("sip-0", server.addr, "presence").await?;
    hub.wait_up("sip-0", Duration::from_secs(30)).await?;
    hub.import_users(p.users, &["sip-0".to_string()]).await?;
    anyhow::ensure!(
        wait_until(Duration::from_secs(90), || server
            .established(Package::Presence)
            >= p.users)
        .await,
        "only {} of {} users subscribed within 90 s",
        server.established(Package::Presence),
        p.users
    );

    // Notes of the warm-up second and the measurement, with room to spare.
    let top = p.rates.iter().cloned().fold(0.0, f64::max);
    let total = (p.rates.iter().sum::<f64>() * p.secs + top) as usize * 12 / 10 + 10;
    let stamps = Arc::new(Stamps::new(Instant::now(), total + 1));
    let sse_sink = FeedSink::new(false, Some(stamps.clone()));
    let ws_sink = FeedSink::new(false, Some(stamps.clone()));
    let (stop_tx, stop_rx) = watch::channel(false);
    let half = p.clients / 2;
    let per_client = p.users.div_ceil(half.max(1));
    let mut tasks = Vec::new();
    for c in 0..half {
        let users: Vec<String> = (c * per_client..((c + 1) * per_client).min(p.users))
            .map(|i| format!("u{i}"))
            .collect();
        let follow = Some(users.join(","));
        tasks.push(tokio::spawn(feed::sse(
            hub.addr(),
            TOKEN.into(),
            follow.clone(),
            sse_sink.clone(),
            stop_rx.clone(),
        )));
        tasks.push(tokio::spawn(feed::ws(
            hub.addr(),
            TOKEN.into(),
            follow,
            ws_sink.clone(),
            stop_rx.clone(),
        )));
        if c % 50 == 49 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let connected = wait_until(Duration::from_secs(30), || {
        sse_sink.ready.load(Ordering::Relaxed) + ws_sink.ready.load(Ordering::Relaxed)
            >= (2 * half) as u64
    })
    .await;
    anyhow::ensure!(
        connected,
        "only {} SSE and {} WebSocket clients connected; ended: {:?} {:?}",
        sse_sink.ready.load(Ordering::Relaxed),
        ws_sink.ready.load(Ordering::Relaxed),
        sse_sink.ended.lock().unwrap().first(),
        ws_sink.ended.lock().unwrap().first()
    );

    // Warm up for a second (latencies discarded), then measure at each
    // offered rate: the target's first, then lighter loads for comparison.
    let stream = Arc::new(std::sync::Mutex::new(Stream::new(p.users, 1)));
    let offer = |secs: f64, rate: f64| {
        let (server, stamps, stream) = (server.clone(), stamps.clone(), stream.clone());
        tokio::task::spawn_blocking(move || {
            let mut st = stream.lock().unwrap();
            open_loop(&server, secs, rate, Some(&stamps), || st.next_presence())
        })
    };
    let (warm, _) = offer(1.0, top).await?;
    wait_until(Duration::from_secs(5), || {
        sse_sink.events.load(Ordering::Relaxed) >= warm
            && ws_sink.events.load(Ordering::Relaxed) >= warm
    })
    .await;
    // The first rate's p99 per transport: the baseline of the target rows.
    let mut base: Vec<(f64, f64)> = Vec::new();
    for (i, &rate) in p.rates.iter().enumerate() {
        sse_sink.take_latencies();
        ws_sink.take_latencies();
        let (e0, w0, acked0) = (
            sse_sink.events.load(Ordering::Relaxed),
            ws_sink.events.load(Ordering::Relaxed),
            server.stats.updates_acked.load(Ordering::Relaxed),
        );
        let (cpu0, own0) = (hub.cpu_seconds(), procfs::own_cpu_seconds());
        let (sent, secs) = offer(p.secs, rate).await?;
        let (cpu, own) = (hub.cpu_seconds() - cpu0, procfs::own_cpu_seconds() - own0);
        wait_until(Duration::from_secs(5), || {
            sse_sink.events.load(Ordering::Relaxed) - e0 >= sent
                && ws_sink.events.load(Ordering::Relaxed) - w0 >= sent
        })
        .await;
        let acked = server.stats.updates_acked.load(Ordering::Relaxed) - acked0;
        for (t, (name, sink)) in [("SSE", &sse_sink), ("WebSocket", &ws_sink)]
            .into_iter()
            .enumerate()
        {
            let mut lat = sink.take_latencies();
            let got = lat.len();
            lat.sort_unstable();
            let (p50, p99, p999) = (
                percentile(&lat, 50.0) / 1e6,
                percentile(&lat, 99.0) / 1e6,
                percentile(&lat, 99.9) / 1e6,
            );
            let ended = sink.ended.lock().unwrap().len();
            let mut row = Row::info(
                "2",
                format!(
                    "Latency NOTIFY → {name} client, {} updates/s offered, {} clients connected ({} per transport, {} users each)",
                    report::count(sent as f64 / secs),
                    2 * half,
                    half,
                    per_client
                ),
                format!(
                    "p50 {} · p99 {} · p99.9 {}",
                    report::secs(p50),
                    report::secs(p99),
                    report::secs(p999)
                ),
            )
            .baseline(
                format!(
                    "{}{} of {sent} updates delivered, {ended} clients cut off",
                    match base.get(t) {
                        Some((rate, p99)) if i > 0 => format!(
                            "at {}/s: p99 {}; ",
                            report::count(*rate),
                            report::secs(*p99)
                        ),
                        _ => String::new(),
                    },
                    report::count(got as f64)
                ),
                base.get(t).filter(|_| i > 0).map(|(_, b)| p99 / b),
            );
            if i == 0 {
                base.push((rate, p99));
            }
            if i == p.rates.len() - 1 {
                row = row.target(
                    "p99 < 5 ms",
                    p99 < 0.005 && ended == 0 && got as u64 >= sent,
                );
            }
            r.push(row);
        }
        r.note(format!(
            "latency at {}/s: {sent} NOTIFYs sent in {secs:.1} s, {acked} answered; hub CPU {:.0}% of one core, benchmark process (server, sender, {} clients) {:.0}%",
            report::count(rate),
            100.0 * cpu / secs,
            2 * half,
            100.0 * own / secs
        ));
    }
    let _ = stop_tx.send(true);
    for t in tasks {
        let _ = t.await;
    }
    Ok(())
}
