"""One adapter per desired-state document kind: how to read, parse and apply it.

Each turns its kind's document into object states keyed by object id, says which
objects are locked (they come from the node's configuration or shipped files), and
applies a decision through the node's own services.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import msgspec

from appliance.catalog.loading import entry_from_document
from appliance.catalog.model import CatalogEntry, entry_document
from appliance.domain.gpu.target import LayoutRequest
from appliance.services.auth import Principal, Role
from appliance.services.desired_rule import States
from appliance.services.gpu_layouts import GpuLayoutService
from appliance.services.gpu_schedules import GpuSchedules, Schedule, cron_trigger
from appliance.services.n6 import N6Service, vnet_key
from appliance.store import journal
from appliance.store.models import Meta, Tenant
from towerbox_core.errors import Conflict, InvalidInput, TowerboxError
from towerbox_core.names import check_name
from upf_bridge.parse import parse_config, parse_vnet

log = logging.getLogger(__name__)

# The node applies central documents as itself: the caller (sync-agent or infra-admin)
# was authorised to hand the document over, not to act as an operator.
NODE = Principal(0, "desired-state", Role.INFRA_ADMIN, None, 0)
_GPU_LAYOUTS = "desired_gpu_layouts"
_CATALOG = "desired_catalog"


class KindAdapter(Protocol):
    def current(self) -> States: ...
    def locked(self) -> set[str]: ...
    # Objects a new version drops that stay anyway, with the reason (still in use).
    def kept(self, deletes: list[str]) -> dict[str, str]: ...
    def parse(self, document: dict[str, Any]) -> States: ...
    def apply(self, puts: States, deletes: list[str], central: States) -> None: ...


def invalid_document(message: str, **extra: Any) -> InvalidInput:
    return InvalidInput(message, code="invalid_desired_document", **extra)


class GpuDocument(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    layouts: dict[str, LayoutRequest] = msgspec.field(default_factory=dict)
    schedules: dict[str, Schedule] = msgspec.field(default_factory=dict)


class GpuAdapter:
    """Named GPU layouts (``layout:NAME``) and schedules (``schedule:NAME``)."""

    def __init__(self, gpus: GpuLayoutService, schedules: GpuSchedules) -> None:
        self._gpus = gpus
        self._schedules = schedules
        self._configured = set(gpus.layouts)  # from the configuration file

    def restore(self) -> None:
        row = Meta.get_or_none(Meta.key == _GPU_LAYOUTS)
        if row is not None:
            stored = msgspec.json.decode(row.value, type=dict[str, LayoutRequest])
            for name, req in stored.items():
                self._gpus.layouts.setdefault(name, req)

    def current(self) -> States:
        states: States = {
            f"layout:{n}": msgspec.to_builtins(r) for n, r in self._gpus.layouts.items()
        }
        for s in self._schedules.list():
            states[f"schedule:{s.name}"] = msgspec.to_builtins(Schedule(s.gpu, s.cron, s.target))
        return states

    def locked(self) -> set[str]:
        names = {f"layout:{n}" for n in self._configured}
        return names | {
            f"schedule:{s.name}" for s in self._schedules.list() if s.source == "config"
        }

    def kept(self, deletes: list[str]) -> dict[str, str]:
        return {}

    def parse(self, document: dict[str, Any]) -> States:
        try:
            doc = msgspec.convert(document, GpuDocument)
        except msgspec.ValidationError as err:
            raise invalid_document(f"gpu document: {err}") from err
        states: States = {}
        for name, req in doc.layouts.items():
            check_name("layout", name, field=f"layouts.{name}")
            req.check(named=False)
            states[f"layout:{name}"] = msgspec.to_builtins(req)
        for name, sched in doc.schedules.items():
            check_name("schedule", name, field=f"schedules.{name}")
            cron_trigger(sched.cron)
            states[f"schedule:{name}"] = msgspec.to_builtins(sched)
        return states

    def apply(self, puts: States, deletes: list[str], central: States) -> None:
        before = dict(self._gpus.layouts)
        layouts = dict(before)
        for oid in deletes:
            if oid.startswith("layout:"):
                layouts.pop(oid.removeprefix("layout:"), None)
        for oid, state in puts.items():
            if oid.startswith("layout:"):
                layouts[oid.removeprefix("layout:")] = msgspec.convert(state, LayoutRequest)
        self._gpus.layouts.clear()
        self._gpus.layouts.update(layouts)
        try:
            # Every schedule is planned before any is saved: a bad GPU or target
            # refuses the whole document and leaves the node as it was.
            scheds = {
                oid.removeprefix("schedule:"): msgspec.convert(state, Schedule)
                for oid, state in puts.items()
                if oid.startswith("schedule:")
            }
            for sched in scheds.values():
                self._gpus.plan(sched.gpu, sched.target)
        except TowerboxError:
            self._gpus.layouts.clear()
            self._gpus.layouts.update(before)
            raise
        central_layouts = {
            n: r
            for n, r in layouts.items()
            if f"layout:{n}" in central and n not in self._configured
        }
        with journal.write_transaction():
            Meta.insert(
                key=_GPU_LAYOUTS, value=msgspec.json.encode(central_layouts).decode()
            ).on_conflict_replace().execute()
        for name, sched in scheds.items():
            self._schedules.put(NODE, name, sched)
        for oid in deletes:
            if oid.startswith("schedule:"):
                self._schedules.delete(NODE, oid.removeprefix("schedule:"))


class VnetsDocument(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    vnets: list[dict[str, Any]] = msgspec.field(default_factory=list)


class VnetsAdapter:
    """Tenant VNets in the N6 declaration, by ``tenant/name``.

    ``claimed`` answers the VNets another kind's document owns (a ``tenants`` document
    may carry its tenants' VNets): one VNet is declared by one document only.
    """

    def __init__(self, n6: N6Service, claimed: Callable[[], set[str]] = set) -> None:
        self._n6 = n6
        self._claimed = claimed

    def current(self) -> States:
        return {vnet_key(v["tenant"], v["name"]): v for v in self._n6.list_vnets(NODE)}

    def locked(self) -> set[str]:
        return set()

    def kept(self, deletes: list[str]) -> dict[str, str]:
        return {}

    def parse(self, document: dict[str, Any]) -> States:
        try:
            doc = msgspec.convert(document, VnetsDocument)
        except msgspec.ValidationError as err:
            raise invalid_document(f"vnets document: {err}") from err
        return self.parse_list(doc.vnets, "vnets")

    def parse_list(self, bodies: list[dict[str, Any]], where: str) -> States:
        states: States = {}
        claimed = self._claimed()
        for i, body in enumerate(bodies):
            vnet = parse_vnet(body, f"{where}[{i}]")
            if vnet.key in states:
                raise invalid_document(f"VNet {vnet.key} appears twice", field=f"{where}[{i}]")
            if vnet.key in claimed:
                raise Conflict(
                    f"VNet {vnet.key} is declared by another desired-state document",
                    code="vnet_declared_twice",
                    field=f"{where}[{i}]",
                )
            states[vnet.key] = body
        return states

    def apply(self, puts: States, deletes: list[str], central: States) -> None:
        if self.declare(puts, deletes):
            # Declared is not done: the node's bridges, VLANs and rules follow now. A
            # failure here is the node's (5xx): the agent resends, and the resend finds
            # the declaration in place and applies again.
            self._n6.apply(NODE)

    def declare(self, puts: States, deletes: list[str]) -> bool:
        """Change the N6 declaration (all checks first); True when anything changed."""
        current = self.current()
        final = {k: v for k, v in current.items() if k not in deletes}
        for key, body in puts.items():
            final[key] = {**current.get(key, {}), **body}
        # The whole declaration must stay valid, and no change may strand a VM.
        parse_config({"trunks": self._n6.list_trunks(), "vnets": list(final.values())})
        attached = self._n6.attached_vms()
        for key, body in puts.items():
            tenant = body["tenant"]
            if not Tenant.select().where(Tenant.name == tenant).exists():
                raise InvalidInput(
                    f"no tenant {tenant!r} on this node for VNet {key}", code="unknown_tenant"
                )
            old = current.get(key)
            moved = old is not None and any(old.get(k) != body.get(k) for k in ("vlan", "trunk"))
            if moved and attached.get(key):
                raise Conflict(f"VMs are attached to {key}", code="vnet_in_use", vnet=key)
        for key in deletes:
            if attached.get(key):
                raise Conflict(f"VMs are attached to {key}", code="vnet_in_use", vnet=key)
        for key in deletes:
            tenant, _, name = key.partition("/")
            self._n6.delete_vnet(NODE, tenant, name)
        for key, body in puts.items():
            if key in current:
                tenant, _, name = key.partition("/")
                self._n6.update_vnet(NODE, tenant, name, body)
            else:
                self._n6.create_vnet(NODE, body)
        return bool(puts or deletes)


class CatalogDocument(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    entries: list[dict[str, Any]] = msgspec.field(default_factory=list)


class CatalogAdapter:
    """Appliance catalog entries by name. Entries shipped as files count as marked:
    a central entry of the same name is reported and the file's stays."""

    def __init__(self, catalog: dict[str, CatalogEntry], templates_dir: Path) -> None:
        self._catalog = catalog  # the VM service's own dict: changes are live at once
        self._templates = templates_dir
        self._files = {n for n, e in catalog.items() if not e.source_file.startswith("central/")}

    def restore(self) -> None:
        row = Meta.get_or_none(Meta.key == _CATALOG)
        if row is None:
            return
        for i, data in enumerate(msgspec.json.decode(row.value, type=list[dict[str, Any]])):
            try:
                entry = entry_from_document(data, self._templates, f"entries[{i}]")
            except InvalidInput as err:  # a template removed since: say so, keep going
                log.error("central catalog entry not restored: %s", err.message)
                continue
            self._catalog.setdefault(entry.name, entry)

    def current(self) -> States:
        return {name: entry_document(e) for name, e in self._catalog.items()}

    def locked(self) -> set[str]:
        return set(self._files)

    def kept(self, deletes: list[str]) -> dict[str, str]:
        return {}

    def _entries(self, document: dict[str, Any]) -> dict[str, CatalogEntry]:
        try:
            doc = msgspec.convert(document, CatalogDocument)
        except msgspec.ValidationError as err:
            raise invalid_document(f"catalog document: {err}") from err
        entries: dict[str, CatalogEntry] = {}
        for i, data in enumerate(doc.entries):
            entry = entry_from_document(data, self._templates, f"entries[{i}]")
            if entry.name in entries:
                raise invalid_document(
                    f"catalog entry {entry.name} appears twice", field=f"entries[{i}]"
                )
            entries[entry.name] = entry
        return entries

    def parse(self, document: dict[str, Any]) -> States:
        return {name: entry_document(e) for name, e in self._entries(document).items()}

    def apply(self, puts: States, deletes: list[str], central: States) -> None:
        for name in deletes:
            if name not in self._files:
                self._catalog.pop(name, None)
        for i, (name, data) in enumerate(sorted(puts.items())):
            self._catalog[name] = entry_from_document(data, self._templates, f"entries[{i}]")
        kept = [
            entry_document(e)
            for n, e in sorted(self._catalog.items())
            if n not in self._files and n in central
        ]
        with journal.write_transaction():
            Meta.insert(
                key=_CATALOG, value=msgspec.json.encode(kept).decode()
            ).on_conflict_replace().execute()
