//! UCMA availability numbers and activity tokens to the hub's normalized
//! model, and the hub's write intents back to numbers and tokens.
//!
//! Availability (facts D3; OCS 2007 `userStateAvailability`, Lync 2010/2013
//! `state/availability`): each band is a range of numbers, the UCMA
//! `PresenceAvailability` enum names its lower bound.
//!
//! | number        | band            | normalized                     |
//! |---------------|-----------------|--------------------------------|
//! | 0 – 4499      | Online          | available                      |
//! | 4500 – 5999   | IdleOnline      | available, activity inactive   |
//! | 6000 – 7499   | Busy            | busy                           |
//! | 7500 – 8999   | IdleBusy        | busy, activity inactive        |
//! | 9000 – 11999  | DoNotDisturb    | do-not-disturb                 |
//! | 12000 – 14999 | BeRightBack     | away, activity be-right-back   |
//! | 15000 – 17999 | Away            | away                           |
//! | 18000 and up  | Offline         | offline                        |
//! | -1 (< 0)      | unknown         | unknown                        |
//!
//! Lync documents 0–4499 as available (OCS said 3000–4499), and so does the
//! bridge protocol (PROTOCOL.md section 6); -1 is `AvailabilityValue`'s
//! "unknown". Numbers above 18999 are not expected; they are offline.
//!
//! Activity tokens (`st:activity token=`, facts D3) give the activity; a
//! token outranks what the band implies (`on-the-phone` in the idle-busy
//! band is a call, not idleness). `urgent-interruptions-only` holds
//! everything but urgent calls back: do-not-disturb, whatever the band
//! (6900 is its usual number). Any other token, or a custom text, is kept
//! as `other`.

use presence_connector_sdk::{Activity, Availability, PresenceIntent, RichPresence};

/// A UCMA availability band.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Band {
    Online,
    IdleOnline,
    Busy,
    IdleBusy,
    DoNotDisturb,
    BeRightBack,
    Away,
    Offline,
    None,
}

impl Band {
    /// The band of an availability number.
    pub fn of(n: i64) -> Band {
        match n {
            i64::MIN..=-1 => Band::None,
            0..=4499 => Band::Online,
            4500..=5999 => Band::IdleOnline,
            6000..=7499 => Band::Busy,
            7500..=8999 => Band::IdleBusy,
            9000..=11999 => Band::DoNotDisturb,
            12000..=14999 => Band::BeRightBack,
            15000..=17999 => Band::Away,
            _ => Band::Offline,
        }
    }

    /// The protocol's word for the band (`presence.band`).
    pub fn name(self) -> &'static str {
        match self {
            Band::Online => "available",
            Band::IdleOnline => "available-idle",
            Band::Busy => "busy",
            Band::IdleBusy => "busy-idle",
            Band::DoNotDisturb => "do-not-disturb",
            Band::BeRightBack => "be-right-back",
            Band::Away => "away",
            Band::Offline => "offline",
            Band::None => "unknown",
        }
    }

    fn normalized(self) -> (Availability, Option<Activity>) {
        match self {
            Band::Online => (Availability::Available, None),
            Band::IdleOnline => (Availability::Available, Some(Activity::Inactive)),
            Band::Busy => (Availability::Busy, None),
            Band::IdleBusy => (Availability::Busy, Some(Activity::Inactive)),
            Band::DoNotDisturb => (Availability::DoNotDisturb, None),
            Band::BeRightBack => (Availability::Away, Some(Activity::BeRightBack)),
            Band::Away => (Availability::Away, None),
            Band::Offline => (Availability::Offline, None),
            Band::None => (Availability::Unknown, None),
        }
    }
}

/// The text UCMA shows for `urgent-interruptions-only`.
pub const URGENT_ONLY: &str = "Urgent interruptions only";

/// What an activity token says: the activity, and whether it makes the
/// person do-not-disturb. `None` for tokens that only repeat the band
/// (`online`, `busy`, `away`, ...).
fn token(t: &str) -> Option<(Activity, bool)> {
    let t = t.trim().to_ascii_lowercase();
    Some(match t.as_str() {
        "on-the-phone" | "onthephone" | "in-a-call" => (Activity::InACall, false),
        "in-a-conference" | "inaconference" => (Activity::InAConference, false),
        "in-a-meeting" | "inameeting" => (Activity::InAMeeting, false),
        "presenting" => (Activity::Presenting, false),
        "out-of-office" | "outofoffice" => (Activity::OutOfOffice, false),
        "be-right-back" | "berightback" => (Activity::BeRightBack, false),
        "off-work" | "offwork" => (Activity::OffWork, false),
        "urgent-interruptions-only" => (Activity::Other(URGENT_ONLY.into()), true),
        "" | "available" | "online" | "free" | "busy" | "away" | "offline" | "do-not-disturb"
        | "donotdisturb" => return None,
        "idle" | "inactive" => (Activity::Inactive, false),
        other => (Activity::Other(other.to_string()), false),
    })
}

