//! Broadsoft Device Feature Key Synchronization bodies
//! (`application/x-as-feature-event+xml`, `Event: as-feature-event`):
//! `DoNotDisturbEvent` and `ForwardingEvent` in the ECMA-323 CSTA ed3
//! namespace, singly or several in a `multipart/mixed` body.
//!
//! The CSTA namespace is accepted as servers spell it: the ECMA-323 one of
//! any edition, over http or https, with or without `www.`, and without
//! the hyphen in `ecma-international` as OpenSIPS' presence_dfks writes it;
//! it may also be missing (some PBX modules omit it). A foreign namespace
//! is refused. Other CSTA-namespace roots (Broadsoft has more feature
//! events, and phone-to-server requests such as `SetDoNotDisturb` use the
//! same namespace) are skipped rather than refused.
//!
//! In a multipart body each part stands alone: one the hub cannot read is
//! reported beside the events of the others, never instead of them, since
//! every event sets one feature of one device completely.

use std::collections::BTreeMap;

use presence_connector_sdk::{ForwardTarget, VendorValue};

use super::multipart::{media_type, parse_multipart};
use super::xml::{Element, parse_document};
use super::{BodyError, check_size, clip, invalid, parse_xs_bool};

/// Which forwarding rule an event describes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum ForwardKind {
    /// `forwardImmediate`: unconditional forwarding.
    Immediate,
    /// `forwardBusy`: forward when busy.
    Busy,
    /// `forwardNoAns`: forward after `ringCount` rings.
    NoAnswer,
    /// Any other `forwardingType`, as sent (ECMA-323 also has
    /// `forwardDND` and internal/external-only variants such as
    /// `forwardImmInt`, which do not forward every call).
    Other(String),
}

impl ForwardKind {
    fn parse(text: &str) -> Self {
        let t = text.trim();
        [Self::Immediate, Self::Busy, Self::NoAnswer]
            .into_iter()
            .find(|k| k.as_str().eq_ignore_ascii_case(t))
            .unwrap_or_else(|| Self::Other(clip(t, 64)))
    }

    /// The CSTA token.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Immediate => "forwardImmediate",
            Self::Busy => "forwardBusy",
            Self::NoAnswer => "forwardNoAns",
            Self::Other(s) => s,
        }
    }
}

/// One feature event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeatureEvent {
    /// `DoNotDisturbEvent`.
    Dnd {
        /// The `device` (line / extension), empty when absent.
        device: String,
        /// `doNotDisturbOn`.
        on: bool,
    },
    /// `ForwardingEvent`.
    Forwarding {
        /// The `device`, empty when absent.
        device: String,
        /// `forwardingType`.
        kind: ForwardKind,
        /// `forwardStatus`.
        active: bool,
        /// `forwardTo`, when not empty.
        to: Option<String>,
        /// `ringCount`, when present and numeric (no-answer forwarding).
        ring_count: Option<u32>,
    },
}

fn is_csta(el: &Element) -> bool {
    el.ns.as_deref().is_none_or(is_csta_namespace)
}

/// The ECMA-323 CSTA namespace in its spellings seen in the field (see the
/// module documentation): `http://www.ecma-international.org/standards/
/// ecma-323/csta/ed3` and its variants.
fn is_csta_namespace(uri: &str) -> bool {
    let u = uri.trim().to_ascii_lowercase();
    let u = u.trim_end_matches('/');
    let Some(rest) = ["http://", "https://"]
        .iter()
        .find_map(|scheme| u.strip_prefix(scheme))
    else {
        return false;
    };
    let rest = rest.strip_prefix("www.").unwrap_or(rest);
    let Some(path) = ["ecma-international.org", "ecmainternational.org"]
        .iter()
        .find_map(|host| rest.strip_prefix(host))
    else {
        return false;
    };
    path.strip_prefix("/standards/ecma-323/csta/ed")
        .is_some_and(|edition| !edition.is_empty() && edition.bytes().all(|b| b.is_ascii_digit()))
}

fn child_text<'a>(el: &'a Element, name: &str) -> Option<&'a str> {
    el.children
        .iter()
        .find(|c| c.name == name && is_csta(c))
        .map(|c| c.text_trimmed())
}

