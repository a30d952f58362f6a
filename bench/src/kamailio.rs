//! Benchmark 1's second baseline: a real presence server, Kamailio (the
//! end-to-end kit's configuration: presence, presence_xml, db_text), handles
//! PUBLISHes of the same PIDF documents on the same machine. A raw UDP
//! sender keeps a window of PUBLISHes in flight, each replacing the user's
//! previous publication (SIP-If-Match with the last SIP-ETag), and
//! Kamailio's CPU time (all its processes) is read from /proc.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use hub_e2e::kamailio::{AuthMode, Kamailio, kamailio_available};

use crate::ingest::Outcome;
use crate::procfs;
use crate::report::{self, Report, Row};
use crate::sip::{self, Msg};
use crate::sipserver::big_socket;

/// Sizes of the run.
pub struct Params {
    pub users: usize,
    pub window: usize,
    /// PUBLISHes to have answered (the hub's count in its sustained step).
    pub count: u64,
    /// Stop earlier than that after this long.
    pub max_secs: f64,
}

struct Result {
    /// The first answer that was neither 2xx nor 412.
    first_error: Option<String>,
    ok: u64,
    errors: u64,
    lost: u64,
    secs: f64,
    cpu: f64,
    processes: usize,
}

/// Run the Kamailio baseline and compare with the hub's ingest.
pub async fn run(r: &mut Report, p: Params, hub: Option<Outcome>) -> anyhow::Result<()> {
    if !kamailio_available() {
        r.push(Row::failed(
            "1",
            "Kamailio PUBLISH baseline",
            "kamailio/sipp not installed (bash .ci/install-test-deps.sh)",
        ));
        return Ok(());
    }
    let res = tokio::task::spawn_blocking(move || publish_run(&p)).await??;
    let rate = res.ok as f64 / res.secs;
    let per = res.cpu / res.ok.max(1) as f64;
    r.push(
        Row::info(
            "1",
            format!(
                "Kamailio 5.6 handling PUBLISH (PIDF, replacing the last publication), {} processes, closed loop",
                res.processes
            ),
            format!(
                "{} PUBLISH/s, CPU {} per 100k",
                report::count(rate),
                report::secs(per * 1e5)
            ),
        )
        .baseline(
            format!(
                "{} answered 200, {} errors{}, {} unanswered",
                report::count(res.ok as f64),
                res.errors,
                res.first_error
                    .as_deref()
                    .map(|e| format!(" (first: {e})"))
                    .unwrap_or_default(),
                res.lost
            ),
            None,
        ),
    );
    match hub {
        Some(h) if h.updates > 0 => {
            let ratio = h.cpu_per_update / per;
            r.push(
                Row::info(
                    "1",
                    "Hub CPU per 100k updates at the sustained rate (all threads: UDP, plugin, engine, event log, SSE)",
                    report::secs(h.cpu_per_update * 1e5),
                )
                .baseline(
                    format!("Kamailio CPU per 100k PUBLISH: {}", report::secs(per * 1e5)),
                    Some(ratio),
                )
                .target("less than Kamailio", ratio < 1.0),
            );
        }
        Some(_) => r.push(Row::failed(
            "1",
            "Hub CPU per update vs Kamailio",
            "the hub's ingest had no step without loss",
        )),
        // Run alone (`hub-bench kamailio`): nothing to compare with.
        None => r.note("kamailio: ingest was not run, so the hub's CPU per update is not compared"),
    }
    Ok(())
}

fn publish_run(p: &Params) -> anyhow::Result<Result> {
    // Quiet (no log line per request) and with room for the transactions
    // of a high request rate (the kit's default is 64 MiB).
    let k =
        Kamailio::start_with_options(AuthMode::None, &[], &["LOG_LEVEL=1", "NO_LOG_BODIES"], 1024);
    let sock = big_socket()?;
    sock.set_read_timeout(Some(Duration::from_millis(10)))?;
    let port = sock.local_addr()?.port();
    let to = k.addr();
    let aor = |u: usize| format!("sip:u{u}@{}", k.domain);

    let mut etags: Vec<Option<String>> = vec![None; p.users];
    let mut free: VecDeque<usize> = (0..p.users).collect();
    // In flight: unique number -> (user, sent at).
    let mut flight: HashMap<u64, (usize, Instant)> = HashMap::new();
    let mut unique = 0u64;
    let mut buf = vec![0u8; 65_536];
    let (mut ok, mut errors, mut lost) = (0u64, 0u64, 0u64);
    let mut first_error: Option<String> = None;

    // One closed-loop phase: until `target` answers or `secs`.
    let mut phase = |target: u64,
                     secs: f64,
                     etags: &mut Vec<Option<String>>,
                     ok: &mut u64,
                     errors: &mut u64,
                     lost: &mut u64|
     -> anyhow::Result<()> {
        let start = Instant::now();
        let mut last_sweep = Instant::now();
        let base = *ok;
        while *ok - base < target && start.elapsed().as_secs_f64() < secs {
            while flight.len() < p.window {
                let Some(u) = free.pop_front() else { break };
                unique += 1;
                let body = sip::pidf(&aor(u), unique);
                let msg = sip::publish(&aor(u), etags[u].as_deref(), &body, port, unique);
                sock.send_to(&msg, to)?;
                flight.insert(unique, (u, Instant::now()));
            }
            if let Ok((n, _)) = sock.recv_from(&mut buf)
                && let Some(m) = Msg::parse(&buf[..n])
                && let Some(code) = m.code()
                && code >= 200
                && let Some(id) = m.header("call-id").and_then(|c| {
                    c.strip_prefix('p')?
                        .strip_suffix("@bench")?
                        .parse::<u64>()
                        .ok()
                })
                && let Some((u, _)) = flight.remove(&id)
            {
                match code {
                    200..=299 => {
                        *ok += 1;
                        etags[u] = m.header("sip-etag").map(str::to_string);
                    }
                    412 => etags[u] = None,
                    _ => {
                        *errors += 1;
                        if first_error.is_none() {
                            first_error = Some(m.start.to_string());
                        }
                    }
                }
                free.push_back(u);
            }
            if last_sweep.elapsed() > Duration::from_millis(200) {
                last_sweep = Instant::now();
                let stale: Vec<u64> = flight
                    .iter()
                    .filter(|(_, (_, at))| at.elapsed() > Duration::from_secs(2))
                    .map(|(id, _)| *id)
                    .collect();
                for id in stale {
                    if let Some((u, _)) = flight.remove(&id) {
                        *lost += 1;
                        free.push_back(u);
                    }
                }
            }
        }
        Ok(())
    };
    // Every user's first publication, then the measured replacements.
    phase(
        p.users as u64,
        60.0,
        &mut etags,
        &mut ok,
        &mut errors,
        &mut lost,
    )?;
    let (ok0, err0, lost0) = (ok, errors, lost);
    let processes = procfs::group_members(k.pid()).len();
    let cpu0 = procfs::group_cpu_seconds(k.pid());
    let t0 = Instant::now();
    phase(
        p.count,
        p.max_secs,
        &mut etags,
        &mut ok,
        &mut errors,
        &mut lost,
    )?;
    let secs = t0.elapsed().as_secs_f64();
    let cpu = procfs::group_cpu_seconds(k.pid()) - cpu0;
    drop(k);
    Ok(Result {
        first_error,
        ok: ok - ok0,
        errors: errors - err0,
        lost: lost - lost0,
        secs,
        cpu,
        processes,
    })
}
