"""A real VM under libvirtd + QEMU, driven through the daemon's API from start to end.

Builds (or reuses) the demo appliance image, boots it, sees the marker on its serial
console, survives a daemon restart, shuts down by ACPI, and leaves nothing behind.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import libvirt
import pytest

from appliance.backends.vm.libvirt_backend import SYSTEM_URI
from tests.support.appliance import REAL_HOST, REPO, make_config
from tests.support.daemon import running_daemon
from tests.support.stuck_qemu import remove_domains

pytestmark = [pytest.mark.libvirtd, pytest.mark.slow]

MARKER = "TOWERBOX-DEMO-BOOTED"


def _system_conn() -> libvirt.virConnect:
    try:
        return libvirt.open(SYSTEM_URI)
    except libvirt.libvirtError as err:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the real libvirt test, but {SYSTEM_URI} is down: {err}")
        pytest.skip(f"{SYSTEM_URI} is not available: {err}")


@pytest.fixture(scope="module")
def demo_images() -> Path:
    image_dir = Path(os.environ.get("TOWERBOX_IMAGE_DIR", REPO / "var" / "images"))
    subprocess.run(
        [str(REPO / "images" / "demo" / "build.sh"), str(image_dir)], check=True, timeout=600
    )
    return image_dir


@pytest.fixture
def workdir() -> Iterator[Path]:
    # QEMU runs as its own user: pytest's 0700 tmp dirs would hide disks and logs from it.
    path = Path(tempfile.mkdtemp(prefix="towerbox-it-", dir="/var/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _wait(predicate: object, timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def test_real_vm_lifecycle_through_the_api(demo_images: Path, workdir: Path) -> None:
    conn = _system_conn()
    cfg = make_config(
        workdir,
        TOWERBOX_LIBVIRT_URI=SYSTEM_URI,
        TOWERBOX_IMAGE_DIR=str(demo_images),
        TOWERBOX_NODE_NAME=f"it-{os.getpid()}",
        TOWERBOX_LIBVIRT_SHUTDOWN_TIMEOUT_S="60",
        **REAL_HOST,
    )
    name = f"demo-it-{os.getpid()}"
    vm_id = None
    try:
        with running_daemon(cfg, workdir) as d:
            d.wait_notify("READY=1", timeout=60)
            health = httpx.get(f"{d.url}/healthz").json()
            assert health["backends"]["libvirt"]["uri"] == SYSTEM_URI
            assert health["backends"]["libvirt"]["simulated"] is False
            token = httpx.post(
                f"{d.url}/api/v1/auth/login",
                json={"username": "admin", "password": cfg.admin_password_file.read_text().strip()},
            ).json()["token"]
            with d.http(token) as api:
                made = api.post(
                    "/api/v1/vms", json={"name": name, "appliance": "demo", "start": True}
                )
                assert made.status_code == 201, made.text
                vm_id = made.json()["id"]
                assert made.json()["state"] == "running"
                _wait(
                    lambda: MARKER in api.get(f"/api/v1/vms/{name}/console").text,
                    120,
                    "the boot marker on the serial console",
                )
                _wait(
                    lambda: (
                        (api.get(f"/api/v1/vms/{name}/stats").json()["current"] or {}).get(
                            "cpu_time_ns", 0
                        )
                        > 0
                    ),
                    30,
                    "CPU time in the stats",
                )
            d.proc.send_signal(signal.SIGTERM)
            assert d.proc.wait(timeout=30) == 0
        # The daemon is gone; the VM is libvirtd's and still runs.
        assert conn.lookupByUUIDString(vm_id).isActive() == 1

        with running_daemon(cfg, workdir) as d:
            d.wait_notify("READY=1", timeout=60)
            with d.http(cfg.cli_token_file.read_text().strip()) as api:
                assert api.get(f"/api/v1/vms/{name}").json()["state"] == "running"
                off = api.post(f"/api/v1/vms/{name}/shutdown", json={"timeout_s": 90}).json()
                assert off["state"] == "shutoff", off
                assert off["forced"] is False, "the guest ignored the ACPI power button"
                assert api.delete(f"/api/v1/vms/{name}").status_code == 204
        vm_id_done, vm_id = vm_id, None
        with pytest.raises(libvirt.libvirtError):
            conn.lookupByUUIDString(vm_id_done)
        assert list(cfg.disk_dir.iterdir()) == []
        assert list(cfg.console_dir.iterdir()) == []
    finally:
        # libvirtd keeps each domain's QEMU log after undefine; this one is ours.
        Path(f"/var/log/libvirt/qemu/{name}.log").unlink(missing_ok=True)
        if vm_id is not None:  # the test failed midway: do not leave a VM running
            remove_domains(conn, [name])
        conn.close()
