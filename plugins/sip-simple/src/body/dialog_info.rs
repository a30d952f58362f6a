//! RFC 4235 dialog-info (`application/dialog-info+xml`, BLF) and a tracker
//! that applies full and partial documents into a line state.
//!
//! Line state from the tracked (non-terminated) dialogs, first rule that
//! matches:
//!
//! | dialogs | [`LineState`] |
//! |---|---|
//! | nothing said yet (no document, no empty NOTIFY) | Unknown |
//! | none | Idle |
//! | any `confirmed` not held | InCall |
//! | `confirmed` ones, all held | OnHold |
//! | any `trying`/`proceeding`/`early` with direction `recipient` | Ringing |
//! | any other `trying`/`proceeding`/`early` (initiator or no direction) | Dialing |
//!
//! Held means `confirmed` with a local target parameter `+sip.rendering`
//! equal to `no`, written `pval` (RFC 4235) or `pvalue` (Asterisk).

use presence_connector_sdk::{LineState, VendorValue};

use super::xml::{Element, ns, parse_document};
use super::{BodyError, clip, invalid};

/// Most dialogs a tracker keeps. Partial documents can add dialogs without
/// bound; past this the oldest are dropped and a refresh is requested.
pub const MAX_TRACKED_DIALOGS: usize = 256;

/// Which side of the dialog the watched entity is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// The entity sent the INVITE (outgoing call).
    Initiator,
    /// The entity received the INVITE (incoming call).
    Recipient,
}

/// The RFC 4235 dialog state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DialogState {
    /// INVITE sent or received, no response yet.
    Trying,
    /// 1xx without a tag.
    Proceeding,
    /// 1xx with a tag: ringing.
    Early,
    /// Answered.
    Confirmed,
    /// Over.
    Terminated,
}

impl DialogState {
    fn parse(text: &str) -> Option<Self> {
        Some(match text.trim().to_ascii_lowercase().as_str() {
            "trying" => Self::Trying,
            "proceeding" => Self::Proceeding,
            "early" => Self::Early,
            "confirmed" => Self::Confirmed,
            "terminated" => Self::Terminated,
            _ => return None,
        })
    }

    /// The RFC 4235 token.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Trying => "trying",
            Self::Proceeding => "proceeding",
            Self::Early => "early",
            Self::Confirmed => "confirmed",
            Self::Terminated => "terminated",
        }
    }
}

/// One `<dialog>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dialog {
    /// The dialog `id` attribute (Asterisk uses the extension); falls back
    /// to `call-id` when a sender omits it.
    pub id: String,
    /// The `call-id` attribute.
    pub call_id: Option<String>,
    /// The `direction` attribute, when it is one of the two RFC values.
    pub direction: Option<Direction>,
    /// The dialog state.
    pub state: DialogState,
    /// Confirmed and on hold (see the module documentation).
    pub held: bool,
    /// The remote party's URI (`remote/identity`).
    pub remote_identity: Option<String>,
    /// The remote party's display name (`remote/identity@display`): the
    /// caller ID shown on a ringing BLF key.
    pub remote_display: Option<String>,
}

/// A parsed dialog-info document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DialogInfo {
    /// The `entity` attribute (empty when absent).
    pub entity: String,
    /// The document version; increments by one per NOTIFY in a subscription.
    pub version: u64,
    /// `state="full"` (the complete set) rather than `partial` (changes).
    pub full: bool,
    /// The dialogs in document order.
    pub dialogs: Vec<Dialog>,
}

impl DialogInfo {
    /// Line state of this document alone (meaningful for full documents).
    pub fn line_state(&self) -> LineState {
        line_state_of(self.dialogs.iter())
    }
}

