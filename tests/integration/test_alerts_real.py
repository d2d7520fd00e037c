"""A real QEMU stops answering (SIGSTOP) under libvirtd: the daemon's own alert job
raises qemu_unresponsive on it and resolves it once its QEMU answers again."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest

from tests.integration.test_real_vm import _wait, demo_images, workdir
from tests.integration.test_vm_unresponsive_real import _node_with_vms, _vms
from tests.support.stuck_qemu import stopped_qemu

pytestmark = [pytest.mark.libvirtd, pytest.mark.slow]
__all__ = ["demo_images", "workdir"]  # fixtures shared with the real VM test


def _alerts(api: httpx.Client) -> set[tuple[str, str]]:
    return {(a["rule"], a["object"]) for a in api.get("/api/v1/alerts").json()["alerts"]}


def test_a_stopped_qemu_raises_and_resolves_its_alert(demo_images: Path, workdir: Path) -> None:
    name = f"stuck-alert-{os.getpid()}"
    with _node_with_vms(demo_images, workdir, [name]) as (api, _):
        assert _alerts(api) == set()
        with stopped_qemu(name):
            _wait(lambda: _vms(api)[name]["state"] == "unresponsive", 60, "unresponsive")
            # The alert job runs every 15 s by default.
            _wait(lambda: ("qemu_unresponsive", f"vm:{name}") in _alerts(api), 60, "the alert")
        _wait(lambda: _alerts(api) == set(), 60, "the alert to resolve")
        kinds = [
            e["kind"]
            for e in api.get("/api/v1/journal", params={"kind": "alert.", "limit": 100}).json()[
                "entries"
            ]
        ]
        assert kinds == ["alert.fired", "alert.resolved"]
        assert api.delete(f"/api/v1/vms/{name}").status_code == 204
