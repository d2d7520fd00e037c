"""The appliance's N6 API on the real Open vSwitch backend: what apply makes, it removes."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.appliance import admin_password, api_client, built, login
from tests.support.n6host import OCTET, OWNER, TAG
from towerbox_core import subp
from upf_bridge.model import N6Config, TrunkKind

pytestmark = [pytest.mark.root, pytest.mark.ovs]


def _ports(bridge: str) -> list[str]:
    done = subp.run(["ovs-vsctl", "list-ports", bridge], timeout=30, check=False)
    return done.stdout.split()


def _bridge_exists(bridge: str) -> bool:
    return subp.run(["ovs-vsctl", "br-exists", bridge], timeout=30, check=False).returncode == 0


def test_apply_through_the_api_on_real_ovs(ovs: None, tmp_path: Path) -> None:
    appliance = built(tmp_path, TOWERBOX_N6_BACKEND="real", TOWERBOX_N6_OWNER=OWNER)
    bridge = f"n6a{TAG}"
    vnet = {
        "tenant": "acme",
        "name": "llm",
        "trunk": bridge,
        "vlan": 321,
        "subnet": f"10.{OCTET}.50.0/24",
        "gateway": f"10.{OCTET}.50.1",
        "ue_pools": [f"10.{OCTET}.60.0/24"],
    }
    try:
        with api_client(appliance) as c:
            c.headers.update(login(c, "admin", admin_password(appliance.cfg)))
            c.post("/api/v1/tenants", json={"name": "acme"})
            trunk = c.put(
                f"/api/v1/n6/trunks/{bridge}", json={"kind": "ovs", "datapath_type": "netdev"}
            )
            assert trunk.status_code == 200, trunk.text
            assert c.post("/api/v1/n6/vnets", json=vnet).status_code == 201
            applied = c.post("/api/v1/n6/apply")
            assert applied.status_code == 200, applied.text
            assert _bridge_exists(bridge)
            ports = _ports(bridge)
            assert ports, f"apply made no port on the trunk: {applied.json()}"
            tags = subp.run(["ovs-vsctl", "get", "Port", ports[0], "tag"], timeout=30).stdout
            assert tags.strip() == "321"
            assert c.post("/api/v1/n6/plan").json()["changes"]["ovs"] == []

            appliance.monitor_job()
            state = c.get("/api/v1/n6/state").json()
            assert state[0]["applied"] is True
            assert state[0]["interfaces"], "no counters for the VNet's interfaces"

            assert c.delete("/api/v1/n6/vnets/acme/llm").status_code == 204
            assert c.delete(f"/api/v1/n6/trunks/{bridge}").status_code == 204
            assert c.post("/api/v1/n6/apply").status_code == 200
            assert not _bridge_exists(bridge)
    finally:
        # Whatever a failed run left: an empty declaration removes all the backend owns.
        appliance.n6.backend(TrunkKind.OVS).apply(N6Config())
        subp.run(["ovs-vsctl", "--if-exists", "del-br", bridge], timeout=30, check=False)
        appliance.close()
