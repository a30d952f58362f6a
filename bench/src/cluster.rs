//! Benchmark `cluster` (issue 21, named only): three hub nodes on one
//! PostgreSQL database beside one node, measured in the same run.
//!
//! A throw-away PostgreSQL (the end-to-end kit's [`Postgres`]) holds one
//! database per deployment. Each deployment gets the same users (CSV import,
//! user `u<i>` with extension `1000000 + i`) and the same `http-push`
//! instances (which key users by extension); benchmark pushers post signed
//! `{"updates": [...]}` batches to `POST /hooks/{instance}/presence` on the
//! node that runs the instance, each update a new rich note `b<n>`, and an
//! SSE client follows the whole feed:
//!
//! - one node on SQLite, then one on PostgreSQL (the baselines): the closed
//!   loop's accepted changes/s and the changes/s reaching the feed client on
//!   that node, then push → feed latency over single changes at a moderate
//!   rate;
//! - three nodes: the same with the feed client on a node that runs none of
//!   the instances pushed to (cross-node propagation through the database),
//!   VmRSS of each node after the import and after the ingest, and the
//!   takeover time: SIGKILL of the node running `push-0` until a surviving
//!   node's `GET /api/v1/connectors/{id}` shows each of its instances with
//!   `node` = itself and a `status`.
//!
//! Every loop is bounded in count and time; everything is on 127.0.0.1.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use hub_e2e::postgres::{self, Postgres};
use hub_e2e::{sign, unix_now};
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::feed::{self, FeedSink, percentile};
use crate::hubctl::{BenchHub, TOKEN};
use crate::procfs;
use crate::report::{self, Report, Row};
use crate::sipserver::Stamps;

/// The table's section for these rows.
const SECTION: &str = "7";
/// Every instance's `shared_secret` (HMAC-SHA256 of the pushes).
const SECRET: &str = "bench-cluster-secret-32-bytes-ok";
/// User `u<i>` has extension `EXT_BASE + i`.
const EXT_BASE: usize = 1_000_000;
/// Notes of the ingest phases start here, so they never equal a latency
/// phase's notes (`b0` .. `b<changes>`): each push changes the presence.
const INGEST_NOTE_BASE: u64 = 10_000_000;
/// Longest a pusher waits for its last change to reach the feed.
const STALL: Duration = Duration::from_secs(5);
/// Node ids of the three-node deployment.
const NODES: [&str; 3] = ["node-a", "node-b", "node-c"];

/// Sizes of the benchmark.
#[derive(Debug, Clone)]
pub struct Params {
    /// Users imported into every deployment.
    pub users: usize,
    /// `http-push` instances (`push-0` ..).
    pub instances: usize,
    /// Concurrent pushers of the closed loop.
    pub pushers: usize,
    /// Updates per pushed request (http-push takes up to 1,000).
    pub batch: usize,
    /// How long the closed loop pushes.
    pub ingest_secs: f64,
    /// Single changes of the latency phase.
    pub latency_changes: usize,
    /// Their rate (changes/s).
    pub latency_rate: f64,
    /// Longest wait for any one step (import, placement, the feed to catch up).
    pub step_limit: Duration,
}

/// Each update's `sequence`, increasing for every endpoint (one pusher
/// per user at a time).
static SEQUENCE: AtomicU64 = AtomicU64::new(1);

fn ext(user: usize) -> String {
    (EXT_BASE + user).to_string()
}

/// Start a hub with the `http-push` plugin; on PostgreSQL when `db` is
/// given (`(url, node id, shared secret.key)`).
fn start(db: Option<(&str, &str, &[u8; 32])>) -> BenchHub {
    // Profiling aid: HUB_BENCH_CLUSTER_LOG=info (a HUB_LOG filter) for the
    // nodes, whose logs HUB_BENCH_CLUSTER_KEEP=<dir> keeps.
    let log = std::env::var("HUB_BENCH_CLUSTER_LOG").unwrap_or_else(|_| "warn".into());
    let mut env: Vec<(&str, &str)> = vec![
        ("HUB_LOG", log.as_str()),
        ("HUB_MAX_CONNECTIONS", "25000"),
        ("HUB_MAX_FEEDS", "25000"),
        ("HUB_MAX_FEEDS_PER_TOKEN", "25000"),
    ];
    let key = db.map(|(url, node, key)| {
        env.push(("HUB_DATABASE_URL", url));
        env.push(("HUB_NODE_ID", node));
        *key
    });
    let hub = tokio::task::block_in_place(|| {
        hub_e2e::Hub::start_prepared(&["plugins/http-push"], &env, |data| {
            if let Some(k) = key {
                std::fs::write(data.join("secret.key"), k).expect("write secret.key");
            }
        })
    });
    BenchHub { hub }
}

/// Create the instances `push-0` .. on `hub`.
async fn create_instances(hub: &BenchHub, n: usize) -> anyhow::Result<Vec<String>> {
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        let id = format!("push-{i}");
        hub.ok(
            "POST",
            "/api/v1/connectors",
            Some(json!({"id": id, "plugin": "http-push", "config": {"shared_secret": SECRET}})),
        )
        .await?;
        ids.push(id);
    }
    Ok(ids)
}

