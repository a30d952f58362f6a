//! Incoming SIP messages (RFC 3261 §7): the start line, the header fields
//! unfolded and named in their long lowercase form (see [`super::headers`]),
//! and the body cut to its Content-Length.
//!
//! Parsing accepts every form the header grammar allows and checks what the
//! hub relies on: the start line, that every header line is a field, the
//! fields every message must carry (Via, From, To, Call-ID, CSeq), CSeq and
//! Content-Length syntax, and a body as long as declared. Anything else
//! (an odd Max-Forwards, an unknown header with a strange value, a Date in
//! the wrong zone) is kept as sent: refusing it would lose a NOTIFY over a
//! field the hub never reads. A failure is a [`ParseError`] that says
//! whether the message was a request and what its sender is owed.

use super::headers;
use super::parse_error::{Fault, ParseError};
use super::value::{address, delta_seconds};

pub use super::value::{param, split_list, uri_of};

/// A parsed SIP request or response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub start: Start,
    /// `(lowercase long name, value)` in order; Via, Route and Record-Route
    /// lists are split into one entry per value.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// The start line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Start {
    Request {
        method: String,
        uri: String,
    },
    /// `reason` is the Reason-Phrase as sent (possibly empty).
    Response {
        code: u16,
        reason: String,
    },
}

/// Header fields every request and response carries (RFC 3261 §8.1.1,
/// §8.2.6.2); without them the hub can match nothing.
const MANDATORY: [&str; 5] = ["via", "from", "to", "call-id", "cseq"];

/// Header fields that appear once; two different values are a fault.
const SINGLE: [&str; 5] = ["from", "to", "call-id", "cseq", "content-length"];

/// CSeq numbers are below 2^31 (§8.1.1.5).
const MAX_CSEQ: u32 = (1 << 31) - 1;

impl Message {
    /// Parse one message: a whole datagram (octets after Content-Length are
    /// ignored, §18.3) or one framed message off a stream.
    pub fn parse(bytes: &[u8]) -> Result<Message, ParseError> {
        // §7.5: line breaks before the start line are ignored.
        let skip = bytes
            .iter()
            .position(|b| !matches!(b, b'\r' | b'\n'))
            .unwrap_or(bytes.len());
        let bytes = &bytes[skip..];
        let line_end = bytes
            .iter()
            .position(|&b| b == b'\n')
            .unwrap_or(bytes.len());
        let first = String::from_utf8_lossy(&bytes[..line_end]);
        let first = first.strip_suffix('\r').unwrap_or(&first);
        let (start, start_fault) = start_line(first);

        let section_start = (line_end + 1).min(bytes.len());
        let (section_end, body_start, end_fault) = match headers::section_end(bytes) {
            Some((end, body)) => (end.max(section_start), body, None),
            None => (bytes.len(), bytes.len(), Some(Fault::NoEndOfHeaders)),
        };
        let section = String::from_utf8_lossy(&bytes[section_start..section_end]);
        let (fields, bad_line) = headers::fields(&section);
        let mut msg = Message {
            start,
            headers: split_lists(fields),
            body: Vec::new(),
        };
        let rest = &bytes[body_start..];
        let fault = start_fault
            .or(end_fault)
            .or(bad_line.map(Fault::BadHeaderLine))
            .or_else(|| msg.header_fault())
            .or_else(|| match msg.body_len(rest.len()) {
                Ok(len) => {
                    msg.body = rest[..len].to_vec();
                    None
                }
                Err(f) => Some(f),
            });
        match fault {
            None => Ok(msg),
            Some(fault) => {
                let request = matches!(msg.start, Start::Request { .. }) && fault != Fault::NotSip;
                Err(ParseError::new(fault, first, request.then_some(msg)))
            }
        }
    }

