"""The ``tenants`` desired-state kind through the appliance's API: tenants with their
labels, quotas, grants and VNets; the same refusals as the tenant routes, leaving
nothing changed; the conflict rule; conservative removal; the journal's actor."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from appliance.context import Appliance
from appliance.store.models import Tenant, TenantPolicy
from tests.support.appliance import admin_password, api_client, built, login
from tests.support.desired import ACME, VNET

AGENT = {"user": "sync-agent", "token": "edge"}


@pytest.fixture
def appliance(tmp_path: Path) -> Iterator[Appliance]:
    app = built(tmp_path, TOWERBOX_GPU_BACKEND="simulated", TOWERBOX_N6_BACKEND="simulated")
    yield app
    app.close()


@pytest.fixture
def admin(appliance: Appliance) -> Iterator[TestClient[Any]]:
    with api_client(appliance) as c:
        c.headers.update(login(c, "admin", admin_password(appliance.cfg)))
        assert c.put("/api/v1/n6/trunks/br-n6", json={"kind": "ovs"}).status_code == 200
        yield c


@pytest.fixture
def agent(admin: TestClient[Any]) -> dict[str, str]:
    resp = admin.post("/api/v1/sync/agent-token", json={"name": "edge"})
    return {"Authorization": f"Bearer {resp.json()['token']}"}


def _post(c: TestClient[Any], agent: dict[str, str], kind: str, version: int, document: Any) -> Any:
    body = {
        "kind": kind,
        "etag": f'"{kind}-{version}"',
        "version": version,
        "source": "site",
        "document": document,
    }
    return c.post(f"/api/v1/desired/{kind}", headers=agent, json=body)


def _journal(c: TestClient[Any], prefix: str = "") -> list[dict[str, Any]]:
    entries = c.get("/api/v1/journal", params={"limit": 1000}).json()["entries"]
    return [e for e in entries if e["kind"].startswith(prefix)]


def _snapshot(c: TestClient[Any]) -> Any:
    return (
        c.get("/api/v1/tenants").json(),
        c.get("/api/v1/n6/vnets").json(),
        TenantPolicy.select().count(),
    )


def test_a_tenants_document_makes_tenants_with_their_vnets(
    admin: TestClient[Any], agent: dict[str, str]
) -> None:
    start = admin.get("/api/v1/journal").json()["head"]
    resp = _post(admin, agent, "tenants", 1, {"tenants": {"acme": ACME, "beta": {}}})
    assert resp.status_code == 200, resp.text
    answer = resp.json()
    assert answer["result"] == "applied" and answer["kept"] == []
    assert answer["changed"] == ["tenant:acme", "tenant:beta", "vnet:acme/llm"]
    detail = admin.get("/api/v1/tenants/acme").json()
    assert (detail["description"], detail["labels"]) == ("ACME AI", {"tier": "gold"})
    assert (detail["quotas_source"], detail["quotas"]["vcpus"]) == ("set", 16)
    assert detail["grants"]["hugepages"] == {"1G": 8192}
    assert admin.get("/api/v1/tenants/beta").json()["quotas_source"] == "defaults"
    assert {"name": "acme", "description": "ACME AI", "labels": {"tier": "gold"}} in admin.get(
        "/api/v1/tenants"
    ).json()
    assert admin.get("/api/v1/n6/vnets/acme/llm").json()["vlan"] == 100
    assert admin.post("/api/v1/n6/plan").json() == {"changes": {"ovs": []}}  # applied
    # Every entry the apply wrote names the agent that handed it over and the job.
    written = [e for e in _journal(admin) if e["seq"] > start]
    kinds = {e["kind"] for e in written}
    assert kinds >= {"tenant.created", "tenant.quotas", "n6.vnet_declared", "n6.applied"}
    assert all(e["actor"] == {**AGENT, "job": "desired:tenants"} for e in written), written
    # A resend: the same answer, nothing journalled.
    head = admin.get("/api/v1/journal").json()["head"]
    again = _post(admin, agent, "tenants", 1, {"tenants": {"acme": ACME, "beta": {}}})
    assert again.json()["unchanged"] is True
    assert admin.get("/api/v1/journal").json()["head"] == head


def test_a_vnets_document_may_name_a_tenant_from_a_tenants_document(
    admin: TestClient[Any], agent: dict[str, str]
) -> None:
    vnets = {"vnets": [{**VNET, "tenant": "acme"}]}
    # Before the tenant came down: refused, and the same ETag is tried again later.
    early = _post(admin, agent, "vnets", 1, vnets)
    assert (early.status_code, early.json()["code"]) == (422, "unknown_tenant")
    assert _post(admin, agent, "tenants", 1, {"tenants": {"acme": {}}}).status_code == 200
    late = _post(admin, agent, "vnets", 1, vnets)
    assert late.status_code == 200, late.text
    assert late.json()["changed"] == ["acme/llm"]
    assert _journal(admin, "desired.applied")[-1]["actor"] == {**AGENT, "job": "desired:vnets"}
    # One VNet, one declaring document.
    twice = _post(admin, agent, "tenants", 2, {"tenants": {"acme": {"vnets": [VNET]}}})
    assert (twice.status_code, twice.json()["code"]) == (409, "vnet_declared_twice")


@pytest.mark.parametrize(
    ("tenant", "status", "code", "field"),
    [
        ({"quotas": {"vcpus": -5}}, 422, "invalid_quota", "tenants.acme.quotas.vcpus"),
        ({"quotas": {"vms": 10**12}}, 422, "invalid_quota", "tenants.acme.quotas.vms"),
        ({"quotas": {"gpu_slices": {"big": 1}}}, 422, "invalid_quota", None),
        ({"grants": {"pinned_cores": -3}}, 422, "invalid_grant", None),
        (
            {"grants": {"pci_devices": ["0000:17:00.0"]}},
            422,
            "gpu_service_device",
            "tenants.acme.grants.pci_devices[0]",
        ),
        ({"grants": {"pci_devices": ["0000:99:00.0"]}}, 422, "unknown_pci_device", None),
        ({"grants": {"sriov_pfs": {"nope0": 2}}}, 422, "unknown_sriov_pf", None),
        ({"quotas": {"surprise": 1}}, 422, "invalid_desired_document", None),
        ({"owner": "x"}, 422, "invalid_desired_document", None),
        ({"labels": {"tier": "no spaces"}}, 422, "invalid_name", None),
        ({"vnets": [{**VNET, "vlan": 5000}]}, 422, None, None),
        ({"vnets": [{**VNET, "tenant": "beta"}]}, 422, "vnet_tenant_mismatch", None),
    ],
)
def test_a_bad_document_is_refused_and_changes_nothing(
    admin: TestClient[Any],
    agent: dict[str, str],
    tenant: dict[str, Any],
    status: int,
    code: str | None,
    field: str | None,
) -> None:
    before = _snapshot(admin)
    # A good tenant beside the bad one is not made either.
    resp = _post(admin, agent, "tenants", 1, {"tenants": {"acme": tenant, "good": ACME}})
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    problem = resp.json()
    assert code is None or problem["code"] == code
    assert field is None or problem["field"] == field
    assert _snapshot(admin) == before
    [rejected] = _journal(admin, "desired.rejected")
    assert rejected["state"]["reason"]["code"] == problem["code"]
    assert rejected["actor"] == {**AGENT, "job": "desired:tenants"}
    assert not _journal(admin, "tenant.")


def test_a_tenant_name_outside_the_grammar_is_refused(
    admin: TestClient[Any], agent: dict[str, str]
) -> None:
    bad = _post(admin, agent, "tenants", 1, {"tenants": {"not valid": {}}})
    assert (bad.status_code, bad.json()["code"]) == (422, "invalid_name")
    assert Tenant.select().count() == 0


def test_local_changes_follow_the_conflict_rule(
    admin: TestClient[Any], agent: dict[str, str]
) -> None:
    assert _post(admin, agent, "tenants", 1, {"tenants": {"acme": ACME}}).status_code == 200
    admin.put("/api/v1/tenants/acme/quotas", json={"vcpus": 99})
    answer = _post(admin, agent, "tenants", 2, {"tenants": {"acme": ACME}}).json()
    assert answer["conflicts"] == [{"object_id": "tenant:acme", "resolution": "central"}]
    assert admin.get("/api/v1/tenants/acme").json()["quotas"]["vcpus"] == 16
    admin.put(
        "/api/v1/desired/tenants/overrides",
        json={"object_id": "tenant:acme", "local_override": True},
    )
    admin.put("/api/v1/tenants/acme/quotas", json={"vcpus": 99})
    changed = {**ACME, "labels": {"tier": "silver"}}
    answer = _post(admin, agent, "tenants", 3, {"tenants": {"acme": changed}}).json()
    assert answer["conflicts"] == [{"object_id": "tenant:acme", "resolution": "local_override"}]
    assert admin.get("/api/v1/tenants/acme").json()["quotas"]["vcpus"] == 99


def test_a_dropped_tenant_goes_only_when_the_registry_made_it_and_it_owns_nothing(
    admin: TestClient[Any], agent: dict[str, str]
) -> None:
    assert admin.post("/api/v1/tenants", json={"name": "local"}).status_code == 201
    doc = {"tenants": {"acme": ACME, "empty": {}, "staffed": {}, "local": {"labels": {"a": "b"}}}}
    assert _post(admin, agent, "tenants", 1, doc).status_code == 200
    assert admin.get("/api/v1/tenants/local").json()["labels"] == {"a": "b"}
    user = {"username": "ann", "password": "a-long-passphrase-1", "role": "tenant-user"}
    assert admin.post("/api/v1/users", json={**user, "tenant": "staffed"}).status_code == 201
    # acme goes with its VNet (the document declared both); empty goes; staffed has a
    # user and local was made on this node: both stay, with the reason.
    resp = _post(admin, agent, "tenants", 2, {"tenants": {}})
    assert resp.status_code == 200, resp.text
    answer = resp.json()
    assert answer["changed"] == ["tenant:acme", "tenant:empty", "vnet:acme/llm"]
    assert [k["object_id"] for k in answer["kept"]] == ["tenant:local", "tenant:staffed"]
    assert answer["kept"][1]["reason"] == "still owns 1 user"
    names = [t["name"] for t in admin.get("/api/v1/tenants").json()]
    assert names == ["local", "staffed"]
    assert admin.get("/api/v1/n6/vnets").json() == []
    assert _journal(admin, "tenant.deleted")[-1]["object_id"] in ("acme", "empty")
    # Once the user is gone, the next version removes the tenant it kept.
    assert admin.delete("/api/v1/users/ann").status_code == 204
    later = _post(admin, agent, "tenants", 3, {"tenants": {}}).json()
    assert later["changed"] == ["tenant:staffed"]
    assert [t["name"] for t in admin.get("/api/v1/tenants").json()] == ["local"]
