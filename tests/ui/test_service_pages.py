"""The Services page in NiceGUI's User simulation against a real appliance process."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from nicegui import ui
from nicegui.testing.user import User

from tests.ui.conftest import log_in
from tests.ui.stack import Appliance

pytestmark = pytest.mark.anyio

SERVICE = {
    "service": {
        "name": "ui-svc",
        # No health check: the weakest kind, the domain's state; the page says so.
        "roles": [{"name": "web", "catalog": "demo", "count": 2}],
    },
    "tenant": "svc-tenant",
}


def _remove(api: httpx.Client, name: str, tenant: str) -> None:
    api.delete(f"/api/v1/services/{name}")
    _until(api, lambda r: r.status_code == 404, "the service to be removed", name)
    api.delete(f"/api/v1/tenants/{tenant}")


def _until(api: httpx.Client, done: object, what: str, name: str = "ui-svc") -> None:
    end = time.monotonic() + 30
    while time.monotonic() < end:
        resp = api.get(f"/api/v1/services/{name}")
        if done(resp):  # type: ignore[operator]
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


async def _open_dialog(user: User, node: Appliance, service: str, action: str, title: str) -> None:
    """Logged in, on the Services page, the dialog of ``action`` on the service's card."""
    await log_in(user, node.password)
    await user.open("/services")
    await user.should_see(marker=f"service-{service}", retries=30)
    user.find(marker=f"service-{action}-{service}").click()
    await user.should_see(title, retries=20)


def _demo_version(node: Appliance) -> str:
    with node.http() as api:
        entries = api.get("/api/v1/catalog").json()
    return str(next(e["version"] for e in entries if e["name"] == "demo"))


async def test_services_page_shows_roles_health_and_progress(user: User, node: Appliance) -> None:
    with node.http() as api:
        assert api.post("/api/v1/tenants", json={"name": "svc-tenant"}).status_code == 201
        resp = api.post("/api/v1/services", json=SERVICE)
        assert resp.status_code == 202, resp.text
        _until(api, lambda r: r.json()["state"] == "ready", "the service to be ready")
    try:
        await log_in(user, node.password)
        await user.open("/services")
        await user.should_see(marker="service-ui-svc", retries=30)
        await user.should_see("web 2/2")
        await user.should_see("tenant svc-tenant")
        await user.should_see("web: running (no health check: the domain's state only)")
        await user.should_see(f"Catalog entries: web: demo v{_demo_version(node)}")
        await user.should_see("ui-svc-web-2")
        await user.should_see("deploy (done)")
        await user.should_see("ready")
        # A replica's page names its service, and its Delete is the service's.
        await user.open("/vms/ui-svc-web-1")
        await user.should_see("ui-svc, role web (a replica: the service deletes it)", retries=30)
        delete = user.find(marker="vm-action-delete").elements.pop()
        assert not delete.enabled
    finally:
        with node.http() as api:
            _remove(api, "ui-svc", "svc-tenant")


async def test_a_failed_deploy_says_so_on_its_card(user: User, node: Appliance) -> None:
    # Nothing listens on port 1: the health check never passes; the deploy rolls back.
    health = {"kind": "tcp", "port": 1, "timeout_s": 0.5}
    role = {"name": "web", "catalog": "demo", "health": health}
    with node.http() as api:
        assert api.post("/api/v1/tenants", json={"name": "bad-tenant"}).status_code == 201
        service = {"service": {"name": "bad-svc", "roles": [role]}, "tenant": "bad-tenant"}
        assert api.post("/api/v1/services", json=service).status_code == 202
        _until(api, lambda r: r.json()["state"] == "failed", "the deploy to fail", "bad-svc")
    try:
        await log_in(user, node.password)
        await user.open("/services")
        await user.should_see(marker="service-bad-svc", retries=30)
        await user.should_see("deploy (failed: the message above says why)")
        await user.should_see("bad-svc-web-1 is not healthy", retries=5)
        await user.should_not_see("deploy (done)")
    finally:
        with node.http() as api:
            _remove(api, "bad-svc", "bad-tenant")


