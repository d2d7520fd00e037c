"""Journal sync through real faults: the registry ends holding exactly the node's
journal (count, head and checksum equal; (site, seq) is unique, so equal counts and
checksums also mean no duplicates)."""

from __future__ import annotations

import signal
import time

import pytest

from tests.integration.sync.fleet import wait_in_sync
from tests.integration.sync.lab import Lab

# The registry runs in its own network namespace, faults are nftables rules there.
pytestmark = pytest.mark.root


def test_clean_sync_status_and_heartbeat(lab: Lab) -> None:
    lab.agent.start()
    lab.fill_journal(2500)
    node, _ = wait_in_sync(lab.daemon, lab.admin_token, lab.registry, lab.site, timeout=60)
    assert node["count"] >= 2500
    with lab.daemon.http(lab.admin_token) as local:
        end = time.monotonic() + 10
        while time.monotonic() < end:
            status = local.get("/api/v1/sync/status").json()
            if status["acked_seq"] == node["head"] and status["wan"] == "online":
                break
            time.sleep(0.2)
        assert (status["agent"], status["wan"], status["queued"]) == ("running", "online", 0)
    with lab.registry.operator() as op:
        site = op.get(f"/api/v1/sites/{lab.site}").json()
    assert site["status"] == "online"
    # Host facts ride on the heartbeat: the node's health and its backends.
    host = site["heartbeat"]["host"]
    assert host["health"] == "ok"
    assert any(line.startswith("GPU: simulated") for line in host["backends"]), host
    shown = lab.agent.cli("status", "--json")
    assert shown.returncode == 0 and '"wan": "online"' in shown.stdout


def test_thirty_percent_loss(lab: Lab) -> None:
    lab.wan.loss(lab.registry.port, 30)
    lab.agent.start()
    lab.fill_journal(3000)
    wait_in_sync(lab.daemon, lab.admin_token, lab.registry, lab.site, timeout=180)
    assert lab.wan.dropped() > 0


def test_two_seconds_of_delay(lab: Lab) -> None:
    lab.proxy.delay_s = 1.0  # each way: every request waits 2 s longer
    lab.agent.start()
    lab.fill_journal(2000)
    started = time.monotonic()
    wait_in_sync(lab.daemon, lab.admin_token, lab.registry, lab.site, timeout=180)
    assert time.monotonic() - started >= 2.0


def test_repeated_cuts(lab: Lab) -> None:
    lab.agent.start()
    for _ in range(4):
        lab.fill_journal(1500)
        time.sleep(0.5)
        lab.wan.cut(lab.registry.port)
        lab.fill_journal(500)
        time.sleep(2.0)
        lab.wan.heal()
    assert lab.wan.dropped() == 0  # heal flushed the rules; counters went with them
    wait_in_sync(lab.daemon, lab.admin_token, lab.registry, lab.site, timeout=120)
    with lab.daemon.http(lab.admin_token) as local:
        assert local.get("/api/v1/sync/status").json()["agent"] == "running"


def test_registry_restart_mid_sync(lab: Lab) -> None:
    lab.fill_journal(20_000)
    lab.agent.start()
    lab.wait_registry_past(2000)
    lab.registry.stop(signal.SIGKILL)
    time.sleep(1.0)
    lab.registry.start()
    wait_in_sync(lab.daemon, lab.admin_token, lab.registry, lab.site, timeout=180)
    assert "registry unreachable" in lab.agent.log()


def test_agent_restart_mid_batch(lab: Lab) -> None:
    lab.fill_journal(20_000)
    lab.agent.start()
    lab.wait_registry_past(2000)
    # Killed while a batch is in flight: no chance to finish or ack.
    lab.agent.stop(signal.SIGKILL)
    lab.fill_journal(1000)
    lab.agent.start()
    wait_in_sync(lab.daemon, lab.admin_token, lab.registry, lab.site, timeout=180)
