//! `sip-simple`: a presence connector for SIP/SIMPLE presence servers and
//! IP-PBXs. It subscribes to `presence` (PIDF/RPID) for rich presence,
//! `dialog` (dialog-info, busy lamp field) for telephony presence, optionally
//! `as-feature-event` (DND, call forwarding) and resource lists (RFC 4662),
//! and writes presence back with PUBLISH.
//!
//! [`core::Core`] holds the protocol and never calls the host; this file
//! owns the transport (through the host's sockets), the timers, and turns the
//! core's actions into host calls and reports.

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
// The component's glue; compiled (and type-checked) natively too, where
// nothing calls it.
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
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
