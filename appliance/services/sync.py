"""What the edge agent last said about the WAN, and the journal's sync position.

The report lives in memory only: it describes a link, not the node's state, and
after a daemon restart the agent's next report (every heartbeat) brings it back.
"""

from __future__ import annotations

import threading
import time

from appliance.store import journal
from towerbox_core.api.sync import SyncStatusView
from towerbox_core.errors import InvalidInput
from towerbox_core.wire import AgentStatus

# The agent is "not running" when it missed this many of its own intervals.
STALE_INTERVALS = 3
_STATES = ("online", "offline")


class SyncStatusBoard:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._report: AgentStatus | None = None
        self._received_mono = 0.0
        self._received_wall = 0.0

    def put(self, report: AgentStatus) -> None:
        if report.state not in _STATES:
            raise InvalidInput(
                f"state must be one of {', '.join(_STATES)}, not {report.state!r}",
                code="invalid_sync_state",
                field="state",
            )
        if report.queued < 0 or report.acked_seq < 0 or report.heartbeat_s <= 0:
            raise InvalidInput(
                "queued and acked_seq must be ≥ 0 and heartbeat_s > 0",
                code="invalid_sync_status",
            )
        with self._lock:
            self._report = report
            self._received_mono = time.monotonic()
            self._received_wall = time.time()

    def agent(self) -> tuple[AgentStatus | None, bool]:
        """The agent's last report (None: never) and whether it still reports."""
        with self._lock:
            report, mono = self._report, self._received_mono
        if report is None:
            return None, False
        return report, time.monotonic() - mono <= STALE_INTERVALS * report.heartbeat_s

    def view(self) -> SyncStatusView:
        """The WAN banner's facts: agent alive, online or offline since when, backlog."""
        with self._lock:
            report, mono, wall = self._report, self._received_mono, self._received_wall
        head = journal.head()
        acked = journal.acked_seq()
        compacted = journal.compacted_through()
        # The appliance's own count: right even when the agent is gone.
        queued = max(0, head - acked)
        if report is None:
            return SyncStatusView(
                agent="never reported",
                wan="unknown",
                report=None,
                head=head,
                acked_seq=acked,
                compacted_through=compacted,
                queued=queued,
            )
        age = time.monotonic() - mono
        running = age <= STALE_INTERVALS * report.heartbeat_s
        return SyncStatusView(
            agent="running" if running else "not running",
            # With the agent gone nobody knows the link: say so rather than guess.
            wan=report.state if running else "unknown",
            offline_since=report.since if report.state == "offline" else None,
            last_sync_at=report.last_sync_at,
            last_error=report.last_error,
            reported_s_ago=round(age, 1),
            reported_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(wall)),
            report=report,
            head=head,
            acked_seq=acked,
            compacted_through=compacted,
            queued=queued,
        )
