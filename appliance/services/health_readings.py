"""The one reader of the node's health: what the alert rules evaluate and what the
node-health metrics export, from state the daemon already holds.

Nothing here calls the hardware per read: hugepages and cores come from the
allocator's books, VM states from the monitor's last snapshot, the journal's
position from one indexed query, the WAN from the agent's last report, the disk from
one statvfs, the GPUs' drift from the monitor's last snapshot and the committed
layouts (``gpu_drift``, as /metrics counts it).
"""

from __future__ import annotations

import datetime as dt
import os
import threading
import time
from collections import deque

from appliance.domain.alerts.readings import (
    GpuReading,
    HugepageReading,
    NodeHealth,
    NodeReadings,
    VmReading,
)
from appliance.domain.allocator import Allocator
from appliance.services.gpu_drift import committed_layouts, sample_drift
from appliance.services.job_board import JobBoard
from appliance.services.monitor import Monitor
from appliance.services.sync import SyncStatusBoard
from appliance.store import journal
from appliance.store.models import Vm
from appliance.store.space import StateSpace

_RESTARTED = "vm.restarted"
_ARTIFACT_FAILED = "artifact.failed"
# Journal kinds of a failed apply, by the ``kind`` label they count under.
APPLY_FAILURES = {
    "n6.apply_failed": "n6",
    "n6.repair_failed": "n6",
    "n6.restore_failed": "n6",
    "gpu.layout_failed": "gpu_layout",
    "vm.restore_failed": "vm_restore",
}
# How far back a starting daemon looks for restarts: a loop that began before it
# started still counts, without reading a week-old journal whole.
_RESTART_LOOKBACK = 5_000


def _epoch(iso: str | None) -> float | None:
    if not iso:
        return None
    try:
        when = dt.datetime.fromisoformat(iso)
    except ValueError:
        return None
    return (when if when.tzinfo else when.replace(tzinfo=dt.UTC)).timestamp()


class HealthReader:
    def __init__(
        self,
        *,
        allocator: Allocator,
        sync: SyncStatusBoard,
        space: StateSpace,
        jobs: JobBoard,
        monitor: Monitor,
        restart_window_s: float,
    ) -> None:
        self._allocator = allocator
        self._sync = sync
        self._space = space
        self.jobs = jobs
        self._monitor = monitor
        self._window_s = restart_window_s
        self._lock = threading.Lock()
        head = journal.head()
        self._cursor = max(0, head - _RESTART_LOOKBACK)
        # Failures count from the daemon's start, like any Prometheus counter.
        self._failures_from = head
        self._restarts: dict[str, deque[float]] = {}  # VM UUID -> wall clocks
        self._last_gpus: tuple[GpuReading, ...] = ()
        self._artifact_failures = 0
        self._apply_failures = dict.fromkeys(sorted(set(APPLY_FAILURES.values())), 0)

    def _fold_journal(self, head: int) -> None:
        """Count the restarts and failures journalled since the last read, up to ``head``."""
        if head <= self._cursor:
            return
        kinds = (_RESTARTED, _ARTIFACT_FAILED, *APPLY_FAILURES)
        for seq, kind, object_id, created in journal.kinds_between(self._cursor, head, kinds):
            if kind == _RESTARTED:
                at = _epoch(created)
                if at is not None:
                    self._restarts.setdefault(object_id, deque()).append(at)
            elif seq > self._failures_from and kind == _ARTIFACT_FAILED:
                self._artifact_failures += 1
            elif seq > self._failures_from:
                self._apply_failures[APPLY_FAILURES[kind]] += 1
        self._cursor = head

    def node_health(self) -> NodeHealth:
        head, acked, oldest = journal.position()
        with self._lock:
            self._fold_journal(head)
            artifact_failures = self._artifact_failures
            apply_failures = dict(self._apply_failures)
        usage = self._allocator.usage()
        pages = tuple(
            HugepageReading(node["id"], size, p["free"], p["total"])
            for node in usage["nodes"]
            for size, p in node["hugepages"].items()
        )
        cores = {node["id"]: node["cores"]["free"] for node in usage["nodes"]}
        age = 0.0 if oldest is None else max(0.0, time.time() - oldest.timestamp())
        report, running = self._sync.agent()
        free = size = None
        try:
            st = os.statvfs(self._space.state_dir)
            free, size = st.f_bavail * st.f_frsize, st.f_blocks * st.f_frsize
        except OSError:
            pass
        return NodeHealth(
            hugepages=pages,
            cores_free=cores,
            journal_head=head,
            journal_unacked=max(0, head - acked),
            journal_oldest_unacked_age_s=age,
            wan_up=bool(report and running and report.state == "online"),
            wan_last_sync=_epoch(report.last_sync_at) if report else None,
            disk_free=free,
            disk_size=size,
            jobs=self.jobs.readings(),
            artifact_failures=artifact_failures,
            apply_failures=apply_failures,
        )

    def _vms(self, now: float) -> tuple[VmReading, ...]:
        snapshot = self._monitor.snapshot
        if not snapshot.taken_at:
            return ()  # before the first sweep nothing is known of the VMs' states
        with self._lock:
            restarts = dict(self._restarts)
            for times in restarts.values():
                while times and times[0] < now - self._window_s:
                    times.popleft()
        result = []
        rows = Vm.select(Vm.id, Vm.name, Vm.tenant, Vm.role, Vm.desired_state)
        for vm in rows:
            sample = snapshot.vms.get(vm.id)
            result.append(
                VmReading(
                    name=vm.name,
                    uuid=vm.id,
                    tenant=vm.tenant,
                    role=vm.role,
                    state=sample.state if sample else "missing",
                    desired=vm.desired_state,
                    restarts=len(restarts.get(vm.id, ())),
                    unresponsive_since=sample.unresponsive_since if sample else None,
                )
            )
        return tuple(result)

    def _gpu_readings(self) -> tuple[GpuReading, ...]:
        """The GPUs' drift as the monitor's last sweep saw it. A GPU the sweep did not
        read (its driver did not answer) or whose instances it could not place keeps its
        last reading: an NVML hiccup neither resolves a drift alert nor raises one."""
        gpus = self._monitor.snapshot.gpus
        if not gpus:
            return self._last_gpus  # no GPU answered this sweep, or none has been swept
        last = {g.uuid: g for g in self._last_gpus}
        layouts = committed_layouts()
        result = []
        for uuid in sorted(gpus.keys() | last.keys()):
            sample = gpus.get(uuid)
            told = sample_drift(sample, layouts.get(uuid)) if sample is not None else None
            if sample is not None and told is not None:
                result.append(GpuReading(uuid, sample.name, told.drift, told.missing))
            elif uuid in last:
                result.append(last[uuid])
        self._last_gpus = tuple(result)
        return self._last_gpus

    def readings(self, at: float | None = None) -> NodeReadings:
        """Everything the alert rules read, as of ``at`` (default: now)."""
        health = self.node_health()
        now = time.time() if at is None else at
        return NodeReadings(now, health, self._vms(now), self._gpu_readings())
