"""VNet metrics after real traffic on the real Open vSwitch backend: a host on the
VNet's VLAN talks to its gateway, and the VNet's N6 byte and packet counters on
/metrics rise by what the switch's ports counted."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.integration.n6.lab import Lab
from tests.support.appliance import admin_client, built
from tests.support.n6host import NETNS_PREFIX, OCTET, OWNER, PID, RUN_KEY, TAG
from tests.support.populated import ok, scrape, value
from towerbox_core import subp
from upf_bridge.model import N6Config, TrunkKind

pytestmark = [pytest.mark.root, pytest.mark.ovs]

VLAN = 322
COUNTERS = ("receive_bytes", "transmit_bytes", "receive_packets", "transmit_packets")


def _link_stats(name: str) -> dict[str, int]:
    [link] = json.loads(subp.run(["ip", "-j", "-s", "link", "show", name], timeout=10).stdout)
    rx, tx = link["stats64"]["rx"], link["stats64"]["tx"]
    return {
        "rx_packets": rx["packets"],
        "tx_packets": tx["packets"],
        "rx_bytes": rx["bytes"],
        "tx_bytes": tx["bytes"],
    }


def test_vnet_counters_follow_real_traffic(ovs: None, tmp_path: Path) -> None:
    appliance = built(tmp_path, TOWERBOX_N6_BACKEND="real", TOWERBOX_N6_OWNER=OWNER)
    bridge = f"n6m{TAG}"
    gateway = f"10.{OCTET}.70.1"
    vnet = {
        "tenant": "acme",
        "name": "llm",
        "trunk": bridge,
        "vlan": VLAN,
        "subnet": f"10.{OCTET}.70.0/24",
        "gateway": gateway,
        "ue_pools": [f"10.{OCTET}.71.0/24"],
    }
    lab = Lab(f"{NETNS_PREFIX}-m", tmp_path, f"{RUN_KEY}={PID}")
    try:
        with admin_client(appliance) as c:
            ok(c.post("/api/v1/tenants", json={"name": "acme"}), 201)
            trunk = {"kind": "ovs", "datapath_type": "netdev"}
            ok(c.put(f"/api/v1/n6/trunks/{bridge}", json=trunk))
            ok(c.post("/api/v1/n6/vnets", json=vnet), 201)
            ok(c.post("/api/v1/n6/apply"))
            labels = {"tenant": "acme", "vnet": "llm"}

            def counters() -> dict[str, float]:
                appliance.monitor_job()
                m = scrape(c, {})
                return {n: value(m, f"towerbox_vnet_{n}_total", **labels) for n in COUNTERS}

            before = counters()
            # A host on the VNet's VLAN, as a VM's NIC would be: a port with its tag.
            host = lab.netns("m")
            lab.veth(f"n6m{TAG}h", "eth0", host)
            lab.ovs_port(bridge, f"n6m{TAG}h", f"tag={VLAN}")
            lab.ip(host, "addr", "add", f"10.{OCTET}.70.2/24", "dev", "eth0")
            # Five datagrams to the gateway (its host answers with ARP and ICMP).
            for _ in range(5):
                lab.send(host, f"10.{OCTET}.70.2", gateway, timeout=0.2)
            # Read before the sweep: whatever the port counts later is only more.
            port = _link_stats(f"n6m{TAG}h")
            after = counters()
            assert port["rx_packets"] >= 5, port  # what the switch got from the host
            rose = {n: after[n] - before[n] for n in COUNTERS}
            # The host's port is one of the VNet's N6 interfaces (the gateway port the
            # other): all it counted since it was added is in the VNet's rise.
            assert rose["receive_packets"] >= port["rx_packets"], (rose, port)
            assert rose["transmit_packets"] >= port["tx_packets"] > 0, (rose, port)
            assert rose["receive_bytes"] >= port["rx_bytes"], (rose, port)
            assert rose["transmit_bytes"] >= port["tx_bytes"] > 0, (rose, port)
            assert value(scrape(c, {}), "towerbox_vnet_attached_vms", **labels) == 0
    finally:
        lab.close()
        appliance.n6.backend(TrunkKind.OVS).apply(N6Config())
        subp.run(["ovs-vsctl", "--if-exists", "del-br", bridge], timeout=30, check=False)
        appliance.close()
