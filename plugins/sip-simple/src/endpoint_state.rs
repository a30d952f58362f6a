//! One endpoint, several subscriptions: with `subscribe: both` an endpoint
//! has a presence and a dialog subscription (and as-feature-event, or a
//! list covering it), but the contract knows one state per endpoint. Each
//! subscription's last word is kept and the endpoint reports the best of
//! them, since its data flows while any of them does, naming in the detail
//! the ones that fail. Otherwise whichever spoke last would win: a server
//! without the dialog package (489) would put a working presence watch in
//! error, or a presence NOTIFY would hide a refused BLF subscription.

use std::collections::{BTreeMap, HashMap};

use presence_connector_sdk::EndpointState;

use crate::core::Kind;

#[derive(Default)]
pub struct EndpointStates {
    by_endpoint: HashMap<String, BTreeMap<Kind, (EndpointState, Option<String>)>>,
}

impl EndpointStates {
    /// Record what the `kind` subscription says about `endpoint`; returns
    /// the endpoint's state and detail to report.
    pub fn set(
        &mut self,
        endpoint: &str,
        kind: Kind,
        state: EndpointState,
        detail: Option<String>,
    ) -> (EndpointState, Option<String>) {
        let said = self.by_endpoint.entry(endpoint.to_string()).or_default();
        said.insert(kind, (state, detail));
        combine(said)
    }

    /// The endpoint is no longer watched.
    pub fn forget(&mut self, endpoint: &str) {
        self.by_endpoint.remove(endpoint);
    }
}

/// Better first: data flows, then may flow soon, then the failures, the
/// server's verdict on this endpoint before a failure of any kind (a 404
/// says more about the endpoint than a package the server lacks).
fn rank(state: EndpointState) -> u8 {
    match state {
        EndpointState::Active => 0,
        EndpointState::Requesting => 1,
        EndpointState::NotFound => 2,
        EndpointState::AccessDenied => 3,
        EndpointState::Error => 4,
    }
}

fn word(state: EndpointState) -> &'static str {
    match state {
        EndpointState::Active => "active",
        EndpointState::Requesting => "requesting",
        EndpointState::Error => "error",
        EndpointState::AccessDenied => "access denied",
        EndpointState::NotFound => "not found",
    }
}

fn combine(
    said: &BTreeMap<Kind, (EndpointState, Option<String>)>,
) -> (EndpointState, Option<String>) {
    let Some((_, (best, detail))) = said.iter().min_by_key(|(_, (s, _))| rank(*s)) else {
        return (EndpointState::Requesting, None);
    };
    // A subscription still waiting for its first NOTIFY is no news.
    let failing = said
        .iter()
        .filter(|(_, (s, _))| s != best && rank(*s) > rank(EndpointState::Requesting))
        .map(|(kind, (s, d))| format!("{}: {}", kind.label(), d.as_deref().unwrap_or(word(*s))));
    let parts: Vec<String> = detail.iter().cloned().chain(failing).collect();
    (*best, (!parts.is_empty()).then(|| parts.join("; ")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use EndpointState::*;

    #[test]
    fn one_subscription_speaks_for_itself() {
        let mut s = EndpointStates::default();
        assert_eq!(
            s.set("a", Kind::Presence, Requesting, None),
            (Requesting, None)
        );
        let busy = Some("403 Forbidden".to_string());
        assert_eq!(
            s.set("a", Kind::Presence, AccessDenied, busy.clone()),
            (AccessDenied, busy)
        );
    }

    #[test]
    fn the_best_wins_and_failures_are_named() {
        let mut s = EndpointStates::default();
        s.set("a", Kind::Presence, Requesting, None);
        s.set("a", Kind::Dialog, Requesting, None);
        // A server without the dialog package does not spoil presence.
        let no_dialog = "the server does not support the dialog event package (489)";
        assert_eq!(
            s.set("a", Kind::Dialog, Error, Some(no_dialog.into())),
            (Requesting, Some(format!("dialog: {no_dialog}")))
        );
        assert_eq!(
            s.set(
                "a",
                Kind::Presence,
                Active,
                Some("no presence published yet".into())
            ),
            (
                Active,
                Some(format!("no presence published yet; dialog: {no_dialog}"))
            )
        );
        // Still waiting is no failure; without a detail the state is named.
        s.set("b", Kind::Presence, Active, None);
        assert_eq!(s.set("b", Kind::Dialog, Requesting, None), (Active, None));
        assert_eq!(
            s.set("b", Kind::DialogList, NotFound, None),
            (Active, Some("BLF list: not found".into()))
        );
        // All failing: the verdict on the endpoint first, the others named.
        s.set("c", Kind::Dialog, Error, Some("no answer (Timer F)".into()));
        assert_eq!(
            s.set("c", Kind::Presence, NotFound, Some("404 Not Found".into())),
            (
                NotFound,
                Some("404 Not Found; dialog: no answer (Timer F)".into())
            )
        );
        s.forget("c");
        assert_eq!(s.set("c", Kind::Features, Active, None), (Active, None));
    }
}
