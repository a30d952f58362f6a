//! SDK for presence connectors: WebAssembly components that target the
//! `presence:connector@0.2.0` contract (world `connector-plugin`) and run
//! inside the presence hub.
//!
//! A connector implements [`Connector`] (`&mut self` methods with defaults)
//! and registers it once with [`register_connector!`], which owns the single
//! instance, answers `not-configured` until a configuration succeeds, and
//! exports the WIT interface. The connector asks its effects context [`Cx`]
//! for timers, HTTP requests and WebSockets, each named by a key of its own
//! type, and for reports; the [`runtime`] carries them out (keyed timers on
//! one host timer, handles mapped back to keys, host refusals fed back as
//! failures). With the `testkit` feature, [`testkit::TestHub`] runs the same
//! runtime natively over a fake host, so a connector is tested with
//! `cargo test`. A connector whose protocol logic is an I/O-free state
//! machine implements [`plain::Core`] instead and registers
//! [`plain::Plain`], the one adapter that makes such a core a [`Connector`].
//! See `sdk/GUIDE.md` for the walk-through.
//!
//! ```ignore
//! use presence_connector_sdk::{self as sdk, Config, Connector, ConnectorError, Cx};
//!
//! struct MyConnector;
//!
//! impl Connector for MyConnector {
//!     type TimerKey = ();
//!     type RequestKey = ();
//!     type SocketKey = ();
//!     fn describe() -> sdk::PluginInfo { /* ... */ }
//!     fn new(cx: &mut Cx<Self>, config: &Config) -> Result<Self, ConnectorError> {
//!         let server = config.text("server")?;
//!         cx.info(format!("configured for {server}"));
//!         Ok(MyConnector)
//!     }
//! }
//!
//! sdk::register_connector!(MyConnector);
//! ```
//!
//! The raw bindings stay available: implementing [`Guest`] and exporting it
//! with [`export!`] still works. The host functions ([`log`], [`net`],
//! [`http`], [`websocket`], [`timers`], [`kv`], [`report`]) exist only inside
//! a component: on any other target the bindings compile but calling them
//! panics, which is why connector code goes through [`Cx`].

pub mod backoff;
mod builders;
mod config;
mod connector;
pub mod days;
mod errors;
#[cfg(feature = "graph")]
pub mod graph;
mod logging;
#[cfg(feature = "oauth")]
pub mod oauth;
pub mod plain;
pub mod retry;
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

pub use builders::{Presence, Request, ResponseExt, WsOptions};
pub use config::{Config, ConnectorConfig, Secret, config_field};
pub use connector::{Connector, Cx, Effect, Host, HttpError, Report, WitHost};
pub use errors::{invalid_config, render_failure, render_host_error};
/// `#[derive(ConnectorConfig)]`: see the [`ConnectorConfig`] trait.
pub use presence_connector_sdk_macros::ConnectorConfig;

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
    /// What `#[derive(ConnectorConfig)]` expands to.
    pub use crate::config::derive as config;
    pub use crate::connector::WitHost;
    pub use crate::exports::presence::connector::connector::{
        Event, Guest, WebhookRequest, WebhookResponse,
    };
    pub use crate::runtime::Runtime;
    pub use crate::types::{ConfigEntry, ConnectorError, EndpointId, PluginInfo, WriteRequest};
}

// The derive names `::presence_connector_sdk`, which inside this crate (its
// own tests) needs this alias.
extern crate self as presence_connector_sdk;

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
