"""Alerts evaluated on a node of the libvirt test driver and the simulated GPU: each
rule fires on real state and resolves when the state is put right, journalled once,
kept across a daemon restart, acknowledged with its actor, scoped to tenants."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import libvirt
import pytest
from apscheduler.schedulers.background import BackgroundScheduler

from appliance.context import Appliance, build_appliance
from appliance.domain.alerts.readings import NodeReadings
from appliance.store import journal
from appliance.store.models import Vm
from tests.support.appliance import admin_client, built, make_config
from tests.support.tenancy import clients, principal_of, root_principal, tenant_node
from towerbox_core.api.vms import VmCreateRequest
from towerbox_core.errors import BackendError
from towerbox_core.wire import AgentStatus

DAY = {
    "instances": [
        {"profile": "3g.40gb", "start": 4, "role": "vran", "owner": "du1"},
        {"profile": "2g.20gb", "start": 0},
    ]
}


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Appliance]:
    node = built(tmp_path, TOWERBOX_GPU_BACKEND="simulated")
    yield node
    for vm in Vm.select():
        node.vms.delete(root_principal(node), vm.name)
    node.close()


def _make(app: Appliance, name: str, role: str, restart: str = "never") -> str:
    req = VmCreateRequest(
        name=name, appliance="demo", spec={"restart": restart, "role": role}, start=True
    )
    return app.vms.create(root_principal(app), req).id


def _read(app: Appliance, later_s: float = 0.0) -> NodeReadings:
    """The node's readings as the alert job takes them, ``later_s`` from now."""
    app.monitor.sweep()
    return app.health.readings(time.time() + later_s)


def _alert_entries() -> list[tuple[str, str, str]]:
    return [
        (e["kind"], e["state"]["rule"], e["state"]["object"])
        for e in journal.entries(limit=10_000, kind_prefix="alert.")
    ]


def _firing(app: Appliance) -> set[tuple[str, str]]:
    return {(a.rule, a.object) for a in app.alerts.active()}


def test_vran_vm_down_waits_for_its_duration_fires_once_and_resolves(app: Appliance) -> None:
    _make(app, "du", "vran")
    assert app.alerts.evaluate(_read(app)) == []
    app.vms.stop(root_principal(app), "du")
    first = _read(app)
    assert app.alerts.evaluate(first) == []  # pending: not yet held for 30 s
    assert _firing(app) == set() and _alert_entries() == []
    fired = app.alerts.evaluate(dataclasses.replace(first, at=first.at + 31))
    assert [(a.rule, a.object, a.severity) for a in fired] == [
        ("vran_vm_down", "vm:du", "critical")
    ]
    assert "shutoff" in fired[0].message and "towerbox vm start" in fired[0].runbook
    app.alerts.evaluate(dataclasses.replace(first, at=first.at + 60))
    assert _alert_entries() == [("alert.fired", "vran_vm_down", "vm:du")]
    app.vms.start(root_principal(app), "du")
    resolved = app.alerts.evaluate(_read(app, 90))
    assert [(a.rule, a.state) for a in resolved] == [("vran_vm_down", "resolved")]
    assert _alert_entries() == [
        ("alert.fired", "vran_vm_down", "vm:du"),
        ("alert.resolved", "vran_vm_down", "vm:du"),
    ]
    with admin_client(app) as client:
        assert client.get("/api/v1/alerts").json() == {"alerts": [], "firing": {}}
        recent = client.get("/api/v1/alerts", params={"all": "true"}).json()["alerts"]
        assert [(a["rule"], a["state"]) for a in recent] == [("vran_vm_down", "resolved")]


