//! RingCentral's JSON, as far as the connector reads it, and the requests it
//! builds. Schemas from the OpenAPI description (RC-OAS,
//! `reference/specs/ringcentral-openapi.yml`); WebSocket frames from the
//! developer guide (facts C6).

use serde::Deserialize;
use serde_json::{Map, Value, json};

/// `TokenInfo` (RC-OAS): the answer of `POST /restapi/oauth/token`.
#[derive(Debug, Clone, Deserialize)]
pub struct TokenInfo {
    pub access_token: String,
    /// Seconds.
    pub expires_in: u64,
    pub refresh_token: Option<String>,
    /// Seconds.
    pub refresh_token_expires_in: Option<u64>,
}

/// `WsTokenResponse` (RC-OAS): `POST /restapi/oauth/wstoken`.
#[derive(Debug, Clone, Deserialize)]
pub struct WsToken {
    pub ws_access_token: String,
    /// The gateway, e.g. `wss://ws-api.ringcentral.com/ws`.
    pub uri: Option<String>,
    /// Seconds (the token is single-use and short-lived).
    #[serde(default)]
    pub expires_in: u64,
}

/// An id RingCentral writes as a number in one schema and a string in
/// another (extension ids: `int64` in `GetExtensionListInfoResponse`,
/// `string` in event bodies).
pub fn id_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// One record of `GetExtensionListResponse` (RC-OAS), as the directory
/// needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extension {
    pub id: String,
    pub number: Option<String>,
    pub name: Option<String>,
    pub email: Option<String>,
}

/// A page of `GET /restapi/v1.0/account/{accountId}/extension`: its
/// extensions and whether another page follows.
pub fn extension_page(body: &[u8]) -> Option<(Vec<Extension>, bool)> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let records = v.get("records")?.as_array()?;
    let exts = records
        .iter()
        .filter_map(|r| {
            let contact = r.get("contact");
            let text = |o: Option<&Value>, k: &str| {
                o.and_then(|o| o.get(k))
                    .and_then(Value::as_str)
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(String::from)
            };
            let name = text(Some(r), "name").or_else(|| {
                let first = text(contact, "firstName");
                let last = text(contact, "lastName");
                match (first, last) {
                    (Some(f), Some(l)) => Some(format!("{f} {l}")),
                    (f, l) => f.or(l),
                }
            });
            Some(Extension {
                id: id_text(r.get("id")?)?,
                number: text(Some(r), "extensionNumber"),
                name,
                email: text(contact, "email"),
            })
        })
        .collect();
    Some((exts, has_next_page(&v)))
}

/// Whether a paged answer (`navigation.nextPage`, `paging.page` /
/// `paging.totalPages`) has another page.
pub fn has_next_page(v: &Value) -> bool {
    if v.pointer("/navigation/nextPage/uri").is_some() {
        return true;
    }
    let page = v.pointer("/paging/page").and_then(Value::as_u64);
    let total = v.pointer("/paging/totalPages").and_then(Value::as_u64);
    matches!((page, total), (Some(p), Some(t)) if p < t)
}

/// The records of `AccountPresenceInfo` (RC-OAS), each a
/// `PresenceInfoResponse` object, and whether another page follows.
pub fn account_presence_page(body: &[u8]) -> Option<(Vec<Map<String, Value>>, bool)> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let records = v
        .get("records")?
        .as_array()?
        .iter()
        .filter_map(|r| r.as_object().cloned())
        .collect();
    Some((records, has_next_page(&v)))
}

/// The extension a presence object is about: `extensionId` in event bodies,
/// `extension.id` in `PresenceInfoResponse`.
pub fn presence_extension(p: &Map<String, Value>) -> Option<String> {
    p.get("extensionId")
        .and_then(id_text)
        .filter(|id| id != "~")
        .or_else(|| {
            p.get("extension")
                .and_then(|e| e.get("id"))
                .and_then(id_text)
        })
}

/// `DisabledFilterInfo` (RC-OAS).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct DisabledFilter {
    pub filter: String,
    #[serde(default)]
    pub reason: String,
    #[serde(default)]
    pub message: Option<String>,
}

/// `SubscriptionInfo` (RC-OAS), as far as it is read.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionInfo {
    pub id: String,
    /// Seconds granted (may be less than asked).
    pub expires_in: Option<u64>,
    /// RFC 3339.
    pub expiration_time: Option<String>,
    /// `Active` or `Blacklisted` (old spec: also `Suspended`).
    pub status: Option<String>,
    #[serde(default)]
    pub disabled_filters: Vec<DisabledFilter>,
}

/// The notification envelope (facts C4): `{uuid, event, timestamp,
/// subscriptionId, ownerId, body}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Notification {
    pub uuid: Option<String>,
    pub event: Option<String>,
    pub timestamp: Option<String>,
    pub subscription_id: Option<String>,
    pub body: Option<Value>,
}

