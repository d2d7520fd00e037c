"""Rolling update of one role: new catalog entry or version, values or spec, a replica
at a time.

The plan comes from ``towerbox_core.rollout_plan`` (surge, unavailable, the GPU
rule); each new replica must pass the role's health check before an old one goes.
A new replica that fails stops the update and rolls the role back: unhealthy new
replicas are deleted, each healthy new one is replaced by an old-configuration one
(made and healthy first), and the role is brought back to its count.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import msgspec

from appliance.services.auth import Principal
from appliance.services.service_manager import ServiceManager
from appliance.services.service_ops import Operation
from appliance.services.service_replicas import StepFailed
from appliance.services.service_rows import (
    Replica,
    generations_of,
    replicas,
    role_named,
    set_state,
    template_of,
)
from appliance.services.service_templates import check_role_on_node, pin_role, recorded_version
from appliance.store.models import Service
from towerbox_core.api.services import (
    RoleTemplate,
    RolloutPlan,
    ServiceTemplate,
    ServiceUpdateAnswer,
    UpdateRequest,
    ValueInput,
)
from towerbox_core.errors import Conflict, InvalidInput, TowerboxError
from towerbox_core.rollout_plan import plan_rollout
from towerbox_core.service_rules import check_entry_version, check_role

log = logging.getLogger(__name__)


class RollingUpdates:
    def __init__(
        self, manager: ServiceManager, free_gpu_slices: Callable[[str], int] | None = None
    ) -> None:
        self._m = manager
        self._free = free_gpu_slices

    def update(self, principal: Principal, name: str, req: UpdateRequest) -> ServiceUpdateAnswer:
        row = self._m.visible(principal, name)
        role = role_named(row, req.role)
        if req.version is not None:
            check_entry_version(req.version, "version")
        catalog = req.catalog or role.catalog
        new_role = msgspec.structs.replace(
            role,
            catalog=catalog,
            version=req.version,
            values=self._values(role, catalog, req),
            spec=role.spec if req.spec is None else req.spec,
        )
        check_role(name, new_role, "role")
        check_role_on_node(new_role, row.tenant, self._m.deps.facts, "role")
        new_role = pin_role(new_role, self._m.deps.catalog)
        if new_role == recorded_version(role, self._m.deps.catalog):
            raise InvalidInput(
                f"role {role.name} already has this catalog entry and version, these values "
                "and spec",
                code="nothing_to_update",
            )
        current = _by_number(replicas(name, role.name))
        gpu = new_role.gpu
        plan = plan_rollout(
            len(current),
            max_surge=req.max_surge,
            max_unavailable=req.max_unavailable,
            gpu_bound=gpu is not None,
            free_gpu_slices=self._free(gpu) if gpu is not None and self._free else 0,
        )
        answer = ServiceUpdateAnswer(service=name, role=role.name, dry_run=req.dry_run, plan=plan)
        if not req.dry_run:
            row = self._m.writable(principal, name)
            # A failed service whose role still has all its replicas (an update that
            # could not roll back, a node stopped during one) is rolled forward from
            # there; one still busy is refused by the runner (service_busy).
            whole = row.state == "failed" and len(current) == role.count > 0
            if row.state != "ready" and not whole:
                raise Conflict(
                    f"service {name} is {row.state}; only a ready service updates, or a "
                    "failed one whose role still has all its replicas",
                    code="service_not_ready",
                )
        # The surge replicas are checked like any new one, in a dry run too: a plan the
        # node would refuse is no plan.
        self._admit_surge(principal, name, row.tenant, new_role, plan)
        if req.dry_run:
            return answer
        message = f"role {role.name}: rolling update, {len(plan.steps)} steps"
        self._m.runner.start(
            name,
            "update",
            lambda op: self._run(op, principal, name, role, new_role, plan, current),
            before=lambda: set_state(name, "updating", message),
        )
        return answer

    def _admit_surge(
        self, principal: Principal, name: str, tenant: str, role: RoleTemplate, plan: RolloutPlan
    ) -> None:
        surge = [(role, plan.max_surge)] if plan.max_surge else []
        try:
            self._m.admit(principal, name, tenant, surge)
        except TowerboxError as err:
            if err.status != 409 or plan.max_unavailable:
                raise
            err.message += (
                "; an update in place needs no new replica: ask again with max_surge 0 and "
                "max_unavailable 1 (--max-surge 0 --max-unavailable 1)"
            )
            raise

    def _values(
        self, role: RoleTemplate, catalog: str, req: UpdateRequest
    ) -> dict[str, ValueInput]:
        """The role's values after the update (see UpdateRequest.merge_values)."""
        if req.values is None:
            return role.values
        if not req.merge_values:
            return req.values
        entry = self._m.deps.catalog.get(catalog)
        declared = entry.cloud_init_values if entry is not None else {}
        kept = {n: v for n, v in role.values.items() if n in declared}
        return {**kept, **req.values}

    def _run(
        self,
        op: Operation,
        principal: Principal,
        name: str,
        old_role: RoleTemplate,
        new_role: RoleTemplate,
        plan: RolloutPlan,
        current: list[Replica],
    ) -> None:
        row = Service.get_by_id(name)
        generations = generations_of(row)
        old_gen = generations.get(old_role.name, 0)
        gen = max([old_gen, *(r.generation for r in current)]) + 1
        old = {f"old-{i}": rep for i, rep in enumerate(current)}
        new: dict[str, tuple[str, str]] = {}
        made: list[str] = []
        healthy: list[tuple[str, str]] = []
        adds = self._m.replicas
        op.step(f"update role {old_role.name} to generation {gen}")
        try:
            for step in plan.steps:
                if step.action == "create":
                    new[step.replica] = adds.add(
                        op, principal, name, new_role, row.tenant, gen, made
                    )
                elif step.action == "await_health":
                    vm_id, vm = new[step.replica]
                    adds.await_healthy(op, new_role, vm_id, vm)
                    healthy.append((vm_id, vm))
                elif not adds.remove(op, principal, old[step.replica].vm):
                    raise StepFailed(f"role {old_role.name}: {old[step.replica].vm} stays")
        except TowerboxError as err:
            op.fail(f"update failed: {err.message}; rolling role {old_role.name} back")
            stuck = self._roll_back(op, principal, name, old_role, old_gen, made, healthy)
            done = stuck is None
            outcome = "rolled back" if stuck is None else f"NOT fully rolled back ({stuck.message})"
            message = f"update of role {old_role.name} failed and was {outcome}: {err.message}"
            detail: dict[str, object] = {
                "operation": "update",
                "role": old_role.name,
                "rolled_back": done,
            }
            if stuck is not None:
                detail["cause"] = str(stuck.extra.get("cause") or stuck.code)
                message += (
                    f"; update the role again (towerbox service update {name} "
                    f"{old_role.name}) or remove the service"
                )
            state = "ready" if done else "failed"
            set_state(name, state, message, kind="service.failed", detail=detail)
            return
        template = template_of(Service.get_by_id(name))
        roles = [new_role if r.name == new_role.name else r for r in template.roles]
        generations[new_role.name] = gen
        set_state(
            name,
            "ready",
            kind="service.updated",
            detail={
                "role": new_role.name,
                "generation": gen,
                "catalog": new_role.catalog,
                "version": new_role.version,
            },
            template=ServiceTemplate(template.name, template.description, roles),
            generations=generations,
        )
        op.step(f"role {new_role.name} updated to generation {gen}")

    def _roll_back(
        self,
        op: Operation,
        principal: Principal,
        name: str,
        role: RoleTemplate,
        old_gen: int,
        made: list[str],
        healthy: list[tuple[str, str]],
    ) -> TowerboxError | None:
        """Back to ``role`` at its count, keeping healthy replicas while it goes back;
        what stopped it, or None."""
        adds = self._m.replicas
        tenant = Service.get_by_id(name).tenant
        good = {vm for _, vm in healthy}
        adds.undo(op, principal, [vm for vm in made if vm not in good])
        restored: list[str] = []
        try:
            for _, vm in reversed(healthy):
                vm_id, back = adds.add(op, principal, name, role, tenant, old_gen, restored)
                adds.await_healthy(op, role, vm_id, back)
                if not adds.remove(op, principal, vm):
                    raise StepFailed(f"role {role.name}: {vm} could not be deleted")
            while len(replicas(name, role.name)) < role.count:
                vm_id, back = adds.add(op, principal, name, role, tenant, old_gen, restored)
                adds.await_healthy(op, role, vm_id, back)
        except TowerboxError as err:
            op.step(f"rollback stopped: {err.message}")
            return err
        op.step(f"role {role.name} rolled back to generation {old_gen}")
        return None


def _by_number(found: list[Replica]) -> list[Replica]:
    return sorted(found, key=lambda r: r.number)
