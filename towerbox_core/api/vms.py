"""VM routes: create, power actions, views, stats."""

from __future__ import annotations

from typing import Any

import msgspec

from towerbox_core.api.gpus import GpuClaim
from towerbox_core.api.top import GpuPoint


class VmCreateRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    # Checked by the appliance, which answers a bad name with 422 ``invalid_name``.
    name: str
    # Catalog entry whose default spec ``spec`` overrides; without one, ``spec`` is
    # the whole VM spec (any VmSpec field but name).
    appliance: str | None = None
    # The entry's version the caller expects: a node whose catalog holds another one
    # refuses with 409 ``catalog_version_unavailable`` instead of making something else.
    appliance_version: str | None = None
    spec: dict[str, Any] = {}
    start: bool = False
    # Values for the appliance's cloud-init template, as its catalog entry declares
    # them (type, limits, secret); anything else is refused with 422 ``unknown_value``.
    values: dict[str, Any] = {}


class ShutdownRequest(msgspec.Struct, forbid_unknown_fields=True):
    # Seconds to wait for the guest's ACPI power-off before forcing it off; the node
    # answers a value outside 0..3600 with 422 ``invalid_timeout``.
    timeout_s: float | None = None


class VmAttention(msgspec.Struct, frozen=True):
    """Why a VM is not as it should be (desired against actual), and since when.

    ``kind``: ``waiting_for_gpu`` (off until a layout gives it a slice),
    ``start_failed`` (its last start failed; ``reason`` has the error), ``draining``
    (being moved to a new slice), ``stopped`` (off outside Towerbox, its restart
    policy leaves it off), ``changed_outside`` (running though it should be stopped),
    ``missing`` (no libvirt domain), ``unresponsive`` (its QEMU does not answer).
    """

    kind: str
    reason: str
    since: str | None  # ISO 8601; None when the node has no record of the change


class VmSummary(msgspec.Struct, frozen=True):
    """A VM as lists and power actions show it."""

    id: str
    name: str
    role: str
    tenant: str | None
    appliance: str | None
    vcpus: int
    memory_mib: int
    desired_state: str
    # libvirt's (running, shutoff...), "missing", or "unresponsive": running, but its
    # QEMU has not answered since ``unresponsive_since`` (wall clock, seconds)
    state: str
    cpu_pct: float | None
    unresponsive_since: float | None
    attention: VmAttention | None  # None: as it should be


class VmShutdown(VmSummary, frozen=True):
    forced: bool  # the guest ignored ACPI until the deadline and was forced off


class VmDetail(VmSummary, frozen=True):
    spec: dict[str, Any]  # the VM spec document as stored
    allocation: dict[str, Any]  # CPUs, NUMA node, hugepages, devices held for it
    gpu: GpuClaim | None  # the MIG slice it holds, when it asked for one
    # The service and role it is a replica of (the service deletes it), or None.
    service: str | None = None
    service_role: str | None = None


class VmSample(msgspec.Struct, frozen=True, gc=False):
    """One point of a VM's history; untracked by the GC, as a node keeps ~360k."""

    at: float  # wall clock, for charts only
    state: str
    cpu_pct: float  # of the VM's vCPUs: 100 = all vCPUs busy
    cpu_time_ns: int
    memory_kib: int
    rss_kib: int
    net_rx_bytes: int
    net_tx_bytes: int
    disk_read_bytes: int
    disk_write_bytes: int
    unresponsive_since: float | None = None  # when state is "unresponsive"
    guest_used_kib: int | None = None  # the guest's own use, where its driver reports it


class VmStats(msgspec.Struct, frozen=True):
    name: str
    current: VmSample | None
    history: list[VmSample]
    # The activity of the MIG slice or GPU it held, one point per sweep while it held
    # one; empty for a VM that holds none.
    gpu: list[GpuPoint] = []
