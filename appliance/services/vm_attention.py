"""Why a VM is not as it should be: desired against actual, with the reason and since.

A VM whose desired state is running but is off has a reason the operator needs: it
waits for a GPU slice a reshape took, its last start failed (with the error), it is
being moved to another slice, or it stopped outside Towerbox and its restart policy
leaves it off. A VM running while it should be stopped was started outside Towerbox.
The failed-start record is kept here, in memory, by the one path every start takes
(the API, the reconciler's restarts and a reshape's resume); since-when for the rest
comes from the journal's last state change of the VM.
"""

from __future__ import annotations

import datetime as dt
import threading

import msgspec

from appliance.services.vm_power import ACTIVE, RUNNING
from appliance.store.models import JournalEntry, Vm, utcnow
from towerbox_core.api.vms import VmAttention
from towerbox_core.errors import TowerboxError

# Start refusals that mean "no slice for it now": it starts when a layout gives one.
_WAITING_CODES = frozenset({"no_free_gpu_slice", "gpu_in_use", "vm_draining"})
_LIVE = frozenset(state.value for state in ACTIVE) | {"unresponsive"}


class StartFailures:
    """Each VM's last failed start, until a start succeeds or the VM goes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._failed: dict[str, tuple[str, str, dt.datetime]] = {}

    def failed(self, name: str, err: TowerboxError) -> None:
        with self._lock:
            self._failed[name] = (err.code, err.message, utcnow())

    def started(self, name: str) -> None:
        with self._lock:
            self._failed.pop(name, None)

    def get(self, name: str) -> tuple[str, str, dt.datetime] | None:
        with self._lock:
            return self._failed.get(name)


def unresponsive(since: float | None) -> VmAttention | None:
    """The attention a VM whose QEMU stopped answering at ``since`` (Unix time) needs."""
    if since is None:
        return None
    return VmAttention(
        "unresponsive",
        "its QEMU does not answer (stopped or wedged): shutdown and reboot cannot "
        "reach it; stop forces it off",
        _iso(dt.datetime.fromtimestamp(since, dt.UTC)),
    )


def attention(
    vm: Vm, state: str, failure: tuple[str, str, dt.datetime] | None, draining: bool
) -> VmAttention | None:
    """What to tell the operator about this VM, or None when it is as it should be."""
    if state == "missing":
        return VmAttention(
            "missing",
            "libvirt has no domain for it (drift): delete it and create it again",
            _state_since(vm.id),
        )
    running = state in _LIVE
    if vm.desired_state == RUNNING and not running:
        if draining:
            return VmAttention(
                "draining",
                "shut down to move it to a new GPU slice; it restarts when the layout is in",
                _state_since(vm.id),
            )
        if failure is not None:
            code, message, when = failure
            kind = "waiting_for_gpu" if code in _WAITING_CODES else "start_failed"
            return VmAttention(kind, f"{message} [{code}]", _iso(when))
        policy = str(msgspec.json.decode(vm.spec).get("restart", "on-failure"))
        return VmAttention(
            "stopped",
            f"{state} outside Towerbox (guest shut down or crashed); its restart policy "
            f"({policy}) does not start it again: start it, or set it stopped",
            _state_since(vm.id),
        )
    if vm.desired_state != RUNNING and running:
        return VmAttention(
            "changed_outside",
            "running although its desired state is stopped: started outside Towerbox",
            _state_since(vm.id),
        )
    return None


def _state_since(vm_id: str) -> str | None:
    """When the journal last saw this VM's state change (its newest vm.state)."""
    row = (
        JournalEntry.select(JournalEntry.created_at)
        .where((JournalEntry.kind == "vm.state") & (JournalEntry.object_id == vm_id))
        .order_by(JournalEntry.seq.desc())
        .first()
    )
    return None if row is None else _iso(row.created_at)


def _iso(when: dt.datetime) -> str:
    return (when if when.tzinfo else when.replace(tzinfo=dt.UTC)).isoformat()
