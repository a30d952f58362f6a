//! The sync engine against simulated platforms: random interleavings of
//! conversations on three platforms, echoes, a person's changes, reordered
//! and duplicated events, failing and slow writes. Each property is also
//! run against deliberately broken engines (mutants) to show it bites.

use std::collections::VecDeque;

use proptest::prelude::*;

use super::*;
use crate::engine::{
    Activity, LineState, PresenceReport, ReportOrdering, RichPresence, TelephonyPresence,
    TelephonySource,
};

const NAMES: [&str; 3] = ["pbx", "teams", "rc"];
/// Teams leads, as in the seeds.
const LEADER: usize = 1;
const CHANNELS: [DndChannel; 3] = [DndChannel::Rich, DndChannel::Rich, DndChannel::Telephony];

const TIMING: Timing = Timing {
    retry_first_ms: 1_000,
    retry_max_ms: 30_000,
    lease_ms: None,
    echo_grace_ms: 5_000,
    // Slow writes in the model are slow, never lost: see
    // `a_write_never_answered_is_made_again` for the timeout.
    write_timeout_ms: u64::MAX / 4,
};

/// Something a test does.
#[derive(Debug, Clone)]
enum Op {
    /// A conversation starts or ends on a platform.
    Conversation(usize, bool),
    /// The person switches the hub's DND off on a follower.
    ManualOff(usize),
    /// The person's own DND on the leading system.
    LeaderDnd(bool),
    /// The platform's next write fails (retryable).
    FailNext(usize),
    /// The platform handles its oldest queued write; `supersede`: a write
    /// queued behind it replaces it unapplied.
    HandleWrite(usize, bool),
    /// The hub takes the k-th waiting event (out of order).
    Deliver(usize),
    /// The hub gets an event it had (the k-th last) again.
    Duplicate(usize),
    /// Time passes.
    Wait(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..3usize, any::<bool>()).prop_map(|(p, on)| Op::Conversation(p, on)),
        1 => prop_oneof![Just(0usize), Just(2usize)].prop_map(Op::ManualOff),
        1 => any::<bool>().prop_map(Op::LeaderDnd),
        1 => (0..3usize).prop_map(Op::FailNext),
        4 => (0..3usize, prop::bool::weighted(0.2)).prop_map(|(p, s)| Op::HandleWrite(p, s)),
        4 => (0..8usize).prop_map(Op::Deliver),
        1 => (0..8usize).prop_map(Op::Duplicate),
        1 => (0..40_000u64).prop_map(Op::Wait),
    ]
}

#[derive(Debug, Clone)]
enum Event {
    Report(usize, Box<PresenceReport>),
    Outcome(u64, WriteResult),
}

/// What an engine under test is: the real one or a mutant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mutant {
    None,
    /// Issues every write twice.
    Doubles,
    /// Never lifts.
    NeverRestores,
    /// Cannot tell which observation is its write's target, so it reads
    /// its own DND as a conversation.
    TargetBlind,
    /// Ignores failed writes (no retry).
    ForgetsFailures,
    /// Sets back a person's change on every platform, the leading one too,
    /// and takes echoes for a person's changes.
    EchoBlind,
}

struct Sim {
    mutant: Mutant,
    engine: UserSync,
    enabled: bool,
    now: u64,
    views: [EndpointView; 3],
    seq: [u64; 3],
    // The platforms' truth.
    conv: [bool; 3],
    hub: [bool; 3],
    /// The person changed the state since the hub's DND write.
    person_changed: [bool; 3],
    leader_dnd: bool,
    fail_next: [bool; 3],
    queued: [VecDeque<SyncWrite>; 3],
    events: Vec<Event>,
    delivered: Vec<Event>,
    // What the test saw.
    last_write: [Option<SyncAction>; 3],
    justified: [bool; 3],
    repeats: Vec<String>,
    writes: usize,
    causes: usize,
    next_id: u64,
    profile: Profile,
}

