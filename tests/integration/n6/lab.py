"""A small network lab for the N6 tests: namespaces, veths, OVS ports, UDP probes.

Everything it makes carries the run's tag (derived from the pid) and is recorded, so
``close()`` removes exactly what this run made and nothing else.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from pyroute2 import IPRoute
from pyroute2.ethtool import Ethtool

from towerbox_core import subp

PROBE = str(Path(__file__).with_name("probe.py"))
PROBE_PORT = 7007


def sh(*argv: str, check: bool = True) -> str:
    return subp.run(list(argv), timeout=30, check=check).stdout


def _no_tx_checksum(names: list[str]) -> None:
    # Frames leave a veth with the checksum left to "hardware"; the OVS userspace
    # datapath forwards them as they are and the receiver drops them. Compute it.
    ethtool = Ethtool()
    try:
        for name in names:
            features = ethtool.get_features(name)
            features.features["tx-checksum-ip-generic"].enable = False
            ethtool.set_features(name, features)
    finally:
        ethtool.close()


class Lab:
    def __init__(self, prefix: str, workdir: Path, run_marker: str) -> None:
        self.prefix = prefix  # of namespace names
        self.run_marker = run_marker  # external_ids on the lab's own OVS bridges
        self.workdir = workdir
        self.namespaces: list[str] = []
        self.links: list[str] = []
        self.bridges: list[str] = []
        self.servers: list[subprocess.Popen[str]] = []

    # -- building --------------------------------------------------------------

    def netns(self, role: str) -> str:
        name = f"{self.prefix}-{role}"
        sh("ip", "netns", "add", name)
        self.namespaces.append(name)
        sh("ip", "-n", name, "link", "set", "lo", "up")
        return name

    def veth(self, host: str, peer: str, netns: str | None = None) -> None:
        """A veth pair ``host``/``peer``, ``peer`` moved into ``netns`` if given."""
        # The peer is born under a temporary name: "eth0" exists on the host already.
        temp = f"{host}t" if netns is not None else peer
        with IPRoute() as ipr:
            ipr.link("add", ifname=host, kind="veth", peer={"ifname": temp})
            self.links.append(host)
            _no_tx_checksum([host, temp])
            if netns is not None:
                ipr.link("set", index=ipr.link_lookup(ifname=temp)[0], net_ns_fd=netns)
            ipr.link("set", index=ipr.link_lookup(ifname=host)[0], state="up")
        # The userspace datapath reads ports with packet sockets, so the host's own
        # stack sees their frames too: keep it from answering ARP on them.
        for name in (host,) if netns is not None else (host, peer):
            Path(f"/proc/sys/net/ipv4/conf/{name}/arp_ignore").write_text("8\n")
        if netns is None:
            sh("ip", "link", "set", peer, "up")
        else:
            sh("ip", "-n", netns, "link", "set", temp, "name", peer, "up")

    def ovs_bridge(self, name: str) -> None:
        sh(
            "ovs-vsctl", "add-br", name, "--", "set", "bridge", name, "datapath_type=netdev",
            f"external_ids:{self.run_marker}",
        )  # fmt: skip
        self.bridges.append(name)

    def ovs_port(self, bridge: str, port: str, *settings: str) -> None:
        extra = ["--", "set", "port", port, *settings] if settings else []
        sh("ovs-vsctl", "add-port", bridge, port, *extra)

    def sink(self, name: str, cidr: str) -> None:
        """Keep the lab's addresses on this host: what the main table would send to the
        uplink goes into a veth whose peer is down, and is dropped there.

        Not a blackhole route: reverse-path checks refuse sources that route to one.
        """
        self.veth(name, f"{name}p")
        sh("ip", "link", "set", f"{name}p", "down")
        sh("ip", "route", "add", cidr, "dev", name)

    def ns(self, netns: str, *argv: str, check: bool = True) -> str:
        return sh("ip", "netns", "exec", netns, *argv, check=check)

    def ip(self, netns: str, *argv: str) -> str:
        return sh("ip", "-n", netns, *argv)

    def mac(self, netns: str, dev: str) -> str:
        info: list[dict[str, Any]] = json.loads(self.ip(netns, "-j", "link", "show", dev))
        return str(info[0]["address"])

    # -- probes ----------------------------------------------------------------

    def serve(self, netns: str, bind: str, log_name: str) -> Path:
        log = self.workdir / log_name
        log.touch()
        proc = subprocess.Popen(
            [
                shutil.which("ip") or "/usr/sbin/ip",
                "netns",
                "exec",
                netns,
                sys.executable,
                PROBE,
                "serve",
                bind,
                str(PROBE_PORT),
                str(log),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        self.servers.append(proc)
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        return log

    def send(self, netns: str, src: str, *targets: str, timeout: float = 1.0) -> dict[str, str]:
        out = self.ns(
            netns, sys.executable, PROBE, "send", src, str(PROBE_PORT), str(timeout), *targets
        )
        result: dict[str, str] = json.loads(out)
        return result

    def wait_reachable(self, netns: str, src: str, dst: str, attempts: int = 10) -> None:
        for _ in range(attempts):
            if self.send(netns, src, dst, timeout=0.5)[dst] == "ok":
                return
        raise AssertionError(f"{dst} does not answer {src} from {netns}")

    # -- teardown --------------------------------------------------------------

    def close(self) -> None:
        for proc in self.servers:
            proc.terminate()
            proc.wait(timeout=10)
            if proc.stdout is not None:
                proc.stdout.close()
        for bridge in self.bridges:
            sh("ovs-vsctl", "--if-exists", "del-br", bridge, check=False)
        with IPRoute() as ipr:
            for name in self.links:
                for index in ipr.link_lookup(ifname=name):
                    ipr.link("del", index=index)
        for name in self.namespaces:
            sh("ip", "netns", "del", name, check=False)

        self.servers.clear()
        self.bridges.clear()
        self.links.clear()
        self.namespaces.clear()


def received_from(log: Path) -> set[str]:
    """Source addresses a ``serve`` probe logged."""
    return {line.split(" ", 1)[0] for line in log.read_text().splitlines() if line}
