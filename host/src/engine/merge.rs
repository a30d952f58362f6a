//! The merge rules: from every source's observation of one user to the
//! presence consoles show, with the reason each source won or lost.
//!
//! Pure and deterministic: the caller passes the time.

use serde::{Deserialize, Serialize};

use std::collections::BTreeMap;

use super::model::*;

/// Operator-set rules, applied at once when changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Rules {
    /// Rich presence priority by technology (plugin id), first wins
    /// ("winning technology"). Empty by default: every source ranks alike
    /// and the most recent report wins, whoever wrote the plugin; operators
    /// list the technologies they prefer.
    pub winning_technology: Vec<String>,
    /// Among several connectors of the same technology, this instance wins
    /// ("preferred presence server").
    pub preferred_instance: Option<String>,
    /// The voicemail pilot number: a forward to it is "forwarded to voicemail".
    pub voicemail_pilot: Option<String>,
    /// Show only the last N digits of a forward target (None: all).
    pub forward_visible_digits: Option<u8>,
    /// An operator's time limit on every source: a state not confirmed for
    /// longer than this is aged out to unknown. None (the default): a state
    /// counts while its source vouches for it (connector up, endpoint not in
    /// error) and within the validity the source itself declared, if any;
    /// SIP servers and Graph notifications send only changes, so silence is
    /// no sign of a stale state.
    pub stale_after_seconds: Option<u64>,
    /// Which user attribute each connector instance watches, by attribute
    /// name (`sip-uri`, `extension`, `teams-upn`, a plugin's own); an
    /// instance not listed watches the first endpoint kind its plugin
    /// declares.
    pub instance_fields: BTreeMap<String, String>,
    /// How long the event log keeps entries.
    pub event_retention_days: u32,
    /// Bidirectional sync: who, which platforms, what counts as a
    /// conversation, the leading system.
    pub sync: crate::engine::sync::SyncRules,
    /// What consoles see of people's calendars.
    pub calendar: crate::engine::calendar::CalendarRules,
}

impl Default for Rules {
    fn default() -> Self {
        Self {
            winning_technology: Vec::new(),
            preferred_instance: None,
            voicemail_pilot: None,
            forward_visible_digits: None,
            stale_after_seconds: None,
            instance_fields: BTreeMap::new(),
            event_retention_days: 7,
            sync: Default::default(),
            calendar: Default::default(),
        }
    }
}

/// One connector instance's observation of one of the user's endpoints.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceView<'a> {
    pub instance: &'a str,
    /// The instance's plugin id.
    pub technology: &'a str,
    pub endpoint: &'a str,
    pub observed: Option<&'a EndpointView>,
    /// Whether the instance is running and configured.
    pub connector_ok: bool,
}

/// The channel states consoles show (the seeds' diagnostics vocabulary).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Hash, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ChannelState {
    Available,
    Away,
    Busy,
    DoNotDisturb,
    Offline,
    ForwardedToVoicemail,
    ForwardedToNumber,
    Unknown,
    AccessDenied,
    Error,
    NotFound,
    NotRequested,
    Requesting,
    ServerNotConfigured,
    /// The user has no endpoint for this kind of presence.
    NotConfigured,
}

impl ChannelState {
    /// The state's name as the API writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Available => "available",
            Self::Away => "away",
            Self::Busy => "busy",
            Self::DoNotDisturb => "do-not-disturb",
            Self::Offline => "offline",
            Self::ForwardedToVoicemail => "forwarded-to-voicemail",
            Self::ForwardedToNumber => "forwarded-to-number",
            Self::Unknown => "unknown",
            Self::AccessDenied => "access-denied",
            Self::Error => "error",
            Self::NotFound => "not-found",
            Self::NotRequested => "not-requested",
            Self::Requesting => "requesting",
            Self::ServerNotConfigured => "server-not-configured",
            Self::NotConfigured => "not-configured",
        }
    }
}

/// Merged telephony presence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TelephonyOut {
    pub state: ChannelState,
    pub line: Option<LineState>,
    /// Forward target as shown (masked per the rules).
    pub forward_to: Option<String>,
    /// The connector instance whose report won; for an error state
    /// (`access-denied`, `not-found`, `error`, `requesting`) the instance
    /// whose watch is in that state.
    pub source: Option<String>,
    /// The plugin (technology) of `source`.
    pub source_plugin: Option<String>,
    /// For an error state: the source's own words (e.g. the platform's
    /// status), when it gave any.
    pub source_detail: Option<String>,
    /// When this state (state, line and forward together) began, in ms
    /// since the Unix epoch: the hub's time of the change (see [`stamp`]).
    pub since_ms: Option<u64>,
}

