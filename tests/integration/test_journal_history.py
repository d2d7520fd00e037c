"""The journal read as history: newest first, names, actors and what changed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from appliance.context import Appliance
from appliance.store import journal
from tests.support.tenancy import clients, tenant_node


@pytest.fixture
def appliance(tmp_path: Path) -> Iterator[Appliance]:
    yield from tenant_node(tmp_path)


def _line(page: dict[str, Any], kind: str) -> dict[str, Any]:
    found = [e for e in page["entries"] if e["kind"] == kind]
    assert found, f"no {kind} line in {[e['kind'] for e in page['entries']]}"
    return found[0]


def test_history_names_objects_actors_and_changes_deletions_included(
    appliance: Appliance,
) -> None:
    for c, admin, acme in clients(appliance):
        body = {"name": "web", "appliance": "demo", "spec": {"role": "b2b"}, "start": True}
        assert c.post("/api/v1/vms", headers=acme, json=body).status_code == 201
        assert c.delete("/api/v1/vms/web?force=true", headers=acme).status_code in (200, 204)

        resp = c.get("/api/v1/journal/history", headers=admin, params={"limit": 50})
        assert resp.status_code == 200, resp.text
        page = resp.json()
        seqs = [e["seq"] for e in page["entries"]]
        assert seqs == sorted(seqs, reverse=True)
        assert seqs[0] == page["head"]

        # The deletion's state is null; the line still says which VM went.
        deleted = _line(page, "vm.deleted")
        assert deleted["state"] is None
        assert deleted["object_name"] == "web"
        assert deleted["summary"] == "deleted"
        assert deleted["actor"] == "acme-admin@acme"

        created = _line(page, "vm.created")
        assert created["object_name"] == "web"
        assert created["summary"].startswith("created: ")
        assert "role b2b" in created["summary"]
        assert "tenant acme" in created["summary"]

        # Tenants' users do not read the node's history.
        assert c.get("/api/v1/journal/history", headers=acme).status_code == 403


def test_history_pages_back_and_filters_by_kind(appliance: Appliance) -> None:
    for c, admin, acme in clients(appliance):
        for name in ("a1", "a2", "a3"):
            body = {"name": name, "appliance": "demo", "spec": {"role": "b2b"}}
            assert c.post("/api/v1/vms", headers=acme, json=body).status_code == 201
        first = c.get(
            "/api/v1/journal/history", headers=admin, params={"limit": 2, "kind": "vm.created"}
        ).json()
        assert [e["object_name"] for e in first["entries"]] == ["a3", "a2"]
        assert first["next_before"] == first["entries"][-1]["seq"]
        rest = c.get(
            "/api/v1/journal/history",
            headers=admin,
            params={"limit": 2, "kind": "vm.created", "before": first["next_before"]},
        ).json()
        assert [e["object_name"] for e in rest["entries"]] == ["a1"]
        assert rest["next_before"] is None


def test_a_deleted_objects_name_comes_from_older_entries_beyond_the_page(
    appliance: Appliance,
) -> None:
    for c, admin, acme in clients(appliance):
        body = {"name": "old", "appliance": "demo", "spec": {"role": "b2b"}}
        assert c.post("/api/v1/vms", headers=acme, json=body).status_code == 201
        for n in range(5):  # entries between the create and the delete
            c.post(
                "/api/v1/users",
                headers=admin,
                json={"username": f"u{n}", "role": "viewer", "password": "x" * 16},
            )
        assert c.delete("/api/v1/vms/old", headers=acme).status_code in (200, 204)
        page = c.get("/api/v1/journal/history", headers=admin, params={"limit": 1}).json()
        (line,) = page["entries"]
        assert line["kind"] == "vm.deleted"
        assert line["seq"] == journal.head()
        assert line["object_name"] == "old"
