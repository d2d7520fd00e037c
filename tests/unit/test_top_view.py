"""The top view's arithmetic and order: rates from counters, busiest first with ties by
name, and a MIG slice's activity where the driver reports it per instance or not."""

from __future__ import annotations

import pytest

from appliance.backends.gpu.protocol import GpuTelemetry, InstanceTelemetry
from appliance.services.gpu_activity import mig_slices
from appliance.services.gpu_telemetry import GpuSample
from appliance.services.top_view import check_sort, rate, sorted_slices, sorted_vms
from towerbox_core.api.gpus import Instance, MigRole
from towerbox_core.api.top import SliceActivity, TopSlice, TopVm
from towerbox_core.api.vms import VmSample
from towerbox_core.errors import InvalidInput


def _sample(at: float, rx: int) -> VmSample:
    return VmSample(at, "running", 0.0, 0, 0, 0, rx, 0, 0, 0)


def test_a_rate_is_the_counters_growth_per_second() -> None:
    assert rate(_sample(10.0, 1000), _sample(12.0, 5000), "net_rx_bytes") == 2000.0
    assert rate(None, _sample(12.0, 5000), "net_rx_bytes") == 0.0  # one sample: no rate
    assert rate(_sample(12.0, 1000), _sample(12.0, 5000), "net_rx_bytes") == 0.0
    assert rate(_sample(10.0, 9000), _sample(12.0, 10), "net_rx_bytes") == 0.0  # a reset


def _vm(name: str, cpu: float, gpu: float | None = None, held: bool = False) -> TopVm:
    activity = SliceActivity("G", "0000:17:00.0", "1g.10gb", 0, gpu, "mig", None)
    return TopVm(name, None, "b2b", "running", 1, cpu, 0, 0, 0, 0, 0, 0, activity if held else None)


def test_busiest_first_ties_by_name_and_no_slice_last() -> None:
    rows = [_vm("c", 5.0), _vm("a", 5.0), _vm("b", 90.0)]
    assert [v.name for v in sorted_vms(rows, "cpu")] == ["b", "a", "c"]
    assert [v.name for v in sorted_vms(rows, "name")] == ["a", "b", "c"]
    gpu = [_vm("none", 0.0), _vm("unknown", 0.0, None, True), _vm("hot", 0.0, 60.0, True)]
    assert [v.name for v in sorted_vms(gpu, "gpu")] == ["hot", "unknown", "none"]


def test_slices_by_activity_or_memory() -> None:
    def s(start: int, util: float | None, mem: int) -> TopSlice:
        return TopSlice("G", "p", "1g.10gb", start, util, "mig", mem, "b2b", None, None)

    rows = [s(0, 10.0, 300), s(1, None, 900), s(2, 70.0, 100)]
    assert [x.start for x in sorted_slices(rows, "cpu")] == [2, 0, 1]
    assert [x.start for x in sorted_slices(rows, "memory")] == [1, 0, 2]
    assert [x.start for x in sorted_slices(rows, "name")] == [0, 1, 2]


def test_an_unknown_sort_is_refused_with_the_keys() -> None:
    with pytest.raises(InvalidInput, match="sort by one of: cpu, memory, net, disk, gpu, name"):
        check_sort("heat")


def test_a_slice_reports_its_own_activity_else_the_gpus_said_so() -> None:
    telemetry = GpuTelemetry(
        power_w=100.0,
        energy_j=None,
        utilization_pct=40.0,
        memory_used_mib=2048,
        instances=(
            InstanceTelemetry(7, 1024, 55.0),
            InstanceTelemetry(9, 1024, None),
            InstanceTelemetry(11, 0, None),  # not placed: a layout change under way
        ),
    )
    sample = GpuSample("G", "0000:17:00.0", telemetry, {7: ("1g.10gb", 0), 9: ("1g.10gb", 1)})
    layout = {
        ("G", ("1g.10gb", 0)): Instance("1g.10gb", 0, MigRole.B2B, "llm"),
        ("G", ("1g.10gb", 1)): Instance("1g.10gb", 1, MigRole.VRAN, "process:acme/x"),
    }
    found = mig_slices(sample, layout, {"llm": "beta"})
    assert [(s.start, s.utilization_pct, s.scope, s.owner, s.tenant, s.role) for s in found] == [
        (0, 55.0, "mig", "llm", "beta", "b2b"),
        (1, 40.0, "gpu", "process:acme/x", "acme", "vran"),
    ]
    assert found[0].memory_used_bytes == 1024 * 1024 * 1024
