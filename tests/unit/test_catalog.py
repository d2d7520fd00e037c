"""The appliance catalog: the shipped files, refusals at load, spec merging, images."""

from __future__ import annotations

import hashlib
from pathlib import Path

import msgspec
import pytest

from appliance.catalog.cloud_init import render_cloud_init
from appliance.catalog.images import image_status
from appliance.catalog.loading import load_catalog
from appliance.catalog.model import CatalogEntry, ImageRef, spec_for
from appliance.domain.vm_spec import CpuPolicy, HugepageSize, NicKind, RestartPolicy, Role
from towerbox_core.errors import ConfigError, InvalidInput

REPO = Path(__file__).resolve().parents[2]
CATALOG_DIR = REPO / "images" / "catalog"
TEMPLATES_DIR = REPO / "images" / "cloud-init"
VALUES = {
    "vm_name": "infer-1",
    "tenant": "acme",
    "ssh_authorized_key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExample ops@example.com",
    "model": "Qwen/Qwen2.5-1.5B-Instruct",
    "hf_token": "",
}

KERNEL_ENTRY = """\
name = "{name}"
description = "test appliance"
version = "1.0"
role = "other"

[image]
kind = "kernel"
file = "k-vmlinuz"
initrd = "k-initrd.gz"

[spec]
vcpus = 1
memory_mib = 128

[spec.boot]
cmdline = "console=ttyS0"
"""

DISK_ENTRY = """\
name = "{name}"
description = "disk appliance"
version = "2"
role = "b2b"

[image]
kind = "disk"
file = "base.qcow2"
url = "https://images.example.com/base.qcow2"
sha256 = "{sha}"

[spec]
vcpus = 4
memory_mib = 4096

[spec.cpu]
policy = "pinned"
isolated = true

[[spec.disks]]
size_gib = 10

[[spec.nics]]
kind = "bridge"
bridge = "br-b2b"

[cloud_init]
template = "t.yaml"
"""

TEMPLATE = """\
#cloud-config
hostname: "$vm_name"
users:
  - name: ops
    ssh_authorized_keys: ["$ssh_authorized_key"]
write_files:
  - path: /etc/tenant
    content: "$tenant costs $$5"
"""


def _catalog(tmp_path: Path, **files: str) -> Path:
    catalog = tmp_path / "catalog"
    catalog.mkdir()
    templates = tmp_path / "cloud-init"
    templates.mkdir()
    (templates / "t.yaml").write_text(TEMPLATE)
    for stem, text in files.items():
        (catalog / f"{stem}.toml").write_text(text)
    return catalog


def _kernel(name: str = "tiny") -> str:
    return KERNEL_ENTRY.format(name=name)


def _disk(name: str = "box", sha: str = "ab" * 32) -> str:
    return DISK_ENTRY.format(name=name, sha=sha)


def _entry(tmp_path: Path, text: str, stem: str) -> CatalogEntry:
    return load_catalog(_catalog(tmp_path, **{stem: text}))[stem]


# -- the shipped catalog -----------------------------------------------------------


def test_shipped_catalog_loads_and_every_entry_makes_a_valid_spec() -> None:
    catalog = load_catalog(CATALOG_DIR)

    assert set(catalog) == {"demo", "vran-du", "upf", "vllm-inference"}
    for name, entry in catalog.items():
        spec = spec_for(entry, f"vm-{name}", {})
        assert spec.name == f"vm-{name}"
        assert spec.appliance == name
        assert spec.role is entry.role
        assert Path(entry.source_file).name == f"{name}.toml"


def test_shipped_entries_have_their_shape() -> None:
    catalog = load_catalog(CATALOG_DIR)

    demo = spec_for(catalog["demo"], "d", {})
    assert demo.boot is not None
    assert (demo.boot.kernel, demo.boot.initrd) == ("demo-vmlinuz", "demo-initramfs.cpio.gz")
    assert "console=ttyS0" in demo.boot.cmdline
    assert (demo.vcpus, demo.memory_mib, demo.serial_log) == (1, 128, True)
    assert demo.restart is RestartPolicy.ON_FAILURE

    du = spec_for(catalog["vran-du"], "du", {})
    assert du.role is Role.VRAN
    assert (du.cpu.policy, du.cpu.isolated) == (CpuPolicy.PINNED, True)
    assert (du.hugepages, du.memory_mib, du.vcpus) == (HugepageSize.SIZE_1G, 16384, 8)
    assert [(n.kind, n.pf) for n in du.nics] == [(NicKind.SRIOV, "ens1f0")]
    assert du.restart is RestartPolicy.ALWAYS
    assert catalog["vran-du"].image.url is not None

    upf = spec_for(catalog["upf"], "upf1", {})
    assert upf.role is Role.UPF
    assert (upf.hugepages, upf.memory_mib) == (HugepageSize.SIZE_2M, 4096)
    assert [(n.kind, n.bridge) for n in upf.nics] == [
        (NicKind.OVS, "br-n3"),
        (NicKind.OVS, "br-n6"),
    ]

    llm = catalog["vllm-inference"]
    llm_spec = spec_for(llm, "infer-1", {})
    assert llm_spec.role is Role.B2B
    assert llm_spec.cpu.policy is CpuPolicy.SHARED
    assert llm_spec.disks[0].image == llm.image.file
    assert llm.cloud_init_template == "vllm.yaml"


