"""admission_overhead_ratio: a tenant's VM create with its quotas and grants checked,
over the same create with the tenant checks off.

Both sides run in one process, through the API (Litestar's ASGI app, as the daemon
serves it) against the real libvirtd with QEMU: a tenant-admin creates the demo VM
with a NIC on its VNet and a disk overlay, then it is deleted (not timed). The
baseline swaps the node's admission for one that keeps the host's memory and disk
checks and skips the tenant's: privileges, grants and quotas. The sides alternate,
so drift in the machine's load falls on both. Median of RUNS each; target (issue:
tenants) ratio <= 1.10. Also prints the two medians.
"""

from __future__ import annotations

import shutil
import statistics
import sys
import time
from typing import Any

import libvirt
import msgspec
from litestar.testing import TestClient

from appliance.api.app import create_app
from appliance.backends.vm.libvirt_backend import SYSTEM_URI
from appliance.context import build_appliance
from appliance.domain.allocation import Allocation
from appliance.domain.vm_spec import VmSpec
from appliance.services.auth import Principal
from appliance.services.tenants import Policy
from appliance.services.vm_admission import Ticket, VmAdmission
from appliance.store import journal
from tests.support.appliance import admin_password, login, real_node_config
from tests.support.tenancy import VNETS

RUNS = 50
TARGET_RATIO = 1.10
PASSWORD = "bench-tenant-password"  # noqa: S105 - a throwaway node's test user


class TenantChecksOff(VmAdmission):
    """The node's admission without the tenant's part: host room only."""

    def check_privileges(self, principal: Principal, spec: VmSpec) -> Ticket:
        return Ticket(journal.head(), None)

    def _check_rows(
        self, spec: VmSpec, alloc: Allocation, disk_gib: int, policy: Policy | None
    ) -> None:
        super()._check_rows(msgspec.structs.replace(spec, tenant=None), alloc, disk_gib, None)


def _prepare(c: TestClient[Any], admin: dict[str, str]) -> dict[str, str]:
    steps: list[tuple[str, str, dict[str, Any]]] = [
        ("POST", "/api/v1/tenants", {"name": "acme"}),
        (
            "POST",
            "/api/v1/users",
            {
                "username": "acme-admin",
                "password": PASSWORD,
                "role": "tenant-admin",
                "tenant": "acme",
            },
        ),
        ("PUT", "/api/v1/tenants/acme/quotas", {"vms": 10, "vcpus": 20, "memory_mib": 8192}),
        ("PUT", "/api/v1/n6/trunks/br-n6", {"kind": "ovs"}),
        ("POST", "/api/v1/n6/vnets", next(v for v in VNETS if v["tenant"] == "acme")),
        ("POST", "/api/v1/n6/apply", {}),
    ]
    for method, path, body in steps:
        resp = c.request(method, path, headers=admin, json=body)
        if resp.status_code >= 300:
            raise RuntimeError(f"{method} {path}: {resp.status_code} {resp.text}")
    return login(c, "acme-admin", PASSWORD)


def _create_once(c: TestClient[Any], tenant: dict[str, str], name: str) -> float:
    body = {
        "name": name,
        "appliance": "demo",
        "spec": {
            "role": "b2b",
            "vcpus": 1,
            "memory_mib": 256,
            "nics": [{"kind": "vnet", "vnet": "llm"}],
        },
    }
    started = time.perf_counter()
    resp = c.post("/api/v1/vms", headers=tenant, json=body)
    elapsed = time.perf_counter() - started
    if resp.status_code != 201:
        raise RuntimeError(f"create {name}: {resp.status_code} {resp.text}")
    gone = c.delete(f"/api/v1/vms/{name}", headers=tenant)
    if gone.status_code >= 300:
        raise RuntimeError(f"delete {name}: {gone.status_code} {gone.text}")
    return elapsed


def main() -> int:
    try:
        libvirt.open(SYSTEM_URI).close()
    except libvirt.libvirtError as err:
        print(f"admission_overhead needs libvirtd ({SYSTEM_URI}): {err}", file=sys.stderr)
        return 2
    cfg, work = real_node_config(
        "bench-admission", TOWERBOX_GPU_BACKEND="simulated", TOWERBOX_N6_BACKEND="simulated"
    )
    app = build_appliance(cfg)
    checked = app.vms._admission  # the bench swaps the node's own admission
    assert checked is not None
    unchecked = TenantChecksOff(cfg.host, app.host, app.tenants)
    times: dict[str, list[float]] = {"checked": [], "unchecked": []}
    try:
        with TestClient(create_app(app)) as c:
            tenant = _prepare(c, login(c, "admin", admin_password(cfg)))
            for side, admission in (("checked", checked), ("unchecked", unchecked)):
                app.vms._admission = admission
                _create_once(c, tenant, f"warm-{side}")  # first-call costs out of the figures
            for i in range(RUNS):
                order = (("checked", checked), ("unchecked", unchecked))
                for side, admission in order if i % 2 == 0 else reversed(order):
                    app.vms._admission = admission
                    times[side].append(_create_once(c, tenant, f"adm-{side}-{i}"))
    finally:
        app.close()
        shutil.rmtree(work, ignore_errors=True)
    with_checks = statistics.median(times["checked"])
    without = statistics.median(times["unchecked"])
    ratio = with_checks / without
    print(f"vm_create_with_tenant_checks_ms: {with_checks * 1000:.1f} ms")
    print(f"vm_create_without_tenant_checks_ms: {without * 1000:.1f} ms")
    print(f"admission_overhead_ratio: {ratio:.3f} ratio")
    if ratio > TARGET_RATIO:
        print(f"admission_overhead_ratio {ratio:.3f} exceeds {TARGET_RATIO}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
