"""The daemon as systemd runs it: READY, watchdog, TCP and unix socket, CLI, SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import httpx

from tests.support.appliance import make_config
from tests.support.daemon import TOWERBOX, running_daemon


def test_daemon_serves_and_stops_cleanly(tmp_path: Path) -> None:
    cfg = make_config(tmp_path)
    with running_daemon(cfg, tmp_path) as d:
        ready = d.wait_notify("READY=1")
        assert "STATUS=serving; libvirt: test:///default (simulated)" in ready
        d.wait_notify("WATCHDOG=1", timeout=5)

        health = httpx.get(f"{d.url}/healthz").json()
        assert health["status"] == "ok"
        transport = httpx.HTTPTransport(uds=cfg.api.socket)
        with httpx.Client(transport=transport, base_url="http://appliance") as local:
            assert local.get("/healthz").json()["node"] == "test-node"
            assert local.get("/api/v1/vms").status_code == 401

        password = cfg.admin_password_file.read_text().strip()
        assert cfg.admin_password_file.stat().st_mode & 0o777 == 0o600
        login = httpx.post(
            f"{d.url}/api/v1/auth/login", json={"username": "admin", "password": password}
        )
        assert login.status_code == 201

        # The CLI finds the local token and the unix socket on its own.
        made = d.cli("vm", "create", "cli-vm", "--appliance", "demo", "--start", "--json")
        assert made.returncode == 0, made.stderr
        assert json.loads(made.stdout)["state"] == "running"
        listed = d.cli("vm", "list")
        assert "cli-vm" in listed.stdout and "running" in listed.stdout
        bad = d.cli("vm", "create", "a<b", "--appliance", "demo")
        assert bad.returncode == 1
        assert "invalid_name" in bad.stderr
        journal = json.loads(d.cli("journal", "--json").stdout)
        assert "vm.created" in [e["kind"] for e in journal["entries"]]
        running = d.cli("vm", "delete", "cli-vm")
        assert running.returncode == 1
        assert "vm_running" in running.stderr and "--force" in running.stderr
        assert "cli-vm" in d.cli("vm", "list").stdout
        deleted = d.cli("vm", "delete", "cli-vm", "--force", "--yes")
        assert deleted.returncode == 0, deleted.stderr
        # The journal reads as history: newest first, the deleted VM by its name.
        history = d.cli("journal", "--kind", "vm.", "--limit", "5").stdout.splitlines()
        newest = next(line for line in history if "vm.deleted" in line)
        assert "vm cli-vm" in newest and "deleted" in newest, history

        # A process gets a MIG slice by name and sees only its device.
        gpu = json.loads(d.cli("gpu", "list", "--json").stdout)["gpus"][0]["uuid"]
        unasked = d.cli("gpu", "apply", gpu, '{"counts": {"1g.10gb": 2}}')
        assert unasked.returncode == 2
        assert "confirmation_required" in unasked.stderr
        applied = d.cli("gpu", "apply", gpu, '{"counts": {"1g.10gb": 2}}', "--json", "--yes")
        assert applied.returncode == 0, applied.stderr
        claim = d.cli("gpu", "claim", "vllm", "--profile", "1g.10gb", "--json")
        assert claim.returncode == 0, claim.stderr
        mig = json.loads(claim.stdout)["env"]["CUDA_VISIBLE_DEVICES"]
        assert mig.startswith("MIG-")
        assert "process:vllm" in d.cli("gpu", "claims").stdout
        assert d.cli("gpu", "release", "vllm").returncode == 0
        again = d.cli("gpu", "release", "vllm")
        assert again.returncode == 1
        assert "claim_not_found" in again.stderr

        d.proc.send_signal(signal.SIGTERM)
        d.wait_notify("STOPPING=1", timeout=15)
        assert d.proc.wait(timeout=15) == 0
    assert not Path(cfg.api.socket).exists()
    assert "VMs keep running" in d.log.read_text()


def test_a_socket_path_too_long_to_bind_stops_the_daemon_before_it_makes_anything(
    tmp_path: Path,
) -> None:
    # Deeper than a unix socket can be: the kernel would refuse it only at bind, once
    # the database, the N6 probe and the GPU state had been made.
    sock = tmp_path / ("d" * 60) / "run" / "appliance.sock"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("TOWERBOX_")},
        "TOWERBOX_CONFIG": str(tmp_path / "absent.toml"),
        "TOWERBOX_STATE_DIR": str(tmp_path / "state"),
        "TOWERBOX_API_SOCKET": str(sock),
    }
    done = subprocess.run(
        [TOWERBOX, "appliance"], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 2, done.stderr  # the configuration is at fault
    assert "error [socket_path_too_long]" in done.stderr
    assert "api.socket" in done.stderr and "choose a shorter path" in done.stderr
    assert list(tmp_path.iterdir()) == []
