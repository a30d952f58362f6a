//! Teams availability and activity to the hub's normalized model, and the
//! hub's write intents to the pairs Graph accepts.
//!
//! Graph's values are plain strings (no enum in the schema), documented in
//! PascalCase but listed in camelCase on newer pages, so they are compared
//! without regard to case and unknown values are kept rather than refused.

use presence_connector_sdk::{Activity, Availability, PresenceIntent, RichPresence};

/// A Graph availability/activity pair for a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pair {
    pub availability: &'static str,
    pub activity: &'static str,
}

const fn pair(availability: &'static str, activity: &'static str) -> Pair {
    Pair {
        availability,
        activity,
    }
}

/// The pairs `setPresence` accepts (presence-setpresence, v1.0).
pub const SESSION_PAIRS: [Pair; 5] = [
    pair("Available", "Available"),
    pair("Busy", "InACall"),
    pair("Busy", "InAConferenceCall"),
    pair("Away", "Away"),
    pair("DoNotDisturb", "Presenting"),
];

/// The pairs `setUserPreferredPresence` accepts.
pub const PREFERRED_PAIRS: [Pair; 6] = [
    pair("Available", "Available"),
    pair("Busy", "Busy"),
    pair("DoNotDisturb", "DoNotDisturb"),
    pair("BeRightBack", "BeRightBack"),
    pair("Away", "Away"),
    pair("Offline", "OffWork"),
];

fn is(value: &str, name: &str) -> bool {
    value.eq_ignore_ascii_case(name)
}

/// The normalized availability of a Graph availability, and the activity
/// the availability itself implies (idle, be right back, out of office).
fn availability(value: &str) -> (Availability, Option<Activity>) {
    match value.to_ascii_lowercase().as_str() {
        "available" => (Availability::Available, None),
        "availableidle" => (Availability::Available, Some(Activity::Inactive)),
        "busy" => (Availability::Busy, None),
        "busyidle" => (Availability::Busy, Some(Activity::Inactive)),
        "donotdisturb" => (Availability::DoNotDisturb, None),
        "berightback" => (Availability::Away, Some(Activity::BeRightBack)),
        "away" => (Availability::Away, None),
        "offline" => (Availability::Offline, None),
        // Not in the documented availability list, but Teams shows "Out of
        // office" as a state of its own: the person is not reachable.
        "outofoffice" => (Availability::Away, Some(Activity::OutOfOffice)),
        _ => (Availability::Unknown, None),
    }
}

/// The normalized activity of a Graph activity; `None` where the activity
/// only repeats the availability (`Busy/Busy`, `Away/Away`).
fn activity(value: &str) -> Option<Activity> {
    Some(match value.to_ascii_lowercase().as_str() {
        "" | "available" | "away" | "busy" | "donotdisturb" | "offline" | "presenceunknown" => {
            return None;
        }
        "inacall" => Activity::InACall,
        "inaconferencecall" => Activity::InAConference,
        "inameeting" => Activity::InAMeeting,
        "presenting" => Activity::Presenting,
        "outofoffice" => Activity::OutOfOffice,
        "berightback" => Activity::BeRightBack,
        "offwork" => Activity::OffWork,
        "inactive" | "availableinactive" => Activity::Inactive,
        // UrgentInterruptionsOnly, Focusing and whatever comes next: kept in
        // Teams' words.
        _ => Activity::Other(value.to_string()),
    })
}

/// Whether a Graph activity means the person is in a conversation (the sync
/// rules set DND elsewhere for these, never for plain Busy).
pub fn in_conversation(activity: &str) -> bool {
    ["InACall", "InAConferenceCall", "InAMeeting", "Presenting"]
        .iter()
        .any(|a| is(activity, a))
}

