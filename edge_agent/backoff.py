"""Exponential backoff with full jitter: ``sleep = uniform(0, min(cap, base·2^n))``.

Full jitter spreads a fleet's retries after a shared outage instead of letting every
node hit the registry in the same second.
"""

from __future__ import annotations

import random


class Backoff:
    def __init__(self, base_s: float, cap_s: float, rng: random.Random | None = None) -> None:
        self.base_s = base_s
        self.cap_s = cap_s
        self.failures = 0
        # Not for secrets: jitter only needs to differ between nodes.
        self._rng = rng or random.Random()  # noqa: S311

    def ceiling(self) -> float:
        """The upper bound of the next delay."""
        # Past ~60 doublings the float overflows; the cap is long reached by then.
        return min(self.cap_s, self.base_s * 2.0 ** min(self.failures, 60))

    def next_delay(self) -> float:
        """The delay before the next attempt; counts one more failure."""
        delay = float(self._rng.uniform(0, self.ceiling()))
        self.failures += 1
        return delay

    def reset(self) -> None:
        self.failures = 0
