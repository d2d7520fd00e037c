"""How the registry UI words rollouts and reads the wave settings form (pure: no NiceGUI).

The registry checks the settings and answers with its codes (invalid_waves,
invalid_threshold, ...); here the form's text only becomes numbers, and an empty field
is left out so the registry's configured default applies.
"""

from __future__ import annotations

from typing import Any

from towerbox_core.errors import InvalidInput

ROLLOUT_STATES = ("running", "paused", "halted", "completed", "aborted", "rolled_back")
STATE_COLOURS = {
    "running": "primary",
    "paused": "warning",
    "halted": "negative",
    "completed": "positive",
    "aborted": "grey-7",
    "rolled_back": "grey-7",
    # wave states
    "pending": "grey-5",
    "done": "positive",
}
# Which operator actions each state allows, as the registry's services decide them;
# a button the state does not allow is not drawn (the registry refuses it anyway).
ACTIONS: dict[str, tuple[str, ...]] = {
    "running": ("pause", "abort", "rollback"),
    "paused": ("resume", "abort", "rollback"),
    "halted": ("resume", "abort", "rollback"),
    "completed": ("rollback",),
    "aborted": ("rollback",),
}
# The two actions that cannot be taken back ask first.
CONFIRM = {
    "abort": "Abort: the released sites keep the new version, the others keep the "
    "previous one, and no further wave starts.",
    "rollback": "Roll back: the previous version is published again to every site of the "
    "group at once.",
}
# Settings fields: the request's key, the form's label, int or float.
SETTINGS: tuple[tuple[str, str, type], ...] = (
    ("canary", "Canary sites", int),
    ("soak_s", "Soak (s)", float),
    ("canary_failure_pct", "Canary failure threshold (%)", float),
    ("failure_pct", "Failure threshold (%)", float),
    ("offline_wait_s", "Offline wait (s)", float),
)


def progress(rollout: dict[str, Any]) -> str:
    """ "wave 2 of 4 · 12 of 40 sites healthy": where a rollout stands in one line."""
    waves = rollout.get("waves") or []
    sites = sum(int(w["sites"]) for w in waves)
    healthy = sum(int(w["healthy"]) for w in waves)
    failed = sum(int(w["failed"]) for w in waves)
    where = f"wave {int(rollout.get('current_wave') or 0) + 1} of {len(waves)}"
    tail = f" · {failed} failed" if failed else ""
    return f"{where} · {healthy} of {sites} sites healthy{tail}"


def wave_name(wave: dict[str, Any]) -> str:
    return "canary" if wave.get("percent") is None else f"{wave['percent']:g} %"


def rollout_options(fields: dict[str, str]) -> dict[str, Any]:
    """The form's wave settings as the rollout request's fields; empty ones left out."""
    options: dict[str, Any] = {}
    waves = (fields.get("waves") or "").strip()
    if waves:
        try:
            options["waves"] = [float(p) for p in waves.replace(" ", "").split(",") if p]
        except ValueError as err:
            raise InvalidInput(
                "waves are cumulative percents, comma-separated, e.g. 5, 25, 100",
                code="invalid_waves",
                field="waves",
            ) from err
    for key, label, kind in SETTINGS:
        text = (fields.get(key) or "").strip()
        if not text:
            continue
        try:
            options[key] = kind(text)
        except ValueError as err:
            raise InvalidInput(
                f"{label} must be a number, not {text!r}", code="invalid_number", field=key
            ) from err
    return options
