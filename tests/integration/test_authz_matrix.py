"""Who may call which route: every route of the OpenAPI document and every role, on an
object of the caller's own tenant and on another tenant's.

The expected statuses are written once, in ``MATRIX``. A route without a row fails
the test, so a new route cannot ship without someone deciding who may call it.
Columns, in order: anonymous, infra-admin, infra viewer (no tenant), tenant-admin,
tenant-user and viewer (all three of tenant ``acme``), sync-agent. A row's second
string, where there is one, is the same request on tenant ``other``'s object.

Each request runs on the same node with its objects put back first (a VM per tenant,
a VNet per tenant, a user per tenant, a token to revoke), so the order of the cases
does not matter.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from litestar.testing import TestClient

from appliance.api.app import create_app
from appliance.context import Appliance
from appliance.services.auth import Principal, Role
from appliance.store.models import Service, Token, User, Vm
from tests.support.appliance import admin_password, built
from towerbox_core.api.services import ServiceDeployRequest
from towerbox_core.api.tenants import QuotasUpdate

ROLES = (
    "anonymous",
    "infra-admin",
    "infra-viewer",
    "tenant-admin",
    "tenant-user",
    "viewer",
    "sync-agent",
)
PASSWORD = "long-enough-password"
_METHODS = ("get", "put", "post", "delete", "patch")

# (method, path): (statuses on the own tenant's object, on the other tenant's or None).
MATRIX: dict[tuple[str, str], tuple[str, str | None]] = {
    ("DELETE", "/api/v1/gpus/claims/{name}"): ("401 404 403 404 404 403 403", None),
    # Artifacts are node-wide (every tenant's VMs, the node's bandwidth plan): tenants
    # see their appliances through the catalog instead.
    ("GET", "/api/v1/artifacts"): ("401 200 200 403 403 403 403", None),
    ("GET", "/api/v1/artifacts/fetches"): ("401 200 200 403 403 403 403", None),
    ("GET", "/api/v1/artifacts/plan"): ("401 200 200 403 403 403 403", None),
    ("POST", "/api/v1/artifacts/gc"): ("401 200 403 403 403 403 403", None),
    ("POST", "/api/v1/artifacts/{name}/fetch"): ("401 404 403 403 403 403 403", None),
    # Alerts: everyone sees those about what it may see (a tenant its own VMs); the
    # node has none firing here, so an ack finds nothing.
    ("GET", "/api/v1/alerts"): ("401 200 200 200 200 200 403", None),
    ("POST", "/api/v1/alerts/{alert_id}/ack"): ("401 404 403 404 404 403 403", None),
    ("GET", "/api/v1/prices"): ("401 200 200 200 200 200 403", None),
    ("GET", "/api/v1/usage"): ("401 200 200 200 200 200 403", None),
    # Each caller sees the VMs and slices it may see: tenant-filtered, not refused.
    ("GET", "/api/v1/top"): ("401 200 200 200 200 200 403", None),
    ("GET", "/api/v1/usage.csv"): ("401 200 200 200 200 200 403", None),
    ("POST", "/api/v1/prices"): ("401 201 403 403 403 403 403", None),
    ("DELETE", "/api/v1/prices/{effective_from}"): ("401 404 403 403 403 403 403", None),
    ("DELETE", "/api/v1/gpus/schedules/{name}"): ("401 404 403 403 403 403 403", None),
    ("DELETE", "/api/v1/n6/trunks/{name}"): ("401 409 403 403 403 403 403", None),
    ("DELETE", "/api/v1/n6/vnets/{tenant}/{name}"): (
        "401 204 403 403 403 403 403",
        "401 204 403 403 403 403 403",
    ),
    ("DELETE", "/api/v1/tokens/{token_id}"): ("401 204 404 404 404 404 403", None),
    ("DELETE", "/api/v1/users/{username}"): (
        "401 204 403 204 403 403 403",
        "401 204 403 404 403 403 403",
    ),
    ("DELETE", "/api/v1/vms/{name}"): (
        "401 204 403 204 204 403 403",
        "401 204 403 404 404 403 403",
    ),
    ("DELETE", "/api/v1/services/{name}"): (
        "401 202 403 202 202 403 403",
        "401 202 403 404 404 403 403",
    ),
    ("GET", "/api/v1/services"): ("401 200 200 200 200 200 403", None),
    ("GET", "/api/v1/services/{name}"): (
        "401 200 200 200 200 200 403",
        "401 200 200 404 404 404 403",
    ),
    ("POST", "/api/v1/services"): (
        "401 202 403 202 202 403 403",
        "401 202 403 403 403 403 403",
    ),
    ("POST", "/api/v1/services/{name}/roles/{role}/scale"): (
        "401 202 403 202 202 403 403",
        "401 202 403 404 404 403 403",
    ),
    # A dry run is a read, so another tenant's viewer is told "absent" before "read-only".
    ("POST", "/api/v1/services/{name}/update"): (
        "401 202 403 202 202 403 403",
        "401 202 403 404 404 404 403",
    ),
    ("GET", "/api/v1/auth/me"): ("401 200 200 200 200 200 403", None),
    ("GET", "/api/v1/catalog"): ("401 200 200 200 200 200 403", None),
    ("GET", "/api/v1/catalog/{name}"): ("401 200 200 200 200 200 403", None),
    ("GET", "/api/v1/desired"): ("401 200 403 403 403 403 403", None),
    ("GET", "/api/v1/gpus"): ("401 200 200 403 403 403 403", None),
    ("GET", "/api/v1/gpus/claims"): ("401 200 200 200 200 200 403", None),
    ("GET", "/api/v1/gpus/layouts"): ("401 200 200 403 403 403 403", None),
    ("GET", "/api/v1/gpus/schedules"): ("401 200 200 403 403 403 403", None),
    ("GET", "/api/v1/gpus/{uuid}"): ("401 200 200 403 403 403 403", None),
    ("GET", "/api/v1/gpus/{uuid}/profiles"): ("401 200 200 403 403 403 403", None),
    ("GET", "/api/v1/host"): ("401 200 200 403 403 403 403", None),
    ("GET", "/api/v1/journal"): ("401 200 200 403 403 403 200", None),
    ("GET", "/api/v1/journal/summary"): ("401 200 200 403 403 403 200", None),
    ("GET", "/api/v1/journal/history"): ("401 200 200 403 403 403 403", None),
    ("GET", "/api/v1/n6/sessions"): ("401 409 409 409 409 409 403", None),
    ("GET", "/api/v1/n6/state"): ("401 200 200 200 200 200 403", None),
    ("GET", "/api/v1/n6/status"): ("401 200 200 403 403 403 403", None),
    ("GET", "/api/v1/n6/trunks"): ("401 200 200 403 403 403 403", None),
    ("GET", "/api/v1/n6/upf-config"): ("401 200 403 403 403 403 403", None),
    ("GET", "/api/v1/n6/vnets"): ("401 200 200 200 200 200 403", None),
    ("GET", "/api/v1/n6/vnets/{tenant}/{name}"): (
        "401 200 200 200 200 200 403",
        "401 200 200 404 404 404 403",
    ),
    ("GET", "/api/v1/sync/status"): ("401 200 200 403 403 403 200", None),
    ("GET", "/api/v1/tenants"): ("401 200 200 200 200 200 403", None),
    ("GET", "/api/v1/tenants/{name}"): (
        "401 200 200 200 200 200 403",
        "401 200 200 404 404 404 403",
    ),
    ("GET", "/api/v1/tenants/{name}/vm-options"): (
        "401 200 200 200 200 200 403",
        "401 200 200 404 404 404 403",
    ),
    ("GET", "/api/v1/tokens"): ("401 200 200 200 200 200 403", None),
    ("GET", "/api/v1/users"): ("401 200 403 200 403 403 403", None),
    ("GET", "/api/v1/vms"): ("401 200 200 200 200 200 403", None),
    ("GET", "/api/v1/vms/{name}"): ("401 200 200 200 200 200 403", "401 200 200 404 404 404 403"),
    ("GET", "/api/v1/vms/{name}/console"): (
        "401 200 200 200 200 200 403",
        "401 200 200 404 404 404 403",
    ),
    ("GET", "/api/v1/vms/{name}/stats"): (
        "401 200 200 200 200 200 403",
        "401 200 200 404 404 404 403",
    ),
    ("GET", "/healthz"): ("200 200 200 200 200 200 200", None),
    # Everyone hears of what they may see; the sync agent reads the journal instead.
    ("GET", "/api/v1/events"): ("401 200 200 200 200 200 403", None),
    ("GET", "/metrics"): ("401 200 200 403 403 403 403", None),
    ("PATCH", "/api/v1/n6/vnets/{tenant}/{name}"): (
        "401 200 403 403 403 403 403",
        "401 200 403 403 403 403 403",
    ),
    ("POST", "/api/v1/auth/login"): ("401 401 401 401 401 401 401", None),
    ("POST", "/api/v1/auth/logout"): ("401 204 204 204 204 204 403", None),
    ("POST", "/api/v1/desired/{kind}"): ("401 200 403 403 403 403 200", None),
    ("POST", "/api/v1/gpus/claims"): ("401 409 403 409 409 403 403", None),
    ("POST", "/api/v1/gpus/{uuid}/apply"): ("401 200 403 403 403 403 403", None),
    ("POST", "/api/v1/gpus/{uuid}/mig-mode"): ("401 200 403 403 403 403 403", None),
    ("POST", "/api/v1/gpus/{uuid}/plan"): ("401 200 200 403 403 403 403", None),
    ("POST", "/api/v1/journal/ack"): ("401 200 403 403 403 403 200", None),
    ("POST", "/api/v1/n6/apply"): ("401 200 403 403 403 403 403", None),
    ("POST", "/api/v1/n6/plan"): ("401 200 403 403 403 403 403", None),
    ("POST", "/api/v1/n6/vnets"): ("401 201 403 403 403 403 403", "401 201 403 403 403 403 403"),
    ("POST", "/api/v1/sync/agent-token"): ("401 201 403 403 403 403 403", None),
    ("POST", "/api/v1/tenants"): ("401 201 403 403 403 403 403", None),
    ("POST", "/api/v1/tokens"): ("401 201 201 201 201 201 403", None),
    ("POST", "/api/v1/users"): ("401 201 403 201 403 403 403", "401 201 403 403 403 403 403"),
    ("POST", "/api/v1/vms"): ("401 201 403 201 201 403 403", "401 201 403 403 403 403 403"),
    ("POST", "/api/v1/vms/{name}/reboot"): (
        "401 409 403 409 409 403 403",
        "401 409 403 404 404 403 403",
    ),
    ("POST", "/api/v1/vms/{name}/shutdown"): (
        "401 200 403 200 200 403 403",
        "401 200 403 404 404 403 403",
    ),
    ("POST", "/api/v1/vms/{name}/start"): (
        "401 200 403 200 200 403 403",
        "401 200 403 404 404 403 403",
    ),
    ("POST", "/api/v1/vms/{name}/stop"): (
        "401 200 403 200 200 403 403",
        "401 200 403 404 404 403 403",
    ),
    ("PUT", "/api/v1/desired/{kind}/overrides"): ("401 200 403 403 403 403 403", None),
    ("PUT", "/api/v1/gpus/schedules/{name}"): ("401 404 403 403 403 403 403", None),
    ("PUT", "/api/v1/n6/trunks/{name}"): ("401 200 403 403 403 403 403", None),
    ("PUT", "/api/v1/sync/status"): ("401 200 403 403 403 403 200", None),
    ("PUT", "/api/v1/tenants/{name}/grants"): (
        "401 200 403 403 403 403 403",
        "401 200 403 403 403 403 403",
    ),
    ("PUT", "/api/v1/tenants/{name}/quotas"): (
        "401 200 403 403 403 403 403",
        "401 200 403 403 403 403 403",
    ),
}


# -- the node, its people and its objects ---------------------------------------------


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Appliance]:
    app = built(
        tmp_path,
        TOWERBOX_GPU_BACKEND="simulated",
        TOWERBOX_N6_BACKEND="simulated",
        # Every request here comes with a token never seen before, which the rate limit
        # charges to the one address; the limit has its own tests.
        TOWERBOX_API_RATE_PER_S="1000000",
        TOWERBOX_API_RATE_BURST="1000000",
    )
    root = _root(app)
    generous = QuotasUpdate(vms=100, vcpus=400, memory_mib=400_000, disk_gib=4000, vnets=20)
    for tenant in ("acme", "other"):
        app.auth.create_tenant(tenant, "")
        app.tenants.set_quotas(root, tenant, generous)
    app.auth.create_user("i-viewer", PASSWORD, Role.VIEWER, None)
    app.auth.create_user("t-admin", PASSWORD, Role.TENANT_ADMIN, "acme")
    app.auth.create_user("t-user", PASSWORD, Role.TENANT_USER, "acme")
    app.auth.create_user("t-viewer", PASSWORD, Role.VIEWER, "acme")
    app.n6.put_trunk(root, {"name": "br-n6", "kind": "ovs", "ports": ["n6up"]})
    # A closed hub ends an event stream right after its first event, so that route's
    # case is one request like the others; who may open it is decided before that.
    app.events.close()
    yield app
    # Leave the shared libvirt test driver as we found it.
    app.services.runner.wait_idle(60)
    for vm in Vm.select():
        app.vms.delete(_root(app), vm.name)
    app.close()


@pytest.fixture
def client(node: Appliance) -> Iterator[TestClient[Any]]:
    with TestClient(create_app(node)) as client:
        yield client


def _root(app: Appliance) -> Principal:
    admin = User.get(User.username == "admin")
    return Principal(admin.id, "admin", Role.INFRA_ADMIN, None, 0)


def _restore(app: Appliance) -> dict[str, str]:
    """Put back what a case may have changed; the values for the path's placeholders."""
    root = _root(app)
    for tenant in ("acme", "other"):
        if not Vm.select().where(Vm.name == f"{tenant}-vm").exists():
            app.vms.create(root, _vm_request(f"{tenant}-vm", tenant))
        if not any(v["tenant"] == tenant for v in app.n6.list_vnets(root)):
            app.n6.create_vnet(root, _vnet(tenant))
        if not User.select().where(User.username == f"{tenant}-dev").exists():
            app.auth.create_user(f"{tenant}-dev", PASSWORD, Role.TENANT_USER, tenant)
    app.services.runner.wait_idle(60)
    for tenant in ("acme", "other"):
        if not Service.select().where(Service.name == f"{tenant}-svc").exists():
            app.services.deploy(root, _service_request(f"{tenant}-svc", tenant))
    app.services.runner.wait_idle(60)
    victim = app.auth.create_api_token(root, "victim", None)
    token_id = Token.get(Token.token_hash == _hash(victim)).id
    gpu = app.gpus.list_gpus()[0].uuid
    return {"token_id": str(token_id), "uuid": gpu}


