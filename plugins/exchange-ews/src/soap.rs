//! The EWS SOAP messages the connector sends and the answers it reads,
//! element names and order as in Exchange's `messages.xsd` / `types.xsd`
//! (2007 SP1 and later).
//!
//! Times: the connector asks in UTC (the availability `TimeZone` with no
//! bias), so the times Exchange writes without an offset are UTC; times
//! written with an offset are taken as written.

use presence_connector_sdk::time::{MissingZone, format_datetime, parse_datetime};

use crate::xml::{Element, escape, ns};

/// The SOAP envelope with the `RequestServerVersion` header.
pub fn envelope(version: &str, body: &str) -> String {
    format!(
        concat!(
            r#"<?xml version="1.0" encoding="utf-8"?>"#,
            r#"<soap:Envelope xmlns:soap="{soap}" xmlns:t="{t}" xmlns:m="{m}">"#,
            r#"<soap:Header><t:RequestServerVersion Version="{v}"/></soap:Header>"#,
            r#"<soap:Body>{body}</soap:Body></soap:Envelope>"#
        ),
        soap = ns::SOAP,
        t = ns::TYPES,
        m = ns::MESSAGES,
        v = escape(version),
        body = body
    )
}

/// `YYYY-MM-DDThh:mm:ss` of a UTC instant, as the UTC request zone reads it.
fn local_utc(ms: u64) -> String {
    format_datetime(ms)[..19].to_string()
}

/// The availability view to ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    Detailed,
    DetailedMerged,
}

impl View {
    pub fn as_str(self) -> &'static str {
        match self {
            View::Detailed => "Detailed",
            View::DetailedMerged => "DetailedMerged",
        }
    }
}

/// `GetUserAvailabilityRequest` for these mailboxes over [start, end).
pub fn get_user_availability(mailboxes: &[String], start: u64, end: u64, view: View) -> String {
    // UTC: no bias; the transitions are required by the schema and say
    // nothing when both biases are zero.
    let mut b = String::from(concat!(
        "<m:GetUserAvailabilityRequest>",
        "<t:TimeZone><t:Bias>0</t:Bias>",
        "<t:StandardTime><t:Bias>0</t:Bias><t:Time>02:00:00</t:Time><t:DayOrder>5</t:DayOrder><t:Month>10</t:Month><t:DayOfWeek>Sunday</t:DayOfWeek></t:StandardTime>",
        "<t:DaylightTime><t:Bias>0</t:Bias><t:Time>02:00:00</t:Time><t:DayOrder>5</t:DayOrder><t:Month>3</t:Month><t:DayOfWeek>Sunday</t:DayOfWeek></t:DaylightTime>",
        "</t:TimeZone>",
        "<m:MailboxDataArray>"
    ));
    for m in mailboxes {
        b.push_str("<t:MailboxData><t:Email><t:Address>");
        b.push_str(&escape(m));
        b.push_str("</t:Address></t:Email><t:AttendeeType>Required</t:AttendeeType><t:ExcludeConflicts>false</t:ExcludeConflicts></t:MailboxData>");
    }
    b.push_str("</m:MailboxDataArray><t:FreeBusyViewOptions><t:TimeWindow><t:StartTime>");
    b.push_str(&local_utc(start));
    b.push_str("</t:StartTime><t:EndTime>");
    b.push_str(&local_utc(end));
    b.push_str("</t:EndTime></t:TimeWindow>");
    if view == View::DetailedMerged {
        b.push_str("<t:MergedFreeBusyIntervalInMinutes>30</t:MergedFreeBusyIntervalInMinutes>");
    }
    b.push_str("<t:RequestedView>");
    b.push_str(view.as_str());
    b.push_str("</t:RequestedView></t:FreeBusyViewOptions></m:GetUserAvailabilityRequest>");
    b
}

