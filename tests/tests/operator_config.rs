//! An operator's configuration mistakes and user imports, through the real
//! binary (issue 18): a configuration the plugin refuses is answered 422
//! naming the field and leaves nothing behind; errors say the type, the
//! range, where and what to do; PATCH merges and PUT replaces; the hub
//! finds its plugins from any working directory; imports say their mode
//! and what each row did; duplicate identifiers are refused unless shared.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use hub_e2e::{Hub, TOKEN, hub_binary};
use serde_json::{Value, json};

fn sip_config() -> Value {
    json!({"server": "127.0.0.1:5999", "uri": "hub@127.0.0.1", "password": "pw-0123456789", "expires": 600})
}

async fn create(hub: &Hub, body: Value) -> (u16, Value) {
    hub.call("POST", "/api/v1/connectors", Some(body)).await
}

fn msg(v: &Value) -> &str {
    v["error"].as_str().unwrap_or_default()
}

/// A configuration the plugin's `configure` refuses: 422 naming the
/// field, in the plugin's words, and no instance; on update the old
/// configuration stays, and the refusal is in the status and event log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_configuration_is_answered_and_leaves_nothing() {
    let hub = Hub::start(&["plugins/sip-simple", "plugins/teams-graph"], &[]);

    let mut bad = sip_config();
    bad["uri"] = json!("not a uri");
    let (s, v) = create(
        &hub,
        json!({"id": "pbx", "plugin": "sip-simple", "config": bad}),
    )
    .await;
    assert_eq!(s, 422, "{v}");
    assert_eq!(v["field"], "config.uri", "{v}");
    assert!(msg(&v).contains("user@domain"), "the plugin's words: {v}");
    assert!(msg(&v).contains("nothing was created"), "{v}");
    let (s, _) = hub.call("GET", "/api/v1/connectors/pbx", None).await;
    assert_eq!(s, 404, "a refused connector is not kept");
    let list = hub.get("/api/v1/connectors").await;
    assert_eq!(list["connectors"], json!([]), "{list}");

    // teams-graph: client credentials without a client secret, and the
    // authorization-code flow without a redirect URL (this hub has no
    // public URL to make one from).
    let teams = json!({"tenant_id": "contoso.example", "client_id": "11111111-2222-3333-4444-555555555555"});
    let (s, v) = create(
        &hub,
        json!({"id": "teams", "plugin": "teams-graph", "config": teams}),
    )
    .await;
    assert_eq!(s, 422, "{v}");
    assert_eq!(v["field"], "config.client_secret", "{v}");
    let mut code = teams.clone();
    code["auth_flow"] = json!("authorization-code");
    let (s, v) = create(
        &hub,
        json!({"id": "teams", "plugin": "teams-graph", "config": code}),
    )
    .await;
    assert_eq!(s, 422, "{v}");
    assert_eq!(v["field"], "config.redirect_url", "{v}");
    let (s, _) = hub.call("GET", "/api/v1/connectors/teams", None).await;
    assert_eq!(s, 404);
    // The same id is free: nothing half-written blocks it.
    let (s, v) = create(
        &hub,
        json!({"id": "pbx", "plugin": "sip-simple", "config": sip_config()}),
    )
    .await;
    assert_eq!(s, 201, "{v}");

    // Update: refused, the old configuration kept (and running).
    let (s, v) = hub
        .call(
            "PATCH",
            "/api/v1/connectors/pbx",
            Some(json!({"config": {"uri": "not a uri"}})),
        )
        .await;
    assert_eq!(s, 422, "{v}");
    assert_eq!(v["field"], "config.uri", "{v}");
    assert!(msg(&v).contains("previous configuration was kept"), "{v}");
    let c = hub.get("/api/v1/connectors/pbx").await;
    assert_eq!(c["config"]["uri"], "hub@127.0.0.1", "{c}");
    let last = c["status"]["last_error"]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(
        last.contains("`uri`") && last.contains("user@domain"),
        "{c}"
    );
    // PUT the same way.
    let mut bad = sip_config();
    bad["uri"] = json!("still not");
    let (s, v) = hub
        .call(
            "PUT",
            "/api/v1/connectors/pbx",
            Some(json!({"config": bad})),
        )
        .await;
    assert_eq!((s, v["field"].as_str()), (422, Some("config.uri")), "{v}");
    assert_eq!(
        hub.get("/api/v1/connectors/pbx").await["config"]["uri"],
        "hub@127.0.0.1"
    );
    // The event log names the instance and carries the plugin's words.
    let events = hub
        .wait_for("/api/v1/events?connector=pbx", "the refusal logged", |v| {
            v["events"].as_array().is_some_and(|e| {
                e.iter().any(|e| {
                    e["detail"]
                        .as_str()
                        .is_some_and(|d| d.contains("refused") && d.contains("user@domain"))
                })
            })
        })
        .await;
    assert!(events.to_string().contains("pbx"), "{events}");
}

