//! Write-backs and their outcomes: each write gets an id from the host, the
//! plugin reports what became of it by that id, and presence updates the
//! write caused carry it (contract 0.2.0). Operators read them through the
//! API and the event log.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

use serde::Serialize;

use super::wit::types as wit;
use crate::engine::sync::{WriteIds, WriteResult};
use crate::store::now_ms;

/// Writes kept for the API, newest last; older ones are forgotten.
const KEPT: usize = 10_000;

/// Where a write stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum WriteState {
    /// Accepted by the plugin; its outcome has not come yet.
    Pending,
    /// Accepted by a plugin on contract 0.1.0, which reports no outcome.
    Accepted,
    Applied,
    Restored,
    /// A restore left the state the person set after the hub's write.
    UserChanged,
    Failed,
    Superseded,
    Unsupported,
    /// The plugin refused the request itself (an error from the call).
    Refused,
}

impl WriteState {
    /// Whether the write ended in failure (for the connector status).
    pub fn is_failure(self) -> bool {
        matches!(
            self,
            WriteState::Failed | WriteState::Refused | WriteState::Unsupported
        )
    }
}

/// One write as the API shows it.
#[derive(Debug, Clone, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct WriteRecord {
    pub id: u64,
    pub instance: String,
    pub endpoint: String,
    /// `set <availability>` or `restore`.
    pub action: String,
    pub state: WriteState,
    /// The plugin's words for a failure, refusal or unsupported write.
    pub detail: Option<String>,
    /// The platform's answer code (HTTP or SIP status), where there was one.
    pub platform_status: Option<u16>,
    pub retryable: Option<bool>,
    pub retry_after_ms: Option<u64>,
    pub requested_at_ms: u64,
    pub finished_at_ms: Option<u64>,
}

/// Every recent write, by id.
pub struct WriteRegistry {
    ids: Arc<WriteIds>,
    records: Mutex<(BTreeMap<u64, WriteRecord>, VecDeque<u64>)>,
}

impl Default for WriteRegistry {
    fn default() -> Self {
        Self::new(Arc::new(WriteIds::starting_at(
            now_ms().saturating_mul(1000),
        )))
    }
}

/// The action in words, for the API and the event log.
pub fn describe_action(a: &wit::WriteAction) -> String {
    match a {
        wit::WriteAction::Set(i) => {
            let mut s = format!("set {}", availability_name(i.availability));
            if let Some(scope) = &i.dnd_scope {
                s.push_str(match scope {
                    wit::DndScope::AllCalls => " (all calls)",
                    wit::DndScope::QueueCalls => " (queue calls)",
                });
            }
            if let Some(ms) = i.expires_in_ms {
                s.push_str(&format!(" for {ms} ms"));
            }
            s
        }
        wit::WriteAction::Restore => "restore".into(),
    }
}

fn availability_name(a: wit::Availability) -> &'static str {
    match a {
        wit::Availability::Available => "available",
        wit::Availability::Away => "away",
        wit::Availability::Busy => "busy",
        wit::Availability::DoNotDisturb => "do-not-disturb",
        wit::Availability::Offline => "offline",
        wit::Availability::Unknown => "unknown",
    }
}

impl WriteRegistry {
    /// A registry whose writes take their ids from `ids` (shared with the
    /// presence service's sync).
    pub fn new(ids: Arc<WriteIds>) -> Self {
        Self {
            ids,
            records: Mutex::default(),
        }
    }

    /// Open a write and give it its id.
    pub fn open(&self, instance: &str, endpoint: &str, action: &wit::WriteAction) -> u64 {
        let id = self.ids.next();
        self.open_as(id, instance, endpoint, action);
        id
    }

    /// Open a write whose id was given already (a sync decision).
    pub fn open_as(&self, id: u64, instance: &str, endpoint: &str, action: &wit::WriteAction) {
        let record = WriteRecord {
            id,
            instance: instance.to_owned(),
            endpoint: endpoint.to_owned(),
            action: describe_action(action),
            state: WriteState::Pending,
            detail: None,
            platform_status: None,
            retryable: None,
            retry_after_ms: None,
            requested_at_ms: now_ms(),
            finished_at_ms: None,
        };
        let mut g = self.records.lock().unwrap_or_else(|p| p.into_inner());
        let (map, order) = &mut *g;
        map.insert(id, record);
        order.push_back(id);
        // The oldest settled write goes first: a pending one still owes
        // its outcome to whoever waits for it (the sync).
        while order.len() > KEPT {
            let pos = order
                .iter()
                .position(|id| map.get(id).is_none_or(|r| r.state != WriteState::Pending))
                .unwrap_or(0);
            if let Some(old) = order.remove(pos) {
                map.remove(&old);
            }
        }
    }

    /// Settle a write; `None` if it is unknown (forgotten, or not this
    /// instance's: a plugin cannot settle another instance's writes) or was
    /// settled already (a plugin reports one outcome per write).
    pub fn settle(
        &self,
        instance: &str,
        id: u64,
        state: WriteState,
        detail: Option<String>,
        failure: Option<&wit::WriteFailure>,
    ) -> Option<WriteRecord> {
        let mut g = self.records.lock().unwrap_or_else(|p| p.into_inner());
        let r = g.0.get_mut(&id)?;
        if r.instance != instance || r.state != WriteState::Pending {
            return None;
        }
        r.state = state;
        r.detail = detail;
        if let Some(f) = failure {
            r.platform_status = f.status;
            r.retryable = Some(f.retryable);
            r.retry_after_ms = f.retry_after_ms;
        }
        r.finished_at_ms = Some(now_ms());
        Some(r.clone())
    }

