//! PIDF (RFC 3863) with the RFC 4479 data model and RPID (RFC 4480)
//! activities, read into the hub's rich presence; and the PIDF we PUBLISH.
//!
//! # How a document becomes a [`RichPresence`]
//!
//! Every signal in the document is collected (activities and their vendor
//! forms are read by [`super::rpid`], which has the token table), then
//! combined:
//!
//! 1. Asterisk `digium_presence type="unavailable"` gives **Offline**.
//! 2. `<basic>` of every tuple: any `open` makes the presentity open. When
//!    at least one tuple has a `<basic>` and all of them say `closed`, the
//!    result is **Offline** unless the document says the line is engaged:
//!    `busy` or do-not-disturb in any form, or a call (on the phone, on
//!    hold). PBXs mark a line `closed` while it is in use (Asterisk's BUSY
//!    and ON HOLD states, with `ep:busy` and the note "On the phone"),
//!    which means "no further call now", not "gone". Anything else under a
//!    closed tuple (vacation, away, a meeting the calendar shows) stays
//!    Offline, with the activity reported.
//! 3. Otherwise an *explicit* availability wins: `busy`, `away`, DND in
//!    any of its forms, or an Asterisk `digium_presence` of
//!    `dnd`/`away`/`xa`; the most severe one counts (DoNotDisturb > Busy >
//!    Away).
//! 4. Otherwise the availability *implied* by activities (e.g.
//!    on-the-phone implies Busy, vacation implies Away), most severe first.
//! 5. Otherwise Available if any tuple is open, or if the document carries
//!    any other recognised activity (a client publishing what its user
//!    does is online); else Unknown.
//!
//! The activity is the one of the highest-ranked signal that has one, so
//! `busy` + `meeting` gives Busy + InAMeeting, and `rpid:user-input` idle
//! gives Inactive only when nothing stronger exists. The note (presence,
//! then person, tuple, activities, digium) is kept as sent, and when it is
//! one of Asterisk's call-state phrases it is a signal too, ranked below
//! every activity element.

use presence_connector_sdk::{Activity, Availability, PresenceIntent, RichPresence, VendorValue};

use super::rpid::{
    Signal, classify_digium, classify_note, classify_other, classify_token, classify_user_input,
    is_activities_ns, text_tokens,
};
use super::xml::{Element, escape, ns, parse_document};
use super::{BodyError, clip};
use presence_connector_sdk::time::{MissingZone, format_datetime, parse_datetime};

/// Longest note kept, in characters.
pub const MAX_NOTE_CHARS: usize = 1024;

/// Longest tuple id kept, in characters; the hub's own are far shorter.
const MAX_TUPLE_ID_CHARS: usize = 64;

/// Most diagnostic values kept per document.
const MAX_RAW: usize = 32;

/// Legacy person namespace (pre-RFC 4479 eyeBeam / chan_sip documents).
const LEGACY_PERSON_NS: &str = "urn:ietf:params:xml:ns:pidf:person";

/// A PIDF document read into the hub's model.
#[derive(Debug, Clone, PartialEq)]
pub struct Pidf {
    /// The `entity` attribute of `<presence>` (empty when absent: the
    /// subscriber knows whom it subscribed to).
    pub entity: String,
    /// The `id` of every `<tuple>`, in document order: a composed document
    /// shows whose publications it holds (the hub finds its own by it).
    pub tuple_ids: Vec<String>,
    /// Availability, activity and note (see the module documentation).
    pub rich: RichPresence,
    /// The document says a call exists (on the phone, on hold, Asterisk's
    /// note "On the phone"): telephony presence can be derived from it when
    /// no dialog subscription exists.
    pub on_the_phone: bool,
    /// Newest tuple or person `<timestamp>`, in Unix milliseconds.
    pub observed_at_ms: Option<u64>,
    /// Vendor values for diagnostics (`basic`, `activities`,
    /// `digium_presence`, `user-input`, `note`).
    pub raw: Vec<VendorValue>,
}

fn severity(a: Availability) -> u8 {
    match a {
        Availability::DoNotDisturb => 4,
        Availability::Busy => 3,
        Availability::Away => 2,
        Availability::Available => 1,
        Availability::Offline | Availability::Unknown => 0,
    }
}

/// What the document says, gathered before combining.
#[derive(Default)]
struct Collected {
    signals: Vec<Signal>,
    activity_tokens: Vec<String>,
    digium_offline: bool,
    user_input: Option<String>,
    digium: Vec<(String, Option<String>)>,
    activities_note: Option<String>,
    digium_note: Option<String>,
}

impl Collected {
    /// Activity tokens read from text or element names: each kept raw,
    /// the known ones as signals.
    fn add_tokens(&mut self, tokens: impl IntoIterator<Item = String>) {
        for token in tokens {
            self.signals.extend(classify_token(&token));
            self.activity_tokens.push(token);
        }
    }
}

