"""The monitor sweep: one bulk stats call into a frozen node snapshot plus history.

The API, the UI and /metrics read the latest snapshot; nothing else polls libvirt for
live state. A sweep also reads each GPU's telemetry once (``gpu_telemetry``) and the
N6 interface counters of every VNet once, and journals each owned VM's state change,
once.

A VM whose QEMU stops answering never holds the sweep (the backend bounds the stats
call); the sweep shows it as ``unresponsive`` once a command has waited on its QEMU
monitor for ``unresponsive_after_s``, with the time it stopped answering, and keeps
its last figures rather than the holes a busy monitor leaves in the stats.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from appliance.backends.gpu.protocol import GpuBackend
from appliance.backends.vm.protocol import (
    STATS_DEADLINE_S,
    DomainState,
    DomainStats,
    DomainStatus,
    VmBackend,
)
from appliance.services.gpu_telemetry import GpuReader, GpuSample
from appliance.services.vm_power import ACTIVE
from appliance.store import journal
from appliance.store.models import Vm
from towerbox_core.api.vms import VmSample
from towerbox_core.errors import Conflict
from upf_bridge.backends.base import VNetCounters

log = logging.getLogger(__name__)

UNRESPONSIVE = DomainState.UNRESPONSIVE.value
# A monitor command normally answers in milliseconds; one waiting this long means a
# QEMU that stopped (SIGSTOP, a hung host kernel call, a wedged main loop).
UNRESPONSIVE_AFTER_S = 5.0


@dataclass(frozen=True)
class NodeSnapshot:
    taken_at: float = 0.0  # wall clock of the sweep, 0 before the first one
    sweep_ms: float = 0.0
    vms: dict[str, VmSample] = field(default_factory=dict)  # by domain UUID
    states: dict[str, int] = field(default_factory=dict)  # count of domains by state
    gpus: dict[str, GpuSample] = field(default_factory=dict)  # by GPU UUID, those read
    # Domains whose QEMU stopped answering: UUID -> wall clock since when.
    unresponsive: dict[str, float] = field(default_factory=dict)
    # Each domain's last full figures (counters a sample leaves out: packets, disk
    # requests), by UUID; a domain not read in full yet is absent.
    figures: dict[str, DomainStats] = field(default_factory=dict)
    # N6 interface counters by VNet ("tenant/name").
    vnets: dict[str, VNetCounters] = field(default_factory=dict)


class Monitor:
    def __init__(
        self,
        backend: VmBackend,
        history_samples: int,
        gpus: GpuBackend | None = None,
        *,
        stats_deadline_s: float = STATS_DEADLINE_S,
        unresponsive_after_s: float = UNRESPONSIVE_AFTER_S,
        vnets: Callable[[], dict[str, VNetCounters]] | None = None,
    ) -> None:
        self._backend = backend
        self._vnets = vnets
        self._deadline_s = stats_deadline_s
        self._unresponsive_ms = unresponsive_after_s * 1000
        self._since: dict[str, float] = {}  # unresponsive domains: UUID -> since
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

    def shown_state(self, uuid: str, status: DomainStatus | None) -> tuple[str, float | None]:
        """The state to show for a domain libvirt has just reported, and since when it
        is unresponsive: libvirt's word, unless the last sweep found its QEMU silent
        and it is still up (libvirt goes on calling a stopped QEMU "running")."""
        if status is None:
            return "missing", None
        since = self._snapshot.unresponsive.get(uuid)
        if since is not None and status.state in ACTIVE:
            return UNRESPONSIVE, since
        return status.state.value, None

    def refuse_if_unresponsive(self, uuid: str, name: str, action: str) -> None:
        """Refuse an action that goes through the QEMU monitor of an unresponsive VM: it
        would wait on libvirt's job lock and then fail; forcing it off (stop) needs no
        monitor."""
        since = self._snapshot.unresponsive.get(uuid)
        if since is not None:
            when = datetime.fromtimestamp(since, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
            raise Conflict(
                f"VM {name} cannot {action}: its QEMU has not answered since {when}; "
                "stop forces it off",
                code="vm_unresponsive",
            )

    def sweep(self) -> NodeSnapshot:
        started = time.perf_counter()
        stats = self._backend.bulk_stats(self._deadline_s)
        now_mono = time.monotonic()
        now = time.time()
        samples: dict[str, VmSample] = {}
        states: dict[str, int] = {}
        with self._lock:
            for s in stats:
                sample = self._sample(s, now, now_mono)
                samples[s.uuid] = sample
                states[sample.state] = states.get(sample.state, 0) + 1
                hist = self._history.get(s.uuid)
                if hist is None:
                    hist = self._history[s.uuid] = deque(maxlen=self._history_len)
                hist.append(sample)
            for gone in set(self._history) - samples.keys():
                del self._history[gone]
                self._last_raw.pop(gone, None)
                self._since.pop(gone, None)
            unresponsive = dict(self._since)
            figures = {uuid: raw for uuid, (_, raw) in self._last_raw.items()}
        gpus = self._gpus.read() if self._gpus is not None else {}
        vnets = self._vnets() if self._vnets is not None else {}
        sweep_ms = (time.perf_counter() - started) * 1000
        self._snapshot = NodeSnapshot(
            now, sweep_ms, samples, states, gpus, unresponsive, figures, vnets
        )
        return self._snapshot

    def _sample(self, s: DomainStats, now: float, now_mono: float) -> VmSample:
        since = self._responsiveness(s, now)
        prev = self._last_raw.get(s.uuid)
        cpu_pct = 0.0
        if (s.monitor_busy_ms or s.partial) and prev is not None:
            # A busy monitor leaves memory and disk figures out (a states-only read
            # all of them): show the last ones rather than a drop to zero, and count
            # no CPU progress meanwhile.
            figures = prev[1]
        else:
            figures = s
            if prev is not None and s.vcpus:
                elapsed_ns = (now_mono - prev[0]) * 1e9
                used = s.cpu_time_ns - prev[1].cpu_time_ns
                if elapsed_ns > 0 and used >= 0:
                    cpu_pct = min(100.0, 100.0 * used / elapsed_ns / s.vcpus)
            self._last_raw[s.uuid] = (now_mono, s)
        return VmSample(
            at=now,
            state=UNRESPONSIVE if since is not None else s.state.value,
            cpu_pct=round(cpu_pct, 2),
            cpu_time_ns=figures.cpu_time_ns,
            memory_kib=figures.memory_kib,
            rss_kib=figures.rss_kib,
            guest_used_kib=figures.guest_used_kib,
            net_rx_bytes=figures.net_rx_bytes,
            net_tx_bytes=figures.net_tx_bytes,
            disk_read_bytes=figures.disk_read_bytes,
            disk_write_bytes=figures.disk_write_bytes,
            unresponsive_since=since,
        )

    def _responsiveness(self, s: DomainStats, now: float) -> float | None:
        """Since when the domain's QEMU has not answered; None while it answers."""
        if s.state in ACTIVE and s.monitor_busy_ms >= self._unresponsive_ms:
            if s.uuid not in self._since:
                self._since[s.uuid] = now - s.monitor_busy_ms / 1000
                log.warning(
                    "VM domain %s: its QEMU has not answered for %.0f s; unresponsive",
                    s.name,
                    s.monitor_busy_ms / 1000,
                    extra={"vm": s.name},
                )
            return self._since[s.uuid]
        if self._since.pop(s.uuid, None) is not None:
            log.warning("VM domain %s: its QEMU answers again", s.name, extra={"vm": s.name})
        return None


