"""N6 over plain Linux: per VNet a ``<nic>.<vid>`` VLAN sub-interface in a Linux bridge.

The bridge holds the VNet's gateway address and VM NICs join it untagged; the VLAN
sub-interface connects it to the trunk NIC. Every link Towerbox creates carries an
alias (``towerbox-owner=<owner> vnet=<tenant>/<name>``); only those are ever changed
or deleted. A kernel without 802.1Q support fails the VLAN step with
``kernel_lacks_8021q`` and the apply rolls back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from towerbox_core.errors import Conflict, NotFound
from upf_bridge import naming, policy
from upf_bridge.backends import netlink, sysctl
from upf_bridge.backends.base import Attachment, InterfaceCounters, VNetCounters
from upf_bridge.backends.netlink import LinkInfo, Netlink
from upf_bridge.backends.reconcile import NetlinkReconciler, Step
from upf_bridge.model import N6Config, TrunkKind, VNet
from upf_bridge.state import (
    Action,
    Change,
    Diff,
    Link,
    Resource,
    State,
    state_of,
)


class VlanLinks(Protocol):
    """Makes and recognises a VNet's link to the trunk (a VLAN sub-interface)."""

    def create(self, nl: Netlink, name: str, parent: str, vid: int) -> None: ...

    def recognise(self, link: LinkInfo, links: dict[str, LinkInfo]) -> tuple[str, int] | None:
        """``(parent, vid)`` when ``link`` is one this factory made, else None."""
        ...


class KernelVlanLinks:
    """802.1Q sub-interfaces made by the kernel's 8021q module."""

    def create(self, nl: Netlink, name: str, parent: str, vid: int) -> None:
        netlink.add_vlan(nl, name, parent, vid)

    def recognise(self, link: LinkInfo, links: dict[str, LinkInfo]) -> tuple[str, int] | None:
        if link.link_kind != "vlan" or link.vid is None:
            return None
        parents = [other.name for other in links.values() if other.index == link.parent]
        return (parents[0] if parents else f"if{link.parent}", link.vid)


@dataclass(frozen=True)
class LinuxObserved:
    links: dict[str, LinkInfo]
    state: State


