"""In Chromium: an open VMs page follows the appliance's event stream, and polls
while the stream is cut (the appliance still answering), then follows it again.

The UI polls only every 60 s while live here and every 2 s when the stream is down,
so a change seen within the wait below came through the stream in the first case."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.ui.relay import relayed_node
from tests.ui.stack import log_in, ui_process

pytestmark = [pytest.mark.slow, pytest.mark.browser]


def test_an_open_vms_page_follows_the_stream_and_polls_while_it_is_cut(tmp_path: Path) -> None:
    with relayed_node(tmp_path, "live-vm") as lab:
        node, api, cutter, browser = lab.node, lab.api, lab.cutter, lab.browser
        with ui_process(cutter.url, tmp_path, poll_s=60) as url:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            log_in(page, url, node.password)
            page.goto(f"{url}/vms")
            state = page.get_by_test_id("vm-state-live-vm")
            expect(state).to_have_text("running")
            expect(page.get_by_test_id("live-mode")).to_have_text("live")

            # A 60 s poll cannot explain a change seen within 10 s: the stream brought it.
            api.post("/api/v1/vms/live-vm/stop").raise_for_status()
            expect(state).to_have_text("shutoff", timeout=10_000)
            api.post("/api/v1/vms/live-vm/start").raise_for_status()
            expect(state).to_have_text("running", timeout=10_000)
            # A VM created elsewhere appears, without a reload.
            api.post("/api/v1/vms", json={"name": "new-vm", "appliance": "demo"})
            expect(page.get_by_test_id("vm-state-new-vm")).to_have_text("shutoff", timeout=10_000)
            browser.close()

        with ui_process(cutter.url, tmp_path, poll_s=2) as url:
            browser = lab.launch()
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            log_in(page, url, node.password)
            page.goto(f"{url}/vms")
            state = page.get_by_test_id("vm-state-live-vm")
            mode = page.get_by_test_id("live-mode")
            expect(mode).to_have_text("live")

            cutter.cut_streams()
            expect(mode).to_have_text("polling")
            api.post("/api/v1/vms/live-vm/stop").raise_for_status()
            expect(state).to_have_text("shutoff", timeout=15_000)

            cutter.allow()  # the UI reopens the stream on its own, with backoff
            expect(mode).to_have_text("live", timeout=60_000)
            api.post("/api/v1/vms/live-vm/start").raise_for_status()
            expect(state).to_have_text("running", timeout=15_000)
            browser.close()
        for name in ("live-vm", "new-vm"):
            api.delete(f"/api/v1/vms/{name}", params={"force": "true"})
