"""How the registry UI words fleet figures (pure: no NiceGUI, tested without a browser)."""

from __future__ import annotations

from typing import Any

from towerbox_core.fmt import when

__all__ = ["PROBLEM_TEXT", "as_of", "contact", "status_split", "when"]

PROBLEM_TEXT = {
    "offline_vran": "offline vRAN",
    "conflict": "conflict",
    "rejected": "rejected document",
    "journal_lag": "journal behind",
}


def status_split(counts: dict[str, Any]) -> str:
    """ "3 online · 1 offline": the statuses a region's sites are in, zeros left out."""
    parts = [
        f"{counts[status]} {status}"
        for status in ("online", "stale", "offline", "pending")
        if counts.get(status)
    ]
    return " · ".join(parts) or "-"


def contact(last: str | None) -> str:
    return f"last contact {when(last)}" if last else "never heard from"


def as_of(value: str | None) -> str:
    """The time the node last reported an object: what the registry knows is that old."""
    return f"as of {when(value)}" if value else "as of -"
