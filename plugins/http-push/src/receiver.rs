//! The connector's state and everything it decides, with no host calls: it
//! takes the clock as an argument and returns what to report, so the whole
//! request flow runs in native unit tests. `lib.rs` feeds it and carries out
//! the reports.

use std::collections::HashSet;

use presence_connector_sdk::log::Level;
use presence_connector_sdk::{
    EndpointId, EndpointState, PresenceUpdate, WebhookRequest, WebhookResponse,
};
use serde_json::json;

use crate::payload::{self, BodyError};
use crate::replay::{ReplayError, ReplayGuard};
use crate::response;
use crate::settings::Settings;
use crate::signature::{self, AuthError};

/// The one route this connector serves, below `/hooks/{instance}`.
pub const PUSH_PATH: &str = "/presence";

/// Something to tell the hub: the SDK's report type, of which this connector
/// uses `Presence` and `EndpointState`.
pub use presence_connector_sdk::Report;

/// The answer to a webhook request and what it caused.
#[derive(Debug)]
pub struct Outcome {
    /// The HTTP response for the sender.
    pub response: WebhookResponse,
    /// Reports to send, in order; empty unless the request was accepted.
    pub reports: Vec<Report>,
    /// A line for the hub's log, where an operator should hear about it.
    pub log: Option<(Level, String)>,
}

/// A refused request: its response and log line.
struct Rejection {
    response: WebhookResponse,
    log: Option<(Level, String)>,
}

impl Rejection {
    fn new(status: u16, message: &str) -> Self {
        Self {
            response: response::error(status, message),
            log: None,
        }
    }

    fn logged(mut self, level: Level) -> Self {
        let status = self.response.status;
        let body = String::from_utf8_lossy(&self.response.body);
        self.log = Some((level, format!("refused a push with {status}: {body}")));
        self
    }
}

/// The connector instance's state.
#[derive(Debug, Default)]
pub struct Receiver {
    /// `None` until `configure` succeeds, and after it fails.
    settings: Option<Settings>,
    replays: ReplayGuard,
    /// Endpoints that have pushed at least once since the instance started.
    seen: HashSet<EndpointId>,
    /// Endpoints the hub asked for.
    watched: HashSet<EndpointId>,
}

impl Receiver {
    /// Applies a validated configuration.
    pub fn configure(&mut self, settings: Settings) {
        self.settings = Some(settings);
    }

    /// Forgets the configuration: requests are refused until the next
    /// successful `configure`. (In the component the SDK drops a connector
    /// whose configuration fails, which has the same effect.)
    #[cfg(test)]
    pub fn unconfigure(&mut self) {
        self.settings = None;
    }

    /// Starts watching; returns the endpoint states to report for newly
    /// watched endpoints.
    pub fn watch(&mut self, endpoints: Vec<EndpointId>) -> Vec<Report> {
        endpoints
            .into_iter()
            .filter(|endpoint| self.watched.insert(endpoint.clone()))
            .map(|endpoint| {
                if self.seen.contains(&endpoint) {
                    endpoint_state(endpoint, EndpointState::Active, None)
                } else {
                    endpoint_state(
                        endpoint,
                        EndpointState::Requesting,
                        Some("waiting for the first push"),
                    )
                }
            })
            .collect()
    }

    /// Stops watching.
    pub fn unwatch(&mut self, endpoints: &[EndpointId]) {
        for endpoint in endpoints {
            self.watched.remove(endpoint);
        }
    }

    /// Answers a webhook request received at `now_ms` (hub clock, Unix ms).
    pub fn handle_webhook(&mut self, request: &WebhookRequest, now_ms: u64) -> Outcome {
        match self.accept(request, now_ms) {
            Ok(updates) => {
                let accepted = updates.len();
                Outcome {
                    response: response::json(202, &json!({ "accepted": accepted })),
                    reports: self.reports_for(updates),
                    log: Some((Level::Debug, format!("accepted {accepted} updates"))),
                }
            }
            Err(rejection) => Outcome {
                response: rejection.response,
                reports: Vec::new(),
                log: rejection.log,
            },
        }
    }

