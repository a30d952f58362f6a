//! `ucma-bridge-kit`: run the conformance checks against a bridge.
//!
//! ```text
//! ucma-bridge-kit --url wss://bridge:9443/ --token TOKEN --ca ca.pem \
//!     --endpoint-config endpoint.json --target sip:a@x --target sip:b@x \
//!     [--publish-target sip:test@x] [--heartbeat-ms 3000] [--skip-negative-setup]
//! ```
//! `--token-file PATH` reads the token from a file instead (keeps it out of
//! the process list). Exit status: 0 all checks passed or were skipped, 1 a
//! check failed, 2 usage error.

use std::process::ExitCode;

use ucma_bridge_kit::{KitConfig, Verdict, run};

const USAGE: &str = "usage: ucma-bridge-kit --url wss://HOST:PORT/PATH (--token TOKEN | --token-file PATH) \
--ca CA.pem --endpoint-config ENDPOINT.json --target SIP_URI [--target SIP_URI ...] \
[--publish-target SIP_URI] [--heartbeat-ms MS] [--skip-negative-setup]";

fn parse(args: Vec<String>) -> Result<KitConfig, String> {
    let mut url = None;
    let mut token = None;
    let mut ca = None;
    let mut endpoint = None;
    let mut targets = Vec::new();
    let mut publish_target = None;
    let mut heartbeat_ms = 3000;
    let mut skip_negative_setup = false;
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        let mut val = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value"));
        match a.as_str() {
            "--url" => url = Some(val("--url")?),
            "--token" => token = Some(val("--token")?),
            "--token-file" => {
                let p = val("--token-file")?;
                let t = std::fs::read_to_string(&p).map_err(|e| format!("{p}: {e}"))?;
                token = Some(t.trim().to_string());
            }
            "--ca" => {
                let p = val("--ca")?;
                ca = Some(std::fs::read_to_string(&p).map_err(|e| format!("{p}: {e}"))?);
            }
            "--endpoint-config" => {
                let p = val("--endpoint-config")?;
                let text = std::fs::read_to_string(&p).map_err(|e| format!("{p}: {e}"))?;
                endpoint = Some(serde_json::from_str(&text).map_err(|e| format!("{p}: {e}"))?);
            }
            "--target" => targets.push(val("--target")?),
            "--publish-target" => publish_target = Some(val("--publish-target")?),
            "--heartbeat-ms" => {
                heartbeat_ms = val("--heartbeat-ms")?
                    .parse()
                    .map_err(|e| format!("--heartbeat-ms: {e}"))?;
                if !(1000..=120_000).contains(&heartbeat_ms) {
                    return Err("--heartbeat-ms must be 1000..=120000".into());
                }
            }
            "--skip-negative-setup" => skip_negative_setup = true,
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if targets.is_empty() {
        return Err("at least one --target".into());
    }
    Ok(KitConfig {
        url: url.ok_or("--url is required")?,
        token: token.ok_or("--token or --token-file is required")?,
        ca_pem: ca.ok_or("--ca is required")?,
        endpoint: endpoint.ok_or("--endpoint-config is required")?,
        targets,
        publish_target,
        heartbeat_ms,
        skip_negative_setup,
    })
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cfg = match parse(std::env::args().skip(1).collect()) {
        Ok(c) => c,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("ucma-bridge-kit: {e}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let report = run(&cfg).await;
    for c in &report.checks {
        println!("{}", c.line());
    }
    let failed = report
        .checks
        .iter()
        .filter(|c| c.verdict == Verdict::Fail)
        .count();
    println!(
        "{} passed, {failed} failed, {} skipped",
        report
            .checks
            .iter()
            .filter(|c| c.verdict == Verdict::Pass)
            .count(),
        report
            .checks
            .iter()
            .filter(|c| c.verdict == Verdict::Skip)
            .count()
    );
    if failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
