"""/metrics of a real VM under libvirtd + QEMU: its CPU seconds counter rises between
sweeps, its memory, its QEMU's RSS and its disk reads are there, read from the
monitor's sweep."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from appliance.backends.vm.libvirt_backend import SYSTEM_URI
from appliance.context import build_appliance
from tests.integration.test_real_vm import _system_conn, _wait, demo_images, workdir
from tests.support.appliance import REAL_HOST, admin_client, close_removing_vms, make_config
from tests.support.populated import ok, scrape, value

pytestmark = [pytest.mark.libvirtd, pytest.mark.slow]
__all__ = ["demo_images", "workdir"]  # fixtures shared with the real VM test

MIB = 1024 * 1024


def test_a_real_vms_counters_follow_it(demo_images: Path, workdir: Path) -> None:
    _system_conn().close()  # skips (or fails in CI) without the system libvirtd
    name = f"metrics-{os.getpid()}"
    cfg = make_config(
        workdir,
        TOWERBOX_LIBVIRT_URI=SYSTEM_URI,
        TOWERBOX_IMAGE_DIR=str(demo_images),
        TOWERBOX_NODE_NAME=f"it-{name}",
        **REAL_HOST,
    )
    appliance = build_appliance(cfg)
    try:
        with admin_client(appliance) as c:
            body = {"name": name, "appliance": "demo", "spec": {"memory_mib": 256}}
            ok(c.post("/api/v1/vms", json={**body, "start": True}), 201)
            labels = {"vm": name, "tenant": "_node"}

            def cpu_seconds() -> float:
                appliance.monitor_job()
                return value(scrape(c, {}), "towerbox_vm_cpu_seconds_total", **labels)

            _wait(lambda: cpu_seconds() > 0, 60, "CPU time on /metrics")
            first = cpu_seconds()
            time.sleep(1)
            _wait(lambda: cpu_seconds() > first, 30, "the CPU seconds counter to rise")

            m = scrape(c, {})
            assert value(m, "towerbox_vm_state", state="running", **labels) == 1
            assert value(m, "towerbox_vm_memory_bytes", **labels) == 256 * MIB
            # QEMU itself: more than nothing, less than the guest's memory and a margin.
            rss = value(m, "towerbox_vm_memory_rss_bytes", **labels)
            assert 0 < rss < 1024 * MIB

            # The guest kernel reads its disk's partition table as it boots: requests
            # and bytes, as libvirt counts them.
            def disk_reads() -> tuple[float, float]:
                appliance.monitor_job()
                m = scrape(c, {})
                return (
                    value(m, "towerbox_vm_disk_read_requests_total", **labels),
                    value(m, "towerbox_vm_disk_read_bytes_total", **labels),
                )

            _wait(lambda: min(disk_reads()) > 0, 60, "the guest's disk reads on /metrics")
    finally:
        close_removing_vms(appliance)
        Path(f"/var/log/libvirt/qemu/{name}.log").unlink(missing_ok=True)
