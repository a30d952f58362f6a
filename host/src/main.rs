//! `presence-hub`: run the hub, rotate its admin token, restore a backup, or
//! copy a SQLite hub into PostgreSQL.

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
    /// Copy this SQLite hub (its data folder: plugins, connectors with
    /// their secrets, users, notes, tokens, key-value data, settings, the
    /// event log) into an empty PostgreSQL database, in one transaction.
    /// Stop the hub first: what it writes meanwhile is not copied. Secrets
    /// stay sealed with the data folder's secret.key, which every node on
    /// the database then needs.
    CopyToPostgres {
        /// The target database (postgres://user:password@host:port/database).
        #[arg(long, env = "HUB_DATABASE_URL", hide_env_values = true)]
        database_url: String,
        /// The SQLite hub's data folder (default: `data_dir` / HUB_DATA_DIR).
        #[arg(long)]
        data: Option<PathBuf>,
        /// Delete the hub data the target holds and copy over it.
        #[arg(long)]
        replace: bool,
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
        Some(Command::CopyToPostgres {
            database_url,
            data,
            replace,
        }) => {
            let dir = data.unwrap_or(config.data_dir);
            let r = presence_hub::store::copy::sqlite_to_postgres(&dir, &database_url, replace)?;
            println!("read from {}: {}", dir.display(), r.read);
            println!("the PostgreSQL database now holds: {}", r.written);
            println!(
                "secrets and key-value data stay sealed with {key}: copy it into the data folder \
                 of every node that uses this database (mode 0600), or they refuse to start",
                key = dir.join("secret.key").display()
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
