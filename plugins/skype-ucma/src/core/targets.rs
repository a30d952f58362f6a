//! Watched targets: `watch` / `unwatch` batches, their results, `presence`
//! pushes in `seq` order, `target-state` changes (PROTOCOL.md section 6).

use std::collections::BTreeSet;

use presence_connector_sdk::time::{MissingZone, parse_datetime};
use presence_connector_sdk::{
    Availability, EndpointState, LineState, Ordering, PresenceUpdate, RichPresence,
    TelephonyPresence, TelephonySource, UpdateOrigin, VendorValue,
};

use super::{Action, Core, DOWN_GRACE_MS, Level, Req};
use crate::mapping::{self, Band};
use crate::wire::{self, TargetResult};

/// A `watch` answered within this time, or its targets are retried.
const WATCH_ANSWER_MS: u64 = 20_000;
/// A target the bridge could not subscribe (`error`) is watched again
/// after this long.
const ERROR_RETRY_MS: u64 = 60_000;
/// A target refused or not found is asked for again after this long (the
/// bridge does not retry them itself).
const REFUSED_RETRY_MS: u64 = 10 * 60_000;
/// Watch batches in flight at once.
const BATCHES_IN_FLIGHT: usize = 4;

/// The `sip:` URI the bridge takes for one of the hub's endpoint ids
/// (`alice@example.com`, `sip:alice@example.com`, `SIP:alice@...`); `None`
/// when it is not a SIP address.
pub fn target_of(endpoint: &str) -> Option<String> {
    let e = endpoint.trim();
    let rest = if e.len() >= 4 && e[..4].eq_ignore_ascii_case("sip:") {
        &e[4..]
    } else if e.contains(':') {
        return None;
    } else {
        e
    };
    let (user, host) = rest.split_once('@')?;
    let ok = |p: &str| !p.is_empty() && !p.contains(['@', ' ', '\t', '<', '>', '"']);
    (ok(user) && ok(host) && rest.len() <= 508).then(|| format!("sip:{rest}"))
}

/// Where a target's subscription stands on the current connection.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Watch {
    /// To be sent in the next `watch`.
    Pending,
    /// In this `watch` request.
    Sent(String),
    Active,
    /// Not subscribed; asked for again at this time (never with `None`).
    Failed(Option<u64>),
}

/// One watched target.
#[derive(Debug, Clone)]
pub struct Target {
    /// The hub's endpoint ids that name this target.
    pub endpoints: BTreeSet<String>,
    watch: Watch,
    /// What the hub was told last.
    state: Option<(EndpointState, Option<String>)>,
    /// `persistent` or `polling`.
    mode: Option<String>,
    /// The last `seq` taken on this connection.
    last_seq: u64,
    /// Whether telephony was reported for it (a vanished phone state is
    /// then reported as unknown).
    phone: bool,
    /// Whether presence was reported that an outage makes stale.
    reported: bool,
    /// The band of the last push.
    pub band: Option<Band>,
}

impl Target {
    fn new() -> Target {
        Target {
            endpoints: BTreeSet::new(),
            watch: Watch::Pending,
            state: None,
            mode: None,
            last_seq: 0,
            phone: false,
            reported: false,
            band: None,
        }
    }

    /// The word the status summary counts it under.
    pub fn summary_word(&self) -> &'static str {
        match (&self.state, self.mode.as_deref()) {
            (Some((EndpointState::Active, _)), Some("polling")) => "active (polling)",
            (Some((EndpointState::Active, _)), _) => "active",
            (Some((EndpointState::NotFound, _)), _) => "not found",
            (Some((EndpointState::AccessDenied, _)), _) => "access denied",
            (Some((EndpointState::Error, _)), _) => "in error",
            _ => "requesting",
        }
    }
}

/// A line state from the protocol's `device.phone`.
fn line(phone: &str) -> LineState {
    match phone {
        "idle" => LineState::Idle,
        "in-a-call" | "in-a-conference" => LineState::InCall,
        _ => LineState::Unknown,
    }
}

