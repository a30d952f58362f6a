//! The directory, watched endpoints, presence reads and notifications.
//!
//! * Directory: `GET /restapi/v1.0/account/{accountId}/extension?page=N&perPage=1000`
//!   (Medium), every page reported as `report.directory` (endpoint = the
//!   extension id), read again every 12 hours.
//! * Reads: `GET /restapi/v1.0/account/{accountId}/extension/{id}/presence?detailedTelephonyState=true&sipData=true`
//!   (Light) per extension, or `GET /restapi/v1.0/account/{accountId}/presence?detailedTelephonyState=true&sipData=true&page=N&perPage=1000`
//!   (Heavy) for the whole account, whichever costs less time under the
//!   limits: `n` extensions take `n / light` minutes one by one and
//!   `pages / heavy` minutes account-wide, so the account is read when
//!   `n * heavy > pages * light` (defaults: more than 5 extensions per
//!   1,000 in the account).

use std::collections::{BTreeMap, BTreeSet};

use presence_connector_sdk::time::{MissingZone, parse_datetime};
use presence_connector_sdk::{
    DirectoryEntry, EndpointState, Ordering, PresenceUpdate, UpdateOrigin,
};
use serde_json::Value;

use super::{Action, Core, Level, Outcome, Purpose, TimerKey, keys};
use crate::budget::Group;
use crate::layers::{Cause, ExtLayers, FORCE_ACCEPT, REFLECT_DND};
use crate::mapping::{self, Presence};
use crate::wire::{self, Extension, Notification};

/// Page size of directory and account presence reads (the maximum, RC-OAS
/// `EnumeratedPagingModel.perPage`, `PresencePagingInfo`).
pub const PER_PAGE: u32 = 1000;
/// The directory is read again this often.
const DIRECTORY_EVERY_MS: u64 = 12 * 3_600_000;

/// The account's extensions.
#[derive(Debug, Default)]
pub struct Directory {
    by_id: BTreeMap<String, Extension>,
    by_number: BTreeMap<String, String>,
    /// The pages read so far of a reading in progress.
    building: Vec<Extension>,
    /// The next page to ask for; `None` when no reading is under way.
    next: Option<u32>,
    inflight: bool,
    pub complete: bool,
    /// Listing is refused: endpoints are taken as extension ids as they are.
    pub refused: bool,
    pub refresh_due: bool,
}

impl Directory {
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn retry(&mut self, page: u32) {
        self.inflight = false;
        self.next = Some(page);
    }

    fn get(&self, id: &str) -> Option<&Extension> {
        self.by_id.get(id)
    }

    /// The extension an endpoint names: an id, else an extension number.
    pub fn resolve(&self, endpoint: &str) -> Option<String> {
        if self.by_id.contains_key(endpoint) {
            return Some(endpoint.to_string());
        }
        if let Some(id) = self.by_number.get(endpoint) {
            return Some(id.clone());
        }
        (self.refused && endpoint.chars().all(|c| c.is_ascii_digit()) && !endpoint.is_empty())
            .then(|| endpoint.to_string())
    }
}

/// What the core knows of one extension.
#[derive(Debug, Default)]
pub struct Ext {
    /// Watched endpoints naming it.
    pub endpoints: BTreeSet<String>,
    /// The merged presence as last seen.
    pub presence: Presence,
    pub layers: ExtLayers,
    /// `(epoch, sequence)` of the last notification.
    pub last_seq: Option<(String, u64)>,
    /// When the last notification arrived (reads sent before are stale).
    pub notified_at: u64,
}

impl Ext {
    pub fn with_layers(layers: ExtLayers) -> Ext {
        Ext {
            layers,
            ..Ext::default()
        }
    }
}

fn entry(e: &Extension) -> DirectoryEntry {
    DirectoryEntry {
        endpoint: e.id.clone(),
        email: e.email.clone(),
        display_name: e.name.clone(),
        extension: e.number.clone(),
    }
}

/// The extension an event path names (`…/extension/{id}/presence…`).
fn extension_in_event(event: &str) -> Option<String> {
    let rest = event.split("/extension/").nth(1)?;
    let id = rest.split(['/', '?']).next()?;
    (!id.is_empty() && id != "~").then(|| id.to_string())
}

