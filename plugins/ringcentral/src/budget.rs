//! RingCentral's API rate limits, kept *ahead of time*: every request
//! belongs to a throttling group (facts C1 `x-throttling-group`), each group
//! allows so many requests per window per user and app (facts C8: Light 50,
//! Medium 40, Heavy 10, Auth 5 per 60 s by default), and a request goes out
//! only when its group has room. A 429 stops the group completely for the
//! penalty window (`Retry-After` seconds, at least 30 s when absent, doubling
//! while 429s follow each other), because any request inside the window
//! restarts the penalty (RC-DOC `docs/basics/rate-limits.md`). Penalties are
//! stored so a restart after a crash keeps them.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

/// A throttling group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Group {
    Light,
    Medium,
    Heavy,
    Auth,
}

impl Group {
    pub const ALL: [Group; 4] = [Group::Light, Group::Medium, Group::Heavy, Group::Auth];

    /// Reads a group name as configured or as `X-Rate-Limit-Group` writes it
    /// (case-insensitive).
    pub fn parse(name: &str) -> Option<Group> {
        Group::ALL
            .into_iter()
            .find(|g| g.name().eq_ignore_ascii_case(name.trim()))
    }

    pub fn name(self) -> &'static str {
        match self {
            Group::Light => "light",
            Group::Medium => "medium",
            Group::Heavy => "heavy",
            Group::Auth => "auth",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// The default window of every group, in milliseconds.
pub const WINDOW_MS: u64 = 60_000;
/// The wait after a 429 without `Retry-After` (facts C8: "retry ≥30 s
/// later"); doubled for each 429 in a row, up to [`MAX_PENALTY_MS`].
pub const DEFAULT_PENALTY_MS: u64 = 30_000;
/// The longest penalty honoured (a larger `Retry-After` is cut to this).
pub const MAX_PENALTY_MS: u64 = 15 * 60_000;

/// Requests per window for each group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits([u32; 4]);

impl Default for Limits {
    fn default() -> Self {
        Limits([50, 40, 10, 5])
    }
}

impl Limits {
    pub fn get(&self, g: Group) -> u32 {
        self.0[g.index()]
    }
    pub fn set(&mut self, g: Group, n: u32) {
        self.0[g.index()] = n;
    }
}

/// What the server said about a group (`X-Rate-Limit-*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Learned {
    limit: u32,
    window_ms: u64,
}

/// The budget of all groups.
#[derive(Debug, Clone)]
pub struct Budget {
    configured: Limits,
    learned: [Option<Learned>; 4],
    sent: [VecDeque<u64>; 4],
    /// The server said nothing is left until then.
    exhausted_until: [u64; 4],
    /// 429 penalty: nothing at all is sent before then.
    penalty_until: [u64; 4],
    /// 429s in a row.
    strikes: [u32; 4],
}

/// Penalties as stored: group -> until (ms since the epoch).
#[derive(Debug, Default, Serialize, Deserialize)]
struct Stored {
    penalties: Vec<(Group, u64)>,
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim())
}

/// `Retry-After` in milliseconds, where it is a number of seconds (the form
/// RingCentral sends; an HTTP date is not expected and reads as absent).
pub fn retry_after_ms(headers: &[(String, String)]) -> Option<u64> {
    let v = header(headers, "retry-after")?;
    v.parse::<u64>()
        .ok()
        .map(|s| s.saturating_mul(1000))
        .or_else(|| {
            v.parse::<f64>()
                .ok()
                .filter(|s| s.is_finite() && *s >= 0.0)
                .map(|s| (s * 1000.0) as u64)
        })
}

impl Budget {
    /// A budget with these limits, keeping penalties stored by an earlier
    /// run that have not ended by `now`.
    pub fn new(configured: Limits, stored: Option<&[u8]>, now: u64) -> Budget {
        let mut b = Budget {
            configured,
            learned: [None; 4],
            sent: Default::default(),
            exhausted_until: [0; 4],
            penalty_until: [0; 4],
            strikes: [0; 4],
        };
        if let Some(s) = stored.and_then(|s| serde_json::from_slice::<Stored>(s).ok()) {
            for (g, until) in s.penalties {
                if until > now {
                    b.penalty_until[g.index()] = until.min(now + MAX_PENALTY_MS);
                }
            }
        }
        b
    }

