//! The benchmark program runs end to end: a quick pass of some benchmarks,
//! at tiny sizes, against the debug build of the hub. The figures mean
//! nothing in a debug build; what is checked is that the harness, the
//! in-process probe, the benchmark's SIP server, the feed clients, the CPU
//! hog child and the table still work, so that `cargo xtask bench` does not
//! rot between runs.

use std::path::Path;
use std::process::Command;

#[test]
fn the_benchmark_program_runs_and_prints_its_table() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("bench/ is in the workspace");
    let hub = root.join("target/debug/presence-hub");
    assert!(
        hub.exists(),
        "{} is missing: run the tests with `cargo xtask test` (it builds the hub and packages the plugins)",
        hub.display()
    );
    let out = std::env::temp_dir().join(format!("hub-bench-smoke-{}.md", std::process::id()));
    let run = Command::new(env!("CARGO_BIN_EXE_hub-bench"))
        .args([
            "overhead",
            "fanout",
            "scale",
            "scale-hog",
            "--quick",
            "--no-wait",
            "--no-readme",
            "--out",
        ])
        .arg(&out)
        .env("HUB_BIN", &hub)
        .env("HUB_BENCH_SCALE_SIZES", "200")
        .env("HUB_BENCH_HOG_USERS", "200")
        // users, baseline clients, clients, updates/s
        .env("HUB_BENCH_FANOUT_SIZES", "200,20,100,200")
        .output()
        .expect("hub-bench starts");
    let table = std::fs::read_to_string(&out).unwrap_or_default();
    let _ = std::fs::remove_file(&out);
    assert!(
        run.status.success(),
        "hub-bench failed ({}):\n{}\n{table}",
        run.status,
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(
        table.contains("| # | figure | value | baseline (same run) | ratio | target | result |"),
        "{table}"
    );
    // Benchmark 5 against its native baseline, the fan-out with its
    // baseline, benchmark 3 at 200 users, and again with the CPU hog.
    assert!(table.contains("| 5 | One NOTIFY"), "{table}");
    assert!(
        table.contains("| 3 | Memory per watched user at 200 users"),
        "{table}"
    );
    assert!(
        table.contains("| 3 | Time to subscribe all 200 users"),
        "{table}"
    );
    assert!(
        table.contains("| 2 | Feed fan-out: 20 clients connected at once"),
        "{table}"
    );
    assert!(
        table.contains("| 2 | Feed fan-out: 100 clients connected at once"),
        "{table}"
    );
    assert!(
        table.contains("| 3 | Subscriptions of 200 users (presence + dialog, 20 instances) up after a live import, CPU hog"),
        "{table}"
    );
    assert!(!table.contains("FAILED"), "{table}");
}
