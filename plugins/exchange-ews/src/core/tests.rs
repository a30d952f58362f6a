//! The engine against scripted Exchange answers.

use super::*;
use crate::settings::tests::cfg;
use crate::xml::ns;
use presence_connector_sdk::plain::Core as _;

const NOW: u64 = 1_784_282_400_000; // Friday 2026-07-17 10:00 UTC

fn settings(extra: &[(&str, &str)]) -> Settings {
    let mut pairs = vec![
        ("ews_url", "https://mail.example.com/ews/exchange.asmx"),
        ("auth_mode", "basic"),
        ("username", "CONTOSO\\svc"),
        ("password", "pw"),
    ];
    pairs.extend_from_slice(extra);
    Settings::from_config(&cfg(&pairs)).unwrap()
}

fn core(extra: &[(&str, &str)]) -> Core {
    let mut c = Core::new(settings(extra), None, Box::new(|n| vec![7; n as usize]));
    c.start(NOW);
    c
}

fn http(actions: &[Action]) -> Vec<(ReqId, Request)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Http(id, r) => Some((*id, r.clone())),
            _ => None,
        })
        .collect()
}

fn ok(body: String) -> Result<Response, String> {
    Ok(Response {
        status: 200,
        headers: vec![("Content-Type".into(), "text/xml; charset=utf-8".into())],
        body: body.into_bytes(),
    })
}

fn envelope(inner: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s="{}"><s:Body>{inner}</s:Body></s:Envelope>"#,
        ns::SOAP
    )
}

/// One FreeBusyResponse per mailbox: `None` is ErrorMailRecipientNotFound.
fn availability(mailboxes: &[Option<&str>]) -> String {
    let mut b = format!(
        r#"<GetUserAvailabilityResponse xmlns="{}"><FreeBusyResponseArray>"#,
        ns::MESSAGES
    );
    for m in mailboxes {
        match m {
            Some(events) => b.push_str(&format!(
                r#"<FreeBusyResponse><ResponseMessage ResponseClass="Success"><ResponseCode>NoError</ResponseCode></ResponseMessage><FreeBusyView><FreeBusyViewType xmlns="{t}">Detailed</FreeBusyViewType><CalendarEventArray xmlns="{t}">{events}</CalendarEventArray></FreeBusyView></FreeBusyResponse>"#,
                t = ns::TYPES
            )),
            None => b.push_str(r#"<FreeBusyResponse><ResponseMessage ResponseClass="Error"><MessageText>No mailbox</MessageText><ResponseCode>ErrorMailRecipientNotFound</ResponseCode></ResponseMessage></FreeBusyResponse>"#),
        }
    }
    b.push_str("</FreeBusyResponseArray></GetUserAvailabilityResponse>");
    envelope(&b)
}

fn event(start: &str, end: &str, busy: &str, subject: &str, private: bool) -> String {
    format!(
        "<CalendarEvent><StartTime>{start}</StartTime><EndTime>{end}</EndTime><BusyType>{busy}</BusyType><CalendarEventDetails><ID>x</ID><Subject>{subject}</Subject><Location>Room 4</Location><IsMeeting>true</IsMeeting><IsRecurring>false</IsRecurring><IsException>false</IsException><IsReminderSet>false</IsReminderSet><IsPrivate>{private}</IsPrivate></CalendarEventDetails></CalendarEvent>"
    )
}

fn oof(state: &str, message: &str) -> String {
    envelope(&format!(
        r#"<GetUserOofSettingsResponse xmlns="{m}"><ResponseMessage ResponseClass="Success"><ResponseCode>NoError</ResponseCode></ResponseMessage><OofSettings xmlns="{t}"><OofState>{state}</OofState><ExternalAudience>None</ExternalAudience><Duration><StartTime>2026-07-01T00:00:00</StartTime><EndTime>2026-08-01T00:00:00</EndTime></Duration><InternalReply><Message>{message}</Message></InternalReply><ExternalReply><Message/></ExternalReply></OofSettings><AllowExternalOof>All</AllowExternalOof></GetUserOofSettingsResponse>"#,
        m = ns::MESSAGES,
        t = ns::TYPES
    ))
}

fn presences(actions: &[Action]) -> Vec<PresenceUpdate> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Presence(p) => Some(p.clone()),
            _ => None,
        })
        .collect()
}

