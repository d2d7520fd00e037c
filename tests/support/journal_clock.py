"""The journal's clock, moved by a test: whole hours from a day ahead of now, so price
versions set at its start lie ahead of the real clock."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest

from appliance.store import journal

HOUR = dt.timedelta(hours=1)


class Clock:
    def __init__(self) -> None:
        now = dt.datetime.now(dt.UTC)
        self.t0 = now.replace(minute=0, second=0, microsecond=0) + 24 * HOUR
        self.now = self.t0

    def __call__(self) -> dt.datetime:
        return self.now

    def seconds(self) -> float:
        return self.now.timestamp()

    def at(self, **delta: float) -> None:
        self.now = self.t0 + dt.timedelta(**delta)

    def iso(self, **delta: float) -> str:
        return (self.t0 + dt.timedelta(**delta)).isoformat()


@pytest.fixture
def clock() -> Iterator[Clock]:
    """The journal stamps entries with a Clock for the test's length."""
    fake = Clock()
    previous = journal.set_clock(fake)
    yield fake
    journal.set_clock(previous)
