"""A tenant with an admin, quotas, a VNet and a GPU profile, for the UI's tenant tests."""

from __future__ import annotations

import httpx

from tests.support.tenancy import VNETS

TENANT = "acme"  # VNETS[0], "llm", is its VNet
ADMIN = "acme-admin"
PASSWORD = "acme-pass-123"
QUOTAS = {
    "vms": 4,
    "vcpus": 8,
    "memory_mib": 8192,
    "disk_gib": 100,
    "vnets": 2,
    "gpu_slices": {"1g.10gb": 2},
    "gpu_compute_slices": 2,
}


def set_up_tenant(api: httpx.Client) -> None:
    """Idempotent: the tenant, its admin, its quotas and its applied VNet ``llm``."""
    api.post("/api/v1/tenants", json={"name": TENANT, "description": "Acme Corp"})
    user = {"username": ADMIN, "password": PASSWORD, "role": "tenant-admin", "tenant": TENANT}
    assert api.post("/api/v1/users", json=user).status_code in (201, 409)
    assert api.put(f"/api/v1/tenants/{TENANT}/quotas", json=QUOTAS).status_code == 200
    assert api.put("/api/v1/n6/trunks/br-n6", json={"kind": "ovs"}).is_success
    assert api.post("/api/v1/n6/vnets", json=VNETS[0]).status_code in (201, 409)
    assert api.post("/api/v1/n6/apply").is_success