/// Parses one feature-event XML document. `Ok(None)` for a CSTA root this
/// crate does not interpret.
pub fn parse_feature_event(xml: &[u8]) -> Result<Option<FeatureEvent>, BodyError> {
    let root = parse_document(xml)?;
    if !is_csta(&root) {
        return Err(BodyError::UnexpectedRoot {
            expected: "{http://www.ecma-international.org/standards/ecma-323/csta/ed3}DoNotDisturbEvent or ForwardingEvent",
            found: clip(&root.qualified(), 128),
        });
    }
    let device = child_text(&root, "device")
        .map(|d| clip(d, 128))
        .unwrap_or_default();
    match root.name.as_str() {
        "DoNotDisturbEvent" => {
            let text = child_text(&root, "doNotDisturbOn").ok_or(BodyError::Missing {
                element: "DoNotDisturbEvent",
                item: "doNotDisturbOn",
            })?;
            let on = parse_xs_bool(text).ok_or_else(|| invalid("doNotDisturbOn", text))?;
            Ok(Some(FeatureEvent::Dnd { device, on }))
        }
        "ForwardingEvent" => {
            let kind = child_text(&root, "forwardingType").ok_or(BodyError::Missing {
                element: "ForwardingEvent",
                item: "forwardingType",
            })?;
            let status = child_text(&root, "forwardStatus").ok_or(BodyError::Missing {
                element: "ForwardingEvent",
                item: "forwardStatus",
            })?;
            let active = parse_xs_bool(status).ok_or_else(|| invalid("forwardStatus", status))?;
            let to = child_text(&root, "forwardTo")
                .filter(|t| !t.is_empty())
                .map(|t| clip(t, 256));
            // An empty or odd ringCount is common (phones send `<ringCount/>`)
            // and only matters for no-answer forwarding: read it as absent.
            let ring_count = child_text(&root, "ringCount").and_then(|r| r.parse::<u32>().ok());
            Ok(Some(FeatureEvent::Forwarding {
                device,
                kind: ForwardKind::parse(kind),
                active,
                to,
                ring_count,
            }))
        }
        _ => Ok(None),
    }
}

/// The events of one `as-feature-event` NOTIFY body, and the parts of it
/// that could not be read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FeatureEvents {
    /// The events read, in body order.
    pub events: Vec<FeatureEvent>,
    /// Parts refused: their index in the multipart body and why. The
    /// events above come from the other parts.
    pub refused: Vec<(usize, BodyError)>,
}

/// Iterates the events read (the refused parts are in
/// [`FeatureEvents::refused`]).
impl IntoIterator for FeatureEvents {
    type Item = FeatureEvent;
    type IntoIter = std::vec::IntoIter<FeatureEvent>;

    fn into_iter(self) -> Self::IntoIter {
        self.events.into_iter()
    }
}

/// Parses a NOTIFY body of the `as-feature-event` package: a single event,
/// or a multipart body of several. Parts whose media type is neither
/// `application/x-as-feature-event+xml` nor generic XML are skipped. A part
/// that cannot be read is listed in [`FeatureEvents::refused`] and the
/// other parts still count; the body is an error only when nothing in it
/// could be read (a single bad event, every event part bad, broken
/// multipart framing, a wrong content type, too large).
pub fn parse_feature_events(content_type: &str, body: &[u8]) -> Result<FeatureEvents, BodyError> {
    check_size(body)?;
    let (ty, _) = media_type(content_type);
    if ty.starts_with("multipart/") {
        let mp = parse_multipart(content_type, body)?;
        let mut read = FeatureEvents {
            refused: mp.refused.clone(),
            ..FeatureEvents::default()
        };
        for (index, part) in mp.parts.iter().enumerate() {
            if !is_feature_type(&part.media_type()) {
                continue;
            }
            match parse_feature_event(&part.body) {
                Ok(event) => read.events.extend(event),
                Err(e) => read.refused.push((index, e)),
            }
        }
        match read.refused.first() {
            Some((_, e)) if read.events.is_empty() => Err(e.clone()),
            _ => Ok(read),
        }
    } else if is_feature_type(&ty) || ty.is_empty() {
        Ok(FeatureEvents {
            events: parse_feature_event(body)?.into_iter().collect(),
            refused: Vec::new(),
        })
    } else {
        Err(BodyError::UnexpectedContentType(clip(content_type, 128)))
    }
}

