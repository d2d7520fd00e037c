"""A node with two tenants (acme, beta), their admins, applied VNets and a simulated
GPU; and what a refused create must not leave behind."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import libvirt
from litestar.testing import TestClient

from appliance.context import Appliance
from appliance.domain.allocator import Allocator
from appliance.services.auth import Principal
from appliance.store import journal
from appliance.store.models import Vm
from tests.support.appliance import admin_password, api_client, built, login

PASSWORD = "long-enough-password"
VNETS = [
    {
        "tenant": tenant,
        "name": name,
        "trunk": "br-n6",
        "vlan": vlan,
        "subnet": f"10.{vlan}.0.0/24",
        "gateway": f"10.{vlan}.0.1",
        "ue_pools": [f"10.{vlan + 1}.0.0/16"],
    }
    for tenant, name, vlan in (("acme", "llm", 100), ("beta", "cams", 200))
]


def tenant_node(tmp_path: Path, **env: str) -> Iterator[Appliance]:
    app = built(
        tmp_path,
        TOWERBOX_GPU_BACKEND="simulated",
        TOWERBOX_N6_BACKEND="simulated",
        TOWERBOX_GPU_DRAIN_TIMEOUT_S="2",
        **env,
    )
    with api_client(app) as c:
        c.headers.update(login(c, "admin", admin_password(app.cfg)))
        for tenant in ("acme", "beta"):
            assert c.post("/api/v1/tenants", json={"name": tenant}).status_code == 201
            user = {
                "username": f"{tenant}-admin",
                "password": PASSWORD,
                "role": "tenant-admin",
                "tenant": tenant,
            }
            assert c.post("/api/v1/users", json=user).status_code == 201
        assert c.put("/api/v1/n6/trunks/br-n6", json={"kind": "ovs"}).status_code == 200
        for vnet in VNETS:
            assert c.post("/api/v1/n6/vnets", json=vnet).status_code == 201, vnet
        assert c.post("/api/v1/n6/apply").status_code in (200, 201)
    yield app
    root = root_principal(app)
    for vm in Vm.select():  # a service's replicas too: the node is torn down
        app.vms.delete(root, vm.name, for_service=True)
    app.close()


def root_principal(app: Appliance) -> Principal:
    return app.auth.authenticate(app.cfg.cli_token_file.read_text().strip())


def principal_of(app: Appliance, username: str) -> Principal:
    token, _ = app.auth.login(username, PASSWORD)
    return app.auth.authenticate(token)


# An API client, and the admin's and acme-admin's headers.
Api = tuple[TestClient[Any], dict[str, str], dict[str, str]]


def clients(app: Appliance) -> Iterator[Api]:
    """An API client and the admin's and acme-admin's headers."""
    with api_client(app) as c:
        admin = login(c, "admin", admin_password(app.cfg))
        acme = login(c, "acme-admin", PASSWORD)
        yield c, admin, acme


def footprint(app: Appliance) -> dict[str, Any]:
    """Everything a create makes: domains, rows, disks, host resources, GPU claims, journal."""
    conn = libvirt.open("test:///default")
    domains = sorted(d.UUIDString() for d in conn.listAllDomains())
    conn.close()
    return {
        "domains": domains,
        "rows": sorted(vm.name for vm in Vm.select()),
        "disks": sorted(p.name for p in app.cfg.disk_dir.iterdir()),
        "host": app.allocator.usage(),
        "claims": [c.owner for c in app.gpu_claims.claims()],
        "journal": journal.head(),
    }


def fresh_usage(app: Appliance) -> Any:
    return Allocator(app.host, frozenset({0, 16})).usage()
