//! Who wants what on one extension's presence settings, and what to write.
//!
//! Three parties set the same few fields of `PresenceInfoRequest` (RC-OAS):
//! the **person** (in the RingCentral app), the **hub** (write-back: DND with
//! a scope, or a user status) and the connector's **rules** (reflect-DND
//! while in a RingCentral call; forced "Accept queue calls"). They are kept
//! as layers over the person's own values (`base`):
//!
//! * the hub's DND for all calls wins; reflect-DND sets the same value while
//!   a call lasts (so the hub's DND is never lifted by a call's end, and a
//!   call's DND lifts to what the person had);
//! * the hub's queue-calls DND is never undone by the forced queue-call
//!   acceptance, which acts on the person's own values only;
//! * a change nobody here wrote is the person's: it becomes their value, and
//!   a layer that held the field gives way (the hub's write counts as
//!   overridden, restore answers `user-changed`; reflect-DND stays off until
//!   the call ends), so nothing fights the person in a loop.
//!
//! Writes are recognised by their echo: each field written is *expected*
//! with its cause until a notification shows it (or a deadline passes), and
//! the update that shows it carries that cause as its origin.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::mapping::Presence;

/// A written field of `PresenceInfoRequest`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Field {
    /// `dndStatus` (classic model).
    DndStatus,
    /// `dndStatusPersonal` (new communication handling).
    DndPersonal,
    /// `acceptCallQueueCalls` (new communication handling), `"true"`/`"false"`.
    AcceptQueue,
    /// `userStatus`.
    UserStatus,
}

impl Field {
    pub const ALL: [Field; 4] = [
        Field::DndStatus,
        Field::DndPersonal,
        Field::AcceptQueue,
        Field::UserStatus,
    ];

    /// The JSON key.
    pub fn key(self) -> &'static str {
        match self {
            Field::DndStatus => "dndStatus",
            Field::DndPersonal => "dndStatusPersonal",
            Field::AcceptQueue => "acceptCallQueueCalls",
            Field::UserStatus => "userStatus",
        }
    }

    fn read(self, p: &Presence) -> Option<String> {
        match p.get(self.key())? {
            Value::String(s) => Some(s.clone()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }

    fn json(self, v: &str) -> Value {
        match self {
            Field::AcceptQueue => Value::Bool(v == "true"),
            _ => Value::String(v.to_string()),
        }
    }
}

/// Field values, as text.
pub type Fields = BTreeMap<Field, String>;

/// The fields of a presence object.
pub fn fields_of(p: &Presence) -> Fields {
    Field::ALL
        .into_iter()
        .filter_map(|f| f.read(p).map(|v| (f, v)))
        .collect()
}

/// A `PUT …/presence` body (`PresenceInfoRequest`) of these fields.
pub fn request_body(fields: &Fields) -> Value {
    let mut m = Map::new();
    for (f, v) in fields {
        m.insert(f.key().into(), f.json(v));
    }
    Value::Object(m)
}

pub const ANY: &str = "DoNotAcceptAnyCalls";
pub const DEPARTMENT: &str = "DoNotAcceptDepartmentCalls";
pub const TAKE_ALL: &str = "TakeAllCalls";

/// Rule names, as reported in `connector-rule(...)` origins.
pub const REFLECT_DND: &str = "reflect-dnd";
pub const FORCE_ACCEPT: &str = "force-accept-queue-calls";

/// Why a field is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Cause {
    /// The hub's write with this id (set, restore, or its expiry).
    Hub(u64),
    /// A connector rule ([`REFLECT_DND`], [`FORCE_ACCEPT`]).
    Rule(&'static str),
}

/// What the hub's standing write asks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Want {
    DndAll,
    DndQueue,
    /// A `userStatus` value.
    Status(String),
}

/// The hub's standing write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HubLayer {
    pub id: u64,
    pub want: Want,
    /// When the hub's state lapses (ms since the epoch).
    pub expires_at: Option<u64>,
}

/// A written value not yet seen in a notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expect {
    pub field: Field,
    pub value: String,
    pub cause: Cause,
    /// The write request it belongs to.
    pub put: u64,
    pub deadline: u64,
    /// RingCentral answered the write with 200.
    pub acked: bool,
}

/// How long a written value waits for its echo.
pub const ECHO_WAIT_MS: u64 = 30_000;

