//! One endpoint's publication (RFC 3903) and the hub's writes behind it:
//! which PUBLISH goes out next, and what each answer means for the write
//! that caused it. Bookkeeping only: `core.rs` builds, sends and times the
//! requests, and reports the outcomes collected here.
//!
//! RFC 3903 §4.1 allows one PUBLISH in flight per target, so a write that
//! arrives while one is out waits for its answer (it needs the entity tag
//! that answer brings), and the write it replaces is superseded at once.
//! Every accepted write gets exactly one outcome.

use presence_connector_sdk::{WriteFailure, WriteId, WriteOutcome};

/// Longest Expires we ask for (s).
const MAX_EXPIRES: u32 = 86_400;

/// A state the hub asked to have published.
#[derive(Debug, Clone, PartialEq)]
pub struct State {
    pub write: WriteId,
    /// The PIDF document.
    pub body: Vec<u8>,
    /// Expires to ask for (s).
    pub expires: u32,
    /// What is left of the write's own expiry (ms) from the next PUBLISH
    /// on; `None` keeps it until the hub restores or writes again.
    pub remaining_ms: Option<u64>,
}

impl State {
    /// `expires_in_ms` becomes the PUBLISH Expires (rounded up to whole
    /// seconds); without it, the configured publication interval.
    pub fn new(write: WriteId, body: Vec<u8>, expires_in_ms: Option<u64>, default: u32) -> State {
        State {
            write,
            body,
            expires: expires_in_ms.map_or(default, expires_for),
            remaining_ms: expires_in_ms,
        }
    }
}

fn expires_for(remaining_ms: u64) -> u32 {
    u32::try_from(remaining_ms.div_ceil(1000))
        .unwrap_or(MAX_EXPIRES)
        .clamp(1, MAX_EXPIRES)
}

/// When to refresh a publication the server granted `secs`: 32 s ahead of
/// expiry for long grants, at nine tenths for short ones.
fn refresh_ms(secs: u32) -> u64 {
    let secs = u64::from(secs);
    if secs > 64 {
        (secs - 32) * 1000
    } else {
        secs * 900
    }
}

/// A PUBLISH to send.
#[derive(Debug, Clone, PartialEq)]
pub struct Publish {
    /// SIP-If-Match: ours at the server, to modify, refresh or remove.
    pub etag: Option<String>,
    /// A new state (none for a refresh or a removal).
    pub body: Option<Vec<u8>>,
    /// 0 removes.
    pub expires: u32,
}

/// What a PUBLISH is for.
#[derive(Debug, Clone, PartialEq)]
enum Job {
    /// Publish a state: a new publication, or a change of ours.
    Set(State),
    /// Extend ours as it is.
    Refresh,
    /// Remove ours.
    Remove,
}

#[derive(Debug, Clone, PartialEq)]
struct Pending {
    job: Job,
    /// The write whose outcome this PUBLISH's answer decides: none for the
    /// connector's own refreshes and removals, and taken once superseded.
    owed: Option<WriteId>,
    /// Sent with SIP-If-Match (only then can a 412 come back).
    with_etag: bool,
}

/// What the publication timer does when it fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Then {
    /// Extend the publication before the server lets it lapse.
    Refresh,
    /// The write's expiry came and the server dropped it at the same time.
    Forget,
    /// The write's expiry came but the server would keep it longer (it
    /// raised Expires with 423 Min-Expires): remove it.
    Remove,
}

/// Ours at the server.
#[derive(Debug, Clone, PartialEq)]
struct Held {
    etag: String,
    state: State,
    /// The timer set for it: after how long, and what then.
    timer: Option<(u64, Then)>,
}

/// One endpoint's publication.
#[derive(Debug)]
pub struct Publication {
    pub target: String,
    held: Option<Held>,
    in_flight: Option<Pending>,
    /// What goes out once the PUBLISH in flight is answered.
    queued: Option<Pending>,
    outcomes: Vec<(WriteId, WriteOutcome)>,
}

impl Publication {
    pub fn new(target: String) -> Publication {
        Publication {
            target,
            held: None,
            in_flight: None,
            queued: None,
            outcomes: Vec::new(),
        }
    }

    /// Outcomes decided since the last call.
    pub fn take_outcomes(&mut self) -> Vec<(WriteId, WriteOutcome)> {
        std::mem::take(&mut self.outcomes)
    }

