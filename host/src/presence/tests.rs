//! The periodic tick recomputes only what time changed: these drive it
//! with chosen clocks (no background ticker) and check what changed.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::*;
use crate::engine::{Availability, Board, PresenceReport, RichPresence};
use crate::store::SqliteStore;

struct OneInstance;

impl Connectors for OneInstance {
    fn instances(&self) -> Vec<(String, String, bool)> {
        vec![("sip".into(), "sip-simple".into(), true)]
    }
    fn set_derived_watches(&self, _: &str, _: BTreeSet<String>) {}
}

fn user(name: &str) -> User {
    User {
        username: name.into(),
        display_name: name.to_uppercase(),
        endpoints: BTreeMap::from([("sip".to_string(), format!("{name}@pbx"))]),
        ..Default::default()
    }
}

fn rich(p: &Presence, name: &str) -> String {
    let (_, all) = p.snapshot(None);
    let u = all
        .iter()
        .find(|u| u.username == name)
        .expect("user listed");
    u.rich.state.as_str().to_string()
}

fn away(p: &Presence, board: &Board, name: &str, at: u64) {
    report(p, board, name, Availability::Away, at);
}

/// `name`'s endpoint reports `availability` at `at`.
fn report(p: &Presence, board: &Board, name: &str, availability: Availability, at: u64) {
    let endpoint = format!("{name}@pbx");
    let rich = RichPresence {
        availability,
        activity: None,
        note: None,
    };
    let report = PresenceReport {
        endpoint: endpoint.clone(),
        observed_at_ms: None,
        ordering: None,
        origin: crate::engine::UpdateOrigin::Platform,
        calendar: None,
        valid_for_ms: None,
        telephony: None,
        rich: Some(rich),
        raw: vec![],
    };
    board.presence("sip", report, at);
    p.observed("sip", &endpoint, "rich".into());
}

async fn presence() -> (Arc<Presence>, Arc<Board>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(dir.path()).unwrap());
    let board = Arc::new(Board::default());
    let p = Presence::open(store, board.clone()).unwrap();
    p.connect(Arc::new(OneInstance));
    p.import(vec![(1, Ok(user("ann"))), (2, Ok(user("ben")))])
        .unwrap();
    let mut rules = p.rules();
    rules.stale_after_seconds = Some(60);
    p.set_rules(rules).unwrap();
    (p, board, dir)
}

#[tokio::test]
async fn a_source_that_falls_silent_ages_out_at_the_next_tick() {
    let (p, board, _dir) = presence().await;
    let t = now_ms();
    p.tick(t);
    away(&p, &board, "ann", t);
    away(&p, &board, "ben", t + 30_000);
    assert_eq!(rich(&p, "ann"), "away");

    // Within the staleness window nothing changes.
    p.tick(t + 59_000);
    assert_eq!(rich(&p, "ann"), "away");
    assert_eq!(rich(&p, "ben"), "away");

    // Ann's only source went silent 61 s ago: she ages out; Ben (heard
    // 31 s ago) does not.
    p.tick(t + 61_000);
    assert_eq!(rich(&p, "ann"), "unknown");
    assert_eq!(rich(&p, "ben"), "away");

    // Ben's turn, even when ticks are far apart.
    p.tick(t + 200_000);
    assert_eq!(rich(&p, "ben"), "unknown");
}

#[tokio::test]
async fn an_expired_note_leaves_at_the_next_tick_and_reaches_the_feed() {
    let (p, _board, _dir) = presence().await;
    let t = now_ms();
    p.tick(t);
    let note = Note {
        id: 0,
        text: "back at 3".into(),
        author: "op".into(),
        at_ms: 0,
        expires_at_ms: Some(t + 5_000),
    };
    p.add_note("ann", note).unwrap();
    let mut sub = p.subscribe(Some(BTreeSet::from(["ann".to_string()])), None);
    let has_note = |p: &Presence| {
        let (_, all) = p.snapshot(None);
        !all.iter()
            .find(|u| u.username == "ann")
            .unwrap()
            .notes
            .is_empty()
    };
    p.tick(t + 4_000);
    assert!(has_note(&p));
    p.tick(t + 6_000);
    assert!(!has_note(&p), "the note expired");
    match tokio::time::timeout(std::time::Duration::from_secs(1), sub.next()).await {
        Ok(Next::Event(ev)) => match &ev.kind {
            FeedKind::Presence(u) => assert!(u.notes.is_empty(), "{:?}", u.notes),
            other => panic!("unexpected {other:?}"),
        },
        _ => panic!("a client following ann was told"),
    }
}

#[tokio::test]
async fn a_new_instance_is_picked_up_by_the_tick() {
    struct Later(std::sync::Mutex<bool>);
    impl Connectors for Later {
        fn instances(&self) -> Vec<(String, String, bool)> {
            if *self.0.lock().unwrap() {
                vec![("sip".into(), "sip-simple".into(), true)]
            } else {
                vec![]
            }
        }
        fn set_derived_watches(&self, _: &str, _: BTreeSet<String>) {}
    }
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(dir.path()).unwrap());
    let board = Arc::new(Board::default());
    let p = Presence::open(store, board.clone()).unwrap();
    let later = Arc::new(Later(std::sync::Mutex::new(false)));
    p.connect(later.clone());
    p.import(vec![(1, Ok(user("ann")))]).unwrap();
    let t = now_ms();
    p.tick(t);
    assert_eq!(rich(&p, "ann"), "not-configured");
    *later.0.lock().unwrap() = true;
    p.tick(t + 2_000);
    assert_ne!(rich(&p, "ann"), "not-configured");
    // And its reports now reach her.
    away(&p, &board, "ann", t + 2_000);
    assert_eq!(rich(&p, "ann"), "away");
}

#[tokio::test]
async fn a_named_client_that_falls_behind_is_told_to_resync_and_others_are_not_held_up() {
    let (p, board, _dir) = presence().await;
    let mut slow = p.subscribe(Some(BTreeSet::from(["ann".to_string()])), None);
    let mut other = p.subscribe(Some(BTreeSet::from(["ben".to_string()])), None);
    let t = now_ms();
    // Ann changes more often than a client may fall behind; nobody reads.
    for i in 0..(feed::CLIENT_BACKLOG as u64 + 10) {
        let a = if i % 2 == 0 {
            Availability::Busy
        } else {
            Availability::Away
        };
        report(&p, &board, "ann", a, t);
    }
    assert!(matches!(slow.next().await, Next::Lagged));
    // Ben's client follows another user: it gets Ben's change at once.
    away(&p, &board, "ben", t);
    match tokio::time::timeout(std::time::Duration::from_secs(1), other.next()).await {
        Ok(Next::Event(ev)) => assert_eq!(ev.kind.username(), "ben"),
        _ => panic!("ben's client gets ben's change"),
    }
}