/// The host's own checks say the type and what came; a value out of the
/// plugin's range is refused by the plugin with the range.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn type_and_range_errors_say_what_is_allowed() {
    let hub = Hub::start(&["plugins/sip-simple", "plugins/http-push"], &[]);
    let mut c = sip_config();
    c["expires"] = json!("5");
    let (s, v) = create(
        &hub,
        json!({"id": "pbx", "plugin": "sip-simple", "config": c}),
    )
    .await;
    assert_eq!(
        (s, v["field"].as_str()),
        (422, Some("config.expires")),
        "{v}"
    );
    let m = msg(&v);
    assert!(
        m.contains("whole number")
            && m.contains("the string \"5\"")
            && m.contains("without quotes"),
        "{v}"
    );
    c["expires"] = json!(999_999);
    let (s, v) = create(
        &hub,
        json!({"id": "pbx", "plugin": "sip-simple", "config": c}),
    )
    .await;
    assert_eq!(
        (s, v["field"].as_str()),
        (422, Some("config.expires")),
        "{v}"
    );
    assert!(msg(&v).contains("86400"), "the plugin's range: {v}");
    let (s, v) = create(
        &hub,
        json!({"id": "push", "plugin": "http-push", "config": {"shared_secret": "a-shared-secret-0123456789", "max_skew_seconds": 99999}}),
    )
    .await;
    assert_eq!(
        (s, v["field"].as_str()),
        (422, Some("config.max_skew_seconds")),
        "{v}"
    );
    assert!(msg(&v).contains("3600"), "the plugin's range: {v}");
    let (s, v) = create(
        &hub,
        json!({"id": "push", "plugin": "http-push", "config": {"shared_secret": "a-shared-secret-0123456789", "max_skew_seconds": "soon"}}),
    )
    .await;
    assert_eq!(
        (s, v["field"].as_str()),
        (422, Some("config.max_skew_seconds")),
        "{v}"
    );
    assert!(msg(&v).contains("the string \"soon\""), "{v}");
}