async def test_a_service_deploys_from_the_catalog_with_its_declared_values(
    user: User, node: Appliance
) -> None:
    with node.http() as api:
        assert api.post("/api/v1/tenants", json={"name": "form-tenant"}).status_code == 201
    try:
        await log_in(user, node.password)
        await user.open("/services")
        user.find(marker="deploy-open").click()
        await user.should_see(marker="deploy-appliance", retries=30)
        user.find(kind=ui.select, marker="deploy-appliance").elements.pop().value = "demo"
        await user.should_see("the model the guest reports it serves")
        user.find(kind=ui.select, marker="deploy-tenant").elements.pop().value = "form-tenant"
        user.find(kind=ui.input, marker="deploy-name").elements.pop().value = "form-svc"
        model = user.find(kind=ui.input, marker="deploy-value-model").elements.pop()
        model.value = "not a model"
        user.find(marker="deploy-submit").click()
        # Refused before anything is made, at the value's own input; the form stays.
        for _ in range(50):
            if model.error:
                break
            await asyncio.sleep(0.1)
        assert "invalid_value" in (model.error or "")
        model.value = "llama-3-8b"
        user.find(marker="deploy-submit").click()
        await user.should_see("Deploying service form-svc", retries=30)
        with node.http() as api:
            _until(
                api, lambda r: r.json()["state"] == "ready", "the service to be ready", "form-svc"
            )
            role = api.get("/api/v1/services/form-svc").json()["roles"][0]
            assert (role["name"], role["count"]) == ("app", 1)
        await user.should_see(marker="service-form-svc", retries=30)
    finally:
        with node.http() as api:
            _remove(api, "form-svc", "form-tenant")


async def test_a_role_scales_and_the_service_is_removed_from_its_card(
    user: User, node: Appliance
) -> None:
    with node.http() as api:
        assert api.post("/api/v1/tenants", json={"name": "act-tenant"}).status_code == 201
        assert api.put("/api/v1/tenants/act-tenant/quotas", json={"vms": 2}).is_success
        service = {**SERVICE, "tenant": "act-tenant"}
        service["service"] = {**SERVICE["service"], "name": "act-svc"}  # type: ignore[dict-item]
        assert api.post("/api/v1/services", json=service).status_code == 202
        _until(api, lambda r: r.json()["state"] == "ready", "the service to be ready", "act-svc")
    try:
        await _open_dialog(user, node, "act-svc", "scale", "Scale a role of act-svc")
        count = user.find(kind=ui.number, marker="scale-count").elements.pop()
        assert count.value == 2  # the role's count now
        count.value = 3
        user.find(marker="scale-submit").click()
        # Over the tenant's quota: refused in the dialog, which stays open as it was.
        error = user.find(kind=ui.label, marker="scale-error").elements.pop()
        for _ in range(50):
            if error.text:
                break
            await asyncio.sleep(0.1)
        assert "quota" in error.text and count.value == 3
        count.value = 1
        user.find(marker="scale-submit").click()
        await user.should_see("Scaling act-svc web to 1", retries=30)
        with node.http() as api:
            _until(
                api,
                lambda r: r.json()["state"] == "ready" and r.json()["roles"][0]["count"] == 1,
                "the role to be scaled to 1",
                "act-svc",
            )
        await user.should_see("web 1/1", retries=30)

        user.find(marker="service-remove-act-svc").click()
        await user.should_see("Remove service act-svc?", retries=20)
        user.find(marker="confirm-typed").type("act-svc")
        user.find(marker="confirm-yes").click()
        await user.should_see("Removing service act-svc", retries=30)
        with node.http() as api:
            _until(api, lambda r: r.status_code == 404, "the service to be removed", "act-svc")
        await user.should_not_see(marker="service-act-svc", retries=30)
    finally:
        with node.http() as api:
            _remove(api, "act-svc", "act-tenant")


