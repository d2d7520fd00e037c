"""One replica at a time: make it, wait for its health, remove it.

Deploy, scale and the rolling update share these steps; each step is written to the
operation's log, and a failed one raises ``StepFailed`` naming the role, the
replica and the cause, for the operation to roll back what it made.
"""

from __future__ import annotations

import logging

from appliance.services.auth import Principal
from appliance.services.service_health import HealthProber, describe
from appliance.services.service_ops import Operation
from appliance.services.service_rows import add_replica, free_number
from appliance.services.service_templates import replica_request
from appliance.services.vms import VmService
from towerbox_core.api.services import RoleTemplate
from towerbox_core.errors import Conflict, NotFound, TowerboxError

log = logging.getLogger(__name__)


class StepFailed(Conflict):
    """A replica could not be made or did not become healthy."""

    code = "service_step_failed"


class Replicas:
    def __init__(self, vms: VmService, prober: HealthProber) -> None:
        self._vms = vms
        self.prober = prober

    def add(
        self,
        op: Operation,
        principal: Principal,
        service: str,
        role: RoleTemplate,
        tenant: str,
        generation: int,
        made: list[str],
    ) -> tuple[str, str]:
        """Create and start one replica; its (VM id, name), also appended to ``made``."""
        number = free_number(service, role.name)
        req = replica_request(service, role, number, tenant)
        op.step(f"create {req.name} ({role.catalog})")
        try:
            detail = self._vms.create(principal, req)
        except TowerboxError as err:
            raise StepFailed(
                f"role {role.name}: {req.name} could not be made: {err.message} ({err.code})",
                role=role.name,
                replica=req.name,
                cause=err.code,
            ) from err
        made.append(req.name)
        add_replica(detail.id, service, role.name, number, generation)
        return detail.id, req.name

    def await_healthy(self, op: Operation, role: RoleTemplate, vm_id: str, name: str) -> None:
        op.step(f"wait for {name}: {_what(role)}")
        probe = self.prober.wait_healthy(vm_id, role.health, stop=op.stopping.is_set)
        if not probe.healthy:
            # Asked to stop (a remove, the node shutting down): no verdict on the replica.
            stopped = op.stopping.is_set()
            what = (
                "was not waited for: the operation was asked to stop"
                if stopped
                else f"is not healthy: {probe.detail}"
            )
            raise StepFailed(
                f"role {role.name}: {name} {what}",
                role=role.name,
                replica=name,
                cause="stopped" if stopped else "unhealthy",
            )
        op.step(f"{name} healthy ({probe.detail})")

    def remove(self, op: Operation, principal: Principal, name: str) -> bool:
        """Delete one replica VM; False (and logged) when it could not be."""
        op.step(f"delete {name}")
        try:
            self._vms.delete(principal, name, for_service=True)
        except NotFound:
            return True  # already gone
        except TowerboxError as err:
            op.step(f"{name} could not be deleted: {err.message} ({err.code})")
            return False
        return True

    def undo(self, op: Operation, principal: Principal, made: list[str]) -> None:
        """Delete what an operation made, newest first."""
        for name in reversed(made):
            self.remove(op, principal, name)
        made.clear()


def _what(role: RoleTemplate) -> str:
    return describe(role.health)
