"""A role runs one version of its catalog entry: recorded at deploy, never mixed by a
scale, moved onto the version the node's catalog holds by a rolling update.

On the libvirt test driver, with the node's live catalog changed as a catalog
document from the registry changes it (the entry replaced under the same name).
"""

from __future__ import annotations

from typing import Any

import msgspec

from appliance.context import Appliance
from appliance.services.desired_service_changes import changes_between
from appliance.services.service_templates import with_recorded_versions
from appliance.store import journal
from appliance.store.models import Service, ServiceVm
from tests.support.services import Listener, generation_of, point_replicas, wait_state
from tests.support.tenancy import Api
from towerbox_core.api.services import ServiceTemplate, SpecOverrides, UpdateRequest


def _deploy(api: Api, port: int, **role: Any) -> dict[str, Any]:
    resp = _deploy_raw(api, port, **{"count": 2, **role})
    assert resp.status_code == 202, resp.text
    return dict(resp.json())


def _new_version(app: Appliance, version: str) -> None:
    """What a catalog document with a new version of ``demo`` does to the node."""
    app.catalog["demo"] = msgspec.structs.replace(app.catalog["demo"], version=version)


def _role(api: Api) -> dict[str, Any]:
    c, _, acme = api
    view = c.get("/api/v1/services/llm", headers=acme).json()
    return dict(view["roles"][0])


def test_a_role_records_its_entry_version_and_an_update_moves_it_onto_a_new_one(
    appliance: Appliance, api: Api, server: Listener
) -> None:
    c, _, acme = api
    held = appliance.catalog["demo"].version
    _deploy(api, server.port)
    assert wait_state(appliance, "llm") == "ready"
    role = _role(api)
    assert (role["version"], role["catalog_version"]) == (held, None)
    # Nothing changed: an update is refused as before.
    same = c.post("/api/v1/services/llm/update", headers=acme, json={"role": "api"})
    assert same.status_code == 422 and same.json()["code"] == "nothing_to_update"

    _new_version(appliance, "2")
    role = _role(api)
    assert (role["version"], role["catalog_version"]) == (held, "2")  # the view says so
    # A scale up would make a replica of version 2 next to ones of version 1.
    scale = c.post("/api/v1/services/llm/roles/api/scale", headers=acme, json={"count": 3})
    assert scale.status_code == 409, scale.text
    problem = scale.json()
    assert problem["code"] == "catalog_version_changed"
    assert "towerbox service update llm api" in problem["detail"]
    assert ServiceVm.select().count() == 2 and Service.get_by_id("llm").state == "ready"
    # A version the node does not hold is refused, naming the one it does.
    other = c.post(
        "/api/v1/services/llm/update", headers=acme, json={"role": "api", "version": "3"}
    )
    assert other.status_code == 409 and other.json()["code"] == "catalog_version_unavailable"
    assert "at version 2 on this node, not 3" in other.json()["detail"]
    empty = c.post("/api/v1/services/llm/update", headers=acme, json={"role": "api", "version": ""})
    assert (empty.json()["code"], empty.json()["field"]) == ("invalid_version", "version")

    # An update with nothing else moves the role onto the catalog's version.
    plan = c.post(
        "/api/v1/services/llm/update", headers=acme, json={"role": "api", "dry_run": True}
    )
    assert plan.status_code == 200, plan.text
    assert plan.json()["plan"]["min_healthy"] == 2
    moved = c.post("/api/v1/services/llm/update", headers=acme, json={"role": "api"})
    assert moved.status_code == 202, moved.text
    assert wait_state(appliance, "llm") == "ready"
    role = _role(api)
    assert (role["version"], role["catalog_version"]) == ("2", None)
    assert sorted(r["generation"] for r in role["replicas"]) == [1, 1]
    updated = [e for e in journal.entries(limit=1000) if e["kind"] == "service.updated"]
    assert updated[-1]["state"]["version"] == "2"
    # Now at the catalog's version: it scales again, and the new replica is like the others.
    scale = c.post("/api/v1/services/llm/roles/api/scale", headers=acme, json={"count": 3})
    assert scale.status_code == 202, scale.text
    assert wait_state(appliance, "llm") == "ready"
    assert len(_role(api)["replicas"]) == 3


def test_a_template_that_names_a_version_the_node_lacks_is_refused_with_nothing_made(
    appliance: Appliance, api: Api, server: Listener
) -> None:
    resp = _deploy_raw(api, server.port, version="9")
    assert resp.status_code == 409, resp.text
    problem = resp.json()
    assert problem["code"] == "catalog_version_unavailable"
    assert problem["field"] == "roles[0].version"
    assert Service.select().count() == 0 and ServiceVm.select().count() == 0
    empty = _deploy_raw(api, server.port, version="")
    assert (empty.status_code, empty.json()["code"]) == (422, "invalid_version")
    held = appliance.catalog["demo"].version
    assert _deploy_raw(api, server.port, version=held).status_code == 202
    assert wait_state(appliance, "llm") == "ready"


def _deploy_raw(api: Api, port: int, **role: Any) -> Any:
    c, _, acme = api
    service = {
        "name": "llm",
        "roles": [
            {
                "name": "api",
                "catalog": "demo",
                "health": {"kind": "tcp", "port": port, "timeout_s": 2},
                **role,
            }
        ],
    }
    return c.post("/api/v1/services", headers=acme, json={"service": service})


