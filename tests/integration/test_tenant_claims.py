"""A tenant's process claims of MIG slices: made by its own users, counted against its
process-claim and GPU quotas under the layout lock, seen and released by it alone."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from appliance.context import Appliance
from tests.support.appliance import login
from tests.support.tenancy import PASSWORD, clients, tenant_node

Api = tuple[TestClient[Any], dict[str, str], dict[str, str]]
FOUR_SMALL = {"counts": {"1g.10gb": 4}}


@pytest.fixture
def appliance(tmp_path: Path) -> Iterator[Appliance]:
    yield from tenant_node(tmp_path)


@pytest.fixture
def api(appliance: Appliance) -> Iterator[Api]:
    for c, admin, acme in clients(appliance):
        gpu = c.get("/api/v1/gpus", headers=admin).json()["gpus"][0]["uuid"]
        assert (
            c.post(f"/api/v1/gpus/{gpu}/apply", headers=admin, json=FOUR_SMALL).status_code == 200
        )
        yield c, admin, acme


def _claim(c: TestClient[Any], headers: dict[str, str], name: str, **body: Any) -> Any:
    return c.post("/api/v1/gpus/claims", headers=headers, json={"name": name, **body})


def _owners(c: TestClient[Any], headers: dict[str, str]) -> list[str]:
    resp = c.get("/api/v1/gpus/claims", headers=headers)
    assert resp.status_code == 200, resp.text
    return sorted(claim["owner"] for claim in resp.json())


def _allow(c: TestClient[Any], admin: dict[str, str], claims: int, slices: int) -> None:
    quotas = {
        "process_claims": claims,
        "gpu_slices": {"1g.10gb": slices},
        "gpu_compute_slices": slices,
    }
    assert c.put("/api/v1/tenants/acme/quotas", headers=admin, json=quotas).status_code == 200


def test_a_tenant_claims_within_its_quotas_and_sees_only_its_own(api: Api) -> None:
    c, admin, acme = api
    refused = _claim(c, acme, "vllm", profile="1g.10gb")
    assert refused.status_code == 409, refused.text
    assert (refused.json()["code"], refused.json()["quota"]) == ("quota_exceeded", "process_claims")
    assert _owners(c, admin) == []

    _allow(c, admin, claims=3, slices=1)
    made = _claim(c, acme, "vllm", profile="1g.10gb")
    assert made.status_code == 201, made.text
    assert made.json()["owner"] == "process:acme/vllm"
    assert made.json()["env"] == {"CUDA_VISIBLE_DEVICES": made.json()["mig_uuid"]}
    # Any profile: the slice it would take is counted like a named one.
    second = _claim(c, acme, "embed")
    assert second.status_code == 409
    assert second.json()["quota"] == "gpu_slices.1g.10gb"
    usage = c.get("/api/v1/tenants/acme", headers=acme).json()["usage"]
    assert (usage["process_claims"], usage["gpu_slices"], usage["gpu_compute_slices"]) == (
        1,
        {"1g.10gb": 1},
        1,
    )

    # The operator's own claims are not the tenant's, and the tenant cannot see them.
    assert _claim(c, admin, "ops", profile="1g.10gb").status_code == 201
    assert _owners(c, admin) == ["process:acme/vllm", "process:ops"]
    assert _owners(c, acme) == ["process:acme/vllm"]
    beta = login(c, "beta-admin", PASSWORD)
    assert _owners(c, beta) == []
    # Another tenant's claim looks like one that does not exist.
    assert c.delete("/api/v1/gpus/claims/vllm", headers=beta).json()["code"] == "claim_not_found"
    other = _claim(c, acme, "x", profile="1g.10gb", tenant="beta")
    assert (other.status_code, other.json()["code"]) == (404, "tenant_not_found")
    assert _owners(c, acme) == ["process:acme/vllm"]

    assert c.delete("/api/v1/gpus/claims/vllm", headers=acme).status_code == 204
    usage = c.get("/api/v1/tenants/acme", headers=acme).json()["usage"]
    assert (usage["process_claims"], usage["gpu_slices"]) == (0, {})


def test_tenant_claims_take_b2b_slices_only(api: Api) -> None:
    c, admin, acme = api
    _allow(c, admin, claims=3, slices=3)
    resp = _claim(c, acme, "du", profile="1g.10gb", role="vran")
    assert (resp.status_code, resp.json()["code"]) == (403, "infra_admin_required")
    viewer = {"username": "acme-view", "password": PASSWORD, "role": "viewer", "tenant": "acme"}
    assert c.post("/api/v1/users", headers=admin, json=viewer).status_code == 201
    looker = login(c, "acme-view", PASSWORD)
    assert _claim(c, looker, "peek").json()["code"] == "read_only_role"
    assert _owners(c, admin) == []


def test_an_infra_admin_claims_and_releases_for_a_tenant(appliance: Appliance, api: Api) -> None:
    c, admin, acme = api
    _allow(c, admin, claims=1, slices=1)
    made = _claim(c, admin, "batch", profile="1g.10gb", tenant="acme")
    assert made.status_code == 201, made.text
    assert made.json()["owner"] == "process:acme/batch"
    # It counts against the tenant like the tenant's own.
    assert _claim(c, acme, "more", profile="1g.10gb").json()["code"] == "quota_exceeded"
    assert appliance.tenants.holdings("acme") == ["1 VNet", "1 user", "1 process claim"]
    unknown = _claim(c, admin, "x", profile="1g.10gb", tenant="nope")
    assert (unknown.status_code, unknown.json()["code"]) == (404, "tenant_not_found")
    gone = c.delete("/api/v1/gpus/claims/batch", headers=admin, params={"tenant": "acme"})
    assert gone.status_code == 204, gone.text
    assert _owners(c, acme) == []


def test_concurrent_claims_never_pass_the_quota(api: Api) -> None:
    c, admin, acme = api
    _allow(c, admin, claims=2, slices=4)
    barrier = threading.Barrier(4)
    codes: list[int] = []

    def claim(i: int) -> None:
        barrier.wait()
        codes.append(_claim(c, acme, f"race{i}", profile="1g.10gb").status_code)

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(codes) == [201, 201, 409, 409]
    assert len(_owners(c, acme)) == 2
