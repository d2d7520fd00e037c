"""What GET /api/v1/n6/status reports: the OVS datapaths, every apply's outcome, and
what is declared but not applied yet.

The outcome of every N6 apply and repair is journalled, and the last one kept to show.

An operator's apply is journalled whether it worked (``n6.applied``) or not
(``n6.apply_failed``, with the error's code and message), so the registry and the
N6 page see failures as well as changes; so is one that failed on an error no
backend expected (``n6_backend_failed``). Reconcile repairs the node every few
seconds; a repair that fails the same way as the last one is not journalled again,
or one broken port would fill the journal.
"""

from __future__ import annotations

import logging
from typing import Any

import msgspec

from appliance.store import journal
from appliance.store.models import Meta
from towerbox_core.api.n6 import N6ApplyResult, OvsDatapaths
from towerbox_core.errors import BackendError, TowerboxError
from upf_bridge.backends.base import NetBackend
from upf_bridge.backends.simulated import SimulatedBackend
from upf_bridge.model import N6Config

log = logging.getLogger(__name__)

LAST_APPLY = "n6_last_apply"
_KINDS = {
    ("apply", True): "n6.applied",
    ("apply", False): "n6.apply_failed",
    ("repair", True): "n6.repaired",
    ("repair", False): "n6.repair_failed",
}


def datapaths(backend: NetBackend | None) -> OvsDatapaths | None:
    """What the OVS backend found at start; None without one."""
    found = backend.datapaths() if backend is not None else None
    if found is None:
        return None
    return OvsDatapaths(
        usable=list(found.usable),
        auto=found.preferred,
        unavailable=dict(found.unavailable),
        simulated=isinstance(backend, SimulatedBackend),
    )


def pending(declared: N6Config, applied: N6Config) -> list[str]:
    """What an apply would hand the node: each declared trunk and VNet that the applied
    declaration lacks or has otherwise, and each applied one no longer declared.

    Compared as parsed (defaults filled in): re-declaring a trunk as it was is no change.
    """
    found: list[str] = []
    for label, want, have in (
        ("trunk", {t.name: t for t in declared.trunks}, {t.name: t for t in applied.trunks}),
        ("VNet", {v.key: v for v in declared.vnets}, {v.key: v for v in applied.vnets}),
    ):
        for key in sorted(want.keys() | have.keys()):
            if key not in have:
                found.append(f"{label} {key} added")
            elif key not in want:
                found.append(f"{label} {key} removed")
            elif want[key] != have[key]:
                found.append(f"{label} {key} changed")
    return found


def last() -> N6ApplyResult | None:
    row = Meta.get_or_none(Meta.key == LAST_APPLY)
    return None if row is None else msgspec.json.decode(row.value, type=N6ApplyResult)


def succeeded(trigger: str, changes: dict[str, list[str]], **state: Any) -> None:
    """Journal a successful apply or repair; runs inside the caller's write transaction."""
    _record(trigger, changes, None, {"changes": changes, **state})


def failed(trigger: str, err: TowerboxError) -> None:
    """Journal a failed apply (always) or repair (when it fails differently than before)."""
    before = last()
    again = (
        trigger == "repair"
        and before is not None
        and (before.ok, before.code, before.message) == (False, err.code, err.message)
    )
    if again:
        return
    with journal.write_transaction():
        _record(trigger, {}, err, {"code": err.code, "message": err.message, **err.extra})


def unexpected(trigger: str, err: Exception) -> BackendError:
    """Anything but a ``TowerboxError`` escaping a backend (a bug, a library error it
    did not translate) failed the apply all the same: journal it like any other
    failure, and keep its traceback in the log, the only place that has it. Returns
    the error for the caller to raise (from ``err``)."""
    log.error("N6 %s failed unexpectedly", trigger, exc_info=err)
    wrapped = BackendError(
        f"N6 {trigger} failed unexpectedly: {type(err).__name__}: {err} "
        "(the node's log has the details)",
        code="n6_backend_failed",
    )
    failed(trigger, wrapped)
    return wrapped


def _record(
    trigger: str, changes: dict[str, list[str]], err: TowerboxError | None, state: Any
) -> None:
    seq = journal.append(_KINDS[trigger, err is None], "n6", "node", state)
    result = N6ApplyResult(
        ok=err is None,
        trigger=trigger,
        at=journal.now().isoformat(),
        journal_seq=seq,
        changes=changes,
        code=err.code if err else None,
        message=err.message if err else None,
    )
    value = msgspec.json.encode(result).decode()
    Meta.insert(key=LAST_APPLY, value=value).on_conflict_replace().execute()
