//! The Microsoft 365 calendar connector (`plugins/m365-calendar`) against the
//! Graph simulator's calendar side, through the real hub binary and its API.

use std::time::{Duration, Instant};

use hub_e2e::Hub;
use hub_e2e::graph_sim::calendar::{CalItem, Replies, now};
use hub_e2e::graph_sim::{GraphSim, SimConfig};
use serde_json::{Value, json};

const ID: &str = "calendar";
const HOUR: u64 = 3_600_000;
const ZONE: &str = "W. Europe Standard Time";

/// An hour from now, on a whole minute (Graph writes times to the second).
fn soon() -> u64 {
    (now() / 60_000 + 60) * 60_000
}

fn status_path(id: &str) -> String {
    format!("/api/v1/connectors/{id}/status")
}

fn endpoints_path(id: &str) -> String {
    format!("/api/v1/connectors/{id}/endpoints")
}

fn calendar(v: &Value, ep: &str) -> Value {
    v["endpoints"][ep]["calendar"].clone()
}

fn items(v: &Value, ep: &str) -> Vec<Value> {
    calendar(v, ep)["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn hub() -> Hub {
    Hub::start(&["plugins/m365-calendar"], &[])
}

/// Configuration for the simulator, with `extra` fields on top.
fn config(sim: &GraphSim, extra: Value) -> Value {
    let c = sim.config();
    let mut v = json!({
        "tenant_id": c.tenant,
        "client_id": c.client_id,
        "client_secret": c.client_secret,
        "authority": sim.authority(),
        "graph_base": sim.graph_base(),
        "time_zone": "Europe/Berlin",
        "refresh_seconds": 2,
    });
    for (k, x) in extra.as_object().unwrap() {
        v[k] = x.clone();
    }
    v
}

async fn create(hub: &Hub, id: &str, config: Value, watches: &[String]) {
    let (s, v) = hub
        .call(
            "POST",
            "/api/v1/connectors",
            Some(
                json!({"id": id, "plugin": "m365-calendar", "config": config, "watches": watches}),
            ),
        )
        .await;
    assert_eq!(s, 201, "{v}");
}

async fn wait_status(hub: &Hub, id: &str, want: &str) -> Value {
    hub.wait_for(&status_path(id), want, |v| v["status"]["status"] == want)
        .await
}

fn token_requests(sim: &GraphSim) -> usize {
    sim.requests()
        .iter()
        .filter(|l| l.path.ends_with("/oauth2/v2.0/token"))
        .count()
}

/// Three colleagues' days with subjects (calendarView, paged two events at
/// a time): show-as mapped, times kept, the private item masked although
/// Graph shows its subject to the application, a cancelled one and one
/// outside today and the next working day left out, an unknown mailbox not
/// found. A second instance without subjects reads 22 mailboxes by
/// getSchedule in batches of 20 and 2, in the configured zone, and shows no
/// subject at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn todays_items_for_several_users_mapped_and_private_masked() {
    let sim = GraphSim::start(SimConfig::default()).await;
    sim.set_page_cap(2);
    let t = soon();
    let alice = "alice@contoso.onmicrosoft.com".to_string();
    let bob = "bob@contoso.onmicrosoft.com".to_string();
    let carol = "carol@contoso.onmicrosoft.com".to_string();
    for u in [&alice, &bob, &carol] {
        sim.add_user(u);
    }
    sim.set_events(
        &alice,
        vec![
            CalItem::new(t, t + HOUR, "busy", "Budget review").at("Room 4"),
            CalItem::new(t + 2 * HOUR, t + 3 * HOUR, "tentative", "Design sync"),
            CalItem::new(t + 4 * HOUR, t + 5 * HOUR, "busy", "Doctor")
                .at("Clinic")
                .private(),
            CalItem {
                cancelled: true,
                ..CalItem::new(t + 6 * HOUR, t + 7 * HOUR, "busy", "Cancelled")
            },
            CalItem::new(t + 240 * HOUR, t + 241 * HOUR, "busy", "Far away"),
        ],
    );
    sim.set_events(
        &bob,
        vec![
            CalItem::new(t, t + 2 * HOUR, "oof", "Holiday"),
            CalItem::new(t + 3 * HOUR, t + 4 * HOUR, "workingElsewhere", "Site visit"),
        ],
    );
    sim.set_events(&carol, vec![CalItem::new(t, t + HOUR, "free", "Gym")]);
    let ghost = "ghost@contoso.onmicrosoft.com".to_string();
    let hub = hub();
    create(
        &hub,
        ID,
        config(&sim, json!({"subjects": true})),
        &[alice.clone(), bob.clone(), carol.clone(), ghost.clone()],
    )
    .await;
    let v = hub
        .wait_for(&endpoints_path(ID), "three calendars", |v| {
            [&alice, &bob, &carol]
                .iter()
                .all(|u| v["endpoints"][u.as_str()]["state"] == "active")
                && v["endpoints"][&ghost]["state"] == "not-found"
        })
        .await;
    let a = items(&v, &alice);
    assert_eq!(a.len(), 3, "{v:#}");
    assert_eq!(a[0]["show_as"], "busy");
    assert_eq!(a[0]["subject"], "Budget review");
    assert_eq!(a[0]["location"], "Room 4");
    assert_eq!(a[0]["start_ms"], t);
    assert_eq!(a[0]["end_ms"], t + HOUR);
    assert_eq!(a[1]["show_as"], "tentative");
    assert_eq!(a[2]["private"], true);
    assert!(
        a[2]["subject"].is_null() && a[2]["location"].is_null(),
        "{v:#}"
    );
    let b = items(&v, &bob);
    assert_eq!(b[0]["show_as"], "out-of-office");
    assert_eq!(b[1]["show_as"], "working-elsewhere");
    assert_eq!(items(&v, &carol)[0]["show_as"], "free");
    assert!(
        v["endpoints"][&alice]["valid_until_ms"].as_u64().unwrap() > now(),
        "a polled state holds until shortly after the next read: {v:#}"
    );
    // Alice's four events in the window came in two pages of two.
    let views = sim
        .calendar_requests()
        .iter()
        .filter(|l| l.kind == "calendarView" && l.mailbox == alice)
        .count();
    assert!(views >= 2, "paged by nextLink");
    let st = wait_status(&hub, ID, "up-and-running").await;
    assert!(
        st["status"]["status_detail"]
            .as_str()
            .unwrap()
            .contains("1 not found"),
        "{st}"
    );

    // Free/busy only: getSchedule for 22 mailboxes in batches of 20 and 2.
    let mut many = vec![alice.clone(), bob.clone(), carol.clone()];
    for i in 0..19 {
        let u = format!("user{i:02}@contoso.onmicrosoft.com");
        sim.add_user(&u);
        many.push(u);
    }
    let mark = sim.calendar_requests().len();
    create(&hub, "freebusy", config(&sim, json!({})), &many).await;
    let v = hub
        .wait_for(&endpoints_path("freebusy"), "22 calendars", |v| {
            many.iter()
                .all(|u| v["endpoints"][u.as_str()]["state"] == "active")
        })
        .await;
    let a = items(&v, &alice);
    assert_eq!(a.len(), 3, "{v:#}");
    assert!(
        a.iter()
            .all(|i| i["subject"].is_null() && i["location"].is_null()),
        "no subjects unless asked for: {v:#}"
    );
    assert_eq!(a[2]["private"], true);
    assert_eq!(items(&v, &bob)[0]["show_as"], "out-of-office");
    let log = sim.calendar_requests();
    let mut sizes: Vec<usize> = log[mark..]
        .iter()
        .filter(|l| l.kind == "getSchedule")
        .map(|l| l.schedules)
        .take(2)
        .collect();
    sizes.sort();
    assert_eq!(sizes, [2, 20]);
    assert!(
        log[mark..]
            .iter()
            .filter(|l| l.kind == "getSchedule")
            .all(|l| l.prefer_zone.as_deref() == Some(ZONE) && l.status == 200),
        "{log:?}"
    );
}