    /// Routes, authenticates and parses a request. Nothing is remembered
    /// unless the whole request is accepted.
    fn accept(
        &mut self,
        request: &WebhookRequest,
        now_ms: u64,
    ) -> Result<Vec<PresenceUpdate>, Rejection> {
        if request.path != PUSH_PATH {
            return Err(Rejection::new(404, "no such route; push to POST /presence"));
        }
        if request.method != "POST" {
            let rejection = Rejection::new(405, "only POST is allowed on /presence");
            return Err(Rejection {
                response: response::with_header(rejection.response, "allow", "POST"),
                ..rejection
            });
        }
        let Some(settings) = &self.settings else {
            return Err(Rejection::new(503, "the connector is not configured"));
        };

        let verified = signature::verify(
            &request.headers,
            &request.body,
            &settings.secret,
            settings.max_skew_secs,
            now_ms,
        )
        .map_err(|error| {
            // A wrong clock is for the operator to fix; the rest is routine.
            let level = match error {
                AuthError::ClockSkew { .. } => Level::Warn,
                _ => Level::Info,
            };
            Rejection::new(401, &error.message()).logged(level)
        })?;

        self.replays
            .check(&verified.signature, now_ms, settings.max_skew_secs)
            .map_err(|error| match error {
                ReplayError::Replayed => Rejection::new(
                    409,
                    "this signature was already accepted: the request is a replay",
                )
                .logged(Level::Warn),
                ReplayError::Full => {
                    let rejection = Rejection::new(
                        429,
                        "too many requests in the replay window; batch updates",
                    )
                    .logged(Level::Warn);
                    Rejection {
                        response: response::with_header(rejection.response, "retry-after", "1"),
                        ..rejection
                    }
                }
            })?;

        let mut updates = payload::parse(&request.body).map_err(|error| {
            let BodyError { message, field } = error;
            Rejection {
                response: response::json(400, &json!({ "error": message, "field": field })),
                log: None,
            }
            .logged(Level::Info)
        })?;

        self.replays
            .record(verified.signature, verified.timestamp_secs);
        // The operator's validity for senders that re-send periodically;
        // an update's own wins.
        for u in &mut updates {
            u.valid_for_ms = u.valid_for_ms.or(settings.state_valid_ms);
        }
        Ok(updates)
    }

    /// The reports for accepted updates: an `active` state the first time an
    /// endpoint is seen, then its presence.
    fn reports_for(&mut self, updates: Vec<PresenceUpdate>) -> Vec<Report> {
        let mut reports = Vec::with_capacity(updates.len());
        for update in updates {
            if self.seen.insert(update.endpoint.clone()) {
                reports.push(endpoint_state(
                    update.endpoint.clone(),
                    EndpointState::Active,
                    None,
                ));
            }
            reports.push(Report::Presence(update));
        }
        reports
    }
}

