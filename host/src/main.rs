//! `presence-hub`: run the hub.

use std::path::PathBuf;

use clap::Parser;
use presence_hub::{Hub, HubConfig, telemetry};

/// Presence connector hub.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    /// TOML configuration file (optional; HUB_* variables override it).
    #[arg(long, short, env = "HUB_CONFIG")]
    config: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let config = HubConfig::load(args.config.as_deref(), std::env::vars())?;
    telemetry::init_logging(&config);
    let hub = Hub::start(config).await?;
    hub.serve(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        tracing::info!("shutting down");
    })
    .await
}