/// Out of office with its message (HTML made plain), a scheduled window,
/// and changes seen within one refresh: a new meeting, replies switched
/// off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_office_with_its_message_and_changes_within_one_refresh() {
    let sim = GraphSim::start(SimConfig::default()).await;
    let alice = "alice@contoso.onmicrosoft.com".to_string();
    let bob = "bob@contoso.onmicrosoft.com".to_string();
    sim.add_user(&alice);
    sim.add_user(&bob);
    sim.set_automatic_replies(
        &alice,
        Replies {
            status: "alwaysEnabled".into(),
            internal:
                "<html><body><p>On leave until Monday.</p><p>Ask Bob &amp; Carol.</p></body></html>"
                    .into(),
            external: "<p>Out of office</p>".into(),
            ..Replies::default()
        },
    );
    let t0 = now();
    sim.set_automatic_replies(
        &bob,
        Replies {
            status: "scheduled".into(),
            internal: String::new(),
            external: "Travelling".into(),
            start_ms: Some(t0 - HOUR),
            end_ms: Some(t0 + 48 * HOUR),
        },
    );
    let hub = hub();
    create(
        &hub,
        ID,
        config(&sim, json!({"refresh_seconds": 2})),
        &[alice.clone(), bob.clone()],
    )
    .await;
    let v = hub
        .wait_for(&endpoints_path(ID), "out of office", |v| {
            !calendar(v, &alice)["out_of_office"].is_null()
                && !calendar(v, &bob)["out_of_office"].is_null()
        })
        .await;
    let a = &calendar(&v, &alice)["out_of_office"];
    assert_eq!(a["message"], "On leave until Monday.\nAsk Bob & Carol.");
    assert!(a["start_ms"].is_null());
    let b = &calendar(&v, &bob)["out_of_office"];
    assert_eq!(
        b["message"], "Travelling",
        "the external text when no internal one"
    );
    assert_eq!(b["start_ms"].as_u64().unwrap() / 1000, (t0 - HOUR) / 1000);
    assert_eq!(
        b["end_ms"].as_u64().unwrap() / 1000,
        (t0 + 48 * HOUR) / 1000
    );
    assert!(items(&v, &alice).is_empty());

    // A meeting is booked and the replies go off: both seen within one
    // refresh (2 s) plus a read.
    let t = soon();
    let changed = Instant::now();
    sim.add_event(&alice, CalItem::new(t, t + HOUR, "busy", "Interview"));
    sim.set_automatic_replies(&alice, Replies::default());
    hub.wait_for(&endpoints_path(ID), "the change", |v| {
        items(v, &alice).len() == 1 && calendar(v, &alice)["out_of_office"].is_null()
    })
    .await;
    let took = changed.elapsed();
    assert!(took < Duration::from_secs(4), "seen after {took:?}");
    eprintln!("calendar change seen after {took:?} (refresh 2 s)");
}

