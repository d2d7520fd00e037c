"""Each GPU's telemetry, read once per monitor sweep into the node snapshot.

The sweep reads every GPU's power, energy and engine activity (and, with MIG on,
where each reported instance sits) so that metering and, later, /metrics work from
the same figures. A GPU whose read fails is left out of that sweep and never stops
it: the failure is logged once per GPU, operation and error code, since a driver
that refuses a read refuses it every 5 seconds.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from appliance.backends.gpu.protocol import GpuBackend, GpuTelemetry
from towerbox_core.errors import TowerboxError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GpuSample:
    uuid: str
    pci_address: str
    telemetry: GpuTelemetry
    # gpu_instance_id -> (profile, start slot) of the MIG instances the telemetry
    # reports; empty with MIG off, or when not read (``placements_read``).
    placements: dict[int, tuple[str, int]] = field(default_factory=dict)
    # False when MIG is on but where its instances sit could not be read this sweep.
    placements_read: bool = True
    name: str = ""  # as the driver reports it, e.g. "NVIDIA H100 80GB HBM3"


class GpuReader:
    def __init__(self, backend: GpuBackend) -> None:
        self._backend = backend
        # (UUID, PCI address, name) of each GPU: fixed while the daemon runs, read once.
        self._gpus: list[tuple[str, str, str]] | None = None
        self._failures: set[tuple[str, str, str]] = set()

    def read(self) -> dict[str, GpuSample]:
        """This sweep's samples by GPU UUID; GPUs that did not answer are missing."""
        found: dict[str, GpuSample] = {}
        for uuid, pci, name in self._list():
            try:
                telemetry = self._backend.telemetry(uuid)
            except TowerboxError as err:
                self._failed(uuid, "telemetry", err)
                continue
            placements = self._placements(uuid, telemetry)
            found[uuid] = GpuSample(
                uuid, pci, telemetry, placements or {}, placements is not None, name
            )
        return found

    def _list(self) -> list[tuple[str, str, str]]:
        if self._gpus is None:
            try:
                self._gpus = [(g.uuid, g.pci_address, g.name) for g in self._backend.list_gpus()]
            except TowerboxError as err:
                self._failed("*", "list_gpus", err)
                return []
        return self._gpus

    def _placements(self, uuid: str, telemetry: GpuTelemetry) -> dict[int, tuple[str, int]] | None:
        """Where the GPU's MIG instances sit; None when that could not be read."""
        # With MIG on, read even when the telemetry names no instance: an instance with
        # no compute instance yet has no figures, and still counts against the layout.
        if not telemetry.instances and not telemetry.mig_enabled:
            return {}
        try:
            infos = self._backend.instances(uuid)
        except TowerboxError as err:
            # The GPU's own figures still count; its instances go unnamed this sweep.
            self._failed(uuid, "instances", err)
            return None
        return {gi.gpu_instance_id: (gi.profile, gi.start) for gi in infos}

    def _failed(self, gpu: str, operation: str, err: TowerboxError) -> None:
        kind = (gpu, operation, err.code)
        if kind in self._failures:
            log.debug("GPU %s: %s not read again: %s", gpu, operation, err.message)
            return
        self._failures.add(kind)
        log.warning(
            "GPU %s: %s not read (%s): %s; skipped in each sweep while it fails, logged once",
            gpu,
            operation,
            err.code,
            err.message,
            extra={"gpu": gpu, "code": err.code},
        )
