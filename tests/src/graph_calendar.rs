//! The Graph simulator's calendar side (a child module of `graph_sim`,
//! sharing its tokens, users, consent knob, throttling knob and request log):
//!
//! - `POST /users/{id|upn}/calendar/getSchedule`: application permission
//!   Calendars.Read (or Calendars.ReadWrite); a JSON body with `schedules`
//!   (1 to 20 SMTP addresses), `startTime` / `endTime` as
//!   `dateTimeTimeZone` (a wall-clock time without offset, a time zone the
//!   simulator knows, end after start, at most 62 days) and an optional
//!   `availabilityViewInterval` of 5 to 1440 minutes; answers one
//!   `scheduleInformation` per schedule, in order (`availabilityView`,
//!   `scheduleItems`, `workingHours`, or an `error` for an unknown
//!   mailbox), times in the `Prefer: outlook.timezone` zone, else UTC;
//! - `GET /users/{id|upn}/calendarView?startDateTime=&endDateTime=`:
//!   Calendars.ReadBasic.All or Calendars.Read; both bounds required (ISO
//!   8601), `$select` only of event properties, `$top` 1 to 1000 (10 by
//!   default), paged with `@odata.nextLink` (`$skip`); the events that
//!   overlap the window, cancelled ones included, private ones with their
//!   subject (application permissions see it: the connector must mask it);
//! - `GET /users/{id|upn}/mailboxSettings/automaticRepliesSetting`:
//!   MailboxSettings.Read (or .ReadWrite); status, scheduled window,
//!   internal and external reply messages (HTML).
//!
//! - `POST /subscriptions` on `/users/{id|upn}/events` (application
//!   permission Calendars.Read or Calendars.ReadBasic.All; changeType of
//!   created, updated, deleted; expiry in the future and at most 10080
//!   minutes ahead, granted up to the simulator's subscription clock; the
//!   validation handshake against both URLs), `PATCH` to renew, `POST
//!   .../reauthorize`, `DELETE`; adding or replacing a user's items sends
//!   change notifications (`Users/{id}/Events/{event id}`) with the
//!   clientState; lifecycle notifications come from `GraphSim::lifecycle`.
//!
//! Only application tokens are served (delegated calendar access is not
//! played). Tests add items, set automatic replies, revoke one permission,
//! cap the page size, limit requests per mailbox (429 with Retry-After),
//! and read the calendar request log.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use axum::http::{Method, header};
use axum::response::IntoResponse;
use serde_json::{Value, json};

use super::{
    Answer, GraphSim, Outgoing, PendingSub, Req, Sim, SubRec, check_url, graph_error, guid, now_ms,
    reply, rfc3339,
};

/// Most schedules one getSchedule request may name.
pub const MAX_SCHEDULES: usize = 20;
/// The longest getSchedule window.
pub const MAX_SCHEDULE_DAYS: u64 = 62;

/// The calendar permissions an application may hold.
const CALENDAR_ROLES: &[&str] = &[
    "Calendars.Read",
    "Calendars.ReadBasic.All",
    "MailboxSettings.Read",
];

/// One calendar item.
#[derive(Debug, Clone)]
pub struct CalItem {
    pub start_ms: u64,
    pub end_ms: u64,
    /// `free`, `tentative`, `busy`, `oof`, `workingElsewhere`, `unknown`.
    pub show_as: String,
    pub subject: String,
    pub location: Option<String>,
    /// `normal`, `personal`, `private`, `confidential`.
    pub sensitivity: String,
    pub cancelled: bool,
}

impl CalItem {
    /// A busy, normal item.
    pub fn new(start_ms: u64, end_ms: u64, show_as: &str, subject: &str) -> CalItem {
        CalItem {
            start_ms,
            end_ms,
            show_as: show_as.into(),
            subject: subject.into(),
            location: None,
            sensitivity: "normal".into(),
            cancelled: false,
        }
    }

    pub fn at(mut self, location: &str) -> CalItem {
        self.location = Some(location.into());
        self
    }

    pub fn private(mut self) -> CalItem {
        self.sensitivity = "private".into();
        self
    }
}

/// Automatic replies as a mailbox has them.
#[derive(Debug, Clone, Default)]
pub struct Replies {
    /// `disabled`, `alwaysEnabled`, `scheduled`.
    pub status: String,
    pub internal: String,
    pub external: String,
    pub start_ms: Option<u64>,
    pub end_ms: Option<u64>,
}

/// One calendar request the simulator answered (not those the throttling
/// knob answered: see `GraphSim::requests`).
#[derive(Debug, Clone)]
pub struct CalLogged {
    pub at: Instant,
    /// `getSchedule`, `calendarView`, `automaticRepliesSetting`.
    pub kind: &'static str,
    /// The mailbox in the path.
    pub mailbox: String,
    /// Schedules named by a getSchedule body.
    pub schedules: usize,
    /// The `Prefer: outlook.timezone` zone, if any.
    pub prefer_zone: Option<String>,
    pub status: u16,
}

