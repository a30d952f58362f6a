//! What an instance's supervisor knows about it, shared with the API.

use std::sync::Mutex;

use serde::Serialize;

use crate::engine::{ConnectorStatus, LoginStep};

/// Where the supervisor has the instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum RunState {
    Starting,
    Running,
    /// Crashed; a restart is scheduled.
    Restarting,
    /// Crashed too often; stays down until an operator enables it again.
    Quarantined,
    Disabled,
    Stopped,
}

/// An error with its time.
#[derive(Debug, Clone, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct ErrorNote {
    pub at_ms: u64,
    pub message: String,
}

/// An instance's status as the API shows it
/// (`GET /api/v1/connectors/{id}/status` → `status`; the README's
/// "Connector status" table says the same).
#[derive(Debug, Clone, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct InstanceStatus {
    /// Where the hub's supervisor has the instance's sandbox: `starting`,
    /// `running`, `restarting` (crashed, a restart is scheduled),
    /// `quarantined` (crashed too often; an operator enables it again),
    /// `disabled`, `stopped`.
    pub run_state: RunState,
    /// The connector's own word on its link to the platform, in the seeds'
    /// values (`up-and-running`, `connection-error`, `forbidden`,
    /// `login-required`, `credentials-not-found`, `throttled`,
    /// `not-configured`, `disabled`). Never `up-and-running` while the
    /// instance is not running.
    pub status: ConnectorStatus,
    /// The connector's words on `status` (e.g. `pbx:5060 unreachable:
    /// connection refused`).
    pub status_detail: Option<String>,
    /// The last error (a refused configuration, a crash, a failed call),
    /// with its time (Unix ms).
    pub last_error: Option<ErrorNote>,
    /// When the connector last reported anything (Unix ms): presence, a
    /// status, a directory page. A connector that reports only changes is
    /// quiet while nothing changes.
    pub last_event_at_ms: Option<u64>,
    /// Restarts after a crash since the hub started.
    pub restarts: u64,
    /// Why it is quarantined (while `run_state` is `quarantined`).
    pub quarantine_reason: Option<String>,
    /// A login step an operator must take (device code, consent URL).
    pub login_step: Option<LoginStep>,
    /// The plugin build this instance runs.
    pub plugin_version: String,
    /// Events dropped on the instance's full queue since it started.
    pub events_dropped: u64,
    /// Write-backs that landed (applied, restored, left as the user set).
    pub writes_applied: u64,
    /// Write-backs that failed, were refused or are unsupported.
    pub writes_failed: u64,
    /// The last write-back whose outcome came.
    pub last_write: Option<super::writes::WriteRecord>,
}

/// The instance's link to its platform, one word derived from the status
/// (`link` in `GET /api/v1/connectors/{id}/status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Link {
    /// Up (running and `up-and-running`) and it reported within
    /// [`ONLINE_WINDOW_MS`].
    Online,
    /// Up but quiet for longer: connected, nothing to report (a platform
    /// that sends only changes is quiet while nothing changes).
    Connected,
    /// Not up: not running, or running but its status is anything other
    /// than `up-and-running` (`connection-error`, `forbidden`, ...; the
    /// status says which).
    Offline,
}

/// How recent the last report must be for [`Link::Online`] (5 minutes).
pub const ONLINE_WINDOW_MS: u64 = 5 * 60 * 1000;

impl InstanceStatus {
    /// Running and saying `up-and-running`.
    pub fn is_up(&self) -> bool {
        self.run_state == RunState::Running && self.status == ConnectorStatus::UpAndRunning
    }

    /// The link at `now_ms` (Unix ms).
    pub fn link(&self, now_ms: u64) -> Link {
        if !self.is_up() {
            Link::Offline
        } else if self
            .last_event_at_ms
            .is_some_and(|t| now_ms.saturating_sub(t) < ONLINE_WINDOW_MS)
        {
            Link::Online
        } else {
            Link::Connected
        }
    }

