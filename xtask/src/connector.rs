//! `cargo xtask new-connector` and `cargo xtask package`: a connector crate
//! from the template in `sdk/template/`, and a hub-ready plugin folder from
//! any connector crate.
//!
//! The packaged `plugin.toml` is derived, not written: `id`, `version` and
//! `description` from the crate's `Cargo.toml` (the template's `describe()`
//! reads the same values with `env!("CARGO_PKG_…")`, and the hub refuses a
//! component whose `describe()` version differs from the manifest's),
//! `api-version` from the name of the component's `connector` export (as
//! the hub reads it), `component` and `sha256` from the built file. Only
//! `[grants]` and `[limits]` are the author's, in `grants.toml`. The
//! configuration fields are not in the manifest: the hub asks `describe()`
//! for them when it loads the plugin.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};

use crate::{TARGET, cargo};

/// Files of the template whose name ends in this are written without it;
/// the suffix keeps `sdk/template/Cargo.toml.tmpl` from being taken for a
/// package of this workspace.
const TEMPLATE_SUFFIX: &str = ".tmpl";

/// The export whose version is the plugin's contract version.
const CONNECTOR_EXPORT: &str = "presence:connector/connector@";

/// The manifest tables an author writes in `grants.toml`.
const AUTHOR_TABLES: [&str; 2] = ["grants", "limits"];

/// `new-connector NAME [--dir PATH] [--sdk PATH]`.
pub fn new_connector(root: &Path, cwd: &Path, args: &[String]) -> Result<()> {
    let usage = "usage: cargo xtask new-connector NAME [--dir PATH] [--sdk PATH]";
    let mut name = None;
    let mut dir = None;
    let mut sdk = root.join("sdk");
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--dir" => dir = Some(cwd.join(it.next().context(usage)?)),
            "--sdk" => sdk = cwd.join(it.next().context(usage)?),
            other if other.starts_with('-') => bail!("unknown option {other}; {usage}"),
            other if name.is_none() => name = Some(other.to_string()),
            other => bail!("unexpected argument {other}; {usage}"),
        }
    }
    let name = name.context(usage)?;
    check_id(&name)?;
    let dir = dir.unwrap_or_else(|| cwd.join(&name));
    if dir.exists() && std::fs::read_dir(&dir)?.next().is_some() {
        bail!("{} exists and is not empty", dir.display());
    }
    let sdk = sdk
        .canonicalize()
        .with_context(|| format!("the SDK folder {} is missing", sdk.display()))?;
    if !sdk.join("Cargo.toml").exists() {
        bail!("{} holds no Cargo.toml: not the SDK", sdk.display());
    }
    let sdk_path = toml::Value::String(sdk.to_string_lossy().into_owned()).to_string();
    let vars = [
        ("{{name}}", name.clone()),
        ("{{Type}}", type_name(&name)),
        ("{{sdk_path}}", sdk_path),
    ];
    let template = root.join("sdk/template");
    let written = copy_template(&template, &dir, &vars)?;
    // Line widths change with the type name; rustfmt puts them right. Best
    // effort: without rustfmt the code is still correct, only less tidy.
    let _ = cargo()
        .current_dir(&dir)
        .arg("fmt")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    println!(
        "wrote {} ({written} files), a connector `{name}` on the SDK at {}\n\
         next: cd {0} && cargo test && cargo xtask package {0} (in {})",
        dir.display(),
        sdk.display(),
        root.display()
    );
    Ok(())
}

/// The id rules of the hub's manifest, plus a leading letter, which a
/// crate name needs.
fn check_id(name: &str) -> Result<()> {
    let ok = (1..=64).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.ends_with('-');
    if !ok {
        bail!(
            "the name {name:?} cannot be a plugin id: use 1-64 characters a-z, 0-9 and -, \
             starting with a letter (it is both the crate name and the plugin id)"
        );
    }
    Ok(())
}

/// `acme-presence` → `AcmePresence`.
fn type_name(name: &str) -> String {
    name.split('-')
        .filter(|part| !part.is_empty())
        .map(|part| {
            let mut chars = part.chars();
            chars
                .next()
                .map(|c| c.to_ascii_uppercase())
                .into_iter()
                .chain(chars)
                .collect::<String>()
        })
        .collect()
}

