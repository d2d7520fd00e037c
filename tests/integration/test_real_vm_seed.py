"""Contextualization reaches a real guest: the demo VM under libvirtd + QEMU reads
the request's model value from its NoCloud seed CD-ROM and the first line of its
read-only model disk, and prints both on its serial console. Deleting the VM removes
the seed. A model bundle the catalog names as an artifact is fetched from a real HTTP
server into the image folder and reaches the guest the same way.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import libvirt
import pytest

from appliance.backends.vm.libvirt_backend import SYSTEM_URI
from appliance.context import Appliance
from tests.support.appliance import REAL_HOST, REPO, admin_password, api_client, built, login
from tests.support.artifact_server import artifact_server
from tests.support.stuck_qemu import remove_domains

pytestmark = [pytest.mark.libvirtd, pytest.mark.slow]

MODEL = "llama-3-8b"
BOOT_TIMEOUT_S = 120.0


@pytest.fixture(scope="module")
def demo_images() -> Path:
    image_dir = Path(os.environ.get("TOWERBOX_IMAGE_DIR", REPO / "var" / "images"))
    subprocess.run(
        [str(REPO / "images" / "demo" / "build.sh"), str(image_dir)], check=True, timeout=600
    )
    return image_dir


@pytest.fixture
def system_libvirt() -> Iterator[libvirt.virConnect]:
    try:
        conn = libvirt.open(SYSTEM_URI)
    except libvirt.libvirtError as err:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the real libvirt test, but {SYSTEM_URI} is down: {err}")
        pytest.skip(f"{SYSTEM_URI} is not available: {err}")
    yield conn
    conn.close()


@pytest.fixture
def appliance(demo_images: Path, system_libvirt: libvirt.virConnect) -> Iterator[Appliance]:
    # QEMU runs as its own user: pytest's 0700 tmp dirs would hide the seed from it.
    work = Path(tempfile.mkdtemp(prefix="towerbox-seed-it-", dir="/var/tmp"))
    work.chmod(0o755)
    app = built(
        work,
        TOWERBOX_LIBVIRT_URI=SYSTEM_URI,
        TOWERBOX_IMAGE_DIR=str(demo_images),
        TOWERBOX_NODE_NAME=f"seed-it-{os.getpid()}",
        **REAL_HOST,
    )
    try:
        yield app
    finally:
        app.close()
        shutil.rmtree(work, ignore_errors=True)


def _wait_for(read: Any, needles: list[str], timeout_s: float) -> str:
    deadline = time.monotonic() + timeout_s
    text = ""
    while time.monotonic() < deadline:
        text = read()
        if all(n in text for n in needles):
            return text
        time.sleep(0.5)
    pytest.fail(f"no {needles} on the serial console within {timeout_s:.0f} s:\n{text[-2000:]}")


def test_seed_and_model_disk_reach_the_guest(
    appliance: Appliance, system_libvirt: libvirt.virConnect
) -> None:
    name = f"seed-it-{os.getpid()}"
    vm_id = None
    try:
        with api_client(appliance) as api:
            api.headers.update(login(api, "admin", admin_password(appliance.cfg)))
            made = api.post(
                "/api/v1/vms",
                json={"name": name, "appliance": "demo", "values": {"model": MODEL}, "start": True},
            )
            assert made.status_code == 201, made.text
            vm_id = made.json()["id"]
            seed = appliance.cfg.disk_dir / f"{vm_id}-seed.iso"
            assert seed.is_file()

            console = _wait_for(
                lambda: api.get(f"/api/v1/vms/{name}/console", params={"lines": 200}).text,
                ["TOWERBOX-SEED", "TOWERBOX-MODEL"],
                BOOT_TIMEOUT_S,
            )
            assert f"TOWERBOX-SEED instance-id={vm_id} model={MODEL}" in console
            assert "TOWERBOX-MODEL TOWERBOX-DEMO-MODEL demo-model-v1" in console

            assert api.post(f"/api/v1/vms/{name}/stop").json()["state"] == "shutoff"
            # libvirt lent the seed to QEMU's user while the VM ran; it is root's again.
            st = seed.stat()
            assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (0, 0o600)
            assert api.delete(f"/api/v1/vms/{name}").status_code == 204
            vm_id_done, vm_id = vm_id, None
        with pytest.raises(libvirt.libvirtError):
            system_libvirt.lookupByUUIDString(vm_id_done)
        assert not seed.exists()
        assert list(appliance.cfg.disk_dir.iterdir()) == []
    finally:
        # libvirtd keeps each domain's QEMU log after undefine; this one is ours.
        Path(f"/var/log/libvirt/qemu/{name}.log").unlink(missing_ok=True)
        if vm_id is not None:  # the test failed midway: do not leave a VM running
            _remove(appliance, system_libvirt, name)


def _remove(appliance: Appliance, conn: libvirt.virConnect, name: str) -> None:
    """Through the appliance first: while it runs, its reconcile may restart a domain
    stopped behind its back (the VM's restart policy), and an undefine then leaves it
    running as a transient domain. libvirt directly if the appliance refuses."""
    with api_client(appliance) as api:
        api.headers.update(login(api, "admin", admin_password(appliance.cfg)))
        if api.delete(f"/api/v1/vms/{name}").status_code == 204:
            return
    remove_domains(conn, [name])


BUNDLE = "bundle-model.img"
BUNDLE_LINE = "TOWERBOX-DEMO-MODEL fetched-bundle-v2"


def test_a_model_bundle_fetched_as_an_artifact_reaches_the_guest(
    demo_images: Path, system_libvirt: libvirt.virConnect
) -> None:
    work = Path(tempfile.mkdtemp(prefix="towerbox-bundle-it-", dir="/var/tmp"))
    work.chmod(0o755)
    name = f"bundle-it-{os.getpid()}"
    origin, images, catalog = work / "origin", work / "images", work / "catalog"
    for folder in (origin, images, catalog):
        folder.mkdir(mode=0o755)
    for boot in ("demo-vmlinuz", "demo-initramfs.cpio.gz"):
        shutil.copy(demo_images / boot, images / boot)
    # The bundle: a raw disk whose first line names it, as the demo guest reads it.
    bundle = (BUNDLE_LINE + "\n").encode().ljust(64 * 1024, b"\0")
    (origin / BUNDLE).write_bytes(bundle)
    shutil.copytree(REPO / "images" / "cloud-init", work / "cloud-init")
    entry = (REPO / "images" / "catalog" / "demo.toml").read_text()
    assert 'file = "demo-model.img"' in entry
    entry = entry.replace('file = "demo-model.img"', f'file = "{BUNDLE}"')
    app = None
    with artifact_server(origin) as (url, _):
        (catalog / "demo.toml").write_text(
            entry
            + f"""
[[artifacts]]
name = "{BUNDLE}"
url = "{url}/{BUNDLE}"
sha256 = "{hashlib.sha256(bundle).hexdigest()}"
kind = "model"
size = {len(bundle)}
"""
        )
        try:
            app = built(
                work / "node",
                TOWERBOX_LIBVIRT_URI=SYSTEM_URI,
                TOWERBOX_IMAGE_DIR=str(images),
                TOWERBOX_CATALOG_DIR=str(catalog),
                TOWERBOX_NODE_NAME=name,
                **REAL_HOST,
            )
            with api_client(app) as api:
                api.headers.update(login(api, "admin", admin_password(app.cfg)))
                body = {"name": name, "appliance": "demo", "start": True}
                early = api.post("/api/v1/vms", json=body)
                assert (early.status_code, early.json()["code"]) == (422, "model_missing")
                assert f"towerbox artifact fetch {BUNDLE}" in early.json()["detail"]

                listed = {a["name"]: a for a in api.get("/api/v1/artifacts").json()["artifacts"]}
                assert (listed[BUNDLE]["kind"], listed[BUNDLE]["state"]) == ("model", "missing")
                assert api.post(f"/api/v1/artifacts/{BUNDLE}/fetch").status_code == 202
                fetch = _wait_for_fetch(api, BUNDLE)
                assert fetch["state"] == "done", fetch
                assert (images / BUNDLE).read_bytes() == bundle

                made = api.post("/api/v1/vms", json=body)
                assert made.status_code == 201, made.text
                xml = system_libvirt.lookupByName(name).XMLDesc()
                disk = xml[xml.index(f"{images / BUNDLE}") :]
                assert "<readonly/>" in disk[: disk.index("</disk>")]
                console = _wait_for(
                    lambda: api.get(f"/api/v1/vms/{name}/console", params={"lines": 200}).text,
                    ["TOWERBOX-MODEL"],
                    BOOT_TIMEOUT_S,
                )
                assert f"TOWERBOX-MODEL {BUNDLE_LINE}" in console
                assert api.delete(f"/api/v1/vms/{name}").status_code == 204
        finally:
            Path(f"/var/log/libvirt/qemu/{name}.log").unlink(missing_ok=True)
            if app is not None:
                if any(d.name() == name for d in system_libvirt.listAllDomains()):
                    _remove(app, system_libvirt, name)
                app.close()
            shutil.rmtree(work, ignore_errors=True)


def _wait_for_fetch(api: Any, artifact: str, timeout_s: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for fetch in api.get("/api/v1/artifacts/fetches").json():
            if fetch["name"] == artifact and fetch["state"] in ("done", "failed"):
                return fetch
        time.sleep(0.1)
    pytest.fail(f"the fetch of {artifact} did not end within {timeout_s:.0f} s")
