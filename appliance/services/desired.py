"""Desired-state documents from the registry: validated like any input, applied through
the node's own services, and the outcome journalled so it travels back up.

The conflict rule (docs/sync-protocol.md): an object named by a central document is
centrally owned, and central policy wins for it — unless the local change is marked
as a local override. "Changed locally" means the object's local state differs both
from what the last central document put there and from what the new one asks for.
A locally changed, unmarked object is replaced by the central version and reported
(``resolution: "central"``); a marked one is kept and reported
(``resolution: "local_override"``). Objects that come from the node's configuration
file count as marked: only the file changes them.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec

from appliance.catalog.model import CatalogEntry
from appliance.services.auth import AuthService, Principal
from appliance.services.desired_adapters import (
    CatalogAdapter,
    GpuAdapter,
    KindAdapter,
    VnetsAdapter,
)
from appliance.services.desired_rule import Decision, decide
from appliance.services.desired_services import ServicesAdapter
from appliance.services.desired_tenants import VNET, TenantsAdapter
from appliance.services.gpu_layouts import GpuLayoutService
from appliance.services.gpu_schedules import GpuSchedules
from appliance.services.n6 import N6Service
from appliance.services.tenants import TenantService
from appliance.store import journal
from appliance.store.models import Meta
from towerbox_core.api.sync import DesiredApplied, DesiredKindSummary
from towerbox_core.errors import Conflict, InvalidInput, NotFound, TowerboxError
from towerbox_core.faults import fault_point
from towerbox_core.wire import DESIRED_KINDS, DesiredDocument

log = logging.getLogger(__name__)

_RECORD = "desired:"
_OVERRIDES = "desired_overrides"


class DesiredRejected(TowerboxError):
    """A document the node refused; carries the original problem's code and status."""

    def __init__(self, status: int, problem: dict[str, Any]) -> None:
        extra = {k: v for k, v in problem.items() if k not in _PROBLEM_KEYS}
        super().__init__(str(problem.get("detail", "")), code=str(problem["code"]), **extra)
        self.status = status


_PROBLEM_KEYS = {"type", "title", "status", "detail", "code"}


