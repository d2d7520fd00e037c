"""The daemon's journal clock: wall time read once, then the monotonic clock.

Metering bills the time between journal entries, so the entries' times must not
jump when someone (or NTP, after a long outage) steps the node's wall clock. Within
one daemon run an entry's time is the wall time at the anchor plus the monotonic
time since; across runs the anchor is never earlier than the newest entry, so the
journal's times only go forward.

A wall clock stepped forward (a node that booted with a stale RTC and then reached
an NTP server) is followed: the monitor asks ``forward_step`` each sweep and, when
the wall clock is ahead by more than ``STEP_S``, journals a ``clock.stepped`` entry
and re-anchors. Metering bills nothing inside a step's gap, since no time passed
there. A wall clock stepped backward is not followed: entries keep counting forward
from the anchor (they run ahead of the wall clock until the next start), so no
usage is ever negative or counted twice.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

STEP_S = 1.0  # NTP slews the wall and monotonic clocks alike: only a step parts them


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class MonotonicClock:
    def __init__(
        self,
        floor: Callable[[], dt.datetime | None],
        wall: Callable[[], dt.datetime] = utcnow,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        """``floor``: the newest journal entry's time, read at the first reading (the
        database is open by then)."""
        self._floor = floor
        self._wall = wall
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._anchor: tuple[dt.datetime, float] | None = None
        self._behind_logged = False

    def __call__(self) -> dt.datetime:
        with self._lock:
            return self._now()

    def _now(self) -> dt.datetime:
        if self._anchor is None:
            wall, newest = self._wall(), self._floor()
            start = max(wall, newest) if newest is not None else wall
            if start > wall:
                log.warning(
                    "the wall clock (%s) is behind the journal's newest entry (%s): "
                    "entries count on from the journal",
                    wall.isoformat(),
                    start.isoformat(),
                )
            self._anchor = (start, self._monotonic())
        at, mono = self._anchor
        return at + dt.timedelta(seconds=self._monotonic() - mono)

    def forward_step(self) -> tuple[dt.datetime, dt.datetime] | None:
        """(from, to) when the wall clock was stepped forward since the anchor; the
        clock then reads the wall clock's time. None otherwise."""
        with self._lock:
            derived, wall = self._now(), self._wall()
            ahead = (wall - derived).total_seconds()
            if ahead > STEP_S:
                self._anchor = (wall, self._monotonic())
                self._behind_logged = False
                log.warning(
                    "the wall clock stepped forward %.1f s: journal times follow it; the "
                    "gap is not billed",
                    ahead,
                )
                return derived, wall
            if ahead < -STEP_S and not self._behind_logged:
                self._behind_logged = True
                log.warning(
                    "the wall clock stepped back %.1f s: journal times keep counting "
                    "forward until the daemon restarts",
                    -ahead,
                )
            return None