impl Core {
    pub(super) fn set_ep_state(&mut self, ep: &str, st: EndpointState, detail: Option<String>) {
        if self.ep_states.get(ep) == Some(&st) && detail.is_none() {
            return;
        }
        self.ep_states.insert(ep.to_string(), st);
        self.out
            .push(Action::EndpointState(ep.to_string(), st, detail));
    }

    /// Resolve a watched endpoint through the directory.
    pub(super) fn bind(&mut self, ep: &str) {
        match self.dir.resolve(ep) {
            Some(ext) => {
                self.endpoints.insert(ep.to_string(), Some(ext.clone()));
                let e = self.exts.entry(ext.clone()).or_default();
                e.endpoints.insert(ep.to_string());
                if e.layers.seen {
                    // Known already (another endpoint names it): report now.
                    let update = self.update_for(&ext, UpdateOrigin::Platform, None, None);
                    if let Some(u) = update {
                        let mut u = u;
                        u.endpoint = ep.to_string();
                        self.out.push(Action::Presence(u));
                        self.set_ep_state(ep, EndpointState::Active, None);
                    }
                } else {
                    self.to_read.insert(ext);
                }
            }
            None => {
                self.endpoints.insert(ep.to_string(), None);
                self.set_ep_state(
                    ep,
                    EndpointState::NotFound,
                    Some(format!(
                        "the account has no extension with id or number {ep}"
                    )),
                );
            }
        }
    }

    /// The extensions watched, in order.
    pub(super) fn watched_exts(&self) -> Vec<String> {
        self.exts
            .iter()
            .filter(|(_, e)| !e.endpoints.is_empty())
            .map(|(id, _)| id.clone())
            .collect()
    }

    pub(super) fn reconcile_soon(&mut self) {
        self.set_timer(TimerKey::Reconcile, 300);
    }

    // ---- directory ---------------------------------------------------------

    pub(super) fn pump_directory(&mut self, now: u64) {
        if self.dir.inflight {
            return;
        }
        if self.dir.next.is_none()
            && (!self.dir.complete && !self.dir.refused || self.dir.refresh_due)
        {
            self.dir.next = Some(1);
            self.dir.building.clear();
            self.dir.refresh_due = false;
        }
        let Some(page) = self.dir.next else { return };
        if !self.room(Group::Medium, now) {
            return;
        }
        let path = format!(
            "/restapi/v1.0/account/{}/extension?page={page}&perPage={PER_PAGE}",
            self.s.account
        );
        let req = self.api("GET", &path, None);
        self.dir.inflight = true;
        self.dir.next = None;
        self.send(Purpose::Directory(page), req, now);
    }

    pub(super) fn on_directory(&mut self, page: u32, outcome: Outcome, now: u64) {
        self.dir.inflight = false;
        match outcome {
            Outcome::Ok(resp) => {
                let Some((exts, more)) = wire::extension_page(&resp.body) else {
                    self.log(Level::Warn, "extension list unreadable; read again in 60 s");
                    self.set_timer(TimerKey::Directory, 60_000);
                    return;
                };
                self.forbidden.remove("ReadAccounts");
                let entries: Vec<DirectoryEntry> = exts.iter().map(entry).collect();
                self.dir.building.extend(exts);
                let more = more && !entries.is_empty();
                self.out.push(Action::Directory(entries, !more));
                if more {
                    self.dir.next = Some(page + 1);
                } else {
                    self.directory_complete(now);
                }
            }
            Outcome::Forbidden(perm, text) => {
                self.forbid("ReadAccounts", perm, "list the account's extensions", &text);
                self.dir.refused = true;
                self.directory_complete(now);
            }
            other => {
                self.log(
                    Level::Warn,
                    format!("extension list failed: {other:?}; read again in 60 s"),
                );
                self.set_timer(TimerKey::Directory, 60_000);
            }
        }
    }

