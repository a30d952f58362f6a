//! `m365-calendar`: each colleague's day from Microsoft 365 through
//! Microsoft Graph, on the contract's calendar channel. Free/busy comes from
//! `getSchedule` (20 mailboxes per request); where subjects are wanted,
//! from `calendarView`; automatic replies from `mailboxSettings`. It signs
//! in with client credentials (application permissions) and reads every
//! watched calendar each refresh interval, within Graph's throttling and
//! its own request budget.
//!
//! [`core::Core`] holds the protocol and never calls the host;
//! `component.rs` carries its actions out.

#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
mod component;
pub mod core;
pub mod settings;
pub mod wire;
pub mod zones;
