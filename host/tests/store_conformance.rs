//! The same test bodies against both stores: SQLite (the embedded default)
//! and PostgreSQL (a throw-away cluster of the test kit, one database per
//! test); then what only the shared store does: leases with fencing
//! tokens, the cluster log and its wake-ups, the shared secret.key.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use hub_e2e::postgres::Postgres;
use presence_hub::store::{
    ClusterSignal, ConnectorRecord, Coordination, DIRECTORY_NAMESPACE, EventQuery, EventRecord,
    KvWrite, PRESENCE_NAMESPACE_PREFIX, PluginRecord, PostgresStore, STATUS_NAMESPACE, SqliteStore,
    Store, StoreError, TokenRecord,
};

struct Opened {
    store: Box<dyn Store>,
    dir: tempfile::TempDir,
}

fn sqlite() -> Opened {
    let dir = tempfile::tempdir().unwrap();
    let store = Box::new(SqliteStore::open(dir.path()).unwrap());
    Opened { store, dir }
}

fn postgres(test: &str) -> Opened {
    let url = Postgres::shared().create_database(test);
    let dir = tempfile::tempdir().unwrap();
    let store = Box::new(PostgresStore::connect(&url, dir.path(), "node-a").unwrap());
    Opened { store, dir }
}

/// `#[test] fn sqlite` and `#[test] fn postgres` running one body.
macro_rules! both {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[test]
            fn sqlite() {
                let o = super::sqlite();
                super::$name(&*o.store, o.dir.path());
            }
            #[test]
            fn postgres() {
                let o = super::postgres(stringify!($name));
                super::$name(&*o.store, o.dir.path());
            }
        }
    )*};
}

both!(
    plugins_round_trip,
    connectors_round_trip_with_sealed_secrets,
    deleting_a_connector_leaves_nothing_behind,
    kv_bounded_prefixed_and_per_instance,
    kv_write_in_order,
    users_and_their_notes,
    tokens_round_trip,
    events_query_and_prune,
    settings_round_trip,
    snapshot_opens_as_a_sqlite_hub,
    backup_archive_restores_as_a_sqlite_hub,
);

fn connector(id: &str, password: &str) -> ConnectorRecord {
    ConnectorRecord {
        id: id.into(),
        plugin: "sip".into(),
        config: BTreeMap::from([("server".into(), serde_json::json!("pbx:5060"))]),
        secrets: BTreeMap::from([("password".into(), password.into())]),
        enabled: true,
        tls_ca_pem: Some("-----BEGIN CERTIFICATE-----".into()),
        watches: vec!["1001".into(), "1002".into()],
        created_at_ms: 1,
        updated_at_ms: 2,
    }
}

fn plugin(id: &str, version: &str) -> PluginRecord {
    PluginRecord {
        id: id.into(),
        version: version.into(),
        manifest: format!("id = \"{id}\""),
        sha256: "ab".repeat(32),
        component: vec![0, 97, 115, 109, 255],
        uploaded_at_ms: 1_700_000_000_123,
    }
}

fn plugins_round_trip(s: &dyn Store, _: &Path) {
    assert!(s.plugins().unwrap().is_empty());
    s.put_plugin(&plugin("b", "1.0.0")).unwrap();
    s.put_plugin(&plugin("a", "1.0.0")).unwrap();
    s.put_plugin(&plugin("b", "2.0.0")).unwrap();
    let all = s.plugins().unwrap();
    assert_eq!(
        all.iter()
            .map(|p| (p.id.as_str(), p.version.as_str()))
            .collect::<Vec<_>>(),
        [("a", "1.0.0"), ("b", "2.0.0")]
    );
    assert_eq!(all[1].component, plugin("b", "2.0.0").component);
    assert_eq!(all[1].uploaded_at_ms, 1_700_000_000_123);
    assert!(s.delete_plugin("a").unwrap());
    assert!(!s.delete_plugin("a").unwrap());
    assert_eq!(s.plugins().unwrap().len(), 1);
}

fn connectors_round_trip_with_sealed_secrets(s: &dyn Store, _: &Path) {
    s.put_connector(&connector("pbx", "first-secret")).unwrap();
    s.put_connector(&connector("pbx", "s3cret-value")).unwrap();
    s.put_connector(&connector("other", "x")).unwrap();
    let all = s.connectors().unwrap();
    assert_eq!(
        all,
        vec![connector("other", "x"), connector("pbx", "s3cret-value")]
    );
    assert_eq!(all[1].secrets["password"], "s3cret-value");
    s.kv_set("pbx", "k", b"v", 100).unwrap();
    assert!(s.delete_connector("pbx").unwrap());
    assert!(!s.delete_connector("pbx").unwrap());
    assert_eq!(
        s.kv_get("pbx", "k").unwrap(),
        None,
        "kv goes with the connector"
    );
    assert_eq!(s.connectors().unwrap().len(), 1);
}