/// Merged rich presence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RichOut {
    pub state: ChannelState,
    pub activity: Option<Activity>,
    pub note: Option<String>,
    /// As [`TelephonyOut::source`].
    pub source: Option<String>,
    /// The plugin (technology) of `source`.
    pub source_plugin: Option<String>,
    /// As [`TelephonyOut::source_detail`].
    pub source_detail: Option<String>,
    /// When `state` (the availability) began, ms since the Unix epoch.
    pub since_ms: Option<u64>,
    /// When `activity` (or its absence) began, ms since the Unix epoch.
    pub activity_since_ms: Option<u64>,
}

/// The merged presence of one user and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Merged {
    pub telephony: TelephonyOut,
    pub rich: RichOut,
    /// One line per decision, for the event log.
    pub reasons: Vec<String>,
}

/// Whether a source still vouches for its last state: its watch is not in
/// error, the validity it declared has not lapsed, and the operator's time
/// limit, if any, has not passed.
fn fresh(v: &EndpointView, rules: &Rules, now_ms: u64) -> bool {
    let vouched = !matches!(
        v.state,
        Some(EndpointState::Error | EndpointState::AccessDenied | EndpointState::NotFound)
    );
    let valid = v.valid_until_ms.is_none_or(|t| now_ms <= t);
    let within_limit = match rules.stale_after_seconds {
        Some(s) => v
            .received_at_ms
            .is_some_and(|t| now_ms.saturating_sub(t) <= s * 1000),
        None => v.received_at_ms.is_some(),
    };
    vouched && valid && within_limit
}

/// Rank of a technology in the winning order (unlisted last).
fn tech_rank(rules: &Rules, tech: &str) -> usize {
    rules
        .winning_technology
        .iter()
        .position(|t| t == tech)
        .unwrap_or(usize::MAX)
}

/// Digits compared for voicemail detection: punctuation and a leading + are
/// ignored.
fn digits(n: &str) -> String {
    n.chars().filter(|c| c.is_ascii_alphanumeric()).collect()
}

fn mask(number: &str, visible: Option<u8>) -> String {
    match visible {
        None => number.to_string(),
        Some(n) => {
            let chars: Vec<char> = number.chars().collect();
            let keep = (n as usize).min(chars.len());
            let hidden = chars.len() - keep;
            std::iter::repeat_n('*', hidden)
                .chain(chars[hidden..].iter().copied())
                .collect()
        }
    }
}

/// When no source has presence: what consoles should see instead, and
/// the source whose watch is in that state (for the error states).
fn service_state<'s, 'a>(
    sources: &'s [&'s SourceView<'a>],
) -> (ChannelState, Option<&'s SourceView<'a>>) {
    if sources.is_empty() {
        return (ChannelState::NotConfigured, None);
    }
    if sources.iter().all(|s| !s.connector_ok) {
        return (ChannelState::ServerNotConfigured, None);
    }
    for (e, c) in [
        (EndpointState::AccessDenied, ChannelState::AccessDenied),
        (EndpointState::NotFound, ChannelState::NotFound),
        (EndpointState::Error, ChannelState::Error),
        (EndpointState::Requesting, ChannelState::Requesting),
    ] {
        if let Some(s) = sources
            .iter()
            .find(|s| s.connector_ok && s.observed.and_then(|o| o.state) == Some(e))
        {
            return (c, Some(*s));
        }
    }
    let seen = sources
        .iter()
        .any(|s| s.observed.is_some_and(|o| o.received_at_ms.is_some()));
    if seen {
        // Had presence once, but it aged out.
        (ChannelState::Unknown, None)
    } else if sources
        .iter()
        .any(|s| s.connector_ok && s.observed.is_some_and(|o| o.state.is_some()))
    {
        (ChannelState::Requesting, None)
    } else {
        (ChannelState::NotRequested, None)
    }
}

/// Why a source does not count now, in words (for the reasons).
fn left_out(
    s: &SourceView,
    has: impl Fn(&EndpointView) -> bool,
    rules: &Rules,
    now_ms: u64,
) -> String {
    let why = if !s.connector_ok {
        "its connector is not running".to_string()
    } else {
        match s.observed {
            None => "nothing reported yet".to_string(),
            Some(o) => match o.state {
                Some(
                    st @ (EndpointState::Error
                    | EndpointState::AccessDenied
                    | EndpointState::NotFound),
                ) => {
                    let name = match st {
                        EndpointState::Error => "error",
                        EndpointState::AccessDenied => "access denied",
                        _ => "not found",
                    };
                    match &o.state_detail {
                        Some(d) => format!("its watch is in {name}: {d}"),
                        None => format!("its watch is in {name}"),
                    }
                }
                _ if !has(o) => "no state of this kind reported yet".to_string(),
                _ if o.valid_until_ms.is_some_and(|t| now_ms > t) => {
                    "the validity its source declared lapsed".to_string()
                }
                _ if !fresh(o, rules, now_ms) => "older than stale_after_seconds".to_string(),
                _ => "outranked".to_string(),
            },
        }
    };
    format!("{} ({}) {why}", s.instance, s.endpoint)
}