/// 429 with Retry-After and 503: nothing is sent to Graph before the wait
/// is over, the status says throttled, and the calendars flow again; a
/// per-mailbox limit is met with the same patience.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_handled_with_back_off() {
    let sim = GraphSim::start(SimConfig::default()).await;
    let alice = "alice@contoso.onmicrosoft.com".to_string();
    sim.add_user(&alice);
    let hub = hub();
    create(
        &hub,
        ID,
        config(&sim, json!({"refresh_seconds": 1})),
        std::slice::from_ref(&alice),
    )
    .await;
    hub.wait_for(&endpoints_path(ID), "alice active", |v| {
        v["endpoints"][&alice]["state"] == "active"
    })
    .await;
    wait_status(&hub, ID, "up-and-running").await;
    for (status, wait) in [(429u16, 3u64), (503, 2)] {
        let mark = sim.requests().len();
        sim.throttle_next_matching("/users/", 2, status, Some(wait));
        let st = wait_status(&hub, ID, "throttled").await;
        let detail = st["status"]["status_detail"].as_str().unwrap();
        assert!(detail.contains(&status.to_string()), "{detail}");
        wait_status(&hub, ID, "up-and-running").await;
        let log: Vec<_> = sim.requests()[mark..]
            .iter()
            .filter(|l| l.is_graph())
            .cloned()
            .collect();
        let throttled: Vec<_> = log.iter().filter(|l| l.throttled).collect();
        assert_eq!(throttled.len(), 2, "{log:?}");
        for ok in log.iter().filter(|l| !l.throttled) {
            for t in throttled.iter().filter(|t| t.at < ok.at) {
                let gap = ok.at.duration_since(t.at);
                assert!(
                    gap >= Duration::from_secs(wait),
                    "sent {gap:?} after a throttled answer: {log:?}"
                );
            }
        }
        eprintln!(
            "HTTP {status}, Retry-After {wait} s: {} Graph requests in the episode, 2 throttled",
            log.len()
        );
    }
    // Exchange's own per-mailbox limit: two reads per 3 s for alice (items
    // and replies make one round each second). Every refusal is waited out
    // (its Retry-After is at least 1 s) and answered by one request alone,
    // so refusals never outnumber the reads that pass.
    sim.limit_mailbox_requests(2, Duration::from_secs(3));
    let mark = sim.calendar_requests().len();
    tokio::time::sleep(Duration::from_secs(8)).await;
    let log = sim.calendar_requests()[mark..].to_vec();
    let refused: Vec<_> = log.iter().filter(|l| l.status == 429).collect();
    let passed = log.len() - refused.len();
    for r in &refused {
        let next = log.iter().find(|l| l.at > r.at + Duration::from_millis(50));
        if let Some(n) = next {
            assert!(
                n.at.duration_since(r.at) >= Duration::from_millis(900),
                "sent {:?} after a 429: {log:?}",
                n.at.duration_since(r.at)
            );
        }
    }
    assert!(refused.len() <= passed + 2, "{log:?}");
    eprintln!(
        "per-mailbox limit: {} calendar requests in 8 s, {} refused",
        log.len(),
        refused.len()
    );
    sim.limit_mailbox_requests(1000, Duration::from_secs(1));
    let t = soon();
    sim.add_event(&alice, CalItem::new(t, t + HOUR, "busy", "x"));
    hub.wait_for(&endpoints_path(ID), "alice's meeting", |v| {
        items(v, &alice).len() == 1
    })
    .await;
}