/// The cluster's latest presence (`#presence/<id>`), its stored status
/// (`#status`, key id) and the directory sync settings (`#directory`, key
/// id) go with the instance, in the same call; another instance's, even
/// one whose id starts the same, and the hub's other namespaces stay. A
/// call for an id without a record still drops leftovers.
fn deleting_a_connector_leaves_nothing_behind(s: &dyn Store, _: &Path) {
    let set = |k: &str| KvWrite::Set {
        key: k.into(),
        value: b"v".to_vec(),
    };
    let presence = |id: &str| format!("{PRESENCE_NAMESPACE_PREFIX}{id}");
    for id in ["pbx", "pbx-2"] {
        s.put_connector(&connector(id, "x")).unwrap();
        s.kv_write(id, &[set("token")]).unwrap();
        s.kv_write(
            &presence(id),
            &[set("1001\u{1f}rich"), set("1002\u{1f}state")],
        )
        .unwrap();
    }
    for ns in [STATUS_NAMESPACE, DIRECTORY_NAMESPACE, "#sync"] {
        s.kv_write(ns, &[set("pbx"), set("pbx-2"), set("ghost")])
            .unwrap();
    }
    assert!(s.delete_connector("pbx").unwrap());
    assert!(s.kv_all("pbx").unwrap().is_empty());
    assert!(s.kv_all(&presence("pbx")).unwrap().is_empty());
    for ns in [STATUS_NAMESPACE, DIRECTORY_NAMESPACE] {
        assert_eq!(s.kv_keys(ns, "").unwrap(), ["ghost", "pbx-2"], "{ns}");
    }
    // Not an instance's: the sync's holds are per user.
    assert_eq!(s.kv_keys("#sync", "").unwrap(), ["ghost", "pbx", "pbx-2"]);
    assert_eq!(s.kv_keys("pbx-2", "").unwrap(), ["token"]);
    assert_eq!(s.kv_keys(&presence("pbx-2"), "").unwrap().len(), 2);
    // Leftovers of an id without a record (a crash before this change).
    assert!(!s.delete_connector("ghost").unwrap());
    for ns in [STATUS_NAMESPACE, DIRECTORY_NAMESPACE] {
        assert_eq!(s.kv_keys(ns, "").unwrap(), ["pbx-2"], "{ns}");
    }
    assert_eq!(
        s.connectors()
            .unwrap()
            .iter()
            .map(|c| c.id.as_str())
            .collect::<Vec<_>>(),
        ["pbx-2"]
    );
}

fn kv_bounded_prefixed_and_per_instance(s: &dyn Store, _: &Path) {
    s.kv_set("a", "tok/1", b"x", 100).unwrap();
    s.kv_set("a", "tok/2", b"y", 100).unwrap();
    s.kv_set("a", "tok_3", b"y", 100).unwrap();
    s.kv_set("a", "other%", b"z", 100).unwrap();
    s.kv_set("b", "tok/3", b"w", 100).unwrap();
    assert_eq!(s.kv_keys("a", "tok/").unwrap(), vec!["tok/1", "tok/2"]);
    assert_eq!(s.kv_keys("a", "tok_").unwrap(), vec!["tok_3"]);
    assert_eq!(s.kv_keys("a", "other%").unwrap(), vec!["other%"]);
    assert_eq!(s.kv_keys("a", "").unwrap().len(), 4);
    assert_eq!(s.kv_get("b", "tok/1").unwrap(), None);
    assert_eq!(s.kv_get("a", "tok/1").unwrap().unwrap(), b"x");
    // Keys of 5, 5, 5 and 6 bytes with 1-byte values: 25 bytes used.
    let err = s.kv_set("a", "big", &[0; 200], 100).unwrap_err();
    assert!(
        matches!(&err, StoreError::LimitExceeded(m) if m.contains("would grow to 228 bytes; the plugin's limit is 100")),
        "{err}"
    );
    // The limit counts what the plugin stored, not the seal; replacing a
    // value counts its new size only.
    s.kv_set("a", "tok/1", &[1; 76], 100).unwrap();
    assert!(s.kv_set("a", "tok/1", &[1; 77], 100).is_err());
    s.kv_delete("a", "tok/1").unwrap();
    assert_eq!(s.kv_get("a", "tok/1").unwrap(), None);
    s.kv_delete("a", "never-there").unwrap();
    assert_eq!(
        s.kv_all("b").unwrap(),
        vec![("tok/3".to_owned(), b"w".to_vec())]
    );
}

