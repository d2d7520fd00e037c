"""The Artifacts page: the catalog's artifacts with their state and fetch progress, and
the pre-cache plan, in NiceGUI's User simulation against a real appliance process."""

from __future__ import annotations

import pytest
from nicegui.testing.user import User

from tests.ui.conftest import log_in
from tests.ui.stack import Appliance
from towerbox_core.fmt import fetch_progress
from ui.pages.artifacts import plan_lines

pytestmark = pytest.mark.anyio


def test_progress_reads_as_done_of_total_rate_and_time_left() -> None:
    running = {
        "state": "running",
        "bytes_done": 512 * 1024 * 1024,
        "bytes_total": 1024 * 1024 * 1024,
        "rate_bps": 10 * 1024 * 1024,
        "eta_s": 51.2,
        "error_code": None,
    }
    assert fetch_progress(running) == "running, 50% of 1.0 GiB, 10.0 MiB/s, 0:51 left"
    failed = {**running, "state": "failed", "error_code": "artifact_hash_mismatch"}
    assert fetch_progress(failed) == "failed, 50% of 1.0 GiB, [artifact_hash_mismatch]"
    assert fetch_progress(None) == "-"


def test_the_plan_names_the_window_and_what_it_will_fetch() -> None:
    plan = {
        "window_cron": "0 1 * * *",
        "window_minutes": 240,
        "in_window": False,
        "next_start": "2026-12-01T01:00:00+00:00",
        "next_end": "2026-12-01T05:00:00+00:00",
        "bandwidth_bytes_s": 0,
        "items": [{"name": "model.bin", "bytes_left": 2048, "url": "http://m/model.bin"}],
        "total_bytes": 2048,
    }
    assert plan_lines(plan) == [
        "Window 0 1 * * * (UTC), next: 2026-12-01 01:00:00 UTC to 2026-12-01 05:00:00 UTC",
        "Bandwidth cap: none",
        "model.bin: 2.0 KiB from http://m/model.bin",
        "In all: 2.0 KiB",
    ]
    unsized = {"name": "base.img", "bytes_left": None, "url": "http://m/base.img"}
    assert plan_lines({**plan, "items": [*plan["items"], unsized]})[-2:] == [
        "base.img: size unknown from http://m/base.img",
        "In all: 2.0 KiB and 1 of unknown size",
    ]
    held = {**unsized, "held": "held back: the last fetch got a file with another sha256"}
    assert plan_lines({**plan, "items": [*plan["items"], held]})[-2:] == [
        "base.img: size unknown from http://m/base.img; held back: the last fetch got a file "
        "with another sha256",
        "In all: 2.0 KiB",  # what will not be fetched is not counted
    ]


async def test_the_page_lists_the_catalog_artifacts_and_the_plan(
    user: User, node: Appliance
) -> None:
    await log_in(user, node.password)
    await user.open("/artifacts")
    await user.should_see("Artifacts")
    await user.should_see(marker="artifacts-table", retries=30)
    [table] = user.find(marker="artifacts-table").elements
    rows = {r["name"]: r for r in table.rows}  # type: ignore[attr-defined]
    ubuntu = rows["ubuntu-24.04-server-cloudimg-amd64.img"]
    assert ubuntu["state"] == "missing" and ubuntu["needed_by"] == "vllm-inference"
    assert ubuntu["kind"] == "image" and ubuntu["progress"] == "-"
    await user.should_see("ubuntu-24.04-server-cloudimg-amd64.img: size unknown from https://")
    await user.should_see("No off-peak window: set [artifacts] precache_cron to pre-cache.")
    await user.should_see(marker="artifacts-fetch")
