//! The presence service driven through its inbox and commands, with chosen
//! clocks (no ticker of its own): what changes, what is published, and how
//! much work an edit costs.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::*;
use crate::engine::users::Channel;
use crate::engine::{Availability, PresenceReport, RichPresence};
use crate::store::SqliteStore;

fn ids() -> Arc<crate::engine::sync::WriteIds> {
    Arc::new(crate::engine::sync::WriteIds::starting_at(1))
}

fn user(name: &str) -> User {
    User {
        username: name.into(),
        display_name: name.to_uppercase(),
        endpoints: BTreeMap::from([("sip".to_string(), format!("{name}@pbx"))]),
        ..Default::default()
    }
}

fn sip(running: bool, incarnation: u64) -> InstanceInfo {
    InstanceInfo {
        id: "sip".into(),
        plugin: "sip-simple".into(),
        running,
        endpoint_kinds: vec![("sip-uri".into(), Channel::Both)],
        operator_watches: vec![],
        incarnation,
        writes_rich: false,
        writes_telephony: false,
    }
}

async fn rich(p: &Presence, name: &str) -> String {
    let (_, all) = p.snapshot(None).await.unwrap();
    let u = all
        .iter()
        .find(|u| u.username == name)
        .expect("user listed");
    u.rich.state.as_str().to_string()
}

fn rich_report(endpoint: &str, availability: Availability) -> PresenceReport {
    PresenceReport {
        endpoint: endpoint.into(),
        observed_at_ms: None,
        ordering: None,
        origin: crate::engine::UpdateOrigin::Platform,
        calendar: None,
        valid_for_ms: None,
        telephony: None,
        rich: Some(RichPresence {
            availability,
            activity: None,
            note: None,
        }),
        raw: vec![],
    }
}

/// `name`'s endpoint on instance "sip" reports `availability`.
fn report(p: &Presence, name: &str, availability: Availability) {
    p.inbox().report(
        &Arc::from("sip"),
        rich_report(&format!("{name}@pbx"), availability),
    );
}

struct Fixture {
    p: Arc<Presence>,
    watches: mpsc::UnboundedReceiver<WatchChange>,
    _dir: tempfile::TempDir,
}

async fn presence(users: &[&str]) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(dir.path()).unwrap());
    let (p, flows) = Presence::open_ticking(store, Default::default(), ids(), None).unwrap();
    let watches = flows.watches;
    p.inbox().instance(sip(true, 1));
    let rows = users
        .iter()
        .enumerate()
        .map(|(i, u)| (i + 1, Ok(user(u))))
        .collect();
    p.import(rows).await.unwrap();
    let mut rules = p.rules().await.unwrap();
    rules.stale_after_seconds = Some(60);
    p.set_rules(rules).await.unwrap();
    Fixture {
        p,
        watches,
        _dir: dir,
    }
}

#[tokio::test]
async fn a_source_that_falls_silent_ages_out_at_the_next_tick() {
    let f = presence(&["ann", "ben"]).await;
    let p = &f.p;
    let t = now_ms();
    p.tick_at(t).await;
    report(p, "ann", Availability::Away);
    assert_eq!(rich(p, "ann").await, "away");
    // Ben is heard 30 s later (his report's receive time is set by hand:
    // the clock here is chosen).
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    report(p, "ben", Availability::Away);
    assert_eq!(rich(p, "ben").await, "away");
    let ann_heard = now_ms();

    // Within the staleness window nothing changes.
    p.tick_at(ann_heard + 59_000).await;
    assert_eq!(rich(p, "ann").await, "away");

    // Both went silent over 60 s ago: they age out.
    p.tick_at(ann_heard + 61_000).await;
    assert_eq!(rich(p, "ann").await, "unknown");
    assert_eq!(rich(p, "ben").await, "unknown");
}