def _hash(token: str) -> str:
    from towerbox_core.secret_files import hash_token

    return hash_token(token)


def _vm_request(name: str, tenant: str) -> Any:
    from towerbox_core.api.vms import VmCreateRequest

    return VmCreateRequest(name=name, appliance="demo", spec={"tenant": tenant})


def _service(name: str) -> dict[str, Any]:
    # A role of no replicas: every service route works on it without making VMs.
    return {"name": name, "roles": [{"name": "web", "catalog": "demo", "count": 0}]}


def _service_request(name: str, tenant: str) -> ServiceDeployRequest:
    return msgspec.convert({"service": _service(name), "tenant": tenant}, ServiceDeployRequest)


def _vnet(tenant: str) -> dict[str, Any]:
    n = 1 if tenant == "acme" else 2
    return {
        "tenant": tenant,
        "name": "llm",
        "trunk": "br-n6",
        "vlan": 100 + n,
        "subnet": f"10.10{n}.0.0/24",
        "gateway": f"10.10{n}.0.1",
        "ue_pools": [f"10.4{n}.0.0/16"],
    }


def _headers(app: Appliance, client: TestClient[Any], role: str) -> dict[str, str]:
    if role == "anonymous":
        return {}
    if role == "sync-agent":
        token = app.auth.sync_agent_token(_root(app), "agent")
    else:
        user, password = {
            "infra-admin": ("admin", admin_password(app.cfg)),
            "infra-viewer": ("i-viewer", PASSWORD),
            "tenant-admin": ("t-admin", PASSWORD),
            "tenant-user": ("t-user", PASSWORD),
            "viewer": ("t-viewer", PASSWORD),
        }[role]
        token, _ = app.auth.login(user, password)
    return {"Authorization": f"Bearer {token}"}