fn collect_signals(root: &Element) -> Collected {
    let mut c = Collected::default();
    root.walk(&mut |el| {
        if el.name == "activities" && is_activities_ns(el.ns.as_deref()) {
            // Activities written as text: Asterisk's eyeBeam supplement
            // sends `<ep:activities>ep:busy</ep:activities>`.
            c.add_tokens(text_tokens(&el.text));
            // Children in any namespace: vendors put their own tokens in
            // their own namespace (Cisco `<ce:dnd/>`, `<ce:alerting/>`).
            for child in &el.children {
                match child.name.as_str() {
                    "note" => {
                        if c.activities_note.is_none() {
                            c.activities_note = non_empty(&child.text);
                        }
                    }
                    "other" => {
                        c.activity_tokens
                            .push(format!("other={}", clip(child.text_trimmed(), 64)));
                        c.signals.extend(classify_other(&child.text));
                    }
                    // Draft-era RPID: <activity>token</activity>.
                    "activity" => c.add_tokens(text_tokens(&child.text)),
                    name => {
                        // Unknown ones with a value keep it for operators
                        // (Cisco `<phone-status>unavailable</phone-status>`).
                        let token = clip(&name.to_ascii_lowercase(), 64);
                        c.signals.extend(classify_token(&token));
                        c.activity_tokens.push(match child.text_trimmed() {
                            "" => clip(name, 64),
                            text => format!("{}={}", clip(name, 64), clip(text, 64)),
                        });
                    }
                }
            }
        } else if el.name == "user-input" && is_activities_ns(el.ns.as_deref()) {
            let value = el.text_trimmed().to_ascii_lowercase();
            c.signals.extend(classify_user_input(&value));
            c.user_input.get_or_insert(clip(&value, 32));
        } else if el.name == "digium_presence" {
            let kind = el.attr("type").unwrap_or("").to_string();
            match classify_digium(&kind) {
                Ok(sig) => c.signals.extend(sig),
                Err(()) => c.digium_offline = true,
            }
            if c.digium_note.is_none() {
                c.digium_note = non_empty(&el.text);
            }
            c.digium
                .push((clip(&kind, 32), el.attr("subtype").map(|s| clip(s, 64))));
        }
    });
    c
}

fn non_empty(text: &str) -> Option<String> {
    let t = text.trim();
    (!t.is_empty()).then(|| clip(t, MAX_NOTE_CHARS))
}

fn is_person(el: &Element) -> bool {
    el.name == "person"
        && matches!(
            el.ns.as_deref(),
            Some(ns::DATA_MODEL) | Some(LEGACY_PERSON_NS) | Some(ns::CISCO_RPID)
        )
}

/// Parses an `application/pidf+xml` body.
///
/// Errors when the body is not well-formed XML, exceeds the limits, or its
/// root is not `<presence>` in the PIDF namespace. Unknown content is
/// ignored.
pub fn parse_pidf(xml: &[u8]) -> Result<Pidf, BodyError> {
    let root = parse_document(xml)?;
    if !root.is(ns::PIDF, "presence") {
        return Err(BodyError::UnexpectedRoot {
            expected: "{urn:ietf:params:xml:ns:pidf}presence",
            found: clip(&root.qualified(), 128),
        });
    }
    let entity = root.attr("entity").unwrap_or("").trim().to_string();

    let tuples: Vec<&Element> = root.children_named(ns::PIDF, "tuple").collect();
    let persons: Vec<&Element> = root.children.iter().filter(|e| is_person(e)).collect();

    let mut raw: Vec<VendorValue> = Vec::new();
    let mut any_open = false;
    let mut any_basic = false;
    let mut observed_at_ms: Option<u64> = None;
    for tuple in &tuples {
        let basic = tuple
            .child_any_ns("status")
            .and_then(|s| s.child_any_ns("basic"))
            .map(|b| b.text_trimmed().to_ascii_lowercase());
        match basic.as_deref() {
            Some("open") => {
                any_basic = true;
                any_open = true;
            }
            Some("closed") => any_basic = true,
            // Anything else is not a PIDF basic value; ignore it.
            _ => {}
        }
        if let Some(b) = basic {
            push_raw(&mut raw, "basic", &b);
        }
    }
    for el in tuples.iter().chain(persons.iter()) {
        if let Some(ts) = el
            .child_any_ns("timestamp")
            .and_then(|t| parse_datetime(&t.text, MissingZone::Utc))
        {
            observed_at_ms = Some(observed_at_ms.map_or(ts, |cur| cur.max(ts)));
        }
    }

    let mut collected = collect_signals(&root);
    let note = root
        .children_named(ns::PIDF, "note")
        .find_map(|n| non_empty(&n.text))
        .or_else(|| {
            persons.iter().find_map(|p| {
                p.children
                    .iter()
                    .filter(|c| c.name == "note")
                    .find_map(|n| non_empty(&n.text))
            })
        })
        .or_else(|| {
            tuples.iter().find_map(|t| {
                t.children
                    .iter()
                    .filter(|c| c.name == "note")
                    .find_map(|n| non_empty(&n.text))
            })
        })
        .or(collected.activities_note.take())
        .or(collected.digium_note.take());
    collected
        .signals
        .extend(note.as_deref().and_then(classify_note));
    let on_the_phone = collected.signals.iter().any(|s| s.on_the_phone);

    let explicit = collected
        .signals
        .iter()
        .filter_map(|s| s.explicit)
        .max_by_key(|a| severity(*a));
    let implied = collected
        .signals
        .iter()
        .filter_map(|s| s.implied)
        .max_by_key(|a| severity(*a));
    // Highest rank wins; among equals the first in document order.
    let activity = collected
        .signals
        .iter()
        .filter(|s| s.activity.is_some())
        .fold(None::<&Signal>, |best, s| match best {
            Some(b) if b.rank >= s.rank => Some(b),
            _ => Some(s),
        })
        .and_then(|s| s.activity.clone());
    // Said busy or do-not-disturb, or in a call (see the module doc).
    let engaged =
        on_the_phone || explicit.is_some_and(|a| severity(a) >= severity(Availability::Busy));

    let availability = if collected.digium_offline || (any_basic && !any_open && !engaged) {
        Availability::Offline
    } else if let Some(a) = explicit {
        a
    } else if let Some(a) = implied {
        a
    } else if any_open || !collected.signals.is_empty() {
        Availability::Available
    } else {
        Availability::Unknown
    };

    if !collected.activity_tokens.is_empty() {
        push_raw(&mut raw, "activities", &collected.activity_tokens.join(","));
    }
    if let Some(ui) = &collected.user_input {
        push_raw(&mut raw, "user-input", ui);
    }
    for (kind, subtype) in &collected.digium {
        push_raw(&mut raw, "digium_presence", kind);
        if let Some(st) = subtype {
            push_raw(&mut raw, "digium_presence.subtype", st);
        }
    }
    if let Some(n) = &note {
        push_raw(&mut raw, "note", n);
    }

    let tuple_ids = tuples
        .iter()
        .filter_map(|t| t.attr("id"))
        .map(|id| clip(id, MAX_TUPLE_ID_CHARS))
        .collect();

    Ok(Pidf {
        entity,
        tuple_ids,
        rich: RichPresence {
            availability,
            activity,
            note,
        },
        on_the_phone,
        observed_at_ms,
        raw,
    })
}

