"""Multi-VM services of tenants: deploy, scale, remove, and what they look like now.

A deploy is all or nothing. Everything that can be refused before a VM exists is
refused in the request (the template's rules, the node's catalog, VNets and health
kinds, the tenant's quotas for the whole service); the rest runs as a background
operation that creates and starts the roles wave by wave in ``after`` order, each
replica gated by its role's health check. A failure deletes what the deploy made,
newest first, and the service says which role failed and why.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import msgspec

from appliance.catalog.model import CatalogEntry
from appliance.catalog.values import redacted
from appliance.services.auth import Principal
from appliance.services.service_admission import Wanted, admit_services
from appliance.services.service_health import QUICK_TCP_S, HealthProber, describe
from appliance.services.service_ops import Operation, Runner
from appliance.services.service_replicas import Replicas, StepFailed
from appliance.services.service_rows import (
    delete_service,
    newest_first,
    put_service,
    replicas,
    role_named,
    role_of,
    set_state,
    template_of,
)
from appliance.services.service_templates import (
    NodeFacts,
    check_on_node,
    pinned,
    replica_name,
    resolve_request,
)
from appliance.services.tenants import TenantService
from appliance.services.vm_admission import VmAdmission
from appliance.store.models import Service, Vm
from towerbox_core.api.services import (
    ReplicaView,
    RoleTemplate,
    RoleView,
    ServiceDeployRequest,
    ServiceProgress,
    ServiceTemplate,
    ServiceView,
)
from towerbox_core.errors import Conflict, NotFound, TowerboxError
from towerbox_core.service_rules import check_count, start_waves, stop_order

log = logging.getLogger(__name__)

# role_health reads the rows again at most this often while replicas keep changing.
_STABLE_TRIES = 20
# A remove waits this long for the operation it stops to roll back.
_CANCEL_WAIT_S = 60.0
_PROBE_WORKERS = 8


@dataclass(frozen=True)
class ServiceDeps:
    catalog: dict[str, CatalogEntry]
    facts: NodeFacts
    admission: VmAdmission
    tenants: TenantService
    image_dir: Path
    templates_dir: Path
    # Unowned B2B MIG slices of a profile now (None: a node without GPUs to count).
    free_gpu_slices: Callable[[str], int] | None = None


class ServiceManager:
    def __init__(self, deps: ServiceDeps, replicas_: Replicas) -> None:
        self.deps = deps
        self.replicas = replicas_
        self.prober: HealthProber = replicas_.prober
        self.runner = Runner()
        # The services a desired document made (set by that kind's adapter).
        self.made_centrally: Callable[[], set[str]] = set
        # Serialises the checks and the new row of deploys, so two deploys of one
        # name cannot both pass.
        self._lock = threading.Lock()

    def recover(self) -> None:
        """At start: an operation the last run did not finish stays as it stopped, and
        the service says so (its replicas are listed; remove or scale from there)."""
        busy = {
            "deploying": "deploy",
            "scaling": "scale",
            "updating": "update",
            "removing": "remove",
        }
        # Read all first: the writes below cannot wait for the lock while it is open.
        for row in list(Service.select().where(Service.state.in_(list(busy)))):
            msg = f"the node stopped during its {busy[row.state]}; remove it and deploy again"
            set_state(row.name, "failed", msg, kind="service.failed", detail={"recovered": True})
            log.warning("service %s: %s", row.name, msg, extra={"service": row.name})

    # -- reads ---------------------------------------------------------------------

    def list_services(self, principal: Principal) -> list[ServiceView]:
        rows = Service.select().order_by(Service.name)
        return [self._view(row) for row in rows if principal.can_see(row.tenant)]

    def get(self, principal: Principal, name: str) -> ServiceView:
        return self._view(self.visible(principal, name))

    def visible(self, principal: Principal, name: str) -> Service:
        row = Service.get_or_none(Service.name == name)
        # Another tenant's service is reported as absent, not as forbidden.
        if row is None or not principal.can_see(row.tenant):
            raise NotFound(f"no service named {name!r}", code="service_not_found")
        return row

    def writable(self, principal: Principal, name: str, *, cancel: bool = False) -> Service:
        """The service, for a change; busy with another operation is 409 ``service_busy``,
        unless ``cancel``: then that operation is stopped (it rolls back) first."""
        principal.require_write()
        self.visible(principal, name)
        kind = self.runner.kind(name)
        if kind is not None and not (cancel and self.runner.cancel(name, _CANCEL_WAIT_S)):
            raise Conflict(f"service {name} is busy with a {kind}", code="service_busy")
        return Service.get_by_id(name)

    def _view(self, row: Service) -> ServiceView:
        found = replicas(row.name)
        health = {r.name: r.health for r in template_of(row).roles}
        # Probed side by side: a TCP check of an unreachable replica waits its timeout.
        with ThreadPoolExecutor(max_workers=_PROBE_WORKERS) as pool:
            probes = list(
                pool.map(
                    lambda r: self.prober.probe(r.vm_id, health.get(r.role), QUICK_TCP_S), found
                )
            )
        roles = []
        for role in template_of(row).roles:
            views = [
                ReplicaView(rep.vm, rep.generation, probe.state, probe.healthy, probe.detail)
                for rep, probe in zip(found, probes, strict=True)
                if rep.role == role.name
            ]
            healthy = sum(v.healthy for v in views)
            entry = self.deps.catalog.get(role.catalog)
            decls = entry.cloud_init_values if entry is not None else {}
            roles.append(
                RoleView(
                    role.name,
                    role.catalog,
                    role.count,
                    healthy,
                    describe(role.health),
                    views,
                    redacted(decls, role.values),
                    version=role.version,
                    catalog_version=_moved_on(entry, role.version),
                )
            )
        return ServiceView(
            name=row.name,
            tenant=row.tenant,
            state=row.state,
            message=row.message,
            roles=roles,
            progress=self.runner.progress(row.name),
            managed_by="registry" if row.name in self.made_centrally() else "",
        )

    def role_health(self, name: str, role: str) -> int:
        """How many replicas of ``role`` are healthy now, one probe per replica.

        The replica rows are read before and after the probes, and the count is taken
        only when they did not change in between: otherwise rows read before a step
        and libvirt asked after it would count a replica that had just been replaced
        as missing while missing its replacement.
        """
        row = Service.get_by_id(name)
        template_role = role_of(row, role)
        health = template_role.health if template_role else None
        found = replicas(name, role)
        healthy = 0
        for _ in range(_STABLE_TRIES):
            healthy = sum(self.prober.probe(r.vm_id, health, QUICK_TCP_S).healthy for r in found)
            again = replicas(name, role)
            if [r.vm_id for r in again] == [r.vm_id for r in found]:
                break
            found = again
        return healthy

    # -- deploy --------------------------------------------------------------------

    def deploy(self, principal: Principal, req: ServiceDeployRequest) -> ServiceView:
        principal.require_write()
        template, tenant = resolve_request(req, principal, self.deps.templates_dir)
        self.deps.tenants.require_exists(tenant)
        check_on_node(template, tenant, self.deps.facts)
        template = pinned(template, self.deps.catalog)
        name = template.name
        with self._lock:
            existing = Service.get_or_none(Service.name == name)
            if existing is not None and (existing.state != "failed" or self.runner.busy(name)):
                raise Conflict(f"a service named {name!r} exists", code="service_exists")
            if existing is not None and (not principal.can_see(existing.tenant) or replicas(name)):
                raise Conflict(
                    f"a service named {name!r} exists; remove it first", code="service_exists"
                )
            for role in template.roles:
                for n in range(1, role.count + 1):
                    vm = replica_name(name, role.name, n)
                    if Vm.select().where(Vm.name == vm).exists():
                        raise Conflict(
                            f"a VM named {vm!r} exists; the service's replicas need the name",
                            code="vm_exists",
                            field="name",
                        )
            self.admit(principal, name, tenant, [(r, r.count) for r in template.roles])
            self.runner.start(
                name,
                "deploy",
                lambda op: self._deploy(op, principal, template),
                before=lambda: put_service(template, tenant, "deploying"),
            )
        log.info("deploying service %s for tenant %s", name, tenant, extra={"tenant": tenant})
        return self.get(principal, name)

    def admit(
        self,
        principal: Principal,
        service: str,
        tenant: str,
        wanted: list[tuple[RoleTemplate, int]],
    ) -> None:
        """Refuse, with the quota or the host's room and its numbers, ``n`` more
        replicas of each role."""
        self.admit_together(principal, [(service, tenant, wanted)])

    def admit_together(self, principal: Principal, services: list[Wanted]) -> None:
        """Refuse the new replicas of several services unless they fit together."""
        admit_services(
            principal,
            services,
            catalog=self.deps.catalog,
            admission=self.deps.admission,
            image_dir=self.deps.image_dir,
            free_gpu_slices=self.deps.free_gpu_slices,
        )

    def _deploy(self, op: Operation, principal: Principal, template: ServiceTemplate) -> None:
        name = template.name
        tenant = Service.get_by_id(name).tenant
        roles = {r.name: r for r in template.roles}
        made: list[str] = []
        try:
            for wave in start_waves(template):
                op.step(f"start wave: {', '.join(wave)}")
                started = []
                for role in (roles[n] for n in wave):
                    for _ in range(role.count):
                        vm_id, vm = self.replicas.add(op, principal, name, role, tenant, 0, made)
                        started.append((role, vm_id, vm))
                for role, vm_id, vm in started:
                    self.replicas.await_healthy(op, role, vm_id, vm)
        except TowerboxError as err:
            op.fail(f"deploy failed: {err.message}; removing what it made")
            self.replicas.undo(op, principal, made)
            detail = {"operation": "deploy", "error": err.code, **_role_extra(err)}
            set_state(name, "failed", err.message, kind="service.failed", detail=detail)
            return
        set_state(name, "ready", kind="service.deployed")
        op.step("ready")

    # -- scale ---------------------------------------------------------------------

    def scale(self, principal: Principal, name: str, role_name: str, count: int) -> ServiceView:
        row = self.writable(principal, name)
        check_count(count, "count")
        role = role_named(row, role_name)
        if row.state != "ready":
            raise Conflict(
                f"service {name} is {row.state}; only a ready service scales",
                code="service_not_ready",
            )
        have = len(replicas(name, role_name))
        if count > have:
            self._require_same_version(name, role)
            self.admit(principal, name, row.tenant, [(role, count - have)])
        self.runner.start(
            name,
            "scale",
            lambda op: self._scale(op, principal, name, role, count),
            before=lambda: set_state(name, "scaling", f"role {role_name}: {have} → {count}"),
        )
        return self.get(principal, name)

    def _require_same_version(self, name: str, role: RoleTemplate) -> None:
        """A new replica is made like the others, from the entry version the role runs."""
        held = _moved_on(self.deps.catalog.get(role.catalog), role.version)
        if held is None:
            return
        raise Conflict(
            f"role {role.name} runs version {role.version} of catalog entry {role.catalog}, "
            f"and this node's catalog now holds version {held}: a new replica would differ "
            f"from the others. Update the role onto version {held} first "
            f"(towerbox service update {name} {role.name})",
            code="catalog_version_changed",
            field="count",
            entry=role.catalog,
            held=held,
            running=role.version,
        )

    def _scale(
        self, op: Operation, principal: Principal, name: str, role: RoleTemplate, count: int
    ) -> None:
        row = Service.get_by_id(name)
        generation = max((r.generation for r in replicas(name, role.name)), default=0)
        current = replicas(name, role.name)
        made: list[str] = []
        try:
            for _ in range(count - len(current)):
                vm_id, vm = self.replicas.add(
                    op, principal, name, role, row.tenant, generation, made
                )
                self.replicas.await_healthy(op, role, vm_id, vm)
            for rep in newest_first(current)[: max(0, len(current) - count)]:
                if not self.replicas.remove(op, principal, rep.vm):
                    raise StepFailed(f"role {role.name}: {rep.vm} could not be deleted")
        except TowerboxError as err:
            op.fail(f"scale failed: {err.message}; removing what it made")
            self.replicas.undo(op, principal, made)
            left = len(replicas(name, role.name))
            message = f"scale of role {role.name} to {count} failed: {err.message}"
            self._save_count(name, role.name, left, "ready", message, "service.failed")
            return
        self._save_count(name, role.name, count, "ready", "", "service.scaled")
        op.step(f"role {role.name} has {count} replicas")

    @staticmethod
    def _save_count(name: str, role: str, count: int, state: str, msg: str, kind: str) -> None:
        template = template_of(Service.get_by_id(name))
        roles = [_with_count(r, count) if r.name == role else r for r in template.roles]
        new = ServiceTemplate(template.name, template.description, roles)
        detail = {"operation": "scale", "role": role, "count": count}
        set_state(name, state, msg, kind=kind, detail=detail, template=new)

    # -- remove --------------------------------------------------------------------

    def remove(self, principal: Principal, name: str) -> ServiceView:
        """Remove the service; a deploy, scale or update under way is stopped first."""
        row = self.writable(principal, name, cancel=True)
        template = template_of(row)
        answer: list[ServiceView] = []

        def removing() -> None:
            set_state(name, "removing", "removing the replicas in reverse start order")
            # Before the work can end; the progress is the remove's, not the last one's.
            view = self._view(Service.get_by_id(name))
            starting = ServiceProgress(operation="remove", done=False, steps=[])
            answer.append(msgspec.structs.replace(view, progress=starting))

        self.runner.start(
            name, "remove", lambda op: self._remove(op, principal, template), removing
        )
        return answer[0]

    def _remove(self, op: Operation, principal: Principal, template: ServiceTemplate) -> None:
        for role in stop_order(template):
            for rep in newest_first(replicas(template.name, role)):
                if not self.replicas.remove(op, principal, rep.vm):
                    msg = f"remove stopped: {rep.vm} could not be deleted; see progress"
                    op.fail(msg)
                    set_state(template.name, "failed", msg, kind="service.failed")
                    return
        delete_service(template.name)
        op.step("removed")


def _moved_on(entry: CatalogEntry | None, version: str | None) -> str | None:
    """The version the node's catalog holds when it is not the one the role runs."""
    if entry is None or version is None or entry.version == version:
        return None
    return entry.version


def _with_count(role: RoleTemplate, count: int) -> RoleTemplate:
    return msgspec.structs.replace(role, count=count)


def _role_extra(err: TowerboxError) -> dict[str, str]:
    return {k: str(v) for k, v in err.extra.items() if k in ("role", "replica", "cause")}
