//! Retry delays for reconnecting and retrying: exponential, capped, with
//! jitter, so that many connector instances that lost the same server do not
//! come back in step.

/// An exponential back-off with "equal jitter": the n-th delay in a row is
/// drawn from the upper half of `min(cap, base * 2^n)` milliseconds.
///
/// The random input comes from the caller (the host's `random-bytes`), so
/// the type stays pure and testable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backoff {
    base_ms: u64,
    cap_ms: u64,
    failures: u32,
}

impl Backoff {
    /// A back-off whose first delay lies in `[base_ms / 2, base_ms]` and
    /// which never waits longer than `cap_ms`.
    pub const fn new(base_ms: u64, cap_ms: u64) -> Self {
        Self {
            base_ms,
            cap_ms,
            failures: 0,
        }
    }

    /// Failures counted since the last [`reset`](Self::reset).
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// A success: the next delay starts from the base again.
    pub fn reset(&mut self) {
        self.failures = 0;
    }

    /// The ceiling of the next delay, in milliseconds, without counting a
    /// failure.
    pub fn ceiling(&self) -> u64 {
        let factor = 1u64 << self.failures.min(32);
        self.base_ms.saturating_mul(factor).min(self.cap_ms)
    }

    /// Counts one more failure and returns how long to wait before the next
    /// attempt, in milliseconds. `random` is any uniformly random number.
    pub fn next_delay(&mut self, random: u32) -> u64 {
        let ceiling = self.ceiling();
        self.failures = self.failures.saturating_add(1);
        let half = ceiling / 2;
        let spread = ceiling - half;
        half + if spread == 0 {
            0
        } else {
            u64::from(random) % (spread + 1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_stay_in_the_jitter_band_and_are_capped() {
        let mut b = Backoff::new(1_000, 30_000);
        let mut ceilings = Vec::new();
        for i in 0..8 {
            let ceiling = b.ceiling();
            let d = b.next_delay(i * 7_919);
            assert!(d >= ceiling / 2 && d <= ceiling, "{d} outside {ceiling}");
            ceilings.push(ceiling);
        }
        assert_eq!(
            ceilings,
            [1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000, 30_000]
        );
        assert_eq!(b.failures(), 8);
        b.reset();
        assert_eq!(b.ceiling(), 1_000);
    }

    #[test]
    fn extremes_neither_overflow_nor_exceed_the_cap() {
        let mut b = Backoff::new(u64::MAX / 2, 60_000);
        for _ in 0..100 {
            assert!(b.next_delay(u32::MAX) <= 60_000);
        }
        let mut zero = Backoff::new(0, 0);
        assert_eq!(zero.next_delay(5), 0);
    }
}
