//! Incoming SIP messages: parsed with `rsip`, then flattened into a small
//! view with normalised header names (rsip keeps compact forms such as `i:`
//! as unknown headers; we map them to their long names).

/// A parsed SIP request or response.
#[derive(Debug, Clone)]
pub struct Message {
    pub start: Start,
    /// `(lowercase long name, value)` in order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// The start line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Start {
    Request { method: String, uri: String },
    Response { code: u16, reason: String },
}

/// Why a message was not understood.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError(pub String);

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn long_name(name: &str) -> String {
    let n = name.trim().to_ascii_lowercase();
    match n.as_str() {
        "i" => "call-id",
        "f" => "from",
        "t" => "to",
        "v" => "via",
        "m" => "contact",
        "l" => "content-length",
        "c" => "content-type",
        "e" => "content-encoding",
        "o" => "event",
        "k" => "supported",
        "u" => "allow-events",
        "s" => "subject",
        "x" => "session-expires",
        "r" => "refer-to",
        _ => return n,
    }
    .to_string()
}

impl Message {
    /// Parse one message (a whole datagram, or one framed message off a stream).
    pub fn parse(bytes: &[u8]) -> Result<Message, ParseError> {
        let parsed = rsip::SipMessage::try_from(bytes).map_err(|e| ParseError(e.to_string()))?;
        let (start, headers, body) = match parsed {
            rsip::SipMessage::Request(r) => (
                Start::Request {
                    method: r.method.to_string(),
                    uri: r.uri.to_string(),
                },
                r.headers,
                r.body,
            ),
            rsip::SipMessage::Response(r) => (
                Start::Response {
                    code: r.status_code.code(),
                    reason: r.status_code.to_string(),
                },
                r.headers,
                r.body,
            ),
        };
        let mut out = Vec::new();
        for h in headers.iter() {
            let text = h.to_string();
            let Some((name, value)) = text.split_once(':') else {
                continue;
            };
            let name = long_name(name);
            // Comma-separated list headers we route on are split so that each
            // entry can be read alone.
            if matches!(name.as_str(), "via" | "record-route" | "route") {
                for part in split_list(value) {
                    out.push((name.clone(), part));
                }
            } else {
                out.push((name, value.trim().to_string()));
            }
        }
        Ok(Message {
            start,
            headers: out,
            body,
        })
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

    /// The CSeq number and method.
    pub fn cseq(&self) -> Option<(u32, String)> {
        let v = self.header("cseq")?;
        let mut it = v.split_whitespace();
        let n = it.next()?.parse().ok()?;
        Some((n, it.next()?.to_ascii_uppercase()))
    }

    /// The branch of the top Via.
    pub fn branch(&self) -> Option<String> {
        param(self.header("via")?, "branch")
    }

    /// An integer header such as Expires or Min-Expires.
    pub fn int_header(&self, name: &str) -> Option<u32> {
        self.header(name)?.trim().parse().ok()
    }

    /// Retry-After in seconds (RFC 3261 §20.33): the delta-seconds before
    /// any comment ("120 (maintenance)") or parameter (";duration=60").
    pub fn retry_after_secs(&self) -> Option<u32> {
        let v = self.header("retry-after")?.trim_start();
        let end = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
        v[..end].parse().ok()
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

/// Split a comma-separated header list, respecting <...> and quotes.
pub fn split_list(v: &str) -> Vec<String> {
    let mut out = Vec::new();
    let (mut depth, mut quoted, mut cur) = (0i32, false, String::new());
    for ch in v.chars() {
        match ch {
            '"' => quoted = !quoted,
            '<' if !quoted => depth += 1,
            '>' if !quoted => depth -= 1,
            ',' if !quoted && depth <= 0 => {
                if !cur.trim().is_empty() {
                    out.push(cur.trim().to_string());
                }
                cur.clear();
                continue;
            }
            _ => {}
        }
        cur.push(ch);
    }
    if !cur.trim().is_empty() {
        out.push(cur.trim().to_string());
    }
    out
}

/// A `;name=value` parameter of a header value (outside the <uri>), case
/// insensitive; `Some("")` for a flag parameter.
pub fn param(value: &str, name: &str) -> Option<String> {
    let after_uri = match value.rfind('>') {
        Some(i) => &value[i + 1..],
        None => value,
    };
    after_uri.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=').unwrap_or((p, ""));
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().trim_matches('"').to_string())
    })
}

/// The URI of a name-addr (`"Bob" <sip:bob@x>;tag=1`) or addr-spec.
pub fn uri_of(value: &str) -> String {
    match (value.find('<'), value.find('>')) {
        (Some(a), Some(b)) if b > a => value[a + 1..b].trim().to_string(),
        _ => value.split(';').next().unwrap_or("").trim().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
                "SIP/2.0 503 Busy\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKa\r\nCall-ID: c\r\nCSeq: 1 PUBLISH\r\nRetry-After: {v}\r\nContent-Length: 0\r\n\r\n"
            );
            Message::parse(text.as_bytes()).unwrap().retry_after_secs()
        };
        assert_eq!(with("120"), Some(120));
        assert_eq!(with("18000;duration=3600"), Some(18000));
        assert_eq!(with("120 (I'm in a meeting)"), Some(120));
        assert_eq!(with("soon"), None);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for bad in ["", "HELLO", "SIP/2.0 abc OK\r\n\r\n", "\r\n\r\n\r\n"] {
            let _ = Message::parse(bad.as_bytes());
        }
    }
}
