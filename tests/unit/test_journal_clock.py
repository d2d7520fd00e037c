"""The daemon's journal clock: the monotonic clock from an anchor that is never
before the journal's newest entry; forward steps of the wall clock followed (and
reported), backward ones not."""

from __future__ import annotations

import datetime as dt

from appliance.store.journal_clock import MonotonicClock

T = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
S = dt.timedelta(seconds=1)


class Clocks:
    def __init__(self) -> None:
        self.wall, self.mono = T, 100.0

    def tick(self, seconds: float, wall_step: float = 0.0) -> None:
        self.mono += seconds
        self.wall += (seconds + wall_step) * S


def test_entries_count_on_the_monotonic_clock_from_the_wall_time_at_the_first_reading() -> None:
    c = Clocks()
    clock = MonotonicClock(lambda: None, lambda: c.wall, lambda: c.mono)
    assert clock() == T
    c.tick(30, wall_step=-3600)  # stepped back an hour meanwhile
    assert clock() == T + 30 * S
    assert clock.forward_step() is None  # not followed: times keep counting forward
    assert clock() == T + 30 * S


def test_a_start_never_goes_back_before_the_newest_entry() -> None:
    c = Clocks()
    newest = T + 3600 * S  # the wall clock is an hour behind the journal
    clock = MonotonicClock(lambda: newest, lambda: c.wall, lambda: c.mono)
    assert clock() == newest
    c.tick(10)
    assert clock() == newest + 10 * S


def test_a_forward_step_is_followed_once_and_reported() -> None:
    c = Clocks()
    clock = MonotonicClock(lambda: None, lambda: c.wall, lambda: c.mono)
    clock()
    c.tick(60, wall_step=0.5)  # a slew-sized difference is no step
    assert clock.forward_step() is None
    c.tick(60, wall_step=7200)
    step = clock.forward_step()
    assert step is not None
    left, landed = step
    assert left == T + 120 * S
    assert landed == T + (120 + 7200.5) * S
    assert clock() == landed
    assert clock.forward_step() is None