class DesiredService:
    def __init__(
        self,
        gpus: GpuLayoutService,
        schedules: GpuSchedules,
        n6: N6Service,
        catalog: dict[str, CatalogEntry],
        templates_dir: Path,
        auth: AuthService,
        tenants: TenantService,
    ) -> None:
        self.gpu = GpuAdapter(gpus, schedules)
        self.catalog = CatalogAdapter(catalog, templates_dir)
        # A VNet is declared by the vnets document or by a tenants document, not both.
        by_tenants = lambda: set(_ids(VNET, self._record("tenants").get("owned", {})))  # noqa: E731
        by_vnets = lambda: set(self._record("vnets").get("owned", {}))  # noqa: E731
        self._adapters: dict[str, KindAdapter] = {
            "gpu": self.gpu,
            "tenants": TenantsAdapter(auth, tenants, n6, by_vnets),
            "vnets": VnetsAdapter(n6, by_tenants),
            "catalog": self.catalog,
        }
        self.services: ServicesAdapter | None = None

    def attach_services(self, services: ServicesAdapter) -> None:
        """The services kind, once the service manager exists (it is built later)."""
        self.services = services
        self._adapters["services"] = services

    def restore(self) -> None:
        """Put the central GPU layouts (schedules name them) and catalog entries back
        after a restart."""
        self.gpu.restore()
        self.catalog.restore()

    # -- records ---------------------------------------------------------------------

    @staticmethod
    def _record(kind: str) -> dict[str, Any]:
        row = Meta.get_or_none(Meta.key == _RECORD + kind)
        return msgspec.json.decode(row.value) if row else {}

    @staticmethod
    def _overrides() -> dict[str, list[str]]:
        row = Meta.get_or_none(Meta.key == _OVERRIDES)
        return msgspec.json.decode(row.value) if row else {}

    def summary(self, principal: Principal) -> dict[str, DesiredKindSummary]:
        principal.require_infra_admin()
        overrides = self._overrides()
        result: dict[str, DesiredKindSummary] = {}
        for kind in DESIRED_KINDS:
            rec = self._record(kind)
            result[kind] = DesiredKindSummary(
                version=rec.get("version"),
                etag=rec.get("etag"),
                source=rec.get("source"),
                result=rec.get("body", {}).get("result") or rec.get("body", {}).get("code"),
                owned=sorted(rec.get("owned", {})),
                local_overrides=overrides.get(kind, []),
            )
        return result

    def set_override(self, principal: Principal, kind: str, object_id: str, on: bool) -> list[str]:
        principal.require_infra_admin()
        _check_kind(kind)
        if not object_id or len(object_id) > 200:
            raise InvalidInput("object_id must be 1 to 200 characters", code="invalid_object_id")
        with journal.write_transaction():
            overrides = self._overrides()
            marked = set(overrides.get(kind, []))
            marked = marked | {object_id} if on else marked - {object_id}
            overrides[kind] = sorted(marked)
            Meta.insert(
                key=_OVERRIDES, value=msgspec.json.encode(overrides).decode()
            ).on_conflict_replace().execute()
            journal.append(
                "desired.local_override", "desired_override", f"{kind}:{object_id}", {"on": on}
            )
        return overrides[kind]

    # -- apply -----------------------------------------------------------------------

    def apply(self, kind: str, doc: DesiredDocument) -> DesiredApplied:
        """Validate and apply one document. What it journals names the caller that handed
        it over (the sync agent, or an infra-admin) and the job: ``desired:KIND``."""
        actor = msgspec.structs.replace(journal.current_actor(), job=f"desired:{kind}")
        with journal.acting_as(actor):
            return self._apply(kind, doc)

    def _apply(self, kind: str, doc: DesiredDocument) -> DesiredApplied:
        _check_kind(kind)
        if doc.kind != kind:
            raise InvalidInput(
                f"the document is of kind {doc.kind!r}, posted as {kind!r}",
                code="kind_mismatch",
                field="kind",
            )
        rec = self._record(kind)
        if rec.get("etag") == doc.etag and not _curable(rec):
            # A resend (agent restart, lost answer): the same answer, nothing journalled.
            if rec["status"] >= 400:
                raise DesiredRejected(rec["status"], rec["body"])
            return msgspec.convert({**rec["body"], "unchanged": True}, DesiredApplied)
        if rec.get("source") == doc.source and doc.version < rec.get("version", 0):
            raise Conflict(
                f"version {doc.version} of {kind} from {doc.source} is older than the "
                f"applied version {rec['version']}",
                code="desired_stale",
            )
        adapter = self._adapters.get(kind)
        if adapter is None:
            raise NotFound(
                f"the {kind} kind is not ready on this node", code="unknown_desired_kind"
            )
        try:
            decision = self._decide(kind, adapter, doc, rec)
            kept = adapter.kept(decision.deletes)
            decision.deletes = [oid for oid in decision.deletes if oid not in kept]
            # A kept object stays owned: a later version removes it once it may go.
            decision.owned.update({oid: rec["owned"][oid] for oid in kept})
            fault_point("desired.apply.before_objects")
            adapter.apply(decision.puts, decision.deletes, adapter.parse(doc.document))
            fault_point("desired.apply.before_record")
        except TowerboxError as err:
            if err.status >= 500:
                raise  # the node failed, not the document: let the agent retry
            problem = err.to_problem()
            self._finish(kind, doc, "desired.rejected", err.status, problem, rec.get("owned", {}))
            log.warning(
                "desired %s v%d rejected: %s (%s)", kind, doc.version, err.message, err.code
            )
            raise DesiredRejected(err.status, problem) from err
        result = "conflict" if decision.conflicts else "applied"
        body = {
            "kind": kind,
            "version": doc.version,
            "etag": doc.etag,
            "result": result,
            "changed": sorted(decision.puts) + sorted(decision.deletes),
            "conflicts": decision.conflicts,
            "kept": [{"object_id": oid, "reason": why} for oid, why in sorted(kept.items())],
        }
        # Read in the transaction that journals it: a service operation that ends
        # meanwhile journals its desired.status after this entry, never before it (the
        # registry shows the newest entry of the kind's object).
        with journal.write_transaction():
            if kind == "services" and self.services is not None:
                # Per service: deploying, conflict, rejected...; desired.status follows.
                body["services"] = self.services.statuses()
            self._finish(kind, doc, f"desired.{result}", 200, body, decision.owned)
        return msgspec.convert(body, DesiredApplied)

    def _decide(
        self, kind: str, adapter: KindAdapter, doc: DesiredDocument, rec: dict[str, Any]
    ) -> Decision:
        central = adapter.parse(doc.document)
        overrides = set(self._overrides().get(kind, [])) | adapter.locked()
        return decide(central, adapter.current(), rec.get("owned", {}), overrides)

    def _finish(
        self,
        kind: str,
        doc: DesiredDocument,
        entry_kind: str,
        status: int,
        body: dict[str, Any],
        owned: Mapping[str, str],
    ) -> None:
        record = {
            "etag": doc.etag,
            "version": doc.version,
            "source": doc.source,
            "status": status,
            "body": body,
            "owned": dict(owned),
        }
        state = {
            "version": doc.version,
            "etag": doc.etag,
            "source": doc.source,
            "result": entry_kind.removeprefix("desired."),
            "reason": body.get("code") and {"code": body["code"], "detail": body.get("detail")},
            "conflicts": body.get("conflicts", []),
            "kept": body.get("kept", []),
            **({"services": body["services"]} if "services" in body else {}),
        }
        with journal.write_transaction():
            Meta.insert(
                key=_RECORD + kind, value=msgspec.json.encode(record).decode()
            ).on_conflict_replace().execute()
            journal.append(entry_kind, "desired", kind, state)


# Refusals another document may cure: a tenants document can bring the tenant a VNet
# or a service names, a vnets or catalog document the VNets and entries (and entry
# versions) a service uses.
_CURABLE = {
    "unknown_tenant",
    "tenant_not_found",
    "vnet_not_found",
    "unknown_catalog_entry",
    "catalog_version_unavailable",
}


def _curable(rec: dict[str, Any]) -> bool:
    """A refusal another document may have cured since; such a document is tried again
    when handed over again."""
    return bool(rec.get("status", 200) >= 400 and rec["body"].get("code") in _CURABLE)


def _ids(prefix: str, ids: Mapping[str, Any]) -> list[str]:
    return [k.removeprefix(prefix) for k in ids if k.startswith(prefix)]


def _check_kind(kind: str) -> None:
    if kind not in DESIRED_KINDS:
        raise NotFound(
            f"no desired-state kind {kind!r}; known: {', '.join(DESIRED_KINDS)}",
            code="unknown_desired_kind",
        )
