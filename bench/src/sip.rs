//! Just enough SIP for the benchmarks: read the hub's requests and
//! responses, and write answers, NOTIFYs (PIDF and dialog-info) and
//! PUBLISHes.

use std::fmt::Write as _;

/// A parsed SIP message (start line and headers) that borrows its bytes.
pub struct Msg<'a> {
    /// The request or status line.
    pub start: &'a str,
    headers: Vec<(&'a str, &'a str)>,
}

/// Compact header forms (RFC 3261 §7.3.3) and their full names.
fn full_name(name: &str) -> &str {
    match name {
        "i" | "I" => "call-id",
        "f" | "F" => "from",
        "t" | "T" => "to",
        "v" | "V" => "via",
        "m" | "M" => "contact",
        "o" | "O" => "event",
        "l" | "L" => "content-length",
        "c" | "C" => "content-type",
        _ => name,
    }
}

impl<'a> Msg<'a> {
    /// Parse a datagram; `None` when it is not SIP.
    pub fn parse(bytes: &'a [u8]) -> Option<Msg<'a>> {
        let end = bytes.windows(4).position(|w| w == b"\r\n\r\n")?;
        let head = std::str::from_utf8(&bytes[..end]).ok()?;
        let mut lines = head.split("\r\n");
        let start = lines.next()?;
        let headers = lines
            .filter_map(|l| {
                let (k, v) = l.split_once(':')?;
                Some((full_name(k.trim()), v.trim()))
            })
            .collect();
        Some(Msg { start, headers })
    }

    /// The first value of a header (case-insensitive name).
    pub fn header(&self, name: &str) -> Option<&'a str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
    }

    /// Every value of a header, in order.
    pub fn headers_named<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'a str> + 's {
        self.headers
            .iter()
            .filter(move |(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
    }

    /// The method of a request.
    pub fn method(&self) -> Option<&'a str> {
        if self.start.starts_with("SIP/2.0") {
            None
        } else {
            self.start.split(' ').next()
        }
    }

    /// The request URI of a request.
    pub fn request_uri(&self) -> Option<&'a str> {
        self.method()?;
        self.start.split(' ').nth(1)
    }

    /// The status code of a response.
    pub fn code(&self) -> Option<u16> {
        self.start
            .strip_prefix("SIP/2.0 ")?
            .split(' ')
            .next()?
            .parse()
            .ok()
    }

    /// CSeq number and method.
    pub fn cseq(&self) -> Option<(u32, &'a str)> {
        let (n, m) = self.header("cseq")?.split_once(' ')?;
        Some((n.trim().parse().ok()?, m.trim()))
    }

    /// An integer header such as Expires.
    pub fn int_header(&self, name: &str) -> Option<u32> {
        self.header(name)?.trim().parse().ok()
    }
}

/// A header parameter such as `tag` in `<sip:a@b>;tag=x`.
pub fn param<'a>(value: &'a str, name: &str) -> Option<&'a str> {
    value.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim().eq_ignore_ascii_case(name).then_some(v.trim())
    })
}

/// The URI inside `<...>` of a From/To/Contact value, or the value itself.
pub fn uri_of(value: &str) -> &str {
    match (value.find('<'), value.find('>')) {
        (Some(a), Some(b)) if a < b => &value[a + 1..b],
        _ => value.split(';').next().unwrap_or(value).trim(),
    }
}

/// A response to `req`: Vias, From, To (with `to_tag` added when it has
/// none), Call-ID and CSeq copied, then `extra` header lines.
pub fn response(req: &Msg, code: u16, reason: &str, to_tag: Option<&str>, extra: &str) -> Vec<u8> {
    let mut s = String::with_capacity(512);
    let _ = write!(s, "SIP/2.0 {code} {reason}\r\n");
    for v in req.headers_named("via") {
        let _ = write!(s, "Via: {v}\r\n");
    }
    let to = req.header("to").unwrap_or("");
    let _ = write!(s, "From: {}\r\nTo: {to}", req.header("from").unwrap_or(""));
    if let Some(t) = to_tag
        && param(to, "tag").is_none()
    {
        let _ = write!(s, ";tag={t}");
    }
    let _ = write!(
        s,
        "\r\nCall-ID: {}\r\nCSeq: {}\r\n{extra}Content-Length: 0\r\n\r\n",
        req.header("call-id").unwrap_or(""),
        req.header("cseq").unwrap_or("")
    );
    s.into_bytes()
}

/// The event package of a subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Package {
    Presence,
    Dialog,
}

impl Package {
    pub fn parse(event: &str) -> Option<Package> {
        match event.split(';').next()?.trim() {
            "presence" => Some(Package::Presence),
            "dialog" => Some(Package::Dialog),
            _ => None,
        }
    }

    pub fn event(self) -> &'static str {
        match self {
            Package::Presence => "presence",
            Package::Dialog => "dialog",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Package::Presence => "application/pidf+xml",
            Package::Dialog => "application/dialog-info+xml",
        }
    }
}

