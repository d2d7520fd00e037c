"""Site status from last contact, site queries by status and label, fleet-wide VMs."""

from __future__ import annotations

from registry.config import SitesConfig
from registry.services.sites import SiteStatus
from registry.store.models import Site, now_ms
from tests.registry.fleetapi import Api, vm_entries


def test_status_counts_missed_intervals() -> None:
    status = SiteStatus(SitesConfig(heartbeat_s=10, online_intervals=3, stale_intervals=10))
    now = 1_000_000_000
    assert status.of(None, now) == "pending"
    assert status.of(now - 30_000, now) == "online"
    assert status.of(now - 30_001, now) == "stale"
    assert status.of(now - 100_000, now) == "stale"
    assert status.of(now - 100_001, now) == "offline"


def _age(name: str, seconds: float) -> None:
    Site.update(last_contact=now_ms() - int(seconds * 1000)).where(Site.name == name).execute()


def test_sites_by_status_and_label(sqlite_api: Api) -> None:
    client, admin = sqlite_api.client, sqlite_api.admin
    for name, labels in [
        ("a", {"tier": "gold", "zone": "n"}),
        ("b", {"tier": "gold"}),
        ("c", {"tier": "bronze"}),
        ("d", {}),
    ]:
        sqlite_api.enroll(name, labels=labels, region="eu")
    heartbeat_s = sqlite_api.registry.cfg.sites.heartbeat_s
    _age("a", 1)
    _age("b", heartbeat_s * 5)
    _age("c", heartbeat_s * 11)

    def names(query: str) -> list[str]:
        resp = client.get(f"/api/v1/sites?{query}", headers=admin)
        assert resp.status_code == 200, resp.text
        return [s["name"] for s in resp.json()["sites"]]

    assert names("status=online") == ["a"]
    assert names("status=stale") == ["b"]
    assert names("status=offline") == ["c"]
    assert names("status=pending") == ["d"]
    assert names("label=tier=gold") == ["a", "b"]
    assert names("label=tier=gold&label=zone=n") == ["a"]
    assert names("label=tier=gold&status=stale") == ["b"]
    assert names("region=eu&limit=2&offset=1") == ["b", "c"]
    bad = client.get("/api/v1/sites?status=dead", headers=admin)
    assert (bad.status_code, bad.json()["code"]) == (422, "invalid_status")
    bad = client.get("/api/v1/sites?label=tier", headers=admin)
    assert bad.json()["code"] == "invalid_label"
    detail = client.get("/api/v1/sites/c", headers=admin).json()
    assert detail["status"] == "offline"
    assert detail["hostname"] == "c"


def test_heartbeat_makes_a_site_online_and_is_kept(sqlite_api: Api) -> None:
    site = sqlite_api.enroll("s1")
    beat = {"agent_version": "0.1", "appliance_head": 42, "queued": 7, "host": {"load": 1.5}}
    resp = sqlite_api.client.post("/api/v1/sync/heartbeat", json=beat, headers=site)
    assert resp.status_code == 200
    detail = sqlite_api.client.get("/api/v1/sites/s1", headers=sqlite_api.admin).json()
    assert detail["status"] == "online"
    assert detail["heartbeat"] == beat
    bad = sqlite_api.client.post("/api/v1/sync/heartbeat", json={"queued": "x"}, headers=site)
    assert (bad.status_code, bad.json()["code"]) == (400, "invalid_heartbeat")


def test_fleet_vms_filters_and_pages(sqlite_api: Api) -> None:
    client, admin = sqlite_api.client, sqlite_api.admin
    for name in ("a", "b", "c"):
        site = sqlite_api.enroll(name)
        assert (
            sqlite_api.post_batch(site, vm_entries(1, 40, vms=10, site_tag=name)).status_code == 200
        )
    other = [
        {
            "seq": 41,
            "kind": "vm.created",
            "object_type": "vm",
            "object_id": "vran",
            "state": {"spec": {"name": "du", "role": "vran", "tenant": None}},
        },
        {
            "seq": 42,
            "kind": "gpu.layout",
            "object_type": "gpu",
            "object_id": "GPU-1",
            "state": {"instances": []},
        },
    ]
    assert sqlite_api.post_batch(site, other).status_code == 200

    def get(query: str) -> dict[str, object]:
        resp = client.get(f"/api/v1/fleet/vms?{query}", headers=admin)
        assert resp.status_code == 200, resp.text
        result: dict[str, object] = resp.json()
        return result

    everything = get("")
    assert everything["total"] == 31  # 10 VMs per site, the vRAN VM; the GPU is no VM
    assert get("site=b")["total"] == 10
    assert get("role=vran")["total"] == 1
    assert get("tenant=acme")["total"] == 30
    # Each VM's last entry decides: seqs 31..40, odd ones running.
    assert get("state=running")["total"] == 15
    assert get("state=running&site=a&tenant=acme")["total"] == 5
    page = get("limit=7&offset=28")
    vms = page["vms"]
    assert isinstance(vms, list)
    assert len(vms) == 3
    assert [v["site"] for v in vms] == ["c", "c", "c"]
    first = get("limit=1")["vms"]
    assert isinstance(first, list)
    assert set(first[0]) == {
        "site",
        "site_status",
        "id",
        "name",
        "state",
        "tenant",
        "role",
        "seq",
        "as_of",
    }
    bad = client.get("/api/v1/fleet/vms?limit=0", headers=admin)
    assert bad.status_code == 400
    assert client.get("/api/v1/fleet/vms?site=zz", headers=admin).json()["code"] == "site_not_found"


def test_a_silent_site_keeps_its_vms_as_they_were(sqlite_api: Api) -> None:
    site = sqlite_api.enroll("s1")
    sqlite_api.post_batch(site, vm_entries(1, 10, vms=2))
    before = sqlite_api.client.get("/api/v1/fleet/vms", headers=sqlite_api.admin).json()["vms"]
    _age("s1", sqlite_api.registry.cfg.sites.heartbeat_s * 100)
    after = sqlite_api.client.get("/api/v1/fleet/vms", headers=sqlite_api.admin).json()["vms"]
    assert [v["site_status"] for v in after] == ["offline", "offline"]
    assert [(v["state"], v["as_of"]) for v in after] == [(v["state"], v["as_of"]) for v in before]
    assert {v["state"] for v in after} <= {"running", "shutoff"}


def test_deleting_a_site_removes_its_records(sqlite_api: Api) -> None:
    site = sqlite_api.enroll("s1")
    sqlite_api.post_batch(site, vm_entries(1, 10))
    resp = sqlite_api.client.delete("/api/v1/sites/s1", headers=sqlite_api.admin)
    assert resp.status_code == 204
    assert sqlite_api.client.get("/api/v1/fleet/vms", headers=sqlite_api.admin).json()["total"] == 0
    assert sqlite_api.client.get("/api/v1/sync/journal/head", headers=site).status_code == 401
