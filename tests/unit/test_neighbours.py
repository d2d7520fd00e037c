"""Guest addresses from the host's ARP table, matched by the domain's MACs."""

from __future__ import annotations

from pathlib import Path

from appliance.backends.vm.neighbours import addresses_for, domain_macs, read_table

TABLE = """\
IP address       HW type     Flags       HW address            Mask     Device
192.0.2.1        0x1         0x2         02:fc:00:00:00:05     *        eth0
10.231.0.44      0x1         0x2         52:54:00:E6:49:69     *        br-b2b
10.231.0.45      0x1         0x0         52:54:00:aa:bb:cc     *        br-b2b
10.231.0.46      0x1         0x2         52:54:00:aa:bb:cc     *        br-b2b
garbage
"""

DOMAIN = """<domain type='kvm'><devices>
  <interface type='bridge'><mac address='52:54:00:e6:49:69'/><source bridge='br-b2b'/></interface>
  <interface type='bridge'><mac address='52:54:00:AA:BB:CC'/><source bridge='br-b2b'/></interface>
  <interface type='bridge'><source bridge='br-n6'/></interface>
</devices></domain>"""


def test_complete_entries_of_the_domains_macs_in_nic_order() -> None:
    macs = domain_macs(DOMAIN)
    assert macs == ["52:54:00:e6:49:69", "52:54:00:aa:bb:cc"]
    # Case does not matter; an incomplete entry (no answer yet) is not an address.
    assert addresses_for(macs, TABLE) == ["10.231.0.44", "10.231.0.46"]
    assert addresses_for(["52:54:00:00:00:01"], TABLE) == []
    assert addresses_for(macs, "") == []


def test_a_host_without_the_table_has_no_neighbours(tmp_path: Path) -> None:
    assert read_table(tmp_path / "absent") == ""
    table = tmp_path / "arp"
    table.write_text(TABLE)
    assert read_table(table) == TABLE