impl Sim {
    fn new(mutant: Mutant) -> Sim {
        let mut s = Sim {
            mutant,
            engine: UserSync::default(),
            enabled: true,
            now: 1_000_000,
            views: Default::default(),
            seq: [0; 3],
            conv: [false; 3],
            hub: [false; 3],
            person_changed: [false; 3],
            leader_dnd: false,
            fail_next: [false; 3],
            queued: Default::default(),
            events: Vec::new(),
            delivered: Vec::new(),
            last_write: [None; 3],
            justified: [false; 3],
            repeats: Vec::new(),
            writes: 0,
            causes: 0,
            next_id: 1,
            profile: profile::resolve(None).unwrap(),
        };
        for p in 0..3 {
            let r = s.report(p, UpdateOrigin::Platform);
            s.views[p].apply_report(r, s.now);
        }
        s.step(Vec::new());
        s
    }

    /// What platform `p` shows now, as its connector reports it.
    fn report(&mut self, p: usize, origin: UpdateOrigin) -> PresenceReport {
        self.seq[p] += 1;
        let (telephony, rich) = match p {
            // A PBX: the line, and the hub's DND in its presence document.
            0 => (
                Some(line(self.conv[0], false)),
                Some(rich(
                    if self.hub[0] {
                        Availability::DoNotDisturb
                    } else {
                        Availability::Available
                    },
                    None,
                )),
            ),
            // Teams: the hub's DND (DoNotDisturb/Presenting) outranks a
            // call, as Graph aggregates sessions.
            1 => (
                None,
                Some(if self.hub[1] {
                    rich(Availability::DoNotDisturb, Some(Activity::Presenting))
                } else if self.conv[1] {
                    rich(Availability::Busy, Some(Activity::InACall))
                } else if self.leader_dnd {
                    rich(Availability::DoNotDisturb, None)
                } else {
                    rich(Availability::Available, None)
                }),
            ),
            // RingCentral: the line and its DND flag.
            _ => (Some(line(self.conv[2], self.hub[2])), None),
        };
        PresenceReport {
            endpoint: "alice".into(),
            observed_at_ms: None,
            ordering: Some(ReportOrdering {
                epoch: "e".into(),
                sequence: self.seq[p],
            }),
            origin,
            telephony,
            rich,
            calendar: None,
            valid_for_ms: None,
            raw: Vec::new(),
        }
    }

    fn changed(&mut self, p: usize) {
        let r = self.report(p, UpdateOrigin::Platform);
        self.events.push(Event::Report(p, Box::new(r)));
    }

    fn run(&mut self, op: &Op) {
        match *op {
            Op::Conversation(p, on) => {
                if self.conv[p] != on {
                    self.conv[p] = on;
                    self.causes += 1;
                    self.changed(p);
                }
            }
            Op::ManualOff(p) => {
                if self.hub[p] {
                    self.hub[p] = false;
                    self.person_changed[p] = true;
                    self.justified[p] = true;
                    self.causes += 1;
                    self.changed(p);
                }
            }
            Op::LeaderDnd(on) => {
                if self.leader_dnd != on {
                    self.leader_dnd = on;
                    self.causes += 1;
                    self.changed(LEADER);
                }
            }
            Op::FailNext(p) => self.fail_next[p] = true,
            Op::HandleWrite(p, supersede) => self.handle_write(p, supersede),
            Op::Deliver(k) => {
                if !self.events.is_empty() {
                    // Outcomes and other platforms' updates overtake each
                    // other; one platform's updates come in order (SIP
                    // NOTIFYs of a dialog, Graph's sequence numbers).
                    let mut i = k % self.events.len();
                    if let Event::Report(p, _) = self.events[i] {
                        i = self
                            .events
                            .iter()
                            .position(|e| matches!(e, Event::Report(q, _) if *q == p))
                            .expect("this one at least");
                    }
                    let e = self.events.remove(i);
                    self.deliver(e);
                }
            }
            Op::Duplicate(k) => {
                if !self.delivered.is_empty() {
                    let e =
                        self.delivered[self.delivered.len() - 1 - k % self.delivered.len()].clone();
                    self.deliver(e);
                }
            }
            Op::Wait(ms) => {
                self.now += ms;
                self.step(Vec::new());
            }
        }
    }

