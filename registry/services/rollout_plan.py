"""Rollout options checked and waves planned: pure, no database.

Waves are cumulative percents of the group's sites, each rounded up, after an
optional canary wave; every wave gets at least one site and no site comes twice.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

from registry.config import RolloutsConfig
from towerbox_core.api.rollouts import RolloutCreate
from towerbox_core.errors import InvalidInput

DEFAULT_WAVES = (5.0, 25.0, 100.0)


@dataclass(frozen=True)
class Options:
    waves: tuple[float, ...]
    canary: int
    soak_s: float
    canary_failure_pct: float
    failure_pct: float
    offline_wait_s: float


@dataclass(frozen=True)
class Wave:
    percent: float | None  # None: the canary wave
    sites: tuple[int, ...]


def options(body: RolloutCreate, defaults: RolloutsConfig) -> Options:
    """The body's options over the registry's defaults, each checked."""
    waves = tuple(DEFAULT_WAVES if body.waves is None else body.waves)
    if not waves or any(not math.isfinite(p) or not 0 < p <= 100 for p in waves):
        raise InvalidInput(
            f"waves {list(waves)}: each is a percent of the group's sites in (0, 100]",
            code="invalid_waves",
            field="waves",
        )
    if any(b <= a for a, b in itertools.pairwise(waves)) or waves[-1] != 100:
        raise InvalidInput(
            f"waves {list(waves)} must be cumulative: strictly increasing and ending at 100",
            code="invalid_waves",
            field="waves",
        )
    canary = defaults.canary if body.canary is None else body.canary
    if canary < 0:
        raise InvalidInput(
            "canary is a number of sites, 0 or more", code="invalid_canary", field="canary"
        )
    pcts = {
        "canary_failure_pct": _pick(body.canary_failure_pct, defaults.canary_failure_pct),
        "failure_pct": _pick(body.failure_pct, defaults.failure_pct),
    }
    for name, value in pcts.items():
        if not math.isfinite(value) or not 0 <= value <= 100:
            raise InvalidInput(
                f"{name} {value} is outside 0-100 %", code="invalid_threshold", field=name
            )
    waits = {
        "soak_s": _pick(body.soak_s, defaults.soak_s),
        "offline_wait_s": _pick(body.offline_wait_s, defaults.offline_wait_s),
    }
    for name, value in waits.items():
        if not math.isfinite(value) or value < 0:
            raise InvalidInput(
                f"{name} {value} must be 0 seconds or more", code="invalid_duration", field=name
            )
    return Options(waves=waves, canary=canary, **pcts, **waits)


def _pick(value: float | None, default: float) -> float:
    return default if value is None else float(value)


def plan(sites: Sequence[tuple[int, str, bool]], opts: Options) -> list[Wave]:
    """Waves over (site id, name, online) rows. The canary takes online sites first,
    by name; the rest follow by name, so the same group plans the same waves."""
    ordered = sorted(sites, key=lambda s: (not s[2], s[1]))
    canary = [s[0] for s in ordered[: opts.canary]]
    rest = sorted((s for s in ordered[opts.canary :]), key=lambda s: s[1])
    waves = [Wave(None, tuple(canary))] if canary else []
    total = len(sites)
    placed = len(canary)
    taken = 0
    for percent in opts.waves:
        want = max(math.ceil(total * percent / 100) - placed, 1)
        chunk = rest[taken : taken + want]
        if not chunk:
            break
        waves.append(Wave(percent, tuple(s[0] for s in chunk)))
        taken += len(chunk)
        placed += len(chunk)
    return waves
