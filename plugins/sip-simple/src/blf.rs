//! The lines of a busy lamp field list (RFC 4662 with dialog-info, as
//! BroadWorks serves them to Yealink and Polycom phones): one dialog-info
//! tracker per resource and instance, for one list subscription.

use std::collections::BTreeMap;

use presence_connector_sdk::LineState;

use crate::body::dialog_info::line_state_of_all;
use crate::body::{ApplyOutcome, DialogInfo, DialogTracker};

#[derive(Default)]
pub struct Lines {
    /// By endpoint, then by instance (the RLS's back-end subscription; a
    /// forked one has several).
    trackers: BTreeMap<String, BTreeMap<String, DialogTracker>>,
    /// CSeq of the last list NOTIFY applied in this dialog.
    cseq: Option<u32>,
}

impl Lines {
    /// Whether a list NOTIFY with this CSeq is newer than the last one
    /// applied (and, if so, take it as the last). Within a list the
    /// NOTIFY's CSeq orders the resources' documents, so an older NOTIFY
    /// (reordered over UDP) or a retransmission is not applied again.
    pub fn newer(&mut self, cseq: Option<u32>) -> bool {
        match (cseq, self.cseq) {
            (Some(new), Some(last)) if new <= last => false,
            (Some(new), _) => {
                self.cseq = Some(new);
                true
            }
            (None, _) => true,
        }
    }

    /// A resource's dialog-info part. A full document replaces what the
    /// instance had, whatever its version: versions count within the
    /// RLS's back-end subscription, which the RLS may renew without
    /// changing the instance id (Kamailio gives every instance the same
    /// id), and the list's CSeq already orders the documents. Partial
    /// documents merge by version, as in a dialog subscription of our own.
    pub fn apply(&mut self, endpoint: &str, instance: &str, doc: DialogInfo) -> ApplyOutcome {
        let t = self.tracker(endpoint, instance);
        if doc.full {
            t.reset();
        }
        t.apply(doc)
    }

    /// An empty part: nothing published for the resource, no calls.
    pub fn clear(&mut self, endpoint: &str, instance: &str) {
        self.tracker(endpoint, instance).clear();
    }

    /// The instance ended: what it said no longer holds.
    pub fn remove(&mut self, endpoint: &str, instance: &str) {
        if let Some(by_instance) = self.trackers.get_mut(endpoint) {
            by_instance.remove(instance);
        }
    }

    /// The endpoint is no longer watched.
    pub fn forget(&mut self, endpoint: &str) {
        self.trackers.remove(endpoint);
    }

    /// The line of an endpoint: its instances together; unknown until the
    /// list said something about it.
    pub fn line(&self, endpoint: &str) -> LineState {
        self.trackers
            .get(endpoint)
            .map_or(LineState::Unknown, |by_instance| {
                line_state_of_all(by_instance.values())
            })
    }

    fn tracker(&mut self, endpoint: &str, instance: &str) -> &mut DialogTracker {
        self.trackers
            .entry(endpoint.to_string())
            .or_default()
            .entry(instance.to_string())
            .or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body::parse_dialog_info;

    fn doc(version: u64, state: &str, dialogs: &str) -> DialogInfo {
        parse_dialog_info(format!(
            r#"<dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" version="{version}" state="{state}" entity="sip:4607@x">{dialogs}</dialog-info>"#
        ).as_bytes())
        .unwrap()
    }

    const RINGING: &str = r#"<dialog id="a" direction="recipient"><state>early</state></dialog>"#;
    const TALKING: &str =
        r#"<dialog id="a" direction="recipient"><state>confirmed</state></dialog>"#;

    #[test]
    fn a_renewed_back_end_restarts_versions() {
        let mut l = Lines::default();
        assert_eq!(l.line("4607"), LineState::Unknown);
        l.apply("4607", "i", doc(7, "full", TALKING));
        assert_eq!(l.line("4607"), LineState::InCall);
        // The RLS renewed its back-end subscription: version 0 again.
        assert!(l.apply("4607", "i", doc(0, "full", "")).applied);
        assert_eq!(l.line("4607"), LineState::Idle);
        // Partial documents still follow versions (from 0 on now).
        let out = l.apply("4607", "i", doc(1, "partial", RINGING));
        assert!(out.applied && !out.needs_refresh);
        assert_eq!(l.line("4607"), LineState::Ringing);
        assert!(
            l.apply("4607", "i", doc(5, "partial", TALKING))
                .needs_refresh
        );
    }

    #[test]
    fn instances_empty_parts_and_ends() {
        let mut l = Lines::default();
        l.clear("4605", "i1");
        assert_eq!(l.line("4605"), LineState::Idle);
        l.apply("4605", "i2", doc(1, "full", RINGING));
        assert_eq!(l.line("4605"), LineState::Ringing);
        l.remove("4605", "i2");
        assert_eq!(l.line("4605"), LineState::Idle);
        l.remove("4605", "i1");
        assert_eq!(l.line("4605"), LineState::Unknown);
        l.clear("4605", "i1");
        l.forget("4605");
        assert_eq!(l.line("4605"), LineState::Unknown);
    }

    #[test]
    fn older_list_notifies_are_not_applied() {
        let mut l = Lines::default();
        assert!(l.newer(Some(3)));
        assert!(!l.newer(Some(3)), "a retransmission");
        assert!(!l.newer(Some(2)), "reordered");
        assert!(l.newer(Some(4)));
        assert!(l.newer(None));
    }
}