# -- one request per case ---------------------------------------------------------------

Body = Callable[[str, str], Any]  # (role, tenant) -> JSON body


def _body(method: str, path: str, role: str, tenant: str) -> Any:
    unique = role.replace("-", "")
    bodies: dict[tuple[str, str], Any] = {
        ("POST", "/api/v1/auth/login"): {"username": "nobody", "password": "x" * 12},
        ("POST", "/api/v1/vms"): {
            "name": f"new-{unique}-{tenant}",
            "appliance": "demo",
            "spec": {"tenant": tenant},
        },
        ("POST", "/api/v1/vms/{name}/shutdown"): {"timeout_s": 1},
        ("POST", "/api/v1/services"): {
            "service": _service(f"s-{unique}-{tenant}"),
            "tenant": tenant,
        },
        ("POST", "/api/v1/services/{name}/roles/{role}/scale"): {"count": 0},
        ("POST", "/api/v1/services/{name}/update"): {"role": "web", "values": {"model": unique}},
        ("POST", "/api/v1/tokens"): {"name": f"t-{unique}"},
        ("POST", "/api/v1/users"): {
            "username": f"u-{unique}-{tenant}",
            "password": PASSWORD,
            "role": "tenant-user",
            "tenant": tenant,
        },
        ("POST", "/api/v1/tenants"): {"name": f"ten-{unique}"},
        ("POST", "/api/v1/gpus/claims"): {"name": f"c-{unique}", "profile": "1g.10gb"},
        ("POST", "/api/v1/prices"): {
            "effective_from": f"2031-01-01T{ROLES.index(role):02d}:00:00+00:00",
            "currency": "EUR",
            "rates": {"vcpu": 0.1},
        },
        ("POST", "/api/v1/gpus/{uuid}/plan"): {"counts": {"1g.10gb": 1}},
        ("POST", "/api/v1/artifacts/gc"): {"dry_run": True},
        ("POST", "/api/v1/gpus/{uuid}/apply"): {"counts": {"1g.10gb": 1}},
        ("POST", "/api/v1/gpus/{uuid}/mig-mode"): {"enabled": True},
        ("PUT", "/api/v1/gpus/schedules/{name}"): {
            "gpu": "GPU-none",
            "cron": "0 22 * * *",
            "target": {"counts": {"1g.10gb": 1}},
        },
        ("POST", "/api/v1/n6/vnets"): {
            **_vnet(tenant),
            "name": f"v{unique}",
            "vlan": 300 + ROLES.index(role) + (0 if tenant == "acme" else 10),
            "subnet": f"10.{200 + ROLES.index(role)}.{1 if tenant == 'acme' else 2}.0/24",
            "gateway": f"10.{200 + ROLES.index(role)}.{1 if tenant == 'acme' else 2}.1",
            "ue_pools": [],
        },
        ("PATCH", "/api/v1/n6/vnets/{tenant}/{name}"): {"mtu": 1400},
        ("PUT", "/api/v1/n6/trunks/{name}"): {"kind": "ovs", "ports": ["n6up"]},
        ("PUT", "/api/v1/tenants/{name}/quotas"): {"vms": 100},
        ("PUT", "/api/v1/tenants/{name}/grants"): {"isolated_cores": False},
        ("POST", "/api/v1/journal/ack"): {"seq": 0},
        ("PUT", "/api/v1/sync/status"): {
            "state": "online",
            "registry_url": "https://registry.example",
            "site": "s1",
            "queued": 0,
            "acked_seq": 0,
        },
        ("POST", "/api/v1/sync/agent-token"): {"name": f"a-{unique}"},
        ("POST", "/api/v1/desired/{kind}"): {
            "kind": "gpu",
            "etag": "e1",
            "version": 1,
            "source": "site",
            "document": {},
        },
        ("PUT", "/api/v1/desired/{kind}/overrides"): {"object_id": "none", "local_override": True},
    }
    return bodies.get((method, path))


