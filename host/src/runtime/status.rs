//! What an instance's supervisor knows about it, shared with the API.

use std::sync::Mutex;

use serde::Serialize;

use crate::engine::{ConnectorStatus, LoginStep};

/// Where the supervisor has the instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
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
#[derive(Debug, Clone, Serialize)]
pub struct ErrorNote {
    pub at_ms: u64,
    pub message: String,
}

/// An instance's status as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct InstanceStatus {
    pub run_state: RunState,
    /// The connector's own status (the seeds' values).
    pub status: ConnectorStatus,
    pub status_detail: Option<String>,
    pub last_error: Option<ErrorNote>,
    pub last_event_at_ms: Option<u64>,
    pub restarts: u64,
    pub quarantine_reason: Option<String>,
    pub login_step: Option<LoginStep>,
    pub plugin_version: String,
    pub events_dropped: u64,
    /// Write-backs that landed (applied, restored, left as the user set).
    pub writes_applied: u64,
    /// Write-backs that failed, were refused or are unsupported.
    pub writes_failed: u64,
    /// The last write-back whose outcome came.
    pub last_write: Option<super::writes::WriteRecord>,
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
}
