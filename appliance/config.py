"""Daemon configuration: its sections and their defaults.

``TOWERBOX_<SECTION>_<KEY>`` overrides ``[section] key`` (``TOWERBOX_API_PORT=9443``);
top-level keys drop the section (``TOWERBOX_STATE_DIR``). Tests and ``make run`` use
this so they never need a file under /etc. Reading a file and checking what it says
is appliance.config_load's.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from appliance.domain.alerts.rules import AlertBounds
from appliance.domain.gpu.target import LayoutRequest
from towerbox_core.api.tenants import Quotas
from towerbox_core.errors import ConfigError

DEFAULT_CONFIG_PATH = Path("/etc/towerbox/appliance.toml")


@dataclass(frozen=True)
class ApiConfig:
    host: str = "127.0.0.1"
    port: int = 8443
    # Local clients (CLI, UI, agent) may use the unix socket instead of TCP.
    socket: str = "/run/towerbox/appliance.sock"
    tls_cert: str = ""
    tls_key: str = ""
    # Login tokens, and the longest an API token lives unless an infra-admin made it.
    token_ttl_s: int = 12 * 3600
    # Hostile clients: bodies past this get 413 body_too_large.
    max_body_bytes: int = 1024 * 1024
    # Per client (a token that authenticated, else the remote address): a token bucket;
    # past it, 429 rate_limited.
    # The UI polls every 1-3 s per page and the agent once a second: far below these.
    rate_per_s: float = 50.0
    rate_burst: int = 200
    # Idle keep-alive connections close after this; connections past max_connections
    # get 503 instead of memory.
    keep_alive_s: float = 5.0
    max_connections: int = 1000
    # A client must finish sending a request's headers within header_timeout_s (else
    # the connection is closed) and a request's body within body_timeout_s (else 408
    # body_timeout). With body_min_bytes_per_s above 0 the body may instead take as
    # long as it keeps that pace, stalling body_timeout_s at most in all
    # (towerbox_core/http_protocol.py); bodies here are small, so 0: a fixed bound.
    header_timeout_s: float = 10.0
    body_timeout_s: float = 30.0
    body_min_bytes_per_s: float = 0.0


@dataclass(frozen=True)
class LibvirtConfig:
    # "auto": qemu:///system when libvirtd answers, else the test driver (simulated).
    uri: str = "auto"
    # "auto": kvm when the CPU has vmx/svm and /dev/kvm exists, else qemu emulation.
    virt_type: str = "auto"
    shutdown_timeout_s: float = 60.0


@dataclass(frozen=True)
class HostConfig:
    sysfs_root: str = "/sys"
    procfs_root: str = "/proc"
    dev_root: str = "/dev"
    # Host housekeeping CPUs, never given to VMs: e.g. "0,1" or "0-1,16-17".
    reserved_cpus: str = ""
    # Admission, for every VM: memory not backed by hugepages is counted against the
    # host's memory less its hugepage pools and this reserve, times the overcommit
    # ratio (1.0: none); disks against the free space of the disk folder and a per-VM cap.
    memory_reserve_mib: int = 2048
    memory_overcommit: float = 1.0
    max_vm_disk_gib: int = 4096


@dataclass(frozen=True)
class JobsConfig:
    monitor_interval_s: float = 5.0
    reconcile_interval_s: float = 15.0
    history_samples: int = 360  # per VM, for charts: 30 min at the default interval
    # A sweep's stats call that gets no answer in this time is given up and asked
    # again, passing over the domain whose QEMU is not answering.
    stats_deadline_s: float = 2.0
    # A VM whose QEMU monitor has not answered a command for this long is shown (and
    # journalled) as unresponsive.
    unresponsive_after_s: float = 5.0


@dataclass(frozen=True)
class JournalConfig:
    # Past either bound the journal is compacted to the latest entry per object, so a
    # week without WAN cannot fill the disk; newer entries are always kept whole.
    keep_entries: int = 200_000
    keep_days: float = 7.0
    compact_interval_s: float = 300.0


class GpuScheduleConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    cron: str
    layout: str
    gpu: str = ""  # a GPU UUID; "" for every GPU with MIG


@dataclass(frozen=True)
class GpuConfig:
    # "auto": NVML when a driver answers, else the simulator; "nvml"; "simulated".
    backend: str = "auto"
    simulated_models: str = "H100-80GB"  # comma-separated catalog keys, one per GPU
    # Named targets, e.g. [gpu.layouts.offpeak] counts = {"1g.10gb" = 4}. The
    # environment gives the whole table as JSON (TOWERBOX_GPU_LAYOUTS).
    layouts: dict[str, LayoutRequest] = field(default_factory=dict)
    # e.g. [gpu.schedules.offpeak] cron = "0 22 * * *", layout = "offpeak", and an
    # optional gpu = "GPU-..." (every MIG GPU when left out). Cron is five fields, UTC.
    schedules: dict[str, GpuScheduleConfig] = field(default_factory=dict)
    # How long a B2B VM on a changing slice gets to shut down before an apply gives
    # up and leaves the GPU as it was.
    drain_timeout_s: float = 60.0
    # Whether the simulated GPUs offer MIG-backed vGPUs to VMs (a demo node does); real
    # GPUs offer them when NVIDIA's vGPU manager shows mdev types in sysfs.
    simulated_vgpu: bool = True


@dataclass(frozen=True)
class NetConfig:
    # "auto": the real Open vSwitch / Linux backend when it answers, else simulated;
    # "real": refuse to fall back; "simulated": never touch the host network.
    backend: str = "auto"
    owner: str = "towerbox"  # marker on every port, rule and table Towerbox makes
    # eUPF REST API (e.g. http://127.0.0.1:8080) for PFCP sessions; "" when none.
    eupf_url: str = ""


@dataclass(frozen=True)
class TenantsConfig:
    """The quotas a tenant has until an infra-admin sets its own; -1 is unlimited.

    GPU slices (per MIG profile, e.g. gpu_slices = {"1g.10gb" = 2}), whole GPUs and
    process claims are zero unless set; grants (pinned cores, hugepages, devices) are
    never defaults: an infra-admin grants them per tenant.
    """

    vms: int = 10
    vcpus: int = 32
    memory_mib: int = 65536
    disk_gib: int = 500
    gpu_slices: dict[str, int] = field(default_factory=dict)
    gpu_compute_slices: int = 0
    whole_gpus: int = 0
    vnets: int = 4
    process_claims: int = 0

    def quotas(self) -> Quotas:
        return msgspec.convert(asdict(self), Quotas)


@dataclass(frozen=True)
class ArtifactsConfig:
    """Fetching artifacts (images, kernels, model bundles) into the image folder."""

    bandwidth_bytes_s: int = 0  # node-wide download cap; 0: none
    concurrency: int = 2  # fetches at once; more wait their turn
    # A cut transfer (or an origin answering 502/503/504) is tried again up to this many
    # times in a row that take the file no further, waiting retry_wait_s, then twice as
    # long each time (at most 60 s): the defaults ride out some 30 s of a lost link or a
    # restarting origin.
    retries: int = 5
    retry_wait_s: float = 1.0
    timeout_s: float = 30.0  # connect and read timeout of one request
    # Off-peak pre-cache window: opens at each cron time (five fields, UTC) and lasts
    # precache_minutes; missing artifacts are fetched only inside it. "": no window.
    precache_cron: str = ""
    precache_minutes: int = 240
    precache_check_s: float = 60.0  # how often the daemon looks whether it is open
    # The edge agent's blob relay (its relay_socket): "registry:<sha256>" artifacts are
    # fetched through it from the fleet registry. "": this node has no registry origin.
    registry_relay: str = "/run/towerbox-agent/blobs.sock"


@dataclass(frozen=True)
class Config:
    node_name: str = "towerbox"
    state_dir: str = "/var/lib/towerbox"
    image_dir: str = "/var/lib/towerbox/images"
    catalog_dir: str = ""  # default: the images/catalog folder shipped with Towerbox
    # Writes (API, jobs) are refused with 507 storage_full while the state directory's
    # disk has less than this free, so SQLite never meets a full disk mid-transaction.
    state_reserve_mib: int = 64
    log_level: str = "INFO"
    api: ApiConfig = field(default_factory=ApiConfig)
    libvirt: LibvirtConfig = field(default_factory=LibvirtConfig)
    host: HostConfig = field(default_factory=HostConfig)
    jobs: JobsConfig = field(default_factory=JobsConfig)
    n6: NetConfig = field(default_factory=NetConfig)
    gpu: GpuConfig = field(default_factory=GpuConfig)
    journal: JournalConfig = field(default_factory=JournalConfig)
    tenants: TenantsConfig = field(default_factory=TenantsConfig)
    artifacts: ArtifactsConfig = field(default_factory=ArtifactsConfig)
    alerts: AlertBounds = field(default_factory=AlertBounds)

    @property
    def db_path(self) -> Path:
        return Path(self.state_dir) / "appliance.db"

    @property
    def disk_dir(self) -> Path:
        return Path(self.state_dir) / "disks"

    @property
    def console_dir(self) -> Path:
        return Path(self.state_dir) / "console"

    @property
    def admin_password_file(self) -> Path:
        return Path(self.state_dir) / "admin-password"

    @property
    def cli_token_file(self) -> Path:
        return Path(self.state_dir) / "cli-token"

    def resolved_catalog_dir(self) -> Path:
        if self.catalog_dir:
            return Path(self.catalog_dir)
        return Path(__file__).resolve().parent.parent / "images" / "catalog"


SECTIONS: dict[str, type[Any]] = {
    "api": ApiConfig,
    "libvirt": LibvirtConfig,
    "host": HostConfig,
    "jobs": JobsConfig,
    "n6": NetConfig,
    "gpu": GpuConfig,
    "journal": JournalConfig,
    "tenants": TenantsConfig,
    "artifacts": ArtifactsConfig,
    "alerts": AlertBounds,
}


def parse_cpu_list(text: str) -> frozenset[int]:
    """Parse "0-3,8,10-11" as Linux writes CPU lists."""
    cpus: set[int] = set()
    for part in filter(None, (p.strip() for p in text.split(","))):
        lo, _, hi = part.partition("-")
        try:
            start, end = int(lo), int(hi or lo)
        except ValueError as err:
            raise ConfigError(f"bad CPU list {text!r}") from err
        if end < start:
            raise ConfigError(f"bad CPU range {part!r} in {text!r}")
        cpus.update(range(start, end + 1))
    return frozenset(cpus)