class LinuxBackend(NetlinkReconciler[LinuxObserved]):
    kind = TrunkKind.LINUX

    def __init__(
        self,
        *,
        owner: str = naming.DEFAULT_OWNER,
        ranges: naming.OwnedRanges = naming.LINUX_RANGES,
        vlans: VlanLinks | None = None,
    ) -> None:
        super().__init__(owner=owner, ranges=ranges)
        self.vlans: VlanLinks = vlans if vlans is not None else KernelVlanLinks()

    def describe(self) -> str:
        return "N6 backend: Linux bridges and 802.1Q sub-interfaces (netlink)"

    def attachment(self, vnet: VNet) -> Attachment:
        return Attachment(vnet=vnet.key, kind="bridge", bridge=naming.bridge_name(vnet))

    def _vnet_of(self, link: LinkInfo) -> str | None:
        marker = naming.parse_link_alias(link.alias)
        return marker[1] if marker is not None and marker[0] == self.owner else None

    # -- reading ---------------------------------------------------------------

    def _observe(self, config: N6Config) -> LinuxObserved:
        found: list[Resource] = []
        nl = self.nl
        links = netlink.read_links(nl)
        names = {link.index: link.name for link in links.values()}
        bridges = set()
        for link in links.values():
            vnet = self._vnet_of(link)
            if vnet is None:
                continue
            master = names.get(link.master) if link.master is not None else None
            vlan = self.vlans.recognise(link, links)
            if link.link_kind == "bridge":
                bridges.add(link.name)
                gateway = sysctl.read_gateway_mode(link.name)
                found.append(
                    Link(
                        link.name,
                        "bridge",
                        vnet,
                        link.mtu,
                        up=link.up,
                        gateway=gateway,
                        mac=link.mac,
                    )
                )
            elif vlan is not None:
                parent, vid = vlan
                found.append(Link(link.name, "vlan", vnet, link.mtu, parent, vid, master, link.up))
            else:
                found.append(Link(link.name, link.link_kind or "other", vnet, link.mtu))
        found += netlink.read_addresses(nl, links, bridges)
        found += netlink.read_routes(nl, links, self.ranges)
        found += netlink.read_rules(nl, self.ranges)
        return LinuxObserved(links, state_of(found))

    def _state(self, observed: LinuxObserved) -> State:
        return observed.state

    # -- what should be ----------------------------------------------------------

    def _desired(self, config: N6Config, observed: LinuxObserved) -> State:
        want: list[Resource] = []
        for trunk in config.trunks:
            if trunk.name not in observed.links:
                raise NotFound(
                    f"trunk NIC {trunk.name} does not exist on this node",
                    code="trunk_not_found",
                    trunk=trunk.name,
                )
            for vnet in config.vnets_on(trunk.name):
                bridge = naming.bridge_name(vnet)
                vlan = naming.vlan_name(vnet)
                for name in (bridge, vlan):
                    link = observed.links.get(name)
                    if link is not None and self._vnet_of(link) is None:
                        raise Conflict(
                            f"interface {name} for VNet {vnet.key} exists and is not "
                            "Towerbox's: remove it or move the VNet to another VLAN",
                            code="interface_name_in_use",
                            interface=name,
                        )
                want += vnet_objects(vnet, self.ranges)
        return state_of(want)

    # -- doing -------------------------------------------------------------------

    def _steps(self, diff: Diff) -> list[Step]:
        return [Step("netlink", (c,)) for c in diff.changes]

    def _perform(self, step: Step) -> None:
        for change in step.changes:
            if isinstance(change.resource, Link):
                self._link_change(self.nl, change)
            else:
                netlink.change(self.nl, change)

    def _link_change(self, nl: Netlink, change: Change) -> None:
        after, before = change.after, change.before
        if change.action == Action.DELETE and isinstance(before, Link):
            netlink.del_link(nl, before.name)
            return
        if not isinstance(after, Link):
            return
        if change.action == Action.CREATE:
            if after.link_kind == "bridge":
                netlink.add_link(nl, after.name, "bridge", br_forward_delay=0, br_stp_state=0)
            else:
                self.vlans.create(nl, after.name, after.parent or "", after.vid or 0)
            try:
                self._settle(nl, after, None)
            except Exception:
                netlink.del_link(nl, after.name)  # the step is all or nothing too
                raise
        elif isinstance(before, Link):
            self._settle(nl, after, before)

    def _settle(self, nl: Netlink, link: Link, before: Link | None) -> None:
        attrs: dict[str, Any] = {}
        if before is None:
            attrs["ifalias"] = naming.link_alias(self.owner, link.vnet)
        if before is None or before.mtu != link.mtu:
            attrs["mtu"] = link.mtu
        if link.master and before is None:
            attrs["master"] = nl.index(link.master)
        if link.mac and before is None:
            attrs["address"] = link.mac
        if attrs:
            netlink.set_link(nl, link.name, **attrs)
        if link.link_kind == "bridge" and (before is None or before.gateway != link.gateway):
            sysctl.write_gateway_mode(link.name, link.gateway)
        if before is None or before.up != link.up:
            netlink.set_link(nl, link.name, state="up" if link.up else "down")

    def counters(self) -> dict[str, VNetCounters]:
        with self._lock, self._connected():
            links = netlink.read_links(self.nl)
        result = {}
        for link in links.values():
            vnet = self._vnet_of(link)
            if vnet is None or link.link_kind != "bridge":
                continue
            # The bridge (the gateway's traffic) and every port in it: VLAN, VM NICs.
            members = [link, *(p for p in links.values() if p.master == link.index)]
            result[vnet] = VNetCounters(
                vnet=vnet,
                interfaces=tuple(
                    InterfaceCounters(m.name, m.rx_bytes, m.tx_bytes, m.rx_packets, m.tx_packets)
                    for m in members
                ),
            )
        return result


def vnet_objects(vnet: VNet, ranges: naming.OwnedRanges) -> list[Resource]:
    """What a VNet on a NIC trunk is: bridge, VLAN sub-interface, address, table, rules."""
    bridge, vlan = naming.bridge_name(vnet), naming.vlan_name(vnet)
    return [
        Link(bridge, "bridge", vnet.key, vnet.mtu, gateway=True, mac=naming.gateway_mac(vnet)),
        Link(vlan, "vlan", vnet.key, vnet.mtu, vnet.trunk, vnet.vlan, bridge),
        *policy.vnet_l3(vnet, bridge, ranges),
    ]
