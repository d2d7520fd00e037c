"""Netlink for the N6 backends: links, addresses, route tables and ip rules (pyroute2).

The one place in upf_bridge that imports pyroute2. A
``NetlinkError`` never leaves this module: it becomes a ``BackendError`` that says
what was being done. A backend opens one ``Netlink`` session per call (``session()``)
and uses it under its lock: an IPRoute is not safe to share between threads, and the
appliance calls the backends from worker threads.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from ipaddress import IPv4Address
from typing import Any

from pyroute2 import IPRoute, NetlinkError

from towerbox_core.errors import BackendError, BackendUnavailable
from upf_bridge.naming import OwnedRanges
from upf_bridge.state import Action, Address, Change, Route, Rule

IFF_UP = 0x1
RTN_UNICAST = 1
RTN_UNREACHABLE = 7
RT_SCOPE_UNIVERSE = 0
RT_SCOPE_LINK = 253
AF_INET = 2
RT_TABLE_COMPAT = 252
ANY_IPV4 = str(IPv4Address(0))


@dataclass(frozen=True)
class LinkInfo:
    index: int
    name: str
    up: bool
    mtu: int
    alias: str | None
    link_kind: str | None  # "bridge", "vlan", "veth", "tun", None for plain devices
    master: int | None
    parent: int | None  # IFLA_LINK: a VLAN's lower device
    vid: int | None
    rx_bytes: int
    tx_bytes: int
    rx_packets: int
    tx_packets: int
    mac: str | None = None


def _fail(what: str, err: NetlinkError) -> BackendError:
    return BackendError(
        f"{what} failed: {os.strerror(err.code)} (errno {err.code})",
        code="netlink_error",
        errno=err.code,
    )


class Netlink:
    """One netlink socket and the interface indexes it has looked up."""

    def __init__(self, ipr: Any) -> None:
        self.ipr = ipr
        self._indexes: dict[str, int] = {}

    def index(self, name: str) -> int:
        if name not in self._indexes:
            found = self.ipr.link_lookup(ifname=name)
            if not found:
                raise BackendError(f"interface {name} does not exist", code="interface_missing")
            self._indexes[name] = int(found[0])
        return self._indexes[name]

    def remember(self, links: dict[str, LinkInfo]) -> None:
        self._indexes = {name: link.index for name, link in links.items()}

    def forget(self, name: str | None = None) -> None:
        """Drop a cached index (all of them when ``name`` is None): links came or went."""
        if name is None:
            self._indexes.clear()
        else:
            self._indexes.pop(name, None)


@contextmanager
def session() -> Iterator[Netlink]:
    """A netlink session for one backend call; the socket closes at the end."""
    try:
        ipr = IPRoute()
    except OSError as err:
        raise BackendUnavailable(
            f"cannot open a netlink socket: {err}", code="netlink_unavailable"
        ) from err
    try:
        yield Netlink(ipr)
    finally:
        ipr.close()


def _attrs(msg: Any, wanted: frozenset[str]) -> dict[str, Any]:
    # One pass over the attribute list, decoding only the wanted values: msg.get()
    # scans the list anew for every name, and decoding is most of the cost.
    return {slot[0]: slot[1] for slot in msg["attrs"] if slot[0] in wanted}


_LINK_ATTRS = frozenset(
    [
        "IFLA_LINKINFO",
        "IFLA_STATS64",
        "IFLA_IFNAME",
        "IFLA_MTU",
        "IFLA_IFALIAS",
        "IFLA_MASTER",
        "IFLA_LINK",
        "IFLA_ADDRESS",
    ]
)
_ROUTE_ATTRS = frozenset(["RTA_TABLE", "RTA_DST", "RTA_OIF", "RTA_GATEWAY"])
_RULE_ATTRS = frozenset(["FRA_PRIORITY", "FRA_TABLE", "FRA_SRC", "FRA_DST", "FRA_IIFNAME"])


def _parse_link(msg: Any) -> LinkInfo:
    attrs = _attrs(msg, _LINK_ATTRS)
    info = attrs.get("IFLA_LINKINFO")
    kind = info.get("IFLA_INFO_KIND") if info is not None else None
    vid = None
    if kind == "vlan" and info is not None:
        data = info.get("IFLA_INFO_DATA")
        vid = data.get("IFLA_VLAN_ID") if data is not None else None
    stats = attrs.get("IFLA_STATS64")

    def count(name: str) -> int:
        return int(stats[name]) if stats is not None else 0

    return LinkInfo(
        index=int(msg["index"]),
        name=str(attrs.get("IFLA_IFNAME")),
        up=bool(msg["flags"] & IFF_UP),
        mtu=int(attrs.get("IFLA_MTU") or 0),
        alias=attrs.get("IFLA_IFALIAS"),
        link_kind=kind,
        master=attrs.get("IFLA_MASTER"),
        parent=attrs.get("IFLA_LINK"),
        vid=vid,
        rx_bytes=count("rx_bytes"),
        tx_bytes=count("tx_bytes"),
        rx_packets=count("rx_packets"),
        tx_packets=count("tx_packets"),
        mac=attrs.get("IFLA_ADDRESS"),
    )


def read_links(nl: Netlink) -> dict[str, LinkInfo]:
    try:
        links = {link.name: link for link in map(_parse_link, nl.ipr.get_links())}
    except NetlinkError as err:
        raise _fail("listing links", err) from err
    nl.remember(links)
    return links


def read_addresses(nl: Netlink, links: dict[str, LinkInfo], devs: set[str]) -> list[Address]:
    names = {links[d].index: d for d in devs if d in links}
    if not names:
        return []
    try:
        msgs = nl.ipr.get_addr(family=AF_INET)
    except NetlinkError as err:
        raise _fail("listing addresses", err) from err
    return [
        Address(dev=names[m["index"]], cidr=f"{m.get('IFA_ADDRESS')}/{m['prefixlen']}")
        for m in msgs
        if m["index"] in names
    ]


def read_routes(nl: Netlink, links: dict[str, LinkInfo], ranges: OwnedRanges) -> list[Route]:
    by_index = {link.index: link.name for link in links.values()}
    try:
        msgs = nl.ipr.get_routes(family=AF_INET, table=None)
    except NetlinkError as err:
        raise _fail("listing routes", err) from err
    routes = []
    for m in msgs:
        # The header holds tables up to 255 and 252 ("compat") for larger ones: ours
        # are all larger, so most of the local and main tables are skipped unparsed.
        if m["table"] != RT_TABLE_COMPAT and not ranges.owns_table(m["table"]):
            continue
        attrs = _attrs(m, _ROUTE_ATTRS)
        table = attrs.get("RTA_TABLE") or m["table"]
        if not ranges.owns_table(table):
            continue
        dst = f"{attrs.get('RTA_DST') or ANY_IPV4}/{m['dst_len']}"
        oif = attrs.get("RTA_OIF")
        routes.append(
            Route(
                table=table,
                dst=dst,
                route_type="unreachable" if m["type"] == RTN_UNREACHABLE else "unicast",
                gateway=attrs.get("RTA_GATEWAY"),
                dev=by_index.get(oif, f"if{oif}") if oif is not None else None,
            )
        )
    return routes


def read_rules(nl: Netlink, ranges: OwnedRanges) -> list[Rule]:
    try:
        msgs = nl.ipr.get_rules(family=AF_INET)
    except NetlinkError as err:
        raise _fail("listing ip rules", err) from err
    rules = []
    for m in msgs:
        attrs = _attrs(m, _RULE_ATTRS)
        priority = attrs.get("FRA_PRIORITY") or 0
        table = attrs.get("FRA_TABLE") or m["table"]
        if not ranges.owns_rule(priority, table):
            continue
        src, dst = attrs.get("FRA_SRC"), attrs.get("FRA_DST")
        rules.append(
            Rule(
                priority=priority,
                table=table,
                src=f"{src}/{m['src_len']}" if src else None,
                iif=attrs.get("FRA_IIFNAME"),
                dst=f"{dst}/{m['dst_len']}" if dst else None,
            )
        )
    return rules


def address(nl: Netlink, command: str, addr: Address) -> None:
    ip, _, prefix = addr.cidr.partition("/")
    try:
        nl.ipr.addr(command, index=nl.index(addr.dev), address=ip, prefixlen=int(prefix))
    except NetlinkError as err:
        raise _fail(f"{command} {addr.describe()}", err) from err


def route(nl: Netlink, command: str, r: Route) -> None:
    args: dict[str, Any] = {"dst": r.dst, "table": r.table}
    if r.route_type == "unreachable":
        args.update(type="unreachable", scope=RT_SCOPE_UNIVERSE)
    else:
        args["scope"] = RT_SCOPE_UNIVERSE if r.gateway else RT_SCOPE_LINK
        if r.gateway:
            args["gateway"] = r.gateway
        if r.dev:
            args["oif"] = nl.index(r.dev)
    try:
        nl.ipr.route(command, **args)
    except NetlinkError as err:
        if command == "del" and err.code == errno.ESRCH:
            return  # gone with its interface already
        raise _fail(f"{command} {r.describe()}", err) from err


def rule(nl: Netlink, command: str, r: Rule) -> None:
    args: dict[str, Any] = {"priority": r.priority, "table": r.table, "family": AF_INET}
    if r.src:
        ip, _, prefix = r.src.partition("/")
        args.update(src=ip, src_len=int(prefix))
    if r.dst:
        ip, _, prefix = r.dst.partition("/")
        args.update(dst=ip, dst_len=int(prefix))
    if r.iif:
        args["iifname"] = r.iif
    try:
        nl.ipr.rule(command, **args)
    except NetlinkError as err:
        raise _fail(f"{command} {r.describe()}", err) from err


def change(nl: Netlink, what: Change) -> None:
    """Carry out the creation or deletion of an address, route or rule."""
    res = what.resource
    command = "add" if what.action == Action.CREATE else "del"
    if isinstance(res, Address):
        address(nl, command, res)
    elif isinstance(res, Route):
        route(nl, command, res)
    elif isinstance(res, Rule):
        rule(nl, command, res)
    else:
        raise TypeError(f"not a netlink object: {res.describe()}")


def set_link(nl: Netlink, name: str, **attrs: Any) -> None:
    """``ip link set``: state="up", mtu=..., master=<index>, ifalias=..."""
    try:
        nl.ipr.link("set", index=nl.index(name), **attrs)
    except NetlinkError as err:
        raise _fail(f"setting {', '.join(attrs)} of {name}", err) from err


def add_link(nl: Netlink, name: str, kind: str, **attrs: Any) -> None:
    nl.forget(name)
    try:
        nl.ipr.link("add", ifname=name, kind=kind, **attrs)
    except NetlinkError as err:
        raise _fail(f"creating {kind} {name}", err) from err


def add_vlan(nl: Netlink, name: str, parent: str, vid: int) -> None:
    """Create ``name``, an 802.1Q sub-interface of ``parent`` for VLAN ``vid``."""
    nl.forget(name)
    try:
        nl.ipr.link("add", ifname=name, kind="vlan", link=nl.index(parent), vlan_id=vid)
    except NetlinkError as err:
        if err.code == errno.EOPNOTSUPP:
            raise BackendUnavailable(
                f"kernel lacks 802.1Q (8021q) support: cannot create VLAN interface "
                f"{name} on {parent}; load the 8021q module, or use an Open vSwitch "
                "trunk (kind 'ovs') for this node",
                code="kernel_lacks_8021q",
                interface=name,
            ) from err
        raise _fail(f"creating VLAN interface {name} on {parent}", err) from err


def del_link(nl: Netlink, name: str) -> None:
    nl.forget(name)
    found = nl.ipr.link_lookup(ifname=name)
    if not found:
        return
    try:
        nl.ipr.link("del", index=found[0])
    except NetlinkError as err:
        raise _fail(f"deleting {name}", err) from err
