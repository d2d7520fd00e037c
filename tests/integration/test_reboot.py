"""A host reboot with the WAN down, end to end on real libvirtd + QEMU and Open vSwitch.

The node (appliance, agent, UI; a registry on loopback) is power-cycled as
tests/support/reboot.py describes, then started again with the registry's port
closed. The committed MIG layout comes back, then the vRAN VM, then the B2B VMs
(one on a tenant VNet, one only marked autostart), the N6 trunk with its tagged
ports, and the UI; the agent keeps the journal until the registry answers again,
and then ships it whole.
"""

from __future__ import annotations

import time

import pytest

from appliance.services.vm_boot import RESTORE_REASON
from tests.integration.test_real_vm import _system_conn
from tests.support.n6host import OWNER, TAG
from tests.support.reboot import B2B, EXPECTED_LAYOUT, VLAN, VRAN, seen_running
from tests.support.reboot_lab import reboot_lab

pytestmark = [pytest.mark.libvirtd, pytest.mark.ovs, pytest.mark.slow, pytest.mark.timeout(600)]


def test_a_reboot_with_the_wan_down_brings_the_node_back_in_order(ovs: None) -> None:
    _system_conn().close()  # skips (or fails in CI) without qemu:///system
    with reboot_lab(TAG, OWNER) as lab:
        assert lab.running() == {VRAN, "llm"}
        assert lab.layout() == EXPECTED_LAYOUT
        head = lab.journal()[-1]["seq"]

        lab.reboot()
        assert lab.running() == set()
        assert lab.n6_ports() == {}
        assert not lab.run_dir.exists()

        lab.boot()  # waits for the vRAN, then the layout, VMs, N6 ports and UI

        after = lab.journal(head)
        # The old daemon may have journalled a sweep after head: start at the boot.
        after = after[[e["kind"] for e in after].index("node.started") :]
        assert after[0]["state"]["rebooted"] is True
        kinds = [e["kind"] for e in after]
        started = [e for e in after if e["kind"] == "vm.started"]
        assert [e["state"]["name"] for e in started] == [lab.vm(VRAN), *map(lab.vm, B2B)]
        assert {e["state"]["reason"] for e in started} == {RESTORE_REASON}
        # The layout, then the N6 paths, then the vRAN, running before any B2B VM starts.
        assert kinds.index("gpu.layout_restored") < kinds.index("n6.repaired")
        assert kinds.index("n6.repaired") < kinds.index("vm.started")
        assert seen_running(after, lab.ids[VRAN]) < started[1]["seq"]
        restored = next(e for e in after if e["kind"] == "node.restored")["state"]
        assert (restored["started"], restored["failed"]) == (
            [e["state"]["name"] for e in started],
            [],
        )
        # boot() waited for the layout, the VMs, the N6 ports and the UI; the ports:
        assert list(lab.n6_ports().values()).count(str(VLAN)) == 2

        # The WAN is still down: the agent runs, says so, and the journal queues.
        deadline = time.monotonic() + 60
        while True:
            status = lab.sync_status()
            if (status["agent"], status["wan"]) == ("running", "offline"):
                break
            assert time.monotonic() < deadline, (status, lab.agent.log()[-3000:])
            time.sleep(0.5)
        assert lab.agent.proc is not None and lab.agent.proc.poll() is None, lab.agent.log()
        assert status["queued"] > 0 and status["acked_seq"] < status["head"], status
        lab.start_registry()
        deadline = time.monotonic() + 90
        while True:
            node, held = lab.summaries("cell-1")
            if (held.get("head"), held.get("count")) == (node["head"], node["count"]):
                break
            assert time.monotonic() < deadline, (node, held, lab.agent.log()[-3000:])
            time.sleep(0.5)
        assert held["checksum"] == node["checksum"]
        assert node["head"] > head
        while lab.sync_status()["queued"]:  # the agent acks what the registry holds
            assert time.monotonic() < deadline, lab.sync_status()
            time.sleep(0.5)