#[derive(Default)]
pub(super) struct CalState {
    items: BTreeMap<String, Vec<CalItem>>,
    replies: BTreeMap<String, Replies>,
    revoked: BTreeSet<String>,
    page_cap: Option<usize>,
    /// Requests allowed per mailbox per window, and what each mailbox spent.
    limit: Option<(usize, Duration)>,
    spent: BTreeMap<String, VecDeque<Instant>>,
    log: Vec<CalLogged>,
}

// ---- time zones (an independent small table) --------------------------------

/// (Windows name, standard offset in minutes, rule: 0 none, 1 EU, 2 US).
const ZONES: &[(&str, i64, u8)] = &[
    ("UTC", 0, 0),
    ("GMT Standard Time", 0, 1),
    ("W. Europe Standard Time", 60, 1),
    ("Romance Standard Time", 60, 1),
    ("Central Europe Standard Time", 60, 1),
    ("Central European Standard Time", 60, 1),
    ("FLE Standard Time", 120, 1),
    ("GTB Standard Time", 120, 1),
    ("Eastern Standard Time", -300, 2),
    ("Central Standard Time", -360, 2),
    ("Mountain Standard Time", -420, 2),
    ("US Mountain Standard Time", -420, 0),
    ("Pacific Standard Time", -480, 2),
    ("Arabian Standard Time", 240, 0),
    ("India Standard Time", 330, 0),
    ("China Standard Time", 480, 0),
    ("Singapore Standard Time", 480, 0),
    ("Tokyo Standard Time", 540, 0),
];

#[derive(Clone, Copy)]
struct Tz {
    name: &'static str,
    std_ms: i64,
    rule: u8,
}

fn tz(name: &str) -> Option<Tz> {
    ZONES
        .iter()
        .find(|(n, _, _)| n.eq_ignore_ascii_case(name.trim()))
        .map(|&(name, m, rule)| Tz {
            name,
            std_ms: m * 60_000,
            rule,
        })
}

fn nth_sunday_ms(year: i32, month: time::Month, n: i8) -> i64 {
    // n > 0: the n-th Sunday; n == 0: the last one.
    let date = if n > 0 {
        let first = time::Date::from_calendar_date(year, month, 1).unwrap();
        let ahead = (7 - first.weekday().number_days_from_sunday()) % 7;
        first + time::Duration::days(i64::from(ahead) + 7 * (i64::from(n) - 1))
    } else {
        let next = if month == time::Month::December {
            time::Date::from_calendar_date(year + 1, time::Month::January, 1)
        } else {
            time::Date::from_calendar_date(year, month.next(), 1)
        }
        .unwrap();
        let last = next - time::Duration::days(1);
        last - time::Duration::days(i64::from(last.weekday().number_days_from_sunday()))
    };
    date.midnight().assume_utc().unix_timestamp() * 1000
}

impl Tz {
    fn offset_at(&self, utc_ms: i64) -> i64 {
        let year = time::OffsetDateTime::from_unix_timestamp(utc_ms.div_euclid(1000))
            .unwrap()
            .year();
        let hour = 3_600_000;
        let dst = match self.rule {
            1 => {
                let a = nth_sunday_ms(year, time::Month::March, 0) + hour;
                let b = nth_sunday_ms(year, time::Month::October, 0) + hour;
                (a..b).contains(&utc_ms)
            }
            2 => {
                let a = nth_sunday_ms(year, time::Month::March, 2) + 2 * hour - self.std_ms;
                let b = nth_sunday_ms(year, time::Month::November, 1) + hour - self.std_ms;
                (a..b).contains(&utc_ms)
            }
            _ => false,
        };
        self.std_ms + if dst { hour } else { 0 }
    }

    fn wall(&self, utc_ms: u64) -> String {
        let local = utc_ms as i64 + self.offset_at(utc_ms as i64);
        let t =
            time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(local) * 1_000_000).unwrap();
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.0000000",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        )
    }

    fn utc_of(&self, local_ms: i64) -> i64 {
        let first = local_ms - self.offset_at(local_ms - self.std_ms);
        first.min(local_ms - self.offset_at(first))
    }

    fn dtz(&self, utc_ms: u64) -> Value {
        json!({"dateTime": self.wall(utc_ms), "timeZone": self.name})
    }
}