    /// The first fault among the fields the hub relies on.
    fn header_fault(&self) -> Option<Fault> {
        if let Some(name) = MANDATORY.iter().find(|n| self.header(n).is_none()) {
            return Some(Fault::Missing(name));
        }
        if let Some(name) = SINGLE.iter().find(|n| {
            let mut values = self.headers_named(n);
            let first = values.next();
            values.any(|v| Some(v) != first)
        }) {
            return Some(Fault::Conflicting(name));
        }
        for (name, shown) in [("from", "From"), ("to", "To")] {
            if self.header(name).and_then(address).is_none() {
                return Some(Fault::BadAddress(shown));
            }
        }
        let Some((_, method)) = self.header("cseq").and_then(cseq_parts) else {
            return Some(Fault::BadCSeq);
        };
        // Methods are case-sensitive (§7.1), but a server writing `notify`
        // in CSeq of a NOTIFY still means that NOTIFY: refusing it would
        // lose the notification over a letter case.
        match self.method() {
            Some(m) if !m.eq_ignore_ascii_case(method) => Some(Fault::CSeqMismatch),
            _ => None,
        }
    }

    /// The body length: Content-Length, or the rest of a datagram without one.
    fn body_len(&self, received: usize) -> Result<usize, Fault> {
        let Some(v) = self.header("content-length") else {
            return Ok(received);
        };
        let declared = v
            .bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| v.parse::<usize>().ok())
            .flatten()
            .ok_or(Fault::BadContentLength)?;
        if declared > received {
            return Err(Fault::BodyTruncated { declared, received });
        }
        Ok(declared)
    }
    /// First value of a header (long lowercase name).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of a header, in order.
    pub fn headers_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn code(&self) -> Option<u16> {
        match &self.start {
            Start::Response { code, .. } => Some(*code),
            Start::Request { .. } => None,
        }
    }

    pub fn method(&self) -> Option<&str> {
        match &self.start {
            Start::Request { method, .. } => Some(method),
            Start::Response { .. } => None,
        }
    }

    /// The CSeq number and method (uppercased).
    pub fn cseq(&self) -> Option<(u32, String)> {
        let (n, method) = cseq_parts(self.header("cseq")?)?;
        Some((n, method.to_ascii_uppercase()))
    }

    /// The branch of the top Via.
    pub fn branch(&self) -> Option<String> {
        param(self.header("via")?, "branch")
    }

    /// A delta-seconds header such as Expires or Min-Expires.
    pub fn int_header(&self, name: &str) -> Option<u32> {
        delta_seconds(self.header(name)?)
    }

    /// Retry-After in seconds (RFC 3261 §20.33): the delta-seconds before
    /// any comment ("120 (maintenance)") or parameter (";duration=60").
    pub fn retry_after_secs(&self) -> Option<u32> {
        let v = self.header("retry-after")?.trim_start();
        let end = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
        delta_seconds(&v[..end])
    }

    /// The media type of the body, lowercased, without parameters.
    pub fn content_type(&self) -> Option<String> {
        self.header("content-type").map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
    }
}

/// Via, Route and Record-Route may list several values in one field; each
/// becomes an entry of its own so the top one can be read alone.
fn split_lists(fields: Vec<(String, String)>) -> Vec<(String, String)> {
    let mut out = Vec::with_capacity(fields.len());
    for (name, value) in fields {
        if matches!(name.as_str(), "via" | "route" | "record-route") {
            out.extend(split_list(&value).into_iter().map(|v| (name.clone(), v)));
        } else {
            out.push((name, value));
        }
    }
    out
}

/// `CSeq = 1*DIGIT LWS Method`: the number (leading zeros allowed, below
/// 2^31) and the method as sent.
fn cseq_parts(value: &str) -> Option<(u32, &str)> {
    let mut it = value.split_whitespace();
    let (number, method) = (it.next()?, it.next()?);
    if it.next().is_some()
        || !number.bytes().all(|b| b.is_ascii_digit())
        || !method.bytes().all(headers::is_token_byte)
    {
        return None;
    }
    let n = delta_seconds(number).filter(|n| *n <= MAX_CSEQ)?;
    Some((n, method))
}

