"""What the alert rules and the node-health metrics read: one set of figures,
gathered once per evaluation or scrape by ``appliance.services.health_readings``."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class VmReading:
    name: str
    uuid: str
    tenant: str | None
    role: str
    state: str  # as the API shows it: running, shutoff, unresponsive, missing, ...
    desired: str  # running | stopped
    restarts: int = 0  # restarts the node made within the restart-loop window
    unresponsive_since: float | None = None  # wall clock


@dataclass(frozen=True)
class GpuReading:
    uuid: str
    name: str
    drift: tuple[str, ...] = ()  # one line per instance that differs from the committed layout
    missing: int = 0  # committed instances not on the GPU


@dataclass(frozen=True)
class HugepageReading:
    numa_node: int
    size: str  # "2M", "1G"
    free: int  # pages no VM holds
    total: int


@dataclass(frozen=True)
class JobReading:
    job: str
    next_run: float | None = None  # wall clock; None when not scheduled
    last_run: float | None = None
    last_success: bool | None = None  # None before its first run
    error: str = ""  # why the last run failed


@dataclass(frozen=True)
class NodeHealth:
    """The node-wide figures: cheap to read (memory, one indexed query, statvfs)."""

    hugepages: tuple[HugepageReading, ...] = ()
    cores_free: dict[int, int] = field(default_factory=dict)  # NUMA node -> whole cores
    journal_head: int = 0
    journal_unacked: int = 0
    journal_oldest_unacked_age_s: float = 0.0
    wan_up: bool = False
    wan_last_sync: float | None = None  # wall clock of the agent's last sync
    disk_free: int | None = None
    disk_size: int | None = None
    jobs: tuple[JobReading, ...] = ()
    artifact_failures: int = 0  # since the daemon started
    apply_failures: dict[str, int] = field(default_factory=dict)  # by kind, since start


@dataclass(frozen=True)
class NodeReadings:
    at: float  # wall clock
    health: NodeHealth
    vms: tuple[VmReading, ...] = ()
    gpus: tuple[GpuReading, ...] = ()
