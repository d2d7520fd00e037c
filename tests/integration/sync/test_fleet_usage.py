"""Usage end to end: a tenant's VM and a process's MIG slice on the node, the WAN cut
for part of it and the journal compacted (a rollup) before those entries were
shipped; after catch-up the registry's usage for the site equals the node's, per
tenant, resource and hour.

The daemon runs as a process on the real clock, so the intervals are seconds long and
the reference is the node itself (the hand-computed hours are checked in
tests/integration/test_metering.py). Everything is stopped, released and deleted
before the comparison: nothing is open, so the node's clock and the registry's
"until the newest entry" end nothing differently.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import httpx
import pytest

from tests.integration.sync.lab import Lab

pytestmark = pytest.mark.root
HOUR = dt.timedelta(hours=1)


def _ok(resp: httpx.Response, status: int = 200) -> Any:
    assert resp.status_code == status, resp.text
    return resp.json() if resp.content else None


def _wait_shipped(lab: Lab, timeout: float = 90) -> int:
    """Until the registry holds the node's journal up to its head (compacted entries
    need not be there: the rollup stands for them)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            with lab.daemon.http(lab.admin_token) as local:
                status = local.get("/api/v1/sync/status").json()
            with lab.registry.operator() as op:
                held = op.get(f"/api/v1/sites/{lab.site}").json()["acked_seq"]
        except httpx.HTTPError:
            time.sleep(0.3)
            continue
        if status["head"] and held == status["head"]:
            return int(held)
        time.sleep(0.3)
    raise AssertionError(f"the registry never caught up:\n{lab.agent.log()}")


def _scenario(local: httpx.Client, lab: Lab) -> None:
    _ok(local.post("/api/v1/tenants", json={"name": "acme"}), 201)
    quotas = {"process_claims": 2, "gpu_slices": {"1g.10gb": 2}, "gpu_compute_slices": 2}
    _ok(local.put("/api/v1/tenants/acme/quotas", json=quotas))
    gpu = local.get("/api/v1/gpus").json()["gpus"][0]["uuid"]
    _ok(local.post(f"/api/v1/gpus/{gpu}/apply", json={"counts": {"1g.10gb": 4}}))
    vm = {
        "name": "web",
        "appliance": "demo",
        "spec": {"role": "b2b", "vcpus": 2, "memory_mib": 512, "tenant": "acme"},
        "start": True,
    }
    _ok(local.post("/api/v1/vms", json=vm), 201)
    time.sleep(1.0)
    claim = {"name": "vllm", "profile": "1g.10gb", "tenant": "acme"}
    _ok(local.post("/api/v1/gpus/claims", json=claim), 201)
    time.sleep(1.0)
    # The WAN goes down: what follows is compacted before it could be shipped.
    lab.wan.cut(lab.registry.port)
    time.sleep(0.5)
    _ok(local.delete("/api/v1/gpus/claims/vllm", params={"tenant": "acme"}), 204)
    time.sleep(1.0)
    _ok(local.post("/api/v1/vms/web/stop"))
    assert lab.compact_all() > 0
    time.sleep(0.5)
    _ok(local.post("/api/v1/vms/web/start"))
    time.sleep(1.0)
    lab.wan.heal()
    _ok(local.post("/api/v1/vms/web/stop"))
    time.sleep(0.5)
    assert local.delete("/api/v1/vms/web").status_code in (200, 204)


def _by_hour(report: dict[str, Any]) -> list[dict[str, Any]]:
    return [{k: v for k, v in x.items() if k != "site"} for x in report["lines"]]


def test_the_registrys_usage_for_a_site_equals_the_nodes(lab: Lab) -> None:
    started = dt.datetime.now(dt.UTC)
    lab.agent.start()
    with lab.daemon.http(lab.admin_token) as local:
        _scenario(local, lab)
    head = _wait_shipped(lab)
    ended = dt.datetime.now(dt.UTC)
    first = started.replace(minute=0, second=0, microsecond=0)
    period = {
        "from": first.isoformat(),
        "to": (ended.replace(minute=0, second=0, microsecond=0) + HOUR).isoformat(),
        "group_by": "hour",
    }
    with lab.daemon.http(lab.admin_token) as local:
        node = _ok(local.get("/api/v1/usage", params=period))
        compacted = local.get("/api/v1/sync/status").json()["compacted_through"]
    with lab.registry.operator() as op:
        fleet = _ok(op.get("/api/v1/usage", params={**period, "site": lab.site}))
        kinds = {e["kind"] for e in op.get(f"/api/v1/sites/{lab.site}/journal").json()["entries"]}
    assert compacted > 0 and "usage.rollup" in kinds
    assert fleet["sites"][0]["acked_seq"] == head
    resources = {(x["tenant"], x["resource"]) for x in node["lines"]}
    assert {("acme", "vcpu"), ("acme", "memory_gib"), ("acme", "mig:1g.10gb")} <= resources
    assert _by_hour(fleet) == _by_hour(node)
    # The same figures as CSV, and on the CLI's side of the registry's API.
    with lab.registry.operator() as op:
        csv = op.get("/api/v1/usage.csv", params={**period, "site": lab.site}).text
    assert csv.count("\n") == len(node["lines"]) + 1