/// Graph's presence in the normalized model. The activity wins over what the
/// availability implies (BusyIdle with InACall is in a call); out-of-office
/// settings add `out-of-office` only where nothing more specific is known.
pub fn to_rich(
    graph_availability: &str,
    graph_activity: &str,
    out_of_office: bool,
    note: Option<String>,
) -> RichPresence {
    let (availability, implied) = availability(graph_availability);
    let mut activity = activity(graph_activity).or(implied);
    if out_of_office && activity.is_none() {
        activity = Some(Activity::OutOfOffice);
    }
    RichPresence {
        availability,
        activity,
        note,
    }
}

/// Why an intent cannot be written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Unwritable(pub String);

/// The `setPresence` pair for an intent: DND is `DoNotDisturb/Presenting`
/// (the only DND pair an application session may set), busy is a call or a
/// conference call.
pub fn session_pair(intent: &PresenceIntent) -> Result<Pair, Unwritable> {
    Ok(match (intent.availability, &intent.activity) {
        (Availability::Available, _) => SESSION_PAIRS[0],
        (Availability::Busy, Some(Activity::InAConference)) => SESSION_PAIRS[2],
        (Availability::Busy, _) => SESSION_PAIRS[1],
        (Availability::Away, _) => SESSION_PAIRS[3],
        (Availability::DoNotDisturb, _) => SESSION_PAIRS[4],
        (a @ (Availability::Offline | Availability::Unknown), _) => {
            return Err(Unwritable(format!(
                "setPresence cannot set {a:?}; clear the hub's session instead"
            )));
        }
    })
}

