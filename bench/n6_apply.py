"""n6_apply_100_ms, n6_reapply_noop_ms, n6_isolation_violations: the N6 handoff.

Applies 100 tenant VNets to an empty Open vSwitch trunk bridge (userspace datapath)
with the OVS backend and times it, then times re-applying the same declaration
(which must change nothing). Then a probe matrix over a few of those tenants, in
network namespaces: a UPF namespace sends UDP from each tenant's UE pool to every
probed tenant's "VM" namespace, and each VM sends to every other one; a datagram
that arrives across tenants is a violation. Targets: apply <= 2000 ms, reapply
<= 300 ms, 0 violations (and every same-tenant probe answered, or the matrix would
prove nothing). Everything made is removed at the end.
"""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import tempfile
import time
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

from tests.integration.n6.lab import Lab, received_from, sh
from towerbox_core import subp
from upf_bridge.backends.ovs import OvsBackend
from upf_bridge.model import N6Config, Trunk, TrunkKind, VNet, validate
from upf_bridge.naming import TABLE_SPAN, OwnedRanges

VNETS = 100
PROBED = 4
REAPPLY_RUNS = 7
TARGET_APPLY_MS = 2000.0
TARGET_REAPPLY_MS = 300.0

PID = os.getpid()
TAG = f"{PID % 100000:05d}"
OWNER = f"n6bench-{PID}"
RANGES = OwnedRanges(
    priority=28000 + (PID % 1000) * 3, table_base=0xF0000000 + (PID % 15) * TABLE_SPAN
)
OCTET = 100 + PID % 100
TRUNK = Trunk(f"nb{TAG}", TrunkKind.OVS, ports=(f"nbu{TAG}",), datapath_type="netdev")
OVS_CTL = "/usr/share/openvswitch/scripts/ovs-ctl"


def vm(i: int) -> str:
    return f"10.{OCTET}.{i}.10"


def ue(i: int) -> str:
    return f"10.{OCTET}.{128 + i}.1"


def vnet(i: int) -> VNet:
    return VNet(
        tenant=f"tenant{i}",
        name="inference",
        trunk=TRUNK.name,
        vlan=1000 + i,
        subnet=IPv4Network(f"10.{OCTET}.{i}.0/24"),
        gateway=IPv4Address(f"10.{OCTET}.{i}.1"),
        ue_pools=(IPv4Network(f"10.{OCTET}.{128 + i}.0/24"),),
        dnns=(f"tenant{i}.example",),
        upf_address=IPv4Address(f"10.{OCTET}.{i}.2"),
    )


def ensure_ovs() -> None:
    if shutil.which("ovs-vsctl") is None:
        sys.exit("Open vSwitch is not installed: apt-get install openvswitch-switch")
    if subp.run(["ovs-vsctl", "--timeout=5", "show"], timeout=10, check=False).returncode:
        subp.run([OVS_CTL, "start", "--system-id=random"], timeout=120, check=False)


def build_probe_lab(lab: Lab, backend: OvsBackend, config: N6Config) -> tuple[str, dict[int, str]]:
    """UPF namespace behind its own bridge, VM namespaces on the first PROBED VNets."""
    upf_bridge = f"ub{TAG}"
    lab.ovs_bridge(upf_bridge)
    lab.ovs_port(upf_bridge, f"ubu{TAG}")
    upf = lab.netns("upf")
    vms = {}
    for i in range(1, PROBED + 1):
        v = config.vnets[i - 1]
        lab.veth(f"bu{i}{TAG}", f"upf{i}", upf)
        lab.ovs_port(upf_bridge, f"bu{i}{TAG}", f"tag={v.vlan}")
        lab.ip(upf, "addr", "add", f"{v.upf_address}/24", "dev", f"upf{i}")
        lab.ip(upf, "addr", "add", f"{ue(i)}/32", "dev", "lo")
        lab.ip(upf, "rule", "add", "from", str(v.ue_pools[0]), "lookup", str(i))
        lab.ip(upf, "route", "add", "default", "via", str(v.gateway), "table", str(i))
        ns = vms[i] = lab.netns(f"vm{i}")
        lab.veth(f"bv{i}{TAG}", "eth0", ns)
        where = backend.attachment(v)
        lab.ovs_port(where.bridge, f"bv{i}{TAG}", f"tag={where.vlan}")
        lab.ip(ns, "addr", "add", f"{vm(i)}/24", "dev", "eth0")
        lab.ip(ns, "route", "add", "default", "via", str(v.gateway))
        lab.serve(ns, "0.0.0.0", f"vm{i}.log")  # noqa: S104
        lab.serve(upf, ue(i), f"ue{i}.log")
    return upf, vms


