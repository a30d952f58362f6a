//! `log`: plugin log lines into the hub's tracing.

use super::super::wit::since_v0_2_0::presence::connector::log;
use super::InstanceState;

impl log::Host for InstanceState {
    fn log(&mut self, level: log::Level, message: String) -> wasmtime::Result<()> {
        let message: String = message.chars().take(4096).collect();
        match level {
            log::Level::Trace => tracing::trace!(target: "plugin", "{message}"),
            log::Level::Debug => tracing::debug!(target: "plugin", "{message}"),
            log::Level::Info => tracing::info!(target: "plugin", "{message}"),
            log::Level::Warn => tracing::warn!(target: "plugin", "{message}"),
            log::Level::Error => tracing::error!(target: "plugin", "{message}"),
        }
        Ok(())
    }
}