    /// The limit in force: what the server said, else the configured one.
    pub fn limit(&self, g: Group) -> (u32, u64) {
        match self.learned[g.index()] {
            Some(l) => (l.limit, l.window_ms),
            None => (self.configured.get(g), WINDOW_MS),
        }
    }

    fn prune(&mut self, g: Group, now: u64) {
        let (_, window) = self.limit(g);
        let log = &mut self.sent[g.index()];
        while log.front().is_some_and(|t| t + window <= now) {
            log.pop_front();
        }
    }

    /// Whether a request of group `g` may go now; otherwise how long to wait.
    pub fn room(&mut self, g: Group, now: u64) -> Result<(), u64> {
        let i = g.index();
        if self.penalty_until[i] > now {
            return Err(self.penalty_until[i] - now);
        }
        if self.exhausted_until[i] > now {
            return Err(self.exhausted_until[i] - now);
        }
        self.prune(g, now);
        let (limit, window) = self.limit(g);
        let log = &self.sent[i];
        if (log.len() as u64) < u64::from(limit.max(1)) {
            Ok(())
        } else {
            Err((log.front().copied().unwrap_or(now) + window)
                .saturating_sub(now)
                .max(1))
        }
    }

    /// Count a request of group `g` sent at `now`.
    pub fn spend(&mut self, g: Group, now: u64) {
        self.sent[g.index()].push_back(now);
    }

    /// Take in `X-Rate-Limit-Group/-Limit/-Remaining/-Window` of an answer to
    /// a request of group `sent_as`. The header's group wins where it names
    /// one of ours (names may change: an unknown name is ignored).
    pub fn learn(&mut self, sent_as: Group, headers: &[(String, String)], now: u64) {
        let g = header(headers, "x-rate-limit-group")
            .and_then(Group::parse)
            .unwrap_or(sent_as);
        let limit = header(headers, "x-rate-limit-limit").and_then(|v| v.parse::<u32>().ok());
        let window = header(headers, "x-rate-limit-window")
            .and_then(|v| v.parse::<u64>().ok())
            .filter(|w| *w > 0)
            .map(|w| w * 1000);
        if let Some(limit) = limit.filter(|l| *l > 0) {
            self.learned[g.index()] = Some(Learned {
                limit,
                window_ms: window.unwrap_or(WINDOW_MS),
            });
        }
        if let Some(remaining) =
            header(headers, "x-rate-limit-remaining").and_then(|v| v.parse::<u64>().ok())
        {
            self.prune(g, now);
            let (limit, window) = self.limit(g);
            if remaining == 0 {
                self.exhausted_until[g.index()] = now + window;
            } else {
                // The server counts more than we sent (another process of
                // the same app and user): count those too.
                let used = u64::from(limit).saturating_sub(remaining);
                let log = &mut self.sent[g.index()];
                while (log.len() as u64) < used {
                    log.push_back(now);
                }
            }
        }
    }

    /// A 429 for group `g`: stop it completely for `Retry-After` (or the
    /// default, doubled per 429 in a row). Returns the end of the penalty.
    pub fn penalize(&mut self, g: Group, retry_after: Option<u64>, now: u64) -> u64 {
        let i = g.index();
        let strikes = self.strikes[i];
        self.strikes[i] = strikes.saturating_add(1);
        let wait = match retry_after {
            Some(ms) => ms.max(1000),
            None => DEFAULT_PENALTY_MS.saturating_mul(1 << strikes.min(5)),
        }
        .min(MAX_PENALTY_MS);
        self.penalty_until[i] = self.penalty_until[i].max(now + wait);
        self.penalty_until[i]
    }

    /// A request of group `g` was answered without a 429.
    pub fn answered(&mut self, g: Group) {
        self.strikes[g.index()] = 0;
    }

