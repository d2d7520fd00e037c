"""Reconcile: make libvirt match the database where policy allows, report the rest.

- A VM that should run and does not is restarted if its restart policy says so,
  vRAN first, then UPF, then the rest.
- A domain Towerbox owns but has no row for, or a row whose domain is gone, is
  drift: journalled once per episode, never deleted or re-created silently.
- Domains without Towerbox's ownership marker are never touched.

A run holds the VM service's create/delete lock: domains and rows are read as one
view, so a VM half-way through a create or a delete is never called drift, and no
restart lands on a domain that a delete is taking away.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

import msgspec

from appliance.backends.vm.protocol import DomainState, DomainStatus, VmBackend
from appliance.domain.vm_spec import RestartPolicy
from appliance.store import journal
from appliance.store.models import Vm
from towerbox_core.errors import TowerboxError

log = logging.getLogger(__name__)

_ROLE_ORDER = {"vran": 0, "upf": 1, "b2b": 2, "other": 3}
_NOT_RUNNING = (DomainState.SHUTOFF, DomainState.CRASHED)


@dataclass
class ReconcileReport:
    restarted: list[str] = field(default_factory=list)
    restart_failed: list[str] = field(default_factory=list)
    drift: list[dict[str, str]] = field(default_factory=list)  # current drift, reported or not


class Reconciler:
    def __init__(
        self,
        backend: VmBackend,
        node_name: str,
        start: Callable[[Vm], None] | None = None,
        lifecycle_lock: AbstractContextManager[Any] | None = None,
    ) -> None:
        self._backend = backend
        # The lock every VM create and delete holds while it defines or undefines the
        # domain and writes or removes the row.
        self._lifecycle_lock = lifecycle_lock or threading.Lock()
        # How a VM is started: the VM service's path, which binds its GPU slice first.
        self._start = start or (lambda vm: backend.start(vm.id))
        self._node = node_name
        self._reported: set[tuple[str, str]] = set()  # (kind, uuid) journalled already
        self.last_report = ReconcileReport()

    def run(self) -> ReconcileReport:
        with self._lifecycle_lock:
            return self._run()

    def _run(self) -> ReconcileReport:
        report = ReconcileReport()
        domains = {d.uuid: d for d in self._backend.list_domains()}
        rows = sorted(Vm.select(), key=lambda vm: (_ROLE_ORDER.get(vm.role, 9), vm.name))
        current: set[tuple[str, str]] = set()
        for vm in rows:
            dom = domains.get(vm.id)
            if dom is None:
                self._drift(
                    report,
                    current,
                    "drift.domain_missing",
                    vm.id,
                    vm.name,
                    "the VM is in the database but libvirt has no domain for it",
                )
                continue
            if vm.desired_state == "running" and dom.state in _NOT_RUNNING:
                self._maybe_restart(vm, dom, report)
        known = {vm.id for vm in rows}
        for dom in domains.values():
            if dom.owner_node == self._node and dom.uuid not in known:
                self._drift(
                    report,
                    current,
                    "drift.unknown_domain",
                    dom.uuid,
                    dom.name,
                    "libvirt has a Towerbox domain the database does not know",
                )
        # Drift that has cleared may be journalled again if it comes back.
        self._reported &= current
        self.last_report = report
        return report

    def _maybe_restart(self, vm: Vm, dom: DomainStatus, report: ReconcileReport) -> None:
        policy = RestartPolicy(_restart_policy(vm))
        if policy is RestartPolicy.NEVER or (
            policy is RestartPolicy.ON_FAILURE and not dom.crashed
        ):
            return
        try:
            self._start(vm)
        except TowerboxError as err:
            if err.code == "vm_draining":  # an apply restarts it once the GPU is reshaped
                return
            log.error("could not restart VM %s: %s", vm.name, err.message, extra={"vm": vm.name})
            report.restart_failed.append(vm.name)
            return
        log.warning(
            "restarted VM %s (policy %s, crashed=%s)",
            vm.name,
            policy.value,
            dom.crashed,
            extra={"vm": vm.name},
        )
        with journal.write_transaction():
            journal.append(
                "vm.restarted",
                "vm",
                vm.id,
                {"name": vm.name, "policy": policy.value, "crashed": dom.crashed},
            )
        report.restarted.append(vm.name)

    def _drift(
        self,
        report: ReconcileReport,
        current: set[tuple[str, str]],
        kind: str,
        uuid: str,
        name: str,
        why: str,
    ) -> None:
        key = (kind, uuid)
        current.add(key)
        report.drift.append({"kind": kind, "id": uuid, "name": name, "detail": why})
        if key in self._reported:
            return
        log.warning("%s: %s (%s)", kind, name, why)
        with journal.write_transaction():
            journal.append(kind, "vm", uuid, {"name": name, "detail": why})
        self._reported.add(key)


def _restart_policy(vm: Vm) -> str:
    spec = msgspec.json.decode(vm.spec)
    return str(spec.get("restart", RestartPolicy.ON_FAILURE.value))
