"""Run the real daemon as a child process, the way systemd would."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from appliance.config import Config, JobsConfig

TOWERBOX = str(Path(sys.executable).with_name("towerbox"))
# The node's default job intervals, not the 1 s and 2 s the tests use to see changes
# quickly: for benchmarks, where a monitor sweeping 100 VMs every second would compete
# with what they measure more than it does on any node.
DEFAULT_JOB_INTERVALS = {
    "TOWERBOX_JOBS_MONITOR_INTERVAL_S": str(JobsConfig.monitor_interval_s),
    "TOWERBOX_JOBS_RECONCILE_INTERVAL_S": str(JobsConfig.reconcile_interval_s),
}
# How long a start may take before a test gives up on it: a deadline, not a figure.
# On a busy 2-core machine a daemon's imports alone can take 30 s; one that dies is
# seen at once, whatever the deadline.
START_WITHIN_S = 180.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Daemon:
    proc: subprocess.Popen[bytes]
    notify: socket.socket
    env: dict[str, str]
    url: str
    log: Path

    def wait_notify(self, wanted: str, timeout: float = START_WITHIN_S) -> str:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            # Short waits: a daemon that died never sends it (no point waiting on).
            self.notify.settimeout(min(0.5, max(0.1, end - time.monotonic())))
            try:
                msg = self.notify.recv(4096).decode()
            except TimeoutError:
                if self.proc.poll() is not None:
                    break
                continue
            if wanted in msg.split("\n"):
                return msg
        raise AssertionError(f"no {wanted} from the daemon; log:\n{self.log.read_text()[-3000:]}")

    def cli_env(self) -> dict[str, str]:
        """The daemon's environment for a ``towerbox`` command: the CLI refuses a config
        file that does not exist, so it gets an empty one (the variables configure it)."""
        empty = self.log.parent / "cli.toml"
        if not empty.exists():
            empty.write_text("# the TOWERBOX_* variables configure this node\n")
        return {**self.env, "TOWERBOX_CONFIG": str(empty)}

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [TOWERBOX, *args],
            env=self.cli_env(),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def http(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=120)

    def kill(self) -> None:
        """SIGKILL, as the OOM killer or a crash would end it: no handler runs."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()

    def restart(self, timeout: float = START_WITHIN_S) -> None:
        """A new daemon on the same state, port and log, as systemd would start it
        after the old one died; returns once it is ready."""
        self.respawn()
        self.wait_notify("READY=1", timeout)

    def respawn(self) -> None:
        """A new daemon on the same state, port and log; returns at once."""
        if self.proc.poll() is None:
            raise AssertionError("the daemon is still running")
        self.proc = _spawn(self.env, self.log)


def _spawn(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    # Appended to: a restarted daemon's log follows the one before it.
    with log.open("ab") as out:
        return subprocess.Popen(
            [TOWERBOX, "appliance"], env=env, stdout=out, stderr=subprocess.STDOUT
        )


def config_env(cfg: Config, port: int) -> dict[str, str]:
    return {
        "TOWERBOX_NODE_NAME": cfg.node_name,
        "TOWERBOX_STATE_DIR": cfg.state_dir,
        "TOWERBOX_IMAGE_DIR": cfg.image_dir,
        "TOWERBOX_LIBVIRT_URI": cfg.libvirt.uri,
        "TOWERBOX_API_SOCKET": cfg.api.socket,
        "TOWERBOX_API_PORT": str(port),
        "TOWERBOX_HOST_SYSFS_ROOT": cfg.host.sysfs_root,
        "TOWERBOX_HOST_PROCFS_ROOT": cfg.host.procfs_root,
        "TOWERBOX_HOST_DEV_ROOT": cfg.host.dev_root,
        "TOWERBOX_HOST_RESERVED_CPUS": cfg.host.reserved_cpus,
        "TOWERBOX_LIBVIRT_SHUTDOWN_TIMEOUT_S": str(cfg.libvirt.shutdown_timeout_s),
        "TOWERBOX_JOBS_MONITOR_INTERVAL_S": "1",
        "TOWERBOX_JOBS_RECONCILE_INTERVAL_S": "2",
        "TOWERBOX_ARTIFACTS_REGISTRY_RELAY": cfg.artifacts.registry_relay,
        "TOWERBOX_ARTIFACTS_BANDWIDTH_BYTES_S": str(cfg.artifacts.bandwidth_bytes_s),
        "TOWERBOX_ARTIFACTS_RETRIES": str(cfg.artifacts.retries),
        "TOWERBOX_STATE_RESERVE_MIB": str(cfg.state_reserve_mib),
        **({"TOWERBOX_CATALOG_DIR": cfg.catalog_dir} if cfg.catalog_dir else {}),
    }


@contextmanager
def running_daemon(
    cfg: Config,
    tmp: Path,
    watchdog_usec: int = 2_000_000,
    extra_env: dict[str, str] | None = None,
) -> Iterator[Daemon]:
    port = free_port()
    notify_path = tmp / "notify.sock"
    notify_path.unlink(missing_ok=True)  # left by an earlier run in the same folder
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(notify_path))
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("TOWERBOX_")},
        **config_env(cfg, port),
        "TOWERBOX_CONFIG": str(tmp / "absent.toml"),
        "NOTIFY_SOCKET": str(notify_path),
        "WATCHDOG_USEC": str(watchdog_usec),
        "PYTHONUNBUFFERED": "1",
        **(extra_env or {}),
    }
    log = tmp / "daemon.log"
    log.write_bytes(b"")
    daemon = Daemon(_spawn(env, log), notify, env, f"http://127.0.0.1:{port}", log)
    try:
        yield daemon
    finally:
        proc = daemon.proc  # restart() replaces it
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        notify.close()
