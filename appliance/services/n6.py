"""N6 use cases: declare trunks and tenant VNets, plan, apply, read their traffic.

Two documents live in the state database: what the operator *declared* (edited by
the API, validated as a whole on every change) and what was last *applied* to the
node. Plan compares the node with the declaration; apply makes the node match it
and records it as applied; reconcile re-applies the applied document, so a reboot
or a hand-deleted port comes back without shipping unreviewed edits.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable
from typing import Any

import msgspec

from appliance.services import n6_status
from appliance.services.auth import Principal
from appliance.store import journal
from appliance.store.models import Meta, Tenant, Vm
from towerbox_core.api.n6 import (
    InterfaceCounters,
    N6Status,
    OvsDatapaths,
    PfcpSession,
    TrunkDeclaration,
    VnetDeclaration,
    VnetState,
)
from towerbox_core.errors import Conflict, InvalidInput, NotFound, TowerboxError
from upf_bridge.backends.base import Attachment, NetBackend, VNetCounters
from upf_bridge.eupf import EupfClient, sessions_by_vnet
from upf_bridge.model import N6Config, TrunkKind, VNet, validate
from upf_bridge.parse import parse_config, parse_trunk, parse_vnet
from upf_bridge.upf_config import render_upf_yaml

log = logging.getLogger(__name__)

DECLARED = "n6_declared"
APPLIED = "n6_applied"
_EMPTY: dict[str, list[Any]] = {"trunks": [], "vnets": []}

BackendFactory = Callable[[TrunkKind], NetBackend]


def _read(key: str) -> dict[str, list[Any]]:
    row = Meta.get_or_none(Meta.key == key)
    if row is None:
        return {"trunks": [], "vnets": []}
    doc: dict[str, list[Any]] = msgspec.json.decode(row.value)
    return doc


def _write(key: str, doc: dict[str, list[Any]]) -> None:
    value = msgspec.json.encode(doc).decode()
    Meta.insert(key=key, value=value).on_conflict_replace().execute()


def vnet_key(tenant: str, name: str) -> str:
    return f"{tenant}/{name}"


class N6Service:
    def __init__(self, backend_for: BackendFactory, eupf_url: str = "") -> None:
        self._backend_for = backend_for
        self._eupf_url = eupf_url
        # Backends made (at start, or for a first trunk of their kind), and those of
        # them apply runs: kinds that have had trunks since the daemon started.
        self._probed: dict[TrunkKind, NetBackend] = {}
        self._backends: dict[TrunkKind, NetBackend] = {}
        self._lines: dict[TrunkKind, str] = {}
        # Edits read, validate and write the whole declaration: one at a time.
        self._lock = threading.Lock()
        self.last_counters: dict[str, VNetCounters] = {}
        # (tenant, VNets it has) -> refuses one more past its quota; set by the wiring.
        self.vnet_quota: Callable[[str, int], None] | None = None

    def backend(self, kind: TrunkKind) -> NetBackend:
        """The backend for trunks of ``kind``; from now on apply runs it too."""
        if kind not in self._backends:
            self._backends[kind] = self._probed_backend(kind)
        return self._backends[kind]

    def _probed_backend(self, kind: TrunkKind) -> NetBackend:
        if kind not in self._probed:
            backend = self._backend_for(kind)
            # Asked once: describing OVS runs ovs-vsctl, too slow for every /healthz.
            self._lines[kind] = backend.describe()
            self._probed[kind] = backend
        return self._probed[kind]

    def probe(self) -> None:
        """At start: find which OVS datapaths work here, so /healthz says it from the
        first call, and make the backends the declaration already uses."""
        config = parse_config(_read(APPLIED))
        kinds = {t.kind for t in (*config.trunks, *self.declared().trunks)}
        for kind in sorted(kinds | {TrunkKind.OVS}, key=lambda k: k.value):
            try:
                if kind in kinds:
                    self.backend(kind)  # apply runs it from now on
                else:
                    self._probed_backend(kind)
            except TowerboxError as err:
                # A backend configured "real" whose switch is down: the daemon still
                # starts; the first N6 call that needs it says why it cannot.
                log.warning("N6 %s backend not ready at start: %s", kind.value, err.message)

    def describe(self) -> list[str]:
        return [self._lines[k] for k in sorted(self._lines, key=lambda k: k.value)]

    def ovs_datapaths(self) -> OvsDatapaths | None:
        return n6_status.datapaths(self._probed.get(TrunkKind.OVS))

    def status(self) -> N6Status:
        return N6Status(
            backends=self.describe(),
            ovs_datapaths=self.ovs_datapaths(),
            last_apply=n6_status.last(),
            pending=n6_status.pending(self.declared(), parse_config(_read(APPLIED))),
        )

    # -- the declaration -----------------------------------------------------------

    def declared(self) -> N6Config:
        return parse_config(_read(DECLARED))

    def vnet_count(self, tenant: str) -> int:
        """The tenant's declared VNets (its quota counts declared ones, applied or not)."""
        return sum(v.get("tenant") == tenant for v in _read(DECLARED)["vnets"])

    def applied_document(self) -> dict[str, list[Any]]:
        return _read(APPLIED)

    def upf_config(self) -> str:
        """The UPF's session configuration (Open5GS ``upf.yaml``) for the applied VNets."""
        vnets = parse_config(self.applied_document()).vnets
        return render_upf_yaml(vnets, default_dev="ogstun")

    def list_trunks(self) -> list[dict[str, Any]]:
        return list(_read(DECLARED)["trunks"])

    def trunks(self) -> list[TrunkDeclaration]:
        return msgspec.convert(self.list_trunks(), list[TrunkDeclaration])

    def put_trunk(self, principal: Principal, body: dict[str, Any]) -> TrunkDeclaration:
        principal.require_infra_admin()
        # Valid on its own first (a bogus datapath is bad input, not one this host
        # lacks); then what the host cannot carry is refused now, not at apply.
        trunk = parse_trunk(body, "trunk")
        alone = validate([trunk], [])
        self._probed_backend(trunk.kind).check(alone)
        with self._lock:
            doc = _read(DECLARED)
            doc["trunks"] = [t for t in doc["trunks"] if t.get("name") != trunk.name] + [body]
            self._save(doc, "n6.trunk_declared", trunk.name, body)
        return msgspec.convert(body, TrunkDeclaration)

    def delete_trunk(self, principal: Principal, name: str) -> None:
        principal.require_infra_admin()
        with self._lock:
            doc = _read(DECLARED)
            if not any(t.get("name") == name for t in doc["trunks"]):
                raise NotFound(f"no N6 trunk {name!r}", code="unknown_trunk")
            users = [vnet_key(v["tenant"], v["name"]) for v in doc["vnets"] if v["trunk"] == name]
            if users:
                raise Conflict(
                    f"trunk {name} still carries VNets {', '.join(users)}", code="trunk_in_use"
                )
            doc["trunks"] = [t for t in doc["trunks"] if t.get("name") != name]
            self._save(doc, "n6.trunk_removed", name, None)

    def list_vnets(self, principal: Principal) -> list[dict[str, Any]]:
        return [v for v in _read(DECLARED)["vnets"] if principal.can_see(v.get("tenant"))]

    def vnets(self, principal: Principal) -> list[VnetDeclaration]:
        return msgspec.convert(self.list_vnets(principal), list[VnetDeclaration])

    def get_vnet(self, principal: Principal, tenant: str, name: str) -> VnetDeclaration:
        return msgspec.convert(self._find_vnet(principal, tenant, name), VnetDeclaration)

    def _find_vnet(self, principal: Principal, tenant: str, name: str) -> dict[str, Any]:
        for v in self.list_vnets(principal):
            if v["tenant"] == tenant and v["name"] == name:
                return v
        raise NotFound(f"no VNet {vnet_key(tenant, name)}", code="vnet_not_found")

    def create_vnet(self, principal: Principal, body: dict[str, Any]) -> VnetDeclaration:
        principal.require_infra_admin()
        vnet = parse_vnet(body, "vnet")
        if not Tenant.select().where(Tenant.name == vnet.tenant).exists():
            raise InvalidInput(
                f"no tenant {vnet.tenant!r}; create it first", code="unknown_tenant", field="tenant"
            )
        with self._lock:
            doc = _read(DECLARED)
            if any(_same(v, vnet.tenant, vnet.name) for v in doc["vnets"]):
                raise Conflict(f"VNet {vnet.key} exists", code="vnet_exists")
            if self.vnet_quota is not None:
                self.vnet_quota(vnet.tenant, sum(v["tenant"] == vnet.tenant for v in doc["vnets"]))
            doc["vnets"] = [*doc["vnets"], body]
            self._save(doc, "n6.vnet_declared", vnet.key, body)
        return msgspec.convert(body, VnetDeclaration)

    def update_vnet(
        self, principal: Principal, tenant: str, name: str, body: dict[str, Any]
    ) -> VnetDeclaration:
        principal.require_infra_admin()
        current = self._find_vnet(principal, tenant, name)
        merged = {**current, **body}
        attached = self.attached_vms().get(vnet_key(tenant, name), [])
        moved = any(merged.get(k) != current.get(k) for k in ("vlan", "trunk"))
        if moved and attached:
            # Their ports carry the old tag until they are re-created: refuse rather
            # than strand running VMs on a VLAN nobody serves.
            raise Conflict(
                f"VMs {', '.join(attached)} are attached to {vnet_key(tenant, name)}; "
                "moving it to another VLAN or trunk needs them deleted or re-created first",
                code="vnet_in_use",
                vms=attached,
            )
        if (merged["tenant"], merged["name"]) != (tenant, name):
            raise Conflict(
                "a VNet's tenant and name cannot change; create a new one", code="vnet_rename"
            )
        parse_vnet(merged, "vnet")
        with self._lock:
            doc = _read(DECLARED)
            doc["vnets"] = [merged if _same(v, tenant, name) else v for v in doc["vnets"]]
            self._save(doc, "n6.vnet_declared", vnet_key(tenant, name), merged)
        return msgspec.convert(merged, VnetDeclaration)

    def delete_vnet(self, principal: Principal, tenant: str, name: str) -> None:
        principal.require_infra_admin()
        self._find_vnet(principal, tenant, name)
        attached = self.attached_vms().get(vnet_key(tenant, name), [])
        if attached:
            raise Conflict(
                f"VMs {', '.join(attached)} are attached to {vnet_key(tenant, name)}",
                code="vnet_in_use",
                vms=attached,
            )
        with self._lock:
            doc = _read(DECLARED)
            doc["vnets"] = [v for v in doc["vnets"] if not _same(v, tenant, name)]
            self._save(doc, "n6.vnet_removed", vnet_key(tenant, name), None)

    def _save(self, doc: dict[str, list[Any]], kind: str, object_id: str, state: Any) -> None:
        parse_config(doc)  # the whole declaration must stay valid, or nothing is saved
        with journal.write_transaction():
            _write(DECLARED, doc)
            journal.append(kind, "n6", object_id, state)

    # -- plan and apply ------------------------------------------------------------

    def plan(self) -> dict[str, list[str]]:
        config = self.declared()
        return {
            kind.value: self.backend(kind).plan(config.of_kind(kind)).lines()
            for kind in self._kinds(config)
        }

    def apply(self, principal: Principal) -> dict[str, list[str]]:
        principal.require_infra_admin()
        with self._lock:
            doc = _read(DECLARED)
            try:
                result = self._apply(parse_config(doc))
            except TowerboxError as err:
                n6_status.failed("apply", err)
                raise
            except Exception as err:
                raise n6_status.unexpected("apply", err) from err
            with journal.write_transaction():
                _write(APPLIED, doc)
                n6_status.succeeded("apply", result, vnets=len(doc["vnets"]))
        log.info("N6 applied: %d changes", sum(len(v) for v in result.values()))
        return result

    def reapply(self) -> dict[str, list[str]]:
        """Make the node match the last applied document again (reconcile, boot)."""
        # After any apply under way: read before it commits, the applied document
        # lacks what that apply is making, and the repair would take it down again.
        with self._lock:
            config = parse_config(_read(APPLIED))
            try:
                plans = {k: self.backend(k).plan(config.of_kind(k)) for k in self._kinds(config)}
                if all(p.empty for p in plans.values()):
                    return {}
                result = self._apply(config)
            except TowerboxError as err:
                n6_status.failed("repair", err)
                raise
            except Exception as err:
                raise n6_status.unexpected("repair", err) from err
            with journal.write_transaction():
                n6_status.succeeded("repair", result)
        log.warning("N6 drift repaired: %s", result)
        return result

    def _apply(self, config: N6Config) -> dict[str, list[str]]:
        return {
            kind.value: self.backend(kind).apply(config.of_kind(kind)).lines()
            for kind in self._kinds(config)
        }

    def _kinds(self, config: N6Config) -> list[TrunkKind]:
        # Kinds with trunks now, and kinds a backend was made for (it may have to
        # delete what it made before the last trunk of its kind went away).
        kinds = {t.kind for t in config.trunks} | set(self._backends)
        return sorted(kinds, key=lambda k: k.value)

    # -- live state and VM attachment ---------------------------------------------------

    def sweep_counters(self) -> dict[str, VNetCounters]:
        counters: dict[str, VNetCounters] = {}
        for backend in list(self._backends.values()):
            try:
                counters.update(backend.counters())
            except TowerboxError as err:
                log.warning("N6 counters unavailable: %s", err.message)
        self.last_counters = counters
        return counters

    def state(self, principal: Principal) -> list[VnetState]:
        applied = {vnet_key(v["tenant"], v["name"]) for v in _read(APPLIED)["vnets"]}
        attached = self.attached_vms()
        result = []
        for v in self.list_vnets(principal):
            key = vnet_key(v["tenant"], v["name"])
            c = self.last_counters.get(key)
            result.append(
                VnetState(
                    vnet=key,
                    vlan=v["vlan"],
                    trunk=v["trunk"],
                    applied=key in applied,
                    attached_vms=attached.get(key, []),
                    interfaces=[
                        InterfaceCounters(**dataclasses.asdict(i))
                        for i in (c.interfaces if c else ())
                    ],
                    rx_bytes=c.rx_bytes if c else 0,
                    tx_bytes=c.tx_bytes if c else 0,
                    rx_packets=c.rx_packets if c else 0,
                    tx_packets=c.tx_packets if c else 0,
                )
            )
        return result

    def sessions(self, principal: Principal) -> dict[str, list[PfcpSession]]:
        """PFCP sessions from the eUPF, grouped by the VNet whose UE pool holds them."""
        if not self._eupf_url:
            raise Conflict(
                "no eUPF is configured on this node (n6.eupf_url)", code="eupf_not_configured"
            )
        with EupfClient(self._eupf_url) as client:
            sessions = client.sessions()
        grouped = sessions_by_vnet(sessions, parse_config(_read(APPLIED)).vnets)
        return {
            key: [
                PfcpSession(
                    imsi=s.imsi,
                    msisdn=s.msisdn,
                    local_seid=s.local_seid,
                    ue_addresses=[str(a) for a in s.ue_addresses],
                )
                for s in found
            ]
            for key, found in grouped.items()
            if principal.can_see(key.split("/", 1)[0])
        }

    def attachment(self, tenant: str | None, ref: str) -> Attachment:
        """Where a VM NIC asking for VNet ``ref`` ("name" in its tenant, or "tenant/name")."""
        owner, _, name = ref.rpartition("/")
        owner = owner or (tenant or "")
        if tenant is not None and owner != tenant:
            raise NotFound(
                f"no VNet {ref!r} in tenant {tenant}", code="vnet_not_found", field="nics"
            )
        applied = parse_config(_read(APPLIED))
        for vnet in applied.vnets:
            if (vnet.tenant, vnet.name) == (owner, name):
                return self.backend(applied.trunk(vnet.trunk).kind).attachment(vnet)
        declared = any((v.tenant, v.name) == (owner, name) for v in self.declared().vnets)
        if declared:
            raise Conflict(
                f"VNet {owner}/{name} is declared but not applied yet; apply N6 first",
                code="vnet_not_applied",
                field="nics",
            )
        raise NotFound(f"no VNet {owner}/{name}", code="vnet_not_found", field="nics")

    def attached_vms(self) -> dict[str, list[str]]:
        result: dict[str, list[str]] = {}
        # Read on every /metrics scrape: plain rows, and only the NICs of each spec.
        rows = Vm.select(Vm.name, Vm.spec, Vm.tenant).tuples()
        for vm_name, spec, tenant in rows.iterator():
            for nic in msgspec.json.decode(spec, type=_SpecNics).nics:
                if nic.vnet:
                    owner, _, name = nic.vnet.rpartition("/")
                    key = vnet_key(owner or tenant or "", name)
                    result.setdefault(key, []).append(vm_name)
        return result


class _NicVnet(msgspec.Struct):
    vnet: str | None = None


class _SpecNics(msgspec.Struct):
    """A stored VM spec's NICs, the VNets they name; the rest of the spec is skipped."""

    nics: list[_NicVnet] = []


def _same(doc: dict[str, Any], tenant: str, name: str) -> bool:
    return bool(doc.get("tenant") == tenant and doc.get("name") == name)


__all__ = ["N6Service", "VNet"]