/// The reason line for a channel: who won and why, who was left out and
/// why, or why no source counts.
fn channel_reason(
    channel: &str,
    sources: &[SourceView],
    live: &[&SourceView],
    // The winner, and why it won when a rule decided between several.
    winner: Option<(&SourceView, Option<String>)>,
    has: impl Fn(&EndpointView) -> bool + Copy,
    rules: &Rules,
    now_ms: u64,
) -> Option<String> {
    if sources.is_empty() {
        return Some(format!(
            "{channel}: not configured (the user has no endpoint a connector watches for it)"
        ));
    }
    let others: Vec<String> = sources
        .iter()
        .filter(|s| {
            !live
                .iter()
                .any(|l| l.instance == s.instance && l.endpoint == s.endpoint)
        })
        .map(|s| left_out(s, has, rules, now_ms))
        .collect();
    let out = if others.is_empty() {
        String::new()
    } else {
        format!("; left out: {}", others.join("; "))
    };
    Some(match winner {
        Some((w, rank_reason)) => match rank_reason {
            Some(r) => format!("{channel}: {r}{out}"),
            None => format!(
                "{channel}: {} is the only source with a current state{out}",
                w.instance
            ),
        },
        None => format!("{channel}: no source has a current state{out}"),
    })
}

/// One dimension's key and start time, as [`stamp`] keeps them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Began {
    /// The dimension's value, as compared (`busy`, `in-a-call`,
    /// `busy|in-call|`).
    pub key: String,
    pub since_ms: u64,
}

/// When each dimension of a user's presence began, as stored so that it
/// survives a restart (only states a source reported, not the hub's own
/// service states such as `requesting`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SinceRecord {
    pub availability: Option<Began>,
    pub activity: Option<Began>,
    pub telephony: Option<Began>,
}

fn rich_key(r: &RichOut) -> String {
    r.state.as_str().to_string()
}

fn activity_key(r: &RichOut) -> String {
    match &r.activity {
        None => String::new(),
        Some(Activity::Other(o)) => format!("other:{o}"),
        Some(a) => serde_json::to_value(a)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default(),
    }
}

fn telephony_key(t: &TelephonyOut) -> String {
    let line = t
        .line
        .and_then(|l| serde_json::to_value(l).ok())
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    format!(
        "{}|{line}|{}",
        t.state.as_str(),
        t.forward_to.as_deref().unwrap_or("")
    )
}

/// Whether a state was reported by a source (not one the hub shows for want
/// of one): only those are remembered across restarts.
fn reported(state: ChannelState) -> bool {
    matches!(
        state,
        ChannelState::Available
            | ChannelState::Away
            | ChannelState::Busy
            | ChannelState::DoNotDisturb
            | ChannelState::Offline
            | ChannelState::ForwardedToVoicemail
            | ChannelState::ForwardedToNumber
    )
}

/// Stamp when each state began. A dimension whose value is unchanged from
/// `prev` (the user's last merged presence) keeps its start; one that
/// changed began `now_ms`, unless `memory` (what was stored before a
/// restart) holds the same reported value, whose start is kept then. A
/// reported value consumes the remembered one, equal or not: the state it
/// remembered has resumed or is over.
pub fn stamp(
    prev: Option<(&TelephonyOut, &RichOut)>,
    telephony: &mut TelephonyOut,
    rich: &mut RichOut,
    memory: &mut SinceRecord,
    now_ms: u64,
) {
    fn one(
        prev: Option<(String, Option<u64>)>,
        key: String,
        reported: bool,
        memory: &mut Option<Began>,
        now_ms: u64,
    ) -> u64 {
        let remembered = if reported { memory.take() } else { None };
        if let Some((k, Some(t))) = prev
            && k == key
        {
            return t;
        }
        match remembered {
            Some(b) if b.key == key => b.since_ms.min(now_ms),
            _ => now_ms,
        }
    }
    let rich_reported = reported(rich.state);
    rich.since_ms = Some(one(
        prev.map(|(_, r)| (rich_key(r), r.since_ms)),
        rich_key(rich),
        rich_reported,
        &mut memory.availability,
        now_ms,
    ));
    rich.activity_since_ms = Some(one(
        prev.map(|(_, r)| (activity_key(r), r.activity_since_ms)),
        activity_key(rich),
        rich_reported,
        &mut memory.activity,
        now_ms,
    ));
    telephony.since_ms = Some(one(
        prev.map(|(t, _)| (telephony_key(t), t.since_ms)),
        telephony_key(telephony),
        reported(telephony.state),
        &mut memory.telephony,
        now_ms,
    ));
}

