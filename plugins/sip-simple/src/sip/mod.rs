//! SIP mechanics: message parsing, stream framing, digest authentication,
//! request building.

pub mod auth;
pub mod framing;
pub mod message;
pub mod request;

pub use message::{Message, Start, param, uri_of};
