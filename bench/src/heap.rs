//! A heap profile of the host's memory per watched user, by part: the
//! hub's presence engine and board run in-process on the same users as
//! benchmark 3, and this program's allocator counts the live heap bytes
//! after each step. SQLite's page cache (its own allocator, bounded),
//! wasmtime and the plugins' linear memory are not in it.

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use presence_hub::engine::users::User;
use presence_hub::engine::{Board, EndpointState};
use presence_hub::presence::{Connectors, Presence, ReportObserver};
use presence_hub::store::SqliteStore;

use crate::overhead::tempfile_dir;
use crate::sipserver::user_uri;

/// The system allocator, counting live bytes.
pub struct Counting;

static LIVE: AtomicI64 = AtomicI64::new(0);

// SAFETY: every call is passed to the system allocator unchanged; only a
// counter is updated besides.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size() as i64, Ordering::Relaxed);
        // SAFETY: as the caller promised for `l`.
        unsafe { System.alloc(l) }
    }

    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size() as i64, Ordering::Relaxed);
        // SAFETY: `p` came from `alloc` with `l`.
        unsafe { System.dealloc(p, l) }
    }

    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size() as i64, Ordering::Relaxed);
        // SAFETY: as the caller promised for `l`.
        unsafe { System.alloc_zeroed(l) }
    }

    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        LIVE.fetch_add(new as i64 - l.size() as i64, Ordering::Relaxed);
        // SAFETY: `p` came from `alloc` with `l`.
        unsafe { System.realloc(p, l, new) }
    }
}

fn live() -> i64 {
    LIVE.load(Ordering::Relaxed)
}

/// The runtime's side as the presence engine sees it: the instances, and
/// the watch sets it keeps for each (the runtime keeps three copies of each
/// endpoint: the engine's wish, what the actor was told, what the actor
/// watches).
struct Runtime {
    instances: Vec<String>,
    watches: Mutex<BTreeMap<String, [BTreeSet<String>; 3]>>,
}

impl Connectors for Runtime {
    fn instances(&self) -> Vec<(String, String, bool)> {
        self.instances
            .iter()
            .map(|i| (i.clone(), "sip-simple".to_string(), true))
            .collect()
    }

    fn set_derived_watches(&self, instance: &str, endpoints: BTreeSet<String>) {
        let copies = [endpoints.clone(), endpoints.clone(), endpoints];
        self.watches
            .lock()
            .unwrap()
            .insert(instance.to_string(), copies);
    }
}

/// Bytes per user of each part, in order.
pub async fn breakdown(n: usize, instances: usize) -> anyhow::Result<Vec<(&'static str, f64)>> {
    let dir = tempfile_dir("heap")?;
    let store = Arc::new(SqliteStore::open(&dir)?);
    let board = Arc::new(Board::default());
    let presence = Presence::open(store, board.clone())?;
    let ids: Vec<String> = (0..instances).map(|i| format!("sip-{i}")).collect();
    let runtime = Arc::new(Runtime {
        instances: ids.clone(),
        watches: Mutex::default(),
    });
    presence.attach(runtime.clone());
    // A PIDF as sip-simple reports it (with its raw values).
    let pidf = sip_simple::body::parse_pidf(crate::sip::pidf(&user_uri(0), 1).as_bytes())
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    tokio::time::sleep(Duration::from_millis(200)).await;

    let t0 = live();
    let users: Vec<(usize, Result<User, presence_hub::presence::RowError>)> = (0..n)
        .map(|i| {
            let u = User {
                username: format!("u{i}"),
                display_name: format!("Bench User {i}"),
                endpoints: BTreeMap::from([(ids[i % ids.len()].clone(), user_uri(i))]),
                ..Default::default()
            };
            (i + 1, Ok(u))
        })
        .collect();
    presence.import(users)?;
    let t1 = live();
    let watch_sets: i64 = {
        // What the three copies of the watch sets hold, measured by
        // building one copy again.
        let before = live();
        let copy = runtime.watches.lock().unwrap().clone();
        let one = live() - before;
        drop(copy);
        one
    };
    for i in 0..n {
        let inst = &ids[i % ids.len()];
        let ep = user_uri(i);
        board.endpoint_state(inst, &ep, EndpointState::Active, None, 1);
        presence.observed(inst, &ep, "endpoint Active".into());
        let report = crate::overhead::presence(sip_simple_update(&ep, &pidf));
        board.presence(inst, report, 2);
        presence.observed(inst, &ep, "rich".into());
    }
    // Let the event log's writer take what was queued.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let t2 = live();
    drop(presence);
    let _ = std::fs::remove_dir_all(&dir);
    let per = |b: i64| b as f64 / n as f64;
    Ok(vec![
        (
            "users, who-watches-what index, merged presence, feed ring (after import)",
            per(t1 - t0 - 3 * watch_sets),
        ),
        (
            "the runtime's 3 copies of the watch sets",
            per(3 * watch_sets),
        ),
        (
            "board (each endpoint's last report) and the merged presence it changes",
            per(t2 - t1),
        ),
    ])
}

/// The update sip-simple makes of a PIDF for `endpoint`.
fn sip_simple_update(
    endpoint: &str,
    p: &sip_simple::body::Pidf,
) -> presence_connector_sdk::PresenceUpdate {
    presence_connector_sdk::PresenceUpdate {
        endpoint: endpoint.to_string(),
        observed_at: p.observed_at_ms,
        ordering: None,
        origin: presence_connector_sdk::UpdateOrigin::Platform,
        calendar: None,
        valid_for_ms: None,
        telephony: None,
        rich: Some(p.rich.clone()),
        raw: p.raw.clone(),
    }
}