fn is_feature_type(ty: &str) -> bool {
    matches!(
        ty,
        "application/x-as-feature-event+xml" | "application/xml" | "text/xml"
    )
}

/// One forwarding rule's last known setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardSetting {
    /// `forwardStatus`.
    pub active: bool,
    /// `forwardTo`.
    pub to: Option<String>,
    /// `ringCount`.
    pub ring_count: Option<u32>,
}

/// Feature state of one device.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceFeatures {
    /// Do-not-disturb is on.
    pub dnd: bool,
    /// Forwarding rules by kind (all kinds are kept, active or not).
    pub forwards: BTreeMap<ForwardKind, ForwardSetting>,
}

/// Accumulates feature events per device (a NOTIFY may report only what
/// changed, so state builds up across NOTIFYs).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FeatureState {
    devices: BTreeMap<String, DeviceFeatures>,
}

/// Most devices tracked; a subscription normally concerns one line.
const MAX_DEVICES: usize = 64;

impl FeatureState {
    /// No device known.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records one event; events for new devices beyond a small cap are
    /// dropped.
    pub fn apply(&mut self, event: FeatureEvent) {
        let device = match &event {
            FeatureEvent::Dnd { device, .. } | FeatureEvent::Forwarding { device, .. } => device,
        };
        if !self.devices.contains_key(device) && self.devices.len() >= MAX_DEVICES {
            return;
        }
        match event {
            FeatureEvent::Dnd { device, on } => self.devices.entry(device).or_default().dnd = on,
            FeatureEvent::Forwarding {
                device,
                kind,
                active,
                to,
                ring_count,
            } => {
                self.devices.entry(device).or_default().forwards.insert(
                    kind,
                    ForwardSetting {
                        active,
                        to,
                        ring_count,
                    },
                );
            }
        }
    }

    /// Records several events in order.
    pub fn apply_all(&mut self, events: impl IntoIterator<Item = FeatureEvent>) {
        for e in events {
            self.apply(e);
        }
    }

    /// Do-not-disturb is on for any device.
    pub fn dnd(&self) -> bool {
        self.devices.values().any(|d| d.dnd)
    }

    /// The immediate-forward target of the first device (by name) with
    /// unconditional forwarding active and a target. Busy and no-answer
    /// forwards are kept but do not make the line "forwarded", since calls
    /// still ring the line first.
    pub fn forward(&self) -> Option<String> {
        self.devices.values().find_map(|d| {
            d.forwards
                .get(&ForwardKind::Immediate)
                .filter(|f| f.active)
                .and_then(|f| f.to.clone())
        })
    }

    /// [`FeatureState::forward`] as the hub's forward target.
    pub fn forward_target(&self) -> Option<ForwardTarget> {
        self.forward().map(ForwardTarget::Number)
    }

    /// One device's state.
    pub fn device(&self, device: &str) -> Option<&DeviceFeatures> {
        self.devices.get(device)
    }

