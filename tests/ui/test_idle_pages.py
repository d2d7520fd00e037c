"""In Chromium: open pages that follow a live event stream ask the appliance nothing
while nothing changes (their safety poll is 30 s away), and poll again at their own
pace once the stream is cut. Requests are counted by the relay in front of the
appliance."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.support.stream_cutter import StreamCutter
from tests.ui.relay import relayed_node
from tests.ui.stack import log_in, ui_process

pytestmark = [pytest.mark.slow, pytest.mark.browser]

WINDOW_S = 8.0
# Longer than the VM list's 1 s poll: pages that poll never leave the relay this quiet.
QUIET_S = 2.0


def _settle(cutter: StreamCutter, within_s: float = 12.0) -> None:
    """Until what the pages asked for when they opened has reached the appliance: no
    request for QUIET_S (a loaded machine sends them late), at most within_s, which
    keeps the window that follows clear of the 30 s safety poll."""
    deadline = time.monotonic() + within_s
    seen, quiet_since = cutter.requests, time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.2)
        if cutter.requests != seen:
            seen, quiet_since = cutter.requests, time.monotonic()
        elif time.monotonic() - quiet_since >= QUIET_S:
            return


def _requests_over(cutter: StreamCutter, seconds: float) -> tuple[int, list[str]]:
    """The requests relayed over the next ``seconds``, and what passed meanwhile."""
    before, start = cutter.requests, time.monotonic()
    time.sleep(seconds)
    return cutter.requests - before, cutter.since(start)


def test_idle_live_pages_ask_nothing_and_poll_when_the_stream_is_cut(tmp_path: Path) -> None:
    with relayed_node(tmp_path, "idle-vm") as lab:
        cutter = lab.cutter
        with ui_process(cutter.url, tmp_path, poll_s=1) as url:
            context = lab.browser.new_context(viewport={"width": 1400, "height": 900})
            first = context.new_page()
            log_in(first, url, lab.node.password)
            second = context.new_page()
            second.goto(f"{url}/vms")
            for page in (first, second):
                expect(page.get_by_test_id("live-mode")).to_have_text("live")
            _settle(cutter)

            # Polling, the frames alone would ask every 3 s and the VM list every second.
            asked, passed = _requests_over(cutter, WINDOW_S)
            assert asked == 0, passed

            cutter.cut_streams()
            expect(second.get_by_test_id("live-mode")).to_have_text("polling")
            asked, passed = _requests_over(cutter, WINDOW_S)
            assert asked >= WINDOW_S / 2, f"the pages poll again: {passed}"

            cutter.allow()
            expect(second.get_by_test_id("live-mode")).to_have_text("live", timeout=60_000)
            lab.browser.close()
        lab.api.delete("/api/v1/vms/idle-vm", params={"force": "true"})