fn status(actions: &[Action]) -> Option<(ConnectorStatus, String)> {
    actions.iter().rev().find_map(|a| match a {
        Action::Status(s, d) => Some((*s, d.clone().unwrap_or_default())),
        _ => None,
    })
}

fn timer(actions: &[Action], key: TimerKey) -> Option<u64> {
    actions.iter().rev().find_map(|a| match a {
        Action::SetTimer(k, ms) if *k == key => Some(*ms),
        _ => None,
    })
}

fn body(r: &Request) -> String {
    String::from_utf8(r.body.clone()).unwrap()
}

/// Watch, fire the refresh, return the first request.
fn first_request(c: &mut Core, eps: &[&str]) -> (ReqId, Request) {
    let eps: Vec<String> = eps.iter().map(|e| e.to_string()).collect();
    c.watch(&eps, NOW);
    let a = c.take_actions();
    assert_eq!(timer(&a, TimerKey::Refresh), Some(SETTLE_MS));
    c.on_timer(TimerKey::Refresh, NOW);
    let mut reqs = http(&c.take_actions());
    assert_eq!(reqs.len(), 1);
    reqs.remove(0)
}

#[test]
fn a_refresh_reads_calendars_then_out_of_office_and_reports_the_day() {
    let mut c = core(&[("time_zone", "Europe/Rome")]);
    let (id, r) = first_request(&mut c, &["alice@example.com", "bob@example.com"]);
    let auth = r.header("Authorization").unwrap();
    assert_eq!(auth, format!("Basic {}", B64.encode("CONTOSO\\svc:pw")));
    let b = body(&r);
    assert!(b.contains("<t:RequestServerVersion Version=\"Exchange2007_SP1\"/>"));
    assert!(b.contains("<t:Address>alice@example.com</t:Address>"));
    assert!(b.contains("<t:Address>bob@example.com</t:Address>"));
    // Friday in Rome: from Friday 00:00 (22:00 UTC the day before) to the
    // end of Monday.
    assert!(b.contains("<t:StartTime>2026-07-16T22:00:00</t:StartTime>"));
    assert!(b.contains("<t:EndTime>2026-07-20T22:00:00</t:EndTime>"));

    let alice = [
        event(
            "2026-07-17T08:00:00",
            "2026-07-17T09:00:00",
            "Busy",
            "Budget review",
            false,
        ),
        event(
            "2026-07-17T12:00:00",
            "2026-07-17T13:00:00",
            "Tentative",
            "Doctor",
            true,
        ),
        // Saturday: neither today nor the next working day.
        event(
            "2026-07-18T08:00:00",
            "2026-07-18T09:00:00",
            "Busy",
            "Weekend",
            false,
        ),
        event(
            "2026-07-20T07:00:00",
            "2026-07-20T15:00:00",
            "WorkingElsewhere",
            "Milan office",
            false,
        ),
    ]
    .concat();
    c.on_http(id, ok(availability(&[Some(&alice), Some("")])), NOW);
    let reqs = http(&c.take_actions());
    assert_eq!(reqs.len(), 1);
    assert!(body(&reqs[0].1).contains("<m:GetUserOofSettingsRequest><t:Mailbox><t:Address>alice@example.com</t:Address></t:Mailbox></m:GetUserOofSettingsRequest>"));
    c.on_http(reqs[0].0, ok(oof("Disabled", "")), NOW);
    let reqs = http(&c.take_actions());
    assert!(body(&reqs[0].1).contains("bob@example.com"));
    c.on_http(
        reqs[0].0,
        ok(oof("Enabled", "&lt;p&gt;On holiday, back Monday&lt;/p&gt;")),
        NOW + 500,
    );
    let a = c.take_actions();
    let p = presences(&a);
    assert_eq!(p.len(), 2);
    let cal = p[0].calendar.as_ref().unwrap();
    assert_eq!(p[0].endpoint, "alice@example.com");
    assert_eq!(cal.items.len(), 3);
    assert_eq!(cal.items[0].show_as, ShowAs::Busy);
    assert_eq!(cal.items[0].subject.as_deref(), Some("Budget review"));
    assert_eq!(cal.items[0].location.as_deref(), Some("Room 4"));
    assert_eq!(cal.items[1].show_as, ShowAs::Tentative);
    assert!(cal.items[1].private);
    assert_eq!(cal.items[1].subject, None);
    assert_eq!(cal.items[1].location, None);
    assert_eq!(cal.items[2].show_as, ShowAs::WorkingElsewhere);
    assert!(cal.out_of_office.is_none());
    assert_eq!(p[0].valid_for_ms, Some(90_000));
    let bob = p[1].calendar.as_ref().unwrap();
    assert!(bob.items.is_empty());
    let o = bob.out_of_office.as_ref().unwrap();
    assert_eq!(o.message.as_deref(), Some("On holiday, back Monday"));
    assert_eq!((o.start, o.end), (None, None));
    assert_eq!(status(&a).unwrap().0, ConnectorStatus::UpAndRunning);
    // The next refresh one interval after this one began.
    assert_eq!(timer(&a, TimerKey::Refresh), Some(60_000 - 500));
    assert!(a.contains(&Action::EndpointState(
        "alice@example.com".into(),
        EndpointState::Active,
        None
    )));

    // The next refresh reads the calendars only: the replies are fresh
    // (oof_refresh_seconds 300), and the one in force is still reported.
    c.on_timer(TimerKey::Refresh, NOW + 60_000);
    let reqs = http(&c.take_actions());
    c.on_http(
        reqs[0].0,
        ok(availability(&[Some(""), Some("")])),
        NOW + 60_000,
    );
    let a = c.take_actions();
    assert!(http(&a).is_empty());
    let p = presences(&a);
    assert!(p[1].calendar.as_ref().unwrap().out_of_office.is_some());
    // Five minutes on, the replies are read again.
    c.on_timer(TimerKey::Refresh, NOW + 300_000);
    let reqs = http(&c.take_actions());
    c.on_http(
        reqs[0].0,
        ok(availability(&[Some(""), Some("")])),
        NOW + 300_000,
    );
    let reqs = http(&c.take_actions());
    assert!(body(&reqs[0].1).contains("GetUserOofSettingsRequest"));
}

