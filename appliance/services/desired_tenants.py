"""The ``tenants`` desired-state kind: tenants with their quotas, grants, labels and VNets.

Object ids: ``tenant:NAME`` and ``vnet:TENANT/NAME``. A document is checked with the
same structs and service checks as the tenant routes (``towerbox_core.tenant_rules``,
``TenantService.check_policy``) and the VNet routes (``parse_vnet``, the whole N6
declaration), all before anything changes; the tenants, their policies and VNet
declarations are then written in one transaction, so a refused document changes
nothing.

Removal is conservative: a tenant a new version drops is removed only when the
registry made it and it owns nothing (no VMs, VNets or users); otherwise it stays and
the answer says why. A tenant made on this node is never removed by the registry,
though a document that names it sets its quotas, grants and labels like any other.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from typing import Any

import msgspec

from appliance.services.auth import AuthService, tenant_labels
from appliance.services.desired_adapters import NODE, VnetsAdapter
from appliance.services.desired_rule import States
from appliance.services.n6 import N6Service
from appliance.services.tenants import TenantService
from appliance.store import journal
from appliance.store.models import Meta, Tenant
from towerbox_core.api.tenants import Grants, Quotas
from towerbox_core.tenant_rules import parse_tenants_document, within

log = logging.getLogger(__name__)

_MADE = "desired_tenants_made"  # the tenants this kind created (it may remove only these)
TENANT = "tenant:"
VNET = "vnet:"


def _made() -> set[str]:
    row = Meta.get_or_none(Meta.key == _MADE)
    return set(msgspec.json.decode(row.value, type=list[str])) if row else set()


def _tenant_state(
    description: str, labels: dict[str, str], quotas: Quotas | None, grants: Grants
) -> dict[str, Any]:
    return {
        "description": description,
        "labels": dict(sorted(labels.items())),
        "quotas": None if quotas is None else msgspec.to_builtins(quotas),
        "grants": msgspec.to_builtins(grants),
    }


class TenantsAdapter:
    def __init__(
        self,
        auth: AuthService,
        tenants: TenantService,
        n6: N6Service,
        vnets_claimed: Callable[[], set[str]],
    ) -> None:
        self._auth = auth
        self._tenants = tenants
        self._n6 = n6
        self._vnets = VnetsAdapter(n6, vnets_claimed)

    def current(self) -> States:
        states: States = {}
        for row in Tenant.select().order_by(Tenant.name):
            quotas, source = self._tenants.quotas(row.name)
            states[TENANT + row.name] = _tenant_state(
                row.description,
                tenant_labels(row),
                quotas if source == "set" else None,
                self._tenants.grants(row.name),
            )
        states.update({VNET + key: body for key, body in self._vnets.current().items()})
        return states

    def locked(self) -> set[str]:
        return set()

    def kept(self, deletes: list[str]) -> dict[str, str]:
        made = _made()
        leaving = Counter(key.partition("/")[0] for key in _ids(VNET, deletes))
        reasons: dict[str, str] = {}
        for oid in deletes:
            if not oid.startswith(TENANT):
                continue
            name = oid.removeprefix(TENANT)
            if name not in made:
                reasons[oid] = "made on this node: only the node's operators remove it"
            elif held := self._tenants.holdings(name, leaving[name]):
                reasons[oid] = f"still owns {', '.join(held)}"
        return reasons

    def parse(self, document: dict[str, Any]) -> States:
        doc = parse_tenants_document(document)
        states: States = {}
        bodies: list[dict[str, Any]] = []
        for name, entry in sorted(doc.tenants.items()):
            with within(f"tenants.{name}"):
                self._tenants.check_policy(entry.quotas, entry.grants)
            grants = msgspec.structs.replace(
                entry.grants, pci_devices=sorted(set(entry.grants.pci_devices))
            )
            states[TENANT + name] = _tenant_state(
                entry.description, entry.labels, entry.quotas, grants
            )
            bodies += [{**body, "tenant": name} for body in entry.vnets]
        vnets = self._vnets.parse_list(bodies, "vnets")
        states.update({VNET + key: body for key, body in vnets.items()})
        return states

    def apply(self, puts: States, deletes: list[str], central: States) -> None:
        made = _made()
        current = self.current()
        with journal.write_transaction():
            for oid, state in _of(TENANT, puts).items():
                name = oid.removeprefix(TENANT)
                old = current.get(oid)
                if old is None:
                    self._auth.create_tenant(name, state["description"], state["labels"])
                    made.add(name)
                elif (old["description"], old["labels"]) != (state["description"], state["labels"]):
                    self._tenants.update(name, state["description"], state["labels"])
                quotas = (
                    None if state["quotas"] is None else msgspec.convert(state["quotas"], Quotas)
                )
                self._tenants.put_policy(name, quotas, msgspec.convert(state["grants"], Grants))
            changed = self._vnets.declare(
                {oid.removeprefix(VNET): body for oid, body in _of(VNET, puts).items()},
                _ids(VNET, deletes),
            )
            for name in _ids(TENANT, deletes):
                self._tenants.delete(name)
                made.discard(name)
            value = msgspec.json.encode(sorted(made)).decode()
            Meta.insert(key=_MADE, value=value).on_conflict_replace().execute()
        if changed:
            # As for the vnets kind: a failure here is the node's, and a resend applies again.
            self._n6.apply(NODE)


def _of(prefix: str, states: States) -> States:
    return {k: v for k, v in states.items() if k.startswith(prefix)}


def _ids(prefix: str, ids: list[str]) -> list[str]:
    """The ids of one object type, without their prefix."""
    return [k.removeprefix(prefix) for k in ids if k.startswith(prefix)]
