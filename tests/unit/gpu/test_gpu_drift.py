"""A GPU's drift from its committed layout, from one sweep's sample: the answer the
alert rules and /metrics share, on each edge the sweep can meet."""

from __future__ import annotations

from appliance.backends.gpu.protocol import GpuTelemetry
from appliance.services.gpu_drift import NO_DRIFT, LayoutDrift, sample_drift
from appliance.services.gpu_telemetry import GpuSample
from towerbox_core.api.gpus import Instance, Layout, MigRole

COMMITTED = Layout(
    gpu_model="H100-80GB",
    instances=(
        Instance(profile="3g.40gb", start=4, role=MigRole.VRAN, owner="du1"),
        Instance(profile="2g.20gb", start=0),
    ),
)


def _sample(
    placements: dict[int, tuple[str, int]], *, mig: bool | None = True, read: bool = True
) -> GpuSample:
    telemetry = GpuTelemetry(
        power_w=100.0, energy_j=1.0, utilization_pct=None, memory_used_mib=0, mig_enabled=mig
    )
    return GpuSample("G1", "0000:17:00.0", telemetry, placements, read, "NVIDIA H100")


def test_the_committed_layout_in_place_is_no_drift() -> None:
    sample = _sample({1: ("2g.20gb", 0), 2: ("3g.40gb", 4)})
    assert sample_drift(sample, COMMITTED) == NO_DRIFT


def test_a_missing_instance_and_one_made_past_the_node() -> None:
    missing = sample_drift(_sample({1: ("2g.20gb", 0)}), COMMITTED)
    assert missing == LayoutDrift(("3g.40gb at slot 4 is committed but missing on the GPU",), 1)
    extra = _sample({1: ("2g.20gb", 0), 2: ("3g.40gb", 4), 3: ("1g.10gb", 6)})
    told = sample_drift(extra, COMMITTED)
    assert told is not None
    assert (len(told.drift), told.missing) == (1, 0)
    assert "1g.10gb" in told.drift[0]


def test_mig_on_with_no_instance_misses_every_committed_one() -> None:
    told = sample_drift(_sample({}), COMMITTED)
    assert told is not None
    assert (len(told.drift), told.missing) == (2, 2)


def test_mig_off_under_a_committed_layout_is_no_drift() -> None:
    # As the GPU view says: the layout waits for MIG to come back; nothing drifted.
    assert sample_drift(_sample({}, mig=False), COMMITTED) == NO_DRIFT
    assert sample_drift(_sample({}, mig=None), COMMITTED) == NO_DRIFT  # no MIG mode


def test_no_committed_layout_is_no_drift() -> None:
    assert sample_drift(_sample({1: ("1g.10gb", 0)}), None) == NO_DRIFT


def test_instances_not_read_this_sweep_tell_nothing() -> None:
    assert sample_drift(_sample({}, read=False), COMMITTED) is None
    assert sample_drift(_sample({}, read=False), None) is None
