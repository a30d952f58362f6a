//! `report`: what the plugin learned. Presence goes into the presence
//! service's inbox (an enqueue: the guest never waits for the merge, the
//! event log or the feed); status into the instance's status cell; write
//! outcomes into the write registry.

use super::super::convert;
use super::super::wit::since_v0_2_0::presence::connector::report;
use super::super::wit::types;
use super::super::writes::WriteState;
use super::InstanceState;

impl report::Host for InstanceState {
    fn presence(&mut self, update: types::PresenceUpdate) -> wasmtime::Result<()> {
        self.reported();
        let report = convert::presence(update);
        // An echo must name a write of this instance; anything else is the
        // plugin's mistake, taken as the platform's own change.
        let report = match report.origin {
            crate::engine::UpdateOrigin::HubWrite { write_id }
                if self
                    .services
                    .writes
                    .get(write_id)
                    .is_none_or(|w| *w.instance != *self.id.instance) =>
            {
                tracing::warn!(
                    write_id,
                    "presence update names a write this instance never had; taken as the platform's"
                );
                crate::engine::PresenceReport {
                    origin: crate::engine::UpdateOrigin::Platform,
                    ..report
                }
            }
            _ => report,
        };
        self.services.presence.report(&self.id.instance, report);
        Ok(())
    }

    fn endpoint_state(
        &mut self,
        endpoint: String,
        state: types::EndpointState,
        detail: Option<String>,
    ) -> wasmtime::Result<()> {
        self.reported();
        self.services.presence.endpoint_state(
            &self.id.instance,
            endpoint,
            convert::endpoint_state(state),
            detail,
        );
        Ok(())
    }

    fn status(
        &mut self,
        status: types::ConnectorStatus,
        detail: Option<String>,
    ) -> wasmtime::Result<()> {
        self.reported();
        let status = convert::status(status);
        let words = crate::telemetry::term(&status);
        let shown = detail.as_deref().unwrap_or("");
        // A connector that is not up (lost connection, refused login) is
        // worth an operator's attention: WARN; back up is INFO.
        if status == crate::engine::ConnectorStatus::UpAndRunning {
            tracing::info!(status = %words, detail = shown, "connector status");
        } else {
            tracing::warn!(status = %words, detail = shown, "connector status");
        }
        let mut changed = false;
        self.status.update(|s| {
            changed = s.status != status;
            s.status = status;
            s.status_detail = detail.clone();
        });
        // Status changes go to the event log (a repeated status, which
        // plugins send with every retry, does not).
        if changed {
            self.services.presence.decision(
                &self.id.instance,
                None,
                "connector",
                match &detail {
                    Some(d) => format!("status {words}: {d}"),
                    None => format!("status {words}"),
                },
            );
        }
        Ok(())
    }

    fn login_step(&mut self, step: Option<types::LoginStep>) -> wasmtime::Result<()> {
        self.reported();
        self.status
            .update(|s| s.login_step = step.map(convert::login_step));
        Ok(())
    }

    fn directory(
        &mut self,
        entries: Vec<types::DirectoryEntry>,
        complete: bool,
    ) -> wasmtime::Result<()> {
        self.reported();
        let first_page = std::mem::replace(&mut self.directory_complete, complete);
        self.services.presence.directory(
            &self.id.instance,
            entries.into_iter().map(convert::directory_entry).collect(),
            first_page,
            complete,
        );
        Ok(())
    }

    fn write_outcome(&mut self, write: u64, outcome: types::WriteOutcome) -> wasmtime::Result<()> {
        self.reported();
        let Some(record) = self
            .services
            .writes
            .outcome(&self.id.instance, write, outcome)
        else {
            tracing::warn!(
                write,
                "outcome for an unknown or already settled write ignored"
            );
            return Ok(());
        };
        if record.state.is_failure() {
            tracing::warn!(write, "{}", record.summary());
        } else {
            tracing::info!(write, "{}", record.summary());
        }
        self.status.update(|s| {
            if record.state.is_failure() {
                s.writes_failed += 1;
            } else if record.state != WriteState::Superseded {
                s.writes_applied += 1;
            }
            s.last_write = Some(record.clone());
        });
        self.services.write_settled(&record);
        Ok(())
    }
}
