"""The ``services`` desired-state kind: tenants' multi-VM services from the registry.

Object id ``service:NAME``; its state is the tenant and the template as the node
would deploy it (the document's name and per-role values applied, a template file
read). A document is checked whole before anything changes: the shared rules
(``towerbox_core.service_rules``), then what only the node can say (the tenant, the
template file, catalog entries, VNets, MIG profiles, values), then the replicas it
adds (its new services', its scale-ups'): the quotas, summed per tenant, and the
host's memory and MIG slices, for all of them together. A refused document changes
nothing.

Applying it starts the service manager's background operations: a deploy for a new
service, a rolling update per role whose catalog entry, values or spec changed, a
scale per role whose count changed (one after another), a remove for a service the
document no longer names, but only for services this kind deployed. A service of
the same name made on the node is never touched: it counts as a local override and
is reported as a conflict.

What each service came to (``deployed``, ``deploying``, ``updating``, ``removing``,
``rejected`` with the quota or capacity code, ``failed``, ``conflict``) is journalled
as ``desired.status`` (object ``desired``/``services``) whenever one of their
operations ends, so the registry sees deploys finish. Values are never journalled:
the entries carry names, states and codes only.
"""

from __future__ import annotations

import contextvars
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import msgspec

from appliance.services.desired_adapters import NODE
from appliance.services.desired_rule import States
from appliance.services.desired_service_changes import (
    Change,
    Wanted,
    changes_between,
    scale_ups,
)
from appliance.services.service_manager import ServiceManager
from appliance.services.service_rollout import RollingUpdates
from appliance.services.service_rows import replicas, template_of
from appliance.services.service_templates import (
    check_on_node,
    pinned,
    resolve_request,
    with_recorded_versions,
)
from appliance.store import journal
from appliance.store.models import JournalEntry, Meta, Service
from towerbox_core.api.services import (
    ServiceDeployRequest,
    ServiceTemplate,
    UpdateRequest,
)
from towerbox_core.errors import Conflict, TowerboxError
from towerbox_core.service_rules import parse_services_document

log = logging.getLogger(__name__)

SERVICE = "service:"
_META = "desired_services"  # what this kind made, named, found in conflict, saw refused
# A failure with one of these codes is the node refusing (room, quota), not a fault.
_REFUSALS = {"quota_exceeded", "insufficient_resources", "disk_too_large"}
_STEP_WAIT_S = 3600.0
_BUSY = {"deploying", "scaling", "updating", "removing"}


@contextmanager
def _at(prefix: str) -> Iterator[None]:
    """Name a refusal (a quota's too, not only bad input) by its place in the document."""
    try:
        yield
    except TowerboxError as err:
        field = err.extra.get("field")
        err.extra["field"] = f"{prefix}.{field}" if field else prefix
        raise


def _state(tenant: str, template: ServiceTemplate) -> dict[str, Any]:
    return {"tenant": tenant, "template": msgspec.to_builtins(template)}


def _template(state: dict[str, Any]) -> ServiceTemplate:
    return msgspec.convert(state["template"], ServiceTemplate)


def _load() -> dict[str, Any]:
    row = Meta.get_or_none(Meta.key == _META)
    return msgspec.json.decode(row.value) if row else {}


def _save(meta: dict[str, Any]) -> None:
    with journal.write_transaction():
        Meta.insert(
            key=_META, value=msgspec.json.encode(meta).decode()
        ).on_conflict_replace().execute()


