"""The "top" view: the node's VMs and GPU slices by current use, from the monitor's
last sweep, and the GPU activity behind a VM's chart."""

from __future__ import annotations

import msgspec

# What ``GET /api/v1/top?sort=`` and ``towerbox top --sort`` accept; busiest first for
# all but ``name``. ``net`` and ``disk`` are both directions together.
SORT_KEYS = ("cpu", "memory", "net", "disk", "gpu", "name")


class SliceActivity(msgspec.Struct, frozen=True):
    """A GPU or MIG slice's figures in one sweep."""

    gpu: str  # GPU UUID
    pci_address: str
    profile: str | None  # MIG profile; None for a whole GPU
    start: int | None  # MIG start slot; None for a whole GPU
    # Engine busy share, 0..100: per MIG instance where the driver reports it ("mig"),
    # else the whole GPU's ("gpu"); None where the driver reports neither.
    utilization_pct: float | None
    scope: str  # "mig" or "gpu": what utilization_pct covers
    memory_used_bytes: int | None


class TopSlice(SliceActivity, frozen=True):
    role: str | None  # vran, b2b; None for a whole GPU
    owner: str | None  # the VM (by name) or process claim holding it; None when free
    tenant: str | None  # the owner's tenant; None for the node's own


class TopVm(msgspec.Struct, frozen=True):
    name: str
    tenant: str | None
    role: str
    state: str
    vcpus: int
    cpu_pct: float  # of its vCPUs: 100 = all busy
    memory_bytes: int  # the guest's use where its balloon driver says, else its size
    rss_bytes: int  # QEMU's resident memory on the host
    # Rates over the last two sweeps, bytes per second; 0 until there are two.
    net_rx_bps: float
    net_tx_bps: float
    disk_read_bps: float
    disk_write_bps: float
    gpu: SliceActivity | None  # the slice or GPU it holds, when it holds one


class NodeTop(msgspec.Struct, frozen=True):
    taken_at: float  # wall clock of the sweep; 0 before the first one
    sort: str
    vms: list[TopVm]
    slices: list[TopSlice]


class GpuPoint(msgspec.Struct, frozen=True, gc=False):
    """One sweep of the slice a VM held, for its chart."""

    at: float
    utilization_pct: float | None
    memory_used_bytes: int | None
