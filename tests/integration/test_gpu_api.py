"""GPU layouts through the API on the simulated H100: plan, apply, refuse, roll back,
re-create after a restart, named layouts and schedules from the configuration."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from apscheduler.schedulers.background import BackgroundScheduler
from litestar.testing import TestClient

from appliance.backends.gpu.simulated import SIMULATED_DRIVER_VERSION, SimulatedGpuBackend
from appliance.context import Appliance
from appliance.domain.gpu.catalog import default_catalog
from appliance.domain.gpu.layout import Instance
from appliance.domain.gpu.target import LayoutRequest
from appliance.services.gpu_layouts import GpuLayoutService
from appliance.store.models import GpuLayout
from tests.support.appliance import admin_password, api_client, built, login
from towerbox_core import __version__
from towerbox_core.errors import BackendError, Conflict, TowerboxError

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


def _sim(appliance: Appliance) -> SimulatedGpuBackend:
    backend = appliance.gpus.backend
    assert isinstance(backend, SimulatedGpuBackend)
    return backend


def _on_gpu(appliance: Appliance, gpu: str) -> list[tuple[str, int]]:
    """What the simulator holds, read past the service and the database."""
    return sorted((i.profile, i.start) for i in _sim(appliance).instances(gpu))


def _kinds(client: TestClient[Any]) -> list[str]:
    return [e["kind"] for e in client.get("/api/v1/journal?limit=1000").json()["entries"]]


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


def test_healthz_names_the_gpu_backend(client: TestClient[Any]) -> None:
    gpu = client.get("/healthz").json()["backends"]["gpu"]
    assert gpu["summary"] == "GPU: simulated H100 80GB \u00d71 (chosen in the configuration)"


def test_healthz_reports_the_versions_the_node_runs(client: TestClient[Any]) -> None:
    """Read once at start; the agent sends them to the registry with its heartbeats."""
    health = client.get("/healthz").json()
    assert health["versions"]["towerbox"] == __version__
    assert health["versions"]["gpu_driver"] == SIMULATED_DRIVER_VERSION
    # The libvirt test driver lets the simulated GPUs offer vGPUs: a simulated manager.
    assert health["versions"]["vgpu_manager"] == SIMULATED_DRIVER_VERSION
    assert health["started_at"] <= time.time()


def test_profiles(client: TestClient[Any]) -> None:
    gpu = _gpu(client)
    profiles = {p["name"]: p for p in client.get(f"/api/v1/gpus/{gpu}/profiles").json()}
    assert profiles["3g.40gb"]["starts"] == [0, 4]
    assert profiles["1g.10gb"]["remaining"] == 7
    missing = client.get("/api/v1/gpus/GPU-nope/profiles")
    assert (missing.status_code, missing.json()["code"]) == (404, "gpu_not_found")


def test_every_operation_is_journalled_with_the_committed_layout(
    client: TestClient[Any],
) -> None:
    gpu = _gpu(client)
    client.post(f"/api/v1/gpus/{gpu}/apply", json=DAY)
    kinds = _kinds(client)
    assert kinds.count("gpu.instance_created") == 3
    assert kinds[-1] == "gpu.layout_applied"
    row = GpuLayout.get_by_id(gpu)
    assert row.gpu_model == "H100-80GB"
    assert '"owner":"du1"' in row.layout


def test_an_owner_that_is_no_vm_is_reported_with_nothing_to_stop(
    client: TestClient[Any],
) -> None:
    gpu = _gpu(client)
    owned = {"instances": [VRAN, {"profile": "4g.40gb", "start": 0, "owner": "acme-llm"}]}
    client.post(f"/api/v1/gpus/{gpu}/apply", json=owned)
    dry = client.post(f"/api/v1/gpus/{gpu}/plan", json={"counts": {"1g.10gb": 4}}).json()
    assert [i["owner"] for i in dry["drain"]] == ["acme-llm"]
    done = client.post(f"/api/v1/gpus/{gpu}/apply", json={"counts": {"1g.10gb": 4}}).json()
    assert done["drain"] == {
        "owners": ["acme-llm"],
        "drained": True,
        "restarted": [],
        "waiting": [],
    }


def test_a_drain_hook_runs_first_and_a_failing_one_changes_nothing(
    client: TestClient[Any], appliance: Appliance
) -> None:
    gpu = _gpu(client)
    owned = {"instances": [VRAN, {"profile": "4g.40gb", "start": 0, "owner": "acme-llm"}]}
    client.post(f"/api/v1/gpus/{gpu}/apply", json=owned)
    before = _on_gpu(appliance, gpu)
    calls: list[tuple[str, tuple[Instance, ...]]] = []

    def refuse(gpu_uuid: str, instances: tuple[Instance, ...]) -> None:
        calls.append((gpu_uuid, instances))
        raise Conflict("acme-llm did not stop in time", code="drain_timeout")

    catalog = default_catalog()
    refusing = GpuLayoutService(appliance.gpus.backend, "sim", catalog, drain=refuse)
    with pytest.raises(TowerboxError) as caught:
        refusing.apply_as_node(gpu, LayoutRequest(counts={"1g.10gb": 4}))
    assert caught.value.code == "drain_timeout"
    assert [i.owner for i in calls[0][1]] == ["acme-llm"]
    assert _on_gpu(appliance, gpu) == before
    assert _kinds(client)[-1] == "gpu.layout_failed"

    def accept(gpu_uuid: str, instances: tuple[Instance, ...]) -> None:
        calls.append((gpu_uuid, instances))

    drained = GpuLayoutService(appliance.gpus.backend, "sim", catalog, drain=accept)
    result = drained.apply_as_node(gpu, LayoutRequest(counts={"1g.10gb": 4}))
    assert result["drain"] == {"owners": ["acme-llm"], "drained": True}
    assert len(calls) == 2


@pytest.mark.parametrize("step", range(6))
def test_a_failure_at_any_step_leaves_the_last_good_layout(
    client: TestClient[Any], appliance: Appliance, monkeypatch: pytest.MonkeyPatch, step: int
) -> None:
    gpu = _gpu(client)
    client.post(f"/api/v1/gpus/{gpu}/apply", json=DAY)
    before = _on_gpu(appliance, gpu)
    sim = _sim(appliance)
    calls = 0

    def counting(name: str) -> Any:
        real = getattr(sim, name)

        def call(*args: Any) -> Any:
            nonlocal calls
            calls += 1
            if calls == step + 1:  # two destroys, then four creates
                sim.fail_next(name, BackendError("injected", code="injected_fault"))
            return real(*args)

        return call

    monkeypatch.setattr(sim, "destroy_instance", counting("destroy_instance"))
    monkeypatch.setattr(sim, "create_instance", counting("create_instance"))
    resp = client.post(f"/api/v1/gpus/{gpu}/apply", json={"counts": {"1g.10gb": 4}})
    monkeypatch.undo()
    assert (resp.status_code, resp.json()["code"]) == (502, "mig_apply_rolled_back")
    assert resp.json()["cause"] == "injected_fault"
    assert _on_gpu(appliance, gpu) == before
    assert _kinds(client)[-1] == "gpu.layout_failed"


def test_a_gpu_without_mig_is_refused_and_untouched(tmp_path: Path) -> None:
    app = built(
        tmp_path, TOWERBOX_GPU_BACKEND="simulated", TOWERBOX_GPU_SIMULATED_MODELS="L40S-48GB"
    )
    try:
        with api_client(app) as c:
            c.headers.update(login(c, "admin", admin_password(app.cfg)))
            gpu = _gpu(c)
            resp = c.post(f"/api/v1/gpus/{gpu}/apply", json={"counts": {"1g.10gb": 1}})
            assert (resp.status_code, resp.json()["code"]) == (409, "mig_not_supported")
            assert c.get(f"/api/v1/gpus/{gpu}/profiles").json() == []
            assert _on_gpu(app, gpu) == []
    finally:
        app.close()


def test_committed_layout_is_re_created_when_the_daemon_starts(tmp_path: Path) -> None:
    first = built(tmp_path, TOWERBOX_GPU_BACKEND="simulated")
    try:
        with api_client(first) as c:
            c.headers.update(login(c, "admin", admin_password(first.cfg)))
            gpu = _gpu(c)
            c.post(f"/api/v1/gpus/{gpu}/apply", json=DAY)
            before = _on_gpu(first, gpu)
    finally:
        first.close()
    # A host reboot: the simulator starts empty, the state database remembers.
    (tmp_path / "state" / "gpu-simulator.json").unlink()
    second = built(tmp_path, TOWERBOX_GPU_BACKEND="simulated")
    try:
        assert _on_gpu(second, gpu) == before
        with api_client(second) as c:
            c.headers.update(login(c, "admin", admin_password(second.cfg)))
            assert ("3g.40gb", 4, "vran") in _placements(c, gpu)
            assert _kinds(c)[-1] == "gpu.layout_restored"
    finally:
        second.close()


def test_an_apply_cut_off_by_a_crash_is_undone_when_the_daemon_starts(tmp_path: Path) -> None:
    """The daemon killed between an apply's destroy and its create (no rollback ran,
    nothing committed): the next start puts the GPU back on its committed layout."""
    first = built(tmp_path, TOWERBOX_GPU_BACKEND="simulated")
    try:
        with api_client(first) as c:
            c.headers.update(login(c, "admin", admin_password(first.cfg)))
            gpu = _gpu(c)
            c.post(f"/api/v1/gpus/{gpu}/apply", json=DAY)
            before = _on_gpu(first, gpu)
        # Half of an apply to another layout, as the killed daemon left it.
        sim = _sim(first)
        cut = next(i for i in sim.instances(gpu) if (i.profile, i.start) == ("2g.20gb", 2))
        sim.destroy_instance(gpu, cut.gpu_instance_id)
        sim.create_instance(gpu, "1g.10gb", 2)
    finally:
        first.close()
    second = built(tmp_path, TOWERBOX_GPU_BACKEND="simulated")
    try:
        assert _on_gpu(second, gpu) == before
        with api_client(second) as c:
            c.headers.update(login(c, "admin", admin_password(second.cfg)))
            assert _kinds(c)[-1] == "gpu.layout_restored"
    finally:
        second.close()


NAMED = {
    "TOWERBOX_GPU_BACKEND": "simulated",
    "TOWERBOX_GPU_LAYOUTS": (
        '{"day": {"instances": [{"profile": "3g.40gb", "start": 4, "role": "vran"},'
        ' {"profile": "4g.40gb", "start": 0}]}, "offpeak": {"counts": {"1g.10gb": 4}}}'
    ),
    "TOWERBOX_GPU_SCHEDULES": (
        '{"day": {"cron": "0 6 * * *", "layout": "day"},'
        ' "offpeak": {"cron": "0 22 * * *", "layout": "offpeak"}}'
    ),
}


@pytest.fixture
def named(tmp_path: Path) -> Iterator[tuple[Appliance, TestClient[Any]]]:
    app = built(tmp_path, **NAMED)
    with api_client(app) as c:
        c.headers.update(login(c, "admin", admin_password(app.cfg)))
        yield app, c
    app.close()


def test_named_layouts_from_the_configuration(named: tuple[Appliance, TestClient[Any]]) -> None:
    appliance, client = named
    gpu = _gpu(client)
    assert sorted(client.get("/api/v1/gpus/layouts").json()) == ["day", "offpeak"]
    dry = client.post(f"/api/v1/gpus/{gpu}/plan", json={"layout": "day"}).json()
    assert [(op["op"], op["profile"]) for op in dry["ops"]] == [
        ("create", "4g.40gb"),
        ("create", "3g.40gb"),
    ]
    assert _on_gpu(appliance, gpu) == []
    assert client.post(f"/api/v1/gpus/{gpu}/apply", json={"layout": "day"}).status_code == 200
    assert _on_gpu(appliance, gpu) == [("3g.40gb", 4), ("4g.40gb", 0)]
    unknown = client.post(f"/api/v1/gpus/{gpu}/apply", json={"layout": "nope"})
    assert (unknown.status_code, unknown.json()["code"]) == (422, "unknown_layout")
    both = client.post(f"/api/v1/gpus/{gpu}/plan", json={"layout": "day", "counts": {}})
    assert (both.status_code, both.json()["code"]) == (422, "invalid_layout_request")
    assert _on_gpu(appliance, gpu) == [("3g.40gb", 4), ("4g.40gb", 0)]


def test_configured_schedules_are_listed_run_and_read_only(
    named: tuple[Appliance, TestClient[Any]],
) -> None:
    appliance, client = named
    gpu = _gpu(client)
    listed = client.get("/api/v1/gpus/schedules").json()
    assert [(s["name"], s["source"], s["gpu"]) for s in listed] == [
        ("day", "config", gpu),
        ("offpeak", "config", gpu),
    ]
    assert listed[0]["next_run"].endswith("06:00:00+00:00")
    assert listed[1]["target"] == {"instances": None, "counts": None, "layout": "offpeak"}

    assert appliance.gpu_schedules.run("day") is True
    assert appliance.gpu_schedules.run("offpeak") is True
    on_gpu = _on_gpu(appliance, gpu)
    assert [p for p, _ in on_gpu].count("1g.10gb") == 4

    _sim(appliance).fail_next("destroy_instance", BackendError("injected", code="injected_fault"))
    assert appliance.gpu_schedules.run("day") is False
    assert _on_gpu(appliance, gpu) == on_gpu
    failed = client.get("/api/v1/journal?kind=gpu.schedule_failed").json()["entries"][-1]
    assert failed["state"]["code"] == "mig_apply_rolled_back"

    taken = client.put(
        "/api/v1/gpus/schedules/day",
        json={"gpu": gpu, "cron": "0 7 * * *", "target": {"layout": "day"}},
    )
    assert (taken.status_code, taken.json()["code"]) == (409, "schedule_from_config")
    bad = client.put(
        "/api/v1/gpus/schedules/other",
        json={"gpu": gpu, "cron": "0 7 * *", "target": {"layout": "day"}},
    )
    assert (bad.status_code, bad.json()["code"]) == (422, "invalid_cron")


def test_schedules_become_scheduler_jobs(named: tuple[Appliance, TestClient[Any]]) -> None:
    appliance, client = named
    gpu = _gpu(client)
    scheduler = BackgroundScheduler(timezone="UTC")
    scheduler.start(paused=True)
    try:
        appliance.gpu_schedules.attach(scheduler)
        ids = sorted(job.id for job in scheduler.get_jobs())
        assert ids == [f"gpu-schedule:config:day:{gpu}", f"gpu-schedule:config:offpeak:{gpu}"]
        listed = client.get("/api/v1/gpus/schedules").json()
        assert all(s["next_run"] for s in listed)
    finally:
        scheduler.shutdown(wait=False)


def test_a_gpu_off_its_committed_layout_shows_the_drift(
    client: TestClient[Any], appliance: Appliance
) -> None:
    gpu = _gpu(client)
    client.post(f"/api/v1/gpus/{gpu}/apply", json=DAY)
    assert client.get(f"/api/v1/gpus/{gpu}").json()["drift"] == []
    gone = next(i for i in _sim(appliance).instances(gpu) if i.start == 2)
    _sim(appliance).destroy_instance(gpu, gone.gpu_instance_id)  # past Towerbox
    assert client.get(f"/api/v1/gpus/{gpu}").json()["drift"] == [
        "2g.20gb at slot 2 is committed but missing on the GPU"
    ]
