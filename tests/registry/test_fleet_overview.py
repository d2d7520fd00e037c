"""The fleet overview's counts and problems, and the site list's search and sort."""

from __future__ import annotations

from typing import Any

from registry.store.models import Site, now_ms
from tests.registry.fleetapi import Api


def _age(name: str, seconds: float) -> None:
    Site.update(last_contact=now_ms() - int(seconds * 1000)).where(Site.name == name).execute()


def _entry(seq: int, kind: str, object_type: str, object_id: str, state: Any) -> dict[str, Any]:
    return {
        "seq": seq,
        "kind": kind,
        "object_type": object_type,
        "object_id": object_id,
        "state": state,
        "created_at": "2026-01-01T00:00:00+00:00",
    }


def _vran_vm(seq: int) -> dict[str, Any]:
    spec = {"name": "du-1", "tenant": "ran", "role": "vran", "vcpus": 4}
    return _entry(seq, "vm.created", "vm", "du-1", {"spec": spec, "desired_state": "running"})


def _desired(seq: int, kind: str, result: str) -> dict[str, Any]:
    state = {"version": 2, "etag": "e", "result": result, "reason": {"code": "x"}}
    return _entry(seq, f"desired.{result}", "desired", kind, state)


def test_overview_counts_and_worst_problems_first(api: Api) -> None:
    client, admin = api.client, api.admin
    heartbeat_s = api.registry.cfg.sites.heartbeat_s
    ran = api.enroll("ran-1", region="north", labels={"tier": "gold"})
    rejects = api.enroll("rej-1", region="north", labels={"tier": "gold"})
    conflicts = api.enroll("con-1", region="south", labels={"tier": "bronze"})
    lagging = api.enroll("lag-1", region="south")
    api.create_site("new-1", region="south")  # never enrolled
    assert api.post_batch(ran, [_vran_vm(1)]).status_code == 200
    assert api.post_batch(rejects, [_desired(1, "gpu", "rejected")]).status_code == 200
    batch = [_desired(1, "tenants", "conflict"), _desired(2, "vnets", "conflict")]
    assert api.post_batch(conflicts, batch).status_code == 200
    beat = {"agent_version": "0.1", "appliance_head": 500, "queued": 500}
    assert client.post("/api/v1/sync/heartbeat", json=beat, headers=lagging).status_code == 200
    _age("ran-1", heartbeat_s * 11)
    _age("rej-1", heartbeat_s * 5)

    resp = client.get("/api/v1/fleet/overview", headers=admin)
    assert resp.status_code == 200, resp.text
    got = resp.json()
    assert got["total"] == 5
    assert got["by_status"] == {"online": 2, "stale": 1, "offline": 1, "pending": 1}
    assert got["never_enrolled"] == 1
    regions = {r["region"]: r for r in got["regions"]}
    assert (regions["north"]["total"], regions["north"]["offline"]) == (2, 1)
    assert (regions["south"]["total"], regions["south"]["pending"]) == (3, 1)
    assert {lab["label"]: lab["total"] for lab in got["labels"]} == {
        "tier=gold": 2,
        "tier=bronze": 1,
    }
    assert got["problem_counts"] == {
        "offline_vran": 1,
        "conflict": 1,
        "rejected": 1,
        "journal_lag": 1,
    }
    assert [(p["kind"], p["site"], p["value"]) for p in got["problems"]] == [
        ("offline_vran", "ran-1", 1),
        ("conflict", "con-1", 2),
        ("rejected", "rej-1", 1),
        ("journal_lag", "lag-1", 500),
    ]
    assert (
        got["problems"][1]["detail"]
        == "tenants document and 1 more in conflict with a local change"
    )
    # The limit cuts the list from the bottom: the worst stay.
    top = client.get("/api/v1/fleet/overview?limit=2", headers=admin).json()
    assert [p["site"] for p in top["problems"]] == ["ran-1", "con-1"]
    assert top["problem_counts"]["journal_lag"] == 1
    for query in ("limit=0", "limit=501", "lag_behind=0"):
        bad = client.get(f"/api/v1/fleet/overview?{query}", headers=admin)
        assert (bad.status_code, bad.json()["code"]) == (400, "invalid_request"), query
    # The lag a site must have to be listed is the caller's to choose.
    assert (
        client.get("/api/v1/fleet/overview?lag_behind=501", headers=admin).json()["problem_counts"][
            "journal_lag"
        ]
        == 0
    )
    viewer = api.viewer("watcher")
    assert client.get("/api/v1/fleet/overview", headers=viewer).status_code == 200
    assert client.get("/api/v1/fleet/overview").status_code == 401


def test_site_search_sort_and_bad_input(api: Api) -> None:
    client, admin = api.client, api.admin
    for name in ("cell-0042", "cell-0142", "hub-7", "odd_1"):
        api.enroll(name, region="eu")
    # Enrollment sets the hostname to the name (fleetapi): give one another.
    Site.update(hostname="rack42.example").where(Site.name == "hub-7").execute()
    _age("cell-0042", 1)
    _age("cell-0142", 5)

    def names(query: str) -> list[str]:
        resp = client.get(f"/api/v1/sites?{query}", headers=admin)
        assert resp.status_code == 200, resp.text
        return [s["name"] for s in resp.json()["sites"]]

    assert names("q=042") == ["cell-0042"]
    assert names("q=42") == ["cell-0042", "cell-0142", "hub-7"]
    assert names("q=CELL&sort=-name") == ["cell-0142", "cell-0042"]
    # "_" is a character to find, not LIKE's any-character.
    assert names("q=d_1") == ["odd_1"]
    assert names("q=l_0") == []
    assert names("q=cell&sort=-last_contact&limit=1") == ["cell-0042"]
    # Sites never heard from sort last when the newest contact comes first.
    assert names("sort=-last_contact") == ["cell-0042", "cell-0142", "hub-7", "odd_1"]
    total = client.get("/api/v1/sites?q=cell&limit=1", headers=admin).json()["total"]
    assert total == 2
    for query, code in [("q=a%25b", "invalid_search"), ("sort=colour", "invalid_sort")]:
        bad = client.get(f"/api/v1/sites?{query}", headers=admin)
        assert (bad.status_code, bad.json()["code"]) == (422, code), bad.text
