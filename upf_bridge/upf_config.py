"""Open5GS ``upf.yaml`` session entries for the tenant VNets.

Open5GS allocates UE addresses from ``upf.session`` entries: each names a UE pool
(``subnet``), the address the UPF keeps on its tun device (``gateway``, the pool's
first host), the DNN the pool serves and the tun device (``dev``). One entry is
rendered per (UE pool, DNN) of every VNet, so the UPF hands out exactly the pools
that Towerbox steers into each tenant's VNet.

The YAML is written by hand, not with a YAML library: the values are IP networks
and addresses (plain scalars) and validated DNN and device names, which are written
double-quoted so that no DNN ("on", "1.5") can be read back as a bool or a number.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network

from upf_bridge.model import VNet

DEFAULT_DEV = "ogstun"
HEADER = "# Rendered by Towerbox from the tenant VNets; edits here are overwritten."


@dataclass(frozen=True)
class SessionEntry:
    subnet: IPv4Network
    gateway: IPv4Address
    dnn: str | None
    dev: str
    vnet: str  # "tenant/name", written as a comment
    vlan: int


def session_entries(vnets: Iterable[VNet], *, default_dev: str = DEFAULT_DEV) -> list[SessionEntry]:
    entries = []
    for vnet in sorted(vnets, key=lambda v: v.key):
        dev = vnet.upf_dev or default_dev
        dnns: tuple[str | None, ...] = vnet.dnns or (None,)
        for pool in vnet.ue_pools:
            entries += [
                SessionEntry(pool, next(pool.hosts()), dnn, dev, vnet.key, vnet.vlan)
                for dnn in dnns
            ]
    return entries


def _quoted(value: str) -> str:
    # A JSON string of printable ASCII is a valid YAML double-quoted scalar.
    return json.dumps(value, ensure_ascii=True)


def render_sessions(entries: Iterable[SessionEntry], indent: int = 2) -> list[str]:
    """The ``session:`` block's lines, indented for a place under ``upf:``."""
    pad = " " * indent
    lines = [f"{pad}session:"]
    for e in entries:
        lines.append(f"{pad}  # VNet {e.vnet}, VLAN {e.vlan}")
        lines.append(f"{pad}  - subnet: {e.subnet}")
        lines.append(f"{pad}    gateway: {e.gateway}")
        if e.dnn is not None:
            lines.append(f"{pad}    dnn: {_quoted(e.dnn)}")
        lines.append(f"{pad}    dev: {_quoted(e.dev)}")
    if len(lines) == 1:
        lines[0] += " []"
    return lines


def render_upf_yaml(
    vnets: Iterable[VNet],
    *,
    default_dev: str = DEFAULT_DEV,
    pfcp_address: IPv4Address | None = None,
    gtpu_address: IPv4Address | None = None,
) -> str:
    """A ``upf.yaml`` (or the part of one) with the VNets' session entries."""
    lines = [HEADER, "upf:"]
    for section, address in (("pfcp", pfcp_address), ("gtpu", gtpu_address)):
        if address is not None:
            lines += [f"  {section}:", "    server:", f"      - address: {address}"]
    lines += render_sessions(session_entries(vnets, default_dev=default_dev))
    return "\n".join(lines) + "\n"
