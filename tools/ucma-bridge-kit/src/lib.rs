//! Conformance kit for UCMA bridges.
//!
//! Plays the hub's side of the UCMA bridge protocol
//! (`docs/ucma-bridge/PROTOCOL.md`) against a running bridge, validates
//! every message the bridge sends against the published JSON Schema, and
//! checks the documented behaviour: the bearer refusal, version negotiation,
//! the bridge's proof, set-up answers, per-target watch results, presence
//! pushes, heartbeats, publish/restore and reconnect with resubscription.
//! [`run`] returns one [`Check`] per check (section 12 of the protocol
//! lists them); the `ucma-bridge-kit` binary prints them.

pub mod protocol;
mod runner;

pub use runner::{CHECKS, Check, KitConfig, Report, Verdict, run};
