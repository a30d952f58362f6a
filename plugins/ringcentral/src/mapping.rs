//! RingCentral presence (`PresenceInfoResponse` and the detailed presence
//! event bodies, facts C2/C4) in the hub's normalized model. Pure functions
//! over the JSON object, so a notification that leaves fields out can be
//! merged over the last state first ([`merge`]).
//!
//! Telephony (`source: pbx-line`):
//!
//! | `telephonyStatus` | line |
//! |---|---|
//! | `NoCall` | idle |
//! | `Ringing` | ringing |
//! | `CallConnected` | in-call |
//! | `OnHold` | on-hold |
//! | `ParkedCall` | on-hold: a parked call is held in a park orbit, waiting to be picked up; the person is not talking (RingCentral's own BLF shows a parked line as held) |
//!
//! Without `telephonyStatus` the line is derived from `activeCalls`
//! (`aggregatedTelephonyStatus` first). Line do-not-disturb is set when
//! direct calls do not ring: `dndStatus` `DoNotAcceptAnyCalls` or
//! `TakeDepartmentCallsOnly` (classic model), or `dndStatusPersonal`
//! `DoNotAcceptAnyCalls` (new communication handling). Declining queue calls
//! only (`DoNotAcceptDepartmentCalls`, `acceptCallQueueCalls: false`) is not
//! line DND: direct calls still ring (facts C3).
//!
//! Rich: do-not-disturb when direct calls do not ring; otherwise busy with
//! activity in-a-call (line in-call or on-hold) or in-a-meeting
//! (`meetingStatus: Connected`); otherwise `userStatus` (Available,
//! Busy, Offline), else the aggregated `presenceStatus`. The note is
//! `message`. Every vendor value used is kept in `raw`.

use presence_connector_sdk::{
    Activity, Availability, LineState, RichPresence, TelephonyPresence, TelephonySource,
    VendorValue,
};
use serde_json::{Map, Value};

/// Presence fields as RingCentral writes them.
pub type Presence = Map<String, Value>;

fn text<'a>(p: &'a Presence, key: &str) -> Option<&'a str> {
    p.get(key).and_then(Value::as_str)
}

/// Merges a notification body (or read answer) over the last known state:
/// fields present replace, absent ones stay (event bodies carry
/// `telephonyStatus` "if telephony status is changed", RC-OAS). A new
/// `telephonyStatus` without `activeCalls` drops the old call list, which
/// no longer describes the line. `sequence` is not kept.
pub fn merge(prev: &mut Presence, new: &Presence) {
    if new.contains_key("telephonyStatus") && !new.contains_key("activeCalls") {
        prev.remove("activeCalls");
    }
    for (k, v) in new {
        if k != "sequence" {
            prev.insert(k.clone(), v.clone());
        }
    }
}

fn status_line(status: &str) -> Option<LineState> {
    Some(match status {
        "NoCall" => LineState::Idle,
        "Ringing" => LineState::Ringing,
        "CallConnected" => LineState::InCall,
        "OnHold" | "ParkedCall" => LineState::OnHold,
        _ => return None,
    })
}

/// The line state (see the module table).
pub fn line_state(p: &Presence) -> LineState {
    if let Some(line) = text(p, "telephonyStatus")
        .or_else(|| text(p, "aggregatedTelephonyStatus"))
        .and_then(status_line)
    {
        return line;
    }
    let Some(calls) = p.get("activeCalls").and_then(Value::as_array) else {
        return LineState::Unknown;
    };
    let states: Vec<LineState> = calls
        .iter()
        .filter_map(|c| c.get("telephonyStatus").and_then(Value::as_str))
        .filter_map(status_line)
        .collect();
    [LineState::InCall, LineState::OnHold, LineState::Ringing]
        .into_iter()
        .find(|s| states.contains(s))
        .unwrap_or(LineState::Idle)
}

/// Whether the person is in a RingCentral call in the sense of the
/// reflect-DND option: connected or holding one (not ringing, not parked).
pub fn in_call(p: &Presence) -> bool {
    matches!(text(p, "telephonyStatus"), Some("CallConnected" | "OnHold"))
}

/// Whether direct calls are held back (line DND).
pub fn direct_calls_blocked(p: &Presence) -> bool {
    matches!(
        text(p, "dndStatus"),
        Some("DoNotAcceptAnyCalls" | "TakeDepartmentCallsOnly")
    ) || text(p, "dndStatusPersonal") == Some("DoNotAcceptAnyCalls")
}