def probe_matrix(lab: Lab, upf: str, vms: dict[int, str]) -> tuple[int, int]:
    """(violations, same-tenant probes that went unanswered)."""
    for i in vms:
        lab.wait_reachable(upf, ue(i), vm(i))
    violations = unanswered = 0
    for i, ns in vms.items():
        targets = [vm(j) for j in vms]
        from_ue = lab.send(upf, ue(i), *targets)
        from_vm = lab.send(ns, vm(i), ue(i), *(vm(j) for j in vms if j != i))
        unanswered += (from_ue[vm(i)] != "ok") + (from_vm[ue(i)] != "ok")
        violations += sum(from_ue[vm(j)] == "ok" for j in vms if j != i)
        violations += sum(from_vm[vm(j)] == "ok" for j in vms if j != i)
    for j in vms:
        seen = received_from(lab.workdir / f"vm{j}.log")
        others = {ue(i) for i in vms if i != j} | {vm(i) for i in vms if i != j}
        violations += len(seen & others)
    return violations, unanswered


def main() -> int:
    ensure_ovs()
    backend = OvsBackend(owner=OWNER, ranges=RANGES)
    # As the daemon does when it starts: probes the datapaths, so no apply waits on that.
    print(backend.describe(), file=sys.stderr)
    config = validate([TRUNK], [vnet(i) for i in range(1, VNETS + 1)])
    workdir = Path(tempfile.mkdtemp(prefix="n6bench-"))
    lab = Lab(f"n6b-{PID}", workdir, f"n6bench-run={PID}")
    try:
        lab.sink(f"bk{TAG}", f"10.{OCTET}.0.0/16")
        lab.veth(TRUNK.ports[0], f"ubu{TAG}")
        started = time.perf_counter()
        made = backend.apply(config)
        apply_ms = (time.perf_counter() - started) * 1000
        reapply = []
        for _ in range(REAPPLY_RUNS):
            started = time.perf_counter()
            again = backend.apply(config)
            reapply.append((time.perf_counter() - started) * 1000)
            if not again.empty:
                print(f"re-apply was not a no-op: {again}")
                return 1
        reapply_ms = statistics.median(reapply)
        upf, vms = build_probe_lab(lab, backend, config)
        violations, unanswered = probe_matrix(lab, upf, vms)
    finally:
        for i in range(1, PROBED + 1):
            sh("ovs-vsctl", "--if-exists", "del-port", TRUNK.name, f"bv{i}{TAG}")
        try:
            backend.apply(N6Config())
        finally:
            lab.close()
            shutil.rmtree(workdir, ignore_errors=True)
    print(f"n6_apply_100_ms: {apply_ms:.0f} ms")
    print(f"n6_apply_100_changes: {len(made.changes)} count")
    print(f"n6_reapply_noop_ms: {reapply_ms:.0f} ms")
    print(f"n6_isolation_violations: {violations} count")
    print(f"n6_isolation_tenants_probed: {PROBED} count")
    ok = apply_ms <= TARGET_APPLY_MS and reapply_ms <= TARGET_REAPPLY_MS and violations == 0
    if unanswered:
        print(f"n6 probe: {unanswered} same-tenant probes went unanswered")
        ok = False
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