def _path(template: str, tenant: str, ids: dict[str, str]) -> str:
    values = {
        "name": f"{tenant}-vm",
        "tenant": tenant,
        "username": f"{tenant}-dev",
        "kind": "gpu",
        "effective_from": "2031-06-01T00:00:00Z",  # no such version
        "alert_id": 999_999,  # no such alert: who gets 404 may ack, 403 may not
        **ids,
    }
    if template.startswith("/api/v1/services/"):
        values["name"] = f"{tenant}-svc"
        values["role"] = "web"
    if template.startswith("/api/v1/n6/vnets/"):
        values["name"] = "llm"
    elif template.startswith("/api/v1/n6/trunks/"):
        values["name"] = "br-n6"
    elif template.startswith("/api/v1/gpus/claims/"):
        values["name"] = "no-such-claim"
    elif template.startswith("/api/v1/gpus/schedules/"):
        values["name"] = "night"
    elif template.startswith("/api/v1/tenants/"):
        values["name"] = tenant
    elif template.startswith("/api/v1/catalog/"):
        values["name"] = "demo"
    elif template.startswith("/api/v1/artifacts/"):
        values["name"] = "no-such-artifact"  # a fetch of a real one would go out
    return template.format(**values)


def _operations(client: TestClient[Any], headers: dict[str, str]) -> list[tuple[str, str]]:
    doc = client.get("/api/schema/openapi.json", headers=headers).json()
    return sorted(
        (method.upper(), path)
        for path, item in doc["paths"].items()
        for method in _METHODS
        if method in item
    )


