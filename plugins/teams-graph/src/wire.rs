//! What travels on the wire: Graph and identity-platform JSON, form and URL
//! encoding, `Retry-After`, and the batching rules of the presence APIs.

use serde::{Deserialize, Serialize};

use crate::time;

/// Most user ids one `getPresencesByUserId` call or one presence
/// subscription may name.
pub const MAX_IDS: usize = 650;

/// Most requests one JSON batch (`POST /$batch`) may carry.
pub const MAX_BATCH: usize = 20;

/// A presence resource as Graph returns it. Every field but `id` may be
/// missing; the values are strings without a fixed set.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Presence {
    pub id: String,
    #[serde(default)]
    pub availability: Option<String>,
    #[serde(default)]
    pub activity: Option<String>,
    #[serde(default)]
    pub sequence_number: Option<String>,
    #[serde(default)]
    pub out_of_office_settings: Option<OutOfOfficeSettings>,
    #[serde(default)]
    pub status_message: Option<StatusMessage>,
}

/// `outOfOfficeSettings` of a presence.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct OutOfOfficeSettings {
    #[serde(default)]
    pub is_out_of_office: Option<bool>,
    #[serde(default)]
    pub message: Option<String>,
}

/// `statusMessage` of a presence (only its text is used).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct StatusMessage {
    #[serde(default)]
    pub message: Option<ItemBody>,
}

/// An `itemBody`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct ItemBody {
    #[serde(default)]
    pub content: Option<String>,
}

impl Presence {
    /// The custom status text, without HTML markup Teams may add.
    pub fn note(&self) -> Option<String> {
        let text = self
            .status_message
            .as_ref()?
            .message
            .as_ref()?
            .content
            .as_deref()?;
        let plain = strip_tags(text);
        let plain = plain.trim();
        (!plain.is_empty()).then(|| plain.to_string())
    }

    /// Whether automatic replies are on.
    pub fn out_of_office(&self) -> bool {
        self.out_of_office_settings
            .as_ref()
            .and_then(|o| o.is_out_of_office)
            .unwrap_or(false)
    }
}

fn strip_tags(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut in_tag = false;
    for c in s.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out
}

/// `{"value": [...]}`.
#[derive(Debug, Clone, Deserialize)]
pub struct Collection<T> {
    pub value: Vec<T>,
}

/// A user, as far as resolving a UPN needs it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    pub id: String,
}

/// A subscription as Graph returns it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Subscription {
    pub id: String,
    pub expiration_date_time: String,
}

/// A subscription request.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NewSubscription<'a> {
    pub change_type: &'a str,
    pub notification_url: &'a str,
    pub lifecycle_notification_url: &'a str,
    pub resource: String,
    pub expiration_date_time: String,
    pub client_state: &'a str,
    pub include_resource_data: bool,
    pub latest_supported_tls_version: &'a str,
}

/// One change or lifecycle notification.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Notification {
    pub subscription_id: String,
    #[serde(default)]
    pub client_state: Option<String>,
    #[serde(default)]
    pub resource: Option<String>,
    #[serde(default)]
    pub resource_data: Option<ResourceData>,
    #[serde(default)]
    pub lifecycle_event: Option<String>,
}

/// `resourceData` of a basic notification.
#[derive(Debug, Clone, Deserialize)]
pub struct ResourceData {
    #[serde(default)]
    pub id: Option<String>,
}

impl Notification {
    /// The user id a change notification is about: `resourceData.id`, else
    /// the last segment of `communications/presences/{id}`.
    pub fn user_id(&self) -> Option<String> {
        if let Some(id) = self.resource_data.as_ref().and_then(|d| d.id.clone()) {
            return Some(id.to_ascii_lowercase());
        }
        let resource = self.resource.as_deref()?;
        let lower = resource.to_ascii_lowercase();
        let rest = lower
            .trim_start_matches('/')
            .strip_prefix("communications/presences/")
            .or_else(|| {
                lower
                    .trim_start_matches('/')
                    .strip_prefix("users/")
                    .and_then(|r| r.strip_suffix("/presence"))
            })?;
        let id = rest.trim_start_matches("('").trim_end_matches("')");
        is_guid(id).then(|| id.to_string())
    }
}

/// The lifecycle events Graph sends (`lifecycleEventType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifecycle {
    ReauthorizationRequired,
    SubscriptionRemoved,
    Missed,
}

impl Lifecycle {
    /// Parse Graph's name of a lifecycle event.
    pub fn parse(s: &str) -> Option<Lifecycle> {
        match s {
            s if s.eq_ignore_ascii_case("reauthorizationRequired") => {
                Some(Lifecycle::ReauthorizationRequired)
            }
            s if s.eq_ignore_ascii_case("subscriptionRemoved") => {
                Some(Lifecycle::SubscriptionRemoved)
            }
            s if s.eq_ignore_ascii_case("missed") => Some(Lifecycle::Missed),
            _ => None,
        }
    }
}

