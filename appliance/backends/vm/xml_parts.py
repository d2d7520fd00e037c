"""Small, pure helpers for the domain XML: cpusets, PCI addresses, disk target names."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from appliance.domain.vm_spec import check_pci_address
from towerbox_core.errors import InvalidInput

_DISK_PREFIX = {"virtio": "vd", "sata": "sd", "scsi": "sd"}  # sata and scsi share sdX
_LETTERS = "abcdefghijklmnopqrstuvwxyz"


def compact_cpuset(cpus: Iterable[int]) -> str:
    """CPU numbers as a libvirt cpuset with ranges: [2, 3, 4, 7] -> "2-4,7"."""
    ordered = sorted(set(cpus))
    if not ordered:
        raise ValueError("an empty cpuset has no libvirt spelling")
    if ordered[0] < 0:
        raise ValueError(f"CPU number {ordered[0]} is negative")
    parts: list[str] = []
    start = prev = ordered[0]
    for cpu in [*ordered[1:], None]:
        if cpu is not None and cpu == prev + 1:
            prev = cpu
            continue
        parts.append(str(start) if start == prev else f"{start}-{prev}")
        if cpu is not None:
            start = prev = cpu
    return ",".join(parts)


@dataclass(frozen=True)
class PciAddress:
    domain: int
    bus: int
    slot: int
    function: int

    def xml_attrs(self) -> dict[str, str]:
        """Attributes of a PCI <address>. A <hostdev> source address takes exactly these;
        an <interface type='hostdev'> one needs type='pci' as well."""
        return {
            "domain": f"0x{self.domain:04x}",
            "bus": f"0x{self.bus:02x}",
            "slot": f"0x{self.slot:02x}",
            "function": f"0x{self.function:x}",
        }


def parse_pci_address(addr: str, field: str = "pci_devices") -> PciAddress:
    """Parse a sysfs-style address "0000:3b:00.0" (lower-case hex, as sysfs names it)."""
    check_pci_address(addr, field)
    dom, bus, rest = addr.split(":")
    slot, function = rest.split(".")
    return PciAddress(int(dom, 16), int(bus, 16), int(slot, 16), int(function, 16))


def disk_targets(buses: Sequence[str]) -> list[str]:
    """Guest device names in disk order: vda, vdb... for virtio; sda, sdb... otherwise."""
    used = dict.fromkeys(set(_DISK_PREFIX.values()), 0)
    names = []
    for i, bus in enumerate(buses):
        prefix = _DISK_PREFIX.get(bus)
        if prefix is None:
            raise InvalidInput(
                f"disk bus {bus!r} is not one of virtio, sata, scsi",
                code="invalid_spec",
                field=f"disks[{i}].bus",
            )
        index = used[prefix]
        if index >= len(_LETTERS):
            raise InvalidInput("too many disks on one bus", code="invalid_spec", field="disks")
        names.append(prefix + _LETTERS[index])
        used[prefix] = index + 1
    return names
