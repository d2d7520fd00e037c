"""The real processes the UI tests and the UI bench run against: appliance and `towerbox ui`."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

from tests.support.appliance import admin_password, make_config
from tests.support.daemon import TOWERBOX, Daemon, free_port, running_daemon

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

CHROMIUM = "/usr/bin/chromium"
# Quiet on a closed network (HOST-NOTES.md); headless is set by Playwright.
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


@dataclass
class Appliance:
    daemon: Daemon
    password: str

    @property
    def url(self) -> str:
        return self.daemon.url

    def token(self) -> str:
        resp = httpx.post(
            f"{self.url}/api/v1/auth/login",
            json={"username": "admin", "password": self.password},
            timeout=30,
        )
        resp.raise_for_status()
        return str(resp.json()["token"])

    def http(self) -> httpx.Client:
        return self.daemon.http(self.token())


def _drain(sock_daemon: Daemon) -> None:
    # The daemon's watchdog pings would otherwise pile up unread for the whole module.
    sock = sock_daemon.notify
    sock.settimeout(0.5)
    while sock.fileno() != -1:
        try:
            sock.recv(4096)
        except TimeoutError:
            continue
        except OSError:
            return


# The daemon reads its config file from tests.support.daemon's fixed name in its folder.
# UI tests must never touch the host's network or GPUs: simulated backends, always.
NODE_CONFIG = """
[n6]
backend = "simulated"

[gpu]
backend = "simulated"

[gpu.layouts.offpeak]
counts = {"1g.10gb" = 4}
"""


@contextmanager
def appliance(
    tmp: Path, extra_env: dict[str, str] | None = None, **env: str
) -> Iterator[Appliance]:
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "absent.toml").write_text(NODE_CONFIG)
    cfg = make_config(tmp, **env)
    assert cfg.n6.backend == "simulated", "the UI tests' node config was not read"
    with running_daemon(cfg, tmp, extra_env=extra_env) as daemon:
        daemon.wait_notify("READY=1")
        threading.Thread(target=_drain, args=(daemon,), daemon=True).start()
        yield Appliance(daemon, admin_password(cfg))


@contextmanager
def ui_process(appliance_url: str, tmp: Path, poll_s: float = 1.0) -> Iterator[str]:
    """`towerbox ui` as its unit runs it; yields its base URL once it answers."""
    args = ["--appliance-url", appliance_url, "--storage-dir", str(tmp / "ui-sessions")]
    with web_process(["ui", *args, "--poll", str(poll_s)], tmp / "ui.log") as url:
        yield url


@contextmanager
def web_process(command: list[str], log: Path) -> Iterator[str]:
    """`towerbox <command> --port <free port>` (a web UI); its base URL once /login answers."""
    port = free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("TOWERBOX_", "NICEGUI_", "PYTEST_"))
    }
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [TOWERBOX, *command, "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise AssertionError(
                    f"towerbox {command[0]} exited {proc.returncode}:\n{log.read_text()}"
                )
            try:
                if httpx.get(f"{url}/login", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"towerbox {command[0]} did not answer:\n{log.read_text()}")
            time.sleep(0.2)
        yield url
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def log_in(page: Page, url: str, password: str) -> None:
    """The admin logged in through the UI at ``url``'s form; returns on the dashboard."""
    page.goto(f"{url}/login")
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{url}/")


@contextmanager
def chromium() -> Iterator[Browser]:
    """Headless Debian Chromium through Playwright (nothing downloaded)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        launched = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        try:
            yield launched
        finally:
            launched.close()


@contextmanager
def local_page(browser: Browser, base_url: str, timeout_ms: int = 15_000) -> Iterator[Page]:
    """A fresh tab whose every request must go to ``base_url``: the UIs load nothing
    from outside (no CDN, no fonts)."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    outside: list[str] = []
    context.on(
        "request",
        lambda r: None if r.url.startswith((base_url, "data:", "blob:")) else outside.append(r.url),
    )
    tab = context.new_page()
    tab.set_default_timeout(timeout_ms)
    yield tab
    context.close()
    assert outside == [], f"the UI loaded something from elsewhere: {outside}"
