//! UPN -> object id look-ups: `GET /users/{upn}` in JSON batches of up to
//! 20, paced to a budget, refused users asked again later each time, and the
//! answers cached in the key-value store.
//!
//! A user look-up costs one resource unit of the directory's budget (3,500
//! per 10 s per app and tenant in a tenant under 50 users, more in bigger
//! ones), each request of a JSON batch counted on its own: the budget below
//! leaves most of it to other instances of the app and to everything else
//! it does.

use std::collections::BTreeSet;

use presence_connector_sdk::EndpointState;

use super::backoff::Refusal;
use super::writes::failure;
use super::{
    Action, Core, Level, OpClass, Outcome, Purpose, Response, Slot, TimerKey, classify, keys,
};
use crate::wire::{self, Batch, BatchAnswer, BatchRequest, User};

/// Look-ups per window the connector allows itself.
pub(super) const LOOKUP_BUDGET: usize = 1_000;
pub(super) const LOOKUP_WINDOW_MS: u64 = 10_000;
/// JSON batches of look-ups in flight at once.
const LOOKUP_BATCHES: usize = 2;
/// The first and the longest wait before a refused look-up is tried again.
const LOOKUP_RETRY_MS: u64 = 60_000;
const LOOKUP_RETRY_MAX_MS: u64 = 3_600_000;

impl Core {
    /// Send look-ups that may go: at most [`LOOKUP_BATCHES`] batches of
    /// [`wire::MAX_BATCH`] in flight, within the budget.
    pub(super) fn pump_lookups(&mut self, token: &str, now: u64) {
        while self
            .lookup_log
            .front()
            .is_some_and(|t| now.saturating_sub(*t) >= LOOKUP_WINDOW_MS)
        {
            self.lookup_log.pop_front();
        }
        loop {
            let batches = self
                .inflight
                .values()
                .filter(|p| matches!(p, Purpose::Lookup(_)))
                .count();
            if batches >= LOOKUP_BATCHES || self.to_resolve.is_empty() {
                return;
            }
            let room = LOOKUP_BUDGET.saturating_sub(self.lookup_log.len());
            if room == 0 {
                let oldest = self.lookup_log.front().copied().unwrap_or(now);
                let wait = (oldest + LOOKUP_WINDOW_MS).saturating_sub(now).max(1);
                self.set_timer(TimerKey::LookupBudget, wait);
                return;
            }
            let mut eps = Vec::new();
            while eps.len() < room.min(wire::MAX_BATCH) {
                let Some(ep) = self.to_resolve.pop_first() else {
                    break;
                };
                match self.id_of(&ep) {
                    Some(id) => self.bind(&ep, &id),
                    None => eps.push(ep),
                }
            }
            if eps.is_empty() {
                return;
            }
            let requests = eps
                .iter()
                .enumerate()
                .map(|(i, ep)| BatchRequest {
                    id: (i + 1).to_string(),
                    method: "GET",
                    url: format!(
                        "/users/{}?$select=id,userPrincipalName",
                        wire::encode_upn(ep)
                    ),
                })
                .collect();
            let body = serde_json::to_value(Batch { requests }).ok();
            let req = self.graph_request("POST", "/$batch", body, token);
            for ep in &eps {
                self.lookup_log.push_back(now);
                self.resolving.insert(ep.clone());
            }
            self.send(Purpose::Lookup(eps), req);
        }
    }

