//! Directory sync against a real OpenLDAP `slapd` (started by the test
//! kit, `hub_e2e::slapd`): the filter and the attribute mapping, paged
//! search, a dry run that changes nothing, a sync that creates, a changed
//! phone number that updates, a person deleted from the directory that is
//! deleted from the hub (and reported only, by option) while a user
//! imported from CSV stays, a wrong bind password named by its bind DN,
//! and a scheduled sync that runs by itself.

use hub_e2e::directory::action;
use hub_e2e::slapd::{self, ROOT_DN, ROOT_PW, SUFFIX, Slapd};
use hub_e2e::{Hub, TOKEN};
use serde_json::{Value, json};

fn person(uid: &str, cn: &str, phone: &str, employee_type: &str) -> String {
    format!(
        "dn: uid={uid},ou=people,{SUFFIX}\nobjectClass: inetOrgPerson\nuid: {uid}\ncn: {cn}\nsn: {cn}\n\
         mail: {uid}@example.com\ntelephoneNumber: {phone}\nemployeeType: {employee_type}\n\
         departmentNumber: Sales\n\n"
    )
}

fn settings(url: &str, password: &str, remove: &str, interval: u64) -> Value {
    json!({
        "url": url,
        "bind_dn": ROOT_DN,
        "bind_password": password,
        "base_dn": format!("ou=people,{SUFFIX}"),
        "filter": "(&(objectClass=inetOrgPerson)(!(employeeType=external)))",
        "scope": "sub",
        // One entry a page: the sync must follow the paged results cookie.
        "page_size": 1,
        "interval_seconds": interval,
        "remove": remove,
        "mapping": {
            "fields": {
                "username": "uid",
                "display_name": "cn",
                "email": "mail",
                "extension": "telephoneNumber",
                "department": "departmentNumber"
            },
            "extension_prefix": "+49 89 1234-"
        }
    })
}

