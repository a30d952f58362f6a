//! Building outgoing requests and responses.

use super::message::Message;

/// Everything needed to (re)build a request: a retry after a challenge or a
/// 423 only changes the branch, CSeq, auth header or Expires.
#[derive(Debug, Clone)]
pub struct Template {
    pub method: &'static str,
    pub request_uri: String,
    pub from: String,
    pub to: String,
    pub call_id: String,
    pub cseq: u32,
    pub routes: Vec<String>,
    pub headers: Vec<(String, String)>,
    pub body: Option<(String, Vec<u8>)>,
}

/// Our side of the transport, as Via and Contact show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Local {
    pub transport: &'static str,
    pub host: String,
    pub port: u16,
}

impl Local {
    fn hostport(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// Our Contact URI for `user`.
    pub fn contact(&self, user: &str) -> String {
        let t = match self.transport {
            "UDP" => String::new(),
            t => format!(";transport={}", t.to_ascii_lowercase()),
        };
        format!("<sip:{user}@{}{t}>", self.hostport())
    }
}

impl Template {
    /// Serialise with a Via for `branch`.
    pub fn build(&self, local: &Local, branch: &str, user_agent: &str) -> Vec<u8> {
        let mut s = format!(
            "{} {} SIP/2.0\r\nVia: SIP/2.0/{} {};branch={branch};rport\r\nMax-Forwards: 70\r\n",
            self.method,
            self.request_uri,
            local.transport,
            local.hostport()
        );
        for r in &self.routes {
            s.push_str(&format!("Route: {r}\r\n"));
        }
        s.push_str(&format!(
            "From: {}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {} {}\r\nUser-Agent: {user_agent}\r\n",
            self.from, self.to, self.call_id, self.cseq, self.method
        ));
        for (n, v) in &self.headers {
            s.push_str(&format!("{n}: {v}\r\n"));
        }
        let mut bytes = match &self.body {
            Some((ct, body)) => {
                s.push_str(&format!(
                    "Content-Type: {ct}\r\nContent-Length: {}\r\n\r\n",
                    body.len()
                ));
                let mut b = s.into_bytes();
                b.extend_from_slice(body);
                b
            }
            None => {
                s.push_str("Content-Length: 0\r\n\r\n");
                s.into_bytes()
            }
        };
        bytes.shrink_to_fit();
        bytes
    }

    /// Replace (or add) a header.
    pub fn set_header(&mut self, name: &str, value: String) {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        self.headers.push((name.to_string(), value));
    }

    pub fn remove_header(&mut self, name: &str) {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
    }
}

/// A response to `req` with `code`, echoing the headers RFC 3261 §8.2.6 asks
/// for, plus `extra`.
pub fn response(req: &Message, code: u16, reason: &str, extra: &[(&str, String)]) -> Vec<u8> {
    let mut s = format!("SIP/2.0 {code} {reason}\r\n");
    for v in req.headers_named("via") {
        s.push_str(&format!("Via: {v}\r\n"));
    }
    for name in ["from", "to", "call-id", "cseq"] {
        if let Some(v) = req.header(name) {
            let title = match name {
                "from" => "From",
                "to" => "To",
                "call-id" => "Call-ID",
                _ => "CSeq",
            };
            s.push_str(&format!("{title}: {v}\r\n"));
        }
    }
    for (n, v) in extra {
        s.push_str(&format!("{n}: {v}\r\n"));
    }
    s.push_str("Content-Length: 0\r\n\r\n");
    s.into_bytes()
}