/// Rich presence from an availability number (or none), an activity token
/// and a custom activity text, and a note.
pub fn rich(
    availability: Option<i64>,
    activity_token: Option<&str>,
    custom_text: Option<&str>,
    note: Option<&str>,
) -> RichPresence {
    let band = availability.map(Band::of).unwrap_or(Band::None);
    let (mut avail, mut activity) = band.normalized();
    let custom = custom_text.map(str::trim).filter(|t| !t.is_empty());
    match activity_token.and_then(token) {
        // An unknown token with the text the user typed: the text.
        Some((Activity::Other(_), false)) if custom.is_some() => {
            activity = custom.map(|t| Activity::Other(t.to_string()));
        }
        Some((a, dnd)) => {
            if dnd && avail != Availability::Offline {
                avail = Availability::DoNotDisturb;
            }
            activity = Some(a);
        }
        None => {
            if let Some(text) = custom {
                activity = Some(Activity::Other(text.to_string()));
            }
        }
    }
    let note = note
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(str::to_string);
    RichPresence {
        availability: avail,
        activity,
        note,
    }
}

/// What a hub write publishes (`publish`): the band's representative
/// number (UCMA `PresenceState` statics, PROTOCOL.md section 7), the token
/// of the intent's activity where Lync has one, or its text as a custom
/// activity, and the note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publication {
    pub availability: i64,
    pub token: Option<&'static str>,
    pub custom: Option<String>,
    pub note: Option<String>,
}

impl Publication {
    /// The band the published number falls in (the echo shows it).
    pub fn band(&self) -> Band {
        Band::of(self.availability)
    }
}

