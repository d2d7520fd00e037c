"""The appliance's sync routes: journal read/ack/summary, the sync-agent role's scope,
the agent's status, and desired-state documents with the conflict rule."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from appliance.context import Appliance
from appliance.services.desired_rule import decide, fingerprint
from tests.support.appliance import admin_password, api_client, built, login

VNET = {
    "tenant": "acme",
    "name": "llm",
    "trunk": "br-n6",
    "vlan": 100,
    "subnet": "10.100.0.0/24",
    "gateway": "10.100.0.1",
    "ue_pools": ["10.45.0.0/16"],
}


@pytest.fixture
def appliance(tmp_path: Path) -> Iterator[Appliance]:
    app = built(tmp_path, TOWERBOX_GPU_BACKEND="simulated", TOWERBOX_N6_BACKEND="simulated")
    yield app
    app.close()


@pytest.fixture
def admin(appliance: Appliance) -> Iterator[TestClient[Any]]:
    with api_client(appliance) as c:
        c.headers.update(login(c, "admin", admin_password(appliance.cfg)))
        yield c


@pytest.fixture
def agent_headers(admin: TestClient[Any]) -> dict[str, str]:
    resp = admin.post("/api/v1/sync/agent-token", json={"name": "edge"})
    assert resp.status_code == 201, resp.text
    assert resp.json()["role"] == "sync-agent"
    return {"Authorization": f"Bearer {resp.json()['token']}"}


def _as(client: TestClient[Any], headers: dict[str, str], method: str, path: str, **kw: Any) -> Any:
    return client.request(method, path, headers=headers, **kw)


def _doc(kind: str, version: int, document: dict[str, Any]) -> dict[str, Any]:
    return {
        "kind": kind,
        "etag": f'"{kind}-{version}"',
        "version": version,
        "source": "site",
        "document": document,
    }


def _journal(client: TestClient[Any], kind: str) -> list[dict[str, Any]]:
    entries = client.get("/api/v1/journal", params={"limit": 1000}).json()["entries"]
    return [e for e in entries if e["kind"] == kind]


def test_journal_answer_carries_sync_positions_and_ack_moves_forward_only(
    admin: TestClient[Any], agent_headers: dict[str, str]
) -> None:
    page = _as(admin, agent_headers, "GET", "/api/v1/journal", params={"after": 0}).json()
    head = page["head"]
    assert head >= 2 and page["acked_seq"] == 0 and page["compacted_through"] == 0
    assert [e["seq"] for e in page["entries"]] == list(range(1, head + 1))
    ok = _as(admin, agent_headers, "POST", "/api/v1/journal/ack", json={"seq": head - 1})
    assert ok.status_code == 200 and ok.json()["acked_seq"] == head - 1
    back = _as(admin, agent_headers, "POST", "/api/v1/journal/ack", json={"seq": 1})
    assert back.json()["acked_seq"] == head - 1
    beyond = _as(admin, agent_headers, "POST", "/api/v1/journal/ack", json={"seq": head + 50})
    assert beyond.status_code == 409 and beyond.json()["code"] == "ack_beyond_head"
    bad = _as(admin, agent_headers, "POST", "/api/v1/journal/ack", json={"seq": -1})
    assert bad.status_code == 400
    summary = _as(admin, agent_headers, "GET", "/api/v1/journal/summary").json()
    assert summary["count"] == head and len(summary["checksum"]) == 64


def test_sync_agent_reaches_its_routes_and_nothing_else(
    admin: TestClient[Any], agent_headers: dict[str, str]
) -> None:
    for method, path, body in (
        ("GET", "/api/v1/vms", None),
        ("POST", "/api/v1/vms", {"name": "x", "appliance": "demo"}),
        ("GET", "/api/v1/host", None),
        ("POST", "/api/v1/tokens", {"name": "more"}),
        ("POST", "/api/v1/tenants", {"name": "evil"}),
        ("GET", "/api/v1/desired", None),
        ("POST", "/api/v1/sync/agent-token", {"name": "more"}),
        ("GET", "/metrics", None),
    ):
        resp = _as(admin, agent_headers, method, path, json=body)
        assert resp.status_code == 403, (method, path, resp.text)
        assert resp.json()["code"] == "sync_agent_scope"
    # A viewer may read the journal but neither ack it nor report status.
    admin.post(
        "/api/v1/users",
        json={"username": "eve", "password": "long-enough-password", "role": "viewer"},
    )
    viewer = login(admin, "eve", "long-enough-password")
    assert _as(admin, viewer, "GET", "/api/v1/journal").status_code == 200
    denied = _as(admin, viewer, "POST", "/api/v1/journal/ack", json={"seq": 1})
    assert denied.status_code == 403
    no_token = admin.request("GET", "/api/v1/journal", headers={"Authorization": ""})
    assert no_token.status_code == 401


def test_status_is_kept_and_goes_stale(
    admin: TestClient[Any], agent_headers: dict[str, str]
) -> None:
    assert admin.get("/api/v1/sync/status").json()["agent"] == "never reported"
    report = {
        "state": "offline",
        "since": "2025-01-01T00:00:00+00:00",
        "registry_url": "https://registry.example",
        "site": "s1",
        "queued": 12,
        "acked_seq": 3,
        "last_sync_at": None,
        "last_error": "registry: ConnectError",
        "heartbeat_s": 0.1,
    }
    resp = _as(admin, agent_headers, "PUT", "/api/v1/sync/status", json=report)
    assert resp.status_code == 200, resp.text
    view = admin.get("/api/v1/sync/status").json()
    assert (view["agent"], view["wan"], view["offline_since"]) == (
        "running",
        "offline",
        "2025-01-01T00:00:00+00:00",
    )
    assert view["queued"] == view["head"]  # nothing acked on the appliance yet
    time.sleep(0.4)  # more than 3 of the agent's 0.1 s intervals
    stale = admin.get("/api/v1/sync/status").json()
    assert (stale["agent"], stale["wan"]) == ("not running", "unknown")
    bad = _as(admin, agent_headers, "PUT", "/api/v1/sync/status", json={**report, "state": "up"})
    assert bad.status_code == 422 and bad.json()["code"] == "invalid_sync_state"
    extra = _as(admin, agent_headers, "PUT", "/api/v1/sync/status", json={**report, "x": 1})
    assert extra.status_code == 400


def test_gpu_document_applies_layouts_and_schedules_once(
    admin: TestClient[Any], agent_headers: dict[str, str]
) -> None:
    gpu = admin.get("/api/v1/gpus").json()["gpus"][0]["uuid"]
    document = {
        "layouts": {"night": {"counts": {"1g.10gb": 4}}},
        "schedules": {"offpeak": {"gpu": gpu, "cron": "0 22 * * *", "target": {"layout": "night"}}},
    }
    resp = _as(admin, agent_headers, "POST", "/api/v1/desired/gpu", json=_doc("gpu", 1, document))
    assert resp.status_code == 200, resp.text
    assert resp.json()["result"] == "applied"
    assert "night" in admin.get("/api/v1/gpus/layouts").json()
    schedules = {s["name"]: s for s in admin.get("/api/v1/gpus/schedules").json()}
    assert schedules["offpeak"]["target"]["layout"] == "night"
    again = _as(admin, agent_headers, "POST", "/api/v1/desired/gpu", json=_doc("gpu", 1, document))
    assert again.json()["unchanged"] is True
    applied = _journal(admin, "desired.applied")
    assert len(applied) == 1
    assert applied[0]["object_id"] == "gpu" and applied[0]["state"]["version"] == 1
    # Version 2 drops the schedule: the node removes it.
    v2 = _doc("gpu", 2, {"layouts": document["layouts"]})
    assert _as(admin, agent_headers, "POST", "/api/v1/desired/gpu", json=v2).status_code == 200
    assert "offpeak" not in {s["name"] for s in admin.get("/api/v1/gpus/schedules").json()}
    stale = _as(admin, agent_headers, "POST", "/api/v1/desired/gpu", json=_doc("gpu", 1, {}))
    assert stale.status_code == 409 and stale.json()["code"] == "desired_stale"


def test_bad_documents_are_rejected_journalled_once_and_change_nothing(
    admin: TestClient[Any], agent_headers: dict[str, str]
) -> None:
    bad = _doc(
        "gpu",
        1,
        {"schedules": {"x": {"gpu": "GPU-nope", "cron": "0 22 * * *", "target": {"counts": {}}}}},
    )
    for _ in range(2):  # a resend gets the same answer and no second entry
        resp = _as(admin, agent_headers, "POST", "/api/v1/desired/gpu", json=bad)
        assert resp.status_code in (404, 422), resp.text
    assert admin.get("/api/v1/gpus/schedules").json() == []
    rejected = _journal(admin, "desired.rejected")
    assert len(rejected) == 1 and rejected[0]["state"]["reason"]["code"] == resp.json()["code"]
    cron = _doc("gpu", 2, {"layouts": {"n": {"counts": {"1g.10gb": 1}}}, "schedules": {}})
    cron["document"]["schedules"] = {"y": {"gpu": "g", "cron": "not cron", "target": {}}}
    resp = _as(admin, agent_headers, "POST", "/api/v1/desired/gpu", json=cron)
    assert resp.status_code == 422 and resp.json()["code"] == "invalid_cron"
    assert "n" not in admin.get("/api/v1/gpus/layouts").json()
    shape = _as(admin, agent_headers, "POST", "/api/v1/desired/gpu", json=_doc("gpu", 3, {"x": 1}))
    assert shape.status_code == 422 and shape.json()["code"] == "invalid_desired_document"
    catalog = _doc("catalog", 1, {"entries": [{"name": "x"}]})
    resp = _as(admin, agent_headers, "POST", "/api/v1/desired/catalog", json=catalog)
    assert resp.status_code == 422 and resp.json()["code"] == "invalid_catalog_entry"
    assert _journal(admin, "desired.rejected")[-1]["object_id"] == "catalog"
    wrong = _as(admin, agent_headers, "POST", "/api/v1/desired/gpu", json=catalog)
    assert wrong.status_code == 422 and wrong.json()["code"] == "kind_mismatch"
    unknown = _as(admin, agent_headers, "POST", "/api/v1/desired/x", json=_doc("x", 1, {}))
    assert unknown.status_code == 404


def test_vnet_conflicts_follow_the_rule(
    admin: TestClient[Any], agent_headers: dict[str, str]
) -> None:
    admin.put("/api/v1/n6/trunks/br-n6", json={"kind": "ovs", "ports": []})
    admin.post("/api/v1/tenants", json={"name": "acme"})

    def post(version: int, vnets: list[dict[str, Any]]) -> dict[str, Any]:
        resp = _as(
            admin,
            agent_headers,
            "POST",
            "/api/v1/desired/vnets",
            json=_doc("vnets", version, {"vnets": vnets}),
        )
        assert resp.status_code == 200, resp.text
        return dict(resp.json())

    assert post(1, [VNET])["result"] == "applied"
    assert admin.get("/api/v1/n6/vnets/acme/llm").json()["vlan"] == 100
    # Applied to the node, not only declared.
    assert _journal(admin, "n6.applied")
    assert admin.post("/api/v1/n6/plan").json() == {"changes": {"ovs": []}}
    # Changed locally while offline, not marked: central wins, reported.
    admin.patch("/api/v1/n6/vnets/acme/llm", json={"vlan": 300})
    answer = post(2, [{**VNET, "dnns": ["a.b"]}])
    assert answer["result"] == "conflict"
    assert answer["conflicts"] == [{"object_id": "acme/llm", "resolution": "central"}]
    assert admin.get("/api/v1/n6/vnets/acme/llm").json()["vlan"] == 100
    # Marked as a local override: the local change stays, reported.
    mark = admin.put(
        "/api/v1/desired/vnets/overrides", json={"object_id": "acme/llm", "local_override": True}
    )
    assert mark.json()["local_overrides"] == ["acme/llm"]
    admin.patch("/api/v1/n6/vnets/acme/llm", json={"vlan": 400})
    answer = post(3, [{**VNET, "vlan": 101}])
    assert answer["conflicts"] == [{"object_id": "acme/llm", "resolution": "local_override"}]
    assert admin.get("/api/v1/n6/vnets/acme/llm").json()["vlan"] == 400
    conflicts = _journal(admin, "desired.conflict")
    assert [c["state"]["version"] for c in conflicts] == [2, 3]
    # An invalid VNet refuses the whole document.
    resp = _as(
        admin,
        agent_headers,
        "POST",
        "/api/v1/desired/vnets",
        json=_doc("vnets", 4, {"vnets": [{**VNET, "name": "b", "vlan": 5000}]}),
    )
    assert resp.status_code == 422
    assert admin.get("/api/v1/n6/vnets/acme/b").status_code == 404


def test_decide_is_the_documented_rule() -> None:
    a, b, c = {"v": 1}, {"v": 2}, {"v": 3}
    # New object: no conflict. Unchanged local: central replaces it quietly.
    d = decide({"x": a}, {}, {}, set())
    assert (d.puts, d.conflicts) == ({"x": a}, [])
    d = decide({"x": b}, {"x": a}, {"x": fingerprint(a)}, set())
    assert (d.puts, d.conflicts) == ({"x": b}, [])
    # Local change equal to the new central one: nothing to do, no conflict.
    d = decide({"x": b}, {"x": b}, {"x": fingerprint(a)}, set())
    assert (d.puts, d.conflicts) == ({}, [])
    # Local change, unmarked and marked.
    d = decide({"x": c}, {"x": b}, {"x": fingerprint(a)}, set())
    assert d.puts == {"x": c} and d.conflicts[0]["resolution"] == "central"
    d = decide({"x": c}, {"x": b}, {"x": fingerprint(a)}, {"x"})
    assert d.puts == {} and d.conflicts[0]["resolution"] == "local_override"
    # Deleted locally while offline: central puts it back, reported.
    d = decide({"x": a}, {}, {"x": fingerprint(a)}, set())
    assert d.puts == {"x": a} and d.conflicts[0]["resolution"] == "central"
    # Dropped centrally: removed when unchanged, kept when marked and changed.
    assert decide({}, {"x": a}, {"x": fingerprint(a)}, set()).deletes == ["x"]
    kept = decide({}, {"x": b}, {"x": fingerprint(a)}, {"x"})
    assert kept.deletes == [] and kept.conflicts[0]["resolution"] == "local_override"


LLM = {
    "name": "llm-small",
    "description": "a small inference VM",
    "version": "1",
    "role": "b2b",
    "image": {"kind": "kernel", "file": "vmlinuz", "initrd": "initrd.img"},
    "spec": {"vcpus": 2, "memory_mib": 1024},
}


def test_catalog_entries_come_down_checked_like_files_and_survive_a_restart(
    tmp_path: Path, appliance: Appliance, admin: TestClient[Any], agent_headers: dict[str, str]
) -> None:
    def post(version: int, entries: list[dict[str, Any]]) -> Any:
        doc = _doc("catalog", version, {"entries": entries})
        return _as(admin, agent_headers, "POST", "/api/v1/desired/catalog", json=doc)

    shipped = admin.get("/api/v1/catalog/demo").json()
    answer = post(1, [LLM])
    assert answer.status_code == 200, answer.text
    assert answer.json()["result"] == "applied"
    assert admin.get("/api/v1/catalog/llm-small").json()["version"] == "1"
    # A central entry naming a shipped file: the file's entry stays, reported.
    clash = post(2, [LLM, {**LLM, "name": "demo", "version": "9"}]).json()
    assert clash["conflicts"] == [{"object_id": "demo", "resolution": "local_override"}]
    assert admin.get("/api/v1/catalog/demo").json() == shipped
    # Checked like a file: a missing template refuses the whole document.
    bad = post(3, [{**LLM, "version": "2"}, {**LLM, "name": "b", "cloud_init": {"template": "no"}}])
    assert bad.status_code == 422 and bad.json()["code"] == "invalid_catalog_entry"
    assert admin.get("/api/v1/catalog/llm-small").json()["version"] == "1"
    # Dropped centrally: gone; re-added: back, and still there after a restart.
    assert post(4, []).json()["changed"] == ["llm-small"]
    assert admin.get("/api/v1/catalog/llm-small").status_code == 404
    post(5, [LLM])
    appliance.close()
    again = built(tmp_path, TOWERBOX_GPU_BACKEND="simulated", TOWERBOX_N6_BACKEND="simulated")
    try:
        assert "llm-small" in again.catalog
    finally:
        again.close()


def test_numbers_past_what_the_database_stores_are_refused(admin: TestClient[Any]) -> None:
    # Each once reached SQLite and answered 500.
    huge = str(2**80)
    for path in (
        f"/api/v1/journal?after={huge}",
        f"/api/v1/journal/summary?through={huge}",
    ):
        resp = admin.get(path)
        assert resp.status_code == 400, (path, resp.text)
        assert resp.json()["code"] == "invalid_request"
    resp = admin.delete(f"/api/v1/tokens/{huge}")
    assert resp.status_code == 400, resp.text
