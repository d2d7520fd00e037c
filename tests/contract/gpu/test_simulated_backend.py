"""What only the simulator can show: workloads, resets, persistence, injected faults."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from appliance.backends.gpu.protocol import GpuBackend
from appliance.backends.gpu.sim_state import power_cycle
from appliance.backends.gpu.simulated import SimulatedGpuBackend
from appliance.domain.gpu.catalog import default_catalog
from towerbox_core.errors import BackendError, ConfigError, Conflict, InsufficientResources


def uuids(sim: SimulatedGpuBackend) -> tuple[str, str, str]:
    h100, a30, l40s = (g.uuid for g in sim.list_gpus())
    return h100, a30, l40s


def test_is_a_gpu_backend(sim: SimulatedGpuBackend) -> None:
    backend: GpuBackend = sim
    assert backend.simulated
    assert backend.describe() == "simulated H100 80GB \u00d71, A30 24GB \u00d71, L40S 48GB \u00d71"
    assert SimulatedGpuBackend().describe() == "simulated H100 80GB \u00d71"


def test_lists_every_gpu(sim: SimulatedGpuBackend) -> None:
    h100, a30, l40s = sim.list_gpus()
    assert (h100.model, h100.name, h100.memory_mib) == ("H100-80GB", "NVIDIA H100 80GB HBM3", 81920)
    assert h100.mig.current
    assert a30.mig.current
    assert not l40s.mig_supported
    assert not l40s.mig.current
    assert len({h100.uuid, a30.uuid, l40s.uuid}) == 3
    assert len({h100.pci_address, a30.pci_address, l40s.pci_address}) == 3


def test_destroying_an_instance_in_use_is_refused(sim: SimulatedGpuBackend) -> None:
    h100, _, _ = uuids(sim)
    made = sim.create_instance(h100, "2g.20gb", 0)
    sim.attach_workload(h100, made.gpu_instance_id, "vm-tenant-a")
    with pytest.raises(Conflict) as info:
        sim.destroy_instance(h100, made.gpu_instance_id)
    assert info.value.code == "mig_instance_in_use"
    assert info.value.extra["workload"] == "vm-tenant-a"
    with pytest.raises(Conflict):
        sim.attach_workload(h100, made.gpu_instance_id, "vm-tenant-b")
    sim.detach_workload(h100, made.gpu_instance_id)
    sim.destroy_instance(h100, made.gpu_instance_id)
    assert sim.instances(h100) == []


def test_instances_while_mig_is_off_are_refused() -> None:
    sim = SimulatedGpuBackend(["H100-80GB"], mig_enabled=False)
    gpu = sim.list_gpus()[0].uuid
    with pytest.raises(Conflict) as info:
        sim.create_instance(gpu, "1g.10gb", 0)
    assert info.value.code == "mig_disabled"
    assert all(p.remaining == 0 for p in sim.profiles(gpu))


def test_mig_on_a_board_without_it_is_refused(sim: SimulatedGpuBackend) -> None:
    _, _, l40s = uuids(sim)
    for call in (
        lambda: sim.set_mig_mode(l40s, True),
        lambda: sim.create_instance(l40s, "1g.10gb", 0),
    ):
        with pytest.raises(Conflict) as info:
            call()
        assert info.value.code == "mig_not_supported"
    assert sim.profiles(l40s) == []


def test_mig_mode_waits_for_a_reset() -> None:
    sim = SimulatedGpuBackend(["A30-24GB"], mig_enabled=False)
    gpu = sim.list_gpus()[0].uuid
    mode = sim.set_mig_mode(gpu, True)
    assert (mode.current, mode.pending) == (False, True)
    with pytest.raises(Conflict) as info:
        sim.create_instance(gpu, "1g.6gb", 0)
    assert "next GPU reset" in info.value.message
    assert sim.simulate_gpu_reset(gpu).current
    sim.create_instance(gpu, "4g.24gb", 0)


def test_mig_off_needs_empty_gpu_and_reset_clears_instances(sim: SimulatedGpuBackend) -> None:
    _, a30, _ = uuids(sim)
    made = sim.create_instance(a30, "2g.12gb", 2)
    with pytest.raises(Conflict) as info:
        sim.set_mig_mode(a30, False)
    assert info.value.code == "mig_instance_in_use"
    sim.attach_workload(a30, made.gpu_instance_id, "vm")
    with pytest.raises(Conflict):
        sim.simulate_gpu_reset(a30)
    sim.detach_workload(a30, made.gpu_instance_id)
    assert sim.simulate_gpu_reset(a30).current  # MIG stays on, instances do not
    assert sim.instances(a30) == []


def test_a30_layouts_and_media_extensions(sim: SimulatedGpuBackend) -> None:
    _, a30, _ = uuids(sim)
    sim.create_instance(a30, "2g.12gb+me", 0)
    with pytest.raises(InsufficientResources) as info:
        sim.create_instance(a30, "1g.6gb+me", 2)
    assert info.value.code == "mig_count_exceeded"
    sim.create_instance(a30, "1g.6gb", 2)
    sim.create_instance(a30, "1g.6gb", 3)
    assert [p.remaining for p in sim.profiles(a30)] == [0, 0, 0, 0, 0]


def test_state_survives_a_new_simulator(tmp_path: Path) -> None:
    path = tmp_path / "gpus.json"
    first = SimulatedGpuBackend(["H100-80GB", "H100-80GB"], state_path=path)
    gpu = first.list_gpus()[1].uuid
    made = first.create_instance(gpu, "3g.40gb", 4)
    first.attach_workload(gpu, made.gpu_instance_id, "du-1")
    first.set_mig_mode(first.list_gpus()[0].uuid, False)
    first.close()

    second = SimulatedGpuBackend(["A30-24GB"], state_path=path)  # the file wins
    assert second.describe() == "simulated H100 80GB \u00d72"
    assert second.instances(gpu) == first.instances(gpu)
    assert not second.list_gpus()[0].mig.pending
    with pytest.raises(Conflict):
        second.destroy_instance(gpu, made.gpu_instance_id)  # the workload is remembered
    again = second.create_instance(gpu, "1g.10gb", 0)
    assert again.mig_uuid != made.mig_uuid


def test_a_power_cycle_loses_what_the_hardware_loses(tmp_path: Path) -> None:
    path = tmp_path / "gpus.json"
    now = [100.0]
    first = SimulatedGpuBackend(["H100-80GB", "H100-80GB"], state_path=path, clock=lambda: now[0])
    on, off = (g.uuid for g in first.list_gpus())
    made = first.create_instance(on, "3g.40gb", 4)
    first.attach_workload(on, made.gpu_instance_id, "du-1")  # busy: a reboot does not ask
    first.set_mig_mode(off, False)
    first.telemetry(on)
    now[0] += 10.0
    assert (first.telemetry(on).energy_j or 0) > 0
    first.close()

    power_cycle(path, default_catalog())

    after = SimulatedGpuBackend(state_path=path)
    assert after.instances(on) == []
    assert [(g.uuid, g.mig.current, g.mig.pending) for g in after.list_gpus()] == [
        (on, True, True),
        (off, False, False),  # the pending mode took effect
    ]
    assert after.telemetry(on).energy_j == 0.0
    again = after.create_instance(on, "3g.40gb", 4)
    assert again.mig_uuid != made.mig_uuid


def test_unusable_state_file_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "gpus.json"
    path.write_text('{"version": 1, "gpus": [{"index": 0}]}')
    with pytest.raises(ConfigError) as info:
        SimulatedGpuBackend(state_path=path)
    assert info.value.code == "invalid_gpu_state"


def test_injected_fault_fires_once(sim: SimulatedGpuBackend) -> None:
    h100, _, _ = uuids(sim)
    sim.fail_next("create_instance", BackendError("driver hiccup", code="nvml_error"))
    with pytest.raises(BackendError, match="driver hiccup"):
        sim.create_instance(h100, "1g.10gb", 0)
    assert sim.instances(h100) == []
    sim.create_instance(h100, "1g.10gb", 0)
    with pytest.raises(ValueError, match="unknown operation"):
        sim.fail_next("reset", BackendError("x"))


def test_telemetry_follows_workloads_and_time() -> None:
    now = [100.0]
    sim = SimulatedGpuBackend(clock=lambda: now[0])
    gpu = sim.list_gpus()[0].uuid
    idle = sim.telemetry(gpu)
    made = sim.create_instance(gpu, "3g.40gb", 0)
    sim.attach_workload(gpu, made.gpu_instance_id, "vm")
    now[0] += 10.0
    busy = sim.telemetry(gpu)
    assert busy.power_w is not None
    assert idle.power_w is not None
    assert busy.power_w > idle.power_w
    assert busy.energy_j == pytest.approx(10.0 * busy.power_w)
    assert busy.instances[0].utilization_pct == 60.0
    assert busy.utilization_pct is None  # as NVML: no whole-GPU figure under MIG
    # The slice's and the board's memory; a busier board runs warmer; healthy ECC.
    assert (busy.instances[0].memory_total_mib, busy.memory_total_mib) == (40 * 1024, 80 * 1024)
    assert idle.temperature_c is not None
    assert busy.temperature_c is not None
    assert 30 < idle.temperature_c < busy.temperature_c < 90
    assert (busy.ecc_corrected, busy.ecc_uncorrected) == (0, 0)


def test_concurrent_creates_keep_one_consistent_state(sim: SimulatedGpuBackend) -> None:
    h100, _, _ = uuids(sim)
    errors: list[Exception] = []

    def create(start: int) -> None:
        try:
            sim.create_instance(h100, "1g.10gb", start)
        except Exception as err:
            errors.append(err)

    threads = [threading.Thread(target=create, args=(s,)) for s in range(7) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(i.start for i in sim.instances(h100)) == list(range(7))
    assert len(errors) == 7
    assert all(getattr(e, "code", None) == "mig_slot_occupied" for e in errors)