impl Core {
    /// Tell the hub an endpoint state of `target`, where it changed.
    fn set_state(&mut self, target: &str, st: EndpointState, detail: Option<String>) {
        let Some(t) = self.targets.get_mut(target) else {
            return;
        };
        let new = (st, detail);
        if t.state.as_ref() == Some(&new) {
            return;
        }
        t.state = Some(new.clone());
        for ep in t.endpoints.clone() {
            self.out
                .push(Action::EndpointState(ep, new.0, new.1.clone()));
        }
    }

    /// Start watching (contract `watch`).
    pub fn watch_targets(&mut self, endpoints: &[String], now: u64) {
        for ep in endpoints {
            let Some(target) = target_of(ep) else {
                self.out.push(Action::EndpointState(
                    ep.clone(),
                    EndpointState::NotFound,
                    Some("not a SIP address (a Lync URI is user@domain or sip:user@domain)".into()),
                ));
                continue;
            };
            self.to_unwatch.remove(&target);
            let t = self
                .targets
                .entry(target.clone())
                .or_insert_with(Target::new);
            if !t.endpoints.insert(ep.clone()) {
                continue;
            }
            match t.state.clone() {
                Some((st, detail)) => self.out.push(Action::EndpointState(ep.clone(), st, detail)),
                None => self.set_state(&target, EndpointState::Requesting, None),
            }
        }
        self.finish(now);
    }

    /// Stop watching (contract `unwatch`).
    pub fn unwatch_targets(&mut self, endpoints: &[String], now: u64) {
        for ep in endpoints {
            let Some(target) = target_of(ep) else {
                continue;
            };
            let Some(t) = self.targets.get_mut(&target) else {
                continue;
            };
            t.endpoints.remove(ep);
            if !t.endpoints.is_empty() {
                continue;
            }
            let t = self.targets.remove(&target).expect("present");
            if matches!(t.watch, Watch::Sent(_) | Watch::Active) && self.live() {
                self.to_unwatch.insert(target);
            }
        }
        self.finish(now);
    }

    /// Send `watch` and `unwatch` batches as far as they may go.
    pub(super) fn pump_watches(&mut self, now: u64) {
        let Some(batch) = self.sess.as_ref().map(|s| s.max_batch.max(1)) else {
            return;
        };
        while !self.to_unwatch.is_empty() {
            let take: Vec<String> = self.to_unwatch.iter().take(batch).cloned().collect();
            for t in &take {
                self.to_unwatch.remove(t);
            }
            let id = self.request_id("u");
            self.requests.insert(id.clone(), Req::Unwatch);
            self.send(wire::targets("unwatch", &id, &take));
        }
        loop {
            let in_flight = self
                .requests
                .values()
                .filter(|r| matches!(r, Req::Watch(..)))
                .count();
            if in_flight >= BATCHES_IN_FLIGHT {
                return;
            }
            let take: Vec<String> = self
                .targets
                .iter()
                .filter(|(_, t)| t.watch == Watch::Pending)
                .map(|(k, _)| k.clone())
                .take(batch)
                .collect();
            if take.is_empty() {
                return;
            }
            let id = self.request_id("w");
            for k in &take {
                if let Some(t) = self.targets.get_mut(k) {
                    t.watch = Watch::Sent(id.clone());
                }
            }
            self.requests
                .insert(id.clone(), Req::Watch(take.clone(), now + WATCH_ANSWER_MS));
            self.send(wire::targets("watch", &id, &take));
        }
    }