async def test_a_role_is_updated_from_its_card_after_its_plan_is_shown(
    user: User, node: Appliance
) -> None:
    with node.http() as api:
        assert api.post("/api/v1/tenants", json={"name": "upd-tenant"}).status_code == 201
        role = {"name": "web", "catalog": "demo", "count": 2, "values": {"model": "m-1"}}
        service = {"service": {"name": "upd-svc", "roles": [role]}, "tenant": "upd-tenant"}
        assert api.post("/api/v1/services", json=service).status_code == 202
        _until(api, lambda r: r.json()["state"] == "ready", "the service to be ready", "upd-svc")
    try:
        await _open_dialog(user, node, "upd-svc", "update", "Update a role of upd-svc")
        await user.should_see(marker="update-value-model", retries=20)
        await user.should_see(f"Runs demo v{_demo_version(node)}, as the catalog has it.")
        model = user.find(kind=ui.input, marker="update-value-model").elements.pop()
        assert model.value == "m-1"  # the role's value as set now
        # Unchanged: refused in the dialog, which stays open.
        user.find(marker="update-dry-run").click()
        error = user.find(kind=ui.label, marker="update-error").elements.pop()
        for _ in range(50):
            if error.text:
                break
            await asyncio.sleep(0.1)
        assert "nothing_to_update" in error.text

        model.value = "m-2"
        user.find(marker="update-dry-run").click()
        await user.should_see("at least 2 healthy at every moment", retries=30)
        await user.should_see("1. make new replica 1")
        await user.should_see("3. delete old replica 1")
        with node.http() as api:  # a plan changes nothing
            view = api.get("/api/v1/services/upd-svc").json()
            assert view["state"] == "ready" and view["roles"][0]["values"] == {"model": "m-1"}
        user.find(marker="update-submit").click()
        await user.should_see("Updating upd-svc web", retries=30)
        with node.http() as api:
            _until(
                api,
                lambda r: (
                    r.json()["state"] == "ready"
                    and r.json()["roles"][0]["values"] == {"model": "m-2"}
                ),
                "the role to be updated",
                "upd-svc",
            )
            replicas = api.get("/api/v1/services/upd-svc").json()["roles"][0]["replicas"]
            assert [r["generation"] for r in replicas] == [1, 1]
        await user.should_see("update (done)", retries=30)
    finally:
        with node.http() as api:
            _remove(api, "upd-svc", "upd-tenant")


async def test_a_service_the_registry_made_says_so_on_its_card(user: User, node: Appliance) -> None:
    with node.http() as api:
        assert api.post("/api/v1/tenants", json={"name": "fleet-tenant"}).status_code == 201
        made = api.post("/api/v1/sync/agent-token", json={"name": "ui-test-agent"})
        agent = {"Authorization": f"Bearer {made.json()['token']}"}
        role = {"name": "web", "catalog": "demo"}
        document = {
            "kind": "services",
            "etag": '"services-1"',
            "version": 1,
            "source": "group:tier=edge",
            "document": {
                "services": {"fleet-svc": {"tenant": "fleet-tenant", "service": {"roles": [role]}}}
            },
        }
        resp = api.post("/api/v1/desired/services", headers=agent, json=document)
        assert resp.status_code == 200, resp.text
        _until(api, lambda r: r.json()["state"] == "ready", "the service to be ready", "fleet-svc")
        local = {**SERVICE, "tenant": "fleet-tenant"}
        local["service"] = {**SERVICE["service"], "name": "local-svc"}  # type: ignore[dict-item]
        assert api.post("/api/v1/services", json=local).status_code == 202
    try:
        await log_in(user, node.password)
        await user.open("/services")
        await user.should_see(marker="service-managed-fleet-svc", retries=30)
        await user.should_see(marker="service-local-svc", retries=30)
        await user.should_not_see(marker="service-managed-local-svc")
    finally:
        with node.http() as api:
            # Dropped from the document: the node removes it, as the registry would ask.
            document = {**document, "etag": '"services-2"', "version": 2}
            document["document"] = {"services": {}}
            assert api.post("/api/v1/desired/services", headers=agent, json=document).is_success
            _until(api, lambda r: r.status_code == 404, "the service to be removed", "fleet-svc")
            _remove(api, "local-svc", "fleet-tenant")
