//! `hub-bench`: benchmarks of the presence hub that print their figures,
//! each against a baseline measured in the same run. Run them all with
//! `cargo xtask bench` (it packages the plugins and builds the hub and this
//! program in release mode first). See `bench/README.md` for what each
//! figure means and how it is measured.
//!
//! ```text
//! hub-bench [overhead|lifecycle|ingest|kamailio|latency|fanout|scale|sync|scale-hog|cluster]...
//!           [--quick] [--out FILE] [--no-wait] [--no-readme]
//! ```
//!
//! Without benchmark names the default set ([`ALL`]) runs, in that order,
//! within a 15-minute budget; the table goes to stdout and to
//! `bench/results/latest.md`, and (for a full run) into the README's
//! "Benchmarks" section. [`NAMED`] benchmarks run only when named.

mod cluster;
mod fanout;
mod feed;
mod heap;
mod hog;
mod hubctl;
mod ingest;
mod kamailio;
mod latency;
mod lifecycle;
mod overhead;
mod probe;
mod procfs;
mod report;
mod scale;
mod sip;
mod sipserver;
mod sync;
mod sys;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use report::{Report, Row};

/// Counts live heap bytes, for the heap profile of benchmark 3.
#[global_allocator]
static ALLOC: heap::Counting = heap::Counting;

/// The default set, in the order it runs.
const ALL: [&str; 8] = [
    "overhead",
    "lifecycle",
    "ingest",
    "kamailio",
    "latency",
    "fanout",
    "scale",
    "sync",
];
/// Benchmarks that run only when named (too long for the default set):
/// `scale-hog` is the 100k-user scale run twice, quiet and with a CPU hog;
/// `cluster` is three hub nodes on PostgreSQL beside one node.
const NAMED: [&str; 2] = ["scale-hog", "cluster"];
/// The whole run, the wait for a quiet machine included, ends within this.
const BUDGET: Duration = Duration::from_secs(14 * 60 + 30);
/// Longest wait for the machine to become quiet before measuring.
const IDLE_WAIT: Duration = Duration::from_secs(3 * 60);
/// 1-minute load average below which the machine counts as quiet.
const IDLE_LOAD: f64 = 0.8;

struct Args {
    benches: Vec<String>,
    quick: bool,
    out: Option<PathBuf>,
    wait: bool,
    readme: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        benches: Vec::new(),
        quick: false,
        out: None,
        wait: true,
        readme: true,
    };
    let mut it = std::env::args().skip(1);
    while let Some(x) = it.next() {
        match x.as_str() {
            // `cargo xtask bench -- ...` passes the separator on.
            "--" => {}
            "--quick" => a.quick = true,
            "--no-wait" => a.wait = false,
            "--no-readme" => a.readme = false,
            "--out" => a.out = Some(it.next().ok_or("--out needs a file")?.into()),
            "-h" | "--help" => {
                return Err(format!(
                    "usage: hub-bench [{}|{}]... [--quick] [--out FILE] [--no-wait] [--no-readme]",
                    ALL.join("|"),
                    NAMED.join("|")
                ));
            }
            b if ALL.contains(&b) || NAMED.contains(&b) => a.benches.push(b.to_string()),
            other => return Err(format!("unknown argument {other:?} (try --help)")),
        }
    }
    Ok(a)
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("bench/ is in the workspace")
        .to_path_buf()
}