fn kv_write_in_order(s: &dyn Store, _: &Path) {
    s.kv_set("b", "k", b"other", 100).unwrap();
    let set = |k: &str, v: &[u8]| KvWrite::Set {
        key: k.into(),
        value: v.to_vec(),
    };
    s.kv_write(
        "a",
        &[
            set("k", b"1"),
            set("j", b"2"),
            KvWrite::Delete { key: "k".into() },
            set("k", b"3"),
            set("\u{e9}", b"4"),
            set("Z", b"5"),
        ],
    )
    .unwrap();
    // Keys in byte order, whatever the database's locale.
    assert_eq!(
        s.kv_all("a").unwrap(),
        vec![
            ("Z".into(), b"5".to_vec()),
            ("j".into(), b"2".to_vec()),
            ("k".into(), b"3".to_vec()),
            ("\u{e9}".into(), b"4".to_vec())
        ]
    );
    assert_eq!(s.kv_get("b", "k").unwrap().unwrap(), b"other");
    // The last write of a key decides it, a delete included.
    s.kv_write(
        "a",
        &[
            set("j", b"6"),
            KvWrite::Delete { key: "j".into() },
            set("Z", b"7"),
            set("Z", b"8"),
        ],
    )
    .unwrap();
    assert_eq!(s.kv_get("a", "j").unwrap(), None);
    assert_eq!(s.kv_get("a", "Z").unwrap().unwrap(), b"8");
}

