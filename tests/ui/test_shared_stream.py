"""In Chromium: the open pages of one session share one event stream in the UI
process. A second page opens on the stream the first one holds (the appliance sees
one connection), both follow it, and it stays open while either page is open.

The UI polls only every 60 s while live here, so a change seen within the wait
below came through the stream."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.ui.relay import relayed_node
from tests.ui.stack import log_in, ui_process

pytestmark = [pytest.mark.slow, pytest.mark.browser]


def test_two_pages_of_one_session_share_one_stream(tmp_path: Path) -> None:
    with relayed_node(tmp_path, "shared-vm") as lab:
        node, api, cutter, browser = lab.node, lab.api, lab.cutter, lab.browser
        with ui_process(cutter.url, tmp_path, poll_s=60) as url:
            context = browser.new_context(viewport={"width": 1400, "height": 900})
            first = context.new_page()
            log_in(first, url, node.password)
            first.goto(f"{url}/vms")
            expect(first.get_by_test_id("live-mode")).to_have_text("live")
            opened = cutter.streams_opened
            assert opened >= 1

            second = context.new_page()
            second.goto(f"{url}/vms/shared-vm")
            expect(second.get_by_test_id("live-mode")).to_have_text("live")
            listed = first.get_by_test_id("vm-state-shared-vm")
            expect(listed).to_have_text("running")
            assert cutter.streams_opened == opened  # the second page opened no stream

            api.post("/api/v1/vms/shared-vm/stop").raise_for_status()
            expect(listed).to_have_text("shutoff", timeout=10_000)
            expect(second.get_by_test_id("vm-state")).to_have_text("shutoff", timeout=10_000)

            # The first page goes; the stream stays for the second, which still follows it.
            first.close()
            time.sleep(5)  # past the time NiceGUI keeps a left page
            api.post("/api/v1/vms/shared-vm/start").raise_for_status()
            expect(second.get_by_test_id("vm-state")).to_have_text("running", timeout=10_000)
            assert cutter.streams_opened == opened
            browser.close()
        api.delete("/api/v1/vms/shared-vm", params={"force": "true"})
