"""The registry's /metrics: fleet figures that follow what sites did, and its auth."""

from __future__ import annotations

from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from registry.store.models import Site, now_ms
from tests.registry.fleetapi import Api, vm_entries


def scrape(
    api: Api, headers: dict[str, str] | None = None
) -> dict[tuple[str, tuple[Any, ...]], float]:
    """Every sample of /metrics as {(name, sorted labels): value}."""
    resp = api.client.get("/metrics", headers=api.admin if headers is None else headers)
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("text/plain")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(resp.text)
        for s in family.samples
    }


def value(samples: dict[tuple[str, tuple[Any, ...]], float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def _beat(api: Api, site: dict[str, str], head: int) -> None:
    beat = {"agent_version": "1", "appliance_head": head, "queued": 0}
    assert api.client.post("/api/v1/sync/heartbeat", json=beat, headers=site).status_code == 200


def _age(name: str, seconds: float) -> None:
    Site.update(last_contact=now_ms() - int(seconds * 1000)).where(Site.name == name).execute()


def test_sites_by_status_and_lag_follow_the_fleet(api: Api) -> None:
    heartbeat_s = api.registry.cfg.sites.heartbeat_s
    api.create_site("never")  # created, not enrolled: pending
    synced = api.enroll("synced")
    behind = api.enroll("behind")
    quiet = api.enroll("quiet")
    api.enroll("silent")  # enrolled, no contact since: pending too
    before = scrape(api)
    assert value(before, "towerbox_registry_sites", status="pending") == 5

    assert api.post_batch(synced, vm_entries(1, 30)).status_code == 200
    _beat(api, synced, 30)
    assert api.post_batch(behind, vm_entries(1, 20)).status_code == 200
    _beat(api, behind, 270)  # the node holds 250 entries the registry does not yet
    _beat(api, quiet, 0)
    _age("quiet", heartbeat_s * 5)  # stale: missed a few intervals

    samples = scrape(api)
    assert value(samples, "towerbox_registry_sites", status="online") == 2
    assert value(samples, "towerbox_registry_sites", status="stale") == 1
    assert value(samples, "towerbox_registry_sites", status="offline") == 0
    assert value(samples, "towerbox_registry_sites", status="pending") == 2
    assert value(samples, "towerbox_registry_sites_by_lag", le="0") == 2  # synced, quiet
    assert value(samples, "towerbox_registry_sites_by_lag", le="100") == 2
    assert value(samples, "towerbox_registry_sites_by_lag", le="1000") == 3
    assert value(samples, "towerbox_registry_sites_by_lag", le="+Inf") == 3
    assert value(samples, "towerbox_registry_site_lag_entries_max") == 250
    assert value(samples, "towerbox_registry_site_lag_entries_sum") == 250
    assert value(samples, "towerbox_registry_sites_silent", older_than_seconds="300") == 0

    # The site catches up: its lag is gone at the next scrape.
    assert api.post_batch(behind, vm_entries(21, 250)).status_code == 200
    samples = scrape(api)
    assert value(samples, "towerbox_registry_site_lag_entries_max") == 0
    assert value(samples, "towerbox_registry_sites_by_lag", le="0") == 3

    _age("quiet", 2 * 3600)
    samples = scrape(api)
    assert value(samples, "towerbox_registry_sites", status="offline") == 1
    assert value(samples, "towerbox_registry_sites_silent", older_than_seconds="3600") == 1
    assert value(samples, "towerbox_registry_sites_silent", older_than_seconds="86400") == 0


def test_ingest_counters_rise_with_syncs_and_refusals(api: Api) -> None:
    site = api.enroll("s1")
    before = scrape(api)
    assert value(before, "towerbox_registry_ingested_entries_total") == 0
    assert api.post_batch(site, vm_entries(1, 40)).status_code == 200
    assert api.post_batch(site, vm_entries(41, 10)).status_code == 200
    # A resend of what is held is accepted and stores nothing new.
    assert api.post_batch(site, vm_entries(41, 10)).status_code == 200
    gap = api.post_batch(site, vm_entries(60, 5))
    assert (gap.status_code, gap.json()["code"]) == (409, "sequence_gap")
    junk = api.client.post(
        "/api/v1/sync/journal", content=b"{", headers={**site, "Content-Type": "application/json"}
    )
    assert junk.json()["code"] == "invalid_batch"

    samples = scrape(api)
    assert value(samples, "towerbox_registry_ingested_entries_total") == 50
    assert value(samples, "towerbox_registry_ingested_batches_total") == 3
    assert value(samples, "towerbox_registry_ingest_refusals_total", code="sequence_gap") == 1
    assert value(samples, "towerbox_registry_ingest_refusals_total", code="invalid_batch") == 1
    assert (
        value(
            samples,
            "towerbox_registry_api_request_seconds_count",
            method="POST",
            route="/api/v1/sync/journal",
            status="200",
        )
        == 3
    )


def _desired_entry(seq: int, kind: str, result: str) -> dict[str, Any]:
    return {
        "seq": seq,
        "kind": f"desired.{result}",
        "object_type": "desired",
        "object_id": kind,
        "state": {"version": seq, "etag": f"e{seq}", "result": result, "reason": "r"},
    }


def test_desired_results_and_conflicts_are_counted_by_kind(api: Api) -> None:
    admin = api.admin
    put = api.client.put("/api/v1/sites/a/desired/vnets", json={"vnets": []}, headers=admin)
    assert put.status_code == 404  # no such site yet: nothing counted
    a, b = api.enroll("a"), api.enroll("b")
    assert api.client.put("/api/v1/sites/a/desired/gpu", json={}, headers=admin).status_code == 200
    assert (
        api.client.put("/api/v1/groups/tier=gold/desired/gpu", json={}, headers=admin).status_code
        == 200
    )
    batch_a = [
        _desired_entry(1, "gpu", "rejected"),
        _desired_entry(2, "gpu", "applied"),
        _desired_entry(3, "vnets", "conflict"),
    ]
    assert api.post_batch(a, batch_a).status_code == 200
    batch_b = [_desired_entry(1, "gpu", "rejected"), _desired_entry(2, "firmware", "conflict")]
    assert api.post_batch(b, batch_b).status_code == 200

    samples = scrape(api)
    name = "towerbox_registry_desired_conflicts_total"
    assert value(samples, name, kind="gpu", result="rejected") == 2
    assert value(samples, name, kind="vnets", result="conflict") == 1
    assert value(samples, name, kind="other", result="conflict") == 1  # a kind unknown here
    results = "towerbox_registry_desired_results"
    assert value(samples, results, kind="gpu", result="applied") == 1  # a's latest
    assert value(samples, results, kind="gpu", result="rejected") == 1  # b's
    assert value(samples, results, kind="vnets", result="conflict") == 1
    assert not any(k[0] == results and ("kind", "firmware") in k[1] for k in samples)
    docs = "towerbox_registry_desired_documents"
    assert value(samples, docs, kind="gpu", scope="site") == 1
    assert value(samples, docs, kind="gpu", scope="group") == 1


def test_metrics_need_an_operator_token(sqlite_api: Api) -> None:
    client = sqlite_api.client
    missing = client.get("/metrics")
    assert missing.status_code == 401
    site = sqlite_api.enroll("s1")
    as_site = client.get("/metrics", headers=site)
    assert (as_site.status_code, as_site.json()["code"]) == (401, "operator_token_required")
    viewer = sqlite_api.viewer("scraper")
    token = client.post("/api/v1/tokens", json={"name": "prometheus"}, headers=viewer)
    assert token.status_code == 201, token.text
    scraper = {"Authorization": f"Bearer {token.json()['token']}"}
    samples = scrape(sqlite_api, scraper)
    assert value(samples, "towerbox_registry_sites", status="pending") == 1


def test_a_heartbeat_head_out_of_range_is_refused_and_changes_nothing(sqlite_api: Api) -> None:
    site = sqlite_api.enroll("s1")
    _beat(sqlite_api, site, 12)
    for head in (2**63, -1):
        beat = {"agent_version": "1", "appliance_head": head, "queued": 0}
        resp = sqlite_api.client.post("/api/v1/sync/heartbeat", json=beat, headers=site)
        assert (resp.status_code, resp.json()["code"]) == (400, "invalid_heartbeat")
    samples = scrape(sqlite_api)
    assert value(samples, "towerbox_registry_site_lag_entries_max") == 12
