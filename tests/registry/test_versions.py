"""Versions in heartbeats: kept per site, counted over the fleet, filtered, scraped; and
host facts sent only when they change."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from registry.services.versions import fleet_versions
from registry.store import fleet_versions as fleet_versions_sql
from registry.store import sql
from registry.store.models import Site
from tests.registry.fleetapi import Api
from tests.registry.test_metrics import scrape, value
from tests.support.registry_process import registry_cli
from towerbox_core.api.versions import NodeVersions
from towerbox_core.wire import facts_hash

HOST = {"hostname": "n1", "node": "n1", "health": "ok", "backends": ["GPU: simulated"]}


def full_beat(
    agent: str = "0.2.0",
    towerbox: str = "0.2.0",
    driver: str | None = "550.54.15",
    vgpu: str | None = None,
    head: int = 5,
    host: dict[str, Any] | None = None,
) -> dict[str, Any]:
    host = HOST if host is None else host
    versions = NodeVersions(towerbox=towerbox, gpu_driver=driver, vgpu_manager=vgpu)
    beat: dict[str, Any] = {
        "agent_version": agent,
        "appliance_head": head,
        "queued": 0,
        "host": host,
        "facts_hash": facts_hash(agent, host, versions),
        "versions": {"towerbox": towerbox, "gpu_driver": driver, "vgpu_manager": vgpu},
    }
    return beat


def thin(beat: dict[str, Any], head: int) -> dict[str, Any]:
    return {
        "agent_version": beat["agent_version"],
        "appliance_head": head,
        "queued": 0,
        "facts_hash": beat["facts_hash"],
    }


def post(api: Api, site: dict[str, str], beat: dict[str, Any]) -> dict[str, Any]:
    """The heartbeat's answer, with ``facts_wanted`` (left out when false)."""
    resp = api.client.post("/api/v1/sync/heartbeat", json=beat, headers=site)
    assert resp.status_code == 200, resp.text
    answer: dict[str, Any] = resp.json()
    assert answer.get("facts_wanted", True) is True  # sent only when true
    return {"facts_wanted": False, **answer}


def detail(api: Api, name: str) -> dict[str, Any]:
    found: dict[str, Any] = api.client.get(f"/api/v1/sites/{name}", headers=api.admin).json()
    return found


def test_facts_are_kept_while_heartbeats_carry_only_their_hash(api: Api) -> None:
    site = api.enroll("s1")
    beat = full_beat(vgpu="550.54.16")
    assert post(api, site, beat)["facts_wanted"] is False
    assert post(api, site, thin(beat, head=9))["facts_wanted"] is False
    shown = detail(api, "s1")
    assert shown["versions"] == {
        "towerbox": "0.2.0",
        "agent": "0.2.0",
        "gpu_driver": "550.54.15",
        "vgpu_manager": "550.54.16",
    }
    assert shown["heartbeat"]["host"] == HOST  # from the beat that carried them
    assert shown["heartbeat"]["appliance_head"] == 9  # from the latest beat


def test_a_registry_that_lacks_the_facts_asks_for_them(api: Api) -> None:
    site = api.enroll("s1")
    beat = full_beat()
    answer = post(api, site, thin(beat, head=3))  # never got the facts (a restored backup)
    assert answer["facts_wanted"] is True
    shown = detail(api, "s1")
    assert shown["status"] == "online"  # the contact counts all the same
    assert shown["heartbeat"]["appliance_head"] == 3
    assert shown["versions"]["towerbox"] is None
    assert post(api, site, beat)["facts_wanted"] is False
    # Facts that changed on the node arrive whole with a new hash, and stay.
    changed = full_beat(host={**HOST, "health": "storage_full"}, driver="550.90.07")
    assert changed["facts_hash"] != beat["facts_hash"]
    post(api, site, changed)
    assert post(api, site, thin(changed, head=4))["facts_wanted"] is False
    assert post(api, site, thin(beat, head=4))["facts_wanted"] is True  # the old hash
    shown = detail(api, "s1")
    assert shown["heartbeat"]["host"]["health"] == "storage_full"
    assert shown["versions"]["gpu_driver"] == "550.90.07"


