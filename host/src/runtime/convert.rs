//! Conversions between the WIT contract's types and the host's own.

use super::bindings::types as wit;
use crate::engine as model;

pub fn presence(u: wit::PresenceUpdate) -> model::PresenceReport {
    model::PresenceReport {
        endpoint: u.endpoint,
        observed_at_ms: u.observed_at,
        sequence: u.sequence,
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
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(tag = "action", rename_all = "kebab-case", deny_unknown_fields)]
pub enum PresenceWrite {
    Set {
        availability: model::Availability,
        #[serde(default)]
        activity: Option<model::Activity>,
        #[serde(default)]
        note: Option<String>,
        #[serde(default)]
        expires_in_ms: Option<u64>,
    },
    Clear,
}

pub fn presence_write(w: PresenceWrite) -> wit::PresenceWrite {
    match w {
        PresenceWrite::Set {
            availability,
            activity,
            note,
            expires_in_ms,
        } => wit::PresenceWrite::Set(wit::PresenceIntent {
            availability: availability_to_wit(availability),
            activity: activity.map(activity_to_wit),
            note,
            expires_in_ms,
        }),
        PresenceWrite::Clear => wit::PresenceWrite::Clear,
    }
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
