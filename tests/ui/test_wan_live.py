"""The WAN banner with the real registry and edge agent: stop the registry, see it go offline.

Uses the sync lab (appliance, registry in its own network namespace, enrolled agent)
and `towerbox ui`, driven in Chromium.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

from tests.integration.sync.lab import open_lab
from tests.ui.conftest import chromium_or_skip
from tests.ui.stack import CHROMIUM_FLAGS, ui_process

pytestmark = [pytest.mark.slow, pytest.mark.browser, pytest.mark.root]


def test_stopping_the_registry_turns_the_banner_offline(tmp_path: Path) -> None:
    chromium = chromium_or_skip()
    if os.geteuid() != 0 or shutil.which("nft") is None:
        pytest.skip("the sync lab needs root and nftables for its network namespace")
    shots = tmp_path / "screenshots"
    shots.mkdir()
    with open_lab(tmp_path, "") as lab:
        password = (tmp_path / "node" / "state" / "admin-password").read_text().strip()
        lab.agent.start()
        with ui_process(lab.daemon.url, tmp_path) as url, sync_playwright() as pw:
            browser = pw.chromium.launch(
                executable_path=chromium, headless=True, args=CHROMIUM_FLAGS
            )
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(f"{url}/login")
            page.get_by_label("Username").fill("admin")
            page.get_by_label("Password", exact=True).fill(password)
            page.keyboard.press("Enter")
            banner = page.get_by_test_id("wan-banner")
            expect(banner).to_have_attribute("data-tone", "online", timeout=30_000)
            expect(banner).to_contain_text("WAN online · last sync")
            page.screenshot(path=shots / "wan-online.png")

            lab.registry.stop()
            expect(banner).to_have_attribute("data-tone", "offline", timeout=30_000)
            expect(banner).to_contain_text("WAN offline since")
            page.screenshot(path=shots / "wan-offline.png")

            lab.registry.start()
            expect(banner).to_have_attribute("data-tone", "online", timeout=60_000)
            browser.close()
