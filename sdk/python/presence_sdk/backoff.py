"""Exponential backoff: `base_ms` doubling per attempt up to `max_ms`."""


class Backoff:
    """`delay(attempt)`: base_ms × 2^attempt, capped at max_ms (ms). Use
    with `timeutil.retry_after_ms`, which wins when the server says."""

    def __init__(self, base_ms=1_000, max_ms=300_000):
        self.base_ms = base_ms
        self.max_ms = max_ms
        self.attempt = 0

    def delay(self, attempt=None):
        a = self.attempt if attempt is None else attempt
        return min(self.max_ms, self.base_ms * (2 ** min(a, 30)))

    def next(self):
        """The next delay of a running sequence; `reset()` after a success."""
        d = self.delay()
        self.attempt += 1
        return d

    def reset(self):
        self.attempt = 0