/// One request inside a JSON batch. Its `url` is relative to the version
/// (`/users/...`), its `id` unique within the batch.
#[derive(Debug, Clone, Serialize)]
pub struct BatchRequest {
    pub id: String,
    pub method: &'static str,
    pub url: String,
}

/// A JSON batch: `{"requests": [...]}`.
#[derive(Debug, Clone, Serialize)]
pub struct Batch {
    pub requests: Vec<BatchRequest>,
}

/// One answer inside a JSON batch answer, in any order.
#[derive(Debug, Clone, Deserialize)]
pub struct BatchResponse {
    pub id: String,
    pub status: u16,
    #[serde(default)]
    pub headers: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    pub body: Option<serde_json::Value>,
}

impl BatchResponse {
    /// The headers as a plain answer has them.
    pub fn header_list(&self) -> Vec<(String, String)> {
        self.headers
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// The body as the bytes a plain answer would carry.
    pub fn body_bytes(&self) -> Vec<u8> {
        match &self.body {
            None | Some(serde_json::Value::Null) => Vec::new(),
            Some(v) => serde_json::to_vec(v).unwrap_or_default(),
        }
    }
}

/// `{"responses": [...]}`.
#[derive(Debug, Clone, Deserialize)]
pub struct BatchAnswer {
    pub responses: Vec<BatchResponse>,
}

/// A Graph error body: `{"error":{"code":...,"message":...}}`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct GraphErrorBody {
    #[serde(default)]
    pub error: GraphError,
}

/// The inner error.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct GraphError {
    #[serde(default)]
    pub code: String,
    #[serde(default)]
    pub message: String,
}

/// `code: message` of a Graph error answer, or the status alone.
pub fn graph_error_text(status: u16, body: &[u8]) -> String {
    match serde_json::from_slice::<GraphErrorBody>(body) {
        Ok(b) if !b.error.code.is_empty() || !b.error.message.is_empty() => {
            format!(
                "{status} {}: {}",
                b.error.code,
                first_line(&b.error.message)
            )
        }
        _ => format!("{status}"),
    }
}

/// A token endpoint answer.
#[derive(Debug, Clone, Deserialize)]
pub struct TokenResponse {
    pub access_token: String,
    #[serde(default)]
    pub refresh_token: Option<String>,
    /// Seconds; some deployments write it as a string.
    #[serde(default, deserialize_with = "number_or_string")]
    pub expires_in: Option<u64>,
}

/// A device authorization answer.
#[derive(Debug, Clone, Deserialize)]
pub struct DeviceCodeResponse {
    pub device_code: String,
    pub user_code: String,
    pub verification_uri: String,
    #[serde(default, deserialize_with = "number_or_string")]
    pub expires_in: Option<u64>,
    #[serde(default, deserialize_with = "number_or_string")]
    pub interval: Option<u64>,
    #[serde(default)]
    pub message: Option<String>,
}

/// An OAuth 2.0 error answer.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct OAuthError {
    #[serde(default)]
    pub error: String,
    #[serde(default)]
    pub error_description: String,
}

impl OAuthError {
    /// Parse, tolerating bodies that are not JSON.
    pub fn parse(body: &[u8]) -> OAuthError {
        serde_json::from_slice(body).unwrap_or_default()
    }

    /// `error: first line of description`, for operators.
    pub fn text(&self, status: u16) -> String {
        if self.error.is_empty() {
            format!("HTTP {status}")
        } else if self.error_description.is_empty() {
            self.error.clone()
        } else {
            format!("{}: {}", self.error, first_line(&self.error_description))
        }
    }
}

fn number_or_string<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum N {
        Num(u64),
        Text(String),
    }
    Ok(match Option::<N>::deserialize(d)? {
        Some(N::Num(n)) => Some(n),
        Some(N::Text(t)) => t.trim().parse().ok(),
        None => None,
    })
}

fn first_line(s: &str) -> &str {
    // The identity platform appends trace and correlation ids on new lines.
    s.lines().next().unwrap_or("").trim()
}

/// Whether `s` is a GUID (`8-4-4-4-12` hex), the form of a user object id.
pub fn is_guid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// Split ids into request-sized batches of at most [`MAX_IDS`].
pub fn batches<T: Clone>(ids: &[T]) -> Vec<Vec<T>> {
    ids.chunks(MAX_IDS).map(<[T]>::to_vec).collect()
}

