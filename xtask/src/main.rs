//! Build helper: `cargo xtask <command>`.
//!
//! - `plugins`: install the wasm32-wasip2 target if missing, build every
//!   plugin and test guest as a component, and package each as a folder
//!   (`plugin.toml` with the component's sha256, plus the `.wasm`) under
//!   `dist/plugins/` and `dist/test-plugins/`; the example connectors in
//!   Python and JavaScript (`examples/`) go to `dist/examples/` when their
//!   toolchains are installed (`.ci/install-test-deps.sh`).
//! - `run [ARGS]`: `plugins`, then the hub in release mode on its defaults.
//! - `demo --attach URL`: the same simulated source against a hub that runs
//!   already (`HUB_ADMIN_TOKEN` set to its token); the end-to-end tests use it.
//! - `demo [ARGS]`: `plugins`, then the hub in release mode and, beside it,
//!   a simulated presence source that sets up demo users and pushes changes
//!   through the hub's public API and webhooks (see `demo.rs`).
//! - `test [ARGS]`: `plugins`, build the hub, then every test of the workspace.
//! - `bench [ARGS]`: `plugins`, build the hub and `hub-bench` in release
//!   mode, then run every benchmark (see `bench/README.md`).
//! - `new-connector NAME [--dir PATH] [--sdk PATH]`: a connector crate from
//!   `sdk/template/` (its own workspace, the SDK by path) in `./NAME` or
//!   PATH; it builds, its test-kit tests pass, and it packages itself.
//! - `package PATH [--out DIR] [--wasm FILE]`: build the connector crate at
//!   PATH for wasm32-wasip2 and write a plugin folder (default
//!   `PATH/dist/{id}/`) whose `plugin.toml` is derived from `Cargo.toml`,
//!   the component and the author's `grants.toml` (see `connector.rs`).

mod connector;
mod demo;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};

const TARGET: &str = "wasm32-wasip2";
const PROFILE: &str = "plugin";

/// A component to package: crate, features, plugin id and version override.
struct Build {
    package: &'static str,
    features: &'static str,
    source: &'static str,
    id: &'static str,
    version: Option<&'static str>,
    api_version: Option<&'static str>,
    dest: &'static str,
}

const BUILDS: &[Build] = &[
    Build {
        package: "http-push",
        features: "",
        source: "plugins/http-push",
        id: "http-push",
        version: None,
        api_version: None,
        dest: "plugins",
    },
    Build {
        package: "chaos-guest",
        features: "",
        source: "tests/guests/chaos",
        id: "chaos",
        version: None,
        api_version: None,
        dest: "test-plugins",
    },
    // The same guest as a newer release, for hot-reload tests.
    Build {
        package: "chaos-guest",
        features: "next-version",
        source: "tests/guests/chaos",
        id: "chaos",
        version: Some("0.1.1"),
        api_version: None,
        dest: "test-plugins/chaos-next",
    },
    // Built against presence:connector@0.9.0, which no hub knows: the hub
    // must refuse it. Its manifest says 0.9.0 too; the id is the one the
    // host's tests have always loaded it by.
    Build {
        package: "unknown-version-guest",
        features: "",
        source: "tests/guests/unknown-version",
        id: "chaos-wrong-api",
        version: None,
        api_version: None,
        dest: "test-plugins/chaos-wrong-api",
    },
    // Built against the frozen contract 0.1.0, for compatibility tests.
    Build {
        package: "legacy-guest",
        features: "",
        source: "tests/guests/legacy-v0_1",
        id: "legacy",
        version: None,
        api_version: None,
        dest: "test-plugins/legacy",
    },
    // A third-party connector with an endpoint kind of its own.
    Build {
        package: "acme-guest",
        features: "",
        source: "tests/guests/acme",
        id: "acme-presence",
        version: None,
        api_version: None,
        dest: "test-plugins/acme",
    },
    Build {
        package: "teams-graph",
        features: "",
        source: "plugins/teams-graph",
        id: "teams-graph",
        version: None,
        api_version: None,
        dest: "plugins",
    },
    Build {
        package: "ringcentral",
        features: "",
        source: "plugins/ringcentral",
        id: "ringcentral",
        version: None,
        api_version: None,
        dest: "plugins",
    },
    Build {
        package: "m365-calendar",
        features: "",
        source: "plugins/m365-calendar",
        id: "m365-calendar",
        version: None,
        api_version: None,
        dest: "plugins",
    },
    Build {
        package: "skype-ucma",
        features: "",
        source: "plugins/skype-ucma",
        id: "skype-ucma",
        version: None,
        api_version: None,
        dest: "plugins",
    },
    Build {
        package: "exchange-ews",
        features: "",
        source: "plugins/exchange-ews",
        id: "exchange-ews",
        version: None,
        api_version: None,
        dest: "plugins",
    },
    Build {
        package: "sip-simple",
        features: "",
        source: "plugins/sip-simple",
        id: "sip-simple",
        version: None,
        api_version: None,
        dest: "plugins",
    },
];

