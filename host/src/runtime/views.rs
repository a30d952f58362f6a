//! What the admin API shows of plugins and connector instances, and what it
//! accepts to create or change an instance. Secrets never appear.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;

use super::config_schema::{CapabilitiesSpec, EndpointKindSpec, FieldSpec};
use super::plugin::PluginOrigin;
use super::status::InstanceStatus;
use super::wasm::CompileSource;
use super::wit::ContractVersion;

/// A plugin as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PluginView {
    pub id: String,
    pub version: String,
    /// The contract version, read from the component.
    pub api_version: ContractVersion,
    pub name: String,
    pub description: String,
    pub sha256: String,
    pub size_bytes: usize,
    pub origin: PluginOrigin,
    pub grants: GrantsView,
    pub limits: LimitsView,
    pub config_fields: Vec<FieldSpec>,
    /// The user attributes its instances can watch; the first is the default.
    pub endpoint_kinds: Vec<EndpointKindSpec>,
    pub capabilities: CapabilitiesSpec,
    pub loaded_at_ms: u64,
    pub load_ms: f64,
    pub compile_source: CompileSource,
    pub instances: Vec<String>,
}

/// A plugin's grants.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct GrantsView {
    pub network: Vec<String>,
    pub webhooks: bool,
    pub kv: bool,
}

/// Limits in force.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct LimitsView {
    pub memory_mib: usize,
    pub call_timeout_ms: u32,
    pub queue: usize,
    pub kv_max_bytes: u64,
}

/// A plugin folder that could not be loaded.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct FolderError {
    #[schema(value_type = String)]
    pub path: PathBuf,
    pub error: String,
}

/// A connector instance as the API shows it. Secrets never appear.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ConnectorView {
    pub id: String,
    pub plugin: String,
    pub enabled: bool,
    pub config: BTreeMap<String, serde_json::Value>,
    /// Names of secret fields that have a value.
    pub secrets_set: Vec<String>,
    pub tls_ca_configured: bool,
    pub watches: Vec<String>,
    pub created_at_ms: u64,
    pub updated_at_ms: u64,
    /// Why the instance cannot run (its plugin is missing), if so.
    pub problem: Option<String>,
    /// The node of a cluster that runs it (this node's id, or another's;
    /// `status` is shown by that node). None on a single hub, and while no
    /// node holds its lease.
    pub node: Option<String>,
    pub status: Option<InstanceStatus>,
}

/// A request to create a connector instance.
#[derive(Debug, Clone, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewConnector {
    pub id: String,
    pub plugin: String,
    #[serde(default)]
    pub config: serde_json::Map<String, serde_json::Value>,
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default)]
    pub tls_ca_pem: Option<String>,
    #[serde(default)]
    pub watches: Vec<String>,
}

fn yes() -> bool {
    true
}

/// A change to a connector instance (`PATCH`, a JSON merge patch, RFC
/// 7396): absent fields stay as they are; `config` is merged into the
/// stored configuration: a field given changes, a field given as `null`
/// is removed (its default applies; a secret is forgotten), the others
/// (secrets included) stay.
#[derive(Debug, Clone, Default, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConnectorPatch {
    pub config: Option<serde_json::Map<String, serde_json::Value>>,
    pub enabled: Option<bool>,
    /// `null` removes the CA.
    #[serde(default, with = "double_option")]
    pub tls_ca_pem: Option<Option<String>>,
    pub watches: Option<Vec<String>>,
}

/// A connector instance's settings in full (`PUT`): what is not given
/// takes its default (`enabled`: true, no CA, no watches, configuration
/// defaults), except secret fields, which keep their stored value unless
/// given (they cannot be read back to send again) or given as `null`.
/// `id` and `plugin` may be given; they must be the instance's own.
#[derive(Debug, Clone, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConnectorReplace {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub plugin: Option<String>,
    #[serde(default)]
    pub config: serde_json::Map<String, serde_json::Value>,
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default)]
    pub tls_ca_pem: Option<String>,
    #[serde(default)]
    pub watches: Vec<String>,
}

mod double_option {
    use serde::{Deserialize, Deserializer};
    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Option<String>>, D::Error> {
        Ok(Some(Option::deserialize(d)?))
    }
}