@pytest.mark.parametrize("template", ["default.yaml", "vllm.yaml"])
def test_shipped_templates_render_to_valid_cloud_config(template: str) -> None:
    yaml = pytest.importorskip("yaml")
    raw = (TEMPLATES_DIR / template).read_text()
    assert raw.startswith("#cloud-config\n")
    yaml.safe_load(raw)
    entry = msgspec.structs.replace(
        load_catalog(CATALOG_DIR)["vllm-inference"], cloud_init_template=template
    )

    rendered = render_cloud_init(entry, TEMPLATES_DIR, VALUES)

    assert rendered is not None
    assert rendered.startswith("#cloud-config\n")
    doc = yaml.safe_load(rendered)
    assert doc["hostname"] == "infer-1"
    assert doc["users"][0]["ssh_authorized_keys"] == [VALUES["ssh_authorized_key"]]


# -- refusals at load --------------------------------------------------------------

BAD_FILES = {
    "unknown_field": (
        _kernel("bad").replace('version = "1.0"', 'version = "1.0"\ncolour = 1'),
        "colour",
    ),
    "unknown_image_field": (
        _kernel("bad").replace('kind = "kernel"', 'kind = "kernel"\nx = 1'),
        "image",
    ),
    "bad_role": (_kernel("bad").replace('role = "other"', 'role = "core"'), "role"),
    "bad_kind": (_kernel("bad").replace('kind = "kernel"', 'kind = "iso"'), "image.kind"),
    "bad_sha256": (_disk("bad", sha="abc123"), "image.sha256"),
    "non_hex_sha256": (_disk("bad", sha="zz" * 32), "image.sha256"),
    "url_without_sha256": (
        _disk("bad").replace('sha256 = "' + "ab" * 32 + '"', ""),
        "image.sha256",
    ),
    "url_not_http": (_disk("bad").replace("https://", "file:///"), "image.url"),
    "name_mismatch": (_kernel("other"), "name"),
    "bad_name": (_kernel("bad name"), "name"),
    "bad_spec_value": (_kernel("bad").replace("vcpus = 1", "vcpus = 0"), "spec.vcpus"),
    "bad_spec_type": (_kernel("bad").replace("vcpus = 1", 'vcpus = "many"'), "spec.vcpus"),
    "unknown_spec_field": (_kernel("bad").replace("vcpus = 1", "turbo = true"), "spec"),
    "spec_sets_name": (_kernel("bad").replace("vcpus = 1", 'name = "x"'), "spec.name"),
    "spec_sets_role": (_kernel("bad").replace("vcpus = 1", 'role = "vran"'), "spec.role"),
    "spec_boot_kernel": (
        _kernel("bad").replace('cmdline = "console=ttyS0"', 'kernel = "k2"'),
        "spec.boot.kernel",
    ),
    "boot_on_disk_kind": (_disk("bad") + '\n[spec.boot]\ncmdline = "x"\n', "spec.boot"),
    "initrd_on_disk_kind": (
        _disk("bad").replace('kind = "disk"', 'kind = "disk"\ninitrd = "i"'),
        "image.initrd",
    ),
    "toml_syntax": (_kernel("bad").replace("vcpus = 1", "vcpus = "), None),
    "file_with_slash": (_kernel("bad").replace('"k-vmlinuz"', '"boot/k-vmlinuz"'), "image.file"),
    "file_dotdot": (_kernel("bad").replace('"k-initrd.gz"', '"../k-initrd.gz"'), "image.initrd"),
    "template_missing": (_disk("bad").replace("t.yaml", "nope.yaml"), "cloud_init.template"),
    "template_with_slash": (_disk("bad").replace("t.yaml", "x/t.yaml"), "cloud_init.template"),
    "missing_version": (_kernel("bad").replace('version = "1.0"\n', ""), "version"),
}


@pytest.mark.parametrize(("text", "field"), BAD_FILES.values(), ids=BAD_FILES.keys())
def test_a_bad_file_is_refused_naming_the_file_and_field(
    tmp_path: Path, text: str, field: str | None
) -> None:
    catalog = _catalog(tmp_path, good=_kernel("good"), bad=text)

    with pytest.raises(ConfigError) as info:
        load_catalog(catalog)

    err = info.value
    assert err.code == "invalid_catalog_entry"
    assert "bad.toml" in err.message
    assert err.extra["file"] == str(catalog / "bad.toml")
    if field is not None:
        assert field in err.message
        assert str(err.extra["field"]).startswith(field)
    assert err.to_problem()["code"] == "invalid_catalog_entry"


