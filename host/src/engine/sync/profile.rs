//! Mapping profiles: what counts as "in a conversation" on one connector
//! instance, in the normalized model, with a description in plain words
//! that operators read before they pick one (as the aurenz hub shows one
//! beside each connector type).
//!
//! Plain Busy (a calendar entry, a manual Busy) is never a conversation
//! unless a profile says calendar meetings count (aurenz admin guide,
//! "Busy does not necessarily mean DND").

use serde::{Deserialize, Serialize};

use crate::engine::{Activity, Availability, EndpointView, LineState, ShowAs};

/// An operator's choice for one instance: a preset, with any of its parts
/// overridden.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ProfileRule {
    /// A preset's name (see [`PRESETS`]); none: `calls-and-meetings`.
    pub preset: Option<String>,
    /// Line states that count, replacing the preset's.
    pub line_states: Option<Vec<LineState>>,
    /// Activities that count, replacing the preset's.
    pub activities: Option<Vec<Activity>>,
    /// Whether a calendar item shown busy or out of office that is
    /// happening now counts.
    pub calendar_meetings: Option<bool>,
}

/// What counts as a conversation on one instance, resolved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Profile {
    /// The preset's name, or `custom (<preset>)` when parts are overridden.
    pub name: String,
    pub description: String,
    pub line_states: Vec<LineState>,
    pub activities: Vec<Activity>,
    pub calendar_meetings: bool,
}

/// The presets, the default first.
pub const PRESETS: [&str; 4] = [
    "calls-and-meetings",
    "calls-including-ringing",
    "calls-only",
    "calls-meetings-and-calendar",
];

const DEFAULT_PRESET: &str = PRESETS[0];

fn conversation_activities() -> Vec<Activity> {
    vec![
        Activity::InACall,
        Activity::InAConference,
        Activity::InAMeeting,
        Activity::Presenting,
    ]
}

/// A preset by name.
pub fn preset(name: &str) -> Option<Profile> {
    let connected = vec![LineState::Dialing, LineState::InCall, LineState::OnHold];
    let (line_states, activities, calendar_meetings) = match name {
        "calls-and-meetings" => (connected, conversation_activities(), false),
        "calls-including-ringing" => {
            let mut l = connected;
            l.insert(0, LineState::Ringing);
            (l, conversation_activities(), false)
        }
        "calls-only" => (
            connected,
            vec![Activity::InACall, Activity::InAConference],
            false,
        ),
        "calls-meetings-and-calendar" => (connected, conversation_activities(), true),
        _ => return None,
    };
    Some(Profile::new(
        name.to_owned(),
        line_states,
        activities,
        calendar_meetings,
    ))
}

/// Every preset, for the API.
pub fn presets() -> Vec<Profile> {
    PRESETS.iter().filter_map(|n| preset(n)).collect()
}

/// Resolve an operator's rule; the error names what is allowed.
pub fn resolve(rule: Option<&ProfileRule>) -> Result<Profile, String> {
    let Some(rule) = rule else {
        return Ok(preset(DEFAULT_PRESET).expect("default preset"));
    };
    let base_name = rule.preset.as_deref().unwrap_or(DEFAULT_PRESET);
    let base = preset(base_name).ok_or_else(|| {
        format!(
            "unknown preset {base_name:?}; one of {}",
            PRESETS.join(", ")
        )
    })?;
    if rule.line_states.is_none() && rule.activities.is_none() && rule.calendar_meetings.is_none() {
        return Ok(base);
    }
    if rule
        .line_states
        .as_ref()
        .is_some_and(|l| l.contains(&LineState::Idle) || l.contains(&LineState::Unknown))
    {
        return Err(
            "line_states: an idle or unknown line is never a conversation; \
             use ringing, dialing, in-call, on-hold"
                .into(),
        );
    }
    Ok(Profile::new(
        format!("custom ({base_name})"),
        rule.line_states.clone().unwrap_or(base.line_states),
        rule.activities.clone().unwrap_or(base.activities),
        rule.calendar_meetings.unwrap_or(base.calendar_meetings),
    ))
}

fn line_words(l: LineState) -> &'static str {
    match l {
        LineState::Ringing => "ringing",
        LineState::Dialing => "dialling out",
        LineState::InCall => "connected",
        LineState::OnHold => "on hold",
        LineState::Idle => "idle",
        LineState::Unknown => "unknown",
    }
}

fn activity_words(a: &Activity) -> String {
    match a {
        Activity::InACall => "in a call".into(),
        Activity::InAConference => "in a conference call".into(),
        Activity::InAMeeting => "in an online meeting".into(),
        Activity::Presenting => "presenting".into(),
        Activity::OutOfOffice => "out of office".into(),
        Activity::BeRightBack => "be right back".into(),
        Activity::OffWork => "off work".into(),
        Activity::Inactive => "inactive".into(),
        Activity::Other(s) => format!("{s:?}"),
    }
}