/// Adds a diagnostic value unless it is a duplicate or the list is full.
fn push_raw(raw: &mut Vec<VendorValue>, name: &str, value: &str) {
    if raw.len() >= MAX_RAW || raw.iter().any(|v| v.name == name && v.value == value) {
        return;
    }
    raw.push(VendorValue {
        name: name.to_string(),
        value: clip(value, MAX_NOTE_CHARS),
    });
}

/// Makes a string usable as an xs:ID (an NCName): tuple and person ids must
/// be one, and the caller's id may be an extension number or a URI.
fn xs_id(candidate: &str, fallback: &str) -> String {
    let mut id: String = candidate
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if id.is_empty() {
        id = fallback.to_string();
    }
    if !id.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
        id.insert(0, 't');
    }
    id
}

/// Builds the PIDF body of a PUBLISH for `intent`.
///
/// - `<basic>` is `open`, `closed` for Offline, and left out for Unknown
///   (RFC 3863 makes it optional, and that reads back as Unknown).
/// - Availability and activity go into `dm:person/rpid:activities`:
///   DoNotDisturb → `busy` + `other`=do-not-disturb (RFC 4480 has no DND
///   token; watchers that only know `busy` still see busy), Busy → `busy`,
///   Away → `away`; InACall → `on-the-phone`, InAConference →
///   `on-the-phone` + `other`=in-a-conference, InAMeeting → `meeting`,
///   Presenting → `presentation`, OutOfOffice → `vacation`, BeRightBack /
///   OffWork → `other`=be-right-back / off-work, Inactive →
///   `rpid:user-input` idle, Other(s) → `other`=s.
/// - The note, XML-escaped, goes into `dm:note`; the tuple carries `now_ms`
///   as its `<timestamp>`.
///
/// Reading the result back with [`parse_pidf`] gives the same availability,
/// activity and note, except where the availability is weaker than what the
/// activity implies and no token expresses it (Available or Unknown with a
/// busy-type activity reads back as Busy, Offline with a call too: a closed
/// tuple with a call is how PBXs say busy).
pub fn build_pidf(entity: &str, tuple_id: &str, intent: &PresenceIntent, now_ms: u64) -> String {
    let tuple_id = xs_id(tuple_id, "t1");
    let person_id = xs_id(&format!("p-{tuple_id}"), "p1");

    let mut tokens: Vec<String> = Vec::new();
    let mut push = |t: String| {
        if !tokens.contains(&t) {
            tokens.push(t);
        }
    };
    let other = |s: &str| format!("<rpid:other>{}</rpid:other>", escape(s));
    match intent.availability {
        Availability::DoNotDisturb => {
            push("<rpid:busy/>".into());
            push(other("do-not-disturb"));
        }
        Availability::Busy => push("<rpid:busy/>".into()),
        Availability::Away => push("<rpid:away/>".into()),
        Availability::Available | Availability::Offline | Availability::Unknown => {}
    }
    let mut idle = false;
    match &intent.activity {
        Some(Activity::InACall) => push("<rpid:on-the-phone/>".into()),
        Some(Activity::InAConference) => {
            push("<rpid:on-the-phone/>".into());
            push(other("in-a-conference"));
        }
        Some(Activity::InAMeeting) => push("<rpid:meeting/>".into()),
        Some(Activity::Presenting) => push("<rpid:presentation/>".into()),
        Some(Activity::OutOfOffice) => push("<rpid:vacation/>".into()),
        Some(Activity::BeRightBack) => push(other("be-right-back")),
        Some(Activity::OffWork) => push(other("off-work")),
        Some(Activity::Inactive) => idle = true,
        Some(Activity::Other(s)) => {
            let s = s.trim();
            if !s.is_empty() {
                push(other(s));
            }
        }
        None => {}
    }

    let mut out = String::with_capacity(768);
    out.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    out.push_str(
        "<presence xmlns=\"urn:ietf:params:xml:ns:pidf\" \
         xmlns:dm=\"urn:ietf:params:xml:ns:pidf:data-model\" \
         xmlns:rpid=\"urn:ietf:params:xml:ns:pidf:rpid\" entity=\"",
    );
    out.push_str(&escape(entity));
    out.push_str("\">\n");
    out.push_str(&format!(" <tuple id=\"{tuple_id}\">\n  <status>"));
    match intent.availability {
        Availability::Offline => out.push_str("<basic>closed</basic>"),
        Availability::Unknown => {}
        _ => out.push_str("<basic>open</basic>"),
    }
    out.push_str("</status>\n");
    out.push_str(&format!(
        "  <timestamp>{}</timestamp>\n </tuple>\n",
        format_datetime(now_ms)
    ));
    out.push_str(&format!(" <dm:person id=\"{person_id}\">\n"));
    if !tokens.is_empty() {
        out.push_str("  <rpid:activities>");
        for t in &tokens {
            out.push_str(t);
        }
        out.push_str("</rpid:activities>\n");
    }
    if idle {
        out.push_str("  <rpid:user-input>idle</rpid:user-input>\n");
    }
    if let Some(note) = intent
        .note
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty())
    {
        out.push_str(&format!(
            "  <dm:note>{}</dm:note>\n",
            escape(&clip(note, MAX_NOTE_CHARS))
        ));
    }
    out.push_str(" </dm:person>\n</presence>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body::fixtures as fx;

    fn rich(a: Availability, act: Option<Activity>, note: Option<&str>) -> RichPresence {
        RichPresence {
            availability: a,
            activity: act,
            note: note.map(str::to_string),
        }
    }

    fn raw_value<'a>(p: &'a Pidf, name: &str) -> Option<&'a str> {
        p.raw
            .iter()
            .find(|v| v.name == name)
            .map(|v| v.value.as_str())
    }

    #[test]
    fn asterisk_eyebeam_on_the_phone() {
        let p = parse_pidf(fx::ASTERISK_EYEBEAM_PIDF.as_bytes()).unwrap();
        assert_eq!(p.entity, "sip:2001@pbx.example.com");
        assert_eq!(
            p.rich,
            rich(
                Availability::Busy,
                Some(Activity::InACall),
                Some("On the phone")
            )
        );
        assert!(p.on_the_phone);
        assert_eq!(p.observed_at_ms, None);
        assert_eq!(raw_value(&p, "basic"), Some("open"));
        assert_eq!(raw_value(&p, "activities"), Some("on-the-phone"));
        assert_eq!(raw_value(&p, "note"), Some("On the phone"));
    }

    #[test]
    fn asterisk_digium_dnd() {
        let p = parse_pidf(fx::ASTERISK_DIGIUM_DND_PIDF.as_bytes()).unwrap();
        assert_eq!(
            p.rich,
            rich(Availability::DoNotDisturb, None, Some("Ready"))
        );
        assert!(!p.on_the_phone);
        assert_eq!(raw_value(&p, "digium_presence"), Some("dnd"));
        assert_eq!(p.tuple_ids, ["2001", "digium-presence"]);
        assert_eq!(raw_value(&p, "digium_presence.subtype"), Some("meeting"));
    }

    #[test]
    fn digium_types() {
        for (kind, avail, act) in [
            ("dnd", Availability::DoNotDisturb, None),
            ("away", Availability::Away, None),
            ("xa", Availability::Away, Some(Activity::OutOfOffice)),
            ("chat", Availability::Available, None),
            ("unavailable", Availability::Offline, None),
            ("available", Availability::Available, None),
            ("not_set", Availability::Available, None),
        ] {
            let doc = format!(
                r#"<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="sip:a@b"><tuple id="1"><status><basic>open</basic></status></tuple><tuple id="digium-presence"><status><digium_presence type="{kind}"/></status></tuple></presence>"#
            );
            let p = parse_pidf(doc.as_bytes()).unwrap();
            assert_eq!(p.rich.availability, avail, "{kind}");
            assert_eq!(p.rich.activity, act, "{kind}");
        }
        // Digium type alone (no basic anywhere) still decides.
        let doc = r#"<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="sip:a@b"><tuple id="digium-presence"><status><digium_presence type="away">Gone fishing</digium_presence></status></tuple></presence>"#;
        let p = parse_pidf(doc.as_bytes()).unwrap();
        assert_eq!(p.rich, rich(Availability::Away, None, Some("Gone fishing")));
    }

    #[test]
    fn asterisk_unavailable_and_closed_only() {
        let p = parse_pidf(fx::ASTERISK_UNAVAILABLE_PIDF.as_bytes()).unwrap();
        assert_eq!(
            p.rich,
            rich(Availability::Offline, None, Some("Unavailable"))
        );
        let p = parse_pidf(fx::CLOSED_ONLY_PIDF.as_bytes()).unwrap();
        assert_eq!(p.rich, rich(Availability::Offline, None, None));
        assert_eq!(p.entity, "sip:dave@example.com");
        assert_eq!(raw_value(&p, "basic"), Some("closed"));
    }

    #[test]
    fn kamailio_merged_tuples() {
        let p = parse_pidf(fx::KAMAILIO_MERGED_PIDF.as_bytes()).unwrap();
        // One tuple open → open; person says on-the-phone.
        assert_eq!(
            p.rich,
            rich(
                Availability::Busy,
                Some(Activity::InACall),
                Some("On a call with a customer")
            )
        );
        assert!(p.on_the_phone);
        // Newest of 09:00Z, 10:15:30.5Z (11:15:30.5+01:00) and 10:15:29Z.
        assert_eq!(p.observed_at_ms, Some(1_767_262_530_500));
        let basics: Vec<_> = p.raw.iter().filter(|v| v.name == "basic").collect();
        assert_eq!(basics.len(), 2);
    }

    #[test]
    fn kamailio_linphone_away() {
        let p = parse_pidf(fx::KAMAILIO_LINPHONE_AWAY_PIDF.as_bytes()).unwrap();
        assert_eq!(
            p.rich,
            rich(Availability::Away, None, Some("Back in 10 & then lunch"))
        );
        assert_eq!(p.observed_at_ms, Some(1_773_131_400_000));
    }

    #[test]
    fn pua_json_dnd_other() {
        let p = parse_pidf(fx::KAMAILIO_PUA_JSON_DND_PIDF.as_bytes()).unwrap();
        assert_eq!(
            p.rich,
            rich(Availability::DoNotDisturb, None, Some("Focus time"))
        );
        assert_eq!(
            raw_value(&p, "activities"),
            Some("busy,other=Do Not Disturb")
        );
    }

    #[test]
    fn unknown_elements_are_ignored() {
        let p = parse_pidf(fx::UNKNOWN_ELEMENTS_PIDF.as_bytes()).unwrap();
        assert_eq!(p.entity, "sip:erin@example.com");
        // Meeting outranks user-input idle; tuple note comes from CDATA.
        assert_eq!(
            p.rich,
            rich(
                Availability::Busy,
                Some(Activity::InAMeeting),
                Some("Working from <home>")
            )
        );
        assert_eq!(p.observed_at_ms, Some(1_769_997_722_002));
        assert_eq!(raw_value(&p, "user-input"), Some("idle"));
        // Unknown activity elements, in any namespace, are kept raw.
        assert_eq!(
            raw_value(&p, "activities"),
            Some("unknown,meeting,notAnActivity")
        );
    }

    #[test]
    fn legacy_eyebeam_activity_text() {
        let p = parse_pidf(fx::LEGACY_EYEBEAM_PIDF.as_bytes()).unwrap();
        assert_eq!(p.rich, rich(Availability::Away, None, Some("Away")));
    }

    #[test]
    fn person_only_vacation() {
        let p = parse_pidf(fx::PERSON_ONLY_PIDF.as_bytes()).unwrap();
        assert_eq!(
            p.rich,
            rich(
                Availability::Away,
                Some(Activity::OutOfOffice),
                Some("Annual leave")
            )
        );
        assert_eq!(p.observed_at_ms, Some(1_782_889_200_000));
    }

    #[test]
    fn asterisk_closed_busy_extension() {
        let p = parse_pidf(fx::ASTERISK_EYEBEAM_BUSY_CLOSED_PIDF.as_bytes()).unwrap();
        assert_eq!(
            p.rich,
            rich(
                Availability::Busy,
                Some(Activity::InACall),
                Some("On the phone")
            )
        );
        assert!(p.on_the_phone);
        assert_eq!(raw_value(&p, "basic"), Some("closed"));
        assert_eq!(raw_value(&p, "activities"), Some("busy"));
    }

    /// What Asterisk sends for each extension state (presence_xml.c: basic
    /// open for NOT_INUSE, INUSE and RINGING; the eyeBeam activity `busy`
    /// for every state with a call, `--` meaning none), with and without the
    /// eyeBeam supplement.
    #[test]
    fn asterisk_extension_states() {
        use Activity as Ac;
        use Availability as Av;
        let doc = |basic: &str, state: &str, note: &str, eyebeam: bool| {
            let person = if eyebeam && state != "--" {
                format!(
                    "<pp:person><status><ep:activities>ep:{state}</ep:activities></status></pp:person>"
                )
            } else if eyebeam {
                "<pp:person><status/></pp:person>".to_string()
            } else {
                String::new()
            };
            format!(
                r#"<presence entity="sip:2002@pbx.example.com" xmlns="urn:ietf:params:xml:ns:pidf" xmlns:pp="urn:ietf:params:xml:ns:pidf:person" xmlns:ep="urn:ietf:params:xml:ns:pidf:rpid:rpid-person"><note>{note}</note><tuple id="2002"><status><basic>{basic}</basic></status></tuple>{person}</presence>"#
            )
        };
        let cases = [
            ("open", "--", "Ready", Av::Available, None),
            ("open", "busy", "On the phone", Av::Busy, Some(Ac::InACall)),
            (
                "closed",
                "busy",
                "On the phone",
                Av::Busy,
                Some(Ac::InACall),
            ),
            ("closed", "busy", "On hold", Av::Busy, Some(Ac::InACall)),
            (
                "open",
                "busy",
                "Ringing",
                Av::Busy,
                Some(Ac::Other("ringing".into())),
            ),
            ("closed", "--", "Unavailable", Av::Offline, None),
        ];
        for (basic, state, note, avail, act) in cases {
            for eyebeam in [true, false] {
                let d = doc(basic, state, note, eyebeam);
                let p = parse_pidf(d.as_bytes()).unwrap();
                // Without the supplement only the note tells, and "busy"
                // alone (Ringing) is not said.
                let avail = match (eyebeam, note) {
                    (false, "Ringing") => Av::Available,
                    _ => avail,
                };
                assert_eq!(p.rich, rich(avail, act.clone(), Some(note)), "{d}");
                assert_eq!(p.on_the_phone, act == Some(Ac::InACall), "{d}");
            }
        }
    }

    #[test]
    fn cisco_vendor_tokens() {
        use Activity as Ac;
        use Availability as Av;
        let p = parse_pidf(fx::CISCO_DND_PIDF.as_bytes()).unwrap();
        assert_eq!(p.rich, rich(Av::DoNotDisturb, None, None));
        assert_eq!(raw_value(&p, "activities"), Some("dnd"));

        let p = parse_pidf(fx::CISCO_ON_THE_PHONE_PIDF.as_bytes()).unwrap();
        assert_eq!(p.rich, rich(Av::Busy, Some(Ac::InACall), None));

        let p = parse_pidf(fx::CISCO_UPC_PIDF.as_bytes()).unwrap();
        assert_eq!(p.rich, rich(Av::Available, None, None));
        assert_eq!(
            raw_value(&p, "activities"),
            Some("available,phone-status=unavailable,im-status=available")
        );

        // The same namespaces with the other tokens Cisco phones and
        // Asterisk's Cisco supplement write, under open and closed tuples.
        let doc = |basic: &str, tokens: &str| {
            format!(
                r#"<presence xmlns="urn:ietf:params:xml:ns:pidf" xmlns:dm="urn:ietf:params:xml:ns:pidf:data-model" xmlns:e="urn:ietf:params:xml:ns:pidf:status:rpid" xmlns:ce="urn:cisco:params:xml:ns:pidf:rpid" entity="sip:1004@pbx.example.com"><dm:person><e:activities>{tokens}</e:activities></dm:person><tuple id="1004"><status><basic>{basic}</basic></status></tuple></presence>"#
            )
        };
        let ringing = Some(Ac::Other("ringing".into()));
        for (basic, tokens, avail, act) in [
            ("open", "<ce:alerting/>", Av::Available, ringing.clone()),
            ("open", "<ce:available/>", Av::Available, None),
            ("open", "<e:on-the-phone/>", Av::Busy, Some(Ac::InACall)),
            (
                "closed",
                "<e:on-the-phone/><e:busy/>",
                Av::Busy,
                Some(Ac::InACall),
            ),
            ("closed", "<ce:dnd/>", Av::DoNotDisturb, None),
            ("open", "<ce:alerting/><ce:dnd/>", Av::DoNotDisturb, ringing),
            ("open", "<ce:made-up/>", Av::Available, None),
            ("closed", "<ce:made-up/>", Av::Offline, None),
        ] {
            let d = doc(basic, tokens);
            let p = parse_pidf(d.as_bytes()).unwrap();
            assert_eq!(
                (p.rich.availability, p.rich.activity),
                (avail, act),
                "{tokens}"
            );
        }
        let p = parse_pidf(doc("open", "<ce:made-up/>").as_bytes()).unwrap();
        assert_eq!(raw_value(&p, "activities"), Some("made-up"));
    }

    /// A closed tuple is Offline unless the document says the line is
    /// engaged (busy, DND, a call); activities given as text count the same.
    #[test]
    fn closed_tuples_read_activities_first() {
        use Activity as Ac;
        use Availability as Av;
        let closed = r#"<tuple id="t"><status><basic>closed</basic></status></tuple>"#;
        for (acts, avail, act) in [
            ("<rpid:busy/>", Av::Busy, None),
            ("<rpid:on-the-phone/>", Av::Busy, Some(Ac::InACall)),
            (
                "<rpid:other>Do Not Disturb</rpid:other>",
                Av::DoNotDisturb,
                None,
            ),
            (
                "<rpid:other>in-a-call</rpid:other>",
                Av::Busy,
                Some(Ac::InACall),
            ),
            ("<rpid:meeting/>", Av::Offline, Some(Ac::InAMeeting)),
            ("rpid:busy", Av::Busy, None),
            ("on-the-phone", Av::Busy, Some(Ac::InACall)),
            ("<rpid:away/>", Av::Offline, None),
            ("rpid:away", Av::Offline, None),
            ("<rpid:vacation/>", Av::Offline, Some(Ac::OutOfOffice)),
            ("", Av::Offline, None),
        ] {
            let p = parse_pidf(person_doc(acts, closed).as_bytes()).unwrap();
            assert_eq!(
                (p.rich.availability, p.rich.activity),
                (avail, act),
                "{acts}"
            );
        }
    }

    fn person_doc(activities: &str, extra: &str) -> String {
        format!(
            r#"<presence xmlns="urn:ietf:params:xml:ns:pidf" xmlns:dm="urn:ietf:params:xml:ns:pidf:data-model" xmlns:rpid="urn:ietf:params:xml:ns:pidf:rpid" entity="sip:x@y">{extra}<dm:person id="p"><rpid:activities>{activities}</rpid:activities></dm:person></presence>"#
        )
    }

    #[test]
    fn rpid_mapping_table() {
        use Activity as Ac;
        use Availability as Av;
        let open = r#"<tuple id="t"><status><basic>open</basic></status></tuple>"#;
        let cases: Vec<(&str, Av, Option<Ac>)> = vec![
            ("<rpid:away/>", Av::Away, None),
            ("<rpid:vacation/>", Av::Away, Some(Ac::OutOfOffice)),
            ("<rpid:holiday/>", Av::Away, Some(Ac::OutOfOffice)),
            ("<rpid:permanent-absence/>", Av::Away, Some(Ac::OutOfOffice)),
            ("<rpid:busy/>", Av::Busy, None),
            ("<rpid:on-the-phone/>", Av::Busy, Some(Ac::InACall)),
            ("<rpid:meeting/>", Av::Busy, Some(Ac::InAMeeting)),
            ("<rpid:appointment/>", Av::Busy, Some(Ac::InAMeeting)),
            ("<rpid:presentation/>", Av::Busy, Some(Ac::Presenting)),
            ("<rpid:sleeping/>", Av::Away, None),
            ("<rpid:meal/>", Av::Away, Some(Ac::BeRightBack)),
            ("<rpid:breakfast/>", Av::Away, Some(Ac::BeRightBack)),
            ("<rpid:dinner/>", Av::Away, Some(Ac::BeRightBack)),
            ("<rpid:other>dnd</rpid:other>", Av::DoNotDisturb, None),
            ("<rpid:other> DND </rpid:other>", Av::DoNotDisturb, None),
            (
                "<rpid:other>do-not-disturb</rpid:other>",
                Av::DoNotDisturb,
                None,
            ),
            (
                "<rpid:other>DO NOT DISTURB</rpid:other>",
                Av::DoNotDisturb,
                None,
            ),
            (
                "<rpid:other>Lunch with Bob</rpid:other>",
                Av::Available,
                Some(Ac::Other("Lunch with Bob".into())),
            ),
            (
                "<rpid:working/>",
                Av::Available,
                Some(Ac::Other("working".into())),
            ),
            ("<rpid:unknown/>", Av::Available, None),
            ("<rpid:made-up-activity/>", Av::Available, None),
            (
                "<rpid:away/><rpid:on-the-phone/>",
                Av::Away,
                Some(Ac::InACall),
            ),
            (
                "<rpid:busy/><rpid:meeting/><rpid:other>dnd</rpid:other>",
                Av::DoNotDisturb,
                Some(Ac::InAMeeting),
            ),
            (
                "<rpid:vacation/><rpid:on-the-phone/>",
                Av::Busy,
                Some(Ac::InACall),
            ),
        ];
        for (acts, avail, act) in cases {
            let p = parse_pidf(person_doc(acts, open).as_bytes()).unwrap();
            assert_eq!(p.rich.availability, avail, "{acts}");
            assert_eq!(p.rich.activity, act, "{acts}");
        }
        // Without any tuple, a neutral or unknown activity decides nothing.
        let p = parse_pidf(person_doc("<rpid:unknown/>", "").as_bytes()).unwrap();
        assert_eq!(p.rich.availability, Av::Unknown);
        let p = parse_pidf(person_doc("<rpid:busy/>", "").as_bytes()).unwrap();
        assert_eq!(p.rich.availability, Av::Busy);
        // Closed wins, but the activity is kept.
        let closed = r#"<tuple id="t"><status><basic>closed</basic></status></tuple>"#;
        let p = parse_pidf(person_doc("<rpid:vacation/>", closed).as_bytes()).unwrap();
        assert_eq!(p.rich.availability, Av::Offline);
        assert_eq!(p.rich.activity, Some(Ac::OutOfOffice));
    }

    #[test]
    fn activities_in_tuple_status_and_user_input() {
        let doc = r#"<presence xmlns="urn:ietf:params:xml:ns:pidf" xmlns:r="urn:ietf:params:xml:ns:pidf:rpid" entity="sip:x@y"><tuple id="t"><status><basic>open</basic><r:activities><r:presentation/></r:activities></status></tuple></presence>"#;
        let p = parse_pidf(doc.as_bytes()).unwrap();
        assert_eq!(p.rich.availability, Availability::Busy);
        assert_eq!(p.rich.activity, Some(Activity::Presenting));

        let doc = r#"<presence xmlns="urn:ietf:params:xml:ns:pidf" xmlns:r="urn:ietf:params:xml:ns:pidf:rpid" xmlns:dm="urn:ietf:params:xml:ns:pidf:data-model" entity="sip:x@y"><tuple id="t"><status><basic>open</basic></status></tuple><dm:person id="p"><r:user-input last-input="2026-01-01T00:00:00Z">idle</r:user-input></dm:person></presence>"#;
        let p = parse_pidf(doc.as_bytes()).unwrap();
        assert_eq!(p.rich.availability, Availability::Available);
        assert_eq!(p.rich.activity, Some(Activity::Inactive));
    }

    #[test]
    fn note_precedence_and_clipping() {
        let doc = |presence: &str, person: &str, tuple: &str, acts: &str| {
            format!(
                r#"<presence xmlns="urn:ietf:params:xml:ns:pidf" xmlns:dm="urn:ietf:params:xml:ns:pidf:data-model" xmlns:rpid="urn:ietf:params:xml:ns:pidf:rpid" entity="sip:x@y"><note>{presence}</note><tuple id="t"><status><basic>open</basic></status><note>{tuple}</note></tuple><dm:person id="p"><rpid:activities><rpid:note>{acts}</rpid:note><rpid:away/></rpid:activities><dm:note>{person}</dm:note></dm:person></presence>"#
            )
        };
        let note = |d: String| parse_pidf(d.as_bytes()).unwrap().rich.note;
        assert_eq!(note(doc(" P ", "D", "T", "A")), Some("P".into()));
        assert_eq!(note(doc("  ", "D", "T", "A")), Some("D".into()));
        assert_eq!(note(doc("", "", "T", "A")), Some("T".into()));
        assert_eq!(note(doc("", "", "", "A")), Some("A".into()));
        assert_eq!(note(doc("", "", "", "")), None);
        let long = "é".repeat(2000);
        let n = note(doc(&long, "", "", "")).unwrap();
        assert_eq!(n.chars().count(), MAX_NOTE_CHARS);
    }

    #[test]
    fn rejects_wrong_roots_and_malformed() {
        for bad in [
            "",
            "not xml",
            r#"<presence entity="sip:a@b"/>"#,
            r#"<presence xmlns="urn:ietf:params:xml:ns:cpim-pidf" entity="sip:a@b"/>"#,
            r#"<dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" version="1" state="full"/>"#,
            r#"<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="sip:a@b"><tuple id="t">"#,
            r#"<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="sip:a@b"><tuple></presence>"#,
            r#"<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="sip:a@b" entity2=></presence>"#,
        ] {
            assert!(parse_pidf(bad.as_bytes()).is_err(), "{bad}");
        }
        let full = fx::ASTERISK_EYEBEAM_PIDF.as_bytes();
        for cut in [10, 100, 200, full.len() - 13] {
            assert!(parse_pidf(&full[..cut]).is_err(), "cut at {cut}");
        }
        // A missing entity is tolerated.
        let p = parse_pidf(br#"<presence xmlns="urn:ietf:params:xml:ns:pidf"/>"#).unwrap();
        assert_eq!(p.entity, "");
        assert_eq!(p.rich.availability, Availability::Unknown);
    }

    fn intent(a: Availability, act: Option<Activity>, note: Option<&str>) -> PresenceIntent {
        PresenceIntent {
            availability: a,
            activity: act,
            note: note.map(str::to_string),
            dnd_scope: None,
            expires_in_ms: None,
        }
    }

    #[test]
    fn build_round_trips_every_availability() {
        for a in [
            Availability::Available,
            Availability::Away,
            Availability::Busy,
            Availability::DoNotDisturb,
            Availability::Offline,
            Availability::Unknown,
        ] {
            for note in [None, Some("Back at <3> & \"soon\" 'ok'")] {
                let i = intent(a, None, note);
                let xml = build_pidf("sip:me@example.com", "pub-1", &i, 1_767_261_600_123);
                let p = parse_pidf(xml.as_bytes()).unwrap();
                assert_eq!(p.rich, rich(a, None, note), "{xml}");
                assert_eq!(p.entity, "sip:me@example.com");
                assert_eq!(p.observed_at_ms, Some(1_767_261_600_123));
            }
        }
    }

    #[test]
    fn build_round_trips_activities() {
        use Activity as Ac;
        use Availability as Av;
        let cases = [
            (Av::Busy, Ac::InACall),
            (Av::Busy, Ac::InAConference),
            (Av::Busy, Ac::InAMeeting),
            (Av::Busy, Ac::Presenting),
            (Av::DoNotDisturb, Ac::Presenting),
            (Av::DoNotDisturb, Ac::InAMeeting),
            (Av::Away, Ac::OutOfOffice),
            (Av::Away, Ac::BeRightBack),
            (Av::Away, Ac::OffWork),
            (Av::Away, Ac::InACall),
            (Av::Available, Ac::Inactive),
            (Av::Away, Ac::Inactive),
            (Av::Available, Ac::Other("Gardening".into())),
            (Av::Busy, Ac::Other("Writing <code> & tests".into())),
            (Av::Offline, Ac::OutOfOffice),
            (Av::Offline, Ac::InAMeeting),
        ];
        for (a, act) in cases {
            let i = intent(a, Some(act.clone()), Some("n"));
            let xml = build_pidf("sip:me@example.com", "2001", &i, 0);
            let p = parse_pidf(xml.as_bytes()).unwrap();
            assert_eq!(p.rich, rich(a, Some(act.clone()), Some("n")), "{xml}");
            assert_eq!(
                p.on_the_phone,
                matches!(act, Ac::InACall | Ac::InAConference)
            );
        }
    }

    #[test]
    fn build_shape() {
        let i = intent(
            Availability::DoNotDisturb,
            Some(Activity::InACall),
            Some("x\u{7}y"),
        );
        let xml = build_pidf("sip:a&b@example.com", "2001", &i, 1_767_261_600_000);
        assert_eq!(parse_pidf(xml.as_bytes()).unwrap().tuple_ids, ["t2001"]);
        assert!(xml.contains("entity=\"sip:a&amp;b@example.com\""));
        assert!(xml.contains("<tuple id=\"t2001\">"));
        assert!(xml.contains("<basic>open</basic>"));
        assert!(xml.contains(
            "<rpid:activities><rpid:busy/><rpid:other>do-not-disturb</rpid:other><rpid:on-the-phone/></rpid:activities>"
        ));
        assert!(xml.contains("<dm:note>xy</dm:note>"));
        assert!(xml.contains("<timestamp>2026-01-01T10:00:00.000Z</timestamp>"));
        let offline = build_pidf("sip:a@b", "", &intent(Availability::Offline, None, None), 0);
        assert!(offline.contains("<tuple id=\"t1\">"));
        assert!(offline.contains("<basic>closed</basic>"));
        assert!(!offline.contains("rpid:activities"));
    }
}