fn copy_template(from: &Path, to: &Path, vars: &[(&str, String)]) -> Result<usize> {
    std::fs::create_dir_all(to)?;
    let mut written = 0;
    for entry in std::fs::read_dir(from).with_context(|| format!("reading {}", from.display()))? {
        let entry = entry?;
        let path = entry.path();
        let file_name = entry.file_name().to_string_lossy().into_owned();
        if path.is_dir() {
            written += copy_template(&path, &to.join(&file_name), vars)?;
            continue;
        }
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let text = vars
            .iter()
            .fold(text, |text, (key, value)| text.replace(key, value));
        let out_name = file_name
            .strip_suffix(TEMPLATE_SUFFIX)
            .unwrap_or(&file_name);
        std::fs::write(to.join(out_name), text)?;
        written += 1;
    }
    Ok(written)
}

/// `package PATH [--out DIR] [--wasm FILE]`.
pub fn package(cwd: &Path, args: &[String]) -> Result<()> {
    let usage = "usage: cargo xtask package PATH [--out DIR] [--wasm FILE]";
    let mut crate_dir = None;
    let mut out = None;
    let mut wasm = None;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--out" => out = Some(cwd.join(it.next().context(usage)?)),
            "--wasm" => wasm = Some(cwd.join(it.next().context(usage)?)),
            other if other.starts_with('-') => bail!("unknown option {other}; {usage}"),
            other if crate_dir.is_none() => crate_dir = Some(cwd.join(other)),
            other => bail!("unexpected argument {other}; {usage}"),
        }
    }
    let crate_dir = crate_dir.context(usage)?;
    let package = CratePackage::read(&crate_dir)?;
    let wasm = match wasm {
        Some(wasm) => wasm,
        None => build_component(&crate_dir, &package.name)?,
    };
    let grants = read_author_tables(&crate_dir.join("grants.toml"))?;
    let out = out.unwrap_or_else(|| crate_dir.join("dist").join(&package.name));
    let manifest = write_plugin(&package, &wasm, grants, &out)?;
    println!(
        "packaged {} into {}:\n{manifest}",
        package.name,
        out.display()
    );
    Ok(())
}

/// What the manifest takes from `Cargo.toml`'s `[package]`.
struct CratePackage {
    name: String,
    version: String,
    description: String,
}

impl CratePackage {
    fn read(crate_dir: &Path) -> Result<Self> {
        let path = crate_dir.join("Cargo.toml");
        let table: toml::Table = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?
            .parse()
            .with_context(|| format!("parsing {}", path.display()))?;
        let package = table
            .get("package")
            .and_then(toml::Value::as_table)
            .with_context(|| format!("{} has no [package]", path.display()))?;
        // A value inherited from a workspace (`version.workspace = true`)
        // is a table, not a string: the crate must say it itself.
        let text = |key: &str| -> Result<Option<String>> {
            match package.get(key) {
                None => Ok(None),
                Some(toml::Value::String(s)) => Ok(Some(s.clone())),
                Some(_) => bail!(
                    "{}: package.{key} must be written out (not inherited from a workspace) \
                     to be packaged",
                    path.display()
                ),
            }
        };
        let name = text("name")?.with_context(|| format!("{}: no package.name", path.display()))?;
        check_id(&name)?;
        let version =
            text("version")?.with_context(|| format!("{}: no package.version", path.display()))?;
        Ok(Self {
            name,
            version,
            description: text("description")?.unwrap_or_default(),
        })
    }
}

/// Builds the crate for wasm32-wasip2 in release mode and returns the
/// component cargo reports (wherever its target directory is).
fn build_component(crate_dir: &Path, name: &str) -> Result<PathBuf> {
    let manifest = crate_dir.join("Cargo.toml");
    crate::ensure_target()?;
    let mut cmd = cargo();
    // From the crate's folder, so that its own cargo configuration applies.
    cmd.current_dir(crate_dir)
        .args(["build", "--release", "--target", TARGET, "--lib"])
        .args([
            "--message-format",
            "json-render-diagnostics",
            "--manifest-path",
        ])
        .arg(&manifest)
        .stdout(Stdio::piped());
    let output = cmd
        .spawn()
        .with_context(|| format!("cannot run {cmd:?}"))?
        .wait_with_output()?;
    if !output.status.success() {
        bail!(
            "building {} failed with {}",
            manifest.display(),
            output.status
        );
    }
    let crate_file = name.replace('-', "_");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|message| {
            message["reason"] == "compiler-artifact" && message["target"]["name"] == crate_file
        })
        .flat_map(|message| message["filenames"].as_array().cloned().unwrap_or_default())
        .filter_map(|file| file.as_str().map(PathBuf::from))
        .find(|file| file.extension().is_some_and(|e| e == "wasm"))
        .with_context(|| {
            format!(
                "cargo built no {crate_file}.wasm: is crate-type = [\"cdylib\", …] set in {}?",
                manifest.display()
            )
        })
}