/// A wall-clock `dateTime` without offset (Graph's dateTimeTimeZone form).
fn parse_wall(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let num = |a: usize, n: usize| -> Option<u32> {
        let t = s.get(a..a + n)?;
        t.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| t.parse().ok())?
    };
    let seps = [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':')];
    if b.len() < 19 || seps.iter().any(|&(i, c)| b[i] != c) {
        return None;
    }
    let frac = &s[19..];
    if !(frac.is_empty()
        || (frac.len() > 1
            && frac.starts_with('.')
            && frac[1..].bytes().all(|c| c.is_ascii_digit())))
    {
        return None;
    }
    let month = time::Month::try_from(num(5, 2)? as u8).ok()?;
    let date = time::Date::from_calendar_date(num(0, 4)? as i32, month, num(8, 2)? as u8).ok()?;
    let t = time::Time::from_hms(num(11, 2)? as u8, num(14, 2)? as u8, num(17, 2)? as u8).ok()?;
    Some(date.with_time(t).assume_utc().unix_timestamp() * 1000)
}

/// An ISO 8601 date-time with an offset or `Z`, or without (UTC).
fn parse_iso(s: &str) -> Option<u64> {
    super::parse_rfc3339(s).or_else(|| parse_wall(s).and_then(|ms| u64::try_from(ms).ok()))
}

// ---- the API ----------------------------------------------------------------------

fn not_allowed() -> Answer {
    reply(graph_error(
        405,
        "ErrorInvalidRequest",
        "The OData request is not supported.",
    ))
}

fn access_denied() -> Answer {
    reply(graph_error(
        403,
        "ErrorAccessDenied",
        "Access is denied. Check credentials and try again.",
    ))
}

fn invalid(message: &str) -> Answer {
    reply(bad_param(message))
}

fn bad_param(message: &str) -> (u16, Value) {
    graph_error(400, "ErrorInvalidParameter", message)
}

/// The zone of `Prefer: outlook.timezone="..."`: `Ok(None)` without one.
fn prefer_zone(req: &Req) -> Result<Option<Tz>, (u16, Value)> {
    let mut zone = None;
    for v in req.headers.get_all("prefer") {
        let v = v.to_str().unwrap_or("");
        for part in v.split(',') {
            let part = part.trim();
            if let Some(name) = part.strip_prefix("outlook.timezone=") {
                let name = name.trim().trim_matches('"');
                zone = Some(tz(name).ok_or_else(|| {
                    graph_error(
                        400,
                        "ErrorTimeZoneNotSupported",
                        &format!("A valid TimeZone value must be specified. The following TimeZone value is not supported: '{name}'."),
                    )
                })?);
            }
        }
    }
    Ok(zone)
}

