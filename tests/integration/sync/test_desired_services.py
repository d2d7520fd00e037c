"""A desired ``services`` document for a label group end to end: published on the
registry, fetched by the agent, applied by the appliance on the libvirt test driver in
the background, and what each service came to back up the journal to the registry.

The db role's serial health check passes across the process boundary: this test
writes the marker into the daemon's console log of each db replica, as a booting
guest would; the api role has no health check."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

from tests.integration.sync.lab import Lab
from tests.integration.sync.test_desired_tenants import _wait_desired

pytestmark = pytest.mark.root

MARKER = "DB-READY"
SHOP = {
    "tenant": "acme",
    "service": {
        "roles": [
            {"name": "db", "catalog": "demo", "health": {"kind": "serial", "marker": MARKER}},
            {"name": "api", "catalog": "demo", "after": ["db"]},
        ]
    },
    "values": {"api": {"model": "shop-model"}},
}
GROUP = "/api/v1/groups/tier=edge/desired/services"


@contextmanager
def db_consoles(lab: Lab) -> Iterator[None]:
    """Write the marker to the console log of every db replica the daemon makes."""
    console = lab.db_path.parent / "console"
    stop = threading.Event()

    def run() -> None:
        while not stop.is_set():
            try:
                with lab.daemon.http(lab.admin_token) as local:
                    vms = local.get("/api/v1/vms").json()
            except httpx.HTTPError:
                vms = []
            for vm in vms:
                path = console / f"{vm['id']}.log"
                if "-db-" in vm["name"] and not path.exists():
                    console.mkdir(parents=True, exist_ok=True)
                    path.write_text(f"booting\n{MARKER}\n")
            stop.wait(0.2)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def _site_services(lab: Lab, want: dict[str, str], timeout: float = 90) -> dict[str, Any]:
    """The registry's view of the services document's services once each is ``want``."""
    end = time.monotonic() + timeout
    seen: dict[str, Any] = {}
    while time.monotonic() < end:
        with lab.registry.operator() as op:
            objects = op.get(f"/api/v1/sites/{lab.site}/objects", params={"type": "desired"})
        for obj in objects.json()["objects"]:
            if obj["object_id"] == "services":
                seen = obj["state"].get("services", {})
        if {name: s.get("status") for name, s in seen.items()} == want:
            return seen
        time.sleep(0.3)
    raise AssertionError(f"the registry never saw {want} ({seen}):\n{lab.agent.log()}")


def _vms(lab: Lab) -> list[str]:
    with lab.daemon.http(lab.admin_token) as local:
        return sorted(vm["name"] for vm in local.get("/api/v1/vms").json())


def test_services_document_through_registry_agent_and_appliance(lab: Lab) -> None:
    site = f"/api/v1/sites/{lab.site}/desired"
    with lab.registry.operator() as op:
        # The tenant comes by its own document; the node's default quotas apply (10 VMs).
        assert op.put(f"{site}/tenants", json={"tenants": {"acme": {}}}).status_code == 200
        assert op.put(GROUP, json={"services": {"shop": SHOP}}).status_code == 200
        # The registry checks what the shared rules can: nothing is published.
        bad = {"services": {"shop": {**SHOP, "values": {"web": {}}}}}
        resp = op.put(GROUP, json=bad)
        assert (resp.status_code, resp.json()["code"]) == (422, "unknown_role")
        assert resp.json()["field"] == "services.shop.values.web"
    with db_consoles(lab):
        lab.agent.start()
        assert _wait_desired(lab, "services", 1)["result"] == "applied"
        _site_services(lab, {"shop": "deployed"})
        assert _vms(lab) == ["shop-api-1", "shop-db-1"]

        # Past the tenant's quota: the whole document is refused, nothing is made.
        big = {
            "tenant": "acme",
            "service": {"roles": [{"name": "a", "catalog": "demo", "count": 11}]},
        }
        with lab.registry.operator() as op:
            assert op.put(GROUP, json={"services": {"shop": SHOP, "big": big}}).status_code == 200
        assert _wait_desired(lab, "services", 2)["result"] == "quota_exceeded"
        assert _vms(lab) == ["shop-api-1", "shop-db-1"]

        # A service of the same name made on the node: a conflict, left alone.
        local = {"name": "local", "roles": [{"name": "db", "catalog": "demo"}]}
        with lab.daemon.http(lab.admin_token) as node:
            made = node.post("/api/v1/services", json={"service": local, "tenant": "acme"})
            assert made.status_code == 202, made.text
        mine = {"tenant": "acme", "service": {"roles": [{"name": "x", "catalog": "demo"}]}}
        with lab.registry.operator() as op:
            doc = {"services": {"shop": SHOP, "local": mine}}
            assert op.put(GROUP, json=doc).status_code == 200
        assert _wait_desired(lab, "services", 3)["result"] == "conflict"
        _site_services(lab, {"shop": "deployed", "local": "conflict"})
        assert _vms(lab) == ["local-db-1", "shop-api-1", "shop-db-1"]

        # Dropped from the document: removed on the site; the local service stays.
        with lab.registry.operator() as op:
            assert op.put(GROUP, json={"services": {}}).status_code == 200
        assert _wait_desired(lab, "services", 4)["result"] == "applied"
        _site_services(lab, {})
        assert _vms(lab) == ["local-db-1"]

    with lab.registry.operator() as op:
        conflicts = op.get("/api/v1/conflicts", params={"site": lab.site}).json()
        entries = op.get(f"/api/v1/sites/{lab.site}/journal", params={"limit": 1000}).json()
    assert "quota_exceeded" in str(conflicts)
    outcomes = [e for e in entries["entries"] if e["kind"].startswith("desired.")]
    assert all(e["actor"]["job"] == f"desired:{e['object_id']}" for e in outcomes)
    assert "shop-model" not in str(outcomes)
