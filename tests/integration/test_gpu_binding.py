"""VMs and processes on MIG slices, through the API on the simulated H100 and the
libvirt test driver: vGPU by mediated device, whole-GPU passthrough, the drain of
B2B VMs when a layout changes, their restart on the new layout, and rollback."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import libvirt
import pytest
from litestar.testing import TestClient

from appliance.backends.gpu.simulated import SimulatedGpuBackend
from appliance.context import Appliance
from appliance.services.gpu_binding import mdev_uuid_for
from appliance.store.models import Vm
from tests.support.appliance import admin_password, api_client, built, login
from towerbox_core.errors import BackendError

VRAN = {"profile": "3g.40gb", "start": 4, "role": "vran", "owner": "du1"}
# Day: two 2g.20gb B2B slices beside the vRAN one. Night: four 1g.10gb.
DAY = {"instances": [VRAN, {"profile": "2g.20gb", "start": 0}, {"profile": "2g.20gb", "start": 2}]}
NIGHT_COUNTS = {"counts": {"1g.10gb": 4}}


def _build(tmp_path: Path, **env: str) -> Iterator[Appliance]:
    app = built(tmp_path, TOWERBOX_GPU_BACKEND="simulated", **env)
    yield app
    root = app.auth.authenticate(app.cfg.cli_token_file.read_text().strip())
    for vm in Vm.select():
        app.vms.delete(root, vm.name)
    app.close()


@pytest.fixture
def appliance(tmp_path: Path) -> Iterator[Appliance]:
    yield from _build(tmp_path, TOWERBOX_GPU_DRAIN_TIMEOUT_S="2")


@pytest.fixture
def client(appliance: Appliance) -> Iterator[TestClient[Any]]:
    with api_client(appliance) as c:
        c.headers.update(login(c, "admin", admin_password(appliance.cfg)))
        yield c


def _gpu(client: TestClient[Any]) -> str:
    return str(client.get("/api/v1/gpus").json()["gpus"][0]["uuid"])


def _sim(appliance: Appliance) -> SimulatedGpuBackend:
    backend = appliance.gpus.backend
    assert isinstance(backend, SimulatedGpuBackend)
    return backend


def _create(client: TestClient[Any], name: str, gpu: dict[str, Any], **body: Any) -> Any:
    spec = {"gpu": gpu, "role": "b2b"}
    return client.post(
        "/api/v1/vms", json={"name": name, "appliance": "demo", "spec": spec, **body}
    )


def _owners(client: TestClient[Any], gpu: str) -> dict[tuple[str, int], str | None]:
    layout = client.get(f"/api/v1/gpus/{gpu}").json()["layout"]["instances"]
    return {(i["profile"], i["start"]): i["owner"] for i in layout}


def _busy(appliance: Appliance, gpu: str) -> dict[tuple[str, int], str | None]:
    """Which simulated instances carry a workload (a vGPU), read past the service."""
    state = _sim(appliance)._state  # the simulator's own record, as NVML would report
    sim = next(g for g in state.gpus if g.uuid == gpu)
    return {(i.profile, i.start): i.workload for i in sim.instances}


def _domain_xml(vm_id: str) -> ET.Element:
    conn = libvirt.open("test:///default")
    try:
        return ET.fromstring(conn.lookupByUUIDString(vm_id).XMLDesc(0))  # noqa: S314 - libvirt output
    finally:
        conn.close()


def _kinds(client: TestClient[Any]) -> list[str]:
    return [e["kind"] for e in client.get("/api/v1/journal?limit=1000").json()["entries"]]


def test_a_vm_gets_a_vgpu_on_a_free_slice_and_gives_it_back(
    client: TestClient[Any], appliance: Appliance
) -> None:
    gpu = _gpu(client)
    client.post(f"/api/v1/gpus/{gpu}/apply", json=DAY)
    made = _create(client, "llm1", {"profile": "2g.20gb"}, start=True)
    assert made.status_code == 201, made.text
    vm = made.json()
    assert vm["state"] == "running"
    mdev = mdev_uuid_for(vm["id"])
    assert vm["gpu"]["profile"] == "2g.20gb"
    assert vm["gpu"]["start"] == 0
    assert vm["gpu"]["mig_uuid"].startswith("MIG-")

    hostdev = _domain_xml(vm["id"]).find("devices/hostdev[@type='mdev']")
    assert hostdev is not None
    assert hostdev.get("model") == "vfio-pci"
    address = hostdev.find("source/address")
    assert address is not None
    assert address.get("uuid") == mdev

    assert _owners(client, gpu)[("2g.20gb", 0)] == "llm1"
    assert _busy(appliance, gpu)[("2g.20gb", 0)] == f"vgpu:{mdev}"
    # The simulator refuses to destroy the slice under a running vGPU, as NVML does.
    sim = _sim(appliance)
    gi = next(i for i in sim.instances(gpu) if i.start == 0)
    with pytest.raises(Exception, match="in use"):
        sim.destroy_instance(gpu, gi.gpu_instance_id)

    off = client.post("/api/v1/vms/llm1/shutdown", json={"timeout_s": 2}).json()
    assert off["state"] == "shutoff"
    assert _owners(client, gpu)[("2g.20gb", 0)] is None
    assert _busy(appliance, gpu)[("2g.20gb", 0)] is None
    assert {"gpu.instance_bound", "vm.gpu_bound", "gpu.instance_released"} <= set(_kinds(client))


def test_two_vms_take_two_slices_and_a_third_is_refused_with_nothing_held(
    client: TestClient[Any], appliance: Appliance
) -> None:
    gpu = _gpu(client)
    client.post(f"/api/v1/gpus/{gpu}/apply", json=DAY)
    assert _create(client, "a", {"profile": "2g.20gb"}, start=True).status_code == 201
    assert _create(client, "b", {"role": "b2b"}, start=True).status_code == 201
    assert _owners(client, gpu) == {("2g.20gb", 0): "a", ("2g.20gb", 2): "b", ("3g.40gb", 4): "du1"}
    assert _create(client, "c", {"profile": "2g.20gb"}).status_code == 201
    refused = client.post("/api/v1/vms/c/start")
    assert refused.status_code == 409
    assert refused.json()["code"] == "no_free_gpu_slice"
    assert client.get("/api/v1/vms/c").json()["state"] == "shutoff"
    assert _owners(client, gpu)[("3g.40gb", 4)] == "du1"  # a B2B VM never takes the vRAN slice


def test_reshape_drains_the_vm_and_restarts_it_on_the_new_layout(
    client: TestClient[Any], appliance: Appliance
) -> None:
    gpu = _gpu(client)
    client.post(f"/api/v1/gpus/{gpu}/apply", json=DAY)
    vm = _create(client, "llm1", {"role": "b2b"}, start=True).json()
    assert vm["gpu"]["profile"] == "2g.20gb"
    before = len(_kinds(client))

    dry = client.post(f"/api/v1/gpus/{gpu}/plan", json=NIGHT_COUNTS).json()
    assert [i["owner"] for i in dry["drain"]] == ["llm1"]
    done = client.post(f"/api/v1/gpus/{gpu}/apply", json=NIGHT_COUNTS)
    assert done.status_code == 200, done.text
    assert done.json()["drain"] == {
        "owners": ["llm1"],
        "drained": True,
        "restarted": ["llm1"],
        "waiting": [],
    }
    now = client.get("/api/v1/vms/llm1").json()
    assert now["state"] == "running"
    assert now["desired_state"] == "running"
    assert now["gpu"]["profile"] == "1g.10gb"
    assert _owners(client, gpu)[("3g.40gb", 4)] == "du1"
    kinds = _kinds(client)[before:]
    # Drained before any slice changed; bound again after the layout was committed.
    assert kinds.index("vm.drained") < kinds.index("gpu.instance_destroyed")
    assert kinds.index("gpu.layout_applied") < kinds.index("vm.gpu_bound")


def test_a_vm_without_a_place_waits_and_starts_when_a_layout_gives_it_one(
    client: TestClient[Any], appliance: Appliance
) -> None:
    gpu = _gpu(client)
    client.post(f"/api/v1/gpus/{gpu}/apply", json=DAY)
    _create(client, "big", {"profile": "2g.20gb"}, start=True)
    done = client.post(f"/api/v1/gpus/{gpu}/apply", json=NIGHT_COUNTS).json()
    assert done["drain"]["restarted"] == []
    assert [w["vm"] for w in done["drain"]["waiting"]] == ["big"]
    assert done["drain"]["waiting"][0]["code"] == "no_free_gpu_slice"
    vm = client.get("/api/v1/vms/big").json()
    assert (vm["state"], vm["desired_state"]) == ("shutoff", "running")
    assert "vm.gpu_waiting" in _kinds(client)
    back = client.post(f"/api/v1/gpus/{gpu}/apply", json=DAY).json()
    assert back["drain"]["restarted"] == ["big"]
    assert client.get("/api/v1/vms/big").json()["state"] == "running"


def test_a_failed_apply_rolls_back_and_restarts_the_drained_vm_where_it_was(
    client: TestClient[Any], appliance: Appliance
) -> None:
    gpu = _gpu(client)
    client.post(f"/api/v1/gpus/{gpu}/apply", json=DAY)
    vm = _create(client, "llm1", {"profile": "2g.20gb"}, start=True).json()
    _sim(appliance).fail_next("create_instance", BackendError("injected", code="nvml_unknown"))
    failed = client.post(f"/api/v1/gpus/{gpu}/apply", json=NIGHT_COUNTS)
    assert failed.status_code >= 500
    assert failed.json()["code"] == "mig_apply_rolled_back"
    now = client.get("/api/v1/vms/llm1").json()
    assert now["state"] == "running"
    assert (now["gpu"]["profile"], now["gpu"]["start"]) == ("2g.20gb", 0)
    assert _busy(appliance, gpu)[("2g.20gb", 0)] == f"vgpu:{mdev_uuid_for(vm['id'])}"


def test_a_vm_that_ignores_shutdown_stops_the_apply_before_the_gpu_changes(
    client: TestClient[Any], appliance: Appliance, monkeypatch: pytest.MonkeyPatch
) -> None:
    gpu = _gpu(client)
    client.post(f"/api/v1/gpus/{gpu}/apply", json=DAY)
    _create(client, "stubborn", {"profile": "2g.20gb"}, start=True)
    _create(client, "polite", {"profile": "2g.20gb"}, start=True)
    stubborn_id = client.get("/api/v1/vms/stubborn").json()["id"]
    real_shutdown = appliance.backend.shutdown

    def ignore_acpi(vm_id: str) -> None:
        if vm_id != stubborn_id:  # a guest that never answers the ACPI button
            real_shutdown(vm_id)

    monkeypatch.setattr(appliance.backend, "shutdown", ignore_acpi)
    before = _owners(client, gpu)
    refused = client.post(f"/api/v1/gpus/{gpu}/apply", json=NIGHT_COUNTS)
    assert refused.status_code == 409
    assert refused.json()["code"] == "drain_deadline"
    assert _owners(client, gpu) == before
    assert [client.get(f"/api/v1/vms/{n}").json()["state"] for n in ("stubborn", "polite")] == [
        "running",
        "running",
    ]
    assert "gpu.layout_failed" in _kinds(client)


def test_the_reconciler_restarts_a_crashed_vm_on_its_slice(
    client: TestClient[Any], appliance: Appliance
) -> None:
    gpu = _gpu(client)
    client.post(f"/api/v1/gpus/{gpu}/apply", json=DAY)
    spec_always = {"gpu": {"profile": "2g.20gb"}, "role": "b2b", "restart": "always"}
    made = client.post(
        "/api/v1/vms", json={"name": "crashy", "appliance": "demo", "spec": spec_always}
    )
    assert made.status_code == 201, made.text
    client.post("/api/v1/vms/crashy/start")
    vm_id = made.json()["id"]
    appliance.backend.destroy(vm_id)  # gone behind the service's back, slice still claimed
    report = appliance.reconciler.run()
    assert "crashy" in report.restarted
    assert client.get("/api/v1/vms/crashy").json()["gpu"]["owner"] == "crashy"


def test_processes_claim_a_slice_by_mig_uuid_and_block_its_reshape(
    client: TestClient[Any],
) -> None:
    gpu = _gpu(client)
    client.post(f"/api/v1/gpus/{gpu}/apply", json=DAY)
    claim = client.post("/api/v1/gpus/claims", json={"name": "vllm", "profile": "2g.20gb"})
    assert claim.status_code == 201, claim.text
    body = claim.json()
    assert body["owner"] == "process:vllm"
    assert body["env"] == {"CUDA_VISIBLE_DEVICES": body["mig_uuid"]}
    assert [c["owner"] for c in client.get("/api/v1/gpus/claims").json()] == [
        "process:vllm",
        "du1",
    ]
    blocked = client.post(f"/api/v1/gpus/{gpu}/apply", json=NIGHT_COUNTS)
    assert blocked.status_code == 409
    assert blocked.json()["code"] == "gpu_claimed_by_process"
    assert client.delete("/api/v1/gpus/claims/vllm").status_code == 204
    assert client.delete("/api/v1/gpus/claims/vllm").json()["code"] == "claim_not_found"
    assert client.post(f"/api/v1/gpus/{gpu}/apply", json=NIGHT_COUNTS).status_code == 200


@pytest.mark.parametrize(
    ("gpu", "status", "code"),
    [
        ({"profile": "9x"}, 422, "invalid_gpu_request"),
        ({"profile": "1g.99gb"}, 422, "unknown_mig_profile"),
        ({"role": "boss"}, 422, "invalid_gpu_request"),
        ({"gpu": "GPU-<script>"}, 422, "invalid_gpu_request"),
        ({"gpu": "GPU-00000000-0000-0000-0000-000000000000"}, 404, "gpu_not_found"),
        ({"attach": "passthrough", "profile": "1g.10gb"}, 422, "invalid_gpu_request"),
        ({"attach": "passthrough"}, 409, "gpu_in_mig_mode"),
        ({"attach": "sideways"}, 422, "invalid_spec"),
    ],
)
def test_bad_gpu_requests_are_refused_and_leave_nothing(
    client: TestClient[Any], gpu: dict[str, Any], status: int, code: str
) -> None:
    resp = _create(client, "bad", gpu)
    assert resp.status_code == status, resp.text
    assert resp.json()["code"] == code
    assert not Vm.select().where(Vm.name == "bad").exists()


def test_without_a_vgpu_manager_a_mig_vm_is_refused(tmp_path: Path) -> None:
    for app in _build(tmp_path, TOWERBOX_GPU_SIMULATED_VGPU="false"):
        with api_client(app) as c:
            c.headers.update(login(c, "admin", admin_password(app.cfg)))
            resp = _create(c, "llm1", {"profile": "1g.10gb"})
            assert resp.status_code == 409
            assert resp.json()["code"] == "vgpu_unavailable"
            assert "process" in resp.json()["detail"]


def test_a_whole_gpu_without_mig_is_passed_through_once(tmp_path: Path) -> None:
    for app in _build(tmp_path, TOWERBOX_GPU_SIMULATED_MODELS="L40S-48GB"):
        with api_client(app) as c:
            c.headers.update(login(c, "admin", admin_password(app.cfg)))
            made = _create(c, "render", {"attach": "passthrough"}, start=True)
            assert made.status_code == 201, made.text
            pci = c.get("/api/v1/gpus").json()["gpus"][0]["pci_address"]
            assert made.json()["spec"]["gpu"]["gpu"] == pci
            hostdev = _domain_xml(made.json()["id"]).find("devices/hostdev[@type='pci']")
            assert hostdev is not None
            address = hostdev.find("source/address")
            assert address is not None
            bus = int(pci.split(":")[1], 16)
            assert int(address.get("bus", "0"), 16) == bus
            again = _create(c, "render2", {"attach": "passthrough"})
            assert again.status_code == 409
            assert again.json()["code"] == "gpu_in_use"


def test_an_unnamed_passthrough_takes_a_gpu_with_mig_off(tmp_path: Path) -> None:
    # The H100 (MIG on) is listed first; the L40S beside it can be passed through.
    for app in _build(tmp_path, TOWERBOX_GPU_SIMULATED_MODELS="H100-80GB,L40S-48GB"):
        with api_client(app) as c:
            c.headers.update(login(c, "admin", admin_password(app.cfg)))
            h100, l40s = c.get("/api/v1/gpus").json()["gpus"]
            made = _create(c, "render", {"attach": "passthrough"})
            assert made.status_code == 201, made.text
            assert made.json()["spec"]["gpu"]["gpu"] == l40s["pci_address"]
            again = _create(c, "render2", {"attach": "passthrough"})
            assert (again.status_code, again.json()["code"]) == (409, "gpu_in_mig_mode")
            assert h100["pci_address"] != l40s["pci_address"]


def test_after_a_host_reboot_the_slices_come_back_before_their_vms(tmp_path: Path) -> None:
    apps = _build(tmp_path)
    app = next(apps)
    with api_client(app) as c:
        c.headers.update(login(c, "admin", admin_password(app.cfg)))
        gpu = _gpu(c)
        c.post(f"/api/v1/gpus/{gpu}/apply", json=DAY)
        vm_id = _create(c, "llm1", {"profile": "2g.20gb"}, start=True).json()["id"]
    # The reboot: the domain is off without anyone asking, and the GPU lost its MIG
    # instances (and the vGPU on one of them) with its reset.
    app.backend.destroy(vm_id)
    sim = _sim(app)
    for inst in sim.instances(gpu):
        sim.detach_workload(gpu, inst.gpu_instance_id)
    sim.simulate_gpu_reset(gpu)
    assert sim.instances(gpu) == []
    app.close()

    again = built(tmp_path, TOWERBOX_GPU_BACKEND="simulated")
    try:
        assert sorted((i.profile, i.start) for i in _sim(again).instances(gpu)) == [
            ("2g.20gb", 0),
            ("2g.20gb", 2),
            ("3g.40gb", 4),
        ]
        with api_client(again) as c:
            c.headers.update(login(c, "admin", admin_password(again.cfg)))
            vm = c.get("/api/v1/vms/llm1").json()
            assert vm["state"] == "running"
            assert (vm["gpu"]["profile"], vm["gpu"]["start"]) == ("2g.20gb", 0)
            kinds = _kinds(c)
            assert kinds.index("gpu.layout_restored") < len(kinds) - 1 - kinds[::-1].index(
                "vm.gpu_bound"
            )
    finally:
        root = again.auth.authenticate(again.cfg.cli_token_file.read_text().strip())
        again.vms.delete(root, "llm1")
        again.close()


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"name": "vllm", "role": "boss"}, "invalid_request"),
        ({"name": "a/b"}, "invalid_name"),
        ({"name": "vllm", "profile": "1g.99gb"}, "unknown_mig_profile"),
    ],
)
def test_bad_process_claims_are_refused_and_hold_nothing(
    client: TestClient[Any], body: dict[str, Any], code: str
) -> None:
    client.post(f"/api/v1/gpus/{_gpu(client)}/apply", json=DAY)
    resp = client.post("/api/v1/gpus/claims", json=body)
    assert 400 <= resp.status_code < 500, resp.text
    assert resp.json()["code"] == code
    assert [c["owner"] for c in client.get("/api/v1/gpus/claims").json()] == ["du1"]


def test_the_dry_run_says_a_process_claim_blocks_the_apply_as_the_apply_does(
    client: TestClient[Any],
) -> None:
    gpu = _gpu(client)
    client.post(f"/api/v1/gpus/{gpu}/apply", json=DAY)
    assert client.post(
        "/api/v1/gpus/claims", json={"name": "vllm", "profile": "2g.20gb"}
    ).is_success
    dry = client.post(f"/api/v1/gpus/{gpu}/plan", json=NIGHT_COUNTS).json()
    (claim,) = [w for w in dry["workloads"] if w["kind"] == "process"]
    assert claim["owner"] == "process:vllm"
    assert claim["effect"] == "blocks"
    assert dry["blocked"]["code"] == "gpu_claimed_by_process"
    refused = client.post(f"/api/v1/gpus/{gpu}/apply", json=NIGHT_COUNTS).json()
    assert refused["code"] == dry["blocked"]["code"]
    assert refused["detail"] == dry["blocked"]["detail"]


def test_the_dry_run_predicts_which_vms_restart_and_which_wait(
    client: TestClient[Any],
) -> None:
    gpu = _gpu(client)
    small = [{"profile": "1g.10gb", "start": n} for n in range(4)]
    client.post(f"/api/v1/gpus/{gpu}/apply", json={"instances": [VRAN, *small]})
    for name in ("llm-a", "llm-b"):  # on slots 0 and 1
        assert _create(client, name, {"profile": "1g.10gb"}).status_code == 201
        assert client.post(f"/api/v1/vms/{name}/start").status_code == 200
    # Slots 0 and 1 become a 2g.20gb; slot 2 stays, free: one VM gets it, one waits.
    target = {"instances": [VRAN, {"profile": "2g.20gb", "start": 0}, small[2]]}
    dry = client.post(f"/api/v1/gpus/{gpu}/plan", json=target).json()
    assert dry["blocked"] is None
    assert [(w["owner"], w["effect"], w["detail"]) for w in dry["workloads"]] == [
        ("llm-a", "restart", "shut down, then restarted on 1g.10gb at slot 2"),
        (
            "llm-b",
            "wait",
            "shut down and left off: no free 1g.10gb b2b slice after the apply; it waits "
            "(journalled) until a later layout gives it one",
        ),
    ]
    done = client.post(f"/api/v1/gpus/{gpu}/apply", json={**target, "expect": dry["current"]})
    assert done.status_code == 200, done.text
    drain = done.json()["drain"]
    assert drain["restarted"] == ["llm-a"]
    assert [w["vm"] for w in drain["waiting"]] == ["llm-b"]
    assert _owners(client, gpu)[("1g.10gb", 2)] == "llm-a"


def test_an_apply_refuses_when_the_gpu_changed_since_its_dry_run(
    client: TestClient[Any],
) -> None:
    gpu = _gpu(client)
    client.post(f"/api/v1/gpus/{gpu}/apply", json=DAY)
    dry = client.post(f"/api/v1/gpus/{gpu}/plan", json=NIGHT_COUNTS).json()
    assert dry["blocked"] is None
    # Meanwhile a process takes one of the slices the plan was going to destroy.
    assert client.post(
        "/api/v1/gpus/claims", json={"name": "vllm", "profile": "2g.20gb"}
    ).is_success
    before = _placements_and_owners(client, gpu)
    refused = client.post(
        f"/api/v1/gpus/{gpu}/apply", json={**NIGHT_COUNTS, "expect": dry["current"]}
    )
    assert refused.status_code == 409, refused.text
    body = refused.json()
    assert body["code"] == "gpu_changed_since_plan"
    assert body["changes"] == ["2g.20gb at slot 0 is now held by process:vllm (was free)"]
    assert _placements_and_owners(client, gpu) == before


def _placements_and_owners(client: TestClient[Any], gpu: str) -> list[tuple[str, int, Any]]:
    layout = client.get(f"/api/v1/gpus/{gpu}").json()["layout"]["instances"]
    return [(i["profile"], i["start"], i.get("owner")) for i in layout]


def test_a_vm_left_off_by_a_reshape_says_it_waits_for_a_slice_and_since(
    client: TestClient[Any],
) -> None:
    gpu = _gpu(client)
    client.post(f"/api/v1/gpus/{gpu}/apply", json=DAY)
    assert _create(client, "llm-w", {"profile": "2g.20gb"}).status_code == 201
    assert client.post("/api/v1/vms/llm-w/start").status_code == 200
    assert client.get("/api/v1/vms/llm-w").json()["attention"] is None
    assert client.post(f"/api/v1/gpus/{gpu}/apply", json=NIGHT_COUNTS).status_code == 200
    vm = client.get("/api/v1/vms/llm-w").json()
    assert (vm["desired_state"], vm["state"]) == ("running", "shutoff")
    assert vm["attention"]["kind"] == "waiting_for_gpu"
    assert "[no_free_gpu_slice]" in vm["attention"]["reason"]
    assert vm["attention"]["since"]
    listed = {v["name"]: v for v in client.get("/api/v1/vms").json()}
    assert listed["llm-w"]["attention"] == vm["attention"]
    # A layout with a slice for it again: it starts, and the note goes.
    assert client.post(f"/api/v1/gpus/{gpu}/apply", json=DAY).status_code == 200
    vm = client.get("/api/v1/vms/llm-w").json()
    assert (vm["state"], vm["attention"]) == ("running", None)


def test_changes_made_outside_towerbox_are_shown_as_such(
    client: TestClient[Any], appliance: Appliance
) -> None:
    made = client.post("/api/v1/vms", json={"name": "plain", "appliance": "demo"})
    assert made.status_code == 201, made.text
    vm_id = made.json()["id"]
    appliance.backend.start(vm_id)  # desired stopped, started past Towerbox
    vm = client.get("/api/v1/vms/plain").json()
    assert vm["attention"]["kind"] == "changed_outside"
    assert client.post("/api/v1/vms/plain/start").status_code == 200
    assert client.get("/api/v1/vms/plain").json()["attention"] is None
    appliance.backend.destroy(vm_id)  # off past Towerbox; on-failure leaves it off
    appliance.reconciler.run()
    vm = client.get("/api/v1/vms/plain").json()
    assert vm["attention"]["kind"] == "stopped"
    assert "restart policy (on-failure)" in vm["attention"]["reason"]