/// A wrong client secret: `forbidden` (the seeds' "Access denied, check the
/// credentials entered") naming the identity platform's answer, one token
/// request over several refresh intervals instead of one per refresh (the
/// account lock-out the guide warns of), no Graph call, no secret in the
/// log. A missing permission is named; the day still shows without the
/// replies' permission.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_credentials_without_hammering_and_missing_permissions_named() {
    let sim = GraphSim::start(SimConfig::default()).await;
    let alice = "alice@contoso.onmicrosoft.com".to_string();
    sim.add_user(&alice);
    let t = soon();
    sim.add_event(&alice, CalItem::new(t, t + HOUR, "busy", "Standup"));
    let hub = hub();
    create(
        &hub,
        "wrong",
        config(
            &sim,
            json!({"client_secret": "not-the-secret-42", "refresh_seconds": 1}),
        ),
        std::slice::from_ref(&alice),
    )
    .await;
    let st = wait_status(&hub, "wrong", "forbidden").await;
    let detail = st["status"]["status_detail"].as_str().unwrap();
    assert!(
        detail.contains("invalid_client") && detail.contains("AADSTS7000215"),
        "{detail}"
    );
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        token_requests(&sim),
        1,
        "one sign-in attempt in 5 refreshes"
    );
    assert!(
        !sim.requests().iter().any(|l| l.is_graph()),
        "no Graph call without a token"
    );
    let (s, _) = hub.call("DELETE", "/api/v1/connectors/wrong", None).await;
    assert!(s == 204 || s == 200, "{s}");

    create(
        &hub,
        ID,
        config(&sim, json!({})),
        std::slice::from_ref(&alice),
    )
    .await;
    hub.wait_for(&endpoints_path(ID), "alice active", |v| {
        items(v, &alice).len() == 1
    })
    .await;
    sim.set_calendar_permission("MailboxSettings.Read", false);
    let st = wait_status(&hub, ID, "forbidden").await;
    let detail = st["status"]["status_detail"].as_str().unwrap();
    assert!(detail.contains("MailboxSettings.Read"), "{detail}");
    let v = hub.get(&endpoints_path(ID)).await;
    assert_eq!(v["endpoints"][&alice]["state"], "active", "{v:#}");
    assert_eq!(items(&v, &alice).len(), 1);
    sim.set_calendar_permission("MailboxSettings.Read", true);
    sim.set_calendar_permission("Calendars.Read", false);
    let st = hub
        .wait_for(&status_path(ID), "Calendars.Read named", |v| {
            v["status"]["status"] == "forbidden"
                && v["status"]["status_detail"]
                    .as_str()
                    .is_some_and(|d| d.contains("Calendars.Read"))
        })
        .await;
    eprintln!("{}", st["status"]["status_detail"]);
    hub.wait_for(&endpoints_path(ID), "alice access denied", |v| {
        v["endpoints"][&alice]["state"] == "access-denied"
    })
    .await;
    sim.set_calendar_permission("Calendars.Read", true);
    wait_status(&hub, ID, "up-and-running").await;
    hub.wait_for(&endpoints_path(ID), "alice active again", |v| {
        v["endpoints"][&alice]["state"] == "active"
    })
    .await;
    let log = hub.log();
    assert!(
        !log.contains("not-the-secret-42"),
        "a secret reached the log"
    );
    assert!(
        !log.contains(&sim.config().client_secret),
        "a secret reached the log"
    );
}

