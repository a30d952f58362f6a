//! Conversions between the WIT contract's types and the host's own.

use super::wit::types as wit;
use crate::engine as model;
use crate::io;

pub fn presence(u: wit::PresenceUpdate) -> model::PresenceReport {
    model::PresenceReport {
        endpoint: u.endpoint,
        observed_at_ms: u.observed_at,
        ordering: u.ordering.map(|o| model::ReportOrdering {
            epoch: o.epoch,
            sequence: o.sequence,
        }),
        origin: match u.origin {
            wit::UpdateOrigin::Platform => model::UpdateOrigin::Platform,
            wit::UpdateOrigin::HubWrite(write_id) => model::UpdateOrigin::HubWrite { write_id },
            wit::UpdateOrigin::ConnectorRule(rule) => model::UpdateOrigin::ConnectorRule { rule },
        },
        calendar: u.calendar.map(calendar),
        valid_for_ms: u.valid_for_ms,
        telephony: u.telephony.map(|t| model::TelephonyPresence {
            line: line(t.line),
            do_not_disturb: t.do_not_disturb,
            forward: t.forward.map(|f| match f {
                wit::ForwardTarget::Voicemail => model::ForwardTarget::Voicemail,
                wit::ForwardTarget::Number(n) => model::ForwardTarget::Number(n),
            }),
            source: match t.source {
                wit::TelephonySource::PbxLine => model::TelephonySource::PbxLine,
                wit::TelephonySource::SipDerived => model::TelephonySource::SipDerived,
            },
        }),
        rich: u.rich.map(|r| model::RichPresence {
            availability: availability(r.availability),
            activity: r.activity.map(activity),
            note: r.note,
        }),
        raw: u.raw.into_iter().map(|v| (v.name, v.value)).collect(),
    }
}

fn calendar(c: wit::CalendarPresence) -> model::CalendarPresence {
    model::CalendarPresence {
        items: c
            .items
            .into_iter()
            .map(|i| model::CalendarItem {
                start_ms: i.start,
                end_ms: i.end,
                show_as: match i.show_as {
                    wit::ShowAs::Free => model::ShowAs::Free,
                    wit::ShowAs::Tentative => model::ShowAs::Tentative,
                    wit::ShowAs::Busy => model::ShowAs::Busy,
                    wit::ShowAs::OutOfOffice => model::ShowAs::OutOfOffice,
                    wit::ShowAs::WorkingElsewhere => model::ShowAs::WorkingElsewhere,
                    wit::ShowAs::Unknown => model::ShowAs::Unknown,
                },
                subject: i.subject,
                location: i.location,
                private: i.private,
            })
            .collect(),
        out_of_office: c.out_of_office.map(|o| model::OutOfOffice {
            message: o.message,
            start_ms: o.start,
            end_ms: o.end,
        }),
    }
}

fn line(l: wit::LineState) -> model::LineState {
    match l {
        wit::LineState::Idle => model::LineState::Idle,
        wit::LineState::Ringing => model::LineState::Ringing,
        wit::LineState::Dialing => model::LineState::Dialing,
        wit::LineState::InCall => model::LineState::InCall,
        wit::LineState::OnHold => model::LineState::OnHold,
        wit::LineState::Unknown => model::LineState::Unknown,
    }
}

fn availability(a: wit::Availability) -> model::Availability {
    match a {
        wit::Availability::Available => model::Availability::Available,
        wit::Availability::Away => model::Availability::Away,
        wit::Availability::Busy => model::Availability::Busy,
        wit::Availability::DoNotDisturb => model::Availability::DoNotDisturb,
        wit::Availability::Offline => model::Availability::Offline,
        wit::Availability::Unknown => model::Availability::Unknown,
    }
}

fn availability_to_wit(a: model::Availability) -> wit::Availability {
    match a {
        model::Availability::Available => wit::Availability::Available,
        model::Availability::Away => wit::Availability::Away,
        model::Availability::Busy => wit::Availability::Busy,
        model::Availability::DoNotDisturb => wit::Availability::DoNotDisturb,
        model::Availability::Offline => wit::Availability::Offline,
        model::Availability::Unknown => wit::Availability::Unknown,
    }
}