/// The `setUserPreferredPresence` pair for an intent.
pub fn preferred_pair(intent: &PresenceIntent) -> Result<Pair, Unwritable> {
    Ok(match (intent.availability, &intent.activity) {
        (Availability::Available, _) => PREFERRED_PAIRS[0],
        (Availability::Busy, _) => PREFERRED_PAIRS[1],
        (Availability::DoNotDisturb, _) => PREFERRED_PAIRS[2],
        (Availability::Away, Some(Activity::BeRightBack)) => PREFERRED_PAIRS[3],
        (Availability::Away, _) => PREFERRED_PAIRS[4],
        (Availability::Offline, _) => PREFERRED_PAIRS[5],
        (Availability::Unknown, _) => {
            return Err(Unwritable(
                "setUserPreferredPresence cannot set an unknown availability".into(),
            ));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rich(a: &str, act: &str) -> (Availability, Option<Activity>) {
        let r = to_rich(a, act, false, None);
        (r.availability, r.activity)
    }

    #[test]
    fn documented_teams_states() {
        use Activity as Ac;
        use Availability as Av;
        let table = [
            ("Available", "Available", Av::Available, None),
            (
                "Available",
                "OutOfOffice",
                Av::Available,
                Some(Ac::OutOfOffice),
            ),
            ("Busy", "Busy", Av::Busy, None),
            ("Busy", "InACall", Av::Busy, Some(Ac::InACall)),
            (
                "Busy",
                "InAConferenceCall",
                Av::Busy,
                Some(Ac::InAConference),
            ),
            ("Busy", "InAMeeting", Av::Busy, Some(Ac::InAMeeting)),
            ("DoNotDisturb", "DoNotDisturb", Av::DoNotDisturb, None),
            (
                "DoNotDisturb",
                "Presenting",
                Av::DoNotDisturb,
                Some(Ac::Presenting),
            ),
            ("Away", "Away", Av::Away, None),
            (
                "BeRightBack",
                "BeRightBack",
                Av::Away,
                Some(Ac::BeRightBack),
            ),
            ("Offline", "OffWork", Av::Offline, Some(Ac::OffWork)),
            ("Offline", "Offline", Av::Offline, None),
            (
                "AvailableIdle",
                "Available",
                Av::Available,
                Some(Ac::Inactive),
            ),
            ("BusyIdle", "Busy", Av::Busy, Some(Ac::Inactive)),
            ("BusyIdle", "InACall", Av::Busy, Some(Ac::InACall)),
            (
                "Available",
                "AvailableInactive",
                Av::Available,
                Some(Ac::Inactive),
            ),
            (
                "OutOfOffice",
                "OutOfOffice",
                Av::Away,
                Some(Ac::OutOfOffice),
            ),
            ("PresenceUnknown", "PresenceUnknown", Av::Unknown, None),
        ];
        for (a, act, want_a, want_act) in table {
            assert_eq!(rich(a, act), (want_a, want_act), "{a}/{act}");
        }
    }

    #[test]
    fn case_and_unknown_values_are_tolerated() {
        assert_eq!(
            rich("busy", "inACall"),
            (Availability::Busy, Some(Activity::InACall))
        );
        assert_eq!(
            rich("Available", "Focusing"),
            (
                Availability::Available,
                Some(Activity::Other("Focusing".into()))
            )
        );
        assert_eq!(
            rich("Sleeping", "UrgentInterruptionsOnly"),
            (
                Availability::Unknown,
                Some(Activity::Other("UrgentInterruptionsOnly".into()))
            )
        );
        assert_eq!(rich("", ""), (Availability::Unknown, None));
    }

    #[test]
    fn conversations_are_not_plain_busy() {
        for a in ["InACall", "inaconferencecall", "InAMeeting", "Presenting"] {
            assert!(in_conversation(a), "{a}");
        }
        for a in ["Busy", "DoNotDisturb", "Away", "Available", ""] {
            assert!(!in_conversation(a), "{a}");
        }
    }

    #[test]
    fn out_of_office_settings_add_an_activity_only_when_none_is_known() {
        let r = to_rich("Available", "Available", true, Some("on leave".into()));
        assert_eq!(r.activity, Some(Activity::OutOfOffice));
        assert_eq!(r.note.as_deref(), Some("on leave"));
        let r = to_rich("Busy", "InACall", true, None);
        assert_eq!(r.activity, Some(Activity::InACall));
    }

    fn intent(availability: Availability, activity: Option<Activity>) -> PresenceIntent {
        PresenceIntent {
            availability,
            activity,
            note: None,
            dnd_scope: None,
            expires_in_ms: None,
        }
    }

    #[test]
    fn session_pairs_are_only_the_allowed_ones() {
        let dnd = session_pair(&intent(Availability::DoNotDisturb, None)).unwrap();
        assert_eq!(dnd, pair("DoNotDisturb", "Presenting"));
        let busy = session_pair(&intent(Availability::Busy, None)).unwrap();
        assert_eq!(busy, pair("Busy", "InACall"));
        let conf =
            session_pair(&intent(Availability::Busy, Some(Activity::InAConference))).unwrap();
        assert_eq!(conf, pair("Busy", "InAConferenceCall"));
        let brb = session_pair(&intent(Availability::Away, Some(Activity::BeRightBack))).unwrap();
        assert_eq!(brb, pair("Away", "Away"));
        assert!(session_pair(&intent(Availability::Offline, None)).is_err());
        for a in [
            Availability::Available,
            Availability::Busy,
            Availability::Away,
            Availability::DoNotDisturb,
        ] {
            assert!(SESSION_PAIRS.contains(&session_pair(&intent(a, None)).unwrap()));
        }
    }

    #[test]
    fn preferred_pairs_are_only_the_allowed_ones() {
        let cases = [
            (
                Availability::Available,
                None,
                pair("Available", "Available"),
            ),
            (
                Availability::Busy,
                Some(Activity::InACall),
                pair("Busy", "Busy"),
            ),
            (
                Availability::DoNotDisturb,
                None,
                pair("DoNotDisturb", "DoNotDisturb"),
            ),
            (
                Availability::Away,
                Some(Activity::BeRightBack),
                pair("BeRightBack", "BeRightBack"),
            ),
            (Availability::Away, None, pair("Away", "Away")),
            (Availability::Offline, None, pair("Offline", "OffWork")),
        ];
        for (a, act, want) in cases {
            let got = preferred_pair(&intent(a, act)).unwrap();
            assert_eq!(got, want);
            assert!(PREFERRED_PAIRS.contains(&got));
        }
        assert!(preferred_pair(&intent(Availability::Unknown, None)).is_err());
    }
}
