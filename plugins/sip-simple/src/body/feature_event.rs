//! Broadsoft Device Feature Key Synchronization bodies
//! (`application/x-as-feature-event+xml`, `Event: as-feature-event`):
//! `DoNotDisturbEvent` and `ForwardingEvent` in the ECMA-323 CSTA ed3
//! namespace, singly or several in a `multipart/mixed` body.
//!
//! The namespace may be missing (some PBX modules omit it); a foreign
//! namespace is refused. Other CSTA-namespace roots (Broadsoft has more
//! feature events, and phone-to-server requests such as `SetDoNotDisturb`
//! use the same namespace) are skipped rather than refused, so a NOTIFY
//! mixing known and unknown events still yields the known ones.

use std::collections::BTreeMap;

use presence_connector_sdk::{ForwardTarget, VendorValue};

use super::multipart::{media_type, parse_multipart};
use super::xml::{Element, ns, parse_document};
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
    /// Any other `forwardingType`, as sent.
    Other(String),
}

impl ForwardKind {
    fn parse(text: &str) -> Self {
        match text.trim() {
            "forwardImmediate" => Self::Immediate,
            "forwardBusy" => Self::Busy,
            "forwardNoAns" => Self::NoAnswer,
            other => Self::Other(clip(other, 64)),
        }
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
    el.ns.as_deref().is_none_or(|n| n == ns::CSTA)
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

/// Parses a NOTIFY body of the `as-feature-event` package: a single event,
/// or a multipart body of several. Parts whose media type is neither
/// `application/x-as-feature-event+xml` nor generic XML are skipped; a
/// malformed event part makes the whole body an error, because applying
/// half of a feature snapshot would misstate the phone's keys.
pub fn parse_feature_events(
    content_type: &str,
    body: &[u8],
) -> Result<Vec<FeatureEvent>, BodyError> {
    check_size(body)?;
    let (ty, _) = media_type(content_type);
    if ty.starts_with("multipart/") {
        let mp = parse_multipart(content_type, body)?;
        let mut events = Vec::new();
        for part in &mp.parts {
            if is_feature_type(&part.media_type()) {
                events.extend(parse_feature_event(&part.body)?);
            }
        }
        Ok(events)
    } else if is_feature_type(&ty) || ty.is_empty() {
        Ok(parse_feature_event(body)?.into_iter().collect())
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

    /// Diagnostics: `dnd` and each forward rule per device.
    pub fn raw(&self) -> Vec<VendorValue> {
        let mut raw = Vec::new();
        for (dev, f) in self.devices.iter().take(8) {
            raw.push(VendorValue {
                name: format!("{dev}.doNotDisturbOn"),
                value: f.dnd.to_string(),
            });
            for (kind, s) in &f.forwards {
                raw.push(VendorValue {
                    name: format!("{dev}.{}", kind.as_str()),
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
        let dnd = parse_feature_events(FE, fx::DND_EVENT.as_bytes()).unwrap();
        assert_eq!(
            dnd,
            vec![FeatureEvent::Dnd {
                device: "2001".into(),
                on: true
            }]
        );
        let fwd = parse_feature_events(FE, fx::FORWARDING_EVENT.as_bytes()).unwrap();
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
        .unwrap();
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
            parse_feature_events(FE, body).unwrap(),
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
        assert_eq!(parse_feature_events(FE, set_dnd).unwrap(), vec![]);
        assert_eq!(parse_feature_events(FE, set_fwd).unwrap(), vec![]);
        // Non-feature parts of a multipart body are skipped.
        let body = "--b\r\nContent-Type: text/plain\r\n\r\nhello\r\n--b\r\nContent-Type: application/x-as-feature-event+xml\r\n\r\n<DoNotDisturbEvent><doNotDisturbOn>1</doNotDisturbOn></DoNotDisturbEvent>\r\n--b--";
        assert_eq!(
            parse_feature_events("multipart/mixed;boundary=b", body.as_bytes()).unwrap(),
            vec![FeatureEvent::Dnd {
                device: String::new(),
                on: true
            }]
        );
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
        // A truncated multipart snapshot is refused as a whole.
        let cut = &fx::DFKS_MULTIPART_BODY[..fx::DFKS_MULTIPART_BODY.len() / 2];
        assert!(parse_feature_events(fx::DFKS_MULTIPART_CONTENT_TYPE, cut.as_bytes()).is_err());
        let full = fx::FORWARDING_EVENT.as_bytes();
        for cut in 1..full.len() - 2 {
            assert!(parse_feature_events(FE, &full[..cut]).is_err(), "cut {cut}");
        }
    }
}