    /// The platform takes its oldest queued write.
    fn handle_write(&mut self, p: usize, supersede: bool) {
        let Some(w) = self.queued[p].pop_front() else {
            return;
        };
        if supersede && !self.queued[p].is_empty() {
            self.justified[p] = true;
            self.events
                .push(Event::Outcome(w.id, WriteResult::Superseded));
            return;
        }
        if std::mem::take(&mut self.fail_next[p]) {
            self.justified[p] = true;
            self.events.push(Event::Outcome(
                w.id,
                WriteResult::Failed {
                    message: "Service Unavailable".into(),
                    retryable: true,
                    retry_after_ms: None,
                    status: Some(503),
                },
            ));
            return;
        }
        let result = match w.action {
            SyncAction::SetDnd { .. } => {
                self.hub[p] = true;
                self.person_changed[p] = false;
                WriteResult::Applied
            }
            SyncAction::Restore if self.person_changed[p] => WriteResult::UserChanged,
            SyncAction::Restore => {
                self.hub[p] = false;
                WriteResult::Restored
            }
        };
        // The echo, marked with the write's id, and the outcome, in either
        // order (the hub may take them in any order).
        let echo = self.report(p, UpdateOrigin::HubWrite { write_id: w.id });
        self.events.push(Event::Report(p, Box::new(echo)));
        self.events.push(Event::Outcome(w.id, result));
    }

    fn deliver(&mut self, e: Event) {
        if std::env::var_os("SYNC_TRACE").is_some() {
            match &e {
                Event::Report(p, r) => eprintln!(
                    "  deliver {} {:?} rich {:?} line {:?} seq {:?}",
                    NAMES[*p],
                    r.origin,
                    r.rich
                        .as_ref()
                        .map(|r| (r.availability, r.activity.clone())),
                    r.telephony.as_ref().map(|t| (t.line, t.do_not_disturb)),
                    r.ordering.as_ref().map(|o| o.sequence)
                ),
                o => eprintln!("  deliver {o:?}"),
            }
        }
        self.delivered.push(e.clone());
        match e {
            Event::Report(p, mut r) => {
                if self.mutant == Mutant::EchoBlind {
                    r.origin = UpdateOrigin::Platform;
                }
                self.views[p].apply_report(*r, self.now);
                self.step(Vec::new());
            }
            Event::Outcome(id, result) => {
                if self.mutant == Mutant::ForgetsFailures
                    && matches!(result, WriteResult::Failed { .. })
                {
                    return;
                }
                self.step(vec![(id, result)]);
            }
        }
    }

    fn step(&mut self, outcomes: Vec<(u64, WriteResult)>) {
        let blind = self.mutant == Mutant::TargetBlind;
        let platforms: Vec<Platform> = (0..3)
            .map(|p| Platform {
                instance: NAMES[p],
                up: true,
                leader: p == LEADER && self.mutant != Mutant::EchoBlind,
                profile: &self.profile,
                views: vec![&self.views[p]],
                target: Some(Target {
                    endpoint: "alice",
                    channel: CHANNELS[p],
                    view: (!blind).then_some(&self.views[p]),
                }),
            })
            .collect();
        let next = &mut self.next_id;
        let mut ids = |_: &str, _: &str, _: &SyncAction| {
            *next += 1;
            *next
        };
        let step = self.engine.step(
            self.enabled,
            &platforms,
            &outcomes,
            self.now,
            &TIMING,
            &mut ids,
        );
        let mut writes = step.writes.clone();
        match self.mutant {
            Mutant::Doubles => {
                let again: Vec<SyncWrite> = writes
                    .iter()
                    .map(|w| SyncWrite {
                        id: w.id + 1_000_000,
                        ..w.clone()
                    })
                    .collect();
                writes.extend(again);
            }
            Mutant::NeverRestores => writes.retain(|w| w.action != SyncAction::Restore),
            _ => {}
        }
        if std::env::var_os("SYNC_TRACE").is_some() {
            for (i, l) in &step.log {
                eprintln!("    log {i}: {l}");
            }
        }
        for w in writes {
            let p = NAMES.iter().position(|n| *n == w.instance).unwrap();
            if self.last_write[p] == Some(w.action)
                && !self.justified[p]
                && w.why != WriteReason::Refresh
            {
                self.repeats
                    .push(format!("{} {:?} twice", w.instance, w.action));
            }
            self.last_write[p] = Some(w.action);
            self.justified[p] = false;
            self.writes += 1;
            self.queued[p].push_back(w);
        }
    }

