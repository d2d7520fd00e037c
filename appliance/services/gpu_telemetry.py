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
    # reports; empty with MIG off, or when the instances could not be read.
    placements: dict[int, tuple[str, int]] = field(default_factory=dict)


class GpuReader:
    def __init__(self, backend: GpuBackend) -> None:
        self._backend = backend
        # (UUID, PCI address) of each GPU: fixed while the daemon runs, read once.
        self._gpus: list[tuple[str, str]] | None = None
        self._failures: set[tuple[str, str, str]] = set()

    def read(self) -> dict[str, GpuSample]:
        """This sweep's samples by GPU UUID; GPUs that did not answer are missing."""
        found: dict[str, GpuSample] = {}
        for uuid, pci in self._list():
            try:
                telemetry = self._backend.telemetry(uuid)
            except TowerboxError as err:
                self._failed(uuid, "telemetry", err)
                continue
            found[uuid] = GpuSample(uuid, pci, telemetry, self._placements(uuid, telemetry))
        return found

    def _list(self) -> list[tuple[str, str]]:
        if self._gpus is None:
            try:
                self._gpus = [(g.uuid, g.pci_address) for g in self._backend.list_gpus()]
            except TowerboxError as err:
                self._failed("*", "list_gpus", err)
                return []
        return self._gpus

    def _placements(self, uuid: str, telemetry: GpuTelemetry) -> dict[int, tuple[str, int]]:
        if not telemetry.instances:
            return {}
        try:
            infos = self._backend.instances(uuid)
        except TowerboxError as err:
            # The GPU's own figures still count; its instances go unnamed this sweep.
            self._failed(uuid, "instances", err)
            return {}
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
