"""Monitor and reconcile on the test driver: restarts by policy, drift, ownership."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import libvirt
import pytest

from appliance.context import Appliance
from appliance.store import journal
from appliance.store.models import Vm
from tests.support.appliance import built
from towerbox_core.api.vms import VmCreateRequest


@pytest.fixture
def appliance(tmp_path: Path) -> Iterator[Appliance]:
    app = built(tmp_path)
    yield app
    for vm in Vm.select():
        app.vms.delete(_root(app), vm.name)
    app.close()


def _root(app: Appliance) -> Any:
    return app.auth.authenticate(app.cfg.cli_token_file.read_text().strip())


def _make(app: Appliance, name: str, restart: str, role: str = "other") -> str:
    req = VmCreateRequest(
        name=name, appliance="demo", spec={"restart": restart, "role": role}, start=True
    )
    return app.vms.create(_root(app), req).id


def _kinds() -> list[str]:
    return [e["kind"] for e in journal.entries(limit=10_000)]


def test_restart_policies(appliance: Appliance) -> None:
    conn = libvirt.open("test:///default")
    always = _make(appliance, "du", "always", role="vran")
    on_failure = _make(appliance, "llm", "on-failure")
    never = _make(appliance, "misc", "never")
    for vm_id in (always, on_failure, never):
        conn.lookupByUUIDString(vm_id).destroy()  # behind the appliance's back
    report = appliance.reconciler.run()
    assert report.restarted == ["du"]
    states = {u: conn.lookupByUUIDString(u).isActive() for u in (always, on_failure, never)}
    assert states == {always: 1, on_failure: 0, never: 0}
    # Stopped through the API: desired state is stopped, so no restart.
    appliance.vms.stop(_root(appliance), "du")
    assert appliance.reconciler.run().restarted == []
    conn.close()


def test_vran_restarts_first(appliance: Appliance) -> None:
    conn = libvirt.open("test:///default")
    ids = [
        _make(appliance, n, "always", role=r)
        for n, r in (("a-b2b", "b2b"), ("b-upf", "upf"), ("c-du", "vran"))
    ]
    for vm_id in ids:
        conn.lookupByUUIDString(vm_id).destroy()
    assert appliance.reconciler.run().restarted == ["c-du", "b-upf", "a-b2b"]
    conn.close()


def test_drift_is_journalled_once_and_never_repaired_by_deleting(appliance: Appliance) -> None:
    conn = libvirt.open("test:///default")
    gone = _make(appliance, "gone", "never")
    dom = conn.lookupByUUIDString(gone)
    dom.destroy()
    dom.undefine()
    stray_id = str(uuid.uuid4())
    stray = conn.defineXML(
        f"<domain type='test'><name>stray</name><uuid>{stray_id}</uuid><memory>65536</memory>"
        "<os><type>hvm</type></os><metadata><tbx:vm xmlns:tbx='urn:towerbox:vm:1' "
        "node='test-node' vm-id='x' role='other'/></metadata></domain>"
    )
    foreign = conn.defineXML(
        "<domain type='test'><name>someone-elses</name><memory>65536</memory>"
        "<os><type>hvm</type></os></domain>"
    )
    try:
        report = appliance.reconciler.run()
        assert sorted(d["kind"] for d in report.drift) == [
            "drift.domain_missing",
            "drift.unknown_domain",
        ]
        appliance.reconciler.run()
        kinds = _kinds()
        assert kinds.count("drift.domain_missing") == 1
        assert kinds.count("drift.unknown_domain") == 1
        # Neither the stray Towerbox domain nor the foreign one was touched.
        names = {d.name() for d in conn.listAllDomains()}
        assert {"stray", "someone-elses"} <= names
    finally:
        stray.undefine()
        foreign.undefine()
        Vm.delete().where(Vm.id == gone).execute()
        appliance.allocator.release("gone")
    conn.close()


def test_monitor_journals_state_changes_once(appliance: Appliance) -> None:
    conn = libvirt.open("test:///default")
    vm_id = _make(appliance, "watched", "never")
    appliance.monitor_job()
    appliance.monitor_job()
    conn.lookupByUUIDString(vm_id).destroy()
    appliance.monitor_job()
    appliance.monitor_job()
    states = [e["state"]["state"] for e in journal.entries(limit=1000) if e["kind"] == "vm.state"]
    assert states == ["running", "shutoff"]
    snap = appliance.monitor.snapshot
    assert snap.vms[vm_id].state == "shutoff"
    assert len(appliance.monitor.history(vm_id)) == 4
    conn.close()