    pub(super) fn on_watch_result(&mut self, id: &str, results: Vec<TargetResult>, now: u64) {
        let Some(Req::Watch(batch, _)) = self.requests.remove(id) else {
            self.log(
                Level::Warn,
                format!("watch-result for unknown request {id}"),
            );
            return;
        };
        let mut answered = BTreeSet::new();
        for r in results {
            answered.insert(r.target.clone());
            let Some(t) = self.targets.get_mut(&r.target) else {
                // Unwatched meanwhile: take it back.
                if r.status == "active" && batch.contains(&r.target) {
                    self.to_unwatch.insert(r.target);
                }
                continue;
            };
            if t.watch != Watch::Sent(id.to_string()) {
                continue;
            }
            let detail = r.detail.clone();
            let (watch, st, detail) = match r.status.as_str() {
                "active" => {
                    t.mode = r.mode.clone();
                    let d = match r.mode.as_deref() {
                        Some("polling") => Some(format!(
                            "polling: changes arrive only every polling interval{}",
                            detail.map(|d| format!(" ({d})")).unwrap_or_default()
                        )),
                        _ => None,
                    };
                    (Watch::Active, EndpointState::Active, d)
                }
                "not-found" => (
                    Watch::Failed(Some(now + REFUSED_RETRY_MS)),
                    EndpointState::NotFound,
                    Some(detail.unwrap_or_else(|| "no such Lync / SfB user".into())),
                ),
                "refused" => (
                    Watch::Failed(Some(now + REFUSED_RETRY_MS)),
                    EndpointState::AccessDenied,
                    Some(detail.unwrap_or_else(|| "the Front End refused the subscription".into())),
                ),
                "invalid" => (
                    Watch::Failed(None),
                    EndpointState::NotFound,
                    Some(format!(
                        "the bridge cannot use this SIP URI{}",
                        detail.map(|d| format!(": {d}")).unwrap_or_default()
                    )),
                ),
                other => (
                    Watch::Failed(Some(now + ERROR_RETRY_MS)),
                    EndpointState::Error,
                    Some(format!(
                        "subscription failed ({other}){}",
                        detail.map(|d| format!(": {d}")).unwrap_or_default()
                    )),
                ),
            };
            t.watch = watch;
            self.set_state(&r.target, st, detail);
        }
        let missing: Vec<String> = batch
            .into_iter()
            .filter(|t| !answered.contains(t))
            .collect();
        if !missing.is_empty() {
            self.watch_failed(
                missing,
                "the bridge's watch-result left this target out",
                now,
            );
        }
    }

    /// A watch batch went unanswered or was refused: error, retried later.
    pub(super) fn watch_failed(&mut self, batch: Vec<String>, why: &str, now: u64) {
        for k in batch {
            if let Some(t) = self.targets.get_mut(&k)
                && matches!(t.watch, Watch::Sent(_))
            {
                t.watch = Watch::Failed(Some(now + ERROR_RETRY_MS));
                self.set_state(&k, EndpointState::Error, Some(why.to_string()));
            }
        }
    }

    pub(super) fn on_target_state(
        &mut self,
        target: &str,
        status: &str,
        mode: Option<String>,
        detail: Option<String>,
        now: u64,
    ) {
        let Some(t) = self.targets.get_mut(target) else {
            return;
        };
        match status {
            "active" => {
                t.watch = Watch::Active;
                if mode.is_some() {
                    t.mode = mode;
                }
                let d = (t.mode.as_deref() == Some("polling"))
                    .then(|| "polling: changes arrive only every polling interval".to_string());
                self.set_state(target, EndpointState::Active, d);
            }
            "retrying" => {
                let d = format!(
                    "subscription retrying (UCMA WaitingForRetry): presence may be stale{}",
                    detail.map(|d| format!(" ({d})")).unwrap_or_default()
                );
                self.set_state(target, EndpointState::Requesting, Some(d));
            }
            "not-found" | "refused" => {
                t.watch = Watch::Failed(Some(now + REFUSED_RETRY_MS));
                let st = if status == "refused" {
                    EndpointState::AccessDenied
                } else {
                    EndpointState::NotFound
                };
                self.set_state(
                    target,
                    st,
                    detail.or_else(|| Some(format!("subscription ended: {status}"))),
                );
            }
            other => {
                self.log(
                    Level::Debug,
                    format!("target-state {other:?} for {target} ignored"),
                );
            }
        }
    }