    /// Let everything settle: writes handled in order, events delivered in
    /// order, time moving on for retries. Returns false if it never
    /// settles (oscillation).
    fn settle(&mut self) -> bool {
        self.fail_next = [false; 3];
        for _ in 0..200 {
            let busy = self.queued.iter().any(|q| !q.is_empty()) || !self.events.is_empty();
            for p in 0..3 {
                while !self.queued[p].is_empty() {
                    self.handle_write(p, false);
                }
            }
            for e in std::mem::take(&mut self.events) {
                self.deliver(e);
            }
            self.now += TIMING.retry_max_ms + TIMING.echo_grace_ms;
            self.step(Vec::new());
            if !busy && self.queued.iter().all(VecDeque::is_empty) && self.events.is_empty() {
                return true;
            }
        }
        false
    }

    /// Where the hub's DND belongs: on every platform not in a
    /// conversation while one goes on elsewhere, or (on the followers)
    /// while the person set DND on the leading system. Graph shows a DND
    /// session above a call, so a Teams call that starts under the hub's
    /// DND cannot be seen until the hub lifts it: a conversation counts
    /// where its platform shows it.
    fn expected(&self) -> [bool; 3] {
        let mut shown = self.conv;
        shown[LEADER] &= !self.hub[LEADER];
        let mut want = [false; 3];
        for (p, w) in want.iter_mut().enumerate() {
            let elsewhere = (0..3).any(|q| q != p && shown[q]);
            let leader_own =
                self.leader_dnd && !self.conv[LEADER] && !(0..3).any(|q| q != LEADER && shown[q]);
            *w = self.enabled && !shown[p] && (elsewhere || (leader_own && p != LEADER));
        }
        want
    }
}

fn line(in_call: bool, dnd: bool) -> TelephonyPresence {
    TelephonyPresence {
        line: if in_call {
            LineState::InCall
        } else {
            LineState::Idle
        },
        do_not_disturb: dnd,
        forward: None,
        source: TelephonySource::PbxLine,
    }
}

fn rich(availability: Availability, activity: Option<Activity>) -> RichPresence {
    RichPresence {
        availability,
        activity,
        note: None,
    }
}

/// Run `ops` and settle; the violations of the properties, if any.
fn violations(mutant: Mutant, ops: &[Op]) -> Vec<String> {
    let mut sim = Sim::new(mutant);
    for op in ops {
        if std::env::var_os("SYNC_TRACE").is_some() {
            eprintln!("{op:?}");
        }
        sim.run(op);
    }
    let mut v = Vec::new();
    if !sim.settle() {
        v.push(format!("never settles ({} writes)", sim.writes));
        return v;
    }
    let want = sim.expected();
    if sim.hub != want {
        v.push(format!(
            "end state: hub DND on {:?}, expected {:?} (conversations {:?}, leader dnd {})",
            sim.hub, want, sim.conv, sim.leader_dnd
        ));
    }
    // The hub claims DND held exactly where the platform took it.
    let held: Vec<bool> = NAMES
        .iter()
        .map(|n| sim.engine.held().iter().any(|h| h == n))
        .collect();
    if held != sim.hub {
        v.push(format!(
            "claims DND held on {held:?}, platforms show {:?}",
            sim.hub
        ));
    }
    v.extend(sim.repeats.iter().cloned());
    // Quiet stays quiet: the same observations again, and time, change
    // nothing.
    let before = sim.writes;
    for p in 0..3 {
        let r = sim.report(p, UpdateOrigin::Platform);
        sim.seq[p] -= 1;
        sim.views[p].apply_report(r, sim.now);
    }
    sim.step(Vec::new());
    sim.now += 3_600_000;
    sim.step(Vec::new());
    if sim.writes != before {
        v.push(format!("{} writes after settling", sim.writes - before));
    }
    v
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    prop::collection::vec(op(), 1..60)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn dnd_ends_exactly_where_no_conversation_is_and_never_loops(ops in ops()) {
        let v = violations(Mutant::None, &ops);
        prop_assert!(v.is_empty(), "{v:?}");
    }
}

