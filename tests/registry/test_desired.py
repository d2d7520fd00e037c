"""Desired-state documents: versions, If-Match, ETag / If-None-Match, group precedence."""

from __future__ import annotations

from tests.registry.fleetapi import Api


def test_put_versions_and_if_match(sqlite_api: Api) -> None:
    client, admin = sqlite_api.client, sqlite_api.admin
    sqlite_api.create_site("s1")
    first = client.put("/api/v1/sites/s1/desired/vnets", json={"vnets": []}, headers=admin)
    assert first.status_code == 200
    assert first.json()["version"] == 1
    etag = first.headers["etag"]
    second = client.put(
        "/api/v1/sites/s1/desired/vnets", json={"vnets": [1]}, headers={**admin, "If-Match": etag}
    )
    assert second.json()["version"] == 2
    # A writer still holding version 1 loses, and nothing changes.
    stale = client.put(
        "/api/v1/sites/s1/desired/vnets", json={"vnets": [2]}, headers={**admin, "If-Match": etag}
    )
    assert stale.status_code == 412
    assert stale.json()["code"] == "version_mismatch"
    assert stale.json()["current_version"] == 2
    by_version = client.put(
        "/api/v1/sites/s1/desired/vnets", json={"vnets": [3]}, headers={**admin, "If-Match": '"2"'}
    )
    assert by_version.json()["version"] == 3
    current = client.get("/api/v1/sites/s1/desired/vnets", headers=admin).json()
    assert current["document"] == {"vnets": [3]}
    missing = client.put(
        "/api/v1/sites/s1/desired/gpu", json={}, headers={**admin, "If-Match": '"1"'}
    )
    assert missing.status_code == 412


def test_bad_documents(sqlite_api: Api) -> None:
    client, admin = sqlite_api.client, sqlite_api.admin
    sqlite_api.create_site("s1")
    kind = client.put("/api/v1/sites/s1/desired/firmware", json={}, headers=admin)
    assert (kind.status_code, kind.json()["code"]) == (404, "unknown_desired_kind")
    not_object = client.put("/api/v1/sites/s1/desired/gpu", json=[1], headers=admin)
    assert (not_object.status_code, not_object.json()["code"]) == (422, "invalid_document")
    group = client.put("/api/v1/groups/novalue/desired/gpu", json={}, headers=admin)
    assert (group.status_code, group.json()["code"]) == (422, "invalid_label")
    site = client.put("/api/v1/sites/nope/desired/gpu", json={}, headers=admin)
    assert (site.status_code, site.json()["code"]) == (404, "site_not_found")


def test_agent_fetch_by_etag_and_group_precedence(sqlite_api: Api) -> None:
    client, admin = sqlite_api.client, sqlite_api.admin
    site = sqlite_api.enroll("s1", labels={"tier": "gold", "region": "eu"})
    beat = {"agent_version": "1", "appliance_head": 0, "queued": 0}
    assert client.post("/api/v1/sync/heartbeat", json=beat, headers=site).json() == {"desired": []}
    assert client.get("/api/v1/sync/desired/gpu", headers=site).status_code == 404

    client.put("/api/v1/groups/tier=gold/desired/gpu", json={"from": "tier"}, headers=admin)
    client.put("/api/v1/groups/region=eu/desired/gpu", json={"from": "region"}, headers=admin)
    doc = client.get("/api/v1/sync/desired/gpu", headers=site)
    # Several groups match: the lowest label=value in sort order wins.
    assert doc.json()["source"] == "group:region=eu"
    assert doc.json()["document"] == {"from": "region"}
    etag = doc.headers["etag"]
    assert doc.json()["etag"] == etag.strip('"')
    same = client.get("/api/v1/sync/desired/gpu", headers={**site, "If-None-Match": etag})
    assert same.status_code == 304
    assert same.content == b""

    client.put("/api/v1/sites/s1/desired/gpu", json={"from": "site"}, headers=admin)
    changed = client.get("/api/v1/sync/desired/gpu", headers={**site, "If-None-Match": etag})
    assert changed.status_code == 200
    assert changed.json()["source"] == "site"
    assert changed.json()["version"] == 1
    assert changed.headers["etag"] != etag

    index = client.post("/api/v1/sync/heartbeat", json=beat, headers=site).json()["desired"]
    assert index == [
        {"kind": "gpu", "etag": changed.json()["etag"], "version": 1, "source": "site"}
    ]


