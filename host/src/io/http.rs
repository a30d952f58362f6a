//! Outbound HTTP(S) requests.

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;

use super::failure::{self, Failure};
use super::{EventSink, IoError, IoEvent};

/// Largest response body handed to a guest.
const MAX_BODY: usize = 16 * 1024 * 1024;

/// A request as the guest asked for it (URL already checked against grants).
#[derive(Debug)]
pub struct HttpRequest {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub timeout: Option<Duration>,
}

/// A response as handed to the guest.
#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// A client that follows no redirects (a redirect could leave the grants) and
/// trusts what `tls` trusts.
pub(super) fn client(tls: &Arc<rustls::ClientConfig>) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .use_preconfigured_tls((**tls).clone())
        .connect_timeout(crate::timing::CONNECT_TIMEOUT)
        .build()
}

pub(super) fn spawn(
    client: reqwest::Client,
    req: HttpRequest,
    handle: u32,
    sink: EventSink,
) -> Result<JoinHandle<()>, IoError> {
    let method = reqwest::Method::from_bytes(req.method.as_bytes())
        .map_err(|_| IoError::Invalid(format!("invalid HTTP method {:?}", req.method)))?;
    let mut builder = client
        .request(method, &req.url)
        .timeout(req.timeout.unwrap_or(crate::timing::HTTP_TIMEOUT))
        .body(req.body);
    for (name, value) in &req.headers {
        let name = reqwest::header::HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| IoError::Invalid(format!("invalid header name {name:?}")))?;
        let value = reqwest::header::HeaderValue::from_str(value)
            .map_err(|_| IoError::Invalid(format!("invalid value for header {name}")))?;
        builder = builder.header(name, value);
    }
    let request = builder
        .build()
        .map_err(|e| IoError::Invalid(e.to_string()))?;
    Ok(tokio::spawn(async move {
        let outcome = perform(&client, request).await;
        sink.send(IoEvent::HttpResponse {
            request: handle,
            outcome,
        })
        .await;
    }))
}

/// Pass a request on to another node of the cluster (a webhook or an API
/// request for a connector that node runs) and bring its answer back. The
/// other node's address comes from the shared database, not from the
/// request; `https` nodes are checked against the system's and webpki's
/// roots. The failure is classified: [`Failure::Refused`] means nothing
/// was sent (the node is down).
pub async fn forward(req: HttpRequest) -> Result<HttpResponse, Failure> {
    static CLIENT: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    let client = CLIENT.get_or_init(|| {
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(crate::timing::CONNECT_TIMEOUT)
            .build()
            .expect("a default HTTP client builds")
    });
    let method = reqwest::Method::from_bytes(req.method.as_bytes())
        .map_err(|_| Failure::Other(format!("invalid HTTP method {:?}", req.method)))?;
    let mut builder = client
        .request(method, &req.url)
        .timeout(req.timeout.unwrap_or(crate::timing::HTTP_TIMEOUT))
        .body(req.body);
    for (name, value) in &req.headers {
        builder = builder.header(name, value);
    }
    let request = builder.build().map_err(|e| Failure::Other(e.to_string()))?;
    perform(client, request).await
}

async fn perform(
    client: &reqwest::Client,
    request: reqwest::Request,
) -> Result<HttpResponse, Failure> {
    let mut resp = client.execute(request).await.map_err(describe)?;
    let status = resp.status().as_u16();
    let headers = resp
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(describe)? {
        if body.len() + chunk.len() > MAX_BODY {
            return Err(Failure::Protocol(format!(
                "response body exceeds {MAX_BODY} bytes"
            )));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(HttpResponse {
        status,
        headers,
        body,
    })
}

/// A failed request, classified: reqwest's top-level message alone hides the
/// cause (refused, certificate, timeout), so look down its chain.
fn describe(e: reqwest::Error) -> Failure {
    if e.is_timeout() {
        return Failure::Timeout;
    }
    match failure::classify(&e) {
        // A resolver failure surfaces as an opaque connect error.
        Failure::Other(m) if e.is_connect() && m.contains("dns error") => Failure::Dns(m),
        f => f,
    }
}