#[test]
fn mailboxes_go_in_batches_of_at_most_the_batch_size() {
    let mut c = core(&[("read_out_of_office", "false"), ("batch_size", "2")]);
    let (id, r) = first_request(&mut c, &["a@x", "b@x", "c@x"]);
    assert_eq!(body(&r).matches("<t:MailboxData>").count(), 2);
    c.on_http(id, ok(availability(&[Some(""), None])), NOW);
    let reqs = http(&c.take_actions());
    assert_eq!(body(&reqs[0].1).matches("<t:MailboxData>").count(), 1);
    c.on_http(reqs[0].0, ok(availability(&[Some("")])), NOW);
    let a = c.take_actions();
    assert_eq!(presences(&a).len(), 2);
    assert!(a.contains(&Action::EndpointState(
        "b@x".into(),
        EndpointState::NotFound,
        Some("ErrorMailRecipientNotFound: No mailbox".into())
    )));
}

#[test]
fn server_busy_and_503_are_honoured_then_the_same_request_goes_again() {
    let mut c = core(&[]);
    let (id, r) = first_request(&mut c, &["a@x"]);
    let fault = format!(
        r#"<s:Envelope xmlns:s="{s}"><s:Body><s:Fault><faultcode xmlns:a="{t}">a:ErrorServerBusy</faultcode><faultstring>The server cannot service this request right now. Try again later.</faultstring><detail><e:ResponseCode xmlns:e="{e}">ErrorServerBusy</e:ResponseCode><e:Message xmlns:e="{e}">busy</e:Message><t:MessageXml xmlns:t="{t}"><t:Value Name="BackOffMilliseconds">4200</t:Value></t:MessageXml></detail></s:Fault></s:Body></s:Envelope>"#,
        s = ns::SOAP,
        t = ns::TYPES,
        e = ns::ERRORS
    );
    c.on_http(
        id,
        Ok(Response {
            status: 500,
            headers: vec![],
            body: fault.into_bytes(),
        }),
        NOW,
    );
    let a = c.take_actions();
    assert!(http(&a).is_empty());
    assert_eq!(timer(&a, TimerKey::Resume), Some(4200));
    assert_eq!(status(&a).unwrap().0, ConnectorStatus::Throttled);
    c.on_timer(TimerKey::Resume, NOW + 4200);
    let reqs = http(&c.take_actions());
    assert_eq!(reqs[0].1.body, r.body);
    c.on_http(
        reqs[0].0,
        Ok(Response {
            status: 503,
            headers: vec![("Retry-After".into(), "7".into())],
            body: vec![],
        }),
        NOW,
    );
    let a = c.take_actions();
    assert_eq!(timer(&a, TimerKey::Resume), Some(7000));
    assert!(http(&a).is_empty());
}

