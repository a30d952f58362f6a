//! The hub's REST API as the CLI uses it: bearer token, JSON in and out, and
//! the hub's error body (`{"error", "field"?}`) turned into a typed error.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::Value;

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The hub answered with an error status; `error` and `field` are its
    /// words.
    #[error("{status}: {error}{}", field.as_ref().map(|f| format!(" (field: {f})")).unwrap_or_default())]
    Api {
        status: StatusCode,
        error: String,
        field: Option<String>,
        body: Value,
    },
    /// No answer: wrong address, hub down, TLS refused.
    #[error("cannot reach the hub at {url}: {reason} (set --url or HUB_URL)")]
    Unreachable { url: String, reason: String },
    /// An answer that is not what the API describes.
    #[error("unexpected answer from {url}: {reason}")]
    Protocol { url: String, reason: String },
}

impl CallError {
    /// The process exit code for this failure: 1 for an API refusal, 3 when
    /// the hub cannot be reached, 4 for a malformed answer.
    pub fn exit_code(&self) -> u8 {
        match self {
            CallError::Api { .. } => 1,
            CallError::Unreachable { .. } => 3,
            CallError::Protocol { .. } => 4,
        }
    }
}

/// A body to send.
pub enum Body {
    None,
    Json(Value),
    /// Raw bytes with their content type (CSV imports).
    Raw(&'static str, Vec<u8>),
}

/// A client of one hub.
pub struct Client {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

impl Client {
    /// `base` is the hub's address (`http://127.0.0.1:8740`); `ca_pem` a
    /// private CA to trust for `https://` besides the system's roots.
    pub fn new(base: &str, token: Option<String>, ca_pem: Option<&[u8]>) -> anyhow::Result<Self> {
        let mut b = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(300))
            .user_agent(concat!("presence-hubctl/", env!("CARGO_PKG_VERSION")));
        if let Some(pem) = ca_pem {
            for cert in reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| anyhow::anyhow!("--cacert: not a PEM certificate bundle: {e}"))?
            {
                b = b.add_root_certificate(cert);
            }
        }
        Ok(Self {
            base: base.trim_end_matches('/').to_string(),
            token,
            http: b.build()?,
        })
    }

    /// One call; the JSON answer (Null when empty), or the hub's refusal.
    pub async fn call(&self, method: Method, path: &str, body: Body) -> Result<Value, CallError> {
        let (status, bytes, url) = self.send(method, path, body).await?;
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).map_err(|e| CallError::Protocol {
                url: url.clone(),
                reason: format!("not JSON: {e}"),
            })?
        };
        if status.is_success() {
            Ok(value)
        } else {
            Err(refusal(status, value))
        }
    }

    /// One call whose answer is not JSON (a backup archive): its bytes.
    pub async fn call_bytes(&self, method: Method, path: &str) -> Result<Vec<u8>, CallError> {
        let (status, bytes, _) = self.send(method, path, Body::None).await?;
        if status.is_success() {
            Ok(bytes)
        } else {
            Err(refusal(
                status,
                serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            ))
        }
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Body,
    ) -> Result<(StatusCode, Vec<u8>, String), CallError> {
        let url = format!("{}{}", self.base, path);
        let mut req = self.http.request(method, &url);
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        req = match body {
            Body::None => req,
            Body::Json(v) => req.json(&v),
            Body::Raw(ctype, bytes) => req.header("content-type", ctype).body(bytes),
        };
        let unreachable = |e: reqwest::Error| CallError::Unreachable {
            url: self.base.clone(),
            reason: error_chain(&e),
        };
        let resp = req.send().await.map_err(unreachable)?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(unreachable)?.to_vec();
        Ok((status, bytes, url))
    }
}

fn refusal(status: StatusCode, body: Value) -> CallError {
    CallError::Api {
        status,
        error: body
            .get("error")
            .and_then(Value::as_str)
            .unwrap_or("no reason given")
            .to_string(),
        field: body
            .get("field")
            .and_then(Value::as_str)
            .map(str::to_string),
        body,
    }
}

/// reqwest's error with its causes ("error sending request: connection
/// refused"), which its Display alone leaves out.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
