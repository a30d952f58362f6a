//! Plain-data HTTP for connectors whose protocol core is free of I/O.
//!
//! Such a core writes its requests as [`Request`] (headers as
//! `(name, value)` pairs, the shape [`graph`](crate::graph) reads too),
//! gets its answers as [`Response`] or as the rendered reason there was
//! none ([`outcome`]), and names log levels with [`Level`]. The connector's
//! glue hands a request to [`Cx::http`] as is (`Request` converts into the
//! contract's `http::Request`) and a stored value to
//! [`Cx::kv_set_logged`]. Nothing here calls the host, so cores and their
//! unit tests use these types natively.

use std::fmt;

use crate::connector::{Connector, Cx, HttpError};
use crate::presence::connector::http;
use crate::types::Header;

/// Log levels (the contract's `log.level`).
pub use crate::presence::connector::log::Level;

/// An HTTP request as a core writes it.
///
/// `Debug` shows only the method and the URL: headers carry bearer tokens
/// and Basic credentials, and a token request's body the client secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Request {
    /// `GET`, `POST`, ...
    pub method: &'static str,
    pub url: String,
    /// `(name, value)`, in order; names as written.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The whole exchange's limit, milliseconds.
    pub timeout_ms: u32,
}

impl Request {
    /// The first header of this name, ignoring case.
    pub fn header(&self, name: &str) -> Option<&str> {
        find(&self.headers, name)
    }
}

impl fmt::Debug for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.method, self.url)
    }
}

impl From<Request> for http::Request {
    fn from(request: Request) -> Self {
        http::Request {
            method: request.method.into(),
            url: request.url,
            headers: headers(request.headers),
            body: request.body,
            timeout_ms: Some(request.timeout_ms),
        }
    }
}

/// An HTTP answer as a core reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    /// `(name, value)`, as received.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The first header of this name, ignoring case.
    pub fn header(&self, name: &str) -> Option<&str> {
        find(&self.headers, name)
    }
}

impl From<http::Response> for Response {
    fn from(response: http::Response) -> Self {
        Response {
            status: response.status,
            headers: pairs(response.headers),
            body: response.body,
        }
    }
}

/// What [`Connector::on_http`] received, as a core takes it: the answer,
/// or why there is none in operators' words — a host refusal as
/// [`render_host_error`](crate::render_host_error) shows it
/// (`not-granted: https://ews.example.com:443`), a failure as
/// [`render_failure`](crate::render_failure) does (`connection refused`).
pub fn outcome(outcome: Result<http::Response, HttpError>) -> Result<Response, String> {
    match outcome {
        Ok(response) => Ok(response.into()),
        Err(HttpError::Refused(error)) => Err(crate::render_host_error(&error)),
        Err(HttpError::Failed(failure)) => Err(crate::render_failure(&failure)),
    }
}

/// `(name, value)` pairs as the contract's headers.
pub fn headers(pairs: Vec<(String, String)>) -> Vec<Header> {
    pairs
        .into_iter()
        .map(|(name, value)| Header { name, value })
        .collect()
}

/// The contract's headers as `(name, value)` pairs.
pub fn pairs(headers: Vec<Header>) -> Vec<(String, String)> {
    headers.into_iter().map(|h| (h.name, h.value)).collect()
}

fn find<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

impl<C: Connector> Cx<'_, C> {
    /// Stores `value` under `key`; a refusal is logged as an error naming
    /// the key (the value is never logged: it may hold tokens).
    pub fn kv_set_logged(&mut self, key: &str, value: &[u8]) {
        if let Err(error) = self.kv_set(key, value) {
            self.error(format!(
                "storing {key}: {}",
                crate::render_host_error(&error)
            ));
        }
    }

    /// Deletes `key`; a refusal is logged as a warning.
    pub fn kv_delete_logged(&mut self, key: &str) {
        if let Err(error) = self.kv_delete(key) {
            self.warn(format!(
                "deleting {key}: {}",
                crate::render_host_error(&error)
            ));
        }
    }

    /// Every `(suffix, value)` stored under keys that start with `prefix`,
    /// sorted by key; keys that vanish or fail to read are skipped.
    pub fn kv_under(&mut self, prefix: &str) -> Vec<(String, Vec<u8>)> {
        let keys = self.kv_list(prefix).unwrap_or_default();
        keys.into_iter()
            .filter_map(|key| {
                let value = self.kv_get(&key).ok().flatten()?;
                Some((key.strip_prefix(prefix)?.to_string(), value))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{Failure, HostError};

    fn request() -> Request {
        Request {
            method: "POST",
            url: "https://login.example.com/token".into(),
            headers: vec![("Authorization".into(), "Bearer s3cret".into())],
            body: b"client_secret=s3cret".to_vec(),
            timeout_ms: 20_000,
        }
    }

    #[test]
    fn a_request_converts_with_its_headers_body_and_timeout() {
        let wire: http::Request = request().into();
        assert_eq!(wire.method, "POST");
        assert_eq!(wire.url, "https://login.example.com/token");
        assert_eq!(wire.headers[0].name, "Authorization");
        assert_eq!(wire.headers[0].value, "Bearer s3cret");
        assert_eq!(wire.body, b"client_secret=s3cret");
        assert_eq!(wire.timeout_ms, Some(20_000));
        assert_eq!(request().header("authorization"), Some("Bearer s3cret"));
    }

    #[test]
    fn debug_shows_no_header_or_body() {
        let shown = format!("{:?}", request());
        assert_eq!(shown, "POST https://login.example.com/token");
    }

    #[test]
    fn outcomes_keep_the_answer_or_render_why_there_is_none() {
        let answer = outcome(Ok(http::Response {
            status: 429,
            headers: vec![Header {
                name: "Retry-After".into(),
                value: "7".into(),
            }],
            body: b"slow down".to_vec(),
        }))
        .unwrap();
        assert_eq!(answer.status, 429);
        assert_eq!(answer.header("retry-after"), Some("7"));
        assert_eq!(answer.body, b"slow down");
        assert_eq!(
            outcome(Err(HttpError::Refused(HostError::NotGranted(
                "https://ews.example.com:443".into()
            )))),
            Err("not-granted: https://ews.example.com:443".into())
        );
        assert_eq!(
            outcome(Err(HttpError::Failed(Failure::Refused))),
            Err("connection refused".into())
        );
    }
}