/// PATCH is a JSON merge patch over the stored configuration (secrets
/// kept, `null` removes); PUT replaces (secrets kept unless given).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patch_merges_and_put_replaces() {
    let hub = Hub::start(&["plugins/sip-simple"], &[]);
    let (s, v) = create(
        &hub,
        json!({"id": "pbx", "plugin": "sip-simple", "config": sip_config()}),
    )
    .await;
    assert_eq!(s, 201, "{v}");

    let resp = hub
        .http
        .patch(hub.url("/api/v1/connectors/pbx"))
        .bearer_auth(TOKEN)
        .header("content-type", "application/merge-patch+json")
        .body(r#"{"config": {"expires": 900}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["config"]["expires"], 900, "{v}");
    assert_eq!(v["config"]["server"], "127.0.0.1:5999", "{v}");
    assert_eq!(v["config"]["uri"], "hub@127.0.0.1", "{v}");
    assert_eq!(v["secrets_set"], json!(["password"]), "{v}");

    let (s, v) = hub
        .call(
            "PATCH",
            "/api/v1/connectors/pbx",
            Some(json!({"config": {"expires": null}})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert!(v["config"].get("expires").is_none(), "null removes: {v}");
    assert_eq!(v["secrets_set"], json!(["password"]), "{v}");

    // PUT: the given configuration, whole; the secret kept.
    let (s, v) = hub
        .call(
            "PUT",
            "/api/v1/connectors/pbx",
            Some(json!({"config": {"server": "127.0.0.1:5999", "uri": "hub2@127.0.0.1"}, "watches": ["alice@127.0.0.1"]})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        v["config"],
        json!({"server": "127.0.0.1:5999", "uri": "hub2@127.0.0.1"}),
        "{v}"
    );
    assert_eq!(v["secrets_set"], json!(["password"]), "{v}");
    assert_eq!(v["watches"], json!(["alice@127.0.0.1"]), "{v}");
    // A secret given as null is forgotten.
    let (s, v) = hub
        .call(
            "PUT",
            "/api/v1/connectors/pbx",
            Some(json!({"config": {"server": "127.0.0.1:5999", "uri": "hub2@127.0.0.1", "password": null}})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["secrets_set"], json!([]), "{v}");
    assert_eq!(v["watches"], json!([]), "PUT replaces the watches too: {v}");
    // The plugin is the instance's own; an unknown field is named.
    let (s, v) = hub
        .call(
            "PUT",
            "/api/v1/connectors/pbx",
            Some(json!({"plugin": "teams-graph", "config": {}})),
        )
        .await;
    assert_eq!((s, v["field"].as_str()), (422, Some("plugin")), "{v}");
    let (s, v) = hub
        .call(
            "PATCH",
            "/api/v1/connectors/pbx",
            Some(json!({"config": {"expirse": null}})),
        )
        .await;
    assert_eq!(
        (s, v["field"].as_str()),
        (422, Some("config.expirse")),
        "{v}"
    );
}

/// Bodies that are not JSON, or not of the shape, say where and what.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_json_says_where_and_what() {
    let hub = Hub::start(&["plugins/sip-simple"], &[]);
    let raw = |body: &'static str| {
        hub.http
            .post(hub.url("/api/v1/connectors"))
            .bearer_auth(TOKEN)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let r = raw("{\"id\": \"x\",\n \"plugin\": }").await.unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["field"], "plugin", "{v}");
    assert!(msg(&v).contains("line 2, column"), "{v}");
    assert!(msg(&v).contains("not valid JSON"), "{v}");
    let r = raw(r#"{"id": "x", "plugin": "sip-simple", "enabled": "yes"}"#)
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["field"], "enabled", "{v}");
    assert!(
        msg(&v).contains("expected a boolean") && msg(&v).contains("line 1"),
        "{v}"
    );
    let r = raw(r#"{"id": "x", "plugin": "sip-simple", "watches": ["a", 5]}"#)
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["field"], "watches[1]", "{v}");
    let r = raw(r#"{"id": "x", "plugin": "sip-simple", "confg": {}}"#)
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["field"], "confg", "{v}");
    assert!(!v.to_string().contains("\"?\""), "{v}");
}

/// Start the hub binary from `cwd` with `env` (no plugins directory set);
/// its base URL and the process, or its exit output.
fn spawn_in(
    exe: &Path,
    cwd: &Path,
    env: &[(&str, &str)],
) -> Result<(String, std::process::Child), String> {
    let mut child = Command::new(exe)
        .current_dir(cwd)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HUB_DATA_DIR", cwd.join("data"))
        .env("HUB_ADMIN_TOKEN", TOKEN)
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start presence-hub");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(url) = line.strip_prefix("presence-hub listening on ") {
                let _ = tx.send(url.to_string());
            }
        }
    });
    match rx.recv_timeout(Duration::from_secs(120)) {
        Ok(url) => Ok((url, child)),
        Err(_) => {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }
}

/// Run from another folder, the hub finds the workspace's plugins from
/// where its binary is; a host name is a listen address; when no plugins
/// directory is found, the log names HUB_PLUGINS_DIR and where it looked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hub_runs_from_any_folder() {
    hub_e2e::dist("plugins/http-push"); // built
    let elsewhere = tempfile::tempdir().unwrap();
    let (base, mut child) = spawn_in(
        &hub_binary(),
        elsewhere.path(),
        &[("HUB_LISTEN", "localhost:0")],
    )
    .expect("the hub starts");
    assert!(base.starts_with("http://127.0.0.1:"), "{base}");
    let v: Value = reqwest::Client::new()
        .get(format!("{base}/api/v1/plugins"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        v["plugins"]
            .as_array()
            .is_some_and(|p| p.iter().any(|p| p["id"] == "http-push")),
        "{v}"
    );

    // A binary with nothing around it: the log says what to set.
    let alone = tempfile::tempdir().unwrap();
    let exe = alone.path().join("bin/presence-hub");
    std::fs::create_dir_all(exe.parent().unwrap()).unwrap();
    std::fs::copy(hub_binary(), &exe).unwrap();
    let mut child = Command::new(&exe)
        .current_dir(alone.path())
        .env_clear()
        .env("HUB_DATA_DIR", alone.path().join("data"))
        .env("HUB_ADMIN_TOKEN", TOKEN)
        .env("HUB_LISTEN", "127.0.0.1:0")
        .env("HUB_LOG_FORMAT", "json")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    assert!(
        lines
            .next()
            .and_then(Result::ok)
            .is_some_and(|l| l.starts_with("presence-hub listening on ")),
        "it serves without plugins"
    );
    child.kill().unwrap();
    let out = child.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("HUB_PLUGINS_DIR"), "{log}");
    assert!(
        log.contains(
            &alone
                .path()
                .join("share/presence-hub/plugins")
                .display()
                .to_string()
        ),
        "the paths tried: {log}"
    );

    // A listen address without a port says what is accepted.
    let err = spawn_in(
        &hub_binary(),
        elsewhere.path(),
        &[("HUB_LISTEN", "localhost")],
    )
    .map(|(_, mut c)| {
        let _ = c.kill();
    })
    .expect_err("no port, no start");
    assert!(
        err.contains("HUB_LISTEN")
            && err.contains("127.0.0.1:8740")
            && err.contains("localhost:8740"),
        "{err}"
    );
}

