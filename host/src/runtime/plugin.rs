//! Loading a plugin: manifest, checksum, compilation, linking against the
//! contract, and the plugin's own description.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use super::config_schema::PluginInfo;
use super::grants::Grants;
use super::host::{Identity, Services};
use super::manifest::{EffectiveLimits, Manifest, ManifestError};
use super::status::StatusCell;
use super::wasm::{CompileSource, WasmHost};
use super::wit::{ContractVersion, GuestPre, VersionError};
use crate::io::EventSink;
use crate::telemetry::ConnectorLabels;

/// Where a plugin came from.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum PluginOrigin {
    /// The plugins directory (this folder).
    Directory {
        #[schema(value_type = String)]
        path: PathBuf,
    },
    /// Uploaded through the API and kept in the database.
    Uploaded,
}

/// A plugin ready to instantiate.
pub struct LoadedPlugin {
    pub manifest: Manifest,
    pub info: PluginInfo,
    pub sha256: String,
    pub size_bytes: usize,
    pub origin: PluginOrigin,
    pub limits: EffectiveLimits,
    pub loaded_at_ms: u64,
    pub load_ms: f64,
    pub compile_source: CompileSource,
    pub pre: GuestPre,
}

/// Why a plugin was refused.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "component sha256 is {actual}, the manifest says {expected}: the upload is corrupt or the manifest is stale"
    )]
    Checksum { expected: String, actual: String },
    #[error("manifest field `sha256` is required for uploads")]
    MissingChecksum,
    #[error("not a valid WebAssembly component: {0}")]
    Compile(String),
    #[error(
        "the component is {size} bytes, more than the {max} this hub loads (max_upload_bytes, HUB_MAX_UPLOAD_BYTES)"
    )]
    TooLarge { size: usize, max: usize },
    #[error("the component does not fit presence:connector@{0}: {1}")]
    Link(ContractVersion, String),
    #[error(transparent)]
    Version(#[from] VersionError),
    #[error("the plugin's describe call failed: {0}")]
    Describe(String),
    #[error("the plugin describes itself as {field} {found:?} but the manifest says {expected:?}")]
    Mismatch {
        field: &'static str,
        found: String,
        expected: String,
    },
    #[error("the plugin's configuration fields are invalid: {0}")]
    BadDescription(String),
}

impl LoadError {
    /// The request field at fault, for API errors: the upload's part, and
    /// within the manifest the key (`manifest.limits.memory-mib`).
    pub fn field(&self) -> String {
        match self {
            LoadError::Manifest(m) => match m.field() {
                Some(f) => format!("manifest.{f}"),
                None => "manifest".into(),
            },
            LoadError::Checksum { .. } | LoadError::MissingChecksum => "manifest.sha256".into(),
            LoadError::Mismatch { field, .. } => format!("manifest.{field}"),
            _ => "component".into(),
        }
    }
}

/// Hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Load a plugin from its manifest text and component bytes.
pub async fn load(
    wasm: &WasmHost,
    services: &Services,
    hub_limits: &crate::config::Limits,
    manifest_text: &str,
    component: &[u8],
    origin: PluginOrigin,
    require_checksum: bool,
) -> Result<LoadedPlugin, LoadError> {
    let started = Instant::now();
    let manifest = Manifest::parse(manifest_text)?;
    if component.len() > hub_limits.max_upload_bytes {
        return Err(LoadError::TooLarge {
            size: component.len(),
            max: hub_limits.max_upload_bytes,
        });
    }
    // Hashing tens of MB is CPU work: off the async workers too.
    let owned = component.to_vec();
    let actual = tokio::task::spawn_blocking(move || sha256_hex(&owned))
        .await
        .map_err(|e| LoadError::Compile(format!("hash task failed: {e}")))?;
    match &manifest.sha256 {
        Some(expected) if !expected.eq_ignore_ascii_case(&actual) => {
            return Err(LoadError::Checksum {
                expected: expected.clone(),
                actual,
            });
        }
        None if require_checksum => return Err(LoadError::MissingChecksum),
        _ => {}
    }
    let (component_c, compile_source) = wasm
        .compile(component, &actual)
        .await
        .map_err(|e| LoadError::Compile(format!("{e:#}")))?;
    let checked = check_compiled(wasm, services, hub_limits, &manifest, component_c, &actual).await;
    if checked.is_err() && compile_source == CompileSource::Compiled {
        // A refused component leaves no compiled file behind.
        wasm.forget(&actual);
    }
    let (info, pre, limits, _version) = checked?;
    Ok(LoadedPlugin {
        manifest,
        info,
        sha256: actual,
        size_bytes: component.len(),
        origin,
        limits,
        loaded_at_ms: crate::store::now_ms(),
        load_ms: started.elapsed().as_secs_f64() * 1000.0,
        compile_source,
        pre,
    })
}

