//! The merge rules: from every source's observation of one user to the
//! presence consoles show, with the reason each source won or lost.
//!
//! Pure and deterministic: the caller passes the time.

use serde::{Deserialize, Serialize};

use std::collections::BTreeMap;

use super::model::*;

/// Operator-set rules, applied at once when changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Hash)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TelephonyOut {
    pub state: ChannelState,
    pub line: Option<LineState>,
    /// Forward target as shown (masked per the rules).
    pub forward_to: Option<String>,
    pub source: Option<String>,
}

/// Merged rich presence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RichOut {
    pub state: ChannelState,
    pub activity: Option<Activity>,
    pub note: Option<String>,
    pub source: Option<String>,
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

/// When no source has presence: what consoles should see instead.
fn service_state(sources: &[&SourceView], rules: &Rules, now_ms: u64) -> ChannelState {
    if sources.is_empty() {
        return ChannelState::NotConfigured;
    }
    if sources.iter().all(|s| !s.connector_ok) {
        return ChannelState::ServerNotConfigured;
    }
    let states: Vec<EndpointState> = sources
        .iter()
        .filter(|s| s.connector_ok)
        .filter_map(|s| s.observed.and_then(|o| o.state))
        .collect();
    for (e, c) in [
        (EndpointState::AccessDenied, ChannelState::AccessDenied),
        (EndpointState::NotFound, ChannelState::NotFound),
        (EndpointState::Error, ChannelState::Error),
        (EndpointState::Requesting, ChannelState::Requesting),
    ] {
        if states.contains(&e) {
            return c;
        }
    }
    let seen = sources
        .iter()
        .any(|s| s.observed.is_some_and(|o| o.received_at_ms.is_some()));
    if seen {
        // Had presence once, but it aged out.
        let _ = (rules, now_ms);
        ChannelState::Unknown
    } else if states.is_empty() {
        ChannelState::NotRequested
    } else {
        ChannelState::Requesting
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
                reasons.push(format!(
                    "rich: {} wins over {} ({why})",
                    w.instance,
                    others.join(", ")
                ));
            }
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
            }
        }
        None => {
            let srcs: Vec<&SourceView> = rich_sources.iter().collect();
            let state = service_state(&srcs, rules, now_ms);
            if state == ChannelState::Unknown {
                reasons.push(
                    "rich: no source vouches for its last state any more (lapsed or past stale_after_seconds); unknown"
                        .into(),
                );
            }
            RichOut {
                state,
                activity: None,
                note: None,
                source: None,
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
            if live.len() > 1 {
                reasons.push(format!(
                    "telephony: {} wins ({})",
                    w.instance,
                    if t.source == TelephonySource::PbxLine {
                        "PBX line source over SIP-derived"
                    } else {
                        "technology priority"
                    }
                ));
            }
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
            }
        }
        None => {
            let srcs: Vec<&SourceView> = telephony_sources.iter().collect();
            TelephonyOut {
                state: service_state(&srcs, rules, now_ms),
                line: None,
                forward_to: None,
                source: None,
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
