"""GPU layouts through the API on the simulated H100: plan, apply, refuse, roll back."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from appliance.backends.gpu.simulated import SimulatedGpuBackend
from appliance.context import Appliance
from appliance.errors import BackendError
from tests.support.appliance import admin_password, api_client, built, login

VRAN = {"profile": "3g.40gb", "start": 4, "role": "vran", "owner": "du1"}
DAY = {"instances": [VRAN, {"profile": "2g.20gb", "start": 0}, {"profile": "2g.20gb", "start": 2}]}


@pytest.fixture
def appliance(tmp_path: Path) -> Iterator[Appliance]:
    app = built(tmp_path, TOWERBOX_GPU_BACKEND="simulated")
    yield app
    app.close()


@pytest.fixture
def client(appliance: Appliance) -> Iterator[TestClient[Any]]:
    with api_client(appliance) as c:
        c.headers.update(login(c, "admin", admin_password(appliance.cfg)))
        yield c


def _gpu(client: TestClient[Any]) -> str:
    return str(client.get("/api/v1/gpus").json()["gpus"][0]["uuid"])


def _placements(client: TestClient[Any], gpu: str) -> list[tuple[str, int, str]]:
    layout = client.get(f"/api/v1/gpus/{gpu}").json()["layout"]["instances"]
    return [(i["profile"], i["start"], i["role"]) for i in layout]


def test_plan_apply_and_reshape_around_the_vran_slice(client: TestClient[Any]) -> None:
    listing = client.get("/api/v1/gpus").json()
    assert "simulated H100 80GB" in listing["backend"]
    assert client.get("/healthz").json()["backends"]["gpu"]["simulated"] is True
    gpu = _gpu(client)
    dry = client.post(f"/api/v1/gpus/{gpu}/plan", json=DAY).json()
    assert [op["op"] for op in dry["ops"]] == ["create"] * 3
    assert _placements(client, gpu) == []  # a dry run changes nothing
    assert client.post(f"/api/v1/gpus/{gpu}/apply", json=DAY).status_code == 200
    assert _placements(client, gpu) == [
        ("2g.20gb", 0, "b2b"),
        ("2g.20gb", 2, "b2b"),
        ("3g.40gb", 4, "vran"),
    ]

    offpeak = client.post(f"/api/v1/gpus/{gpu}/apply", json={"counts": {"1g.10gb": 4}})
    assert offpeak.status_code == 200, offpeak.text
    ops = offpeak.json()["plan"]["ops"]
    assert all(op["profile"] != "3g.40gb" for op in ops)  # the vRAN slice is never touched
    assert ("3g.40gb", 4, "vran") in _placements(client, gpu)
    assert sum(p == "1g.10gb" for p, _, _ in _placements(client, gpu)) == 4
    kinds = [e["kind"] for e in client.get("/api/v1/journal?limit=1000").json()["entries"]]
    assert kinds.count("gpu.layout_applied") == 2


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"instances": [{"profile": "2g.20gb", "start": 0}]}, 409, "vran_protected"),
        ({"instances": [VRAN, {"profile": "3g.40gb", "start": 2}]}, 422, "invalid_mig_placement"),
        ({"instances": [VRAN, {"profile": "9g.99gb", "start": 0}]}, 422, "unknown_mig_profile"),
        ({"counts": {"1g.10gb": 9}}, 422, "mig_count_exceeded"),
        ({"instances": [VRAN], "counts": {"1g.10gb": 1}}, 422, "invalid_layout_request"),
        ({"instances": [{"profile": "1g.10gb", "start": "x"}]}, 400, "invalid_request"),
    ],
)
def test_bad_targets_change_nothing(
    client: TestClient[Any], body: dict[str, Any], status: int, code: str
) -> None:
    gpu = _gpu(client)
    client.post(f"/api/v1/gpus/{gpu}/apply", json=DAY)
    before = _placements(client, gpu)
    resp = client.post(f"/api/v1/gpus/{gpu}/apply", json=body)
    assert (resp.status_code, resp.json()["code"]) == (status, code), resp.text
    assert _placements(client, gpu) == before


def test_placement_message_lists_the_allowed_starts(client: TestClient[Any]) -> None:
    gpu = _gpu(client)
    resp = client.post(
        f"/api/v1/gpus/{gpu}/plan", json={"instances": [{"profile": "3g.40gb", "start": 2}]}
    )
    assert "3g.40gb cannot start at slot 2; allowed: 0, 4" in resp.json()["detail"]


def test_unknown_gpu_and_tenant_scope(client: TestClient[Any], appliance: Appliance) -> None:
    assert client.get("/api/v1/gpus/GPU-nope").json()["code"] == "gpu_not_found"
    client.post("/api/v1/tenants", json={"name": "acme"})
    client.post(
        "/api/v1/users",
        json={
            "username": "acme-admin",
            "password": "long-enough-pw",
            "role": "tenant-admin",
            "tenant": "acme",
        },
    )
    with api_client(appliance) as other:
        acme = login(other, "acme-admin", "long-enough-pw")
        assert other.get("/api/v1/gpus", headers=acme).status_code == 403
        gpu = _gpu(client)
        assert other.post(f"/api/v1/gpus/{gpu}/apply", headers=acme, json=DAY).status_code == 403


@pytest.mark.parametrize("op", ["create_instance", "destroy_instance"])
def test_a_failing_step_rolls_back_to_the_last_good_layout(
    client: TestClient[Any], appliance: Appliance, op: str
) -> None:
    gpu = _gpu(client)
    client.post(f"/api/v1/gpus/{gpu}/apply", json=DAY)
    before = _placements(client, gpu)
    backend = appliance.gpus.backend
    assert isinstance(backend, SimulatedGpuBackend)
    backend.fail_next(op, BackendError("injected", code="injected_fault"))
    resp = client.post(f"/api/v1/gpus/{gpu}/apply", json={"counts": {"1g.10gb": 4}})
    assert (resp.status_code, resp.json()["code"]) == (502, "mig_apply_rolled_back")
    assert _placements(client, gpu) == before
    kinds = [e["kind"] for e in client.get("/api/v1/journal?limit=1000").json()["entries"]]
    assert "gpu.layout_failed" in kinds


def test_committed_layout_comes_back_after_a_gpu_reset(
    client: TestClient[Any], appliance: Appliance
) -> None:
    gpu = _gpu(client)
    client.post(f"/api/v1/gpus/{gpu}/apply", json=DAY)
    before = _placements(client, gpu)
    backend = appliance.gpus.backend
    assert isinstance(backend, SimulatedGpuBackend)
    backend.simulate_gpu_reset(gpu)  # what a host reboot does to MIG instances
    assert _placements(client, gpu) == []
    appliance.gpus.restore()
    assert _placements(client, gpu) == before


def test_schedules(client: TestClient[Any], appliance: Appliance) -> None:
    gpu = _gpu(client)
    client.post(f"/api/v1/gpus/{gpu}/apply", json=DAY)
    offpeak = {"gpu": gpu, "cron": "0 22 * * *", "target": {"counts": {"1g.10gb": 4}}}
    made = client.put("/api/v1/gpus/schedules/offpeak", json=offpeak)
    assert made.status_code == 200, made.text
    assert made.json()["next_run"].endswith("22:00:00+00:00")
    listed = client.get("/api/v1/gpus/schedules").json()
    assert [s["name"] for s in listed] == ["offpeak"]

    bad_cron = client.put("/api/v1/gpus/schedules/x", json={**offpeak, "cron": "61 * * * *"})
    assert (bad_cron.status_code, bad_cron.json()["code"]) == (422, "invalid_cron")
    bad_target = client.put(
        "/api/v1/gpus/schedules/x",
        json={**offpeak, "target": {"instances": [{"profile": "1g.10gb", "start": 0}]}},
    )
    assert bad_target.json()["code"] == "vran_protected"
    assert [s["name"] for s in client.get("/api/v1/gpus/schedules").json()] == ["offpeak"]

    assert appliance.gpu_schedules.run("offpeak") is True
    assert sum(p == "1g.10gb" for p, _, _ in _placements(client, gpu)) == 4
    # A run that cannot complete leaves the last good layout and says why.
    before = _placements(client, gpu)
    backend = appliance.gpus.backend
    assert isinstance(backend, SimulatedGpuBackend)
    client.put("/api/v1/gpus/schedules/day", json={**offpeak, "cron": "0 6 * * *", "target": DAY})
    backend.fail_next("create_instance", BackendError("injected", code="injected_fault"))
    assert appliance.gpu_schedules.run("day") is False
    assert _placements(client, gpu) == before
    kinds = [e["kind"] for e in client.get("/api/v1/journal?limit=1000").json()["entries"]]
    assert "gpu.schedule_failed" in kinds
    assert client.delete("/api/v1/gpus/schedules/day").status_code == 204
    assert client.delete("/api/v1/gpus/schedules/day").json()["code"] == "schedule_not_found"


def test_mig_mode_change_waits_for_a_reset(tmp_path: Path) -> None:
    app = built(
        tmp_path,
        TOWERBOX_GPU_BACKEND="simulated",
        TOWERBOX_GPU_SIMULATED_MODELS="H100-80GB,L40S-48GB",
    )
    try:
        with api_client(app) as c:
            c.headers.update(login(c, "admin", admin_password(app.cfg)))
            gpus = {g["model"]: g["uuid"] for g in c.get("/api/v1/gpus").json()["gpus"]}
            off = c.post(f"/api/v1/gpus/{gpus['H100-80GB']}/mig-mode", json={"enabled": False})
            assert off.json() == {"current": True, "pending": False, "reset_needed": True}
            no_mig = c.post(f"/api/v1/gpus/{gpus['L40S-48GB']}/mig-mode", json={"enabled": True})
            assert (no_mig.status_code, no_mig.json()["code"]) == (409, "mig_not_supported")
    finally:
        app.close()
