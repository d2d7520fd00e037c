"""The monitor sweep: one bulk stats call into a frozen node snapshot plus history.

The API, the UI and /metrics read the latest snapshot; nothing else polls libvirt for
live state. A sweep also reads each GPU's telemetry once (``gpu_telemetry``) and
journals each owned VM's state change, once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field

from appliance.backends.gpu.protocol import GpuBackend
from appliance.backends.vm.protocol import DomainState, DomainStats, VmBackend
from appliance.services.gpu_telemetry import GpuReader, GpuSample
from appliance.store import journal
from appliance.store.models import Vm
from towerbox_core.api.vms import VmSample

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class NodeSnapshot:
    taken_at: float = 0.0  # wall clock of the sweep, 0 before the first one
    sweep_ms: float = 0.0
    vms: dict[str, VmSample] = field(default_factory=dict)  # by domain UUID
    states: dict[str, int] = field(default_factory=dict)  # count of domains by state
    gpus: dict[str, GpuSample] = field(default_factory=dict)  # by GPU UUID, those read


class Monitor:
    def __init__(
        self, backend: VmBackend, history_samples: int, gpus: GpuBackend | None = None
    ) -> None:
        self._backend = backend
        self._gpus = GpuReader(gpus) if gpus is not None else None
        self._history_len = history_samples
        self._history: dict[str, deque[VmSample]] = {}
        self._last_raw: dict[str, tuple[float, DomainStats]] = {}
        self._snapshot = NodeSnapshot()
        self._lock = threading.Lock()

    @property
    def snapshot(self) -> NodeSnapshot:
        return self._snapshot

    def history(self, uuid: str) -> list[VmSample]:
        with self._lock:
            return list(self._history.get(uuid, ()))

    def sweep(self) -> NodeSnapshot:
        started = time.perf_counter()
        stats = self._backend.bulk_stats()
        now_mono = time.monotonic()
        now = time.time()
        samples: dict[str, VmSample] = {}
        states: dict[str, int] = {}
        with self._lock:
            for s in stats:
                sample = self._sample(s, now, now_mono)
                samples[s.uuid] = sample
                states[s.state.value] = states.get(s.state.value, 0) + 1
                hist = self._history.get(s.uuid)
                if hist is None:
                    hist = self._history[s.uuid] = deque(maxlen=self._history_len)
                hist.append(sample)
                self._last_raw[s.uuid] = (now_mono, s)
            for gone in set(self._history) - samples.keys():
                del self._history[gone]
                self._last_raw.pop(gone, None)
        gpus = self._gpus.read() if self._gpus is not None else {}
        sweep_ms = (time.perf_counter() - started) * 1000
        self._snapshot = NodeSnapshot(now, sweep_ms, samples, states, gpus)
        return self._snapshot

    def _sample(self, s: DomainStats, now: float, now_mono: float) -> VmSample:
        cpu_pct = 0.0
        prev = self._last_raw.get(s.uuid)
        if prev is not None and s.vcpus:
            elapsed_ns = (now_mono - prev[0]) * 1e9
            used = s.cpu_time_ns - prev[1].cpu_time_ns
            if elapsed_ns > 0 and used >= 0:
                cpu_pct = min(100.0, 100.0 * used / elapsed_ns / s.vcpus)
        return VmSample(
            at=now,
            state=s.state.value,
            cpu_pct=round(cpu_pct, 2),
            cpu_time_ns=s.cpu_time_ns,
            memory_kib=s.memory_kib,
            rss_kib=s.rss_kib,
            net_rx_bytes=s.net_rx_bytes,
            net_tx_bytes=s.net_tx_bytes,
            disk_read_bytes=s.disk_read_bytes,
            disk_write_bytes=s.disk_write_bytes,
        )


def record_state_changes(snapshot: NodeSnapshot) -> int:
    """Journal each owned VM whose observed state changed since the last sweep."""
    changed = 0
    # Read all first: a write while this read statement is still open could not wait
    # for another writer's lock, and would fail at once with "database is locked".
    for vm in list(Vm.select(Vm.id, Vm.name, Vm.observed_state)):
        sample = snapshot.vms.get(vm.id)
        state = sample.state if sample else "missing"
        if state != vm.observed_state:
            changed += record_observed(vm.id, state)
    return changed


def record_observed(vm_id: str, state: str) -> bool:
    """Journal the VM's state when it differs from the one last seen; True if it did.

    Read and written in one transaction, so the monitor and an action that reached a
    state never journal the same change twice.
    """
    with journal.write_transaction():
        vm = Vm.get_or_none(Vm.id == vm_id)
        if vm is None:
            return False
        if state == vm.observed_state:
            return False
        Vm.update(observed_state=state).where(Vm.id == vm_id).execute()
        journal.append(
            "vm.state", "vm", vm_id, {"name": vm.name, "state": state, "was": vm.observed_state}
        )
    return True


__all__ = [
    "DomainState",
    "GpuSample",
    "Monitor",
    "NodeSnapshot",
    "VmSample",
    "record_state_changes",
]
