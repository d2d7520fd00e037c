"""A long WAN outage: 100,000 journal entries queue on the node while the registry is
unreachable, and the registry ends holding exactly the node's journal once the link
heals. (A module of its own: its two runs are the suite's longest, and a worker takes
a module whole.)"""

from __future__ import annotations

import time

import pytest

from tests.integration.sync.fleet import wait_in_sync
from tests.integration.sync.lab import Lab

# The registry runs in its own network namespace, faults are nftables rules there.
pytestmark = pytest.mark.root


@pytest.mark.slow
def test_long_outage_with_100k_entries_queued(lab: Lab) -> None:
    lab.agent.start()
    wait_in_sync(lab.daemon, lab.admin_token, lab.registry, lab.site, timeout=60)
    lab.wan.cut(lab.registry.port)
    lab.fill_journal(100_000)
    # The outage's length is accelerated; the entries are all there.
    with lab.daemon.http(lab.admin_token) as local:
        end = time.monotonic() + 15
        while time.monotonic() < end:
            status = local.get("/api/v1/sync/status").json()
            if status["wan"] == "offline":
                break
            time.sleep(0.3)
        assert status["wan"] == "offline" and status["queued"] >= 100_000
        assert status["offline_since"]
    dropped = lab.wan.dropped()
    assert dropped > 0
    lab.wan.heal()
    _, catchup_s = wait_in_sync(lab.daemon, lab.admin_token, lab.registry, lab.site, timeout=240)
    print(f"outage_catchup_s: {catchup_s:.1f} s")  # noqa: T201 - the figure, for the log