    /// Graph answered a batch of look-ups. Each answer inside is taken as
    /// its own: a refused token, throttling or a server error puts that
    /// look-up back (and says so once for the batch), anything else settles
    /// it.
    pub(super) fn on_lookups(&mut self, eps: Vec<String>, outcome: Outcome, now: u64) {
        let resp = match outcome {
            Outcome::Ok(resp) => resp,
            Outcome::Forbidden(m) => return self.batch_refused(eps, 403, m, now),
            Outcome::NotFound(m) => return self.batch_refused(eps, 404, m, now),
            Outcome::Rejected(status, m) => return self.batch_refused(eps, status, m, now),
            // Taken care of by the caller.
            Outcome::Unauthorized(_) | Outcome::Throttled(..) | Outcome::Transient(..) => return,
        };
        let answer = match serde_json::from_slice::<BatchAnswer>(&resp.body) {
            Ok(a) => a,
            Err(e) => {
                let why = format!("unreadable batch answer: {e}");
                return self.batch_refused(eps, resp.status, why, now);
            }
        };
        let mut unanswered: BTreeSet<usize> = (0..eps.len()).collect();
        let mut unauthorized = None;
        let mut throttled: Option<(u16, Option<u64>)> = None;
        let mut transient = None;
        for r in answer.responses {
            let Some(i) = r.id.parse::<usize>().ok().and_then(|n| n.checked_sub(1)) else {
                continue;
            };
            let Some(ep) = eps.get(i).filter(|_| unanswered.remove(&i)).cloned() else {
                continue;
            };
            let item = Response {
                status: r.status,
                headers: r.header_list(),
                body: r.body_bytes(),
            };
            match classify(Ok(item), now) {
                Outcome::Unauthorized(m) => {
                    unauthorized = Some(m);
                    self.lookup_again(ep);
                }
                Outcome::Throttled(status, wait) => {
                    let longest = throttled.and_then(|t| t.1).max(wait);
                    throttled = Some((status, longest));
                    self.lookup_again(ep);
                }
                Outcome::Transient(_, m) => {
                    transient = Some(m);
                    self.lookup_again(ep);
                }
                answered => self.resolve_answer(ep, answered, now),
            }
        }
        // Graph owes an answer for each request; one missing is asked again.
        for i in unanswered {
            self.lookup_again(eps[i].clone());
        }
        if let Some(m) = unauthorized {
            self.unauthorized(Slot::Primary, &m, now);
        }
        if let Some((status, wait)) = throttled {
            self.throttled(status, wait, now);
        } else if let Some(m) = transient {
            self.unreachable(m, now);
        }
        self.flush_users();
    }

    /// Graph refused a whole batch of look-ups (or answered it unreadably):
    /// each is tried again later, and a write waiting for one fails.
    fn batch_refused(&mut self, eps: Vec<String>, status: u16, m: String, now: u64) {
        self.log(
            Level::Error,
            format!("Graph refused a batch of {} look-ups: {m}", eps.len()),
        );
        for ep in eps {
            self.resolving.remove(&ep);
            let why = format!("looking the user up failed: {m}");
            self.lookup_refused(&ep, EndpointState::Error, why.clone(), now);
            self.fail_queued_write(&ep, failure(why, false, None, Some(status)));
        }
        self.flush_users();
    }

    /// A look-up that did not go through is asked again.
    pub(super) fn lookup_again(&mut self, ep: String) {
        self.resolving.remove(&ep);
        self.to_resolve.insert(ep);
    }