/// Parses an `application/dialog-info+xml` body.
///
/// `version` and `state` are required (the tracker cannot order or merge
/// documents without them); a dialog whose `<state>` is missing or not an
/// RFC 4235 value makes the whole document an error, because dropping it
/// could show a busy line as idle.
pub fn parse_dialog_info(xml: &[u8]) -> Result<DialogInfo, BodyError> {
    let root = parse_document(xml)?;
    if !root.is(ns::DIALOG_INFO, "dialog-info") {
        return Err(BodyError::UnexpectedRoot {
            expected: "{urn:ietf:params:xml:ns:dialog-info}dialog-info",
            found: clip(&root.qualified(), 128),
        });
    }
    let version_text = root.attr("version").ok_or(BodyError::Missing {
        element: "dialog-info",
        item: "version attribute",
    })?;
    let version = version_text
        .trim()
        .parse::<u64>()
        .map_err(|_| invalid("dialog-info version", version_text))?;
    let state = root.attr("state").ok_or(BodyError::Missing {
        element: "dialog-info",
        item: "state attribute",
    })?;
    let full = match state.trim().to_ascii_lowercase().as_str() {
        "full" => true,
        "partial" => false,
        _ => return Err(invalid("dialog-info state", state)),
    };
    let entity = root.attr("entity").unwrap_or("").trim().to_string();
    let dialogs = root
        .children_named(ns::DIALOG_INFO, "dialog")
        .map(parse_dialog)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(DialogInfo {
        entity,
        version,
        full,
        dialogs,
    })
}

fn parse_dialog(el: &Element) -> Result<Dialog, BodyError> {
    let call_id = el
        .attr("call-id")
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty());
    let id = el
        .attr("id")
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| call_id.clone())
        .ok_or(BodyError::Missing {
            element: "dialog",
            item: "id attribute",
        })?;
    let state_el = el
        .child(ns::DIALOG_INFO, "state")
        .ok_or(BodyError::Missing {
            element: "dialog",
            item: "state element",
        })?;
    let state = DialogState::parse(&state_el.text)
        .ok_or_else(|| invalid("dialog state", &state_el.text))?;
    let direction = match el.attr("direction").map(|d| d.trim().to_ascii_lowercase()) {
        Some(d) if d == "initiator" => Some(Direction::Initiator),
        Some(d) if d == "recipient" => Some(Direction::Recipient),
        _ => None,
    };
    let rendering_off = el
        .child(ns::DIALOG_INFO, "local")
        .and_then(|l| l.child(ns::DIALOG_INFO, "target"))
        .is_some_and(|t| {
            t.children_named(ns::DIALOG_INFO, "param").any(|p| {
                p.attr("pname")
                    .is_some_and(|n| n.trim().eq_ignore_ascii_case("+sip.rendering"))
                    && p.attr("pval")
                        .or_else(|| p.attr("pvalue"))
                        .is_some_and(|v| v.trim().eq_ignore_ascii_case("no"))
            })
        });
    let remote = el
        .child(ns::DIALOG_INFO, "remote")
        .and_then(|r| r.child(ns::DIALOG_INFO, "identity"));
    Ok(Dialog {
        id: clip(&id, 256),
        call_id: call_id.map(|c| clip(&c, 256)),
        direction,
        state,
        held: state == DialogState::Confirmed && rendering_off,
        remote_identity: remote
            .map(|i| i.text_trimmed())
            .filter(|s| !s.is_empty())
            .map(|s| clip(s, 256)),
        remote_display: remote
            .and_then(|i| i.attr("display"))
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| clip(s, 256)),
    })
}

fn line_state_of<'a>(dialogs: impl Iterator<Item = &'a Dialog> + Clone) -> LineState {
    let live = || {
        dialogs
            .clone()
            .filter(|d| d.state != DialogState::Terminated)
    };
    if live().next().is_none() {
        return LineState::Idle;
    }
    if live().any(|d| d.state == DialogState::Confirmed && !d.held) {
        return LineState::InCall;
    }
    if live().any(|d| d.state == DialogState::Confirmed) {
        return LineState::OnHold;
    }
    if live().any(|d| d.direction == Some(Direction::Recipient)) {
        return LineState::Ringing;
    }
    LineState::Dialing
}

/// The line state of several trackers of one entity taken together: the
/// instances of a resource in a list (a back-end subscription forked to
/// several phones). Unknown while none of them has said anything.
pub fn line_state_of_all<'a>(trackers: impl IntoIterator<Item = &'a DialogTracker>) -> LineState {
    let known: Vec<&DialogTracker> = trackers.into_iter().filter(|t| t.known).collect();
    if known.is_empty() {
        return LineState::Unknown;
    }
    line_state_of(known.iter().flat_map(|t| t.dialogs.iter()))
}