    /// A `presence` push: a full snapshot of one target.
    pub(super) fn on_presence(&mut self, p: wire::Presence, now: u64) {
        let Some(epoch) = self.sess.as_ref().map(|s| s.epoch.clone()) else {
            return;
        };
        let Some(t) = self.targets.get_mut(&p.target) else {
            self.log(
                Level::Debug,
                format!("presence for {} (not watched) ignored", p.target),
            );
            return;
        };
        if p.seq <= t.last_seq {
            let last = t.last_seq;
            self.log(
                Level::Warn,
                format!(
                    "presence for {} with seq {} after {last}: out of order, dropped",
                    p.target, p.seq
                ),
            );
            return;
        }
        let last = t.last_seq;
        t.last_seq = p.seq;
        if last > 0 && p.seq != last + 1 && !p.initial {
            self.log(
                Level::Debug,
                format!(
                    "presence for {}: seq {} after {last} (a gap)",
                    p.target, p.seq
                ),
            );
        }
        let band = Band::of(p.availability);
        if let Some(b) = p.band.as_deref()
            && b != band.name()
        {
            let msg = format!(
                "presence for {}: band {b:?} disagrees with availability {} ({}); the number is taken",
                p.target,
                p.availability,
                band.name()
            );
            self.log(Level::Warn, msg);
        }
        let activity = p.activity.clone().unwrap_or_default();
        let note = p.note.as_deref().or(p.out_of_office_note.as_deref());
        let rich = mapping::rich(
            Some(p.availability),
            activity.token.as_deref(),
            activity.custom.as_deref(),
            note,
        );
        let Some(t) = self.targets.get_mut(&p.target) else {
            return;
        };
        let telephony = match &p.device {
            Some(d) => {
                t.phone = true;
                Some(TelephonyPresence {
                    line: line(&d.phone),
                    do_not_disturb: rich.availability == Availability::DoNotDisturb,
                    forward: None,
                    source: TelephonySource::SipDerived,
                })
            }
            None if t.phone => {
                t.phone = false;
                Some(unknown_line())
            }
            None => None,
        };
        t.reported = true;
        t.band = Some(band);
        if t.watch != Watch::Active {
            t.watch = Watch::Active;
        }
        let endpoints = t.endpoints.clone();
        let mode = t.mode.clone();
        let origin = self.origin_for(&p.target, band, now);
        let mut raw = vec![
            raw("availability", p.availability.to_string()),
            raw("band", p.band.clone().unwrap_or_else(|| band.name().into())),
        ];
        for (name, value) in [
            ("activity-token", activity.token.clone()),
            ("activity-custom", activity.custom.clone()),
            ("out-of-office-note", p.out_of_office_note.clone()),
            ("device-phone", p.device.as_ref().map(|d| d.phone.clone())),
            (
                "device-availability",
                p.device
                    .as_ref()
                    .and_then(|d| d.availability.map(|a| a.to_string())),
            ),
            (
                "device-activity-token",
                p.device.as_ref().and_then(|d| d.activity_token.clone()),
            ),
            ("subscription-mode", mode),
            ("initial", p.initial.then(|| "true".to_string())),
        ] {
            if let Some(v) = value {
                raw.push(VendorValue {
                    name: name.into(),
                    value: v,
                });
            }
        }
        let observed_at = p
            .source_ts
            .as_deref()
            .or(p.ts.as_deref())
            .and_then(|t| parse_datetime(t, MissingZone::Reject));
        if self
            .targets
            .get(&p.target)
            .is_some_and(|t| !matches!(t.state, Some((EndpointState::Active, _))))
        {
            let d = (mode_is_polling(&self.targets, &p.target))
                .then(|| "polling: changes arrive only every polling interval".to_string());
            self.set_state(&p.target, EndpointState::Active, d);
        }
        for ep in endpoints {
            self.out.push(Action::Presence(Box::new(PresenceUpdate {
                endpoint: ep,
                observed_at,
                ordering: Some(Ordering {
                    epoch: epoch.clone(),
                    sequence: p.seq,
                }),
                origin: origin.clone(),
                telephony: telephony.clone(),
                rich: Some(rich.clone()),
                calendar: None,
                valid_for_ms: None,
                raw: raw.clone(),
            })));
        }
    }