/// Route a calendar request (`rest` is the path below `/v1.0/`).
pub(super) fn route(s: &mut Sim, req: &Req, rest: &[&str], user: Option<&str>) -> Answer {
    let (kind, mailbox) = match rest {
        ["users", key, "calendar", "getSchedule"] => ("getSchedule", *key),
        ["users", key, "calendarView"] => ("calendarView", *key),
        ["users", key, "mailboxSettings", "automaticRepliesSetting"] => {
            ("automaticRepliesSetting", *key)
        }
        _ => {
            return reply(graph_error(
                400,
                "BadRequest",
                &format!(
                    "Resource not found for the segment '{}'.",
                    rest.get(2).unwrap_or(&"")
                ),
            ));
        }
    };
    let mailbox = form_urlencoded::parse(format!("k={mailbox}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    let answer = answer(s, req, kind, &mailbox, user);
    let status = match &answer {
        Answer::Ready(r) => r.status().as_u16(),
        Answer::Validate(_) => 0,
    };
    let schedules = if kind == "getSchedule" {
        serde_json::from_slice::<Value>(&req.body)
            .ok()
            .and_then(|b| field(&b, "schedules").and_then(|v| v.as_array().map(Vec::len)))
            .unwrap_or(0)
    } else {
        0
    };
    let prefer = prefer_zone(req).ok().flatten().map(|z| z.name.to_string());
    s.cal.log.push(CalLogged {
        at: Instant::now(),
        kind,
        mailbox,
        schedules,
        prefer_zone: prefer,
        status,
    });
    answer
}

/// A JSON property, its name matched without regard to case (action
/// parameters are written `Schedules` and `schedules` alike in Microsoft's
/// examples).
fn field<'a>(body: &'a Value, name: &str) -> Option<&'a Value> {
    body.as_object()?
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

fn answer(s: &mut Sim, req: &Req, kind: &str, mailbox: &str, user: Option<&str>) -> Answer {
    if user.is_some() {
        return reply(graph_error(
            403,
            "ErrorAccessDenied",
            "This simulator serves calendars to application tokens only.",
        ));
    }
    let holds = |s: &Sim, roles: &[&str]| {
        s.consent
            && roles
                .iter()
                .any(|r| CALENDAR_ROLES.contains(r) && !s.cal.revoked.contains(*r))
    };
    let Some(idx) = s.user_index(mailbox) else {
        return reply(graph_error(
            404,
            "ErrorInvalidUser",
            &format!("The requested user '{mailbox}' is invalid."),
        ));
    };
    let id = s.users[idx].id.clone();
    // The per-mailbox limit, counted ahead of the permission check as
    // Exchange does.
    if let Some((n, window)) = s.cal.limit {
        let now = Instant::now();
        let spent = s.cal.spent.entry(id.clone()).or_default();
        while spent
            .front()
            .is_some_and(|t| now.duration_since(*t) >= window)
        {
            spent.pop_front();
        }
        if spent.len() >= n {
            let wait = window.saturating_sub(now.duration_since(*spent.front().unwrap()));
            let mut r = super::reply_response(graph_error(
                429,
                "ApplicationThrottled",
                "Application is over its MailboxConcurrency limit.",
            ));
            r.headers_mut().insert(
                header::RETRY_AFTER,
                // Whole seconds, rounded up: a retry after it is let in.
                wait.as_millis()
                    .div_ceil(1000)
                    .max(1)
                    .to_string()
                    .parse()
                    .unwrap(),
            );
            return Answer::Ready(r);
        }
        spent.push_back(now);
    }
    let zone = match prefer_zone(req) {
        Ok(z) => z,
        Err(e) => return reply(e),
    };
    match kind {
        "getSchedule" => {
            if req.method != Method::POST {
                return not_allowed();
            }
            if !holds(s, &["Calendars.Read"]) {
                return access_denied();
            }
            get_schedule(s, req, zone)
        }
        "calendarView" => {
            if req.method != Method::GET {
                return not_allowed();
            }
            if !holds(s, &["Calendars.ReadBasic.All", "Calendars.Read"]) {
                return access_denied();
            }
            calendar_view(s, req, &id, mailbox, zone)
        }
        _ => {
            if req.method != Method::GET {
                return not_allowed();
            }
            if !holds(s, &["MailboxSettings.Read"]) {
                return access_denied();
            }
            let r = s.cal.replies.get(&id).cloned().unwrap_or_default();
            let utc = tz("UTC").unwrap();
            let when = |ms: Option<u64>| utc.dtz(ms.unwrap_or(0).max(1_577_836_800_000));
            reply((
                200,
                json!({
                    "@odata.context": format!("{}/v1.0/$metadata#users('{mailbox}')/mailboxSettings/automaticRepliesSetting", s.base),
                    "status": if r.status.is_empty() { "disabled" } else { r.status.as_str() },
                    "externalAudience": "all",
                    "scheduledStartDateTime": when(r.start_ms),
                    "scheduledEndDateTime": when(r.end_ms),
                    "internalReplyMessage": r.internal,
                    "externalReplyMessage": r.external,
                }),
            ))
        }
    }
}

/// A `dateTimeTimeZone` of a request: wall-clock time, known zone.
fn request_time(body: &Value, name: &str) -> Result<u64, (u16, Value)> {
    let v = field(body, name).ok_or_else(|| bad_param(&format!("{name} is required.")))?;
    let dt = v["dateTime"]
        .as_str()
        .ok_or_else(|| bad_param(&format!("{name}.dateTime is required.")))?;
    let zone_name = v["timeZone"]
        .as_str()
        .ok_or_else(|| bad_param(&format!("{name}.timeZone is required.")))?;
    let zone = tz(zone_name).ok_or_else(|| {
        graph_error(
            400,
            "ErrorTimeZoneNotSupported",
            &format!("The following TimeZone value is not supported: '{zone_name}'."),
        )
    })?;
    let wall = parse_wall(dt).ok_or_else(|| {
        bad_param(&format!(
            "{name}.dateTime '{dt}' is not a date and time without offset (yyyy-MM-ddTHH:mm:ss)."
        ))
    })?;
    u64::try_from(zone.utc_of(wall)).map_err(|_| bad_param(&format!("{name} is out of range.")))
}

fn overlapping(
    items: Option<&Vec<CalItem>>,
    start: u64,
    end: u64,
) -> impl Iterator<Item = &CalItem> {
    items
        .into_iter()
        .flatten()
        .filter(move |i| i.start_ms < end && i.end_ms > start)
}

fn get_schedule(s: &mut Sim, req: &Req, zone: Option<Tz>) -> Answer {
    let body = match req.json() {
        Ok(b) => b,
        Err(e) => return reply(e),
    };
    let Some(list) = field(&body, "schedules").and_then(Value::as_array) else {
        return invalid("schedules is required.");
    };
    if list.is_empty() || list.len() > MAX_SCHEDULES {
        return invalid(&format!(
            "schedules must name 1 to {MAX_SCHEDULES} addresses; got {}.",
            list.len()
        ));
    }
    let (start, end) = match (
        request_time(&body, "startTime"),
        request_time(&body, "endTime"),
    ) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => return reply(e),
    };
    if end <= start {
        return invalid("endTime must be after startTime.");
    }
    if end - start > MAX_SCHEDULE_DAYS * 86_400_000 {
        return invalid(&format!(
            "The time window of getSchedule is at most {MAX_SCHEDULE_DAYS} days."
        ));
    }
    let interval = match field(&body, "availabilityViewInterval") {
        None | Some(Value::Null) => 30,
        Some(v) => match v
            .as_u64()
            .or_else(|| v.as_str().and_then(|t| t.parse().ok()))
        {
            Some(n) if (5..=1440).contains(&n) => n,
            _ => return invalid("availabilityViewInterval must be 5 to 1440 minutes."),
        },
    };
    let zone = zone.unwrap_or_else(|| tz("UTC").unwrap());
    let mut value = Vec::new();
    for addr in list {
        let Some(addr) = addr.as_str() else {
            return invalid("schedules holds SMTP addresses.");
        };
        let Some(idx) = s.user_index(addr) else {
            value.push(json!({
                "scheduleId": addr,
                "availabilityView": "",
                "scheduleItems": [],
                "error": {
                    "message": format!("The user '{addr}' could not be found."),
                    "responseCode": "ErrorMailRecipientNotFound",
                },
            }));
            continue;
        };
        let items: Vec<&CalItem> = overlapping(s.cal.items.get(&s.users[idx].id), start, end)
            .filter(|i| !i.cancelled)
            .collect();
        let slot = interval * 60_000;
        let slots = (end - start).div_ceil(slot);
        let view: String = (0..slots)
            .map(|k| {
                let (a, b) = (start + k * slot, start + (k + 1) * slot);
                items
                    .iter()
                    .filter(|i| i.start_ms < b && i.end_ms > a)
                    .map(|i| match i.show_as.as_str() {
                        "tentative" => '1',
                        "busy" => '2',
                        "oof" => '3',
                        "workingElsewhere" => '4',
                        _ => '0',
                    })
                    .max_by_key(|c| match c {
                        '3' => 5,
                        '2' => 4,
                        '4' => 3,
                        '1' => 2,
                        _ => 0,
                    })
                    .unwrap_or('0')
            })
            .collect();
        let schedule_items: Vec<Value> = items
            .iter()
            .map(|i| {
                json!({
                    "isPrivate": i.sensitivity == "private",
                    "status": i.show_as,
                    "subject": i.subject,
                    "location": i.location.clone().unwrap_or_default(),
                    "start": zone.dtz(i.start_ms),
                    "end": zone.dtz(i.end_ms),
                })
            })
            .collect();
        value.push(json!({
            "scheduleId": addr,
            "availabilityView": view,
            "scheduleItems": schedule_items,
            "workingHours": {
                "daysOfWeek": ["monday", "tuesday", "wednesday", "thursday", "friday"],
                "startTime": "08:00:00.0000000",
                "endTime": "17:00:00.0000000",
                "timeZone": {"name": zone.name},
            },
        }));
    }
    reply((
        200,
        json!({
            "@odata.context": format!("{}/v1.0/$metadata#Collection(microsoft.graph.scheduleInformation)", s.base),
            "value": value,
        }),
    ))
}