/// The subscription resource for a set of user ids.
pub fn presence_resource<'a>(ids: impl IntoIterator<Item = &'a String>) -> String {
    let list: Vec<String> = ids.into_iter().map(|i| format!("'{i}'")).collect();
    format!(
        "/communications/presences?$filter=id in ({})",
        list.join(",")
    )
}

/// How long `Retry-After` asks to wait, in ms: delay-seconds or an HTTP
/// date. `None` when absent or unreadable.
pub fn retry_after_ms(headers: &[(String, String)], now_ms: u64) -> Option<u64> {
    let value = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("retry-after"))?
        .1
        .trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(secs.saturating_mul(1000));
    }
    if let Ok(secs) = value.parse::<f64>()
        && secs.is_finite()
        && secs >= 0.0
    {
        return Some((secs * 1000.0) as u64);
    }
    time::parse_http_date(value).map(|at| at.saturating_sub(now_ms))
}

/// Percent-encode for a path segment or form value: everything but the
/// unreserved characters.
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Percent-encode a UPN as a path segment; `@` stays readable.
pub fn encode_upn(s: &str) -> String {
    encode(s).replace("%40", "@")
}

/// `application/x-www-form-urlencoded` of pairs.
pub fn form(pairs: &[(&str, &str)]) -> Vec<u8> {
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
        .into_bytes()
}

