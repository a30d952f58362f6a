//! The Debian package (issue 20): built with cargo-deb from the binary the
//! test run built, its contents and maintainer scripts checked, then — as
//! root, as CI runs — installed with dpkg on this machine, started the way
//! its systemd unit starts it (as the `presence-hub` user, with the packaged
//! configuration and plugins), asked for its health and plugins, and purged.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use hub_e2e::root;

fn cargo_deb() -> PathBuf {
    let p = root().join("target/tools/bin/cargo-deb");
    assert!(
        p.exists(),
        "cargo-deb is missing at {}: run `bash .ci/install-test-deps.sh` once",
        p.display()
    );
    p
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{cmd:?} failed:\n{text}");
    text
}

/// Build the .deb into `out` from `target/debug/presence-hub` (built by
/// `cargo xtask test`) and `dist/plugins` (built by `cargo xtask plugins`).
fn build_deb(out: &Path) -> PathBuf {
    run(Command::new(cargo_deb())
        .current_dir(root().join("host"))
        .args([
            "-p",
            "presence-hub",
            "--profile",
            "dev",
            "--no-build",
            "--fast",
            "-q",
        ])
        .arg("-o")
        .arg(out));
    std::fs::read_dir(out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .expect("cargo-deb wrote a .deb")
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn installed() -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", "presence-hub"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
        .unwrap_or(false)
}

#[test]
fn debian_package_builds_installs_starts_and_purges() {
    let out = tempfile::tempdir().unwrap();
    let deb = build_deb(out.path());

    // What it holds.
    let contents = run(Command::new("dpkg-deb").arg("-c").arg(&deb));
    for want in [
        "./usr/bin/presence-hub",
        "./usr/lib/systemd/system/presence-hub.service",
        "./etc/presence-hub/hub.toml",
        "./usr/share/doc/presence-hub/README.md",
    ] {
        assert!(contents.contains(want), "{want} missing:\n{contents}");
    }
    let plugins: Vec<String> = std::fs::read_dir(root().join("dist/plugins"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    assert!(plugins.len() >= 5, "{plugins:?}");
    for p in &plugins {
        let manifest = format!("./usr/share/presence-hub/plugins/{p}/plugin.toml");
        assert!(contents.contains(&manifest), "{manifest} missing");
    }
    let info = run(Command::new("dpkg-deb").arg("-I").arg(&deb));
    assert!(
        info.contains("Depends:") && info.contains("adduser"),
        "{info}"
    );
    let ctl = out.path().join("control");
    run(Command::new("dpkg-deb").arg("-e").arg(&deb).arg(&ctl));
    assert_eq!(
        std::fs::read_to_string(ctl.join("conffiles"))
            .unwrap()
            .trim(),
        "/etc/presence-hub/hub.toml",
        "the configuration survives upgrades as a conffile"
    );

    if !is_root() {
        eprintln!(
            "package: built and inspected; install, start and purge need root \
             (CI runs as root): skipped"
        );
        return;
    }
    assert!(
        !installed(),
        "a presence-hub package is installed on this machine; this test installs and purges \
         its own copy, so remove it first (dpkg --purge presence-hub) or run elsewhere"
    );
    let env = [("DEBIAN_FRONTEND", "noninteractive")];
    run(Command::new("dpkg").envs(env).arg("-i").arg(&deb));
    let purge = Purge;

    // The unit is valid as systemd reads it, and what postinst made.
    // systemd-analyze comes with systemd; a container without it skips
    // this one check.
    match Command::new("systemd-analyze")
        .args(["verify", "/usr/lib/systemd/system/presence-hub.service"])
        .output()
    {
        Ok(verify) => {
            let said = String::from_utf8_lossy(&verify.stderr);
            assert!(
                !said.contains("presence-hub.service:"),
                "systemd-analyze verify: {said}"
            );
        }
        Err(e) => eprintln!("package: systemd-analyze not run ({e}); unit not verified"),
    }
    run(Command::new("getent").args(["passwd", "presence-hub"]));
    let meta = std::fs::metadata("/var/lib/presence-hub").unwrap();
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    assert_eq!(meta.permissions().mode() & 0o777, 0o700);
    assert_ne!(
        meta.uid(),
        0,
        "the data directory belongs to the service user"
    );

    // Started as the unit starts it (only the port differs, for the test).
    let mut hub = Command::new("runuser")
        .args(["-u", "presence-hub", "--"])
        .args([
            "/usr/bin/presence-hub",
            "--config",
            "/etc/presence-hub/hub.toml",
        ])
        .env("HUB_LISTEN", "127.0.0.1:0")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = hub.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut token = None;
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if line.contains("admin token") {
                token = line.split_whitespace().last().map(str::to_string);
            }
            if let Some(url) = line.strip_prefix("presence-hub listening on ") {
                let _ = tx.send((url.to_string(), token.clone()));
            }
        }
    });
    let started = rx.recv_timeout(Duration::from_secs(180));
    let checked = started.as_ref().map(|(url, token)| {
        let token = token.clone().expect("first start prints the admin token");
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let http = reqwest::Client::new();
            let health = http.get(format!("{url}/healthz")).send().await.unwrap();
            let listed: serde_json::Value = http
                .get(format!("{url}/api/v1/plugins"))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            (health.status().as_u16(), listed)
        })
    });
    // SAFETY: kill(2) on our own child; SIGTERM is the unit's stop signal.
    unsafe { libc::kill(hub.id() as i32, libc::SIGTERM) };
    let _ = hub.wait();
    let (status, listed) = checked.expect("the packaged hub starts and prints its address");
    assert_eq!(status, 200);
    let text = listed.to_string();
    for p in &plugins {
        assert!(
            text.contains(&format!("\"{p}\"")),
            "packaged plugin {p} not loaded: {text}"
        );
    }
    assert!(
        std::fs::read_dir("/var/lib/presence-hub")
            .unwrap()
            .any(|e| e.unwrap().file_name() == "hub.db"),
        "the hub keeps its data in /var/lib/presence-hub"
    );

    drop(purge);
    assert!(!installed());
    assert!(
        !Path::new("/var/lib/presence-hub").exists(),
        "purge removes the data"
    );
    assert!(!Path::new("/usr/bin/presence-hub").exists());
}

/// Purges the package however the test ends.
struct Purge;

impl Drop for Purge {
    fn drop(&mut self) {
        let _ = Command::new("dpkg")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .args(["--purge", "presence-hub"])
            .output();
    }
}