/// Reads the start line. The [`Start`] is returned even with a fault, as
/// far as it could be read, so a faulty request can still be answered.
fn start_line(line: &str) -> (Start, Option<Fault>) {
    let is_version = |v: &str| v.eq_ignore_ascii_case("SIP/2.0");
    // `SIP/1*DIGIT.1*DIGIT` other than 2.0: answered 505, not 400.
    let other_version = |v: &str| {
        v.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("SIP/"))
            && v[4..].split_once('.').is_some_and(|(major, minor)| {
                [major, minor]
                    .iter()
                    .all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
            })
    };
    if line
        .get(..4)
        .is_some_and(|p| p.eq_ignore_ascii_case("SIP/"))
    {
        // Status-Line = SIP-Version SP Status-Code SP Reason-Phrase; the
        // phrase may be empty and the SP before it missing.
        let mut parts = line.splitn(3, ' ');
        let version = parts.next().unwrap_or("");
        let code = parts.next().unwrap_or("");
        let reason = parts.next().unwrap_or("").to_string();
        let start = |code| Start::Response {
            code,
            reason: reason.clone(),
        };
        let valid_code = code.len() == 3
            && code.bytes().all(|b| b.is_ascii_digit())
            && (b'1'..=b'6').contains(&code.as_bytes()[0]);
        return match (is_version(version), valid_code) {
            (true, true) => (start(code.parse().unwrap_or(0)), None),
            _ if other_version(version) && valid_code => (start(0), Some(Fault::Version)),
            _ => (start(0), Some(Fault::BadStatusLine)),
        };
    }
    // Request-Line = Method SP Request-URI SP SIP-Version: single spaces,
    // no whitespace inside the three elements (§7.1).
    let parts: Vec<&str> = line.split(' ').collect();
    let start = Start::Request {
        method: parts[0].to_string(),
        uri: parts.get(1).copied().unwrap_or("").to_string(),
    };
    let version = parts.last().copied().unwrap_or("");
    let fault = if parts.len() != 3 {
        let attempt = parts[1..].iter().any(|p| is_version(p) || other_version(p));
        Some(if attempt {
            Fault::BadRequestLine
        } else {
            Fault::NotSip
        })
    } else if !is_version(version) {
        Some(if other_version(version) {
            Fault::Version
        } else {
            Fault::NotSip
        })
    } else if parts[0].is_empty()
        || !parts[0].bytes().all(headers::is_token_byte)
        || !is_uri(parts[1])
    {
        Some(Fault::BadRequestLine)
    } else {
        None
    };
    (start, fault)
}

