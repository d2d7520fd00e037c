"""N6 on the datapaths this host really has: real Open vSwitch, through the API.

Which datapaths work is proven by the backend on this host; the refusal and the
"datapath could not be opened" cases run where the kernel datapath is missing (a
host without the openvswitch module, such as this project's CI machines).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from appliance.context import Appliance
from tests.integration.n6.lab import Lab, sh
from tests.support.appliance import admin_password, api_client, built, login
from tests.support.n6host import NETNS_PREFIX, OCTET, OWNER, PID, RUN_KEY, TAG
from upf_bridge import naming
from upf_bridge.backends.datapaths import Datapaths
from upf_bridge.backends.ovs import OvsBackend
from upf_bridge.model import N6Config, TrunkKind

pytestmark = [pytest.mark.root, pytest.mark.ovs]

BRIDGE = f"n6d{TAG}"
MISSING_PORT = f"n6m{TAG}"  # a trunk port whose device does not exist (yet)


@pytest.fixture(scope="module")
def found(ovs: None) -> Datapaths:
    return OvsBackend(owner=f"{OWNER}-dp").datapaths()


@pytest.fixture
def node(ovs: None, tmp_path: Path) -> Iterator[tuple[Appliance, TestClient[Any], Lab]]:
    appliance = built(tmp_path, TOWERBOX_N6_BACKEND="real", TOWERBOX_N6_OWNER=OWNER)
    lab = Lab(NETNS_PREFIX, tmp_path, f"{RUN_KEY}={PID}")
    try:
        with api_client(appliance) as client:
            client.headers.update(login(client, "admin", admin_password(appliance.cfg)))
            assert client.post("/api/v1/tenants", json={"name": "acme"}).status_code == 201
            yield appliance, client, lab
    finally:
        # Whatever a failed test left: an empty declaration removes all the backend owns.
        appliance.n6.backend(TrunkKind.OVS).apply(N6Config())
        sh("ovs-vsctl", "--if-exists", "del-br", BRIDGE, check=False)
        lab.close()
        appliance.close()


def _vnet(trunk: str = BRIDGE) -> dict[str, Any]:
    return {
        "tenant": "acme",
        "name": "llm",
        "trunk": trunk,
        "vlan": 321,
        "subnet": f"10.{OCTET}.70.0/24",
        "gateway": f"10.{OCTET}.70.1",
    }


def _datapath_of(bridge: str) -> str:
    return sh("ovs-vsctl", "get", "Bridge", bridge, "datapath_type").strip().strip('"')


def _bridge_exists(bridge: str) -> bool:
    return sh("ovs-vsctl", "list-br").split().count(bridge) == 1


def _journal(client: TestClient[Any], kind: str) -> list[dict[str, Any]]:
    entries = client.get(f"/api/v1/journal?limit=1000&kind={kind}").json()["entries"]
    return [e for e in entries if e["kind"] == kind]


def _without_kernel_datapath(found: Datapaths) -> None:
    if "system" in found.usable:
        pytest.skip("this host runs the kernel OVS datapath: nothing here refuses it")


def test_the_probe_matches_the_host(found: Datapaths) -> None:
    # The userspace datapath needs nothing from the kernel but tun; the kernel one
    # needs the openvswitch module, which shows in /sys/module when it is loaded.
    assert "netdev" in found.usable
    assert ("system" in found.usable) == Path("/sys/module/openvswitch").is_dir()
    assert found.preferred == ("system" if "system" in found.usable else "netdev")


def test_a_trunk_gets_the_datapath_this_host_runs_and_healthz_says_which(
    node: tuple[Appliance, TestClient[Any], Lab], found: Datapaths
) -> None:
    _, client, _ = node
    health = client.get("/healthz").json()["backends"]["n6"]
    assert health["ovs_datapaths"]["auto"] == found.preferred
    assert health["ovs_datapaths"]["usable"] == list(found.usable)
    assert health["ovs_datapaths"]["simulated"] is False
    assert any(f"datapath {found.preferred}" in line for line in health["summary"])
    declared = client.put(f"/api/v1/n6/trunks/{BRIDGE}", json={"kind": "ovs"})
    assert declared.status_code == 200, declared.text
    assert client.post("/api/v1/n6/vnets", json=_vnet()).status_code == 201
    applied = client.post("/api/v1/n6/apply")
    assert applied.status_code == 200, applied.text
    assert _datapath_of(BRIDGE) == found.preferred
    status = client.get("/api/v1/n6/status").json()
    assert status["last_apply"]["ok"] is True
    assert status["last_apply"]["changes"] == applied.json()["changes"]
    done = _journal(client, "n6.applied")
    assert done and done[-1]["seq"] == status["last_apply"]["journal_seq"]


def test_a_kernel_datapath_trunk_is_refused_where_the_kernel_has_none(
    node: tuple[Appliance, TestClient[Any], Lab], found: Datapaths
) -> None:
    _without_kernel_datapath(found)
    _, client, _ = node
    before = client.get("/api/v1/journal?limit=1000").json()["entries"]
    refused = client.put(
        f"/api/v1/n6/trunks/{BRIDGE}", json={"kind": "ovs", "datapath_type": "system"}
    )
    assert refused.status_code == 409, refused.text
    problem = refused.json()
    assert problem["code"] == "datapath_unavailable"
    assert problem["usable"] == ["netdev"]
    assert "kernel datapath (system) is not available" in problem["detail"]
    assert client.get("/api/v1/n6/trunks").json() == []
    assert client.get("/api/v1/journal?limit=1000").json()["entries"] == before
    assert not _bridge_exists(BRIDGE)


def test_an_apply_fails_with_the_cause_ovs_reports_and_is_journalled(
    node: tuple[Appliance, TestClient[Any], Lab],
) -> None:
    _, client, lab = node
    trunk = {"kind": "ovs", "ports": [MISSING_PORT]}
    assert client.put(f"/api/v1/n6/trunks/{BRIDGE}", json=trunk).status_code == 200
    assert client.post("/api/v1/n6/vnets", json=_vnet()).status_code == 201
    failed = client.post("/api/v1/n6/apply")
    assert failed.status_code == 502, failed.text
    problem = failed.json()
    assert problem["code"] == "ovs_interface_error"
    assert problem["interface"] == MISSING_PORT
    cause = f"could not open network device {MISSING_PORT} (No such device)"
    assert problem["ovs_error"] == cause
    assert cause in problem["detail"]
    assert not _bridge_exists(BRIDGE), "the failed apply was not undone"

    entry = _journal(client, "n6.apply_failed")[-1]
    assert (entry["state"]["code"], entry["state"]["ovs_error"]) == ("ovs_interface_error", cause)
    last = client.get("/api/v1/n6/status").json()["last_apply"]
    assert (last["ok"], last["code"], last["journal_seq"]) == (
        False,
        "ovs_interface_error",
        entry["seq"],
    )
    assert cause in last["message"]

    # With the NIC there, the same declaration applies.
    lab.veth(MISSING_PORT, f"n6p{TAG}")
    applied = client.post("/api/v1/n6/apply")
    assert applied.status_code == 200, applied.text
    assert MISSING_PORT in sh("ovs-vsctl", "list-ports", BRIDGE).split()
    assert client.get("/api/v1/n6/status").json()["last_apply"]["ok"] is True


def test_ports_on_a_kernel_datapath_bridge_fail_with_the_datapath_as_cause(
    node: tuple[Appliance, TestClient[Any], Lab], found: Datapaths
) -> None:
    _without_kernel_datapath(found)
    _, client, lab = node
    # The operator's bridge, made on the kernel datapath before Towerbox ran here.
    sh(
        "ovs-vsctl", "add-br", BRIDGE, "--", "set", "bridge", BRIDGE, "datapath_type=system",
        f"external_ids:{lab.run_marker}",
    )  # fmt: skip
    lab.bridges.append(BRIDGE)
    assert client.put(f"/api/v1/n6/trunks/{BRIDGE}", json={"kind": "ovs"}).status_code == 200
    assert client.post("/api/v1/n6/vnets", json=_vnet()).status_code == 201
    failed = client.post("/api/v1/n6/apply")
    assert failed.status_code == 502, failed.text
    problem = failed.json()
    assert problem["code"] == "ovs_interface_error"
    assert problem["ovs_error"].startswith("failed to open datapath of type system")
    assert sh("ovs-vsctl", "list-ports", BRIDGE).split() == [], "the failed apply was not undone"


def test_another_processs_datapath_probe_is_not_n6_state(
    node: tuple[Appliance, TestClient[Any], Lab],
) -> None:
    """A second appliance or ``towerbox n6`` starting on the host probes the datapaths
    with a throwaway bridge of the same owner: an apply meanwhile must neither call it
    drift nor count it against its rollback."""
    _, client, _ = node
    assert client.put(f"/api/v1/n6/trunks/{BRIDGE}", json={"kind": "ovs"}).status_code == 200
    assert client.post("/api/v1/n6/apply").status_code == 200
    probe = f"{naming.PREFIX}dp{(os.getpid() + 1) % 100000:05d}"
    sh(
        "ovs-vsctl",
        "add-br",
        probe,
        "--",
        "set",
        "Bridge",
        probe,
        "datapath_type=netdev",
        f"external_ids:{naming.OWNER_KEY}={OWNER}",
    )
    try:
        plan = client.post("/api/v1/n6/plan")
        assert plan.status_code == 200, plan.text
        assert probe not in plan.text
        again = client.post("/api/v1/n6/apply")
        assert again.status_code == 200, again.text
        assert _bridge_exists(probe)  # not removed as drift: its own probe deletes it
    finally:
        sh("ovs-vsctl", "--if-exists", "del-br", probe, check=False)