const EVENT_PROPERTIES: &[&str] = &[
    "id",
    "subject",
    "location",
    "start",
    "end",
    "showAs",
    "sensitivity",
    "isCancelled",
    "isAllDay",
    "organizer",
    "attendees",
    "body",
    "bodyPreview",
    "categories",
    "importance",
    "type",
];

fn calendar_view(s: &mut Sim, req: &Req, id: &str, mailbox: &str, zone: Option<Tz>) -> Answer {
    let q: BTreeMap<String, String> = form_urlencoded::parse(req.query.as_bytes())
        .into_owned()
        .collect();
    let param = |name: &str| {
        q.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    let (Some(a), Some(b)) = (param("startDateTime"), param("endDateTime")) else {
        return invalid(
            "This request requires a time window specified by the query string parameters StartDateTime and EndDateTime.",
        );
    };
    let (Some(start), Some(end)) = (parse_iso(&a), parse_iso(&b)) else {
        return invalid("StartDateTime and EndDateTime must be ISO 8601 date-times.");
    };
    if end <= start {
        return invalid("EndDateTime must be after StartDateTime.");
    }
    let select: Option<Vec<String>> = param("$select").map(|v| {
        v.split(',')
            .map(|p| p.trim().to_string())
            .filter(|p| !p.is_empty())
            .collect()
    });
    if let Some(sel) = &select
        && let Some(bad) = sel.iter().find(|p| !EVENT_PROPERTIES.contains(&p.as_str()))
    {
        return reply(graph_error(
            400,
            "RequestBroker--ParseUri",
            &format!("Could not find a property named '{bad}' on type 'microsoft.graph.event'."),
        ));
    }
    if let Some(o) = param("$orderby")
        && !matches!(
            o.trim(),
            "start/dateTime" | "start/dateTime asc" | "start/dateTime desc" | "end/dateTime"
        )
    {
        return invalid(&format!("$orderby '{o}' is not supported here."));
    }
    let top = match param("$top").map(|t| t.parse::<usize>()) {
        None => 10,
        Some(Ok(n)) if (1..=1000).contains(&n) => n,
        _ => return invalid("$top must be 1 to 1000."),
    };
    let skip = match param("$skip").map(|t| t.parse::<usize>()) {
        None => 0,
        Some(Ok(n)) => n,
        _ => return invalid("$skip must be a number."),
    };
    let page = top.min(s.cal.page_cap.unwrap_or(usize::MAX));
    let zone = zone.unwrap_or_else(|| tz("UTC").unwrap());
    let mut all: Vec<&CalItem> = overlapping(s.cal.items.get(id), start, end).collect();
    all.sort_by_key(|i| (i.start_ms, i.end_ms));
    let total = all.len();
    let value: Vec<Value> = all
        .iter()
        .enumerate()
        .skip(skip)
        .take(page)
        .map(|(n, i)| {
            let full = json!({
                "id": format!("AAMkAG{n:04}{}", &id[..8]),
                "subject": i.subject,
                "location": {"displayName": i.location.clone().unwrap_or_default()},
                "start": zone.dtz(i.start_ms),
                "end": zone.dtz(i.end_ms),
                "showAs": i.show_as,
                "sensitivity": i.sensitivity,
                "isCancelled": i.cancelled,
                "isAllDay": false,
            });
            let mut e = json!({"@odata.etag": "W/\"sim\"", "id": full["id"]});
            for (k, v) in full.as_object().unwrap() {
                if select.as_ref().is_none_or(|sel| sel.iter().any(|p| p == k)) {
                    e[k] = v.clone();
                }
            }
            e
        })
        .collect();
    let mut body = json!({
        "@odata.context": format!("{}/v1.0/$metadata#users('{mailbox}')/calendarView", s.base),
        "value": value,
    });
    if skip + page < total {
        let mut next: Vec<(String, String)> = q
            .iter()
            .filter(|(k, _)| !k.eq_ignore_ascii_case("$skip"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        next.push(("$skip".into(), (skip + page).to_string()));
        let query: String = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(next)
            .finish();
        body["@odata.nextLink"] = json!(format!("{}{}?{query}", s.base, req.path));
    }
    reply((200, body))
}

// ---- event subscriptions ----------------------------------------------------------

/// Outlook resources: subscriptions live at most 10080 minutes.
const MAX_EVENT_SUBSCRIPTION_MS: u64 = 10_080 * 60_000;

fn is_events_resource(resource: &str) -> bool {
    let r = resource.trim_start_matches('/').to_ascii_lowercase();
    r.starts_with("users/") && r.ends_with("/events") && r.matches('/').count() == 2
}

/// Whether a `/subscriptions` request is about events (created here, or
/// one of those).
pub(super) fn claims(s: &Sim, req: &Req, rest: &[&str]) -> bool {
    match rest {
        ["subscriptions"] => {
            req.method == Method::POST
                && serde_json::from_slice::<Value>(&req.body)
                    .ok()
                    .and_then(|b| b["resource"].as_str().map(is_events_resource))
                    .unwrap_or(false)
        }
        ["subscriptions", id, ..] => s
            .subs
            .get(*id)
            .is_some_and(|x| is_events_resource(&x.resource)),
        _ => false,
    }
}

/// `/subscriptions` on events.
pub(super) fn subscriptions(
    s: &mut Sim,
    req: &Req,
    rest: &[&str],
    user: Option<&str>,
    app_id: &str,
) -> Answer {
    if user.is_some() {
        return access_denied();
    }
    let allowed = s.consent
        && ["Calendars.Read", "Calendars.ReadBasic.All"]
            .iter()
            .any(|r| !s.cal.revoked.contains(*r));
    let now = now_ms();
    let bad = |m: &str| reply(graph_error(400, "ValidationError", m));
    let verr = |m: &str| graph_error(400, "ValidationError", m);
    let expiry = |body: &Value| -> Result<u64, (u16, Value)> {
        let at = body["expirationDateTime"]
            .as_str()
            .and_then(super::parse_rfc3339)
            .ok_or_else(|| verr("expirationDateTime is not a valid DateTimeOffset."))?;
        if at <= now {
            return Err(verr("Subscription expiration must be in the future."));
        }
        if at > now + MAX_EVENT_SUBSCRIPTION_MS {
            return Err(verr(
                "Subscription expiration can only be 10080 minutes in the future.",
            ));
        }
        Ok(at)
    };
    match rest {
        ["subscriptions"] => {
            if !allowed {
                return reply(graph_error(
                    403,
                    "ExtensionError",
                    "Operation: Create; Exception: [Status Code: Forbidden; Reason: Access is denied. Check credentials and try again.]",
                ));
            }
            let body = match req.json() {
                Ok(b) => b,
                Err(e) => return reply(e),
            };
            let text = |k: &str| body[k].as_str().map(str::to_string);
            let (Some(change_type), Some(url), Some(resource)) = (
                text("changeType"),
                text("notificationUrl"),
                text("resource"),
            ) else {
                return bad(
                    "changeType, notificationUrl, resource and expirationDateTime are required.",
                );
            };
            let kinds: Vec<&str> = change_type.split(',').map(str::trim).collect();
            if kinds.is_empty()
                || kinds
                    .iter()
                    .any(|k| !matches!(*k, "created" | "updated" | "deleted"))
            {
                return bad("changeType of events is created, updated and/or deleted.");
            }
            let mailbox = resource
                .trim_start_matches('/')
                .split('/')
                .nth(1)
                .unwrap_or("");
            if s.user_index(mailbox).is_none() {
                return reply(graph_error(
                    404,
                    "ExtensionError",
                    &format!(
                        "Operation: Create; Exception: [Status Code: NotFound; Reason: The requested user '{mailbox}' is invalid.]"
                    ),
                ));
            }
            let requested_ms = match expiry(&body) {
                Ok(a) => a,
                Err(e) => return reply(e),
            };
            if let Err(e) = check_url(s, &url, "notificationUrl") {
                return reply(e);
            }
            let lifecycle_url = text("lifecycleNotificationUrl");
            if let Some(l) = &lifecycle_url
                && let Err(e) = check_url(s, l, "lifecycleNotificationUrl")
            {
                return reply(e);
            }
            let client_state = text("clientState");
            if client_state.as_ref().is_some_and(|c| c.len() > 128) {
                return bad("clientState must be at most 128 characters.");
            }
            if body["includeResourceData"].as_bool().unwrap_or(false) {
                return bad(
                    "includeResourceData requires encryptionCertificate and encryptionCertificateId.",
                );
            }
            Answer::Validate(Box::new(PendingSub {
                rec: SubRec {
                    id: guid(),
                    client_id: app_id.to_string(),
                    creator: app_id.to_string(),
                    ids: BTreeSet::new(),
                    resource,
                    notification_url: url,
                    lifecycle_url,
                    client_state,
                    expires_ms: 0,
                    created: Instant::now(),
                    renewals: 0,
                    reauthorizations: 0,
                    paused: false,
                    muted: false,
                },
                requested_ms,
                include_resource_data: false,
                change_type,
                tls: text("latestSupportedTlsVersion"),
            }))
        }
        ["subscriptions", id, tail @ ..] => {
            let id = id.to_string();
            if s.subs.get(&id).is_some_and(|x| x.expires_ms <= now) {
                s.subs.remove(&id);
            }
            let granted_max = now + s.cfg.subscription_lifetime.as_millis() as u64;
            let Some(sub) = s.subs.get_mut(&id) else {
                return reply(graph_error(
                    404,
                    "ResourceNotFound",
                    "The object was not found.",
                ));
            };
            if sub.client_id != app_id {
                return reply(graph_error(
                    403,
                    "ExtensionError",
                    "The subscription belongs to another application.",
                ));
            }
            match (tail, &req.method) {
                (["reauthorize"], &Method::POST) => {
                    sub.paused = false;
                    sub.reauthorizations += 1;
                    Answer::Ready(axum::http::StatusCode::NO_CONTENT.into_response())
                }
                ([], &Method::GET) => reply((200, super::sub_json(sub))),
                ([], &Method::DELETE) => {
                    s.subs.remove(&id);
                    Answer::Ready(axum::http::StatusCode::NO_CONTENT.into_response())
                }
                ([], &Method::PATCH) => {
                    let body = match req.json() {
                        Ok(b) => b,
                        Err(e) => return reply(e),
                    };
                    if let Some(k) = body.as_object().and_then(|o| {
                        o.keys()
                            .find(|k| *k != "expirationDateTime" && *k != "notificationUrl")
                    }) {
                        return bad(&format!("Property '{k}' cannot be updated."));
                    }
                    let at = match expiry(&body) {
                        Ok(a) => a,
                        Err(e) => return reply(e),
                    };
                    let sub = s.subs.get_mut(&id).unwrap();
                    sub.expires_ms = at.min(granted_max);
                    sub.renewals += 1;
                    sub.paused = false;
                    reply((200, super::sub_json(sub)))
                }
                _ => not_allowed(),
            }
        }
        _ => not_allowed(),
    }
}

/// Change notifications for the subscriptions on a user's events.
fn event_notifications(
    s: &Sim,
    user_idx: usize,
    change: &str,
    event_ids: &[String],
) -> Vec<Outgoing> {
    let (id, upn) = (
        s.users[user_idx].id.clone(),
        s.users[user_idx].upn.to_ascii_lowercase(),
    );
    let now = now_ms();
    s.subs
        .values()
        .filter(|x| is_events_resource(&x.resource) && !x.paused && !x.muted && x.expires_ms > now)
        .filter(|x| {
            let mailbox = x
                .resource
                .trim_start_matches('/')
                .split('/')
                .nth(1)
                .unwrap_or("")
                .to_ascii_lowercase();
            mailbox == id || mailbox == upn
        })
        .map(|x| Outgoing {
            url: x.notification_url.clone(),
            subscription: x.id.clone(),
            lifecycle: None,
            body: json!({"value": event_ids.iter().map(|e| json!({
                "subscriptionId": x.id,
                "subscriptionExpirationDateTime": rfc3339(x.expires_ms),
                "changeType": change,
                "resource": format!("Users/{id}/Events/{e}"),
                "resourceData": {
                    "@odata.type": "#Microsoft.Graph.Event",
                    "@odata.id": format!("Users/{id}/Events/{e}"),
                    "@odata.etag": "W/\"sim\"",
                    "id": e,
                },
                "clientState": x.client_state,
                "tenantId": s.cfg.tenant,
            })).collect::<Vec<_>>()}),
        })
        .collect()
}

// ---- control API ------------------------------------------------------------------

impl GraphSim {
    /// Add a calendar item to a user's mailbox (the user must exist).
    /// Subscriptions on the user's events are notified (`created`).
    pub fn add_event(&self, user: &str, item: CalItem) {
        let out = {
            let mut s = self.lock();
            let i = s.user_index(user).expect("known user");
            let id = s.users[i].id.clone();
            let list = s.cal.items.entry(id).or_default();
            list.push(item);
            let n = list.len();
            event_notifications(&s, i, "created", &[format!("AAMkAG{n:04}")])
        };
        self.deliver(out);
    }

    /// Replace a user's calendar items.
    /// Subscriptions on the user's events are notified (`updated`).
    pub fn set_events(&self, user: &str, items: Vec<CalItem>) {
        let out = {
            let mut s = self.lock();
            let i = s.user_index(user).expect("known user");
            let id = s.users[i].id.clone();
            let n = items.len().max(1);
            s.cal.items.insert(id, items);
            let ids: Vec<String> = (1..=n).map(|k| format!("AAMkAG{k:04}")).collect();
            event_notifications(&s, i, "updated", &ids)
        };
        self.deliver(out);
    }

    /// Set a user's automatic replies.
    pub fn set_automatic_replies(&self, user: &str, replies: Replies) {
        let mut s = self.lock();
        let i = s.user_index(user).expect("known user");
        let id = s.users[i].id.clone();
        s.cal.replies.insert(id, replies);
    }

    /// An administrator removes (false) or grants again (true) one calendar
    /// permission of the app (`Calendars.Read`, `Calendars.ReadBasic.All`,
    /// `MailboxSettings.Read`).
    pub fn set_calendar_permission(&self, permission: &str, granted: bool) {
        assert!(CALENDAR_ROLES.contains(&permission), "{permission}");
        let mut s = self.lock();
        if granted {
            s.cal.revoked.remove(permission);
        } else {
            s.cal.revoked.insert(permission.to_string());
        }
    }

    /// calendarView pages hold at most `n` events, whatever `$top` asks.
    pub fn set_page_cap(&self, n: usize) {
        self.lock().cal.page_cap = Some(n.max(1));
    }

    /// At most `n` calendar requests per mailbox in any `window`; beyond,
    /// 429 with the Retry-After of the window's rest.
    pub fn limit_mailbox_requests(&self, n: usize, window: Duration) {
        let mut s = self.lock();
        s.cal.limit = Some((n, window));
        s.cal.spent.clear();
    }

    /// The calendar requests answered so far.
    pub fn calendar_requests(&self) -> Vec<CalLogged> {
        self.lock().cal.log.clone()
    }
}

/// Now, in ms since 1970, for tests placing items.
pub fn now() -> u64 {
    now_ms()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zones_and_walls() {
        let berlin = tz("W. Europe Standard Time").unwrap();
        // 2026-07-01T10:00Z is 12:00 in Berlin.
        assert_eq!(
            berlin.wall(1_782_900_000_000),
            "2026-07-01T12:00:00.0000000"
        );
        let wall = parse_wall("2026-07-01T12:00:00").unwrap();
        assert_eq!(berlin.utc_of(wall), 1_782_900_000_000);
        let ny = tz("Eastern Standard Time").unwrap();
        // 2026-01-15T15:00Z is 10:00 in New York (standard time).
        assert_eq!(ny.wall(1_768_489_200_000), "2026-01-15T10:00:00.0000000");
        assert!(tz("Mars Standard Time").is_none());
        assert_eq!(parse_iso("2026-07-01T10:00:00Z"), Some(1_782_900_000_000));
        assert_eq!(parse_iso("2026-07-01T10:00:00"), Some(1_782_900_000_000));
    }
}