/// One extension's layers. The persistent part is what restarts need: the
/// person's values, the hub's write and the rule states.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtLayers {
    /// The person's own values: what they had before the hub's first write,
    /// as they changed them since.
    pub base: Fields,
    pub hub: Option<HubLayer>,
    /// The person changed a field the hub's write held.
    pub hub_overridden: bool,
    /// Reflect-DND holds: the person is in a RingCentral call.
    pub reflect: bool,
    /// The person lifted the reflected DND during this call.
    pub reflect_suppressed: bool,
    /// The platform's values as last seen.
    #[serde(skip)]
    pub cur: Fields,
    #[serde(skip)]
    pub seen: bool,
    #[serde(skip)]
    pub expects: Vec<Expect>,
}

/// What an observation meant.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Observed {
    /// The cause of the first written value it shows, where every change
    /// it shows was written here.
    pub echo_of: Option<Cause>,
    /// Fields the person changed.
    pub by_person: Vec<Field>,
    /// The hub's write was overridden by this change.
    pub hub_overridden: bool,
}

impl ExtLayers {
    /// Whether the extension uses the new communication handling:
    /// `dndStatusPersonal` is sent and `dndStatus` is not (or `Unknown`),
    /// "not applicable … if the new communication handling service is
    /// activated" (RC-OAS `dndStatus`).
    pub fn new_model(&self) -> bool {
        self.cur.contains_key(&Field::DndPersonal)
            && self
                .cur
                .get(&Field::DndStatus)
                .is_none_or(|v| v == "Unknown")
    }

    fn dnd_field(&self) -> Field {
        if self.new_model() {
            Field::DndPersonal
        } else {
            Field::DndStatus
        }
    }

    /// What the layers want, field by field, with why.
    pub fn wants(&self) -> BTreeMap<Field, (String, Cause)> {
        let mut w = BTreeMap::new();
        let dnd = self.dnd_field();
        if let Some(h) = &self.hub {
            let cause = Cause::Hub(h.id);
            match &h.want {
                Want::DndAll => {
                    w.insert(dnd, (ANY.to_string(), cause));
                }
                Want::DndQueue if self.new_model() => {
                    w.insert(Field::AcceptQueue, ("false".to_string(), cause));
                }
                Want::DndQueue => {
                    // The person's own DND for all calls is stronger.
                    if self.base.get(&Field::DndStatus).map(String::as_str) != Some(ANY) {
                        w.insert(Field::DndStatus, (DEPARTMENT.to_string(), cause));
                    }
                }
                Want::Status(s) => {
                    w.insert(Field::UserStatus, (s.clone(), cause));
                }
            }
        }
        let hub_all = matches!(self.hub.as_ref().map(|h| &h.want), Some(Want::DndAll));
        if self.reflect && !self.reflect_suppressed && !hub_all {
            w.insert(dnd, (ANY.to_string(), Cause::Rule(REFLECT_DND)));
        }
        w
    }

    /// The values the platform should show.
    pub fn desired(&self) -> Fields {
        let mut d = self.base.clone();
        for (f, (v, _)) in self.wants() {
            d.insert(f, v);
        }
        d
    }

    /// The platform's values once the writes on their way land.
    pub fn projected(&self) -> Fields {
        let mut p = self.cur.clone();
        for e in &self.expects {
            p.insert(e.field, e.value.clone());
        }
        p
    }

    /// What to write now, each field with its cause; `back` is the cause of
    /// fields returning to the person's own value (a lifted layer).
    pub fn diff(&self, back: Cause) -> BTreeMap<Field, (String, Cause)> {
        let wants = self.wants();
        let projected = self.projected();
        self.desired()
            .into_iter()
            .filter(|(f, v)| projected.get(f) != Some(v))
            // Never write a field the platform has not shown (it may not
            // apply to this extension's model).
            .filter(|(f, _)| self.cur.contains_key(f) || wants.contains_key(f))
            .map(|(f, v)| {
                let cause = wants.get(&f).map_or(back, |(_, c)| *c);
                (f, (v, cause))
            })
            .collect()
    }

    /// Expect these written values (request `put`).
    pub fn expect(&mut self, put: u64, fields: &BTreeMap<Field, (String, Cause)>, now: u64) {
        for (f, (v, c)) in fields {
            self.expects.push(Expect {
                field: *f,
                value: v.clone(),
                cause: *c,
                put,
                deadline: now + ECHO_WAIT_MS,
                acked: false,
            });
        }
    }