/// `scheme ":" something` with nothing a URI cannot hold unescaped (no
/// angle brackets, quotes, whitespace or control characters).
fn is_uri(text: &str) -> bool {
    let Some((scheme, rest)) = text.split_once(':') else {
        return false;
    };
    scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
        && !rest.is_empty()
        && !text
            .chars()
            .any(|c| c.is_control() || c.is_whitespace() || matches!(c, '<' | '>' | '"'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::torture;

    const NOTIFY: &str = "NOTIFY sip:hub@127.0.0.1:5070;transport=udp SIP/2.0\r\n\
Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKabc, SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKdef\r\n\
f: <sip:alice@127.0.0.1>;tag=srv1\r\n\
t: <sip:hub@127.0.0.1>;tag=hub1\r\n\
i: call-1@hub\r\n\
CSeq: 2 NOTIFY\r\n\
o: presence\r\n\
Subscription-State: active;expires=600\r\n\
Contact: <sip:127.0.0.1:5060>\r\n\
c: application/pidf+xml\r\n\
Content-Length: 5\r\n\r\nhello";

    #[test]
    fn parses_compact_forms_and_lists() {
        let m = Message::parse(NOTIFY.as_bytes()).unwrap();
        assert_eq!(m.method(), Some("NOTIFY"));
        assert_eq!(m.header("call-id"), Some("call-1@hub"));
        assert_eq!(m.header("event"), Some("presence"));
        assert_eq!(m.headers_named("via").count(), 2);
        assert_eq!(m.branch().as_deref(), Some("z9hG4bKabc"));
        assert_eq!(m.cseq(), Some((2, "NOTIFY".into())));
        assert_eq!(
            param(m.header("from").unwrap(), "tag").as_deref(),
            Some("srv1")
        );
        assert_eq!(uri_of(m.header("from").unwrap()), "sip:alice@127.0.0.1");
        assert_eq!(m.content_type().as_deref(), Some("application/pidf+xml"));
        assert_eq!(m.body, b"hello");
        assert_eq!(
            param(m.header("subscription-state").unwrap(), "expires").as_deref(),
            Some("600")
        );
    }

    #[test]
    fn retry_after_with_comment_and_parameters() {
        let with = |v: &str| {
            let text = format!(
                "SIP/2.0 503 Busy\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKa\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>;tag=2\r\nCall-ID: c\r\nCSeq: 1 PUBLISH\r\nRetry-After: {v}\r\nContent-Length: 0\r\n\r\n"
            );
            Message::parse(text.as_bytes()).unwrap().retry_after_secs()
        };
        assert_eq!(with("120"), Some(120));
        assert_eq!(with("0120"), Some(120));
        assert_eq!(with("18000;duration=3600"), Some(18000));
        assert_eq!(with("120 (I'm in a meeting)"), Some(120));
        assert_eq!(with("99999999999999"), Some(u32::MAX));
        assert_eq!(with("soon"), None);
    }

    #[test]
    fn the_folded_notify_of_issue_22() {
        let m = Message::parse(&torture::wire(torture::FOLDED_SUBJECT_NOTIFY)).unwrap();
        assert_eq!(m.method(), Some("NOTIFY"));
        assert_eq!(
            m.header("subject"),
            Some("a long subject that continues on a second line")
        );
        assert_eq!(m.header("event"), Some("presence"));
        assert_eq!(m.content_type().as_deref(), Some("application/pidf+xml"));
        assert!(m.body.starts_with(b"<?xml") && m.body.ends_with(b"</presence>"));
    }

    #[test]
    fn every_field_the_hub_reads_folded_compact_and_zero_padded() {
        let m = Message::parse(&torture::wire(torture::FOLDED_EVERYWHERE_NOTIFY)).unwrap();
        assert_eq!(m.headers_named("via").count(), 2);
        assert_eq!(m.branch().as_deref(), Some("z9hG4bK-fold-2"));
        assert_eq!(uri_of(m.header("from").unwrap()), "sip:alice@example.com");
        assert_eq!(
            param(m.header("from").unwrap(), "tag").as_deref(),
            Some("srv2")
        );
        assert_eq!(
            param(m.header("to").unwrap(), "tag").as_deref(),
            Some("hub2")
        );
        assert_eq!(m.header("call-id"), Some("fold-2@192.0.2.20"));
        assert_eq!(m.cseq(), Some((12, "NOTIFY".into())));
        assert_eq!(
            param(m.header("event").unwrap(), "id").as_deref(),
            Some("abc")
        );
        let state = m.header("subscription-state").unwrap();
        assert_eq!(param(state, "expires").as_deref(), Some("0600"));
        assert_eq!(m.int_header("expires"), Some(300));
        assert_eq!(m.int_header("min-expires"), Some(60));
        assert_eq!(m.header("x-empty"), Some(""));
        assert_eq!(m.header("x-odd-value"), Some(";;,,;;,; <> \"\" =="));
        assert_eq!(m.body, b"body");
    }

    #[test]
    fn rfc_4475_valid_messages() {
        for (name, bytes) in torture::valid() {
            let m = Message::parse(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
            if let Some(len) = m.header("content-length") {
                assert_eq!(m.body.len(), len.parse::<usize>().unwrap(), "{name}");
            }
        }
        let parse = |bytes: Vec<u8>| Message::parse(&bytes).unwrap();

        let m = parse(torture::wsinv());
        assert_eq!(m.method(), Some("INVITE"));
        assert_eq!(
            uri_of(m.header("to").unwrap()),
            "sip:bob@chair-dnrc.example.com"
        );
        assert_eq!(
            param(m.header("to").unwrap(), "tag").as_deref(),
            Some("1918181833n")
        );
        assert_eq!(uri_of(m.header("from").unwrap()), "sip:alice@example.com");
        assert_eq!(
            param(m.header("from").unwrap(), "tag").as_deref(),
            Some("98asjd8")
        );
        assert_eq!(m.header("max-forwards"), Some("0068"));
        assert_eq!(m.cseq(), Some((9, "INVITE".into())));
        assert_eq!(m.headers_named("via").count(), 3);
        assert_eq!(m.branch().as_deref(), Some("390skdjuw"));
        let vias: Vec<_> = m.headers_named("via").collect();
        assert_eq!(param(vias[2], "branch").as_deref(), Some("z9hG4bK30239"));
        assert_eq!(m.header("subject"), Some(""));
        assert_eq!(
            m.header("newfangledheader"),
            Some("newfangled value continued newfangled value")
        );
        assert_eq!(m.header("unknownheaderwithunusualvalue"), Some(";;,,;;,;"));
        let contact = m.header("contact").unwrap();
        assert_eq!(uri_of(contact), "sip:alice@example.com");
        assert_eq!(param(contact, "q").as_deref(), Some("0.33"));
        assert_eq!(param(contact, "newparam").as_deref(), Some("newvalue"));

        let m = parse(torture::intmeth());
        assert_eq!(
            m.method(),
            Some("!interesting-Method0123456789_*+`.%indeed'~")
        );
        assert_eq!(m.cseq().unwrap().0, 139_122_385);
        assert_eq!(uri_of(m.header("from").unwrap()), "sip:mundane@example.com");
        assert_eq!(
            param(m.header("from").unwrap(), "tag").as_deref(),
            Some("_token~1'+`*%!-.")
        );
        assert!(uri_of(m.header("to").unwrap()).starts_with("sip:1_unusual.URI"));
        assert_eq!(
            m.header("extensionheader-!.%*+_`'~"),
            Some("\u{5927}\u{505C}\u{96FB}")
        );

        let m = parse(torture::esc01());
        assert_eq!(m.content_type().as_deref(), Some("application/sdp"));
        assert_eq!(
            m.header("call-id"),
            Some("esc01.239409asdfakjkn23onasd0-3234")
        );

        let m = parse(torture::wire(torture::ESCNULL));
        assert_eq!(m.headers_named("contact").count(), 2);
        assert!(m.body.is_empty());

        let m = parse(torture::wire(torture::ESC02));
        assert_eq!(m.method(), Some("RE%47IST%45R"));
        assert_eq!(m.headers_named("contact").count(), 2);
        assert_eq!(
            m.header("c%6fntact"),
            Some("<sip:alias2@host2.example.com>")
        );

        let m = parse(torture::wire(torture::LWSDISP));
        assert_eq!(uri_of(m.header("from").unwrap()), "sip:caller@example.com");

        let m = parse(torture::longreq());
        assert_eq!(m.headers_named("via").count(), 34);
        assert_eq!(m.headers_named("record-route").count(), 40);
        assert_eq!(m.branch().unwrap().len(), "z9hG4bK34".len() + 34);
        assert!(uri_of(m.header("to").unwrap()).starts_with("sip:user@example.com:6000;"));

        let m = parse(torture::wire(torture::DBLREQ));
        assert_eq!(m.method(), Some("REGISTER"));
        assert!(m.body.is_empty());

        let m = parse(torture::wire(torture::SEMIURI));
        assert_eq!(
            m.header("accept"),
            Some(
                "application/sdp, application/pkcs7-mime, multipart/mixed, multipart/signed, message/sip, message/sipfrag"
            )
        );

        let m = parse(torture::wire(torture::TRANSPORTS));
        assert_eq!(m.headers_named("via").count(), 5);
        assert_eq!(
            m.header("call-id"),
            Some("transports.kijh4akdnaqjkwendsasfdj")
        );

        let m = parse(torture::mpart01());
        assert!(m.body.windows(256).any(|w| w.iter().copied().eq(0..=255u8)));

        let m = parse(torture::unreason());
        assert_eq!(m.code(), Some(200));
        assert!(
            matches!(&m.start, Start::Response { reason, .. } if reason.starts_with("= 2**3 * 5**2 "))
        );

        let m = parse(torture::wire(torture::NOREASON));
        assert_eq!(
            m.start,
            Start::Response {
                code: 100,
                reason: String::new()
            }
        );
    }

    #[test]
    fn invalid_requests_are_answered() {
        for (name, text, code) in torture::INVALID_REQUESTS {
            let bytes = torture::wire(text);
            let e = Message::parse(&bytes).expect_err(name);
            assert!(e.is_request(), "{name}: {e}");
            let answer = e.answer().unwrap_or_else(|| panic!("{name}: no answer"));
            // The answer echoes the request's fields as they are, faults
            // included, so it is read as text.
            let answer = String::from_utf8(answer).unwrap();
            assert!(
                answer.starts_with(&format!("SIP/2.0 {code} ")),
                "{name}: {e}"
            );
            let request_via = text.lines().find(|l| l.starts_with("Via")).unwrap();
            assert!(answer.contains(&format!("{request_via}\r\n")), "{name}");
            assert!(!e.start_line().contains('\n'));
        }
        let fault = |text: &str| {
            Message::parse(&torture::wire(text))
                .unwrap_err()
                .fault()
                .clone()
        };
        let by_name = |n: &str| {
            torture::INVALID_REQUESTS
                .iter()
                .find(|(name, ..)| *name == n)
                .unwrap()
                .1
        };
        assert_eq!(
            fault(by_name("clerr")),
            Fault::BodyTruncated {
                declared: 9999,
                received: 46
            }
        );
        assert_eq!(fault(by_name("ncl")), Fault::BadContentLength);
        assert_eq!(fault(by_name("scalar02")), Fault::BadCSeq);
        assert_eq!(fault(by_name("quotbal")), Fault::BadAddress("To"));
        for n in ["ltgtruri", "lwsruri", "lwsstart", "trws"] {
            assert_eq!(fault(by_name(n)), Fault::BadRequestLine, "{n}");
        }
        assert_eq!(fault(by_name("badvers")), Fault::Version);
        assert_eq!(fault(by_name("mismatch01")), Fault::CSeqMismatch);
        assert_eq!(fault(by_name("mismatch02")), Fault::CSeqMismatch);
        assert_eq!(fault(by_name("insuf")), Fault::Missing("from"));
        assert_eq!(fault(by_name("multi01")), Fault::Conflicting("from"));
        assert_eq!(fault(by_name("nocolon")), Fault::BadHeaderLine(6));
        assert_eq!(fault(by_name("noend")), Fault::NoEndOfHeaders);
    }

    #[test]
    fn invalid_responses_and_garbage_are_not_answered() {
        for (name, text) in torture::INVALID_RESPONSES {
            let e = Message::parse(&torture::wire(text)).expect_err(name);
            assert!(!e.is_request() && e.answer().is_none(), "{name}");
        }
        for bad in [
            &b""[..],
            b"HELLO",
            b"\x00\x01garbage",
            b"\r\n\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: x\r\nVia: SIP/2.0/UDP h\r\n\r\n",
            b"SIP/2.0 abc OK\r\n\r\n",
        ] {
            let e = Message::parse(bad).unwrap_err();
            assert!(e.answer().is_none(), "{:?}", String::from_utf8_lossy(bad));
        }
        // Without a Via no answer could reach or match the sender.
        let e = Message::parse(b"NOTIFY sip:a SIP/2.0\r\nCall-ID: x\r\n\r\n").unwrap_err();
        assert!(e.is_request() && e.answer().is_none());
    }

    #[test]
    fn logs_see_the_start_line_only() {
        let e =
            Message::parse(b"NOTIFY sip:a\x07 SIP/2.0\r\nVia: SIP/2.0/UDP h\r\n\r\nsecret body")
                .unwrap_err();
        assert_eq!(e.start_line(), "NOTIFY sip:a SIP/2.0");
        assert!(!format!("{e}").contains("secret"));
    }

    #[test]
    fn datagram_forms() {
        let head = "NOTIFY sip:a SIP/2.0\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\nFrom: <sip:b@c>;tag=1\nTo: <sip:a>\nCall-ID: x\nCSeq: 1 NOTIFY\n";
        // Bare LF line ends; no Content-Length: the rest of the datagram.
        let m = Message::parse(format!("{head}\nrest of it").as_bytes()).unwrap();
        assert_eq!(m.body, b"rest of it");
        // Line breaks before the start line; octets after the body.
        let m = Message::parse(format!("\r\n\r\n{head}l: 3\n\nabcdef").as_bytes()).unwrap();
        assert_eq!(m.body, b"abc");
        // CSeq's method in another case still names the request's.
        let lower = format!("{}\n", head.replace("1 NOTIFY", "1 notify"));
        let m = Message::parse(lower.as_bytes()).unwrap();
        assert_eq!(m.cseq(), Some((1, "NOTIFY".into())));
        // The same header twice with the same value is fine.
        let m = Message::parse(format!("{head}Call-ID: x\n\n").as_bytes()).unwrap();
        assert_eq!(m.header("call-id"), Some("x"));
    }
}
