"""The host side of the N6 tests: root, Open vSwitch, and the run's own names.

Each run marks what it makes with its pid (owner ``n6test-<pid>``, names with the
pid's last five digits, rule priorities and route tables picked from the pid), so
reruns and parallel runs do not collide. The ``n6_host`` fixture proves at the end of
the session that nothing the run made is left.

The fixtures here are loaded for the whole suite (``pytest_plugins`` in
tests/conftest.py): the N6 contract and the N6 integration tests share them.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from pyroute2 import IPRoute

from towerbox_core import subp
from upf_bridge import naming
from upf_bridge.naming import TABLE_SPAN, OwnedRanges

PID = os.getpid()
TAG = f"{PID % 100000:05d}"
OWNER = f"n6test-{PID}"
RUN_KEY = "n6test-run"  # external_ids key on the OVS bridges the lab itself makes


def run_ranges(pid: int) -> tuple[OwnedRanges, OwnedRanges, OwnedRanges, OwnedRanges]:
    """A test run's rule priorities and route tables, apart per process: the OVS and
    Linux integration tests', then the backend contract's OVS and Linux ones. All lie
    clear of the product's own tables (naming.OVS_RANGES, naming.LINUX_RANGES at
    0x54000000 and 0x55000000), which a node on this host may hold: a run must never
    take those for its own."""
    return (
        OwnedRanges(
            priority=22000 + (pid % 1000) * 3, table_base=0x70000000 + (pid % 64) * TABLE_SPAN
        ),
        OwnedRanges(
            priority=25000 + (pid % 1000) * 3, table_base=0xB0000000 + (pid % 64) * TABLE_SPAN
        ),
        OwnedRanges(
            priority=22000 + (pid % 1000) * 3, table_base=0x60000000 + (pid % 16) * TABLE_SPAN
        ),
        OwnedRanges(
            priority=25000 + (pid % 1000) * 3, table_base=0x40000000 + (pid % 16) * TABLE_SPAN
        ),
    )


RANGES = OVS_RANGES, LINUX_RANGES, CONTRACT_RANGES, CONTRACT_LINUX_RANGES = run_ranges(PID)
# The run's addresses: 10.<octet>.0.0/16, only ever inside its namespaces and ports.
OCTET = 100 + PID % 100
NETNS_PREFIX = f"n6t-{PID}"
OVS_CTL = "/usr/share/openvswitch/scripts/ovs-ctl"
INSTALL_HINT = "apt-get install -y --no-install-recommends openvswitch-switch"


def _alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()


def _run_pid(marker: str | None) -> int | None:
    if marker and marker.startswith("n6test-") and marker[7:].isdigit():
        return int(marker[7:])
    return None


def _ovs_answers() -> bool:
    if shutil.which("ovs-vsctl") is None:
        return False
    return subp.run(["ovs-vsctl", "--timeout=5", "show"], timeout=10, check=False).returncode == 0


def _remove_stale_runs() -> None:
    """Bridges and namespaces of earlier runs that died before their teardown."""
    if _ovs_answers():
        out = subp.run(
            ["ovs-vsctl", "--format=json", "--columns=name,external_ids", "list", "Bridge"],
            timeout=30,
        ).stdout
        for name, ids in json.loads(out)["data"]:
            markers = dict(ids[1])
            for marker in (markers.get(naming.OWNER_KEY), f"n6test-{markers.get(RUN_KEY, '')}"):
                pid = _run_pid(marker)
                if pid is not None and pid != PID and not _alive(pid):
                    subp.run(["ovs-vsctl", "--if-exists", "del-br", name], timeout=30)
                    break
    for line in subp.run(["ip", "netns", "list"], timeout=10).stdout.splitlines():
        name = line.split(" ", 1)[0]
        parts = name.split("-")
        if len(parts) >= 3 and parts[0] == "n6t" and parts[1].isdigit():
            pid = int(parts[1])
            if pid != PID and not _alive(pid):
                subp.run(["ip", "netns", "del", name], timeout=10, check=False)


def leftovers() -> list[str]:
    """Whatever this run made that still exists."""
    found = []
    for line in subp.run(["ip", "netns", "list"], timeout=10).stdout.splitlines():
        if line.startswith(f"{NETNS_PREFIX}-"):
            found.append(f"namespace {line.split(' ', 1)[0]}")
    with IPRoute() as ipr:
        for link in ipr.get_links():
            name = link.get("IFLA_IFNAME")
            marker = naming.parse_link_alias(link.get("IFLA_IFALIAS"))
            if TAG in name or (marker is not None and marker[0].startswith(OWNER)):
                found.append(f"link {name}")
        for rule in ipr.get_rules(family=2):
            prio, table = rule.get("FRA_PRIORITY") or 0, rule.get("FRA_TABLE") or rule["table"]
            if any(r.owns_rule(prio, table) for r in RANGES):
                found.append(f"ip rule {prio} lookup {table}")
        for route in ipr.get_routes(family=2, table=None):
            table = route.get("RTA_TABLE") or route["table"]
            if any(r.owns_table(table) for r in RANGES):
                found.append(f"route in table {table}")
    if shutil.which("ovs-vsctl"):
        out = subp.run(
            ["ovs-vsctl", "--format=json", "--columns=name,external_ids", "list", "Port"],
            timeout=30,
            check=False,
        ).stdout
        for name, ids in json.loads(out)["data"] if out else []:
            markers = dict(ids[1])
            if TAG in name or markers.get(naming.OWNER_KEY, "").startswith(OWNER):
                found.append(f"ovs port {name}")
    return found


@pytest.fixture(scope="session")
def n6_host() -> Iterator[None]:
    """Root on this host's network: namespaces, netlink, policy routing.

    At the end of the session, fails if anything this run made is still there.
    """
    if os.geteuid() != 0:
        pytest.skip("needs root: network namespaces, netlink, policy routing")
    _remove_stale_runs()
    yield
    left = leftovers()
    if left:
        pytest.fail(f"N6 tests left things behind: {', '.join(left)}")


@pytest.fixture(scope="session")
def ovs(n6_host: None) -> None:
    """Open vSwitch is installed and running (userspace datapath bridges only)."""
    if shutil.which("ovs-vsctl") is None:
        pytest.skip(f"Open vSwitch is not installed: {INSTALL_HINT}")
    if not _ovs_answers():
        subp.run([OVS_CTL, "start", "--system-id=random"], timeout=120, check=False)
    probe = subp.run(["ovs-vsctl", "--timeout=5", "show"], timeout=10, check=False)
    if probe.returncode:
        pytest.skip(f"Open vSwitch does not start ({OVS_CTL} start): {probe.stderr.strip()}")
    _remove_stale_runs()
