"""Demo VMs booted under the system libvirtd through a real daemon, for benchmarks
that measure against real QEMU processes; deleted, and any leftover domain removed,
when the block ends."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import libvirt

from appliance.backends.vm.libvirt_backend import SYSTEM_URI
from tests.support.appliance import real_node_config
from tests.support.daemon import running_daemon
from tests.support.stuck_qemu import remove_domains


@dataclass(frozen=True)
class DemoVm:
    name: str
    uuid: str


@contextmanager
def demo_vms(tag: str, count: int, **daemon_env: str) -> Iterator[list[DemoVm]]:
    """``count`` demo VMs named ``{tag}-{i}``, started; ``daemon_env`` adds to the
    daemon's environment."""
    cfg, work = real_node_config(tag)
    names = [f"{tag}-{i}" for i in range(count)]
    conn = libvirt.open(SYSTEM_URI)
    try:
        with running_daemon(cfg, work, watchdog_usec=0, extra_env=daemon_env) as d:
            d.wait_notify("READY=1", timeout=60)
            with d.http(cfg.cli_token_file.read_text().strip()) as api:
                vms = []
                for name in names:
                    body = {"name": name, "appliance": "demo", "start": True}
                    resp = api.post("/api/v1/vms", json=body)
                    assert resp.status_code == 201, resp.text
                    vms.append(DemoVm(name, resp.json()["id"]))
                yield vms
                for name in names:
                    api.delete(f"/api/v1/vms/{name}")
    finally:
        remove_domains(conn, names)
        conn.close()
        shutil.rmtree(work, ignore_errors=True)
