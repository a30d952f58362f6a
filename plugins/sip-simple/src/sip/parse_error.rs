//! Why a SIP message could not be read, and what its sender is owed.
//!
//! A request that fails to parse is answered (RFC 3261 §8.2.2, §18.3,
//! §21.4.1): 400 with a reason phrase naming the fault, or 505 for another
//! SIP version. Without an answer the server retransmits until its
//! transaction times out and may drop the subscription. A response that
//! fails to parse is only dropped: nothing answers a response.

use super::message::Message;
use super::request::response;

/// What is wrong with a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// The first line is neither a request line nor a status line.
    NotSip,
    /// A request line with extra or missing whitespace, a method that is
    /// not a token, or a Request-URI that is not a URI.
    BadRequestLine,
    /// A status line whose code is not three digits from 100 to 699.
    BadStatusLine,
    /// A SIP version other than 2.0.
    Version,
    /// No empty line ends the header section.
    NoEndOfHeaders,
    /// A header line (1-based, after the start line) that is not
    /// `name: value`, or a continuation line with no field before it.
    BadHeaderLine(usize),
    /// A mandatory header field is absent (its long lowercase name).
    Missing(&'static str),
    /// A single-valued header field appears with different values.
    Conflicting(&'static str),
    /// From or To is not a name-addr or addr-spec (open quote or `<`).
    BadAddress(&'static str),
    /// CSeq is not a number below 2^31 followed by a method.
    BadCSeq,
    /// The CSeq method differs from the request method.
    CSeqMismatch,
    /// Content-Length is not a number.
    BadContentLength,
    /// The body is shorter than Content-Length says.
    BodyTruncated {
        /// Content-Length.
        declared: usize,
        /// Bytes after the header section.
        received: usize,
    },
}

impl Fault {
    /// The status code and reason phrase a request with this fault gets.
    pub fn status(&self) -> (u16, &'static str) {
        let reason = match self {
            Self::Version => return (505, "Version Not Supported"),
            Self::NotSip | Self::BadRequestLine | Self::BadStatusLine => "Malformed Request Line",
            Self::NoEndOfHeaders => "Header Section Not Terminated",
            Self::BadHeaderLine(_) => "Malformed Header Line",
            Self::Missing("via") => "Missing Via Header Field",
            Self::Missing("from") => "Missing From Header Field",
            Self::Missing("to") => "Missing To Header Field",
            Self::Missing("call-id") => "Missing Call-ID Header Field",
            Self::Missing("cseq") => "Missing CSeq Header Field",
            Self::Missing(_) => "Missing Mandatory Header Field",
            Self::Conflicting(_) => "Conflicting Header Fields",
            Self::BadAddress(_) => "Malformed From or To",
            Self::BadCSeq => "Malformed CSeq",
            Self::CSeqMismatch => "CSeq Method Mismatch",
            Self::BadContentLength => "Malformed Content-Length",
            Self::BodyTruncated { .. } => "Body Shorter Than Content-Length",
        };
        (400, reason)
    }
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NotSip => f.write_str("not a SIP request or status line"),
            Self::BadRequestLine => f.write_str("malformed request line"),
            Self::BadStatusLine => f.write_str("malformed status line"),
            Self::Version => f.write_str("unsupported SIP version"),
            Self::NoEndOfHeaders => f.write_str("no empty line after the headers"),
            Self::BadHeaderLine(n) => write!(f, "header line {n} is not a header field"),
            Self::Missing(h) => write!(f, "no {h} header"),
            Self::Conflicting(h) => write!(f, "several {h} headers with different values"),
            Self::BadAddress(h) => write!(f, "malformed {h} address"),
            Self::BadCSeq => f.write_str("malformed CSeq"),
            Self::CSeqMismatch => f.write_str("CSeq method differs from the request method"),
            Self::BadContentLength => f.write_str("malformed Content-Length"),
            Self::BodyTruncated { declared, received } => write!(
                f,
                "Content-Length {declared} but only {received} body bytes"
            ),
        }
    }
}

/// A message that could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    fault: Fault,
    start_line: String,
    /// What was read of a request (start line and the well-formed header
    /// fields, no body), to answer it.
    request: Option<Box<Message>>,
}

/// Longest start line kept for logs.
const MAX_LOGGED_START_LINE: usize = 120;

impl ParseError {
    /// `start_line` is the first line as received; `request` what was read
    /// of it when it is a request.
    pub(crate) fn new(fault: Fault, start_line: &str, request: Option<Message>) -> Self {
        Self {
            fault,
            start_line: start_line
                .chars()
                .filter(|c| !c.is_control())
                .take(MAX_LOGGED_START_LINE)
                .collect(),
            request: request.map(Box::new),
        }
    }

    /// What is wrong.
    pub fn fault(&self) -> &Fault {
        &self.fault
    }

    /// The message was a request (its sender waits for an answer).
    pub fn is_request(&self) -> bool {
        self.request.is_some()
    }

    /// The start line, control characters removed and clipped: what a log
    /// shows of the message (never its body).
    pub fn start_line(&self) -> &str {
        &self.start_line
    }

    /// The answer the sender of a request is owed (400 naming the fault,
    /// 505 for another version). `None` for a response, and for a request
    /// without a Via, which no answer could reach or match.
    pub fn answer(&self) -> Option<Vec<u8>> {
        let request = self.request.as_deref()?;
        request.header("via")?;
        let (code, reason) = self.fault.status();
        Some(response(request, code, reason, &[]))
    }
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.fault.fmt(f)
    }
}

impl std::error::Error for ParseError {}
