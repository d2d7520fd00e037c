"""After a host reboot the appliance brings the node back in its policy's order.

On the libvirt test driver, the simulated GPU (power-cycled) and the simulated N6
backend (empty in a new process, as OVS's userspace bridges are after a reboot): the
layouts, then the N6 paths, then the VMs by role, vRAN first, each journalled. The
same on real QEMU and Open vSwitch is tests/integration/test_reboot.py.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import libvirt
import pytest
from litestar.testing import TestClient

from appliance.backends.gpu.sim_state import power_cycle
from appliance.backends.gpu.simulated import SimulatedGpuBackend
from appliance.backends.host.sysfs_inventory import REAL_PROCFS
from appliance.config import Config
from appliance.context import Appliance, build_appliance
from appliance.daemon import first_jobs
from appliance.domain.gpu.catalog import default_catalog
from appliance.services.reconcile import ReconcileReport
from appliance.services.uptime import BOOT_ID
from appliance.services.vm_boot import RESTORE_REASON
from appliance.store.db import open_database
from appliance.store.models import GpuLayout, Vm
from tests.integration.test_n6_api import ACME as VNET
from tests.support.appliance import admin_password, api_client, login, make_config
from tests.support.reboot import seen_running
from towerbox_core.errors import BackendError

VRAN_SLICE = {"profile": "3g.40gb", "start": 4, "role": "vran"}
DAY = {
    "instances": [
        VRAN_SLICE,
        {"profile": "2g.20gb", "start": 0},
        {"profile": "2g.20gb", "start": 2},
    ]
}


def _first_boot(tmp_path: Path) -> tuple[Config, Appliance, Path]:
    """An appliance on the fixture host, whose boot id the test owns."""
    cfg = make_config(tmp_path, TOWERBOX_GPU_BACKEND="simulated", TOWERBOX_N6_BACKEND="simulated")
    assert Path(cfg.host.procfs_root) != REAL_PROCFS
    boot_id = Path(cfg.host.procfs_root) / BOOT_ID
    boot_id.parent.mkdir(parents=True, exist_ok=True)
    boot_id.write_text("the-first-boot\n")
    return cfg, build_appliance(cfg), boot_id


def _day_layout(c: TestClient[Any]) -> str:
    gpu = str(c.get("/api/v1/gpus").json()["gpus"][0]["uuid"])
    assert c.post(f"/api/v1/gpus/{gpu}/apply", json=DAY).status_code == 200
    return gpu


def _vm(c: TestClient[Any], name: str, spec: dict[str, Any], start: bool = True) -> str:
    made = c.post(
        "/api/v1/vms", json={"name": name, "appliance": "demo", "spec": spec, "start": start}
    )
    assert made.status_code == 201, made.text
    return str(made.json()["id"])


def _journal(c: TestClient[Any]) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = c.get("/api/v1/journal?limit=1000").json()["entries"]
    return entries


def _reboot(app: Appliance, boot_id: Path) -> None:
    """What the host loses: running domains, MIG instances, the N6 paths (the
    simulated backend lives in the process); and it gets a new boot id."""
    conn = libvirt.open("test:///default")
    try:
        for vm in Vm.select():
            dom = conn.lookupByUUIDString(vm.id)
            if dom.isActive():
                dom.destroy()
    finally:
        conn.close()
    app.close()
    power_cycle(Path(app.cfg.state_dir) / "gpu-simulator.json", default_catalog())
    boot_id.write_text("the-second-boot\n")


def test_after_a_reboot_layouts_then_n6_then_vms_vran_first(tmp_path: Path) -> None:
    cfg, app, boot_id = _first_boot(tmp_path)
    with api_client(app) as c:
        c.headers.update(login(c, "admin", admin_password(cfg)))
        gpu = _day_layout(c)
        assert c.post("/api/v1/tenants", json={"name": "acme"}).status_code == 201
        assert c.put("/api/v1/n6/trunks/br-n6", json={"kind": "ovs"}).status_code == 200
        assert c.post("/api/v1/n6/vnets", json=VNET).status_code == 201
        assert c.post("/api/v1/n6/apply").status_code == 200
        # Names sort against the policy: the order must come from the roles.
        ids = {
            "a-web": _vm(
                c, "a-web", {"role": "b2b", "nics": [{"kind": "vnet", "vnet": "acme/llm"}]}
            ),
            "b-llm": _vm(c, "b-llm", {"role": "b2b", "gpu": {"profile": "2g.20gb"}}),
            "c-upf": _vm(c, "c-upf", {"role": "upf"}),
            "z-du": _vm(c, "z-du", {"role": "vran", "gpu": {"role": "vran"}}),
            # Never started, marked autostart: it comes up at boot as libvirt's would.
            "d-cam": _vm(c, "d-cam", {"role": "b2b", "autostart": True}, start=False),
            # Stopped by the operator: it stays off.
            "e-old": _vm(c, "e-old", {"role": "b2b"}, start=False),
        }
        head = _journal(c)[-1]["seq"]
    _reboot(app, boot_id)

    again = build_appliance(cfg)
    try:
        sim = again.gpus.backend
        assert isinstance(sim, SimulatedGpuBackend)
        assert sorted((i.profile, i.start) for i in sim.instances(gpu)) == [
            ("2g.20gb", 0),
            ("2g.20gb", 2),
            ("3g.40gb", 4),
        ]
        conn = libvirt.open("test:///default")
        try:
            running = {n for n, i in ids.items() if conn.lookupByUUIDString(i).isActive()}
            # The appliance starts them, not libvirtd: no domain keeps the flag.
            assert not any(conn.lookupByUUIDString(i).autostart() for i in ids.values())
        finally:
            conn.close()
        assert running == {"a-web", "b-llm", "c-upf", "z-du", "d-cam"}
        assert not again.n6.plan()["ovs"], "the N6 paths were not re-applied"

        with api_client(again) as c:
            c.headers.update(login(c, "admin", admin_password(cfg)))
            after = [e for e in _journal(c) if e["seq"] > head]
            kinds = [e["kind"] for e in after]
            started = [e for e in after if e["kind"] == "vm.started"]
            assert [e["state"]["name"] for e in started] == [
                "z-du",
                "c-upf",
                "a-web",
                "b-llm",
                "d-cam",
            ]
            assert {e["state"]["reason"] for e in started} == {RESTORE_REASON}
            assert {e["actor"]["job"] for e in started} == {"boot"}
            restored = next(e for e in after if e["kind"] == "node.restored")["state"]
            assert restored["started"] == ["z-du", "c-upf", "a-web", "b-llm", "d-cam"]
            assert restored["failed"] == []
            # Layout, then N6, then the first VM; the vRAN runs before the next starts.
            assert kinds.index("gpu.layout_restored") < kinds.index("n6.repaired")
            assert kinds.index("n6.repaired") < kinds.index("vm.started")
            assert seen_running(after, ids["z-du"]) < started[1]["seq"]
            assert c.get("/api/v1/vms/d-cam").json()["desired_state"] == "running"
            assert c.get("/api/v1/vms/e-old").json()["state"] == "shutoff"
    finally:
        root = again.auth.authenticate(cfg.cli_token_file.read_text().strip())
        for vm in Vm.select():
            again.vms.delete(root, vm.name)
        again.close()


@pytest.mark.parametrize("gpu", [None, {"role": "vran"}])
def test_a_vm_that_cannot_come_back_is_journalled_and_the_rest_start(
    tmp_path: Path, gpu: dict[str, str] | None
) -> None:
    cfg, app, boot_id = _first_boot(tmp_path)
    with api_client(app) as c:
        c.headers.update(login(c, "admin", admin_password(cfg)))
        _day_layout(c)
        spec: dict[str, Any] = {"role": "vran", **({"gpu": gpu} if gpu else {})}
        du = _vm(c, "du", spec)
        _vm(c, "web", {"role": "b2b"})
    _reboot(app, boot_id)
    if gpu is None:
        # The domain's definition is gone (hand-removed): libvirt cannot start it.
        conn = libvirt.open("test:///default")
        conn.lookupByUUIDString(du).undefine()
        conn.close()
    else:
        # No committed layout is left to re-create: no slice for the DU to bind to.
        db = open_database(cfg.db_path)
        GpuLayout.delete().execute()
        db.close()

    again = build_appliance(cfg)
    try:
        with api_client(again) as c:
            c.headers.update(login(c, "admin", admin_password(cfg)))
            kinds = {e["kind"]: e for e in _journal(c)}
            failed = kinds["vm.gpu_waiting" if gpu else "vm.restore_failed"]
            assert failed["state"]["name"] == "du"
            restored = kinds["node.restored"]["state"]
            assert (restored["started"], restored["failed"]) == (["web"], ["du"])
            assert c.get("/api/v1/vms/web").json()["state"] == "running"
    finally:
        root = again.auth.authenticate(cfg.cli_token_file.read_text().strip())
        for vm in Vm.select():
            again.vms.delete(root, vm.name)
        again.close()


def test_a_failing_first_sweep_does_not_keep_the_api_down(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A QEMU that dies under the first stats sweep at boot: the daemon goes on to its
    first reconcile and to serving; the monitor runs again on schedule."""
    _, app, _ = _first_boot(tmp_path)
    try:

        def dying(*_: Any) -> None:
            raise BackendError(
                "domain stats: Unable to read from monitor: Connection reset by peer",
                code="libvirt_error",
            )

        monkeypatch.setattr(app.backend, "bulk_stats", dying)
        reconciled = []
        monkeypatch.setattr(
            app.reconciler, "run", lambda: reconciled.append(1) or ReconcileReport()
        )
        asyncio.run(first_jobs(app))
        assert reconciled == [1]
        assert "first monitor run failed" in caplog.text
    finally:
        app.close()
