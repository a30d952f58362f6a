//! TLS to PostgreSQL (issue 21): the store and the hub binary against a
//! throw-away cluster with `ssl=on`, a server certificate for `localhost`
//! only from a private CA, and TCP connections over TLS only (`hostssl`).
//! libpq's `sslmode` meanings: `verify-full` checks chain and name,
//! `verify-ca` the chain only, `require` nothing unless a CA file is given,
//! `disable` is refused by such a server. Every TLS connection is shown in
//! the server's own `pg_stat_ssl`.

use std::path::Path;
use std::process::{Command, Output};

use hub_e2e::postgres::{self, Postgres};
use hub_e2e::{Hub, hub_binary};
use presence_hub::store::{PostgresStore, SqliteStore, Store, StoreError};

/// In every URL: the server trusts all (`trust`), so the password only
/// shows whether an error or log line leaks it.
const PASSWORD: &str = "pw-never-shown-7f3a";

fn pg() -> &'static Postgres {
    assert!(
        postgres::available(),
        "PostgreSQL 15 is needed (Debian package postgresql; .ci/install-test-deps.sh)"
    );
    Postgres::shared_tls()
}

/// A new database; its name.
fn database(prefix: &str) -> String {
    let url = pg().create_database(prefix);
    url.rsplit('/').next().unwrap().to_owned()
}

/// `postgres://postgres:PASSWORD@HOST:PORT/DB?QUERY`.
fn url(host: &str, db: &str, query: &str) -> String {
    format!(
        "postgres://postgres:{PASSWORD}@{host}:{}/{db}{}{query}",
        pg().port,
        if query.is_empty() { "" } else { "?" }
    )
}

fn ca() -> String {
    pg().ca_file().unwrap().display().to_string()
}

fn connect(url: &str, node: &str) -> Result<(PostgresStore, tempfile::TempDir), StoreError> {
    let dir = tempfile::tempdir().unwrap();
    PostgresStore::connect(url, dir.path(), node).map(|s| (s, dir))
}

fn refused(url: &str) -> String {
    let err = connect(url, "refused")
        .err()
        .unwrap_or_else(|| panic!("{url} connected"));
    assert!(matches!(err, StoreError::Postgres(_)), "{err}");
    let text = err.to_string();
    assert!(!text.contains(PASSWORD), "the password is in {text}");
    text
}

/// The server's view of the connections named `presence-hub NODE`:
/// `(how many, how many over TLS, TLS versions)`.
fn ssl_of(db: &str, node: &str) -> (u32, u32, String) {
    let row = pg().psql(
        db,
        &format!(
            "SELECT count(*), count(*) FILTER (WHERE s.ssl), \
                    coalesce(string_agg(DISTINCT s.version, ','), '') \
             FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) \
             WHERE a.application_name = 'presence-hub {node}'"
        ),
    );
    let mut it = row.split('|');
    (
        it.next().unwrap().parse().unwrap(),
        it.next().unwrap().parse().unwrap(),
        it.next().unwrap_or("").to_owned(),
    )
}

