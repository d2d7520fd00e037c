"""Services on real libvirtd + QEMU with the demo image.

A two-role service: the web role starts only once the backend's serial console
shows the demo's boot marker, each replica is gated by that marker, and removing the
service leaves nothing behind. A role checked by the guest agent: it becomes healthy
when the demo's agent answers libvirt's guest-ping on the VM's agent channel. A role
checked on a TCP port: the guest gets its address by DHCP on a real bridge, the node
finds it through libvirt, and the check connects to the demo's HTTP server there.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import libvirt
import libvirt_qemu
import msgspec
import pytest

from appliance.backends.vm.libvirt_backend import SYSTEM_URI
from appliance.context import Appliance, build_appliance
from appliance.services.auth import Principal, Role
from appliance.store import journal
from appliance.store.models import User, Vm
from tests.support.appliance import REAL_HOST, REPO, make_config
from tests.support.dhcp_link import dhcp_link
from tests.support.services import wait_state
from towerbox_core.api.services import ServiceDeployRequest

pytestmark = [pytest.mark.libvirtd, pytest.mark.slow]

MARKER = "TOWERBOX-DEMO-BOOTED"


@pytest.fixture
def workdir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="towerbox-svc-", dir="/var/tmp"))
    path.chmod(0o755)  # QEMU runs as its own user and must reach disks and logs
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _real_appliance(workdir: Path, **env: str) -> Appliance:
    try:
        libvirt.open(SYSTEM_URI).close()
    except libvirt.libvirtError as err:
        pytest.skip(f"{SYSTEM_URI} is not available: {err}")
    image_dir = Path(os.environ.get("TOWERBOX_IMAGE_DIR", REPO / "var" / "images"))
    if not (image_dir / "demo-vmlinuz").is_file():
        pytest.skip(f"the demo image is not built in {image_dir} (make setup)")
    cfg = make_config(
        workdir,
        TOWERBOX_LIBVIRT_URI=SYSTEM_URI,
        TOWERBOX_IMAGE_DIR=str(image_dir),
        TOWERBOX_NODE_NAME=f"svc-it-{os.getpid()}",
        **{**REAL_HOST, **env},
    )
    return build_appliance(cfg)


def _root() -> Principal:
    admin = User.get(User.username == "admin")
    return Principal(admin.id, "admin", Role.INFRA_ADMIN, None, 0)


def _deploy_for_acme(
    app: Appliance, root: Principal, template: dict[str, Any], timeout_s: float
) -> None:
    """Deploy ``template`` for a new tenant acme and wait until it is ready."""
    app.auth.create_tenant("acme", "")
    req = msgspec.convert({"service": template, "tenant": "acme"}, ServiceDeployRequest)
    app.services.deploy(root, req)
    name = template["name"]
    assert wait_state(app, name, timeout_s=timeout_s) == "ready", app.services.get(root, name)


def _clean_up(app: Appliance, root: Principal, vm_names: list[str]) -> None:
    app.services.runner.wait_idle(300)
    for vm in Vm.select():  # a service's replicas too: the node is torn down
        app.vms.delete(root, vm.name, for_service=True)
    for vm_name in vm_names:
        Path(f"/var/log/libvirt/qemu/{vm_name}.log").unlink(missing_ok=True)
    app.close()


def test_two_roles_boot_in_order_on_qemu_gated_by_the_serial_marker(workdir: Path) -> None:
    app = _real_appliance(workdir)
    name = f"svc{os.getpid()}"
    health = {"kind": "serial", "marker": MARKER, "timeout_s": 180}
    template = {
        "name": name,
        "roles": [
            {"name": "web", "catalog": "demo", "after": ["backend"], "health": health},
            {"name": "backend", "catalog": "demo", "health": health},
        ],
    }
    root = _root()
    try:
        _deploy_for_acme(app, root, template, timeout_s=400)
        view = app.services.get(root, name)
        assert {(r.name, r.healthy) for r in view.roles} == {("web", 1), ("backend", 1)}
        created = [
            e["state"]["spec"]["name"]
            for e in journal.entries(limit=1000)
            if e["kind"] == "vm.created"
        ]
        assert created == [f"{name}-backend-1", f"{name}-web-1"]
        steps = view.progress.steps if view.progress else []
        backend_ok = steps.index(f"{name}-backend-1 healthy (serial console shows {MARKER!r})")
        assert backend_ok < steps.index(f"create {name}-web-1 (demo)")
        app.services.remove(root, name)
        assert wait_state(app, name, timeout_s=300) is None
        assert Vm.select().count() == 0
    finally:
        _clean_up(app, root, [f"{name}-backend-1", f"{name}-web-1"])


def test_a_role_checked_by_the_guest_agent_becomes_healthy_when_it_answers(
    workdir: Path,
) -> None:
    app = _real_appliance(workdir)
    name = f"agt{os.getpid()}"
    vm_name = f"{name}-api-1"
    health = {"kind": "agent", "timeout_s": 180}
    template = {"name": name, "roles": [{"name": "api", "catalog": "demo", "health": health}]}
    root = _root()
    try:
        _deploy_for_acme(app, root, template, timeout_s=300)
        view = app.services.get(root, name)
        (role,) = view.roles
        assert (role.healthy, role.health) == (1, "guest agent answers a ping")
        assert role.replicas[0].detail == "guest agent answers a ping"
        steps = view.progress.steps if view.progress else []
        assert f"{vm_name} healthy (guest agent answers a ping)" in steps
        # What the check relied on, asked directly: the demo's agent on its channel.
        conn = libvirt.open(SYSTEM_URI)
        try:
            dom = conn.lookupByName(vm_name)
            ping = libvirt_qemu.qemuAgentCommand(dom, '{"execute":"guest-ping"}', 5, 0)
            other = '{"execute":"guest-info"}'
            with pytest.raises(libvirt.libvirtError, match="not supported"):
                libvirt_qemu.qemuAgentCommand(dom, other, 5, 0)
        finally:
            conn.close()
        assert msgspec.json.decode(ping) == {"return": {}}
        app.services.remove(root, name)
        assert wait_state(app, name, timeout_s=300) is None
    finally:
        _clean_up(app, root, [vm_name])


def test_a_role_checked_on_a_tcp_port_finds_the_guests_address_by_itself(
    workdir: Path,
) -> None:
    bridge = f"tbxhc{os.getpid() % 100000}"
    # The demo entry with a NIC on the bridge: the guest asks for an address by DHCP.
    catalog = workdir / "catalog"
    catalog.mkdir()
    shutil.copytree(REPO / "images" / "cloud-init", workdir / "cloud-init")
    entry = (REPO / "images" / "catalog" / "demo.toml").read_text()
    (catalog / "demo.toml").write_text(
        entry + f'\n[[spec.nics]]\nkind = "bridge"\nbridge = "{bridge}"\n'
    )
    name = f"tcp{os.getpid()}"
    vm_name = f"{name}-api-1"
    health = {"kind": "tcp", "port": 8000, "timeout_s": 180}
    template = {"name": name, "roles": [{"name": "api", "catalog": "demo", "health": health}]}
    with dhcp_link(bridge):
        app = _real_appliance(workdir, TOWERBOX_CATALOG_DIR=str(catalog))
        root = _root()
        try:
            _deploy_for_acme(app, root, template, timeout_s=300)
            (role,) = app.services.get(root, name).roles
            assert role.healthy == 1
            detail = role.replicas[0].detail
            assert re.fullmatch(r"10\.231\.0\.\d+:8000 accepts connections", detail), detail
            # What the check relied on: libvirt knows the address (the host's ARP table
            # learnt it from the guest's traffic), and the guest serves HTTP there.
            vm_id = str(Vm.get(Vm.name == vm_name).id)
            (address,) = app.backend.addresses(vm_id)
            assert detail.startswith(f"{address}:")
            with urllib.request.urlopen(f"http://{address}:8000/", timeout=10) as page:
                assert page.read() == b"towerbox demo appliance\n"
            app.services.remove(root, name)
            assert wait_state(app, name, timeout_s=300) is None
        finally:
            _clean_up(app, root, [vm_name])
