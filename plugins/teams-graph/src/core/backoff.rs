//! Per-user back-off: a user whose look-up or presence read Graph refuses
//! (403, 404 or another 4xx) is asked again on its own, later each time, so
//! one refused user costs a request now and then instead of one per poll.

/// Graph refused one user; when to ask again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Refusal {
    /// Refusals in a row.
    pub strikes: u32,
    /// Not asked again before this time.
    pub until: u64,
}

impl Refusal {
    /// One more refusal at `now`: the wait starts at `base` and doubles with
    /// each refusal in a row, up to `max`.
    pub fn strike(prev: Option<Refusal>, now: u64, base: u64, max: u64) -> Refusal {
        let strikes = prev.map_or(0, |r| r.strikes).saturating_add(1);
        let wait = base.saturating_mul(1u64 << (strikes - 1).min(20)).min(max);
        Refusal {
            strikes,
            until: now + wait,
        }
    }

    /// Whether it may be asked again.
    pub fn due(&self, now: u64) -> bool {
        now >= self.until
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wait_doubles_up_to_the_cap() {
        let mut r = None;
        let mut waits = Vec::new();
        for _ in 0..8 {
            let next = Refusal::strike(r, 1_000, 2_000, 60_000);
            waits.push(next.until - 1_000);
            r = Some(next);
        }
        assert_eq!(
            waits,
            [2_000, 4_000, 8_000, 16_000, 32_000, 60_000, 60_000, 60_000]
        );
        let r = r.unwrap();
        assert!(!r.due(r.until - 1));
        assert!(r.due(r.until));
        // Many refusals never overflow.
        let many = Refusal {
            strikes: u32::MAX,
            until: 0,
        };
        assert_eq!(Refusal::strike(Some(many), 0, 2_000, 60_000).until, 60_000);
    }
}
