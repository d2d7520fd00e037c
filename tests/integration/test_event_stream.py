"""GET /api/v1/events on a real daemon over real HTTP: entries other calls commit
reach an open stream, a tenant hears only of its own objects, a stream resumes from
its last seq, nobody unauthenticated listens, and a stopping daemon ends its streams."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.events import reading
from tests.ui.stack import Appliance, appliance
from towerbox_core.sse import SseEvent

PASSWORD = "long-enough-password"


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Appliance]:
    with appliance(tmp_path / "node") as node, node.http() as api:
        for tenant in ("acme", "beta"):
            api.post("/api/v1/tenants", json={"name": tenant}).raise_for_status()
            user = {
                "username": f"{tenant}-admin",
                "password": PASSWORD,
                "role": "tenant-admin",
                "tenant": tenant,
            }
            api.post("/api/v1/users", json=user).raise_for_status()
        yield node
        for vm in api.get("/api/v1/vms").json():
            api.delete(f"/api/v1/vms/{vm['name']}", params={"force": "true"})


def _login(node: Appliance, username: str) -> str:
    resp = httpx.post(
        f"{node.url}/api/v1/auth/login",
        json={"username": username, "password": PASSWORD},
        timeout=30,
    )
    resp.raise_for_status()
    return str(resp.json()["token"])


def _about(event: SseEvent, vm: str, kind: str | None = None) -> bool:
    if event.event != "journal":
        return False
    entry = event.json()
    state = entry["state"] if isinstance(entry["state"], dict) else {}
    named = state.get("name") == vm or (state.get("spec") or {}).get("name") == vm
    return named and (kind is None or entry["kind"] == kind)


def test_entries_reach_the_stream_and_each_tenant_hears_only_of_its_own(node: Appliance) -> None:
    acme = _login(node, "acme-admin")
    with (
        node.http() as api,
        reading(node.url, node.token()) as everything,
        reading(node.url, acme) as acme_only,
    ):
        assert everything.status == acme_only.status == 200
        hello = everything.until(lambda e: e.event == "hello")
        assert isinstance(hello.json()["head"], int)
        for name, tenant in (("b-vm", "beta"), ("a-vm", "acme")):
            body = {"name": name, "appliance": "demo", "spec": {"tenant": tenant}, "start": True}
            api.post("/api/v1/vms", json=body).raise_for_status()
        api.post("/api/v1/vms/b-vm/stop").raise_for_status()
        api.post("/api/v1/vms/a-vm/stop").raise_for_status()

        stopped = acme_only.until(lambda e: _about(e, "a-vm", "vm.stop"))
        assert stopped.id == str(stopped.json()["seq"])
        assert stopped.json()["actor"]["user"] == "admin"
        everything.until(lambda e: _about(e, "a-vm", "vm.stop"))
        # The admin heard of both VMs, in seq order; acme of its own only.
        assert any(_about(e, "b-vm", "vm.stop") for e in everything.seen)
        seqs = [int(e.id) for e in everything.seen if e.id]
        assert seqs == sorted(seqs)
        assert any(_about(e, "a-vm", "vm.created") for e in acme_only.seen)
        assert not any(_about(e, "b-vm") for e in acme_only.seen)
        assert not any("b-vm" in e.data for e in acme_only.seen)


def test_a_stream_resumes_from_its_last_seq(node: Appliance) -> None:
    with node.http() as api:
        head = api.get("/api/v1/journal", params={"limit": 1}).json()["head"]
        body = {"name": "r-vm", "appliance": "demo", "spec": {"tenant": "acme"}}
        api.post("/api/v1/vms", json=body).raise_for_status()
        with reading(node.url, node.token(), last_event_id=head) as resumed:
            created = resumed.until(lambda e: _about(e, "r-vm", "vm.created"), timeout=10)
            assert int(created.id or 0) > head
        with reading(node.url, node.token(), last_event_id=int(created.id or 0)) as later:
            # From the newest seq on, nothing is replayed: the first journal event about
            # the VM is new (the node's own jobs may journal in between, e.g. metering).
            api.post("/api/v1/vms/r-vm/start").raise_for_status()
            first = later.until(lambda e: e.event == "journal" and _about(e, "r-vm"), timeout=10)
            assert first.json()["kind"] != "vm.created"
            assert int(first.id or 0) > int(created.id or 0)


@pytest.mark.parametrize("token", [None, "not-a-token"])
def test_nobody_unauthenticated_listens(node: Appliance, token: str | None) -> None:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    resp = httpx.get(f"{node.url}/api/v1/events", headers=headers, timeout=30)
    assert resp.status_code == 401
    assert resp.json()["code"]


def test_a_stopping_daemon_ends_its_streams(tmp_path: Path) -> None:
    with appliance(tmp_path / "node") as node, reading(node.url, node.token()) as stream:
        stream.until(lambda e: e.event == "hello")
        node.daemon.proc.send_signal(signal.SIGTERM)
        # Without ending its streams uvicorn would wait for their connections forever.
        assert stream.ended(20), "the stream outlived the daemon's stop"
        assert node.daemon.proc.wait(timeout=20) == 0
