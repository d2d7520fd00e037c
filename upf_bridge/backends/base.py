"""The N6 network backend interface and the records it returns."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from upf_bridge.backends.datapaths import Datapaths
from upf_bridge.model import N6Config, TrunkKind, VNet
from upf_bridge.state import Diff


@dataclass(frozen=True)
class InterfaceCounters:
    """One kernel interface of a VNet, counted as the host kernel counts it."""

    name: str
    rx_bytes: int
    tx_bytes: int
    rx_packets: int
    tx_packets: int


@dataclass(frozen=True)
class VNetCounters:
    vnet: str  # "tenant/name"
    interfaces: tuple[InterfaceCounters, ...]

    @property
    def rx_bytes(self) -> int:
        return sum(i.rx_bytes for i in self.interfaces)

    @property
    def tx_bytes(self) -> int:
        return sum(i.tx_bytes for i in self.interfaces)

    @property
    def rx_packets(self) -> int:
        return sum(i.rx_packets for i in self.interfaces)

    @property
    def tx_packets(self) -> int:
        return sum(i.tx_packets for i in self.interfaces)


@dataclass(frozen=True)
class Attachment:
    """Where a VM NIC joins a VNet.

    ``ovs``: a port on ``bridge`` tagged ``vlan`` (libvirt: ``<virtualport
    type='openvswitch'/>`` and ``<vlan><tag id=.../></vlan>``); ``bridge``: a plain
    port of the Linux bridge ``bridge``, untagged.
    """

    vnet: str
    kind: str  # "ovs" or "bridge"
    bridge: str
    vlan: int | None = None


class NetBackend(Protocol):
    """Makes the node's network match the VNets declared on trunks of one kind.

    A backend only looks at trunks of its ``kind`` and their VNets, and only ever
    changes or deletes objects that carry its owner marker, rule priorities and route
    tables. Every method may be called from any thread.
    """

    @property
    def kind(self) -> TrunkKind: ...

    def describe(self) -> str:
        """A line for logs and the UI: "N6 backend: Open vSwitch 3.1.0"."""
        ...

    def datapaths(self) -> Datapaths | None:
        """Kind ovs: the datapaths this host proved it can run (probed once); else None."""
        ...

    def check(self, desired: N6Config) -> None:
        """Refuse, changing nothing, a trunk this host cannot carry (``datapath_unavailable``).

        ``plan`` and ``apply`` check first too, so a refusal never comes mid-apply.
        """
        ...

    def plan(self, desired: N6Config) -> Diff:
        """What ``apply`` would do now; changes nothing."""
        ...

    def apply(self, desired: N6Config, *, dry_run: bool = False) -> Diff:
        """Make the node match ``desired`` and return what was done.

        All or nothing: when a step fails, the steps done so far are undone in reverse
        and the error is raised; the node is back as it was.
        """
        ...

    def counters(self) -> dict[str, VNetCounters]:
        """Traffic of every VNet this backend made, keyed by "tenant/name"."""
        ...

    def attachment(self, vnet: VNet) -> Attachment: ...
