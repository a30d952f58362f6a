//! `sip-simple`: a presence connector for SIP/SIMPLE presence servers and
//! IP-PBXs. It subscribes to `presence` (PIDF/RPID) for rich presence,
//! `dialog` (dialog-info, busy lamp field) for telephony presence, optionally
//! `as-feature-event` (DND, call forwarding) and resource lists (RFC 4662),
//! and writes presence back with PUBLISH.
//!
//! [`core::Core`] holds the protocol and never calls the host; this file
//! owns the transport (through the host's sockets), the timers, and turns the
//! core's actions into host calls and reports.

pub mod body;
// The component's glue; compiled (and type-checked) natively too, where
// nothing calls it.
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
mod component;
pub mod core;
pub mod settings;
pub mod sip;