/// Decode a query-string or form component (`+` is a space).
pub fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(hi), Some(lo)) => {
                    out.push(hi << 4 | lo);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

/// The first value of `name` in a query string, decoded.
pub fn query_param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (decode(k) == name).then(|| decode(v))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_stay_within_650() {
        let ids: Vec<u32> = (0..1301).collect();
        let b = batches(&ids);
        assert_eq!(b.len(), 3);
        assert_eq!(b[0].len(), 650);
        assert_eq!(b[1].len(), 650);
        assert_eq!(b[2], vec![1300]);
        assert!(batches::<u32>(&[]).is_empty());
        assert_eq!(batches(&ids[..650]).len(), 1);
    }

    #[test]
    fn retry_after_seconds_and_dates() {
        let h = |v: &str| vec![("Retry-After".to_string(), v.to_string())];
        assert_eq!(retry_after_ms(&h("3"), 0), Some(3000));
        assert_eq!(retry_after_ms(&h(" 0 "), 0), Some(0));
        assert_eq!(retry_after_ms(&h("1.5"), 0), Some(1500));
        let now = 784_111_770_000;
        assert_eq!(
            retry_after_ms(&h("Sun, 06 Nov 1994 08:49:37 GMT"), now),
            Some(7000)
        );
        assert_eq!(
            retry_after_ms(&h("Sun, 06 Nov 1994 08:49:37 GMT"), now + 60_000),
            Some(0),
            "a date in the past means now"
        );
        assert_eq!(retry_after_ms(&h("soon"), 0), None);
        assert_eq!(retry_after_ms(&h("-4"), 0), None);
        assert_eq!(retry_after_ms(&[], 0), None);
        let lower = vec![("retry-after".to_string(), "2".to_string())];
        assert_eq!(retry_after_ms(&lower, 0), Some(2000));
    }

    #[test]
    fn notifications_parse_and_name_their_user() {
        let body = br##"{"value":[
            {"subscriptionId":"s1","clientState":"cs","changeType":"updated","tenantId":"t",
             "resource":"communications/presences/FA8BF3DC-0000-4000-8000-000000000001",
             "subscriptionExpirationDateTime":"2026-01-01T10:55:00.0000000Z",
             "resourceData":{"@odata.id":"users/x/presence","@odata.type":"#microsoft.graph.presence","id":"fa8bf3dc-0000-4000-8000-000000000001"}},
            {"subscriptionId":"s1","clientState":"cs","resource":"communications/presences/fa8bf3dc-0000-4000-8000-000000000002"},
            {"subscriptionId":"s1","clientState":"cs","lifecycleEvent":"reauthorizationRequired","subscriptionExpirationDateTime":"2026-01-01T10:55:00Z"}
        ]}"##;
        let c: Collection<Notification> = serde_json::from_slice(body).unwrap();
        assert_eq!(
            c.value[0].user_id().as_deref(),
            Some("fa8bf3dc-0000-4000-8000-000000000001")
        );
        assert_eq!(
            c.value[1].user_id().as_deref(),
            Some("fa8bf3dc-0000-4000-8000-000000000002")
        );
        assert_eq!(c.value[0].client_state.as_deref(), Some("cs"));
        assert_eq!(
            c.value[2]
                .lifecycle_event
                .as_deref()
                .and_then(Lifecycle::parse),
            Some(Lifecycle::ReauthorizationRequired)
        );
        assert_eq!(Lifecycle::parse("missed"), Some(Lifecycle::Missed));
        assert_eq!(
            Lifecycle::parse("SubscriptionRemoved"),
            Some(Lifecycle::SubscriptionRemoved)
        );
        assert_eq!(Lifecycle::parse("other"), None);
    }

    #[test]
    fn presence_json_with_optional_parts() {
        let p: Presence = serde_json::from_str(
            r##"{"@odata.type":"#microsoft.graph.presence","id":"x","availability":"Busy","activity":"InACall",
                "sequenceNumber":"0000000042","outOfOfficeSettings":{"message":null,"isOutOfOffice":true},
                "statusMessage":{"message":{"content":"<p>Back at 3</p>","contentType":"html"}}}"##,
        )
        .unwrap();
        assert_eq!(p.availability.as_deref(), Some("Busy"));
        assert!(p.out_of_office());
        assert_eq!(p.note().as_deref(), Some("Back at 3"));
        let bare: Presence = serde_json::from_str(r#"{"id":"y"}"#).unwrap();
        assert_eq!(bare.availability, None);
        assert!(!bare.out_of_office());
        assert_eq!(bare.note(), None);
    }

    #[test]
    fn token_answers_and_errors() {
        let t: TokenResponse = serde_json::from_str(
            r#"{"token_type":"Bearer","expires_in":"3599","access_token":"a","refresh_token":"r"}"#,
        )
        .unwrap();
        assert_eq!(t.expires_in, Some(3599));
        let e = OAuthError::parse(
            br#"{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided.\r\nTrace ID: 1"}"#,
        );
        assert_eq!(
            e.text(401),
            "invalid_client: AADSTS7000215: Invalid client secret provided."
        );
        assert_eq!(OAuthError::parse(b"<html>").text(502), "HTTP 502");
        assert_eq!(
            graph_error_text(
                403,
                br#"{"error":{"code":"Forbidden","message":"Insufficient privileges"}}"#
            ),
            "403 Forbidden: Insufficient privileges"
        );
        assert_eq!(graph_error_text(500, b""), "500");
    }

    #[test]
    fn encoding() {
        assert_eq!(encode("a b&c=d/é"), "a%20b%26c%3Dd%2F%C3%A9");
        assert_eq!(
            encode_upn("ext_bob#EXT#@contoso.com"),
            "ext_bob%23EXT%23@contoso.com"
        );
        assert_eq!(
            String::from_utf8(form(&[
                ("grant_type", "client_credentials"),
                ("scope", "x/.default")
            ]))
            .unwrap(),
            "grant_type=client_credentials&scope=x%2F.default"
        );
        assert_eq!(decode("Validation%3A+Testing%20x"), "Validation: Testing x");
        assert_eq!(decode("100%"), "100%");
        assert_eq!(decode("%zz"), "%zz");
        assert_eq!(
            query_param("a=1&validationToken=tok%2Bx", "validationToken").as_deref(),
            Some("tok+x")
        );
        assert_eq!(query_param("a=1", "b"), None);
    }

    #[test]
    fn json_batches_both_ways() {
        let b = Batch {
            requests: vec![BatchRequest {
                id: "1".into(),
                method: "GET",
                url: "/users/a@contoso.com?$select=id".into(),
            }],
        };
        assert_eq!(
            serde_json::to_value(&b).unwrap(),
            serde_json::json!({"requests": [{"id": "1", "method": "GET", "url": "/users/a@contoso.com?$select=id"}]})
        );
        let a: BatchAnswer = serde_json::from_str(
            r#"{"responses": [
                {"id": "2", "status": 429, "headers": {"Retry-After": "3"}, "body": {"error": {"code": "TooManyRequests", "message": "slow"}}},
                {"id": "1", "status": 200, "body": {"id": "x"}},
                {"id": "3", "status": 204}
            ]}"#,
        )
        .unwrap();
        assert_eq!(
            a.responses[0].header_list(),
            vec![("Retry-After".to_string(), "3".to_string())]
        );
        assert_eq!(a.responses[1].body_bytes(), br#"{"id":"x"}"#);
        assert!(a.responses[2].body_bytes().is_empty());
    }

    #[test]
    fn guids_and_resources() {
        assert!(is_guid("fa8bf3dc-eca7-46b7-bad1-db199b62afc3"));
        assert!(!is_guid("alice@contoso.com"));
        assert!(!is_guid("fa8bf3dc-eca7-46b7-bad1-db199b62afcz"));
        let ids = vec!["a".to_string(), "b".to_string()];
        assert_eq!(
            presence_resource(&ids),
            "/communications/presences?$filter=id in ('a','b')"
        );
    }
}