    fn resolve_answer(&mut self, ep: String, outcome: Outcome, now: u64) {
        self.resolving.remove(&ep);
        match outcome {
            Outcome::Ok(resp) => match serde_json::from_slice::<User>(&resp.body) {
                Ok(user) => {
                    self.forbidden.remove(&OpClass::Users);
                    let id = super::norm_id(&user.id);
                    let key = ep.to_ascii_lowercase();
                    if self.upn_cache.get(&key) != Some(&id) {
                        self.upn_cache.insert(key, id.clone());
                        self.users_dirty += 1;
                    }
                    if let Some(e) = self.endpoints.get_mut(&ep) {
                        e.refused = None;
                        self.bind(&ep, &id);
                    }
                }
                Err(e) => {
                    self.log(Level::Error, format!("user {ep}: unreadable answer: {e}"));
                    self.lookup_refused(&ep, EndpointState::Error, e.to_string(), now);
                }
            },
            Outcome::NotFound(m) => self.no_such_user(&ep, 404, m, now),
            Outcome::Rejected(status, m) => self.no_such_user(&ep, status, m, now),
            Outcome::Forbidden(m) => {
                let what = "look up users";
                let text = self.refusal_text(OpClass::Users, what, &m);
                self.lookup_refused(&ep, EndpointState::AccessDenied, text.clone(), now);
                // One user refused is that user's; every one refused is
                // the app's permission.
                if self.every_look_up_refused() {
                    self.forbid(OpClass::Users, what, &m);
                } else {
                    self.log(Level::Warn, format!("looking up {ep}: {text}"));
                }
                self.fail_queued_write(&ep, failure(text, false, None, Some(403)));
            }
            // Taken care of by the caller.
            Outcome::Unauthorized(_) | Outcome::Throttled(..) | Outcome::Transient(..) => {}
        }
    }

    /// Whether Graph refused every watched UPN (none is known).
    fn every_look_up_refused(&self) -> bool {
        let mut upns = self
            .endpoints
            .iter()
            .filter(|(ep, _)| !wire::is_guid(ep))
            .peekable();
        upns.peek().is_some()
            && upns.all(|(_, e)| e.id.is_none() && e.state == Some(EndpointState::AccessDenied))
    }

    /// Graph knows no user by this name (or refuses the name).
    fn no_such_user(&mut self, ep: &str, status: u16, m: String, now: u64) {
        self.forbidden.remove(&OpClass::Users);
        let why = format!("no such user in the tenant ({m})");
        self.lookup_refused(ep, EndpointState::NotFound, why.clone(), now);
        self.fail_queued_write(ep, failure(why, false, None, Some(status)));
    }

    /// A watched endpoint's look-up was refused: it is tried again later
    /// each time (consent may be granted, the user created).
    fn lookup_refused(&mut self, ep: &str, state: EndpointState, why: String, now: u64) {
        let Some(e) = self.endpoints.get_mut(ep) else {
            return;
        };
        let r = Refusal::strike(e.refused, now, LOOKUP_RETRY_MS, LOOKUP_RETRY_MAX_MS);
        e.refused = Some(r);
        let detail = format!("{why}; looked up again in {} s", (r.until - now) / 1000);
        self.endpoint_state(ep, state, Some(detail));
        self.arm_lookups(now);
    }

    /// The retry timer of refused look-ups fired.
    pub(super) fn lookups_due(&mut self, now: u64) {
        let due: Vec<String> = self
            .endpoints
            .iter()
            .filter(|(ep, e)| {
                e.id.is_none()
                    && e.refused.is_some_and(|r| r.due(now))
                    && !self.resolving.contains(*ep)
            })
            .map(|(ep, _)| ep.clone())
            .collect();
        self.to_resolve.extend(due);
        self.arm_lookups(now);
    }

    /// Set the retry timer for the next refused look-up not yet due.
    fn arm_lookups(&mut self, now: u64) {
        let next = self
            .endpoints
            .values()
            .filter(|e| e.id.is_none())
            .filter_map(|e| e.refused)
            .filter(|r| !r.due(now))
            .map(|r| r.until)
            .min();
        if let Some(at) = next {
            self.set_timer(TimerKey::LookupRetry, at - now);
        }
    }

    /// Store the UPN cache once a round of look-ups is over (or has grown a
    /// lot): one write instead of one per user.
    pub(super) fn flush_users(&mut self) {
        let idle = self.resolving.is_empty() && self.to_resolve.is_empty();
        if self.users_dirty > 0 && (idle || self.users_dirty >= 500) {
            self.users_dirty = 0;
            if let Ok(bytes) = serde_json::to_vec(&self.upn_cache) {
                self.out.push(Action::KvSet(keys::USERS.into(), bytes));
            }
        }
    }
}
