"""The VM API end to end on the libvirt test driver: lifecycle, auth, bad input."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import libvirt
import pytest
from litestar.testing import TestClient

from appliance.context import Appliance
from appliance.store.models import Vm
from tests.support.appliance import admin_password, api_client, built, login
from towerbox_core.errors import BackendError


@pytest.fixture
def appliance(tmp_path: Path) -> Iterator[Appliance]:
    app = built(tmp_path)
    yield app
    # Leave the shared test driver as we found it.
    for vm in Vm.select():
        app.vms.delete(_root(app), vm.name)
    app.close()


def _root(app: Appliance) -> Any:
    token = app.cfg.cli_token_file.read_text().strip()
    return app.auth.authenticate(token)


@pytest.fixture
def client(appliance: Appliance) -> Iterator[TestClient[Any]]:
    with api_client(appliance) as c:
        c.headers.update(login(c, "admin", admin_password(appliance.cfg)))
        yield c


def _create(client: TestClient[Any], name: str, **body: Any) -> Any:
    body.setdefault("appliance", "demo")
    return client.post("/api/v1/vms", json={"name": name, **body})


def _leftovers(appliance: Appliance, name: str) -> dict[str, Any]:
    conn = libvirt.open("test:///default")
    domains = [d.name() for d in conn.listAllDomains()]
    conn.close()
    return {
        "domain": name in domains,
        "row": Vm.select().where(Vm.name == name).exists(),
        "disks": sorted(p.name for p in appliance.cfg.disk_dir.iterdir()),
        "held": appliance.allocator.held(name),
    }


NOTHING = {"domain": False, "row": False, "disks": [], "held": None}


def test_lifecycle(client: TestClient[Any], appliance: Appliance) -> None:
    resp = _create(client, "demo1", start=True)
    assert resp.status_code == 201, resp.text
    vm = resp.json()
    assert vm["state"] == "running"
    assert vm["spec"]["appliance"] == "demo"
    assert vm["allocation"]["shared_cpus"]

    appliance.monitor_job()
    listed = client.get("/api/v1/vms").json()
    assert [(v["name"], v["state"]) for v in listed] == [("demo1", "running")]
    assert client.get("/api/v1/vms/demo1/stats").json()["current"]["state"] == "running"
    assert client.get("/api/v1/vms/demo1/console").status_code == 200

    assert client.post("/api/v1/vms/demo1/reboot").json()["state"] == "running"
    off = client.post("/api/v1/vms/demo1/shutdown", json={"timeout_s": 1}).json()
    assert off["state"] == "shutoff"
    assert off["desired_state"] == "stopped"
    assert client.post("/api/v1/vms/demo1/start").json()["state"] == "running"
    assert client.post("/api/v1/vms/demo1/stop").json()["state"] == "shutoff"
    assert client.delete("/api/v1/vms/demo1").status_code == 204
    assert client.get("/api/v1/vms/demo1").json()["code"] == "vm_not_found"
    assert _leftovers(appliance, "demo1") == NOTHING

    kinds = [e["kind"] for e in client.get("/api/v1/journal?limit=1000").json()["entries"]]
    for kind in ("vm.created", "vm.start", "vm.reboot", "vm.shutdown", "vm.stop", "vm.deleted"):
        assert kind in kinds


def test_a_vm_never_started_is_journalled_with_its_state(
    client: TestClient[Any], appliance: Appliance
) -> None:
    resp = _create(client, "idle")
    assert resp.status_code == 201, resp.text
    appliance.monitor_job()
    entries = client.get("/api/v1/journal?limit=1000").json()["entries"]
    mine = [e for e in entries if e["object_id"] == resp.json()["id"]]
    # Nothing changes after the create, so no vm.state entry: the create says it.
    assert [e["kind"] for e in mine] == ["vm.created"]
    created = mine[0]["state"]
    assert (created["desired_state"], created["state"]) == ("stopped", "shutoff")
    assert created["spec"]["name"] == "idle"
    assert client.get("/api/v1/vms/idle").json()["state"] == created["state"]


def test_disk_vm_gets_an_overlay_that_delete_removes(
    client: TestClient[Any], appliance: Appliance
) -> None:
    spec = {"vcpus": 2, "memory_mib": 256, "disks": [{"image": "base.qcow2"}, {"size_gib": 1}]}
    resp = client.post("/api/v1/vms", json={"name": "disky", "spec": spec})
    assert resp.status_code == 201, resp.text
    vm_id = resp.json()["id"]
    assert sorted(p.name for p in appliance.cfg.disk_dir.iterdir()) == [
        f"{vm_id}-0.qcow2",
        f"{vm_id}-1.qcow2",
    ]
    assert client.delete("/api/v1/vms/disky").status_code == 204
    assert _leftovers(appliance, "disky") == NOTHING


@pytest.mark.parametrize(
    ("name", "body", "status", "code"),
    [
        ("a<b", {}, 422, "invalid_name"),
        ("a&b", {}, 422, "invalid_name"),
        ("a/b", {}, 422, "invalid_name"),
        ('a"b', {}, 422, "invalid_name"),
        ("a'b", {}, 422, "invalid_name"),
        ("ab\n", {}, 422, "invalid_name"),  # once reached libvirt and came back a 502
        ("x" * 64, {}, 422, "invalid_name"),
        ("ok", {"appliance": "no-such-appliance"}, 422, "unknown_appliance"),
        (
            "ok",
            {"appliance": None, "spec": {"disks": [{"image": "missing.qcow2"}]}},
            422,
            "unknown_image",
        ),
        ("ok", {"spec": {"numa_node": 7}}, 422, "unknown_numa_node"),
        ("ok", {"spec": {"pci_devices": ["0000:99:00.0"]}}, 422, "unknown_pci_device"),
        ("ok", {"spec": {"pci_devices": ["not-pci"]}}, 422, "invalid_pci_address"),
        ("ok", {"spec": {"vcpus": 40, "cpu": {"policy": "pinned"}}}, 409, "insufficient_cpus"),
        (
            "ok",
            {"spec": {"memory_mib": 20480, "hugepages": "1G", "numa_node": 1}},
            409,
            "insufficient_hugepages",
        ),
        ("ok", {"spec": {"vcpus": "four"}}, 422, "invalid_spec"),
        ("ok", {"spec": {"bogus": 1}}, 422, "invalid_spec"),
        ("ok", {"spec": {"tenant": "ghost"}}, 422, "unknown_tenant"),
        ("ok", {"spec": {"nics": [{"kind": "sriov", "pf": "nope0"}]}}, 422, "unknown_sriov_pf"),
        ("ok", {"surprise": True}, 400, "invalid_request"),
        # A body field named like a dependency of the route once answered 500.
        ("ok", {"appliance": ["vllm"]}, 400, "invalid_request"),
    ],
)
def test_bad_input_is_refused_and_nothing_is_made(
    client: TestClient[Any],
    appliance: Appliance,
    name: str,
    body: dict[str, Any],
    status: int,
    code: str,
) -> None:
    resp = _create(client, name, **body)
    assert resp.status_code == status, resp.text
    problem = resp.json()
    assert resp.headers["content-type"].startswith("application/problem+json")
    assert problem["code"] == code
    assert problem["detail"]
    assert _leftovers(appliance, name) == NOTHING
    assert appliance.allocator.usage() == built_usage(appliance)


def built_usage(appliance: Appliance) -> Any:
    # Nothing is held by anyone after a refusal: usage equals a fresh allocator's.
    from appliance.domain.allocator import Allocator

    fresh = Allocator(appliance.host, frozenset({0, 16}))
    return fresh.usage()


def test_one_vm_may_not_have_more_vcpus_than_the_host_has_threads(
    client: TestClient[Any], appliance: Appliance
) -> None:
    threads = len(appliance.host.threads)
    assert threads == 32  # the fixture host: 2 sockets x 8 cores x 2 threads
    # The infra-admin too: no VM this host can run, unpinned or not.
    too_many = _create(client, "wide", spec={"vcpus": threads + 1})
    assert too_many.status_code == 409, too_many.text
    problem = too_many.json()
    assert (problem["code"], problem["field"]) == ("insufficient_cpus", "vcpus")
    assert f"asks for {threads + 1} vCPUs; this host has {threads} CPU threads" in problem["detail"]
    assert (problem["asked_vcpus"], problem["host_threads"]) == (threads + 1, threads)
    assert _leftovers(appliance, "wide") == NOTHING
    # As many as the host has is one VM's most; across VMs vCPUs may be overcommitted.
    for name in ("full1", "full2"):
        made = _create(client, name, spec={"vcpus": threads})
        assert made.status_code == 201, made.text


def test_names_are_unique(client: TestClient[Any]) -> None:
    assert _create(client, "twin").status_code == 201
    resp = _create(client, "twin")
    assert resp.status_code == 409
    assert resp.json()["code"] == "vm_exists"


def test_failure_after_define_undoes_everything(
    client: TestClient[Any], appliance: Appliance, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_: Any, **__: Any) -> None:
        raise OSError("disk full")

    # After the domain is defined, before the row is written.
    monkeypatch.setattr("appliance.services.vms.created_state", broken)
    resp = _create(client, "halfway", spec={"autostart": True})
    assert resp.status_code == 500
    assert resp.json()["code"] == "internal_error"
    assert _leftovers(appliance, "halfway") == NOTHING


def test_pinned_vm_gets_exclusive_cores(client: TestClient[Any]) -> None:
    spec = {
        "vcpus": 4,
        "cpu": {"policy": "pinned", "isolated": True},
        "memory_mib": 1024,
        "hugepages": "2M",
    }
    first = _create(client, "du1", spec=spec).json()
    second = _create(client, "du2", spec=spec).json()
    a, b = first["allocation"], second["allocation"]
    assert len(a["vcpu_pins"]) == 4
    assert not set(a["cpus"]) & set(b["cpus"])
    assert a["emulator_cpus"] and set(a["emulator_cpus"]) <= {0, 16}


def test_every_route_but_health_and_login_needs_a_token(appliance: Appliance) -> None:
    with api_client(appliance) as anon:
        assert anon.get("/healthz").status_code == 200
        app = anon.app
        checked = 0
        for route in app.routes:
            for method in sorted(getattr(route, "methods", set()) - {"OPTIONS", "HEAD"}):
                path = re.sub(r"\{(\w+):int\}", "1", re.sub(r"\{(\w+):str\}", "x", route.path))
                if path in ("/healthz", "/api/v1/auth/login"):
                    continue
                resp = anon.request(method, path)
                assert resp.status_code == 401, (method, path, resp.text)
                assert resp.json()["code"] == "unauthorized"
                checked += 1
        assert checked >= 20
        resp = anon.get("/api/v1/vms", headers={"Authorization": "Bearer tbx_forged"})
        assert resp.status_code == 401
        assert resp.json()["code"] == "invalid_token"


def test_tenants_see_only_their_own(client: TestClient[Any], appliance: Appliance) -> None:
    for tenant in ("acme", "beta"):
        assert client.post("/api/v1/tenants", json={"name": tenant}).status_code == 201
        assert (
            client.post(
                "/api/v1/users",
                json={
                    "username": f"{tenant}-admin",
                    "password": "long-enough-password",
                    "role": "tenant-admin",
                    "tenant": tenant,
                },
            ).status_code
            == 201
        )
    client.post(
        "/api/v1/users",
        json={"username": "watcher", "password": "long-enough-password", "role": "viewer"},
    )
    with api_client(appliance) as other:
        acme = login(other, "acme-admin", "long-enough-password")
        beta = login(other, "beta-admin", "long-enough-password")
        viewer = login(other, "watcher", "long-enough-password")
        made = other.post(
            "/api/v1/vms",
            headers=acme,
            json={"name": "acme-llm", "appliance": "demo", "spec": {"role": "b2b"}},
        )
        assert made.status_code == 201, made.text
        assert made.json()["tenant"] == "acme"
        denied = other.post(
            "/api/v1/vms",
            headers=acme,
            json={"name": "x", "appliance": "demo", "spec": {"tenant": "beta"}},
        )
        assert denied.json()["code"] == "tenant_mismatch"
        denied = other.post(
            "/api/v1/vms",
            headers=acme,
            json={"name": "x", "appliance": "demo", "spec": {"role": "vran"}},
        )
        assert denied.json()["code"] == "role_not_allowed"
        assert [v["name"] for v in other.get("/api/v1/vms", headers=beta).json()] == []
        assert other.get("/api/v1/vms/acme-llm", headers=beta).status_code == 404
        assert other.delete("/api/v1/vms/acme-llm", headers=beta).status_code == 404
        assert other.get("/api/v1/host", headers=beta).status_code == 403
        assert other.get("/api/v1/journal", headers=acme).status_code == 403
        assert [v["name"] for v in other.get("/api/v1/vms", headers=viewer).json()] == ["acme-llm"]
        assert other.post("/api/v1/vms/acme-llm/stop", headers=viewer).json()["code"] == (
            "read_only_role"
        )
        assert other.delete("/api/v1/vms/acme-llm", headers=acme).status_code == 204


def test_node_routes(client: TestClient[Any]) -> None:
    health = client.get("/healthz").json()
    assert health["backends"]["libvirt"]["summary"] == "libvirt: test:///default (simulated)"
    host = client.get("/api/v1/host").json()
    assert host["inventory"]["sockets"] == 2
    catalog = {e["name"]: e for e in client.get("/api/v1/catalog").json()}
    assert {"demo", "vran-du", "upf", "vllm-inference"} <= set(catalog)
    assert catalog["demo"]["image_status"]["present"] is True
    assert client.get("/api/v1/catalog/nope").json()["code"] == "unknown_appliance"
    assert "openapi" in client.get("/api/schema/openapi.json").json()
    _create(client, "m1", start=True)
    text = client.get("/metrics").text
    assert "towerbox_api_request_seconds_bucket" in text
    assert 'route="/api/v1/vms"' in text


def test_metrics_count_the_nodes_vms_not_every_domain_libvirt_has(
    client: TestClient[Any], appliance: Appliance
) -> None:
    conn = libvirt.open("test:///default")
    running = sum(d.isActive() for d in conn.listAllDomains())
    conn.close()
    assert running >= 1  # the test driver's built-in "test" domain, at least
    _create(client, "m2", start=True)
    appliance.monitor_job()
    text = client.get("/metrics").text
    assert 'towerbox_vms{state="running"} 1.0' in text
    Vm.update(observed_state="running").where(Vm.name == "m2").execute()
    conn = libvirt.open("test:///default")
    conn.lookupByName("m2").destroy()
    conn.lookupByName("m2").undefine()
    conn.close()
    appliance.monitor_job()
    text = client.get("/metrics").text
    assert 'towerbox_vms{state="running"} 0.0' in text
    assert 'towerbox_vms{state="missing"} 1.0' in text


def test_shared_vms_move_off_cores_a_pinned_vm_takes(
    client: TestClient[Any], appliance: Appliance
) -> None:
    shared = _create(client, "floater", start=True).json()
    before = set(shared["allocation"]["shared_cpus"])
    pinned = _create(client, "du", spec={"vcpus": 4, "cpu": {"policy": "pinned"}}).json()
    taken = set(pinned["allocation"]["cpus"])
    assert taken <= before
    after = set(client.get("/api/v1/vms/floater").json()["allocation"]["shared_cpus"])
    assert after == before - taken
    conn = libvirt.open("test:///default")
    pins = conn.lookupByUUIDString(shared["id"]).vcpuPinInfo(0)
    host_cpus = conn.getCPUMap()[0]
    conn.close()
    # The test driver's host is smaller than the fixture's: it shows the pool's first CPUs.
    assert {i for i, on in enumerate(pins[0]) if on} == {c for c in after if c < host_cpus}
    assert client.delete("/api/v1/vms/du").status_code == 204
    restored = client.get("/api/v1/vms/floater").json()["allocation"]["shared_cpus"]
    assert set(restored) == before


def test_create_and_start_is_all_or_nothing(
    client: TestClient[Any], appliance: Appliance, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(uuid: str) -> None:
        raise BackendError("no memory for QEMU", code="libvirt_error")

    monkeypatch.setattr(appliance.backend, "start", refuse)
    resp = _create(client, "nostart", start=True)
    assert (resp.status_code, resp.json()["code"]) == (502, "libvirt_error")
    assert _leftovers(appliance, "nostart") == NOTHING
