//! SDK for presence connectors: WebAssembly components that target the
//! `presence:connector@0.2.0` contract (world `connector-plugin`) and run
//! inside the presence hub.
//!
//! A connector implements [`Guest`] and exports it with [`export!`]:
//!
//! ```ignore
//! use presence_connector_sdk::{self as sdk, Config, ConnectorError, Guest};
//!
//! struct MyConnector;
//!
//! impl Guest for MyConnector {
//!     fn describe() -> sdk::PluginInfo { /* ... */ }
//!     fn configure(entries: Vec<sdk::ConfigEntry>) -> Result<(), ConnectorError> {
//!         let config = Config::new(entries);
//!         let server = config.text("server")?;
//!         sdk::info!("configured for {server}");
//!         Ok(())
//!     }
//!     // ...
//! }
//!
//! presence_connector_sdk::export!(MyConnector);
//! ```
//!
//! The host functions ([`log`], [`net`], [`http`], [`websocket`], [`timers`],
//! [`kv`], [`report`]) exist only inside a component: on any other target the
//! bindings compile but calling them panics. Keep protocol logic in plain
//! functions so it can be unit-tested natively, and call the imports from a
//! thin layer around it.

pub mod backoff;
mod builders;
mod config;
mod connector;
mod errors;
#[cfg(feature = "graph")]
pub mod graph;
mod logging;
pub mod runtime;
#[cfg(any(test, feature = "testkit"))]
pub mod testkit;
pub mod time;
pub mod urlcode;

// The generated bindings. `pub_export_macro` makes `export!` usable from the
// connector crate, and `default_bindings_module` points that macro back at
// this crate so a connector needs no wit-bindgen setup of its own.
wit_bindgen::generate!({
    path: "../wit/since_v0.2.0",
    world: "connector-plugin",
    pub_export_macro: true,
    default_bindings_module: "presence_connector_sdk",
    // Comparable values make connector unit tests straightforward.
    additional_derives: [PartialEq],
});

pub use builders::{Presence, Request, ResponseExt};
pub use config::{Config, config_field};
pub use connector::{Connector, Cx, Effect, Host, HttpError, Report, WitHost};
pub use errors::{invalid_config, render_failure, render_host_error};

/// The host interfaces a connector imports.
pub use presence::connector::{http, instance, kv, log, net, report, timers, types, websocket};

/// The interface a connector exports, and the records its functions take.
pub use exports::presence::connector::connector::{
    Datagram, Event, Guest, HttpResult, StreamClosed, StreamData, StreamInfo, WebhookRequest,
    WebhookResponse, WebsocketClosed, WebsocketOpen, WsMessage, WsPayload,
};

/// The shared types every connector uses.
pub use types::{
    Activity, Availability, CalendarItem, CalendarPresence, Capabilities, Channels, CloseInfo,
    ConfigEntry, ConfigField, ConfigValue, ConnectorError, ConnectorStatus, DirectoryEntry,
    DndScope, EndpointId, EndpointKind, EndpointState, Failure, FieldError, FieldKind,
    ForwardTarget, Header, HostError, LineState, LoginStep, Ordering, OutOfOffice, PluginInfo,
    PresenceIntent, PresenceUpdate, RefusedUpgrade, RequestId, RichPresence, ShowAs, SocketAddress,
    SocketId, TelephonyPresence, TelephonySource, TimerId, TimestampMs, UpdateOrigin, VendorValue,
    WebsocketId, WriteAction, WriteFailure, WriteId, WriteOutcome, WriteRequest,
};

/// What [`register_connector!`] expands to; not part of the API.
#[doc(hidden)]
pub mod __private {
    pub use crate::connector::WitHost;
    pub use crate::exports::presence::connector::connector::{
        Event, Guest, WebhookRequest, WebhookResponse,
    };
    pub use crate::runtime::Runtime;
    pub use crate::types::{ConfigEntry, ConnectorError, EndpointId, PluginInfo, WriteRequest};
}

/// The contract version these bindings implement: the version of the WIT
/// package `presence:connector`. Write it as `api-version` in `plugin.toml`;
/// the host reads the version from the component's export name and refuses
/// a manifest that says otherwise.
pub const API_VERSION: &str = "0.2.0";

#[cfg(test)]
mod tests {
    use super::API_VERSION;

    #[test]
    fn api_version_matches_the_wit_package() {
        let wit = include_str!("../../wit/since_v0.2.0/connector.wit");
        let package = format!("package presence:connector@{API_VERSION};");
        assert!(wit.contains(&package), "WIT does not declare {package}");
    }
}
