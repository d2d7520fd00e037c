"""The lab of the browser tests that cut the event stream: an appliance running one
VM, the stream cutter in front of it (tests.support.stream_cutter), and Chromium."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from playwright.sync_api import Browser, Playwright, sync_playwright

from tests.support.stream_cutter import StreamCutter, stream_cutter
from tests.ui.conftest import chromium_or_skip
from tests.ui.stack import CHROMIUM_FLAGS, Appliance, appliance


@dataclass
class Relayed:
    node: Appliance
    api: httpx.Client
    cutter: StreamCutter
    pw: Playwright
    browser: Browser

    def launch(self) -> Browser:
        """Another Chromium, for a second UI process."""
        return _launch(self.pw)


def _launch(pw: Playwright) -> Browser:
    return pw.chromium.launch(
        executable_path=chromium_or_skip(), headless=True, args=CHROMIUM_FLAGS
    )


@contextmanager
def relayed_node(tmp: Path, vm: str) -> Iterator[Relayed]:
    """The VM ``vm`` is created running; the test deletes what it made."""
    chromium_or_skip()
    with (
        appliance(tmp / "node") as node,
        node.http() as api,
        stream_cutter(node.url) as cutter,
        sync_playwright() as pw,
    ):
        body = {"name": vm, "appliance": "demo", "start": True}
        api.post("/api/v1/vms", json=body).raise_for_status()
        yield Relayed(node, api, cutter, pw, _launch(pw))
