"""Guest addresses from the host's IPv4 neighbour (ARP) table, by the NICs' MACs.

libvirt's own ARP source (``virDomainInterfaceAddresses`` with
``VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_ARP``) fails on libvirt 9.0, Debian 12's, with
"internal error: wrong nlmsg len" whenever the host has neighbours, so a guest on a
bridge whose DHCP server is not libvirt's had no address the node could find. The
kernel lists the same table in ``/proc/net/arp``; a complete entry (flag ATF_COM)
whose hardware address is one of the domain's MACs is that guest's.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

ARP_TABLE = Path("/proc/net/arp")
_ATF_COM = 0x2  # the entry is complete: the MAC answered for the address


def domain_macs(domain_xml: str) -> list[str]:
    """The MAC of each ``<interface>`` in a domain's XML, lower-case, in order."""
    root = ET.fromstring(domain_xml)  # noqa: S314 - libvirt's own output
    macs = []
    for mac in root.iterfind("./devices/interface/mac"):
        address = mac.get("address")
        if address:
            macs.append(address.lower())
    return macs


def addresses_for(macs: list[str], table: str) -> list[str]:
    """The addresses ``table`` (``/proc/net/arp``'s text) gives the MACs, in the
    order of ``macs`` and of the table."""
    by_mac: dict[str, list[str]] = {}
    for line in table.splitlines()[1:]:  # the first line names the columns
        fields = line.split()
        if len(fields) < 6:
            continue
        address, _hw_type, flags, mac = fields[:4]
        try:
            complete = int(flags, 16) & _ATF_COM
        except ValueError:
            continue
        if complete:
            by_mac.setdefault(mac.lower(), []).append(address)
    return [address for mac in macs for address in by_mac.get(mac, [])]


def read_table(path: Path = ARP_TABLE) -> str:
    """The table's text; empty where the host has none (not Linux, no IPv4)."""
    try:
        return path.read_text()
    except OSError:
        return ""