/// The event filter of one extension's detailed presence with SIP data
/// (facts C4; `sipData=true` implies detailed).
pub fn extension_filter(account: &str, ext: &str) -> String {
    format!(
        "/restapi/v1.0/account/{account}/extension/{ext}/presence?detailedTelephonyState=true&sipData=true"
    )
}

/// The account-wide detailed presence filter (facts C4, changelog 1.0.45).
pub fn account_filter(account: &str) -> String {
    format!("/restapi/v1.0/account/{account}/presence?detailedTelephonyState=true")
}

/// The body of `POST /restapi/v1.0/subscription` for WebHook delivery
/// (`CreateSubscriptionRequest` with `WebhookDeliveryModeRequest`).
pub fn webhook_subscription(
    filters: &[String],
    address: &str,
    token: &str,
    expires_in: u64,
) -> Value {
    json!({
        "eventFilters": filters,
        "deliveryMode": {
            "transportType": "WebHook",
            "address": address,
            "verificationToken": token,
        },
        "expiresIn": expires_in,
    })
}

/// A WebSocket frame: `[meta, body]` (facts C6).
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    /// `ConnectionDetails`, `ClientRequest`, `ServerNotification`,
    /// `Heartbeat`, `Error`.
    pub kind: String,
    pub message_id: Option<String>,
    pub status: Option<u16>,
    /// `wsc.token`, the session-recovery token.
    pub wsc: Option<String>,
    pub body: Value,
}

/// Reads a WebSocket frame; `None` for anything that is not a JSON array
/// whose first element is an object with a `type`.
pub fn parse_frame(text: &str) -> Option<Frame> {
    let v: Value = serde_json::from_str(text).ok()?;
    let arr = v.as_array()?;
    let meta = arr.first()?.as_object()?;
    Some(Frame {
        kind: meta.get("type")?.as_str()?.to_string(),
        message_id: meta
            .get("messageId")
            .and_then(Value::as_str)
            .map(String::from),
        status: meta
            .get("status")
            .and_then(Value::as_u64)
            .and_then(|s| u16::try_from(s).ok()),
        wsc: meta
            .get("wsc")
            .and_then(|w| w.get("token"))
            .and_then(Value::as_str)
            .map(String::from),
        body: arr.get(1).cloned().unwrap_or(Value::Null),
    })
}

/// The `ClientRequest` frame that creates (or replaces: one subscription per
/// connection) the WebSocket subscription.
pub fn ws_subscribe_frame(message_id: &str, filters: &[String]) -> String {
    json!([
        {
            "type": "ClientRequest",
            "messageId": message_id,
            "method": "POST",
            "path": "/restapi/v1.0/subscription/",
        },
        {
            "eventFilters": filters,
            "deliveryMode": { "transportType": "WebSocket" },
        }
    ])
    .to_string()
}

/// A `Heartbeat` frame.
pub fn heartbeat_frame(message_id: &str) -> String {
    json!([{ "type": "Heartbeat", "messageId": message_id }]).to_string()
}

/// What an error answer says, in one line: RingCentral's
/// `{errorCode, message, errors[]}` or OAuth's `{error, error_description}`.
pub fn error_text(status: u16, body: &[u8]) -> String {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let s = |k: &str| v.get(k).and_then(Value::as_str);
    let first_error = v.pointer("/errors/0");
    let code = s("errorCode")
        .or_else(|| {
            first_error
                .and_then(|e| e.get("errorCode"))
                .and_then(Value::as_str)
        })
        .or_else(|| s("error"));
    let msg = s("message")
        .or_else(|| {
            first_error
                .and_then(|e| e.get("message"))
                .and_then(Value::as_str)
        })
        .or_else(|| s("error_description"));
    match (code, msg) {
        (Some(c), Some(m)) => format!("HTTP {status} {c}: {}", first_line(m)),
        (Some(c), None) => format!("HTTP {status} {c}"),
        (None, Some(m)) => format!("HTTP {status}: {}", first_line(m)),
        (None, None) => format!("HTTP {status}"),
    }
}

/// The `error` of an OAuth error answer (`invalid_grant`, `invalid_client`).
pub fn oauth_error(body: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(body).ok()?;
    v.get("error").and_then(Value::as_str).map(String::from)
}

/// The permission an error body names: `errors[].permissionName`, else the
/// first `[Name]` in a message ("application needs to have [ReadPresence]
/// permission").
pub fn missing_permission(body: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(body).ok()?;
    if let Some(errors) = v.get("errors").and_then(Value::as_array) {
        for e in errors {
            if let Some(p) = e.get("permissionName").and_then(Value::as_str) {
                return Some(p.to_string());
            }
        }
    }
    let mut messages = vec![v.get("message").and_then(Value::as_str)];
    if let Some(errors) = v.get("errors").and_then(Value::as_array) {
        messages.extend(
            errors
                .iter()
                .map(|e| e.get("message").and_then(Value::as_str)),
        );
    }
    messages.into_iter().flatten().find_map(|m| {
        let start = m.find('[')? + 1;
        let end = start + m[start..].find(']')?;
        let name = &m[start..end];
        (!name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric()))
            .then(|| name.to_string())
    })
}

