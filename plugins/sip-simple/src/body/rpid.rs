//! The activity vocabulary of presence documents: RPID (RFC 4480) tokens,
//! the draft-era and vendor forms of them, Asterisk's `digium_presence` and
//! the fixed notes Asterisk writes, each read as a [`Signal`] that
//! [`super::pidf`] combines.
//!
//! | token (element name or text) | availability | activity | rank |
//! |---|---|---|---|
//! | `dnd`, `do-not-disturb` (Cisco `ce:dnd`; also as `other` text, any case) | DoNotDisturb (explicit) | – | 60 |
//! | `other` = in-a-conference | Busy (implied) | InAConference | 52 |
//! | `on-the-phone`; `other` = in-a-call | Busy (implied) | InACall, `on_the_phone` | 50 |
//! | `on-hold` | Busy (implied) | InACall, `on_the_phone` | 49 |
//! | `presentation`; `other` = presenting | Busy (implied) | Presenting | 48 |
//! | `meeting`, `appointment`; `other` = in-a-meeting | Busy (implied) | InAMeeting | 46 |
//! | `busy` | Busy (explicit) | – | 40 |
//! | `vacation`, `holiday`, `permanent-absence`; `other` = out-of-office | Away (implied) | OutOfOffice | 35 |
//! | digium `xa` | Away (explicit) | OutOfOffice | 35 |
//! | `meal`, `breakfast`, `dinner`; `other` = be-right-back | Away (implied) | BeRightBack | 30 |
//! | `other` = off-work | Away (implied) | OffWork | 29 |
//! | `away` | Away (explicit) | – | 28 |
//! | `sleeping` | Away (implied) | – | 26 |
//! | any other `other` text | – | Other(text) | 20 |
//! | a note that is exactly "On the phone", "On hold", "In a call" or "Ringing" (Asterisk) | as the token | as the token | 15 |
//! | `alerting` (Cisco `ce:alerting`), `ringing` | – | Other("ringing") | 12 |
//! | in-transit, looking-for-work, performance, playing, shopping, spectator, steering, travel, tv, working, worship | – | Other(token) | 10 |
//! | `user-input` idle | – | Inactive | 5 |
//! | `available` (Cisco), digium `chat` / `available` | present | – | 0 |
//! | `unknown`, unrecognised names | – | – (kept raw) | – |
//! | digium `dnd` / `away` / `unavailable` | DoNotDisturb (60) / Away (28) / Offline | – | – |
//!
//! Tokens count wherever they come from inside an activities element: an
//! element in the RPID namespace, in an older draft or a vendor namespace
//! (Cisco phones put `<ce:dnd/>` in `urn:cisco:params:xml:ns:pidf:rpid`
//! inside a draft-namespace `<e:activities>`), or text (Asterisk writes
//! `<ep:activities>ep:busy</ep:activities>`; draft RPID
//! `<activity>away</activity>`).
//!
//! Meal-type activities map to BeRightBack because a meal is a short,
//! expected absence, which is what the hub's BeRightBack means. The
//! `other` texts naming hub activities (`be-right-back`, `off-work`,
//! `in-a-conference`, ...) are what [`super::build_pidf`] writes for
//! activities RPID has no token for, so our own publications read back
//! unchanged.

use presence_connector_sdk::{Activity, Availability};

use super::clip;
use super::xml::ns;

/// One availability/activity signal found in a document.
#[derive(Debug, Clone)]
pub(super) struct Signal {
    pub explicit: Option<Availability>,
    pub implied: Option<Availability>,
    pub activity: Option<Activity>,
    pub rank: u8,
    /// A call exists (on the phone or on hold).
    pub on_the_phone: bool,
}

impl Signal {
    fn new(rank: u8) -> Self {
        Self {
            explicit: None,
            implied: None,
            activity: None,
            rank,
            on_the_phone: false,
        }
    }
    fn explicit(mut self, a: Availability) -> Self {
        self.explicit = Some(a);
        self
    }
    fn implied(mut self, a: Availability) -> Self {
        self.implied = Some(a);
        self
    }
    fn activity(mut self, a: Activity) -> Self {
        self.activity = Some(a);
        self
    }
    fn in_a_call(rank: u8) -> Self {
        let mut s = Self::new(rank)
            .implied(Availability::Busy)
            .activity(Activity::InACall);
        s.on_the_phone = true;
        s
    }
}

