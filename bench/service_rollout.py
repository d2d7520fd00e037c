"""service_deploy_3_roles_ms and rolling_update_min_healthy, on the libvirt test driver.

A node on the test driver (no guest runs there: TCP checks reach a listener on
loopback, a serial check reads the console log a helper writes, as the tests do).
A tenant-admin deploys a 3-role service through the API (db, then api x2 after db,
then web after api; each gated by its health check) and the time until it is ready
is taken, median of RUNS deploys. Then a 3-replica role is updated with surge 1 while
a probe loop counts the role's healthy replicas as fast as it can (each new
replica answers its TCP check 0.3 s after it starts, as a booting guest would); the fewest seen
must be 3 (issue 14). Exit 1 when it is not.
"""

from __future__ import annotations

import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import msgspec
from litestar.testing import TestClient

from appliance.api.app import create_app
from appliance.context import Appliance, build_appliance
from appliance.services.auth import Principal, Role
from appliance.store.models import User
from tests.support.appliance import login, make_config
from tests.support.services import booting, console_writer, listener, point_replicas
from towerbox_core.api.services import ServiceDeployRequest, UpdateRequest
from towerbox_core.api.tenants import QuotasUpdate

RUNS = 5
BOOT_S = 0.3
TARGET_MIN_HEALTHY = 3
PASSWORD = "bench-tenant-password"  # noqa: S105 - a throwaway node's test user


def _three_roles(name: str, port: int) -> dict[str, object]:
    tcp = {"kind": "tcp", "port": port, "timeout_s": 10}
    return {
        "name": name,
        "roles": [
            {"name": "db", "catalog": "demo", "health": {"kind": "serial", "marker": "UP"}},
            {"name": "api", "catalog": "demo", "count": 2, "after": ["db"], "health": tcp},
            {"name": "web", "catalog": "demo", "after": ["api"], "health": tcp},
        ],
    }


def _node(work: Path) -> Appliance:
    app = build_appliance(make_config(work, TOWERBOX_GPU_BACKEND="simulated"))
    admin = User.get(User.username == "admin")
    root = Principal(admin.id, "admin", Role.INFRA_ADMIN, None, 0)
    app.auth.create_tenant("acme", "")
    app.tenants.set_quotas(root, "acme", QuotasUpdate(vms=100, vcpus=400, memory_mib=1 << 20))
    app.auth.create_user("acme-admin", PASSWORD, Role.TENANT_ADMIN, "acme")
    return app


def _deploy_ms(app: Appliance, port: int) -> list[float]:
    """Through the API: POST, then until the service is ready; removed after (untimed)."""
    took = []
    with TestClient(create_app(app)) as c:
        acme = login(c, "acme-admin", PASSWORD)
        for i in range(RUNS):
            name = f"shop{i}"
            started = time.perf_counter()
            resp = c.post(
                "/api/v1/services", headers=acme, json={"service": _three_roles(name, port)}
            )
            assert resp.status_code == 202, resp.text
            assert app.services.runner.wait_idle(120)
            took.append((time.perf_counter() - started) * 1000)
            state = c.get(f"/api/v1/services/{name}", headers=acme).json()["state"]
            assert state == "ready", state
            c.delete(f"/api/v1/services/{name}", headers=acme)
            assert app.services.runner.wait_idle(120)
    return took


def _update_healthy(app: Appliance, port: int) -> list[int]:
    """The role's healthy replicas, as often as a probe loop can count them, during a
    rolling update of 3 replicas with surge 1."""
    tenant = app.auth.authenticate(app.auth.login("acme-admin", PASSWORD)[0])
    health = {"kind": "tcp", "port": port, "timeout_s": 10}
    role = {"name": "api", "catalog": "demo", "count": 3, "values": {"model": "a"}}
    template = {"name": "llm", "roles": [{**role, "health": health}]}
    app.services.deploy(tenant, msgspec.convert({"service": template}, ServiceDeployRequest))
    assert app.services.runner.wait_idle(120)
    point_replicas(app, bad=booting(BOOT_S))  # a new replica answers BOOT_S after it starts
    seen: list[int] = []
    stop = threading.Event()

    def probe_loop() -> None:
        while not stop.is_set():
            seen.append(app.services.role_health("llm", "api"))

    loop = threading.Thread(target=probe_loop)
    loop.start()
    try:
        update = UpdateRequest(role="api", values={"model": "b"}, max_surge=1)
        app.rollouts.update(tenant, "llm", update)
        assert app.services.runner.wait_idle(120)
    finally:
        stop.set()
        loop.join()
    app.services.remove(tenant, "llm")
    assert app.services.runner.wait_idle(120)
    return seen


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="towerbox-bench-services-"))
    app = _node(work)
    try:
        with listener() as srv, console_writer(app, "UP", "-db-", delay_s=0.0):
            point_replicas(app)
            took = _deploy_ms(app, srv.port)
            seen = _update_healthy(app, srv.port)
    finally:
        app.close()
        shutil.rmtree(work, ignore_errors=True)
    low = min(seen)
    print(f"service_deploy_3_roles_ms: {statistics.median(took):.1f} ms")
    print(f"rolling_update_min_healthy: {low} count")
    print(f"  ({len(seen)} probes of the role during the update; target >= {TARGET_MIN_HEALTHY})")
    return 0 if low >= TARGET_MIN_HEALTHY else 1


if __name__ == "__main__":
    sys.exit(main())
