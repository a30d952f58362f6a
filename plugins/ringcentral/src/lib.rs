//! `ringcentral`: a presence connector for RingCentral and its white-label
//! twins (Unify Office, Avaya Cloud Office, ...), which differ only in the
//! server URL.
//!
//! It lists the account's extensions (the hub maps users by email), reads
//! presence within RingCentral's throttling groups, follows changes over
//! the WebSocket API (or WebHook delivery), writes presence back
//! (`PUT …/presence`: DND with a scope, user status, restore, expiry), and
//! runs two rules of the aurenz Presence Hub: reflect DND during RingCentral
//! calls, and force "Accept queue calls" on.
//!
//! [`core::Core`] holds the protocol and never calls the host;
//! `component.rs` carries its actions out through the host's HTTP client,
//! WebSocket client, timers, key-value store and reports.

// The component's glue; compiled (and type-checked) natively too, where
// nothing calls it.
pub mod budget;
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
mod component;
pub mod core;
pub mod layers;
pub mod mapping;
pub mod settings;
pub mod wire;

#[cfg(test)]
mod fuzz;