/// The publication of a hub write; `None` for availability unknown, which
/// cannot be published.
pub fn publish(intent: &PresenceIntent) -> Option<Publication> {
    let (token, custom) = match &intent.activity {
        Some(Activity::InACall) => (Some("on-the-phone"), None),
        Some(Activity::InAConference) => (Some("in-a-conference"), None),
        Some(Activity::InAMeeting) => (Some("in-a-meeting"), None),
        // Lync has no documented token for presenting: shown as text.
        Some(Activity::Presenting) => (None, Some("Presenting".to_string())),
        Some(Activity::OutOfOffice) => (Some("out-of-office"), None),
        Some(Activity::OffWork) => (Some("off-work"), None),
        Some(Activity::BeRightBack) => (Some("be-right-back"), None),
        Some(Activity::Other(text)) if !text.trim().is_empty() => (None, Some(text.clone())),
        _ => (None, None),
    };
    let availability = match intent.availability {
        Availability::Available => 3500,
        Availability::Busy => 6500,
        Availability::DoNotDisturb => 9500,
        Availability::Away if matches!(intent.activity, Some(Activity::BeRightBack)) => 12500,
        Availability::Away => 15500,
        Availability::Offline => 18500,
        Availability::Unknown => return None,
    };
    Some(Publication {
        availability,
        token,
        custom,
        note: intent.note.clone().filter(|n| !n.trim().is_empty()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(n: i64, token: Option<&str>) -> (Availability, Option<Activity>) {
        let p = rich(Some(n), token, None, None);
        (p.availability, p.activity)
    }

    #[test]
    fn every_band_at_its_edges() {
        use Availability::*;
        let cases = [
            (0, Available, None),
            (1, Available, None),
            (3000, Available, None),
            (3500, Available, None),
            (4499, Available, None),
            (4500, Available, Some(Activity::Inactive)),
            (5999, Available, Some(Activity::Inactive)),
            (6000, Busy, None),
            (6500, Busy, None),
            (7499, Busy, None),
            (7500, Busy, Some(Activity::Inactive)),
            (8999, Busy, Some(Activity::Inactive)),
            (9000, DoNotDisturb, None),
            (9500, DoNotDisturb, None),
            (11999, DoNotDisturb, None),
            (12000, Away, Some(Activity::BeRightBack)),
            (12500, Away, Some(Activity::BeRightBack)),
            (14999, Away, Some(Activity::BeRightBack)),
            (15000, Away, None),
            (15500, Away, None),
            (17999, Away, None),
            (18000, Offline, None),
            (18500, Offline, None),
            (99999, Offline, None),
            (-1, Unknown, None),
        ];
        for (n, a, act) in cases {
            assert_eq!(r(n, None), (a, act), "{n}");
        }
        assert_eq!(rich(None, None, None, None).availability, Unknown);
    }

    #[test]
    fn tokens_outrank_the_band() {
        use Availability::*;
        assert_eq!(
            r(6500, Some("on-the-phone")),
            (Busy, Some(Activity::InACall))
        );
        assert_eq!(
            r(7500, Some("on-the-phone")),
            (Busy, Some(Activity::InACall))
        );
        assert_eq!(
            r(6500, Some("in-a-conference")),
            (Busy, Some(Activity::InAConference))
        );
        assert_eq!(
            r(6500, Some("in-a-meeting")),
            (Busy, Some(Activity::InAMeeting))
        );
        assert_eq!(
            r(15500, Some("out-of-office")),
            (Away, Some(Activity::OutOfOffice))
        );
        assert_eq!(r(15500, Some("off-work")), (Away, Some(Activity::OffWork)));
        assert_eq!(
            r(6900, Some("urgent-interruptions-only")),
            (DoNotDisturb, Some(Activity::Other(URGENT_ONLY.into())))
        );
        // Offline stays offline whatever a stale token says.
        assert_eq!(r(18500, Some("urgent-interruptions-only")).0, Offline);
        assert_eq!(r(3500, Some("Available")), (Available, None));
        assert_eq!(r(6500, Some("busy")), (Busy, None));
        assert_eq!(
            r(6500, Some("Lunch")),
            (Busy, Some(Activity::Other("lunch".into())))
        );
    }

    #[test]
    fn custom_text_and_note() {
        let p = rich(
            Some(6500),
            None,
            Some(" Working from home "),
            Some(" back at 3 "),
        );
        assert_eq!(
            p.activity,
            Some(Activity::Other("Working from home".into()))
        );
        assert_eq!(p.note.as_deref(), Some("back at 3"));
        let p = rich(Some(6500), Some("lunch"), Some("Out to lunch"), None);
        assert_eq!(p.activity, Some(Activity::Other("Out to lunch".into())));
        let p = rich(Some(6500), Some("in-a-meeting"), Some("Board"), Some(""));
        assert_eq!(p.activity, Some(Activity::InAMeeting));
        assert_eq!(p.note, None);
    }

    #[test]
    fn intents_publish_representative_numbers() {
        let i = |availability, activity| PresenceIntent {
            availability,
            activity,
            note: None,
            dnd_scope: None,
            expires_in_ms: None,
        };
        let num = |p: Option<Publication>| p.map(|p| (p.availability, p.token));
        use Availability::*;
        assert_eq!(num(publish(&i(DoNotDisturb, None))), Some((9500, None)));
        assert_eq!(num(publish(&i(Available, None))), Some((3500, None)));
        assert_eq!(
            num(publish(&i(Busy, Some(Activity::InACall)))),
            Some((6500, Some("on-the-phone")))
        );
        assert_eq!(
            num(publish(&i(Away, Some(Activity::BeRightBack)))),
            Some((12500, Some("be-right-back")))
        );
        assert_eq!(num(publish(&i(Away, None))), Some((15500, None)));
        assert_eq!(num(publish(&i(Offline, None))), Some((18500, None)));
        assert_eq!(publish(&i(Unknown, None)), None);
        let p = publish(&PresenceIntent {
            note: Some("In a Teams call".into()),
            ..i(DoNotDisturb, Some(Activity::Other("Teams call".into())))
        })
        .unwrap();
        assert_eq!(p.custom.as_deref(), Some("Teams call"));
        assert_eq!(p.note.as_deref(), Some("In a Teams call"));
        assert_eq!(p.band(), Band::DoNotDisturb);
        // Every published number maps back to what was asked.
        for a in [Available, Busy, DoNotDisturb, Away, Offline] {
            let p = publish(&i(a, None)).unwrap();
            assert_eq!(r(p.availability, None).0, a);
        }
    }
}
