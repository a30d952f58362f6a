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

impl Pair {
    /// Whether Graph times an application's session with this pair out
    /// unless it is set again within five minutes: only Available ones
    /// (they fade to AvailableInactive, then Away).
    pub fn times_out(&self) -> bool {
        self.availability == "Available"
    }
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

/// The normalized availability of a Graph availability, and the activity
/// the availability itself implies (idle, be right back, a call).
///
/// The presence resource documents `Available`, `AvailableIdle`, `Away`,
/// `BeRightBack`, `Busy`, `BusyIdle`, `DoNotDisturb`, `Offline` and
/// `PresenceUnknown`; its newer pages list the availability in camelCase and
/// add `focusing`, `inACall`, `inAMeeting` and `presenting`, which carry
/// what the activity used to say.
fn availability(value: &str) -> (Availability, Option<Activity>) {
    match value.to_ascii_lowercase().as_str() {
        "available" => (Availability::Available, None),
        "availableidle" => (Availability::Available, Some(Activity::Inactive)),
        "busy" => (Availability::Busy, None),
        "busyidle" => (Availability::Busy, Some(Activity::Inactive)),
        "inacall" => (Availability::Busy, Some(Activity::InACall)),
        "inaconferencecall" => (Availability::Busy, Some(Activity::InAConference)),
        "inameeting" => (Availability::Busy, Some(Activity::InAMeeting)),
        "donotdisturb" => (Availability::DoNotDisturb, None),
        "presenting" => (Availability::DoNotDisturb, Some(Activity::Presenting)),
        // Teams shows Focusing as do not disturb: notifications are held.
        "focusing" => (Availability::DoNotDisturb, Some(other(FOCUSING))),
        "berightback" => (Availability::Away, Some(Activity::BeRightBack)),
        "away" => (Availability::Away, None),
        "offline" => (Availability::Offline, None),
        "offwork" => (Availability::Offline, Some(Activity::OffWork)),
        // Not in the documented availability list, but Teams shows "Out of
        // office" as a state of its own: the person is not reachable.
        "outofoffice" => (Availability::Away, Some(Activity::OutOfOffice)),
        "presenceunknown" | "" => (Availability::Unknown, None),
        // Whatever comes next stays visible in Graph's words.
        _ => (Availability::Unknown, Some(other(value))),
    }
}

const FOCUSING: &str = "Focusing";
const URGENT_ONLY: &str = "UrgentInterruptionsOnly";

fn other(value: &str) -> Activity {
    Activity::Other(value.to_string())
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
        "inactive" | "availableinactive" | "availableidle" | "busyidle" => Activity::Inactive,
        // Documented without a counterpart in the model: one spelling,
        // whichever case Graph used.
        "focusing" => other(FOCUSING),
        "urgentinterruptionsonly" => other(URGENT_ONLY),
        // Whatever comes next: kept in Teams' words.
        _ => other(value),
    })
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

    /// Every documented value, in PascalCase (the v1.0 resource page) and
    /// camelCase (the newer pages), maps alike.
    #[test]
    fn documented_values_in_either_case() {
        use Activity as Ac;
        use Availability as Av;
        let focusing = || Some(Ac::Other("Focusing".into()));
        let availabilities = [
            ("Available", Av::Available, None),
            ("AvailableIdle", Av::Available, Some(Ac::Inactive)),
            ("Away", Av::Away, None),
            ("BeRightBack", Av::Away, Some(Ac::BeRightBack)),
            ("Busy", Av::Busy, None),
            ("BusyIdle", Av::Busy, Some(Ac::Inactive)),
            ("DoNotDisturb", Av::DoNotDisturb, None),
            ("Offline", Av::Offline, None),
            ("PresenceUnknown", Av::Unknown, None),
            ("InACall", Av::Busy, Some(Ac::InACall)),
            ("InAConferenceCall", Av::Busy, Some(Ac::InAConference)),
            ("InAMeeting", Av::Busy, Some(Ac::InAMeeting)),
            ("Presenting", Av::DoNotDisturb, Some(Ac::Presenting)),
            ("Focusing", Av::DoNotDisturb, focusing()),
        ];
        for (value, want, implied) in availabilities {
            let camel = format!("{}{}", value[..1].to_ascii_lowercase(), &value[1..]);
            for v in [value.to_string(), camel, value.to_ascii_uppercase()] {
                // An activity that only repeats the availability says nothing.
                assert_eq!(rich(&v, ""), (want, implied.clone()), "{v}");
                assert_eq!(rich(&v, &v), (want, implied.clone()), "{v}/{v}");
            }
        }
        let activities = [
            ("Available", None),
            ("Away", None),
            ("BeRightBack", Some(Ac::BeRightBack)),
            ("Busy", None),
            ("DoNotDisturb", None),
            ("InACall", Some(Ac::InACall)),
            ("InAConferenceCall", Some(Ac::InAConference)),
            ("Inactive", Some(Ac::Inactive)),
            ("InAMeeting", Some(Ac::InAMeeting)),
            ("Offline", None),
            ("OffWork", Some(Ac::OffWork)),
            ("OutOfOffice", Some(Ac::OutOfOffice)),
            ("PresenceUnknown", None),
            ("Presenting", Some(Ac::Presenting)),
            (
                "UrgentInterruptionsOnly",
                Some(Ac::Other("UrgentInterruptionsOnly".into())),
            ),
            ("Focusing", focusing()),
        ];
        for (value, want) in activities {
            let camel = format!("{}{}", value[..1].to_ascii_lowercase(), &value[1..]);
            for v in [value.to_string(), camel] {
                assert_eq!(rich("Busy", &v).1, want, "Busy/{v}");
            }
        }
    }

    /// The values Microsoft's current pages show, as Graph sends them.
    #[test]
    fn camel_case_conversations_are_busy_or_do_not_disturb() {
        use Activity as Ac;
        use Availability as Av;
        let cases = [
            ("inACall", "inACall", Av::Busy, Some(Ac::InACall)),
            ("inACall", "busy", Av::Busy, Some(Ac::InACall)),
            ("inAMeeting", "inAMeeting", Av::Busy, Some(Ac::InAMeeting)),
            ("inAMeeting", "busy", Av::Busy, Some(Ac::InAMeeting)),
            (
                "presenting",
                "presenting",
                Av::DoNotDisturb,
                Some(Ac::Presenting),
            ),
            (
                "presenting",
                "doNotDisturb",
                Av::DoNotDisturb,
                Some(Ac::Presenting),
            ),
            (
                "focusing",
                "focusing",
                Av::DoNotDisturb,
                Some(Ac::Other("Focusing".into())),
            ),
            (
                "focusing",
                "doNotDisturb",
                Av::DoNotDisturb,
                Some(Ac::Other("Focusing".into())),
            ),
            (
                "doNotDisturb",
                "urgentInterruptionsOnly",
                Av::DoNotDisturb,
                Some(Ac::Other("UrgentInterruptionsOnly".into())),
            ),
            (
                "beRightBack",
                "beRightBack",
                Av::Away,
                Some(Ac::BeRightBack),
            ),
            ("away", "outOfOffice", Av::Away, Some(Ac::OutOfOffice)),
            ("offline", "offWork", Av::Offline, Some(Ac::OffWork)),
            (
                "availableIdle",
                "available",
                Av::Available,
                Some(Ac::Inactive),
            ),
            ("busyIdle", "busy", Av::Busy, Some(Ac::Inactive)),
            ("presenceUnknown", "presenceUnknown", Av::Unknown, None),
            // The activity, where it says more, wins over what the
            // availability implies.
            ("inAMeeting", "presenting", Av::Busy, Some(Ac::Presenting)),
        ];
        for (a, act, want, want_act) in cases {
            assert_eq!(rich(a, act), (want, want_act), "{a}/{act}");
        }
    }

    #[test]
    fn unknown_values_are_kept_raw() {
        assert_eq!(
            rich("Available", "Knitting"),
            (
                Availability::Available,
                Some(Activity::Other("Knitting".into()))
            )
        );
        assert_eq!(
            rich("Sleeping", "UrgentInterruptionsOnly"),
            (
                Availability::Unknown,
                Some(Activity::Other("UrgentInterruptionsOnly".into()))
            )
        );
        // An unknown availability with nothing more specific stays visible.
        assert_eq!(
            rich("sleeping", "busy"),
            (
                Availability::Unknown,
                Some(Activity::Other("sleeping".into()))
            )
        );
        assert_eq!(rich("", ""), (Availability::Unknown, None));
        assert_eq!(rich("PresenceUnknown", ""), (Availability::Unknown, None));
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