/// What a compiled component must pass: its contract version read from the
/// component (the manifest must agree), linking, and its own description.
async fn check_compiled(
    wasm: &WasmHost,
    services: &Services,
    hub_limits: &crate::config::Limits,
    manifest: &Manifest,
    component_c: wasmtime::component::Component,
    _sha256: &str,
) -> Result<(PluginInfo, GuestPre, EffectiveLimits, ContractVersion), LoadError> {
    // The contract version is read from the component itself, before
    // anything runs; the manifest must agree with it.
    let version = ContractVersion::of_component(&component_c)?;
    if version.as_str() != manifest.api_version {
        return Err(LoadError::Mismatch {
            field: "api-version",
            found: version.as_str().to_owned(),
            expected: manifest.api_version.clone(),
        });
    }
    let pre = wasm
        .linker
        .instantiate_pre(&component_c)
        .map_err(|e| LoadError::Link(version, format!("{e:#}")))?;
    let pre =
        GuestPre::new(version, pre).map_err(|e| LoadError::Link(version, format!("{e:#}")))?;
    let limits = manifest.effective_limits(hub_limits);
    let info = describe(wasm, services, manifest, &limits, &pre).await?;
    if info.version != manifest.version {
        return Err(LoadError::Mismatch {
            field: "version",
            found: info.version.clone(),
            expected: manifest.version.clone(),
        });
    }
    info.check().map_err(LoadError::BadDescription)?;
    Ok((info, pre, limits, version))
}

/// Instantiate once in a throwaway, grant-less sandbox and ask the plugin
/// what it is.
async fn describe(
    wasm: &WasmHost,
    services: &Services,
    manifest: &Manifest,
    limits: &EffectiveLimits,
    pre: &GuestPre,
) -> Result<PluginInfo, LoadError> {
    let (tx, _rx) = mpsc::channel(1);
    let sink = EventSink::new(tx, 0, Default::default());
    let tls =
        crate::io::tls::client_config(None).map_err(|e| LoadError::Describe(e.to_string()))?;
    let id = Identity {
        instance: format!("describe:{}", manifest.id).into(),
        labels: ConnectorLabels {
            instance: String::new(),
            plugin: manifest.id.clone(),
        },
        grants: Grants::default(),
        kv_enabled: false,
        kv_max_bytes: 0,
        webhook_base_url: None,
    };
    let probe_services = Services {
        presence: crate::presence::Inbox::detached(),
        ..services.clone()
    };
    let mut store = wasm
        .new_store(
            id,
            sink,
            tls,
            probe_services,
            Arc::new(StatusCell::new(&manifest.version)),
            limits,
        )
        .map_err(|e| LoadError::Describe(e.to_string()))?;
    let guest = pre
        .instantiate(&mut store)
        .await
        .map_err(|e| LoadError::Describe(format!("{e:#}")))?;
    WasmHost::arm_deadline(&mut store, limits.call_timeout_ms);
    let info = guest
        .describe(&mut store)
        .await
        .map_err(|e| LoadError::Describe(format!("{e:#}")))?;
    Ok(PluginInfo::from_wit(info, guest.version()))
}

/// Read `plugin.toml` and its component from a plugin folder.
pub fn read_folder(dir: &Path) -> Result<(String, Vec<u8>), LoadError> {
    let manifest_path = dir.join("plugin.toml");
    let text = std::fs::read_to_string(&manifest_path).map_err(|source| LoadError::Read {
        path: manifest_path.clone(),
        source,
    })?;
    let manifest = Manifest::parse(&text)?;
    let component_path = dir.join(manifest.component_file());
    let bytes = std::fs::read(&component_path).map_err(|source| LoadError::Read {
        path: component_path,
        source,
    })?;
    Ok((text, bytes))
}