/// A write and a read back through the store, and every one of its
/// connections (at least a worker's and the `LISTEN` one) over TLS.
fn round_trip_over_tls(store: &PostgresStore, db: &str, node: &str) {
    store
        .put_users(&[("ann".into(), r#"{"display_name":"Ann"}"#.into())])
        .unwrap();
    store.kv_set("pbx", "token", b"t-1", 1 << 20).unwrap();
    assert_eq!(
        store.users().unwrap(),
        vec![("ann".into(), r#"{"display_name":"Ann"}"#.into())]
    );
    assert_eq!(
        store.kv_get("pbx", "token").unwrap().as_deref(),
        Some(&b"t-1"[..])
    );
    let (all, tls, versions) = ssl_of(db, node);
    assert!(all >= 2, "{all} connections of {node}");
    assert_eq!(tls, all, "connections of {node} without TLS");
    assert!(versions.starts_with("TLSv1."), "{versions}");
}

#[test]
fn verify_full_with_the_ca_round_trips_over_tls() {
    let db = database("tls_full");
    let u = url(
        "localhost",
        &db,
        &format!("sslmode=verify-full&sslrootcert={}", ca()),
    );
    let (store, _dir) = connect(&u, "tls-full").unwrap();
    round_trip_over_tls(&store, &db, "tls-full");
}

#[test]
fn the_keyword_form_takes_sslmode_and_sslrootcert() {
    let db = database("tls_keywords");
    let u = format!(
        "host=localhost port={} user=postgres password={PASSWORD} dbname={db} \
         sslmode=verify-full sslrootcert='{}'",
        pg().port,
        ca()
    );
    let (store, _dir) = connect(&u, "tls-keywords").unwrap();
    round_trip_over_tls(&store, &db, "tls-keywords");
}

#[test]
fn verify_full_without_the_ca_is_not_trusted() {
    // No sslrootcert: the system trust store, which has never seen the
    // test's CA.
    let db = database("tls_noca");
    let err = refused(&url("localhost", &db, "sslmode=verify-full"));
    assert!(
        err.contains("the database server's certificate was not trusted")
            && err.contains("checked against the system trust store")
            && err.contains("set sslrootcert=<PEM file of the CA that signed it> in database_url"),
        "{err}"
    );
}

#[test]
fn a_certificate_for_another_name_fails_verify_full_and_passes_verify_ca() {
    // The certificate names localhost only; the URL says 127.0.0.1.
    let db = database("tls_name");
    let err = refused(&url(
        "127.0.0.1",
        &db,
        &format!("sslmode=verify-full&sslrootcert={}", ca()),
    ));
    assert!(
        err.contains(
            "the database server's certificate was not trusted: it does not name 127.0.0.1"
        ) && err.contains("sslmode=verify-ca"),
        "{err}"
    );
    let u = url(
        "127.0.0.1",
        &db,
        &format!("sslmode=verify-ca&sslrootcert={}", ca()),
    );
    let (store, _dir) = connect(&u, "tls-ca").unwrap();
    round_trip_over_tls(&store, &db, "tls-ca");
}

#[test]
fn require_encrypts_without_checking_and_checks_the_chain_given_a_ca() {
    // Neither the name (127.0.0.1) nor the CA (unknown) would verify.
    let db = database("tls_require");
    let (store, _dir) = connect(&url("127.0.0.1", &db, "sslmode=require"), "tls-require").unwrap();
    round_trip_over_tls(&store, &db, "tls-require");

    // libpq: require with sslrootcert behaves like verify-ca.
    let other = tempfile::tempdir().unwrap();
    let unrelated = postgres::unrelated_ca(other.path());
    let err = refused(&url(
        "localhost",
        &db,
        &format!("sslmode=require&sslrootcert={}", unrelated.display()),
    ));
    assert!(
        err.contains("the database server's certificate was not trusted")
            && err.contains(&format!(
                "checked against the CA certificates in {}",
                unrelated.display()
            )),
        "{err}"
    );
}

#[test]
fn prefer_the_default_takes_tls_when_offered() {
    let db = database("tls_prefer");
    let (store, _dir) = connect(&url("127.0.0.1", &db, ""), "tls-prefer").unwrap();
    round_trip_over_tls(&store, &db, "tls-prefer");
}

#[test]
fn disable_is_refused_by_a_tls_only_server() {
    let db = database("tls_disable");
    let err = refused(&url("localhost", &db, "sslmode=disable"));
    assert!(
        err.contains("no pg_hba.conf entry") && err.contains("no encryption"),
        "{err}"
    );
    assert!(
        err.contains("the server takes only TLS connections here: set sslmode=verify-full"),
        "{err}"
    );
}

#[test]
fn tls_asked_of_a_server_without_it_is_named() {
    // The plain cluster of the other tests: ssl off.
    let plain = Postgres::shared().create_database("tls_plain");
    let err = refused(&format!("{plain}?sslmode=verify-full&sslrootcert={}", ca()));
    assert!(
        err.contains("the database server does not offer TLS, which sslmode=verify-full requires"),
        "{err}"
    );
}

#[test]
fn bad_tls_settings_are_named() {
    let db = database("tls_bad");
    let err = refused(&url("localhost", &db, "sslmode=verify_full"));
    assert!(
        err.contains(
            "sslmode \"verify_full\" is not supported; allowed: disable, prefer, require, verify-ca, verify-full"
        ),
        "{err}"
    );
    let err = refused(&url(
        "localhost",
        &db,
        "sslmode=verify-full&sslrootcert=/nonexistent/db-ca.pem",
    ));
    assert!(
        err.contains("database_url: sslrootcert /nonexistent/db-ca.pem: cannot be read"),
        "{err}"
    );
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn copy_to_postgres(url: &str, data: &Path) -> Output {
    Command::new(hub_binary())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .arg("copy-to-postgres")
        .args(["--database-url", url, "--data"])
        .arg(data)
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_hub_runs_on_a_verify_full_url_and_copies_over_tls() {
    let db = database("tls_hub");
    let u = url(
        "localhost",
        &db,
        &format!("sslmode=verify-full&sslrootcert={}", ca()),
    );
    let hub = Hub::start(
        &["plugins/http-push"],
        &[("HUB_DATABASE_URL", &u), ("HUB_NODE_ID", "tls-node")],
    );
    let v = hub
        .wait_for("/readyz", "its share held", |v| {
            v["cluster"]["holds_share"] == true
        })
        .await;
    assert_eq!(v["cluster"]["node"], "tls-node", "{v}");
    let (s, v) = hub.call("GET", "/readyz", None).await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = hub
        .call(
            "POST",
            "/api/v1/users",
            Some(serde_json::json!({"username": "ann", "display_name": "Ann"})),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let (all, tls, _) = ssl_of(&db, "tls-node");
    assert!(all >= 2 && tls == all, "{all} connections, {tls} over TLS");
    let log = hub.log();
    assert!(
        log.contains("sslmode=verify-full") && log.contains("chain and host name"),
        "{log}"
    );
    assert!(!log.contains(PASSWORD), "the password is in the log");

    // copy-to-postgres opens its own store, over TLS too.
    let data = tempfile::tempdir().unwrap();
    {
        let s = SqliteStore::open(data.path()).unwrap();
        s.put_users(&[("bob".into(), "{}".into())]).unwrap();
    }
    let target = database("tls_copy");
    let out = copy_to_postgres(
        &url(
            "localhost",
            &target,
            &format!("sslmode=verify-full&sslrootcert={}", ca()),
        ),
        data.path(),
    );
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(pg().psql(&target, "SELECT username FROM users"), "bob");
    let out = copy_to_postgres(
        &url("localhost", &target, "sslmode=verify-full"),
        data.path(),
    );
    assert!(!out.status.success());
    let said = text(&out);
    assert!(
        said.contains("the database server's certificate was not trusted"),
        "{said}"
    );
    assert!(!said.contains(PASSWORD), "{said}");
}
