//! `teams-graph`: a presence connector for Microsoft Teams through Microsoft
//! Graph. It reads presence with `getPresencesByUserId` in batches of at
//! most 650 users, follows changes through change-notification
//! subscriptions on `/communications/presences` (or polls where no public
//! notification URL can be given), writes presence back with `setPresence`
//! or `setUserPreferredPresence`, and signs in with OAuth 2.0 (client
//! credentials, device code or authorization code, refresh tokens kept in
//! the key-value store).
//!
//! [`core::Core`] holds the protocol and never calls the host;
//! `component.rs` makes it an SDK connector, whose effects context carries
//! its actions out.

// Registered with the SDK; natively nothing calls it.
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
mod component;
pub mod core;
pub mod mapping;
pub mod settings;
pub mod time;
pub mod wire;

#[cfg(test)]
mod fuzz;
