"""One fetch's progress, kept in memory: bytes done of total, rate and ETA.

The fetcher's thread writes it through the ``Listener`` calls; the API reads a
frozen ``FetchProgress`` snapshot. Nothing here is journalled: the journal gets the
outcome of a fetch, never its chunks.
"""

from __future__ import annotations

import datetime as dt
import threading
import time

from towerbox_core.api.artifacts import FETCH_UNDER_WAY, FetchProgress


def _iso(at: dt.datetime | None) -> str | None:
    return at.isoformat() if at is not None else None


class FetchTracker:
    def __init__(self, name: str, reason: str) -> None:
        self.name = name
        self.reason = reason
        self.state = "queued"
        self._lock = threading.Lock()
        self._done = 0
        self._total: int | None = None
        self._resumed_from = 0
        self._run_started: float | None = None
        self._run_ended: float | None = None
        self.started_at: dt.datetime | None = None
        self.finished_at: dt.datetime | None = None
        self.error_code: str | None = None
        self.error: str | None = None
        self.transferred = 0  # bytes over the network across every attempt
        # Asked for now while it ran for another reason (a pre-cache window): it no
        # longer pauses when that reason's window closes.
        self.asked_now = False

    @property
    def active(self) -> bool:
        return self.state in FETCH_UNDER_WAY

    # -- the fetcher's side (Listener) ------------------------------------------------

    def begin(self, size: int | None) -> None:
        """The worker took the fetch; ``size``: what the catalog says, until the server does."""
        with self._lock:
            self.state = "running"
            self._total = size
            self.started_at = self.started_at or dt.datetime.now(dt.UTC)

    def started(self, done: int, total: int | None) -> None:
        with self._lock:
            self.state = "running"
            self._done = done
            self._resumed_from = done
            self._total = total
            self._run_started = time.monotonic()
            self._run_ended = None

    def advanced(self, n: int) -> None:
        with self._lock:
            self._done += n
            self.transferred += n

    def verifying(self) -> None:
        with self._lock:
            self.state = "verifying"

    def finish(self, state: str, code: str | None = None, error: str | None = None) -> None:
        with self._lock:
            self.state = state
            self.error_code = code
            self.error = error
            self._run_ended = time.monotonic()
            self.finished_at = dt.datetime.now(dt.UTC)
            if state == "done" and self._total is None:
                self._total = self._done

    # -- the readers' side ------------------------------------------------------------

    def view(self) -> FetchProgress:
        with self._lock:
            rate = 0.0
            if self._run_started is not None:
                end = self._run_ended if self._run_ended is not None else time.monotonic()
                elapsed = end - self._run_started
                if elapsed > 0:
                    rate = (self._done - self._resumed_from) / elapsed
            eta = None
            if self._total is not None and self.state in FETCH_UNDER_WAY and rate > 0:
                eta = max(self._total - self._done, 0) / rate
            elif self.state == "done":
                eta = 0.0
            return FetchProgress(
                name=self.name,
                state=self.state,
                reason=self.reason,
                bytes_done=self._done,
                bytes_total=self._total,
                rate_bps=round(rate, 1),
                eta_s=round(eta, 1) if eta is not None else None,
                resumed_from=self._resumed_from,
                started_at=_iso(self.started_at),
                finished_at=_iso(self.finished_at),
                error_code=self.error_code,
                error=self.error,
            )
