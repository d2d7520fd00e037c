"""The Services page in NiceGUI's User simulation against a real appliance process."""

from __future__ import annotations

import time

import httpx
import pytest
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


def _until(api: httpx.Client, done: object, what: str) -> None:
    end = time.monotonic() + 30
    while time.monotonic() < end:
        resp = api.get("/api/v1/services/ui-svc")
        if done(resp):  # type: ignore[operator]
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


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
        await user.should_see("ui-svc-web-2")
        await user.should_see("deploy (done)")
        await user.should_see("ready")
    finally:
        with node.http() as api:
            api.delete("/api/v1/services/ui-svc")
            _until(api, lambda r: r.status_code == 404, "the service to be removed")
            api.delete("/api/v1/tenants/svc-tenant")
