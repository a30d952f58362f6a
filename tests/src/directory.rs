//! The set-up the tests of connector directory syncs share
//! (`tests/tests/directory_*.rs`): one connector instance's directory sync
//! driven through the hub's API (`/api/v1/directory/connectors/{id}`), and
//! the reading of its reports.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::Hub;

/// The directory sync of connector instance `id` on `hub`.
pub struct ConnectorDirectory<'a> {
    pub hub: &'a Hub,
    pub id: &'a str,
}

impl<'a> ConnectorDirectory<'a> {
    pub fn new(hub: &'a Hub, id: &'a str) -> Self {
        Self { hub, id }
    }

    /// `PUT /api/v1/directory/connectors/{id}` with `body`; asserts 200.
    pub async fn put(&self, body: Value) {
        let path = format!("/api/v1/directory/connectors/{}", self.id);
        let (s, v) = self.hub.call("PUT", &path, Some(body)).await;
        assert_eq!(s, 200, "{v}");
    }

    /// `POST …/sync?dry_run=`; asserts 200 and answers the report.
    pub async fn sync(&self, dry_run: bool) -> Value {
        let (s, r) = self.hub.call("POST", &self.sync_path(dry_run), None).await;
        assert_eq!(s, 200, "{r}");
        r
    }

    fn sync_path(&self, dry_run: bool) -> String {
        format!(
            "/api/v1/directory/connectors/{}/sync?dry_run={dry_run}",
            self.id
        )
    }

    /// A dry run once the whole directory is in (a half-read one answers
    /// 409); 20 s at most.
    pub async fn plan_when_whole(&self) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let (s, v) = self.hub.call("POST", &self.sync_path(true), None).await;
            match s {
                200 => return v,
                409 if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await
                }
                _ => panic!("dry run: {s} {v}"),
            }
        }
    }

    /// The instance's endpoints (`GET /api/v1/connectors/{id}/endpoints`),
    /// once its directory as the hub holds it satisfies `f`.
    pub async fn wait_directory(&self, what: &str, f: impl Fn(&[Value]) -> bool) -> Value {
        let path = format!("/api/v1/connectors/{}/endpoints", self.id);
        self.hub
            .wait_for(&path, what, |v| {
                v["directory"].as_array().is_some_and(|d| f(d))
            })
            .await
    }

    /// The step both directory tests share, once the directory renamed
    /// Alice Adams (user `alice.adams`) to Alice Meyer and lost `bob`, the
    /// whole directory in: a sync (`remove: report`) updates her name,
    /// reports him `missing` and keeps him, and leaves `carla`, the
    /// operator's user with a directory entry's email, `matched`; then,
    /// with `remove: delete`, bob goes and carla stays exactly as `carla`
    /// was stored.
    pub async fn renamed_and_removed(&self, carla: &Value) {
        let hub = self.hub;
        self.plan_when_whole().await;
        let r = self.sync(false).await;
        assert_eq!(action(&r, "alice.adams"), "updated", "{r}");
        assert_eq!(action(&r, "bob"), "missing", "{r}");
        assert_eq!(action(&r, "carla"), "matched", "{r}");
        assert_eq!(
            hub.get("/api/v1/users/alice.adams").await["display_name"],
            "Alice Meyer"
        );
        assert_eq!(hub.call("GET", "/api/v1/users/bob", None).await.0, 200);

        self.put(json!({"remove": "delete"})).await;
        let r = self.sync(false).await;
        assert_eq!(
            (action(&r, "bob"), r["deleted"].as_u64()),
            ("deleted", Some(1)),
            "{r}"
        );
        assert_eq!(hub.call("GET", "/api/v1/users/bob", None).await.0, 404);
        assert_eq!(&hub.get("/api/v1/users/carla").await, carla);
    }

    /// Disable and enable the instance: its plugin reads the directory
    /// again when it starts.
    pub async fn restart_connector(&self) {
        for step in ["disable", "enable"] {
            let path = format!("/api/v1/connectors/{}/{step}", self.id);
            let (s, v) = self.hub.call("POST", &path, None).await;
            assert!(s == 200 || s == 204, "{step}: {s} {v}");
        }
    }
}

/// What a sync report says it did with `user` (`absent` when not listed).
pub fn action<'a>(report: &'a Value, user: &str) -> &'a str {
    report["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["username"] == user)
        .and_then(|u| u["action"].as_str())
        .unwrap_or("absent")
}

/// Check the first dry run both directory tests make: of the directory's
/// 5 entries, `[created, matched, rejected]` as given, among them
/// `alice.adams` and `bob` created and the operator's `carla` matched;
/// nothing applied.
pub fn first_plan(plan: &Value, [created, matched, rejected]: [u64; 3]) {
    assert_eq!(
        (plan["dry_run"].as_bool(), plan["applied"].as_bool()),
        (Some(true), Some(false)),
        "{plan}"
    );
    assert_eq!(plan["entries"], 5, "{plan}");
    assert_eq!(
        (&plan["created"], &plan["matched"], &plan["rejected"]),
        (&json!(created), &json!(matched), &json!(rejected)),
        "{plan}"
    );
    assert_eq!(action(plan, "alice.adams"), "created", "{plan}");
    assert_eq!(action(plan, "bob"), "created", "{plan}");
    assert_eq!(action(plan, "carla"), "matched", "{plan}");
}

/// Whether a directory lists `endpoint`.
pub fn has(dir: &[Value], endpoint: &str) -> bool {
    dir.iter().any(|e| e["endpoint"] == endpoint)
}

/// Create the operator's user `carla`, who has `email` (the same person
/// as a directory entry, under another name); answers her record as
/// stored, to compare with after syncs.
pub async fn operator_carla(hub: &Hub, email: &str) -> Value {
    let carla = json!({"username": "carla", "display_name": "Carla (front desk)",
        "email": email, "department": "Reception"});
    let (s, v) = hub.call("POST", "/api/v1/users", Some(carla)).await;
    assert_eq!(s, 201, "{v}");
    hub.get("/api/v1/users/carla").await
}
