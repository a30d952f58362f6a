//! The contract versions this hub loads, one bindings module each, behind one
//! enum. The host works in the newest version's types; a plugin built
//! against an older version is called through its own bindings, with its
//! values converted at the boundary.
//!
//! The version comes from the name of the component's `connector` export
//! (`presence:connector/connector@0.2.0`), read before anything is
//! instantiated, never from a string the plugin returns.

pub mod since_v0_1_0;
pub mod since_v0_2_0;

use serde::Serialize;
use wasmtime::Store;
use wasmtime::component::{Component, InstancePre, Linker};

pub use since_v0_2_0::{guest, types};

use super::host::InstanceState;

/// A released version of `presence:connector`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, utoipa::ToSchema)]
pub enum ContractVersion {
    #[schema(rename = "0.1.0")]
    V0_1_0,
    #[schema(rename = "0.2.0")]
    V0_2_0,
}

impl ContractVersion {
    /// Every version this hub loads, oldest first.
    pub const SUPPORTED: [ContractVersion; 2] = [ContractVersion::V0_1_0, ContractVersion::V0_2_0];

    pub fn as_str(self) -> &'static str {
        match self {
            ContractVersion::V0_1_0 => "0.1.0",
            ContractVersion::V0_2_0 => "0.2.0",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::SUPPORTED.into_iter().find(|v| v.as_str() == s)
    }

    /// The supported versions in words, for error messages.
    pub fn supported_list() -> String {
        Self::SUPPORTED
            .iter()
            .map(|v| v.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The version a component was built against, from its exports.
    pub fn of_component(component: &Component) -> Result<Self, VersionError> {
        const PREFIX: &str = "presence:connector/connector@";
        let engine = component.engine();
        let ty = component.component_type();
        let mut found = None;
        for (name, _) in ty.exports(engine) {
            if let Some(v) = name.strip_prefix(PREFIX) {
                found = Some(v.to_owned());
                break;
            }
        }
        let version = found.ok_or(VersionError::NoConnectorExport)?;
        Self::parse(&version).ok_or(VersionError::Unsupported(version))
    }
}

impl std::fmt::Display for ContractVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ContractVersion {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// Why a component's contract version cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VersionError {
    #[error(
        "the component exports no presence:connector/connector interface: it is not a presence connector"
    )]
    NoConnectorExport,
    #[error(
        "the component was built against presence:connector@{0}; this hub loads {list}",
        list = ContractVersion::supported_list()
    )]
    Unsupported(String),
}

/// Add every supported version's imports to the linker.
pub fn add_to_linker(linker: &mut Linker<InstanceState>) -> wasmtime::Result<()> {
    use wasmtime::component::HasSelf;
    since_v0_1_0::ConnectorPlugin::add_to_linker::<_, HasSelf<_>>(linker, |s| s)?;
    since_v0_2_0::ConnectorPlugin::add_to_linker::<_, HasSelf<_>>(linker, |s| s)?;
    Ok(())
}

/// A plugin linked and ready to instantiate, in its own version.
#[derive(Clone)]
pub enum GuestPre {
    V0_1_0(since_v0_1_0::ConnectorPluginPre<InstanceState>),
    V0_2_0(since_v0_2_0::ConnectorPluginPre<InstanceState>),
}

impl GuestPre {
    pub fn new(
        version: ContractVersion,
        pre: InstancePre<InstanceState>,
    ) -> wasmtime::Result<Self> {
        Ok(match version {
            ContractVersion::V0_1_0 => Self::V0_1_0(since_v0_1_0::ConnectorPluginPre::new(pre)?),
            ContractVersion::V0_2_0 => Self::V0_2_0(since_v0_2_0::ConnectorPluginPre::new(pre)?),
        })
    }

    pub async fn instantiate(&self, store: &mut Store<InstanceState>) -> wasmtime::Result<Guest> {
        Ok(match self {
            Self::V0_1_0(p) => Guest::V0_1_0(p.instantiate_async(store).await?),
            Self::V0_2_0(p) => Guest::V0_2_0(p.instantiate_async(store).await?),
        })
    }
}

/// A running plugin's exports, in its own version. Every method takes and
/// returns the newest version's types.
pub enum Guest {
    V0_1_0(since_v0_1_0::ConnectorPlugin),
    V0_2_0(since_v0_2_0::ConnectorPlugin),
}

