"""Alerts in the real daemon: its own job evaluates the rules; a stopped vRAN VM fires
once, a killed and restarted daemon does not fire it again, and removing the VM
resolves it. Listed and acknowledged through ``towerbox alerts``."""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from appliance.cli.alerts import group
from tests.support.appliance import make_config
from tests.support.daemon import Daemon, running_daemon

FAST = {
    "TOWERBOX_ALERTS_INTERVAL_S": "0.5",
    "TOWERBOX_ALERTS_FOR_S": json.dumps({"vran_vm_down": 1}),
}


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    cfg = make_config(tmp_path)
    with running_daemon(cfg, tmp_path, extra_env=FAST) as d:
        d.wait_notify("READY=1")
        yield d


def _api(d: Daemon) -> httpx.Client:
    token = (Path(d.env["TOWERBOX_STATE_DIR"]) / "cli-token").read_text().strip()
    return d.http(token)


def _cli(d: Daemon, monkeypatch: pytest.MonkeyPatch, *argv: str) -> int:
    """``towerbox alerts ...`` in this process, against the daemon's API."""
    for key, value in d.cli_env().items():
        if key.startswith("TOWERBOX_"):
            monkeypatch.setenv(key, value)
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", type=Path, default=None)
    parser.add_argument("--url", default=d.url)
    group.register(parser)
    return group.run(parser.parse_args(list(argv)))


def _until(what: Callable[[], Any], timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = what()
        if found:
            return found
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def _fired(api: httpx.Client) -> list[str]:
    entries = api.get("/api/v1/journal", params={"kind": "alert.", "limit": 1000}).json()
    return [f"{e['kind']} {e['state']['object']}" for e in entries["entries"]]


def test_the_daemon_fires_once_keeps_it_across_a_kill_and_resolves(
    daemon: Daemon, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with _api(daemon) as api:
        body = {"name": "du", "appliance": "demo", "spec": {"role": "vran", "restart": "never"}}
        assert api.post("/api/v1/vms", json={**body, "start": True}).status_code == 201
        assert api.post("/api/v1/vms/du/stop").status_code == 200
        alerts = _until(lambda: api.get("/api/v1/alerts").json()["alerts"])
        assert [(a["rule"], a["object"]) for a in alerts] == [("vran_vm_down", "vm:du")]
        assert _fired(api) == ["alert.fired vm:du"]

    status = _cli(daemon, monkeypatch)
    shown = capsys.readouterr()
    assert status == 0, shown.err
    listed = shown.out
    assert "vran_vm_down" in listed and "vm:du" in listed and "critical" in listed
    assert "towerbox vm start" in listed  # the runbook under the table
    assert _cli(daemon, monkeypatch, "ack", str(alerts[0]["id"])) == 0
    capsys.readouterr()
    assert _cli(daemon, monkeypatch, "ack", "4242") == 1
    assert "alert_not_found" in capsys.readouterr().err

    daemon.kill()
    daemon.restart()
    with _api(daemon) as api:
        # A few evaluations of the restarted daemon: still firing, still acked, not again.
        time.sleep(3)
        [alert] = api.get("/api/v1/alerts").json()["alerts"]
        assert (alert["object"], alert["acked_by"]) == ("vm:du", "admin")
        assert _fired(api) == ["alert.fired vm:du", "alert.acked vm:du"]
        # The test driver's domains lived in the killed process: the VM is gone with
        # it, and removing it is what puts the node right.
        assert api.delete("/api/v1/vms/du").status_code == 204
        _until(lambda: not api.get("/api/v1/alerts").json()["alerts"])
        assert _fired(api) == ["alert.fired vm:du", "alert.acked vm:du", "alert.resolved vm:du"]
        metrics = api.get("/metrics").text
        assert 'towerbox_alerts_firing{severity="critical"} 0.0' in metrics
        assert 'towerbox_job_last_success{job="alerts"} 1.0' in metrics