#[tokio::test]
async fn an_expired_note_leaves_at_the_next_tick_and_reaches_the_feed() {
    let f = presence(&["ann", "ben"]).await;
    let p = &f.p;
    let t = now_ms();
    p.tick_at(t).await;
    let note = Note {
        id: 0,
        text: "back at 3".into(),
        author: "op".into(),
        at_ms: 0,
        expires_at_ms: Some(t + 5_000),
    };
    p.add_note("ann", note).await.unwrap();
    let mut sub = p
        .subscribe(Some(BTreeSet::from(["ann".to_string()])), None)
        .await
        .unwrap();
    async fn has_note(p: &Presence) -> bool {
        let (_, all) = p.snapshot(None).await.unwrap();
        !all.iter()
            .find(|u| u.username == "ann")
            .unwrap()
            .notes
            .is_empty()
    }
    p.tick_at(t + 4_000).await;
    assert!(has_note(p).await);
    p.tick_at(t + 6_000).await;
    assert!(!has_note(p).await, "the note expired");
    match tokio::time::timeout(std::time::Duration::from_secs(1), sub.next()).await {
        Ok(Next::Event(ev)) => match &ev.kind {
            FeedKind::Presence(u) => assert!(u.notes.is_empty(), "{:?}", u.notes),
            other => panic!("unexpected {other:?}"),
        },
        _ => panic!("a client following ann was told"),
    }
}

#[tokio::test]
async fn a_new_instance_gets_its_whole_watch_set_and_then_only_changes() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(dir.path()).unwrap());
    let (p, flows) = Presence::open_ticking(store, Default::default(), ids(), None).unwrap();
    let mut watches = flows.watches;
    p.import(vec![(1, Ok(user("ann"))), (2, Ok(user("ben")))])
        .await
        .unwrap();
    assert_eq!(rich(&p, "ann").await, "not-configured");
    assert!(watches.try_recv().is_err(), "no instance, nothing to watch");

    p.inbox().instance(sip(true, 1));
    assert_ne!(rich(&p, "ann").await, "not-configured");
    let first = watches.try_recv().expect("the whole set");
    assert!(first.replace);
    let mut all: Vec<String> = first.add.iter().map(|e| e.to_string()).collect();
    all.sort();
    assert_eq!(all, ["ann@pbx", "ben@pbx"]);

    // Its reports now reach her.
    report(&p, "ann", Availability::Away);
    assert_eq!(rich(&p, "ann").await, "away");

    // A user edit sends only the difference.
    let mut ann = user("ann");
    ann.endpoints.insert("sip".into(), "ann2@pbx".into());
    p.put_user(ann, false).await.unwrap();
    let change = watches.try_recv().expect("a difference");
    assert!(!change.replace);
    assert_eq!(
        (change.add[0].to_string(), change.remove[0].to_string()),
        ("ann2@pbx".to_string(), "ann@pbx".to_string())
    );

    // A new actor for the instance (a restart) gets the whole set again.
    p.inbox().instance(sip(true, 2));
    let _ = rich(&p, "ann").await;
    let again = watches.try_recv().expect("the whole set again");
    assert!(again.replace);
    assert_eq!(again.add.len(), 2);
    drop(dir);
}

