//! Changes an operator made on another node, taken in here: the database
//! wakes every node on each commit, naming what changed.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast::error::RecvError;

use super::leases::Keeper;
use crate::api::AdminAuth;
use crate::presence::Presence;
use crate::runtime::Runtime;
use crate::store::{ClusterSignal, Coordination};

/// Everything a node follows.
const ALL: [&str; 6] = [
    "plugins",
    "connectors",
    "users",
    "notes",
    "settings",
    "tokens",
];

/// Follow changes for as long as the hub runs.
pub fn spawn(
    coord: Arc<dyn Coordination>,
    runtime: Arc<Runtime>,
    presence: Arc<Presence>,
    auth: Arc<AdminAuth>,
    keeper: Arc<Keeper>,
) {
    let me = coord.node_id().to_string();
    let mut signals = coord.subscribe();
    tokio::spawn(async move {
        loop {
            let mut tables = BTreeSet::new();
            let first = signals.recv().await;
            if !take(first, &me, &mut tables) {
                return;
            }
            // A burst of commits (an import) is taken in once.
            tokio::time::sleep(Duration::from_millis(50)).await;
            while let Ok(s) = signals.try_recv() {
                take(Ok(s), &me, &mut tables);
            }
            if tables.is_empty() {
                continue;
            }
            tracing::debug!(?tables, "taking in changes made on another node");
            if tables.contains("plugins")
                && let Err(e) = runtime.follow_stored_plugins().await
            {
                tracing::warn!(error = %e, "plugins changed on another node not taken in");
            }
            if tables.contains("plugins") || tables.contains("connectors") {
                if let Err(e) = runtime.follow_stored_connectors().await {
                    tracing::warn!(error = %e, "connectors changed on another node not taken in");
                }
                keeper.poke();
            }
            if (tables.contains("users") || tables.contains("notes") || tables.contains("settings"))
                && let Err(e) = presence.follow_store().await
            {
                tracing::warn!(error = %e, "users, notes or rules changed on another node not taken in");
            }
            if tables.contains("tokens") {
                let a = auth.clone();
                if let Ok(Err(e)) = tokio::task::spawn_blocking(move || a.follow_store()).await {
                    tracing::warn!(error = %e, "tokens changed on another node not taken in");
                }
            }
        }
    });
}

/// Add what a signal says changed; false once the channel closed.
fn take(signal: Result<ClusterSignal, RecvError>, me: &str, tables: &mut BTreeSet<String>) -> bool {
    match signal {
        Ok(ClusterSignal::Changed { table, origin }) => {
            if origin != me {
                tables.insert(table);
            }
        }
        Ok(ClusterSignal::Message { .. }) => {}
        // Something may have been missed: take everything in again.
        Ok(ClusterSignal::Reconnected) | Err(RecvError::Lagged(_)) => {
            tables.extend(ALL.iter().map(|s| s.to_string()));
        }
        Err(RecvError::Closed) => return false,
    }
    true
}
