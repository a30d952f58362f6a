//! The presence connector hub.
//!
//! The host owns every socket, every stored byte and every rule; connectors are
//! sandboxed WebAssembly components that speak one presence protocol each.
//!
//! - [`runtime`]: wasmtime engine, plugin registry, one supervised actor per
//!   connector instance, and the host side of the WIT contract.
//! - [`io`]: host-owned sockets, HTTP and WebSocket clients, timers.
//! - [`engine`]: the presence state the connectors' reports build up.
//! - [`presence`]: users, merged presence, notes, the live feed, the event log.
//! - [`store`]: persistence behind a trait, embedded SQLite by default.
//! - [`api`]: the axum REST admin API, webhooks, health and metrics.

pub mod api;
pub mod cluster;
pub mod config;
pub mod engine;
pub mod hub;
pub mod io;
pub mod presence;
pub mod runtime;
pub mod store;
pub mod telemetry;
pub mod timing;

pub use config::HubConfig;
pub use hub::Hub;
