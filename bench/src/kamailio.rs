//! Benchmark 1's second baseline: a real presence server, Kamailio 5.6,
//! handles PUBLISHes of the same PIDF documents on the same machine. A raw
//! UDP sender keeps a window of PUBLISHes in flight, each replacing the
//! user's previous publication (SIP-If-Match with the last SIP-ETag), and
//! Kamailio's CPU time (all its processes) is read from /proc.
//!
//! Kamailio runs in its fastest in-memory presence configuration, written
//! by this module (see [`CONFIG`] and [`HOW`]): presentities in memory
//! (`publ_cache` 2), subscriptions in memory (`subs_db_mode` 0), PUBLISH
//! handled statelessly, only the modules presence needs, UDP only, no log
//! line per request. It runs with 1, 2, 4 and 8 UDP workers; the cheapest in
//! CPU per PUBLISH is the baseline the hub is compared with. For
//! reference, the end-to-end kit's configuration (presentities in a
//! db_text table, a transaction per request) runs the same load.

use std::collections::{HashMap, VecDeque};
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hub_e2e::kamailio::{AuthMode, Kamailio, kamailio_available};

use crate::ingest::Outcome;
use crate::procfs;
use crate::report::{self, Report, Row};
use crate::sip::{self, Msg};
use crate::sipserver::big_socket;
use crate::sys;

/// Sizes of the run.
pub struct Params {
    pub users: usize,
    pub window: usize,
    /// PUBLISHes to have answered (the hub's count in its sustained step).
    pub count: u64,
    /// Stop earlier than that after this long.
    pub max_secs: f64,
    /// UDP worker counts of the in-memory configuration to measure.
    pub children: Vec<u32>,
    /// Also measure the end-to-end kit's configuration (for reference).
    pub kit: bool,
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

impl Result {
    fn per(&self) -> f64 {
        self.cpu / self.ok.max(1) as f64
    }
}

/// How the baseline's Kamailio is configured, and why that is its fastest
/// way of taking PUBLISHes (for the report).
pub const HOW: &str = "Kamailio 5.6 in its fastest in-memory presence configuration (written by bench/src/kamailio.rs): \
modules presence + presence_xml with sl, tm, pv and db_text only; presence `publ_cache` 2 (every presentity and its body \
kept in shared memory, nothing written to a database: the default, 1, inserts or updates a presentity row per PUBLISH) \
and `subs_db_mode` 0 (subscriptions in memory only, no write-back timer); presence_xml `force_active` 1 (no \
authorisation rules looked up), winfo and xcap-diff off; PUBLISH answered statelessly by handle_publish() (no tm \
transaction created and kept for its wait time); UDP only (no TCP workers), no DNS, log level errors only (no line per \
request); 1 GiB shared memory; pres_htable_size 2^14. The number of UDP workers is measured (1, 2, 4 and 8) \
and the cheapest in CPU per PUBLISH is the baseline. The database URL is still set (db_text, never written) because \
the presence module only acts as a full presence server with one.";

/// The configuration; `@PORT@`, `@CHILDREN@` and `@DB@` are filled in.
const CONFIG: &str = r#"#!KAMAILIO
#
# Kamailio as the benchmark's PUBLISH baseline: its fastest in-memory
# presence configuration (written by bench/src/kamailio.rs, see HOW there).

debug=1
log_stderror=yes
memdbg=5
memlog=5
children=@CHILDREN@
disable_tcp=yes
auto_aliases=no
dns=no
rev_dns=no
use_dns_cache=off
dns_try_naptr=no
listen=udp:127.0.0.1:@PORT@
server_header="Server: kamailio-bench"

loadmodule "db_text.so"
loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "pv.so"
loadmodule "presence.so"
loadmodule "presence_xml.so"

# Presentities and subscriptions in memory only; the database is never
# written (presence needs a URL to act as a full presence server).
modparam("presence", "db_url", "text://@DB@")
modparam("presence", "publ_cache", 2)
modparam("presence", "subs_db_mode", 0)
modparam("presence", "pres_htable_size", 14)
modparam("presence", "subs_htable_size", 14)
modparam("presence", "server_address", "sip:127.0.0.1:@PORT@")
modparam("presence_xml", "db_url", "text://@DB@")
modparam("presence_xml", "force_active", 1)
modparam("presence_xml", "disable_winfo", 1)
modparam("presence_xml", "disable_xcapdiff", 1)

request_route {
	if (method=="OPTIONS") {
		sl_send_reply("200", "Keepalive");
		exit;
	}
	if (method=="PUBLISH") {
		# Answered statelessly (sl) by the presence module.
		handle_publish();
		exit;
	}
	sl_send_reply("405", "Method Not Allowed");
}
"#;

/// A Kamailio in the in-memory configuration, in its own process group
/// (killed with it when dropped) and temporary directory.
struct MemKamailio {
    child: Child,
    pgid: u32,
    port: u16,
    dir: PathBuf,
}

fn find_kamailio() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/local/sbin", "/sbin"].map(PathBuf::from))
        .map(|d| d.join("kamailio"))
        .find(|p| p.is_file())
}

