"""Every N6 apply and repair leaves its result: in the journal and in GET /api/v1/n6/status.

On the simulated backend, whose ``fail_on`` makes a step fail as a refusing host
would; tests/integration/n6/test_datapath_real_ovs.py does the same on real OVS.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from appliance.context import Appliance
from appliance.services.desired_adapters import NODE
from tests.integration.test_n6_api import ACME as VNET
from tests.support.appliance import admin_password, api_client, built, login
from towerbox_core.errors import BackendError
from upf_bridge.backends.simulated import SimulatedBackend
from upf_bridge.model import N6Config, TrunkKind


@pytest.fixture
def node(tmp_path: Path) -> Iterator[tuple[Appliance, TestClient[Any], SimulatedBackend]]:
    app = built(tmp_path, TOWERBOX_N6_BACKEND="simulated")
    with api_client(app) as client:
        client.headers.update(login(client, "admin", admin_password(app.cfg)))
        assert client.post("/api/v1/tenants", json={"name": "acme"}).status_code == 201
        assert client.put("/api/v1/n6/trunks/br-n6", json={"kind": "ovs"}).status_code == 200
        assert client.post("/api/v1/n6/vnets", json=VNET).status_code == 201
        backend = app.n6.backend(TrunkKind.OVS)
        assert isinstance(backend, SimulatedBackend)
        yield app, client, backend
    app.close()


def _kinds(client: TestClient[Any]) -> list[str]:
    entries = client.get("/api/v1/journal?limit=1000&kind=n6.").json()["entries"]
    return [e["kind"] for e in entries if e["kind"] != "n6.trunk_declared"]


def _last(client: TestClient[Any]) -> dict[str, Any]:
    last: dict[str, Any] = client.get("/api/v1/n6/status").json()["last_apply"]
    return last


def test_a_failed_apply_is_journalled_with_its_code_and_shown_as_the_last(
    node: tuple[Appliance, TestClient[Any], SimulatedBackend],
) -> None:
    _, client, backend = node
    status = client.get("/api/v1/n6/status").json()
    assert status["last_apply"] is None
    assert status["ovs_datapaths"]["simulated"] is True
    backend.fail_on = lambda step: "port" in str(step)
    failed = client.post("/api/v1/n6/apply")
    assert failed.status_code == 502, failed.text
    entries = client.get("/api/v1/journal?limit=1000&kind=n6.apply_failed").json()["entries"]
    assert [e["state"]["code"] for e in entries] == ["simulated_failure"]
    assert entries[0]["state"]["message"] == failed.json()["detail"]
    last = _last(client)
    assert (last["ok"], last["trigger"], last["code"]) == (False, "apply", "simulated_failure")
    assert last["journal_seq"] == entries[0]["seq"]
    assert last["message"] == failed.json()["detail"]

    backend.fail_on = None
    applied = client.post("/api/v1/n6/apply")
    assert applied.status_code == 200, applied.text
    last = _last(client)
    assert (last["ok"], last["code"], last["message"]) == (True, None, None)
    assert last["changes"] == applied.json()["changes"]
    assert _kinds(client)[-2:] == ["n6.apply_failed", "n6.applied"]


def test_the_status_says_what_is_declared_but_not_applied(
    node: tuple[Appliance, TestClient[Any], SimulatedBackend],
) -> None:
    _, client, _ = node

    def pending() -> list[str]:
        found: list[str] = client.get("/api/v1/n6/status").json()["pending"]
        return found

    assert pending() == ["trunk br-n6 added", "VNet acme/llm added"]
    assert client.post("/api/v1/n6/apply").status_code == 200
    assert pending() == []
    # Declaring a trunk again as it was changes nothing to apply.
    assert client.put("/api/v1/n6/trunks/br-n6", json={"kind": "ovs", "ports": []}).is_success
    assert pending() == []
    moved = client.patch("/api/v1/n6/vnets/acme/llm", json={"vlan": 101})
    assert moved.status_code == 200, moved.text
    assert client.put("/api/v1/n6/trunks/br-lab", json={"kind": "ovs"}).status_code == 200
    assert pending() == ["trunk br-lab added", "VNet acme/llm changed"]
    assert client.delete("/api/v1/n6/vnets/acme/llm").status_code == 204
    assert pending() == ["trunk br-lab added", "VNet acme/llm removed"]
    assert client.post("/api/v1/n6/apply").status_code == 200
    assert pending() == []


def test_an_unexpected_error_in_an_apply_is_journalled_as_a_backend_error(
    node: tuple[Appliance, TestClient[Any], SimulatedBackend],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    app, client, backend = node

    def broken(desired: N6Config, *, dry_run: bool = False) -> object:
        raise KeyError("br-n6")  # a bug, not a TowerboxError

    monkeypatch.setattr(backend, "apply", broken)
    failed = client.post("/api/v1/n6/apply")
    assert failed.status_code == 502, failed.text
    problem = failed.json()
    assert problem["code"] == "n6_backend_failed"
    assert "KeyError: 'br-n6'" in problem["detail"]
    entries = client.get("/api/v1/journal?limit=1000&kind=n6.apply_failed").json()["entries"]
    assert [e["state"]["code"] for e in entries] == ["n6_backend_failed"]
    assert entries[0]["state"]["message"] == problem["detail"]
    last = _last(client)
    assert (last["ok"], last["trigger"], last["code"]) == (False, "apply", "n6_backend_failed")
    assert last["journal_seq"] == entries[0]["seq"]
    # The traceback is in the log, the only place that keeps it.
    logged = [r for r in caplog.records if r.exc_info and r.exc_info[0] is KeyError]
    assert logged and logged[0].getMessage() == "N6 apply failed unexpectedly"
    assert client.get("/api/v1/n6/state").json()[0]["applied"] is False

    # Raised in-process, it is the wrapped error, the original chained to it.
    with pytest.raises(BackendError) as raised:
        app.n6.apply(NODE)
    assert raised.value.code == "n6_backend_failed"
    assert isinstance(raised.value.__cause__, KeyError)
    assert _kinds(client)[-2:] == ["n6.apply_failed", "n6.apply_failed"]


def test_a_repair_failing_the_same_way_is_journalled_once(
    node: tuple[Appliance, TestClient[Any], SimulatedBackend],
) -> None:
    app, client, backend = node
    assert client.post("/api/v1/n6/apply").status_code == 200
    backend.apply(N6Config())  # the node loses its N6 paths behind the daemon's back
    backend.fail_on = lambda step: True
    for _ in range(3):
        with pytest.raises(BackendError):
            app.n6.reapply()
    assert _kinds(client).count("n6.repair_failed") == 1
    last = _last(client)
    assert (last["ok"], last["trigger"], last["code"]) == (False, "repair", "simulated_failure")

    backend.fail_on = None
    assert app.n6.reapply()
    assert _kinds(client)[-2:] == ["n6.repair_failed", "n6.repaired"]
    assert _last(client)["ok"] is True
    assert app.n6.reapply() == {}  # nothing to repair: nothing journalled
    assert _kinds(client)[-1] == "n6.repaired"


def test_a_repair_waits_for_an_apply_under_way_and_undoes_none_of_it(
    node: tuple[Appliance, TestClient[Any], SimulatedBackend],
) -> None:
    app, client, backend = node
    in_apply, go_on = threading.Event(), threading.Event()

    def pause(step: object) -> bool:
        # The API's apply stops after its first step, the VNet half made.
        if not in_apply.is_set():
            in_apply.set()
            assert go_on.wait(30)
        return False

    backend.fail_on = pause
    applying = threading.Thread(target=lambda: client.post("/api/v1/n6/apply"))
    applying.start()
    assert in_apply.wait(30)
    # What the reconcile job does every few seconds: the applied document does not
    # hold the VNet yet, the host half does.
    repairing = threading.Thread(target=app.n6.reapply)
    repairing.start()
    repairing.join(timeout=1)
    assert repairing.is_alive(), "the repair ran while the apply was under way"
    go_on.set()
    applying.join(timeout=30)
    repairing.join(timeout=30)
    assert not repairing.is_alive() and not applying.is_alive()
    assert client.post("/api/v1/n6/plan").json()["changes"] == {"ovs": []}
    # The repair came after the apply and found nothing to do.
    assert _kinds(client)[-1] == "n6.applied" and "n6.repaired" not in _kinds(client)
