//! `presence-hub copy-to-postgres` through the real binary: a SQLite hub
//! with an uploaded plugin, users, notes, a connector instance with a
//! secret and key-value data is copied into a throw-away PostgreSQL
//! cluster and read back through the PostgreSQL store.

use std::path::Path;
use std::process::{Command, Output};

use hub_e2e::postgres::{self, Postgres};
use hub_e2e::{Hub, dist, hub_binary};
use presence_hub::store::{Coordination, PostgresStore, SqliteStore, Store};
use serde_json::json;

const SECRET: &str = "copy-me-sealed-0123456789abcdef";

fn copy(url: &str, data: &Path, extra: &[&str]) -> Output {
    Command::new(hub_binary())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .arg("copy-to-postgres")
        .args(["--database-url", url, "--data"])
        .arg(data)
        .args(extra)
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sqlite_hub_copies_into_postgres() {
    assert!(
        postgres::available(),
        "PostgreSQL 15 is needed (Debian package postgresql; .ci/install-test-deps.sh)"
    );
    let pg = Postgres::start();
    let url = pg.create_database("copy");

    // A SQLite hub, configured through its API.
    let mut hub = Hub::start(&["plugins/http-push"], &[]);
    let (s, v) = hub.upload(&dist("test-plugins/acme")).await;
    assert_eq!(s, 201, "{v}");
    for user in [
        json!({"username": "alice", "display_name": "Alice", "extension": "1001"}),
        json!({"username": "bob", "display_name": "Bob", "extension": "1002"}),
    ] {
        let (s, v) = hub.call("POST", "/api/v1/users", Some(user)).await;
        assert_eq!(s, 201, "{v}");
    }
    let (s, note) = hub
        .call(
            "POST",
            "/api/v1/users/alice/notes",
            Some(json!({"text": "back at 3"})),
        )
        .await;
    assert_eq!(s, 201, "{note}");
    let cti = json!({"id": "cti", "plugin": "http-push", "config": {"shared_secret": SECRET}});
    let (s, v) = hub.call("POST", "/api/v1/connectors", Some(cti)).await;
    assert_eq!(s, 201, "{v}");
    hub.kill9();
    let data = hub.dir.path().join("data");
    // Key-value data as a connector keeps it (tokens, subscription state).
    {
        let s = SqliteStore::open(&data).unwrap();
        s.kv_set("cti", "subscription/alice", b"dialog-state-1", 1 << 20)
            .unwrap();
        s.kv_set("cti", "refresh_token", b"rt-0123456789", 1 << 20)
            .unwrap();
    }
    let source = SqliteStore::open(&data).unwrap().dump().unwrap();
    assert_eq!(source.users.len(), 2);
    assert_eq!(source.notes.len(), 1);
    assert_eq!(source.plugins.len(), 1);
    assert!(!source.settings.is_empty() && !source.events.is_empty());

    // Nothing to copy from a folder without a hub.
    let empty = tempfile::tempdir().unwrap();
    let out = copy(&url, empty.path(), &[]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("holds no hub database"),
        "{}",
        text(&out)
    );

    let out = copy(&url, &data, &[]);
    let said = text(&out);
    assert!(out.status.success(), "{said}");
    println!("{said}");
    assert!(
        said.contains(&format!(
            "the PostgreSQL database now holds: 1 plugins, 1 connectors, 2 key-value entries of 1 instances, 2 users, 1 notes, 0 tokens, {} settings, {} events",
            source.settings.len(),
            source.events.len()
        )),
        "{said}"
    );
    assert!(
        said.contains(&format!(
            "stay sealed with {}",
            data.join("secret.key").display()
        )),
        "{said}"
    );

    // Read back as another node would: with a copy of the key.
    let node = tempfile::tempdir().unwrap();
    std::fs::copy(data.join("secret.key"), node.path().join("secret.key")).unwrap();
    let store = PostgresStore::connect(&url, node.path(), "node-x").unwrap();
    let back = store.dump().unwrap();
    assert_eq!(back.connectors, source.connectors);
    assert_eq!(back.kv, source.kv);
    assert_eq!(back.users, source.users);
    assert_eq!(back.notes, source.notes);
    assert_eq!(back.tokens, source.tokens);
    assert_eq!(back.settings, source.settings);
    assert_eq!(back.events, source.events);
    assert_eq!(
        back.plugins
            .iter()
            .map(|p| (&p.id, &p.sha256, &p.component))
            .collect::<Vec<_>>(),
        source
            .plugins
            .iter()
            .map(|p| (&p.id, &p.sha256, &p.component))
            .collect::<Vec<_>>()
    );
    let connectors = store.connectors().unwrap();
    assert_eq!(connectors[0].secrets["shared_secret"], SECRET);
    assert_eq!(
        store.kv_get("cti", "refresh_token").unwrap().unwrap(),
        b"rt-0123456789"
    );
    assert_eq!(store.notes().unwrap()[0].0, note["id"].as_i64().unwrap());
    assert!(store.add_note("bob", "{}").unwrap() > note["id"].as_i64().unwrap());
    let fence = store
        .acquire("cti", std::time::Duration::from_secs(5))
        .unwrap();
    assert!(fence.is_some(), "the copied instance can be leased");

    // A second copy is refused: the target is not empty.
    let out = copy(&url, &data, &[]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("the target database is not empty") && text(&out).contains("--replace"),
        "{}",
        text(&out)
    );
    // With --replace it goes over it (the note added above goes).
    let out = copy(&url, &data, &["--replace"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(store.dump().unwrap().notes, source.notes);
    // Leases and fence counters stay: the next grant is still higher.
    store.release("cti", fence.unwrap().fence).unwrap();
    assert_eq!(
        store
            .acquire("cti", std::time::Duration::from_secs(5))
            .unwrap()
            .unwrap()
            .fence,
        2
    );
}