impl MemKamailio {
    fn start(children: u32, root: &Path) -> anyhow::Result<MemKamailio> {
        let bin = find_kamailio().ok_or_else(|| anyhow::anyhow!("kamailio not found"))?;
        let dir = crate::overhead::tempfile_dir(&format!("kamailio-{children}"))?;
        let db = dir.join("db");
        std::fs::create_dir_all(&db)?;
        std::fs::create_dir_all(dir.join("run"))?;
        // The kit's empty db_text tables (read at start, never written).
        for e in std::fs::read_dir(root.join("tests/kamailio/db"))? {
            let e = e?;
            std::fs::copy(e.path(), db.join(e.file_name()))?;
        }
        let port = UdpSocket::bind("127.0.0.1:0")?.local_addr()?.port();
        let cfg = CONFIG
            .replace("@PORT@", &port.to_string())
            .replace("@CHILDREN@", &children.to_string())
            .replace("@DB@", &db.display().to_string());
        let cfg_path = dir.join("kamailio.cfg");
        std::fs::write(&cfg_path, cfg)?;
        let log = std::fs::File::create(dir.join("kamailio.log"))?;
        let child = {
            use std::os::unix::process::CommandExt;
            Command::new(bin)
                .arg("-DD") // foreground; workers are forked
                .arg("-E") // log to stderr
                .arg("-f")
                .arg(&cfg_path)
                .arg("-P")
                .arg(dir.join("run/kamailio.pid"))
                .arg("-Y")
                .arg(dir.join("run"))
                .arg("-w")
                .arg(&dir)
                .args(["-m", "1024", "-M", "8"])
                .current_dir(&dir)
                .stdin(Stdio::null())
                .stdout(Stdio::from(log.try_clone()?))
                .stderr(Stdio::from(log))
                .process_group(0)
                .spawn()?
        };
        let pgid = child.id();
        let mut k = MemKamailio {
            child,
            pgid,
            port,
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok(Some(status)) = k.child.try_wait() {
                anyhow::bail!("kamailio exited with {status}: {}", k.log_tail());
            }
            if options_ping(port) {
                return Ok(k);
            }
            if Instant::now() > deadline {
                anyhow::bail!(
                    "kamailio did not answer OPTIONS within 15 s: {}",
                    k.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.join("kamailio.log")).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(10).collect();
        tail.into_iter().rev().collect::<Vec<_>>().join(" / ")
    }
}

impl Drop for MemKamailio {
    fn drop(&mut self) {
        sys::kill_group(self.pgid, sys::SIGKILL);
        let _ = self.child.wait();
        let deadline = Instant::now() + Duration::from_secs(5);
        while !procfs::group_members(self.pgid).is_empty() && Instant::now() < deadline {
            sys::kill_group(self.pgid, sys::SIGKILL);
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Does a server on `port` answer OPTIONS with 200 (within 200 ms)?
fn options_ping(port: u16) -> bool {
    let Ok(sock) = UdpSocket::bind("127.0.0.1:0") else {
        return false;
    };
    let Ok(local) = sock.local_addr() else {
        return false;
    };
    let msg = format!(
        "OPTIONS sip:127.0.0.1:{port} SIP/2.0\r\n\
Via: SIP/2.0/UDP {local};rport;branch=z9hG4bKping{port}\r\n\
Max-Forwards: 70\r\n\
From: <sip:probe@127.0.0.1>;tag=ping\r\n\
To: <sip:127.0.0.1:{port}>\r\n\
Call-ID: ping-{port}@bench\r\n\
CSeq: 1 OPTIONS\r\n\
Content-Length: 0\r\n\r\n"
    );
    let _ = sock.set_read_timeout(Some(Duration::from_millis(200)));
    if sock.send_to(msg.as_bytes(), ("127.0.0.1", port)).is_err() {
        return false;
    }
    let mut buf = [0u8; 4096];
    matches!(sock.recv(&mut buf), Ok(n) if buf[..n].starts_with(b"SIP/2.0 200"))
}

/// Run the Kamailio baseline and compare with the hub's ingest.
pub async fn run(
    r: &mut Report,
    p: Params,
    hub: Option<Outcome>,
    root: &Path,
) -> anyhow::Result<()> {
    if !kamailio_available() {
        r.push(Row::failed(
            "1",
            "Kamailio PUBLISH baseline",
            "kamailio/sipp not installed (bash .ci/install-test-deps.sh)",
        ));
        return Ok(());
    }
    let p = std::sync::Arc::new(p);
    // The in-memory configuration with each worker count.
    let mut best: Option<(u32, Result)> = None;
    for &children in &p.children {
        let (p2, root2) = (p.clone(), root.to_path_buf());
        let res = tokio::task::spawn_blocking(move || {
            let k = MemKamailio::start(children, &root2)?;
            publish_run(
                &p2,
                SocketAddr::from(([127, 0, 0, 1], k.port)),
                "127.0.0.1",
                k.pgid,
            )
        })
        .await?;
        let res = match res {
            Ok(res) => res,
            Err(e) => {
                r.push(Row::failed(
                    "1",
                    format!("Kamailio 5.6 in memory, {children} UDP workers"),
                    format!("{e:#}"),
                ));
                continue;
            }
        };
        r.push(kamailio_row(
            &format!(
                "Kamailio 5.6 handling PUBLISH (PIDF, replacing the last publication), fastest in-memory configuration, {children} UDP worker{} ({} processes), closed loop",
                if children == 1 { "" } else { "s" },
                res.processes
            ),
            &res,
        ));
        let usable = res.errors == 0 && res.ok > 0;
        if usable && best.as_ref().is_none_or(|(_, b)| res.per() < b.per()) {
            best = Some((children, res));
        }
    }
    if p.kit {
        let p2 = p.clone();
        let res = tokio::task::spawn_blocking(move || {
            // Quiet (no log line per request) and with room for the
            // transactions of a high request rate.
            let k = Kamailio::start_with_options(
                AuthMode::None,
                &[],
                &["LOG_LEVEL=1", "NO_LOG_BODIES"],
                1024,
            );
            let res = publish_run(&p2, k.addr(), &k.domain.clone(), k.pid());
            drop(k);
            res
        })
        .await?;
        match res {
            Ok(res) => {
                let mut row = kamailio_row(
                    &format!(
                        "For reference: Kamailio 5.6 with the end-to-end kit's configuration (tests/kamailio: presentities in a db_text table, a tm transaction per PUBLISH, 2 UDP + 2 TCP workers, {} processes), same load",
                        res.processes
                    ),
                    &res,
                );
                if let Some((_, b)) = &best {
                    let text = format!(
                        "{}; the in-memory configuration: CPU {} per 100k",
                        row.baseline,
                        report::secs(b.per() * 1e5)
                    );
                    row = row.baseline(text, Some(res.per() / b.per()));
                }
                r.push(row);
            }
            Err(e) => r.note(format!(
                "kamailio with the kit's configuration failed: {e:#}"
            )),
        }
    }
    r.note(format!("kamailio: {HOW}"));
    let Some((children, best)) = best else {
        r.push(Row::failed(
            "1",
            "Hub CPU per update vs Kamailio",
            "no Kamailio run without errors",
        ));
        return Ok(());
    };
    let per = best.per();
    // At the sustained rate; when no fixed rate passed without loss, the
    // closed loop's cost instead (and the row says so).
    let measured = hub.as_ref().and_then(|h| {
        if h.updates > 0 {
            Some((
                "Hub CPU per 100k updates at the sustained rate (all threads: UDP, plugin, engine, event log, SSE)",
                h.cpu_per_update,
            ))
        } else if h.closed_updates > 0 {
            Some((
                "Hub CPU per 100k updates in the closed loop (no fixed rate passed without loss; all threads: UDP, plugin, engine, event log, SSE)",
                h.closed_cpu_per_update,
            ))
        } else {
            None
        }
    });
    match (hub, measured) {
        (_, Some((figure, cpu_per_update))) => {
            let ratio = cpu_per_update / per;
            r.push(
                Row::info("1", figure, report::secs(cpu_per_update * 1e5))
                    .baseline(
                        format!(
                            "Kamailio CPU per 100k PUBLISH, fastest in-memory configuration ({children} UDP worker{}, the cheapest measured): {}",
                            if children == 1 { "" } else { "s" },
                            report::secs(per * 1e5)
                        ),
                        Some(ratio),
                    )
                    .target("≤ 0.3× Kamailio", ratio <= 0.3),
            );
        }
        (Some(_), None) => r.push(Row::failed(
            "1",
            "Hub CPU per update vs Kamailio",
            "the hub's ingest answered nothing",
        )),
        // Run alone (`hub-bench kamailio`): nothing to compare with.
        (None, None) => {
            r.note("kamailio: ingest was not run, so the hub's CPU per update is not compared")
        }
    }
    Ok(())
}

fn kamailio_row(figure: &str, res: &Result) -> Row {
    Row::info(
        "1",
        figure,
        format!(
            "{} PUBLISH/s, CPU {} per 100k",
            report::count(res.ok as f64 / res.secs),
            report::secs(res.per() * 1e5)
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
    )
}

fn publish_run(p: &Params, to: SocketAddr, domain: &str, pgid: u32) -> anyhow::Result<Result> {
    let sock = big_socket()?;
    sock.set_read_timeout(Some(Duration::from_millis(10)))?;
    let port = sock.local_addr()?.port();
    let aor = |u: usize| format!("sip:u{u}@{domain}");

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
                        // Publish anew next time (an unknown ETag is
                        // answered 500 by the in-memory presentity cache).
                        etags[u] = None;
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
    let processes = procfs::group_members(pgid).len();
    let cpu0 = procfs::group_cpu_seconds(pgid);
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
    let cpu = procfs::group_cpu_seconds(pgid) - cpu0;
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