    fn directory_complete(&mut self, _now: u64) {
        let list = std::mem::take(&mut self.dir.building);
        if !self.dir.refused || !list.is_empty() {
            self.dir.by_id = list.iter().map(|e| (e.id.clone(), e.clone())).collect();
            self.dir.by_number = list
                .iter()
                .filter_map(|e| Some((e.number.clone()?, e.id.clone())))
                .collect();
        }
        self.dir.complete = true;
        self.set_timer(TimerKey::Directory, DIRECTORY_EVERY_MS);
        // (Re)bind endpoints: numbers may have moved.
        let eps: Vec<(String, Option<String>)> = self
            .endpoints
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (ep, bound) in eps {
            let now_ext = self.dir.resolve(&ep);
            if bound.is_some() && bound == now_ext {
                continue;
            }
            if let Some(old) = bound
                && let Some(e) = self.exts.get_mut(&old)
            {
                e.endpoints.remove(&ep);
            }
            self.bind(&ep);
        }
        self.reconcile_soon();
    }

    /// Whether the forced queue-call acceptance applies to an extension.
    pub(super) fn force_applies(&self, ext: &str) -> bool {
        if !self.s.force_accept {
            return false;
        }
        let info = self.dir.get(ext);
        !self.s.excluded(
            ext,
            info.and_then(|i| i.number.as_deref()),
            info.and_then(|i| i.email.as_deref()),
        )
    }

    // ---- reads -------------------------------------------------------------

    /// Send the reads that may go: those of extensions whose notifications
    /// already flow (subscribe first, then read: a change between the two is
    /// seen either way), or of every extension once push has been down past
    /// its grace (read blind, and again when push comes back).
    pub(super) fn pump_reads(&mut self, now: u64) {
        let seen_again: Vec<String> = self
            .read_blind
            .iter()
            .filter(|e| self.covered(e))
            .cloned()
            .collect();
        for ext in seen_again {
            self.read_blind.remove(&ext);
            if !self.reading.contains(&ext) {
                self.to_read.insert(ext);
            }
        }
        if !self.dir.complete || self.to_read.is_empty() {
            return;
        }
        // Only watched extensions get notifications to wait for; a read
        // for a write's sake (an unwatched extension) goes at once.
        let blind = self.push_down(now).is_some();
        let watched: BTreeSet<String> = self.watched_exts().into_iter().collect();
        let ready: BTreeSet<String> = self
            .to_read
            .iter()
            .filter(|e| blind || !watched.contains(*e) || self.covered(e))
            .cloned()
            .collect();
        if ready.is_empty() {
            return;
        }
        let (light, _) = self.budget.limit(Group::Light);
        let (heavy, _) = self.budget.limit(Group::Heavy);
        let pages = (self.dir.len() as u64).div_ceil(u64::from(PER_PAGE)).max(1);
        let n = ready.len() as u64;
        if !self.dir.refused && n * u64::from(heavy) > pages * u64::from(light) {
            if !self.room(Group::Heavy, now) {
                return;
            }
            for e in &ready {
                self.to_read.remove(e);
                if blind && watched.contains(e) && !self.covered(e) {
                    self.read_blind.insert(e.clone());
                }
            }
            self.reading.extend(ready.iter().cloned());
            self.send_account_read(1, ready, now);
            return;
        }
        for ext in ready {
            if !self.room(Group::Light, now) {
                return;
            }
            self.to_read.remove(&ext);
            if blind && watched.contains(&ext) && !self.covered(&ext) {
                self.read_blind.insert(ext.clone());
            }
            self.reading.insert(ext.clone());
            let path = format!(
                "/restapi/v1.0/account/{}/extension/{ext}/presence?detailedTelephonyState=true&sipData=true",
                self.s.account
            );
            let req = self.api("GET", &path, None);
            self.send(Purpose::Read(ext, now), req, now);
        }
    }

    fn send_account_read(&mut self, page: u32, exts: BTreeSet<String>, now: u64) {
        let path = format!(
            "/restapi/v1.0/account/{}/presence?detailedTelephonyState=true&sipData=true&page={page}&perPage={PER_PAGE}",
            self.s.account
        );
        let req = self.api("GET", &path, None);
        self.send(Purpose::ReadAccount(page, exts, now), req, now);
    }

