"""The WAN as the agent sees it: online or offline since when, last sync, last error."""

from __future__ import annotations

import datetime as dt
import logging

log = logging.getLogger(__name__)


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


class LinkState:
    def __init__(self) -> None:
        self.state = "offline"  # until the registry first answers
        self.since = _now()
        self.last_sync_at: str | None = None
        self.last_error: str | None = None

    def ok(self, synced: bool = False) -> None:
        if self.state != "online":
            log.info("registry reachable again (offline since %s)", self.since)
            self.state, self.since = "online", _now()
        self.last_error = None
        if synced:
            self.last_sync_at = _now()

    def failed(self, error: str) -> None:
        if self.state != "offline":
            log.warning("registry unreachable: %s", error)
            self.state, self.since = "offline", _now()
        self.last_error = error