/// Rank of a signal read from a note: below every activity element, so a
/// document's own activity wins over the words of its note.
const NOTE_RANK: u8 = 15;

/// Namespaces whose `activities` element lists activities: RFC 4480's,
/// the draft-era `...:pidf:rpid:*` and `...:pidf:status:rpid*` still sent
/// by Asterisk's eyeBeam supplement and old softphones, and Cisco's.
pub(super) fn is_activities_ns(ns: Option<&str>) -> bool {
    ns.is_some_and(|n| {
        n.starts_with(ns::RPID) || n.starts_with(ns::RPID_DRAFT_STATUS) || n == ns::CISCO_RPID
    })
}

/// An activity token (an element's local name, or a word of activity
/// text, lowercase) → signal. `None` for `unknown` and names nobody we know
/// defines.
pub(super) fn classify_token(token: &str) -> Option<Signal> {
    use Activity as Ac;
    use Availability as Av;
    let s = match token {
        "dnd" | "do-not-disturb" | "donotdisturb" => Signal::new(60).explicit(Av::DoNotDisturb),
        "on-the-phone" => Signal::in_a_call(50),
        "on-hold" => Signal::in_a_call(49),
        "presentation" => Signal::new(48).implied(Av::Busy).activity(Ac::Presenting),
        "meeting" | "appointment" => Signal::new(46).implied(Av::Busy).activity(Ac::InAMeeting),
        "busy" => Signal::new(40).explicit(Av::Busy),
        "vacation" | "holiday" | "permanent-absence" => {
            Signal::new(35).implied(Av::Away).activity(Ac::OutOfOffice)
        }
        "meal" | "breakfast" | "dinner" => {
            Signal::new(30).implied(Av::Away).activity(Ac::BeRightBack)
        }
        "away" => Signal::new(28).explicit(Av::Away),
        "sleeping" => Signal::new(26).implied(Av::Away),
        // A phone ringing says nothing yet about whether its user is free.
        "alerting" | "ringing" => Signal::new(12).activity(Ac::Other("ringing".into())),
        "in-transit" | "looking-for-work" | "performance" | "playing" | "shopping"
        | "spectator" | "steering" | "travel" | "tv" | "working" | "worship" => {
            Signal::new(10).activity(Ac::Other(token.to_string()))
        }
        "available" => Signal::new(0),
        _ => return None,
    };
    Some(s)
}

/// Normalises free text for keyword comparison: lowercase, with spaces and
/// underscores as hyphens ("Do Not Disturb" → "do-not-disturb").
fn keyword(text: &str) -> String {
    text.trim()
        .chars()
        .map(|c| match c {
            ' ' | '_' => '-',
            c => c.to_ascii_lowercase(),
        })
        .collect()
}

/// `<rpid:other>text</rpid:other>` → signal: the hub's own activity names,
/// then any token above, else the text itself as the activity.
pub(super) fn classify_other(text: &str) -> Option<Signal> {
    use Activity as Ac;
    use Availability as Av;
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    let key = keyword(text);
    let s = match key.as_str() {
        "in-a-conference" => Signal::new(52)
            .implied(Av::Busy)
            .activity(Ac::InAConference),
        "in-a-call" => Signal::in_a_call(50),
        "presenting" => Signal::new(48).implied(Av::Busy).activity(Ac::Presenting),
        "in-a-meeting" => Signal::new(46).implied(Av::Busy).activity(Ac::InAMeeting),
        "out-of-office" => Signal::new(35).implied(Av::Away).activity(Ac::OutOfOffice),
        "be-right-back" | "brb" => Signal::new(30).implied(Av::Away).activity(Ac::BeRightBack),
        "off-work" => Signal::new(29).implied(Av::Away).activity(Ac::OffWork),
        _ => classify_token(&key)
            .unwrap_or_else(|| Signal::new(20).activity(Ac::Other(clip(text, 256)))),
    };
    Some(s)
}