/// The simulator refuses what Graph refuses on its calendar endpoints.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulator_refuses_what_graph_refuses() {
    let sim = GraphSim::start(SimConfig::default()).await;
    let alice = "alice@contoso.onmicrosoft.com";
    sim.add_user(alice);
    let c = sim.config();
    let http = reqwest::Client::new();
    let token: Value = http
        .post(format!("{}/{}/oauth2/v2.0/token", sim.base, c.tenant))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", c.client_id.as_str()),
            ("client_secret", c.client_secret.as_str()),
            ("scope", &format!("{}/.default", sim.base)),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let bearer = token["access_token"].as_str().unwrap().to_string();
    let g = |path: &str| format!("{}{path}", sim.graph_base());
    let schedule = |schedules: Vec<String>, zone: &str, start: &str| {
        json!({
            "schedules": schedules,
            "startTime": {"dateTime": start, "timeZone": zone},
            "endTime": {"dateTime": "2026-07-02T00:00:00", "timeZone": zone},
            "availabilityViewInterval": 15,
        })
    };
    let post = |body: Value| {
        http.post(g(&format!("/users/{alice}/calendar/getSchedule")))
            .bearer_auth(&bearer)
            .json(&body)
            .send()
    };
    let ok = post(schedule(vec![alice.into()], ZONE, "2026-07-01T00:00:00"))
        .await
        .unwrap();
    assert_eq!(ok.status().as_u16(), 200);
    let too_many: Vec<String> = (0..21).map(|i| format!("u{i}@contoso.com")).collect();
    for (body, why) in [
        (
            schedule(too_many, ZONE, "2026-07-01T00:00:00"),
            "21 schedules",
        ),
        (
            schedule(
                vec![alice.into()],
                "Mars Standard Time",
                "2026-07-01T00:00:00",
            ),
            "unknown zone",
        ),
        (
            schedule(vec![alice.into()], ZONE, "2026-07-01T00:00:00Z"),
            "an offset in a dateTimeTimeZone",
        ),
        (
            schedule(vec![alice.into()], ZONE, "2026-03-01T00:00:00"),
            "more than 62 days",
        ),
        (
            schedule(vec![alice.into()], ZONE, "2026-07-03T00:00:00"),
            "end before start",
        ),
        (json!({"schedules": [alice]}), "no window"),
    ] {
        let r = post(body).await.unwrap();
        assert_eq!(r.status().as_u16(), 400, "{why}");
    }
    let r = http
        .get(g(&format!("/users/{alice}/calendar/getSchedule")))
        .bearer_auth(&bearer)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 405);
    let r = http
        .post(g(&format!("/users/{alice}/calendar/getSchedule")))
        .bearer_auth(&bearer)
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 415, "no Content-Type");
    let view = |q: &str| {
        http.get(g(&format!("/users/{alice}/calendarView{q}")))
            .bearer_auth(&bearer)
            .send()
    };
    let w = "?startDateTime=2026-07-01T00:00:00Z&endDateTime=2026-07-02T00:00:00Z";
    assert_eq!(view(w).await.unwrap().status().as_u16(), 200);
    for (q, why) in [
        (String::new(), "no window"),
        (format!("{w}&$select=subject,colour"), "unknown property"),
        (format!("{w}&$top=0"), "$top 0"),
    ] {
        assert_eq!(view(&q).await.unwrap().status().as_u16(), 400, "{why}");
    }
    let r = http
        .get(g(&format!("/users/{alice}/calendarView{w}")))
        .bearer_auth(&bearer)
        .header("Prefer", "outlook.timezone=\"Atlantis Time\"")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400, "unknown Prefer zone");
    let r = http
        .get(g(
            "/users/nobody@contoso.com/mailboxSettings/automaticRepliesSetting",
        ))
        .bearer_auth(&bearer)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
    let r = http
        .get(g(&format!(
            "/users/{alice}/mailboxSettings/automaticRepliesSetting"
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401, "no token");
    sim.set_calendar_permission("MailboxSettings.Read", false);
    let r = http
        .get(g(&format!(
            "/users/{alice}/mailboxSettings/automaticRepliesSetting"
        )))
        .bearer_auth(&bearer)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "ErrorAccessDenied");
}

