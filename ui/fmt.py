"""Numbers and times as the pages print them: the core's, shared with the registry UI."""

from __future__ import annotations

from towerbox_core.fmt import (
    clock,
    fetch_progress,
    kib,
    mib,
    pct,
    size_bytes,
    time_left,
    when,
)

__all__ = ["clock", "fetch_progress", "kib", "mib", "pct", "size_bytes", "time_left", "when"]
