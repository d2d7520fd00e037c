"""A report's period: [from, to) in microseconds, parsed once from the query."""

from __future__ import annotations

import datetime as dt

from towerbox_core.errors import InvalidInput
from towerbox_core.metering.fold import parse_time_us
from towerbox_core.metering.report import HOUR_US


def iso(us: int) -> str:
    return dt.datetime.fromtimestamp(us / 1_000_000, dt.UTC).isoformat()


def month_start(us: int) -> int:
    when = dt.datetime.fromtimestamp(us / 1_000_000, dt.UTC)
    first = when.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return int(first.timestamp()) * 1_000_000


def parse_period(from_: str | None, to: str | None, now: int) -> tuple[int, int]:
    """[from, to) in µs: from defaults to this month's start, to to now; both on the hour
    (a report's smallest period) unless ``to`` is left as now."""
    start = _parse_bound(from_, "from") if from_ else month_start(now)
    end = _parse_bound(to, "to") if to else now
    if start >= end:
        raise InvalidInput(
            f"from ({iso(start)}) must be before to ({iso(end)})", code="invalid_period"
        )
    return start, end


def _parse_bound(text: str, field: str) -> int:
    try:
        value = parse_time_us(text)
    except ValueError as err:
        raise InvalidInput(
            f"{field} {text!r} is not an ISO 8601 time", code="invalid_period", field=field
        ) from err
    if value is None or value % HOUR_US:
        raise InvalidInput(
            f"{field} must fall on the hour (UTC), like 2026-11-01T00:00:00Z",
            code="invalid_period",
            field=field,
        )
    return value
