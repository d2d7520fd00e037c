"""A token bucket shared by every fetch: the node's download bandwidth cap."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class TokenBucket:
    """``rate`` bytes per second (0: no cap), at most ``burst`` bytes at once.

    ``take`` blocks until the bytes may pass; it wakes early when ``stop`` says so,
    so a paused fetch does not sit out a long wait.
    """

    def __init__(self, rate: int, burst: int | None = None) -> None:
        self.rate = rate
        self.burst = burst if burst is not None else max(rate // 4, 64 * 1024)
        self._tokens = float(self.burst)
        self._stamp = time.monotonic()
        self._lock = threading.Lock()

    def take(self, n: int, stop: Callable[[], bool] = lambda: False) -> bool:
        """Wait until ``n`` bytes may pass; False when ``stop`` ended the wait."""
        if self.rate <= 0:
            return True
        while True:
            with self._lock:
                now = time.monotonic()
                self._tokens = min(
                    float(self.burst), self._tokens + (now - self._stamp) * self.rate
                )
                self._stamp = now
                # A chunk larger than the burst passes once the bucket is full, and
                # leaves it in debt: the average rate still holds.
                if self._tokens >= min(n, self.burst):
                    self._tokens -= n
                    return True
                wait = (min(n, self.burst) - self._tokens) / self.rate
            if stop():
                return False
            time.sleep(min(wait, 0.25))