fn activity(a: wit::Activity) -> model::Activity {
    match a {
        wit::Activity::InACall => model::Activity::InACall,
        wit::Activity::InAConference => model::Activity::InAConference,
        wit::Activity::InAMeeting => model::Activity::InAMeeting,
        wit::Activity::Presenting => model::Activity::Presenting,
        wit::Activity::OutOfOffice => model::Activity::OutOfOffice,
        wit::Activity::BeRightBack => model::Activity::BeRightBack,
        wit::Activity::OffWork => model::Activity::OffWork,
        wit::Activity::Inactive => model::Activity::Inactive,
        wit::Activity::Other(s) => model::Activity::Other(s),
    }
}

fn activity_to_wit(a: model::Activity) -> wit::Activity {
    match a {
        model::Activity::InACall => wit::Activity::InACall,
        model::Activity::InAConference => wit::Activity::InAConference,
        model::Activity::InAMeeting => wit::Activity::InAMeeting,
        model::Activity::Presenting => wit::Activity::Presenting,
        model::Activity::OutOfOffice => wit::Activity::OutOfOffice,
        model::Activity::BeRightBack => wit::Activity::BeRightBack,
        model::Activity::OffWork => wit::Activity::OffWork,
        model::Activity::Inactive => wit::Activity::Inactive,
        model::Activity::Other(s) => wit::Activity::Other(s),
    }
}

pub fn endpoint_state(s: wit::EndpointState) -> model::EndpointState {
    match s {
        wit::EndpointState::Active => model::EndpointState::Active,
        wit::EndpointState::Requesting => model::EndpointState::Requesting,
        wit::EndpointState::NotFound => model::EndpointState::NotFound,
        wit::EndpointState::AccessDenied => model::EndpointState::AccessDenied,
        wit::EndpointState::Error => model::EndpointState::Error,
    }
}

pub fn status(s: wit::ConnectorStatus) -> model::ConnectorStatus {
    match s {
        wit::ConnectorStatus::NotConfigured => model::ConnectorStatus::NotConfigured,
        wit::ConnectorStatus::Disabled => model::ConnectorStatus::Disabled,
        wit::ConnectorStatus::Forbidden => model::ConnectorStatus::Forbidden,
        wit::ConnectorStatus::ConnectionError => model::ConnectorStatus::ConnectionError,
        wit::ConnectorStatus::UpAndRunning => model::ConnectorStatus::UpAndRunning,
        wit::ConnectorStatus::CredentialsNotFound => model::ConnectorStatus::CredentialsNotFound,
        wit::ConnectorStatus::LoginRequired => model::ConnectorStatus::LoginRequired,
        wit::ConnectorStatus::Throttled => model::ConnectorStatus::Throttled,
    }
}

pub fn login_step(s: wit::LoginStep) -> model::LoginStep {
    model::LoginStep {
        message: s.message,
        url: s.url,
        user_code: s.user_code,
        expires_at_ms: s.expires_at,
    }
}

pub fn directory_entry(e: wit::DirectoryEntry) -> model::DirectoryEntry {
    model::DirectoryEntry {
        endpoint: e.endpoint,
        email: e.email,
        display_name: e.display_name,
        extension: e.extension,
    }
}

/// A write-back as the engine or the API asks for it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, utoipa::ToSchema)]
#[serde(tag = "action", rename_all = "kebab-case", deny_unknown_fields)]
pub enum PresenceWrite {
    Set {
        availability: model::Availability,
        #[serde(default)]
        activity: Option<model::Activity>,
        #[serde(default)]
        note: Option<String>,
        /// `all-calls` or `queue-calls`, for do-not-disturb.
        #[serde(default)]
        dnd_scope: Option<DndScope>,
        #[serde(default)]
        expires_in_ms: Option<u64>,
    },
    /// Put back what the person had before the hub's writes.
    Restore,
    /// The 0.1.0 name of `restore`, still accepted.
    Clear,
}