/// What [`DialogTracker::apply`] did with a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApplyOutcome {
    /// The document changed the tracked state (false when it was older
    /// than, or a duplicate of, what was already applied).
    pub applied: bool,
    /// State may be incomplete (a partial document arrived after a version
    /// gap, before any full document, or the dialog cap was hit): the caller
    /// should refresh the subscription to get a full document.
    pub needs_refresh: bool,
}

/// Applies the dialog-info documents of one subscription in version order.
///
/// A new subscription restarts version numbering (RFC 4235 scopes versions
/// to a subscription), so call [`DialogTracker::reset`] when re-subscribing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DialogTracker {
    version: Option<u64>,
    dialogs: Vec<Dialog>,
    states_seen: Vec<DialogState>,
    incomplete: bool,
    /// The notifier has said something about the line (a document or a
    /// NOTIFY without one): before that the line is unknown, not idle.
    known: bool,
}

impl DialogTracker {
    /// An empty tracker (line unknown, no version seen).
    pub fn new() -> Self {
        Self::default()
    }

    /// The notifier has no dialog state for the entity (a NOTIFY without a
    /// body, or an empty part in a resource list): nothing is published,
    /// so no call is up and the line is idle. Presence servers send this
    /// before the first call and after the dialog publications of the last
    /// one expired (a phone that vanished without publishing the end).
    /// The version is kept: the next document continues the count.
    pub fn clear(&mut self) {
        self.dialogs.clear();
        self.incomplete = false;
        self.known = true;
    }

    /// Forgets everything, e.g. when the subscription is re-established.
    pub fn reset(&mut self) {
        *self = Self::default();
    }

    /// Applies one document.
    ///
    /// - Older than the last applied version: ignored.
    /// - Same version: a full document is re-applied (idempotent, and some
    ///   PBXs repeat a version after a restart); a partial one is a
    ///   duplicate and ignored.
    /// - Full: replaces all dialogs; clears any earlier gap.
    /// - Partial: merges by dialog id; asks for a refresh when the version
    ///   is not exactly the next one or no full document was seen yet.
    ///
    /// Terminated dialogs are removed after applying.
    pub fn apply(&mut self, doc: DialogInfo) -> ApplyOutcome {
        if let Some(last) = self.version
            && (doc.version < last || (doc.version == last && !doc.full))
        {
            return ApplyOutcome {
                applied: false,
                needs_refresh: false,
            };
        }
        let mut needs_refresh = false;
        self.known = true;
        for d in &doc.dialogs {
            if !self.states_seen.contains(&d.state) {
                self.states_seen.push(d.state);
            }
        }
        if doc.full {
            self.dialogs = doc.dialogs;
            self.incomplete = false;
        } else {
            let contiguous = self
                .version
                .is_some_and(|v| v.checked_add(1) == Some(doc.version));
            if !contiguous {
                needs_refresh = true;
                self.incomplete = true;
            }
            for d in doc.dialogs {
                match self.dialogs.iter_mut().find(|t| t.id == d.id) {
                    Some(existing) => *existing = d,
                    None => self.dialogs.push(d),
                }
            }
        }
        self.dialogs.retain(|d| d.state != DialogState::Terminated);
        if self.dialogs.len() > MAX_TRACKED_DIALOGS {
            let excess = self.dialogs.len() - MAX_TRACKED_DIALOGS;
            self.dialogs.drain(..excess);
            needs_refresh = true;
            self.incomplete = true;
        }
        self.version = Some(doc.version);
        ApplyOutcome {
            applied: true,
            needs_refresh,
        }
    }

    /// The line state of the tracked dialogs (see the module table).
    pub fn line_state(&self) -> LineState {
        line_state_of_all([self])
    }

    /// The live (non-terminated) dialogs.
    pub fn dialogs(&self) -> &[Dialog] {
        &self.dialogs
    }

    /// The last applied version.
    pub fn version(&self) -> Option<u64> {
        self.version
    }

    /// True while a gap has not been repaired by a full document.
    pub fn is_incomplete(&self) -> bool {
        self.incomplete
    }

