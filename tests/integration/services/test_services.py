"""Multi-VM services on the libvirt test driver: deploy in start order with health
checks, all or nothing; scale; rolling update with a probe loop; a failed update
rolled back; remove in reverse order; the tenant boundary."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import msgspec
import pytest

from appliance.context import Appliance
from appliance.services.vm_provision import console_path
from appliance.store import journal
from appliance.store.models import Service, ServiceVm, Vm
from tests.support.appliance import login
from tests.support.keyed_catalog import SECRET, keyed_catalog
from tests.support.services import (
    Listener,
    booting,
    console_writer,
    generation_of,
    made,
    point_replicas,
    take_memory,
    wait_state,
)
from tests.support.tenancy import PASSWORD, Api, clients, principal_of, tenant_node
from towerbox_core.api.services import ServiceDeployRequest, UpdateRequest
from towerbox_core.errors import TowerboxError


def three_roles(port: int, name: str = "shop", web_port: int | None = None) -> dict[str, Any]:
    tcp = {"kind": "tcp", "port": port, "timeout_s": 5}
    return {
        "name": name,
        "roles": [
            {
                "name": "web",
                "catalog": "demo",
                "after": ["api"],
                "health": {**tcp, "port": web_port or port, "timeout_s": 1},
            },
            {
                "name": "api",
                "catalog": "demo",
                "count": 2,
                "after": ["db"],
                "values": {"model": "small"},
                "vnets": ["llm"],
                "health": tcp,
            },
            {
                "name": "db",
                "catalog": "demo",
                "spec": {"memory_mib": 256},
                "health": {"kind": "serial", "marker": "DB-READY", "timeout_s": 10},
            },
        ],
    }


def _journal(kind: str) -> list[dict[str, Any]]:
    return [e for e in journal.entries(limit=10_000) if e["kind"] == kind]


def test_three_roles_deploy_in_start_order_gated_by_health(
    appliance: Appliance, api: Api, server: Listener
) -> None:
    c, _, acme = api
    with console_writer(appliance, "DB-READY", "-db-", delay_s=0.3) as marked:
        started = time.monotonic()
        resp = c.post("/api/v1/services", headers=acme, json={"service": three_roles(server.port)})
        assert resp.status_code == 202, resp.text
        assert resp.json()["state"] == "deploying"
        assert wait_state(appliance, "shop") == "ready"
        took_ms = (time.monotonic() - started) * 1000
    created = [(e["state"]["spec"]["name"], e["seq"]) for e in _journal("vm.created")]
    order = [name.rsplit("-", 1)[0] for name, _ in sorted(created, key=lambda x: x[1])]
    assert order == ["shop-db", "shop-api", "shop-api", "shop-web"]
    # The api role was made only after db's marker was on its console.
    api_made = Vm.get(Vm.name == "shop-api-1").created_at.timestamp()
    assert api_made > marked["shop-db-1"] - 0.05
    view = c.get("/api/v1/services/shop", headers=acme).json()
    assert view["state"] == "ready" and view["tenant"] == "acme"
    health = {r["name"]: (r["count"], r["healthy"]) for r in view["roles"]}
    assert health == {"web": (1, 1), "api": (2, 2), "db": (1, 1)}
    replicas = {rep["vm"] for r in view["roles"] for rep in r["replicas"]}
    assert replicas == {"shop-web-1", "shop-api-1", "shop-api-2", "shop-db-1"}
    assert view["progress"]["done"] and view["progress"]["steps"][-1] == "ready"
    assert [e["object_id"] for e in _journal("service.deployed")] == ["shop"]
    assert _journal("service.deployed")[0]["actor"]["user"] == "acme-admin"
    db_spec = c.get("/api/v1/vms/shop-db-1", headers=acme).json()["spec"]
    assert db_spec["memory_mib"] == 256 and db_spec["tenant"] == "acme"
    assert took_ms < 30_000


def test_a_role_that_fails_its_check_rolls_the_whole_deploy_back(
    appliance: Appliance, api: Api, server: Listener
) -> None:
    c, _, acme = api
    before = journal.head()
    # Nothing listens on web's port: web never becomes healthy.
    template = three_roles(server.port, web_port=1)
    with console_writer(appliance, "DB-READY", "-db-"):
        resp = c.post("/api/v1/services", headers=acme, json={"service": template})
        assert resp.status_code == 202, resp.text
        assert wait_state(appliance, "shop") == "failed"
    view = c.get("/api/v1/services/shop", headers=acme).json()
    assert "role web" in view["message"] and "shop-web-1" in view["message"]
    assert all(not r["replicas"] for r in view["roles"])
    assert Vm.select().where(Vm.name.startswith("shop-")).count() == 0
    failed = _journal("service.failed")
    assert failed[-1]["state"]["role"] == "web" and failed[-1]["seq"] > before
    deleted = [e for e in journal.entries(after=before, limit=1000) if e["kind"] == "vm.deleted"]
    assert len(deleted) == 4
    # A failed service can be deployed again under its name, or removed.
    assert c.delete("/api/v1/services/shop", headers=acme).status_code == 202
    assert wait_state(appliance, "shop") is None


def test_an_update_whose_surge_passes_the_quota_is_refused_in_its_dry_run_too(
    appliance: Appliance, api: Api
) -> None:
    c, _, acme = api
    full = {"name": "full", "roles": [{"name": "a", "catalog": "demo", "count": 10}]}
    assert c.post("/api/v1/services", headers=acme, json={"service": full}).status_code == 202
    assert wait_state(appliance, "full") == "ready"  # acme's 10 VMs: its whole quota
    change = {"role": "a", "spec": {"memory_mib": 192}}
    for dry_run in (True, False):
        resp = c.post(
            "/api/v1/services/full/update", headers=acme, json={**change, "dry_run": dry_run}
        )
        assert (resp.status_code, resp.json()["code"]) == (409, "quota_exceeded"), resp.text
        assert "--max-surge 0 --max-unavailable 1" in resp.json()["detail"]
    in_place = {**change, "max_surge": 0, "max_unavailable": 1, "dry_run": True}
    resp = c.post("/api/v1/services/full/update", headers=acme, json=in_place)
    assert resp.status_code == 200, resp.text
    assert resp.json()["plan"]["min_healthy"] == 9
    assert Service.get_by_id("full").state == "ready"


def test_refusals_before_anything_is_made(appliance: Appliance, api: Api) -> None:
    c, admin, acme = api
    head = journal.head()

    def deploy(body: dict[str, Any], headers: dict[str, str] = acme) -> Any:
        return c.post("/api/v1/services", headers=headers, json=body)

    big = {"name": "big", "roles": [{"name": "a", "catalog": "demo", "count": 11}]}
    resp = deploy({"service": big})
    assert (resp.status_code, resp.json()["code"], resp.json()["quota"]) == (
        409,
        "quota_exceeded",
        "vms",
    )
    cycle = {
        "name": "loop",
        "roles": [
            {"name": "a", "catalog": "demo", "after": ["b"]},
            {"name": "b", "catalog": "demo", "after": ["a"]},
        ],
    }
    assert deploy({"service": cycle}).json()["code"] == "service_cycle"
    agent = {"name": "ag", "roles": [{"name": "a", "catalog": "demo", "health": {"kind": "agent"}}]}
    resp = deploy({"service": agent})
    # The test driver cannot run guest-agent commands: refused, never faked healthy.
    assert (resp.status_code, resp.json()["code"]) == (501, "agent_unsupported")
    assert resp.json()["field"] == "roles[0].health.kind"
    assert "test driver" in resp.json()["detail"]
    unknown = {"name": "u", "roles": [{"name": "a", "catalog": "nope"}]}
    assert deploy({"service": unknown}).json()["code"] == "unknown_catalog_entry"
    vnet = {"name": "v", "roles": [{"name": "a", "catalog": "demo", "vnets": ["cams"]}]}
    assert deploy({"service": vnet}).json()["code"] == "vnet_not_found"  # beta's VNet
    other = {"service": {"name": "o", "roles": [{"name": "a", "catalog": "demo"}]}}
    resp = deploy({**other, "tenant": "beta"})
    assert (resp.status_code, resp.json()["code"]) == (403, "tenant_mismatch")
    assert deploy({"template": "no-such"}).json()["code"] == "service_template_not_found"
    assert deploy({}).json()["code"] == "invalid_service_request"
    assert deploy({"service": {"name": "x", "roles": [], "extra": 1}}).status_code == 400
    assert deploy(other, admin).json()["code"] == "tenant_required"
    assert Service.select().count() == 0 and Vm.select().count() == 0
    assert journal.head() == head


def test_a_template_file_deploys_with_values_and_the_tenant_boundary_holds(
    appliance: Appliance, api: Api, server: Listener
) -> None:
    c, admin, acme = api
    body = {"template": "demo-web", "name": "site", "values": {"web": {"model": "hi"}}}
    resp = c.post("/api/v1/services", headers=acme, json=body)
    assert resp.status_code == 202, resp.text
    with console_writer(appliance, "TOWERBOX-DEMO-BOOTED", "site-"):
        assert wait_state(appliance, "site") == "ready", appliance.services.get(
            principal_of(appliance, "acme-admin"), "site"
        ).message
    row = Service.get_by_id("site")
    assert '"model":"hi"' in row.template
    beta = login(c, "beta-admin", PASSWORD)
    assert c.get("/api/v1/services/site", headers=beta).status_code == 404
    assert c.get("/api/v1/services", headers=beta).json() == []
    assert c.delete("/api/v1/services/site", headers=beta).status_code == 404
    assert [s["name"] for s in c.get("/api/v1/services", headers=admin).json()] == ["site"]


def _deploy_api3(appliance: Appliance, port: int, timeout_s: float = 5) -> None:
    acme = principal_of(appliance, "acme-admin")
    template = {
        "name": "llm",
        "roles": [
            {
                "name": "api",
                "catalog": "demo",
                "count": 3,
                "values": {"model": "a"},
                "health": {"kind": "tcp", "port": port, "timeout_s": timeout_s},
            }
        ],
    }
    appliance.services.deploy(acme, msgspec.convert({"service": template}, ServiceDeployRequest))
    assert wait_state(appliance, "llm") == "ready"


def test_rolling_update_keeps_every_replica_healthy_at_every_moment(
    appliance: Appliance, server: Listener
) -> None:
    _deploy_api3(appliance, server.port)
    point_replicas(appliance, bad=booting(0.3))  # each new replica takes 0.3 s to answer
    acme = principal_of(appliance, "acme-admin")
    dry = appliance.rollouts.update(
        acme, "llm", UpdateRequest(role="api", values={"model": "b"}, dry_run=True)
    )
    assert dry.plan.min_healthy == 3 and len(dry.plan.steps) == 9
    assert Service.get_by_id("llm").state == "ready"  # a dry run changes nothing
    seen: list[int] = []
    sizes: list[int] = []
    stop = threading.Event()

    def probe_loop() -> None:
        while not stop.is_set():
            seen.append(appliance.services.role_health("llm", "api"))
            sizes.append(ServiceVm.select().where(ServiceVm.service == "llm").count())

    loop = threading.Thread(target=probe_loop)
    loop.start()
    try:
        appliance.rollouts.update(acme, "llm", UpdateRequest(role="api", values={"model": "b"}))
        assert wait_state(appliance, "llm") == "ready"
    finally:
        stop.set()
        loop.join()
    assert len(seen) >= 5
    assert 4 in sizes  # the loop saw the surge replica's moments too
    assert min(seen) == 3
    rows = list(ServiceVm.select().where(ServiceVm.service == "llm"))
    assert sorted(r.generation for r in rows) == [1, 1, 1]
    assert '"model":"b"' in Service.get_by_id("llm").template
    assert _journal("service.updated")[-1]["state"]["generation"] == 1


def test_a_failed_new_replica_stops_the_update_and_rolls_the_role_back(
    appliance: Appliance, server: Listener
) -> None:
    _deploy_api3(appliance, server.port, timeout_s=1)
    before = {r.vm_id for r in ServiceVm.select()}
    point_replicas(appliance, bad=lambda vm_id: generation_of(vm_id) >= 1)
    acme = principal_of(appliance, "acme-admin")
    appliance.rollouts.update(acme, "llm", UpdateRequest(role="api", values={"model": "bad"}))
    assert wait_state(appliance, "llm") == "ready"
    row = Service.get_by_id("llm")
    assert "rolled back" in row.message and '"model":"a"' in row.template
    rows = list(ServiceVm.select().where(ServiceVm.service == "llm"))
    assert {r.vm_id for r in rows} == before  # the first new one failed: no old one went
    assert _journal("service.failed")[-1]["state"]["rolled_back"] is True
    assert appliance.services.role_health("llm", "api") == 3


def test_scale_then_remove_in_reverse_start_order(
    appliance: Appliance, api: Api, server: Listener
) -> None:
    c, admin, acme = api
    with console_writer(appliance, "DB-READY", "-db-"):
        c.post("/api/v1/services", headers=acme, json={"service": three_roles(server.port)})
        assert wait_state(appliance, "shop") == "ready"
        resp = c.post("/api/v1/services/shop/roles/api/scale", headers=acme, json={"count": 3})
        assert resp.status_code == 202, resp.text
        assert wait_state(appliance, "shop") == "ready"
    assert Vm.select().where(Vm.name.startswith("shop-api-")).count() == 3
    resp = c.post("/api/v1/services/shop/roles/api/scale", headers=acme, json={"count": 1})
    assert wait_state(appliance, "shop") == "ready"
    names = sorted(v.name for v in Vm.select().where(Vm.name.startswith("shop-api-")))
    assert names == ["shop-api-1"]  # newest first went
    assert _journal("service.scaled")[-1]["state"]["count"] == 1
    bad = c.post("/api/v1/services/shop/roles/nope/scale", headers=acme, json={"count": 1})
    assert bad.json()["code"] == "role_not_found"
    assert bad.json()["detail"].endswith("its roles: web, api, db"), bad.json()
    # A count is a JSON number: "3" and true are refused, naming the field; nothing runs.
    for count in ("3", True):
        bad = c.post("/api/v1/services/shop/roles/api/scale", headers=acme, json={"count": count})
        assert (bad.status_code, bad.json()["code"]) == (400, "invalid_request"), bad.text
        assert bad.json()["errors"][0]["key"] == "count", bad.text
    assert _journal("service.scaled")[-1]["state"]["count"] == 1
    # A replica is the service's to delete, for the tenant and for an infra-admin.
    detail = c.get("/api/v1/vms/shop-api-1", headers=acme).json()
    assert (detail["service"], detail["service_role"]) == ("shop", "api")
    for headers in (acme, admin):
        resp = c.delete("/api/v1/vms/shop-api-1", headers=headers)
        assert (resp.status_code, resp.json()["code"]) == (409, "vm_in_service"), resp.text
        assert (resp.json()["service"], resp.json()["role"]) == ("shop", "api")
        assert "towerbox service scale shop api N" in resp.json()["detail"]
    assert Vm.select().where(Vm.name == "shop-api-1").exists()
    head = journal.head()
    removing = c.delete("/api/v1/services/shop", headers=acme)
    assert removing.status_code == 202
    # The answer's progress is the remove's own, not the scale's before it.
    assert removing.json()["progress"] == {
        "operation": "remove",
        "done": False,
        "steps": [],
        "failed": False,
    }
    assert wait_state(appliance, "shop") is None
    gone = [
        e["object_id"] for e in journal.entries(after=head, limit=1000) if e["kind"] == "vm.deleted"
    ]
    names_by_id = {e["object_id"]: e["state"]["spec"]["name"] for e in _journal("vm.created")}
    assert [names_by_id[i].rsplit("-", 1)[0] for i in gone] == ["shop-web", "shop-api", "shop-db"]
    assert _journal("service.removed")[-1]["object_id"] == "shop"


def test_an_operation_cut_by_a_restart_leaves_a_failed_service_that_can_be_removed(
    appliance: Appliance, server: Listener
) -> None:
    _deploy_api3(appliance, server.port)
    Service.update(state="updating").where(Service.name == "llm").execute()
    appliance.services.recover()  # what a start does
    row = Service.get_by_id("llm")
    assert row.state == "failed" and "during its update" in row.message
    acme = principal_of(appliance, "acme-admin")
    again = msgspec.convert(
        {"service": {"name": "llm", "roles": [{"name": "api", "catalog": "demo"}]}},
        ServiceDeployRequest,
    )
    with pytest.raises(TowerboxError) as err:
        appliance.services.deploy(acme, again)
    assert err.value.code == "service_exists"  # its replicas are still there
    appliance.services.remove(acme, "llm")
    assert wait_state(appliance, "llm") is None
    assert Vm.select().count() == 0


def test_remove_stops_a_deploy_under_way(appliance: Appliance, api: Api) -> None:
    c, _, acme = api
    # Nothing writes the marker: db waits for its check until the remove stops it.
    template = {
        "name": "slow",
        "roles": [
            {
                "name": "db",
                "catalog": "demo",
                "health": {"kind": "serial", "marker": "NEVER", "timeout_s": 600},
            }
        ],
    }
    assert c.post("/api/v1/services", headers=acme, json={"service": template}).status_code == 202
    scale = c.post("/api/v1/services/slow/roles/db/scale", headers=acme, json={"count": 2})
    assert (scale.status_code, scale.json()["code"]) == (409, "service_busy")
    assert "busy with a deploy" in scale.json()["detail"]
    started = time.monotonic()
    assert c.delete("/api/v1/services/slow", headers=acme).status_code == 202
    assert wait_state(appliance, "slow") is None
    assert time.monotonic() - started < 30
    assert Vm.select().count() == 0
    # The deploy was stopped; its replica was not found unhealthy.
    stopped = [e["state"] for e in _journal("service.failed") if e["object_id"] == "slow"]
    assert [s["cause"] for s in stopped] == ["stopped"], stopped
    assert "asked to stop" in stopped[0]["message"] and "not healthy" not in stopped[0]["message"]


def test_a_gpu_role_surges_onto_a_free_slice_or_replaces_in_place(
    appliance: Appliance, api: Api
) -> None:
    c, admin, acme = api
    template = {
        "name": "inf",
        "roles": [{"name": "llm", "catalog": "demo", "count": 0, "gpu": "1g.10gb"}],
    }
    resp = c.post("/api/v1/services", headers=acme, json={"service": template})
    assert resp.status_code == 202, resp.text
    assert wait_state(appliance, "inf") == "ready"
    dry = {"role": "llm", "values": {"model": "b"}, "dry_run": True}
    plan = c.post("/api/v1/services/inf/update", headers=acme, json=dry).json()["plan"]
    assert (plan["max_surge"], plan["max_unavailable"]) == (0, 1)
    assert "in place" in plan["note"]
    gpu = c.get("/api/v1/gpus", headers=admin).json()["gpus"][0]["uuid"]
    layout = {"counts": {"1g.10gb": 2}}
    assert c.post(f"/api/v1/gpus/{gpu}/apply", headers=admin, json=layout).status_code == 200
    # A surge replica is held to acme's quotas, in a dry run too: none for slices yet.
    answer = c.post("/api/v1/services/inf/update", headers=acme, json=dry)
    assert (answer.status_code, answer.json()["quota"]) == (409, "gpu_slices.1g.10gb")
    quotas = {"gpu_slices": {"1g.10gb": 1}, "gpu_compute_slices": 1}
    assert c.put("/api/v1/tenants/acme/quotas", headers=admin, json=quotas).is_success
    answer = c.post("/api/v1/services/inf/update", headers=acme, json=dry)
    assert answer.status_code == 200, answer.text
    plan = answer.json()["plan"]
    assert (plan["max_surge"], plan["max_unavailable"], plan["note"]) == (1, 0, "")
    assert Service.get_by_id("inf").state == "ready"


def test_a_service_the_host_has_no_memory_for_is_refused_before_anything_is_made(
    appliance: Appliance, api: Api
) -> None:
    c, admin, acme = api
    # The tenant may hold any memory; the host has 179,200 MiB for VMs (see
    # test_tenant_quotas), each role fits alone, the two together do not.
    assert c.put("/api/v1/tenants/acme/quotas", headers=admin, json={"memory_mib": -1}).is_success
    head = journal.head()
    template = {
        "name": "huge",
        "roles": [
            {"name": "db", "catalog": "demo", "spec": {"memory_mib": 60_000}},
            {"name": "big", "catalog": "demo", "count": 2, "spec": {"memory_mib": 60_000}},
        ],
    }
    resp = c.post("/api/v1/services", headers=acme, json={"service": template})
    assert (resp.status_code, resp.json()["code"]) == (409, "insufficient_memory"), resp.text
    assert resp.json()["detail"].startswith(
        "service huge (3 new replicas: db: 1 at 60000 MiB, big: 2 at 60000 MiB) needs 180000 MiB "
        "of host memory; 0 of 179200 MiB are given to VMs already"
    )
    assert Service.select().count() == 0 and Vm.select().count() == 0
    assert journal.head() == head
    # Scaling up is held to the same rule, counting the replicas that run.
    template["roles"] = template["roles"][:1]
    assert c.post("/api/v1/services", headers=acme, json={"service": template}).status_code == 202
    assert wait_state(appliance, "huge") == "ready"
    resp = c.post("/api/v1/services/huge/roles/db/scale", headers=acme, json={"count": 4})
    assert (resp.status_code, resp.json()["code"]) == (409, "insufficient_memory"), resp.text
    assert "(3 new replicas: db: 3 at 60000 MiB) needs 180000 MiB" in resp.json()["detail"]
    assert "60000 of 179200 MiB are given to VMs already" in resp.json()["detail"]
    assert [vm.name for vm in Vm.select()] == ["huge-db-1"]


def test_a_role_that_cannot_be_placed_rolls_back_and_says_why(
    appliance: Appliance, api: Api
) -> None:
    c, admin, acme = api
    # The host has room for the service when it is asked for. While the first wave
    # waits for its health check, another VM takes that room: the second wave's
    # replica is refused as it is made, and the deploy undoes the first wave.
    assert c.put("/api/v1/tenants/acme/quotas", headers=admin, json={"memory_mib": -1}).is_success
    template = {
        "name": "huge",
        "roles": [
            {"name": "db", "catalog": "demo", "health": {"kind": "serial", "marker": "DB-READY"}},
            {"name": "big", "catalog": "demo", "after": ["db"], "spec": {"memory_mib": 100_000}},
        ],
    }
    assert c.post("/api/v1/services", headers=acme, json={"service": template}).status_code == 202
    db = made("huge-db-1")
    take_memory(appliance, c, admin, leave_mib=50_000)
    console = console_path(appliance.cfg, db.id)
    console.parent.mkdir(parents=True, exist_ok=True)
    console.write_text("booting\nDB-READY\n")
    assert wait_state(appliance, "huge") == "failed"
    view = c.get("/api/v1/services/huge", headers=acme).json()
    assert "role big: huge-big-1 could not be made" in view["message"]
    assert "insufficient_memory" in view["message"]
    assert [vm.name for vm in Vm.select()] == ["hog"]
    assert _journal("service.failed")[-1]["state"]["cause"] == "insufficient_memory"
    assert "delete huge-db-1" in view["progress"]["steps"]


def test_an_update_that_merges_values_keeps_the_secret_the_view_never_shows(
    tmp_path: Path,
) -> None:
    catalog = keyed_catalog(tmp_path)
    node = tenant_node(tmp_path / "node", TOWERBOX_CATALOG_DIR=str(catalog))
    appliance = next(node)
    try:
        for c, _, acme in clients(appliance):
            role = {"name": "llm", "catalog": "keyed", "values": {"api_key": SECRET}}
            service = {"service": {"name": "chat", "roles": [role]}}
            assert c.post("/api/v1/services", headers=acme, json=service).status_code == 202
            assert wait_state(appliance, "chat") == "ready"
            shown = c.get("/api/v1/services/chat", headers=acme).json()["roles"][0]["values"]
            assert shown == {"api_key": "(secret)"}

            # Replacing the values without the secret is refused: it is required.
            body = {"role": "llm", "values": {"model": "large"}}
            resp = c.post("/api/v1/services/chat/update", headers=acme, json=body)
            assert (resp.status_code, resp.json()["code"]) == (422, "missing_value"), resp.text
            # Merged: the secret stays as it was, the model changes.
            resp = c.post(
                "/api/v1/services/chat/update",
                headers=acme,
                json={**body, "merge_values": True},
            )
            assert resp.status_code == 202, resp.text
            assert wait_state(appliance, "chat") == "ready"
            view = c.get("/api/v1/services/chat", headers=acme).json()["roles"][0]
            assert view["values"] == {"api_key": "(secret)", "model": "large"}
            assert [r["generation"] for r in view["replicas"]] == [1]
            assert f'"api_key":"{SECRET}"' in Service.get_by_id("chat").template
            assert SECRET not in str(journal.entries(limit=10_000))
            # Merged onto the same values: nothing to update.
            again = c.post(
                "/api/v1/services/chat/update",
                headers=acme,
                json={**body, "merge_values": True},
            )
            assert again.json()["code"] == "nothing_to_update"
    finally:
        appliance.services.runner.wait_idle(60)
        for _ in node:
            pass
