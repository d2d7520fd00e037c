"""What the node says about itself: health and backends, host and allocation, catalog."""

from __future__ import annotations

import time
from pathlib import Path

import msgspec

from appliance.backends.host.sysfs_inventory import inventory_to_dict
from appliance.backends.vm.libvirt_backend import LibvirtBackend
from appliance.catalog.images import image_status
from appliance.catalog.model import CatalogEntry
from appliance.domain.allocator import Allocator
from appliance.domain.host import HostInventory
from appliance.services.gpu_layouts import GpuLayoutService
from appliance.services.monitor import Monitor
from appliance.services.n6 import N6Service
from appliance.store.space import MIB, StateSpace
from towerbox_core.api.node import (
    BackendsHealth,
    CatalogEntryView,
    GpuHealth,
    Health,
    HostView,
    ImageRefView,
    ImageStatus,
    LibvirtHealth,
    N6Health,
    StorageHealth,
)
from towerbox_core.api.versions import NodeVersions
from towerbox_core.errors import NotFound


class NodeViews:
    def __init__(
        self,
        *,
        node_name: str,
        image_dir: Path,
        started_at: float,
        backend: LibvirtBackend,
        backend_note: str | None,
        gpus: GpuLayoutService,
        n6: N6Service,
        monitor: Monitor,
        host: HostInventory,
        allocator: Allocator,
        catalog: dict[str, CatalogEntry],
        space: StateSpace,
        versions: NodeVersions | None = None,
    ) -> None:
        self._versions = versions or NodeVersions()
        self._node = node_name
        self._image_dir = image_dir
        self._started_at = started_at
        self._backend = backend
        self._backend_note = backend_note
        self._gpus = gpus
        self._n6 = n6
        self._monitor = monitor
        self._host = host
        self._allocator = allocator
        self._catalog = catalog  # the VM service's own dict: central entries show at once
        self._space = space

    def health(self) -> Health:
        backend = self._backend
        libvirt_line = f"libvirt: {backend.describe()}"
        storage = self.storage()
        return Health(
            status="storage_full" if storage.full else "ok",
            node=self._node,
            uptime_s=round(time.time() - self._started_at, 1),
            backends=BackendsHealth(
                libvirt=LibvirtHealth(
                    uri=backend.uri,
                    simulated=backend.simulated,
                    virt_type=backend.virt_type,
                    summary=libvirt_line,
                    note=self._backend_note,
                ),
                gpu=GpuHealth(
                    summary=f"GPU: {self._gpus.line}", simulated=self._gpus.backend.simulated
                ),
                # The OVS backend is probed at start; others with their first trunk.
                n6=N6Health(
                    summary=self._n6.describe() or ["N6: no trunk declared"],
                    ovs_datapaths=self._n6.ovs_datapaths(),
                ),
            ),
            summary=[libvirt_line, storage.summary],
            last_sweep_at=self._monitor.snapshot.taken_at or None,
            storage=storage,
            versions=self._versions,
            started_at=self._started_at,
        )

    def storage(self) -> StorageHealth:
        space = self._space
        free = space.free_bytes()
        full = space.full(free)
        if free is None:
            line = f"storage: free space of {space.state_dir} unknown"
        elif full:
            line = f"storage: full ({free // MIB} MiB free in {space.state_dir}); writes refused"
        else:
            line = f"storage: {free // MIB} MiB free in {space.state_dir}"
        return StorageHealth(
            path=str(space.state_dir),
            free_bytes=free,
            reserve_bytes=space.reserve_bytes,
            full=full,
            summary=line,
        )

    def host(self) -> HostView:
        return HostView(inventory=inventory_to_dict(self._host), allocation=self._allocator.usage())

    def catalog(self) -> list[CatalogEntryView]:
        """Every entry with its image status (hashing may take a while: a worker thread)."""
        return [self.catalog_entry(name) for name in sorted(self._catalog)]

    def catalog_entry(self, name: str) -> CatalogEntryView:
        entry = self._catalog.get(name)
        if entry is None:
            raise NotFound(f"no appliance {name!r} in the catalog", code="unknown_appliance")
        image = entry.image
        return CatalogEntryView(
            name=entry.name,
            description=entry.description,
            version=entry.version,
            role=entry.role,
            image=ImageRefView(
                kind=image.kind,
                file=image.file,
                initrd=image.initrd,
                url=image.url,
                sha256=image.sha256,
            ),
            image_status=msgspec.convert(image_status(entry, self._image_dir), ImageStatus),
            default_spec=entry.default_spec,
            values={n: msgspec.to_builtins(d) for n, d in entry.cloud_init_values.items()},
            model_file=entry.model_file,
        )
