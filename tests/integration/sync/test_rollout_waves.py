"""A staged rollout end to end. Site ``site-a`` is a real appliance with its agent;
``site-b`` to ``site-d`` are simulated sites driven over the sync API
(tests/integration/sync/sim_sites.py). The real node, online and first by name, is
the canary: it rejects a document only it can check, the rollout halts there and no
other site receives it; a rollback and a corrected rollout follow, the registry is
SIGKILLed in the middle of the latter and carries on from its database; a last
rollback puts every site back on the previous document. On PostgreSQL the registry
runs two workers, each stepping the rollout."""

from __future__ import annotations

import signal
import time
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.integration.sync.fleet import RegistryProcess
from tests.integration.sync.lab import Lab
from tests.integration.sync.sim_sites import SimSites, enroll_sims
from tests.integration.sync.test_desired_tenants import _wait_desired

pytestmark = pytest.mark.root

GOOD: dict[str, Any] = {
    "acme": {
        "description": "ACME AI",
        "labels": {"tier": "gold"},
        "quotas": {"vms": 4, "vcpus": 16, "memory_mib": 65536},
    }
}
# Only the node knows this PCI address is a GPU of its GPU service: the registry
# publishes the document, the node refuses it.
BAD = {"acme": {**GOOD["acme"], "grants": {"pci_devices": ["0000:17:00.0"]}}}
BETTER = {"acme": {**GOOD["acme"], "quotas": {**GOOD["acme"]["quotas"], "vcpus": 24}}}


@dataclass
class _Workers(RegistryProcess):
    workers: int = 1

    def env(self) -> dict[str, str]:
        return {**super().env(), "TOWERBOX_REGISTRY_SERVE_WORKERS": str(self.workers)}


def _wait_rollout(lab: Lab, rollout_id: int, *states: str, timeout: float = 90) -> dict[str, Any]:
    end = time.monotonic() + timeout
    view: dict[str, Any] = {}
    while time.monotonic() < end:
        try:
            with lab.registry.operator() as op:
                view = op.get(f"/api/v1/rollouts/{rollout_id}").json()
        except httpx.HTTPError:
            pass
        if view.get("state") in states:
            return view
        time.sleep(0.3)
    raise AssertionError(f"rollout {rollout_id} never {states}: {view}\n{lab.registry.log_tail()}")


def _wait_sims(sims: SimSites, version: int, timeout: float = 60) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if all(version in s.seen.get("tenants", []) for s in sims.sites):
            return
        time.sleep(0.2)
    raise AssertionError(f"simulated sites never fetched v{version}: {sims.sites}")


def _create(lab: Lab, document: Any, **options: Any) -> dict[str, Any]:
    body = {"group": "tier=edge", "kind": "tenants", "document": {"tenants": document}}
    with lab.registry.operator() as op:
        made = op.post("/api/v1/rollouts", json={**body, **options})
    assert made.status_code == 201, made.text
    view: dict[str, Any] = made.json()
    return view


def test_rollout_halts_at_the_canary_survives_a_kill_and_rolls_back(
    lab: Lab, database: str
) -> None:
    old = lab.registry
    old.stop()
    registry = _Workers(old.wan, old.state_dir, database, port=old.port, starts=old.starts)
    registry.workers = 2 if database else 1
    registry.start()
    lab.registry = registry
    sims = None
    try:
        with registry.operator() as op:
            sims = SimSites(
                registry.url, enroll_sims(op, ["site-b", "site-c", "site-d"], {"tier": "edge"})
            )
            put = op.put("/api/v1/groups/tier=edge/desired/tenants", json={"tenants": GOOD})
            assert put.status_code == 200, put.text
        sims.start()
        lab.agent.start()
        assert _wait_desired(lab, "tenants", 1)["result"] == "applied"
        _wait_sims(sims, 1)

        bad = _create(lab, BAD, soak_s=1)
        assert [w["sites"] for w in bad["waves"]] == [1, 1, 1, 1]
        halted = _wait_rollout(lab, bad["id"], "halted")
        assert "site-a (rejected version 2: gpu_service_device)" in halted["reason"], halted
        assert _wait_desired(lab, "tenants", 2)["result"] == "gpu_service_device"
        assert all(2 not in s.seen["tenants"] for s in sims.sites)
        with registry.operator() as op:
            put = op.put("/api/v1/groups/tier=edge/desired/tenants", json={"tenants": BETTER})
            assert (put.status_code, put.json()["code"]) == (409, "rollout_active")
            back = op.post(f"/api/v1/rollouts/{bad['id']}/rollback")
            assert back.status_code == 200, back.text
            assert back.json()["rollback_version"] == 3
        assert _wait_desired(lab, "tenants", 3)["result"] == "applied"
        _wait_sims(sims, 3)

        better = _create(lab, BETTER, soak_s=1, waves=[50, 100])
        assert better["previous_version"] == 3
        _wait_desired(lab, "tenants", 4)  # the canary got it: the registry dies now
        registry.stop(signal.SIGKILL)
        registry.start()
        done = _wait_rollout(lab, better["id"], "completed")
        assert [w["healthy"] for w in done["waves"]] == [1, 1, 2], done
        assert _wait_desired(lab, "tenants", 4)["result"] == "applied"
        with lab.daemon.http(lab.admin_token) as local:
            assert local.get("/api/v1/tenants/acme").json()["quotas"]["vcpus"] == 24

        with registry.operator() as op:
            back = op.post(f"/api/v1/rollouts/{better['id']}/rollback")
            assert back.status_code == 200, back.text
        assert _wait_desired(lab, "tenants", 5)["result"] == "applied"
        _wait_sims(sims, 5)
        with lab.daemon.http(lab.admin_token) as local:
            assert local.get("/api/v1/tenants/acme").json()["quotas"]["vcpus"] == 16
        with registry.operator() as op:
            sites = op.get(f"/api/v1/rollouts/{better['id']}/sites").json()["sites"]
        assert sorted(s["site"] for s in sites) == ["site-a", "site-b", "site-c", "site-d"]
    finally:
        registry.stop()
        if sims is not None:
            sims.stop()
