"""The ``services`` desired-state kind through the appliance's API on the libvirt test
driver: a document deploys, updates, scales and removes the services it names in the
background and journals what each came to; quotas and node checks refuse the whole
document; a service made on the node is left alone and reported as a conflict."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from appliance.context import Appliance
from appliance.store import journal
from appliance.store.models import Service, Vm
from tests.support.services import (
    Listener,
    console_writer,
    listener,
    made,
    point_replicas,
    service_node,
    take_memory,
)
from tests.support.tenancy import clients

SECRET = "hunter2-model"  # a value the document's and services' entries must not carry


@pytest.fixture
def appliance(tmp_path: Path) -> Iterator[Appliance]:
    yield from service_node(tmp_path)


@pytest.fixture
def api(appliance: Appliance) -> Iterator[tuple[TestClient[Any], dict[str, str], dict[str, str]]]:
    for c, admin, acme in clients(appliance):
        token = c.post("/api/v1/sync/agent-token", headers=admin, json={"name": "edge"})
        agent = {"Authorization": f"Bearer {token.json()['token']}"}
        yield c, agent, acme


@pytest.fixture
def server(appliance: Appliance) -> Iterator[Listener]:
    with listener() as srv:
        point_replicas(appliance)
        yield srv


def shop(port: int, api_count: int = 2, model: str = SECRET) -> dict[str, Any]:
    tcp = {"kind": "tcp", "port": port, "timeout_s": 5}
    return {
        "tenant": "acme",
        "service": {
            "roles": [
                {"name": "db", "catalog": "demo", "health": tcp},
                {"name": "api", "catalog": "demo", "count": api_count, "after": ["db"]},
            ]
        },
        "values": {"api": {"model": model}},
    }


def _post(c: TestClient[Any], agent: dict[str, str], version: int, services: Any) -> Any:
    body = {
        "kind": "services",
        "etag": f'"services-{version}"',
        "version": version,
        "source": "group:tier=gold",
        "document": {"services": services},
    }
    return c.post("/api/v1/desired/services", headers=agent, json=body)


def _statuses(app: Appliance, timeout_s: float = 60) -> dict[str, Any]:
    """Once every operation has ended: the services of the newest desired.status."""
    end = time.monotonic() + timeout_s
    while app.desired.services is not None and app.desired.services.changing():
        assert time.monotonic() < end, "desired changes did not end"
        time.sleep(0.05)
    assert app.services.runner.wait_idle(timeout_s)
    status = [e for e in journal.entries(limit=10_000) if e["kind"] == "desired.status"]
    return dict(status[-1]["state"]["services"]) if status else {}


def _names() -> list[str]:
    return sorted(vm.name for vm in Vm.select())


def test_a_document_deploys_updates_and_removes_its_services(
    appliance: Appliance, api: Any, server: Listener
) -> None:
    c, agent, acme = api
    resp = _post(c, agent, 1, {"shop": shop(server.port)})
    assert resp.status_code == 200, resp.text
    answer = resp.json()
    assert answer["result"] == "applied" and answer["changed"] == ["service:shop"]
    assert answer["services"] == {"shop": {"status": "deploying"}}
    assert _statuses(appliance) == {"shop": {"status": "deployed"}}
    assert c.get("/api/v1/services/shop", headers=acme).json()["managed_by"] == "registry"
    assert _names() == ["shop-api-1", "shop-api-2", "shop-db-1"]
    outcome = [e for e in journal.entries(limit=10_000) if e["kind"] == "desired.applied"]
    assert outcome[-1]["state"]["services"] == {"shop": {"status": "deploying"}}
    assert outcome[-1]["actor"]["job"] == "desired:services"

    # A count change scales; a value change rolls the role over.
    resp = _post(c, agent, 2, {"shop": shop(server.port, api_count=1, model="other")})
    assert resp.status_code == 200, resp.text
    assert _statuses(appliance) == {"shop": {"status": "deployed"}}
    api_vms = [n for n in _names() if n.startswith("shop-api-")]
    assert len(api_vms) == 1
    row = Service.get_by_id("shop")
    assert '"model":"other"' in row.template and row.state == "ready"
    # The same document again changes nothing.
    again = _post(c, agent, 3, {"shop": shop(server.port, api_count=1, model="other")})
    assert again.json()["changed"] == []

    # Dropped from the document: removed.
    assert _post(c, agent, 4, {}).json()["changed"] == ["service:shop"]
    assert _statuses(appliance) == {}
    assert Service.select().count() == 0 and _names() == []
    # The document's and the services' entries carry value names, never values (a VM
    # create journals its non-secret values, as any create does; secrets redacted).
    entries = journal.entries(limit=10_000)
    ours = [e for e in entries if e["kind"].split(".")[0] in ("desired", "service")]
    assert len(ours) > 5 and not [e for e in ours if SECRET in str(e)]


def test_a_document_past_the_quota_is_rejected_and_makes_nothing(
    appliance: Appliance, api: Any, server: Listener
) -> None:
    c, agent, _ = api
    head = journal.head()
    big = shop(server.port, api_count=11)
    resp = _post(c, agent, 1, {"shop": big})
    assert resp.status_code == 409, resp.text
    problem = resp.json()
    assert (problem["code"], problem["field"]) == ("quota_exceeded", "services.shop")
    # Two services that each fit, but not together.
    resp = _post(c, agent, 2, {"a": shop(server.port, 5), "b": shop(server.port, 5)})
    assert (resp.status_code, resp.json()["code"]) == (409, "quota_exceeded")
    unknown = shop(server.port)
    unknown["service"]["roles"][0]["catalog"] = "nope"
    resp = _post(c, agent, 3, {"shop": unknown})
    assert (resp.json()["code"], resp.json()["field"]) == (
        "unknown_catalog_entry",
        "services.shop.roles[0].catalog",
    )
    assert Service.select().count() == 0 and _names() == []
    kinds = [e["kind"] for e in journal.entries(after=head, limit=1000)]
    assert kinds == ["desired.rejected"] * 3


def test_a_local_service_of_the_same_name_is_a_conflict_left_alone(
    appliance: Appliance, api: Any, server: Listener
) -> None:
    c, agent, acme = api
    local = {"name": "shop", "roles": [{"name": "db", "catalog": "demo"}]}
    assert c.post("/api/v1/services", headers=acme, json={"service": local}).status_code == 202
    assert appliance.services.runner.wait_idle(60)
    resp = _post(c, agent, 1, {"shop": shop(server.port)})
    assert resp.status_code == 200, resp.text
    answer = resp.json()
    assert answer["result"] == "conflict"
    assert answer["conflicts"] == [{"object_id": "service:shop", "resolution": "local_override"}]
    assert _names() == ["shop-db-1"]
    outcome = [e for e in journal.entries(limit=10_000) if e["kind"] == "desired.conflict"]
    assert outcome[-1]["state"]["services"]["shop"]["status"] == "conflict"
    assert c.get("/api/v1/services/shop", headers=acme).json()["managed_by"] == ""
    # A later document without it does not remove the local service.
    assert _post(c, agent, 2, {}).json()["changed"] == []
    assert _names() == ["shop-db-1"]


def test_a_failed_health_check_and_a_host_without_room_are_reported(
    appliance: Appliance, api: Any, server: Listener
) -> None:
    c, agent, _ = api
    admin = {"Authorization": f"Bearer {appliance.cfg.cli_token_file.read_text().strip()}"}
    quotas = c.put("/api/v1/tenants/acme/quotas", headers=admin, json={"memory_mib": -1})
    assert quotas.is_success, quotas.text
    sick = shop(1)  # nothing listens on port 1: db never becomes healthy
    sick["service"]["roles"][0]["health"]["timeout_s"] = 0.5
    # A service the host has no memory for refuses the whole document, as a quota does.
    huge = shop(server.port)
    huge["service"]["roles"][1]["spec"] = {"memory_mib": 4_000_000}
    resp = _post(c, agent, 1, {"sick": sick, "huge": huge})
    assert (resp.status_code, resp.json()["code"]) == (409, "insufficient_memory"), resp.text
    assert resp.json()["field"] == "services.huge.memory_mib"
    assert _names() == []
    # Room when the document came, taken by another VM while db waits for its check:
    # the replica refused as it is made is the service's rejection, with its reason.
    taken = threading.Event()
    point_replicas(appliance, bad=lambda _vm: not taken.is_set())
    huge["service"]["roles"][1]["spec"] = {"memory_mib": 60_000}
    resp = _post(c, agent, 2, {"sick": sick, "huge": huge})
    assert resp.status_code == 200, resp.text
    made("huge-db-1")
    take_memory(appliance, c, admin, leave_mib=50_000)
    taken.set()
    statuses = _statuses(appliance)
    assert {n: (s["status"], s.get("code")) for n, s in statuses.items()} == {
        "sick": ("failed", "unhealthy"),
        "huge": ("rejected", "insufficient_memory"),
    }
    assert "huge-api-1 could not be made" in statuses["huge"]["detail"]
    assert _names() == ["hog"]


def test_services_of_two_tenants_that_fit_alone_but_not_together_are_refused_whole(
    appliance: Appliance, api: Any, server: Listener
) -> None:
    c, agent, _ = api
    admin = {"Authorization": f"Bearer {appliance.cfg.cli_token_file.read_text().strip()}"}
    for tenant in ("acme", "beta"):
        quotas = c.put(f"/api/v1/tenants/{tenant}/quotas", headers=admin, json={"memory_mib": -1})
        assert quotas.is_success, quotas.text
    budget = appliance.services.deps.admission.memory_budget_mib
    # Two api replicas of a third of the host's room each: one service fits, two do not.
    a, b = shop(server.port), shop(server.port)
    b["tenant"] = "beta"
    for doc in (a, b):
        doc["service"]["roles"][1]["spec"] = {"memory_mib": budget // 3}
    resp = _post(c, agent, 1, {"a": a, "b": b})
    assert (resp.status_code, resp.json()["code"]) == (409, "insufficient_memory"), resp.text
    assert resp.json()["field"] == "services.memory_mib"
    detail = resp.json()["detail"]
    assert detail.startswith("a services document (services a, b; 6 new replicas: a/db: 1 at")
    assert f"b/api: 2 at {budget // 3} MiB" in detail, detail
    assert _names() == []
    # Each alone fits: the document without the other deploys.
    resp = _post(c, agent, 2, {"a": a})
    assert resp.status_code == 200, resp.text
    assert _statuses(appliance) == {"a": {"status": "deployed"}}
    assert _names() == ["a-api-1", "a-api-2", "a-db-1"]
    # A third api replica does not fit beside them: the scale-up refuses the document.
    grown = shop(server.port, api_count=3)
    grown["service"]["roles"][1]["spec"] = {"memory_mib": budget // 3}
    resp = _post(c, agent, 3, {"a": grown})
    assert (resp.status_code, resp.json()["code"]) == (409, "insufficient_memory"), resp.text
    assert resp.json()["field"] == "services.a.memory_mib"
    assert "service a (1 new replica: api: 1 at" in resp.json()["detail"]
    assert _statuses(appliance) == {"a": {"status": "deployed"}}
    assert _names() == ["a-api-1", "a-api-2", "a-db-1"]


def test_a_template_file_by_name_with_values(appliance: Appliance, api: Any) -> None:
    c, agent, _ = api
    entry = {"tenant": "beta", "template": "demo-web", "values": {"web": {"model": "m-2"}}}
    with console_writer(appliance, "TOWERBOX-DEMO-BOOTED", "site-"):
        resp = _post(c, agent, 1, {"site": entry})
        assert resp.status_code == 200, resp.text
        assert _statuses(appliance) == {"site": {"status": "deployed"}}
    assert _names() == ["site-backend-1", "site-web-1", "site-web-2"]
    assert Service.get_by_id("site").tenant == "beta"
    # A file the node does not have refuses the document, naming the field.
    resp = _post(c, agent, 2, {"site": {**entry, "template": "no-such"}})
    assert (resp.json()["code"], resp.json()["field"]) == (
        "service_template_not_found",
        "services.site.template",
    )


def test_a_removal_that_ends_while_the_document_is_recorded_is_not_reported_removing(
    appliance: Appliance, api: Any, server: Listener, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The registry shows the newest entry of the ``services`` object: a removal that
    ends between the document's statuses being read and the outcome being journalled
    must not leave "removing" as that newest entry for good."""
    c, agent, _ = api
    assert _post(c, agent, 1, {"shop": shop(server.port, api_count=1)}).status_code == 200
    assert _statuses(appliance) == {"shop": {"status": "deployed"}}
    adapter = appliance.desired.services
    assert adapter is not None
    read = adapter.statuses

    def slow_statuses() -> dict[str, dict[str, Any]]:
        answer = read()
        if not threading.current_thread().name.startswith("service-"):
            # The document's own read: give the removal time to end before the
            # outcome is journalled, as a busy node may.
            appliance.services.runner.wait_idle(1.5)
        return answer

    monkeypatch.setattr(adapter, "statuses", slow_statuses)
    assert _post(c, agent, 2, {}).json()["changed"] == ["service:shop"]
    assert appliance.services.runner.wait_idle(60)
    assert Service.select().count() == 0
    about = [
        e
        for e in journal.entries(limit=10_000)
        if (e["object_type"], e["object_id"]) == ("desired", "services")
    ]
    assert about[-1]["state"]["services"] == {}, about[-2:]
