"""Node routes: health, host inventory with its allocation, the appliance catalog."""

from __future__ import annotations

from typing import Any

import msgspec

from towerbox_core.api.n6 import OvsDatapaths
from towerbox_core.api.versions import NodeVersions


class LibvirtHealth(msgspec.Struct, frozen=True):
    uri: str
    simulated: bool
    virt_type: str
    summary: str
    note: str | None  # why the simulated backend was chosen, if it was


class GpuHealth(msgspec.Struct, frozen=True):
    summary: str
    simulated: bool


class N6Health(msgspec.Struct, frozen=True):
    summary: list[str]  # one line per N6 backend made so far
    # The Open vSwitch datapaths proven at start; None when OVS is not in use here.
    ovs_datapaths: OvsDatapaths | None = None


class BackendsHealth(msgspec.Struct, frozen=True):
    libvirt: LibvirtHealth
    gpu: GpuHealth
    n6: N6Health


class StorageHealth(msgspec.Struct, frozen=True):
    """The state directory's disk: while ``full``, writes answer 507 storage_full."""

    path: str
    free_bytes: int | None
    reserve_bytes: int
    full: bool
    summary: str


class Health(msgspec.Struct, frozen=True):
    status: str  # "ok", or "storage_full" while the state directory's disk is full
    node: str
    uptime_s: float
    backends: BackendsHealth
    summary: list[str]
    last_sweep_at: float | None
    storage: StorageHealth
    # Read once at start: what the agent reports to the registry with its heartbeats.
    versions: NodeVersions = msgspec.field(default_factory=NodeVersions)
    started_at: float | None = None  # the daemon's start, epoch seconds


class HostView(msgspec.Struct, frozen=True):
    # The host inventory (NUMA nodes, cores, hugepages, PCI) and what VMs hold of it;
    # both are large nested documents, shaped by the host.
    inventory: dict[str, Any]
    allocation: dict[str, Any]


class ImageRefView(msgspec.Struct, frozen=True):
    kind: str  # "kernel" or "disk"
    file: str
    initrd: str | None
    url: str | None
    sha256: str | None


class ImageFileStatus(msgspec.Struct, frozen=True):
    present: bool
    size_bytes: int | None


class ImageStatus(msgspec.Struct, frozen=True):
    present: bool
    files: dict[str, ImageFileStatus]
    sha256_ok: bool | None  # None: no hash to check, or a file is missing
    error: str | msgspec.UnsetType = msgspec.UNSET


class CatalogEntryView(msgspec.Struct, frozen=True):
    name: str
    description: str
    version: str
    role: str
    image: ImageRefView
    image_status: ImageStatus
    default_spec: dict[str, Any]  # VM spec fields the entry sets
    # The values a create may give in ``values``, by name: type, default, required,
    # secret and limits, as [cloud_init.values.<name>] declares them.
    values: dict[str, dict[str, Any]] = {}
    model_file: str | None = None  # attached read-only; in the image folder