/// Telephony presence of the extension.
pub fn telephony(p: &Presence) -> TelephonyPresence {
    TelephonyPresence {
        line: line_state(p),
        do_not_disturb: direct_calls_blocked(p),
        // Presence says nothing about call forwarding.
        forward: None,
        source: TelephonySource::PbxLine,
    }
}

/// Rich presence of the person.
pub fn rich(p: &Presence) -> RichPresence {
    let line = line_state(p);
    let in_a_call = matches!(line, LineState::InCall | LineState::OnHold);
    let meeting = text(p, "meetingStatus") == Some("Connected");
    let activity = if in_a_call {
        Some(Activity::InACall)
    } else if meeting {
        Some(Activity::InAMeeting)
    } else {
        None
    };
    let own = |s: &str| match s {
        "Available" => Some(Availability::Available),
        "Busy" => Some(Availability::Busy),
        "Offline" => Some(Availability::Offline),
        _ => None,
    };
    let availability = if direct_calls_blocked(p) {
        Availability::DoNotDisturb
    } else if in_a_call || meeting {
        Availability::Busy
    } else {
        text(p, "userStatus")
            .and_then(own)
            .or_else(|| text(p, "presenceStatus").and_then(own))
            .unwrap_or(Availability::Unknown)
    };
    RichPresence {
        availability,
        activity,
        note: text(p, "message")
            .map(str::trim)
            .filter(|m| !m.is_empty())
            .map(String::from),
    }
}