    /// Nothing of ours at the server and nothing to send: forget it.
    pub fn is_idle(&self) -> bool {
        self.held.is_none() && self.in_flight.is_none() && self.queued.is_none()
    }

    /// The hub writes `state`.
    pub fn set(&mut self, state: State) {
        self.supersede();
        self.queued = Some(Pending {
            owed: Some(state.write),
            job: Job::Set(state),
            with_etag: false,
        });
    }

    /// The hub restores with write `id`: remove ours, which shows the
    /// person's own publications again. With nothing of ours at the
    /// server or on the way, that is done already.
    pub fn restore(&mut self, id: WriteId) {
        self.supersede();
        if self.held.is_none() && self.in_flight.is_none() {
            self.outcomes.push((id, WriteOutcome::Restored));
        } else {
            self.queued = Some(Pending {
                job: Job::Remove,
                owed: Some(id),
                with_etag: false,
            });
        }
    }

    /// Remove ours without a write behind it (the connector stops).
    pub fn withdraw(&mut self) {
        if self.held.is_some() {
            self.queued = Some(Pending {
                job: Job::Remove,
                owed: None,
                with_etag: false,
            });
        }
    }

    fn supersede(&mut self) {
        let queued = self.queued.take().and_then(|p| p.owed);
        let in_flight = self.in_flight.as_mut().and_then(|p| p.owed.take());
        for id in queued.into_iter().chain(in_flight) {
            self.outcomes.push((id, WriteOutcome::Superseded));
        }
    }

    /// The PUBLISH to send now, if any: none while one is in flight.
    pub fn next(&mut self) -> Option<Publish> {
        while self.in_flight.is_none() {
            let mut p = self.queued.take()?;
            let etag = self.held.as_ref().map(|h| h.etag.clone());
            let (body, expires) = match (&p.job, &self.held) {
                (Job::Set(s), _) => (Some(s.body.clone()), s.expires),
                (Job::Refresh, Some(h)) => (None, h.state.expires),
                (Job::Remove, Some(_)) => (None, 0),
                // Ours is gone already.
                (Job::Refresh, None) => continue,
                (Job::Remove, None) => {
                    self.owe(p.owed, WriteOutcome::Restored);
                    continue;
                }
            };
            p.with_etag = etag.is_some();
            self.in_flight = Some(p);
            return Some(Publish {
                etag,
                body,
                expires,
            });
        }
        None
    }

    fn owe(&mut self, owed: Option<WriteId>, outcome: WriteOutcome) {
        if let Some(id) = owed {
            self.outcomes.push((id, outcome));
        }
    }

    /// A 2xx with the server's entity tag and granted Expires. Returns
    /// when to fire the publication timer, unless another PUBLISH follows
    /// at once (its answer sets the timer).
    pub fn succeeded(&mut self, etag: Option<String>, granted: Option<u32>) -> Option<u64> {
        let p = self.in_flight.take()?;
        let (previous_state, previous_etag) = match self.held.take() {
            Some(h) => (Some(h.state), Some(h.etag)),
            None => (None, None),
        };
        let state = match p.job {
            Job::Remove => {
                self.owe(p.owed, WriteOutcome::Restored);
                None
            }
            Job::Set(state) => {
                self.owe(p.owed, WriteOutcome::Applied);
                Some(state)
            }
            Job::Refresh => previous_state,
        };
        // A 2xx without SIP-ETag (RFC 3903 §11.3 requires one) leaves
        // nothing to refresh or remove ours by: it lapses on its own.
        self.held = state.zip(etag.or(previous_etag)).map(|(state, etag)| Held {
            etag,
            state,
            timer: None,
        });
        // The connector's own refresh or removal waiting behind this
        // PUBLISH was for the state it just replaced or extended.
        if self.queued.as_ref().is_some_and(|q| q.owed.is_none()) {
            self.queued = None;
        }
        if self.queued.is_some() {
            return None;
        }
        let h = self.held.as_mut()?;
        let granted = granted.unwrap_or(h.state.expires).max(1);
        let held_ms = u64::from(granted) * 1000;
        let timer = match h.state.remaining_ms {
            Some(r) if held_ms >= r + 1000 => (r, Then::Remove),
            Some(r) if held_ms >= r => (r, Then::Forget),
            _ => (refresh_ms(granted), Then::Refresh),
        };
        h.timer = Some(timer);
        Some(timer.0)
    }