    /// Settle from a plugin's reported outcome.
    pub fn outcome(
        &self,
        instance: &str,
        id: u64,
        outcome: wit::WriteOutcome,
    ) -> Option<WriteRecord> {
        match outcome {
            wit::WriteOutcome::Applied => {
                self.settle(instance, id, WriteState::Applied, None, None)
            }
            wit::WriteOutcome::Restored => {
                self.settle(instance, id, WriteState::Restored, None, None)
            }
            wit::WriteOutcome::UserChanged => {
                self.settle(instance, id, WriteState::UserChanged, None, None)
            }
            wit::WriteOutcome::Superseded => {
                self.settle(instance, id, WriteState::Superseded, None, None)
            }
            wit::WriteOutcome::Unsupported(m) => {
                self.settle(instance, id, WriteState::Unsupported, Some(m), None)
            }
            wit::WriteOutcome::Failed(f) => self.settle(
                instance,
                id,
                WriteState::Failed,
                Some(f.message.clone()),
                Some(&f),
            ),
        }
    }

    /// Settle every write of `instance` still pending when its run ended
    /// (crash, restart, stop): the plugin can no longer report them, so they
    /// fail, retryable, saying why.
    pub fn abandon(&self, instance: &str, why: &str) -> Vec<WriteRecord> {
        let pending: Vec<u64> = {
            let g = self.records.lock().unwrap_or_else(|p| p.into_inner());
            g.0.values()
                .filter(|r| r.instance == instance && r.state == WriteState::Pending)
                .map(|r| r.id)
                .collect()
        };
        let failure = wit::WriteFailure {
            message: why.to_owned(),
            retryable: true,
            retry_after_ms: None,
            status: None,
        };
        pending
            .into_iter()
            .filter_map(|id| {
                self.settle(
                    instance,
                    id,
                    WriteState::Failed,
                    Some(why.to_owned()),
                    Some(&failure),
                )
            })
            .collect()
    }

    pub fn get(&self, id: u64) -> Option<WriteRecord> {
        let g = self.records.lock().unwrap_or_else(|p| p.into_inner());
        g.0.get(&id).cloned()
    }

    /// An instance's writes, newest first, at most `limit`.
    pub fn of_instance(&self, instance: &str, limit: usize) -> Vec<WriteRecord> {
        let g = self.records.lock().unwrap_or_else(|p| p.into_inner());
        g.1.iter()
            .rev()
            .filter_map(|id| g.0.get(id))
            .filter(|r| r.instance == instance)
            .take(limit)
            .cloned()
            .collect()
    }
}

impl WriteRecord {
    /// The outcome in the sync engine's terms (`None` while pending).
    pub fn result(&self) -> Option<WriteResult> {
        let detail = || self.detail.clone().unwrap_or_default();
        Some(match self.state {
            WriteState::Pending => return None,
            WriteState::Accepted | WriteState::Applied => WriteResult::Applied,
            WriteState::Restored => WriteResult::Restored,
            WriteState::UserChanged => WriteResult::UserChanged,
            WriteState::Superseded => WriteResult::Superseded,
            WriteState::Failed => WriteResult::Failed {
                message: detail(),
                retryable: self.retryable.unwrap_or(false),
                retry_after_ms: self.retry_after_ms,
                status: self.platform_status,
            },
            WriteState::Unsupported | WriteState::Refused => WriteResult::Refused(detail()),
        })
    }

    /// The write in one line for the event log.
    pub fn summary(&self) -> String {
        let state = serde_json::to_value(self.state)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        let mut s = format!(
            "write {} to {}: {} -> {state}",
            self.id, self.endpoint, self.action
        );
        if let Some(code) = self.platform_status {
            s.push_str(&format!(" (status {code})"));
        }
        if let Some(d) = &self.detail {
            s.push_str(&format!(": {d}"));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_outcome_per_write_and_only_from_its_instance() {
        let w = WriteRegistry::default();
        let id = w.open("a", "alice", &wit::WriteAction::Restore);
        assert!(w.outcome("b", id, wit::WriteOutcome::Restored).is_none());
        let r = w.outcome("a", id, wit::WriteOutcome::Restored).unwrap();
        assert_eq!(r.state, WriteState::Restored);
        assert!(w.outcome("a", id, wit::WriteOutcome::Applied).is_none());
        assert_eq!(w.get(id).unwrap().state, WriteState::Restored);
        let id2 = w.open("a", "bob", &wit::WriteAction::Restore);
        assert!(id2 > id);
        let f = wit::WriteFailure {
            message: "Forbidden".into(),
            retryable: false,
            retry_after_ms: None,
            status: Some(403),
        };
        let r = w.outcome("a", id2, wit::WriteOutcome::Failed(f)).unwrap();
        assert_eq!(
            (r.state, r.platform_status),
            (WriteState::Failed, Some(403))
        );
        assert_eq!(w.of_instance("a", 10).len(), 2);
        let id3 = w.open("a", "carol", &wit::WriteAction::Restore);
        let gone = w.abandon("a", "the connector crashed");
        assert_eq!(gone.iter().map(|r| r.id).collect::<Vec<_>>(), vec![id3]);
        assert_eq!(w.get(id3).unwrap().retryable, Some(true));
    }
}