def test_a_toml_syntax_error_says_where(tmp_path: Path) -> None:
    catalog = _catalog(tmp_path, bad=_kernel("bad").replace("vcpus = 1", "vcpus = "))

    with pytest.raises(ConfigError, match=r"bad\.toml: is not valid TOML: .*line 12"):
        load_catalog(catalog)


def test_a_missing_catalog_folder_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_catalog(tmp_path / "nowhere")
    assert info.value.code == "catalog_not_found"


def test_only_toml_files_are_read(tmp_path: Path) -> None:
    catalog = _catalog(tmp_path, tiny=_kernel())
    (catalog / "README.md").write_text("not an entry")
    (catalog / "tiny.toml.orig").write_text("broken [")

    assert list(load_catalog(catalog)) == ["tiny"]


def test_sha256_is_kept_lowercase(tmp_path: Path) -> None:
    entry = _entry(tmp_path, _disk(sha="AB" * 32), "box")
    assert entry.image.sha256 == "ab" * 32


# -- spec_for ----------------------------------------------------------------------


def test_kernel_image_fills_boot_and_keeps_the_cmdline(tmp_path: Path) -> None:
    entry = _entry(tmp_path, _kernel(), "tiny")

    spec = spec_for(entry, "t1", {})

    assert spec.boot is not None
    assert (spec.boot.kernel, spec.boot.initrd, spec.boot.cmdline) == (
        "k-vmlinuz",
        "k-initrd.gz",
        "console=ttyS0",
    )
    assert spec.disks == ()
    assert (spec.appliance, spec.role) == ("tiny", Role.OTHER)


def test_overrides_merge_tables_and_replace_values(tmp_path: Path) -> None:
    entry = _entry(tmp_path, _kernel(), "tiny")

    spec = spec_for(
        entry,
        "t1",
        {
            "vcpus": 2,
            "memory_mib": 256,
            "boot": {"cmdline": "console=ttyS0 quiet"},
            "name": "ignored",
            "tenant": "acme",
        },
    )

    assert (spec.name, spec.vcpus, spec.memory_mib, spec.tenant) == ("t1", 2, 256, "acme")
    assert spec.boot is not None
    assert spec.boot.kernel == "k-vmlinuz"
    assert spec.boot.cmdline == "console=ttyS0 quiet"


def test_disk_image_is_the_first_disk_before_the_listed_ones(tmp_path: Path) -> None:
    entry = _entry(tmp_path, _disk(), "box")

    spec = spec_for(entry, "b1", {"cpu": {"isolated": False}})

    assert [(d.image, d.size_gib) for d in spec.disks] == [("base.qcow2", None), (None, 10)]
    assert spec.boot is None
    assert (spec.cpu.policy, spec.cpu.isolated) == (CpuPolicy.PINNED, False)
    assert (spec.role, spec.appliance) == (Role.B2B, "box")


def test_overridden_disks_replace_the_image_disk(tmp_path: Path) -> None:
    entry = _entry(tmp_path, _disk(), "box")

    spec = spec_for(entry, "b1", {"disks": [{"image": "other.qcow2", "size_gib": 20}]})

    assert [(d.image, d.size_gib) for d in spec.disks] == [("other.qcow2", 20)]


def test_role_and_appliance_can_be_overridden(tmp_path: Path) -> None:
    entry = _entry(tmp_path, _disk(), "box")

    spec = spec_for(entry, "b1", {"role": "other", "appliance": "custom"})

    assert (spec.role, spec.appliance) == (Role.OTHER, "custom")


def test_spec_for_leaves_the_entry_untouched(tmp_path: Path) -> None:
    entry = _entry(tmp_path, _disk(), "box")
    before = msgspec.json.encode(entry.default_spec)

    spec_for(entry, "b1", {"cpu": {"isolated": False}, "nics": []})
    spec_for(entry, "b2", {})

    assert msgspec.json.encode(entry.default_spec) == before


def test_bad_overrides_are_invalid_input(tmp_path: Path) -> None:
    entry = _entry(tmp_path, _disk(), "box")

    with pytest.raises(InvalidInput) as info:
        spec_for(entry, "b1", {"memory_mib": 10})
    assert info.value.code == "invalid_memory"
    with pytest.raises(InvalidInput):
        spec_for(entry, "bad name", {})


# -- image_status ------------------------------------------------------------------


