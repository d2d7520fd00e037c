"""Contextualization through the API on the libvirt test driver: request values, the
NoCloud seed CD-ROM and the model disk, secrets kept out of the journal, refusals
that leave nothing behind."""

from __future__ import annotations

import os
import stat
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import libvirt
import pytest
from litestar.testing import TestClient

from appliance.backends.vm.seed_iso import read_seed_iso
from appliance.context import Appliance
from appliance.services import vm_provision
from appliance.store.models import JournalEntry, Vm
from tests.support.appliance import admin_password, api_client, built, login
from tests.support.keyed_catalog import SECRET, keyed_catalog
from towerbox_core.errors import BackendError


@pytest.fixture
def appliance(tmp_path: Path) -> Iterator[Appliance]:
    catalog = keyed_catalog(tmp_path)
    app = built(tmp_path, TOWERBOX_CATALOG_DIR=str(catalog))
    yield app
    root = app.auth.authenticate(app.cfg.cli_token_file.read_text().strip())
    for vm in Vm.select():
        app.vms.delete(root, vm.name)
    app.close()


@pytest.fixture
def client(appliance: Appliance) -> Iterator[TestClient[Any]]:
    with api_client(appliance) as c:
        c.headers.update(login(c, "admin", admin_password(appliance.cfg)))
        yield c


def _files(appliance: Appliance) -> list[str]:
    return sorted(p.name for p in appliance.cfg.disk_dir.iterdir())


def _domain_xml(vm_id: str) -> ET.Element:
    conn = libvirt.open("test:///default")
    try:
        return ET.fromstring(conn.lookupByUUIDString(vm_id).XMLDesc())  # noqa: S314
    finally:
        conn.close()


def _created_entry(vm_id: str) -> dict[str, Any]:
    import json

    entry = JournalEntry.get(
        (JournalEntry.kind == "vm.created") & (JournalEntry.object_id == vm_id)
    )
    state: dict[str, Any] = json.loads(entry.state)
    return state


def test_demo_vm_gets_its_seed_and_model_disk(
    client: TestClient[Any], appliance: Appliance
) -> None:
    resp = client.post(
        "/api/v1/vms",
        json={"name": "ctx", "appliance": "demo", "values": {"model": "llama-3-8b"}},
    )
    assert resp.status_code == 201, resp.text
    vm_id = resp.json()["id"]
    assert resp.json()["spec"]["model_disk"] == "demo-model.img"
    seed = appliance.cfg.disk_dir / f"{vm_id}-seed.iso"
    assert _files(appliance) == [seed.name]
    assert stat.S_IMODE(seed.stat().st_mode) == 0o600
    files = read_seed_iso(seed)
    assert b'TOWERBOX_MODEL="llama-3-8b"' in files["user-data"]
    assert f'instance-id: "{vm_id}"'.encode() in files["meta-data"]

    disks = _domain_xml(vm_id).findall("devices/disk")
    by_device = {d.get("device"): d for d in disks}
    assert by_device["cdrom"].find("source").get("file") == str(seed)  # type: ignore[union-attr]
    assert by_device["cdrom"].find("readonly") is not None
    model = by_device["disk"]
    assert model.find("source").get("file") == str(  # type: ignore[union-attr]
        Path(appliance.cfg.image_dir) / "demo-model.img"
    )
    assert model.find("readonly") is not None

    assert _created_entry(vm_id)["values"] == {"model": "llama-3-8b"}
    assert client.delete("/api/v1/vms/ctx").status_code == 204
    assert _files(appliance) == []


def test_a_secret_reaches_the_seed_but_not_the_journal_or_the_row(
    client: TestClient[Any], appliance: Appliance
) -> None:
    resp = client.post(
        "/api/v1/vms", json={"name": "keyed-1", "appliance": "keyed", "values": {"api_key": SECRET}}
    )
    assert resp.status_code == 201, resp.text
    vm_id = resp.json()["id"]
    assert (
        SECRET.encode() in read_seed_iso(appliance.cfg.disk_dir / f"{vm_id}-seed.iso")["user-data"]
    )
    # The secret as a marker; a plain value, its default here, as it is.
    assert _created_entry(vm_id)["values"] == {"api_key": "(secret)", "model": "small"}
    journal = client.get("/api/v1/journal?limit=1000").text
    assert "(secret)" in journal
    assert SECRET not in journal
    assert SECRET not in client.get("/api/v1/vms/keyed-1").text
    assert SECRET not in Vm.get_by_id(vm_id).spec
    for path in appliance.cfg.db_path.parent.glob(appliance.cfg.db_path.name + "*"):
        assert SECRET.encode() not in path.read_bytes(), path