def test_a_vm_create_that_pins_a_version_gets_it_or_a_409(appliance: Appliance, api: Api) -> None:
    c, _, acme = api
    body = {"name": "pinned", "appliance": "demo", "appliance_version": "7"}
    resp = c.post("/api/v1/vms", headers=acme, json=body)
    assert resp.status_code == 409, resp.text
    assert resp.json()["code"] == "catalog_version_unavailable"
    no_entry = c.post("/api/v1/vms", headers=acme, json={"name": "x", "appliance_version": "1"})
    assert no_entry.status_code == 422 and no_entry.json()["field"] == "appliance_version"
    body["appliance_version"] = appliance.catalog["demo"].version
    assert c.post("/api/v1/vms", headers=acme, json=body).status_code == 201


def test_a_services_document_moves_a_role_only_when_its_version_changed(
    appliance: Appliance,
) -> None:
    def template(version: str | None, model: str = "a") -> ServiceTemplate:
        role = {"name": "api", "catalog": "demo", "values": {"model": model}, "version": version}
        return msgspec.convert({"name": "llm", "roles": [role]}, ServiceTemplate)

    assert changes_between("llm", template("1"), template("1")) == []
    assert changes_between("llm", template("1"), template("2")) == [
        UpdateRequest(
            "api", catalog="demo", version="2", values={"model": "a"}, spec=SpecOverrides()
        )
    ]
    # A role deployed before roles recorded versions is not rolled for the record alone:
    # it is compared at the version its entry has now.
    _new_version(appliance, "2")
    recorded = with_recorded_versions(template(None), appliance.catalog)
    assert changes_between("llm", recorded, template("2")) == []
    changed = changes_between("llm", recorded, template("2", model="b"))
    assert [(u.version, u.values) for u in changed if isinstance(u, UpdateRequest)] == [
        ("2", {"model": "b"})
    ]


def test_a_failed_update_onto_a_new_version_says_it_cannot_make_old_ones_again(
    appliance: Appliance, api: Api, server: Listener
) -> None:
    c, _, acme = api
    _deploy(api, server.port, count=3)
    assert wait_state(appliance, "llm") == "ready"
    old = {r["vm"] for r in _role(api)["replicas"]}
    # The first replica of version 2 answers its check, the second does not: the update
    # fails after it replaced an old replica, which the node can no longer make again.
    first: list[str] = []

    def bad(vm_id: str) -> bool:
        if generation_of(vm_id) < 1:
            return False
        if not first:
            first.append(vm_id)
        return vm_id != first[0]

    point_replicas(appliance, bad=bad)
    _new_version(appliance, "2")
    resp = c.post("/api/v1/services/llm/update", headers=acme, json={"role": "api"})
    assert resp.status_code == 202, resp.text
    assert wait_state(appliance, "llm") == "failed"
    view = c.get("/api/v1/services/llm", headers=acme).json()
    assert "NOT fully rolled back" in view["message"]
    steps = view["progress"]["steps"]
    assert any(
        s.startswith("rollback stopped:") and "at version 2 on this node, not 1" in s for s in steps
    ), steps
    # What is left runs: the healthy new replica and the two old ones not yet replaced;
    # the failed new one is gone.
    replicas = view["roles"][0]["replicas"]
    assert len(replicas) == 3 and all(r["healthy"] for r in replicas)
    assert sorted(r["generation"] for r in replicas) == [0, 0, 1]
    assert len(old & {r["vm"] for r in replicas}) == 2
    failed = [e for e in journal.entries(limit=1000) if e["kind"] == "service.failed"]
    assert failed[-1]["state"]["rolled_back"] is False
    assert failed[-1]["state"]["cause"] == "catalog_version_unavailable"
    assert "update the role again (towerbox service update llm api)" in view["message"]
    # It is not a dead end: with all its replicas there, the role rolls forward.
    scale = c.post("/api/v1/services/llm/roles/api/scale", headers=acme, json={"count": 4})
    assert scale.json()["code"] == "service_not_ready"
    point_replicas(appliance)  # the new version's replicas all answer now
    resp = c.post("/api/v1/services/llm/update", headers=acme, json={"role": "api"})
    assert resp.status_code == 202, resp.text
    assert wait_state(appliance, "llm") == "ready"
    role = _role(api)
    assert (role["version"], role["healthy"]) == ("2", 3)
    assert sorted(r["generation"] for r in role["replicas"]) == [2, 2, 2]


def test_a_failed_service_without_its_replicas_does_not_update(
    appliance: Appliance, api: Api, server: Listener
) -> None:
    c, _, acme = api
    point_replicas(appliance, bad=lambda _vm: True)  # no replica ever answers
    _deploy(api, server.port)
    assert wait_state(appliance, "llm") == "failed"  # the deploy removed what it made
    body = {"role": "api", "values": {"model": "b"}}
    resp = c.post("/api/v1/services/llm/update", headers=acme, json=body)
    assert resp.status_code == 409 and resp.json()["code"] == "service_not_ready"


def test_a_role_recorded_before_versions_counts_as_at_the_catalogs_version(
    appliance: Appliance, api: Api, server: Listener
) -> None:
    c, _, acme = api
    _deploy(api, server.port)
    assert wait_state(appliance, "llm") == "ready"
    # A service the node deployed before roles recorded their entry's version.
    row = Service.get_by_id("llm")
    template = msgspec.json.decode(row.template)
    del template["roles"][0]["version"]
    Service.update(template=msgspec.json.encode(template).decode()).where(
        Service.name == "llm"
    ).execute()
    held = appliance.catalog["demo"].version
    # What the services kind compares with a document: the version the node would
    # deploy, so an unchanged document is not taken for a change made on the node.
    (state,) = appliance.desired._adapters["services"].current().values()
    assert state["template"]["roles"][0]["version"] == held
    # And an update with nothing else has nothing to do.
    same = c.post("/api/v1/services/llm/update", headers=acme, json={"role": "api"})
    assert same.json()["code"] == "nothing_to_update"
