"""Numbers and times as the web UIs print them (node and registry)."""

from __future__ import annotations

import datetime as dt
from typing import Any


def mib(value: Any) -> str:
    if not isinstance(value, (int, float)):
        return "-"
    if value >= 1024 and value % 1024 == 0:
        return f"{int(value) // 1024} GiB"
    if value >= 1024:
        return f"{value / 1024:.1f} GiB"
    return f"{int(value)} MiB"


def kib(value: Any) -> str:
    return mib(value / 1024) if isinstance(value, (int, float)) else "-"


def size_bytes(value: Any) -> str:
    if not isinstance(value, (int, float)):
        return "-"
    amount = float(value)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if amount < 1024:
            return f"{amount:.0f} {unit}" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1024
    return f"{amount:.1f} TiB"


def time_left(seconds: float) -> str:
    """A countdown as a clock: "0:51", "1:02:05"."""
    hours, rest = divmod(int(seconds), 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def problem_line(problem: Any) -> str:
    """A node's problem (``{"code", "detail"}``, as desired-state outcomes carry it) in
    a line: "quota_exceeded: tenant acme would pass ..."; a plain string as it is."""
    if isinstance(problem, str):
        return problem
    if not isinstance(problem, dict):
        return ""
    return ": ".join(str(problem[k]) for k in ("code", "detail") if problem.get(k))


def pct(value: Any) -> str:
    return f"{value:.1f}%" if isinstance(value, (int, float)) else "-"


def when(value: Any) -> str:
    """An ISO time or epoch seconds, in UTC, to the second."""
    if value is None or value == "":
        return "-"
    try:
        if isinstance(value, (int, float)):
            moment = dt.datetime.fromtimestamp(value, dt.UTC)
        else:
            moment = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except (ValueError, OverflowError, OSError):
        return str(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def clock(value: Any) -> str:
    """Epoch seconds as a time of day (chart axes)."""
    if not isinstance(value, (int, float)):
        return ""
    return dt.datetime.fromtimestamp(value, dt.UTC).strftime("%H:%M:%S")