/// `GetUserOofSettingsRequest` for one mailbox.
pub fn get_user_oof_settings(mailbox: &str) -> String {
    format!(
        "<m:GetUserOofSettingsRequest><t:Mailbox><t:Address>{}</t:Address></t:Mailbox></m:GetUserOofSettingsRequest>",
        escape(mailbox)
    )
}

/// A SOAP fault (Exchange answers request-level errors, throttling among
/// them, with HTTP 500 and a fault).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    /// The EWS response code from the detail (`ErrorServerBusy`), or the
    /// fault code.
    pub code: String,
    pub message: String,
    /// `BackOffMilliseconds` of an `ErrorServerBusy`.
    pub back_off_ms: Option<u64>,
}

fn body_of(root: &Element) -> Result<&Element, String> {
    if !root.is(ns::SOAP, "Envelope") {
        return Err(format!("not a SOAP envelope: <{}>", root.name));
    }
    root.child(ns::SOAP, "Body")
        .ok_or_else(|| "SOAP envelope without a Body".into())
}

/// The fault in this answer, if it is one.
pub fn fault(root: &Element) -> Option<Fault> {
    let f = body_of(root).ok()?.child(ns::SOAP, "Fault")?;
    let faultcode = f
        .children
        .iter()
        .find(|c| c.name == "faultcode")
        .map(|c| c.text.trim().to_string())
        .unwrap_or_default();
    let message = f
        .children
        .iter()
        .find(|c| c.name == "faultstring")
        .map(|c| c.text.trim().to_string())
        .unwrap_or_default();
    let detail = f.children.iter().find(|c| c.name == "detail");
    let code = detail
        .and_then(|d| d.find_local("ResponseCode"))
        .map(|c| c.text.trim().to_string())
        .unwrap_or_else(|| {
            faultcode
                .rsplit(':')
                .next()
                .unwrap_or(&faultcode)
                .to_string()
        });
    let mut back_off_ms = None;
    if let Some(d) = detail {
        let mut stack = vec![d];
        while let Some(e) = stack.pop() {
            if e.name == "Value" && e.attr("Name") == Some("BackOffMilliseconds") {
                back_off_ms = e.text.trim().parse().ok();
            }
            stack.extend(e.children.iter());
        }
    }
    Some(Fault {
        code,
        message,
        back_off_ms,
    })
}

/// How an item shows its time (`LegacyFreeBusyType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BusyType {
    Free,
    Tentative,
    Busy,
    Oof,
    WorkingElsewhere,
    NoData,
    Other,
}

impl BusyType {
    fn parse(s: &str) -> BusyType {
        match s {
            "Free" => BusyType::Free,
            "Tentative" => BusyType::Tentative,
            "Busy" => BusyType::Busy,
            "OOF" => BusyType::Oof,
            "WorkingElsewhere" => BusyType::WorkingElsewhere,
            "NoData" => BusyType::NoData,
            _ => BusyType::Other,
        }
    }
}

/// One `CalendarEvent`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub start: u64,
    pub end: u64,
    pub busy: BusyType,
    pub subject: Option<String>,
    pub location: Option<String>,
    pub private: bool,
}

/// One mailbox's answer: its events, or the error code and message.
pub type MailboxAnswer = Result<Vec<Event>, (String, String)>;

fn time(e: &Element, name: &str) -> Result<u64, String> {
    let text = e
        .child_text(ns::TYPES, name)
        .ok_or_else(|| format!("CalendarEvent without {name}"))?;
    parse_datetime(text, MissingZone::Utc).ok_or_else(|| format!("{name} `{text}` is no date-time"))
}