def owned_states(snapshot: NodeSnapshot) -> dict[str, int]:
    """The node's own VMs by state, as its metrics count them.

    The sweep sees every domain of the libvirt it shares (another tool's VMs, the
    test driver's built-in ``test`` domain); those are not the node's VMs. A VM whose
    domain is gone counts as ``missing``.
    """
    states: dict[str, int] = {}
    for vm in Vm.select(Vm.id):
        sample = snapshot.vms.get(vm.id)
        state = sample.state if sample else "missing"
        states[state] = states.get(state, 0) + 1
    return states


def record_state_changes(snapshot: NodeSnapshot) -> int:
    """Journal each owned VM whose observed state changed since the last sweep."""
    changed = 0
    # Read all first: a write while this read statement is still open could not wait
    # for another writer's lock, and would fail at once with "database is locked".
    for vm in list(Vm.select(Vm.id, Vm.name, Vm.observed_state)):
        sample = snapshot.vms.get(vm.id)
        state = sample.state if sample else "missing"
        if state != vm.observed_state:
            since = sample.unresponsive_since if sample else None
            changed += record_observed(vm.id, state, unresponsive_since=since)
    return changed


def record_observed(vm_id: str, state: str, *, unresponsive_since: float | None = None) -> bool:
    """Journal the VM's state when it differs from the one last seen; True if it did.

    Read and written in one transaction, so the monitor and an action that reached a
    state never journal the same change twice. Entering or leaving ``unresponsive``
    also says since when the QEMU had stopped answering (None on leaving).
    """
    with journal.write_transaction():
        vm = Vm.get_or_none(Vm.id == vm_id)
        if vm is None:
            return False
        if state == vm.observed_state:
            return False
        Vm.update(observed_state=state).where(Vm.id == vm_id).execute()
        entry: dict[str, Any] = {"name": vm.name, "state": state, "was": vm.observed_state}
        if UNRESPONSIVE in (state, vm.observed_state):
            entry["unresponsive_since"] = (
                datetime.fromtimestamp(unresponsive_since, UTC).isoformat()
                if state == UNRESPONSIVE and unresponsive_since is not None
                else None
            )
        journal.append("vm.state", "vm", vm_id, entry)
    return True


__all__ = [
    "UNRESPONSIVE",
    "DomainState",
    "GpuSample",
    "Monitor",
    "NodeSnapshot",
    "VmSample",
    "owned_states",
    "record_state_changes",
]