async fn import(hub: &Hub, query: &str, ctype: &str, body: &str) -> (u16, Value) {
    let r = hub
        .http
        .post(hub.url(&format!("/api/v1/users/import{query}")))
        .bearer_auth(TOKEN)
        .header("content-type", ctype)
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let s = r.status().as_u16();
    (s, r.json().await.unwrap_or(Value::Null))
}

/// A spreadsheet's export (byte-order mark, `;` or tab) imports; an
/// unknown column names the allowed ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_as_spreadsheets_export_it() {
    let hub = Hub::start(&[], &[]);
    let (s, v) = import(
        &hub,
        "",
        "text/csv",
        "\u{feff}username;display_name;extension\r\nalice;Alice Liddell;1001\r\nbob;Bob;1002\r\n",
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        (v["created"].as_u64(), v["mode"].as_str()),
        (Some(2), Some("merge")),
        "{v}"
    );
    let alice = hub.get("/api/v1/users/alice").await;
    assert_eq!(alice["display_name"], "Alice Liddell");
    let (s, v) = import(&hub, "", "text/csv", "Username\tExtension\ncarol\t1003\n").await;
    assert_eq!((s, v["created"].as_u64()), (200, Some(1)), "{v}");
    let (s, v) = import(&hub, "", "text/csv", "username,phone\ndave,1004\n").await;
    assert_eq!((s, v["field"].as_str()), (400, Some("phone")), "{v}");
    assert!(
        msg(&v).contains("extension") && msg(&v).contains("display_name"),
        "{v}"
    );
}

