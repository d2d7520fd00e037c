"""The per-interface IPv4 settings of a VNet's gateway, in ``/proc/sys``.

The one place in upf_bridge that reads or writes ``/proc/sys``; ``PROCFS`` can point
elsewhere in tests.
"""

from __future__ import annotations

from pathlib import Path

from towerbox_core.errors import BackendError

PROCFS = Path("/proc")

# A VNet's gateway interface forwards IPv4, and answers ARP only for its own
# addresses: the node's other addresses (another tenant's gateway among them) are
# none of the tenant's business.
_GATEWAY_MODE = {"forwarding": ("1", "0"), "arp_ignore": ("1", "0")}


def _sysctl(name: str, key: str) -> Path:
    return PROCFS / "sys/net/ipv4/conf" / name / key


def read_gateway_mode(name: str) -> bool:
    try:
        return all(
            _sysctl(name, key).read_text().strip() == on for key, (on, _) in _GATEWAY_MODE.items()
        )
    except OSError:
        return False  # the interface is gone or has no IPv4 configuration yet


def write_gateway_mode(name: str, enabled: bool) -> None:
    try:
        for key, (on, off) in _GATEWAY_MODE.items():
            _sysctl(name, key).write_text(f"{on if enabled else off}\n")
    except OSError as err:
        raise BackendError(
            f"cannot set gateway mode (IPv4 forwarding, ARP) on {name}: {err}",
            code="sysctl_failed",
        ) from err