#[test]
fn refused_credentials_are_tried_once_more_then_never_until_the_configuration_changes() {
    let mut c = core(&[("auth_retry_seconds", "600")]);
    let (id, _) = first_request(&mut c, &["a@x"]);
    let refused = || {
        Ok(Response {
            status: 401,
            headers: vec![(
                "WWW-Authenticate".into(),
                "Basic realm=\"mail.example.com\"".into(),
            )],
            body: vec![],
        })
    };
    c.on_http(id, refused(), NOW);
    let a = c.take_actions();
    let (st, detail) = status(&a).unwrap();
    assert_eq!(st, ConnectorStatus::CredentialsNotFound);
    assert!(
        detail.contains("field password") && !detail.contains("pw\""),
        "{detail}"
    );
    assert_eq!(timer(&a, TimerKey::Resume), Some(600_000));
    let stored = a
        .iter()
        .find_map(|x| match x {
            Action::KvSet(k, v) if k == keys::GUARD => Some(v.clone()),
            _ => None,
        })
        .unwrap();
    // Refreshes and new watches send nothing meanwhile.
    c.on_timer(TimerKey::Refresh, NOW + 60_000);
    c.watch(&["b@x".into()], NOW + 60_000);
    assert!(http(&c.take_actions()).is_empty());
    // A restart with the same configuration keeps waiting.
    let mut again = Core::new(
        settings(&[("auth_retry_seconds", "600")]),
        Some(stored.clone()),
        Box::new(|n| vec![1; n as usize]),
    );
    again.start(NOW + 60_000);
    let a = again.take_actions();
    assert_eq!(timer(&a, TimerKey::Resume), Some(540_000));
    again.watch(&["a@x".into()], NOW + 60_000);
    assert!(http(&again.take_actions()).is_empty());

    // The one retry.
    c.on_timer(TimerKey::Resume, NOW + 600_000);
    let reqs = http(&c.take_actions());
    assert_eq!(reqs.len(), 1);
    c.on_http(reqs[0].0, refused(), NOW + 600_000);
    let a = c.take_actions();
    assert!(status(&a).unwrap().1.contains("twice"));
    assert_eq!(timer(&a, TimerKey::Resume), None);
    for t in [TimerKey::Refresh, TimerKey::Resume] {
        c.on_timer(t, NOW + 10_000_000);
    }
    assert!(http(&c.take_actions()).is_empty());
    let stored = a
        .iter()
        .find_map(|x| match x {
            Action::KvSet(k, v) if k == keys::GUARD => Some(v.clone()),
            _ => None,
        })
        .unwrap();
    // Restarted with the same configuration: still nothing.
    let mut same = Core::new(
        settings(&[("auth_retry_seconds", "600")]),
        Some(stored.clone()),
        Box::new(|n| vec![1; n as usize]),
    );
    same.start(NOW);
    same.watch(&["a@x".into()], NOW);
    same.on_timer(TimerKey::Refresh, NOW);
    let a = same.take_actions();
    assert!(http(&a).is_empty());
    assert_eq!(status(&a).unwrap().0, ConnectorStatus::CredentialsNotFound);
    // A new password: requests again.
    let mut changed = Core::new(
        settings(&[("auth_retry_seconds", "600"), ("password", "new")]),
        Some(stored),
        Box::new(|n| vec![1; n as usize]),
    );
    changed.start(NOW);
    let (_, r) = first_request(&mut changed, &["a@x"]);
    assert_eq!(
        r.header("Authorization").unwrap(),
        format!("Basic {}", B64.encode("CONTOSO\\svc:new"))
    );
}

