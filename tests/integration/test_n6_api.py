"""N6 through the appliance API: declare, plan, apply, attach VMs, refuse bad input.

The network backend here is the simulated one (it changes nothing on the host); the
real Open vSwitch and Linux backends are exercised with traffic in tests/integration/n6.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import libvirt
import pytest
from litestar.testing import TestClient

from appliance.context import Appliance
from appliance.store.models import Vm
from tests.support.appliance import admin_password, api_client, built, login
from tests.unit.n6.test_eupf import eupf_url  # noqa: F401 - the stand-in eUPF fixture

ACME = {
    "tenant": "acme",
    "name": "llm",
    "trunk": "br-n6",
    "vlan": 100,
    "subnet": "10.100.0.0/24",
    "gateway": "10.100.0.1",
    "ue_pools": ["10.45.0.0/16"],
    "dnns": ["acme.robots"],
}
BETA = {
    "tenant": "beta",
    "name": "cams",
    "trunk": "br-n6",
    "vlan": 200,
    "subnet": "10.200.0.0/24",
    "gateway": "10.200.0.1",
    "ue_pools": ["10.46.0.0/16"],
    "dnns": ["beta.cams"],
}
PASSWORD = "long-enough-password"


@pytest.fixture
def appliance(tmp_path: Path) -> Iterator[Appliance]:
    app = built(tmp_path, TOWERBOX_N6_BACKEND="simulated")
    yield app
    root = app.auth.authenticate(app.cfg.cli_token_file.read_text().strip())
    for vm in Vm.select():
        app.vms.delete(root, vm.name)
    app.close()


@pytest.fixture
def client(appliance: Appliance) -> Iterator[TestClient[Any]]:
    with api_client(appliance) as c:
        c.headers.update(login(c, "admin", admin_password(appliance.cfg)))
        for tenant in ("acme", "beta"):
            c.post("/api/v1/tenants", json={"name": tenant})
            c.post(
                "/api/v1/users",
                json={
                    "username": f"{tenant}-admin",
                    "password": PASSWORD,
                    "role": "tenant-admin",
                    "tenant": tenant,
                },
            )
        assert (
            c.put("/api/v1/n6/trunks/br-n6", json={"kind": "ovs", "ports": ["ens2f0"]}).status_code
            == 200
        )
        yield c


def _declare(client: TestClient[Any]) -> None:
    for body in (ACME, BETA):
        resp = client.post("/api/v1/n6/vnets", json=body)
        assert resp.status_code == 201, resp.text


def test_declare_plan_apply_and_state(client: TestClient[Any]) -> None:
    _declare(client)
    plan = client.post("/api/v1/n6/plan").json()["changes"]["ovs"]
    assert plan and all(line.startswith("+") for line in plan)
    applied = client.post("/api/v1/n6/apply").json()["changes"]["ovs"]
    assert applied == plan
    assert client.post("/api/v1/n6/plan").json()["changes"]["ovs"] == []
    assert client.post("/api/v1/n6/apply").json()["changes"]["ovs"] == []  # re-apply: no-op
    state = {s["vnet"]: s for s in client.get("/api/v1/n6/state").json()}
    assert state["acme/llm"]["applied"] is True
    assert state["acme/llm"]["vlan"] == 100

    moved = client.patch("/api/v1/n6/vnets/acme/llm", json={"vlan": 101})
    assert moved.status_code == 200, moved.text
    change = client.post("/api/v1/n6/plan").json()["changes"]["ovs"]
    assert change and any("101" in line for line in change)
    client.post("/api/v1/n6/apply")

    health = client.get("/healthz").json()["backends"]["n6"]["summary"]
    assert health == ["N6 backend: simulated ovs (no host network changes)"]
    upf = client.get("/api/v1/n6/upf-config").text
    assert "10.45.0.0/16" in upf and "acme.robots" in upf
    assert client.delete("/api/v1/n6/vnets/beta/cams").status_code == 204
    gone = client.post("/api/v1/n6/plan").json()["changes"]["ovs"]
    assert any(line.startswith("-") for line in gone)
    assert not any(line.startswith("+") for line in gone)
    kinds = [e["kind"] for e in client.get("/api/v1/journal?limit=1000").json()["entries"]]
    for kind in ("n6.trunk_declared", "n6.vnet_declared", "n6.applied", "n6.vnet_removed"):
        assert kind in kinds


GAMMA = {
    "tenant": "acme",
    "name": "other",
    "trunk": "br-n6",
    "vlan": 300,
    "subnet": "10.130.0.0/24",
    "gateway": "10.130.0.1",
    "ue_pools": ["10.47.0.0/16"],
}


@pytest.mark.parametrize(
    ("change", "status", "code"),
    [
        ({"vlan": 0}, 422, "invalid_vlan"),
        ({"vlan": 4095}, 422, "invalid_vlan"),
        ({"vlan": "abc"}, 422, "invalid_vlan"),
        ({"tenant": "beta", "vlan": 100}, 409, "vlan_taken"),
        ({"ue_pools": ["10.45.128.0/17"]}, 409, "ue_pool_overlap"),
        ({"gateway": "10.9.9.9"}, 422, "gateway_outside_subnet"),
        ({"name": "bad/name"}, 422, "invalid_name"),
        ({"trunk": "br-nope"}, 422, "unknown_trunk"),
        ({"surprise": 1}, 422, "unknown_field"),
        ({"tenant": "ghost", "vlan": 301}, 422, "unknown_tenant"),
    ],
)
def test_bad_vnets_are_refused_and_nothing_changes(
    client: TestClient[Any], change: dict[str, Any], status: int, code: str
) -> None:
    _declare(client)
    before = client.get("/api/v1/n6/vnets").json()
    resp = client.post("/api/v1/n6/vnets", json={**GAMMA, **change})
    assert resp.headers["content-type"].startswith("application/problem+json")
    assert (resp.status_code, resp.json()["code"]) == (status, code), resp.text
    assert resp.json()["detail"]
    assert client.get("/api/v1/n6/vnets").json() == before


@pytest.mark.parametrize(
    ("name", "body"),
    [
        ("br-n6-far-too-long", {"kind": "ovs"}),
        ("br;n6", {"kind": "ovs"}),
        ("br-x", {"kind": "ovs", "ports": ["ens2f0 up"]}),
        ("br-x", {"kind": "ovs", "ports": ["a-port-name-too-long"]}),
    ],
)
def test_bad_interface_names_are_refused(
    client: TestClient[Any], name: str, body: dict[str, Any]
) -> None:
    before = client.get("/api/v1/n6/trunks").json()
    resp = client.put(f"/api/v1/n6/trunks/{name}", json=body)
    assert resp.status_code == 422, resp.text
    assert resp.json()["code"] == "invalid_interface_name"
    assert client.get("/api/v1/n6/trunks").json() == before


def test_vms_attach_by_vnet_name(client: TestClient[Any], appliance: Appliance) -> None:
    _declare(client)
    nic = {"nics": [{"kind": "vnet", "vnet": "acme/llm"}]}
    early = client.post("/api/v1/vms", json={"name": "early", "appliance": "demo", "spec": nic})
    assert early.json()["code"] == "vnet_not_applied"
    client.post("/api/v1/n6/apply")
    made = client.post("/api/v1/vms", json={"name": "llm1", "appliance": "demo", "spec": nic})
    assert made.status_code == 201, made.text
    conn = libvirt.open("test:///default")
    xml = conn.lookupByUUIDString(made.json()["id"]).XMLDesc()
    conn.close()
    assert "<source bridge='br-n6'/>" in xml
    assert "<tag id='100'/>" in xml
    assert "openvswitch" in xml

    with api_client(appliance) as other:
        acme = login(other, "acme-admin", PASSWORD)
        mine = other.post(
            "/api/v1/vms",
            headers=acme,
            json={
                "name": "llm2",
                "appliance": "demo",
                "spec": {"role": "b2b", "nics": [{"kind": "vnet", "vnet": "llm"}]},
            },
        )
        assert mine.status_code == 201, mine.text
        theirs = other.post(
            "/api/v1/vms",
            headers=acme,
            json={
                "name": "spy",
                "appliance": "demo",
                "spec": {"role": "b2b", "nics": [{"kind": "vnet", "vnet": "beta/cams"}]},
            },
        )
        assert theirs.json()["code"] == "vnet_not_found"
        assert [v["name"] for v in other.get("/api/v1/n6/vnets", headers=acme).json()] == ["llm"]
        assert other.post("/api/v1/n6/vnets", headers=acme, json=ACME).status_code == 403
        assert other.get("/api/v1/n6/trunks", headers=acme).status_code == 403
        state = other.get("/api/v1/n6/state", headers=acme).json()
        assert state[0]["attached_vms"] == ["llm1", "llm2"]

    moved = client.patch("/api/v1/n6/vnets/acme/llm", json={"vlan": 102})
    assert (moved.status_code, moved.json()["code"]) == (409, "vnet_in_use")
    assert client.patch("/api/v1/n6/vnets/acme/llm", json={"dnns": ["x"]}).status_code == 200
    busy = client.delete("/api/v1/n6/vnets/acme/llm")
    assert busy.status_code == 409
    assert busy.json()["code"] == "vnet_in_use"
    assert client.delete("/api/v1/n6/trunks/br-n6").json()["code"] == "trunk_in_use"


def test_pfcp_sessions_from_the_eupf(tmp_path: Path, eupf_url: str) -> None:  # noqa: F811
    app = built(tmp_path, TOWERBOX_N6_BACKEND="simulated", TOWERBOX_N6_EUPF_URL=eupf_url)
    try:
        with api_client(app) as c:
            c.headers.update(login(c, "admin", admin_password(app.cfg)))
            c.post("/api/v1/tenants", json={"name": "acme"})
            c.put("/api/v1/n6/trunks/br-n6", json={"kind": "ovs"})
            c.post("/api/v1/n6/vnets", json=ACME)
            c.post("/api/v1/n6/apply")
            sessions = c.get("/api/v1/n6/sessions").json()
            assert sorted(s["imsi"] for s in sessions["acme/llm"]) == [
                "001010000000001",
                "001010000000002",
            ]
            assert sessions["acme/llm"][0]["ue_addresses"] == ["10.45.1.7"]
    finally:
        app.close()


def test_sessions_without_an_eupf(client: TestClient[Any]) -> None:
    resp = client.get("/api/v1/n6/sessions")
    assert (resp.status_code, resp.json()["code"]) == (409, "eupf_not_configured")
