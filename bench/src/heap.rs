//! A heap profile of the host's memory per watched user, by part: the
//! hub's presence service (board included) runs in-process on the same users as
//! benchmark 3, and this program's allocator counts the live heap bytes
//! after each step. SQLite's page cache (its own allocator, bounded),
//! wasmtime and the plugins' linear memory are not in it.

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use presence_hub::engine::EndpointState;
use presence_hub::engine::users::Channel;
use presence_hub::engine::users::User;
use presence_hub::presence::{InstanceInfo, Presence};
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

/// Bytes per user of each part, in order.
pub async fn breakdown(n: usize, instances: usize) -> anyhow::Result<Vec<(&'static str, f64)>> {
    let dir = tempfile_dir("heap")?;
    let store = Arc::new(SqliteStore::open(&dir)?);
    let (presence, flows) = Presence::open(
        store,
        Default::default(),
        Arc::new(presence_hub::engine::sync::WriteIds::starting_at(1)),
    )?;
    let mut watches = flows.watches;
    let inbox = presence.inbox();
    let ids: Vec<String> = (0..instances).map(|i| format!("sip-{i}")).collect();
    for (i, id) in ids.iter().enumerate() {
        inbox.instance(InstanceInfo {
            id: id.clone(),
            plugin: "sip-simple".into(),
            running: true,
            endpoint_kinds: vec![("sip-uri".into(), Channel::Both)],
            operator_watches: vec![],
            incarnation: i as u64 + 1,
            writes_rich: false,
            writes_telephony: false,
        });
    }
    // A PIDF as sip-simple reports it (with its raw values).
    let pidf = sip_simple::body::parse_pidf(crate::sip::pidf(&user_uri(0), 1).as_bytes())
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    // A round trip: the service has taken everything sent before.
    presence.user("").await?;

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
    presence.import(users).await?;
    let t1 = live();
    // The actors keep a copy of their watch set, of names shared with the
    // service's index (a pointer per endpoint): in the figure below only
    // through these messages, which hold the same pointers.
    let mut sets = Vec::new();
    while let Ok(change) = watches.try_recv() {
        sets.push(change.add);
    }
    let t_sets = t1;
    let instance_keys: Vec<Arc<str>> = ids.iter().map(|i| Arc::from(i.as_str())).collect();
    for i in 0..n {
        let inst = &instance_keys[i % ids.len()];
        let ep = user_uri(i);
        inbox.endpoint_state(inst, ep.clone(), EndpointState::Active, None);
        let report = crate::overhead::presence(sip_simple_update(&ep, &pidf));
        inbox.report(inst, report);
    }
    // A round trip: the service has taken everything sent before.
    presence.user("").await?;
    // Let the event log's writer take what was queued.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let t2 = live();
    drop(sets);
    drop(presence);
    let _ = std::fs::remove_dir_all(&dir);
    let per = |b: i64| b as f64 / n as f64;
    Ok(vec![
        (
            "users, who-watches-what index (interned endpoints), merged presence, feed ring (after import)",
            per(t1 - t0),
        ),
        (
            "board (each endpoint's last report) and the merged presence it changes",
            per(t2 - t_sets),
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
