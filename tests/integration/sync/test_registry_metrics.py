"""A real agent syncing a node's journal to a real registry: the registry's /metrics
counts what was shipped and shows the site online and caught up."""

from __future__ import annotations

import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.sync.fleet import wait_in_sync
from tests.integration.sync.lab import Lab

pytestmark = pytest.mark.root


def _scrape(lab: Lab) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with lab.registry.operator() as op:
        resp = op.get("/metrics")
    assert resp.status_code == 200, resp.text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(resp.text)
        for s in family.samples
    }


def _held(lab: Lab) -> int:
    with lab.registry.operator() as op:
        return int(op.get(f"/api/v1/sites/{lab.site}/journal/summary").json()["count"])


def test_metrics_follow_a_real_sync(lab: Lab) -> None:
    lab.agent.start()
    lab.fill_journal(1500)
    node, _ = wait_in_sync(lab.daemon, lab.admin_token, lab.registry, lab.site, timeout=90)
    # The next heartbeat reports the head the registry now holds: no lag left.
    deadline = time.monotonic() + 20
    while True:
        samples = _scrape(lab)
        caught_up = samples.get(("towerbox_registry_sites_by_lag", (("le", "0"),)), 0)
        if caught_up == 1 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert caught_up == 1, samples
    assert samples[("towerbox_registry_site_lag_entries_max", ())] == 0
    assert samples[("towerbox_registry_sites", (("status", "online"),))] == 1
    assert samples[("towerbox_registry_ingested_entries_total", ())] >= node["count"]
    # Nothing compacted here: every entry the registry holds was ingested exactly once.
    # (The node may write more meanwhile: compare while the counter stands still.)
    for _ in range(20):
        before = _scrape(lab)[("towerbox_registry_ingested_entries_total", ())]
        held = _held(lab)
        if _scrape(lab)[("towerbox_registry_ingested_entries_total", ())] == before:
            assert before == held
            break
    else:
        raise AssertionError("the node never stopped writing")
    assert samples[("towerbox_registry_ingested_batches_total", ())] >= 1
