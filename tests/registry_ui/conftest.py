"""A real fleet for the registry UI: the sync lab's appliance, registry and agent
processes, more sites at the registry, `towerbox registry-ui`, and Chromium."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.integration.sync.lab import Lab, open_lab
from tests.ui.conftest import chromium_or_skip
from tests.ui.stack import chromium, local_page, web_process

VIEWER = ("watcher", "a viewer's long passphrase")
# More sites than one page of the list (50), none of them enrolled.
EXTRA_SITES = 60


@dataclass
class Fleet:
    lab: Lab
    ui_url: str
    admin_password: str
    shots: Path

    def operator(self) -> httpx.Client:
        return self.lab.registry.operator()

    def login_token(self, username: str, password: str) -> str:
        resp = httpx.post(
            f"{self.lab.registry.url}/api/v1/auth/login",
            json={"username": username, "password": password},
            timeout=30,
        )
        assert resp.status_code == 201, resp.text
        return str(resp.json()["token"])


def _wait_for(what: str, probe: Any, timeout: float = 90) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if found:
            return found
        assert time.monotonic() < deadline, f"never saw {what}"
        time.sleep(0.3)


def _populate(lab: Lab) -> None:
    """The node runs a vRAN VM and a MIG layout; its agent ships them to the registry."""
    with lab.daemon.http(lab.admin_token) as local:
        gpu = local.get("/api/v1/gpus").json()["gpus"][0]["uuid"]
        applied = local.post(f"/api/v1/gpus/{gpu}/apply", json={"counts": {"1g.10gb": 4}})
        assert applied.status_code == 200, applied.text
        body = {"name": "du", "appliance": "demo", "spec": {"role": "vran"}, "start": False}
        made = local.post("/api/v1/vms", json=body)
        assert made.status_code == 201, made.text
    lab.agent.start()
    with lab.registry.operator() as op:

        def shipped() -> bool:
            vms = op.get("/api/v1/fleet/vms", params={"site": lab.site}).json()["vms"]
            gpus = op.get(f"/api/v1/sites/{lab.site}/objects", params={"type": "gpu"}).json()
            return any(v["name"] == "du" for v in vms) and any(
                "layout" in (o["state"] or {}) for o in gpus["objects"]
            )

        _wait_for("the node's VM and GPU layout at the registry", shipped)
        for i in range(EXTRA_SITES):
            labels = {"tier": "gold" if i % 2 else "bronze"}
            body = {"name": f"bulk-{i:03d}", "region": "north", "labels": labels}
            assert op.post("/api/v1/sites", json=body).status_code == 201
        user, password = VIEWER
        made = op.post(
            "/api/v1/operators", json={"username": user, "password": password, "role": "viewer"}
        )
        assert made.status_code == 201, made.text


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    if os.geteuid() != 0 or shutil.which("nft") is None:
        pytest.skip("the sync lab's network namespace needs root and the nft tool")
    chromium_or_skip()
    tmp = tmp_path_factory.mktemp("fleet")
    shots = tmp / "screenshots"
    shots.mkdir()
    with open_lab(tmp / "lab", "") as lab:
        _populate(lab)
        command = [
            "registry-ui",
            "--registry-url",
            lab.registry.url,
            "--storage-dir",
            str(tmp / "sessions"),
            "--poll",
            "1",
        ]
        with web_process(command, tmp / "registry-ui.log") as url:
            password = (lab.registry.state_dir / "admin-password").read_text().strip()
            yield Fleet(lab, url, password, shots)


@pytest.fixture(scope="module")
def browser(fleet: Fleet) -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


@pytest.fixture
def page(browser: Browser, fleet: Fleet) -> Iterator[Page]:
    with local_page(browser, fleet.ui_url, timeout_ms=20_000) as tab:
        yield tab


def log_in(page: Page, fleet: Fleet, username: str = "admin", password: str = "") -> None:
    page.goto(f"{fleet.ui_url}/")
    expect(page).to_have_url(f"{fleet.ui_url}/login?next=/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password", exact=True).fill(password or fleet.admin_password)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_test_id("overview-total")).not_to_be_empty()


def open_ready(page: Page, url: str) -> None:
    """The page, once its socket is connected: what is typed before that can reach the
    UI process after a click made later (each waits for the handshake on its own timer)."""
    page.goto(url)
    page.wait_for_function("window.did_handshake === true")
    # Events the page raised before the handshake (a field reporting its first value)
    # are re-sent on a 10 ms timer after it: let them through before typing, or they
    # land after the typed text and overwrite it.
    page.wait_for_timeout(100)