@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        ({"appliance": "demo", "values": {"colour": "red"}}, "unknown_value", "values.colour"),
        ({"appliance": "demo", "values": {"model": 3}}, "invalid_value_type", "values.model"),
        ({"appliance": "demo", "values": {"model": "m" * 129}}, "value_too_long", "values.model"),
        ({"appliance": "demo", "values": {"model": "a b"}}, "invalid_value", "values.model"),
        ({"appliance": "keyed"}, "missing_value", "values.api_key"),
        ({"appliance": "upf", "values": {"model": "x"}}, "unknown_value", "values.model"),
        (
            {"spec": {"boot": {"kernel": "demo-vmlinuz"}}, "values": {"model": "x"}},
            "unknown_value",
            "values.model",
        ),
    ],
)
def test_bad_values_are_refused_and_nothing_is_made(
    client: TestClient[Any], appliance: Appliance, body: dict[str, Any], code: str, field: str
) -> None:
    resp = client.post("/api/v1/vms", json={"name": "refused", **body})
    assert resp.status_code == 422, resp.text
    assert (resp.json()["code"], resp.json()["field"]) == (code, field)
    assert not Vm.select().exists()
    assert _files(appliance) == []


def test_a_missing_model_file_is_refused(client: TestClient[Any], appliance: Appliance) -> None:
    (Path(appliance.cfg.image_dir) / "demo-model.img").unlink()
    resp = client.post("/api/v1/vms", json={"name": "nomodel", "appliance": "demo"})
    assert resp.status_code == 422, resp.text
    assert (resp.json()["code"], resp.json()["field"]) == ("model_missing", "model_disk")
    assert not Vm.select().exists()
    assert _files(appliance) == []


def test_a_seed_that_cannot_be_written_leaves_nothing(
    client: TestClient[Any], appliance: Appliance, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(path: Path, _files: object) -> None:
        path.write_bytes(b"half")
        raise BackendError("cannot write the cloud-init seed", code="seed_build_failed")

    monkeypatch.setattr(vm_provision, "write_seed_iso", broken)
    resp = client.post("/api/v1/vms", json={"name": "noseed", "appliance": "demo"})
    assert resp.status_code == 502, resp.text
    assert resp.json()["code"] == "seed_build_failed"
    assert not Vm.select().exists()
    assert _files(appliance) == []
    conn = libvirt.open("test:///default")
    try:
        assert "noseed" not in [d.name() for d in conn.listAllDomains()]
    finally:
        conn.close()
    assert appliance.allocator.held("noseed") is None


def test_the_catalog_shows_what_a_request_may_set(client: TestClient[Any]) -> None:
    demo = client.get("/api/v1/catalog/demo").json()
    assert demo["model_file"] == "demo-model.img"
    assert demo["image_status"]["files"]["demo-model.img"]["present"] is True
    assert demo["values"]["model"]["default"] == "tinyllama-1.1b"
    assert client.get("/api/v1/catalog/keyed").json()["values"]["api_key"]["secret"] is True


def test_a_request_may_name_another_model_file(
    client: TestClient[Any], appliance: Appliance
) -> None:
    (Path(appliance.cfg.image_dir) / "other-model.img").write_bytes(b"other\n".ljust(512, b"\0"))
    resp = client.post(
        "/api/v1/vms",
        json={"name": "other", "appliance": "demo", "spec": {"model_disk": "other-model.img"}},
    )
    assert resp.status_code == 201, resp.text
    model = next(
        d
        for d in _domain_xml(resp.json()["id"]).findall("devices/disk")
        if d.get("device") == "disk"
    )
    assert model.find("source").get("file").endswith("/other-model.img")  # type: ignore[union-attr]
    resp = client.post(
        "/api/v1/vms",
        json={"name": "bad", "appliance": "demo", "spec": {"model_disk": "../etc/passwd"}},
    )
    assert (resp.status_code, resp.json()["code"]) == (422, "invalid_image_name"), resp.text


@pytest.mark.skipif(os.getuid() != 0, reason="lending the seed to another user needs root")
def test_stopping_a_vm_takes_its_seed_back(client: TestClient[Any], appliance: Appliance) -> None:
    resp = client.post("/api/v1/vms", json={"name": "lent", "appliance": "demo", "start": True})
    assert resp.status_code == 201, resp.text
    seed = appliance.cfg.disk_dir / f"{resp.json()['id']}-seed.iso"
    # What libvirt does to a read-only image at start, and does not undo.
    os.chown(seed, 65534, 65534)
    seed.chmod(0o644)
    assert client.post("/api/v1/vms/lent/stop").json()["state"] == "shutoff"
    st = seed.stat()
    assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (0, 0o600)