def test_state_survives_a_restart_and_nothing_fires_twice(tmp_path: Path) -> None:
    cfg = make_config(tmp_path, TOWERBOX_GPU_BACKEND="simulated")
    app = build_appliance(cfg)
    _make(app, "du", "vran")
    _make(app, "du2", "vran")
    app.vms.stop(root_principal(app), "du")
    first = _read(app)
    app.alerts.evaluate(first)
    app.alerts.evaluate(dataclasses.replace(first, at=first.at + 31))
    # du2 stops later: its alert is pending when the daemon stops.
    app.vms.stop(root_principal(app), "du2")
    app.alerts.evaluate(_read(app, 33))
    app.close()

    again = build_appliance(cfg)
    try:
        later = _read(again, 40)
        again.alerts.evaluate(later)
        assert _firing(again) == {("vran_vm_down", "vm:du")}
        # The pending one kept its start (33 s in): 30 s later it fires, not before.
        again.alerts.evaluate(dataclasses.replace(later, at=later.at + 22))
        assert _firing(again) == {("vran_vm_down", "vm:du")}
        again.alerts.evaluate(dataclasses.replace(later, at=later.at + 24))
        assert _firing(again) == {("vran_vm_down", "vm:du"), ("vran_vm_down", "vm:du2")}
        assert [k for k in _alert_entries() if k[0] == "alert.fired"] == [
            ("alert.fired", "vran_vm_down", "vm:du"),
            ("alert.fired", "vran_vm_down", "vm:du2"),
        ]
    finally:
        for vm in Vm.select():
            again.vms.delete(root_principal(again), vm.name)
        again.close()


def test_ack_records_the_actor_and_tenants_see_only_their_own(tmp_path: Path) -> None:
    node = tenant_node(tmp_path)
    app = next(node)
    try:
        acme = principal_of(app, "acme-admin")
        beta = principal_of(app, "beta-admin")
        for who, name in ((acme, "acme-du"), (beta, "beta-du")):
            req = VmCreateRequest(name=name, appliance="demo", spec={"restart": "never"})
            app.vms.create(who, req)
        # Only an infra-admin gives a VM the vran role: set it on the rows, as the
        # node's own services would own them.
        Vm.update(role="vran").execute()
        readings = _read(app)
        app.alerts.evaluate(readings)
        app.alerts.evaluate(dataclasses.replace(readings, at=readings.at + 31))
        assert {o for _, o in _firing(app)} == {"vm:acme-du", "vm:beta-du"}
        by_object = {a.object: a.id for a in app.alerts.active()}
        for c, admin, acme_h in clients(app):
            mine = c.get("/api/v1/alerts", headers=acme_h).json()
            assert [a["object"] for a in mine["alerts"]] == ["vm:acme-du"]
            assert mine["firing"] == {"critical": 1}
            theirs = c.post(f"/api/v1/alerts/{by_object['vm:beta-du']}/ack", headers=acme_h)
            assert theirs.status_code == 404 and theirs.json()["code"] == "alert_not_found"
            acked = c.post(f"/api/v1/alerts/{by_object['vm:acme-du']}/ack", headers=acme_h)
            assert acked.status_code == 200, acked.text
            assert acked.json()["acked_by"] == "acme-admin"
            missing = c.post("/api/v1/alerts/99999/ack", headers=admin)
            assert missing.status_code == 404
            everyone = c.get("/api/v1/alerts", headers=admin).json()
            assert everyone["firing"] == {"critical": 2}
        acks = journal.entries(limit=10_000, kind_prefix="alert.acked")
        assert len(acks) == 1
        assert acks[0]["actor"]["user"] == "acme-admin"
        assert acks[0]["state"]["object"] == "vm:acme-du"
    finally:
        next(node, None)


def test_restart_loop_fires_on_the_reconcilers_restarts(app: Appliance) -> None:
    conn = libvirt.open("test:///default")
    vm_id = _make(app, "flaky", "b2b", restart="always")
    for _ in range(3):
        conn.lookupByUUIDString(vm_id).destroy()  # it dies; the node restarts it
        assert app.reconciler.run().restarted == ["flaky"]
    conn.close()
    app.alerts.evaluate(_read(app))
    assert _firing(app) == {("vm_restart_loop", "vm:flaky")}
    # Past the window the restarts no longer count.
    app.alerts.evaluate(_read(app, app.alerts.bounds.restart_loop_window_s + 1))
    assert _firing(app) == set()