/// `[grants]` and `[limits]` from the author's file; any other table is an
/// error naming it, since everything else is derived.
fn read_author_tables(path: &Path) -> Result<toml::Table> {
    let text = std::fs::read_to_string(path).with_context(|| {
        format!(
            "reading {}: write the plugin's [grants] (network, webhooks, kv) and optional \
             [limits] there",
            path.display()
        )
    })?;
    let table: toml::Table = text
        .parse()
        .with_context(|| format!("parsing {}", path.display()))?;
    for (key, value) in &table {
        if !AUTHOR_TABLES.contains(&key.as_str()) {
            bail!(
                "{}: `{key}` is not the author's to write (only [grants] and [limits]; id, \
                 version, api-version, description, component and sha256 are derived)",
                path.display()
            );
        }
        if !value.is_table() {
            bail!("{}: `{key}` must be a table", path.display());
        }
    }
    if !table.contains_key("grants") {
        bail!("{}: no [grants] table", path.display());
    }
    Ok(table)
}

/// The contract version of a component: the version of its top-level
/// `presence:connector/connector@X.Y.Z` export, as the hub reads it.
fn contract_version(bytes: &[u8]) -> Result<String> {
    use wasmparser::{Encoding, Parser, Payload};
    let mut depth = 0usize;
    for payload in Parser::new(0).parse_all(bytes) {
        match payload.context("the component is not valid WebAssembly")? {
            Payload::Version { encoding, .. } => {
                if depth == 0 && encoding != Encoding::Component {
                    bail!("the file is a core module, not a component: build for {TARGET}");
                }
                depth += 1;
            }
            Payload::End(_) => depth = depth.saturating_sub(1),
            Payload::ComponentExportSection(exports) if depth == 1 => {
                for export in exports {
                    let export = export?;
                    if let Some(version) = export.name.name.strip_prefix(CONNECTOR_EXPORT) {
                        return Ok(version.to_string());
                    }
                }
            }
            _ => {}
        }
    }
    bail!("the component exports no {CONNECTOR_EXPORT}…: it is not a presence connector")
}

/// Writes `out/plugin.toml` and `out/{id}.wasm`; returns the manifest.
fn write_plugin(
    package: &CratePackage,
    wasm: &Path,
    author: toml::Table,
    out: &Path,
) -> Result<String> {
    let bytes = std::fs::read(wasm).with_context(|| format!("reading {}", wasm.display()))?;
    let api_version = contract_version(&bytes)?;
    let file = format!("{}.wasm", package.name);
    let mut manifest = toml::Table::new();
    manifest.insert("id".into(), package.name.clone().into());
    manifest.insert("version".into(), package.version.clone().into());
    manifest.insert("api-version".into(), api_version.into());
    manifest.insert("description".into(), package.description.clone().into());
    manifest.insert("component".into(), file.clone().into());
    manifest.insert("sha256".into(), hex::encode(Sha256::digest(&bytes)).into());
    manifest.extend(author);
    let text = format!(
        "# Generated by `cargo xtask package` from Cargo.toml, grants.toml and the\n\
         # component; edit those, not this file.\n{}",
        toml::to_string(&manifest)?
    );
    std::fs::create_dir_all(out)?;
    std::fs::write(out.join(&file), &bytes)?;
    std::fs::write(out.join("plugin.toml"), &text)?;
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_become_types_and_bad_ids_are_refused() {
        assert_eq!(type_name("acme-presence"), "AcmePresence");
        assert_eq!(type_name("pbx2"), "Pbx2");
        assert!(check_id("acme-presence").is_ok());
        for bad in [
            "",
            "Acme",
            "2pbx",
            "acme_presence",
            "acme-",
            &"a".repeat(65),
        ] {
            assert!(check_id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_author_writes_grants_and_limits_only() {
        let dir = std::env::temp_dir().join(format!("xtask-grants-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("grants.toml");
        std::fs::write(&path, "[grants]\nkv = true\n[limits]\nqueue = 8\n").unwrap();
        let table = read_author_tables(&path).unwrap();
        assert_eq!(table["grants"]["kv"].as_bool(), Some(true));
        std::fs::write(&path, "id = \"x\"\n[grants]\n").unwrap();
        let error = read_author_tables(&path).unwrap_err().to_string();
        assert!(error.contains("`id` is not the author's"), "{error}");
        std::fs::write(&path, "[limits]\nqueue = 8\n").unwrap();
        assert!(read_author_tables(&path).is_err(), "[grants] is required");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_core_module_has_no_contract_version() {
        // The smallest core module: magic and version 1.
        let module = b"\0asm\x01\0\0\0";
        let error = contract_version(module).unwrap_err().to_string();
        assert!(error.contains("core module"), "{error}");
    }
}