fn endpoint_state(endpoint: EndpointId, state: EndpointState, detail: Option<&str>) -> Report {
    Report::EndpointState {
        endpoint,
        state,
        detail: detail.map(str::to_owned),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signature::sign;
    use presence_connector_sdk::{Availability, Header, RichPresence, UpdateOrigin};
    use serde_json::Value;

    const SECRET: &[u8] = b"0123456789abcdef";
    const NOW_MS: u64 = 1_700_000_000_000;
    const NOW_SECS: &str = "1700000000";

    fn receiver() -> Receiver {
        let mut receiver = Receiver::default();
        receiver.configure(Settings {
            secret: SECRET.to_vec(),
            max_skew_secs: 300,
            state_valid_ms: None,
        });
        receiver
    }

    fn signed_at(timestamp: &str, body: &Value) -> WebhookRequest {
        let body = body.to_string().into_bytes();
        WebhookRequest {
            method: "POST".into(),
            path: PUSH_PATH.into(),
            query: String::new(),
            headers: vec![
                Header {
                    name: "X-Hub-Timestamp".into(),
                    value: timestamp.into(),
                },
                Header {
                    name: "X-Hub-Signature".into(),
                    value: sign(SECRET, timestamp, &body),
                },
            ],
            body,
        }
    }

    fn signed(body: &Value) -> WebhookRequest {
        signed_at(NOW_SECS, body)
    }

    fn body_json(outcome: &Outcome) -> Value {
        serde_json::from_slice(&outcome.response.body).unwrap()
    }

    fn header<'a>(outcome: &'a Outcome, name: &str) -> Option<&'a str> {
        outcome
            .response
            .headers
            .iter()
            .find(|h| h.name == name)
            .map(|h| h.value.as_str())
    }

    fn away(endpoint: &str) -> Value {
        json!({"endpoint": endpoint, "rich": {"availability": "away"}})
    }

    #[test]
    fn accepts_a_signed_push_and_reports_it() {
        let mut receiver = receiver();
        let outcome = receiver.handle_webhook(&signed(&away("1001")), NOW_MS);
        assert_eq!(outcome.response.status, 202);
        assert_eq!(body_json(&outcome), json!({"accepted": 1}));
        assert_eq!(header(&outcome, "content-type"), Some("application/json"));
        let presence = PresenceUpdate {
            endpoint: "1001".into(),
            observed_at: None,
            ordering: None,
            origin: UpdateOrigin::Platform,
            telephony: None,
            rich: Some(RichPresence {
                availability: Availability::Away,
                activity: None,
                note: None,
            }),
            calendar: None,
            valid_for_ms: None,
            raw: Vec::new(),
        };
        assert_eq!(
            outcome.reports,
            vec![
                endpoint_state("1001".into(), EndpointState::Active, None),
                Report::Presence(presence.clone()),
            ]
        );

        // Second push of the same endpoint: presence only.
        let body = json!({"endpoint": "1001", "rich": {"availability": "away"}, "sequence": 2});
        let outcome = receiver.handle_webhook(&signed(&body), NOW_MS);
        assert_eq!(outcome.response.status, 202);
        assert!(matches!(&outcome.reports[..], [Report::Presence(_)]));
    }

    #[test]
    fn pushed_states_carry_the_validity_the_update_or_the_operator_gives() {
        let validity = |receiver: &mut Receiver, body: Value| {
            let outcome = receiver.handle_webhook(&signed(&body), NOW_MS);
            assert_eq!(outcome.response.status, 202, "{}", body_json(&outcome));
            outcome.reports.iter().find_map(|r| match r {
                Report::Presence(p) => Some(p.valid_for_ms),
                _ => None,
            })
        };
        let mut r = receiver();
        assert_eq!(validity(&mut r, away("1001")), Some(None));
        let mut own = away("1001");
        own["valid_for_seconds"] = json!(90);
        assert_eq!(validity(&mut r, own.clone()), Some(Some(90_000)));
        r.configure(Settings {
            secret: SECRET.to_vec(),
            max_skew_secs: 300,
            state_valid_ms: Some(60_000),
        });
        assert_eq!(validity(&mut r, away("1002")), Some(Some(60_000)));
        own["sequence"] = json!(7);
        assert_eq!(validity(&mut r, own), Some(Some(90_000)));
        let mut bad = away("1003");
        bad["valid_for_seconds"] = json!(0);
        let outcome = r.handle_webhook(&signed(&bad), NOW_MS);
        assert_eq!(outcome.response.status, 400);
        assert_eq!(body_json(&outcome)["field"], "valid_for_seconds");
    }

    #[test]
    fn routes_only_post_presence() {
        let mut receiver = receiver();
        let mut request = signed(&away("1"));
        request.path = "/other".into();
        assert_eq!(
            receiver.handle_webhook(&request, NOW_MS).response.status,
            404
        );

        let mut request = signed(&away("1"));
        request.method = "GET".into();
        let outcome = receiver.handle_webhook(&request, NOW_MS);
        assert_eq!(outcome.response.status, 405);
        assert_eq!(header(&outcome, "allow"), Some("POST"));
        assert!(outcome.reports.is_empty());
    }

    #[test]
    fn refuses_everything_until_configured() {
        let mut receiver = Receiver::default();
        let outcome = receiver.handle_webhook(&signed(&away("1")), NOW_MS);
        assert_eq!(outcome.response.status, 503);

        let mut receiver = self::receiver();
        receiver.unconfigure();
        assert_eq!(
            receiver
                .handle_webhook(&signed(&away("1")), NOW_MS)
                .response
                .status,
            503
        );
    }

    #[test]
    fn refuses_bad_signatures_and_skewed_clocks_with_401() {
        let mut receiver = receiver();
        let mut request = signed(&away("1"));
        request.body = away("2").to_string().into_bytes();
        let outcome = receiver.handle_webhook(&request, NOW_MS);
        assert_eq!(outcome.response.status, 401);
        assert!(outcome.reports.is_empty());

        let mut request = signed(&away("1"));
        request.headers.remove(1);
        assert_eq!(
            receiver.handle_webhook(&request, NOW_MS).response.status,
            401
        );

        let outcome = receiver.handle_webhook(&signed_at("1699999000", &away("1")), NOW_MS);
        assert_eq!(outcome.response.status, 401);
        let message = body_json(&outcome)["error"].as_str().unwrap().to_owned();
        assert!(message.contains("clock is off"), "{message}");
        assert!(matches!(outcome.log, Some((Level::Warn, _))));
    }

    #[test]
    fn refuses_a_replay_with_409_until_the_window_passes() {
        let mut receiver = receiver();
        let request = signed(&away("1"));
        assert_eq!(
            receiver.handle_webhook(&request, NOW_MS).response.status,
            202
        );
        let replay = receiver.handle_webhook(&request, NOW_MS + 5_000);
        assert_eq!(replay.response.status, 409);
        assert!(replay.reports.is_empty());
        // Past the window the timestamp itself is refused.
        assert_eq!(
            receiver
                .handle_webhook(&request, NOW_MS + 301_000)
                .response
                .status,
            401
        );
    }

    #[test]
    fn a_refused_body_is_not_remembered_as_seen() {
        let mut receiver = receiver();
        let bad = signed(&json!({"endpoint": "1"}));
        assert_eq!(receiver.handle_webhook(&bad, NOW_MS).response.status, 400);
        // The same signed request again is still a 400, not a 409.
        assert_eq!(receiver.handle_webhook(&bad, NOW_MS).response.status, 400);
    }

    #[test]
    fn a_batch_is_all_or_nothing() {
        let mut receiver = receiver();
        let bad_batch = json!({"updates": [
            away("1"),
            away("2"),
            {"endpoint": "3", "rich": {"availability": "sleeping"}},
        ]});
        let outcome = receiver.handle_webhook(&signed(&bad_batch), NOW_MS);
        assert_eq!(outcome.response.status, 400);
        let body = body_json(&outcome);
        assert_eq!(body["field"], "updates[2].rich.availability");
        assert!(
            body["error"].as_str().unwrap().contains("sleeping"),
            "{body}"
        );
        assert!(outcome.reports.is_empty());
        // Nothing of the refused batch counts as seen.
        assert_eq!(
            receiver.watch(vec!["1".into()]),
            vec![endpoint_state(
                "1".into(),
                EndpointState::Requesting,
                Some("waiting for the first push")
            )]
        );

        let good_batch = json!({"updates": [away("1"), away("2"), away("1")]});
        let outcome = receiver.handle_webhook(&signed(&good_batch), NOW_MS);
        assert_eq!(outcome.response.status, 202);
        assert_eq!(body_json(&outcome), json!({"accepted": 3}));
        let states = outcome
            .reports
            .iter()
            .filter(|r| matches!(r, Report::EndpointState { .. }))
            .count();
        let presences = outcome.reports.len() - states;
        assert_eq!((states, presences), (2, 3));
    }

    #[test]
    fn watch_reports_requesting_until_the_first_push() {
        let mut receiver = receiver();
        receiver.handle_webhook(&signed(&away("pushed")), NOW_MS);
        let reports = receiver.watch(vec!["pushed".into(), "silent".into(), "silent".into()]);
        assert_eq!(
            reports,
            vec![
                endpoint_state("pushed".into(), EndpointState::Active, None),
                endpoint_state(
                    "silent".into(),
                    EndpointState::Requesting,
                    Some("waiting for the first push")
                ),
            ]
        );
        // Already watched: nothing new to say.
        assert!(receiver.watch(vec!["silent".into()]).is_empty());
        receiver.unwatch(&["silent".into()]);
        assert_eq!(receiver.watch(vec!["silent".into()]).len(), 1);
    }
}