/// A mutant the properties must catch within `cases` random runs.
fn caught(mutant: Mutant, cases: u32) -> Option<String> {
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    let r = runner.run(&ops(), |ops| {
        let v = violations(mutant, &ops);
        prop_assert!(v.is_empty(), "{v:?}");
        Ok(())
    });
    r.err().map(|e| e.to_string())
}

#[test]
fn the_properties_catch_broken_engines() {
    for (mutant, property) in [
        (Mutant::Doubles, "twice"),
        (Mutant::NeverRestores, ""),
        (Mutant::TargetBlind, ""),
        (Mutant::ForgetsFailures, ""),
        (Mutant::EchoBlind, ""),
    ] {
        let found = caught(mutant, 2000).unwrap_or_else(|| panic!("{mutant:?} not caught"));
        assert!(found.contains(property), "{mutant:?}: {found}");
    }
}

// ---- single scenarios ---------------------------------------------------

fn settle_with(sim: &mut Sim, ops: &[Op]) {
    for op in ops {
        sim.run(op);
    }
    assert!(sim.settle());
}

#[test]
fn a_call_on_the_pbx_sets_dnd_on_teams_and_rc_and_lifts_it() {
    let mut sim = Sim::new(Mutant::None);
    settle_with(&mut sim, &[Op::Conversation(0, true)]);
    assert_eq!(sim.hub, [false, true, true]);
    settle_with(&mut sim, &[Op::Conversation(0, false)]);
    assert_eq!(sim.hub, [false, false, false]);
    assert_eq!(sim.writes, 4);
}

#[test]
fn the_same_call_seen_on_two_platforms_holds_dnd_only_on_the_third() {
    let mut sim = Sim::new(Mutant::None);
    settle_with(
        &mut sim,
        &[Op::Conversation(0, true), Op::Conversation(2, true)],
    );
    assert_eq!(sim.hub, [false, true, false]);
}

#[test]
fn sync_off_writes_nothing() {
    let mut sim = Sim::new(Mutant::None);
    sim.enabled = false;
    settle_with(&mut sim, &[Op::Conversation(1, true)]);
    assert_eq!((sim.hub, sim.writes), ([false; 3], 0));
}

#[test]
fn a_person_switching_dnd_off_on_a_follower_is_set_back_and_on_the_leader_respected() {
    let mut sim = Sim::new(Mutant::None);
    settle_with(&mut sim, &[Op::Conversation(0, true)]);
    settle_with(&mut sim, &[Op::ManualOff(2)]);
    assert_eq!(sim.hub, [false, true, true], "set back on the follower");
    // On the leading system the person's change stands until the call ends.
    sim.hub[1] = false;
    sim.person_changed[1] = true;
    sim.changed(1);
    let writes = sim.writes;
    assert!(sim.settle());
    assert_eq!((sim.hub[1], sim.writes), (false, writes));
    settle_with(&mut sim, &[Op::Conversation(0, false)]);
    assert_eq!(sim.hub, [false; 3]);
}

#[test]
fn a_refused_write_is_not_retried_until_the_conversation_changes() {
    let mut sim = Sim::new(Mutant::None);
    sim.run(&Op::Conversation(0, true));
    sim.run(&Op::Deliver(0));
    let w = sim.queued[1].pop_front().unwrap();
    sim.step(vec![(
        w.id,
        WriteResult::Failed {
            message: "Forbidden".into(),
            retryable: false,
            retry_after_ms: None,
            status: Some(403),
        },
    )]);
    assert!(sim.settle());
    assert_eq!(sim.hub, [false, false, true]);
    // Only the first write to Teams: no retry, no loop.
    assert_eq!(sim.writes, 2);
    let now = sim.now;
    sim.now = now + 3_600_000;
    sim.step(Vec::new());
    assert_eq!(sim.writes, 2);
}