/// The vendor values behind the mapping, for diagnostics.
pub fn raw(p: &Presence) -> Vec<VendorValue> {
    let mut out = Vec::new();
    for key in [
        "presenceStatus",
        "userStatus",
        "dndStatus",
        "dndStatusPersonal",
        "acceptCallQueueCalls",
        "telephonyStatus",
        "aggregatedTelephonyStatus",
        "meetingStatus",
        "message",
    ] {
        let value = match p.get(key) {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Bool(b)) => b.to_string(),
            _ => continue,
        };
        out.push(VendorValue {
            name: key.into(),
            value,
        });
    }
    if let Some(calls) = p.get("activeCalls").and_then(Value::as_array) {
        out.push(VendorValue {
            name: "activeCalls".into(),
            value: calls.len().to_string(),
        });
        let queue = calls
            .iter()
            .any(|c| c.get("queueCall").and_then(Value::as_bool) == Some(true));
        if queue {
            out.push(VendorValue {
                name: "activeCalls.queueCall".into(),
                value: "true".into(),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn p(v: Value) -> Presence {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn telephony_status_maps_to_lines() {
        for (status, line) in [
            ("NoCall", LineState::Idle),
            ("Ringing", LineState::Ringing),
            ("CallConnected", LineState::InCall),
            ("OnHold", LineState::OnHold),
            ("ParkedCall", LineState::OnHold),
            ("Whatever", LineState::Unknown),
        ] {
            let t = telephony(&p(json!({"telephonyStatus": status})));
            assert_eq!(t.line, line, "{status}");
            assert_eq!(t.source, TelephonySource::PbxLine);
            assert_eq!(t.forward, None);
        }
    }

    #[test]
    fn line_from_active_calls_when_the_status_is_missing() {
        let calls = p(json!({"activeCalls": [
            {"telephonyStatus": "Ringing"}, {"telephonyStatus": "OnHold"}]}));
        assert_eq!(line_state(&calls), LineState::OnHold);
        assert_eq!(line_state(&p(json!({"activeCalls": []}))), LineState::Idle);
        assert_eq!(line_state(&p(json!({}))), LineState::Unknown);
        assert_eq!(
            line_state(&p(json!({"aggregatedTelephonyStatus": "Ringing"}))),
            LineState::Ringing
        );
    }

    #[test]
    fn dnd_statuses() {
        for (v, dnd) in [
            (json!({"dndStatus": "TakeAllCalls"}), false),
            (json!({"dndStatus": "DoNotAcceptAnyCalls"}), true),
            (json!({"dndStatus": "TakeDepartmentCallsOnly"}), true),
            (json!({"dndStatus": "DoNotAcceptDepartmentCalls"}), false),
            (json!({"dndStatus": "Unknown"}), false),
            (json!({"dndStatusPersonal": "DoNotAcceptAnyCalls"}), true),
            (
                json!({"dndStatusPersonal": "TakeAllCalls", "acceptCallQueueCalls": false}),
                false,
            ),
        ] {
            let pr = p(v.clone());
            assert_eq!(telephony(&pr).do_not_disturb, dnd, "{v}");
            assert_eq!(
                rich(&pr).availability == Availability::DoNotDisturb,
                dnd,
                "{v}"
            );
        }
    }

    #[test]
    fn rich_presence() {
        let sample = p(
            json!({"presenceStatus": "Busy", "telephonyStatus": "CallConnected",
            "userStatus": "Available", "dndStatus": "TakeAllCalls", "message": " on site "}),
        );
        let r = rich(&sample);
        assert_eq!(r.availability, Availability::Busy);
        assert_eq!(r.activity, Some(Activity::InACall));
        assert_eq!(r.note.as_deref(), Some("on site"));
        let meeting = p(json!({"meetingStatus": "Connected", "userStatus": "Available"}));
        assert_eq!(rich(&meeting).activity, Some(Activity::InAMeeting));
        assert_eq!(rich(&meeting).availability, Availability::Busy);
        for (user, a) in [
            ("Available", Availability::Available),
            ("Busy", Availability::Busy),
            ("Offline", Availability::Offline),
        ] {
            let r = rich(&p(json!({"userStatus": user, "telephonyStatus": "NoCall"})));
            assert_eq!((r.availability, r.activity), (a, None));
        }
        assert_eq!(
            rich(&p(json!({"presenceStatus": "Offline"}))).availability,
            Availability::Offline
        );
        assert_eq!(rich(&p(json!({}))).availability, Availability::Unknown);
        // Ringing is not a call yet.
        let ringing = rich(&p(
            json!({"telephonyStatus": "Ringing", "userStatus": "Available"}),
        ));
        assert_eq!(
            (ringing.availability, ringing.activity),
            (Availability::Available, None)
        );
        // DND wins over a call.
        let both = p(json!({"telephonyStatus": "OnHold", "dndStatus": "DoNotAcceptAnyCalls"}));
        assert_eq!(rich(&both).availability, Availability::DoNotDisturb);
        assert_eq!(rich(&both).activity, Some(Activity::InACall));
    }

    #[test]
    fn merge_keeps_absent_fields_and_drops_stale_calls() {
        let mut last = p(
            json!({"telephonyStatus": "CallConnected", "dndStatus": "TakeAllCalls",
            "activeCalls": [{"id": "1"}], "userStatus": "Busy", "sequence": 4}),
        );
        merge(
            &mut last,
            &p(json!({"dndStatus": "DoNotAcceptAnyCalls", "sequence": 5})),
        );
        assert_eq!(last["telephonyStatus"], "CallConnected");
        assert_eq!(last["dndStatus"], "DoNotAcceptAnyCalls");
        assert!(last.contains_key("activeCalls"));
        merge(&mut last, &p(json!({"telephonyStatus": "NoCall"})));
        assert!(!last.contains_key("activeCalls"));
        assert_eq!(last["userStatus"], "Busy");
    }

    #[test]
    fn raw_values_and_reflect_trigger() {
        let pr = p(
            json!({"presenceStatus": "Busy", "acceptCallQueueCalls": false,
            "telephonyStatus": "OnHold", "activeCalls": [{"queueCall": true}], "extension": {"id": 1}}),
        );
        let raw = raw(&pr);
        let get = |n: &str| raw.iter().find(|v| v.name == n).map(|v| v.value.as_str());
        assert_eq!(get("presenceStatus"), Some("Busy"));
        assert_eq!(get("acceptCallQueueCalls"), Some("false"));
        assert_eq!(get("activeCalls"), Some("1"));
        assert_eq!(get("activeCalls.queueCall"), Some("true"));
        assert_eq!(get("extension"), None);
        assert!(in_call(&pr));
        assert!(in_call(&p(json!({"telephonyStatus": "CallConnected"}))));
        assert!(!in_call(&p(json!({"telephonyStatus": "Ringing"}))));
        assert!(!in_call(&p(json!({"telephonyStatus": "ParkedCall"}))));
    }
}