fn list(words: &[String]) -> String {
    match words {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

impl Profile {
    fn new(
        name: String,
        line_states: Vec<LineState>,
        activities: Vec<Activity>,
        calendar_meetings: bool,
    ) -> Profile {
        let mut parts = Vec::new();
        if !line_states.is_empty() {
            let words: Vec<String> = line_states
                .iter()
                .map(|l| line_words(*l).to_owned())
                .collect();
            parts.push(format!("while a line is {}", list(&words)));
        }
        if !activities.is_empty() {
            let words: Vec<String> = activities.iter().map(activity_words).collect();
            parts.push(format!("while the person is {}", list(&words)));
        }
        if calendar_meetings {
            parts.push(
                "for the whole of a calendar item shown busy or out of office, \
                 even when the meeting ends early"
                    .to_owned(),
            );
        }
        let description = if parts.is_empty() {
            "Nothing on this connector counts as a conversation: it never sets \
             do-not-disturb elsewhere."
                .to_owned()
        } else {
            format!(
                "Counts as a conversation {}: the user's other platforms are set to \
                 do-not-disturb, and put back when it ends. Plain Busy{} never does.",
                parts.join("; "),
                if calendar_meetings {
                    " without a calendar item"
                } else {
                    " (a calendar entry, a manual Busy)"
                }
            )
        };
        Profile {
            name,
            description,
            line_states,
            activities,
            calendar_meetings,
        }
    }

    /// Why `view` reads as a conversation at `now_ms`, if it does.
    /// `hub_dnd`: the hub holds (or is setting) do-not-disturb on this
    /// endpoint, so a do-not-disturb rich state there reads as the hub's own
    /// (Teams shows the hub's DND as DoNotDisturb/Presenting) and never as
    /// a conversation. An echo of the hub's restore shows the person's own
    /// state again, so it counts like any other update.
    pub fn conversation(&self, view: &EndpointView, hub_dnd: bool, now_ms: u64) -> Option<String> {
        self.line(view).or_else(|| {
            if hub_dnd && masked(view) {
                None
            } else {
                self.rich(view, now_ms)
            }
        })
    }

    /// The line's part: a call on the line is never the hub's doing. The
    /// reason names the state as the API does (`line in-call`).
    pub fn line(&self, view: &EndpointView) -> Option<String> {
        let t = view.telephony.as_ref()?;
        self.line_states
            .contains(&t.line)
            .then(|| format!("line {}", term(&t.line)))
    }

    /// The rich and calendar part.
    pub fn rich(&self, view: &EndpointView, now_ms: u64) -> Option<String> {
        if let Some(r) = &view.rich
            && let Some(a) = &r.activity
            && self.activities.contains(a)
        {
            return Some(format!("activity {}", term(a)));
        }
        if self.calendar_meetings
            && let Some(c) = &view.calendar
            && let Some(item) = c.items.iter().find(|i| {
                i.start_ms <= now_ms
                    && now_ms < i.end_ms
                    && matches!(i.show_as, ShowAs::Busy | ShowAs::OutOfOffice)
            })
        {
            return Some(format!(
                "calendar item until {}",
                crate::engine::sync::clock(item.end_ms)
            ));
        }
        None
    }
}

/// A value's name as the API writes it (`in-call`, `in-a-meeting`).
fn term<T: Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => String::new(),
    }
}

/// Whether the hub's do-not-disturb, where it holds one, hides the rich
/// state: Graph shows a DND session above a call.
pub fn masked(view: &EndpointView) -> bool {
    view.rich
        .as_ref()
        .is_some_and(|r| r.availability == Availability::DoNotDisturb)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{RichPresence, TelephonyPresence, TelephonySource, UpdateOrigin};

    fn rich(availability: Availability, activity: Option<Activity>) -> EndpointView {
        EndpointView {
            rich: Some(RichPresence {
                availability,
                activity,
                note: None,
            }),
            ..Default::default()
        }
    }

    #[test]
    fn plain_busy_is_never_a_conversation_and_meetings_are() {
        let p = resolve(None).unwrap();
        assert_eq!(p.name, "calls-and-meetings");
        assert_eq!(
            p.conversation(&rich(Availability::Busy, None), false, 0),
            None
        );
        assert_eq!(
            p.conversation(
                &rich(Availability::Busy, Some(Activity::Other("Busy".into()))),
                false,
                0
            ),
            None
        );
        assert!(
            p.conversation(
                &rich(Availability::Busy, Some(Activity::InAMeeting)),
                false,
                0
            )
            .is_some()
        );
        // The hub's own DND reads DoNotDisturb/Presenting in Teams.
        let dnd = rich(Availability::DoNotDisturb, Some(Activity::Presenting));
        assert!(p.conversation(&dnd, false, 0).is_some());
        assert_eq!(p.conversation(&dnd, true, 0), None);
        let restored = EndpointView {
            origin: UpdateOrigin::HubWrite { write_id: 1 },
            ..rich(Availability::Busy, Some(Activity::InACall))
        };
        assert!(p.conversation(&restored, false, 0).is_some());
    }

    #[test]
    fn ringing_counts_only_where_the_profile_says() {
        let ringing = EndpointView {
            telephony: Some(TelephonyPresence {
                line: LineState::Ringing,
                do_not_disturb: false,
                forward: None,
                source: TelephonySource::PbxLine,
            }),
            ..Default::default()
        };
        assert_eq!(
            resolve(None).unwrap().conversation(&ringing, false, 0),
            None
        );
        let p = preset("calls-including-ringing").unwrap();
        assert_eq!(
            p.conversation(&ringing, false, 0).as_deref(),
            Some("line ringing")
        );
    }

    #[test]
    fn rules_resolve_with_overrides_and_clear_errors() {
        let r = ProfileRule {
            preset: Some("calls-only".into()),
            calendar_meetings: Some(true),
            ..Default::default()
        };
        let p = resolve(Some(&r)).unwrap();
        assert_eq!(p.name, "custom (calls-only)");
        assert!(p.calendar_meetings && p.description.contains("calendar item"));
        let bad = ProfileRule {
            preset: Some("always".into()),
            ..Default::default()
        };
        assert!(
            resolve(Some(&bad))
                .unwrap_err()
                .contains("calls-and-meetings")
        );
        let idle = ProfileRule {
            line_states: Some(vec![LineState::Idle]),
            ..Default::default()
        };
        assert!(resolve(Some(&idle)).unwrap_err().starts_with("line_states"));
        for p in presets() {
            assert!(p.description.contains("Plain Busy"), "{}", p.description);
        }
    }
}