/// A PBX line in a call (read only) and one writable platform showing
/// `target`, with DND written to `channel`.
fn call_and_target<'a>(
    profile: &'a Profile,
    pbx: &'a EndpointView,
    instance: &'a str,
    target: &'a EndpointView,
    channel: DndChannel,
) -> [Platform<'a>; 2] {
    [
        Platform {
            instance: "pbx",
            up: true,
            leader: false,
            profile,
            views: vec![pbx],
            target: None,
        },
        Platform {
            instance,
            up: true,
            leader: instance == "teams",
            profile,
            views: vec![target],
            target: Some(Target {
                endpoint: "alice",
                channel,
                view: Some(target),
            }),
        },
    ]
}

fn seen(view: EndpointView) -> EndpointView {
    EndpointView { updates: 1, ..view }
}

/// A PBX line in a call, and a platform showing Available.
fn in_a_call_and_available() -> (EndpointView, EndpointView) {
    (
        seen(EndpointView {
            telephony: Some(line(true, false)),
            ..Default::default()
        }),
        seen(EndpointView {
            rich: Some(rich(Availability::Available, None)),
            ..Default::default()
        }),
    )
}

/// Write ids 1, 2, 3, ...
fn counter() -> impl FnMut(&str, &str, &SyncAction) -> u64 {
    let mut n = 0;
    move |_, _, _| {
        n += 1;
        n
    }
}

#[test]
fn a_retryable_failure_backs_off_and_honours_retry_after() {
    let mut engine = UserSync::default();
    let profile = profile::resolve(None).unwrap();
    let (pbx, teams) = in_a_call_and_available();
    let platforms = call_and_target(&profile, &pbx, "teams", &teams, DndChannel::Rich);
    let mut ids = counter();
    let s = engine.step(true, &platforms, &[], 0, &TIMING, &mut ids);
    assert_eq!(s.writes.len(), 1);
    let throttled = WriteResult::Failed {
        message: "Too Many Requests".into(),
        retryable: true,
        retry_after_ms: Some(7_000),
        status: Some(429),
    };
    let s = engine.step(true, &platforms, &[(1, throttled)], 10, &TIMING, &mut ids);
    assert_eq!((s.writes.len(), s.wake_at), (0, Some(7_010)));
    assert!(s.log[0].1.contains("status 429"));
    let s = engine.step(true, &platforms, &[], 7_009, &TIMING, &mut ids);
    assert!(s.writes.is_empty());
    let s = engine.step(true, &platforms, &[], 7_010, &TIMING, &mut ids);
    assert_eq!(s.writes[0].why, WriteReason::Retry);
    let d = engine.describe(&platforms, 7_010, &TIMING);
    assert_eq!((d[0].in_conversation, d[1].hold), (true, "setting"));
}

#[test]
fn a_lease_is_refreshed_while_the_conversation_lasts() {
    let timing = Timing {
        lease_ms: Some(3_600_000),
        ..TIMING
    };
    let mut engine = UserSync::default();
    let profile = profile::resolve(None).unwrap();
    let pbx = seen(EndpointView {
        telephony: Some(line(true, false)),
        ..Default::default()
    });
    let rc = seen(EndpointView {
        telephony: Some(line(false, false)),
        ..Default::default()
    });
    let platforms = call_and_target(&profile, &pbx, "rc", &rc, DndChannel::Telephony);
    let mut ids = counter();
    let s = engine.step(true, &platforms, &[], 0, &timing, &mut ids);
    assert_eq!(
        s.writes[0].action,
        SyncAction::SetDnd {
            expires_in_ms: Some(3_600_000)
        }
    );
    let s = engine.step(
        true,
        &platforms,
        &[(1, WriteResult::Applied)],
        0,
        &timing,
        &mut ids,
    );
    assert_eq!(s.wake_at, Some(2_700_000));
    let s = engine.step(true, &platforms, &[], 2_700_000, &timing, &mut ids);
    assert_eq!(s.writes[0].why, WriteReason::Refresh);
    assert_eq!(engine.held(), vec!["rc".to_owned()]);
}