/// Re-importing fewer columns changes only those (merge, the default);
/// replace makes each row its user and deletes only when asked; every
/// row says what happened to it, with its line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imports_state_their_mode_and_each_rows_outcome() {
    let hub = Hub::start(&[], &[]);
    let (s, v) = hub
        .call(
            "POST",
            "/api/v1/users",
            Some(json!({"username": "carol", "display_name": "Carol", "email": "carol@example.com", "extension": "1003", "department": "Sales"})),
        )
        .await;
    assert_eq!(s, 201, "{v}");

    let (s, v) = import(&hub, "", "text/csv", "username,extension\ncarol,1003\n").await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["rows"][0]["result"], "unchanged", "{v}");
    let carol = hub.get("/api/v1/users/carol").await;
    assert_eq!(
        (carol["email"].as_str(), carol["department"].as_str()),
        (Some("carol@example.com"), Some("Sales")),
        "merge keeps the other attributes: {carol}"
    );

    let (s, v) = import(
        &hub,
        "?mode=merge",
        "text/csv",
        "username,extension\ncarol,1013\ndave,1004\n",
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["rows"][0]["result"], "updated", "{v}");
    assert_eq!(v["rows"][0]["changed"], json!(["extension"]), "{v}");
    assert_eq!(v["rows"][0]["line"], 2, "{v}");
    assert_eq!(v["rows"][1]["result"], "created", "{v}");
    assert_eq!(
        (v["updated"].as_u64(), v["created"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(hub.get("/api/v1/users/carol").await["department"], "Sales");

    // JSON rows merge by the fields they give.
    let (s, v) = import(
        &hub,
        "",
        "application/json",
        r#"[{"username": "carol", "department": "Support"}]"#,
    )
    .await;
    assert_eq!(
        (s, v["rows"][0]["result"].as_str()),
        (200, Some("updated")),
        "{v}"
    );
    let carol = hub.get("/api/v1/users/carol").await;
    assert_eq!(
        (carol["department"].as_str(), carol["extension"].as_str()),
        (Some("Support"), Some("1013"))
    );

    // A rejected row: its line, field and reason; nothing imported.
    let (s, v) = import(
        &hub,
        "",
        "text/csv",
        "username,extension\nerin,1005\nfrank,12a\n",
    )
    .await;
    assert_eq!(s, 422, "{v}");
    assert_eq!(v["applied"], false, "{v}");
    assert_eq!(v["rows"][1]["result"], "rejected", "{v}");
    assert_eq!(
        (
            v["rows"][1]["line"].as_u64(),
            v["rows"][1]["field"].as_str()
        ),
        (Some(3), Some("extension")),
        "{v}"
    );
    let (s, _) = hub.call("GET", "/api/v1/users/erin", None).await;
    assert_eq!(s, 404, "all or nothing");

    // Replace: the row is the user; others deleted only when asked.
    let (s, v) = import(&hub, "?mode=delete", "text/csv", "username\ncarol\n").await;
    assert_eq!((s, v["field"].as_str()), (400, Some("mode")), "{v}");
    let (s, v) = import(
        &hub,
        "?delete_missing=true",
        "text/csv",
        "username\ncarol\n",
    )
    .await;
    assert_eq!(
        (s, v["field"].as_str()),
        (400, Some("delete_missing")),
        "{v}"
    );
    let (s, v) = import(
        &hub,
        "?mode=replace",
        "text/csv",
        "username,extension\ncarol,1003\n",
    )
    .await;
    assert_eq!((s, v["mode"].as_str()), (200, Some("replace")), "{v}");
    let carol = hub.get("/api/v1/users/carol").await;
    assert!(carol["email"].is_null(), "replace clears: {carol}");
    assert_eq!(hub.get("/api/v1/users/dave").await["extension"], "1004");
    let (s, v) = import(
        &hub,
        "?mode=replace&delete_missing=true",
        "text/csv",
        "username,extension\ncarol,1003\n",
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["deleted"], json!(["dave"]), "{v}");
    let (s, _) = hub.call("GET", "/api/v1/users/dave", None).await;
    assert_eq!(s, 404);
}

/// Two users with one extension, SIP URI or UPN/email would show the same
/// presence: refused on create, update and import, naming the other user
/// and the field, unless both mark it shared.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_identifiers_are_refused_unless_shared() {
    let hub = Hub::start(&[], &[]);
    let (s, v) = hub
        .call(
            "POST",
            "/api/v1/users",
            Some(json!({"username": "alice", "extension": "1001", "sip_uri_rich": "sip:alice@example.com", "teams_upn": "alice@contoso.example"})),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let post = |body: Value| hub.call("POST", "/api/v1/users", Some(body));
    let (s, v) = post(json!({"username": "bob", "extension": "1001"})).await;
    assert_eq!((s, v["field"].as_str()), (409, Some("extension")), "{v}");
    assert!(
        msg(&v).contains("\"alice\"") && msg(&v).contains("shared"),
        "{v}"
    );
    let (s, v) = post(json!({"username": "bob", "sip_uri_rich": "Alice@Example.com"})).await;
    assert_eq!((s, v["field"].as_str()), (409, Some("sip_uri_rich")), "{v}");
    let (s, v) = post(json!({"username": "bob", "teams_upn": "ALICE@contoso.example"})).await;
    assert_eq!((s, v["field"].as_str()), (409, Some("teams_upn")), "{v}");

    let (s, v) = post(json!({"username": "bob", "extension": "1002"})).await;
    assert_eq!(s, 201, "{v}");
    let (s, v) = hub
        .call(
            "PUT",
            "/api/v1/users/bob",
            Some(json!({"username": "bob", "extension": "1001"})),
        )
        .await;
    assert_eq!(
        (s, v["field"].as_str()),
        (409, Some("extension")),
        "update: {v}"
    );
    let (s, v) = import(&hub, "", "text/csv", "username,extension\nbob,1001\n").await;
    assert_eq!(s, 422, "import: {v}");
    assert_eq!(v["rows"][0]["field"], "extension", "{v}");
    assert!(
        v["rows"][0]["error"].as_str().unwrap().contains("alice"),
        "{v}"
    );

    // Shared on purpose, by both: taken.
    let (s, v) = hub
        .call(
            "PUT",
            "/api/v1/users/alice",
            Some(json!({"username": "alice", "extension": "1001", "sip_uri_rich": "sip:alice@example.com", "teams_upn": "alice@contoso.example", "shared": ["extension"]})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = hub
        .call(
            "PUT",
            "/api/v1/users/bob",
            Some(json!({"username": "bob", "extension": "1001"})),
        )
        .await;
    assert_eq!(s, 409, "bob does not say it is shared: {v}");
    assert!(msg(&v).contains("does already"), "{v}");
    let (s, v) = hub
        .call(
            "PUT",
            "/api/v1/users/bob",
            Some(json!({"username": "bob", "extension": "1001", "shared": ["extension"]})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = post(json!({"username": "carol", "shared": ["phone"]})).await;
    assert_eq!((s, v["field"].as_str()), (422, Some("shared[0]")), "{v}");
}