class ServicesAdapter:
    def __init__(self, manager: ServiceManager, rollouts: RollingUpdates) -> None:
        self._m = manager
        self._rollouts = rollouts
        self._lock = threading.Lock()
        self._chains: set[str] = set()  # services with update or scale steps still to run
        # Chains whose end is not journalled yet: a chain leaves ``_chains`` before its
        # last desired.status (which must not call it updating), and counts as changing
        # until that entry is written.
        self._unsettled: set[str] = set()
        self._meta_lock = threading.Lock()  # the kind's record: applies and steps both write
        manager.runner.listeners.append(self._settled)
        manager.made_centrally = lambda: set(_load().get("made", []))

    # -- the kind adapter --------------------------------------------------------------

    def current(self) -> States:
        catalog = self._m.deps.catalog
        return {
            SERVICE + row.name: _state(
                row.tenant, with_recorded_versions(template_of(row), catalog)
            )
            for row in Service.select().order_by(Service.name)
        }

    def locked(self) -> set[str]:
        """Services made on this node: a central document never changes them."""
        made = set(_load().get("made", []))
        return {SERVICE + row.name for row in Service.select() if row.name not in made}

    def kept(self, deletes: list[str]) -> dict[str, str]:
        made = set(_load().get("made", []))
        return {
            oid: "made on this node: only the node's operators remove it"
            for oid in deletes
            if oid.removeprefix(SERVICE) not in made
        }

    def parse(self, document: dict[str, Any]) -> States:
        doc = parse_services_document(document)
        states: States = {}
        for name, entry in sorted(doc.services.items()):
            with _at(f"services.{name}"):
                template, tenant = resolve_request(
                    entry.request(name), NODE, self._m.deps.templates_dir
                )
                self._m.deps.tenants.require_exists(tenant)
                check_on_node(template, tenant, self._m.deps.facts)
            states[SERVICE + name] = _state(tenant, pinned(template, self._m.deps.catalog))
        return states

    def apply(self, puts: States, deletes: list[str], central: States) -> None:
        made = set(_load().get("made", []))
        # A service this kind deployed that failed with nothing left is deployed again.
        rows = {
            row.name: row
            for row in Service.select()
            if not (row.name in made and row.state == "failed" and not replicas(row.name))
        }
        new = {
            oid.removeprefix(SERVICE): s
            for oid, s in puts.items()
            if oid.removeprefix(SERVICE) not in rows
        }
        steps = {
            name: changes_between(
                name,
                with_recorded_versions(template_of(rows[name]), self._m.deps.catalog),
                _template(state),
            )
            for oid, state in puts.items()
            if (name := oid.removeprefix(SERVICE)) in rows
        }
        grown = {
            name: (
                rows[name].tenant,
                scale_ups(name, template_of(rows[name]), _template(puts[SERVICE + name]), todo),
            )
            for name, todo in steps.items()
        }
        self._admit(new, grown)
        for name, todo in steps.items():
            if todo and name in self._chains:
                raise Conflict(
                    f"service {name} is still being changed by an earlier version",
                    code="service_busy",
                    field=f"services.{name}",
                )
        with self._meta_lock:
            self._apply(new, steps, deletes, central)

    def _apply(
        self, new: States, steps: dict[str, list[Change]], deletes: list[str], central: States
    ) -> None:
        meta = _load()
        made = set(meta.get("made", []))
        locked = self.locked()
        meta["named"] = sorted(oid.removeprefix(SERVICE) for oid in central)
        meta["conflicts"] = sorted(oid.removeprefix(SERVICE) for oid in central if oid in locked)
        rejected: dict[str, dict[str, Any]] = {}
        leaving = {n for n in meta.get("leaving", []) if Service.get_or_none(Service.name == n)}
        meta["leaving"] = sorted(leaving | {oid.removeprefix(SERVICE) for oid in deletes})
        meta["rejected"] = rejected
        # Saved before any operation starts: one that ends at once finds its service named.
        _save(meta)
        for oid in deletes:
            name = oid.removeprefix(SERVICE)
            self._m.remove(NODE, name)
            made.discard(name)
        for name, state in sorted(new.items()):
            req = ServiceDeployRequest(service=_template(state), tenant=state["tenant"])
            try:
                self._m.deploy(NODE, req)
            except TowerboxError as err:
                if err.status >= 500:
                    raise
                # Checked above; a service whose quota another took meanwhile.
                rejected[name] = {"code": err.code, "detail": err.message}
                continue
            made.add(name)
        for name, todo in sorted(steps.items()):
            if todo:
                self._run_steps(name, todo)
        meta["made"] = sorted(made)
        meta["rejected"] = rejected
        _save(meta)

    # -- checks --------------------------------------------------------------------------

    def _admit(self, new: States, grown: dict[str, tuple[str, Wanted]]) -> None:
        """Each new service, and each service's scale-ups, alone (its own field in
        the refusal), then all together: each tenant's within its quotas, and
        everyone's within the host's room."""
        together: list[tuple[str, str, Wanted]] = []
        for name, state in sorted(new.items()):
            together.append((name, state["tenant"], [(r, r.count) for r in _template(state).roles]))
        for name, (tenant, wanted) in sorted(grown.items()):
            if wanted:
                together.append((name, tenant, wanted))
        for name, tenant, wanted in together:
            with _at(f"services.{name}"):
                self._m.admit(NODE, name, tenant, wanted)
        if len(together) > 1:
            with _at("services"):
                self._m.admit_together(NODE, together)

    # -- update and scale steps ----------------------------------------------------------

    def _step(self, name: str, change: Change) -> None:
        if isinstance(change, UpdateRequest):
            self._rollouts.update(NODE, name, change)
        else:
            self._m.scale(NODE, name, *change)

    def _run_steps(self, name: str, todo: list[Change]) -> None:
        """The steps one after another, each once the service's last operation ended."""
        with self._lock:
            self._chains.add(name)
            self._unsettled.add(name)

        def run() -> None:
            try:
                for change in todo:
                    self._m.runner.wait(name, _STEP_WAIT_S)
                    self._step(name, change)
                    self._m.runner.wait(name, _STEP_WAIT_S)
            except TowerboxError as err:
                log.warning("service %s: desired change stopped: %s", name, err.message)
                with self._meta_lock:
                    meta = _load()
                    refused = {"code": err.code, "detail": err.message}
                    meta.setdefault("rejected", {})[name] = refused
                    _save(meta)
            finally:
                with self._lock:
                    self._chains.discard(name)
                try:
                    self._settled(name)
                finally:
                    with self._lock:
                        self._unsettled.discard(name)

        context = contextvars.copy_context()
        threading.Thread(
            target=context.run, args=(run,), name=f"desired-{name}", daemon=True
        ).start()

    def changing(self) -> bool:
        """Whether update or scale steps of a document are still to run, or the end of
        the last ones is not journalled yet."""
        return bool(self._chains or self._unsettled)

    # -- status --------------------------------------------------------------------------

    def statuses(self) -> dict[str, dict[str, Any]]:
        """What each service the document names came to, as the registry sees it."""
        meta = _load()
        conflicts = set(meta.get("conflicts", []))
        rejected: dict[str, dict[str, Any]] = meta.get("rejected", {})
        result: dict[str, dict[str, Any]] = {}
        for name in meta.get("leaving", []):
            if Service.get_or_none(Service.name == name) is not None:
                result[name] = {"status": "removing"}
        for name in meta.get("named", []):
            row = Service.get_or_none(Service.name == name)
            if name in conflicts:
                result[name] = {
                    "status": "conflict",
                    "detail": "a service of this name was made on this node; left alone",
                }
            elif name in rejected:
                result[name] = {"status": "rejected", **rejected[name]}
            elif row is None:
                result[name] = {"status": "absent"}
            elif row.state in _BUSY or name in self._chains:
                result[name] = {"status": "updating" if row.state == "ready" else row.state}
            elif row.state == "ready":
                result[name] = {"status": "deployed"}
            else:
                code = _failure_code(name)
                refused = code in _REFUSALS or code.startswith("insufficient_")
                status = "rejected" if refused else "failed"
                result[name] = {"status": status, "code": code, "detail": row.message}
        return result

    def _settled(self, service: str) -> None:
        """An operation ended: journal the document's services again if it named this one."""
        meta = _load()
        if not any(service in meta.get(key, []) for key in ("named", "made", "leaving")):
            return
        with journal.write_transaction():
            journal.append("desired.status", "desired", "services", {"services": self.statuses()})


def _failure_code(name: str) -> str:
    entry = (
        JournalEntry.select(JournalEntry.state)
        .where(
            JournalEntry.object_type == "service",
            JournalEntry.object_id == name,
            JournalEntry.kind == "service.failed",
        )
        .order_by(JournalEntry.seq.desc())
        .first()
    )
    state = msgspec.json.decode(entry.state) if entry else None
    if not isinstance(state, dict):
        return "service_failed"
    # ``cause``: why a replica failed (insufficient_memory, unhealthy); ``error``: the step's.
    return str(state.get("cause") or state.get("error") or "service_failed")