/// A PIDF document as a presence server sends it: a tuple, a person with
/// an RPID activity that varies with `seq`, and the note `b<seq>` that
/// identifies this very update at the other end.
pub fn pidf(entity: &str, seq: u64) -> String {
    let activity = match seq % 3 {
        0 => "<rpid:away/>",
        1 => "<rpid:busy/>",
        _ => "<rpid:meeting/>",
    };
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
<presence xmlns=\"urn:ietf:params:xml:ns:pidf\" xmlns:dm=\"urn:ietf:params:xml:ns:pidf:data-model\" \
xmlns:rpid=\"urn:ietf:params:xml:ns:pidf:rpid\" entity=\"{entity}\">\n\
<tuple id=\"t1\"><status><basic>open</basic></status><contact>{entity}</contact></tuple>\n\
<dm:person id=\"p1\"><rpid:activities>{activity}</rpid:activities><dm:note>b{seq}</dm:note></dm:person>\n\
</presence>\n"
    )
}

/// A full dialog-info document: one confirmed call when `in_call`, no
/// dialog otherwise.
pub fn dialog_info(entity: &str, version: u64, in_call: bool) -> String {
    let dialog = if in_call {
        format!(
            "<dialog id=\"d{version}\" call-id=\"c{version}@pbx\" direction=\"initiator\">\
<state>confirmed</state></dialog>\n"
        )
    } else {
        String::new()
    };
    format!(
        "<?xml version=\"1.0\"?>\n\
<dialog-info xmlns=\"urn:ietf:params:xml:ns:dialog-info\" version=\"{version}\" state=\"full\" entity=\"{entity}\">\n\
{dialog}</dialog-info>\n"
    )
}

/// The notifier's side of one subscription dialog.
#[derive(Debug, Clone)]
pub struct DialogIds {
    pub call_id: String,
    /// The SUBSCRIBE's From (with the subscriber's tag): the NOTIFY's To.
    pub subscriber: String,
    /// The notifier's URI and tag: the NOTIFY's From.
    pub notifier: String,
    pub notifier_tag: String,
    /// The subscriber's Contact URI: the NOTIFY's request URI.
    pub contact_uri: String,
    pub package: Package,
}

/// A NOTIFY within `d` with CSeq `cseq`; `state` is the Subscription-State
/// value.
pub fn notify(d: &DialogIds, cseq: u32, state: &str, body: &str, local_port: u16) -> Vec<u8> {
    let mut s = String::with_capacity(600 + body.len());
    let _ = write!(
        s,
        "NOTIFY {} SIP/2.0\r\n\
Via: SIP/2.0/UDP 127.0.0.1:{local_port};branch=z9hG4bKn{}x{cseq}\r\n\
Max-Forwards: 70\r\n\
From: <{}>;tag={}\r\n\
To: {}\r\n\
Call-ID: {}\r\n\
CSeq: {cseq} NOTIFY\r\n\
Event: {}\r\n\
Subscription-State: {state}\r\n\
Contact: <sip:127.0.0.1:{local_port}>\r\n\
Content-Type: {}\r\n\
Content-Length: {}\r\n\r\n{body}",
        d.contact_uri,
        d.notifier_tag,
        d.notifier,
        d.notifier_tag,
        d.subscriber,
        d.call_id,
        d.package.event(),
        d.package.content_type(),
        body.len()
    );
    s.into_bytes()
}

/// A PUBLISH of `body` (PIDF) for `aor`, replacing the publication
/// `etag` when given.
pub fn publish(aor: &str, etag: Option<&str>, body: &str, local_port: u16, unique: u64) -> Vec<u8> {
    let mut s = String::with_capacity(600 + body.len());
    let _ = write!(
        s,
        "PUBLISH {aor} SIP/2.0\r\n\
Via: SIP/2.0/UDP 127.0.0.1:{local_port};branch=z9hG4bKp{unique};rport\r\n\
Max-Forwards: 70\r\n\
From: <{aor}>;tag=p{unique}\r\n\
To: <{aor}>\r\n\
Call-ID: p{unique}@bench\r\n\
CSeq: 1 PUBLISH\r\n\
Event: presence\r\n\
Expires: 3600\r\n"
    );
    if let Some(e) = etag {
        let _ = write!(s, "SIP-If-Match: {e}\r\n");
    }
    let _ = write!(
        s,
        "Content-Type: application/pidf+xml\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_answer() {
        let req = b"SUBSCRIBE sip:u1@bench.test SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKa;rport\r\n\
From: <sip:hub@bench.test>;tag=h1\r\nTo: <sip:u1@bench.test>\r\ni: abc@hub\r\nCSeq: 1 SUBSCRIBE\r\n\
Event: presence\r\nExpires: 3600\r\nContent-Length: 0\r\n\r\n";
        let m = Msg::parse(req).unwrap();
        assert_eq!(m.method(), Some("SUBSCRIBE"));
        assert_eq!(m.request_uri(), Some("sip:u1@bench.test"));
        assert_eq!(m.header("call-id"), Some("abc@hub"));
        assert_eq!(m.cseq(), Some((1, "SUBSCRIBE")));
        assert_eq!(m.int_header("expires"), Some(3600));
        let r = response(&m, 200, "OK", Some("srv"), "Expires: 3600\r\n");
        let r = Msg::parse(&r).unwrap();
        assert_eq!(r.code(), Some(200));
        assert_eq!(param(r.header("to").unwrap(), "tag"), Some("srv"));
        assert_eq!(uri_of(r.header("from").unwrap()), "sip:hub@bench.test");
    }
}