    /// Diagnostics: the last version, every dialog state seen since the
    /// last reset, and each live dialog as `id=state[,held]`.
    pub fn raw(&self) -> Vec<VendorValue> {
        let mut raw = Vec::new();
        if let Some(v) = self.version {
            raw.push(VendorValue {
                name: "dialog-info.version".into(),
                value: v.to_string(),
            });
        }
        if !self.states_seen.is_empty() {
            raw.push(VendorValue {
                name: "dialog-info.states-seen".into(),
                value: self
                    .states_seen
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(","),
            });
        }
        for d in self.dialogs.iter().take(16) {
            raw.push(VendorValue {
                name: "dialog".into(),
                value: format!(
                    "{}={}{}",
                    clip(&d.id, 64),
                    d.state.as_str(),
                    if d.held { ",held" } else { "" }
                ),
            });
        }
        raw
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body::fixtures as fx;

    fn parse(s: &str) -> DialogInfo {
        parse_dialog_info(s.as_bytes()).unwrap()
    }

    #[test]
    fn facts_examples() {
        let idle = parse(fx::DIALOG_IDLE);
        assert_eq!(idle.entity, "sip:2001@192.168.0.27");
        assert_eq!(idle.version, 0);
        assert!(idle.full);
        assert_eq!(idle.dialogs[0].state, DialogState::Terminated);
        assert_eq!(idle.line_state(), LineState::Idle);

        let ringing = parse(fx::DIALOG_RINGING);
        assert_eq!(ringing.version, 5);
        let d = &ringing.dialogs[0];
        assert_eq!(d.id, "2001");
        assert_eq!(d.direction, Some(Direction::Recipient));
        assert_eq!(d.state, DialogState::Early);
        assert_eq!(
            d.remote_identity.as_deref(),
            Some("sip:3000@pbx.example.com")
        );
        assert_eq!(d.remote_display.as_deref(), Some("Alice"));
        assert_eq!(ringing.line_state(), LineState::Ringing);

        let in_call = parse(fx::DIALOG_IN_CALL);
        assert_eq!(in_call.line_state(), LineState::InCall);
        assert!(!in_call.dialogs[0].held);
    }

    #[test]
    fn hold_via_pvalue_and_pval() {
        let hold = parse(fx::DIALOG_HOLD_PVALUE);
        assert!(hold.dialogs[0].held);
        assert_eq!(hold.line_state(), LineState::OnHold);

        let partial = parse(fx::DIALOG_PARTIAL_PVAL);
        assert!(!partial.full);
        assert_eq!(partial.version, 8);
        let d1 = &partial.dialogs[0];
        assert!(d1.held);
        assert_eq!(d1.call_id.as_deref(), Some("a84b4c76e66710@pc33"));
        assert_eq!(d1.direction, Some(Direction::Initiator));
        assert_eq!(d1.remote_display.as_deref(), Some("Bob & Co"));
        assert_eq!(partial.dialogs[1].state, DialogState::Proceeding);
        // Held call plus an outgoing attempt: the held call decides.
        assert_eq!(partial.line_state(), LineState::OnHold);
    }

    #[test]
    fn rendering_no_on_early_dialog_is_not_hold() {
        let doc = fx::DIALOG_HOLD_PVALUE.replace("confirmed", "early");
        let di = parse(&doc);
        assert!(!di.dialogs[0].held);
        assert_eq!(di.line_state(), LineState::Ringing);
    }

    #[test]
    fn dialing_and_direction_rules() {
        let doc = |dir: &str, state: &str| {
            format!(
                r#"<dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" version="1" state="full" entity="sip:a@b"><dialog id="1"{dir}><state>{state}</state></dialog></dialog-info>"#
            )
        };
        for (dir, state, want) in [
            (r#" direction="initiator""#, "trying", LineState::Dialing),
            (r#" direction="initiator""#, "early", LineState::Dialing),
            ("", "proceeding", LineState::Dialing),
            (r#" direction="bogus""#, "early", LineState::Dialing),
            (r#" direction="recipient""#, "trying", LineState::Ringing),
            (r#" direction="recipient""#, "confirmed", LineState::InCall),
            ("", "terminated", LineState::Idle),
        ] {
            assert_eq!(parse(&doc(dir, state)).line_state(), want, "{dir} {state}");
        }
        // In-call beats ringing (call waiting), ringing beats dialing.
        let two = |a: &str, b: &str| {
            format!(
                r#"<dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" version="1" state="full" entity="x"><dialog id="1" direction="recipient"><state>{a}</state></dialog><dialog id="2" direction="initiator"><state>{b}</state></dialog></dialog-info>"#
            )
        };
        assert_eq!(
            parse(&two("early", "confirmed")).line_state(),
            LineState::InCall
        );
        assert_eq!(
            parse(&two("early", "trying")).line_state(),
            LineState::Ringing
        );
        let empty = r#"<dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" version="3" state="full" entity="x"/>"#;
        assert_eq!(parse(empty).line_state(), LineState::Idle);
    }

    fn partial(version: u64, id: &str, state: &str) -> DialogInfo {
        parse(&format!(
            r#"<dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" version="{version}" state="partial" entity="sip:2001@pbx"><dialog id="{id}" direction="recipient"><state>{state}</state></dialog></dialog-info>"#
        ))
    }

    fn full(version: u64, body: &str) -> DialogInfo {
        parse(&format!(
            r#"<dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" version="{version}" state="full" entity="sip:2001@pbx">{body}</dialog-info>"#
        ))
    }

    #[test]
    fn tracker_partial_sequence_with_gap() {
        let mut t = DialogTracker::new();
        // Nothing said yet: not idle, unknown.
        assert_eq!(t.line_state(), LineState::Unknown);
        let ok = ApplyOutcome {
            applied: true,
            needs_refresh: false,
        };
        assert_eq!(t.apply(full(10, "")), ok);
        assert_eq!(t.apply(partial(11, "a", "early")), ok);
        assert_eq!(t.line_state(), LineState::Ringing);
        assert_eq!(t.apply(partial(12, "a", "confirmed")), ok);
        assert_eq!(t.line_state(), LineState::InCall);
        assert_eq!(t.apply(partial(13, "b", "early")), ok);
        assert_eq!(t.dialogs().len(), 2);
        assert_eq!(t.line_state(), LineState::InCall);
        // Stale and duplicate documents are ignored.
        let ignored = ApplyOutcome {
            applied: false,
            needs_refresh: false,
        };
        assert_eq!(t.apply(partial(12, "a", "terminated")), ignored);
        assert_eq!(t.apply(partial(13, "a", "terminated")), ignored);
        assert_eq!(t.line_state(), LineState::InCall);
        // Gap: 14 is lost; 15 is merged but a refresh is requested.
        let out = t.apply(partial(15, "a", "terminated"));
        assert_eq!(
            out,
            ApplyOutcome {
                applied: true,
                needs_refresh: true
            }
        );
        assert!(t.is_incomplete());
        assert_eq!(t.line_state(), LineState::Ringing);
        assert_eq!(t.version(), Some(15));
        // The refreshed full document repairs the state.
        assert_eq!(t.apply(full(16, "")), ok);
        assert!(!t.is_incomplete());
        assert_eq!(t.line_state(), LineState::Idle);
        let raw = t.raw();
        assert_eq!(raw[0].value, "16");
        assert_eq!(raw[1].value, "early,confirmed,terminated");
    }

    #[test]
    fn tracker_edge_cases() {
        let mut t = DialogTracker::new();
        // A partial document before any full one is merged, but incomplete.
        assert!(t.apply(partial(3, "a", "early")).needs_refresh);
        assert_eq!(t.line_state(), LineState::Ringing);
        // Full replaces, terminated dialogs are dropped.
        let out = t.apply(full(
            4,
            r#"<dialog id="x"><state>terminated</state></dialog><dialog id="y"><state>confirmed</state></dialog>"#,
        ));
        assert!(out.applied && !out.needs_refresh);
        assert_eq!(t.dialogs().len(), 1);
        assert_eq!(t.dialogs()[0].id, "y");
        // Same-version full is re-applied (Asterisk-style restarts).
        assert!(t.apply(full(4, "")).applied);
        assert_eq!(t.line_state(), LineState::Idle);
        // Older full is ignored.
        assert!(
            !t.apply(full(
                2,
                r#"<dialog id="z"><state>confirmed</state></dialog>"#
            ))
            .applied
        );
        // u64::MAX then nothing newer can follow; no overflow.
        assert!(t.apply(full(u64::MAX, "")).applied);
        assert!(!t.apply(partial(u64::MAX, "a", "early")).applied);
        t.reset();
        assert_eq!(t.version(), None);
        // Cap on tracked dialogs.
        let mut t = DialogTracker::new();
        t.apply(full(0, ""));
        let mut refresh = false;
        for i in 0..(MAX_TRACKED_DIALOGS as u64 + 5) {
            refresh |= t
                .apply(partial(i + 1, &format!("d{i}"), "early"))
                .needs_refresh;
        }
        assert!(refresh);
        assert_eq!(t.dialogs().len(), MAX_TRACKED_DIALOGS);
    }

    #[test]
    fn no_dialog_state_at_the_server_is_an_idle_line() {
        // Before anything: unknown; a NOTIFY without a body: idle.
        let mut t = DialogTracker::new();
        t.clear();
        assert_eq!(t.line_state(), LineState::Idle);
        // A call, then its publications lapse: the server's empty NOTIFY
        // ends it (the version is kept, the next document continues).
        t.apply(full(
            4,
            r#"<dialog id="a"><state>confirmed</state></dialog>"#,
        ));
        assert_eq!(t.line_state(), LineState::InCall);
        t.clear();
        assert_eq!(t.line_state(), LineState::Idle);
        assert_eq!(t.version(), Some(4));
        assert!(!t.is_incomplete());
        let next = t.apply(partial(5, "b", "early"));
        assert!(next.applied && !next.needs_refresh);
        assert_eq!(t.line_state(), LineState::Ringing);
        // An incomplete tracker is complete again after an empty NOTIFY.
        t.apply(partial(9, "c", "early"));
        assert!(t.is_incomplete());
        t.clear();
        assert!(!t.is_incomplete());
        // reset forgets that anything was said.
        t.reset();
        assert_eq!(t.line_state(), LineState::Unknown);
    }

    #[test]
    fn instances_of_one_resource_combine() {
        let (mut a, mut b, silent) = (
            DialogTracker::new(),
            DialogTracker::new(),
            DialogTracker::new(),
        );
        assert_eq!(line_state_of_all([&a, &b]), LineState::Unknown);
        a.clear();
        assert_eq!(line_state_of_all([&a, &silent]), LineState::Idle);
        b.apply(full(
            1,
            r#"<dialog id="x" direction="recipient"><state>early</state></dialog>"#,
        ));
        assert_eq!(line_state_of_all([&a, &b, &silent]), LineState::Ringing);
        a.apply(full(
            2,
            r#"<dialog id="y"><state>confirmed</state></dialog>"#,
        ));
        assert_eq!(line_state_of_all([&a, &b]), LineState::InCall);
        assert_eq!(line_state_of_all([]), LineState::Unknown);
    }

    #[test]
    fn malformed_inputs() {
        let ns = r#"xmlns="urn:ietf:params:xml:ns:dialog-info""#;
        for bad in [
            String::new(),
            "<dialog-info/>".to_string(),
            format!(r#"<dialog-info {ns} state="full" entity="x"/>"#),
            format!(r#"<dialog-info {ns} version="-1" state="full" entity="x"/>"#),
            format!(r#"<dialog-info {ns} version="1" entity="x"/>"#),
            format!(r#"<dialog-info {ns} version="1" state="fool" entity="x"/>"#),
            format!(
                r#"<dialog-info {ns} version="1" state="full"><dialog><state>early</state></dialog></dialog-info>"#
            ),
            format!(r#"<dialog-info {ns} version="1" state="full"><dialog id="1"/></dialog-info>"#),
            format!(
                r#"<dialog-info {ns} version="1" state="full"><dialog id="1"><state>ringing</state></dialog></dialog-info>"#
            ),
            format!(
                r#"<dialog-info {ns} version="1" state="full"><dialog id="1"><state>early</state>"#
            ),
            r#"<presence xmlns="urn:ietf:params:xml:ns:pidf"/>"#.to_string(),
        ] {
            assert!(parse_dialog_info(bad.as_bytes()).is_err(), "{bad}");
        }
        let full = fx::DIALOG_RINGING.as_bytes();
        for cut in 1..full.len() - 1 {
            assert!(parse_dialog_info(&full[..cut]).is_err(), "cut at {cut}");
        }
    }
}
