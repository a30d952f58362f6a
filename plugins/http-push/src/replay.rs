//! Replay protection: signatures accepted within the skew window.
//!
//! A signed request stays valid for as long as its timestamp passes the skew
//! check, so the set only has to remember a signature until then. It lives in
//! memory: after a restart a request captured in the last window could be
//! replayed once, which is the price of not writing every request to storage.

use std::collections::HashMap;

use crate::signature::SIGNATURE_LEN;

/// How many signatures the set holds at most. At ~50 bytes an entry that is
/// a few MiB, well inside the plugin's memory limit; a sender that needs more
/// than this per window should batch its updates.
pub const CAPACITY: usize = 50_000;

/// Pruning scans the whole set, so do it at most once a second unless full.
const PRUNE_INTERVAL_MS: u64 = 1000;

/// Why a verified request cannot be accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayError {
    /// This signature was accepted before, within the window.
    Replayed,
    /// The set is full of signatures still inside the window.
    Full,
}

/// Signatures already accepted, with their timestamps.
#[derive(Debug, Default)]
pub struct ReplayGuard {
    seen: HashMap<[u8; SIGNATURE_LEN], u64>,
    next_prune_ms: u64,
}

impl ReplayGuard {
    /// Checks that `signature` may be accepted now. Call [`Self::record`]
    /// once the request has been accepted; a request refused for its body can
    /// be corrected and resent without tripping the replay check.
    pub fn check(
        &mut self,
        signature: &[u8; SIGNATURE_LEN],
        now_ms: u64,
        window_secs: u64,
    ) -> Result<(), ReplayError> {
        if now_ms >= self.next_prune_ms || self.seen.len() >= CAPACITY {
            self.prune(now_ms, window_secs);
            self.next_prune_ms = now_ms.saturating_add(PRUNE_INTERVAL_MS);
        }
        if self.seen.contains_key(signature) {
            Err(ReplayError::Replayed)
        } else if self.seen.len() >= CAPACITY {
            Err(ReplayError::Full)
        } else {
            Ok(())
        }
    }

    /// Remembers an accepted signature.
    pub fn record(&mut self, signature: [u8; SIGNATURE_LEN], timestamp_secs: u64) {
        self.seen.insert(signature, timestamp_secs);
    }

    /// Number of signatures remembered.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// Drops signatures whose timestamp the skew check now refuses anyway.
    /// The window is applied here rather than stored per entry so that a
    /// reconfigured, wider window never forgets a signature too early.
    fn prune(&mut self, now_ms: u64, window_secs: u64) {
        self.seen.retain(|_, timestamp_secs| {
            let expires_ms = timestamp_secs
                .saturating_add(window_secs)
                .saturating_mul(1000);
            expires_ms >= now_ms
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW_MS: u64 = 1_700_000_000_000;

    #[test]
    fn refuses_a_signature_seen_within_the_window() {
        let mut guard = ReplayGuard::default();
        let sig = [1; SIGNATURE_LEN];
        assert_eq!(guard.check(&sig, NOW_MS, 300), Ok(()));
        // Checking alone does not remember: a refused body may be resent.
        assert_eq!(guard.check(&sig, NOW_MS, 300), Ok(()));
        guard.record(sig, NOW_MS / 1000);
        assert_eq!(
            guard.check(&sig, NOW_MS + 1, 300),
            Err(ReplayError::Replayed)
        );
        assert_eq!(guard.check(&[2; SIGNATURE_LEN], NOW_MS + 1, 300), Ok(()));
    }

    #[test]
    fn forgets_signatures_once_their_timestamp_is_out_of_the_window() {
        let mut guard = ReplayGuard::default();
        // Stamped 100 s in the future: must be kept until 400 s from now.
        guard.record([1; SIGNATURE_LEN], NOW_MS / 1000 + 100);
        guard.record([2; SIGNATURE_LEN], NOW_MS / 1000);
        let later = NOW_MS + 301_000;
        assert_eq!(guard.check(&[3; SIGNATURE_LEN], later, 300), Ok(()));
        assert_eq!(guard.len(), 1);
        assert_eq!(
            guard.check(&[1; SIGNATURE_LEN], later, 300),
            Err(ReplayError::Replayed)
        );
        assert_eq!(
            guard.check(&[3; SIGNATURE_LEN], NOW_MS + 401_000, 300),
            Ok(())
        );
        assert_eq!(guard.len(), 0);
    }

    #[test]
    fn refuses_new_signatures_when_full() {
        let mut guard = ReplayGuard::default();
        for i in 0..CAPACITY {
            let mut sig = [0; SIGNATURE_LEN];
            sig[..8].copy_from_slice(&(i as u64).to_le_bytes());
            guard.record(sig, NOW_MS / 1000);
        }
        assert_eq!(
            guard.check(&[0xff; SIGNATURE_LEN], NOW_MS, 300),
            Err(ReplayError::Full)
        );
        // Once the window has passed, room is made at once.
        assert_eq!(
            guard.check(&[0xff; SIGNATURE_LEN], NOW_MS + 301_000, 300),
            Ok(())
        );
    }
}
