//! `skype-ucma`: Skype for Business / Lync presence through a UCMA bridge,
//! a .NET service beside the Front End pool that the connector reaches over
//! WebSocket+TLS with the JSON protocol of `docs/ucma-bridge/PROTOCOL.md`.
//!
//! The bridge establishes the endpoint the operator configured (user
//! endpoint with or without TLS, or trusted application endpoint), watches
//! targets in batches and pushes their presence; the connector maps UCMA
//! availability numbers and activity tokens to the hub's model, follows the
//! bridge through endpoint losses, restarts and reconnects, and writes
//! presence back (publish, restore).
//!
//! [`core::Core`] holds the protocol and never calls the host;
//! `component.rs` carries its actions out through the host's WebSocket
//! client, a timer, the key-value store and reports.

// The component's glue; compiled (and type-checked) natively too, where
// nothing calls it.
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
mod component;
pub mod core;
pub mod mapping;
pub mod settings;
pub mod wire;
