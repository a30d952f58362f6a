//! `report`: what the plugin learned, into the board, status and write registry.

use super::super::convert;
use super::super::wit::since_v0_2_0::presence::connector::report;
use super::super::wit::types;
use super::super::writes::WriteState;
use super::InstanceState;
use crate::store::now_ms;

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
                    .is_none_or(|w| w.instance != self.id.instance) =>
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
        let endpoint = report.endpoint.clone();
        let detail = describe_report(&report);
        // Reports older than the last one (by source sequence) change nothing.
        if self
            .services
            .board
            .presence(&self.id.instance, report, now_ms())
        {
            self.services
                .observer
                .observed(&self.id.instance, &endpoint, detail);
        }
        Ok(())
    }

    fn endpoint_state(
        &mut self,
        endpoint: String,
        state: types::EndpointState,
        detail: Option<String>,
    ) -> wasmtime::Result<()> {
        self.reported();
        let state = convert::endpoint_state(state);
        let text = format!(
            "endpoint {:?}{}",
            state,
            detail
                .as_deref()
                .map(|d| format!(": {d}"))
                .unwrap_or_default()
        );
        // A repeated state (a plugin may confirm it with every update)
        // changes nothing: no log entry, no recomputation.
        if self
            .services
            .board
            .endpoint_state(&self.id.instance, &endpoint, state, detail, now_ms())
        {
            self.services
                .observer
                .observed(&self.id.instance, &endpoint, text);
        }
        Ok(())
    }

    fn status(
        &mut self,
        status: types::ConnectorStatus,
        detail: Option<String>,
    ) -> wasmtime::Result<()> {
        self.reported();
        let status = convert::status(status);
        tracing::info!(
            ?status,
            detail = detail.as_deref().unwrap_or(""),
            "connector status"
        );
        self.status.update(|s| {
            s.status = status;
            s.status_detail = detail;
        });
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
        self.services.board.directory(
            &self.id.instance,
            entries.into_iter().map(convert::directory_entry).collect(),
            first_page,
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
        self.services.observer.decision(
            &self.id.instance,
            Some(&record.endpoint),
            "write",
            record.summary(),
        );
        Ok(())
    }
}

/// A report in one line for the event log.
fn describe_report(r: &crate::engine::PresenceReport) -> String {
    let mut parts = Vec::new();
    match &r.origin {
        crate::engine::UpdateOrigin::Platform => {}
        crate::engine::UpdateOrigin::HubWrite { write_id } => {
            parts.push(format!("echo of hub write {write_id}"))
        }
        crate::engine::UpdateOrigin::ConnectorRule { rule } => {
            parts.push(format!("caused by the connector's rule {rule:?}"))
        }
    }
    if let Some(c) = &r.calendar {
        parts.push(format!(
            "calendar {} items{}",
            c.items.len(),
            if c.out_of_office.is_some() {
                ", out of office"
            } else {
                ""
            }
        ));
    }
    if let Some(t) = &r.telephony {
        parts.push(format!(
            "telephony {:?}{}{}",
            t.line,
            if t.do_not_disturb { " dnd" } else { "" },
            t.forward
                .as_ref()
                .map(|f| format!(" forward {f:?}"))
                .unwrap_or_default()
        ));
    }
    if let Some(x) = &r.rich {
        parts.push(format!(
            "rich {:?}{}{}",
            x.availability,
            x.activity
                .as_ref()
                .map(|a| format!(" {a:?}"))
                .unwrap_or_default(),
            x.note
                .as_ref()
                .map(|n| format!(" note {:?}", n.chars().take(80).collect::<String>()))
                .unwrap_or_default()
        ));
    }
    parts.join("; ")
}