fn first_line(s: &str) -> &str {
    let line = s.lines().next().unwrap_or("");
    match line.char_indices().nth(200) {
        Some((i, _)) => &line[..i],
        None => line,
    }
}

/// A header's value (case-insensitive name).
pub fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Compares two secrets in time independent of where they differ.
pub fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extension_pages() {
        let body = json!({
            "records": [
                {"id": 62000001, "extensionNumber": "101", "name": "Alice Smith",
                 "contact": {"email": "alice@example.com", "firstName": "Alice"}},
                {"id": "62000002", "extensionNumber": "102",
                 "contact": {"firstName": "Bob", "lastName": "Jones"}},
                {"extensionNumber": "103"}
            ],
            "paging": {"page": 1, "totalPages": 2, "perPage": 1000},
            "navigation": {}
        });
        let (exts, more) = extension_page(&serde_json::to_vec(&body).unwrap()).unwrap();
        assert!(more);
        assert_eq!(exts.len(), 2);
        assert_eq!(exts[0].id, "62000001");
        assert_eq!(exts[0].email.as_deref(), Some("alice@example.com"));
        assert_eq!(exts[1].name.as_deref(), Some("Bob Jones"));
        let last = json!({"records": [], "paging": {"page": 2, "totalPages": 2}});
        assert!(
            !extension_page(&serde_json::to_vec(&last).unwrap())
                .unwrap()
                .1
        );
        let nav = json!({"records": [], "navigation": {"nextPage": {"uri": "https://x"}}});
        assert!(
            extension_page(&serde_json::to_vec(&nav).unwrap())
                .unwrap()
                .1
        );
    }

    #[test]
    fn frames() {
        let hello = r#"[{"type":"ConnectionDetails","messageId":"1","status":200,"wsc":{"token":"wsc-1","sequence":1}},{"recoveryTimeout":180,"idleTimeout":1800}]"#;
        let f = parse_frame(hello).unwrap();
        assert_eq!(f.kind, "ConnectionDetails");
        assert_eq!(f.wsc.as_deref(), Some("wsc-1"));
        assert_eq!(f.status, Some(200));
        assert_eq!(f.body["recoveryTimeout"], 180);
        assert_eq!(parse_frame(r#"{"type":"x"}"#), None);
        assert_eq!(parse_frame("[1,2]"), None);
        assert_eq!(parse_frame("not json"), None);
        let sub: Value = serde_json::from_str(&ws_subscribe_frame("m1", &["/a".into()])).unwrap();
        assert_eq!(sub[0]["type"], "ClientRequest");
        assert_eq!(sub[0]["path"], "/restapi/v1.0/subscription/");
        assert_eq!(sub[1]["deliveryMode"]["transportType"], "WebSocket");
        assert_eq!(sub[1]["eventFilters"][0], "/a");
        let hb: Value = serde_json::from_str(&heartbeat_frame("h")).unwrap();
        assert_eq!(hb, json!([{"type": "Heartbeat", "messageId": "h"}]));
    }

    #[test]
    fn errors_and_permissions() {
        let body = br#"{"errorCode":"InsufficientPermissions","message":"In order to call this API endpoint, application needs to have [ReadPresence] permission","errors":[{"errorCode":"CMN-401","message":"x"}]}"#;
        assert_eq!(missing_permission(body).as_deref(), Some("ReadPresence"));
        assert!(error_text(403, body).starts_with("HTTP 403 InsufficientPermissions: In order"));
        let named = br#"{"errors":[{"errorCode":"CMN-401","message":"no","permissionName":"EditPresence"}]}"#;
        assert_eq!(missing_permission(named).as_deref(), Some("EditPresence"));
        assert_eq!(missing_permission(b"{}"), None);
        let oauth = br#"{"error":"invalid_grant","error_description":"Token is revoked"}"#;
        assert_eq!(oauth_error(oauth).as_deref(), Some("invalid_grant"));
        assert_eq!(
            error_text(400, oauth),
            "HTTP 400 invalid_grant: Token is revoked"
        );
        assert_eq!(error_text(502, b"<html>"), "HTTP 502");
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "ab"));
    }

    #[test]
    fn filters_and_subscription_bodies() {
        assert_eq!(
            extension_filter("~", "62000001"),
            "/restapi/v1.0/account/~/extension/62000001/presence?detailedTelephonyState=true&sipData=true"
        );
        let b = webhook_subscription(&["/f".into()], "https://h/notify", "tok", 604_800);
        assert_eq!(b["deliveryMode"]["transportType"], "WebHook");
        assert_eq!(b["deliveryMode"]["verificationToken"], "tok");
        assert_eq!(b["expiresIn"], 604_800);
        let mut p = Map::new();
        p.insert("extension".into(), json!({"id": 5}));
        assert_eq!(presence_extension(&p).as_deref(), Some("5"));
        p.insert("extensionId".into(), json!("7"));
        assert_eq!(presence_extension(&p).as_deref(), Some("7"));
    }
}