    pub(super) fn on_read(&mut self, ext: String, sent: u64, outcome: Outcome, now: u64) {
        self.reading.remove(&ext);
        match outcome {
            Outcome::Ok(resp) => {
                self.forbidden.remove("ReadPresence");
                let Ok(Value::Object(p)) = serde_json::from_slice::<Value>(&resp.body) else {
                    self.log(Level::Warn, format!("presence of {ext} unreadable"));
                    return;
                };
                self.last_event = Some(now);
                self.apply(&ext, &p, None, None, Some(sent), now);
            }
            Outcome::NotFound(text) => self.ext_state(&ext, EndpointState::NotFound, text),
            Outcome::Forbidden(perm, text) => {
                let perm = perm.unwrap_or_else(|| "ReadPresence".into());
                let detail = format!(
                    "RingCentral refused to read the presence ({text}); the app needs {perm}"
                );
                self.ext_state(&ext, EndpointState::AccessDenied, detail);
            }
            Outcome::Rejected(_, text) => self.ext_state(&ext, EndpointState::Error, text),
            _ => {}
        }
    }

    pub(super) fn on_read_account(
        &mut self,
        page: u32,
        exts: BTreeSet<String>,
        sent: u64,
        outcome: Outcome,
        now: u64,
    ) {
        match outcome {
            Outcome::Ok(resp) => {
                let Some((records, more)) = wire::account_presence_page(&resp.body) else {
                    self.log(Level::Warn, "account presence unreadable");
                    for e in exts {
                        self.reading.remove(&e);
                    }
                    return;
                };
                self.forbidden.remove("ReadPresence");
                self.last_event = Some(now);
                let mut left = exts;
                for p in records {
                    let Some(ext) = wire::presence_extension(&p) else {
                        continue;
                    };
                    if left.remove(&ext) {
                        self.reading.remove(&ext);
                        self.apply(&ext, &p, None, None, Some(sent), now);
                    }
                }
                if more && !left.is_empty() {
                    if self.room(Group::Heavy, now) {
                        self.send_account_read(page + 1, left, now);
                    } else {
                        for e in left {
                            self.reading.remove(&e);
                            self.to_read.insert(e);
                        }
                    }
                } else {
                    // Not in the account's presence: asked one by one.
                    for e in left {
                        self.reading.remove(&e);
                        self.to_read.insert(e);
                    }
                }
            }
            Outcome::Forbidden(perm, text) => {
                let msg = self.forbid("ReadPresence", perm, "read the account's presence", &text);
                for e in exts {
                    self.reading.remove(&e);
                    self.ext_state(&e, EndpointState::AccessDenied, msg.clone());
                }
            }
            other => {
                self.log(Level::Warn, format!("account presence failed: {other:?}"));
                for e in exts {
                    self.reading.remove(&e);
                    self.to_read.insert(e);
                }
                self.wake_in(30_000, now);
            }
        }
    }

    /// Set the state of every endpoint naming `ext`.
    pub(super) fn ext_state(&mut self, ext: &str, st: EndpointState, detail: String) {
        let eps: Vec<String> = self
            .exts
            .get(ext)
            .map(|e| e.endpoints.iter().cloned().collect())
            .unwrap_or_default();
        for ep in eps {
            self.set_ep_state(&ep, st, Some(detail.clone()));
        }
    }

    // ---- notifications -------------------------------------------------

    /// A notification (WebHook body or WebSocket `ServerNotification`).
    /// `epoch` names the subscription or session when the envelope does not.
    pub(super) fn on_notification(&mut self, v: &Value, epoch: &str, now: u64) {
        let Ok(n) = serde_json::from_value::<Notification>(v.clone()) else {
            return;
        };
        let Some(Value::Object(body)) = &n.body else {
            return;
        };
        let event = n.event.clone().unwrap_or_default();
        if !event.contains("/presence") {
            self.log(Level::Debug, format!("ignored a notification for {event}"));
            return;
        }
        let Some(ext) = wire::presence_extension(body).or_else(|| extension_in_event(&event))
        else {
            return;
        };
        self.last_event = Some(now);
        let Some(e) = self.exts.get(&ext) else { return };
        if e.endpoints.is_empty() && !e.layers.seen {
            return;
        }
        let epoch = n
            .subscription_id
            .clone()
            .unwrap_or_else(|| epoch.to_string());
        let seq = body.get("sequence").and_then(Value::as_u64);
        let ordering = seq.map(|sequence| Ordering {
            epoch: epoch.clone(),
            sequence,
        });
        if let (Some(s), Some((last_epoch, last))) = (seq, &e.last_seq)
            && *last_epoch == epoch
            && s <= *last
        {
            self.log(
                Level::Debug,
                format!("notification {s} for {ext} is older than {last}: dropped"),
            );
            return;
        }
        let observed = n
            .timestamp
            .as_deref()
            .and_then(|t| parse_datetime(t, MissingZone::Utc));
        if let Some(e) = self.exts.get_mut(&ext) {
            if let Some(s) = seq {
                e.last_seq = Some((epoch, s));
            }
            e.notified_at = now;
        }
        let _ = n.uuid;
        self.apply(&ext, body, ordering, observed, None, now);
    }