def _observe(node: Appliance, client: TestClient[Any], method: str, path: str, tenant: str) -> str:
    statuses = []
    for role in ROLES:
        ids = _restore(node)
        resp = client.request(
            method,
            _path(path, tenant, ids),
            headers=_headers(node, client, role),
            json=_body(method, path, role, tenant),
        )
        statuses.append(str(resp.status_code))
    return " ".join(statuses)


def test_every_route_has_a_row_and_every_role_gets_its_answer(
    node: Appliance, client: TestClient[Any]
) -> None:
    admin = _headers(node, client, "infra-admin")
    operations = _operations(client, admin)
    observed: dict[tuple[str, str], tuple[str, str | None]] = {}
    for method, path in operations:
        own = _observe(node, client, method, path, "acme")
        tenant_scoped = "/vms/{name}" in path or "/tenants/{name}" in path
        tenant_scoped = tenant_scoped or "/services/{name}" in path
        tenant_scoped = tenant_scoped or "{tenant}" in path or "{username}" in path
        tenant_scoped = tenant_scoped or (method, path) in {
            ("POST", "/api/v1/vms"),
            ("POST", "/api/v1/users"),
            ("POST", "/api/v1/n6/vnets"),
            ("POST", "/api/v1/services"),
        }
        other = _observe(node, client, method, path, "other") if tenant_scoped else None
        observed[(method, path)] = (own, other)
    if os.environ.get("TOWERBOX_AUTHZ_PRINT"):
        for key, (own, other) in observed.items():
            print(f"    {key!r}: ({own!r}, {other!r}),")  # noqa: T201
    missing = sorted(set(observed) - set(MATRIX))
    assert not missing, f"routes with no row in MATRIX: {missing}"
    stale = sorted(set(MATRIX) - set(observed))
    assert not stale, f"rows in MATRIX for routes that do not exist: {stale}"
    wrong = {k: (observed[k], MATRIX[k]) for k in observed if observed[k] != MATRIX[k]}
    assert not wrong, "\n".join(f"{k}: got {got}, want {want}" for k, (got, want) in wrong.items())
