"""Moving a running rollout on, from what the database says and nothing else.

``advance`` releases the current wave's sites, judges each released site from what
its node journalled (the ``desired`` object of the kind: applied, rejected or
conflict for which ETag; alerts fired since its release; vRAN VMs not running) and
its last contact, then halts the rollout, finishes the wave or waits. Any worker may
call it at any time; the rollout's row lock makes the calls take turns.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import msgspec

from registry.services.sites import SiteStatus
from registry.store import sql
from registry.store.models import now_ms
from registry.store.rollout_models import RolloutRow, RolloutWaveRow
from registry.store.rollout_store import (
    FAILED_IN_WAVE,
    FOLLOWING,
    JUDGE,
    NEW_ALERTS,
    RELEASE,
    REPORTS,
    RUNNING,
    VRAN_DOWN,
    WATCHED,
    WAVE_SITES,
    rollout_lock,
    wave_counts,
)

log = logging.getLogger(__name__)

FINAL = ("healthy", "failed", "deferred")
_NAMED_IN_REASON = 10  # sites a halt reason names before "and N more"
_decode = msgspec.json.Decoder().decode


@dataclass
class _Watched:
    site_id: int
    name: str
    wave: int
    status: str
    applied_at: int | None
    online: bool
    report: tuple[str, Any] | None = None  # (result, state) of the kind's desired object
    troubles: list[str] = field(default_factory=list)


def running() -> list[int]:
    """The cheap first question of every tick: rollouts to move on or to follow."""
    return [int(r[0]) for r in sql.fetchall(RUNNING, ()) + sql.fetchall(FOLLOWING, ())]


def advance(rollout_id: int, status: SiteStatus, now: int | None = None) -> str | None:
    """One step; the rollout's state after it (None: no such rollout)."""
    with rollout_lock(rollout_id) as row:
        if row is None:
            return None
        now = now_ms() if now is None else now
        online_since = status.since(now)[0]
        if row.state == "completed":
            # Done with its waves, it still follows the sites it deferred.
            _judge(row, now, online_since)
        if row.state != "running":
            return str(row.state)
        while True:
            wave = RolloutWaveRow.get(
                RolloutWaveRow.rollout == row.id, RolloutWaveRow.wave == row.current_wave
            )
            if wave.state == "pending":
                _release(row, wave, now, online_since)
            _judge(row, now, online_since)
            if not _conclude(row, wave, now):
                break
        return str(row.state)


def _release(row: RolloutRow, wave: RolloutWaveRow, now: int, online_since: int) -> None:
    """Every site of the wave gets the version now; one offline now is deferred at
    once (it applies whenever it returns, the wave does not wait for it)."""
    updates: list[tuple[str, str, int, int | None, int, int]] = []
    for site_id, last_contact in sql.fetchall(WAVE_SITES, (row.id, wave.wave)):
        if last_contact is not None and last_contact >= online_since:
            updates.append(("released", "", now, None, row.id, site_id))
        else:
            updates.append(("deferred", "offline when its wave started", now, now, row.id, site_id))
    sql.executemany(RELEASE, updates)
    wave.state = "running"
    wave.started_at = now
    wave.save()
    log.info("rollout %d: wave %d released to %d sites", row.id, wave.wave, len(updates))


def _judge(row: RolloutRow, now: int, online_since: int) -> None:
    watched = {
        site_id: _Watched(
            site_id, name, wave, status, applied_at, last is not None and last >= online_since
        )
        for site_id, name, wave, status, applied_at, last in sql.fetchall(WATCHED, (row.id,))
    }
    if not watched:
        return
    for site_id, result, state in sql.fetchall(REPORTS, (row.id, row.kind)):
        decoded = _decode(state)
        if isinstance(decoded, dict) and decoded.get("etag") == row.etag:
            watched[site_id].report = (str(result), decoded)
    for site_id, state in sql.fetchall(NEW_ALERTS, (row.id,)):
        alert = _decode(state)
        rule = alert.get("rule", "?") if isinstance(alert, dict) else "?"
        watched[site_id].troubles.append(f"alert {rule} fired")
    for site_id, name, vm_status in sql.fetchall(VRAN_DOWN, (row.id,)):
        watched[site_id].troubles.append(f"vRAN VM {name} is {vm_status}")
    wave_started = _wave_starts(row.id)
    updates = []
    for site in watched.values():
        verdict = _verdict(site, row, now, wave_started.get(site.wave))
        if verdict is not None:
            updates.append((*verdict, row.id, site.site_id))
    sql.executemany(JUDGE, updates)