def test_an_old_agents_heartbeat_is_still_taken(api: Api) -> None:
    site = api.enroll("old")
    beat = {"agent_version": "0.1.0", "appliance_head": 4, "queued": 1, "host": {"load": 1.5}}
    resp = api.client.post("/api/v1/sync/heartbeat", json=beat, headers=site)
    assert resp.json() == {"desired": []}  # the answer it always had
    shown = detail(api, "old")
    assert shown["heartbeat"] == beat
    assert shown["versions"] == {
        "towerbox": None,
        "agent": "0.1.0",
        "gpu_driver": None,
        "vgpu_manager": None,
    }
    assert shown["status"] == "online"


def test_malformed_versions_are_refused_and_change_nothing(sqlite_api: Api) -> None:
    site = sqlite_api.enroll("s1")
    for bad in (
        full_beat(driver="550 54"),
        full_beat(towerbox="x" * 65),
        full_beat(agent='0.1"};'),
        {**full_beat(), "facts_hash": "f" * 65},
    ):
        resp = sqlite_api.client.post("/api/v1/sync/heartbeat", json=bad, headers=site)
        assert (resp.status_code, resp.json()["code"]) == (400, "invalid_heartbeat"), bad
        assert "version" in resp.json()["detail"] or "facts_hash" in resp.json()["detail"]
    assert detail(sqlite_api, "s1")["heartbeat"] is None
    assert Site.get(Site.name == "s1").last_contact is None


def _fleet(api: Api) -> dict[str, Any]:
    for name, beat in (
        ("a", full_beat(agent="0.2.0", towerbox="0.2.0", driver="550.54.15")),
        ("b", full_beat(agent="0.2.0", towerbox="0.2.0", driver="535.183.01")),
        ("c", full_beat(agent="0.10.0", towerbox="0.2.0", driver="550.54.15")),
        ("d", full_beat(agent="0.1.0", towerbox="0.1.0", driver=None)),
    ):
        post(api, api.enroll(name), beat)
    api.create_site("never")  # created, not enrolled: not counted
    api.enroll("silent")  # enrolled, no heartbeat yet: unreported
    return {
        c["component"]: c
        for c in api.client.get("/api/v1/fleet/versions", headers=api.admin).json()["components"]
    }


def test_fleet_versions_count_sites_newest_first(api: Api) -> None:
    found = _fleet(api)
    assert found["agent"]["versions"] == [
        {"version": "0.10.0", "sites": 1},  # numerically newer than 0.2.0
        {"version": "0.2.0", "sites": 2},
        {"version": "0.1.0", "sites": 1},
    ]
    assert found["agent"]["most_common"] == "0.2.0"
    assert found["agent"]["unreported"] == 1
    assert found["gpu_driver"]["versions"] == [
        {"version": "550.54.15", "sites": 2},
        {"version": "535.183.01", "sites": 1},
    ]
    assert found["gpu_driver"]["unreported"] == 2  # no driver on d, nothing from silent
    assert found["vgpu_manager"] == {
        "component": "vgpu_manager",
        "versions": [],
        "most_common": None,
        "unreported": 5,
    }
    total = api.client.get("/api/v1/fleet/versions", headers=api.admin).json()["sites"]
    assert total == 5


def test_most_common_ties_go_to_the_newest(sqlite_api: Api) -> None:
    post(sqlite_api, sqlite_api.enroll("a"), full_beat(towerbox="1.9.0"))
    post(sqlite_api, sqlite_api.enroll("b"), full_beat(towerbox="1.10.0"))
    found = sqlite_api.client.get("/api/v1/fleet/versions", headers=sqlite_api.admin).json()
    towerbox = next(c for c in found["components"] if c["component"] == "towerbox")
    assert towerbox["most_common"] == "1.10.0"


