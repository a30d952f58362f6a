//! SIP mechanics: message parsing, stream framing, digest authentication,
//! request building, presence URIs.

pub mod auth;
pub mod framing;
pub mod headers;
pub mod message;
pub mod parse_error;
pub mod request;
#[cfg(test)]
pub(crate) mod torture;
pub mod uri;
pub mod value;

pub use message::{Message, Start, param, uri_of};
pub use parse_error::{Fault, ParseError};
