"""A real agent syncing a node's journal to a real registry: the registry's /metrics
shows the site's lag while a backlog drains, then the site caught up, and counts every
entry it holds once."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.sync.fleet import wait_in_sync
from tests.integration.sync.lab import Lab

pytestmark = pytest.mark.root

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]
CAUGHT_UP = ("towerbox_registry_sites_by_lag", (("le", "0"),))
LAG_MAX = ("towerbox_registry_site_lag_entries_max", ())
INGESTED = ("towerbox_registry_ingested_entries_total", ())


def _scrape(lab: Lab) -> Samples:
    with lab.registry.operator() as op:
        resp = op.get("/metrics")
    assert resp.status_code == 200, resp.text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(resp.text)
        for s in family.samples
    }


def _until(lab: Lab, wanted: Callable[[Samples], bool], timeout: float) -> Samples:
    deadline = time.monotonic() + timeout
    while True:
        samples = _scrape(lab)
        if wanted(samples):
            return samples
        assert time.monotonic() < deadline, samples
        time.sleep(0.2)


def _held(lab: Lab) -> int:
    with lab.registry.operator() as op:
        return int(op.get(f"/api/v1/sites/{lab.site}/journal/summary").json()["count"])


def test_metrics_follow_a_real_sync(lab: Lab) -> None:
    lab.agent.start()
    lab.fill_journal(1500)
    node, _ = wait_in_sync(lab.daemon, lab.admin_token, lab.registry, lab.site, timeout=90)
    # The next heartbeat reports the head the registry now holds: no lag left.
    samples = _until(lab, lambda s: s.get(CAUGHT_UP) == 1, 20)
    assert samples[LAG_MAX] == 0
    assert samples[("towerbox_registry_sites", (("status", "online"),))] == 1
    assert samples[INGESTED] >= node["count"]

    # A slow WAN and a backlog: heartbeats keep reporting the node's head while the
    # batches drain, so the registry sees the site behind, then caught up again.
    lab.proxy.delay_s = 0.5
    lab.fill_journal(6000)
    behind = _until(lab, lambda s: s.get(LAG_MAX, 0) > 0, 60)
    assert behind.get(CAUGHT_UP) == 0
    assert behind[("towerbox_registry_site_lag_entries_sum", ())] == behind[LAG_MAX]
    lab.proxy.delay_s = 0
    wait_in_sync(lab.daemon, lab.admin_token, lab.registry, lab.site, timeout=120)
    _until(lab, lambda s: s.get(CAUGHT_UP) == 1 and s.get(LAG_MAX) == 0, 20)

    # Nothing compacted here: every entry the registry holds was ingested exactly once.
    # (The node may write more meanwhile: compare while the counter stands still.)
    for _ in range(20):
        before = _scrape(lab)[INGESTED]
        held = _held(lab)
        if _scrape(lab)[INGESTED] == before:
            assert before == held
            break
    else:
        raise AssertionError("the node never stopped writing")
