"""Catalog entries name the artifacts they need: ``[[artifacts]]`` tables, and an
``[image]`` with a url counts as one."""

from __future__ import annotations

from pathlib import Path

import pytest

from appliance.catalog.loading import entry_from_document, load_entry
from appliance.catalog.model import ArtifactRef, entry_artifacts, entry_document
from towerbox_core.errors import ConfigError, InvalidInput

SHA_A = "aa" * 32
SHA_B = "BB" * 32

ENTRY = """\
name = "llm"
description = "inference with a model bundle"
version = "1"
role = "b2b"

[image]
kind = "disk"
file = "base.img"
url = "https://images.example.com/base.img"
sha256 = "{sha_a}"

[spec]
vcpus = 2
memory_mib = 2048
"""

ARTIFACT = """
[[artifacts]]
name = "{name}"
url = "{url}"
sha256 = "{sha}"
kind = "{kind}"
{extra}
"""


def _write(tmp_path: Path, *artifacts: dict[str, str]) -> Path:
    text = ENTRY.format(sha_a=SHA_A)
    for a in artifacts:
        values = {
            "name": "llama.tar",
            "url": "http://mirror.local/llama.tar",
            "sha": SHA_B,
            "kind": "model",
            "extra": "size = 1024",
            **a,
        }
        text += ARTIFACT.format(**values)
    path = tmp_path / "llm.toml"
    path.write_text(text)
    return path


def test_artifacts_are_read_and_the_image_counts_as_one(tmp_path: Path) -> None:
    entry = load_entry(_write(tmp_path, {}, {"name": "vmlinuz", "kind": "kernel", "extra": ""}))
    assert entry.artifacts == (
        ArtifactRef("llama.tar", "http://mirror.local/llama.tar", SHA_B.lower(), "model", 1024),
        ArtifactRef("vmlinuz", "http://mirror.local/llama.tar", SHA_B.lower(), "kernel", None),
    )
    names = [(a.name, a.kind) for a in entry_artifacts(entry)]
    assert names == [("base.img", "image"), ("llama.tar", "model"), ("vmlinuz", "kernel")]


def test_a_registry_blob_is_named_by_the_artifacts_own_hash(tmp_path: Path) -> None:
    path = _write(tmp_path, {"url": f"registry:{SHA_B}"})
    path.write_text(
        path.read_text().replace("https://images.example.com/base.img", f"registry:{SHA_A}")
    )
    entry = load_entry(path)
    assert [a.url for a in entry_artifacts(entry)] == [
        f"registry:{SHA_A}",
        f"registry:{SHA_B.lower()}",
    ]
    doc = entry_document(entry)
    assert entry_from_document(doc, None, "catalog.llm").artifacts == entry.artifacts


def test_an_entry_document_keeps_its_artifacts(tmp_path: Path) -> None:
    entry = load_entry(_write(tmp_path, {}))
    doc = entry_document(entry)
    assert doc["artifacts"] == [
        {
            "name": "llama.tar",
            "url": "http://mirror.local/llama.tar",
            "sha256": SHA_B.lower(),
            "kind": "model",
            "size": 1024,
        }
    ]
    assert entry_from_document(doc, None, "catalog.llm").artifacts == entry.artifacts


def test_an_image_without_url_is_no_artifact(tmp_path: Path) -> None:
    text = ENTRY.format(sha_a=SHA_A).replace('url = "https://images.example.com/base.img"\n', "")
    path = tmp_path / "llm.toml"
    path.write_text(text)
    assert entry_artifacts(load_entry(path)) == ()


BAD = {
    "path in name": ({"name": "../etc/passwd"}, "artifacts[0].name"),
    "ftp url": ({"url": "ftp://mirror.local/x"}, "artifacts[0].url"),
    "short hash": ({"sha": "abc"}, "artifacts[0].sha256"),
    "bad kind": ({"kind": "firmware"}, "artifacts"),
    "negative size": ({"extra": "size = -1"}, "artifacts[0].size"),
    "unknown field": ({"extra": "mirror = 'x'"}, "artifacts"),
    "image file with another hash": ({"name": "base.img"}, "artifacts[0].sha256"),
    "registry blob of another hash": ({"url": f"registry:{SHA_A}"}, "artifacts[0].url"),
    "registry source without a hash": ({"url": "registry:llama.tar"}, "artifacts[0].url"),
}


@pytest.mark.parametrize(("override", "field"), BAD.values(), ids=BAD.keys())
def test_a_bad_artifact_is_refused_naming_the_field(
    tmp_path: Path, override: dict[str, str], field: str
) -> None:
    with pytest.raises(ConfigError) as err:
        load_entry(_write(tmp_path, override))
    assert err.value.code == "invalid_catalog_entry"
    assert str(err.value.extra["field"]).startswith(field)


def test_an_artifact_listed_twice_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_entry(_write(tmp_path, {}, {}))
    assert err.value.extra["field"] == "artifacts[1].name"
    assert "twice" in err.value.message


def test_a_central_document_is_checked_the_same_way(tmp_path: Path) -> None:
    doc = entry_document(load_entry(_write(tmp_path, {})))
    doc["artifacts"][0]["sha256"] = "xyz"
    with pytest.raises(InvalidInput) as err:
        entry_from_document(doc, None, "catalog.llm")
    assert err.value.extra["field"] == "catalog.llm.artifacts[0].sha256"