/// What the plugin said to a write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteAccepted {
    /// Accepted; its outcome follows as a report.
    OutcomeFollows,
    /// Accepted by a plugin whose contract reports no outcome (0.1.0).
    NoOutcome,
}

type Call<T> = wasmtime::Result<Result<T, types::ConnectorError>>;

impl Guest {
    pub fn version(&self) -> ContractVersion {
        match self {
            Self::V0_1_0(_) => ContractVersion::V0_1_0,
            Self::V0_2_0(_) => ContractVersion::V0_2_0,
        }
    }

    pub async fn describe(
        &self,
        store: &mut Store<InstanceState>,
    ) -> wasmtime::Result<types::PluginInfo> {
        match self {
            Self::V0_1_0(g) => {
                let info = g
                    .presence_connector_connector()
                    .call_describe(store)
                    .await?;
                Ok(since_v0_1_0::plugin_info(info))
            }
            Self::V0_2_0(g) => g.presence_connector_connector().call_describe(store).await,
        }
    }

    pub async fn configure(
        &self,
        store: &mut Store<InstanceState>,
        entries: &[types::ConfigEntry],
    ) -> Call<()> {
        match self {
            Self::V0_1_0(g) => {
                let entries: Vec<_> = entries
                    .iter()
                    .cloned()
                    .map(since_v0_1_0::config_entry)
                    .collect();
                let r = g
                    .presence_connector_connector()
                    .call_configure(store, &entries)
                    .await?;
                Ok(r.map_err(since_v0_1_0::connector_error))
            }
            Self::V0_2_0(g) => {
                g.presence_connector_connector()
                    .call_configure(store, entries)
                    .await
            }
        }
    }

    /// Hand over events in order. A 0.1.0 plugin takes them one call each.
    pub async fn handle_events(
        &self,
        store: &mut Store<InstanceState>,
        events: &[guest::Event],
    ) -> Call<()> {
        match self {
            Self::V0_1_0(g) => {
                let c = g.presence_connector_connector();
                let mut outcome = Ok(());
                for e in events {
                    let e = since_v0_1_0::event(e.clone());
                    if let Err(err) = c.call_handle_event(&mut *store, &e).await? {
                        outcome = Err(since_v0_1_0::connector_error(err));
                    }
                }
                Ok(outcome)
            }
            Self::V0_2_0(g) => {
                g.presence_connector_connector()
                    .call_handle_events(store, events)
                    .await
            }
        }
    }

    pub async fn handle_webhook(
        &self,
        store: &mut Store<InstanceState>,
        request: &guest::WebhookRequest,
    ) -> wasmtime::Result<guest::WebhookResponse> {
        match self {
            Self::V0_1_0(g) => {
                let r = since_v0_1_0::webhook_request(request.clone());
                let resp = g
                    .presence_connector_connector()
                    .call_handle_webhook(store, &r)
                    .await?;
                Ok(since_v0_1_0::webhook_response(resp))
            }
            Self::V0_2_0(g) => {
                g.presence_connector_connector()
                    .call_handle_webhook(store, request)
                    .await
            }
        }
    }

    pub async fn watch(
        &self,
        store: &mut Store<InstanceState>,
        endpoints: &[String],
        watch: bool,
    ) -> Call<()> {
        match self {
            Self::V0_1_0(g) => {
                let c = g.presence_connector_connector();
                let r = if watch {
                    c.call_watch(store, endpoints).await?
                } else {
                    c.call_unwatch(store, endpoints).await?
                };
                Ok(r.map_err(since_v0_1_0::connector_error))
            }
            Self::V0_2_0(g) => {
                let c = g.presence_connector_connector();
                if watch {
                    c.call_watch(store, endpoints).await
                } else {
                    c.call_unwatch(store, endpoints).await
                }
            }
        }
    }

    pub async fn write_presence(
        &self,
        store: &mut Store<InstanceState>,
        request: &types::WriteRequest,
    ) -> Call<WriteAccepted> {
        match self {
            Self::V0_1_0(g) => {
                let w = since_v0_1_0::presence_write(request.action.clone());
                let r = g
                    .presence_connector_connector()
                    .call_set_presence(store, &request.endpoint, &w)
                    .await?;
                Ok(r.map(|()| WriteAccepted::NoOutcome)
                    .map_err(since_v0_1_0::connector_error))
            }
            Self::V0_2_0(g) => Ok(g
                .presence_connector_connector()
                .call_write_presence(store, request)
                .await?
                .map(|()| WriteAccepted::OutcomeFollows)),
        }
    }
}
