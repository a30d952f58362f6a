//! `presence-hub`: run the hub, rotate its admin token, or restore a backup.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use presence_hub::{Hub, HubConfig, telemetry};

/// Presence connector hub.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    /// TOML configuration file (optional; HUB_* variables override it).
    #[arg(long, short, env = "HUB_CONFIG", global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// The admin token.
    AdminToken {
        #[command(subcommand)]
        action: AdminTokenAction,
    },
    /// Restore a backup (`presence-hubctl backup`) into a new, empty data
    /// folder; the hub must not be running on it. Checks the archive and
    /// opens every connector's secrets before anything takes the folder's
    /// name.
    Restore {
        /// The backup archive.
        #[arg(long)]
        from: PathBuf,
        /// The data folder to create (default: `data_dir` / HUB_DATA_DIR).
        #[arg(long)]
        data: Option<PathBuf>,
        /// The hub's `secret.key`, for a backup made without it.
        #[arg(long)]
        secret_key: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum AdminTokenAction {
    /// Make a new admin token and print it once; the old one stops working
    /// (a running hub on the same data takes the new one within 2 s).
    Rotate {
        /// The hub's data folder (default: `data_dir` / HUB_DATA_DIR).
        #[arg(long)]
        data: Option<PathBuf>,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut config = HubConfig::load(args.config.as_deref(), std::env::vars())?;
    match args.command {
        Some(Command::AdminToken {
            action: AdminTokenAction::Rotate { data },
        }) => {
            if let Some(dir) = data {
                config.data_dir = dir;
            }
            let token = presence_hub::hub::rotate_admin_token(&config)?;
            println!("new admin token (shown once, store it now): {token}");
            println!(
                "the old admin token no longer works (a running hub takes the new one within 2 s)"
            );
            return Ok(());
        }
        Some(Command::Restore {
            from,
            data,
            secret_key,
        }) => {
            let dir = data.unwrap_or(config.data_dir);
            let r = presence_hub::store::backup::restore(&from, &dir, secret_key.as_deref())?;
            println!(
                "restored {} (hub {}, made at {} ms) into {}: {} connectors, {} users",
                from.display(),
                r.manifest.hub_version,
                r.manifest.created_at_ms,
                dir.display(),
                r.connectors,
                r.users
            );
            return Ok(());
        }
        None => {}
    }
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