def test_gpu_drift_and_missing_instance(app: Appliance) -> None:
    gpu = app.gpus.list_gpus()[0].uuid
    with admin_client(app) as client:
        assert client.post(f"/api/v1/gpus/{gpu}/apply", json=DAY).status_code == 200
    sim = app.gpus.backend
    victim = next(i for i in sim.instances(gpu) if i.profile == "2g.20gb")
    sim.destroy_instance(gpu, victim.gpu_instance_id)  # behind the node's back: a driver reset
    first = _read(app)
    [reading] = first.gpus
    assert (len(reading.drift), reading.missing) == (1, 1)
    assert _exported_drift(app, gpu) == (1, 1)  # /metrics tells the same
    app.alerts.evaluate(first)
    app.alerts.evaluate(dataclasses.replace(first, at=first.at + 61))
    assert _firing(app) == {
        ("gpu_layout_drift", f"gpu:{gpu}"),
        ("mig_instance_missing", f"gpu:{gpu}"),
    }
    # The rules read the monitor's sweep, not the driver: repaired behind the sweep's
    # back, the drift stands until the next sweep sees it.
    repaired = sim.create_instance(gpu, "2g.20gb", 0)
    app.alerts.evaluate(app.health.readings(time.time() + 61.2))
    assert len(_firing(app)) == 2
    sim.destroy_instance(gpu, repaired.gpu_instance_id)
    # A driver that does not answer a sweep, or answers all but where its instances
    # sit: the drift stands, and the rules still run.
    sim.fail_next("telemetry", BackendError("NVML timed out", code="nvml_error"))
    app.alerts.evaluate(_read(app, 61.5))
    assert len(_firing(app)) == 2
    sim.fail_next("instances", BackendError("NVML timed out", code="nvml_error"))
    app.alerts.evaluate(_read(app, 61.7))
    assert len(_firing(app)) == 2
    sim.create_instance(gpu, "2g.20gb", 0)
    app.alerts.evaluate(_read(app, 62))
    assert _firing(app) == set()


def test_gpu_with_mig_off_under_a_committed_layout_has_no_drift(app: Appliance) -> None:
    gpu = app.gpus.list_gpus()[0].uuid
    with admin_client(app) as client:
        assert client.post(f"/api/v1/gpus/{gpu}/apply", json=DAY).status_code == 200
    sim = app.gpus.backend
    for inst in sim.instances(gpu):
        sim.destroy_instance(gpu, inst.gpu_instance_id)
    sim.set_mig_mode(gpu, False)
    sim.simulate_gpu_reset(gpu)
    readings = _read(app)
    # As the GPU view tells it: a layout waiting for MIG to come back is not a drift.
    assert app.gpus.get(gpu).drift == []
    [reading] = readings.gpus
    assert (reading.uuid, reading.drift, reading.missing) == (gpu, (), 0)
    assert _exported_drift(app, gpu) == (0, 0)  # /metrics tells the same
    app.alerts.evaluate(readings)
    app.alerts.evaluate(dataclasses.replace(readings, at=readings.at + 61))
    assert _firing(app) == set()


def _exported_drift(app: Appliance, gpu: str) -> tuple[float, float]:
    """The GPU's drift and missing instances as /metrics exports them."""
    values = {
        s.name: s.value
        for family in app.snapshot_metrics.collect()
        for s in family.samples
        if s.labels == {"gpu": gpu}
    }
    return values["towerbox_gpu_layout_drift"], values["towerbox_mig_instances_missing"]


def test_journal_wan_and_disk_bounds(app: Appliance) -> None:
    _make(app, "llm", "b2b")  # a few journal entries the registry has not acknowledged
    bounds = app.alerts.bounds
    app.alerts.bounds = dataclasses.replace(
        bounds, journal_backlog_entries=1, journal_oldest_unacked_s=10, for_s={}
    )
    readings = _read(app)
    assert readings.health.journal_unacked >= 2
    app.alerts.evaluate(readings)
    app.alerts.evaluate(dataclasses.replace(readings, at=readings.at + 301))
    assert ("journal_backlog", "node") in _firing(app)
    # The oldest entry is seconds old: only as time passes does it cross its bound.
    assert ("journal_oldest_unacked", "node") not in _firing(app)
    with journal.write_transaction():
        journal.record_ack(journal.head())
    app.alerts.evaluate(_read(app, 302))
    assert _firing(app) == set()

    synced = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 3600))
    status = AgentStatus("offline", "https://registry", "site", 0, 0, last_sync_at=synced)
    app.sync.put(status)
    app.alerts.evaluate(_read(app, 303))
    assert ("wan_offline", "node") in _firing(app)
    app.sync.put(_online(status))
    app.alerts.evaluate(_read(app, 304))
    assert ("wan_offline", "node") not in _firing(app)


