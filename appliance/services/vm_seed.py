"""Contextualization: what a VM made from a catalog entry with a cloud-init template
gets on its NoCloud seed, planned before anything is made.

The request's ``values`` are checked against the entry's declarations here, at the
edge; the seed's files are rendered before the VM service takes its lock, so a bad
value or template refuses the create with nothing made. Only ``shown`` (secrets
replaced by a marker) ever reaches the journal.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from appliance.backends.vm.seed_iso import SeedFiles
from appliance.catalog.cloud_init import render_cloud_init
from appliance.catalog.model import CatalogEntry
from appliance.catalog.values import Value, check_values, redacted
from appliance.domain.vm_spec import VmSpec
from towerbox_core.api.vms import VmCreateRequest
from towerbox_core.errors import InvalidInput

SEED_SUFFIX = "-seed.iso"


@dataclass(frozen=True)
class SeedPlan:
    files: SeedFiles
    shown: dict[str, Any]  # the request's values as the journal may keep them


def request_values(catalog: dict[str, CatalogEntry], req: VmCreateRequest) -> dict[str, Value]:
    """The request's values, typed and checked against its entry's declarations."""
    entry = catalog.get(req.appliance) if req.appliance is not None else None
    if entry is None or entry.cloud_init_template is None:
        if req.values:
            name = next(iter(req.values))
            raise InvalidInput(
                f"value {name!r} is not one this VM takes: only an appliance with a "
                "cloud-init template takes values",
                code="unknown_value",
                field=f"values.{name}",
            )
        return {}
    return check_values(entry.cloud_init_values, req.values)


def plan_seed(
    catalog: dict[str, CatalogEntry],
    templates_dir: Path,
    req: VmCreateRequest,
    spec: VmSpec,
    vm_id: str,
    values: dict[str, Value],
) -> tuple[VmSpec, SeedPlan | None]:
    """The spec with a MAC on every NIC, and the seed its VM gets (None: no template).

    ``values`` come from ``request_values`` for the same request."""
    entry = catalog.get(req.appliance) if req.appliance is not None else None
    if entry is None or entry.cloud_init_template is None:
        return spec, None
    spec = assign_macs(spec, vm_id)
    builtins: dict[str, Value] = {
        "vm_name": spec.name,
        "tenant": spec.tenant or "",
        "instance_id": vm_id,
    }
    user_data = render_cloud_init(entry, templates_dir, {**values, **builtins})
    if user_data is None:  # unreachable: the entry has a template
        return spec, None
    files = SeedFiles(
        meta_data=_yaml_map({"instance-id": vm_id, "local-hostname": spec.name}),
        user_data=user_data,
        network_config=network_config(spec),
    )
    return spec, SeedPlan(files=files, shown=redacted(entry.cloud_init_values, values))


def assign_macs(spec: VmSpec, vm_id: str) -> VmSpec:
    """Give each NIC without a MAC one derived from the VM id, so the seed's
    network-config can match it; QEMU's locally administered 52:54:00 prefix."""
    if all(nic.mac is not None for nic in spec.nics):
        return spec
    nics = []
    for i, nic in enumerate(spec.nics):
        digest = hashlib.sha256(f"{vm_id}/{i}".encode()).digest()
        mac = nic.mac or "52:54:00:" + ":".join(f"{b:02x}" for b in digest[:3])
        nics.append(msgspec.structs.replace(nic, mac=mac))
    return msgspec.structs.replace(spec, nics=tuple(nics))


def network_config(spec: VmSpec) -> str:
    """Network config version 2: each NIC matched by its MAC, DHCP on IPv4."""
    ethernets = {
        f"nic{i}": {"match": {"macaddress": nic.mac}, "set-name": f"eth{i}", "dhcp4": True}
        for i, nic in enumerate(spec.nics)
    }
    # JSON is YAML: every string quoted, nothing a value could break out of.
    return "version: 2\nethernets: " + json.dumps(ethernets, sort_keys=True) + "\n"


def _yaml_map(data: dict[str, str]) -> str:
    return "".join(f"{key}: {json.dumps(value)}\n" for key, value in data.items())
