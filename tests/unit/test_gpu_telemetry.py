"""The monitor sweep's GPU reads: each GPU's telemetry in the snapshot, with where its
MIG instances sit; a GPU whose read fails is skipped, logged once, and the sweep goes on."""

from __future__ import annotations

import logging

import pytest

from appliance.backends.gpu.simulated import SimulatedGpuBackend
from appliance.backends.vm.libvirt_backend import LibvirtBackend
from appliance.services.monitor import Monitor
from towerbox_core.errors import BackendError


def test_a_failing_gpu_read_is_skipped_and_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    sim = SimulatedGpuBackend(("H100-80GB", "L40S-48GB"))
    h100, l40s = (g.uuid for g in sim.list_gpus())
    sim.create_instance(h100, "1g.10gb", 0)
    monitor = Monitor(LibvirtBackend("test:///default", "test"), 10, sim)
    caplog.set_level(logging.WARNING, logger="appliance.services.gpu_telemetry")
    for _ in range(2):
        sim.fail_next("telemetry", BackendError("GPU is lost", code="nvml_gpu_lost"))
        snapshot = monitor.sweep()
        assert list(snapshot.gpus) == [l40s]  # the other GPU and the VMs still read
        assert snapshot.vms
    [logged] = [r for r in caplog.records if r.name == "appliance.services.gpu_telemetry"]
    assert "nvml_gpu_lost" in logged.getMessage()
    # Its instances not readable: its own figures count, its instances go unnamed.
    sim.fail_next("instances", BackendError("busy", code="nvml_error"))
    snapshot = monitor.sweep()
    assert snapshot.gpus[h100].placements == {}
    assert not snapshot.gpus[h100].placements_read
    assert snapshot.gpus[h100].telemetry.power_w is not None
    assert monitor.sweep().gpus[h100].placements == {1: ("1g.10gb", 0)}
    off = monitor.sweep().gpus[l40s]
    assert (off.placements, off.placements_read, off.telemetry.mig_enabled) == ({}, True, False)


def test_a_gpu_with_mig_on_and_no_instance_is_read_as_empty() -> None:
    sim = SimulatedGpuBackend(("H100-80GB",))
    monitor = Monitor(LibvirtBackend("test:///default", "test"), 10, sim)
    [sample] = monitor.sweep().gpus.values()
    assert sample.name == sim.list_gpus()[0].name
    assert (sample.placements, sample.placements_read, sample.telemetry.mig_enabled) == (
        {},
        True,
        True,
    )
    # Its instances are read even when the telemetry names none: a failed read says so.
    sim.fail_next("instances", BackendError("busy", code="nvml_error"))
    assert not monitor.sweep().gpus[sample.uuid].placements_read


def test_gpus_not_listed_at_the_first_sweep_are_listed_at_the_next() -> None:
    sim = SimulatedGpuBackend(("H100-80GB",))
    monitor = Monitor(LibvirtBackend("test:///default", "test"), 10, sim)
    sim.fail_next("list_gpus", BackendError("driver busy", code="nvml_error"))
    assert monitor.sweep().gpus == {}
    assert list(monitor.sweep().gpus) == [sim.list_gpus()[0].uuid]