def _online(status: AgentStatus) -> AgentStatus:
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return AgentStatus("online", status.registry_url, status.site, 0, 0, last_sync_at=now)


def test_scheduled_jobs_that_fail_raise_an_alert(app: Appliance) -> None:
    scheduler = BackgroundScheduler()
    app.health.jobs.attach(scheduler)
    calls = {"n": 0}

    def flaky() -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("libvirtd went away")

    scheduler.add_job(flaky, "interval", seconds=3600, id="flaky", next_run_time=None)
    scheduler.start()
    try:
        scheduler.get_job("flaky").modify(next_run_time=_now())
        _wait(lambda: calls["n"] == 1)
        _wait(lambda: any(j.last_success is False for j in app.health.jobs.readings()))
        app.alerts.evaluate(_read(app))
        [alert] = app.alerts.active()
        assert (alert.rule, alert.object) == ("schedule_failed", "job:flaky")
        assert "libvirtd went away" in alert.message
        scheduler.get_job("flaky").modify(next_run_time=_now())
        _wait(lambda: any(j.last_success for j in app.health.jobs.readings()))
        app.alerts.evaluate(_read(app))
        assert app.alerts.active() == []
    finally:
        scheduler.shutdown()


def _now() -> Any:
    import datetime as dt

    return dt.datetime.now(dt.UTC)


def _wait(ok: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not ok():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_a_gpu_schedule_whose_run_fails_raises_schedule_failed(app: Appliance) -> None:
    gpu = app.gpus.list_gpus()[0].uuid
    with admin_client(app) as client:
        assert client.post(f"/api/v1/gpus/{gpu}/apply", json=DAY).status_code == 200
        target = {"counts": {"1g.10gb": 3}}
        night = {"gpu": gpu, "cron": "0 22 * * *", "target": target}
        assert client.put("/api/v1/gpus/schedules/night", json=night).status_code == 200
    scheduler = BackgroundScheduler()
    app.health.jobs.attach(scheduler)
    app.gpu_schedules.attach(scheduler)
    scheduler.start()
    sim = app.gpus.backend
    try:
        sim.fail_next("create_instance", BackendError("injected", code="injected_fault"))
        scheduler.get_job("gpu-schedule:night").modify(next_run_time=_now())
        _wait(lambda: any(j.last_success is False for j in app.health.jobs.readings()))
        app.alerts.evaluate(_read(app))
        assert _firing(app) == {("schedule_failed", "job:gpu-schedule:night")}
        # The next run applies: the alert resolves.
        scheduler.get_job("gpu-schedule:night").modify(next_run_time=_now())
        _wait(lambda: all(j.last_success is not False for j in app.health.jobs.readings()))
        app.alerts.evaluate(_read(app))
        assert _firing(app) == set()
    finally:
        scheduler.shutdown()


def test_an_ack_between_an_evaluations_read_and_write_is_kept(
    app: Appliance, monkeypatch: pytest.MonkeyPatch
) -> None:
    _make(app, "du", "vran")
    app.vms.stop(root_principal(app), "du")
    first = _read(app)
    app.alerts.evaluate(dataclasses.replace(first, at=first.at - 31))
    app.alerts.evaluate(first)
    [alert] = app.alerts.active()
    decide = app.alerts._changes

    def ack_meanwhile(*args: Any) -> bool:
        app.alerts.ack(root_principal(app), alert.id, time.time())
        return decide(*args)

    monkeypatch.setattr(app.alerts, "_changes", ack_meanwhile)
    # Its message changes (now missing), and an operator acknowledges it meanwhile.
    conn = libvirt.open("test:///default")
    conn.lookupByUUIDString(Vm.get(Vm.name == "du").id).undefine()
    conn.close()
    app.alerts.evaluate(_read(app, 1))
    [after] = app.alerts.active()
    assert "missing" in after.message and after.acked_by == "admin"