async fn wait_sim(what: &str, f: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// With a notification URL: one subscription on each mailbox's events
/// (validated through the hub's webhook route), a new meeting seen at once
/// although the refresh is 30 s, lifecycle events handled (a removed
/// subscription is created anew, reauthorization asked for is done), and
/// deleting the connector deletes its subscriptions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_by_notification_with_lifecycle() {
    let sim = GraphSim::start(SimConfig::default()).await;
    let alice = "alice@contoso.onmicrosoft.com".to_string();
    let bob = "bob@contoso.onmicrosoft.com".to_string();
    sim.add_user(&alice);
    sim.add_user(&bob);
    let hub = hub();
    let url = hub.url(&format!("/hooks/{ID}/notify"));
    create(
        &hub,
        ID,
        config(
            &sim,
            json!({"refresh_seconds": 30, "notification_url": url}),
        ),
        &[alice.clone(), bob.clone()],
    )
    .await;
    hub.wait_for(&endpoints_path(ID), "both active", |v| {
        [&alice, &bob]
            .iter()
            .all(|u| v["endpoints"][u.as_str()]["state"] == "active")
    })
    .await;
    wait_sim("two subscriptions", || sim.subscriptions().len() == 2).await;
    let subs = sim.subscriptions();
    assert!(subs.iter().all(|x| x.notification_url == url), "{subs:?}");
    hub.wait_for(&status_path(ID), "notified", |v| {
        v["status"]["status_detail"]
            .as_str()
            .is_some_and(|d| d.contains("2 by change notification"))
    })
    .await;

    let t = soon();
    let booked = Instant::now();
    sim.add_event(&alice, CalItem::new(t, t + HOUR, "busy", "Interview"));
    hub.wait_for(&endpoints_path(ID), "the new meeting", |v| {
        items(v, &alice).len() == 1
    })
    .await;
    let took = booked.elapsed();
    assert!(took < Duration::from_secs(5), "seen after {took:?}");
    eprintln!("meeting seen {took:?} after booking (refresh 30 s)");
    assert!(
        sim.deliveries().iter().all(|d| d.status == Some(202)),
        "{:?}",
        sim.deliveries()
    );

    assert_eq!(sim.lifecycle("reauthorizationRequired"), 2);
    wait_sim("reauthorized", || {
        sim.subscriptions()
            .iter()
            .all(|x| x.reauthorizations == 1 && !x.paused)
    })
    .await;
    let before: Vec<String> = sim.subscriptions().iter().map(|x| x.id.clone()).collect();
    assert_eq!(sim.lifecycle("subscriptionRemoved"), 2);
    wait_sim("created anew", || {
        let now = sim.subscriptions();
        now.len() == 2 && now.iter().all(|x| !before.contains(&x.id))
    })
    .await;
    sim.set_events(&bob, vec![CalItem::new(t, t + HOUR, "tentative", "Maybe")]);
    hub.wait_for(&endpoints_path(ID), "bob's item", |v| {
        items(v, &bob).len() == 1
    })
    .await;

    let (s, _) = hub
        .call("DELETE", &format!("/api/v1/connectors/{ID}"), None)
        .await;
    assert!(s == 204 || s == 200, "{s}");
    wait_sim("subscriptions deleted", || sim.subscriptions().is_empty()).await;
}

