"""An alert the node raises on its own reaches the registry as journal entries: a real
agent ships ``alert.fired`` and ``alert.resolved`` with the rule, the object and the
severity, so the fleet sees a site's alerts without a Prometheus at the site."""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.sync.lab import Lab, open_lab

pytestmark = pytest.mark.root

FAST_ALERTS = {
    "TOWERBOX_ALERTS_INTERVAL_S": "0.5",
    "TOWERBOX_ALERTS_FOR_S": json.dumps({"vran_vm_down": 0}),
}


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    if os.geteuid() != 0 or shutil.which("nft") is None:
        pytest.skip("network namespaces and nftables need root and the nft tool")
    with open_lab(tmp_path, "", **FAST_ALERTS) as opened:
        yield opened


def _alert_entries(lab: Lab) -> list[dict[str, Any]]:
    with lab.registry.operator() as op:
        resp = op.get(f"/api/v1/sites/{lab.site}/journal", params={"limit": 5000})
    assert resp.status_code == 200, resp.text
    return [e for e in resp.json()["entries"] if e["kind"].startswith("alert.")]


def _until_registry_has(lab: Lab, kinds: list[str], timeout: float = 90) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        entries = _alert_entries(lab)
        if [e["kind"] for e in entries] == kinds:
            return entries
        assert time.monotonic() < deadline, f"{entries}\n{lab.agent.log()}"
        time.sleep(0.3)


def test_a_vran_alert_fired_and_resolved_on_the_node_reaches_the_registry(lab: Lab) -> None:
    lab.agent.start()
    body = {"name": "du", "appliance": "demo", "spec": {"role": "vran", "restart": "never"}}
    with lab.daemon.http(lab.admin_token) as api:
        resp = api.post("/api/v1/vms", json={**body, "start": False})
        assert resp.status_code == 201, resp.text
        fired = _until_registry_has(lab, ["alert.fired"])
        assert fired[0]["object_type"] == "alert"
        assert fired[0]["state"]["rule"] == "vran_vm_down"
        assert fired[0]["state"]["object"] == "vm:du"
        assert fired[0]["state"]["severity"] == "critical"
        assert fired[0]["actor"]["job"] == "alerts"

        resp = api.post("/api/v1/vms/du/start")
        assert resp.status_code in (200, 202), resp.text
    resolved = _until_registry_has(lab, ["alert.fired", "alert.resolved"])
    assert resolved[1]["object_id"] == fired[0]["object_id"]