    /// 412: the server no longer knows our entity tag, so nothing of ours
    /// is there. A state is published afresh and its write reported after
    /// that answer; a removal is done.
    pub fn etag_unknown(&mut self) {
        let Some(p) = self.in_flight.take() else {
            return;
        };
        if !p.with_etag {
            // Only SIP-If-Match can fail to match; do not loop on a
            // server that says otherwise.
            return self.owe(
                p.owed,
                WriteOutcome::Failed(WriteFailure {
                    message: "PUBLISH answered 412 without SIP-If-Match".into(),
                    retryable: false,
                    retry_after_ms: None,
                    status: Some(412),
                }),
            );
        }
        let lost = self.held.take();
        let again = match p.job {
            Job::Remove => return self.owe(p.owed, WriteOutcome::Restored),
            Job::Set(state) => state,
            Job::Refresh => match lost {
                Some(h) => h.state,
                None => return,
            },
        };
        self.resend(Pending {
            job: Job::Set(again),
            owed: p.owed,
            with_etag: false,
        });
    }

    /// 423: the server wants at least `min` seconds (or, unsaid, twice as
    /// many); ask again with that.
    pub fn too_brief(&mut self, min: Option<u32>) {
        let Some(mut p) = self.in_flight.take() else {
            return;
        };
        let raise = |e: u32| min.unwrap_or(e.saturating_mul(2)).min(MAX_EXPIRES);
        match &mut p.job {
            Job::Set(s) => s.expires = raise(s.expires),
            Job::Refresh => {
                if let Some(h) = self.held.as_mut() {
                    h.state.expires = raise(h.state.expires);
                }
            }
            Job::Remove => {}
        }
        self.resend(p);
    }

    /// Send `p` again unless a write is waiting (which replaced it).
    fn resend(&mut self, p: Pending) {
        if self.queued.as_ref().is_none_or(|q| q.owed.is_none()) {
            self.queued = Some(p);
        }
    }

    /// Any other final answer, no answer, or a challenge we could not
    /// meet. Ours at the server (if any) stays as it was.
    pub fn failed(&mut self, failure: WriteFailure) {
        if let Some(p) = self.in_flight.take() {
            self.owe(p.owed, WriteOutcome::Failed(failure));
        }
    }

    /// The connection is gone or the connector stops: what is in flight or
    /// waiting will not be answered.
    pub fn abandon(&mut self, failure: WriteFailure) {
        let owed = [self.in_flight.take(), self.queued.take()]
            .into_iter()
            .flatten()
            .filter_map(|p| p.owed);
        let outcomes: Vec<_> = owed
            .map(|id| (id, WriteOutcome::Failed(failure.clone())))
            .collect();
        self.outcomes.extend(outcomes);
    }

    /// The publication timer fired.
    pub fn timer_fired(&mut self) {
        let Some(h) = self.held.as_mut() else {
            return;
        };
        let Some((after, then)) = h.timer.take() else {
            return; // replaced since
        };
        let job = match then {
            Then::Forget => {
                self.held = None;
                return;
            }
            Then::Remove => Job::Remove,
            Then::Refresh => {
                if let Some(r) = h.state.remaining_ms.as_mut() {
                    *r = r.saturating_sub(after);
                    h.state.expires = expires_for(*r);
                }
                Job::Refresh
            }
        };
        // A write waiting replaces ours anyway. Behind a PUBLISH in flight
        // this waits in case that fails, and is dropped if it succeeds.
        if self.queued.is_none() {
            self.queued = Some(Pending {
                job,
                owed: None,
                with_etag: false,
            });
        }
    }
}

/// A final answer other than 2xx, 412 and 423 as a write failure: worth
/// retrying when the server was temporarily unable, not when it refused.
pub fn refused(code: u16, reason: &str, retry_after_secs: Option<u32>) -> WriteFailure {
    let retryable = match code {
        408 | 480 => true,
        // Not implemented, wrong version, too large: the same again fails.
        501 | 505 | 513 => false,
        500..=599 => true,
        _ => false,
    };
    WriteFailure {
        message: format!("PUBLISH answered {code} {reason}"),
        retryable,
        retry_after_ms: retry_after_secs.map(|s| u64::from(s) * 1000),
        status: Some(code),
    }
}

