"""A VM whose QEMU stops answering, on the simulated backend: the sweep passes over
it, the API and the journal call it unresponsive (since when, once each way), the
reconciler does not wait on it, and it comes back when its QEMU answers again.

The real QEMU version (SIGSTOP under libvirtd) is test_vm_unresponsive_real.py.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from appliance.backends.vm.bounded_call import MAX_STRANDED, BoundedCalls
from appliance.context import Appliance
from appliance.store import journal
from appliance.store.models import Vm
from tests.support.appliance import admin_client, built, close_removing_vms
from towerbox_core.errors import BackendUnavailable, Conflict

DEADLINE_S = 0.2
AFTER_S = 0.4


def _wait(predicate: Any, what: str, timeout: float = 30.0) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


@pytest.fixture
def appliance(tmp_path: Path) -> Iterator[Appliance]:
    app = built(
        tmp_path,
        TOWERBOX_JOBS_STATS_DEADLINE_S=str(DEADLINE_S),
        TOWERBOX_JOBS_UNRESPONSIVE_AFTER_S=str(AFTER_S),
    )
    yield app
    close_removing_vms(app)


@pytest.fixture
def client(appliance: Appliance) -> Iterator[TestClient[Any]]:
    with admin_client(appliance) as c:
        yield c


def _vm_states() -> list[tuple[str, str, str | None]]:
    return [
        (e["state"]["name"], e["state"]["state"], e["state"].get("unresponsive_since", "-"))
        for e in journal.entries(limit=10_000)
        if e["kind"] == "vm.state"
    ]


def test_stalled_vm_is_unresponsive_and_the_rest_stays_live(
    client: TestClient[Any], appliance: Appliance
) -> None:
    for name in ("stuck1", "fine1"):
        made = client.post("/api/v1/vms", json={"name": name, "appliance": "demo", "start": True})
        assert made.status_code == 201, made.text
    ids = {vm.name: vm.id for vm in Vm.select()}
    appliance.monitor_job()
    before = len(_vm_states())

    stalled_at = time.time()
    appliance.backend.stall(ids["stuck1"])
    try:
        # The first sweep to reach it waits out one deadline, then passes over it.
        snap = appliance.monitor.sweep()
        assert snap.vms[ids["stuck1"]].state == "running", "not silent for long enough yet"
        assert snap.sweep_ms >= DEADLINE_S * 1000
        time.sleep(AFTER_S)
        appliance.monitor_job()
        snap = appliance.monitor.snapshot
        assert snap.vms[ids["stuck1"]].state == "unresponsive"
        since = snap.unresponsive[ids["stuck1"]]
        assert stalled_at <= since <= time.time() - AFTER_S
        assert snap.vms[ids["fine1"]].state == "running"
        assert snap.states.get("unresponsive") == 1
        # Later sweeps do not wait on it again: the one call stranded on it holds it,
        # and no other call is given up.
        appliance.monitor_job()
        assert appliance.backend.stranded_stats_calls == 1
        assert appliance.monitor.snapshot.unresponsive[ids["stuck1"]] == since

        listed = {v["name"]: v for v in client.get("/api/v1/vms").json()}
        assert listed["stuck1"]["state"] == "unresponsive"
        assert listed["stuck1"]["unresponsive_since"] == since
        assert (listed["fine1"]["state"], listed["fine1"]["unresponsive_since"]) == (
            "running",
            None,
        )
        detail = client.get("/api/v1/vms/stuck1").json()  # asks libvirt live
        assert (detail["state"], detail["unresponsive_since"]) == ("unresponsive", since)
        assert detail["attention"]["kind"] == "unresponsive"
        assert "stop forces it off" in detail["attention"]["reason"]
        assert listed["fine1"]["attention"] is None
        current = client.get("/api/v1/vms/stuck1/stats").json()["current"]
        assert (current["state"], current["unresponsive_since"]) == ("unresponsive", since)
        assert 'towerbox_vms{state="unresponsive"} 1.0' in client.get("/metrics").text

        # Power actions that need the QEMU monitor are refused up front, unchanged.
        for action in ("shutdown", "reboot"):
            refused = client.post(f"/api/v1/vms/stuck1/{action}", json={})
            assert refused.status_code == 409, refused.text
            assert refused.json()["code"] == "vm_unresponsive"
            assert "stop forces it off" in refused.json()["detail"]
        assert client.get("/api/v1/vms/stuck1").json()["desired_state"] == "running"

        # Once on entering, with since when; another sweep adds nothing.
        appliance.monitor_job()
        entered = _vm_states()[before:]
        assert len(entered) == 1
        assert entered[0][:2] == ("stuck1", "unresponsive")
        assert entered[0][2] is not None

        # The reconciler neither waits on it nor tries to restart it: it is running.
        report = appliance.reconciler.run()
        assert report.restarted == []
        assert report.restart_failed == []
    finally:
        appliance.backend.stall(ids["stuck1"], stalled=False)

    _wait(lambda: appliance.backend.stranded_stats_calls == 0, "the stranded call to end")
    appliance.monitor_job()
    assert appliance.monitor.snapshot.vms[ids["stuck1"]].state == "running"
    assert appliance.monitor.snapshot.unresponsive == {}
    assert client.get("/api/v1/vms/stuck1").json()["unresponsive_since"] is None
    left = _vm_states()[before + 1 :]
    assert left == [("stuck1", "running", None)]


def test_stranded_calls_are_bounded() -> None:
    calls = BoundedCalls("test call")
    release = threading.Event()
    try:
        for _ in range(MAX_STRANDED):
            assert calls.call(release.wait, 0.01) is None
        with pytest.raises(BackendUnavailable) as err:
            calls.call(lambda: 1, 1.0)
        assert err.value.code == "stats_stalled"
    finally:
        release.set()
    _wait(lambda: calls.stranded == 0, "the stranded calls to end")
    assert calls.call(lambda: 1, 1.0) == 1


def test_errors_reach_the_caller() -> None:
    def fail() -> None:
        raise Conflict("no", code="x")

    with pytest.raises(Conflict):
        BoundedCalls("test call").call(fail, 5.0)


def test_states_alone_make_a_sweep_when_every_try_strands(
    client: TestClient[Any], appliance: Appliance
) -> None:
    names = ("slow1", "slow2", "slow3")
    for name in (*names, "fine2"):
        made = client.post("/api/v1/vms", json={"name": name, "appliance": "demo", "start": True})
        assert made.status_code == 201, made.text
    ids = {vm.name: vm.id for vm in Vm.select()}
    appliance.monitor_job()
    try:
        for name in names:
            appliance.backend.stall(ids[name])
        # Each try strands on another silent domain; the states still come.
        snap = appliance.monitor.sweep()
        assert appliance.backend.stranded_stats_calls == len(names)
        assert snap.vms[ids["fine2"]].state == "running"
        # The first one reached has been silent through three deadlines by now.
        assert "unresponsive" in {snap.vms[ids[n]].state for n in names}
    finally:
        for name in names:
            appliance.backend.stall(ids[name], stalled=False)
    _wait(lambda: appliance.backend.stranded_stats_calls == 0, "the stranded calls to end")