fn main() -> ExitCode {
    // A CPU hog beside the hub (hog.rs) is this program started again.
    let raw: Vec<String> = std::env::args().skip(1).take(2).collect();
    if raw.first().map(String::as_str) == Some(hog::CHILD_ARG) {
        return hog::child_main(raw.get(1).map(String::as_str).unwrap_or("60"));
    }
    // 10,000 feed clients are 10,000 sockets here and in the hub, which
    // inherits this limit when started.
    sys::raise_nofile();
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let root = root();
    if std::env::var_os("HUB_BIN").is_none() {
        // SAFETY: no other thread exists yet.
        unsafe { std::env::set_var("HUB_BIN", root.join("target/release/presence-hub")) };
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start tokio: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(args, root)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("hub-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Check what the benchmarks need before starting any.
fn preflight(root: &Path) -> anyhow::Result<()> {
    let bin = PathBuf::from(std::env::var_os("HUB_BIN").unwrap_or_default());
    anyhow::ensure!(
        bin.exists(),
        "{} is missing: run `cargo xtask bench` (it builds the hub in release mode)",
        bin.display()
    );
    for p in ["dist/plugins/sip-simple", "dist/test-plugins/chaos"] {
        anyhow::ensure!(
            root.join(p).join("plugin.toml").exists(),
            "{p} is missing: run `cargo xtask bench` (it packages the plugins)"
        );
    }
    Ok(())
}

async fn wait_for_quiet(r: &mut Report) {
    let start = Instant::now();
    let mut said = false;
    loop {
        let (one, _, _) = procfs::load_average();
        if one < IDLE_LOAD {
            if said {
                r.note(format!(
                    "waited {:.0} s for the load average to drop below {IDLE_LOAD}",
                    start.elapsed().as_secs_f64()
                ));
            }
            return;
        }
        if start.elapsed() > IDLE_WAIT {
            r.note(format!(
                "the 1-minute load average stayed at {one:.2} (≥ {IDLE_LOAD}) for {} minutes: figures are taken on a busy machine",
                IDLE_WAIT.as_secs() / 60
            ));
            return;
        }
        if !said {
            eprintln!(
                "load average {one:.2}: waiting (up to 3 minutes) for the machine to become quiet"
            );
            said = true;
        }
        tokio::time::sleep(Duration::from_secs(15)).await;
    }
}

async fn run(args: Args, root: PathBuf) -> anyhow::Result<bool> {
    preflight(&root)?;
    let started = Instant::now();
    let full = args.benches.is_empty();
    let benches: Vec<String> = if full {
        ALL.iter().map(|s| s.to_string()).collect()
    } else {
        args.benches.clone()
    };
    let q = args.quick;
    let mut r = Report::new();
    if args.wait {
        wait_for_quiet(&mut r).await;
    }
    let load_before = procfs::load_average();
    let deadline = started + BUDGET;
    let mut costs = None;
    let mut ingest_outcome = None;
    let mut scale_figures: Vec<scale::Figures> = Vec::new();
    for b in &benches {
        let left = deadline.saturating_duration_since(Instant::now());
        if left < Duration::from_secs(20) {
            r.push(Row::failed(
                "-",
                b.clone(),
                "skipped: the 15-minute budget is spent",
            ));
            continue;
        }
        eprintln!("== {b} ({:.0} s left of the budget)", left.as_secs_f64());
        let t = Instant::now();
        let limit = left.min(Duration::from_secs(match b.as_str() {
            "scale-hog" | "cluster" => 13 * 60,
            "scale" => 9 * 60,
            "lifecycle" => 4 * 60,
            _ => 3 * 60,
        }));
        let result: anyhow::Result<()> = match tokio::time::timeout(limit, async {
            match b.as_str() {
                "overhead" => {
                    let p = overhead::Params {
                        users: if q { 200 } else { 1000 },
                        notifies: if q { 5_000 } else { 20_000 },
                        rounds: if q { 3 } else { 5 },
                    };
                    costs = Some(overhead::run(&mut r, &p, &root).await?);
                }
                "lifecycle" => {
                    let p = lifecycle::Params {
                        load_samples: if q { 2 } else { 3 },
                        restart_samples: if q { 5 } else { 10 },
                        reload_users: if q { 300 } else { 1000 },
                        reload_rate: if q { 2_000.0 } else { 5_000.0 },
                        reload_secs: if q { 6.0 } else { 9.0 },
                    };
                    lifecycle::run(&mut r, &p, &root).await?;
                }
                "ingest" => {
                    let p = ingest::Params {
                        users: if q { 500 } else { 1000 },
                        window: 64,
                        closed_secs: if q { 2.0 } else { 4.0 },
                        step_secs: if q { 3.0 } else { 5.0 },
                        steps: vec![1.0, 0.9, 0.8, 0.65, 0.5, 0.35, 0.2],
                    };
                    ingest_outcome = Some(ingest::run(&mut r, &p, costs).await?);
                }
                "kamailio" => {
                    let count = ingest_outcome
                        .filter(|o| o.updates > 0)
                        .map(|o| o.updates)
                        .unwrap_or(if q { 20_000 } else { 100_000 });
                    let p = kamailio::Params {
                        users: if q { 500 } else { 1000 },
                        window: 64,
                        count,
                        max_secs: if q { 5.0 } else { 15.0 },
                        children: vec![1, 2, 4, 8],
                        kit: !q,
                    };
                    kamailio::run(&mut r, p, ingest_outcome, &root).await?;
                }
                "latency" => {
                    let p = latency::Params {
                        users: if q { 2_000 } else { 10_000 },
                        clients: if q { 200 } else { 1_000 },
                        rates: if q {
                            vec![2_000.0, 5_000.0]
                        } else {
                            vec![5_000.0, 10_000.0]
                        },
                        secs: if q { 4.0 } else { 8.0 },
                        hog: true,
                    };
                    latency::run(&mut r, &p).await?;
                }
                "fanout" => {
                    // HUB_BENCH_FANOUT_SIZES=users,small,large,rate picks
                    // other sizes.
                    let sizes: Vec<usize> = std::env::var("HUB_BENCH_FANOUT_SIZES")
                        .map(|v| v.split(',').filter_map(|x| x.trim().parse().ok()).collect())
                        .unwrap_or_default();
                    let p = match sizes[..] {
                        [users, small, large, rate] => fanout::Params {
                            users,
                            small,
                            large,
                            rate: rate as f64,
                            secs: 4.0,
                        },
                        _ => fanout::Params {
                            users: if q { 2_000 } else { 10_000 },
                            small: if q { 200 } else { 1_000 },
                            large: if q { 2_000 } else { 10_000 },
                            rate: if q { 2_000.0 } else { 10_000.0 },
                            secs: if q { 4.0 } else { 8.0 },
                        },
                    };
                    fanout::run(&mut r, &p).await?;
                }
                "scale" => {
                    // HUB_BENCH_SCALE_SIZES=1000,5000 picks other sizes.
                    let sizes = match std::env::var("HUB_BENCH_SCALE_SIZES") {
                        Ok(v) => v.split(',').filter_map(|x| x.trim().parse().ok()).collect(),
                        Err(_) if q => vec![1_000, 10_000],
                        Err(_) => vec![1_000, 10_000, 100_000],
                    };
                    let p = scale::Params {
                        target_size: 100_000,
                        sizes,
                        instances: 20,
                        limit: Duration::from_secs(if q { 60 } else { 180 }),
                    };
                    scale_figures = scale::run(&mut r, &p).await?;
                }
                "scale-hog" => {
                    // HUB_BENCH_HOG_USERS=2000 picks another size.
                    let n = std::env::var("HUB_BENCH_HOG_USERS")
                        .ok()
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(if q { 10_000 } else { 100_000 });
                    let p = scale::Params {
                        target_size: n,
                        sizes: vec![n],
                        instances: 20,
                        limit: Duration::from_secs(if q { 60 } else { 180 }),
                    };
                    // The quiet figures of `scale` in this run, if it
                    // measured this size.
                    let quiet = scale_figures.iter().find(|f| f.users() == n).cloned();
                    scale::run_hog(&mut r, &p, n, quiet).await?;
                }
                "cluster" => {
                    // HUB_BENCH_CLUSTER_USERS=10000 picks another size.
                    let users = std::env::var("HUB_BENCH_CLUSTER_USERS")
                        .ok()
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(if q { 10_000 } else { 100_000 });
                    // HUB_BENCH_CLUSTER_PUSHERS=32 keeps more batches in
                    // flight (the closed loop's throughput is pushers ×
                    // batch / push → feed time).
                    let pushers = std::env::var("HUB_BENCH_CLUSTER_PUSHERS")
                        .ok()
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(8);
                    let p = cluster::Params {
                        users,
                        instances: 6,
                        pushers,
                        batch: 100,
                        ingest_secs: if q { 4.0 } else { 8.0 },
                        latency_changes: 1_000,
                        latency_rate: 200.0,
                        step_limit: Duration::from_secs(if q { 60 } else { 120 }),
                    };
                    cluster::run(&mut r, &p).await?;
                }
                "sync" => {
                    // HUB_BENCH_SYNC_RING_MS=0 answers calls without ringing.
                    let ring_ms = std::env::var("HUB_BENCH_SYNC_RING_MS")
                        .ok()
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(150);
                    let p = sync::Params {
                        users: if q { 20 } else { 40 },
                        calls: if q { 200 } else { 1_000 },
                        ring_ms,
                        talk_ms: 400,
                        gap_ms: 600,
                        limit: Duration::from_secs(if q { 60 } else { 120 }),
                    };
                    sync::run(&mut r, &p, &root).await?;
                }
                _ => unreachable!("checked by parse_args"),
            }
            Ok::<(), anyhow::Error>(())
        })
        .await
        {
            Ok(x) => x,
            Err(_) => Err(anyhow::anyhow!(
                "stopped after {:.0} s (time limit)",
                limit.as_secs_f64()
            )),
        };
        if let Err(e) = result {
            r.push(Row::failed("-", b.clone(), format!("{e:#}")));
        }
        eprintln!("== {b} took {:.1} s", t.elapsed().as_secs_f64());
    }
    let load_after = procfs::load_average();
    let date = std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let header = vec![
        format!(
            "Run {date} on {}; load average before {:.2} / {:.2} / {:.2}, after {:.2} / {:.2} / {:.2} (1/5/15 min); {:.1} minutes.",
            procfs::machine(),
            load_before.0,
            load_before.1,
            load_before.2,
            load_after.0,
            load_after.1,
            load_after.2,
            started.elapsed().as_secs_f64() / 60.0
        ),
        format!(
            "Command: `cargo xtask bench{}`{}.",
            if q { " --quick" } else { "" },
            if full {
                String::new()
            } else {
                format!(" (only: {})", benches.join(", "))
            }
        ),
    ];
    let md = r.markdown(&header);
    println!("{md}");
    let out = args.out.clone().unwrap_or_else(|| {
        if full && !q {
            root.join("bench/results/latest.md")
        } else {
            root.join("bench/results/partial.md")
        }
    });
    if let Some(d) = out.parent() {
        std::fs::create_dir_all(d)?;
    }
    std::fs::write(&out, &md)?;
    eprintln!("written to {}", out.display());
    if full && !q && args.readme {
        update_readme(&root.join("README.md"), &md)?;
    }
    Ok(!r
        .rows
        .iter()
        .any(|row| row.verdict == report::Verdict::Failed))
}

const START: &str = "<!-- bench:start (written by `cargo xtask bench`) -->";
const END: &str = "<!-- bench:end -->";

/// Put the table between the README's markers (under "## Benchmarks").
fn update_readme(path: &Path, md: &str) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(path)?;
    let (Some(a), Some(b)) = (text.find(START), text.find(END)) else {
        eprintln!("README has no benchmark markers; not updated");
        return Ok(());
    };
    anyhow::ensure!(a < b, "README benchmark markers out of order");
    let new = format!("{}{START}\n{md}{}", &text[..a], &text[b..]);
    std::fs::write(path, new)?;
    eprintln!("README updated");
    Ok(())
}
