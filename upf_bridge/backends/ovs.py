"""N6 over Open vSwitch: one bridge per trunk, one tagged internal port per VNet.

The trunk's bridge carries every VNet's VLAN on its declared trunk ports (uplink,
UPF). Each VNet gets an internal access port tagged with its VLAN; the kernel side of
that port holds the VNet's gateway address, and policy routing (``policy``) steers the
tenant's UE pools through it. VM NICs join the VNet as ports on the same bridge with
the same tag (``attachment``).

Ownership: bridges and ports Towerbox creates carry ``external_ids:towerbox-owner``;
only those are ever deleted. A declared trunk port that already existed is the
operator's: Towerbox sets its ``trunks`` (and clears a ``tag``, which would make it an
access port) and never deletes it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from towerbox_core.errors import BackendError, Conflict
from upf_bridge import naming, policy
from upf_bridge.backends import datapaths, netlink, ovsdb, sysctl
from upf_bridge.backends.base import Attachment, InterfaceCounters, VNetCounters
from upf_bridge.backends.datapaths import Datapaths
from upf_bridge.backends.netlink import LinkInfo
from upf_bridge.backends.ovsdb import OvsdbView, Transaction
from upf_bridge.backends.reconcile import NetlinkReconciler, Step
from upf_bridge.model import N6Config, Trunk, TrunkKind, VNet
from upf_bridge.state import (
    Action,
    Address,
    Change,
    Diff,
    OvsBridge,
    OvsPort,
    Resource,
    Route,
    Rule,
    State,
    state_of,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OvsObserved:
    view: OvsdbView
    links: dict[str, LinkInfo]
    state: State


class OvsBackend(NetlinkReconciler[OvsObserved]):
    kind = TrunkKind.OVS

    def __init__(
        self,
        *,
        owner: str = naming.DEFAULT_OWNER,
        ranges: naming.OwnedRanges = naming.OVS_RANGES,
    ) -> None:
        super().__init__(owner=owner, ranges=ranges)
        self._datapaths: Datapaths | None = None

    def describe(self) -> str:
        return f"N6 backend: Open vSwitch {ovsdb.version()}, {self.datapaths().line()}"

    def datapaths(self) -> Datapaths:
        with self._lock:
            if self._datapaths is None:
                self._datapaths = datapaths.probe(self.owner)
            return self._datapaths

    def attachment(self, vnet: VNet) -> Attachment:
        return Attachment(vnet=vnet.key, kind="ovs", bridge=vnet.trunk, vlan=vnet.vlan)

    def _owned(self, external_ids: dict[str, str]) -> bool:
        return external_ids.get(naming.OWNER_KEY) == self.owner

    # -- reading ---------------------------------------------------------------

    def _observe(self, config: N6Config) -> OvsObserved:
        view = ovsdb.read_view()
        declared = {p for t in config.trunks for p in t.ports}
        trunk_names = {t.name for t in config.trunks}
        found: list[Resource] = []
        for bridge in view.bridges.values():
            if datapaths.is_probe_bridge(bridge.name) and bridge.name not in trunk_names:
                continue
            if bridge.name in trunk_names or self._owned(bridge.external_ids):
                owned = self._owned(bridge.external_ids)
                found.append(OvsBridge(bridge.name, bridge.datapath_type, owned))
        nl = self.nl
        links = netlink.read_links(nl)
        l3_devs = set()
        for port in view.ports.values():
            owned = self._owned(port.external_ids)
            if not owned and port.name not in declared:
                continue
            iface = view.interface_of(port)
            internal = iface is not None and iface.type == "internal"
            link = links.get(port.name)
            if internal and owned:
                l3_devs.add(port.name)
            found.append(
                OvsPort(
                    name=port.name,
                    bridge=view.port_bridge.get(port.name, ""),
                    owned=owned,
                    tag=port.tag,
                    trunks=port.trunks,
                    internal=internal,
                    mtu=iface.mtu_request if internal and iface else None,
                    vnet=port.external_ids.get(naming.VNET_KEY),
                    up=bool(internal and owned and link and link.up),
                    gateway=internal and owned and sysctl.read_gateway_mode(port.name),
                )
            )
        found += netlink.read_addresses(nl, links, l3_devs)
        found += netlink.read_routes(nl, links, self.ranges)
        found += netlink.read_rules(nl, self.ranges)
        return OvsObserved(view, links, state_of(found))

    def _state(self, observed: OvsObserved) -> State:
        return observed.state

    # -- what should be ----------------------------------------------------------

    def _desired(self, config: N6Config, observed: OvsObserved) -> State:
        view = observed.view
        want: list[Resource] = []
        for trunk in config.trunks:
            want += self._trunk(trunk, config.vnets_on(trunk.name), observed)
        # An owned bridge that is no longer a trunk goes, unless someone else's ports
        # are on it: then it stays, and only Towerbox's ports leave it.
        for res in observed.state.values():
            if isinstance(res, OvsBridge) and res.owned and res.name not in _trunk_names(config):
                bridge = view.bridges[res.name]
                foreign = [
                    p.name
                    for p in view.ports.values()
                    if p.uuid in bridge.port_uuids
                    and p.name != res.name
                    and not self._owned(p.external_ids)
                ]
                if foreign:
                    log.warning("keeping bridge %s: it has ports %s", res.name, foreign)
                    want.append(res)
        return state_of(want)

    def _trunk(self, trunk: Trunk, vnets: tuple[VNet, ...], seen: OvsObserved) -> list[Resource]:
        view = seen.view
        existing = view.bridges.get(trunk.name)
        if existing is not None:
            bridge = OvsBridge(
                trunk.name, existing.datapath_type, self._owned(existing.external_ids)
            )
        else:
            if trunk.name in seen.links:
                raise Conflict(
                    f"trunk bridge {trunk.name} cannot be created: a network interface of "
                    "that name exists and is not an Open vSwitch bridge",
                    code="interface_name_in_use",
                    interface=trunk.name,
                )
            bridge = OvsBridge(trunk.name, self._datapath_of(trunk), owned=True)
        want: list[Resource] = [bridge]
        # An empty trunks column would carry every VLAN; with no VNets there is
        # nothing of Towerbox's on the bridge for it to reach.
        vlans = tuple(sorted(v.vlan for v in vnets))
        for name in trunk.ports:
            port = view.ports.get(name)
            where = view.port_bridge.get(name) if port else None
            if port is not None and where != trunk.name:
                raise Conflict(
                    f"trunk port {name} is on bridge {where}, not on trunk bridge {trunk.name}",
                    code="trunk_port_elsewhere",
                    port=name,
                )
            owned = port is None or self._owned(port.external_ids)
            want.append(OvsPort(name=name, bridge=trunk.name, owned=owned, trunks=vlans))
        for vnet in vnets:
            name = naming.port_name(vnet)
            port = view.ports.get(name)
            foreign_port = port is not None and not self._owned(port.external_ids)
            if foreign_port or (port is None and name in seen.links):
                raise Conflict(
                    f"interface {name} for VNet {vnet.key} exists and is not Towerbox's: "
                    "remove it or rename the VNet",
                    code="interface_name_in_use",
                    interface=name,
                )
            want += vnet_objects(vnet, self.ranges)
        return want

    # -- doing -------------------------------------------------------------------

    def _steps(self, diff: Diff) -> list[Step]:
        switch = [c for c in diff.changes if isinstance(c.resource, OvsBridge | OvsPort)]
        kernel_del = [c for c in diff.delete if isinstance(c.resource, Address | Route | Rule)]
        kernel_add = [c for c in diff.create if isinstance(c.resource, Address | Route | Rule)]
        states = [c for c in switch if _link_state_changes(c)]
        steps = [Step("netlink", (c,)) for c in kernel_del]
        # A deleted port's state step does nothing going forward; it sits before the
        # OVSDB step so that, undone, it brings the re-created port back up.
        steps += [Step("linkstate", (c,)) for c in states if c.action == Action.DELETE]
        if switch:
            steps.append(Step("ovsdb", tuple(switch)))
        steps += [Step("linkstate", (c,)) for c in states if c.action != Action.DELETE]
        steps += [Step("netlink", (c,)) for c in kernel_add]
        return steps

    def _perform(self, step: Step) -> None:
        if step.via == "ovsdb":
            txn = Transaction()
            for change in step.changes:
                self._ovsdb_change(txn, change)
            try:
                txn.commit()
                self._check_interfaces(step)
            finally:
                self.nl.forget()  # ports came and went behind netlink's back
            return
        for change in step.changes:
            after = change.after
            if step.via == "linkstate":
                if isinstance(after, OvsPort) and after.internal:
                    netlink.set_link(self.nl, after.name, state="up" if after.up else "down")
                    sysctl.write_gateway_mode(after.name, after.gateway)
                continue
            netlink.change(self.nl, change)

    def _check_interfaces(self, step: Step) -> None:
        """Fail the step, undone, with OVS's own cause if an interface it set up is broken.

        ovs-vsctl commits a port whose device is missing, or on a bridge whose datapath
        could not be opened, and returns 0: the cause is only in the Interface row.
        """
        made: dict[str, str] = {}  # interface -> its bridge
        for change in step.changes:
            res = change.resource
            if change.action != Action.DELETE and isinstance(res, OvsPort):
                made[res.name] = res.bridge
            elif change.action != Action.DELETE and isinstance(res, OvsBridge):
                made[res.name] = res.name  # the bridge's own local interface
        found = ovsdb.read_interfaces(sorted(made))
        faults = {n: f for n in sorted(made) if (f := datapaths.interface_fault(found.get(n)))}
        if not faults:
            return
        name, cause = next(iter(faults.items()))
        bridge = made[name]
        if cause.endswith("no OpenFlow port"):
            cause = self._bridge_cause(bridge, cause)
        undo = Transaction()
        for change in step.inverse().changes:
            self._ovsdb_change(undo, change)
        undo.commit()
        raise BackendError(
            f"Open vSwitch could not set up interface {name} on bridge {bridge}: {cause}",
            code="ovs_interface_error",
            interface=name,
            bridge=bridge,
            ovs_error=cause,
            interfaces=faults,
        )

    def _bridge_cause(self, bridge: str, fallback: str) -> str:
        """Why a bridge's ports get no OpenFlow port: its datapath, when that is the cause."""
        rows = ovsdb.vsctl(["--if-exists", "get", "Bridge", bridge, "datapath_type"]).strip()
        datapath = rows.strip('"') or datapaths.KERNEL  # empty means the default, system
        why = self.datapaths().unavailable.get(datapath)
        return why if why is not None else fallback

    def _ovsdb_change(self, txn: Transaction, change: Change) -> None:
        res = change.resource
        if isinstance(res, OvsBridge):
            if change.action == Action.CREATE:
                txn.add("add-br", res.name)
                txn.add(
                    "set",
                    "Bridge",
                    res.name,
                    f"datapath_type={res.datapath_type}",
                    f"external_ids:{naming.OWNER_KEY}={ovsdb.quote(self.owner)}",
                )
            elif change.action == Action.DELETE:
                txn.add("del-br", res.name)
            return
        if not isinstance(res, OvsPort):
            return
        if change.action == Action.DELETE:
            txn.add("del-port", res.bridge, res.name)
            return
        before = change.before if isinstance(change.before, OvsPort) else None
        if before is None:
            txn.add("add-port", res.bridge, res.name)
            ids = [f"external_ids:{naming.OWNER_KEY}={ovsdb.quote(self.owner)}"]
            if res.vnet:
                ids.append(f"external_ids:{naming.VNET_KEY}={ovsdb.quote(res.vnet)}")
                ids.append(f"external_ids:{naming.TRUNK_KEY}={ovsdb.quote(res.bridge)}")
            txn.add("set", "Port", res.name, *ids)
            if res.internal:
                mac = [f"mac={ovsdb.quote(res.mac)}"] if res.mac else []
                txn.add("set", "Interface", res.name, "type=internal", *mac, *ids[:1])
        _set_or_clear(txn, "Port", res.name, "tag", new=res.tag, old=before.tag if before else None)
        old_trunks = _vlan_list(before.trunks) if before else None
        _set_or_clear(txn, "Port", res.name, "trunks", new=_vlan_list(res.trunks), old=old_trunks)
        old_mtu = before.mtu if before else None
        _set_or_clear(txn, "Interface", res.name, "mtu_request", new=res.mtu, old=old_mtu)

    def counters(self) -> dict[str, VNetCounters]:
        with self._lock, self._connected():
            view = ovsdb.read_view()
            links = netlink.read_links(self.nl)
        result = {}
        for port in view.ports.values():
            vnet = port.external_ids.get(naming.VNET_KEY)
            if not vnet or not self._owned(port.external_ids) or port.tag is None:
                continue
            bridge = view.port_bridge.get(port.name)
            # Every port of the VNet: its gateway port and the VM ports with its tag.
            members = sorted(
                p.name
                for p in view.ports.values()
                if p.tag == port.tag and view.port_bridge.get(p.name) == bridge
            )
            result[vnet] = VNetCounters(
                vnet=vnet,
                interfaces=tuple(_counters(links[n]) for n in members if n in links),
            )
        return result