def _disk_entry(sha256: str | None) -> CatalogEntry:
    return CatalogEntry(
        name="box",
        description="",
        version="1",
        role=Role.OTHER,
        image=ImageRef(kind="disk", file="base.qcow2", sha256=sha256),
        default_spec={},
        cloud_init_template=None,
        source_file="box.toml",
    )


def test_image_status_with_a_matching_sha256(tmp_path: Path) -> None:
    data = b"qcow2-ish bytes " * 100_000  # a few chunks
    (tmp_path / "base.qcow2").write_bytes(data)

    status = image_status(_disk_entry(hashlib.sha256(data).hexdigest()), tmp_path)

    assert status == {
        "present": True,
        "files": {"base.qcow2": {"present": True, "size_bytes": len(data)}},
        "sha256_ok": True,
    }


def test_image_status_with_a_mismatching_sha256(tmp_path: Path) -> None:
    (tmp_path / "base.qcow2").write_bytes(b"tampered")

    status = image_status(_disk_entry("00" * 32), tmp_path)

    assert (status["present"], status["sha256_ok"]) == (True, False)


def test_image_status_notices_a_changed_file(tmp_path: Path) -> None:
    image = tmp_path / "base.qcow2"
    image.write_bytes(b"one")
    entry = _disk_entry(hashlib.sha256(b"one").hexdigest())
    assert image_status(entry, tmp_path)["sha256_ok"] is True

    image.write_bytes(b"two, longer")

    assert image_status(entry, tmp_path)["sha256_ok"] is False


def test_image_status_absent_or_without_hash(tmp_path: Path) -> None:
    assert image_status(_disk_entry("00" * 32), tmp_path) == {
        "present": False,
        "files": {"base.qcow2": {"present": False, "size_bytes": None}},
        "sha256_ok": None,
    }
    (tmp_path / "base.qcow2").write_bytes(b"x")
    assert image_status(_disk_entry(None), tmp_path)["sha256_ok"] is None


def test_image_status_of_a_kernel_needs_the_initrd_too(tmp_path: Path) -> None:
    entry = _entry(tmp_path, _kernel(), "tiny")
    images = tmp_path / "images"
    images.mkdir()
    (images / "k-vmlinuz").write_bytes(b"kernel")

    status = image_status(entry, images)

    assert status["present"] is False
    assert status["files"]["k-initrd.gz"]["present"] is False
    (images / "k-initrd.gz").mkdir()  # a folder is not an image
    assert image_status(entry, images)["present"] is False


# -- cloud-init --------------------------------------------------------------------


def test_render_cloud_init_fills_placeholders(tmp_path: Path) -> None:
    entry = _entry(tmp_path, _disk(), "box")

    rendered = render_cloud_init(entry, tmp_path / "cloud-init", VALUES)

    assert rendered is not None
    assert 'hostname: "infer-1"' in rendered
    assert '"acme costs $5"' in rendered


def test_render_cloud_init_missing_value(tmp_path: Path) -> None:
    entry = _entry(tmp_path, _disk(), "box")

    with pytest.raises(InvalidInput) as info:
        render_cloud_init(entry, tmp_path / "cloud-init", {"vm_name": "a", "tenant": "b"})

    assert info.value.code == "cloud_init_missing_value"
    assert info.value.extra["field"] == "ssh_authorized_key"


@pytest.mark.parametrize("value", ['a"\nbootcmd: [rm]', "line\nbreak", "back\\slash", "\x00"])
def test_render_cloud_init_refuses_values_that_could_escape_their_quotes(
    tmp_path: Path, value: str
) -> None:
    entry = _entry(tmp_path, _disk(), "box")

    with pytest.raises(InvalidInput) as info:
        render_cloud_init(entry, tmp_path / "cloud-init", {**VALUES, "tenant": value})

    assert info.value.code == "invalid_cloud_init_value"


def test_render_cloud_init_without_template_is_none(tmp_path: Path) -> None:
    entry = _entry(tmp_path, _kernel(), "tiny")
    assert render_cloud_init(entry, tmp_path / "cloud-init", VALUES) is None


def test_a_template_gone_after_load_is_a_config_error(tmp_path: Path) -> None:
    entry = _entry(tmp_path, _disk(), "box")
    (tmp_path / "cloud-init" / "t.yaml").unlink()

    with pytest.raises(ConfigError) as info:
        render_cloud_init(entry, tmp_path / "cloud-init", VALUES)
    assert info.value.code == "cloud_init_template_missing"


def test_a_template_with_a_bad_placeholder_is_refused_at_load(tmp_path: Path) -> None:
    catalog = _catalog(tmp_path, box=_disk())
    (tmp_path / "cloud-init" / "t.yaml").write_text("#cloud-config\nprice: $5\n")

    with pytest.raises(ConfigError, match=r"box\.toml: field cloud_init\.template: .*'\$\$'"):
        load_catalog(catalog)
