"""A real appliance and agent report the node's versions and host facts to a real
registry: shown in site detail and the fleet's version table, kept while heartbeats
carry only their hash, updated by the next heartbeat after a change on the node, and
sent again to a registry restored from a backup that never had them."""

from __future__ import annotations

import signal
import sqlite3
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.integration.sync.lab import Lab
from towerbox_core import __version__

pytestmark = pytest.mark.root


def _site(lab: Lab) -> dict[str, Any]:
    with lab.registry.operator() as op:
        resp = op.get(f"/api/v1/sites/{lab.site}")
    assert resp.status_code == 200, resp.text
    found: dict[str, Any] = resp.json()
    return found


def _until(lab: Lab, wanted: Callable[[dict[str, Any]], bool], timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        site = _site(lab)
        if wanted(site):
            return site
        assert time.monotonic() < deadline, f"{site}\n{lab.agent.log()}"
        time.sleep(0.2)


def _node_health(lab: Lab) -> dict[str, Any]:
    found: dict[str, Any] = httpx.get(f"{lab.daemon.url}/healthz", timeout=10).json()
    return found


def _backends(site: dict[str, Any]) -> list[str]:
    beat = site.get("heartbeat") or {}
    return list((beat.get("host") or {}).get("backends") or [])


def test_versions_and_host_facts_reach_the_registry(lab: Lab) -> None:
    if lab.registry.database:
        pytest.skip("the restore below swaps the registry's SQLite file")
    backup = lab.registry.state_dir / "before-the-node-reported.db"
    live = lab.registry.state_dir / "registry.db"
    with sqlite3.connect(live) as src, sqlite3.connect(backup) as dst:
        src.backup(dst)  # the site enrolled, no heartbeat yet

    lab.agent.start()
    node = _node_health(lab)["versions"]
    site = _until(lab, lambda s: (s.get("versions") or {}).get("towerbox") is not None)
    # What the appliance read at start, as the registry shows it.
    assert site["versions"] == {
        "towerbox": node["towerbox"],
        "agent": __version__,
        "gpu_driver": node["gpu_driver"],
        "vgpu_manager": node.get("vgpu_manager"),
    }
    assert site["versions"]["gpu_driver"].endswith("-simulated")
    host = site["heartbeat"]["host"]
    assert host["node"] == _node_health(lab)["node"]
    assert "uptime_s" not in host  # it would change every heartbeat; started_at does not
    with lab.registry.operator() as op:
        table = op.get("/api/v1/fleet/versions").json()
    towerbox = next(c for c in table["components"] if c["component"] == "towerbox")
    assert towerbox["versions"] == [{"version": __version__, "sites": 1}]
    assert towerbox["most_common"] == __version__

    # Quiet heartbeats carry only the hash: the facts stay, the head moves on.
    head = site["heartbeat"]["appliance_head"]
    lab.fill_journal(3)
    site = _until(lab, lambda s: s["heartbeat"]["appliance_head"] >= head + 3)
    assert site["heartbeat"]["host"] == host

    # A change on the node (the first Linux trunk adds its N6 backend's line to the
    # host facts) arrives with the next heartbeat.
    before = _backends(site)
    resp = httpx.put(
        f"{lab.daemon.url}/api/v1/n6/trunks/ens2f1",
        json={"kind": "linux"},
        headers={"Authorization": f"Bearer {lab.admin_token}"},
        timeout=30,
    )
    assert resp.status_code == 200, resp.text
    changed = _node_health(lab)["backends"]["n6"]["summary"]
    assert len(changed) == len([b for b in before if b.startswith("N6")]) + 1, changed
    # Heartbeats run every second here: the next one is well within this bound.
    site = _until(lab, lambda s: _backends(s) != before, timeout=15)
    assert set(changed) <= set(_backends(site))

    # The registry restored from the backup has never seen the facts: the agent's
    # next heartbeat (hash only) is answered facts_wanted, and the facts come again.
    # The agent is held still meanwhile, so the restored state can be seen before it
    # reports again.
    assert lab.agent.proc is not None
    lab.agent.proc.send_signal(signal.SIGSTOP)
    try:
        lab.registry.stop()
        for suffix in ("-wal", "-shm"):
            live.with_name(live.name + suffix).unlink(missing_ok=True)
        backup.replace(live)
        lab.registry.start()
        assert _site(lab)["versions"] is None
    finally:
        lab.agent.proc.send_signal(signal.SIGCONT)
    restored = _until(lab, lambda s: (s.get("versions") or {}).get("towerbox") is not None)
    assert restored["versions"] == site["versions"]
    assert _backends(restored) == _backends(site)