def vnet_objects(vnet: VNet, ranges: naming.OwnedRanges) -> list[Resource]:
    """What a VNet on an OVS trunk is: its tagged gateway port, address, table, rules."""
    port = naming.port_name(vnet)
    gateway_port = OvsPort(
        name=port,
        bridge=vnet.trunk,
        owned=True,
        tag=vnet.vlan,
        internal=True,
        mtu=vnet.mtu,
        vnet=vnet.key,
        mac=naming.gateway_mac(vnet),
        up=True,
        gateway=True,
    )
    return [gateway_port, *policy.vnet_l3(vnet, port, ranges)]


def _trunk_names(config: N6Config) -> set[str]:
    return {t.name for t in config.trunks}


def _counters(link: LinkInfo) -> InterfaceCounters:
    return InterfaceCounters(
        link.name, link.rx_bytes, link.tx_bytes, link.rx_packets, link.tx_packets
    )


def _vlan_list(vlans: tuple[int, ...]) -> str | None:
    return ",".join(map(str, vlans)) or None


def _link_state(res: Resource | None) -> tuple[bool, bool]:
    return (res.up, res.gateway) if isinstance(res, OvsPort) else (False, False)


def _link_state_changes(change: Change) -> bool:
    res = change.resource
    if not isinstance(res, OvsPort) or not res.internal:
        return False
    return _link_state(change.before) != _link_state(change.after)


def _set_or_clear(
    txn: Transaction, table: str, record: str, column: str, *, new: object, old: object
) -> None:
    if new == old:
        return
    if new is None:
        txn.add("clear", table, record, column)
    else:
        txn.add("set", table, record, f"{column}={new}")