    /// Take in presence of `ext` (a read sent at `read_sent`, or a
    /// notification): layers, rules, the report.
    pub(super) fn apply(
        &mut self,
        ext: &str,
        p: &Presence,
        ordering: Option<Ordering>,
        observed: Option<u64>,
        read_sent: Option<u64>,
        now: u64,
    ) {
        let force = self.force_applies(ext);
        let reflect_on = self.s.reflect_dnd;
        let Some(e) = self.exts.get_mut(ext) else {
            return;
        };
        if let Some(sent) = read_sent
            && e.notified_at > sent
        {
            // A notification overtook this read.
            return;
        }
        let was_seen = e.layers.seen;
        let before = serde_json::to_vec(&e.layers).unwrap_or_default();
        mapping::merge(&mut e.presence, p);
        let merged = e.presence.clone();
        e.layers.sweep(now);
        let obs = e.layers.observe(&merged, force);
        let reflect_changed = reflect_on && e.layers.set_reflect(mapping::in_call(&merged));
        let after = serde_json::to_vec(&e.layers).unwrap_or_default();
        let hub_overridden = obs.hub_overridden;
        if reflect_changed {
            self.dirty
                .entry(ext.to_string())
                .or_insert(Cause::Rule(REFLECT_DND));
        }
        if force && (!was_seen || !obs.by_person.is_empty()) {
            self.dirty
                .entry(ext.to_string())
                .or_insert(Cause::Rule(FORCE_ACCEPT));
        }
        if before != after {
            self.out
                .push(Action::KvSet(format!("{}{ext}", keys::EXT_PREFIX), after));
        }
        if hub_overridden {
            self.log(
                Level::Info,
                format!("extension {ext}: the person changed what the hub had set; it stays as they set it"),
            );
            self.cancel_timer(TimerKey::Expire(ext.to_string()));
        }
        let origin = match obs.echo_of {
            Some(Cause::Hub(id)) => UpdateOrigin::HubWrite(id),
            Some(Cause::Rule(name)) => UpdateOrigin::ConnectorRule(name.into()),
            None => UpdateOrigin::Platform,
        };
        let Some(update) = self.update_for(ext, origin, ordering, observed) else {
            return;
        };
        let eps: Vec<String> = self.exts[ext].endpoints.iter().cloned().collect();
        for ep in eps {
            let mut u = update.clone();
            u.endpoint = ep.clone();
            self.out.push(Action::Presence(u));
            self.set_ep_state(&ep, EndpointState::Active, None);
        }
    }

    /// The update of `ext` as last seen (endpoint left for the caller).
    pub(super) fn update_for(
        &self,
        ext: &str,
        origin: UpdateOrigin,
        ordering: Option<Ordering>,
        observed: Option<u64>,
    ) -> Option<PresenceUpdate> {
        let p = &self.exts.get(ext)?.presence;
        Some(PresenceUpdate {
            endpoint: ext.to_string(),
            observed_at: observed,
            ordering,
            origin,
            telephony: Some(mapping::telephony(p)),
            rich: Some(mapping::rich(p)),
            calendar: None,
            valid_for_ms: None,
            raw: mapping::raw(p),
        })
    }

    /// Read every watched extension again (after a lost session).
    pub(super) fn reread_all(&mut self) {
        for ext in self.watched_exts() {
            if !self.reading.contains(&ext) {
                self.to_read.insert(ext);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::extension_in_event;

    #[test]
    fn extension_from_event_paths() {
        assert_eq!(
            extension_in_event(
                "/restapi/v1.0/account/~/extension/62000001/presence?detailedTelephonyState=true"
            )
            .as_deref(),
            Some("62000001")
        );
        assert_eq!(
            extension_in_event("/restapi/v1.0/account/~/extension/~/presence"),
            None
        );
        assert_eq!(extension_in_event("/restapi/v1.0/account/~/presence"), None);
    }
}