#[tokio::test]
async fn a_user_edit_costs_work_for_that_user_only() {
    let names: Vec<String> = (0..2_000).map(|i| format!("u{i:05}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let f = presence(&refs).await;
    let p = &f.p;
    let before = p.derivations().await;
    let mut u = user("u00042");
    u.display_name = "Forty Two".into();
    p.put_user(u, false).await.unwrap();
    // One instance: one matching, not one per user.
    assert_eq!(p.derivations().await - before, 1);
    let (_, all) = p
        .snapshot(Some(BTreeSet::from(["u00042".to_string()])))
        .await
        .unwrap();
    assert_eq!(all[0].display_name, "Forty Two");
}

#[tokio::test]
async fn reports_queued_for_one_endpoint_are_folded_and_the_latest_wins() {
    let f = presence(&["ann"]).await;
    let p = &f.p;
    let inbox = p.inbox();
    let mut sub = p.subscribe(None, None).await.unwrap();
    let before = inbox.counters().coalesced.get();
    // Far more than the service takes in one batch while it is busy:
    // whatever was still queued is folded.
    for i in 0..20_000u32 {
        let a = if i % 2 == 0 {
            Availability::Busy
        } else {
            Availability::Away
        };
        report(p, "ann", a);
    }
    report(p, "ann", Availability::Available);
    assert_eq!(rich(p, "ann").await, "available");
    let folded = inbox.counters().coalesced.get() - before;
    // Every report either reached the board or was folded; the feed saw
    // at most one event per report taken.
    let mut events = 0u64;
    while let Ok(Next::Event(_)) =
        tokio::time::timeout(std::time::Duration::from_millis(50), sub.next()).await
    {
        events += 1;
    }
    assert!(events >= 1);
    assert!(
        events + folded <= 20_001 + 1,
        "{events} events, {folded} folded"
    );
    assert!(folded > 0, "a burst while the service works is folded");
    drop(f.watches);
}

#[tokio::test]
async fn a_named_client_that_falls_behind_is_told_to_resync_and_others_are_not_held_up() {
    let f = presence(&["ann", "ben"]).await;
    let p = &f.p;
    let mut slow = p
        .subscribe(Some(BTreeSet::from(["ann".to_string()])), None)
        .await
        .unwrap();
    let mut other = p
        .subscribe(Some(BTreeSet::from(["ben".to_string()])), None)
        .await
        .unwrap();
    // Ann changes more often than a client may fall behind; nobody reads.
    // Each change is awaited so none is folded.
    for i in 0..(feed::CLIENT_BACKLOG as u64 + 10) {
        let a = if i % 2 == 0 {
            Availability::Busy
        } else {
            Availability::Away
        };
        report(p, "ann", a);
        let _ = p.users().await; // a round trip: the service took the report
    }
    assert!(matches!(slow.next().await, Next::Lagged));
    // Ben's client follows another user: it gets Ben's change at once.
    report(p, "ben", Availability::Away);
    match tokio::time::timeout(std::time::Duration::from_secs(1), other.next()).await {
        Ok(Next::Event(ev)) => assert_eq!(ev.kind.username(), "ben"),
        _ => panic!("ben's client gets ben's change"),
    }
}

#[tokio::test]
async fn a_client_that_falls_behind_gets_each_users_latest_state_in_order() {
    let f = presence(&["ann", "ben"]).await;
    let p = &f.p;
    let mut sub = p.subscribe(None, None).await.unwrap();
    // 300 changes, each taken by the service before the next (none folded
    // in the inbox); the client reads nothing meanwhile.
    let states = [Availability::Busy, Availability::Away];
    for i in 0..300usize {
        let who = if i % 2 == 0 { "ann" } else { "ben" };
        report(p, who, states[(i / 2) % 2]);
        let _ = p.users().await; // a round trip: the service took the report
    }
    report(p, "ann", Availability::Available);
    let _ = p.users().await; // a round trip: the service took the report
    let mut got = Vec::new();
    while let Ok(Next::Event(ev)) =
        tokio::time::timeout(std::time::Duration::from_millis(100), sub.next()).await
    {
        got.push(ev);
    }
    assert!(got.len() < 301, "folded: {} events", got.len());
    assert!(got.windows(2).all(|w| w[0].seq < w[1].seq), "in order");
    let last = |name: &str| {
        got.iter()
            .rev()
            .find(|e| e.kind.username() == name)
            .map(|e| match &e.kind {
                FeedKind::Presence(u) => u.rich.state.as_str(),
                _ => "removed",
            })
    };
    assert_eq!(last("ann"), Some("available"));
    let ben = rich(p, "ben").await;
    assert_eq!(last("ben"), Some(ben.as_str()));
    assert!(p.inbox().counters().feed_folded.get() > 0);
}

#[tokio::test]
async fn a_meeting_that_starts_and_ends_reaches_the_feed_at_its_times() {
    use crate::engine::{CalendarItem, CalendarPresence, ShowAs};
    let f = presence(&["ann"]).await;
    let p = &f.p;
    let t = now_ms();
    p.tick_at(t).await;
    let mut r = rich_report("ann@pbx", Availability::Available);
    r.calendar = Some(CalendarPresence {
        items: vec![CalendarItem {
            start_ms: t + 10_000,
            end_ms: t + 20_000,
            show_as: ShowAs::Busy,
            subject: Some("Sales review".into()),
            location: None,
            private: false,
        }],
        out_of_office: None,
    });
    p.inbox().report(&Arc::from("sip"), r);
    async fn calendar(p: &Presence) -> crate::engine::calendar::CalendarOut {
        let (_, all) = p.snapshot(None).await.unwrap();
        all.iter()
            .find(|u| u.username == "ann")
            .and_then(|u| u.calendar.clone())
            .expect("ann's day")
    }
    p.tick_at(t + 5_000).await;
    let c = calendar(p).await;
    assert!(c.now.is_none(), "{c:?}");
    assert_eq!(c.next.as_ref().map(|n| n.start_ms), Some(t + 10_000));
    assert_eq!(c.source, "sip");
    assert!(
        c.items[0].subject.is_none(),
        "subjects are hidden by default"
    );

    let mut sub = p
        .subscribe(Some(BTreeSet::from(["ann".to_string()])), None)
        .await
        .unwrap();
    // The meeting starts with no new report: the tick past its start tells
    // the feed.
    p.tick_at(t + 15_000).await;
    match tokio::time::timeout(std::time::Duration::from_secs(1), sub.next()).await {
        Ok(Next::Event(ev)) => match &ev.kind {
            FeedKind::Presence(u) => {
                let c = u.calendar.as_ref().expect("a calendar");
                assert_eq!(c.now.as_ref().map(|n| n.end_ms), Some(t + 20_000));
                assert_eq!(c.free_from_ms, Some(t + 20_000));
                // Live presence is untouched by the calendar.
                assert_eq!(u.rich.state.as_str(), "available");
            }
            other => panic!("unexpected {other:?}"),
        },
        _ => panic!("the meeting's start reached no client"),
    }
    p.tick_at(t + 25_000).await;
    let c = calendar(p).await;
    assert!(c.now.is_none() && c.next.is_none(), "{c:?}");
}

#[tokio::test]
async fn every_report_reaches_the_feed_or_is_counted_as_coalesced() {
    use crate::engine::{ForwardTarget, LineState, TelephonyPresence, TelephonySource};
    let f = presence(&["ann"]).await;
    let p = &f.p;
    let inbox = p.inbox();
    // Settle the first merge before counting.
    report(p, "ann", Availability::Available);
    assert_eq!(rich(p, "ann").await, "available");
    let mut sub = p.subscribe(None, None).await.unwrap();
    let before = inbox.counters().coalesced.get();
    // Rich and telephony reports of one endpoint, interleaved, each one
    // unlike any before it: queued together they are applied in one batch
    // and make one change of ann in the feed.
    let n = 400u64;
    for i in 0..n {
        let mut r = rich_report("ann@pbx", Availability::Busy);
        r.rich.as_mut().unwrap().note = Some(format!("note {i}"));
        p.inbox().report(&Arc::from("sip"), r);
        let mut t = rich_report("ann@pbx", Availability::Busy);
        t.rich = None;
        t.telephony = Some(TelephonyPresence {
            line: LineState::InCall,
            do_not_disturb: false,
            forward: Some(ForwardTarget::Number(format!("+4930{i}"))),
            source: TelephonySource::PbxLine,
        });
        p.inbox().report(&Arc::from("sip"), t);
    }
    assert_eq!(rich(p, "ann").await, "busy");
    // The last batches may still be on their way to the feed on a busy
    // machine: count until every report is accounted for, or a generous
    // deadline passes (then the assertion below says what is missing).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut events = 0u64;
    let mut coalesced = inbox.counters().coalesced.get() - before;
    while events + coalesced < 2 * n && std::time::Instant::now() < deadline {
        if let Ok(Next::Event(_)) =
            tokio::time::timeout(std::time::Duration::from_millis(200), sub.next()).await
        {
            events += 1;
        }
        coalesced = inbox.counters().coalesced.get() - before;
    }
    // Nothing more may come after all are accounted for.
    while let Ok(Next::Event(_)) =
        tokio::time::timeout(std::time::Duration::from_millis(100), sub.next()).await
    {
        events += 1;
    }
    assert_eq!(
        events + coalesced,
        2 * n,
        "{events} feed events and {coalesced} coalesced for {} reports",
        2 * n
    );
    assert!(coalesced > 0, "reports of one batch share a change");
    drop(f.watches);
}