fn non_empty(e: Option<&str>) -> Option<String> {
    e.map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

fn response_message(parent: &Element) -> Result<(), (String, String)> {
    let Some(rm) = parent.child(ns::MESSAGES, "ResponseMessage") else {
        return Err(("ErrorInvalidResponse".into(), "no ResponseMessage".into()));
    };
    let class = rm.attr("ResponseClass").unwrap_or("");
    let code = rm.child_text(ns::MESSAGES, "ResponseCode").unwrap_or("");
    if class == "Error" || (code != "NoError" && class != "Warning") {
        let text = rm.child_text(ns::MESSAGES, "MessageText").unwrap_or("");
        return Err((code.to_string(), text.to_string()));
    }
    Ok(())
}

/// Reads a `GetUserAvailabilityResponse`: one answer per mailbox asked
/// for, in the order asked.
pub fn availability(root: &Element, asked: usize) -> Result<Vec<MailboxAnswer>, String> {
    let r = body_of(root)?
        .child(ns::MESSAGES, "GetUserAvailabilityResponse")
        .ok_or("no GetUserAvailabilityResponse in the answer")?;
    let arr = r
        .child(ns::MESSAGES, "FreeBusyResponseArray")
        .ok_or("GetUserAvailabilityResponse without FreeBusyResponseArray")?;
    let mut out = Vec::new();
    for fr in arr.children_named(ns::MESSAGES, "FreeBusyResponse") {
        if let Err(e) = response_message(fr) {
            out.push(Err(e));
            continue;
        }
        let mut events = Vec::new();
        let list = fr
            .path(&[
                (ns::MESSAGES, "FreeBusyView"),
                (ns::TYPES, "CalendarEventArray"),
            ])
            .map(|a| {
                a.children_named(ns::TYPES, "CalendarEvent")
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default();
        for ev in list {
            let details = ev.child(ns::TYPES, "CalendarEventDetails");
            events.push(Event {
                start: time(ev, "StartTime")?,
                end: time(ev, "EndTime")?,
                busy: BusyType::parse(ev.child_text(ns::TYPES, "BusyType").unwrap_or("")),
                subject: non_empty(details.and_then(|d| d.child_text(ns::TYPES, "Subject"))),
                location: non_empty(details.and_then(|d| d.child_text(ns::TYPES, "Location"))),
                private: details
                    .and_then(|d| d.child_text(ns::TYPES, "IsPrivate"))
                    .is_some_and(|p| p == "true" || p == "1"),
            });
        }
        out.push(Ok(events));
    }
    if out.len() != asked {
        return Err(format!(
            "{} FreeBusyResponse elements for {asked} mailboxes",
            out.len()
        ));
    }
    Ok(out)
}

/// A mailbox's out-of-office settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Oof {
    /// `Disabled`, `Enabled` or `Scheduled`.
    pub state: String,
    pub start: Option<u64>,
    pub end: Option<u64>,
    pub internal: Option<String>,
    pub external: Option<String>,
}

impl Oof {
    /// Whether the reply is in force at `now`: enabled, or scheduled with
    /// `now` inside its window.
    pub fn in_force(&self, now: u64) -> bool {
        match self.state.as_str() {
            "Enabled" => true,
            "Scheduled" => match (self.start, self.end) {
                (Some(s), Some(e)) => (s..e).contains(&now),
                _ => false,
            },
            _ => false,
        }
    }
}

/// Reads a `GetUserOofSettingsResponse`.
pub fn oof(root: &Element) -> Result<Result<Oof, (String, String)>, String> {
    let r = body_of(root)?
        .child(ns::MESSAGES, "GetUserOofSettingsResponse")
        .ok_or("no GetUserOofSettingsResponse in the answer")?;
    if let Err(e) = response_message(r) {
        return Ok(Err(e));
    }
    let s = r
        .child(ns::TYPES, "OofSettings")
        .ok_or("GetUserOofSettingsResponse without OofSettings")?;
    let duration = s.child(ns::TYPES, "Duration");
    let when = |name| {
        duration
            .and_then(|d| d.child_text(ns::TYPES, name))
            .and_then(|t| parse_datetime(t, MissingZone::Utc))
    };
    let reply = |name| {
        s.path(&[(ns::TYPES, name), (ns::TYPES, "Message")])
            .map(|m| html_to_text(&m.text))
            .filter(|t| !t.is_empty())
    };
    Ok(Ok(Oof {
        state: s
            .child_text(ns::TYPES, "OofState")
            .unwrap_or("")
            .to_string(),
        start: when("StartTime"),
        end: when("EndTime"),
        internal: reply("InternalReply"),
        external: reply("ExternalReply"),
    }))
}

/// OOF replies are often HTML: tags dropped, common entities decoded,
/// white space collapsed.
pub fn html_to_text(html: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    let mut in_skip = false;
    let lower = html.to_ascii_lowercase();
    let mut i = 0;
    let bytes = html.as_bytes();
    while i < bytes.len() {
        let rest = &lower[i..];
        if !in_tag && bytes[i] == b'<' {
            in_tag = true;
            if rest.starts_with("<style")
                || rest.starts_with("<script")
                || rest.starts_with("<head")
            {
                in_skip = true;
            }
            if rest.starts_with("</style")
                || rest.starts_with("</script")
                || rest.starts_with("</head")
            {
                in_skip = false;
            }
            if rest.starts_with("<br")
                || rest.starts_with("<p")
                || rest.starts_with("</p")
                || rest.starts_with("<div")
            {
                out.push(' ');
            }
            i += 1;
            continue;
        }
        if in_tag {
            if bytes[i] == b'>' {
                in_tag = false;
            }
            i += 1;
            continue;
        }
        let ch = html[i..].chars().next().unwrap();
        if !in_skip {
            out.push(ch);
        }
        i += ch.len_utf8();
    }
    let out = out
        .replace("&nbsp;", " ")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&");
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xml::parse;

    #[test]
    fn availability_request_follows_the_schema_order() {
        let body = get_user_availability(
            &["a@example.com".into(), "b&c@example.com".into()],
            1_767_225_600_000,
            1_767_312_000_000,
            View::Detailed,
        );
        let doc = envelope("Exchange2007_SP1", &body);
        let root = parse(doc.as_bytes()).unwrap();
        let h = root
            .path(&[(ns::SOAP, "Header"), (ns::TYPES, "RequestServerVersion")])
            .unwrap();
        assert_eq!(h.attr("Version"), Some("Exchange2007_SP1"));
        let req = root
            .path(&[
                (ns::SOAP, "Body"),
                (ns::MESSAGES, "GetUserAvailabilityRequest"),
            ])
            .unwrap();
        let names: Vec<_> = req.children.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            ["TimeZone", "MailboxDataArray", "FreeBusyViewOptions"]
        );
        assert!(req.children[1].is(ns::MESSAGES, "MailboxDataArray"));
        let md = &req.children[1].children[1];
        assert_eq!(
            md.path(&[(ns::TYPES, "Email"), (ns::TYPES, "Address")])
                .unwrap()
                .text,
            "b&c@example.com"
        );
        let tw = req.children[2].child(ns::TYPES, "TimeWindow").unwrap();
        assert_eq!(
            tw.child_text(ns::TYPES, "StartTime"),
            Some("2026-01-01T00:00:00")
        );
        assert_eq!(
            tw.child_text(ns::TYPES, "EndTime"),
            Some("2026-01-02T00:00:00")
        );
    }

    #[test]
    fn reads_events_errors_faults_and_oof() {
        let answer = format!(
            r#"<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:soap="{s}"><soap:Body>
<GetUserAvailabilityResponse xmlns="{m}"><FreeBusyResponseArray>
<FreeBusyResponse><ResponseMessage ResponseClass="Success"><ResponseCode>NoError</ResponseCode></ResponseMessage>
<FreeBusyView><FreeBusyViewType xmlns="{t}">Detailed</FreeBusyViewType><CalendarEventArray xmlns="{t}">
<CalendarEvent><StartTime>2026-01-01T09:00:00</StartTime><EndTime>2026-01-01T10:00:00</EndTime><BusyType>Busy</BusyType>
<CalendarEventDetails><ID>1</ID><Subject>Budget</Subject><Location>Room 1</Location><IsMeeting>true</IsMeeting><IsRecurring>false</IsRecurring><IsException>false</IsException><IsReminderSet>false</IsReminderSet><IsPrivate>false</IsPrivate></CalendarEventDetails></CalendarEvent>
<CalendarEvent><StartTime>2026-01-01T11:00:00+01:00</StartTime><EndTime>2026-01-01T12:00:00+01:00</EndTime><BusyType>OOF</BusyType></CalendarEvent>
</CalendarEventArray></FreeBusyView></FreeBusyResponse>
<FreeBusyResponse><ResponseMessage ResponseClass="Error"><MessageText>not found</MessageText><ResponseCode>ErrorMailRecipientNotFound</ResponseCode></ResponseMessage></FreeBusyResponse>
</FreeBusyResponseArray></GetUserAvailabilityResponse></soap:Body></soap:Envelope>"#,
            s = ns::SOAP,
            m = ns::MESSAGES,
            t = ns::TYPES
        );
        let a = availability(&parse(answer.as_bytes()).unwrap(), 2).unwrap();
        let ev = a[0].as_ref().unwrap();
        assert_eq!(ev.len(), 2);
        assert_eq!(ev[0].subject.as_deref(), Some("Budget"));
        assert_eq!(ev[0].start, 1_767_258_000_000);
        assert_eq!(ev[1].busy, BusyType::Oof);
        assert_eq!(ev[1].start, 1_767_261_600_000);
        assert_eq!(a[1].as_ref().unwrap_err().0, "ErrorMailRecipientNotFound");
        assert!(availability(&parse(answer.as_bytes()).unwrap(), 3).is_err());

        let busy = format!(
            r#"<s:Envelope xmlns:s="{s}"><s:Body><s:Fault><faultcode xmlns:a="{t}">a:ErrorServerBusy</faultcode><faultstring xml:lang="en-US">The server cannot service this request right now. Try again later.</faultstring><detail><e:ResponseCode xmlns:e="{e}">ErrorServerBusy</e:ResponseCode><e:Message xmlns:e="{e}">The server cannot service this request right now. Try again later.</e:Message><t:MessageXml xmlns:t="{t}"><t:Value Name="BackOffMilliseconds">2500</t:Value></t:MessageXml></detail></s:Fault></s:Body></s:Envelope>"#,
            s = ns::SOAP,
            t = ns::TYPES,
            e = ns::ERRORS
        );
        let f = fault(&parse(busy.as_bytes()).unwrap()).unwrap();
        assert_eq!(f.code, "ErrorServerBusy");
        assert_eq!(f.back_off_ms, Some(2500));

        let oof_answer = format!(
            r#"<soap:Envelope xmlns:soap="{s}"><soap:Body><GetUserOofSettingsResponse xmlns="{m}"><ResponseMessage ResponseClass="Success"><ResponseCode>NoError</ResponseCode></ResponseMessage><OofSettings xmlns="{t}"><OofState>Scheduled</OofState><ExternalAudience>All</ExternalAudience><Duration><StartTime>2026-01-01T00:00:00Z</StartTime><EndTime>2026-01-03T00:00:00Z</EndTime></Duration><InternalReply><Message>&lt;html&gt;&lt;body&gt;Back on &lt;b&gt;Monday&lt;/b&gt;&amp;nbsp;!&lt;/body&gt;&lt;/html&gt;</Message></InternalReply><ExternalReply><Message/></ExternalReply></OofSettings><AllowExternalOof>All</AllowExternalOof></GetUserOofSettingsResponse></soap:Body></soap:Envelope>"#,
            s = ns::SOAP,
            m = ns::MESSAGES,
            t = ns::TYPES
        );
        let o = oof(&parse(oof_answer.as_bytes()).unwrap())
            .unwrap()
            .unwrap();
        assert_eq!(o.internal.as_deref(), Some("Back on Monday !"));
        assert_eq!(o.external, None);
        assert!(o.in_force(1_767_261_600_000));
        assert!(!o.in_force(1_767_500_000_000));
    }
}