/// An example connector in another language, built by its own toolchain
/// (installed by `.ci/install-test-deps.sh`, then used offline) and packaged
/// like the others under `dist/examples/`.
struct Foreign {
    id: &'static str,
    source: &'static str,
    /// The toolchain's command, relative to the workspace root.
    tool: &'static str,
    /// Its arguments, split at white space; `{out}` stands for the
    /// component to write.
    args: &'static str,
}

const FOREIGN: &[Foreign] = &[
    Foreign {
        id: "example-python",
        source: "examples/python-connector",
        tool: "target/py-tools/bin/componentize-py",
        args: "-d wit/since_v0.2.0 -w connector-plugin componentize --stub-wasi \
               -p examples/python-connector app -o {out}",
    },
    // The worked third-party connector: Python on the SDK in sdk/python
    // (linked into the plugin folder as `presence_sdk`, so SDK changes
    // rebuild it; componentize-py does not follow the link, hence `-p`).
    Foreign {
        id: "genesys-cloud",
        source: "plugins/genesys-cloud",
        tool: "target/py-tools/bin/componentize-py",
        args: "-d wit/since_v0.2.0 -w connector-plugin componentize --stub-wasi \
               -p plugins/genesys-cloud -p sdk/python app -o {out}",
    },
    Foreign {
        id: "example-js",
        source: "examples/js-connector",
        tool: "examples/js-connector/node_modules/.bin/componentize-js",
        args: "examples/js-connector/connector.js -w wit/since_v0.2.0 -n connector-plugin \
               -d http fetch-event stdio random clocks -o {out}",
    },
];

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = workspace_root();
    // Paths given to new-connector and package are relative to where the
    // command was typed; everything else runs from the workspace root.
    let cwd = std::env::current_dir()?;
    std::env::set_current_dir(&root)?;
    match args.first().map(String::as_str) {
        Some("plugins") => plugins(&root),
        Some("new-connector") => connector::new_connector(&root, &cwd, &args[1..]),
        Some("package") => connector::package(&cwd, &args[1..]),
        Some("run") => {
            plugins(&root)?;
            run(cargo()
                .args(["run", "--release", "-p", "presence-hub", "--"])
                .args(&args[1..]))
        }
        Some("demo") if args.get(1).map(String::as_str) == Some("--attach") => {
            let url = args
                .get(2)
                .context("usage: cargo xtask demo --attach URL")?;
            demo::attach(url)
        }
        Some("demo") => {
            plugins(&root)?;
            run(cargo().args(["build", "--release", "-p", "presence-hub"]))?;
            demo::run(&root, &args[1..])
        }
        Some("test") => {
            plugins(&root)?;
            run(cargo().args(["build", "-p", "presence-hub"]))?;
            run(cargo().args(["test", "--workspace"]).args(&args[1..]))
        }
        Some("bench") => {
            plugins(&root)?;
            run(cargo().args([
                "build",
                "--release",
                "-p",
                "presence-hub",
                "-p",
                "hub-bench",
            ]))?;
            run(Command::new(root.join("target/release/hub-bench")).args(&args[1..]))
        }
        _ => bail!(
            "usage: cargo xtask plugins | run [hub args] | demo [hub args] | test [cargo test args] | bench [bench args] | new-connector NAME [--dir PATH] [--sdk PATH] | package PATH [--out DIR] [--wasm FILE]"
        ),
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

fn run(cmd: &mut Command) -> Result<()> {
    let status = cmd
        .status()
        .with_context(|| format!("cannot run {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed with {status}");
    }
    Ok(())
}

fn ensure_target() -> Result<()> {
    let out = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .context("rustup is needed to install the wasm32-wasip2 target")?;
    if !String::from_utf8_lossy(&out.stdout)
        .lines()
        .any(|l| l.trim() == TARGET)
    {
        run(Command::new("rustup").args(["target", "add", TARGET]))?;
    }
    Ok(())
}

fn plugins(root: &Path) -> Result<()> {
    ensure_target()?;
    let dist = root.join("dist");
    for b in BUILDS {
        let mut cmd = cargo();
        cmd.args([
            "build",
            "--target",
            TARGET,
            "--profile",
            PROFILE,
            "-p",
            b.package,
        ]);
        if !b.features.is_empty() {
            cmd.args(["--features", b.features]);
        }
        run(&mut cmd)?;
        let wasm = root
            .join("target")
            .join(TARGET)
            .join(PROFILE)
            .join(format!("{}.wasm", b.package.replace('-', "_")));
        let dest = if b.dest.contains('/') {
            dist.join(b.dest)
        } else {
            dist.join(b.dest).join(b.id)
        };
        package(&root.join(b.source), &wasm, &dest, b)?;
    }
    for f in FOREIGN {
        foreign(root, f)?;
    }
    println!("plugins packaged under {}", dist.display());
    Ok(())
}

/// Build one example in another language when its toolchain is installed
/// and its sources changed since the last build; package it.
fn foreign(root: &Path, f: &Foreign) -> Result<()> {
    let tool = root.join(f.tool);
    if !tool.exists() {
        println!(
            "skipping {}: {} is missing; install it with `bash .ci/install-test-deps.sh` (see {}/README.md)",
            f.id, f.tool, f.source
        );
        return Ok(());
    }
    let out = root.join("target/examples").join(format!("{}.wasm", f.id));
    let inputs = [
        root.join(f.source),
        root.join("wit/since_v0.2.0"),
        tool.clone(),
    ];
    if newest(&inputs)? > mtime(&out) {
        std::fs::create_dir_all(out.parent().unwrap())?;
        let out_s = out.to_string_lossy();
        run(Command::new(&tool).args(
            f.args
                .split_whitespace()
                .map(|a| a.replace("{out}", &out_s)),
        ))?;
    }
    let b = Build {
        package: "",
        features: "",
        source: f.source,
        id: f.id,
        version: None,
        api_version: None,
        dest: "examples",
    };
    package(
        &root.join(f.source),
        &out,
        &root.join("dist/examples").join(f.id),
        &b,
    )
}

/// Modification time, or the epoch when missing.
fn mtime(p: &Path) -> std::time::SystemTime {
    p.metadata()
        .and_then(|m| m.modified())
        .unwrap_or(std::time::UNIX_EPOCH)
}

/// The newest modification time below these paths (not in `node_modules`).
fn newest(paths: &[PathBuf]) -> Result<std::time::SystemTime> {
    let mut t = std::time::UNIX_EPOCH;
    for p in paths {
        t = t.max(mtime(p));
        if p.is_dir() {
            for e in std::fs::read_dir(p)? {
                let path = e?.path();
                if !path.ends_with("node_modules") && !path.ends_with("__pycache__") {
                    t = t.max(newest(&[path])?);
                }
            }
        }
    }
    Ok(t)
}

/// Copy the component and write its manifest with the checksum filled in.
fn package(source: &Path, wasm: &Path, dest: &Path, b: &Build) -> Result<()> {
    let bytes = std::fs::read(wasm).with_context(|| format!("reading {}", wasm.display()))?;
    let mut manifest: toml::Table = std::fs::read_to_string(source.join("plugin.toml"))
        .with_context(|| format!("reading {}/plugin.toml", source.display()))?
        .parse()
        .with_context(|| format!("parsing {}/plugin.toml", source.display()))?;
    let file = format!("{}.wasm", b.id);
    manifest.insert("id".into(), b.id.into());
    if let Some(v) = b.version {
        manifest.insert("version".into(), v.into());
    }
    if let Some(v) = b.api_version {
        manifest.insert("api-version".into(), v.into());
    }
    manifest.insert("component".into(), file.clone().into());
    manifest.insert("sha256".into(), hex::encode(Sha256::digest(&bytes)).into());
    std::fs::create_dir_all(dest)?;
    std::fs::write(dest.join(&file), &bytes)?;
    std::fs::write(dest.join("plugin.toml"), toml::to_string(&manifest)?)?;
    Ok(())
}