    /// RingCentral took (`ok`) or refused write request `put`.
    pub fn put_done(&mut self, put: u64, ok: bool) {
        if ok {
            for e in self.expects.iter_mut().filter(|e| e.put == put) {
                e.acked = true;
            }
        } else {
            self.expects.retain(|e| e.put != put);
        }
    }

    /// Drops expectations past their deadline; one RingCentral took is
    /// assumed to have landed (its echo was lost), so it is not written
    /// again.
    pub fn sweep(&mut self, now: u64) {
        let (gone, keep): (Vec<Expect>, Vec<Expect>) =
            self.expects.drain(..).partition(|e| e.deadline <= now);
        self.expects = keep;
        for e in gone.into_iter().filter(|e| e.acked) {
            self.cur.insert(e.field, e.value);
        }
    }

    /// Takes in the platform's state. `force_accept`: the forced
    /// queue-call acceptance applies to this extension.
    pub fn observe(&mut self, p: &Presence, force_accept: bool) -> Observed {
        let new = fields_of(p);
        let mut out = Observed::default();
        let mut explained = Vec::new();
        let wants = self.wants();
        let first = !self.seen;
        for (f, v) in &new {
            if !first && self.cur.get(f) == Some(v) {
                continue;
            }
            if let Some(i) = self
                .expects
                .iter()
                .position(|e| e.field == *f && e.value == *v)
            {
                explained.push(self.expects[i].cause);
                // This and any older value of the field are settled.
                let put = self.expects[i].put;
                self.expects
                    .retain(|e| e.field != *f || (e.put > put && e.value != *v));
                continue;
            }
            match wants.get(f) {
                Some((w, _)) if w == v => {
                    // A layer's value, still standing (after a restart, or a
                    // write whose echo came late).
                }
                Some((_, cause)) => {
                    self.base.insert(*f, v.clone());
                    out.by_person.push(*f);
                    match cause {
                        Cause::Hub(_) => {
                            self.hub = None;
                            self.hub_overridden = true;
                            out.hub_overridden = true;
                        }
                        Cause::Rule(_) => self.reflect_suppressed = true,
                    }
                }
                None => {
                    if first {
                        self.base.insert(*f, v.clone());
                    } else if self.base.get(f) != Some(v) || self.cur.get(f) != Some(v) {
                        self.base.insert(*f, v.clone());
                        out.by_person.push(*f);
                    }
                }
            }
        }
        self.cur = new;
        self.seen = true;
        if force_accept && (first || !out.by_person.is_empty()) {
            if self.base.get(&Field::DndStatus).map(String::as_str) == Some(DEPARTMENT) {
                self.base.insert(Field::DndStatus, TAKE_ALL.into());
            }
            if self.base.get(&Field::AcceptQueue).map(String::as_str) == Some("false") {
                self.base.insert(Field::AcceptQueue, "true".into());
            }
        }
        if out.by_person.is_empty() {
            out.echo_of = explained.first().copied();
        }
        out
    }