/// Import users `0..n` as CSV (`username,display_name,extension`) in
/// chunks; seconds taken.
async fn import_csv(hub: &BenchHub, n: usize) -> anyhow::Result<f64> {
    const CHUNK: usize = 10_000;
    let t = Instant::now();
    let auth = format!("Bearer {TOKEN}");
    for start in (0..n).step_by(CHUNK) {
        let mut csv = String::from("username,display_name,extension\n");
        for i in start..(start + CHUNK).min(n) {
            csv.push_str(&format!("u{i},Bench User {i},{}\n", ext(i)));
        }
        let (status, _, body) = hub
            .hub
            .send(
                "POST",
                "/api/v1/users/import",
                &[("authorization", &auth)],
                Some("text/csv"),
                csv.into_bytes(),
            )
            .await;
        if !(200..300).contains(&status) {
            let text = String::from_utf8_lossy(&body);
            bail!(
                "import of users {start}..: {status} {}",
                &text[..text.len().min(400)]
            );
        }
    }
    Ok(t.elapsed().as_secs_f64())
}

/// Wait until `hub` knows user `u<n-1>` (an import made on another node).
async fn wait_user(hub: &BenchHub, n: usize, limit: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + limit;
    let path = format!("/api/v1/presence/u{}", n - 1);
    loop {
        let (s, _) = hub.hub.call("GET", &path, None).await;
        if s == 200 {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{path} answered {s} for {limit:?}: the import did not reach this node");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Instance → index of the node running it, once the node named by the
/// first node shows the instance as its own with a status.
async fn placement(
    nodes: &[(&str, &BenchHub)],
    ids: &[String],
    limit: Duration,
) -> anyhow::Result<BTreeMap<String, usize>> {
    let deadline = Instant::now() + limit;
    let mut out = BTreeMap::new();
    for id in ids {
        loop {
            let path = format!("/api/v1/connectors/{id}");
            let v = nodes[0].1.ok("GET", &path, None).await?;
            if let Some(i) = v["node"]
                .as_str()
                .and_then(|n| nodes.iter().position(|(name, _)| *name == n))
            {
                let own = nodes[i].1.ok("GET", &path, None).await?;
                if own["node"] == nodes[i].0 && own["status"].is_object() {
                    out.insert(id.clone(), i);
                    break;
                }
            }
            if Instant::now() > deadline {
                bail!("{id} not placed on a node within {limit:?}: {v}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok(out)
}

/// Post one signed body to an instance's webhook; the status.
async fn post(http: &reqwest::Client, url: &str, body: Vec<u8>) -> anyhow::Result<u16> {
    let ts = unix_now();
    let r = http
        .post(url)
        .header("X-Hub-Timestamp", ts.to_string())
        .header("X-Hub-Signature", sign(SECRET, ts, &body))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await?;
    let status = r.status().as_u16();
    if status != 202 {
        let text = r.text().await.unwrap_or_default();
        bail!("{url}: {status} {}", &text[..text.len().min(300)]);
    }
    Ok(status)
}

fn update(user: usize, note: u64) -> Value {
    json!({
        "endpoint": ext(user),
        "sequence": SEQUENCE.fetch_add(1, Ordering::Relaxed),
        "rich": {"availability": if note.is_multiple_of(2) { "available" } else { "away" }, "note": format!("b{note}")},
    })
}

/// SSE clients on `addr` following every user between them, each a slice
/// of [`PER_CLIENT`] users (a URL of a few KiB, a small snapshot), all
/// feeding one sink; connected (every snapshot in).
struct Follower {
    sink: Arc<FeedSink>,
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// Users each feed client follows.
const PER_CLIENT: usize = 500;

impl Follower {
    async fn connect(
        addr: SocketAddr,
        users: usize,
        stamps: Option<Arc<Stamps>>,
        limit: Duration,
    ) -> anyhow::Result<Follower> {
        let sink = FeedSink::new(stamps.is_none(), stamps);
        let (stop, rx) = watch::channel(false);
        let mut tasks = Vec::new();
        let deadline = Instant::now() + limit;
        for start in (0..users).step_by(PER_CLIENT) {
            let follow: Vec<String> = (start..(start + PER_CLIENT).min(users))
                .map(|i| format!("u{i}"))
                .collect();
            tasks.push(tokio::spawn(feed::sse(
                addr,
                TOKEN.to_string(),
                Some(follow.join(",")),
                sink.clone(),
                rx.clone(),
            )));
            // Connect one at a time: the accept queue never overflows.
            while sink.ready.load(Ordering::Relaxed) < tasks.len() as u64 {
                if let Some(e) = sink.ended.lock().unwrap().first() {
                    bail!("feed client on {addr}: {e}");
                }
                if Instant::now() > deadline {
                    bail!(
                        "{} of {} feed clients on {addr} got their snapshot within {limit:?}",
                        sink.ready.load(Ordering::Relaxed),
                        users.div_ceil(PER_CLIENT)
                    );
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
        Ok(Follower { sink, stop, tasks })
    }

    async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = tokio::time::timeout(
            Duration::from_secs(5),
            futures::future::join_all(self.tasks),
        )
        .await;
    }
}

/// What the closed loop measured.
#[derive(Debug, Clone)]
struct Ingest {
    /// CPU seconds of each hub node during the phase, then PostgreSQL's
    /// (all its processes; 0 on SQLite).
    cpu_nodes: Vec<f64>,
    cpu_pg: f64,
    /// Updates answered 202 by the hooks.
    accepted: u64,
    /// Seconds the pushers pushed.
    push_secs: f64,
    /// Presence events the feed client got.
    events: u64,
    /// Seconds from the first push until every user's last pushed note had
    /// reached the feed client.
    deliver_secs: f64,
    /// Batches whose last change had not reached the feed within [`STALL`].
    stalled: u64,
}

impl Ingest {
    fn accepted_rate(&self) -> f64 {
        self.accepted as f64 / self.push_secs
    }
    /// Changes pushed over the time until the last reached the feed.
    fn delivered_rate(&self) -> f64 {
        self.accepted as f64 / self.deliver_secs
    }
    /// CPU seconds per 1,000 updates of every process of the deployment.
    fn cpu_per_k(&self) -> f64 {
        (self.cpu_nodes.iter().sum::<f64>() + self.cpu_pg) * 1000.0 / self.accepted as f64
    }
    /// Where the CPU went, per 1,000 updates, and how busy the machine's
    /// cores were over the phase.
    fn cpu_text(&self, names: &[&str]) -> String {
        let k = 1000.0 / self.accepted as f64;
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let busy = (self.cpu_nodes.iter().sum::<f64>() + self.cpu_pg) / self.deliver_secs;
        let mut parts: Vec<String> = self
            .cpu_nodes
            .iter()
            .zip(names)
            .map(|(c, n)| format!("{n} {:.0} ms", c * k * 1e3))
            .collect();
        if self.cpu_pg > 0.0 {
            parts.push(format!("PostgreSQL {:.0} ms", self.cpu_pg * k * 1e3));
        }
        format!(
            "{:.0} ms CPU per 1,000 updates ({}); the {cores} cores {:.0}% busy",
            self.cpu_per_k() * 1e3,
            parts.join(", "),
            busy * 100.0 / cores as f64
        )
    }
}

/// The closed loop: `p.pushers` pushers, pusher `k` posting batches of its
/// users (`i % pushers == k`) to `targets[k % len]` (hook URLs), while
/// `feed` follows; each pusher's next batch waits until its previous batch's
/// last change is at the feed. Fails when a user's last change has not
/// reached the feed `p.step_limit` after the pushes, or the feed client is
/// dropped.
async fn ingest(
    http: &reqwest::Client,
    targets: &[String],
    feed: &Follower,
    pids: &[u32],
    p: &Params,
) -> anyhow::Result<Ingest> {
    static NOTE: AtomicU64 = AtomicU64::new(INGEST_NOTE_BASE);
    let cpu = || {
        (
            pids.iter()
                .map(|&p| procfs::cpu_seconds(p))
                .collect::<Vec<f64>>(),
            procfs::named_cpu_seconds("postgres"),
        )
    };
    let (cpu0, pg0) = cpu();
    let events0 = feed.sink.events.load(Ordering::Relaxed);
    let t0 = Instant::now();
    let until = t0 + Duration::from_secs_f64(p.ingest_secs);
    // The loop is closed over the feed: each pusher posts its next batch
    // when the last change of its previous one has reached the feed client
    // (a client that falls far behind is told to resync). A pusher cycles
    // through its own users, so no user has two changes in flight.
    let stalled = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for k in 0..p.pushers {
        let http = http.clone();
        let url = targets[k % targets.len()].clone();
        let (pushers, users, batch) = (p.pushers, p.users, p.batch);
        let sink = feed.sink.clone();
        let stalled = stalled.clone();
        tasks.push(tokio::spawn(async move {
            let mine: Vec<usize> = (k..users).step_by(pushers).collect();
            let batch = batch.min(mine.len());
            let mut last: HashMap<usize, u64> = HashMap::new();
            let mut accepted = 0u64;
            let mut at = 0usize;
            while Instant::now() < until && !mine.is_empty() {
                let mut ups = Vec::with_capacity(batch);
                let mut sent = Vec::with_capacity(batch);
                for _ in 0..batch {
                    let u = mine[at % mine.len()];
                    at += 1;
                    let note = NOTE.fetch_add(1, Ordering::Relaxed);
                    ups.push(update(u, note));
                    sent.push((u, note));
                }
                let body = serde_json::to_vec(&json!({ "updates": ups }))?;
                post(&http, &url, body).await?;
                accepted += sent.len() as u64;
                let (user, note) = *sent.last().expect("a batch is not empty");
                last.extend(sent);
                let waiting = Instant::now();
                while sink.last_of(user).map(|s| s.note) != Some(note) {
                    if let Some(e) = sink.ended.lock().unwrap().first() {
                        bail!("the feed client ended: {e}");
                    }
                    if waiting.elapsed() > STALL {
                        // Counted; the end of the run checks every user's
                        // last change.
                        stalled.fetch_add(1, Ordering::Relaxed);
                        break;
                    }
                    tokio::time::sleep(Duration::from_micros(500)).await;
                }
            }
            Ok::<_, anyhow::Error>((accepted, last))
        }));
    }
    let mut accepted = 0;
    let mut last: HashMap<usize, u64> = HashMap::new();
    for t in tasks {
        let (a, l) = t.await??;
        accepted += a;
        last.extend(l);
    }
    let push_secs = t0.elapsed().as_secs_f64();
    // Until every user's last note is the feed's last for that user.
    let deadline = Instant::now() + p.step_limit;
    let deliver_secs = loop {
        let seen = feed.sink.last();
        let behind = last
            .iter()
            .filter(|(u, n)| seen.get(u).map(|s| s.note) != Some(**n))
            .count();
        if behind == 0 {
            break t0.elapsed().as_secs_f64();
        }
        if let Some(e) = feed.sink.ended.lock().unwrap().first() {
            bail!("the feed client ended: {e}");
        }
        if Instant::now() > deadline {
            bail!(
                "{behind} of {} users' last change had not reached the feed {:.0} s after the pushes ended",
                last.len(),
                p.step_limit.as_secs_f64()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let (cpu1, pg1) = cpu();
    Ok(Ingest {
        cpu_nodes: cpu1.iter().zip(&cpu0).map(|(b, a)| b - a).collect(),
        cpu_pg: pg1 - pg0,
        accepted,
        push_secs,
        events: feed.sink.events.load(Ordering::Relaxed) - events0,
        deliver_secs,
        stalled: stalled.load(Ordering::Relaxed),
    })
}

/// Push → feed latency (µs, sorted) of `p.latency_changes` single changes
/// at `p.latency_rate`, posted to `target` (a hook URL), seen by a new feed
/// client on `feed_addr`; and how many never arrived within 10 s.
async fn latency(
    http: &reqwest::Client,
    target: &str,
    feed_addr: SocketAddr,
    p: &Params,
) -> anyhow::Result<(Vec<u32>, usize)> {
    let n = p.latency_changes;
    let stamps = Arc::new(Stamps::new(Instant::now(), n));
    let feed = Follower::connect(feed_addr, p.users, Some(stamps.clone()), p.step_limit).await?;
    let t0 = Instant::now();
    let mut tasks = Vec::with_capacity(n);
    for i in 0..n {
        let at = t0 + Duration::from_secs_f64(i as f64 / p.latency_rate);
        tokio::time::sleep_until(at.into()).await;
        // Users spread over the whole directory.
        let user = (i * 7919) % p.users;
        let body = serde_json::to_vec(&update(user, i as u64))?;
        stamps.at[i].store(stamps.epoch.elapsed().as_nanos() as u64, Ordering::Relaxed);
        let http = http.clone();
        let url = target.to_string();
        tasks.push(tokio::spawn(async move { post(&http, &url, body).await }));
    }
    for t in tasks {
        t.await??;
    }
    let mut got: HashMap<u64, u32> = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while got.len() < n && Instant::now() < deadline {
        got.extend(feed.sink.take_latencies());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    got.extend(feed.sink.take_latencies());
    feed.stop().await;
    let mut lat: Vec<u32> = got.into_values().collect();
    lat.sort_unstable();
    let lost = n - lat.len();
    Ok((lat, lost))
}

fn lat_text(lat: &[u32]) -> String {
    format!(
        "p50 {} / p99 {} / max {}",
        report::secs(percentile(lat, 50.0) / 1e6),
        report::secs(percentile(lat, 99.0) / 1e6),
        report::secs(lat.last().map(|&x| f64::from(x)).unwrap_or(f64::NAN) / 1e6)
    )
}

fn hook(hub: &BenchHub, id: &str) -> String {
    hub.hub.url(&format!("/hooks/{id}/presence"))
}

/// Cluster-log messages a node published (one per instance and relay pass).
const PUBLISHED: &str = "presence_hub_cluster_messages_published_total";
/// Cluster-log messages of other nodes a node applied.
const APPLIED: &str = "presence_hub_cluster_messages_applied_total";

/// Sum of a counter's series in a node's `/metrics` (NaN when unreadable).
async fn counter(hub: &BenchHub, name: &str) -> f64 {
    let text = match hub
        .hub
        .http
        .get(hub.hub.url("/metrics"))
        .bearer_auth(TOKEN)
        .send()
        .await
    {
        Ok(r) => r.text().await.unwrap_or_default(),
        Err(_) => return f64::NAN,
    };
    let values: Vec<f64> = text
        .lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .collect();
    if values.is_empty() {
        f64::NAN
    } else {
        values.iter().sum()
    }
}

/// Messages published by all `nodes` so far.
async fn published(nodes: &[(&str, &BenchHub)]) -> f64 {
    let mut sum = 0.0;
    for (_, h) in nodes {
        sum += counter(h, PUBLISHED).await;
    }
    sum
}

/// One node's figures.
struct Single {
    import_secs: f64,
    ingest: Ingest,
    lat: Vec<u32>,
    lost: usize,
    rss_import: u64,
    rss_ingest: u64,
}

/// One node (SQLite when `url` is `None`): import, instances, closed loop
/// with the feed on the same node, latency.
async fn single(url: Option<&str>, key: &[u8; 32], p: &Params) -> anyhow::Result<Single> {
    let hub = start(url.map(|u| (u, NODES[0], key)));
    let ids = create_instances(&hub, p.instances).await?;
    let import_secs = import_csv(&hub, p.users).await?;
    for id in &ids {
        hub.wait_up(id, p.step_limit).await?;
    }
    let rss_import = hub.rss();
    let http = hub.hub.http.clone();
    let targets: Vec<String> = ids.iter().map(|id| hook(&hub, id)).collect();
    let feed = Follower::connect(hub.addr(), p.users, None, p.step_limit).await?;
    let ing = ingest(&http, &targets, &feed, &[hub.pid()], p).await?;
    feed.stop().await;
    let rss_ingest = hub.rss();
    let (lat, lost) = latency(&http, &targets[0], hub.addr(), p).await?;
    Ok(Single {
        import_secs,
        ingest: ing,
        lat,
        lost,
        rss_import,
        rss_ingest,
    })
}

fn rate(x: f64) -> String {
    format!("{}/s", report::count(x))
}

fn ingest_text(i: &Ingest) -> String {
    format!(
        "{} accepted, {} reached the feed{}",
        rate(i.accepted_rate()),
        rate(i.delivered_rate()),
        if i.stalled > 0 {
            format!(" ({} batches waited over {STALL:?})", i.stalled)
        } else {
            String::new()
        }
    )
}

/// Run the benchmark; rows go into `r`.
pub async fn run(r: &mut Report, p: &Params) -> anyhow::Result<()> {
    anyhow::ensure!(
        postgres::available(),
        "PostgreSQL 15 is needed (Debian package postgresql; bash .ci/install-test-deps.sh)"
    );
    anyhow::ensure!(
        p.users > 0 && p.instances >= 3,
        "cluster: users > 0 and instances ≥ 3"
    );
    let pg = tokio::task::block_in_place(Postgres::start);
    let mut key = [0u8; 32];
    std::io::Read::read_exact(
        &mut std::fs::File::open("/dev/urandom").context("/dev/urandom")?,
        &mut key,
    )?;
    let users = report::count(p.users as f64);
    let load = format!(
        "{users} users, {} http-push instances, {} pushers × {}-update batches for {:.0} s, each batch after the pusher's last reached the feed",
        p.instances, p.pushers, p.batch, p.ingest_secs
    );

    eprintln!("cluster: one node on SQLite");
    let lite = single(None, &key, p).await.context("one node on SQLite")?;
    eprintln!("cluster: one node on PostgreSQL");
    let url1 = tokio::task::block_in_place(|| pg.create_database("bench_single"));
    let one = single(Some(&url1), &key, p)
        .await
        .context("one node on PostgreSQL")?;
    r.push(
        Row::info(
            SECTION,
            format!("cluster: ingest on one node, SQLite ({load}; feed on that node)"),
            ingest_text(&lite.ingest),
        )
        .baseline("—", None),
    );
    r.push(
        Row::info(
            SECTION,
            "cluster: ingest on one node, PostgreSQL (same load)",
            ingest_text(&one.ingest),
        )
        .baseline(
            format!("SQLite node: {}", rate(lite.ingest.accepted_rate())),
            Some(one.ingest.accepted_rate() / lite.ingest.accepted_rate()),
        ),
    );
    r.note(format!(
        "cluster: import of {users} users by CSV took {:.1} s on SQLite, {:.1} s on PostgreSQL; one node's VmRSS after import / after ingest: SQLite {} / {}, PostgreSQL {} / {}; single-node latency (push and feed on the node, {} changes at {:.0}/s): SQLite {} ({} lost), PostgreSQL {} ({} lost)",
        lite.import_secs,
        one.import_secs,
        report::bytes(lite.rss_import as f64),
        report::bytes(lite.rss_ingest as f64),
        report::bytes(one.rss_import as f64),
        report::bytes(one.rss_ingest as f64),
        p.latency_changes,
        p.latency_rate,
        lat_text(&lite.lat),
        lite.lost,
        lat_text(&one.lat),
        one.lost,
    ));

    eprintln!("cluster: three nodes on PostgreSQL");
    let url3 = tokio::task::block_in_place(|| pg.create_database("bench_cluster"));
    let mut hubs: Vec<BenchHub> = NODES
        .iter()
        .map(|n| start(Some((&url3, n, &key))))
        .collect();
    let nodes: Vec<(&str, &BenchHub)> = NODES.iter().copied().zip(hubs.iter()).collect();
    let ids = create_instances(nodes[0].1, p.instances).await?;
    let import_secs = import_csv(nodes[0].1, p.users).await?;
    for (_, h) in &nodes[1..] {
        wait_user(h, p.users, p.step_limit).await?;
    }
    let placed = placement(&nodes, &ids, p.step_limit).await?;
    let rss_import: Vec<u64> = nodes.iter().map(|(_, h)| h.rss()).collect();
    // The feed on the node running the fewest instances; pushes go to the
    // instances the other nodes run.
    let mut held = [0usize; 3];
    for &i in placed.values() {
        held[i] += 1;
    }
    let feed_i = (0..3).min_by_key(|&i| held[i]).unwrap_or(0);
    let remote: Vec<(&String, usize)> = placed
        .iter()
        .filter(|(_, i)| **i != feed_i)
        .map(|(id, i)| (id, *i))
        .collect();
    anyhow::ensure!(
        !remote.is_empty(),
        "every instance runs on one node: {placed:?}"
    );
    let targets: Vec<String> = remote.iter().map(|(id, i)| hook(nodes[*i].1, id)).collect();
    let http = nodes[0].1.hub.http.clone();
    let feed = Follower::connect(nodes[feed_i].1.addr(), p.users, None, p.step_limit).await?;
    let published0 = published(&nodes).await;
    let applied0 = counter(nodes[feed_i].1, APPLIED).await;
    let pids: Vec<u32> = nodes.iter().map(|(_, h)| h.pid()).collect();
    let ing = ingest(&http, &targets, &feed, &pids, p)
        .await
        .context("cross-node ingest")?;
    let messages = published(&nodes).await - published0;
    let applied = counter(nodes[feed_i].1, APPLIED).await - applied0;
    feed.stop().await;
    let rss_ingest: Vec<u64> = nodes.iter().map(|(_, h)| h.rss()).collect();
    let (lat, lost) = latency(&http, &targets[0], nodes[feed_i].1.addr(), p)
        .await
        .context("cross-node latency")?;
    let db3 = url3.rsplit('/').next().unwrap_or_default().to_string();
    let rows = tokio::task::block_in_place(|| {
        pg.psql(
            &db3,
            "SELECT payload FROM cluster_log WHERE topic = 'presence' \
             AND length(payload) BETWEEN 1000 AND 1000000 ORDER BY seq DESC LIMIT 200",
        )
    });
    let small: Vec<String> = rows.lines().map(str::to_string).collect();
    eprintln!(
        "cluster: {} presence messages of the ingest kept for the log-alone figures",
        small.len()
    );
    let spread: Vec<String> = (0..3)
        .map(|i| format!("{} runs {}", NODES[i], held[i]))
        .collect();
    r.push(
        Row::info(
            SECTION,
            format!(
                "cluster: 3 nodes, cross-node propagation (pushes to the {} instances on the two other nodes, feed on {})",
                remote.len(),
                NODES[feed_i]
            ),
            format!("{} on {}", ingest_text(&ing), NODES[feed_i]),
        )
        .baseline(
            format!(
                "one PostgreSQL node: {} reached its feed",
                rate(one.ingest.delivered_rate())
            ),
            Some(ing.delivered_rate() / one.ingest.delivered_rate()),
        ),
    );
    let p99 = percentile(&lat, 99.0) / 1e6;
    r.push(
        Row::info(
            SECTION,
            format!(
                "cluster: push → feed on another node, {} single changes at {:.0}/s",
                p.latency_changes, p.latency_rate
            ),
            format!("{} ({lost} lost)", lat_text(&lat)),
        )
        .baseline(
            format!("one PostgreSQL node: {}", lat_text(&one.lat)),
            Some(p99 / (percentile(&one.lat, 99.0) / 1e6)),
        )
        .target("p99 < 100 ms, none lost", p99 < 0.1 && lost == 0),
    );
    let mem = |v: &[u64]| {
        v.iter()
            .zip(NODES)
            .map(|(b, n)| format!("{n} {}", report::bytes(*b as f64)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let max_rss = rss_ingest.iter().copied().max().unwrap_or(0);
    r.push(
        Row::info(
            SECTION,
            "cluster: VmRSS per node, after import / after ingest",
            format!("{} / {}", mem(&rss_import), mem(&rss_ingest)),
        )
        .baseline(
            format!(
                "one PostgreSQL node: {} / {}",
                report::bytes(one.rss_import as f64),
                report::bytes(one.rss_ingest as f64)
            ),
            Some(max_rss as f64 / one.rss_ingest as f64),
        ),
    );
    r.push(
        Row::info(
            SECTION,
            "cluster: CPU of the deployment during the ingest (hub nodes and PostgreSQL)",
            format!("3 nodes: {}", ing.cpu_text(&NODES)),
        )
        .baseline(
            format!(
                "one PostgreSQL node: {}; one SQLite node: {}",
                one.ingest.cpu_text(&["hub"]),
                lite.ingest.cpu_text(&["hub"])
            ),
            Some(ing.cpu_per_k() / one.ingest.cpu_per_k()),
        ),
    );

    // Takeover: SIGKILL the node running push-0.
    let victim = placed["push-0"];
    let lost_ids: Vec<String> = placed
        .iter()
        .filter(|(_, i)| **i == victim)
        .map(|(id, _)| id.clone())
        .collect();
    let t0 = Instant::now();
    tokio::task::block_in_place(|| hubs[victim].hub.kill9());
    let alive: Vec<(&str, &BenchHub)> = NODES
        .iter()
        .copied()
        .zip(hubs.iter())
        .enumerate()
        .filter(|(i, _)| *i != victim)
        .map(|(_, x)| x)
        .collect();
    let limit = Duration::from_secs(30);
    let mut taken: BTreeMap<String, (String, f64)> = BTreeMap::new();
    while taken.len() < lost_ids.len() && t0.elapsed() < limit {
        for id in &lost_ids {
            if taken.contains_key(id) {
                continue;
            }
            for (name, h) in &alive {
                let (s, v) = h
                    .hub
                    .call("GET", &format!("/api/v1/connectors/{id}"), None)
                    .await;
                if s == 200 && v["node"] == *name && v["status"].is_object() {
                    taken.insert(id.clone(), (name.to_string(), t0.elapsed().as_secs_f64()));
                    break;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let all_secs = taken.values().map(|(_, s)| *s).fold(0.0, f64::max);
    let done = taken.len() == lost_ids.len();
    r.push(
        Row::info(
            SECTION,
            format!(
                "cluster: takeover after SIGKILL of {} (its {} instances, until a survivor shows each as its own with a status)",
                NODES[victim],
                lost_ids.len()
            ),
            if done {
                report::secs(all_secs)
            } else {
                format!(
                    "{} of {} taken over within {:.0} s",
                    taken.len(),
                    lost_ids.len(),
                    limit.as_secs_f64()
                )
            },
        )
        .target("< 10 s", done && all_secs < 10.0),
    );
    r.note(format!(
        "cluster: {load}; import by CSV on {} took {import_secs:.1} s; placement: {}; cross-node ingest: {} updates accepted in {:.1} s, {} feed events, the last one {:.1} s after the first push; cluster log: {} messages published ({}/s, {:.0} updates per message), {} applied on {}; takeover: {}",
        NODES[0],
        spread.join(", "),
        report::count(ing.accepted as f64),
        ing.push_secs,
        report::count(ing.events as f64),
        ing.deliver_secs,
        report::count(messages),
        report::count(messages / ing.deliver_secs),
        ing.accepted as f64 / messages,
        report::count(applied),
        NODES[feed_i],
        taken
            .iter()
            .map(|(id, (n, s))| format!("{id} → {n} in {}", report::secs(*s)))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    if let Some(dir) = std::env::var_os("HUB_BENCH_CLUSTER_KEEP") {
        let dir = std::path::PathBuf::from(dir);
        std::fs::create_dir_all(&dir)?;
        for (n, h) in NODES.iter().zip(&hubs) {
            std::fs::write(dir.join(format!("{n}.log")), h.hub.log())?;
        }
        eprintln!("cluster: node logs kept in {}", dir.display());
    }
    drop(hubs);

    // The notification path alone, with the messages the ingest published.
    // The same items in messages of about 1,000 updates (what the relay
    // sends when publishing falls behind: everything pending, coalesced).
    let mut large = Vec::new();
    let mut acc: Vec<Value> = Vec::new();
    for p in &small {
        let v: Value = serde_json::from_str(p)?;
        acc.extend(v["items"].as_array().cloned().unwrap_or_default());
        if acc.len() >= 1000 {
            large.push(
                json!({ "instance": v["instance"], "items": std::mem::take(&mut acc) }).to_string(),
            );
        }
    }
    for (label, payloads) in [("as published", &small), ("merged", &large)] {
        if payloads.is_empty() {
            continue;
        }
        let url = tokio::task::block_in_place(|| pg.create_database("bench_ceiling"));
        let c = tokio::task::block_in_place(|| log_ceiling(&url, &key, payloads, 4.0))
            .context("the cluster log alone")?;
        r.push(
            Row::info(
                SECTION,
                format!(
                    "cluster log alone, messages {label} ({} updates, {} each; 2 publishers as the relay publishes, 1 reader as a node follows)",
                    c.per_message,
                    report::bytes(c.bytes as f64)
                ),
                format!(
                    "{} messages/s, {} updates/s reached the reader",
                    report::count(c.messages_per_s),
                    report::count(c.updates_per_s)
                ),
            )
            .baseline(
                format!(
                    "3 nodes, cross-node propagation: {} reached the feed",
                    rate(ing.delivered_rate())
                ),
                Some(c.updates_per_s / ing.delivered_rate()),
            ),
        );
    }
    tokio::task::block_in_place(|| drop(pg));
    Ok(())
}

/// What the cluster log alone carries on this machine.
struct Ceiling {
    /// Updates per message.
    per_message: usize,
    /// Mean payload bytes.
    bytes: usize,
    messages_per_s: f64,
    updates_per_s: f64,
}

/// The cluster's notification path alone, without hub nodes: two
/// publishers (as two nodes running instances) each append `payloads`
/// (real presence messages of the three-node run, each item as many
/// `#presence/<instance>` keys as the relay writes) the way the relay does
/// (a fenced publish, then the latest-value write), one after another for
/// `secs`, while a third store follows the log the way a node does
/// (wake-up, `messages_after`, parse). Returns what reached the reader.
fn log_ceiling(
    url: &str,
    key: &[u8; 32],
    payloads: &[String],
    secs: f64,
) -> anyhow::Result<Ceiling> {
    use presence_hub::store::{Coordination, KvWrite, PostgresStore, Store};
    anyhow::ensure!(!payloads.is_empty(), "no presence message to replay");
    let open = |node: &str| -> anyhow::Result<(tempfile::TempDir, Arc<PostgresStore>)> {
        let dir = tempfile::tempdir()?;
        std::fs::write(dir.path().join("secret.key"), key)?;
        let s = PostgresStore::connect(url, dir.path(), node)
            .with_context(|| format!("open the store as {node}"))?;
        Ok((dir, Arc::new(s)))
    };
    let items = |p: &str| -> usize {
        serde_json::from_str::<Value>(p)
            .ok()
            .and_then(|v| v["items"].as_array().map(Vec::len))
            .unwrap_or(0)
    };
    let per_message = payloads.iter().map(|p| items(p)).sum::<usize>() / payloads.len();
    let bytes = payloads.iter().map(String::len).sum::<usize>() / payloads.len();
    let (_rdir, reader) = open("ceiling-reader")?;
    let mut signals = reader.subscribe();
    let from = reader.last_seq()?;
    let published = Arc::new(AtomicU64::new(0));
    let running = Arc::new(AtomicU64::new(2));
    let t0 = Instant::now();
    let until = t0 + Duration::from_secs_f64(secs);
    let mut publishers = Vec::new();
    for k in 0..2 {
        let (dir, store) = open(&format!("ceiling-{k}"))?;
        let instance = format!("ceiling-{k}");
        let lease = store
            .acquire(&instance, Duration::from_secs(60))?
            .context("a lease for the ceiling's instance")?;
        store.set_fence(&instance, Some(lease.fence));
        let payloads = payloads.to_vec();
        let (published, running) = (published.clone(), running.clone());
        publishers.push(std::thread::spawn(move || -> anyhow::Result<()> {
            let _dir = dir;
            let ns = format!("#presence/{instance}");
            let mut n = 0usize;
            while Instant::now() < until {
                let p = &payloads[n % payloads.len()];
                n += 1;
                store.publish("presence", Some(&instance), p)?;
                let v: Value = serde_json::from_str(p)?;
                let writes: Vec<KvWrite> = v["items"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .enumerate()
                            .map(|(i, item)| KvWrite::Set {
                                key: format!("e{i}\u{1f}rich"),
                                value: serde_json::to_vec(item).expect("JSON"),
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                store.kv_write(&ns, &writes)?;
                published.fetch_add(1, Ordering::Relaxed);
            }
            running.fetch_sub(1, Ordering::Relaxed);
            Ok(())
        }));
    }
    let mut last = from;
    let (mut got, mut updates) = (0u64, 0u64);
    let mut last_at = t0;
    let deadline = until + Duration::from_secs(30);
    loop {
        let done = running.load(Ordering::Relaxed) == 0;
        if done && got >= published.load(Ordering::Relaxed) {
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "the reader fell 30 s behind");
        // Wake-ups as a node takes them, with a short poll as its fallback.
        let woke = matches!(
            signals.try_recv(),
            Ok(_) | Err(tokio::sync::broadcast::error::TryRecvError::Lagged(_))
        );
        if !woke {
            std::thread::sleep(Duration::from_micros(500));
        }
        let ms = reader.messages_after(last, 1000)?;
        for m in ms {
            last = m.seq;
            if m.topic != "presence" {
                continue;
            }
            let v: Value = serde_json::from_str(&m.payload)?;
            updates += v["items"].as_array().map_or(0, |a| a.len() as u64);
            got += 1;
            last_at = Instant::now();
        }
    }
    for p in publishers {
        p.join()
            .map_err(|_| anyhow::anyhow!("a publisher panicked"))??;
    }
    let secs = (last_at - t0).as_secs_f64();
    Ok(Ceiling {
        per_message,
        bytes,
        messages_per_s: got as f64 / secs,
        updates_per_s: updates as f64 / secs,
    })
}