/// The tokens of activities written as text: `ep:busy` (a QName, prefix
/// dropped), `busy, on-the-phone`, or a phrase such as "On the phone"
/// (one token, `on-the-phone`). Lowercase; unknown ones are returned too,
/// to be kept raw.
pub(super) fn text_tokens(text: &str) -> Vec<String> {
    let words: Vec<String> = text
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|w| !w.is_empty())
        .map(|w| {
            let local = w.rsplit_once(':').map_or(w, |(_prefix, local)| local);
            clip(&local.to_ascii_lowercase(), 64)
        })
        .collect();
    if words.len() > 1 && words.iter().all(|w| classify_token(w).is_none()) {
        return vec![clip(&keyword(text), 64)];
    }
    words
}

/// A note that names a call state in Asterisk's fixed words ("On the
/// phone", "On hold", "Ringing"; also "In a call"): Asterisk's own PIDF
/// says which kind of busy only there. Other notes say nothing.
pub(super) fn classify_note(note: &str) -> Option<Signal> {
    let key = keyword(note);
    if !matches!(
        key.as_str(),
        "on-the-phone" | "on-hold" | "ringing" | "in-a-call"
    ) {
        return None;
    }
    let mut s = classify_other(&key)?;
    s.rank = NOTE_RANK;
    Some(s)
}

/// `<rpid:user-input>` → signal: `idle` is the Inactive activity.
pub(super) fn classify_user_input(value: &str) -> Option<Signal> {
    (value == "idle").then(|| Signal::new(5).activity(Activity::Inactive))
}

/// Asterisk `digium_presence type=...` → signal; `Err(())` for
/// `unavailable`, which forces Offline.
pub(super) fn classify_digium(kind: &str) -> Result<Option<Signal>, ()> {
    use Availability as Av;
    Ok(Some(match kind.trim().to_ascii_lowercase().as_str() {
        "dnd" => Signal::new(60).explicit(Av::DoNotDisturb),
        "away" => Signal::new(28).explicit(Av::Away),
        "xa" => Signal::new(35)
            .explicit(Av::Away)
            .activity(Activity::OutOfOffice),
        // Available: nothing to add beyond "present".
        "chat" | "available" => Signal::new(0),
        "unavailable" => return Err(()),
        _ => return Ok(None),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn activity_text_forms() {
        assert_eq!(text_tokens("ep:busy"), ["busy"]);
        assert_eq!(text_tokens(" EP:On-The-Phone\n"), ["on-the-phone"]);
        assert_eq!(
            text_tokens("busy, ep:on-the-phone"),
            ["busy", "on-the-phone"]
        );
        assert_eq!(text_tokens("On the phone"), ["on-the-phone"]);
        assert_eq!(text_tokens("Lunch with Bob"), ["lunch-with-bob"]);
        assert_eq!(text_tokens("away lunch"), ["away", "lunch"]);
        assert!(text_tokens("  ").is_empty());
    }

    #[test]
    fn only_call_state_notes_count() {
        for (note, activity) in [
            ("On the phone", Activity::InACall),
            ("on hold", Activity::InACall),
            ("In a call", Activity::InACall),
            ("Ringing", Activity::Other("ringing".into())),
        ] {
            let s = classify_note(note).unwrap();
            assert_eq!((s.activity, s.rank), (Some(activity), NOTE_RANK), "{note}");
        }
        for note in ["Ready", "Unavailable", "On the phone with Bob", "Busy", ""] {
            assert!(classify_note(note).is_none(), "{note}");
        }
    }

    #[test]
    fn activity_namespaces() {
        for yes in [
            "urn:ietf:params:xml:ns:pidf:rpid",
            "urn:ietf:params:xml:ns:pidf:rpid:rpid-person",
            "urn:ietf:params:xml:ns:pidf:status:rpid",
            "urn:ietf:params:xml:ns:pidf:status:rpid-status",
            "urn:cisco:params:xml:ns:pidf:rpid",
        ] {
            assert!(is_activities_ns(Some(yes)), "{yes}");
        }
        for no in [
            None,
            Some("urn:ietf:params:xml:ns:pidf"),
            Some("urn:example:x"),
        ] {
            assert!(!is_activities_ns(no), "{no:?}");
        }
    }
}