def _wave_starts(rollout_id: int) -> dict[int, int]:
    rows = RolloutWaveRow.select(RolloutWaveRow.wave, RolloutWaveRow.started_at).where(
        RolloutWaveRow.rollout == rollout_id
    )
    return {w.wave: w.started_at for w in rows if w.started_at is not None}


def _verdict(
    site: _Watched, row: RolloutRow, now: int, wave_started: int | None
) -> tuple[str, str, int | None, int | None] | None:
    """(status, reason, applied_at, finished_at) when the site's status changes."""
    if site.report is not None:
        result, state = site.report
        if result != "applied":
            reason = state.get("reason") if isinstance(state, dict) else None
            code = reason.get("code") if isinstance(reason, dict) else None
            why = f"{result} version {row.version}" + (f": {code}" if code else "")
            return ("failed", why, site.applied_at, now)
        applied_at = site.applied_at or now
        if site.status in ("deferred", "released"):
            # A deferred site came back: it is followed like any other from here.
            site.status, site.applied_at = "applied", applied_at
            changed = True
        else:
            changed = False
        troubles = site.troubles + ([] if site.online else ["offline after applying"])
        if troubles:
            return ("failed", "; ".join(troubles), applied_at, now)
        if now - applied_at >= row.soak_s * 1000:
            return ("healthy", "", applied_at, now)
        return ("applied", "", applied_at, None) if changed else None
    if site.status == "released" and (
        wave_started is None or now - wave_started >= row.offline_wait_s * 1000
    ):
        silence = "offline" if not site.online else "silent"
        return ("deferred", f"{silence} past offline_wait_s", None, now)
    return None


def _conclude(row: RolloutRow, wave: RolloutWaveRow, now: int) -> bool:
    """Halt, or finish the wave (and the rollout); True when the next wave may start."""
    counts = wave_counts(row.id).get(wave.wave, {})
    failed = counts.get("failed", 0)
    threshold = row.canary_failure_pct if wave.percent is None else row.failure_pct
    # "Reaches" the threshold, as operators read it: 10 of 100 failing halts a 10 % wave.
    if failed and failed * 100 / max(wave.size, 1) >= threshold:
        names = [
            f"{name} ({reason})"
            for name, reason in sql.fetchall(FAILED_IN_WAVE, (row.id, wave.wave))
        ]
        row.state = "halted"
        row.reason = (
            f"wave {wave.wave}: {failed} of {wave.size} sites failed, reaching the "
            f"{threshold:g} % threshold: " + _named(names)
        )
        _finish_wave(wave, "halted", now)
        _touch(row, now)
        log.warning("rollout %d halted: %s", row.id, row.reason)
        return False
    if sum(counts.get(s, 0) for s in FINAL) < wave.size:
        return False
    _finish_wave(wave, "done", now)
    last = RolloutWaveRow.select().where(RolloutWaveRow.rollout == row.id).count() - 1
    if row.current_wave >= last:
        row.state = "completed"
        row.reason = ""
        row.finished_at = now
        _touch(row, now)
        log.info("rollout %d completed", row.id)
        return False
    row.current_wave += 1
    _touch(row, now)
    return True


def _named(names: Iterable[str]) -> str:
    listed = list(names)
    shown = ", ".join(listed[:_NAMED_IN_REASON])
    more = len(listed) - _NAMED_IN_REASON
    return shown + (f" and {more} more" if more > 0 else "")


def _finish_wave(wave: RolloutWaveRow, state: str, now: int) -> None:
    wave.state = state
    wave.finished_at = now
    wave.save()


def _touch(row: RolloutRow, now: int) -> None:
    row.updated_at = now
    row.save()


def tick(status: SiteStatus) -> int:
    """Advance every running rollout once; how many there were."""
    ids = running()
    for rollout_id in ids:
        advance(rollout_id, status)
    return len(ids)