    /// Groups in penalty at `now`, with the end of each.
    pub fn penalties(&self, now: u64) -> Vec<(Group, u64)> {
        Group::ALL
            .into_iter()
            .filter(|g| self.penalty_until[g.index()] > now)
            .map(|g| (g, self.penalty_until[g.index()]))
            .collect()
    }

    /// The penalties to store (empty list when none).
    pub fn stored(&self, now: u64) -> Vec<u8> {
        serde_json::to_vec(&Stored {
            penalties: self.penalties(now),
        })
        .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn a_group_sends_its_limit_per_window_and_no_more() {
        let mut b = Budget::new(Limits::default(), None, 0);
        for i in 0..10 {
            assert_eq!(b.room(Group::Heavy, i * 100), Ok(()));
            b.spend(Group::Heavy, i * 100);
        }
        // The 11th waits until the first leaves the window.
        assert_eq!(b.room(Group::Heavy, 1_000), Err(59_000));
        assert_eq!(b.room(Group::Heavy, 60_000), Ok(()));
        // Other groups are not affected.
        assert_eq!(b.room(Group::Light, 1_000), Ok(()));
    }

    #[test]
    fn a_429_stops_the_group_for_retry_after_or_30_s_doubling() {
        let mut b = Budget::new(Limits::default(), None, 0);
        assert_eq!(b.penalize(Group::Medium, Some(45_000), 1_000), 46_000);
        assert_eq!(b.room(Group::Medium, 45_999), Err(1));
        assert_eq!(b.room(Group::Medium, 46_000), Ok(()));
        assert_eq!(b.room(Group::Light, 2_000), Ok(()));
        // Without Retry-After: 30 s, then 60 s for a second 429 in a row.
        let mut b = Budget::new(Limits::default(), None, 0);
        assert_eq!(b.penalize(Group::Light, None, 0), 30_000);
        assert_eq!(b.penalize(Group::Light, None, 30_000), 90_000);
        b.answered(Group::Light);
        assert_eq!(b.penalize(Group::Light, None, 100_000), 130_000);
        assert_eq!(retry_after_ms(&h(&[("Retry-After", "61")])), Some(61_000));
        assert_eq!(retry_after_ms(&h(&[("retry-after", "soon")])), None);
    }

    #[test]
    fn penalties_survive_a_restart_until_they_end() {
        let mut b = Budget::new(Limits::default(), None, 0);
        b.penalize(Group::Heavy, Some(120_000), 10_000);
        let stored = b.stored(20_000);
        let mut again = Budget::new(Limits::default(), Some(&stored), 50_000);
        assert_eq!(again.room(Group::Heavy, 50_000), Err(80_000));
        assert_eq!(again.penalties(50_000), vec![(Group::Heavy, 130_000)]);
        let mut later = Budget::new(Limits::default(), Some(&stored), 200_000);
        assert_eq!(later.room(Group::Heavy, 200_000), Ok(()));
        assert!(later.penalties(200_000).is_empty());
    }

    #[test]
    fn headers_teach_limits_and_what_others_used() {
        let mut b = Budget::new(Limits::default(), None, 0);
        b.learn(
            Group::Light,
            &h(&[
                ("X-Rate-Limit-Group", "heavy"),
                ("X-Rate-Limit-Limit", "3"),
                ("X-Rate-Limit-Remaining", "1"),
                ("X-Rate-Limit-Window", "30"),
            ]),
            0,
        );
        assert_eq!(b.limit(Group::Heavy), (3, 30_000));
        // Two used per the server: one left.
        assert_eq!(b.room(Group::Heavy, 0), Ok(()));
        b.spend(Group::Heavy, 0);
        assert_eq!(b.room(Group::Heavy, 1), Err(29_999));
        // Remaining 0: nothing until the window passes.
        b.learn(
            Group::Light,
            &h(&[
                ("X-Rate-Limit-Remaining", "0"),
                ("X-Rate-Limit-Limit", "50"),
            ]),
            5_000,
        );
        assert_eq!(b.room(Group::Light, 5_000), Err(60_000));
        assert_eq!(b.room(Group::Light, 65_000), Ok(()));
    }
}
