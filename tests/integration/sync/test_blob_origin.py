"""The fleet registry as an artifact origin, end to end with real processes: an
operator uploads a blob to the registry, the node's catalog names it as
``registry:<sha256>``, and the appliance fetches it through the agent's relay (the
WAN link dropped part way, the transfer resumed) until it is verified. Without an
agent that reports, the fetch is refused up front and nothing is written."""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.sync.lab import Lab, open_lab
from tests.support.appliance import REPO

SIZE = 32 * 1024 * 1024 + 3
NAME = "llm-model.bin"

ENTRY = """\
name = "llm"
description = "inference with a model bundle from the fleet registry"
version = "1"
role = "b2b"

[image]
kind = "disk"
file = "base.qcow2"

[spec]
vcpus = 1
memory_mib = 256

[[artifacts]]
name = "{name}"
url = "registry:{sha}"
sha256 = "{sha}"
kind = "model"
size = {size}
"""


@pytest.fixture
def origin_lab(tmp_path: Path) -> Iterator[tuple[Lab, bytes]]:
    if os.geteuid() != 0 or shutil.which("nft") is None:
        pytest.skip("network namespaces and nftables need root and the nft tool")
    data = os.urandom(SIZE)
    catalog = tmp_path / "catalog"
    catalog.mkdir()
    shutil.copy(REPO / "images" / "catalog" / "demo.toml", catalog)
    shutil.copytree(REPO / "images" / "cloud-init", tmp_path / "cloud-init")
    sha = hashlib.sha256(data).hexdigest()
    (catalog / "llm.toml").write_text(ENTRY.format(name=NAME, sha=sha, size=SIZE))
    with open_lab(
        tmp_path,
        "",
        TOWERBOX_CATALOG_DIR=str(catalog),
        # 8 MiB/s: the transfer lasts long enough for the link to drop part way.
        TOWERBOX_ARTIFACTS_BANDWIDTH_BYTES_S=str(8 * 1024 * 1024),
        TOWERBOX_ARTIFACTS_RETRIES="3",
    ) as lab:
        yield lab, data


def _until(check: Callable[[], Any], timeout: float = 90) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(0.05)
    raise AssertionError("gave up waiting")


def _artifact(node: httpx.Client) -> dict[str, Any]:
    listing = node.get("/api/v1/artifacts").json()
    found: dict[str, Any] = next(a for a in listing["artifacts"] if a["name"] == NAME)
    return found


def test_a_node_fetches_a_registry_blob_through_the_agent(
    origin_lab: tuple[Lab, bytes],
) -> None:
    lab, data = origin_lab
    sha = hashlib.sha256(data).hexdigest()
    image_dir = Path(lab.daemon.env["TOWERBOX_IMAGE_DIR"])
    with lab.daemon.http(lab.admin_token) as node:
        assert _artifact(node)["url"] == f"registry:{sha}"
        # No agent has reported: the node has no registry to fetch from.
        early = node.post(f"/api/v1/artifacts/{NAME}/fetch")
        assert (early.status_code, early.json()["code"]) == (503, "artifact_origin_unavailable")
        assert not (image_dir / ".partial" / NAME).exists()

        # An operator uploads the blob: a streamed PUT, checked against its hash.
        with lab.registry.operator() as op:
            up = op.put(f"/api/v1/blobs/{sha}", params={"name": NAME}, content=iter([data]))
            assert up.status_code == 201, up.text
        lab.agent.start()
        _until(lambda: node.get("/api/v1/sync/status").json()["agent"] == "running")

        started = node.post(f"/api/v1/artifacts/{NAME}/fetch")
        assert started.status_code == 202, started.text

        def progress() -> dict[str, Any]:
            return next(
                f for f in node.get("/api/v1/artifacts/fetches").json() if f["name"] == NAME
            )

        # The WAN link drops a quarter of the way in: every connection through it is reset.
        _until(lambda: progress()["bytes_done"] >= SIZE // 4)
        lab.proxy.reset_connections()
        done = _until(lambda: progress()["state"] in ("done", "failed") and progress())
        assert done["state"] == "done", done
        assert done["resumed_from"] > 0, done  # resumed with a Range, not started over
        assert _artifact(node)["state"] == "verified"
        journal = node.get("/api/v1/journal", params={"after": 0, "limit": 1000}).json()
    assert (image_dir / NAME).read_bytes() == data
    assert not (image_dir / ".partial" / NAME).exists()
    [fetched] = [e for e in journal["entries"] if e["kind"] == "artifact.fetched"]
    assert fetched["state"]["transferred"] == SIZE  # no byte came twice
    assert "relayed" in lab.agent.log()