#[test]
fn holds_survive_a_restart_renewed_or_lifted() {
    let mut sim = Sim::new(Mutant::None);
    settle_with(&mut sim, &[Op::Conversation(0, true)]);
    let records = sim.engine.records();
    assert_eq!(
        records
            .iter()
            .map(|r| r.instance.as_str())
            .collect::<Vec<_>>(),
        ["rc", "teams"]
    );
    // The call goes on across the restart: the DND is renewed.
    sim.engine = UserSync::from_records(records.clone(), sim.now, sim.now);
    let writes = sim.writes;
    sim.step(Vec::new());
    assert_eq!(sim.writes, writes + 2);
    assert!(
        sim.queued
            .iter()
            .flatten()
            .all(|w| w.why == WriteReason::Refresh)
    );
    assert!(sim.settle());
    assert_eq!(sim.hub, [false, true, true]);
    // The call ended while the hub was down: the restarted hub has seen
    // nothing yet; the PBX reports first, and nothing is lifted until the
    // others have reported too (or the wait ends).
    sim.engine = UserSync::from_records(records.clone(), sim.now, sim.now + 60_000);
    sim.views = Default::default();
    sim.conv[0] = false;
    sim.changed(0);
    let writes = sim.writes;
    let e = sim.events.remove(0);
    sim.deliver(e);
    assert_eq!(
        sim.writes, writes,
        "nothing lifted before the platforms report"
    );
    sim.changed(1);
    sim.changed(2);
    assert!(sim.settle());
    assert_eq!(sim.hub, [false; 3]);
    // A platform that never reports holds the lift back only until the
    // wait ends.
    settle_with(&mut sim, &[Op::Conversation(0, true)]);
    let records = sim.engine.records();
    sim.engine = UserSync::from_records(records, sim.now, sim.now + 60_000);
    sim.views = Default::default();
    sim.conv[0] = false;
    sim.changed(0);
    let e = sim.events.remove(0);
    sim.deliver(e);
    assert!(sim.queued.iter().all(VecDeque::is_empty));
    sim.now += 60_000;
    sim.step(Vec::new());
    assert_eq!(
        sim.queued
            .iter()
            .flatten()
            .filter(|w| w.action == SyncAction::Restore)
            .count(),
        2
    );
    assert!(sim.settle());
    assert_eq!(sim.hub, [false; 3]);
}

#[test]
fn a_write_never_answered_is_made_again() {
    let timing = Timing {
        write_timeout_ms: 120_000,
        ..TIMING
    };
    let mut engine = UserSync::default();
    let profile = profile::resolve(None).unwrap();
    let (pbx, teams) = in_a_call_and_available();
    let platforms = call_and_target(&profile, &pbx, "teams", &teams, DndChannel::Rich);
    let mut ids = counter();
    let s = engine.step(true, &platforms, &[], 0, &timing, &mut ids);
    assert_eq!((s.writes.len(), s.wake_at), (1, Some(120_000)));
    let s = engine.step(true, &platforms, &[], 119_999, &timing, &mut ids);
    assert!(s.writes.is_empty());
    let s = engine.step(true, &platforms, &[], 120_000, &timing, &mut ids);
    assert_eq!(s.writes[0].why, WriteReason::Retry);
    assert!(
        s.log
            .iter()
            .any(|(_, l)| l.contains("no outcome within 120 s"))
    );
    // The first write's outcome, late, changes nothing; the second's holds.
    let s = engine.step(
        true,
        &platforms,
        &[(1, WriteResult::Applied)],
        120_001,
        &timing,
        &mut ids,
    );
    assert!(s.writes.is_empty());
    engine.step(
        true,
        &platforms,
        &[(2, WriteResult::Applied)],
        120_002,
        &timing,
        &mut ids,
    );
    assert_eq!(engine.held(), vec!["teams".to_owned()]);
}

