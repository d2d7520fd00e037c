"""The VM backend interface and the records it returns.

One implementation, over libvirt, serves both the real node (qemu:///system) and its
simulated twin (test:///default); the contract tests run the same behaviours on both.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol

import msgspec

from towerbox_core.errors import TowerboxError


class AgentUnsupported(TowerboxError):
    """The backend cannot run guest-agent commands at all (the libvirt test driver):
    a guest-agent health check can never pass there, so it is refused up front."""

    code = "agent_unsupported"
    status = 501


class DomainState(enum.StrEnum):
    RUNNING = "running"
    PAUSED = "paused"
    SHUTTING_DOWN = "shutting-down"
    SHUTOFF = "shutoff"
    CRASHED = "crashed"
    SUSPENDED = "suspended"
    BLOCKED = "blocked"
    UNKNOWN = "unknown"
    # Never libvirt's: the monitor's word for a live domain whose QEMU stopped
    # answering (its libvirt state still reads running).
    UNRESPONSIVE = "unresponsive"


@dataclass(frozen=True)
class DomainStatus:
    uuid: str
    name: str
    state: DomainState
    # The owning node's name from Towerbox's metadata; None for domains not ours.
    owner_node: str | None
    crashed: bool = False  # shut off or stopped because the guest crashed


class DomainStats(msgspec.Struct, frozen=True, gc=False):
    """One domain's figures from a bulk stats call.

    A msgspec struct outside the garbage collector: a sweep makes one per domain,
    and cheap creation keeps the sweep linear in the number of domains.
    """

    uuid: str
    name: str
    state: DomainState
    vcpus: int = 0
    cpu_time_ns: int = 0
    memory_kib: int = 0  # balloon current (what the guest has)
    rss_kib: int = 0  # what QEMU uses on the host
    # What the guest uses (its balloon driver's available less unused); None until a
    # guest driver reports them: only then is a guest's own memory use known.
    guest_used_kib: int | None = None
    net_rx_bytes: int = 0
    net_tx_bytes: int = 0
    disk_read_bytes: int = 0
    disk_write_bytes: int = 0
    net_rx_packets: int = 0
    net_tx_packets: int = 0
    disk_read_requests: int = 0
    disk_write_requests: int = 0
    # How long a command has held the domain's QEMU monitor (0: free). While it is
    # held, the figures that need the monitor (memory, disks) are left out of the
    # stats; one held for long means a QEMU that no longer answers.
    monitor_busy_ms: int = 0
    # Only the state was read (the stats call got no answer in time): no figures.
    partial: bool = False


# How long one stats call may wait before it is given up and asked again.
STATS_DEADLINE_S = 2.0


class VmBackend(Protocol):
    @property
    def uri(self) -> str: ...

    @property
    def simulated(self) -> bool: ...

    @property
    def virt_type(self) -> str:
        """The <domain type> to define: kvm, qemu (emulation) or test."""
        ...

    def describe(self) -> str: ...

    def define(self, xml: str) -> None: ...

    def undefine(self, uuid: str) -> None: ...

    def start(self, uuid: str) -> None: ...

    def shutdown(self, uuid: str) -> None:
        """Ask the guest to power off (ACPI); returns at once."""
        ...

    def destroy(self, uuid: str) -> None:
        """Pull the plug."""
        ...

    def reboot(self, uuid: str) -> None: ...

    def set_autostart(self, uuid: str, enabled: bool) -> None: ...

    def pin_vcpus(self, uuid: str, cpus: tuple[int, ...]) -> None:
        """Let every vCPU and the emulator threads float over ``cpus`` (live and saved)."""
        ...

    def status(self, uuid: str) -> DomainStatus | None: ...

    def list_domains(self) -> list[DomainStatus]: ...

    def addresses(self, uuid: str) -> list[str]:
        """The guest's IP addresses from DHCP leases or ARP; empty when none is known."""
        ...

    @property
    def guest_agent_unsupported(self) -> str | None:
        """Why this backend cannot run QEMU guest-agent commands; None when it can."""
        ...

    def ping_guest_agent(self, uuid: str, timeout_s: float) -> None:
        """Send ``guest-ping`` over the VM's guest-agent channel; return once it answers.

        Raises a TowerboxError saying why not: no agent connected, no answer in
        ``timeout_s``, no channel in the domain, or a backend that cannot do it.
        """
        ...

    def bulk_stats(self, deadline_s: float = STATS_DEADLINE_S) -> list[DomainStats]:
        """Every domain's stats in one call (libvirt's getAllDomainStats), never held
        up by one domain: a call that gets no answer within ``deadline_s`` is given up
        and asked again, passing over the domain it was waiting on."""
        ...
