//! Message bodies carried by SIP presence traffic: PIDF/RPID (RFC 3863,
//! 4479, 4480), dialog-info (RFC 4235), Broadsoft `as-feature-event`
//! (DND / call forwarding), MIME multipart (RFC 2046) and RLMI resource
//! lists (RFC 4662).
//!
//! Everything here is pure: bytes in, typed values out. The parsers never
//! panic on any input (a mutation test in the normal suite and the cargo-fuzz
//! target in `fuzz/` hold them to that) and refuse oversized input up front,
//! because a presence server or PBX is a remote party we do not control.
//!
//! XML is read namespace-aware with quick-xml: elements are matched by
//! namespace URI and local name, so any prefix works; unknown elements,
//! attributes, comments, processing instructions and CDATA are tolerated;
//! an XML declaration naming another encoding is ignored and the bytes are
//! read as UTF-8 (invalid sequences become U+FFFD) because every server we
//! target sends UTF-8 or ASCII in practice; a leading UTF-8 BOM is skipped.

pub mod dialog_info;
pub mod feature_event;
pub mod multipart;
pub mod pidf;
pub mod rlmi;
mod rpid;
mod xml;

#[cfg(test)]
mod fixtures;
#[cfg(test)]
pub(crate) mod robustness;

use std::fmt;

pub use dialog_info::{
    ApplyOutcome, Dialog, DialogInfo, DialogState, DialogTracker, Direction, parse_dialog_info,
};
pub use feature_event::{
    DeviceFeatures, FeatureEvent, FeatureEvents, FeatureState, ForwardKind, ForwardSetting,
    parse_feature_event, parse_feature_events,
};
pub use multipart::{Multipart, MultipartKind, Part, media_type, parse_multipart};
pub use pidf::{Pidf, build_pidf, parse_pidf};
pub use rlmi::{
    Instance, InstanceState, Resource, ResourceBody, Rlmi, RlsNotify, parse_rlmi, parse_rls_notify,
};

/// Largest body any parser accepts. Presence bodies are a few KiB; an RLS
/// NOTIFY for a few hundred resources stays well below this. Anything larger
/// is refused before parsing so a hostile peer cannot make us allocate much.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Deepest XML element nesting accepted. quick-xml does not limit depth and
/// our tree builder would happily follow; none of the formats here needs
/// more than about eight levels.
pub const MAX_XML_DEPTH: usize = 64;

/// Most XML elements accepted in one document. Bounds the memory of the
/// parsed tree (an element costs far more than the four bytes of `<a/>`).
pub const MAX_XML_ELEMENTS: usize = 100_000;

/// Why a body could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyError {
    /// The body is larger than [`MAX_BODY_BYTES`].
    TooLarge {
        /// Size of the refused body.
        size: usize,
        /// The limit it exceeded.
        limit: usize,
    },
    /// Elements nest deeper than [`MAX_XML_DEPTH`].
    TooDeep {
        /// The limit that was exceeded.
        limit: usize,
    },
    /// More elements than [`MAX_XML_ELEMENTS`].
    TooManyElements {
        /// The limit that was exceeded.
        limit: usize,
    },
    /// The XML is not well formed; the text is quick-xml's diagnosis.
    Xml(String),
    /// The document ends inside an element (a truncated body).
    Truncated,
    /// No root element at all (empty or non-XML body).
    NoRootElement,
    /// The root element is not the one this parser reads.
    UnexpectedRoot {
        /// What the parser expected, as `{namespace}local`.
        expected: &'static str,
        /// What the document had, as `{namespace}local`.
        found: String,
    },
    /// A required attribute or child element is absent.
    Missing {
        /// Element that lacks it.
        element: &'static str,
        /// The missing attribute or child.
        item: &'static str,
    },
    /// A value outside its allowed set or syntax.
    InvalidValue {
        /// What the value is (attribute or element name).
        what: &'static str,
        /// The offending value, shortened for logs.
        value: String,
    },
    /// The Content-Type is not the kind of body this parser reads.
    UnexpectedContentType(String),
    /// A multipart body is malformed; the text says how.
    Multipart(String),
    /// An RLMI instance points at a MIME part (by Content-ID) that is absent.
    MissingPart {
        /// The Content-ID without angle brackets.
        cid: String,
    },
}

impl fmt::Display for BodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooLarge { size, limit } => {
                write!(f, "body of {size} bytes exceeds the {limit}-byte limit")
            }
            Self::TooDeep { limit } => write!(f, "XML nests deeper than {limit} levels"),
            Self::TooManyElements { limit } => write!(f, "XML has more than {limit} elements"),
            Self::Xml(msg) => write!(f, "malformed XML: {msg}"),
            Self::Truncated => f.write_str("XML document is truncated (unclosed elements)"),
            Self::NoRootElement => f.write_str("body holds no XML element"),
            Self::UnexpectedRoot { expected, found } => {
                write!(f, "expected root element {expected}, found {found}")
            }
            Self::Missing { element, item } => write!(f, "<{element}> lacks required {item}"),
            Self::InvalidValue { what, value } => write!(f, "invalid {what}: {value:?}"),
            Self::UnexpectedContentType(ct) => write!(f, "unexpected content type {ct:?}"),
            Self::Multipart(msg) => write!(f, "malformed multipart body: {msg}"),
            Self::MissingPart { cid } => write!(f, "no MIME part with Content-ID <{cid}>"),
        }
    }
}

impl std::error::Error for BodyError {}

/// Refuses bodies over [`MAX_BODY_BYTES`]; every public parser calls it first.
pub(crate) fn check_size(body: &[u8]) -> Result<(), BodyError> {
    if body.len() > MAX_BODY_BYTES {
        return Err(BodyError::TooLarge {
            size: body.len(),
            limit: MAX_BODY_BYTES,
        });
    }
    Ok(())
}

/// Shortens a value for an error message or a diagnostic without splitting
/// a UTF-8 character.
pub(crate) fn clip(value: &str, max_chars: usize) -> String {
    match value.char_indices().nth(max_chars) {
        Some((idx, _)) => value[..idx].to_string(),
        None => value.to_string(),
    }
}

/// Builds an [`BodyError::InvalidValue`] with the value shortened for logs.
pub(crate) fn invalid(what: &'static str, value: &str) -> BodyError {
    BodyError::InvalidValue {
        what,
        value: clip(value, 64),
    }
}

/// XML Schema boolean (`true`/`false`/`1`/`0`), leniently cased because
/// phones are not consistent.
pub(crate) fn parse_xs_bool(text: &str) -> Option<bool> {
    let t = text.trim();
    if t.eq_ignore_ascii_case("true") || t == "1" {
        Some(true)
    } else if t.eq_ignore_ascii_case("false") || t == "0" {
        Some(false)
    } else {
        None
    }
}
