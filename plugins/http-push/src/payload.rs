//! The request body: JSON in, presence updates in the contract's types out.
//!
//! Validation is strict (unknown fields are refused, so a typo is an error
//! instead of a silently ignored value) and covers the whole body before
//! anything is returned, so a batch is applied entirely or not at all.
//! Errors name the offending field by its JSON path, e.g.
//! `updates[2].rich.availability`.

use std::collections::BTreeMap;

use presence_connector_sdk::{
    Activity, Availability, ForwardTarget, LineState, Ordering, PresenceUpdate, RichPresence,
    TelephonyPresence, TelephonySource, UpdateOrigin, VendorValue,
};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Most updates one request may carry.
pub const MAX_UPDATES: usize = 1000;
/// Longest endpoint id, in characters.
pub const MAX_ENDPOINT_CHARS: usize = 256;
/// Longest note, in characters.
pub const MAX_NOTE_CHARS: usize = 1024;

/// The ordering epoch of every pushed `sequence`. The payload has no epoch,
/// so a sender's sequence numbers form one order per endpoint for good, as
/// they did under contract 0.1.0 (whose sequences the host places in this
/// same empty epoch).
const SEQUENCE_EPOCH: &str = "";

/// Why a body was refused (400).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyError {
    /// What is wrong, for the sender.
    pub message: String,
    /// JSON path of the offending field; `None` when the body as a whole is
    /// wrong (not JSON, not an object).
    pub field: Option<String>,
}

impl BodyError {
    fn at(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            field: Some(field.into()),
        }
    }

    fn whole_body(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            field: None,
        }
    }
}

/// Parses and validates a body: one update object, or `{"updates": [...]}`.
pub fn parse(body: &[u8]) -> Result<Vec<PresenceUpdate>, BodyError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| BodyError::whole_body(format!("body is not valid JSON: {e}")))?;
    let Value::Object(object) = &value else {
        return Err(BodyError::whole_body(
            "body must be a JSON object: one update, or {\"updates\": [...]}",
        ));
    };

    // The two forms are told apart by the `updates` key rather than with an
    // untagged serde enum, which would lose the path of the real error.
    let updates: Vec<(String, UpdateIn)> = match object.get("updates") {
        Some(updates) => {
            if let Some(items) = updates.as_array()
                && !(1..=MAX_UPDATES).contains(&items.len())
            {
                return Err(BodyError::at(
                    "updates",
                    format!("must hold between 1 and {MAX_UPDATES} updates"),
                ));
            }
            let batch: BatchIn = deserialize(value)?;
            batch
                .updates
                .into_iter()
                .enumerate()
                .map(|(i, update)| (format!("updates[{i}]."), update))
                .collect()
        }
        None => vec![(String::new(), deserialize(value)?)],
    };

    updates
        .into_iter()
        .map(|(prefix, update)| update.validate(&prefix))
        .collect()
}

/// Deserializes with the failing field's path attached to the error.
fn deserialize<T: DeserializeOwned>(value: Value) -> Result<T, BodyError> {
    serde_path_to_error::deserialize(value).map_err(|error| {
        let path = error.path().to_string();
        let message = error.inner().to_string();
        // serde reports a missing field at its parent; point at the field.
        let path = match missing_field(&message) {
            Some(name) if path == "." => name.to_owned(),
            Some(name) => format!("{path}.{name}"),
            None => path,
        };
        if path == "." {
            BodyError::whole_body(message)
        } else {
            BodyError::at(path, message)
        }
    })
}

