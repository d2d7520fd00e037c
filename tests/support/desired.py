"""A tenants desired-state document the tests share: a tenant with labels, quotas,
grants and one VNet on the ``br-n6`` trunk."""

from __future__ import annotations

from typing import Any

VNET: dict[str, Any] = {
    "name": "llm",
    "trunk": "br-n6",
    "vlan": 100,
    "subnet": "10.100.0.0/24",
    "gateway": "10.100.0.1",
    "ue_pools": ["10.45.0.0/16"],
}
ACME: dict[str, Any] = {
    "description": "ACME AI",
    "labels": {"tier": "gold"},
    "quotas": {"vms": 4, "vcpus": 16, "memory_mib": 65536, "vnets": 3},
    "grants": {"pinned_cores": 4, "hugepages": {"1G": 8192}},
    "vnets": [VNET],
}
# A VNet of ACME's declared by a vnets document (its tenant by the tenants document).
CAMS: dict[str, Any] = {
    **VNET,
    "tenant": "acme",
    "name": "cams",
    "vlan": 200,
    "subnet": "10.200.0.0/24",
    "gateway": "10.200.0.1",
    "ue_pools": ["10.46.0.0/16"],
}