#[test]
fn a_dnd_that_failed_as_the_connector_stopped_is_still_lifted() {
    let mut engine = UserSync::default();
    let profile = profile::resolve(None).unwrap();
    let (mut pbx, teams) = in_a_call_and_available();
    let mut ids = counter();
    let platforms = call_and_target(&profile, &pbx, "teams", &teams, DndChannel::Rich);
    engine.step(true, &platforms, &[], 0, &TIMING, &mut ids);
    let stopped = WriteResult::Failed {
        message: "the connector stopped before Graph answered; the write may have landed".into(),
        retryable: true,
        retry_after_ms: None,
        status: None,
    };
    engine.step(true, &platforms, &[(1, stopped)], 10, &TIMING, &mut ids);
    // The call ends before the retry: the DND may be there, so it is lifted.
    pbx.telephony = Some(line(false, false));
    pbx.updates += 1;
    let platforms = call_and_target(&profile, &pbx, "teams", &teams, DndChannel::Rich);
    let s = engine.step(true, &platforms, &[], 500, &TIMING, &mut ids);
    assert_eq!(s.writes.len(), 1, "{:?}", s.log);
    assert_eq!(s.writes[0].action, SyncAction::Restore);
}

#[test]
fn the_tail_of_the_hubs_dnd_after_a_lift_is_neither_a_conversation_nor_the_persons() {
    let mut engine = UserSync::default();
    let profile = profile::resolve(None).unwrap();
    let (mut pbx, mut teams) = in_a_call_and_available();
    let mut ids = counter();
    for (leader, t0) in [(true, 0), (false, 10_000_000)] {
        pbx.telephony = Some(line(true, false));
        pbx.updates += 1;
        fn both<'a>(
            profile: &'a Profile,
            pbx: &'a EndpointView,
            teams: &'a EndpointView,
            leader: bool,
        ) -> [Platform<'a>; 2] {
            let mut p = call_and_target(profile, pbx, "teams", teams, DndChannel::Rich);
            p[1].leader = leader;
            p
        }
        let s = engine.step(
            true,
            &both(&profile, &pbx, &teams, leader),
            &[],
            t0,
            &TIMING,
            &mut ids,
        );
        let set = s.writes[0].id;
        // Teams takes it and shows it (its echo).
        teams.rich = Some(rich(Availability::DoNotDisturb, Some(Activity::Presenting)));
        teams.origin = UpdateOrigin::HubWrite { write_id: set };
        teams.updates += 1;
        engine.step(
            true,
            &both(&profile, &pbx, &teams, leader),
            &[(set, WriteResult::Applied)],
            t0 + 10,
            &TIMING,
            &mut ids,
        );
        // Hang-up; the restore lands, but Teams has not caught up.
        pbx.telephony = Some(line(false, false));
        pbx.updates += 1;
        let s = engine.step(
            true,
            &both(&profile, &pbx, &teams, leader),
            &[],
            t0 + 20,
            &TIMING,
            &mut ids,
        );
        let restore = s.writes[0].id;
        engine.step(
            true,
            &both(&profile, &pbx, &teams, leader),
            &[(restore, WriteResult::Restored)],
            t0 + 30,
            &TIMING,
            &mut ids,
        );
        // Long after any grace, Teams still shows the echo of the hub's
        // DND: nothing is written to the PBX.
        for at in [6_000, 200_000, 3_600_000] {
            let s = engine.step(
                true,
                &both(&profile, &pbx, &teams, leader),
                &[],
                t0 + at,
                &TIMING,
                &mut ids,
            );
            assert!(s.writes.is_empty(), "leader {leader} at {at}: {:?}", s.log);
        }
        // Teams catches up.
        teams.rich = Some(rich(Availability::Available, None));
        teams.origin = UpdateOrigin::Platform;
        teams.updates += 1;
        let s = engine.step(
            true,
            &both(&profile, &pbx, &teams, leader),
            &[],
            t0 + 3_600_100,
            &TIMING,
            &mut ids,
        );
        assert!(s.writes.is_empty());
        assert!(engine.is_idle());
    }
}
