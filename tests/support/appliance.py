"""Helpers to build an appliance (config, images, API client) for tests."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from litestar.testing import TestClient

from appliance.api.app import create_app
from appliance.backends.vm.libvirt_backend import SYSTEM_URI
from appliance.config import Config
from appliance.config_load import load_config
from appliance.context import Appliance, build_appliance
from appliance.store.models import Vm
from tests.fixtures.hosts.make_fixture import build_dual_socket_sriov
from towerbox_core.subp import run

REPO = Path(__file__).resolve().parents[2]


def make_images(image_dir: Path) -> None:
    """Stand-ins the test driver never reads, and a real qcow2 base for overlays."""
    image_dir.mkdir(parents=True, exist_ok=True)
    for name in ("demo-vmlinuz", "demo-initramfs.cpio.gz", "demo-model.img"):
        (image_dir / name).write_bytes(b"\0" * 16)
    base = image_dir / "base.qcow2"
    if not base.exists():
        run(["qemu-img", "create", "-q", "-f", "qcow2", str(base), "1G"])


# This machine rather than a fixture tree: for real QEMU, which pins to CPUs that exist.
REAL_HOST = {
    "TOWERBOX_HOST_SYSFS_ROOT": "/sys",
    "TOWERBOX_HOST_PROCFS_ROOT": "/proc",
    "TOWERBOX_HOST_DEV_ROOT": "/dev",
    "TOWERBOX_HOST_RESERVED_CPUS": "",
}


def make_config(tmp: Path, **env: str) -> Config:
    host_root = tmp / "host"
    if not host_root.exists():
        build_dual_socket_sriov(host_root)
    make_images(tmp / "images")
    values = {
        "TOWERBOX_NODE_NAME": "test-node",
        "TOWERBOX_STATE_DIR": str(tmp / "state"),
        "TOWERBOX_IMAGE_DIR": str(tmp / "images"),
        "TOWERBOX_LIBVIRT_URI": "test:///default",
        "TOWERBOX_API_SOCKET": str(tmp / "run" / "appliance.sock"),
        "TOWERBOX_HOST_SYSFS_ROOT": str(host_root / "sys"),
        "TOWERBOX_HOST_PROCFS_ROOT": str(host_root / "proc"),
        "TOWERBOX_HOST_DEV_ROOT": str(host_root / "dev"),
        "TOWERBOX_HOST_RESERVED_CPUS": "0,16",
        "TOWERBOX_LIBVIRT_SHUTDOWN_TIMEOUT_S": "2",
        **env,
    }
    return load_config(tmp / "absent.toml", values)


def admin_password(cfg: Config) -> str:
    return cfg.admin_password_file.read_text().strip()


@contextmanager
def api_client(appliance: Appliance) -> Iterator[TestClient[Any]]:
    with TestClient(create_app(appliance)) as client:
        yield client


def login(client: TestClient[Any], username: str, password: str) -> dict[str, str]:
    resp = client.post("/api/v1/auth/login", json={"username": username, "password": password})
    assert resp.status_code == 201, resp.text
    return {"Authorization": f"Bearer {resp.json()['token']}"}


def built(tmp: Path, **env: str) -> Appliance:
    return build_appliance(make_config(tmp, **env))


def real_node_config(node_name: str, **env: str) -> tuple[Config, Path]:
    """A node on the system libvirtd with QEMU and the demo image built (benchmarks):
    its config and its work folder (under /var/tmp, readable by QEMU)."""
    image_dir = Path(os.environ.get("TOWERBOX_IMAGE_DIR", REPO / "var" / "images"))
    run([str(REPO / "images" / "demo" / "build.sh"), str(image_dir)])
    work = Path(tempfile.mkdtemp(prefix="towerbox-bench-", dir="/var/tmp"))
    work.chmod(0o755)
    cfg = make_config(
        work,
        TOWERBOX_LIBVIRT_URI=SYSTEM_URI,
        TOWERBOX_IMAGE_DIR=str(image_dir),
        TOWERBOX_NODE_NAME=node_name,
        **REAL_HOST,
        **env,
    )
    return cfg, work


@contextmanager
def admin_client(appliance: Appliance) -> Iterator[TestClient[Any]]:
    """An API client logged in as the node's admin."""
    with api_client(appliance) as client:
        client.headers.update(login(client, "admin", admin_password(appliance.cfg)))
        yield client


def close_removing_vms(appliance: Appliance) -> None:
    """Delete every VM the appliance made (its domains live on in the shared driver)
    and close it."""
    root = appliance.auth.authenticate(appliance.cfg.cli_token_file.read_text().strip())
    for name in [vm.name for vm in Vm.select(Vm.name)]:
        appliance.vms.delete(root, name)
    appliance.close()
