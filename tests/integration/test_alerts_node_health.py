"""Node-health metrics and the rules over the host: /metrics serves the readings the
rules evaluate (every series the node-health dashboard asks for), and the hugepage,
unresponsive-QEMU and disk rules fire on real state and resolve."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from apscheduler.schedulers.background import BackgroundScheduler
from prometheus_client.parser import text_string_to_metric_families

from appliance.context import Appliance
from appliance.store import journal
from tests.support.appliance import admin_client, built, close_removing_vms
from tests.support.disk_full import fill, small_tmpfs
from tests.support.tenancy import root_principal
from towerbox_core.api.vms import VmCreateRequest
from towerbox_core.wire import AgentStatus

REPO = Path(__file__).resolve().parents[2]
DASHBOARD = REPO / "grafana" / "node-health.json"


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Appliance]:
    node = built(
        tmp_path,
        TOWERBOX_JOBS_STATS_DEADLINE_S="0.2",
        TOWERBOX_JOBS_UNRESPONSIVE_AFTER_S="0.4",
        TOWERBOX_ALERTS_FOR_S=json.dumps({"hugepages_exhausted": 0, "disk_space_low": 0}),
    )
    yield node
    close_removing_vms(node)


def _scrape(app: Appliance) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with admin_client(app) as client:
        text = client.get("/metrics").text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _evaluate(app: Appliance) -> set[tuple[str, str]]:
    app.monitor_job()
    app.alerts_job()
    return {(a.rule, a.object) for a in app.alerts.active()}


def test_metrics_serve_the_readings_and_every_dashboard_series(app: Appliance) -> None:
    app.monitor_job()
    served = _scrape(app)
    health = app.health.node_health()
    for p in health.hugepages:
        labels = (("numa_node", str(p.numa_node)), ("size", p.size))
        assert served[("towerbox_hugepages_free", labels)] == p.free
        assert served[("towerbox_hugepages_total", labels)] == p.total
    assert served[("towerbox_hugepages_total", (("numa_node", "1"), ("size", "1G")))] == 4
    for node, free in health.cores_free.items():
        assert served[("towerbox_cores_exclusive_free", (("numa_node", str(node)),))] == free
    assert served[("towerbox_journal_head_seq", ())] == journal.head()
    assert served[("towerbox_journal_unacked_entries", ())] == journal.head()
    assert served[("towerbox_state_disk_size_bytes", ())] == health.disk_size
    assert served[("towerbox_alerts_firing", (("severity", "critical"),))] == 0
    names = {name for name, _ in served}
    wanted = set()
    for panel in json.loads(DASHBOARD.read_text())["panels"]:
        for target in panel.get("targets", []):
            wanted |= set(re.findall(r"towerbox_[a-z_]+", target["expr"]))
    # Any node serves them, before an agent reports or a job runs: the node's
    # dashboard test loads every grafana/node*.json against such a node.
    assert wanted - names == set(), "the dashboard asks for series /metrics does not serve"


def test_hugepages_exhausted_on_a_vran_node(app: Appliance) -> None:
    spec = {"role": "vran", "vcpus": 1, "memory_mib": 4096, "hugepages": "1G", "numa_node": 1}
    req = VmCreateRequest(name="du", appliance="demo", spec={**spec, "restart": "never"})
    app.vms.create(root_principal(app), req)
    assert ("hugepages_exhausted", "hugepages:node1:1G") in _evaluate(app)
    served = _scrape(app)
    assert served[("towerbox_hugepages_free", (("numa_node", "1"), ("size", "1G")))] == 0
    key = (("alert", "hugepages_exhausted"), ("object", "hugepages:node1:1G"))
    assert served[("towerbox_alert_active", (*key, ("severity", "warning")))] == 1
    app.vms.delete(root_principal(app), "du")
    assert _evaluate(app) == set()


def test_unresponsive_qemu_fires_and_resolves(app: Appliance) -> None:
    req = VmCreateRequest(name="stuck", appliance="demo", spec={"restart": "never"}, start=True)
    vm_id = app.vms.create(root_principal(app), req).id
    app.backend.stall(vm_id)
    try:
        app.monitor_job()
        time.sleep(0.5)
        assert ("qemu_unresponsive", "vm:stuck") in _evaluate(app)
    finally:
        app.backend.stall(vm_id, False)
    deadline = time.monotonic() + 30
    while ("qemu_unresponsive", "vm:stuck") in _evaluate(app):
        assert time.monotonic() < deadline, "still unresponsive"
        time.sleep(0.2)


def test_disk_space_low_on_a_filling_state_disk(tmp_path: Path) -> None:
    with small_tmpfs(tmp_path / "small", "48m") as state:
        node = built(
            tmp_path,
            TOWERBOX_STATE_DIR=str(state),
            TOWERBOX_STATE_RESERVE_MIB="4",
            TOWERBOX_ALERTS_FOR_S=json.dumps({"disk_space_low": 0}),
        )
        try:
            assert _evaluate(node) == set()
            # Below the reserve, where the node refuses other writes: the alert is
            # still raised and journalled.
            filler = fill(state, leave_bytes=2 * 2**20)
            assert ("disk_space_low", "node") in _evaluate(node)
            assert [e["kind"] for e in journal.entries(kind_prefix="alert.")] == ["alert.fired"]
            [alert] = node.alerts.active()
            assert "MiB free of" in alert.message
            filler.unlink()
            assert _evaluate(node) == set()
        finally:
            close_removing_vms(node)


def test_job_and_wan_series_once_there_is_something_to_say(app: Appliance) -> None:
    served = _scrape(app)
    assert not [n for n, _ in served if n.startswith(("towerbox_job_", "towerbox_wan_last"))]
    synced = time.time() - 120
    at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(synced))
    app.sync.put(AgentStatus("online", "https://registry", "site", 0, 0, last_sync_at=at))
    scheduler = BackgroundScheduler()
    app.health.jobs.attach(scheduler)
    scheduler.add_job(app.monitor_job, "interval", seconds=3600, id="monitor")
    scheduler.start()
    try:
        app.health.jobs.record("monitor", False, "boom", at=synced)
        served = _scrape(app)
    finally:
        scheduler.shutdown()
    assert served[("towerbox_wan_up", ())] == 1
    assert served[("towerbox_wan_last_sync_timestamp_seconds", ())] == int(synced)
    job = (("job", "monitor"),)
    assert served[("towerbox_job_last_success", job)] == 0
    assert served[("towerbox_job_last_run_timestamp_seconds", job)] == synced
    assert served[("towerbox_job_next_run_timestamp_seconds", job)] > time.time() + 3000
