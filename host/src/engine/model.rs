//! The normalized presence model (DESIGN.md), as the host keeps and serves it.

use serde::{Deserialize, Serialize};

/// Rich presence availability.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Availability {
    Available,
    Away,
    Busy,
    DoNotDisturb,
    Offline,
    Unknown,
}

/// What a person is doing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Activity {
    InACall,
    InAConference,
    InAMeeting,
    Presenting,
    OutOfOffice,
    BeRightBack,
    OffWork,
    Inactive,
    Other(String),
}

/// Telephone line state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum LineState {
    Idle,
    Ringing,
    Dialing,
    InCall,
    OnHold,
    Unknown,
}

/// Call forwarding target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ForwardTarget {
    Voicemail,
    Number(String),
}

/// Kind of telephony source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum TelephonySource {
    PbxLine,
    SipDerived,
}

/// Telephony presence of one extension.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TelephonyPresence {
    pub line: LineState,
    pub do_not_disturb: bool,
    pub forward: Option<ForwardTarget>,
    pub source: TelephonySource,
}

/// Rich presence of one person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RichPresence {
    pub availability: Availability,
    pub activity: Option<Activity>,
    pub note: Option<String>,
}

/// The source's order of its updates: `sequence` is compared only within
/// one `epoch` (a SIP subscription, a Graph subscription).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReportOrdering {
    pub epoch: String,
    pub sequence: u64,
}

/// Why an update happened.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum UpdateOrigin {
    /// The platform's own change.
    #[default]
    Platform,
    /// The echo of the hub's write with this id.
    HubWrite { write_id: u64 },
    /// A rule of the connector itself, named.
    ConnectorRule { rule: String },
}

/// How a calendar item shows the person's time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ShowAs {
    Free,
    Tentative,
    Busy,
    OutOfOffice,
    WorkingElsewhere,
    Unknown,
}

/// One calendar item; a private one never carries subject or location.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CalendarItem {
    pub start_ms: u64,
    pub end_ms: u64,
    pub show_as: ShowAs,
    pub subject: Option<String>,
    pub location: Option<String>,
    pub private: bool,
}

/// An automatic out-of-office reply in force.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct OutOfOffice {
    pub message: Option<String>,
    pub start_ms: Option<u64>,
    pub end_ms: Option<u64>,
}

/// A person's calendar: today's and the next working day's items, and any
/// out-of-office reply.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CalendarPresence {
    pub items: Vec<CalendarItem>,
    pub out_of_office: Option<OutOfOffice>,
}

impl CalendarPresence {
    /// Privacy by default: whatever a connector sent, a private item keeps
    /// only its times and show-as.
    pub fn masked(mut self) -> Self {
        for i in &mut self.items {
            if i.private {
                i.subject = None;
                i.location = None;
            }
        }
        self
    }
}

/// One report from one connector about one endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PresenceReport {
    pub endpoint: String,
    pub observed_at_ms: Option<u64>,
    pub ordering: Option<ReportOrdering>,
    pub origin: UpdateOrigin,
    pub telephony: Option<TelephonyPresence>,
    pub rich: Option<RichPresence>,
    pub calendar: Option<CalendarPresence>,
    /// How long the state holds without another report, where the source
    /// declares it (a polling source); none: while the source vouches.
    pub valid_for_ms: Option<u64>,
    /// Vendor values, for diagnostics only.
    pub raw: Vec<(String, String)>,
}

/// State of a connector's watch on one endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum EndpointState {
    Active,
    Requesting,
    NotFound,
    AccessDenied,
    Error,
}

/// Health of a connector instance, in the seeds' vocabulary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ConnectorStatus {
    NotConfigured,
    Disabled,
    Forbidden,
    ConnectionError,
    UpAndRunning,
    CredentialsNotFound,
    LoginRequired,
    Throttled,
}

/// A login step an operator must take.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LoginStep {
    pub message: String,
    pub url: Option<String>,
    pub user_code: Option<String>,
    pub expires_at_ms: Option<u64>,
}

/// One entry of a source's directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DirectoryEntry {
    pub endpoint: String,
    pub email: Option<String>,
    pub display_name: Option<String>,
    pub extension: Option<String>,
}

/// Everything known of one endpoint of one instance.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct EndpointView {
    pub state: Option<EndpointState>,
    pub state_detail: Option<String>,
    pub state_at_ms: Option<u64>,
    pub telephony: Option<TelephonyPresence>,
    pub rich: Option<RichPresence>,
    pub calendar: Option<CalendarPresence>,
    pub ordering: Option<ReportOrdering>,
    /// Why the last update happened (an echo of a hub write, a rule).
    pub origin: UpdateOrigin,
    /// Until when the last state holds without another report, where the
    /// source declared a validity (a polling source).
    pub valid_until_ms: Option<u64>,
    pub observed_at_ms: Option<u64>,
    pub received_at_ms: Option<u64>,
    pub raw: Vec<(String, String)>,
    /// How many reports were taken in: the sync engine tells a new
    /// observation from one it has judged already by it.
    #[serde(skip)]
    pub updates: u64,
}
