"""Why a VM is not as it should be: desired against actual, with the reason and since.

A VM whose desired state is running but is off has a reason the operator needs: it
waits for a GPU slice a reshape took, its last start failed (with the error), it is
being moved to another slice, or it stopped outside Towerbox and its restart policy
leaves it off. A VM running while it should be stopped was started outside Towerbox.
The failed-start record is kept here, in memory, by the one path every start takes
(the API, the reconciler's restarts and a reshape's resume), which also journals each
new failure (``vm.start_failed``); a daemon that starts rebuilds the records from the
journal, so the VM page still says why after a restart. Since-when for the rest comes
from the journal's last state change of the VM.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading

import msgspec

from appliance.services.vm_power import ACTIVE, RUNNING
from appliance.store import journal
from appliance.store.models import JournalEntry, Vm, utcnow
from towerbox_core.api.vms import VmAttention
from towerbox_core.errors import TowerboxError

log = logging.getLogger(__name__)

# Start refusals that mean "no slice for it now": it starts when a layout gives one.
_WAITING_CODES = frozenset({"no_free_gpu_slice", "gpu_in_use", "vm_draining", "gpu_waiting"})
_LIVE = frozenset(state.value for state in ACTIVE) | {"unresponsive"}
# Journal kinds that say a VM's start failed (the API's, a restart's or a resume's;
# the boot restore's; a VM on a GPU slice left waiting), and those that say it started.
START_FAILED = "vm.start_failed"
_FAILED_KINDS = (START_FAILED, "vm.restore_failed", "vm.gpu_waiting")
_STARTED_KINDS = ("vm.started", "vm.restarted")
# The code of a vm.gpu_waiting entry written before those entries carried one.
_GPU_WAITING = "gpu_waiting"


class StartFailures:
    """Each VM's last failed start, until a start succeeds or the VM goes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._failed: dict[str, tuple[str, str, dt.datetime]] = {}

    def failed(self, name: str, err: TowerboxError) -> bool:
        """Keep ``err`` as the VM's last failed start; True when it is not the failure
        already kept. The same failure again keeps its first time (failing like this
        since then) and is not journalled again: a restart every sweep would fill it."""
        with self._lock:
            before = self._failed.get(name)
            if before is not None and before[:2] == (err.code, err.message):
                return False
            self._failed[name] = (err.code, err.message, utcnow())
        return True

    def started(self, name: str) -> None:
        with self._lock:
            self._failed.pop(name, None)

    def get(self, name: str) -> tuple[str, str, dt.datetime] | None:
        with self._lock:
            return self._failed.get(name)

    def restore(self) -> list[str]:
        """At the daemon's start: each VM's last journalled failed start that no start
        followed; the names of the VMs that have one."""
        names: dict[str, str] = {vm.id: vm.name for vm in Vm.select(Vm.id, Vm.name)}
        last: dict[str, tuple[int, tuple[str, str, dt.datetime]]] = {}
        failures = (
            JournalEntry.select(
                JournalEntry.seq,
                JournalEntry.kind,
                JournalEntry.object_id,
                JournalEntry.state,
                JournalEntry.created_at,
            )
            .where((JournalEntry.object_type == "vm") & JournalEntry.kind.in_(_FAILED_KINDS))
            .order_by(JournalEntry.seq)
        )
        for seq, kind, vm_id, state, at in failures.tuples().iterator():
            if vm_id in names:
                last[vm_id] = (seq, _failure(kind, state, at))
        restored = {
            names[vm_id]: failure
            for vm_id, (seq, failure) in last.items()
            if not _started_after(vm_id, seq)
        }
        with self._lock:
            self._failed.update(restored)
        return sorted(restored)


def journal_start_failure(vm_id: str, name: str, err: TowerboxError) -> None:
    """Journal a new failed start (``vm.start_failed``), for the registry's history and
    for ``StartFailures.restore`` after a daemon restart."""
    state = {"name": name, "code": err.code, "message": err.message}
    try:
        with journal.write_transaction():
            journal.append(START_FAILED, "vm", vm_id, state)
    except TowerboxError as jerr:
        # The start's own error is the one the caller must see, not the journal's.
        log.warning(
            "VM %s: failed start not journalled: %s", name, jerr.message, extra={"vm": name}
        )


def _failure(kind: str, state: str, at: dt.datetime) -> tuple[str, str, dt.datetime]:
    """A failure entry as ``StartFailures`` keeps it: code, message, when."""
    doc = msgspec.json.decode(state) or {}
    fallback = _GPU_WAITING if kind == "vm.gpu_waiting" else "start_failed"
    message = doc.get("message") or doc.get("reason") or ""
    return str(doc.get("code") or fallback), str(message), at


def _started_after(vm_id: str, seq: int) -> bool:
    """Whether the journal saw the VM start, or run, after entry ``seq``."""
    later = (
        JournalEntry.select(JournalEntry.kind, JournalEntry.state)
        .where(
            (JournalEntry.object_id == vm_id)
            & (JournalEntry.seq > seq)
            & JournalEntry.kind.in_((*_STARTED_KINDS, "vm.state"))
        )
        .tuples()
    )
    for kind, state in later.iterator():
        if kind in _STARTED_KINDS:
            return True
        if (msgspec.json.decode(state) or {}).get("state") in _LIVE:
            return True
    return False


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