/// The attendant's view of one colleague (issue 16's merge): the merged
/// presence of `GET /api/v1/presence/{user}` and the feed carry the day
/// beside live presence — the meeting in progress and until when, free
/// from the end of the back-to-back run, the next item, an out-of-office
/// reply in force — with subjects only when the operator's rule shows
/// them, and never for a private item.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attendant_view_of_a_colleague_in_the_api_and_the_feed() {
    let sim = GraphSim::start(SimConfig::default()).await;
    let alice = "alice@contoso.onmicrosoft.com".to_string();
    sim.add_user(&alice);
    // On whole minutes: a meeting running now, a tentative one right after
    // it, a private one later.
    let m = now() / 60_000 * 60_000;
    let (start, end) = (m - 10 * 60_000, m + 30 * 60_000);
    sim.set_events(
        &alice,
        vec![
            CalItem::new(start, end, "busy", "Sales review").at("Room 4"),
            CalItem::new(end, end + 30 * 60_000, "tentative", "Coffee with Bob"),
            CalItem::new(end + 2 * HOUR, end + 3 * HOUR, "busy", "Doctor").private(),
        ],
    );
    sim.set_automatic_replies(
        &alice,
        Replies {
            status: "alwaysEnabled".into(),
            internal: "<p>At the customer site today, back tomorrow.</p>".into(),
            external: "Out of the office".into(),
            start_ms: None,
            end_ms: None,
        },
    );
    let hub = hub();
    let (s, v) = hub
        .call(
            "POST",
            "/api/v1/users",
            Some(json!({"username": "alice", "display_name": "Alice Adams", "email": alice})),
        )
        .await;
    assert!(s == 200 || s == 201, "{s} {v}");
    create(&hub, ID, config(&sim, json!({"subjects": true})), &[]).await;
    // Subjects hidden by default (rules.calendar.show_subjects off).
    let p = hub
        .wait_for("/api/v1/presence/alice", "alice's day", |v| {
            v["calendar"]["now"].is_object()
        })
        .await;
    let c = &p["calendar"];
    assert_eq!(c["source"], ID, "{c:#}");
    assert_eq!(c["now"]["show_as"], "busy", "{c:#}");
    assert_eq!(c["now"]["end_ms"], end, "{c:#}");
    assert!(c["now"]["subject"].is_null(), "hidden by default: {c:#}");
    assert_eq!(c["free_from_ms"], end + 30 * 60_000, "{c:#}");
    assert_eq!(c["next"]["start_ms"], end, "{c:#}");
    assert!(
        c["out_of_office"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("back tomorrow")),
        "{c:#}"
    );
    // Calendar never overrides live presence: with no presence source,
    // alice's rich channel is not configured (not busy, not unknown).
    assert_eq!(p["rich"]["state"], "not-configured", "{p:#}");

    // The operator shows subjects: the private item still has none.
    let mut rules = hub.get("/api/v1/settings/rules").await;
    rules["calendar"] = json!({"show_subjects": true});
    let (s, v) = hub
        .call("PUT", "/api/v1/settings/rules", Some(rules.clone()))
        .await;
    assert_eq!(s, 200, "{v}");
    let p = hub
        .wait_for("/api/v1/presence/alice", "subjects shown", |v| {
            v["calendar"]["now"]["subject"] == "Sales review"
        })
        .await;
    let items = p["calendar"]["items"].as_array().unwrap();
    let doctor = items.iter().find(|i| i["private"] == true).unwrap();
    assert!(
        doctor["subject"].is_null() && doctor["location"].is_null(),
        "{p:#}"
    );
    eprintln!(
        "attendant's view of alice: {}",
        serde_json::to_string_pretty(
            &json!({"rich": p["rich"], "telephony": p["telephony"], "calendar": p["calendar"]})
        )
        .unwrap()
    );
    // An unknown rule field is refused, naming it.
    rules["calendar"] = json!({"show_subject": true});
    let (s, v) = hub.call("PUT", "/api/v1/settings/rules", Some(rules)).await;
    assert!(s == 400 || s == 422, "{s} {v}");
    assert!(v.to_string().contains("show_subject"), "{v}");

    // The feed's snapshot carries the day.
    let mut resp = hub
        .http
        .get(hub.url("/api/v1/feed/sse?users=alice"))
        .bearer_auth(hub_e2e::TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let mut buf = String::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !buf.contains("\n\n") {
        assert!(Instant::now() < deadline, "no snapshot: {buf}");
        if let Ok(Ok(Some(c))) =
            tokio::time::timeout(Duration::from_millis(500), resp.chunk()).await
        {
            buf.push_str(&String::from_utf8_lossy(&c));
        }
    }
    assert!(
        buf.contains("\"free_from_ms\"") && buf.contains("Sales review"),
        "{buf}"
    );
}
