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


def fetch_progress(fetch: dict[str, Any] | None) -> str:
    """'running, 40% of 1.0 GiB, 12.0 MiB/s, 0:50 left', or '-' without a fetch."""
    if not fetch:
        return "-"
    done, total = fetch["bytes_done"], fetch["bytes_total"]
    parts = [fetch["state"]]
    if total:
        parts.append(f"{100 * done / total:.0f}% of {size_bytes(total)}")
    else:
        parts.append(size_bytes(done))
    if fetch["state"] in ("running", "verifying") and fetch["rate_bps"]:
        parts.append(f"{size_bytes(fetch['rate_bps'])}/s")
    if fetch["state"] == "running" and fetch["eta_s"] is not None:
        parts.append(f"{time_left(fetch['eta_s'])} left")
    if fetch.get("error_code"):
        parts.append(f"[{fetch['error_code']}]")
    return ", ".join(parts)


def bar(done: int, total: int | None, width: int = 20) -> str:
    """``[########............]``: a text bar for a table or a log, blank without a total."""
    if not total:
        return " " * (width + 2)
    filled = min(width, width * done // total)
    return "[" + "#" * filled + "." * (width - filled) + "]"


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