/// The field name in serde's "missing field `name`" message.
fn missing_field(message: &str) -> Option<&str> {
    message
        .strip_prefix("missing field `")?
        .split_once('`')
        .map(|(name, _)| name)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchIn {
    updates: Vec<UpdateIn>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateIn {
    endpoint: String,
    observed_at: Option<u64>,
    sequence: Option<u64>,
    /// How long this state holds unless pushed again (seconds).
    valid_for_seconds: Option<u64>,
    telephony: Option<TelephonyIn>,
    rich: Option<RichIn>,
    raw: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TelephonyIn {
    line: LineIn,
    #[serde(default)]
    dnd: bool,
    forward: Option<ForwardIn>,
    #[serde(default)]
    source: SourceIn,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
enum LineIn {
    Idle,
    Ringing,
    Dialing,
    InCall,
    OnHold,
    Unknown,
}

/// `{"voicemail": true}` or `{"number": "..."}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ForwardIn {
    voicemail: Option<bool>,
    number: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
enum SourceIn {
    #[default]
    PbxLine,
    SipDerived,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RichIn {
    availability: AvailabilityIn,
    activity: Option<String>,
    note: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
enum AvailabilityIn {
    Available,
    Away,
    Busy,
    DoNotDisturb,
    Offline,
    Unknown,
}

impl UpdateIn {
    /// Checks what the types alone cannot and converts to the contract's
    /// types. `prefix` is the update's JSON path plus a dot, or empty.
    fn validate(self, prefix: &str) -> Result<PresenceUpdate, BodyError> {
        let at = |field: &str| format!("{prefix}{field}");

        if self.endpoint.trim().is_empty() {
            return Err(BodyError::at(at("endpoint"), "must not be empty"));
        }
        if self.endpoint.chars().count() > MAX_ENDPOINT_CHARS {
            return Err(BodyError::at(
                at("endpoint"),
                format!("must be at most {MAX_ENDPOINT_CHARS} characters"),
            ));
        }
        if self.telephony.is_none() && self.rich.is_none() {
            return Err(BodyError::at(
                at("telephony"),
                "at least one of `telephony` or `rich` is required",
            ));
        }
        let telephony = self
            .telephony
            .map(|t| t.validate(&at("telephony.")))
            .transpose()?;
        let rich = self.rich.map(|r| r.validate(&at("rich."))).transpose()?;
        if let Some(v) = self.valid_for_seconds
            && !crate::settings::VALID_SECONDS_RANGE.contains(&v)
        {
            return Err(BodyError::at(
                at("valid_for_seconds"),
                format!(
                    "must be between {} and {} seconds",
                    crate::settings::VALID_SECONDS_RANGE.start(),
                    crate::settings::VALID_SECONDS_RANGE.end()
                ),
            ));
        }

        Ok(PresenceUpdate {
            endpoint: self.endpoint,
            observed_at: self.observed_at,
            ordering: self.sequence.map(|sequence| Ordering {
                epoch: SEQUENCE_EPOCH.into(),
                sequence,
            }),
            // A sender pushes what its platform observed; the hub never
            // writes through this connector, so nothing is an echo.
            origin: UpdateOrigin::Platform,
            telephony,
            rich,
            calendar: None,
            valid_for_ms: self.valid_for_seconds.map(|s| s * 1000),
            raw: self
                .raw
                .unwrap_or_default()
                .into_iter()
                .map(|(name, value)| VendorValue { name, value })
                .collect(),
        })
    }
}

impl TelephonyIn {
    fn validate(self, prefix: &str) -> Result<TelephonyPresence, BodyError> {
        let forward = self
            .forward
            .map(|f| f.validate(&format!("{prefix}forward")))
            .transpose()?;
        Ok(TelephonyPresence {
            line: match self.line {
                LineIn::Idle => LineState::Idle,
                LineIn::Ringing => LineState::Ringing,
                LineIn::Dialing => LineState::Dialing,
                LineIn::InCall => LineState::InCall,
                LineIn::OnHold => LineState::OnHold,
                LineIn::Unknown => LineState::Unknown,
            },
            do_not_disturb: self.dnd,
            forward,
            source: match self.source {
                SourceIn::PbxLine => TelephonySource::PbxLine,
                SourceIn::SipDerived => TelephonySource::SipDerived,
            },
        })
    }
}

impl ForwardIn {
    fn validate(self, path: &str) -> Result<ForwardTarget, BodyError> {
        match (self.voicemail, self.number) {
            (Some(true), None) => Ok(ForwardTarget::Voicemail),
            (Some(false), None) => Err(BodyError::at(
                format!("{path}.voicemail"),
                "must be true; leave `forward` out when the line is not forwarded",
            )),
            (None, Some(number)) if number.trim().is_empty() => {
                Err(BodyError::at(format!("{path}.number"), "must not be empty"))
            }
            (None, Some(number)) => Ok(ForwardTarget::Number(number)),
            _ => Err(BodyError::at(
                path,
                "must hold exactly one of `voicemail` or `number`",
            )),
        }
    }
}

impl RichIn {
    fn validate(self, prefix: &str) -> Result<RichPresence, BodyError> {
        let activity = match self.activity {
            Some(activity) if activity.trim().is_empty() => {
                return Err(BodyError::at(
                    format!("{prefix}activity"),
                    "must not be empty",
                ));
            }
            Some(activity) => Some(activity_from(activity)),
            None => None,
        };
        if let Some(note) = &self.note
            && note.chars().count() > MAX_NOTE_CHARS
        {
            return Err(BodyError::at(
                format!("{prefix}note"),
                format!("must be at most {MAX_NOTE_CHARS} characters"),
            ));
        }
        Ok(RichPresence {
            availability: match self.availability {
                AvailabilityIn::Available => Availability::Available,
                AvailabilityIn::Away => Availability::Away,
                AvailabilityIn::Busy => Availability::Busy,
                AvailabilityIn::DoNotDisturb => Availability::DoNotDisturb,
                AvailabilityIn::Offline => Availability::Offline,
                AvailabilityIn::Unknown => Availability::Unknown,
            },
            activity,
            note: self.note,
        })
    }
}

/// The contract's activities by their WIT names; anything else is kept as
/// the source's own words.
fn activity_from(name: String) -> Activity {
    match name.as_str() {
        "in-a-call" => Activity::InACall,
        "in-a-conference" => Activity::InAConference,
        "in-a-meeting" => Activity::InAMeeting,
        "presenting" => Activity::Presenting,
        "out-of-office" => Activity::OutOfOffice,
        "be-right-back" => Activity::BeRightBack,
        "off-work" => Activity::OffWork,
        "inactive" => Activity::Inactive,
        _ => Activity::Other(name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse_json(value: Value) -> Result<Vec<PresenceUpdate>, BodyError> {
        parse(value.to_string().as_bytes())
    }

    /// The field path of the error `value` produces.
    fn error_field(value: Value) -> Option<String> {
        match parse_json(value.clone()) {
            Ok(_) => panic!("{value} was accepted"),
            Err(error) => error.field,
        }
    }

    #[test]
    fn parses_a_full_single_update() {
        let updates = parse_json(json!({
            "endpoint": "1001",
            "observed_at": 1_700_000_000_123_u64,
            "sequence": 42,
            "telephony": {
                "line": "in-call",
                "dnd": true,
                "forward": {"number": "+4930123"},
                "source": "sip-derived"
            },
            "rich": {"availability": "busy", "activity": "in-a-meeting", "note": "back at 3"},
            "raw": {"b": "2", "a": "1"}
        }))
        .unwrap();
        assert_eq!(
            updates,
            vec![PresenceUpdate {
                endpoint: "1001".into(),
                observed_at: Some(1_700_000_000_123),
                ordering: Some(Ordering {
                    epoch: String::new(),
                    sequence: 42,
                }),
                origin: UpdateOrigin::Platform,
                telephony: Some(TelephonyPresence {
                    line: LineState::InCall,
                    do_not_disturb: true,
                    forward: Some(ForwardTarget::Number("+4930123".into())),
                    source: TelephonySource::SipDerived,
                }),
                rich: Some(RichPresence {
                    availability: Availability::Busy,
                    activity: Some(Activity::InAMeeting),
                    note: Some("back at 3".into()),
                }),
                calendar: None,
                valid_for_ms: None,
                raw: vec![
                    VendorValue {
                        name: "a".into(),
                        value: "1".into()
                    },
                    VendorValue {
                        name: "b".into(),
                        value: "2".into()
                    },
                ],
            }]
        );
    }

    #[test]
    fn applies_defaults_and_maps_every_enum() {
        let updates = parse_json(json!({"updates": [
            {"endpoint": "1", "telephony": {"line": "idle", "forward": {"voicemail": true}}},
            {"endpoint": "2", "telephony": {"line": "ringing"}},
            {"endpoint": "3", "telephony": {"line": "dialing"}},
            {"endpoint": "4", "telephony": {"line": "on-hold"}},
            {"endpoint": "5", "telephony": {"line": "unknown"}},
            {"endpoint": "6", "rich": {"availability": "do-not-disturb", "activity": "knitting"}},
            {"endpoint": "7", "rich": {"availability": "offline", "activity": "off-work"}},
        ]}))
        .unwrap();
        let first = updates[0].telephony.as_ref().unwrap();
        assert!(!first.do_not_disturb);
        assert_eq!(first.source, TelephonySource::PbxLine);
        assert_eq!(first.forward, Some(ForwardTarget::Voicemail));
        let lines: Vec<_> = updates[..5]
            .iter()
            .map(|u| u.telephony.as_ref().unwrap().line)
            .collect();
        assert_eq!(
            lines,
            [
                LineState::Idle,
                LineState::Ringing,
                LineState::Dialing,
                LineState::OnHold,
                LineState::Unknown
            ]
        );
        let rich = updates[5].rich.as_ref().unwrap();
        assert_eq!(rich.availability, Availability::DoNotDisturb);
        assert_eq!(rich.activity, Some(Activity::Other("knitting".into())));
        assert_eq!(
            updates[6].rich.as_ref().unwrap().activity,
            Some(Activity::OffWork)
        );
        assert!(updates[6].raw.is_empty());
    }

    #[test]
    fn type_errors_name_the_field_path() {
        let batch = |bad: Value| {
            json!({"updates": [
                {"endpoint": "1", "rich": {"availability": "away"}},
                {"endpoint": "2", "rich": {"availability": "away"}},
                bad,
            ]})
        };
        let cases = [
            (
                batch(json!({"endpoint": "3", "rich": {"availability": "sleeping"}})),
                "updates[2].rich.availability",
            ),
            (
                batch(json!({"endpoint": "3", "telephony": {"line": "idle", "dnd": "yes"}})),
                "updates[2].telephony.dnd",
            ),
            (
                batch(
                    json!({"endpoint": "3", "observed_at": -1, "rich": {"availability": "away"}}),
                ),
                "updates[2].observed_at",
            ),
            (
                batch(json!({"endpoint": "3", "raw": {"k": 1}, "rich": {"availability": "away"}})),
                "updates[2].raw.k",
            ),
            (
                json!({"endpoint": 1001, "rich": {"availability": "away"}}),
                "endpoint",
            ),
            (
                json!({"endpoint": "1", "telephony": {"line": "busy"}}),
                "telephony.line",
            ),
        ];
        for (body, field) in cases {
            assert_eq!(error_field(body.clone()).as_deref(), Some(field), "{body}");
        }
    }

    #[test]
    fn missing_fields_are_named() {
        assert_eq!(
            error_field(json!({"rich": {"availability": "away"}})).as_deref(),
            Some("endpoint")
        );
        assert_eq!(
            error_field(json!({"updates": [{"endpoint": "1", "rich": {}}]})).as_deref(),
            Some("updates[0].rich.availability")
        );
        assert_eq!(
            error_field(json!({"updates": [{"endpoint": "1", "telephony": {"dnd": true}}]}))
                .as_deref(),
            Some("updates[0].telephony.line")
        );
    }

    #[test]
    fn unknown_fields_are_refused_and_named() {
        for (body, field) in [
            (
                json!({"endpoint": "1", "rich": {"availability": "away"}, "colour": "red"}),
                "colour",
            ),
            (
                json!({"endpoint": "1", "rich": {"availability": "away", "mood": "ok"}}),
                "rich.mood",
            ),
            (
                json!({"updates": [{"endpoint": "1", "telephony": {"line": "idle", "forward": {"voicemail": true, "when": "busy"}}}]}),
                "updates[0].telephony.forward.when",
            ),
            (
                json!({"updates": [{"endpoint": "1", "rich": {"availability": "away"}}], "x": 1}),
                "x",
            ),
        ] {
            let error = parse_json(body.clone()).unwrap_err();
            assert!(error.message.contains("unknown field"), "{body}: {error:?}");
            assert_eq!(error.field.as_deref(), Some(field), "{body}");
        }
    }

    #[test]
    fn semantic_rules_name_the_field_path() {
        let cases = [
            (
                json!({"endpoint": "", "rich": {"availability": "away"}}),
                "endpoint",
            ),
            (
                json!({"endpoint": "  ", "rich": {"availability": "away"}}),
                "endpoint",
            ),
            (
                json!({"endpoint": "x".repeat(MAX_ENDPOINT_CHARS + 1), "rich": {"availability": "away"}}),
                "endpoint",
            ),
            (
                json!({"updates": [{"endpoint": "1"}]}),
                "updates[0].telephony",
            ),
            (
                json!({"endpoint": "1", "rich": {"availability": "away", "note": "n".repeat(MAX_NOTE_CHARS + 1)}}),
                "rich.note",
            ),
            (
                json!({"endpoint": "1", "rich": {"availability": "away", "activity": ""}}),
                "rich.activity",
            ),
            (
                json!({"endpoint": "1", "telephony": {"line": "idle", "forward": {}}}),
                "telephony.forward",
            ),
            (
                json!({"endpoint": "1", "telephony": {"line": "idle", "forward": {"voicemail": true, "number": "1"}}}),
                "telephony.forward",
            ),
            (
                json!({"endpoint": "1", "telephony": {"line": "idle", "forward": {"voicemail": false}}}),
                "telephony.forward.voicemail",
            ),
            (
                json!({"endpoint": "1", "telephony": {"line": "idle", "forward": {"number": ""}}}),
                "telephony.forward.number",
            ),
            (json!({"updates": []}), "updates"),
        ];
        for (body, field) in cases {
            assert_eq!(error_field(body.clone()).as_deref(), Some(field), "{body}");
        }
        // Limits are inclusive and count characters, not bytes.
        let at_limit =
            json!({"endpoint": "ü".repeat(MAX_ENDPOINT_CHARS), "rich": {"availability": "away"}});
        assert!(parse_json(at_limit).is_ok());
    }

    #[test]
    fn batch_size_is_limited() {
        let update = json!({"endpoint": "1", "rich": {"availability": "away"}});
        let full = json!({"updates": vec![update.clone(); MAX_UPDATES]});
        assert_eq!(parse_json(full).unwrap().len(), MAX_UPDATES);
        let over = json!({"updates": vec![update; MAX_UPDATES + 1]});
        assert_eq!(error_field(over).as_deref(), Some("updates"));
    }

    #[test]
    fn a_bad_update_anywhere_fails_the_whole_batch() {
        let mut updates = vec![json!({"endpoint": "1", "rich": {"availability": "away"}}); 10];
        updates[9] = json!({"endpoint": "", "rich": {"availability": "away"}});
        assert_eq!(
            error_field(json!({ "updates": updates })).as_deref(),
            Some("updates[9].endpoint")
        );
    }

    #[test]
    fn whole_body_errors_have_no_field() {
        for body in [&b"not json"[..], b"[1, 2]", b"\"text\"", b""] {
            let error = parse(body).unwrap_err();
            assert_eq!(error.field, None, "{body:?}");
        }
        assert!(
            parse(b"{\"endpoint\": ")
                .unwrap_err()
                .message
                .starts_with("body is not valid JSON")
        );
    }
}
