"""A registry as a real process on loopback: its environment, `towerbox registry serve`
until the block ends, and its administration CLI."""

from __future__ import annotations

import os
import signal
import ssl
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.support.daemon import TOWERBOX, free_port


def registry_env(tmp: Path) -> tuple[str, dict[str, str]]:
    """The URL a registry with its state in ``tmp/registry`` will answer on, and its env."""
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("TOWERBOX_")},
        "TOWERBOX_REGISTRY_CONFIG": str(tmp / "absent.toml"),
        "TOWERBOX_REGISTRY_STATE_DIR": str(tmp / "registry"),
        "TOWERBOX_REGISTRY_SERVE_PORT": str(port),
        "PYTHONUNBUFFERED": "1",
    }
    return f"http://127.0.0.1:{port}", env


@contextmanager
def serve(
    env: dict[str, str], url: str, log: Path, verify: ssl.SSLContext | bool = True
) -> Iterator[None]:
    """``towerbox registry serve`` until the block ends; then it must stop cleanly."""
    with log.open("wb") as out:
        proc = subprocess.Popen([TOWERBOX, "registry", "serve"], env=env, stdout=out, stderr=out)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(url + "/healthz", verify=verify, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        yield
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise
    # uvicorn ends by re-raising SIGTERM, which systemd counts as a clean stop.
    assert rc in (0, -signal.SIGTERM), log.read_text()
    assert "Finished server process" in log.read_text()


def registry_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [TOWERBOX, "registry", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def operator_headers(env: dict[str, str]) -> dict[str, str]:
    """The admin's CLI token the registry wrote at its first start."""
    token = (Path(env["TOWERBOX_REGISTRY_STATE_DIR"]) / "cli-token").read_text().strip()
    return {"Authorization": f"Bearer {token}"}
