"""The monitor's reading of a busy QEMU monitor: last figures kept, unresponsive after
the threshold with a stable since-when, back to libvirt's state when it answers."""

from __future__ import annotations

from typing import cast

from appliance.backends.vm.protocol import DomainState, DomainStats, VmBackend
from appliance.services.monitor import Monitor

UUID = "0f4f6c1e-2d1b-4b7e-9a55-000000000001"


class _Scripted:
    """Hands the monitor one prepared stats list per sweep."""

    def __init__(self, *sweeps: list[DomainStats]) -> None:
        self._sweeps = list(sweeps)

    def bulk_stats(self, deadline_s: float = 2.0) -> list[DomainStats]:
        return self._sweeps.pop(0)


def _stats(busy_ms: int, *, memory_kib: int, cpu_ns: int, state: DomainState) -> DomainStats:
    return DomainStats(
        uuid=UUID,
        name="vm1",
        state=state,
        vcpus=1,
        cpu_time_ns=cpu_ns,
        memory_kib=memory_kib,
        monitor_busy_ms=busy_ms,
    )


def test_busy_then_unresponsive_then_back() -> None:
    running = DomainState.RUNNING
    backend = _Scripted(
        [_stats(0, memory_kib=4096, cpu_ns=10, state=running)],
        # Busy: the monitor's figures are missing from the stats.
        [_stats(1_000, memory_kib=0, cpu_ns=0, state=running)],
        [_stats(6_000, memory_kib=0, cpu_ns=0, state=running)],
        [_stats(9_000, memory_kib=0, cpu_ns=0, state=running)],
        [_stats(0, memory_kib=8192, cpu_ns=50, state=running)],
    )
    monitor = Monitor(cast(VmBackend, backend), 10, unresponsive_after_s=5.0)
    monitor.sweep()
    busy = monitor.sweep().vms[UUID]
    assert (busy.state, busy.unresponsive_since) == ("running", None)
    assert (busy.memory_kib, busy.cpu_time_ns, busy.cpu_pct) == (4096, 10, 0.0)

    first = monitor.sweep()
    since = first.unresponsive[UUID]
    assert abs(first.taken_at - 6.0 - since) < 0.01
    sample = first.vms[UUID]
    assert (sample.state, sample.unresponsive_since, sample.memory_kib) == (
        "unresponsive",
        since,
        4096,
    )
    assert first.states == {"unresponsive": 1}
    # The time it stopped answering stays as first found, sweep after sweep.
    assert monitor.sweep().unresponsive[UUID] == since

    back = monitor.sweep()
    assert back.unresponsive == {}
    assert (back.vms[UUID].state, back.vms[UUID].memory_kib) == ("running", 8192)
    assert [s.state for s in monitor.history(UUID)] == [
        "running",
        "running",
        "unresponsive",
        "unresponsive",
        "running",
    ]


def test_a_stopped_domain_is_never_unresponsive() -> None:
    backend = _Scripted([_stats(60_000, memory_kib=0, cpu_ns=0, state=DomainState.SHUTOFF)])
    monitor = Monitor(cast(VmBackend, backend), 10, unresponsive_after_s=5.0)
    assert monitor.sweep().vms[UUID].state == "shutoff"