    /// What an operator sees: `doNotDisturbOn` and every forwarding rule
    /// (immediate, busy, no answer, others; active or not) per device,
    /// named `<device>.<item>` (just `<item>` for an event without a
    /// device). The model carries only DND and the immediate forward;
    /// the other rules are known only from these values.
    pub fn raw(&self) -> Vec<VendorValue> {
        let mut raw = Vec::new();
        for (dev, f) in self.devices.iter().take(8) {
            let name = |item: &str| match dev.as_str() {
                "" => item.to_string(),
                dev => format!("{dev}.{item}"),
            };
            raw.push(VendorValue {
                name: name("doNotDisturbOn"),
                value: f.dnd.to_string(),
            });
            for (kind, s) in &f.forwards {
                raw.push(VendorValue {
                    name: name(kind.as_str()),
                    value: format!(
                        "{}{}{}",
                        s.active,
                        s.to.as_deref()
                            .map(|t| format!(" to {t}"))
                            .unwrap_or_default(),
                        s.ring_count
                            .map(|r| format!(" after {r}"))
                            .unwrap_or_default()
                    ),
                });
            }
        }
        raw
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body::fixtures as fx;

    const FE: &str = "application/x-as-feature-event+xml";

    #[test]
    fn facts_examples() {
        let dnd = parse_feature_events(FE, fx::DND_EVENT.as_bytes())
            .unwrap()
            .events;
        assert_eq!(
            dnd,
            vec![FeatureEvent::Dnd {
                device: "2001".into(),
                on: true
            }]
        );
        let fwd = parse_feature_events(FE, fx::FORWARDING_EVENT.as_bytes())
            .unwrap()
            .events;
        assert_eq!(
            fwd,
            vec![FeatureEvent::Forwarding {
                device: "2001".into(),
                kind: ForwardKind::Immediate,
                active: true,
                to: Some("700".into()),
                ring_count: Some(0),
            }]
        );
        let mut st = FeatureState::new();
        st.apply_all(dnd.into_iter().chain(fwd));
        assert!(st.dnd());
        assert_eq!(st.forward().as_deref(), Some("700"));
        assert_eq!(
            st.forward_target(),
            Some(ForwardTarget::Number("700".into()))
        );
    }

    #[test]
    fn dfks_multipart_snapshot() {
        let events = parse_feature_events(
            fx::DFKS_MULTIPART_CONTENT_TYPE,
            fx::DFKS_MULTIPART_BODY.as_bytes(),
        )
        .unwrap()
        .events;
        assert_eq!(events.len(), 4);
        assert_eq!(
            events[2],
            FeatureEvent::Forwarding {
                device: "2001".into(),
                kind: ForwardKind::Busy,
                active: false,
                to: None,
                ring_count: None,
            }
        );
        assert_eq!(
            events[3],
            FeatureEvent::Forwarding {
                device: "2001".into(),
                kind: ForwardKind::NoAnswer,
                active: true,
                to: Some("8000".into()),
                ring_count: Some(4),
            }
        );
        let mut st = FeatureState::new();
        st.apply_all(events.clone());
        assert!(!st.dnd());
        assert_eq!(st.forward().as_deref(), Some("700"));
        let dev = st.device("2001").unwrap();
        assert_eq!(dev.forwards.len(), 3);
        assert!(dev.forwards[&ForwardKind::NoAnswer].active);

        // Turning the immediate forward off leaves only busy/no-answer ones,
        // which do not count as forwarded.
        st.apply(FeatureEvent::Forwarding {
            device: "2001".into(),
            kind: ForwardKind::Immediate,
            active: false,
            to: Some("700".into()),
            ring_count: None,
        });
        assert_eq!(st.forward(), None);
        assert!(
            st.raw()
                .iter()
                .any(|v| v.name == "2001.forwardNoAns" && v.value == "true to 8000 after 4")
        );
    }

    #[test]
    fn tolerated_variants() {
        // No namespace, odd casing of booleans, empty ringCount, unknown kind.
        let body = b"<ForwardingEvent><forwardingType>forwardDND</forwardingType><forwardStatus>TRUE</forwardStatus><forwardTo/><ringCount/></ForwardingEvent>";
        assert_eq!(
            parse_feature_events(FE, body).unwrap().events,
            vec![FeatureEvent::Forwarding {
                device: String::new(),
                kind: ForwardKind::Other("forwardDND".into()),
                active: true,
                to: None,
                ring_count: None,
            }]
        );
        // Other CSTA roots, like the phone-to-server requests (facts A9,
        // verbatim), are skipped.
        let set_dnd = br#"<SetDoNotDisturb xmlns="http://www.ecma-international.org/standards/ecma-323/csta/ed3">
  <device>7659366</device><doNotDisturbOn>true</doNotDisturbOn>
</SetDoNotDisturb>"#;
        let set_fwd = br#"<SetForwarding xmlns="http://www.ecma-international.org/standards/ecma-323/csta/ed3">
  <device>7659366</device><activateForward>true</activateForward>
  <forwardingType>forwardImmediate</forwardingType><forwardDN>2424</forwardDN><ringCount></ringCount>
</SetForwarding>"#;
        assert_eq!(parse_feature_events(FE, set_dnd).unwrap().events, vec![]);
        assert_eq!(parse_feature_events(FE, set_fwd).unwrap().events, vec![]);
        // Non-feature parts of a multipart body are skipped.
        let body = "--b\r\nContent-Type: text/plain\r\n\r\nhello\r\n--b\r\nContent-Type: application/x-as-feature-event+xml\r\n\r\n<DoNotDisturbEvent><doNotDisturbOn>1</doNotDisturbOn></DoNotDisturbEvent>\r\n--b--";
        assert_eq!(
            parse_feature_events("multipart/mixed;boundary=b", body.as_bytes())
                .unwrap()
                .events,
            vec![FeatureEvent::Dnd {
                device: String::new(),
                on: true
            }]
        );
    }

    #[test]
    fn opensips_dfks_namespace_and_every_forward() {
        let read = parse_feature_events(
            fx::OPENSIPS_DFKS_CONTENT_TYPE,
            fx::OPENSIPS_DFKS_BODY.as_bytes(),
        )
        .unwrap();
        assert_eq!(read.refused, vec![]);
        assert_eq!(read.events.len(), 4);
        let mut st = FeatureState::new();
        st.apply_all(read);
        assert!(st.dnd());
        assert_eq!(st.forward().as_deref(), Some("+15555550100"));
        let raw: Vec<(String, String)> = st.raw().into_iter().map(|v| (v.name, v.value)).collect();
        for (name, value) in [
            ("2001.doNotDisturbOn", "true"),
            ("2001.forwardImmediate", "true to +15555550100"),
            ("2001.forwardBusy", "true to +15555550101"),
            ("2001.forwardNoAns", "true to +15555550102 after 3"),
        ] {
            assert!(
                raw.contains(&(name.into(), value.into())),
                "{name}: {raw:?}"
            );
        }
    }

    #[test]
    fn csta_namespace_spellings() {
        let event = |ns: &str| {
            format!(
                r#"<DoNotDisturbEvent xmlns="{ns}"><device>1</device><doNotDisturbOn>true</doNotDisturbOn></DoNotDisturbEvent>"#
            )
        };
        for ns in [
            "http://www.ecma-international.org/standards/ecma-323/csta/ed3",
            "http://www.ecmainternational.org/standards/ecma-323/csta/ed3",
            "https://www.ecma-international.org/standards/ecma-323/csta/ed3",
            "http://ecma-international.org/standards/ecma-323/csta/ed3",
            "http://www.ecma-international.org/standards/ecma-323/csta/ed3/",
            "HTTP://WWW.ECMA-INTERNATIONAL.ORG/standards/ecma-323/csta/ed3",
            "http://www.ecma-international.org/standards/ecma-323/csta/ed2",
            "http://www.ecma-international.org/standards/ecma-323/csta/ed5",
        ] {
            let read = parse_feature_events(FE, event(ns).as_bytes());
            assert_eq!(read.map(|r| r.events.len()), Ok(1), "{ns}");
        }
        for ns in [
            "urn:other",
            "http://www.example.com/standards/ecma-323/csta/ed3",
            "http://www.ecma-international.org/standards/ecma-324/csta/ed3",
            "http://www.ecma-international.org/standards/ecma-323/csta/edX",
            "http://www.ecma-international.org/standards/ecma-323/csta/ed",
            "ftp://www.ecma-international.org/standards/ecma-323/csta/ed3",
        ] {
            assert!(
                matches!(
                    parse_feature_events(FE, event(ns).as_bytes()),
                    Err(BodyError::UnexpectedRoot { .. })
                ),
                "{ns}"
            );
        }
    }

    #[test]
    fn one_bad_part_never_drops_the_others() {
        let part = |xml: &str| {
            format!("--b\r\nContent-Type: application/x-as-feature-event+xml\r\n\r\n{xml}\r\n")
        };
        let dnd = r#"<DoNotDisturbEvent xmlns="http://www.ecma-international.org/standards/ecma-323/csta/ed3"><device>2001</device><doNotDisturbOn>true</doNotDisturbOn></DoNotDisturbEvent>"#;
        let foreign = r#"<x:DoNotDisturbEvent xmlns:x="urn:other"><x:doNotDisturbOn>true</x:doNotDisturbOn></x:DoNotDisturbEvent>"#;
        let broken = "<ForwardingEvent><forwardingType>forwardBusy</forwardingType>";
        let no_status =
            "<ForwardingEvent><forwardingType>forwardBusy</forwardingType></ForwardingEvent>";
        let fwd = "<ForwardingEvent><device>2001</device><forwardingType>forwardImmediate</forwardingType><forwardStatus>true</forwardStatus><forwardTo>+15555550100</forwardTo></ForwardingEvent>";
        let body = [dnd, foreign, broken, no_status, fwd]
            .iter()
            .map(|x| part(x))
            .collect::<String>()
            + "--b--\r\n";
        let read = parse_feature_events("multipart/mixed;boundary=b", body.as_bytes()).unwrap();
        assert_eq!(read.events.len(), 2);
        let refused: Vec<usize> = read.refused.iter().map(|(i, _)| *i).collect();
        assert_eq!(refused, [1, 2, 3]);
        assert!(matches!(
            read.refused[0].1,
            BodyError::UnexpectedRoot { .. }
        ));
        assert!(matches!(read.refused[2].1, BodyError::Missing { .. }));
        let mut st = FeatureState::new();
        st.apply_all(read);
        assert!(st.dnd());
        assert_eq!(st.forward().as_deref(), Some("+15555550100"));
        // Nothing readable at all: the body is an error.
        let body = part(foreign) + &part(broken) + "--b--\r\n";
        assert!(matches!(
            parse_feature_events("multipart/mixed;boundary=b", body.as_bytes()),
            Err(BodyError::UnexpectedRoot { .. })
        ));
    }

    #[test]
    fn forwarding_types() {
        for (text, kind) in [
            ("forwardImmediate", ForwardKind::Immediate),
            ("ForwardImmediate", ForwardKind::Immediate),
            (" forwardBusy ", ForwardKind::Busy),
            ("forwardnoans", ForwardKind::NoAnswer),
            ("forwardImmInt", ForwardKind::Other("forwardImmInt".into())),
            ("forwardDND", ForwardKind::Other("forwardDND".into())),
        ] {
            assert_eq!(ForwardKind::parse(text), kind, "{text}");
        }
        // Raw names without a device carry no leading dot.
        let mut st = FeatureState::new();
        st.apply(FeatureEvent::Dnd {
            device: String::new(),
            on: true,
        });
        assert_eq!(st.raw()[0].name, "doNotDisturbOn");
    }

    #[test]
    fn malformed_inputs() {
        for bad in [
            &b""[..],
            b"<DoNotDisturbEvent><device>1</device></DoNotDisturbEvent>",
            b"<DoNotDisturbEvent><doNotDisturbOn>maybe</doNotDisturbOn></DoNotDisturbEvent>",
            b"<ForwardingEvent><forwardStatus>true</forwardStatus></ForwardingEvent>",
            b"<ForwardingEvent><forwardingType>forwardBusy</forwardingType></ForwardingEvent>",
            b"<x:DoNotDisturbEvent xmlns:x='urn:other'><x:doNotDisturbOn>true</x:doNotDisturbOn></x:DoNotDisturbEvent>",
            b"<DoNotDisturbEvent><doNotDisturbOn>true</doNotDisturbOn>",
        ] {
            assert!(parse_feature_events(FE, bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
        assert!(matches!(
            parse_feature_events("application/pidf+xml", fx::DND_EVENT.as_bytes()),
            Err(BodyError::UnexpectedContentType(_))
        ));
        // A truncated multipart snapshot keeps its complete parts (the cut
        // one is refused), unless the cut leaves no readable framing.
        let full = parse_feature_events(
            fx::DFKS_MULTIPART_CONTENT_TYPE,
            fx::DFKS_MULTIPART_BODY.as_bytes(),
        )
        .unwrap()
        .events;
        for cut in 0..fx::DFKS_MULTIPART_BODY.len() {
            let part = &fx::DFKS_MULTIPART_BODY.as_bytes()[..cut];
            if let Ok(read) = parse_feature_events(fx::DFKS_MULTIPART_CONTENT_TYPE, part) {
                assert!(full.starts_with(&read.events), "cut {cut}");
                assert!(read.refused.len() <= 1, "cut {cut}");
            }
        }
        let full = fx::FORWARDING_EVENT.as_bytes();
        for cut in 1..full.len() - 2 {
            assert!(parse_feature_events(FE, &full[..cut]).is_err(), "cut {cut}");
        }
    }
}
