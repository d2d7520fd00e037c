"""The node's "top" with real QEMU under libvirtd: of two demo VMs, the one whose QEMU
runs comes first by CPU, the one stopped (SIGSTOP: no CPU at all) last, and the
figures are those of the monitor's last sample of each VM."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.test_real_vm import _wait, demo_images, workdir
from tests.integration.test_vm_unresponsive_real import _node_with_vms
from tests.support.stuck_qemu import stopped_qemu

pytestmark = [pytest.mark.libvirtd, pytest.mark.slow]
__all__ = ["demo_images", "workdir"]  # fixtures shared with the real VM test


def _top(api: httpx.Client) -> dict[str, Any]:
    resp = api.get("/api/v1/top")
    assert resp.status_code == 200, resp.text
    answer: dict[str, Any] = resp.json()
    return answer


def _same_sweep(api: httpx.Client, name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The VM's row in top and its history, read between the same two sweeps."""
    for _ in range(20):
        top = _top(api)
        history = api.get(f"/api/v1/vms/{name}/stats").json()["history"]
        if history and history[-1]["at"] == top["taken_at"]:
            [row] = [v for v in top["vms"] if v["name"] == name]
            return row, history
    raise AssertionError("the monitor swept between every read of top and stats")


def test_top_on_real_qemu_puts_the_running_vm_before_a_stopped_one(
    demo_images: Path, workdir: Path
) -> None:
    busy, stopped = names = [f"top-it-{os.getpid()}-{i}" for i in range(2)]
    with _node_with_vms(demo_images, workdir, names) as (api, _), stopped_qemu(stopped):

        def ordered() -> bool:
            rows = {v["name"]: v for v in _top(api)["vms"]}
            return rows[busy]["cpu_pct"] > 0 and rows[stopped]["cpu_pct"] == 0

        _wait(ordered, 60, "CPU in the running VM and none in the stopped one")
        assert [v["name"] for v in _top(api)["vms"]][:2] == names
        row, history = _same_sweep(api, busy)
        now = history[-1]
        assert row["state"] == now["state"] == "running"
        assert row["cpu_pct"] == now["cpu_pct"]
        used = now["guest_used_kib"] if now["guest_used_kib"] is not None else now["memory_kib"]
        assert row["memory_bytes"] == used * 1024 > 0
        assert row["rss_bytes"] == now["rss_kib"] * 1024 > 0
        before = history[-2]  # it was swept many times while booting
        span = now["at"] - before["at"]
        for field, counter in (
            ("disk_read_bps", "disk_read_bytes"),
            ("net_rx_bps", "net_rx_bytes"),
        ):
            grown = now[counter] - before[counter]
            assert row[field] == pytest.approx(max(0.0, grown / span)), field