    /// Show every reported target as unknown (the endpoint or the bridge is
    /// gone; PROTOCOL.md section 10).
    pub(super) fn show_unknown(&mut self, why: &str) {
        let mut out = Vec::new();
        for t in self.targets.values_mut() {
            if !t.reported {
                continue;
            }
            t.reported = false;
            let telephony = std::mem::take(&mut t.phone).then(unknown_line);
            for ep in &t.endpoints {
                out.push(Action::Presence(Box::new(PresenceUpdate {
                    endpoint: ep.clone(),
                    observed_at: None,
                    ordering: None,
                    origin: UpdateOrigin::Platform,
                    telephony: telephony.clone(),
                    rich: Some(RichPresence {
                        availability: Availability::Unknown,
                        activity: None,
                        note: None,
                    }),
                    calendar: None,
                    valid_for_ms: None,
                    raw: vec![raw("unknown-because", why.to_string())],
                })));
            }
        }
        self.out.extend(out);
    }

    /// The subscriptions are gone (connection ended, endpoint given up):
    /// every target is watched again on the next endpoint.
    pub(super) fn targets_lost(&mut self) {
        for t in self.targets.values_mut() {
            if t.watch != Watch::Failed(None) {
                t.watch = Watch::Pending;
            }
            t.last_seq = 0;
        }
        self.requests.retain(|_, r| !matches!(r, Req::Watch(..)));
    }

    /// A new endpoint: watch everything again (section 10: resubscription).
    pub(super) fn rewatch_all(&mut self) {
        for t in self.targets.values_mut() {
            t.watch = Watch::Pending;
            t.last_seq = 0;
        }
    }

    pub(super) fn targets_due(&mut self, now: u64) {
        let overdue: Vec<(String, Vec<String>)> = self
            .requests
            .iter()
            .filter_map(|(id, r)| match r {
                Req::Watch(batch, at) if *at <= now => Some((id.clone(), batch.clone())),
                _ => None,
            })
            .collect();
        for (id, batch) in overdue {
            self.requests.remove(&id);
            self.log(
                Level::Warn,
                format!("the bridge did not answer watch {id} within 20 s"),
            );
            self.watch_failed(
                batch,
                "the bridge did not answer the watch within 20 s",
                now,
            );
        }
        for t in self.targets.values_mut() {
            if let Watch::Failed(Some(at)) = t.watch
                && at <= now
            {
                t.watch = Watch::Pending;
            }
        }
        if !self.stale_shown
            && self.sess.as_ref().is_none_or(|s| !s.live())
            && self.down_since.is_some_and(|t| t + DOWN_GRACE_MS <= now)
        {
            self.stale_shown = true;
            self.show_unknown("the bridge is unreachable");
        }
    }

    pub(super) fn targets_deadline(&self) -> Option<u64> {
        let watches = self.requests.values().filter_map(|r| match r {
            Req::Watch(_, at) => Some(*at),
            _ => None,
        });
        let retries = self.targets.values().filter_map(|t| match t.watch {
            Watch::Failed(at) => at,
            _ => None,
        });
        let grace = (!self.stale_shown)
            .then(|| self.down_since.map(|t| t + DOWN_GRACE_MS))
            .flatten();
        watches.chain(retries).chain(grace).min()
    }
}

fn mode_is_polling(targets: &std::collections::BTreeMap<String, Target>, target: &str) -> bool {
    targets
        .get(target)
        .is_some_and(|t| t.mode.as_deref() == Some("polling"))
}

fn unknown_line() -> TelephonyPresence {
    TelephonyPresence {
        line: LineState::Unknown,
        do_not_disturb: false,
        forward: None,
        source: TelephonySource::SipDerived,
    }
}

fn raw(name: &str, value: String) -> VendorValue {
    VendorValue {
        name: name.into(),
        value,
    }
}