/// No answer came (Timer F, a lost connection, the connector stopping):
/// the same write may well succeed later.
pub fn unanswered(why: impl Into<String>) -> WriteFailure {
    WriteFailure {
        message: why.into(),
        retryable: true,
        retry_after_ms: None,
        status: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(write: WriteId, expires_in_ms: Option<u64>) -> State {
        State::new(
            write,
            format!("doc {write}").into_bytes(),
            expires_in_ms,
            3600,
        )
    }

    fn published(p: &mut Publication, write: WriteId) -> Publish {
        p.set(state(write, None));
        let out = p.next().unwrap();
        assert_eq!(
            p.succeeded(Some(format!("e{write}")), Some(3600)),
            Some(3_568_000)
        );
        assert_eq!(p.take_outcomes(), [(write, WriteOutcome::Applied)]);
        out
    }

    #[test]
    fn one_publish_in_flight_and_the_waiting_write_supersedes() {
        let mut p = Publication::new("sip:a@x".into());
        let first = published(&mut p, 1);
        assert_eq!(first.etag, None);
        p.set(state(2, None));
        let modify = p.next().unwrap();
        assert_eq!(modify.etag.as_deref(), Some("e1"));
        // Two more while 2 is out: 2 and 3 are superseded, 4 waits.
        p.set(state(3, None));
        p.set(state(4, None));
        assert_eq!(p.next(), None);
        assert_eq!(
            p.take_outcomes(),
            [(2, WriteOutcome::Superseded), (3, WriteOutcome::Superseded)]
        );
        // 2's answer reports nothing; 4 goes out with the new tag.
        assert_eq!(p.succeeded(Some("e2".into()), None), None);
        assert!(p.take_outcomes().is_empty());
        let four = p.next().unwrap();
        assert_eq!(four.etag.as_deref(), Some("e2"));
        assert_eq!(four.body.as_deref(), Some(&b"doc 4"[..]));
    }

    #[test]
    fn restore_removes_ours_or_is_done_at_once() {
        let mut p = Publication::new("sip:a@x".into());
        p.restore(1);
        assert_eq!(p.take_outcomes(), [(1, WriteOutcome::Restored)]);
        assert!(p.is_idle());
        published(&mut p, 2);
        p.restore(3);
        let rm = p.next().unwrap();
        assert_eq!(
            (rm.etag.as_deref(), rm.expires, rm.body),
            (Some("e2"), 0, None)
        );
        assert_eq!(p.succeeded(None, None), None);
        assert_eq!(p.take_outcomes(), [(3, WriteOutcome::Restored)]);
        assert!(p.is_idle());
    }

    #[test]
    fn restore_behind_a_first_publish_that_fails_is_restored() {
        let mut p = Publication::new("sip:a@x".into());
        p.set(state(1, None));
        p.next().unwrap();
        p.restore(2);
        p.failed(refused(500, "Oops", None));
        assert_eq!(p.next(), None);
        assert_eq!(
            p.take_outcomes(),
            [(1, WriteOutcome::Superseded), (2, WriteOutcome::Restored)]
        );
        assert!(p.is_idle());
    }

    #[test]
    fn etag_unknown_publishes_afresh_and_reports_after() {
        let mut p = Publication::new("sip:a@x".into());
        published(&mut p, 1);
        // A refresh hits 412: the held state goes out again, owing nothing.
        p.timer_fired();
        let refresh = p.next().unwrap();
        assert_eq!((refresh.body, refresh.etag.as_deref()), (None, Some("e1")));
        p.etag_unknown();
        let fresh = p.next().unwrap();
        assert_eq!(
            (fresh.body.as_deref(), fresh.etag),
            (Some(&b"doc 1"[..]), None)
        );
        p.succeeded(Some("e1b".into()), None);
        assert!(p.take_outcomes().is_empty());
        // A modify hits 412: published afresh, then applied.
        p.set(state(2, None));
        p.next().unwrap();
        p.etag_unknown();
        assert!(p.take_outcomes().is_empty());
        assert_eq!(p.next().unwrap().etag, None);
        p.succeeded(Some("e2".into()), None);
        assert_eq!(p.take_outcomes(), [(2, WriteOutcome::Applied)]);
        // 412 to a PUBLISH without SIP-If-Match is not retried.
        let mut q = Publication::new("sip:a@x".into());
        q.set(state(3, None));
        q.next().unwrap();
        q.etag_unknown();
        assert_eq!(q.next(), None);
        assert!(matches!(
            q.take_outcomes()[..],
            [(
                3,
                WriteOutcome::Failed(WriteFailure {
                    status: Some(412),
                    ..
                })
            )]
        ));
    }

    #[test]
    fn too_brief_asks_again_with_min_expires() {
        let mut p = Publication::new("sip:a@x".into());
        p.set(state(1, Some(30_000)));
        assert_eq!(p.next().unwrap().expires, 30);
        p.too_brief(Some(60));
        assert_eq!(p.next().unwrap().expires, 60);
        // The server holds it past the write's expiry: removed at 30 s.
        assert_eq!(p.succeeded(Some("e1".into()), Some(60)), Some(30_000));
        p.timer_fired();
        let rm = p.next().unwrap();
        assert_eq!(rm.expires, 0);
        p.succeeded(None, None);
        assert_eq!(p.take_outcomes(), [(1, WriteOutcome::Applied)]);
        assert!(p.is_idle());
    }

    #[test]
    fn expiry_is_the_publish_expires_and_is_not_refreshed_past() {
        let mut p = Publication::new("sip:a@x".into());
        p.set(state(1, Some(1_800_500)));
        assert_eq!(p.next().unwrap().expires, 1801);
        // Granted in full: the server lets it lapse; we forget it then.
        assert_eq!(p.succeeded(Some("e1".into()), Some(1801)), Some(1_800_500));
        p.timer_fired();
        assert_eq!(p.next(), None);
        assert!(p.is_idle());
        // Granted less: refreshed for what is left, then left to lapse.
        p.set(state(2, Some(7_200_000)));
        assert_eq!(p.next().unwrap().expires, 7200);
        assert_eq!(p.succeeded(Some("e2".into()), Some(3600)), Some(3_568_000));
        p.timer_fired();
        let refresh = p.next().unwrap();
        assert_eq!((refresh.expires, refresh.body), (3632, None));
        assert_eq!(p.succeeded(None, Some(3632)), Some(3_632_000));
    }

    #[test]
    fn a_refresh_due_during_a_failed_modify_still_goes_out() {
        let mut p = Publication::new("sip:a@x".into());
        published(&mut p, 1);
        p.set(state(2, None));
        p.next().unwrap();
        p.timer_fired(); // while 2 is in flight
        p.failed(refused(503, "Busy", Some(5)));
        let refresh = p.next().unwrap();
        assert_eq!((refresh.etag.as_deref(), refresh.body), (Some("e1"), None));
        // After a successful modify the waiting refresh is dropped.
        p.succeeded(None, None);
        p.set(state(3, None));
        p.next().unwrap();
        p.timer_fired();
        assert!(p.succeeded(Some("e3".into()), None).is_some());
        assert_eq!(p.next(), None);
    }

    #[test]
    fn abandon_fails_what_is_in_flight_and_waiting() {
        let mut p = Publication::new("sip:a@x".into());
        published(&mut p, 1);
        p.set(state(2, None));
        p.next().unwrap();
        p.restore(3);
        p.abandon(unanswered("connection lost"));
        let out = p.take_outcomes();
        assert_eq!(out[0], (2, WriteOutcome::Superseded));
        assert!(matches!(
            &out[1],
            (3, WriteOutcome::Failed(f)) if f.retryable && f.status.is_none()
        ));
        // Ours at the server is still known, and removed on withdraw.
        p.withdraw();
        assert_eq!(p.next().unwrap().expires, 0);
    }

    #[test]
    fn refusals_are_retryable_when_temporary() {
        let f = refused(503, "Service Unavailable", Some(120));
        assert!(f.retryable);
        assert_eq!((f.retry_after_ms, f.status), (Some(120_000), Some(503)));
        assert!(refused(408, "Timeout", None).retryable);
        assert!(!refused(403, "Forbidden", None).retryable);
        assert!(!refused(501, "Not Implemented", None).retryable);
        assert!(!refused(603, "Decline", None).retryable);
    }
}
