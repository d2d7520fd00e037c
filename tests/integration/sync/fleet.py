"""The three processes of a sync test: appliance, registry (in its namespace), agent."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.integration.sync.wan import Wan
from tests.support.daemon import TOWERBOX, Daemon, free_port


def stop_process(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@dataclass
class RegistryProcess:
    wan: Wan
    state_dir: Path
    database: str  # "" for SQLite in state_dir
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def url(self) -> str:
        return f"http://{self.wan.ns_ip}:{self.port}"

    def env(self) -> dict[str, str]:
        return {
            **{k: v for k, v in os.environ.items() if not k.startswith("TOWERBOX_")},
            "TOWERBOX_REGISTRY_CONFIG": str(self.state_dir / "absent.toml"),
            "TOWERBOX_REGISTRY_STATE_DIR": str(self.state_dir),
            "TOWERBOX_REGISTRY_DATABASE": self.database,
            "TOWERBOX_REGISTRY_SERVE_HOST": self.wan.ns_ip,
            "TOWERBOX_REGISTRY_SERVE_PORT": str(self.port),
            "TOWERBOX_REGISTRY_SITES_HEARTBEAT_S": "1",
            "PYTHONUNBUFFERED": "1",
        }

    def start(self) -> None:
        self.starts += 1
        log = (self.state_dir / f"registry-{self.starts}.log").open("wb")
        self.proc = subprocess.Popen(
            [*self.wan.exec_prefix(), TOWERBOX, "registry", "serve"],
            env=self.env(),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        end = time.monotonic() + 60
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise AssertionError(f"registry exited: {self.log_tail()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.2)
        raise AssertionError(f"registry did not answer: {self.log_tail()}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None:
            stop_process(self.proc, sig)

    def log_tail(self) -> str:
        return (self.state_dir / f"registry-{self.starts}.log").read_text()[-3000:]

    def operator(self) -> httpx.Client:
        token = (self.state_dir / "cli-token").read_text().strip()
        return httpx.Client(
            base_url=self.url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=60,
            transport=RetryBusy(),
        )


class RetryBusy(httpx.HTTPTransport):
    """An operator's client that does what ``store_busy`` asks: waits Retry-After and
    sends again. On SQLite one writer at a time holds the registry's store, and on a
    loaded machine with many sites syncing a write can wait past the busy timeout."""

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        deadline = time.monotonic() + 60
        while True:
            response = super().handle_request(request)
            if response.status_code != 503 or time.monotonic() > deadline:
                return response
            response.read()
            if "store_busy" not in response.text:
                return response
            response.close()
            time.sleep(float(response.headers.get("retry-after", "1")))


@dataclass
class AgentProcess:
    state_dir: Path
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [TOWERBOX, "agent", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def enroll_site(
        self,
        token_file: Path,
        admin_token_file: Path,
        registry_url: str,
        operator: dict[str, str],
        site: str = "cell-1",
    ) -> None:
        """The agent's appliance token made, ``site`` created at the registry by its
        operator, and the agent enrolled as that site."""
        made = self.cli("token", "--out", str(token_file), "--admin-token", str(admin_token_file))
        assert made.returncode == 0, made.stderr
        created = httpx.post(
            f"{registry_url}/api/v1/sites",
            json={"name": site, "region": "eu"},
            headers=operator,
            timeout=30,
        )
        assert created.status_code == 201, created.text
        enrolled = self.cli("enroll", registry_url, created.json()["enrollment_token"])
        assert enrolled.returncode == 0, enrolled.stderr

    def start(self) -> None:
        self.starts += 1
        log = (self.state_dir / f"agent-{self.starts}.log").open("wb")
        self.proc = subprocess.Popen(
            [TOWERBOX, "agent", "run"], env=self.env, stdout=log, stderr=subprocess.STDOUT
        )
        log.close()

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None:
            stop_process(self.proc, sig)

    def log(self) -> str:
        return "\n".join(
            (self.state_dir / f"agent-{i}.log").read_text() for i in range(1, self.starts + 1)
        )


def agent_env(daemon: Daemon, state_dir: Path, token_file: Path, **extra: str) -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("TOWERBOX_")},
        "TOWERBOX_CONFIG": daemon.env["TOWERBOX_CONFIG"],
        **{k: v for k, v in daemon.env.items() if k.startswith("TOWERBOX_")},
        "TOWERBOX_AGENT_CONFIG": str(state_dir / "absent.toml"),
        "TOWERBOX_AGENT_APPLIANCE_URL": daemon.url,
        "TOWERBOX_AGENT_TOKEN_FILE": str(token_file),
        "TOWERBOX_AGENT_STATE_DIR": str(state_dir),
        "TOWERBOX_AGENT_HEARTBEAT_S": "1",
        "TOWERBOX_AGENT_POLL_S": "0.2",
        "TOWERBOX_AGENT_BACKOFF_BASE_S": "0.2",
        "TOWERBOX_AGENT_BACKOFF_CAP_S": "2",
        "TOWERBOX_AGENT_REQUEST_TIMEOUT_S": "10",
        "TOWERBOX_AGENT_RELAY_SOCKET": str(state_dir / "blobs.sock"),
        "PYTHONUNBUFFERED": "1",
        **extra,
    }


def summaries(daemon: Daemon, token: str, registry: RegistryProcess, site: str) -> tuple[Any, Any]:
    with daemon.http(token) as local, registry.operator() as central:
        node = local.get("/api/v1/journal/summary").json()
        held = central.get(f"/api/v1/sites/{site}/journal/summary").json()
    return node, held


def wait_in_sync(
    daemon: Daemon, token: str, registry: RegistryProcess, site: str, timeout: float
) -> tuple[dict[str, Any], float]:
    """Poll until the registry holds the node's journal; the figures and seconds taken."""
    started = time.monotonic()
    node: dict[str, Any] = {}
    held: dict[str, Any] = {}
    while time.monotonic() - started < timeout:
        try:
            node, held = summaries(daemon, token, registry, site)
        except httpx.HTTPError:
            time.sleep(0.5)
            continue
        if held.get("head") == node["head"] and held.get("count") == node["count"]:
            break
        time.sleep(0.5)
    assert held.get("count") == node.get("count"), (node, held)
    assert held.get("head") == node.get("head"), (node, held)
    assert held.get("checksum") == node.get("checksum"), (node, held)
    return node, time.monotonic() - started
