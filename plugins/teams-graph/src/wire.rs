//! What travels on the wire: Graph's JSON and the batching rules of the
//! presence APIs. Error answers, `Retry-After`, URL and form encoding and
//! the identity platform's answers are the SDK's (`sdk::graph`,
//! `sdk::urlcode`, `sdk::oauth`).

use presence_connector_sdk::urlcode;
use serde::{Deserialize, Serialize};

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

/// Most users one page of `GET /users` may hold (`$top`, Graph v1.0 list
/// users).
pub const MAX_USERS_PAGE: usize = 999;

/// One user of the tenant's directory, as `GET
/// /users?$select=id,displayName,mail,userPrincipalName` returns it
/// (Graph v1.0 `user`: `mail` and `displayName` may be null).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DirectoryUser {
    pub id: String,
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub mail: Option<String>,
    #[serde(default)]
    pub user_principal_name: Option<String>,
}

/// One page of `GET /users`: the users and, unless it is the last, the
/// absolute URL of the next page (`@odata.nextLink`).
#[derive(Debug, Clone, Deserialize)]
pub struct UserPage {
    pub value: Vec<DirectoryUser>,
    #[serde(rename = "@odata.nextLink", default)]
    pub next_link: Option<String>,
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

/// Percent-encode a UPN as a path segment; `@` stays readable.
pub fn encode_upn(s: &str) -> String {
    urlcode::encode_component(s).replace("%40", "@")
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
    fn encoding() {
        assert_eq!(
            encode_upn("ext_bob#EXT#@contoso.com"),
            "ext_bob%23EXT%23@contoso.com"
        );
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