fn users_and_their_notes(s: &dyn Store, _: &Path) {
    s.put_users(&[
        ("bob".into(), r#"{"v":1}"#.into()),
        ("ann".into(), r#"{"v":1}"#.into()),
        ("bob".into(), r#"{"v":2}"#.into()),
    ])
    .unwrap();
    assert_eq!(
        s.users().unwrap(),
        vec![
            ("ann".to_owned(), r#"{"v":1}"#.to_owned()),
            ("bob".to_owned(), r#"{"v":2}"#.to_owned())
        ]
    );
    let n1 = s.add_note("ann", "n1").unwrap();
    let n2 = s.add_note("bob", "n2").unwrap();
    let n3 = s.add_note("ann", "n3").unwrap();
    assert!(n1 < n2 && n2 < n3);
    assert_eq!(
        s.notes().unwrap(),
        vec![
            (n1, "ann".into(), "n1".into()),
            (n2, "bob".into(), "n2".into()),
            (n3, "ann".into(), "n3".into())
        ]
    );
    assert!(s.delete_note(n2).unwrap());
    assert!(!s.delete_note(n2).unwrap());
    assert!(s.delete_user("ann").unwrap());
    assert!(!s.delete_user("ann").unwrap());
    assert!(s.notes().unwrap().is_empty(), "a user's notes go with them");
    assert_eq!(s.users().unwrap().len(), 1);
    s.put_users(&[]).unwrap();
}

fn tokens_round_trip(s: &dyn Store, _: &Path) {
    let t = |id: &str, at: u64| TokenRecord {
        id: id.into(),
        name: format!("{id} name"),
        role: "viewer".into(),
        sha256: format!("{id:0>64}"),
        created_at_ms: at,
    };
    s.put_token(&t("t2", 20)).unwrap();
    s.put_token(&t("t1", 10)).unwrap();
    assert!(s.put_token(&t("t1", 30)).is_err(), "ids are unique");
    assert_eq!(s.tokens().unwrap(), vec![t("t1", 10), t("t2", 20)]);
    assert!(s.delete_token("t1").unwrap());
    assert!(!s.delete_token("t1").unwrap());
    assert_eq!(s.tokens().unwrap(), vec![t("t2", 20)]);
}

fn events_query_and_prune(s: &dyn Store, _: &Path) {
    let e = |at: u64, user: Option<&str>, inst: Option<&str>| EventRecord {
        at_ms: at,
        kind: "report".into(),
        username: user.map(Into::into),
        instance: inst.map(Into::into),
        detail: format!("at {at}"),
    };
    s.append_events(&[
        e(100, Some("ann"), Some("pbx")),
        e(200, Some("bob"), Some("pbx")),
        e(300, Some("ann"), None),
        e(300, None, Some("teams")),
    ])
    .unwrap();
    let q = |user: Option<&str>, inst: Option<&str>, since, until, limit| EventQuery {
        username: user.map(Into::into),
        instance: inst.map(Into::into),
        since_ms: since,
        until_ms: until,
        limit,
    };
    let details = |q: EventQuery| {
        s.events(&q)
            .unwrap()
            .into_iter()
            .map(|e| e.detail)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        s.events(&q(None, None, 0, u64::MAX, 10)).unwrap()[0],
        e(300, None, Some("teams"))
    );
    assert_eq!(
        details(q(None, None, 0, u64::MAX, usize::MAX)),
        ["at 300", "at 300", "at 200", "at 100"]
    );
    assert_eq!(
        details(q(Some("ann"), None, 0, u64::MAX, 10)),
        ["at 300", "at 100"]
    );
    assert_eq!(details(q(None, Some("pbx"), 150, u64::MAX, 10)), ["at 200"]);
    assert_eq!(details(q(None, None, 0, 250, 1)), ["at 200"]);
    assert_eq!(s.prune_events(300).unwrap(), 2);
    assert_eq!(details(q(None, None, 0, u64::MAX, 10)).len(), 2);
}

fn settings_round_trip(s: &dyn Store, _: &Path) {
    assert_eq!(s.setting("admin_token_sha256").unwrap(), None);
    s.set_setting("admin_token_sha256", "one").unwrap();
    s.set_setting("admin_token_sha256", "two").unwrap();
    s.set_setting("other", "").unwrap();
    assert_eq!(
        s.setting("admin_token_sha256").unwrap().as_deref(),
        Some("two")
    );
    assert_eq!(s.setting("other").unwrap().as_deref(), Some(""));
}

fn snapshot_opens_as_a_sqlite_hub(s: &dyn Store, data: &Path) {
    s.put_connector(&connector("pbx", "s3cret-value")).unwrap();
    s.kv_set("pbx", "refresh", b"refresh-token", 1000).unwrap();
    s.put_users(&[("ann".into(), "{}".into())]).unwrap();
    let note = s.add_note("ann", "back at 3").unwrap();
    s.set_setting("k", "v").unwrap();
    let out = tempfile::tempdir().unwrap();
    s.snapshot(&out.path().join("hub.db")).unwrap();
    assert!(
        s.snapshot(&out.path().join("hub.db")).is_err(),
        "dest must not exist"
    );
    std::fs::copy(data.join("secret.key"), out.path().join("secret.key")).unwrap();
    let back = SqliteStore::open(out.path()).unwrap();
    assert_eq!(
        back.connectors().unwrap(),
        vec![connector("pbx", "s3cret-value")]
    );
    assert_eq!(
        back.kv_get("pbx", "refresh").unwrap().unwrap(),
        b"refresh-token"
    );
    assert_eq!(
        back.notes().unwrap(),
        vec![(note, "ann".into(), "back at 3".into())]
    );
    assert_eq!(back.setting("k").unwrap().as_deref(), Some("v"));
    // Notes added later do not reuse a copied id.
    assert!(back.add_note("ann", "later").unwrap() > note);
}

fn backup_archive_restores_as_a_sqlite_hub(s: &dyn Store, data: &Path) {
    use presence_hub::store::backup;
    s.put_connector(&connector("pbx", "s3cret-value")).unwrap();
    s.put_users(&[("ann".into(), "{}".into())]).unwrap();
    let bytes = backup::archive(s, data, true, 1_700_000_000_000).unwrap();
    let out = tempfile::tempdir().unwrap();
    let file = out.path().join("hub.backup");
    std::fs::write(&file, bytes).unwrap();
    let r = backup::restore(&file, &out.path().join("restored"), None).unwrap();
    assert_eq!((r.connectors, r.users), (1, 1));
    let back = SqliteStore::open(&out.path().join("restored")).unwrap();
    assert_eq!(
        back.connectors().unwrap()[0].secrets["password"],
        "s3cret-value"
    );
}

#[test]
fn tls_asked_of_a_server_without_it_is_named() {
    // The shared cluster has ssl off (TLS itself: tests/tests/postgres_tls.rs).
    let url = Postgres::shared().create_database("tls");
    let dir = tempfile::tempdir().unwrap();
    let err = PostgresStore::connect(&format!("{url}?sslmode=require"), dir.path(), "n")
        .err()
        .expect("no TLS on the server: refused");
    assert!(matches!(err, StoreError::Postgres(_)), "{err}");
    assert!(
        err.to_string()
            .contains("the database server does not offer TLS, which sslmode=require requires"),
        "{err}"
    );
}

/// A log sink for one test's tracing output.
#[derive(Clone, Default)]
struct Log(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl Log {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl std::io::Write for Log {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Log {
    type Writer = Log;
    fn make_writer(&'a self) -> Log {
        self.clone()
    }
}

// ---- What only the shared store does ----------------------------------

/// Two nodes on one database, sharing node A's secret.key.
struct Pair {
    a: PostgresStore,
    b: PostgresStore,
    url: String,
    _dirs: (tempfile::TempDir, tempfile::TempDir),
}

fn pair(test: &str) -> Pair {
    let url = Postgres::shared().create_database(test);
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = PostgresStore::connect(&url, da.path(), "node-a").unwrap();
    std::fs::copy(da.path().join("secret.key"), db.path().join("secret.key")).unwrap();
    let b = PostgresStore::connect(&url, db.path(), "node-b").unwrap();
    Pair {
        a,
        b,
        url,
        _dirs: (da, db),
    }
}

const TTL: Duration = Duration::from_secs(30);

/// One lease check renews every lease a node holds at once: those still its
/// own under their fence are extended, the others are reported lost.
#[test]
fn leases_renewed_together() {
    let p = pair("renew_all");
    assert!(p.a.renew_all(&[], TTL).unwrap().is_empty());
    let short = Duration::from_secs(1);
    let x = p.a.acquire("x", short).unwrap().unwrap();
    let y = p.a.acquire("y", short).unwrap().unwrap();
    let z = p.b.acquire("z", TTL).unwrap().unwrap();
    let held = vec![
        ("x".to_string(), x.fence),
        ("y".to_string(), y.fence + 1),
        ("z".to_string(), z.fence),
        ("gone".to_string(), 1),
    ];
    let renewed = p.a.renew_all(&held, TTL).unwrap();
    assert_eq!(
        renewed.into_iter().collect::<Vec<_>>(),
        vec!["x".to_string()],
        "only x is node-a's under that fence (y's fence is wrong, z is node-b's, gone was never leased)"
    );
    let leases = p.a.leases().unwrap();
    let lx = leases.iter().find(|l| l.instance == "x").unwrap();
    let ly = leases.iter().find(|l| l.instance == "y").unwrap();
    assert!(
        lx.expires_at_ms >= ly.expires_at_ms + 20_000,
        "x extended by the 30 s TTL, y not: {lx:?} {ly:?}"
    );
}

#[test]
fn leases_acquire_renew_release() {
    let p = pair("leases");
    let la = p.a.acquire("pbx", TTL).unwrap().expect("free instance");
    assert_eq!((la.node.as_str(), la.fence), ("node-a", 1));
    assert_eq!(p.b.acquire("pbx", TTL).unwrap(), None, "held by node-a");
    // Acquiring what this node holds keeps the fence.
    let again = p.a.acquire("pbx", TTL).unwrap().unwrap();
    assert_eq!(again.fence, 1);
    assert!(again.expires_at_ms >= la.expires_at_ms);
    assert!(p.a.renew("pbx", 1, TTL).unwrap());
    assert!(!p.b.renew("pbx", 1, TTL).unwrap(), "not node-b's");
    assert!(!p.a.renew("pbx", 2, TTL).unwrap(), "not that fence");
    p.b.release("pbx", 1).unwrap();
    assert_eq!(
        p.a.leases().unwrap().len(),
        1,
        "release by another node is a no-op"
    );
    p.a.release("pbx", 1).unwrap();
    assert!(p.a.leases().unwrap().is_empty());
    assert!(!p.a.renew("pbx", 1, TTL).unwrap(), "released");
    // The fence counter survives the release.
    let lb = p.b.acquire("pbx", TTL).unwrap().unwrap();
    assert_eq!((lb.node.as_str(), lb.fence), ("node-b", 2));
    assert_eq!(p.a.leases().unwrap(), vec![lb.clone()]);

    let nodes = p.a.heartbeat("http://127.0.0.1:1", TTL).unwrap();
    assert_eq!(nodes.len(), 1);
    let nodes = p.b.heartbeat("http://127.0.0.1:2", TTL).unwrap();
    assert_eq!(
        nodes.iter().map(|n| n.id.as_str()).collect::<Vec<_>>(),
        ["node-a", "node-b"]
    );
    assert!(nodes[0].seen_at_ms > nodes[0].started_at_ms);
    p.b.set_fence("pbx", Some(lb.fence));
    p.b.kv_set("pbx", "k", b"v", 100).unwrap();
    p.b.leave().unwrap();
    assert!(
        p.a.leases().unwrap().is_empty(),
        "leave drops the node's leases"
    );
    assert!(
        matches!(
            p.b.kv_set("pbx", "k", b"late", 100),
            Err(StoreError::Fenced { holder: None, .. })
        ),
        "a write after leaving is refused"
    );
    assert_eq!(p.a.heartbeat("http://127.0.0.1:1", TTL).unwrap().len(), 1);
    // An expired heartbeat is not alive.
    p.b.heartbeat("http://127.0.0.1:2", Duration::from_millis(1))
        .unwrap();
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(p.a.heartbeat("http://127.0.0.1:1", TTL).unwrap().len(), 1);
}

#[test]
fn takeover_after_expiry_fences_the_old_holder() {
    let p = pair("fencing");
    let old =
        p.a.acquire("pbx", Duration::from_millis(300))
            .unwrap()
            .unwrap();
    p.a.set_fence("pbx", Some(old.fence));
    p.a.kv_set("pbx", "sub", b"a-state", 1000).unwrap();
    p.a.check_fence("pbx").unwrap();
    assert_eq!(p.b.acquire("pbx", TTL).unwrap(), None, "not yet expired");
    std::thread::sleep(Duration::from_millis(400));
    let new =
        p.b.acquire("pbx", TTL)
            .unwrap()
            .expect("expired: taken over");
    assert!(new.fence > old.fence);
    assert_eq!(new.node, "node-b");

    // Node A wakes up and acts under its old fence: refused, and logged.
    let log = Log::default();
    let err = tracing::subscriber::with_default(
        tracing_subscriber::fmt()
            .with_writer(log.clone())
            .with_ansi(false)
            .finish(),
        || p.a.kv_set("pbx", "sub", b"stale", 1000).unwrap_err(),
    );
    let line = log.text();
    assert!(
        line.contains("WARN")
            && line.contains("fenced: write refused")
            && line.contains("instance=pbx node=node-a")
            && line.contains(&format!(
                "fence={} holder=node-b holder_fence={}",
                old.fence, new.fence
            )),
        "{line}"
    );
    match &err {
        StoreError::Fenced {
            instance,
            holder,
            fence,
            this_fence,
        } => {
            assert_eq!(instance, "pbx");
            assert_eq!(holder.as_deref(), Some("node-b"));
            assert_eq!(*fence, Some(new.fence));
            assert_eq!(*this_fence, old.fence);
        }
        other => panic!("expected Fenced, got {other}"),
    }
    assert!(err.to_string().contains("must stop acting"), "{err}");
    assert!(matches!(
        p.a.kv_write("pbx", &[KvWrite::Delete { key: "sub".into() }]),
        Err(StoreError::Fenced { .. })
    ));
    assert!(matches!(
        p.a.kv_delete("pbx", "sub"),
        Err(StoreError::Fenced { .. })
    ));
    assert!(matches!(
        p.a.publish("status", Some("pbx"), "running"),
        Err(StoreError::Fenced { .. })
    ));
    assert!(matches!(
        p.a.check_fence("pbx"),
        Err(StoreError::Fenced { .. })
    ));
    assert!(!p.a.renew("pbx", old.fence, TTL).unwrap());
    p.a.release("pbx", old.fence).unwrap();
    // Nothing of node A's landed, and the lease is node B's as granted.
    assert_eq!(p.b.kv_get("pbx", "sub").unwrap().unwrap(), b"a-state");
    assert_eq!(p.b.leases().unwrap(), vec![new.clone()]);
    // Node B acts under its fence; unfenced instances are not checked.
    p.b.set_fence("pbx", Some(new.fence));
    p.b.kv_set("pbx", "sub", b"b-state", 1000).unwrap();
    p.b.publish("status", Some("pbx"), "running").unwrap();
    p.a.kv_set("other", "k", b"v", 1000).unwrap();
    // Without a fence this node does not act for the instance at all.
    p.a.set_fence("pbx", None);
    assert!(matches!(
        p.a.check_fence("pbx"),
        Err(StoreError::Fenced { .. })
    ));
}

fn wait_for(
    rx: &mut tokio::sync::broadcast::Receiver<ClusterSignal>,
    want: impl Fn(&ClusterSignal) -> bool,
) -> ClusterSignal {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match rx.try_recv() {
            Ok(s) if want(&s) => return s,
            Ok(_) | Err(tokio::sync::broadcast::error::TryRecvError::Lagged(_)) => {}
            Err(_) => std::thread::sleep(Duration::from_micros(200)),
        }
        assert!(Instant::now() < deadline, "no wake-up within 10 s");
    }
}

#[test]
fn publish_and_changes_wake_the_other_node() {
    let p = pair("wakeups");
    let mut rx = p.b.subscribe();
    let seq = p.a.publish("presence", None, "{\"user\":\"ann\"}").unwrap();
    assert_eq!(
        wait_for(&mut rx, |s| matches!(s, ClusterSignal::Message { .. })),
        ClusterSignal::Message { seq }
    );
    let msgs = p.b.messages_after(seq - 1, 10).unwrap();
    assert_eq!(msgs.len(), 1);
    assert_eq!(
        (
            msgs[0].origin.as_str(),
            msgs[0].topic.as_str(),
            msgs[0].payload.as_str()
        ),
        ("node-a", "presence", "{\"user\":\"ann\"}")
    );
    assert_eq!(p.b.last_seq().unwrap(), seq);
    for (what, table) in [
        (0, "settings"),
        (1, "users"),
        (2, "connectors"),
        (3, "notes"),
        (4, "tokens"),
        (5, "plugins"),
    ] {
        match what {
            0 => p.a.set_setting("k", "v").unwrap(),
            1 => p.a.put_users(&[("ann".into(), "{}".into())]).unwrap(),
            2 => p.a.put_connector(&connector("pbx", "pw")).unwrap(),
            3 => drop(p.a.add_note("ann", "n").unwrap()),
            4 => {
                p.a.put_token(&TokenRecord {
                    id: "t".into(),
                    name: "t".into(),
                    role: "admin".into(),
                    sha256: "00".repeat(32),
                    created_at_ms: 1,
                })
                .unwrap()
            }
            _ => p.a.put_plugin(&plugin("x", "1.0.0")).unwrap(),
        }
        let got = wait_for(&mut rx, |s| matches!(s, ClusterSignal::Changed { .. }));
        assert_eq!(
            got,
            ClusterSignal::Changed {
                table: table.into(),
                origin: "node-a".into()
            }
        );
    }
    // Node B sees what node A configured.
    assert_eq!(p.b.connectors().unwrap()[0].secrets["password"], "pw");
    // Pruning by the database's clock.
    assert_eq!(p.b.prune_messages(0).unwrap(), 0);
    let tomorrow = presence_hub::store::now_ms() + 86_400_000;
    assert_eq!(p.b.prune_messages(tomorrow).unwrap(), 1);
    assert_eq!(p.b.messages_after(0, 10).unwrap(), vec![]);

    // The LISTEN connection cut: it comes back and says so; the workers
    // reconnect at their next call.
    let db = p.url.rsplit('/').next().unwrap().to_owned();
    Postgres::shared().psql(
        "postgres",
        &format!("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{db}'"),
    );
    wait_for(&mut rx, |s| *s == ClusterSignal::Reconnected);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut ok = 0;
    while ok < 8 {
        assert!(Instant::now() < deadline, "workers did not reconnect");
        match p.b.setting("k") {
            Ok(v) => {
                assert_eq!(v.as_deref(), Some("v"));
                ok += 1
            }
            Err(e) => assert!(matches!(e, StoreError::Postgres(_)), "{e}"),
        }
    }
}

#[test]
fn readers_never_skip_under_concurrent_publishers() {
    let p = std::sync::Arc::new(pair("ordering"));
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    const PER: usize = 150;
    const PUBLISHERS: usize = 6;
    let reader = {
        let (p, done) = (p.clone(), done.clone());
        std::thread::spawn(move || {
            let mut seen = Vec::new();
            let mut last = 0;
            let deadline = Instant::now() + Duration::from_secs(120);
            while seen.len() < PER * PUBLISHERS && Instant::now() < deadline {
                // Read once more after the publishers finished: then
                // nothing is in flight, so an empty page means the end.
                let finished = done.load(std::sync::atomic::Ordering::SeqCst);
                let page = p.b.messages_after(last, 37).unwrap();
                if page.is_empty() && finished {
                    break;
                }
                for m in page {
                    assert!(m.seq > last);
                    last = m.seq;
                    seen.push(m.seq);
                }
            }
            seen
        })
    };
    let publishers: Vec<_> = (0..PUBLISHERS)
        .map(|i| {
            let p = p.clone();
            std::thread::spawn(move || {
                let store = if i % 2 == 0 { &p.a } else { &p.b };
                for n in 0..PER {
                    store.publish("t", None, &format!("{i}/{n}")).unwrap();
                }
            })
        })
        .collect();
    for t in publishers {
        t.join().unwrap();
    }
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let seen = reader.join().unwrap();
    let all: Vec<i64> =
        p.a.messages_after(0, usize::MAX)
            .unwrap()
            .into_iter()
            .map(|m| m.seq)
            .collect();
    assert_eq!(all.len(), PER * PUBLISHERS);
    let missed: Vec<i64> = all.iter().filter(|s| !seen.contains(s)).copied().collect();
    assert!(
        missed.is_empty() && seen == all,
        "the following reader missed {missed:?} (of {})",
        all.len()
    );
}

#[test]
fn every_node_needs_the_first_nodes_secret_key() {
    let url = Postgres::shared().create_database("keys");
    let first = tempfile::tempdir().unwrap();
    let a = PostgresStore::connect(&url, first.path(), "node-a").unwrap();
    a.put_connector(&connector("pbx", "pw")).unwrap();

    let missing = tempfile::tempdir().unwrap();
    let err = PostgresStore::connect(&url, missing.path(), "node-b")
        .err()
        .expect("no key: refused");
    let key = missing.path().join("secret.key");
    assert!(matches!(err, StoreError::SecretKey(_)), "{err}");
    assert!(
        err.to_string().contains(&format!(
            "copy secret.key from the first node's data folder to {}",
            key.display()
        )),
        "{err}"
    );
    assert!(!key.exists(), "no key of its own was made");

    let other = tempfile::tempdir().unwrap();
    std::fs::write(other.path().join("secret.key"), [7u8; 32]).unwrap();
    let err = PostgresStore::connect(&url, other.path(), "node-b")
        .err()
        .expect("another key: refused");
    assert!(
        err.to_string()
            .contains("is not the key this database's secrets are sealed with")
            && err
                .to_string()
                .contains("copy secret.key from the first node's data folder"),
        "{err}"
    );

    std::fs::copy(
        first.path().join("secret.key"),
        other.path().join("secret.key"),
    )
    .unwrap();
    let b = PostgresStore::connect(&url, other.path(), "node-b").unwrap();
    assert_eq!(b.connectors().unwrap()[0].secrets["password"], "pw");
    // The check row is the store's own, not a hub setting.
    assert!(b.counts().unwrap().settings == 0);
}

/// Figures, printed: how fast one node publishes and how soon another is
/// woken (publish returned → signal received on the other store).
#[test]
fn cluster_log_figures() {
    let p = pair("figures");
    let mut rx = p.b.subscribe();
    const N: usize = 1000;
    let mut lat = Vec::with_capacity(N);
    let started = Instant::now();
    for i in 0..N {
        let t = Instant::now();
        let seq =
            p.a.publish("presence", None, &format!("{{\"n\":{i}}}"))
                .unwrap();
        wait_for(&mut rx, |s| *s == ClusterSignal::Message { seq });
        lat.push(t.elapsed());
    }
    let total = started.elapsed();
    lat.sort();
    let pct = |q: f64| lat[((N as f64 * q) as usize).min(N - 1)];
    println!(
        "cluster log, one publisher, each waited for: {N} messages in {total:?} \
         ({:.0}/s); publish→wake-up on the other node p50 {:?}, p99 {:?}, max {:?}",
        N as f64 / total.as_secs_f64(),
        pct(0.5),
        pct(0.99),
        lat[N - 1]
    );
    // Throughput without waiting: 4 threads on node A.
    let p = std::sync::Arc::new(p);
    let t = Instant::now();
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let p = p.clone();
            std::thread::spawn(move || {
                for _ in 0..N / 4 {
                    p.a.publish("presence", None, "{}").unwrap();
                }
            })
        })
        .collect();
    for th in threads {
        th.join().unwrap();
    }
    println!(
        "cluster log, 4 publishers: {N} messages in {:?} ({:.0}/s)",
        t.elapsed(),
        N as f64 / t.elapsed().as_secs_f64()
    );
    assert_eq!(p.b.messages_after(0, usize::MAX).unwrap().len(), 2 * N);
}
