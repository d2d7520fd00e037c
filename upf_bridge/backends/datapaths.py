"""Which Open vSwitch datapaths this host can run: asked of ovs-vswitchd, then proven.

ovs-vswitchd lists ``system`` (the kernel's openvswitch module) among its
``datapath_types`` even where that module is missing: it is compiled in, not
checked. A bridge of that type is then accepted into OVSDB, ovs-vsctl returns 0 and
only ovs-vswitchd's log says "failed to open datapath of type system"; every port on
it stays without an OpenFlow port. So each listed type is proven the way a trunk
would use it: a throwaway bridge of that type is created, its local port must get an
OpenFlow port, and the bridge is deleted again in the same call.

Trunks declared with ``datapath_type: auto`` get the kernel datapath where it works
(it forwards in the kernel, the userspace one polls in ovs-vswitchd), else the
userspace one.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass, field

from towerbox_core.errors import Conflict
from upf_bridge import naming
from upf_bridge.backends import ovsdb
from upf_bridge.model import DATAPATH_AUTO

log = logging.getLogger(__name__)

KERNEL = "system"
USERSPACE = "netdev"
# In the order ``auto`` prefers them.
KNOWN = (KERNEL, USERSPACE)
LABELS = {KERNEL: "kernel", USERSPACE: "userspace"}

# One probe at a time in this process: they share the throwaway bridge's name.
_probe_lock = threading.Lock()
# ovs-vsctl waits for ovs-vswitchd to take a change; one that does not answer must
# not hold the daemon's start for the full OVSDB timeout.
PROBE_TIMEOUT_S = 10


@dataclass(frozen=True)
class Datapaths:
    """The datapaths proven to work here, and why each other known one does not."""

    usable: tuple[str, ...]
    unavailable: dict[str, str] = field(default_factory=dict)  # datapath -> why

    @property
    def preferred(self) -> str | None:
        """What ``auto`` picks: the first of ``KNOWN`` that works here."""
        return next((d for d in KNOWN if d in self.usable), None)

    def resolve(self, requested: str) -> str:
        """The datapath a new trunk bridge gets; refuses one this host cannot run."""
        chosen = self.preferred if requested == DATAPATH_AUTO else requested
        if chosen is not None and chosen in self.usable:
            return chosen
        if chosen is None:
            why = "; ".join(f"{d}: {r}" for d, r in sorted(self.unavailable.items()))
            raise Conflict(
                f"no Open vSwitch datapath works on this host ({why or 'none listed'})",
                code="datapath_unavailable",
                field="datapath_type",
            )
        usable = ", ".join(self.usable) or "none"
        reason = self.unavailable.get(chosen, "ovs-vswitchd does not list it")
        raise Conflict(
            f"the {LABELS.get(chosen, chosen)} datapath ({chosen}) is not available on "
            f"this host: {reason}. Use datapath_type auto or one of: {usable}",
            code="datapath_unavailable",
            field="datapath_type",
            datapath_type=chosen,
            usable=list(self.usable),
        )

    def line(self) -> str:
        """For logs, /healthz and the UI badge: what trunks get, and what is missing."""
        chosen = self.preferred
        text = f"datapath {chosen} ({LABELS[chosen]})" if chosen else "no usable datapath"
        missing = [
            f"{LABELS.get(d, d)} ({d}) unavailable: {why}"
            for d, why in sorted(self.unavailable.items())
        ]
        return "; ".join([text, *missing])


def parse_datapath_types(output: str) -> tuple[str, ...]:
    """``ovs-vsctl get Open_vSwitch . datapath_types`` prints ``[netdev, system]``."""
    body = output.strip()
    if body.startswith("[") and body.endswith("]"):
        body = body[1:-1]
    return tuple(sorted(t.strip().strip('"') for t in body.split(",") if t.strip()))


def interface_fault(iface: ovsdb.OvsdbInterface | None) -> str | None:
    """Why ovs-vswitchd could not set up an interface, or None when it did.

    ovs-vswitchd writes the cause to the Interface's ``error`` column when it has one
    (a missing network device); when the bridge's datapath itself could not be opened
    the column stays empty and the interface only lacks an OpenFlow port.
    """
    if iface is None:
        return "it is not in OVSDB"
    if iface.error:
        return iface.error
    if iface.ofport is None or iface.ofport < 0:
        return "ovs-vswitchd gave it no OpenFlow port"
    return None


def probe_bridge_name() -> str:
    # tbx (reserved for Towerbox) + "dp" + five pid digits: unique per process.
    return f"{naming.PREFIX}dp{os.getpid() % 100000:05d}"


def is_probe_bridge(name: str) -> bool:
    """A datapath probe's throwaway bridge, this process's or another's (a second
    appliance starting, ``towerbox n6`` checking the host): it lasts a moment and
    deletes itself, so it is never N6 state to repair or to roll back."""
    digits = name.removeprefix(f"{naming.PREFIX}dp")
    return digits != name and len(digits) == 5 and digits.isdigit()


def _try(datapath: str, owner: str) -> str | None:
    """Create and delete a throwaway bridge of ``datapath``: None if it worked, else why."""
    name = probe_bridge_name()
    txn = ovsdb.Transaction()
    txn.add("--if-exists", "del-br", name)
    txn.add("add-br", name)
    txn.add(
        "set",
        "Bridge",
        name,
        f"datapath_type={datapath}",
        f"external_ids:{naming.OWNER_KEY}={ovsdb.quote(owner)}",
    )
    try:
        # ovs-vsctl waits for ovs-vswitchd to take the bridge, so the result is there.
        txn.commit(PROBE_TIMEOUT_S)
        fault = interface_fault(ovsdb.read_interfaces([name]).get(name))
    finally:
        ovsdb.vsctl(["--", "--if-exists", "del-br", name], PROBE_TIMEOUT_S)
    if fault is None:
        return None
    if fault.endswith("no OpenFlow port"):
        # What ovs-vswitchd logs in this case; the host's own reason follows.
        fault = f"failed to open datapath of type {datapath}"
        if datapath == KERNEL and not os.path.exists("/sys/module/openvswitch"):
            fault += " (the openvswitch kernel module is not loaded)"
    return fault


def probe(owner: str = naming.DEFAULT_OWNER) -> Datapaths:
    """Ask ovs-vswitchd which datapaths it has and prove each known one works."""
    listed = parse_datapath_types(ovsdb.vsctl(["get", "Open_vSwitch", ".", "datapath_types"]))
    usable: list[str] = []
    unavailable: dict[str, str] = {}
    with _probe_lock:
        for datapath in KNOWN:
            if datapath not in listed:
                unavailable[datapath] = "ovs-vswitchd does not list it in datapath_types"
                continue
            why = _try(datapath, owner)
            if why is None:
                usable.append(datapath)
            else:
                unavailable[datapath] = why
    found = Datapaths(tuple(usable), unavailable)
    log.info("Open vSwitch datapaths: %s", found.line())
    return found