    /// Why the instance is not up, in one line (`None` when it is).
    pub fn why_not_up(&self) -> Option<String> {
        if self.is_up() {
            return None;
        }
        use crate::telemetry::term;
        Some(match (self.run_state, &self.quarantine_reason) {
            (RunState::Quarantined, Some(r)) => format!("quarantined: {r}"),
            (RunState::Running, _) => match &self.status_detail {
                Some(d) => format!("{}: {d}", term(&self.status)),
                None => term(&self.status),
            },
            (state, _) => match &self.last_error {
                Some(e) => format!("{}: {}", term(&state), e.message),
                None => term(&state),
            },
        })
    }
}

/// The shared, lock-protected status.
pub struct StatusCell(Mutex<InstanceStatus>);

impl StatusCell {
    pub fn new(plugin_version: &str) -> Self {
        Self(Mutex::new(InstanceStatus {
            run_state: RunState::Starting,
            status: ConnectorStatus::NotConfigured,
            status_detail: None,
            last_error: None,
            last_event_at_ms: None,
            restarts: 0,
            quarantine_reason: None,
            login_step: None,
            plugin_version: plugin_version.into(),
            events_dropped: 0,
            writes_applied: 0,
            writes_failed: 0,
            last_write: None,
        }))
    }

    /// The status as shown: the connector's last word is only shown as
    /// `up-and-running` while the supervisor has it running; a quarantined,
    /// restarting, disabled or stopped instance is not up, whatever it said
    /// before it went down.
    pub fn get(&self) -> InstanceStatus {
        let mut s = self.0.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if s.status == ConnectorStatus::UpAndRunning
            && !matches!(s.run_state, RunState::Running | RunState::Starting)
        {
            s.status = match s.run_state {
                RunState::Disabled => ConnectorStatus::Disabled,
                _ => ConnectorStatus::ConnectionError,
            };
        }
        s
    }

    pub fn update(&self, f: impl FnOnce(&mut InstanceStatus)) {
        f(&mut self.0.lock().unwrap_or_else(|p| p.into_inner()))
    }

    pub fn error(&self, message: impl Into<String>) {
        let message = message.into();
        self.update(|s| {
            s.last_error = Some(ErrorNote {
                at_ms: crate::store::now_ms(),
                message,
            })
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_instance_down_is_never_shown_up() {
        let cell = StatusCell::new("1.0.0");
        cell.update(|s| {
            s.run_state = RunState::Running;
            s.status = ConnectorStatus::UpAndRunning;
        });
        assert_eq!(cell.get().status, ConnectorStatus::UpAndRunning);
        for (state, shown) in [
            (RunState::Quarantined, ConnectorStatus::ConnectionError),
            (RunState::Restarting, ConnectorStatus::ConnectionError),
            (RunState::Stopped, ConnectorStatus::ConnectionError),
            (RunState::Disabled, ConnectorStatus::Disabled),
        ] {
            cell.update(|s| s.run_state = state);
            assert_eq!(cell.get().status, shown, "{state:?}");
        }
    }

    #[test]
    fn link_agrees_with_status() {
        let cell = StatusCell::new("1.0.0");
        let now = 10 * ONLINE_WINDOW_MS;
        cell.update(|s| {
            s.run_state = RunState::Running;
            s.status = ConnectorStatus::UpAndRunning;
            s.last_event_at_ms = Some(now - 1000);
        });
        assert_eq!(cell.get().link(now), Link::Online);
        assert_eq!(cell.get().link(now + ONLINE_WINDOW_MS), Link::Connected);
        for bad in [
            ConnectorStatus::ConnectionError,
            ConnectorStatus::Forbidden,
            ConnectorStatus::LoginRequired,
            ConnectorStatus::NotConfigured,
        ] {
            cell.update(|s| {
                s.status = bad;
                s.status_detail = Some("pbx unreachable".into());
            });
            let st = cell.get();
            assert_eq!(st.link(now), Link::Offline, "{bad:?}");
            assert!(st.why_not_up().unwrap().ends_with(": pbx unreachable"));
        }
    }
}