#[tokio::test]
async fn users_follow_the_directory() {
    assert!(
        slapd::available(),
        "slapd and ldap-utils are needed (Debian packages slapd ldap-utils; .ci/install-test-deps.sh)"
    );
    let ldap = Slapd::start();
    ldap.add(&format!(
        "{}{}{}{}",
        person("ann", "Ann Meyer", "+49 89 1234-101", "staff"),
        person("Bob", "Bob Stone", "+49 89 1234-202", "staff"),
        person("carl", "Carl Extern", "+49 89 1234-303", "external"),
        person("bad user", "Bad User", "+49 89 1234-404", "staff"),
    ));
    let mut hub = Hub::start(&[], &[]);
    hub.check_api().await;

    // A user imported from CSV: the sync never removes it.
    let (s, _, body) = hub
        .send(
            "POST",
            "/api/v1/users/import",
            &[("authorization", &format!("Bearer {TOKEN}"))],
            Some("text/csv"),
            b"username,display_name,extension\ndora,Dora Hand,999\n".to_vec(),
        )
        .await;
    assert_eq!(s, 200, "{}", String::from_utf8_lossy(&body));

    // Bad settings are refused, naming the field.
    for (patch, field) in [
        (json!({"filter": "(&(uid=a)"}), "filter"),
        (json!({"page_size": 0}), "page_size"),
        (json!({"interval_seconds": 1}), "interval_seconds"),
        (
            json!({"mapping": {"fields": {"cn": "display_name"}}}),
            "mapping.fields.username",
        ),
    ] {
        let mut body = settings(&ldap.url(), ROOT_PW, "delete", 0);
        for (k, v) in patch.as_object().unwrap() {
            body[k] = v.clone();
        }
        let (s, e) = hub.call("PUT", "/api/v1/directory/ldap", Some(body)).await;
        assert_eq!((s, e["field"].as_str()), (422, Some(field)), "{e}");
    }
    let (s, v) = hub
        .call(
            "PUT",
            "/api/v1/directory/ldap",
            Some(settings(&ldap.url(), ROOT_PW, "delete", 0)),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let got = hub.get("/api/v1/directory/ldap").await;
    assert_eq!(got["bind_password_set"], true);
    assert!(!got.to_string().contains(ROOT_PW), "{got}");

    // Dry run: the plan, and nothing changes.
    let (s, plan) = hub
        .call("POST", "/api/v1/directory/ldap/sync?dry_run=true", None)
        .await;
    assert_eq!(s, 200, "{plan}");
    assert_eq!(
        (plan["dry_run"].as_bool(), plan["applied"].as_bool()),
        (Some(true), Some(false))
    );
    assert_eq!(plan["entries"], 3, "the filter leaves carl out: {plan}");
    assert_eq!(
        (plan["created"].as_u64(), plan["rejected"].as_u64()),
        (Some(2), Some(1)),
        "{plan}"
    );
    assert_eq!(action(&plan, "ann"), "created");
    assert_eq!(action(&plan, "bob"), "created", "uid Bob, lower-cased");
    let bad = plan["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["action"] == "rejected")
        .unwrap();
    assert_eq!(
        bad["dn"],
        format!("uid=bad user,ou=people,{SUFFIX}"),
        "{bad}"
    );
    assert_eq!(bad["field"], "username");
    assert_eq!(hub.call("GET", "/api/v1/users/ann", None).await.0, 404);

    // The sync creates them, mapped and marked.
    let (s, r) = hub.call("POST", "/api/v1/directory/ldap/sync", None).await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(
        (r["applied"].as_bool(), r["created"].as_u64()),
        (Some(true), Some(2)),
        "{r}"
    );
    let ann = hub.get("/api/v1/users/ann").await;
    assert_eq!(ann["display_name"], "Ann Meyer");
    assert_eq!(ann["email"], "ann@example.com");
    assert_eq!(ann["extension"], "101", "digits after the prefix");
    assert_eq!(ann["department"], "Sales");
    assert_eq!(ann["attributes"]["directory"], "ldap");
    assert_eq!(hub.call("GET", "/api/v1/users/carl", None).await.0, 404);

    // A changed phone number updates one user.
    ldap.modify(&format!(
        "dn: uid=Bob,ou=people,{SUFFIX}\nchangetype: modify\nreplace: telephoneNumber\ntelephoneNumber: +49 89 1234-250\n"
    ));
    let (s, r) = hub.call("POST", "/api/v1/directory/ldap/sync", None).await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(
        (r["updated"].as_u64(), r["unchanged"].as_u64()),
        (Some(1), Some(1)),
        "{r}"
    );
    assert_eq!(action(&r, "bob"), "updated");
    assert_eq!(hub.get("/api/v1/users/bob").await["extension"], "250");

    // Ann leaves the directory. With remove=report she is only listed...
    ldap.delete(&format!("uid=ann,ou=people,{SUFFIX}"));
    let mut body = settings(&ldap.url(), ROOT_PW, "report", 0);
    body.as_object_mut().unwrap().remove("bind_password");
    assert_eq!(
        hub.call("PUT", "/api/v1/directory/ldap", Some(body))
            .await
            .0,
        200
    );
    let (s, r) = hub.call("POST", "/api/v1/directory/ldap/sync", None).await;
    assert_eq!(
        (s, action(&r, "ann"), r["missing"].as_u64()),
        (200, "missing", Some(1)),
        "{r}"
    );
    assert_eq!(hub.call("GET", "/api/v1/users/ann", None).await.0, 200);
    // ...with remove=delete she is deleted; dora (from CSV) stays.
    let mut body = settings(&ldap.url(), ROOT_PW, "delete", 0);
    body.as_object_mut().unwrap().remove("bind_password");
    assert_eq!(
        hub.call("PUT", "/api/v1/directory/ldap", Some(body))
            .await
            .0,
        200
    );
    let (s, r) = hub.call("POST", "/api/v1/directory/ldap/sync", None).await;
    assert_eq!(
        (s, action(&r, "ann"), r["deleted"].as_u64()),
        (200, "deleted", Some(1)),
        "{r}"
    );
    assert_eq!(action(&r, "dora"), "absent", "{r}");
    assert_eq!(hub.call("GET", "/api/v1/users/ann", None).await.0, 404);
    assert_eq!(hub.get("/api/v1/users/dora").await["extension"], "999");

    // A wrong password: the error names the bind DN, never the password.
    let wrong = "not-the-password-42";
    let (s, _) = hub
        .call(
            "PUT",
            "/api/v1/directory/ldap",
            Some(settings(&ldap.url(), wrong, "delete", 0)),
        )
        .await;
    assert_eq!(s, 200);
    let (s, e) = hub.call("POST", "/api/v1/directory/ldap/sync", None).await;
    assert_eq!((s, e["field"].as_str()), (502, Some("bind_dn")), "{e}");
    let text = e["error"].as_str().unwrap();
    assert!(text.contains(ROOT_DN) && !text.contains(wrong), "{text}");
    assert!(!hub.log().contains(wrong), "the password is in the log");

    // The schedule: a new person arrives by itself.
    ldap.add(&person("eve", "Eve Late", "+49 89 1234-505", "staff"));
    let (s, _) = hub
        .call(
            "PUT",
            "/api/v1/directory/ldap",
            Some(settings(&ldap.url(), ROOT_PW, "delete", 5)),
        )
        .await;
    assert_eq!(s, 200);
    let st = hub.get("/api/v1/directory/ldap/status").await;
    assert!(st["next_at_ms"].as_u64().is_some(), "{st}");
    hub.wait_for("/api/v1/users/eve", "the scheduled sync", |v| {
        v["extension"] == "505"
    })
    .await;
    let st = hub.get("/api/v1/directory/ldap/status").await;
    assert_eq!(st["last"]["trigger"], "scheduled", "{st}");
    assert_eq!(st["last"]["ok"], true, "{st}");
    hub.wait_for(
        "/api/v1/events?limit=100",
        "the sync in the event log",
        |v| v.to_string().contains("ldap sync (scheduled)"),
    )
    .await;
}

/// TLS to the directory: slapd with a certificate from a private CA the
/// test makes. Without the CA the certificate is refused (502, the
/// directory named); with `ca_pem` the sync works over `ldaps://` and over
/// `ldap://` upgraded by StartTLS (slapd's log shows the StartTLS extended
/// operation and TLS on each connection).
#[tokio::test]
async fn ldaps_and_starttls_with_a_private_ca() {
    assert!(
        slapd::available(),
        "slapd and ldap-utils are needed (Debian packages slapd ldap-utils; .ci/install-test-deps.sh)"
    );
    let ldap = Slapd::start_tls();
    let ca = ldap.ca_pem.clone().unwrap();
    ldap.add(&person("tess", "Tess Tls", "+49 89 1234-606", "staff"));
    let mut hub = Hub::start(&[], &[]);
    hub.check_api().await;
    let with = |url: String, starttls: bool, ca: Option<&str>| {
        let mut body = settings(&url, ROOT_PW, "delete", 0);
        body["starttls"] = json!(starttls);
        if let Some(ca) = ca {
            body["ca_pem"] = json!(ca);
        }
        body
    };

    // A CA that is no PEM certificate is refused, naming the field.
    let (s, e) = hub
        .call(
            "PUT",
            "/api/v1/directory/ldap",
            Some(with(ldap.ldaps_url(), false, Some("not a certificate"))),
        )
        .await;
    assert_eq!((s, e["field"].as_str()), (422, Some("ca_pem")), "{e}");
    // StartTLS on ldaps:// makes no sense.
    let (s, e) = hub
        .call(
            "PUT",
            "/api/v1/directory/ldap",
            Some(with(ldap.ldaps_url(), true, Some(&ca))),
        )
        .await;
    assert_eq!((s, e["field"].as_str()), (422, Some("starttls")), "{e}");

    // Without the private CA, the certificate is not trusted.
    for (url, starttls) in [(ldap.ldaps_url(), false), (ldap.url(), true)] {
        let (s, _) = hub
            .call(
                "PUT",
                "/api/v1/directory/ldap",
                Some(with(url.clone(), starttls, None)),
            )
            .await;
        assert_eq!(s, 200);
        let (s, e) = hub
            .call("POST", "/api/v1/directory/ldap/sync?dry_run=true", None)
            .await;
        assert_eq!(s, 502, "{url} starttls={starttls}: {e}");
        assert!(
            e["error"]
                .as_str()
                .unwrap_or_default()
                .contains("certificate"),
            "{e}"
        );
    }

    // ldaps:// with the CA.
    let (s, v) = hub
        .call(
            "PUT",
            "/api/v1/directory/ldap",
            Some(with(ldap.ldaps_url(), false, Some(&ca))),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(hub.get("/api/v1/directory/ldap").await["ca_pem"], ca);
    let (s, plan) = hub
        .call("POST", "/api/v1/directory/ldap/sync?dry_run=true", None)
        .await;
    assert_eq!(s, 200, "{plan}");
    assert_eq!(action(&plan, "tess"), "created", "{plan}");
    let tls_port = ldap.tls_port.unwrap();
    assert!(
        ldap.log().contains(&format!("(IP=127.0.0.1:{tls_port})")),
        "slapd saw no connection on its ldaps:// port:\n{}",
        ldap.log()
    );

    // ldap:// upgraded by StartTLS, with the CA: the sync itself.
    let starttls_before = ldap.log().matches("oid=1.3.6.1.4.1.1466.20037").count();
    let (s, v) = hub
        .call(
            "PUT",
            "/api/v1/directory/ldap",
            Some(with(ldap.url(), true, Some(&ca))),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let (s, r) = hub.call("POST", "/api/v1/directory/ldap/sync", None).await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(action(&r, "tess"), "created", "{r}");
    assert_eq!(hub.get("/api/v1/users/tess").await["extension"], "606");
    let log = ldap.log();
    assert!(
        log.matches("oid=1.3.6.1.4.1.1466.20037").count() > starttls_before,
        "no StartTLS extended operation in slapd's log:\n{log}"
    );
    assert!(log.contains("TLS established"), "{log}");
}
