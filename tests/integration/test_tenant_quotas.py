"""Tenant quotas and host admission through the API: usage, races, lowered quotas,
refusals with their numbers; and the tenant routes' own bad input."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from appliance.backends.vm import disks
from appliance.context import Appliance
from appliance.store.models import TenantPolicy
from tests.support.tenancy import clients, footprint, principal_of, root_principal, tenant_node
from towerbox_core.api.tenants import QuotasUpdate
from towerbox_core.api.vms import VmCreateRequest
from towerbox_core.errors import TowerboxError

Api = tuple[TestClient[Any], dict[str, str], dict[str, str]]
B2B = {"role": "b2b"}


@pytest.fixture
def appliance(tmp_path: Path) -> Iterator[Appliance]:
    yield from tenant_node(tmp_path)


@pytest.fixture
def api(appliance: Appliance) -> Iterator[Api]:
    yield from clients(appliance)


def _create(c: TestClient[Any], headers: dict[str, str], name: str, **spec: Any) -> Any:
    body = {"name": name, "appliance": "demo", "spec": {**B2B, **spec}}
    return c.post("/api/v1/vms", headers=headers, json=body)


def _quotas(c: TestClient[Any], admin: dict[str, str], **quotas: Any) -> Any:
    resp = c.put("/api/v1/tenants/acme/quotas", headers=admin, json=quotas)
    assert resp.status_code == 200, resp.text
    return resp.json()


def test_a_tenant_sees_its_quotas_grants_and_usage_and_no_other_tenant(
    appliance: Appliance, api: Api
) -> None:
    c, admin, acme = api
    assert _create(c, acme, "one", vcpus=2, memory_mib=256).status_code == 201
    mine = c.get("/api/v1/tenants/acme", headers=acme)
    assert mine.status_code == 200, mine.text
    detail = mine.json()
    assert detail["quotas_source"] == "defaults"
    assert detail["quotas"]["vms"] == appliance.cfg.tenants.vms
    assert detail["quotas"]["gpu_slices"] == {} and detail["quotas"]["whole_gpus"] == 0
    assert detail["grants"]["pinned_cores"] == 0
    usage = detail["usage"]
    assert (usage["vms"], usage["vcpus"], usage["memory_mib"], usage["vnets"]) == (1, 2, 256, 1)
    assert detail["over"] == []
    other = c.get("/api/v1/tenants/beta", headers=acme)
    ghost = c.get("/api/v1/tenants/ghost", headers=acme)
    assert (other.status_code, other.json()["code"]) == (404, "tenant_not_found")
    assert other.json()["detail"].replace("beta", "?") == ghost.json()["detail"].replace(
        "ghost", "?"
    )
    assert c.get("/api/v1/tenants/beta", headers=admin).json()["usage"]["vms"] == 0


@pytest.mark.parametrize(
    ("route", "body", "status", "code"),
    [
        ("quotas", {"vms": -2}, 422, "invalid_quota"),
        ("quotas", {"memory_mib": 10**15}, 422, "invalid_quota"),
        ("quotas", {"gpu_slices": {"big": 1}}, 422, "invalid_quota"),
        ("quotas", {"gpu_slices": {"1g.10gb": -5}}, 422, "invalid_quota"),
        ("quotas", {"vms": "many"}, 400, "invalid_request"),
        ("quotas", {"surprise": 1}, 400, "invalid_request"),
        ("grants", {"pinned_cores": -3}, 422, "invalid_grant"),
        ("grants", {"hugepages": {"4M": 10}}, 422, "invalid_grant"),
        ("grants", {"sriov_pfs": {"nope0": 2}}, 422, "unknown_sriov_pf"),
        ("grants", {"sriov_pfs": {"ens1f0": 2**40}}, 422, "invalid_grant"),
        ("grants", {"pci_devices": ["0000:99:00.0"]}, 422, "unknown_pci_device"),
        ("grants", {"pci_devices": ["not-pci"]}, 422, "invalid_pci_address"),
        ("grants", {"pci_devices": ["0000:17:00.0"]}, 422, "gpu_service_device"),
    ],
)
def test_bad_quotas_and_grants_change_nothing(
    appliance: Appliance, api: Api, route: str, body: dict[str, Any], status: int, code: str
) -> None:
    c, admin, _ = api
    before = c.get("/api/v1/tenants/acme", headers=admin).json()
    resp = c.put(f"/api/v1/tenants/acme/{route}", headers=admin, json=body)
    assert (resp.status_code, resp.json()["code"]) == (status, code), resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    assert c.get("/api/v1/tenants/acme", headers=admin).json() == before
    assert TenantPolicy.select().count() == 0


def test_only_an_infra_admin_sets_quotas_and_grants(appliance: Appliance, api: Api) -> None:
    c, admin, acme = api
    for route, body in (("quotas", {"vms": -1}), ("grants", {"pinned_cores": 64})):
        resp = c.put(f"/api/v1/tenants/acme/{route}", headers=acme, json=body)
        assert (resp.status_code, resp.json()["code"]) == (403, "infra_admin_required")
    assert TenantPolicy.select().count() == 0
    ghost = c.put("/api/v1/tenants/ghost/quotas", headers=admin, json={"vms": 1})
    assert (ghost.status_code, ghost.json()["code"]) == (404, "tenant_not_found")


def test_quotas_refuse_with_the_numbers_and_leave_nothing(appliance: Appliance, api: Api) -> None:
    c, admin, acme = api
    _quotas(c, admin, vcpus=3, gpu_slices={"1g.10gb": 1})
    assert _create(c, acme, "a", vcpus=2).status_code == 201
    before = footprint(appliance)
    resp = _create(c, acme, "b", vcpus=2)
    assert (resp.status_code, resp.json()["code"]) == (409, "quota_exceeded"), resp.text
    problem = resp.json()
    assert (problem["quota"], problem["limit"], problem["used"], problem["asked"]) == (
        "vcpus",
        3,
        2,
        2,
    )
    assert "2 used + 2 asked > 3" in problem["detail"]
    # GPU slices: none unless set, per profile.
    slice_ = _create(c, acme, "c", gpu={"profile": "2g.20gb"})
    assert (slice_.json()["code"], slice_.json()["quota"]) == (
        "quota_exceeded",
        "gpu_slices.2g.20gb",
    )
    # A slice without a profile could not be counted: refused, for the admin too.
    for headers in (acme, admin):
        vague = c.post(
            "/api/v1/vms",
            headers=headers,
            json={"name": "d", "appliance": "demo", "spec": {**B2B, "tenant": "acme", "gpu": {}}},
        )
        assert (vague.status_code, vague.json()["code"]) == (422, "gpu_profile_required")
    assert footprint(appliance) == before
    # Unlimited is an explicit -1.
    _quotas(c, admin, vcpus=-1)
    assert _create(c, acme, "b", vcpus=2).status_code == 201


PINNED = {"policy": "pinned"}


@pytest.fixture
def gpu_node(tmp_path: Path) -> Iterator[tuple[Appliance, Api]]:
    """The tenant node with two L40S (no MIG) beside its H100, to pass through whole:
    the second is free when the quota refuses it."""
    models = "H100-80GB,L40S-48GB,L40S-48GB"
    for app in tenant_node(tmp_path, TOWERBOX_GPU_SIMULATED_MODELS=models):
        for api in clients(app):
            yield app, api


@pytest.mark.parametrize(
    ("quotas", "grants", "made", "refused", "numbers"),
    [
        pytest.param(
            {"memory_mib": 1024},
            {},
            [{"memory_mib": 512}, {"memory_mib": 512}],
            {"memory_mib": 256},
            ("memory_mib", 1024, 1024, 256),
            id="memory_mib",
        ),
        pytest.param(
            {"disk_gib": 15},
            {},
            [{"disks": [{"size_gib": 10}]}],
            {"disks": [{"size_gib": 4}, {"size_gib": 2}]},
            ("disk_gib", 15, 10, 6),
            id="disk_gib",
        ),
        pytest.param(
            {"whole_gpus": 1},
            {},
            [{"gpu": {"attach": "passthrough"}}],
            {"gpu": {"attach": "passthrough"}},
            ("whole_gpus", 1, 1, 1),
            id="whole_gpus",
        ),
        pytest.param(
            {"gpu_slices": {"1g.10gb": 2, "2g.20gb": 1}, "gpu_compute_slices": 2},
            {},
            [{"gpu": {"profile": "1g.10gb"}}],
            {"gpu": {"profile": "2g.20gb"}},
            ("gpu_compute_slices", 2, 1, 2),
            id="gpu_compute_slices",
        ),
        pytest.param(
            {},
            {"pinned_cores": 2},
            [{"vcpus": 2, "cpu": PINNED}],
            {"vcpus": 1, "cpu": PINNED},
            ("grants.pinned_cores", 2, 2, 1),
            id="pinned_cores",
        ),
        pytest.param(
            {},
            {"hugepages": {"2M": 1024}},
            [{"memory_mib": 1024, "hugepages": "2M"}],
            {"memory_mib": 512, "hugepages": "2M"},
            ("grants.hugepages.2M", 1024, 1024, 512),
            id="hugepages",
        ),
    ],
)
def test_each_quota_and_granted_count_refuses_with_the_numbers(
    gpu_node: tuple[Appliance, Api],
    quotas: dict[str, Any],
    grants: dict[str, Any],
    made: list[dict[str, Any]],
    refused: dict[str, Any],
    numbers: tuple[str, int, int, int],
) -> None:
    appliance, (c, admin, acme) = gpu_node
    if quotas:
        _quotas(c, admin, **quotas)
    if grants:
        granted = c.put("/api/v1/tenants/acme/grants", headers=admin, json=grants)
        assert granted.status_code == 200, granted.text
    for i, spec in enumerate(made):
        resp = _create(c, acme, f"fits{i}", **spec)
        assert resp.status_code == 201, resp.text
    before = footprint(appliance)
    resp = _create(c, acme, "past", **refused)
    assert (resp.status_code, resp.json()["code"]) == (409, "quota_exceeded"), resp.text
    problem = resp.json()
    assert (problem["quota"], problem["limit"], problem["used"], problem["asked"]) == numbers
    _, limit, used, asked = numbers
    assert f"{used} used + {asked} asked > {limit}" in problem["detail"]
    assert footprint(appliance) == before
    usage = c.get("/api/v1/tenants/acme", headers=acme).json()["usage"]
    assert usage["vms"] == len(made)


def test_a_quota_lowered_below_usage_blocks_new_vms_only(appliance: Appliance, api: Api) -> None:
    c, admin, acme = api
    for name in ("r1", "r2"):
        made = c.post(
            "/api/v1/vms",
            headers=acme,
            json={"name": name, "appliance": "demo", "spec": B2B, "start": True},
        )
        assert made.status_code == 201, made.text
    answer = _quotas(c, admin, vms=1, memory_mib=128)
    assert answer["over"] == ["vms", "memory_mib"]
    assert "new allocations" in answer["note"]
    assert c.get("/api/v1/tenants/acme", headers=acme).json()["over"] == ["vms", "memory_mib"]
    states = {v["name"]: v["state"] for v in c.get("/api/v1/vms", headers=acme).json()}
    assert states == {"r1": "running", "r2": "running"}
    assert c.post("/api/v1/vms/r1/stop", headers=acme).status_code == 200
    assert c.post("/api/v1/vms/r1/start", headers=acme).status_code == 200
    refused = _create(c, acme, "r3")
    assert (refused.status_code, refused.json()["code"]) == (409, "quota_exceeded")
    assert c.delete("/api/v1/vms/r2", headers=acme).status_code == 204
    assert c.delete("/api/v1/vms/r1", headers=acme).status_code == 204
    assert _create(c, acme, "r3").status_code == 201


@pytest.mark.parametrize("early_check", [True, False], ids=["as-built", "transaction-only"])
def test_concurrent_creates_never_pass_a_quota(
    appliance: Appliance, api: Api, monkeypatch: pytest.MonkeyPatch, early_check: bool
) -> None:
    c, admin, _ = api
    _quotas(c, admin, vms=2)
    if not early_check:
        # Left alone, the check in the row's write transaction still holds the line.
        assert appliance.vms._admission is not None
        monkeypatch.setattr(appliance.vms._admission, "admit", lambda *_: None)
    principal = principal_of(appliance, "acme-admin")
    results: dict[str, str] = {}
    barrier = threading.Barrier(6)

    def create(name: str) -> None:
        barrier.wait()
        try:
            appliance.vms.create(
                principal, VmCreateRequest(name=name, appliance="demo", spec=dict(B2B))
            )
            results[name] = "created"
        except TowerboxError as err:
            results[name] = err.code

    before = footprint(appliance)
    threads = [threading.Thread(target=create, args=(f"race{i}",)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results.values()) == ["created"] * 2 + ["quota_exceeded"] * 4
    made = sorted(n for n, r in results.items() if r == "created")
    assert footprint(appliance)["rows"] == made
    after = footprint(appliance)
    assert len(set(after["domains"]) - set(before["domains"])) == len(made)
    assert after["host"]["vms"] == made


def test_vnets_count_against_their_tenant(appliance: Appliance, api: Api) -> None:
    c, admin, _ = api
    _quotas(c, admin, vnets=1)
    more = {
        "tenant": "acme",
        "name": "more",
        "trunk": "br-n6",
        "vlan": 300,
        "subnet": "10.130.0.0/24",
        "gateway": "10.130.0.1",
        "ue_pools": ["10.47.0.0/16"],
    }
    resp = c.post("/api/v1/n6/vnets", headers=admin, json=more)
    assert (resp.status_code, resp.json()["code"]) == (409, "quota_exceeded"), resp.text
    assert [v["name"] for v in c.get("/api/v1/n6/vnets", headers=admin).json()] == [
        "llm",
        "cams",
    ]


# -- host admission, for everyone ------------------------------------------------------


def test_memory_past_the_host_is_refused_even_for_an_infra_admin(
    appliance: Appliance, api: Api
) -> None:
    c, admin, _ = api
    budget = appliance.vms._admission.memory_budget_mib if appliance.vms._admission else 0
    # 192 GiB less 15 GiB of hugepage pools less the 2 GiB reserve.
    assert budget == (192 - 15 - 2) * 1024
    assert _create(c, admin, "big", memory_mib=budget - 1024).status_code == 201
    before = footprint(appliance)
    resp = _create(c, admin, "bigger", memory_mib=2048)
    assert (resp.status_code, resp.json()["code"]) == (409, "insufficient_memory"), resp.text
    assert f"{budget - 1024} of {budget} MiB" in resp.json()["detail"]
    assert footprint(appliance) == before
    # Hugepage-backed memory is the allocator's, not this budget's.
    assert _create(c, admin, "paged", memory_mib=2048, hugepages="2M").status_code == 201


def test_overcommit_stretches_the_memory_budget(tmp_path: Path) -> None:
    for app in tenant_node(tmp_path, TOWERBOX_HOST_MEMORY_OVERCOMMIT="2.0"):
        assert app.vms._admission is not None
        assert app.vms._admission.memory_budget_mib == (192 - 15 - 2) * 1024 * 2


def test_disks_past_the_free_space_or_the_cap_are_refused(
    appliance: Appliance, api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    c, admin, _ = api
    before = footprint(appliance)
    cap = appliance.cfg.host.max_vm_disk_gib
    resp = c.post(
        "/api/v1/vms",
        headers=admin,
        json={"name": "huge", "spec": {"disks": [{"size_gib": cap + 1}]}},
    )
    assert (resp.status_code, resp.json()["code"]) == (409, "disk_too_large"), resp.text
    assert f"at most {cap} GiB" in resp.json()["detail"]
    monkeypatch.setattr(disks, "free_bytes", lambda _: 10 * disks.GIB)
    resp = c.post(
        "/api/v1/vms",
        headers=admin,
        json={"name": "full", "spec": {"disks": [{"image": "base.qcow2"}, {"size_gib": 10}]}},
    )
    assert (resp.status_code, resp.json()["code"]) == (409, "insufficient_disk"), resp.text
    assert "11 GiB of disk; 10 GiB are free" in resp.json()["detail"]
    assert footprint(appliance) == before


def test_a_quota_lowered_during_a_create_is_seen_in_the_rows_transaction(
    appliance: Appliance, api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    c, _, acme = api
    admission = appliance.vms._admission
    assert admission is not None
    real_admit = admission.admit

    def admit_then_lower(*args: Any) -> None:
        real_admit(*args)
        # Another writer lowers the quota after admission read the rows: the journal
        # head moves, so the row's transaction reads everything again.
        appliance.tenants.set_quotas(root_principal(appliance), "acme", QuotasUpdate(vms=0))

    monkeypatch.setattr(admission, "admit", admit_then_lower)
    before = footprint(appliance)
    resp = _create(c, acme, "late")
    assert resp.status_code == 409, resp.text
    assert resp.json()["code"] == "quota_exceeded"
    after = footprint(appliance)
    assert after["rows"] == before["rows"] and after["domains"] == before["domains"]


def test_vm_options_offer_what_the_caller_may_ask_for(appliance: Appliance, api: Api) -> None:
    c, admin, acme = api
    _quotas(c, admin, gpu_slices={"1g.10gb": 2, "5g.50gb": 1, "2g.20gb": 0})
    mine = c.get("/api/v1/tenants/acme/vm-options", headers=acme)
    assert mine.status_code == 200, mine.text
    offer = mine.json()
    assert offer["roles"] == ["b2b", "other"]
    # A profile the quota names but no GPU here offers is left out, as is one set to 0.
    assert offer["gpu_profiles"] == ["1g.10gb"]
    assert offer["numa_nodes"] == [] and offer["grants"]["pinned_cores"] == 0
    granted = c.put("/api/v1/tenants/acme/grants", headers=admin, json={"numa_node_choice": True})
    assert granted.status_code == 200, granted.text
    assert c.get("/api/v1/tenants/acme/vm-options", headers=acme).json()["numa_nodes"] == [0, 1]
    as_admin = c.get("/api/v1/tenants/acme/vm-options", headers=admin).json()
    assert as_admin["roles"] == ["vran", "upf", "b2b", "other"]
    assert c.get("/api/v1/tenants/beta/vm-options", headers=acme).status_code == 404