def test_site_list_filters_on_a_version(api: Api) -> None:
    _fleet(api)

    def names(query: str) -> list[str]:
        resp = api.client.get(f"/api/v1/sites?{query}", headers=api.admin)
        assert resp.status_code == 200, resp.text
        return [s["name"] for s in resp.json()["sites"]]

    assert names("component=agent&version=0.2.0") == ["a", "b"]
    assert names("component=agent&version=0.2.0&status=online&limit=1") == ["a"]
    assert names("component=gpu_driver&version=550.54.15") == ["a", "c"]
    assert names("component=towerbox&version=9.9.9") == []
    for query, code in (
        ("component=kernel&version=6.1", "invalid_component"),
        ("component=agent", "invalid_version_filter"),
        ("version=0.2.0", "invalid_version_filter"),
    ):
        resp = api.client.get(f"/api/v1/sites?{query}", headers=api.admin)
        assert (resp.status_code, resp.json()["code"]) == (422, code), resp.text
        assert resp.json()["detail"]


def test_viewers_read_the_versions_and_sites_cannot(sqlite_api: Api) -> None:
    site = sqlite_api.enroll("s1")
    viewer = sqlite_api.viewer("watcher")
    assert sqlite_api.client.get("/api/v1/fleet/versions", headers=viewer).status_code == 200
    assert sqlite_api.client.get("/api/v1/fleet/versions").status_code == 401
    assert sqlite_api.client.get("/api/v1/fleet/versions", headers=site).status_code == 401


def test_metrics_count_sites_by_version(api: Api) -> None:
    _fleet(api)
    samples = scrape(api)
    name = "towerbox_registry_sites_by_version"
    assert value(samples, name, component="agent", version="0.2.0") == 2
    assert value(samples, name, component="gpu_driver", version="535.183.01") == 1
    assert value(samples, name, component="towerbox", version="0.1.0") == 1
    assert not [k for k in samples if k[0] == name and dict(k[1])["component"] == "vgpu_manager"]


def test_the_cli_prints_the_skew_from_the_database(sqlite_api: Api, tmp_path: Path) -> None:
    _fleet(sqlite_api)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("TOWERBOX_")},
        "TOWERBOX_REGISTRY_CONFIG": str(tmp_path / "absent.toml"),
        "TOWERBOX_REGISTRY_STATE_DIR": str(tmp_path / "registry"),  # make_config's
    }
    shown = registry_cli(env, "versions")
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0] == "5 enrolled sites"
    assert lines[1].split() == ["COMPONENT", "VERSION", "SITES", "SHARE", "MOST_COMMON"]
    assert ["agent", "0.2.0", "2", "40.0", "%", "*"] in [line.split() for line in lines]
    assert ["gpu_driver", "(not", "reported)", "2", "-", "-"] in [line.split() for line in lines]
    as_json = registry_cli(env, "versions", "--json")
    assert as_json.returncode == 0, as_json.stderr
    assert (
        json.loads(as_json.stdout)
        == sqlite_api.client.get("/api/v1/fleet/versions", headers=sqlite_api.admin).json()
    )


def test_the_skew_at_ten_thousand_sites_reads_the_version_indexes(sqlite_api: Api) -> None:
    rows = [
        {
            "name": f"s{i:05d}",
            "secret_hash": f"{i:064x}",
            "heartbeat": "{}",
            "agent_version": ("0.2.0", "0.1.0", "0.2.1")[i % 3],
            "gpu_driver_version": None if i % 10 == 0 else "550.54.15",
        }
        for i in range(10_000)
    ]
    for first in range(0, len(rows), 500):
        Site.insert_many(rows[first : first + 500]).execute()
    found = {c.component: c for c in fleet_versions().components}
    assert [(v.version, v.sites) for v in found["agent"].versions] == [
        ("0.2.1", 3333),
        ("0.2.0", 3334),
        ("0.1.0", 3333),
    ]
    assert found["agent"].most_common == "0.2.0"
    assert found["gpu_driver"].unreported == 1000
    # Each component's count is a walk of its index, never of the site rows.
    plan = sql.fetchall("EXPLAIN QUERY PLAN " + fleet_versions_sql.COUNTS, ())
    scans = [str(row[-1]) for row in plan if "site" in str(row[-1]).lower()]
    assert len(scans) == 4, plan
    assert all("COVERING INDEX site_" in scan for scan in scans), scans