def test_label_change_moves_a_site_to_another_group_document(sqlite_api: Api) -> None:
    client, admin = sqlite_api.client, sqlite_api.admin
    site = sqlite_api.enroll("s1", labels={"tier": "gold"})
    client.put("/api/v1/groups/tier=gold/desired/catalog", json={"n": 1}, headers=admin)
    client.put("/api/v1/groups/tier=silver/desired/catalog", json={"n": 1}, headers=admin)
    gold = client.get("/api/v1/sync/desired/catalog", headers=site)
    patched = client.patch("/api/v1/sites/s1", json={"labels": {"tier": "silver"}}, headers=admin)
    assert patched.json()["labels"] == {"tier": "silver"}
    silver = client.get(
        "/api/v1/sync/desired/catalog", headers={**site, "If-None-Match": gold.headers["etag"]}
    )
    # Same version number, same content, other group: the ETag must still change.
    assert silver.status_code == 200
    assert silver.json()["source"] == "group:tier=silver"


def test_a_tenants_document_is_checked_before_it_is_published(sqlite_api: Api) -> None:
    client, admin = sqlite_api.client, sqlite_api.admin
    sqlite_api.create_site("s1")
    url = "/api/v1/sites/s1/desired/tenants"
    good = {
        "tenants": {
            "acme": {
                "labels": {"tier": "gold"},
                "quotas": {"vms": 4, "gpu_slices": {"1g.10gb": 2}},
                "grants": {"pinned_cores": 2},
                "vnets": [{"name": "llm", "vlan": 100}],
            }
        }
    }
    assert client.put(url, json=good, headers=admin).status_code == 200
    for bad, code in (
        ({"tenants": {"acme": {"quotas": {"vcpus": -2}}}}, "invalid_quota"),
        ({"tenants": {"acme": {"quotas": {"vms": 10**12}}}}, "invalid_quota"),
        ({"tenants": {"acme": {"grants": {"hugepages": {"4M": 1}}}}}, "invalid_grant"),
        ({"tenants": {"acme": {"owner": "x"}}}, "invalid_desired_document"),
        ({"tenants": {"bad name": {}}}, "invalid_name"),
        ({"tenants": {"acme": {"labels": {"k": ""}}}}, "invalid_name"),
        ({"tenants": {"acme": {"vnets": [{"tenant": "beta"}]}}}, "vnet_tenant_mismatch"),
    ):
        resp = client.put(url, json=bad, headers=admin)
        assert (resp.status_code, resp.json()["code"]) == (422, code), bad
    # Nothing refused was published.
    assert client.get(url, headers=admin).json()["version"] == 1


def test_a_services_document_is_checked_before_it_is_published(sqlite_api: Api) -> None:
    client, admin = sqlite_api.client, sqlite_api.admin
    sqlite_api.create_site("s1")
    url = "/api/v1/groups/tier=gold/desired/services"
    inline = {"roles": [{"name": "api", "catalog": "demo", "count": 2}]}
    good = {
        "services": {
            "shop": {"tenant": "acme", "service": inline, "values": {"api": {"model": "m"}}},
            "site": {"tenant": "acme", "template": "demo-web"},
        }
    }
    assert client.put(url, json=good, headers=admin).status_code == 200
    cycle = {
        "roles": [
            {"name": "a", "catalog": "demo", "after": ["b"]},
            {"name": "b", "catalog": "demo", "after": ["a"]},
        ]
    }
    for bad, code, field in (
        ({"services": {"shop": {"service": inline}}}, "invalid_desired_document", None),
        (
            {"services": {"shop": {"tenant": "acme"}}},
            "invalid_service_request",
            "services.shop.service",
        ),
        (
            {"services": {"Bad Name": {"tenant": "acme", "template": "x"}}},
            "invalid_name",
            "services.Bad Name",
        ),
        (
            {"services": {"shop": {"tenant": "acme", "service": cycle}}},
            "service_cycle",
            "services.shop.service.roles",
        ),
        (
            {
                "services": {
                    "shop": {
                        "tenant": "acme",
                        "service": {"roles": [{"name": "a", "catalog": "demo", "count": 99}]},
                    }
                }
            },
            "invalid_count",
            "services.shop.service.roles[0].count",
        ),
        (
            {"services": {"shop": {"tenant": "acme", "service": inline, "values": {"web": {}}}}},
            "unknown_role",
            "services.shop.values.web",
        ),
    ):
        resp = client.put(url, json=bad, headers=admin)
        assert (resp.status_code, resp.json()["code"]) == (422, code), bad
        assert resp.json().get("field") == field, resp.json()
    # Nothing refused was published.
    assert client.get(url, headers=admin).json()["version"] == 1