    /// The call state changed: reflect-DND holds while `in_call` (when the
    /// option is on). Returns whether the layer changed.
    pub fn set_reflect(&mut self, in_call: bool) -> bool {
        if self.reflect == in_call {
            return false;
        }
        self.reflect = in_call;
        if !in_call {
            self.reflect_suppressed = false;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pres(v: Value) -> Presence {
        v.as_object().unwrap().clone()
    }

    fn classic(dnd: &str) -> Presence {
        pres(json!({"dndStatus": dnd, "userStatus": "Available", "telephonyStatus": "NoCall"}))
    }

    fn f(pairs: &[(Field, &str)]) -> Fields {
        pairs.iter().map(|(k, v)| (*k, v.to_string())).collect()
    }

    /// Write what `diff` says and let its echo come back.
    fn write_and_echo(l: &mut ExtLayers, back: Cause, put: u64) -> (Fields, Observed) {
        let d = l.diff(back);
        l.expect(put, &d, 0);
        l.put_done(put, true);
        let mut p = Map::new();
        for (k, v) in &l.cur {
            p.insert(k.key().into(), k.json(v));
        }
        for (k, (v, _)) in &d {
            p.insert(k.key().into(), k.json(v));
        }
        let obs = l.observe(&p, false);
        (d.into_iter().map(|(k, (v, _))| (k, v)).collect(), obs)
    }

    #[test]
    fn hub_dnd_then_restore_puts_back_what_the_person_had() {
        let mut l = ExtLayers::default();
        l.observe(&classic("TakeAllCalls"), false);
        l.hub = Some(HubLayer {
            id: 7,
            want: Want::DndAll,
            expires_at: None,
        });
        let (written, obs) = write_and_echo(&mut l, Cause::Hub(7), 1);
        assert_eq!(written, f(&[(Field::DndStatus, ANY)]));
        assert_eq!(obs.echo_of, Some(Cause::Hub(7)));
        assert!(obs.by_person.is_empty());
        l.hub = None;
        let (written, obs) = write_and_echo(&mut l, Cause::Hub(8), 2);
        assert_eq!(written, f(&[(Field::DndStatus, TAKE_ALL)]));
        assert_eq!(obs.echo_of, Some(Cause::Hub(8)));
        assert_eq!(
            l.base,
            f(&[
                (Field::DndStatus, TAKE_ALL),
                (Field::UserStatus, "Available")
            ])
        );
    }

    #[test]
    fn the_person_overriding_the_hub_wins_and_is_not_fought() {
        let mut l = ExtLayers::default();
        l.observe(&classic("TakeAllCalls"), false);
        l.hub = Some(HubLayer {
            id: 7,
            want: Want::DndAll,
            expires_at: None,
        });
        write_and_echo(&mut l, Cause::Hub(7), 1);
        let obs = l.observe(&classic("TakeAllCalls"), false);
        assert_eq!(obs.by_person, vec![Field::DndStatus]);
        assert!(obs.hub_overridden && l.hub_overridden && l.hub.is_none());
        assert!(l.diff(Cause::Hub(0)).is_empty(), "nothing to write back");
    }

    #[test]
    fn reflect_dnd_lifts_to_the_persons_value_but_never_lifts_the_hubs_dnd() {
        let mut l = ExtLayers::default();
        l.observe(&classic("TakeAllCalls"), false);
        assert!(l.set_reflect(true));
        let (w, obs) = write_and_echo(&mut l, Cause::Rule(REFLECT_DND), 1);
        assert_eq!(w, f(&[(Field::DndStatus, ANY)]));
        assert_eq!(obs.echo_of, Some(Cause::Rule(REFLECT_DND)));
        // The hub sets DND during the call: already there, nothing to write.
        l.hub = Some(HubLayer {
            id: 9,
            want: Want::DndAll,
            expires_at: None,
        });
        assert!(l.diff(Cause::Hub(9)).is_empty());
        // The call ends: the hub's DND stays.
        l.set_reflect(false);
        assert!(l.diff(Cause::Rule(REFLECT_DND)).is_empty());
        // The hub restores: back to the person's own value.
        l.hub = None;
        let d = l.diff(Cause::Hub(10));
        assert_eq!(
            d.get(&Field::DndStatus),
            Some(&(TAKE_ALL.to_string(), Cause::Hub(10)))
        );
    }

    #[test]
    fn reflect_leaves_a_person_who_had_dnd_alone_and_stops_when_they_lift_it() {
        let mut l = ExtLayers::default();
        l.observe(&classic(ANY), false);
        l.set_reflect(true);
        assert!(l.diff(Cause::Rule(REFLECT_DND)).is_empty());
        l.set_reflect(false);
        assert!(
            l.diff(Cause::Rule(REFLECT_DND)).is_empty(),
            "their DND stays"
        );
        // Another call; they lift the reflected DND during it.
        let mut l = ExtLayers::default();
        l.observe(&classic(TAKE_ALL), false);
        l.set_reflect(true);
        write_and_echo(&mut l, Cause::Rule(REFLECT_DND), 1);
        let obs = l.observe(&classic(TAKE_ALL), false);
        assert_eq!(obs.by_person, vec![Field::DndStatus]);
        assert!(l.reflect_suppressed);
        assert!(l.diff(Cause::Rule(REFLECT_DND)).is_empty());
        l.set_reflect(false);
        assert!(!l.reflect_suppressed);
    }

    #[test]
    fn forced_queue_acceptance_spares_the_hubs_queue_dnd() {
        let mut l = ExtLayers::default();
        l.observe(&classic(TAKE_ALL), true);
        // The person declines queue calls: turned back on.
        let obs = l.observe(&classic(DEPARTMENT), true);
        assert_eq!(obs.by_person, vec![Field::DndStatus]);
        let d = l.diff(Cause::Rule(FORCE_ACCEPT));
        assert_eq!(
            d.get(&Field::DndStatus),
            Some(&(TAKE_ALL.to_string(), Cause::Rule(FORCE_ACCEPT)))
        );
        l.expect(1, &d, 0);
        let obs = l.observe(&classic(TAKE_ALL), true);
        assert_eq!(obs.echo_of, Some(Cause::Rule(FORCE_ACCEPT)));
        // The hub's queue DND is its own layer: not undone.
        l.hub = Some(HubLayer {
            id: 3,
            want: Want::DndQueue,
            expires_at: None,
        });
        let d = l.diff(Cause::Hub(3));
        assert_eq!(
            d.get(&Field::DndStatus),
            Some(&(DEPARTMENT.to_string(), Cause::Hub(3)))
        );
        l.expect(2, &d, 0);
        let obs = l.observe(&classic(DEPARTMENT), true);
        assert_eq!(obs.echo_of, Some(Cause::Hub(3)));
        assert!(l.diff(Cause::Rule(FORCE_ACCEPT)).is_empty());
    }

    #[test]
    fn new_communication_handling_uses_personal_dnd_and_queue_acceptance() {
        let p = pres(
            json!({"dndStatusPersonal": TAKE_ALL, "acceptCallQueueCalls": true,
            "userStatus": "Available"}),
        );
        let mut l = ExtLayers::default();
        l.observe(&p, true);
        assert!(l.new_model());
        l.hub = Some(HubLayer {
            id: 1,
            want: Want::DndQueue,
            expires_at: None,
        });
        assert_eq!(
            request_body(
                &l.diff(Cause::Hub(1))
                    .into_iter()
                    .map(|(k, (v, _))| (k, v))
                    .collect()
            ),
            json!({"acceptCallQueueCalls": false})
        );
        l.hub = Some(HubLayer {
            id: 2,
            want: Want::DndAll,
            expires_at: None,
        });
        let d = l.diff(Cause::Hub(2));
        assert_eq!(d.get(&Field::DndPersonal).map(|x| x.0.as_str()), Some(ANY));
        // The person switches queue calls off: forced back on.
        l.hub = None;
        let off = pres(
            json!({"dndStatusPersonal": TAKE_ALL, "acceptCallQueueCalls": false,
            "userStatus": "Available"}),
        );
        l.observe(&off, true);
        let d = l.diff(Cause::Rule(FORCE_ACCEPT));
        assert_eq!(
            d.get(&Field::AcceptQueue),
            Some(&("true".to_string(), Cause::Rule(FORCE_ACCEPT)))
        );
    }

    #[test]
    fn status_writes_and_lapsed_echoes() {
        let mut l = ExtLayers::default();
        l.observe(&classic(TAKE_ALL), false);
        l.hub = Some(HubLayer {
            id: 4,
            want: Want::Status("Busy".into()),
            expires_at: None,
        });
        let d = l.diff(Cause::Hub(4));
        assert_eq!(
            request_body(&d.iter().map(|(k, (v, _))| (*k, v.clone())).collect()),
            json!({"userStatus": "Busy"})
        );
        l.expect(1, &d, 1_000);
        // Written but never echoed: projected, so not written twice.
        assert!(l.diff(Cause::Hub(4)).is_empty());
        l.put_done(1, true);
        l.sweep(1_000 + ECHO_WAIT_MS);
        assert_eq!(
            l.cur.get(&Field::UserStatus).map(String::as_str),
            Some("Busy")
        );
        assert!(l.diff(Cause::Hub(4)).is_empty());
        // A refused write is forgotten: written again when asked.
        l.hub = None;
        let d = l.diff(Cause::Hub(5));
        l.expect(2, &d, 0);
        l.put_done(2, false);
        assert_eq!(l.diff(Cause::Hub(5)).len(), 1);
    }

    #[test]
    fn after_a_restart_the_standing_write_is_not_taken_for_the_person() {
        let mut l = ExtLayers::default();
        l.observe(&classic(TAKE_ALL), false);
        l.hub = Some(HubLayer {
            id: 7,
            want: Want::DndAll,
            expires_at: None,
        });
        let stored = serde_json::to_vec(&l).unwrap();
        let mut again: ExtLayers = serde_json::from_slice(&stored).unwrap();
        let obs = again.observe(&classic(ANY), false);
        assert!(obs.by_person.is_empty());
        assert_eq!(
            again.base.get(&Field::DndStatus).map(String::as_str),
            Some(TAKE_ALL)
        );
        assert!(again.hub.is_some());
    }
}