/// Which calls a do-not-disturb write holds back.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize, utoipa::ToSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum DndScope {
    AllCalls,
    QueueCalls,
}

/// A sync decision as a write: do-not-disturb for all calls, or restore.
pub fn sync_write(a: crate::engine::sync::SyncAction) -> PresenceWrite {
    match a {
        crate::engine::sync::SyncAction::SetDnd { expires_in_ms } => PresenceWrite::Set {
            availability: model::Availability::DoNotDisturb,
            activity: None,
            note: None,
            dnd_scope: Some(DndScope::AllCalls),
            expires_in_ms,
        },
        crate::engine::sync::SyncAction::Restore => PresenceWrite::Restore,
    }
}

pub fn write_action(w: PresenceWrite) -> wit::WriteAction {
    match w {
        PresenceWrite::Set {
            availability,
            activity,
            note,
            dnd_scope,
            expires_in_ms,
        } => wit::WriteAction::Set(wit::PresenceIntent {
            availability: availability_to_wit(availability),
            activity: activity.map(activity_to_wit),
            note,
            dnd_scope: dnd_scope.map(|d| match d {
                DndScope::AllCalls => wit::DndScope::AllCalls,
                DndScope::QueueCalls => wit::DndScope::QueueCalls,
            }),
            expires_in_ms,
        }),
        PresenceWrite::Restore | PresenceWrite::Clear => wit::WriteAction::Restore,
    }
}

/// A host I/O failure in the contract's terms.
pub fn failure(f: io::Failure) -> wit::Failure {
    match f {
        io::Failure::Dns(m) => wit::Failure::Dns(m),
        io::Failure::Refused => wit::Failure::Refused,
        io::Failure::Timeout => wit::Failure::Timeout,
        io::Failure::Reset => wit::Failure::Reset,
        io::Failure::TlsCertificate(m) => wit::Failure::TlsCertificate(m),
        io::Failure::Tls(m) => wit::Failure::Tls(m),
        io::Failure::UpgradeRefused {
            status,
            headers,
            body,
        } => wit::Failure::UpgradeRefused(wit::RefusedUpgrade {
            status,
            headers: header_list(headers),
            body,
        }),
        io::Failure::Protocol(m) => wit::Failure::Protocol(m),
        io::Failure::Other(m) => wit::Failure::Other(m),
    }
}

/// A failure in words, as 0.1.0 plugins received it.
pub fn failure_text(f: &wit::Failure) -> String {
    match f {
        wit::Failure::Dns(m) => format!("dns: {m}"),
        wit::Failure::Refused => "connection refused".into(),
        wit::Failure::Timeout => "timed out".into(),
        wit::Failure::Reset => "connection reset".into(),
        wit::Failure::TlsCertificate(m) => format!("TLS certificate refused: {m}"),
        wit::Failure::Tls(m) => format!("TLS: {m}"),
        wit::Failure::UpgradeRefused(u) => format!("upgrade refused with HTTP {}", u.status),
        wit::Failure::Protocol(m) => format!("protocol error: {m}"),
        wit::Failure::Other(m) => m.clone(),
    }
}

pub fn close_info(c: io::CloseInfo) -> wit::CloseInfo {
    wit::CloseInfo {
        code: c.code,
        reason: c.reason,
        failure: c.failure.map(failure),
    }
}

pub fn header_list(h: Vec<(String, String)>) -> Vec<wit::Header> {
    h.into_iter()
        .map(|(name, value)| wit::Header { name, value })
        .collect()
}

/// A connector's error in words for operators.
pub fn connector_error(e: &wit::ConnectorError) -> String {
    match e {
        wit::ConnectorError::InvalidConfig(f) => {
            format!("invalid configuration field `{}`: {}", f.field, f.message)
        }
        wit::ConnectorError::NotConfigured => "the connector is not configured".into(),
        wit::ConnectorError::UnknownEndpoint(ep) => format!("unknown endpoint {ep}"),
        wit::ConnectorError::Unsupported(m) => format!("unsupported: {m}"),
        wit::ConnectorError::Other(m) => m.clone(),
    }
}