#[test]
fn ntlm_handshake_answers_the_challenge_with_ntlmv2() {
    let mut c = core(&[("auth_mode", "ntlm")]);
    let (id, r) = first_request(&mut c, &["a@x"]);
    let t1 = r
        .header("Authorization")
        .unwrap()
        .strip_prefix("NTLM ")
        .unwrap();
    let t1 = B64.decode(t1).unwrap();
    assert_eq!(&t1[..12], b"NTLMSSP\0\x01\0\0\0");
    // A CHALLENGE with target info and no timestamp.
    let info = [2u8, 0, 4, 0, b'C', 0, b'O', 0, 0, 0, 0, 0];
    let mut ch = b"NTLMSSP\0\x02\0\0\0".to_vec();
    ch.extend_from_slice(&[0, 0, 0, 0, 48, 0, 0, 0]);
    ch.extend_from_slice(&ntlm::NEGOTIATE_FLAGS.to_le_bytes());
    ch.extend_from_slice(&[0x11; 8]);
    ch.extend_from_slice(&[0; 8]);
    ch.extend_from_slice(&[info.len() as u8, 0, info.len() as u8, 0, 48, 0, 0, 0]);
    ch.extend_from_slice(&info);
    c.on_http(
        id,
        Ok(Response {
            status: 401,
            headers: vec![
                ("WWW-Authenticate".into(), "Negotiate".into()),
                (
                    "WWW-Authenticate".into(),
                    format!("NTLM {}", B64.encode(&ch)),
                ),
            ],
            body: vec![],
        }),
        NOW,
    );
    let reqs = http(&c.take_actions());
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].1.body, r.body);
    let t3 = B64
        .decode(
            reqs[0]
                .1
                .header("Authorization")
                .unwrap()
                .strip_prefix("NTLM ")
                .unwrap(),
        )
        .unwrap();
    let f = |at: usize| {
        let len = u16::from_le_bytes([t3[at], t3[at + 1]]) as usize;
        let off = u32::from_le_bytes(t3[at + 4..at + 8].try_into().unwrap()) as usize;
        t3[off..off + len].to_vec()
    };
    let nt = f(20);
    let key = ntlm::ntowf_v2("pw", "svc", "CONTOSO");
    let client: [u8; 8] = nt[32..40].try_into().unwrap();
    let time = u64::from_le_bytes(nt[24..32].try_into().unwrap());
    let (expected, _) = ntlm::v2_responses(&key, &[0x11; 8], &client, time, &info);
    assert_eq!(nt, expected);
    // Refused after AUTHENTICATE: a refused sign-in.
    c.on_http(
        reqs[0].0,
        Ok(Response {
            status: 401,
            headers: vec![("WWW-Authenticate".into(), "NTLM".into())],
            body: vec![],
        }),
        NOW,
    );
    assert_eq!(
        status(&c.take_actions()).unwrap().0,
        ConnectorStatus::CredentialsNotFound
    );
}

#[test]
fn transport_failures_back_off_and_report_connection_error() {
    let mut c = core(&[]);
    let (id, _) = first_request(&mut c, &["a@x"]);
    c.on_http(id, Err("connection refused".into()), NOW);
    let a = c.take_actions();
    let (st, d) = status(&a).unwrap();
    assert_eq!(st, ConnectorStatus::ConnectionError);
    assert!(d.contains("connection refused"));
    let delay = timer(&a, TimerKey::Resume).unwrap();
    assert!((2_500..=5_000).contains(&delay));
    c.on_timer(TimerKey::Resume, NOW + delay);
    assert_eq!(http(&c.take_actions()).len(), 1);
}