/// What to store of a user's stamped presence: each dimension's last
/// reported value and its start; a dimension now in a service state
/// (`requesting`, `server-not-configured`, ...) keeps what `stored` had.
pub fn remember(stored: &SinceRecord, telephony: &TelephonyOut, rich: &RichOut) -> SinceRecord {
    let began = |key: String, since: Option<u64>, reported: bool, old: &Option<Began>| {
        if reported {
            since.map(|since_ms| Began { key, since_ms })
        } else {
            old.clone()
        }
    };
    let r = reported(rich.state);
    SinceRecord {
        availability: began(rich_key(rich), rich.since_ms, r, &stored.availability),
        activity: began(
            activity_key(rich),
            rich.activity_since_ms,
            r,
            &stored.activity,
        ),
        telephony: began(
            telephony_key(telephony),
            telephony.since_ms,
            reported(telephony.state),
            &stored.telephony,
        ),
    }
}

/// Merge one user's sources. `voicemail_number` is the user's own.
pub fn merge(
    rich_sources: &[SourceView],
    telephony_sources: &[SourceView],
    voicemail_number: Option<&str>,
    rules: &Rules,
    now_ms: u64,
) -> Merged {
    let mut reasons = Vec::new();

    // ---- rich --------------------------------------------------------------
    let live: Vec<&SourceView> = rich_sources
        .iter()
        .filter(|s| s.connector_ok)
        .filter(|s| {
            s.observed
                .is_some_and(|o| o.rich.is_some() && fresh(o, rules, now_ms))
        })
        .collect();
    let winner = live.iter().min_by_key(|s| {
        let preferred = rules.preferred_instance.as_deref() == Some(s.instance);
        let t = s.observed.and_then(|o| o.received_at_ms).unwrap_or(0);
        (
            !preferred,
            tech_rank(rules, s.technology),
            std::cmp::Reverse(t),
        )
    });
    let rich = match winner {
        Some(w) => {
            let r = w.observed.and_then(|o| o.rich.clone()).expect("filtered");
            let mut rank = None;
            if live.len() > 1 {
                let others: Vec<&str> = live
                    .iter()
                    .filter(|s| s.instance != w.instance)
                    .map(|s| s.instance)
                    .collect();
                let why = if rules.preferred_instance.as_deref() == Some(w.instance) {
                    "preferred presence server".to_string()
                } else if live
                    .iter()
                    .all(|s| tech_rank(rules, s.technology) == tech_rank(rules, w.technology))
                {
                    "most recent report; no winning technology set between them".to_string()
                } else {
                    format!("winning technology {}", w.technology)
                };
                rank = Some(format!(
                    "{} wins over {} ({why})",
                    w.instance,
                    others.join(", ")
                ));
            }
            reasons.extend(channel_reason(
                "rich",
                rich_sources,
                &live,
                Some((w, rank)),
                |o| o.rich.is_some(),
                rules,
                now_ms,
            ));
            RichOut {
                state: match r.availability {
                    Availability::Available => ChannelState::Available,
                    Availability::Away => ChannelState::Away,
                    Availability::Busy => ChannelState::Busy,
                    Availability::DoNotDisturb => ChannelState::DoNotDisturb,
                    Availability::Offline => ChannelState::Offline,
                    Availability::Unknown => ChannelState::Unknown,
                },
                activity: r.activity,
                note: r.note,
                source: Some(w.instance.to_string()),
                source_plugin: Some(w.technology.to_string()),
                source_detail: None,
                since_ms: None,
                activity_since_ms: None,
            }
        }
        None => {
            let srcs: Vec<&SourceView> = rich_sources.iter().collect();
            let (state, culprit) = service_state(&srcs);
            // Aged out only when a source had rich presence once (a
            // source that never reported any has nothing to lapse).
            if state == ChannelState::Unknown
                && rich_sources
                    .iter()
                    .any(|s| s.observed.is_some_and(|o| o.rich.is_some()))
            {
                reasons.push(
                    "rich: no source vouches for its last state any more (lapsed or past stale_after_seconds); unknown"
                        .into(),
                );
            }
            reasons.extend(channel_reason(
                "rich",
                rich_sources,
                &live,
                None,
                |o| o.rich.is_some(),
                rules,
                now_ms,
            ));
            RichOut {
                state,
                activity: None,
                note: None,
                source: culprit.map(|c| c.instance.to_string()),
                source_plugin: culprit.map(|c| c.technology.to_string()),
                source_detail: culprit.and_then(|c| c.observed?.state_detail.clone()),
                since_ms: None,
                activity_since_ms: None,
            }
        }
    };

    // ---- telephony -----------------------------------------------------------
    let live: Vec<&SourceView> = telephony_sources
        .iter()
        .filter(|s| s.connector_ok)
        .filter(|s| {
            s.observed
                .is_some_and(|o| o.telephony.is_some() && fresh(o, rules, now_ms))
        })
        .collect();
    let winner = live.iter().min_by_key(|s| {
        let t = s.observed.and_then(|o| o.telephony.as_ref());
        let line_source = t.map(|t| t.source) == Some(TelephonySource::PbxLine);
        let recv = s.observed.and_then(|o| o.received_at_ms).unwrap_or(0);
        (
            !line_source,
            tech_rank(rules, s.technology),
            std::cmp::Reverse(recv),
        )
    });
    let telephony = match winner {
        Some(w) => {
            let t = w
                .observed
                .and_then(|o| o.telephony.clone())
                .expect("filtered");
            let rank = (live.len() > 1).then(|| {
                format!(
                    "{} wins ({})",
                    w.instance,
                    if t.source == TelephonySource::PbxLine {
                        "PBX line source over SIP-derived"
                    } else {
                        "technology priority"
                    }
                )
            });
            reasons.extend(channel_reason(
                "telephony",
                telephony_sources,
                &live,
                Some((w, rank)),
                |o| o.telephony.is_some(),
                rules,
                now_ms,
            ));
            let (state, forward_to) = if t.do_not_disturb {
                if t.forward.is_some() {
                    reasons.push("telephony: DND overrides forwarded".into());
                }
                (ChannelState::DoNotDisturb, None)
            } else if let Some(f) = &t.forward {
                match f {
                    ForwardTarget::Voicemail => (ChannelState::ForwardedToVoicemail, None),
                    ForwardTarget::Number(n) => {
                        let d = digits(n);
                        let pilot = rules.voicemail_pilot.as_deref().map(digits);
                        let own = voicemail_number.map(digits);
                        if !d.is_empty()
                            && (pilot.as_deref() == Some(&d) || own.as_deref() == Some(&d))
                        {
                            reasons.push(format!(
                                "telephony: forward to {n} is the {}",
                                if pilot.as_deref() == Some(&d) {
                                    "voicemail pilot"
                                } else {
                                    "user's voicemail number"
                                }
                            ));
                            (ChannelState::ForwardedToVoicemail, None)
                        } else {
                            (
                                ChannelState::ForwardedToNumber,
                                Some(mask(n, rules.forward_visible_digits)),
                            )
                        }
                    }
                }
            } else {
                (
                    match t.line {
                        LineState::Idle => ChannelState::Available,
                        LineState::Ringing
                        | LineState::Dialing
                        | LineState::InCall
                        | LineState::OnHold => ChannelState::Busy,
                        LineState::Unknown => ChannelState::Unknown,
                    },
                    None,
                )
            };
            TelephonyOut {
                state,
                line: Some(t.line),
                forward_to,
                source: Some(w.instance.to_string()),
                source_plugin: Some(w.technology.to_string()),
                source_detail: None,
                since_ms: None,
            }
        }
        None => {
            let srcs: Vec<&SourceView> = telephony_sources.iter().collect();
            let (state, culprit) = service_state(&srcs);
            reasons.extend(channel_reason(
                "telephony",
                telephony_sources,
                &live,
                None,
                |o| o.telephony.is_some(),
                rules,
                now_ms,
            ));
            TelephonyOut {
                state,
                line: None,
                forward_to: None,
                source: culprit.map(|c| c.instance.to_string()),
                source_plugin: culprit.map(|c| c.technology.to_string()),
                source_detail: culprit.and_then(|c| c.observed?.state_detail.clone()),
                since_ms: None,
            }
        }
    };
    Merged {
        telephony,
        rich,
        reasons,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_000_000_000;

    fn rich(a: Availability, at: u64) -> EndpointView {
        EndpointView {
            state: Some(EndpointState::Active),
            rich: Some(RichPresence {
                availability: a,
                activity: None,
                note: None,
            }),
            received_at_ms: Some(at),
            ..Default::default()
        }
    }

    fn tel(
        line: LineState,
        dnd: bool,
        fwd: Option<ForwardTarget>,
        src: TelephonySource,
        at: u64,
    ) -> EndpointView {
        EndpointView {
            state: Some(EndpointState::Active),
            telephony: Some(TelephonyPresence {
                line,
                do_not_disturb: dnd,
                forward: fwd,
                source: src,
            }),
            received_at_ms: Some(at),
            ..Default::default()
        }
    }

    fn src<'a>(instance: &'a str, tech: &'a str, o: Option<&'a EndpointView>) -> SourceView<'a> {
        SourceView {
            instance,
            technology: tech,
            endpoint: "e",
            observed: o,
            connector_ok: true,
        }
    }

    #[test]
    fn winning_technology_decides_conflicting_rich_presence_and_changes_at_run_time() {
        let sip = rich(Availability::Busy, NOW - 10);
        let teams = rich(Availability::Available, NOW);
        let s = [
            src("pbx", "sip-simple", Some(&sip)),
            src("m365", "teams-graph", Some(&teams)),
        ];
        let mut rules = Rules::default();
        // No order by default: no plugin is favoured for its name; the most
        // recent report wins.
        let m = merge(&s, &[], None, &rules, NOW);
        assert_eq!(m.rich.source.as_deref(), Some("m365"));
        assert!(
            m.reasons[0].contains("most recent report"),
            "{:?}",
            m.reasons
        );
        rules.winning_technology = vec!["sip-simple".into(), "teams-graph".into()];
        let m = merge(&s, &[], None, &rules, NOW);
        assert_eq!(m.rich.state, ChannelState::Busy);
        assert_eq!(m.rich.source.as_deref(), Some("pbx"));
        assert!(
            m.reasons[0].contains("winning technology sip-simple"),
            "{:?}",
            m.reasons
        );
        rules.winning_technology = vec!["teams-graph".into(), "sip-simple".into()];
        let m = merge(&s, &[], None, &rules, NOW);
        assert_eq!(m.rich.state, ChannelState::Available);
        // A preferred instance beats the technology order.
        rules.preferred_instance = Some("pbx".into());
        assert_eq!(
            merge(&s, &[], None, &rules, NOW).rich.source.as_deref(),
            Some("pbx")
        );
    }

    #[test]
    fn pbx_line_beats_sip_derived_telephony() {
        let sip = tel(
            LineState::Idle,
            false,
            None,
            TelephonySource::SipDerived,
            NOW,
        );
        let cti = tel(
            LineState::InCall,
            false,
            None,
            TelephonySource::PbxLine,
            NOW - 100,
        );
        let s = [
            src("blf", "sip-simple", Some(&sip)),
            src("tapi", "http-push", Some(&cti)),
        ];
        let m = merge(&[], &s, None, &Rules::default(), NOW);
        assert_eq!(m.telephony.state, ChannelState::Busy);
        assert_eq!(m.telephony.source.as_deref(), Some("tapi"));
        assert_eq!(m.telephony.line, Some(LineState::InCall));
    }

    #[test]
    fn dnd_over_forwarded_over_busy_and_voicemail_detection() {
        let rules = Rules {
            voicemail_pilot: Some("+49 (30) 8000".into()),
            forward_visible_digits: Some(3),
            ..Rules::default()
        };
        let case = |dnd, fwd: Option<&str>, vm: Option<&str>| {
            let v = tel(
                LineState::InCall,
                dnd,
                fwd.map(|n| ForwardTarget::Number(n.into())),
                TelephonySource::PbxLine,
                NOW,
            );
            let m = merge(&[], &[src("p", "http-push", Some(&v))], vm, &rules, NOW);
            (m.telephony.state, m.telephony.forward_to)
        };
        assert_eq!(
            case(true, Some("123456"), None).0,
            ChannelState::DoNotDisturb
        );
        assert_eq!(
            case(false, Some("0301234567"), None),
            (ChannelState::ForwardedToNumber, Some("*******567".into()))
        );
        assert_eq!(
            case(false, Some("+49308000"), None).0,
            ChannelState::ForwardedToVoicemail
        );
        assert_eq!(
            case(false, Some("7001"), Some("7001")).0,
            ChannelState::ForwardedToVoicemail
        );
        assert_eq!(case(false, None, None).0, ChannelState::Busy);
        let idle = tel(
            LineState::Idle,
            false,
            Some(ForwardTarget::Voicemail),
            TelephonySource::PbxLine,
            NOW,
        );
        let m = merge(&[], &[src("p", "x", Some(&idle))], None, &rules, NOW);
        assert_eq!(m.telephony.state, ChannelState::ForwardedToVoicemail);
    }

    #[test]
    fn a_quiet_source_that_still_vouches_keeps_its_state() {
        // SIP servers send only changes: hours of silence on an active
        // subscription are no sign of staleness without an operator limit.
        let rules = Rules::default();
        let quiet = rich(Availability::Available, NOW - 6 * 3_600_000);
        let m = merge(
            &[src("pbx", "sip-simple", Some(&quiet))],
            &[],
            None,
            &rules,
            NOW,
        );
        assert_eq!(m.rich.state, ChannelState::Available);
        // A declared validity (a polling source) lapses on its own.
        let polled = EndpointView {
            valid_until_ms: Some(NOW - 1),
            ..rich(Availability::Busy, NOW - 10_000)
        };
        let m = merge(
            &[src("t", "teams-graph", Some(&polled))],
            &[],
            None,
            &rules,
            NOW,
        );
        assert_eq!(m.rich.state, ChannelState::Unknown);
        let still = EndpointView {
            valid_until_ms: Some(NOW + 1),
            ..polled
        };
        let m = merge(
            &[src("t", "teams-graph", Some(&still))],
            &[],
            None,
            &rules,
            NOW,
        );
        assert_eq!(m.rich.state, ChannelState::Busy);
    }

    #[test]
    fn a_source_in_error_stops_counting_at_once() {
        let rules = Rules::default();
        let failed = EndpointView {
            state: Some(EndpointState::Error),
            ..rich(Availability::Busy, NOW - 1_000)
        };
        let m = merge(
            &[src("pbx", "sip-simple", Some(&failed))],
            &[],
            None,
            &rules,
            NOW,
        );
        assert_eq!(m.rich.state, ChannelState::Error);
        // Another source that still vouches wins meanwhile.
        let teams = rich(Availability::Away, NOW - 60_000);
        let m = merge(
            &[
                src("pbx", "sip-simple", Some(&failed)),
                src("t", "teams-graph", Some(&teams)),
            ],
            &[],
            None,
            &rules,
            NOW,
        );
        assert_eq!(m.rich.state, ChannelState::Away);
    }

    #[test]
    fn stale_sources_age_out_and_fresh_ones_win() {
        let rules = Rules {
            stale_after_seconds: Some(60),
            ..Rules::default()
        };
        let old = rich(Availability::Busy, NOW - 61_000);
        let m = merge(
            &[src("pbx", "sip-simple", Some(&old))],
            &[],
            None,
            &rules,
            NOW,
        );
        assert_eq!(m.rich.state, ChannelState::Unknown);
        let newer = rich(Availability::Away, NOW - 1_000);
        let m = merge(
            &[
                src("pbx", "sip-simple", Some(&old)),
                src("t", "teams-graph", Some(&newer)),
            ],
            &[],
            None,
            &rules,
            NOW,
        );
        assert_eq!(
            (m.rich.state, m.rich.source.as_deref()),
            (ChannelState::Away, Some("t"))
        );
    }

    fn stamped(m: &mut Merged, prev: Option<&Merged>, memory: &mut SinceRecord, now: u64) {
        stamp(
            prev.map(|p| (&p.telephony, &p.rich)),
            &mut m.telephony,
            &mut m.rich,
            memory,
            now,
        );
    }

    #[test]
    fn each_state_keeps_its_start_until_it_changes() {
        let rules = Rules::default();
        let mut memory = SinceRecord::default();
        let ringing = tel(
            LineState::Ringing,
            false,
            None,
            TelephonySource::PbxLine,
            NOW,
        );
        let mut a = merge(&[], &[src("p", "x", Some(&ringing))], None, &rules, NOW);
        stamped(&mut a, None, &mut memory, NOW);
        assert_eq!(a.telephony.since_ms, Some(NOW));
        // Reported again later: the same state, the same start.
        let mut b = merge(
            &[],
            &[src("p", "x", Some(&ringing))],
            None,
            &rules,
            NOW + 5_000,
        );
        stamped(&mut b, Some(&a), &mut memory, NOW + 5_000);
        assert_eq!(b.telephony.since_ms, Some(NOW));
        // Ringing to in a call: still busy, but a new state begins.
        let call = tel(
            LineState::InCall,
            false,
            None,
            TelephonySource::PbxLine,
            NOW + 9_000,
        );
        let mut c = merge(
            &[],
            &[src("p", "x", Some(&call))],
            None,
            &rules,
            NOW + 9_000,
        );
        stamped(&mut c, Some(&b), &mut memory, NOW + 9_000);
        assert_eq!(c.telephony.state, ChannelState::Busy);
        assert_eq!(c.telephony.since_ms, Some(NOW + 9_000));
        // Rich: the availability and the activity each keep their own start.
        let busy = |activity: Option<Activity>, at| EndpointView {
            rich: Some(RichPresence {
                availability: Availability::Busy,
                activity,
                note: None,
            }),
            ..rich(Availability::Busy, at)
        };
        let v = busy(None, NOW);
        let mut r1 = merge(&[src("t", "teams", Some(&v))], &[], None, &rules, NOW);
        stamped(&mut r1, None, &mut memory, NOW);
        let v = busy(Some(Activity::InAMeeting), NOW + 60_000);
        let mut r2 = merge(
            &[src("t", "teams", Some(&v))],
            &[],
            None,
            &rules,
            NOW + 60_000,
        );
        stamped(&mut r2, Some(&r1), &mut memory, NOW + 60_000);
        assert_eq!(r2.rich.since_ms, Some(NOW), "still busy");
        assert_eq!(
            r2.rich.activity_since_ms,
            Some(NOW + 60_000),
            "meeting began"
        );
    }

    #[test]
    fn a_stored_start_comes_back_only_with_the_same_reported_state() {
        let rules = Rules::default();
        let call = tel(
            LineState::InCall,
            false,
            None,
            TelephonySource::PbxLine,
            NOW,
        );
        let mut before = merge(&[], &[src("p", "x", Some(&call))], None, &rules, NOW);
        stamped(&mut before, None, &mut SinceRecord::default(), NOW);
        let stored = remember(&SinceRecord::default(), &before.telephony, &before.rich);
        assert_eq!(
            stored.telephony.as_ref().map(|b| b.since_ms),
            Some(NOW),
            "{stored:?}"
        );
        // After a restart: first the hub's own state (nothing reported yet)
        // leaves the memory alone...
        let later = NOW + 600_000;
        let mut memory = stored.clone();
        let mut waiting = merge(&[], &[src("p", "x", None)], None, &rules, later);
        stamped(&mut waiting, None, &mut memory, later);
        assert_eq!(waiting.telephony.state, ChannelState::NotRequested);
        assert_eq!(waiting.telephony.since_ms, Some(later));
        assert_eq!(
            remember(&stored, &waiting.telephony, &waiting.rich),
            stored,
            "a service state keeps what was stored"
        );
        // ...then the same call, reported again, began when it began.
        let again = tel(
            LineState::InCall,
            false,
            None,
            TelephonySource::PbxLine,
            later,
        );
        let mut resumed = merge(&[], &[src("p", "x", Some(&again))], None, &rules, later);
        stamped(&mut resumed, Some(&waiting), &mut memory, later);
        assert_eq!(resumed.telephony.since_ms, Some(NOW));
        assert!(memory.telephony.is_none(), "taken");
        // Another state after a restart begins anew.
        let mut memory = stored;
        let idle = tel(
            LineState::Idle,
            false,
            None,
            TelephonySource::PbxLine,
            later,
        );
        let mut other = merge(&[], &[src("p", "x", Some(&idle))], None, &rules, later);
        stamped(&mut other, None, &mut memory, later);
        assert_eq!(other.telephony.since_ms, Some(later));
        assert!(memory.telephony.is_none(), "over");
    }

    #[test]
    fn reasons_say_why_on_every_channel_and_error_states_name_their_source() {
        let rules = Rules::default();
        let busy = rich(Availability::Busy, NOW);
        let m = merge(
            &[src("pbx", "sip-simple", Some(&busy))],
            &[],
            None,
            &rules,
            NOW,
        );
        assert_eq!(
            m.reasons,
            vec![
                "rich: pbx is the only source with a current state".to_string(),
                "telephony: not configured (the user has no endpoint a connector watches for it)"
                    .to_string()
            ]
        );
        assert_eq!(m.rich.source_plugin.as_deref(), Some("sip-simple"));
        let denied = EndpointView {
            state: Some(EndpointState::AccessDenied),
            state_detail: Some("403 Forbidden".into()),
            ..Default::default()
        };
        let mut down = src("old", "sip-simple", Some(&busy));
        down.connector_ok = false;
        let m = merge(
            &[src("teams", "teams-graph", Some(&denied)), down],
            &[],
            None,
            &rules,
            NOW,
        );
        assert_eq!(m.rich.state, ChannelState::AccessDenied);
        assert_eq!(m.rich.source.as_deref(), Some("teams"));
        assert_eq!(m.rich.source_plugin.as_deref(), Some("teams-graph"));
        assert_eq!(m.rich.source_detail.as_deref(), Some("403 Forbidden"));
        assert_eq!(
            m.reasons[0],
            "rich: no source has a current state; left out: teams (e) its watch is in access \
             denied: 403 Forbidden; old (e) its connector is not running"
        );
    }

    #[test]
    fn error_and_service_states() {
        let rules = Rules::default();
        let st = |s: EndpointState| EndpointView {
            state: Some(s),
            ..Default::default()
        };
        for (e, want) in [
            (EndpointState::AccessDenied, ChannelState::AccessDenied),
            (EndpointState::NotFound, ChannelState::NotFound),
            (EndpointState::Error, ChannelState::Error),
            (EndpointState::Requesting, ChannelState::Requesting),
        ] {
            let v = st(e);
            assert_eq!(
                merge(&[src("a", "x", Some(&v))], &[], None, &rules, NOW)
                    .rich
                    .state,
                want
            );
        }
        assert_eq!(
            merge(&[src("a", "x", None)], &[], None, &rules, NOW)
                .rich
                .state,
            ChannelState::NotRequested
        );
        assert_eq!(
            merge(&[], &[], None, &rules, NOW).rich.state,
            ChannelState::NotConfigured
        );
        let mut down = src("a", "x", None);
        down.connector_ok = false;
        assert_eq!(
            merge(&[down], &[], None, &rules, NOW).rich.state,
            ChannelState::ServerNotConfigured
        );
    }
}
