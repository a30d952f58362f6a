//! `sip-simple`: a presence connector for SIP/SIMPLE presence servers and
//! IP-PBXs. It subscribes to `presence` (PIDF/RPID) for rich presence,
//! `dialog` (dialog-info, busy lamp field) for telephony presence, optionally
//! `as-feature-event` (DND, call forwarding) and resource lists (RFC 4662),
//! and writes presence back with PUBLISH.
//!
//! [`core::Core`] holds the protocol and never calls the host; `component`
//! is the SDK connector around it: the link to the server through the host's
//! sockets, and the core's actions turned into effects.

/// Talc instead of the default (wasi-libc's dlmalloc): parsing a NOTIFY
/// makes many small short-lived allocations, and dlmalloc took about a
/// quarter of the plugin's time under `perf`. With wasm SIMD (see
/// `.cargo/config.toml`) one NOTIFY costs about 10% less (bench/README.md).
#[cfg(all(target_family = "wasm", not(target_feature = "atomics")))]
#[global_allocator]
static ALLOC: talc::wasm::WasmDynamicTalc = talc::wasm::new_wasm_dynamic_allocator();

mod blf;
pub mod body;
mod close;
mod component;
pub mod core;
#[cfg(test)]
mod corpus;
mod echo;
mod endpoint_state;
mod info;
mod publication;
pub mod settings;
pub mod sip;

presence_connector_sdk::register_connector!(component::SipSimple);
