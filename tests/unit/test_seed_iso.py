"""The NoCloud seed: planned from a catalog entry and a request, written with pycdlib,
read back; and how the domain XML attaches it and the model disk."""

from __future__ import annotations

import errno
import os
import stat
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pycdlib
import pytest

from appliance.backends.vm.domain_xml import DomainPaths, Owner, build_domain_xml
from appliance.backends.vm.seed_iso import SeedFiles, read_seed_iso, write_seed_iso
from appliance.catalog.loading import load_catalog
from appliance.catalog.model import spec_for
from appliance.domain.allocation import Allocation
from appliance.services.vm_seed import plan_seed, request_values
from towerbox_core.api.vms import VmCreateRequest
from towerbox_core.errors import InvalidInput, TowerboxError

REPO = Path(__file__).resolve().parents[2]
CATALOG = load_catalog(REPO / "images" / "catalog")
TEMPLATES = REPO / "images" / "cloud-init"
VM_ID = "6f1c2a8e-0000-4000-8000-000000000001"
NICS = {"nics": [{"kind": "bridge", "bridge": "br0"}, {"kind": "ovs", "bridge": "br-n6"}]}


def _plan(values: dict[str, object], overrides: dict[str, object] | None = None) -> tuple:  # type: ignore[type-arg]
    req = VmCreateRequest(name="demo-1", appliance="demo", spec=overrides or {}, values=values)
    spec = spec_for(CATALOG["demo"], "demo-1", dict(req.spec))
    return plan_seed(CATALOG, TEMPLATES, req, spec, VM_ID, request_values(CATALOG, req))


def test_seed_holds_meta_user_and_network_data(tmp_path: Path) -> None:
    yaml = pytest.importorskip("yaml")
    spec, plan = _plan({"model": "llama-3-8b"}, NICS)
    assert plan is not None
    path = tmp_path / "seed.iso"
    write_seed_iso(path, plan.files)

    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    files = read_seed_iso(path)
    assert files[""] == b"cidata"
    assert yaml.safe_load(files["meta-data"]) == {
        "instance-id": VM_ID,
        "local-hostname": "demo-1",
    }
    user = files["user-data"].decode()
    assert user.startswith("#cloud-config\n")
    assert 'TOWERBOX_MODEL="llama-3-8b"' in user
    assert f'TOWERBOX_INSTANCE="{VM_ID}"' in user
    assert yaml.safe_load(user)["hostname"] == "demo-1"

    macs = [nic.mac for nic in spec.nics]
    assert all(mac and mac.startswith("52:54:00:") for mac in macs)
    assert len(set(macs)) == 2
    net = yaml.safe_load(files["network-config"])
    assert net["version"] == 2
    assert [e["match"]["macaddress"] for _, e in sorted(net["ethernets"].items())] == macs
    assert plan.shown == {"model": "llama-3-8b"}


def test_a_mac_given_in_the_spec_is_kept() -> None:
    nics = {"nics": [{"kind": "bridge", "bridge": "br0", "mac": "52:54:00:aa:bb:cc"}]}
    spec, _ = _plan({}, nics)
    assert spec.nics[0].mac == "52:54:00:aa:bb:cc"


def test_default_value_fills_the_template_and_no_nics_means_no_ethernets() -> None:
    spec, plan = _plan({})
    assert plan is not None
    assert 'TOWERBOX_MODEL="tinyllama-1.1b"' in plan.files.user_data
    assert plan.files.network_config == "version: 2\nethernets: {}\n"
    assert spec.model_disk == "demo-model.img"


def test_values_for_an_appliance_without_a_template_are_refused() -> None:
    req = VmCreateRequest(name="u", appliance="upf", values={"model": "x"})
    with pytest.raises(InvalidInput) as info:
        request_values(CATALOG, req)
    assert info.value.code == "unknown_value"


@pytest.mark.parametrize(
    ("err", "code", "said"),
    [
        (errno.ENOSPC, "storage_full", "no space left"),
        (errno.EIO, "seed_build_failed", "Input/output error"),
    ],
)
def test_a_failed_write_leaves_no_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, err: int, code: str, said: str
) -> None:
    def failing(self: object, fp: Any) -> None:
        fp.write(b"\0" * 4096)
        raise OSError(err, os.strerror(err))

    monkeypatch.setattr(pycdlib.PyCdlib, "write_fp", failing)
    with pytest.raises(TowerboxError) as info:
        write_seed_iso(tmp_path / "seed.iso", SeedFiles("a: 1\n", "#cloud-config\n", "{}\n"))
    assert info.value.code == code
    assert said in info.value.message
    assert list(tmp_path.iterdir()) == []


def test_domain_gets_a_readonly_model_disk_and_seed_cdrom() -> None:
    spec, _ = _plan({})
    paths = DomainPaths(
        disks=(),
        kernel="/img/demo-vmlinuz",
        model="/img/demo-model.img",
        seed="/state/disks/x-seed.iso",
    )
    xml = build_domain_xml(
        spec,
        Allocation(),
        paths,
        Owner(node="n", vm_id=VM_ID, role="other", tenant=None),
        virt_type="qemu",
        uuid=VM_ID,
    )
    disks = ET.fromstring(xml).findall("devices/disk")  # noqa: S314 - our own XML
    model, seed = disks
    assert (model.get("device"), model.find("target").get("bus")) == ("disk", "virtio")  # type: ignore[union-attr]
    assert model.find("source").get("file") == "/img/demo-model.img"  # type: ignore[union-attr]
    assert model.find("readonly") is not None
    assert model.findtext("serial") == "towerbox-model"
    assert seed.get("device") == "cdrom"
    assert seed.find("target").attrib == {"dev": "sda", "bus": "sata"}  # type: ignore[union-attr]
    assert seed.find("readonly") is not None
