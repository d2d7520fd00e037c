"""A desired ``tenants`` document end to end: published on the registry, fetched by the
agent, applied by the appliance, the outcome back up the journal. A ``vnets`` document
published alongside names a tenant the tenants document brings."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from tests.integration.sync.fleet import wait_in_sync
from tests.integration.sync.lab import Lab
from tests.support.desired import ACME, CAMS

pytestmark = pytest.mark.root


def _wait_desired(lab: Lab, kind: str, version: int, timeout: float = 60) -> dict[str, Any]:
    """The appliance's record of ``kind`` once it reached ``version``."""
    end = time.monotonic() + timeout
    summary: dict[str, Any] = {}
    while time.monotonic() < end:
        try:
            with lab.daemon.http(lab.admin_token) as local:
                summary = local.get("/api/v1/desired").json()[kind]
        except httpx.HTTPError:
            pass
        if summary.get("version") == version:
            return summary
        time.sleep(0.2)
    raise AssertionError(f"{kind} v{version} never applied ({summary}):\n{lab.agent.log()}")


def test_tenants_document_through_registry_agent_and_appliance(lab: Lab) -> None:
    with lab.daemon.http(lab.admin_token) as local:
        assert local.put("/api/v1/n6/trunks/br-n6", json={"kind": "ovs"}).status_code == 200
    site = f"/api/v1/sites/{lab.site}/desired"
    with lab.registry.operator() as op:
        # Published together: the agent hands tenants over first.
        assert op.put(f"{site}/vnets", json={"vnets": [CAMS]}).status_code == 200
        assert op.put(f"{site}/tenants", json={"tenants": {"acme": ACME}}).status_code == 200
        # The registry checks what it can before publishing: nothing is published.
        bad = op.put(f"{site}/tenants", json={"tenants": {"acme": {"quotas": {"vms": -4}}}})
        assert (bad.status_code, bad.json()["code"]) == (422, "invalid_quota")
    lab.agent.start()
    assert _wait_desired(lab, "tenants", 1)["result"] == "applied"
    assert _wait_desired(lab, "vnets", 1)["result"] == "applied"
    with lab.daemon.http(lab.admin_token) as local:
        acme = local.get("/api/v1/tenants/acme").json()
        assert (acme["labels"], acme["quotas"]["vcpus"]) == ({"tier": "gold"}, 16)
        vnets = {v["name"] for v in local.get("/api/v1/n6/vnets").json()}
        assert vnets == {"llm", "cams"}

    # What only the node can check: a GPU of the GPU service is never granted whole.
    with lab.registry.operator() as op:
        gpu = {**ACME, "grants": {"pci_devices": ["0000:17:00.0"]}}
        assert op.put(f"{site}/tenants", json={"tenants": {"acme": gpu}}).status_code == 200
    assert _wait_desired(lab, "tenants", 2)["result"] == "gpu_service_device"
    with lab.daemon.http(lab.admin_token) as local:
        assert local.get("/api/v1/tenants/acme").json() == acme  # nothing changed

    # The outcomes went up the journal, each naming the agent and the job.
    wait_in_sync(lab.daemon, lab.admin_token, lab.registry, lab.site, timeout=60)
    with lab.registry.operator() as op:
        entries = op.get(f"/api/v1/sites/{lab.site}/journal", params={"limit": 1000}).json()
        conflicts = op.get("/api/v1/conflicts", params={"site": lab.site}).json()
    outcomes = [e for e in entries["entries"] if e["kind"].startswith("desired.")]
    assert [(e["kind"], e["object_id"]) for e in outcomes] == [
        ("desired.applied", "tenants"),
        ("desired.applied", "vnets"),
        ("desired.rejected", "tenants"),
    ]
    assert all(e["actor"]["user"] == "sync-agent" for e in outcomes)
    jobs = [e["actor"]["job"] for e in outcomes]
    assert jobs == ["desired:tenants", "desired:vnets", "desired:tenants"]
    created = [e for e in entries["entries"] if e["kind"] == "tenant.created"]
    assert created[0]["actor"]["job"] == "desired:tenants"
    assert "gpu_service_device" in str(conflicts)
